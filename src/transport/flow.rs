//! Addressing shared by every layer: where a message came from and where one goes.

use crate::sip::message::Transport;
use bytes::Bytes;
use std::net::SocketAddr;

/// Index of a configured zone (position in `Config::zones`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(pub u16);

/// Identifies one TCP connection for its whole life; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A message path: zone, transport and remote address, plus the connection for stream transports
/// (RFC 5626 calls this a flow). Responses and in-dialog requests reuse the connection when it is
/// still open, otherwise the transport opens a new one to `remote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Zone whose sockets carry the message.
    pub zone: ZoneId,
    /// UDP or TCP.
    pub transport: Transport,
    /// The peer's address (source of an inbound message, destination of an outbound one).
    pub remote: SocketAddr,
    /// Connection the message arrived on, or should leave on when still open.
    pub conn: Option<ConnId>,
}

impl Flow {
    /// A flow to `remote` that lets the transport pick or open a connection.
    pub fn to(zone: ZoneId, transport: Transport, remote: SocketAddr) -> Flow {
        Flow { zone, transport, remote, conn: None }
    }
}

/// One message to put on the wire.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where it goes.
    pub flow: Flow,
    /// The serialized message.
    pub bytes: Bytes,
}

/// The address sipborder writes into Via sent-by and Contact on one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneAddress {
    /// Host written (advertised IP or listen IP).
    pub host: String,
    /// UDP port, if the zone listens on UDP.
    pub udp_port: Option<u16>,
    /// TCP port, if the zone listens on TCP.
    pub tcp_port: Option<u16>,
}

impl ZoneAddress {
    /// Port to write for `transport` (falls back to whichever the zone has).
    pub fn port_for(&self, transport: Transport) -> u16 {
        let p = match transport {
            Transport::Tcp | Transport::Tls => self.tcp_port.or(self.udp_port),
            _ => self.udp_port.or(self.tcp_port),
        };
        p.unwrap_or(5060)
    }

    /// `host:port` for `transport`, IPv6 hosts bracketed.
    pub fn host_port(&self, transport: Transport) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port_for(transport))
        } else {
            format!("{}:{}", self.host, self.port_for(transport))
        }
    }
}
