//! sipborder: a SIP session border controller and back-to-back user agent.
//!
//! Data flows one way: `transport → transaction → dialog → b2bua → policy → media`
//! (see docs/ARCHITECTURE.md). The protocol layers are sans-IO state machines driven by
//! [`server`], the thin tokio layer that owns sockets and timers.

pub mod admin_client;
pub mod b2bua;
pub mod cli;
pub mod config;
pub mod dialog;
pub mod media;
pub mod nat;
pub mod observe;
pub mod policy;
pub mod security;
pub mod server;
pub mod shard;
pub mod sip;
pub mod transaction;
pub mod transport;
pub mod trunk;
