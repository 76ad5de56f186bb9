//! RFC 3550 receive statistics (sequence-gap loss, A.1; interarrival jitter, A.8) and the
//! counters a worker publishes to readers.
//!
//! Each counter has exactly one writer, the worker that owns the stream, so it is bumped with a
//! plain load and store rather than a locked read-modify-write; readers on any thread see a value
//! at most one packet old.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

/// A.1: a forward jump larger than this is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
/// A.1: a backward step up to this is a late (reordered or duplicated) packet.
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// Receiver state for one RTP source, per RFC 3550 A.1 and A.8, owned by the worker.
#[derive(Debug, Default, Clone)]
pub(crate) struct RtpReceiver {
    ssrc: Option<u32>,
    max_seq: u16,
    /// Shifted count of sequence number wraps.
    cycles: u32,
    base_seq: u32,
    /// Only a second packet right after this one confirms a big jump (`SEQ_MOD + 1`: none).
    bad_seq: u32,
    received: u64,
    /// Loss of sources this stream carried before its current SSRC.
    lost_before: i64,
    /// Relative transit time of the previous packet (A.8), absent before the first.
    transit: Option<u32>,
    /// Interarrival jitter ×16, the A.8 integer form.
    jitter16: u32,
}

impl RtpReceiver {
    /// Accounts one RTP packet. `arrival` is the arrival time in timestamp units (any origin).
    #[inline]
    pub(crate) fn on_packet(&mut self, ssrc: u32, seq: u16, ts: u32, arrival: u32) {
        if self.ssrc != Some(ssrc) {
            // A new source (transfer, re-INVITE, SBC upstream switching media): its numbering
            // has nothing to do with the old one's.
            if self.ssrc.is_some() {
                self.lost_before += self.current_lost();
            }
            self.ssrc = Some(ssrc);
            self.init_seq(seq);
            self.transit = None;
        } else if !self.update_seq(seq) {
            return;
        }
        self.received += 1;

        let transit = arrival.wrapping_sub(ts);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J)/16, in ×16 fixed point (RFC 3550 A.8).
            self.jitter16 = self.jitter16.wrapping_add(d).wrapping_sub((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
    }

    /// A.1 `update_seq` without probation (latching already vetted the source). `false` means
    /// the packet is not counted.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= (SEQ_MOD - u32::from(MAX_MISORDER)) as u16 {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a jump: the sender restarted its numbering.
                self.lost_before += self.current_lost();
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // else: a duplicate or reordered packet, counted as received.
        true
    }

    fn current_lost(&self) -> i64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let extended_max = u64::from(self.cycles) + u64::from(self.max_seq);
        let expected = extended_max + 1 - u64::from(self.base_seq);
        expected as i64 - self.received as i64
    }

    /// Cumulative packets lost (A.3); negative when duplicates outnumber losses.
    pub(crate) fn lost(&self) -> i64 {
        self.lost_before + self.current_lost()
    }

    /// Interarrival jitter in timestamp units.
    pub(crate) fn jitter(&self) -> u32 {
        self.jitter16 >> 4
    }
}

/// Bumps a single-writer counter without a locked instruction.
#[inline]
pub(crate) fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
}

/// Counters for media received on one endpoint (one direction of a pair).
#[derive(Debug, Default)]
pub(crate) struct DirCounters {
    pub(crate) rtp_packets: AtomicU64,
    pub(crate) rtp_bytes: AtomicU64,
    pub(crate) rtcp_packets: AtomicU64,
    pub(crate) rtcp_bytes: AtomicU64,
    pub(crate) other_packets: AtomicU64,
    pub(crate) lost: AtomicI64,
    pub(crate) jitter: AtomicU32,
    /// Nanoseconds after the relay's epoch, plus one; 0 means never.
    pub(crate) last_packet: AtomicU64,
    pub(crate) last_rtp: AtomicU64,
    pub(crate) dropped_foreign: AtomicU64,
    pub(crate) dropped_unroutable: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) stun_answered: AtomicU64,
    pub(crate) stun_rejected: AtomicU64,
    /// Bit 32 set: bits 0..32 hold the current RTP SSRC.
    pub(crate) ssrc: AtomicU64,
    pub(crate) peer: AtomicPeer,
}

