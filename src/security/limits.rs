//! Hard limits that keep memory bounded under a flood: body size, TCP connections per source,
//! the time a TCP peer may take to finish a message (slowloris), and dialogs and transactions
//! in total and per source.
//!
//! Message size, header count and Via count are already enforced by the parser
//! (`limits:` in the main config, [`crate::sip::parse::Limits`]); these are the ones the parser
//! cannot see. [`ConcurrencyLimiter`] counts things that live for a while (connections, dialogs,
//! transactions) against a total and a per-source cap; [`IncompleteTimer`] is the sans-IO clock
//! a TCP reader consults to close a connection that trickles a message in.

use super::source::{SourceKeying, SourceTable, Tracked};
use crate::config::schema::DurationValue;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hard limits (YAML `security.limits`); 0 means no limit for the counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardLimits {
    /// Largest body accepted, bytes; a larger one is answered 413 (default 32768).
    pub max_body_size: usize,
    /// Most TCP connections open at once, all sources together (default 10000).
    pub max_tcp_connections: usize,
    /// Most TCP connections one untrusted source may hold open (default 32).
    pub max_tcp_connections_per_source: usize,
    /// A TCP connection holding part of a message for this long without completing it is
    /// closed (default 10s).
    pub tcp_incomplete_timeout: DurationValue,
    /// Most dialogs in total (default 100000).
    pub max_dialogs: usize,
    /// Most dialogs one untrusted source may hold (default 500).
    pub max_dialogs_per_source: usize,
    /// Most transactions in total (default 200000).
    pub max_transactions: usize,
    /// Most transactions one untrusted source may hold (default 1000).
    pub max_transactions_per_source: usize,
}

impl Default for HardLimits {
    fn default() -> Self {
        HardLimits {
            max_body_size: 32 * 1024,
            max_tcp_connections: 10_000,
            max_tcp_connections_per_source: 32,
            tcp_incomplete_timeout: DurationValue(Duration::from_secs(10)),
            max_dialogs: 100_000,
            max_dialogs_per_source: 500,
            max_transactions: 200_000,
            max_transactions_per_source: 1_000,
        }
    }
}

/// A body over [`HardLimits::max_body_size`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("body of {size} bytes exceeds the {max}-byte limit")]
pub struct BodyTooLarge {
    /// The body's size.
    pub size: usize,
    /// The limit.
    pub max: usize,
}

/// Which cap a [`ConcurrencyLimiter`] hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The total.
    #[error("limit of {0} in total reached")]
    Total(usize),
    /// The source's share.
    #[error("limit of {0} per source reached")]
    PerSource(usize),
}

impl LimitExceeded {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            LimitExceeded::Total(_) => "total",
            LimitExceeded::PerSource(_) => "per_source",
        }
    }
}

/// A held unit of a [`ConcurrencyLimiter`]; dropping it gives the unit back.
#[derive(Debug)]
#[must_use = "dropping a slot releases it at once"]
pub struct Slot {
    inner: Arc<Inner>,
    source: Option<IpAddr>,
}

