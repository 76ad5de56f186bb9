//! The per-direction rewrite the worker applies to forwarded RTP, in the receive buffer itself:
//! the payload type renumbered for the receiving leg, the sequence number shifted by the
//! packets sipborder added to (injected events) or took out of (events turned into SIP INFO)
//! the stream, so the receiver sees one gap-free sequence.
//!
//! A direction nobody configured costs one branch per packet.

use super::direction::{DirectionMedia, DtmfInjection};
use super::dtmf::{Detected, EventDetector, EventInjector};
use super::telephone_event::{payload_range, write_packet, TelephoneEvent, PACKET_LEN};
use std::time::Instant;

/// What to do with a packet after [`DirectionState::on_rtp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RtpAction {
    /// Forward the (possibly rewritten) buffer.
    Forward,
    /// Taken out of the stream (an event reported to signalling instead).
    Suppress,
}

/// The last packet this direction sent: where injected packets continue from.
#[derive(Debug, Clone, Copy)]
struct Position {
    ssrc: u32,
    /// Sequence number as sent (after the shift).
    seq: u16,
    ts: u32,
    at: Instant,
}

/// Rewrite and DTMF state of one direction, owned by the endpoint media arrives on.
#[derive(Debug, Default)]
pub(crate) struct DirectionState {
    cfg: DirectionMedia,
    /// Anything to do per packet: a renumbering, events to take out, injection possible, or a
    /// sequence shift left over from earlier events.
    active: bool,
    seq_shift: u16,
    pos: Option<Position>,
    detector: EventDetector,
    injector: EventInjector,
}

impl DirectionState {
    /// New instructions (offer/answer, re-INVITE). The sequence shift stays: the stream goes on.
    pub(crate) fn configure(&mut self, cfg: DirectionMedia) {
        self.cfg = cfg;
        self.update_active();
    }

    fn update_active(&mut self) {
        let c = &self.cfg;
        self.active = !c.payload_map.is_identity()
            || (c.events_to_signalling && !c.events_in.is_empty())
            || c.events_out.is_some()
            || self.seq_shift != 0;
    }

    /// Clock rate of the arriving events.
    pub(crate) fn events_in_clock(&self) -> u32 {
        if self.cfg.events_in_clock == 0 {
            8000
        } else {
            self.cfg.events_in_clock
        }
    }

    /// One RTP packet of this direction (at least 12 bytes: `classify` said RTP). Rewrites
    /// `data` in place; `emit` receives an event that finished.
    #[inline]
    pub(crate) fn on_rtp(
        &mut self,
        data: &mut [u8],
        ssrc: u32,
        seq: u16,
        ts: u32,
        now: Instant,
        emit: impl FnMut(Detected),
    ) -> RtpAction {
        if !self.active {
            return RtpAction::Forward;
        }
        let Some(pt) = data.get(1).map(|b| b & 0x7f) else { return RtpAction::Forward };
        if self.cfg.events_to_signalling && self.cfg.events_in.contains(pt) {
            let ev = payload_range(data).and_then(|r| data.get(r)).and_then(TelephoneEvent::decode);
            if let Some(ev) = ev {
                self.detector.feed(ssrc, ts, ev, now, emit);
            }
            // Later packets move down one so the receiver sees no gap where this one was.
            self.seq_shift = self.seq_shift.wrapping_sub(1);
            self.update_active();
            return RtpAction::Suppress;
        }
        let mapped = self.cfg.payload_map.get(pt);
        if let Some(b) = data.get_mut(1) {
            *b = (*b & 0x80) | mapped;
        }
        let out_seq = seq.wrapping_add(self.seq_shift);
        if self.seq_shift != 0 {
            if let Some(s) = data.get_mut(2..4) {
                s.copy_from_slice(&out_seq.to_be_bytes());
            }
        }
        self.note_sent(ssrc, out_seq, ts, now);
        RtpAction::Forward
    }

    fn note_sent(&mut self, ssrc: u32, seq: u16, ts: u32, at: Instant) {
        match &mut self.pos {
            // A late (reordered) packet must not move the position back: an injected packet
            // would reuse a sequence number already sent.
            Some(p) if p.ssrc == ssrc && (seq.wrapping_sub(p.seq) as i16) <= 0 => {}
            _ => self.pos = Some(Position { ssrc, seq, ts, at }),
        }
    }

    /// Silence reveals an event whose end packets were lost.
    pub(crate) fn expire_events(&mut self, now: Instant, emit: impl FnMut(Detected)) {
        if self.cfg.events_to_signalling {
            self.detector.expire(now, emit);
        }
    }

