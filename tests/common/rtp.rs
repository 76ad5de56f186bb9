//! RTP for end-to-end media tests: packets whose payload names their stream and sequence, and
//! receiving with the source kept, so a test can tell exactly what crossed the relay and from
//! which of its ports.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The RTP address an SDP names: the `c=` address and the first `m=audio` port.
pub fn media_addr(sdp: &str) -> SocketAddr {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c= in\n{sdp}"));
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no m=audio in\n{sdp}"));
    SocketAddr::new(ip.trim().parse().expect("c= address"), port)
}

/// A 172-byte RTP packet: 12-byte header, 160 bytes of payload whose first eight bytes name the
/// stream and the packet, so the receiver can tell exactly which payload it got.
pub fn rtp_packet(pt: u8, seq: u16, ssrc: u32, stream: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(172);
    p.push(0x80);
    p.push(pt);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&stream.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).to_be_bytes());
    p.extend((0..152u32).map(|i| (i as u8) ^ (seq as u8) ^ (stream as u8)));
    p
}

/// The payload after the 12-byte header.
pub fn payload(packet: &[u8]) -> &[u8] {
    packet.get(12..).unwrap_or_default()
}

/// Packets `first..first + n` of a stream.
pub fn stream(pt: u8, ssrc: u32, id: u32, first: u16, n: u16) -> Vec<Vec<u8>> {
    (first..first + n).map(|seq| rtp_packet(pt, seq, ssrc, id)).collect()
}

/// Receives up to `n` datagrams (bounded by `within`), with their sources.
pub fn recv_n(sock: &UdpSocket, n: usize, within: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = sock.set_read_timeout(Some(left));
        match sock.recv_from(&mut buf) {
            Ok((len, from)) => out.push((buf[..len].to_vec(), from)),
            Err(_) => break,
        }
    }
    out
}

/// Reads whatever arrives within `within` (for "nothing arrives" checks).
pub fn drain(sock: &UdpSocket, within: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    recv_n(sock, usize::MAX, within)
}

/// Asserts the packets received are `sent`, in order, each from `relay` — sipborder's port that
/// was advertised toward the receiver — and so never straight from the other endpoint.
pub fn assert_relayed(
    got: &[(Vec<u8>, SocketAddr)],
    sent: &[Vec<u8>],
    relay: SocketAddr,
    what: &str,
) {
    assert_eq!(got.len(), sent.len(), "{what}: {} of {} packets arrived", got.len(), sent.len());
    for (i, ((g, from), s)) in got.iter().zip(sent).enumerate() {
        assert_eq!(*from, relay, "{what}: packet {i} came from {from}, not the relay port");
        assert_eq!(payload(g), payload(s), "{what}: payload {i} differs (order or content)");
        assert_eq!(g[1] & 0x7f, s[1] & 0x7f, "{what}: payload type of packet {i}");
    }
}
