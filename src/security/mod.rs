//! Security at the edge: who may talk to sipborder, how fast, and for how long.
//!
//! Sans-IO like the protocol core: nothing here opens a socket or reads the clock; every
//! decision takes `now` and returns a verdict for the caller (the receive path in
//! `server::dispatch`, the TCP accept loop, the B2BUA) to act on. Unlike the protocol core it is
//! shared by every receive thread, so its state sits behind `&self` in sharded locks and
//! atomics.
//!
//! - [`acl`]: source networks accepted per zone.
//! - [`rate`]: token buckets per source (all requests, INVITE, REGISTER).
//! - [`admission`]: concurrent-call and calls-per-second caps per trunk, zone and source.
//! - [`scanner`]: known scanner User-Agents.
//! - [`ban`]: fail2ban-style strikes and bans.
//! - [`disclosure`]: what headers toward untrusted zones may tell.
//! - [`limits`]: hard limits (body size, TCP connections and slowloris, dialogs, transactions).
//! - [`guard`]: [`EdgeGuard`], one decision per message, and [`SecurityConfig`].
//!
//! Per-source state lives in bounded tables (`source`): IPv6 sources are keyed by prefix, and a
//! flood of spoofed sources evicts one-packet sources, never a source that keeps sending.

pub mod acl;
pub mod admission;
pub mod ban;
pub mod disclosure;
pub mod guard;
pub mod limits;
pub mod rate;
pub mod scanner;
mod source;

pub use acl::{Acl, AclError, Network};
pub use admission::{AdmissionKey, CallAdmission, CallCaps, Refusal, Ticket};
pub use ban::{BanConfig, BanEntry, BanList, Reason};
pub use disclosure::DisclosureConfig;
pub use guard::{
    DropReason, EdgeGuard, GuardStats, Resource, SecurityConfig, SecurityConfigError, Verdict,
    ZoneSecurity,
};
pub use limits::{ConcurrencyLimiter, HardLimits, IncompleteTimer, LimitExceeded, Slot};
pub use rate::{RateClass, RateLimit, SourceLimiter, SourceRates, TokenBucket};
pub use scanner::ScannerDetector;
pub use source::SourceKeying;
