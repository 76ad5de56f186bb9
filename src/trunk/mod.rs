//! The trunk edge: digest authentication (client toward the ITSP, server for zones that demand
//! it), outbound registration, OPTIONS keepalive and trunk health.

pub mod digest;
pub mod digest_client;
pub mod digest_server;
pub mod edge;
pub mod health;
pub mod keepalive;
pub mod registration;
