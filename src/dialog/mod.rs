//! Dialog state per leg (RFC 3261 §12): identifiers, CSeq spaces, route set, remote target,
//! and the construction of requests within a dialog.

pub mod state;
pub mod uri;

pub use state::{Dialog, DialogState};
