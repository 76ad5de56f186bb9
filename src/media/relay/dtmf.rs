//! RFC 4733 event state machines of one relayed direction, both owned by the worker thread and
//! free of allocation:
//!
//! - [`EventDetector`] follows the events arriving in a stream (a new event is a new timestamp;
//!   its end is the first packet with the E bit) and reports each finished event once, however
//!   many end packets were retransmitted. An event whose end packets were all lost is reported
//!   when the next event starts or when it has been silent too long.
//! - [`EventInjector`] plays events the signalling side asked for: an update every
//!   [`UPDATE_INTERVAL`] with the duration so far (the first with the marker bit), then the final
//!   packet [`END_PACKETS`] times (RFC 4733 §2.5.1.4) at the same interval.

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

#[derive(Debug, Clone, Copy)]
struct Tracked {
    ssrc: u32,
    ts: u32,
    event: u8,
    duration: u32,
    ended: bool,
    seen: Instant,
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
        if !same {
            if let Some(prev) = self.cur.take().filter(|c| !c.ended) {
                // The previous event's end packets were all lost: it ended when this began.
                emit(Detected { event: prev.event, duration: prev.duration });
            }
            self.cur =
                Some(Tracked { ssrc, ts, event: ev.event, duration: 0, ended: false, seen: now });
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
            emit(Detected { event: c.event, duration: c.duration });
        }
    }

    /// Reports an event that stopped without an end packet for `DETECT_IDLE`.
    pub(crate) fn expire(&mut self, now: Instant, mut emit: impl FnMut(Detected)) {
        if let Some(c) = self.cur.as_mut() {
            if !c.ended && now.saturating_duration_since(c.seen) >= DETECT_IDLE {
                c.ended = true;
                emit(Detected { event: c.event, duration: c.duration });
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Playing {
    event: u8,
    volume: u8,
    ts: u32,
    /// Total duration and update interval in timestamp units.
    total: u32,
    step_units: u32,
    step: u32,
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
            let units = |d: Duration| (d.as_micros() as u64 * clock / 1_000_000) as u32;
            // The duration field is 16 bits: a longer key press is cut at ~8 s (at 8 kHz);
            // RFC 4733 §2.5.2.3 segments would be needed beyond, and nobody holds a key that long.
            let total = units(inj.duration).min(u32::from(u16::MAX));
            self.cur = Some(Playing {
                event: inj.event,
                volume: inj.volume,
                ts: stream_ts(),
                total,
                step_units: units(UPDATE_INTERVAL).max(1),
                step: 0,
                ends: 0,
                next: now,
            });
        }
        let p = self.cur.as_mut()?;
        if now < p.next {
            return None;
        }
        p.next += UPDATE_INTERVAL;
        let elapsed = p.step.saturating_mul(p.step_units);
        let ev = if elapsed < p.total {
            let marker = p.step == 0;
            p.step += 1;
            let duration = (elapsed + p.step_units).min(p.total) as u16;
            let ev = TelephoneEvent { event: p.event, end: false, volume: p.volume, duration };
            return Some(Injected { ev, marker, ts: p.ts });
        } else {
            p.ends += 1;
            TelephoneEvent { event: p.event, end: true, volume: p.volume, duration: p.total as u16 }
        };
        let out = Injected { ev, marker: p.step == 0 && p.ends == 1, ts: p.ts };
        if p.ends >= END_PACKETS {
            self.cur = None;
        }
        Some(out)
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
}
