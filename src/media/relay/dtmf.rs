//! RFC 4733 event state machines of one relayed direction, both owned by the worker thread and
//! free of allocation:
//!
//! - [`EventDetector`] follows the events arriving in a stream (a new event is a new timestamp;
//!   its end is the first packet with the E bit) and reports each finished event once, however
//!   many end packets were retransmitted. An event whose end packets were all lost is reported
//!   when the next event starts or when it has been silent too long.
//! - [`EventInjector`] plays events the signalling side asked for as RFC 4733 §2.5.1 says a
//!   sender does: one timestamp (the event's start) in every packet of the event; the first
//!   packet with the marker bit and each following one an update every [`UPDATE_INTERVAL`] with
//!   the duration so far; the final packet, E bit set, [`END_PACKETS`] times (§2.5.1.4), each
//!   with a new sequence number. An event longer than the 16-bit duration field (0xFFFF units:
//!   8.2 s at 8 kHz, 1.4 s at 48 kHz) goes out in segments (§2.5.1.3): a segment ends with an
//!   update of duration 0xFFFF without the E bit, and the next starts at timestamp + 0xFFFF with
//!   its duration counted from there; only the last segment ends with E, and only the event's
//!   first packet carries the marker. A flash (event 16) is not a tone: its volume is 0.
//!
//! The detector joins such segments back into one event (§2.5.2.3).

use super::direction::DtmfInjection;
use super::telephone_event::TelephoneEvent;
use std::time::{Duration, Instant};

/// Interval between the packets of an injected event.
pub(crate) const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// How often the final packet of an injected event is sent.
pub(crate) const END_PACKETS: u8 = 3;
/// Injections waiting while one plays; more are dropped (a person keys a few digits a second).
pub(crate) const QUEUE: usize = 8;
/// A detected event without an end packet for this long is reported as it stands.
pub(crate) const DETECT_IDLE: Duration = Duration::from_millis(800);

/// A finished event taken out of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    pub(crate) event: u8,
    /// In RTP timestamp units of the stream's event clock.
    pub(crate) duration: u32,
}

/// The largest duration one packet can state: where a long event's segment ends.
pub(crate) const SEGMENT: u32 = u16::MAX as u32;

/// Flash (RFC 4734 §3.2): a signal, not a tone, so it has no power level.
const FLASH: u8 = 16;

#[derive(Debug, Clone, Copy)]
struct Tracked {
    ssrc: u32,
    ts: u32,
    event: u8,
    /// Units of the segments before the current one (long events, §2.5.2.3).
    earlier: u32,
    duration: u32,
    ended: bool,
    seen: Instant,
}

impl Tracked {
    fn total(&self) -> u32 {
        self.earlier.saturating_add(self.duration)
    }

    /// Whether a packet at `ts` continues this event as its next segment: the current segment
    /// reached the largest duration and the new one starts where it ended.
    fn next_segment(&self, ssrc: u32, ts: u32, event: u8) -> bool {
        !self.ended
            && self.ssrc == ssrc
            && self.event == event
            && self.duration == SEGMENT
            && ts == self.ts.wrapping_add(SEGMENT)
    }
}

/// Follows the telephone-events of one direction.
#[derive(Debug, Default)]
pub(crate) struct EventDetector {
    cur: Option<Tracked>,
}

impl EventDetector {
    /// One event packet (`ts`: its RTP timestamp, the event's start).
    pub(crate) fn feed(
        &mut self,
        ssrc: u32,
        ts: u32,
        ev: TelephoneEvent,
        now: Instant,
        mut emit: impl FnMut(Detected),
    ) {
        let same = self.cur.as_ref().is_some_and(|c| c.ssrc == ssrc && c.ts == ts);
        let segment = self.cur.as_ref().is_some_and(|c| c.next_segment(ssrc, ts, ev.event));
        if segment {
            if let Some(c) = self.cur.as_mut() {
                c.earlier = c.total();
                c.ts = ts;
                c.duration = 0;
            }
        } else if !same {
            if let Some(prev) = self.cur.take().filter(|c| !c.ended) {
                // The previous event's end packets were all lost: it ended when this began.
                emit(Detected { event: prev.event, duration: prev.total() });
            }
            self.cur = Some(Tracked {
                ssrc,
                ts,
                event: ev.event,
                earlier: 0,
                duration: 0,
                ended: false,
                seen: now,
            });
        }
        let Some(c) = self.cur.as_mut() else { return };
        c.seen = now;
        if c.ended {
            // A retransmitted end packet: already reported.
            return;
        }
        c.duration = c.duration.max(u32::from(ev.duration));
        if ev.end {
            c.ended = true;
            emit(Detected { event: c.event, duration: c.total() });
        }
    }

