//! Dialog state per leg (RFC 3261 §12): identifiers, CSeq spaces, route set, remote target,
//! and the construction of requests within a dialog.

#[allow(clippy::module_inception)]
pub mod dialog;
pub mod uri;

pub use dialog::{Dialog, DialogState};