    /// Queues an event to inject; `false` when the receiving leg has no telephone-event format
    /// or the queue is full.
    pub(crate) fn inject(&mut self, inj: DtmfInjection) -> bool {
        self.cfg.events_out.is_some() && self.injector.push(inj)
    }

    /// Whether injected events are playing or queued.
    pub(crate) fn injecting(&self) -> bool {
        self.injector.is_busy()
    }

    /// When the next injected packet is due.
    pub(crate) fn next_injection(&self, now: Instant) -> Option<Instant> {
        self.injector.next_due(now)
    }

    /// The next injected packet due at `now`, written into `out`. It continues the stream:
    /// the SSRC last sent, the next sequence number (relayed packets shift up by one from here
    /// on), the event's timestamp the stream's current one. `fallback_ssrc` names the stream
    /// when no packet was sent yet.
    pub(crate) fn poll_injection(
        &mut self,
        now: Instant,
        fallback_ssrc: u32,
        out: &mut [u8; PACKET_LEN],
    ) -> bool {
        let Some(fmt) = self.cfg.events_out else { return false };
        let clock = fmt.clock_rate.max(1);
        let pos = self.pos;
        let stream_ts = || match pos {
            // Extrapolated: the stream may have been silent since its last packet.
            Some(p) => {
                let since = now.saturating_duration_since(p.at).as_micros() as u64;
                p.ts.wrapping_add((since * u64::from(clock) / 1_000_000) as u32)
            }
            None => 0,
        };
        let Some(pkt) = self.injector.poll(now, clock, stream_ts) else { return false };
        let (ssrc, seq) = match self.pos.as_mut() {
            Some(p) => {
                p.seq = p.seq.wrapping_add(1);
                (p.ssrc, p.seq)
            }
            None => {
                self.pos = Some(Position { ssrc: fallback_ssrc, seq: 1, ts: pkt.ts, at: now });
                (fallback_ssrc, 1)
            }
        };
        self.seq_shift = self.seq_shift.wrapping_add(1);
        self.update_active();
        write_packet(out, fmt.payload_type, pkt.marker, seq, pkt.ts, ssrc, &pkt.ev);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::direction::{EventFormat, PayloadMap, PayloadSet};
    use super::*;
    use std::time::Duration;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn seq_of(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[2], p[3]])
    }

    fn feed(
        d: &mut DirectionState,
        p: &mut [u8],
        now: Instant,
        got: &mut Vec<Detected>,
    ) -> RtpAction {
        let seq = seq_of(p);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        d.on_rtp(p, 0xabcd, seq, ts, now, |e| got.push(e))
    }

    #[test]
    fn unconfigured_direction_touches_nothing() {
        let mut d = DirectionState::default();
        let mut p = rtp(101, 7, 160, &[5, 0x8a, 0, 160]);
        let orig = p.clone();
        assert_eq!(feed(&mut d, &mut p, Instant::now(), &mut Vec::new()), RtpAction::Forward);
        assert_eq!(p, orig);
    }

    #[test]
    fn payload_types_are_renumbered_marker_kept() {
        let mut map = PayloadMap::identity();
        map.set(101, 96);
        let mut d = DirectionState::default();
        d.configure(DirectionMedia { payload_map: map, ..Default::default() });
        let mut ev = rtp(0x80 | 101, 1, 160, &[5, 10, 0, 160]);
        feed(&mut d, &mut ev, Instant::now(), &mut Vec::new());
        assert_eq!(ev[1], 0x80 | 96, "marker bit kept, PT renumbered");
        let mut audio = rtp(0, 2, 320, &[0xff; 160]);
        feed(&mut d, &mut audio, Instant::now(), &mut Vec::new());
        assert_eq!(audio[1], 0);
        assert_eq!(seq_of(&audio), 2, "no shift without events");
    }

    fn to_signalling() -> DirectionState {
        let mut events_in = PayloadSet::default();
        events_in.insert(101);
        let mut d = DirectionState::default();
        d.configure(DirectionMedia { events_in, events_to_signalling: true, ..Default::default() });
        d
    }

    #[test]
    fn events_taken_out_are_reported_and_later_packets_close_the_gap() {
        let mut d = to_signalling();
        let now = Instant::now();
        let mut got = Vec::new();
        let mut seq = 100u16;
        let mut next = |pt: u8, payload: &[u8]| {
            seq += 1;
            rtp(pt, seq, 8000, payload)
        };
        let mut a = next(0, &[0; 160]);
        assert_eq!(feed(&mut d, &mut a, now, &mut got), RtpAction::Forward);
        for (end, dur) in [(false, 160u16), (false, 320), (true, 480), (true, 480), (true, 480)] {
            let e = if end { 0x80 | 10 } else { 10 };
            let [d0, d1] = dur.to_be_bytes();
            let mut p = next(101, &[9, e, d0, d1]);
            assert_eq!(feed(&mut d, &mut p, now, &mut got), RtpAction::Suppress);
        }
        assert_eq!(got, vec![Detected { event: 9, duration: 480 }]);
        let mut b = next(0, &[0; 160]);
        assert_eq!(seq_of(&b), 107);
        assert_eq!(feed(&mut d, &mut b, now, &mut got), RtpAction::Forward);
        assert_eq!(seq_of(&b), 102, "five packets taken out: the next audio follows 101");
    }

    #[test]
    fn a_truncated_event_packet_is_still_taken_out_without_panic() {
        let mut d = to_signalling();
        let mut got = Vec::new();
        for payload in [&[][..], &[1][..], &[1, 2, 3][..]] {
            let mut p = rtp(101, 1, 0, payload);
            assert_eq!(feed(&mut d, &mut p, Instant::now(), &mut got), RtpAction::Suppress);
        }
        assert!(got.is_empty());
    }

    #[test]
    fn injected_packets_continue_the_stream_and_shift_what_follows() {
        let mut d = DirectionState::default();
        d.configure(DirectionMedia {
            events_out: Some(EventFormat { payload_type: 96, clock_rate: 8000 }),
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut a = rtp(0, 500, 80_000, &[0; 160]);
        feed(&mut d, &mut a, t0, &mut got);
        assert!(d.inject(DtmfInjection {
            event: 5,
            duration: Duration::from_millis(100),
            volume: 10
        }));
        // 20 ms after the last audio packet: the event's timestamp is the stream's now.
        let t1 = t0 + Duration::from_millis(20);
        let mut out = [0u8; PACKET_LEN];
        assert!(d.poll_injection(t1, 1, &mut out));
        assert_eq!(out[1], 0x80 | 96, "marker on the first packet, the leg's PT");
        assert_eq!(seq_of(&out), 501);
        assert_eq!(u32::from_be_bytes([out[4], out[5], out[6], out[7]]), 80_160);
        assert_eq!(u32::from_be_bytes([out[8], out[9], out[10], out[11]]), 0xabcd);
        assert!(!d.poll_injection(t1, 1, &mut out), "next update not due yet");
        // Audio in between gets the next number.
        let mut b = rtp(0, 501, 80_320, &[0; 160]);
        feed(&mut d, &mut b, t1, &mut got);
        assert_eq!(seq_of(&b), 502);
        let mut seqs = Vec::new();
        let mut t = t1;
        while d.injecting() {
            t += Duration::from_millis(10);
            while d.poll_injection(t, 1, &mut out) {
                seqs.push(seq_of(&out));
                assert_eq!(out[1] & 0x80, 0, "marker only on the first");
            }
        }
        // One more update and three end packets.
        assert_eq!(seqs, vec![503, 504, 505, 506]);
        let mut c = rtp(0, 502, 80_480, &[0; 160]);
        feed(&mut d, &mut c, t, &mut got);
        assert_eq!(seq_of(&c), 507, "every injected packet shifted the stream by one");
        // A late audio packet does not pull the injection point back.
        let mut late = rtp(0, 499, 79_840, &[0; 160]);
        feed(&mut d, &mut late, t, &mut got);
        d.inject(DtmfInjection { event: 1, duration: Duration::from_millis(40), volume: 10 });
        assert!(d.poll_injection(t, 1, &mut out));
        assert_eq!(seq_of(&out), 508);
    }

    #[test]
    fn no_injection_without_a_telephone_event_format() {
        let mut d = DirectionState::default();
        let inj = DtmfInjection { event: 1, duration: Duration::from_millis(100), volume: 10 };
        assert!(!d.inject(inj));
        let mut out = [0u8; PACKET_LEN];
        assert!(!d.poll_injection(Instant::now(), 1, &mut out));
    }

    #[test]
    fn injection_before_any_audio_uses_the_fallback_ssrc() {
        let mut d = DirectionState::default();
        d.configure(DirectionMedia {
            events_out: Some(EventFormat { payload_type: 101, clock_rate: 8000 }),
            ..Default::default()
        });
        d.inject(DtmfInjection { event: 1, duration: Duration::from_millis(40), volume: 10 });
        let mut out = [0u8; PACKET_LEN];
        let t = Instant::now();
        assert!(d.poll_injection(t, 0x5151, &mut out));
        assert_eq!(u32::from_be_bytes([out[8], out[9], out[10], out[11]]), 0x5151);
        let first = seq_of(&out);
        assert!(d.poll_injection(t + Duration::from_millis(50), 0x5151, &mut out));
        assert_eq!(seq_of(&out), first.wrapping_add(1));
    }
}
