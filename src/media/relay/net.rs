//! Socket addresses in the kernel's layout, and relay socket preparation.
//!
//! The hot loop hands the kernel addresses by pointer (`msg_name`, the SQE's `addr2`), so the
//! destination of every endpoint is kept pre-encoded; decoding a received `sockaddr` is plain byte
//! reading, with no allocation and no `unsafe`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};

/// Expedited Forwarding (DSCP 46) in the TOS / traffic-class byte.
pub(crate) const DSCP_EF_TOS: u32 = 0xb8;

const SIN_LEN: usize = 16;
const SIN6_LEN: usize = 28;
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// A `sockaddr_in` or `sockaddr_in6`, byte-encoded, aligned so the kernel may read it in place.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub(crate) struct RawAddr {
    bytes: [u8; SIN6_LEN],
    len: u32,
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawAddr({:?})", self.to_socket_addr())
    }
}

impl RawAddr {
    /// No address: the endpoint has no destination yet.
    pub(crate) const NONE: RawAddr = RawAddr { bytes: [0; SIN6_LEN], len: 0 };

    /// Capacity the kernel may fill when receiving a source address.
    pub(crate) const CAPACITY: u32 = SIN6_LEN as u32;

    /// Encodes `addr` for the kernel.
    pub(crate) fn new(addr: SocketAddr) -> RawAddr {
        let mut bytes = [0u8; SIN6_LEN];
        match addr {
            SocketAddr::V4(a) => {
                bytes[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
                bytes[2..4].copy_from_slice(&a.port().to_be_bytes());
                bytes[4..8].copy_from_slice(&a.ip().octets());
                RawAddr { bytes, len: SIN_LEN as u32 }
            }
            SocketAddr::V6(a) => {
                bytes[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
                bytes[2..4].copy_from_slice(&a.port().to_be_bytes());
                bytes[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                bytes[8..24].copy_from_slice(&a.ip().octets());
                bytes[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
                RawAddr { bytes, len: SIN6_LEN as u32 }
            }
        }
    }

    /// Encodes an optional destination; `None` becomes [`RawAddr::NONE`].
    pub(crate) fn from_opt(addr: Option<SocketAddr>) -> RawAddr {
        addr.map_or(RawAddr::NONE, RawAddr::new)
    }

    /// Whether there is no address.
    pub(crate) fn is_none(&self) -> bool {
        self.len == 0
    }

    /// Pointer for `msg_name` / `sendto`.
    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        self.bytes.as_ptr().cast()
    }

    /// Length for `msg_namelen` / `sendto`.
    pub(crate) fn socklen(&self) -> libc::socklen_t {
        self.len
    }

    /// Mutable pointer for the kernel to write a received source address into.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.bytes.as_mut_ptr().cast()
    }

    /// The address the kernel wrote, `len` bytes of it.
    pub(crate) fn decode_received(&self, len: u32) -> Option<SocketAddr> {
        decode(&self.bytes[..(len as usize).min(SIN6_LEN)])
    }

    /// Back to a std address.
    pub(crate) fn to_socket_addr(self) -> Option<SocketAddr> {
        decode(&self.bytes[..self.len as usize])
    }
}

/// Decodes a kernel `sockaddr` (v4 or v6). A v4-mapped v6 source becomes plain v4, so a dual-stack
/// socket compares sources with the IPv4 addresses SDP names.
pub(crate) fn decode(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < 2 {
        return None;
    }
    match u16::from_ne_bytes([name[0], name[1]]) {
        AF_INET if name.len() >= 8 => {
            let port = u16::from_be_bytes([name[2], name[3]]);
            let ip = Ipv4Addr::new(name[4], name[5], name[6], name[7]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 if name.len() >= SIN6_LEN => {
            let port = u16::from_be_bytes([name[2], name[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&name[8..24]);
            let ip = Ipv6Addr::from(octets);
            if let Some(v4) = ip.to_ipv4_mapped() {
                return Some(SocketAddr::V4(SocketAddrV4::new(v4, port)));
            }
            let flow = u32::from_be_bytes([name[4], name[5], name[6], name[7]]);
            let scope = u32::from_ne_bytes([name[24], name[25], name[26], name[27]]);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
        }
        _ => None,
    }
}

/// Readies a caller-bound socket for the relay: non-blocking, DSCP EF.
pub(crate) fn prepare_socket(sock: &UdpSocket) -> io::Result<SocketAddr> {
    sock.set_nonblocking(true)?;
    let local = sock.local_addr()?;
    let s = socket2::SockRef::from(sock);
    match local {
        SocketAddr::V4(_) => s.set_tos(DSCP_EF_TOS)?,
        SocketAddr::V6(_) => {
            s.set_tclass_v6(DSCP_EF_TOS)?;
            // A dual-stack socket also sends IPv4 (v4-mapped peers); that traffic takes its
            // marking from IP_TOS. An IPv6-only socket refuses the option, which is fine.
            let _ = s.set_tos(DSCP_EF_TOS);
        }
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_v4_v6_and_mapped() {
        let v4: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        assert_eq!(RawAddr::new(v4).to_socket_addr(), Some(v4));
        let v6: SocketAddr = "[2001:db8::1]:5004".parse().unwrap();
        assert_eq!(RawAddr::new(v6).to_socket_addr(), Some(v6));
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
        assert_eq!(RawAddr::new(mapped).to_socket_addr(), Some(v4));
        assert!(RawAddr::NONE.is_none());
        assert_eq!(RawAddr::NONE.to_socket_addr(), None);
    }
}
