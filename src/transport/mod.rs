//! Transports: UDP and TCP sockets per zone, stream framing, and the addressing types
//! ([`flow::Flow`], [`flow::Transmit`]) the layers above speak.

pub mod flow;
pub mod framing;
