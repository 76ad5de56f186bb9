//! The back-to-back user agent: every call is two independent legs, bridged here.
//!
//! [`B2bua`] consumes transaction events and drives the transaction layer; it is sans-IO like the
//! layers below. The flows are split by concern: `initial` (INVITE, provisionals, forks, PRACK,
//! CANCEL, fail-over), `in_dialog` (ACK, BYE, re-INVITE, relayed requests), `local` (requests
//! answered by sipborder itself and out-of-dialog relays), `call_timers` (2xx and reliable
//! provisional retransmission), `dtmf` (SIP INFO ↔ RFC 4733 interworking).

pub mod admission;
mod anchoring;
pub mod call;
mod call_timers;
mod dispatch;
mod dtmf;
mod in_dialog;
mod initial;
pub mod join;
mod local;
mod media_move;
mod policy_hook;
mod register_proxy;
mod replace;
pub mod reply;
pub mod router;
pub mod session_timer;
#[cfg(test)]
mod tests;
mod transfer;
mod trunk_edge;
mod zone_auth;

pub use call::{CallKey, Side};
pub use dispatch::{B2bua, B2buaStats, CallRecord};
pub use router::{Router, TrunkId};
