//! RFC 3261 §17 timer values and the queue the layer arms them in.
//!
//! The layer is sans-IO: it never reads a clock, it is told `now`. Timers are entries in a binary
//! heap; a cancelled timer is not removed but ignored when it pops, because each transaction keeps
//! the deadline it currently expects per timer kind (see [`ArmedTimers`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Base values from the config (RFC 3261 table 4) and the ring timeout (Timer C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval (default 4 s).
    pub t2: Duration,
    /// Maximum message lifetime in the network (default 5 s).
    pub t4: Duration,
    /// Timer C: ring timeout after a provisional (default 3 min).
    pub timer_c: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_c: Duration::from_secs(180),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J, L, M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: 64*T1 over UDP (32 s with the default T1, RFC 3261's "at least 32 s"; scaled
    /// with T1 so a lab with a short T1 drains quickly), zero over reliable transports.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }
}

/// Which RFC 3261 / RFC 6026 timer an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// INVITE client retransmit.
    A,
    /// INVITE client timeout.
    B,
    /// INVITE client ring timeout (proxy Timer C, used here to bound ringing).
    C,
    /// INVITE client wait for response retransmits after a non-2xx.
    D,
    /// Non-INVITE client retransmit.
    E,
    /// Non-INVITE client timeout.
    F,
    /// INVITE server final response retransmit.
    G,
    /// INVITE server wait for ACK.
    H,
    /// INVITE server wait for ACK retransmits.
    I,
    /// Non-INVITE server wait for request retransmits.
    J,
    /// Non-INVITE client wait for response retransmits.
    K,
    /// INVITE server Accepted state (RFC 6026).
    L,
    /// INVITE client Accepted state (RFC 6026).
    M,
    /// INVITE client: a CANCEL was sent and no final response came in 64*T1.
    CancelGuard,
}

/// Identifies a transaction inside one layer; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Deadlines a transaction currently expects, one slot per timer kind it uses.
#[derive(Debug, Default, Clone)]
pub struct ArmedTimers {
    slots: Vec<(TimerKind, Instant)>,
}

impl ArmedTimers {
    /// Records `kind` as armed for `at` (replacing an earlier deadline of the same kind).
    pub fn arm(&mut self, kind: TimerKind, at: Instant) {
        self.cancel(kind);
        self.slots.push((kind, at));
    }

    /// Forgets `kind`.
    pub fn cancel(&mut self, kind: TimerKind) {
        self.slots.retain(|(k, _)| *k != kind);
    }

    /// True when `kind` is armed for exactly `at` (a stale heap entry fails this).
    pub fn is_due(&self, kind: TimerKind, at: Instant) -> bool {
        self.slots.iter().any(|(k, t)| *k == kind && *t == at)
    }

    /// Fires: returns true and disarms when the entry is current.
    pub fn take(&mut self, kind: TimerKind, at: Instant) -> bool {
        if self.is_due(kind, at) {
            self.cancel(kind);
            true
        } else {
            false
        }
    }
}

/// Min-heap of (deadline, transaction, kind).
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, TxId, TimerKind)>>,
}

impl TimerQueue {
    /// Adds an entry.
    pub fn push(&mut self, at: Instant, tx: TxId, kind: TimerKind) {
        self.heap.push(Reverse((at, tx, kind)));
    }

    /// Earliest deadline, stale entries included (waking early is harmless).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Pops the next entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TxId, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries held (stale ones included).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
