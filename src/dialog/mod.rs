//! Dialog state per leg (RFC 3261 §12): identifiers, CSeq spaces, route set, remote target,
//! and the construction of requests within a dialog.

pub mod dialog;
pub mod uri;

pub use dialog::{Dialog, DialogState};
