//! Discovering sipborder's own public address with STUN (RFC 8489) when it sits behind a NAT:
//! a binding request from the zone's IP to a STUN server; the XOR-MAPPED-ADDRESS it returns is
//! what goes into Via, Contact and SDP on that zone.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;
use stun_rs::attributes::stun::XorMappedAddress;
use stun_rs::methods::BINDING;
use stun_rs::{MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder};

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Socket trouble.
    #[error("STUN socket: {0}")]
    Io(#[from] std::io::Error),
    /// No (valid) answer in time.
    #[error("no STUN answer from {0}")]
    NoAnswer(SocketAddr),
}

/// Asks `server` which address packets from `local_ip` arrive from (blocking, bounded by
/// `timeout`, two attempts).
pub fn discover(
    local_ip: IpAddr,
    server: SocketAddr,
    timeout: Duration,
) -> Result<IpAddr, DiscoveryError> {
    let sock = UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
    sock.set_read_timeout(Some(timeout / 2))?;
    let req = StunMessageBuilder::new(BINDING, MessageClass::Request).build();
    let mut out = vec![0u8; 64];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut out, &req)
        .map_err(|_| DiscoveryError::NoAnswer(server))?;
    let mut buf = [0u8; 512];
    for _ in 0..2 {
        sock.send_to(&out[..n], server)?;
        let Ok((len, from)) = sock.recv_from(&mut buf) else { continue };
        if from != server {
            continue;
        }
        let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(&buf[..len]) else {
            continue;
        };
        if msg.transaction_id() != req.transaction_id()
            || msg.class() != MessageClass::SuccessResponse
        {
            continue;
        }
        if let Some(addr) =
            msg.get::<XorMappedAddress>().and_then(|a| a.as_xor_mapped_address().ok())
        {
            return Ok(addr.socket_address().ip());
        }
    }
    Err(DiscoveryError::NoAnswer(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_mapped_address_from_a_stun_server() {
        // sipborder's own SIP-port STUN responder plays the server.
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = server.local_addr().expect("addr");
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..2 {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    if let Some(r) = crate::nat::stun_responder::binding_response(&buf[..n], from) {
                        let _ = server.send_to(&r, from);
                        return;
                    }
                }
            }
        });
        let ip = discover(
            "127.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
            addr,
            Duration::from_secs(2),
        )
        .expect("an answer");
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
        let _ = t.join();
    }

    #[test]
    fn a_silent_server_is_an_error_within_the_timeout() {
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let t0 = std::time::Instant::now();
        let r = discover(
            "127.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
            silent.local_addr().expect("addr"),
            Duration::from_millis(400),
        );
        assert!(r.is_err());
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