/// Everything known about one direction of a relayed stream.
///
/// `a_to_b` describes what leg A's remote sends: received on endpoint A, sent out of endpoint B.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectionStats {
    /// RTP packets accepted from the peer.
    pub packets: u64,
    /// RTP bytes (UDP payload) accepted from the peer.
    pub bytes: u64,
    /// RTCP packets accepted from the peer (RTCP pair, or rtcp-mux on the RTP pair).
    pub rtcp_packets: u64,
    /// RTCP bytes accepted from the peer.
    pub rtcp_bytes: u64,
    /// Accepted datagrams that are neither RTP nor RTCP (e.g. STUN without ICE, DTLS).
    pub other_packets: u64,
    /// Cumulative RTP packets lost (RFC 3550 A.3); negative if duplicates outnumber losses.
    pub lost: i64,
    /// Interarrival jitter (RFC 3550 A.8) in RTP timestamp units.
    pub jitter: u32,
    /// The same jitter in milliseconds at the side's configured clock rate.
    pub jitter_ms: f64,
    /// Clock rate used for `jitter_ms`.
    pub clock_rate: u32,
    /// When the last accepted packet (any kind) arrived.
    pub last_packet: Option<Instant>,
    /// When the last RTP packet arrived (what the media timeout watches).
    pub last_rtp: Option<Instant>,
    /// Time since `last_packet`, at the moment of the snapshot.
    pub idle: Option<Duration>,
    /// Packets from a source other than the latched peer: dropped (RTP injection, RTPBleed).
    pub dropped_foreign: u64,
    /// Accepted packets not forwarded because the other side has no destination yet.
    pub dropped_unroutable: u64,
    /// Datagrams dropped as malformed (truncated, unreadable source).
    pub dropped_invalid: u64,
    /// Forwarding sends the kernel refused.
    pub send_errors: u64,
    /// STUN binding requests answered with success.
    pub stun_answered: u64,
    /// STUN requests rejected (bad integrity, wrong username, malformed).
    pub stun_rejected: u64,
    /// The address media is accepted from and sent to on this side.
    pub peer: Option<SocketAddr>,
    /// SSRC of the RTP currently received.
    pub ssrc: Option<u32>,
}

impl DirectionStats {
    /// Jitter in milliseconds at another clock rate (e.g. when the payload type changed).
    pub fn jitter_ms_at(&self, clock_rate: u32) -> f64 {
        if clock_rate == 0 {
            return 0.0;
        }
        f64::from(self.jitter) * 1000.0 / f64::from(clock_rate)
    }
}

impl DirCounters {
    pub(crate) fn snapshot(&self, epoch: Instant, clock_rate: u32) -> DirectionStats {
        let at = |ns: u64| (ns != 0).then(|| epoch + Duration::from_nanos(ns - 1));
        let last_packet = at(self.last_packet.load(Relaxed));
        let ssrc = self.ssrc.load(Relaxed);
        let mut s = DirectionStats {
            packets: self.rtp_packets.load(Relaxed),
            bytes: self.rtp_bytes.load(Relaxed),
            rtcp_packets: self.rtcp_packets.load(Relaxed),
            rtcp_bytes: self.rtcp_bytes.load(Relaxed),
            other_packets: self.other_packets.load(Relaxed),
            lost: self.lost.load(Relaxed),
            jitter: self.jitter.load(Relaxed),
            jitter_ms: 0.0,
            clock_rate,
            last_packet,
            last_rtp: at(self.last_rtp.load(Relaxed)),
            idle: last_packet.map(|t| t.elapsed()),
            dropped_foreign: self.dropped_foreign.load(Relaxed),
            dropped_unroutable: self.dropped_unroutable.load(Relaxed),
            dropped_invalid: self.dropped_invalid.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            stun_answered: self.stun_answered.load(Relaxed),
            stun_rejected: self.stun_rejected.load(Relaxed),
            peer: self.peer.load(),
            ssrc: (ssrc >> 32 != 0).then_some(ssrc as u32),
        };
        s.jitter_ms = s.jitter_ms_at(clock_rate);
        s
    }
}

/// A socket address readable from any thread while the worker changes it (rarely: on latching),
/// as a seqlock over plain atomics.
#[derive(Debug, Default)]
pub(crate) struct AtomicPeer {
    seq: AtomicU32,
    /// [family | port << 16 | scope << 32, ip high, ip low]
    words: [AtomicU64; 3],
}