impl Slot {
    /// The source the unit counts against, `None` for a trusted peer's.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.release_total();
        if let Some(ip) = self.source {
            self.inner.sources.update(ip, |h| {
                h.n = h.n.saturating_sub(1);
                ((), h.n == 0)
            });
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    n: usize,
    seen: Instant,
}

impl Tracked for Held {
    type Ctx = ();
    fn is_idle(&self, _: &(), _: Instant) -> bool {
        self.n == 0
    }
    fn rank(&self) -> Instant {
        self.seen
    }
    fn is_pinned(&self) -> bool {
        self.n > 0
    }
}

#[derive(Debug)]
struct Inner {
    /// Caps are atomics so a reload can change them under held slots; `usize::MAX`: none.
    max_total: AtomicUsize,
    max_per_source: AtomicUsize,
    total: AtomicUsize,
    sources: SourceTable<Held>,
}

impl Inner {
    fn release_total(&self) {
        let _ = self.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

fn cap(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

/// Counts long-lived things (connections, dialogs, transactions) in total and per source.
///
/// Per-source entries exist only while the source holds something, so their number is bounded
/// by the total cap. Clones share the counts (a reloaded guard keeps counting what the old one
/// handed out).
#[derive(Debug, Clone)]
pub struct ConcurrencyLimiter {
    inner: Arc<Inner>,
}

impl ConcurrencyLimiter {
    /// A limiter of `max_total` in all and `max_per_source` per source (0: no cap).
    pub fn new(max_total: usize, max_per_source: usize, keying: SourceKeying) -> Self {
        // Twice the total: shards fill unevenly, and a shard full before the total is reached
        // would refuse early. With no total cap, sized for what a busy SBC holds.
        let capacity = if max_total == 0 { 1 << 20 } else { max_total.saturating_mul(2) };
        ConcurrencyLimiter {
            inner: Arc::new(Inner {
                max_total: AtomicUsize::new(cap(max_total)),
                max_per_source: AtomicUsize::new(cap(max_per_source)),
                total: AtomicUsize::new(0),
                sources: SourceTable::new(capacity, keying),
            }),
        }
    }

    /// Changes the caps (0: no cap); units already held stay held.
    pub fn set_caps(&self, max_total: usize, max_per_source: usize) {
        self.inner.max_total.store(cap(max_total), Ordering::Release);
        self.inner.max_per_source.store(cap(max_per_source), Ordering::Release);
    }

    /// Takes one unit for `source`; `None` counts only toward the total (a trusted peer).
    pub fn try_acquire(&self, source: Option<IpAddr>, now: Instant) -> Result<Slot, LimitExceeded> {
        let inner = &self.inner;
        let max = inner.max_total.load(Ordering::Acquire);
        inner
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| LimitExceeded::Total(max))?;
        let Some(ip) = source else {
            return Ok(Slot { inner: inner.clone(), source: None });
        };
        let per = inner.max_per_source.load(Ordering::Acquire);
        let taken = inner.sources.upsert(
            ip,
            now,
            &(),
            || Held { n: 0, seen: now },
            |h| {
                h.seen = h.seen.max(now);
                if h.n >= per {
                    return false;
                }
                h.n += 1;
                true
            },
        );
        if taken == Some(true) {
            return Ok(Slot { inner: inner.clone(), source: Some(ip) });
        }
        inner.release_total();
        // A full table of holding sources: the total is the cap that is really reached.
        Err(match taken {
            Some(_) => LimitExceeded::PerSource(per),
            None => LimitExceeded::Total(max),
        })
    }

    /// Gives a unit back (the same as dropping the slot).
    pub fn release(&self, slot: Slot) {
        drop(slot);
    }

    /// Units held in total.
    pub fn in_use(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }

    /// Units held by `source`.
    pub fn in_use_by(&self, source: IpAddr) -> usize {
        self.inner.sources.update(source, |h| (h.n, false)).unwrap_or(0)
    }
}

/// Slowloris defence for one TCP connection: the deadline by which a message that has started
/// arriving must be complete.
///
/// The reader reports what the framer holds after each read and each frame; while a partial
/// message is buffered the deadline stays fixed from when it started, so trickling a byte at
/// a time does not extend it (an idle timeout would be reset by every byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncompleteTimer {
    timeout: Duration,
    started: Option<Instant>,
}

impl IncompleteTimer {
    /// A timer allowing `timeout` per message; a zero timeout never expires.
    pub fn new(timeout: Duration) -> Self {
        IncompleteTimer { timeout, started: None }
    }

    /// After a read: `buffered` bytes of an unfinished message are held.
    pub fn on_read(&mut self, now: Instant, buffered: usize) {
        if buffered == 0 {
            self.started = None;
        } else if self.started.is_none() {
            self.started = Some(now);
        }
    }

    /// After a complete frame was taken out: `buffered` bytes (the start of the next message,
    /// pipelined) remain, whose clock starts now.
    pub fn on_frame(&mut self, now: Instant, buffered: usize) {
        self.started = (buffered > 0).then_some(now);
    }

    /// When the connection must be closed if nothing completes; `None` while nothing is
    /// pending.
    pub fn deadline(&self) -> Option<Instant> {
        if self.timeout.is_zero() {
            return None;
        }
        self.started.and_then(|s| s.checked_add(self.timeout))
    }