    /// Reports an event that stopped without an end packet for `DETECT_IDLE`.
    pub(crate) fn expire(&mut self, now: Instant, mut emit: impl FnMut(Detected)) {
        if let Some(c) = self.cur.as_mut() {
            if !c.ended && now.saturating_duration_since(c.seen) >= DETECT_IDLE {
                c.ended = true;
                emit(Detected { event: c.event, duration: c.total() });
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Playing {
    event: u8,
    volume: u8,
    /// Timestamp of the current segment (the event's start in the first).
    ts: u32,
    /// Total duration and update interval in timestamp units.
    total: u32,
    step_units: u32,
    /// Updates sent.
    step: u32,
    /// Units the updates sent so far cover, from the event's start.
    covered: u32,
    /// Where the current segment starts, in units from the event's start.
    segment_start: u32,
    /// Nothing sent yet: the next packet carries the marker.
    first: bool,
    ends: u8,
    next: Instant,
}

/// One packet of an injected event, ready to be given a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Injected {
    pub(crate) ev: TelephoneEvent,
    /// First packet of the event (RTP marker bit).
    pub(crate) marker: bool,
    /// The event's timestamp (its start, the same in every packet of the event).
    pub(crate) ts: u32,
}

/// Plays queued events into one direction.
#[derive(Debug, Default)]
pub(crate) struct EventInjector {
    queue: [Option<DtmfInjection>; QUEUE],
    head: usize,
    len: usize,
    cur: Option<Playing>,
}

impl EventInjector {
    /// Queues an event; `false` when the queue is full (the event is dropped).
    pub(crate) fn push(&mut self, inj: DtmfInjection) -> bool {
        if self.len == QUEUE {
            return false;
        }
        self.queue[(self.head + self.len) % QUEUE] = Some(inj);
        self.len += 1;
        true
    }

    /// Whether anything is playing or queued.
    pub(crate) fn is_busy(&self) -> bool {
        self.cur.is_some() || self.len > 0
    }

    /// When the next packet is due (`None`: idle; a queued event is due at once).
    pub(crate) fn next_due(&self, now: Instant) -> Option<Instant> {
        match &self.cur {
            Some(p) => Some(p.next),
            None if self.len > 0 => Some(now),
            None => None,
        }
    }

    fn pop(&mut self) -> Option<DtmfInjection> {
        if self.len == 0 {
            return None;
        }
        let v = self.queue[self.head].take();
        self.head = (self.head + 1) % QUEUE;
        self.len -= 1;
        v
    }

    /// The next packet due at `now`, if any. `clock` is the receiving leg's event clock rate;
    /// `stream_ts` gives the stream's current timestamp when an event starts.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        clock: u32,
        stream_ts: impl FnOnce() -> u32,
    ) -> Option<Injected> {
        if self.cur.is_none() {
            let inj = self.pop()?;
            let clock = u64::from(clock.max(1));
            let units = |d: Duration| {
                u32::try_from(d.as_micros() as u64 * clock / 1_000_000).unwrap_or(u32::MAX)
            };
            self.cur = Some(Playing {
                event: inj.event,
                volume: if inj.event == FLASH { 0 } else { inj.volume.min(63) },
                ts: stream_ts(),
                total: units(inj.duration),
                step_units: units(UPDATE_INTERVAL).max(1),
                step: 0,
                covered: 0,
                segment_start: 0,
                first: true,
                ends: 0,
                next: now,
            });
        }
        let p = self.cur.as_mut()?;
        if now < p.next {
            return None;
        }
        p.next += UPDATE_INTERVAL;
        let marker = std::mem::replace(&mut p.first, false);
        let ts = p.ts;
        if p.covered < p.total {
            // On the update grid (a capped segment end does not delay the updates after it).
            p.step += 1;
            let covered = p.step.saturating_mul(p.step_units).min(p.total);
            // A segment states at most 0xFFFF units: its last update says exactly that, and
            // the next update opens the following segment 0xFFFF later (§2.5.1.3).
            let covered = covered.min(p.segment_start.saturating_add(SEGMENT));
            let duration = (covered - p.segment_start) as u16;
            p.covered = covered;
            if covered - p.segment_start == SEGMENT && covered < p.total {
                p.segment_start = covered;
                p.ts = p.ts.wrapping_add(SEGMENT);
            }
            let ev = TelephoneEvent { event: p.event, end: false, volume: p.volume, duration };
            return Some(Injected { ev, marker, ts });
        }
        p.ends += 1;
        let duration = (p.total - p.segment_start).min(SEGMENT) as u16;
        let ev = TelephoneEvent { event: p.event, end: true, volume: p.volume, duration };
        if p.ends >= END_PACKETS {
            self.cur = None;
        }
        Some(Injected { ev, marker, ts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent { event, end, volume: 10, duration }
    }

    fn detect(packets: &[(u32, TelephoneEvent, u64)]) -> Vec<Detected> {
        let t0 = Instant::now();
        let mut d = EventDetector::default();
        let mut out = Vec::new();
        for (ts, ev, ms) in packets {
            d.feed(7, *ts, *ev, t0 + Duration::from_millis(*ms), |x| out.push(x));
        }
        out
    }

    #[test]
    fn detector_reports_each_event_once_at_its_end() {
        let got = detect(&[
            (1000, te(9, false, 160), 0),
            (1000, te(9, false, 320), 20),
            (1000, te(9, false, 800), 80),
            (1000, te(9, true, 960), 100),
            (1000, te(9, true, 960), 120),
            (1000, te(9, true, 960), 140),
            (5000, te(1, false, 160), 600),
            (5000, te(1, true, 400), 650),
        ]);
        assert_eq!(
            got,
            vec![Detected { event: 9, duration: 960 }, Detected { event: 1, duration: 400 }]
        );
    }

    #[test]
    fn detector_recovers_lost_end_packets() {
        // Event 4's end packets are all lost; the next event reveals it ended.
        let got = detect(&[
            (1000, te(4, false, 400), 0),
            (1000, te(4, false, 800), 50),
            (3000, te(5, true, 480), 300),
        ]);
        assert_eq!(
            got,
            vec![Detected { event: 4, duration: 800 }, Detected { event: 5, duration: 480 }]
        );
        // Or silence does.
        let t0 = Instant::now();
        let mut d = EventDetector::default();
        let mut out = Vec::new();
        d.feed(1, 10, te(2, false, 320), t0, |x| out.push(x));
        d.expire(t0 + DETECT_IDLE / 2, |x| out.push(x));
        assert!(out.is_empty(), "still pressed");
        d.expire(t0 + DETECT_IDLE, |x| out.push(x));
        d.expire(t0 + DETECT_IDLE * 3, |x| out.push(x));
        assert_eq!(out, vec![Detected { event: 2, duration: 320 }]);
        // A late end packet of the expired event is not a second event.
        d.feed(1, 10, te(2, true, 400), t0 + DETECT_IDLE * 3, |x| out.push(x));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn detector_tells_reordered_and_duplicate_updates_apart_from_new_events() {
        // An older update arriving late does not shorten the event; the same timestamp from
        // another source is another event.
        let t0 = Instant::now();
        let mut d = EventDetector::default();
        let mut out = Vec::new();
        d.feed(1, 10, te(3, false, 800), t0, |x| out.push(x));
        d.feed(1, 10, te(3, false, 400), t0, |x| out.push(x));
        d.feed(1, 10, te(3, true, 800), t0, |x| out.push(x));
        d.feed(2, 10, te(6, true, 160), t0, |x| out.push(x));
        assert_eq!(
            out,
            vec![Detected { event: 3, duration: 800 }, Detected { event: 6, duration: 160 }]
        );
    }

    /// Runs an injector to completion, polling every millisecond of fake time.
    fn play(inj: &mut EventInjector, t0: Instant) -> Vec<(u64, Injected)> {
        let mut out = Vec::new();
        for ms in 0..5_000u64 {
            let now = t0 + Duration::from_millis(ms);
            while let Some(p) = inj.poll(now, 8000, || 42_000 + ms as u32 * 8) {
                out.push((ms, p));
            }
            if !inj.is_busy() {
                break;
            }
        }
        out
    }

    #[test]
    fn injector_plays_updates_then_three_end_packets() {
        let t0 = Instant::now();
        let mut inj = EventInjector::default();
        assert!(inj.push(DtmfInjection {
            event: 5,
            duration: Duration::from_millis(200),
            volume: 10
        }));
        assert_eq!(inj.next_due(t0), Some(t0));
        let got = play(&mut inj, t0);
        let summary: Vec<(u64, u16, bool, bool)> =
            got.iter().map(|(ms, p)| (*ms, p.ev.duration, p.ev.end, p.marker)).collect();
        assert_eq!(
            summary,
            vec![
                (0, 400, false, true),
                (50, 800, false, false),
                (100, 1200, false, false),
                (150, 1600, false, false),
                (200, 1600, true, false),
                (250, 1600, true, false),
                (300, 1600, true, false),
            ]
        );
        assert!(got.iter().all(|(_, p)| p.ts == 42_000 && p.ev.event == 5 && p.ev.volume == 10));
        assert_eq!(inj.next_due(t0), None);
    }

    #[test]
    fn injector_queues_events_and_gives_each_its_own_timestamp() {
        let t0 = Instant::now();
        let mut inj = EventInjector::default();
        for event in [1, 2] {
            assert!(inj.push(DtmfInjection {
                event,
                duration: Duration::from_millis(100),
                volume: 10
            }));
        }
        let got = play(&mut inj, t0);
        let events: Vec<(u8, u32, bool)> =
            got.iter().map(|(_, p)| (p.ev.event, p.ts, p.ev.end)).collect();
        // 100 ms: two updates and three end packets each; the second starts as the first ends.
        assert_eq!(events.len(), 10);
        assert!(events[..5].iter().all(|e| e.0 == 1 && e.1 == 42_000));
        assert!(events[5..].iter().all(|e| e.0 == 2 && e.1 > 42_000));
        assert_eq!(events.iter().filter(|e| e.2).count(), 6);
    }

    #[test]
    fn injector_queue_is_bounded_and_durations_clamped() {
        let mut inj = EventInjector::default();
        let long = DtmfInjection { event: 0, duration: Duration::from_secs(60), volume: 10 };
        for _ in 0..QUEUE {
            assert!(inj.push(long));
        }
        assert!(!inj.push(long), "a full queue refuses");
        let t0 = Instant::now();
        let first = inj.poll(t0, 8000, || 0).expect("first packet");
        assert_eq!(first.ev.duration, 400);
        // A zero-length press still produces a well-formed (end-only) event.
        let mut inj = EventInjector::default();
        inj.push(DtmfInjection { event: 3, duration: Duration::ZERO, volume: 10 });
        let got = play(&mut inj, t0);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(_, p)| p.ev.end && p.ev.duration == 0));
        assert!(got[0].1.marker, "the first packet of an event carries the marker");
    }

    /// Runs an injector at `clock` to completion, polling every millisecond of fake time.
    fn play_at(inj: &mut EventInjector, t0: Instant, clock: u32) -> Vec<(u64, Injected)> {
        let mut out = Vec::new();
        for ms in 0..20_000u64 {
            let now = t0 + Duration::from_millis(ms);
            while let Some(p) = inj.poll(now, clock, || 1_000) {
                out.push((ms, p));
            }
            if !inj.is_busy() {
                break;
            }
        }
        out
    }

    #[test]
    fn long_events_are_segmented_at_the_largest_duration() {
        // 2 s at 48 kHz is 96000 units: one full segment of 0xFFFF, then 30465 more.
        let t0 = Instant::now();
        let mut inj = EventInjector::default();
        inj.push(DtmfInjection { event: 0, duration: Duration::from_secs(2), volume: 10 });
        let got = play_at(&mut inj, t0, 48_000);
        let first: Vec<&Injected> = got.iter().map(|(_, p)| p).filter(|p| p.ts == 1_000).collect();
        let second: Vec<&Injected> =
            got.iter().map(|(_, p)| p).filter(|p| p.ts == 1_000 + SEGMENT).collect();
        assert_eq!(first.len() + second.len(), got.len(), "two timestamps only");
        let last_of_first = first.last().expect("a first segment");
        assert_eq!((last_of_first.ev.duration, last_of_first.ev.end), (u16::MAX, false));
        assert!(first.iter().all(|p| !p.ev.end), "only the last segment ends");
        let durations: Vec<u16> = first.iter().map(|p| p.ev.duration).collect();
        assert!(durations.windows(2).all(|w| w[0] < w[1]), "{durations:?}");
        assert_eq!(second[0].ev.duration, (29 * 2400 - SEGMENT) as u16, "back on the 50 ms grid");
        let ends: Vec<u16> = second.iter().filter(|p| p.ev.end).map(|p| p.ev.duration).collect();
        assert_eq!(ends, [30465; 3], "96000 - 65535");
        assert_eq!(got.iter().filter(|(_, p)| p.marker).count(), 1);
        assert!(got[0].1.marker);
        // Updates every 50 ms across the boundary; 40 updates, then three ends.
        assert_eq!(got.len(), 40 + 3);
        assert!(got.windows(2).all(|w| w[1].0 - w[0].0 == 50));
        // The detector on the other side puts the segments back together.
        let mut d = EventDetector::default();
        let mut out = Vec::new();
        for (ms, p) in &got {
            d.feed(9, p.ts, p.ev, t0 + Duration::from_millis(*ms), |x| out.push(x));
        }
        assert_eq!(out, vec![Detected { event: 0, duration: 96_000 }]);
    }

    #[test]
    fn an_event_ending_on_a_segment_boundary_needs_no_second_segment() {
        let t0 = Instant::now();
        let mut inj = EventInjector::default();
        // 65535 units at 8 kHz: 8191.875 ms.
        inj.push(DtmfInjection {
            event: 1,
            duration: Duration::from_micros(8_191_875),
            volume: 10,
        });
        let got = play_at(&mut inj, t0, 8000);
        assert!(got.iter().all(|(_, p)| p.ts == 1_000));
        let ends: Vec<u16> =
            got.iter().filter(|(_, p)| p.ev.end).map(|(_, p)| p.ev.duration).collect();
        assert_eq!(ends, [u16::MAX; 3]);
    }

    #[test]
    fn flash_has_no_volume_and_volume_stays_in_range() {
        let t0 = Instant::now();
        let mut inj = EventInjector::default();
        inj.push(DtmfInjection { event: 16, duration: Duration::from_millis(100), volume: 10 });
        inj.push(DtmfInjection { event: 3, duration: Duration::from_millis(100), volume: 200 });
        let got = play_at(&mut inj, t0, 8000);
        assert!(got.iter().filter(|(_, p)| p.ev.event == 16).all(|(_, p)| p.ev.volume == 0));
        assert!(got.iter().filter(|(_, p)| p.ev.event == 3).all(|(_, p)| p.ev.volume == 63));
        // Each event's first packet, and only it, carries the marker.
        let markers: Vec<u8> =
            got.iter().filter(|(_, p)| p.marker).map(|(_, p)| p.ev.event).collect();
        assert_eq!(markers, [16, 3]);
    }

    #[test]
    fn detector_does_not_join_what_is_not_a_next_segment() {
        // A new timestamp 0xFFFF later but after a short segment, or another key: new events.
        let got = detect(&[
            (1000, te(4, false, 800), 0),
            (1000 + SEGMENT, te(4, true, 400), 100),
            (5000, te(2, false, u16::MAX), 200),
            (5000 + SEGMENT, te(3, true, 160), 300),
        ]);
        assert_eq!(
            got,
            vec![
                Detected { event: 4, duration: 800 },
                Detected { event: 4, duration: 400 },
                Detected { event: 2, duration: 65535 },
                Detected { event: 3, duration: 160 },
            ]
        );
    }
}