impl AtomicPeer {
    /// Writer side; only the owning worker calls it.
    pub(crate) fn store(&self, addr: Option<SocketAddr>) {
        let w = match addr {
            None => [0, 0, 0],
            Some(SocketAddr::V4(a)) => {
                [4 | u64::from(a.port()) << 16, u64::from(u32::from(*a.ip())), 0]
            }
            Some(SocketAddr::V6(a)) => {
                let ip = u128::from(*a.ip());
                [
                    6 | u64::from(a.port()) << 16 | u64::from(a.scope_id()) << 32,
                    (ip >> 64) as u64,
                    ip as u64,
                ]
            }
        };
        let s = self.seq.load(Relaxed);
        self.seq.store(s.wrapping_add(1), Relaxed);
        fence(Release);
        for (slot, v) in self.words.iter().zip(w) {
            slot.store(v, Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Release);
    }

    pub(crate) fn load(&self) -> Option<SocketAddr> {
        loop {
            let s1 = self.seq.load(Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let w: [u64; 3] = std::array::from_fn(|i| self.words[i].load(Relaxed));
            fence(Acquire);
            if self.seq.load(Relaxed) != s1 {
                continue;
            }
            let port = (w[0] >> 16) as u16;
            return match w[0] & 0xff {
                4 => Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(w[1] as u32), port))),
                6 => {
                    let ip = Ipv6Addr::from(u128::from(w[1]) << 64 | u128::from(w[2]));
                    Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, (w[0] >> 32) as u32)))
                }
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds packets at 20 ms spacing in an 8 kHz clock: arrival and timestamp advance alike.
    fn feed(rx: &mut RtpReceiver, seqs: &[u16]) {
        for &s in seqs {
            let ts = u32::from(s).wrapping_mul(160);
            rx.on_packet(0x1234, s, ts, ts.wrapping_add(1000));
        }
    }

    #[test]
    fn gap_is_loss_and_reorder_is_not() {
        let mut rx = RtpReceiver::default();
        feed(&mut rx, &[1, 2, 3, 6, 7]);
        assert_eq!(rx.lost(), 2);
        // 4 arrives late: one fewer lost.
        feed(&mut rx, &[4]);
        assert_eq!(rx.lost(), 1);
        assert_eq!(rx.jitter(), rx.jitter16 >> 4);
    }

    #[test]
    fn sequence_wrap() {
        let mut rx = RtpReceiver::default();
        feed(&mut rx, &[65533, 65534, 65535, 0, 2, 3]);
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn restart_after_big_jump_needs_two_packets() {
        let mut rx = RtpReceiver::default();
        feed(&mut rx, &[10, 11, 12]);
        feed(&mut rx, &[40000]);
        assert_eq!(rx.lost(), 0, "a lone jump is not counted");
        feed(&mut rx, &[40001, 40002]);
        assert_eq!(rx.lost(), 0);
        feed(&mut rx, &[40004]);
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn ssrc_change_keeps_earlier_loss() {
        let mut rx = RtpReceiver::default();
        feed(&mut rx, &[1, 3]);
        rx.on_packet(0x9999, 500, 0, 0);
        rx.on_packet(0x9999, 501, 160, 160);
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn jitter_a8_known_timing() {
        // 8 kHz, 20 ms packets; every other packet arrives 5 ms (40 units) late. |D| = 40 after
        // the first, so J converges to 40: J_n = J_{n-1} + (40 - J_{n-1})/16.
        let mut rx = RtpReceiver::default();
        let mut expect = 0.0f64;
        for i in 0..200u32 {
            let ts = i * 160;
            let arrival = ts + if i % 2 == 1 { 40 } else { 0 };
            rx.on_packet(7, i as u16, ts, arrival);
            if i > 0 {
                expect += (40.0 - expect) / 16.0;
            }
        }
        assert!((f64::from(rx.jitter()) - expect).abs() <= 1.0, "{} vs {expect}", rx.jitter());
        assert!(rx.jitter() >= 38);
    }

    #[test]
    fn atomic_peer_roundtrip() {
        let p = AtomicPeer::default();
        assert_eq!(p.load(), None);
        let a: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        p.store(Some(a));
        assert_eq!(p.load(), Some(a));
        let b: SocketAddr = "[2001:db8::5]:6000".parse().unwrap();
        p.store(Some(b));
        assert_eq!(p.load(), Some(b));
        p.store(None);
        assert_eq!(p.load(), None);
    }
}
