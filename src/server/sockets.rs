//! Binding the listen sockets of every zone.

use super::ServerError;
use crate::config::Config;
use crate::transport::flow::ZoneId;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;

/// Sockets bound for all zones.
pub struct Bound {
    /// UDP socket per zone that has one.
    pub udp: Vec<(ZoneId, Arc<tokio::net::UdpSocket>)>,
    /// TCP listener per zone that has one.
    pub tcp: Vec<(ZoneId, tokio::net::TcpListener)>,
    /// TCP listen IP per zone (outbound connections bind to it so they leave from the zone's IP).
    pub tcp_ip: Vec<(ZoneId, SocketAddr)>,
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // A burst of INVITEs must not overflow the default ~200 KiB buffer.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Binds every zone's UDP and TCP addresses.
pub fn bind_all(cfg: &Config) -> Result<Bound, ServerError> {
    let mut bound = Bound { udp: Vec::new(), tcp: Vec::new(), tcp_ip: Vec::new() };
    for (i, z) in cfg.zones.iter().enumerate() {
        let zone = ZoneId(i as u16);
        if let Some(addr) = z.udp {
            let s =
                udp_socket(addr).and_then(tokio::net::UdpSocket::from_std).map_err(|source| {
                    ServerError::Bind { zone: z.name.clone(), transport: "udp", addr, source }
                })?;
            bound.udp.push((zone, Arc::new(s)));
        }
        if let Some(addr) = z.tcp {
            let l = tcp_listener(addr).and_then(tokio::net::TcpListener::from_std).map_err(
                |source| ServerError::Bind { zone: z.name.clone(), transport: "tcp", addr, source },
            )?;
            bound.tcp.push((zone, l));
            bound.tcp_ip.push((zone, addr));
        }
    }
    Ok(bound)
}