    /// True when the pending message took too long.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_and_total_caps() {
        let t0 = Instant::now();
        let l = ConcurrencyLimiter::new(3, 2, SourceKeying::default());
        let a = l.try_acquire(Some(ip("192.0.2.1")), t0).unwrap();
        let b = l.try_acquire(Some(ip("192.0.2.1")), t0).unwrap();
        assert_eq!(
            l.try_acquire(Some(ip("192.0.2.1")), t0).unwrap_err(),
            LimitExceeded::PerSource(2)
        );
        assert_eq!(l.in_use(), 2, "a refusal holds nothing");
        let c = l.try_acquire(None, t0).unwrap();
        assert_eq!(c.source(), None);
        assert_eq!(l.try_acquire(Some(ip("192.0.2.2")), t0).unwrap_err(), LimitExceeded::Total(3));
        assert_eq!(l.in_use_by(ip("192.0.2.1")), 2);
        l.release(a);
        assert_eq!(l.in_use_by(ip("192.0.2.1")), 1);
        let d = l.try_acquire(Some(ip("192.0.2.2")), t0).unwrap();
        for s in [b, c, d] {
            l.release(s);
        }
        assert_eq!(l.in_use(), 0);
        assert_eq!(l.in_use_by(ip("192.0.2.1")), 0);
    }

    #[test]
    fn caps_change_under_held_slots() {
        let t0 = Instant::now();
        let l = ConcurrencyLimiter::new(10, 10, SourceKeying::default());
        let shared = l.clone();
        let held: Vec<Slot> =
            (0..5).map(|_| l.try_acquire(Some(ip("192.0.2.1")), t0).unwrap()).collect();
        shared.set_caps(10, 3);
        assert_eq!(
            l.try_acquire(Some(ip("192.0.2.1")), t0).unwrap_err(),
            LimitExceeded::PerSource(3)
        );
        drop(held);
        assert_eq!(shared.in_use(), 0);
        assert!(l.try_acquire(Some(ip("192.0.2.1")), t0).is_ok());
    }

    #[test]
    fn zero_means_no_cap() {
        let t0 = Instant::now();
        let l = ConcurrencyLimiter::new(0, 0, SourceKeying::default());
        let slots: Vec<Slot> =
            (0..1000).map(|_| l.try_acquire(Some(ip("192.0.2.1")), t0).unwrap()).collect();
        assert_eq!(l.in_use(), 1000);
        for s in slots {
            l.release(s);
        }
        assert_eq!(l.in_use(), 0);
    }

    #[test]
    fn incomplete_message_deadline_is_not_extended_by_trickling() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = IncompleteTimer::new(s(10));
        assert_eq!(t.deadline(), None);
        t.on_read(t0, 5);
        for i in 1..10 {
            t.on_read(t0 + s(i), 5 + i as usize);
        }
        assert_eq!(t.deadline(), Some(t0 + s(10)));
        assert!(!t.expired(t0 + s(9)));
        assert!(t.expired(t0 + s(10)));
        // A complete message with nothing left over clears the clock.
        t.on_frame(t0 + s(9), 0);
        assert_eq!(t.deadline(), None);
        // A pipelined partial message starts its own clock.
        t.on_read(t0 + s(11), 100);
        t.on_frame(t0 + s(12), 20);
        assert_eq!(t.deadline(), Some(t0 + s(22)));
        t.on_read(t0 + s(13), 0);
        assert!(!t.expired(t0 + s(100)));
        assert!(!IncompleteTimer::new(Duration::ZERO).expired(t0));
    }

    #[test]
    fn defaults_deserialize_and_unknown_keys_are_refused() {
        let l: HardLimits =
            serde_yaml::from_str("max_body_size: 1000\ntcp_incomplete_timeout: 5s").unwrap();
        assert_eq!(l.max_body_size, 1000);
        assert_eq!(l.tcp_incomplete_timeout.0, Duration::from_secs(5));
        assert_eq!(l.max_dialogs, HardLimits::default().max_dialogs);
        assert!(serde_yaml::from_str::<HardLimits>("max_bodysize: 1").is_err());
    }
}
