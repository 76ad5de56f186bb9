//! `TrunkHealth`: what every shard knows about every trunk — reachable (OPTIONS keepalive) and
//! registered — as atomics written by the shard that probes the trunk and read by all.

use std::sync::atomic::{AtomicBool, Ordering};

/// Per-trunk state shared by all shards (index = trunk id).
#[derive(Debug)]
pub struct TrunkHealth {
    up: Vec<AtomicBool>,
    registered: Vec<AtomicBool>,
}

impl TrunkHealth {
    /// All `n` trunks up, none registered.
    pub fn new(n: usize) -> Self {
        TrunkHealth {
            up: (0..n).map(|_| AtomicBool::new(true)).collect(),
            registered: (0..n).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// True unless keepalive marked the trunk down.
    pub fn is_up(&self, trunk: usize) -> bool {
        self.up.get(trunk).is_none_or(|a| a.load(Ordering::Relaxed))
    }

    /// Records reachability.
    pub fn set_up(&self, trunk: usize, up: bool) {
        if let Some(a) = self.up.get(trunk) {
            a.store(up, Ordering::Relaxed);
        }
    }

    /// True while the trunk's registration is valid.
    pub fn is_registered(&self, trunk: usize) -> bool {
        self.registered.get(trunk).is_some_and(|a| a.load(Ordering::Relaxed))
    }

    /// Records registration state.
    pub fn set_registered(&self, trunk: usize, registered: bool) {
        if let Some(a) = self.registered.get(trunk) {
            a.store(registered, Ordering::Relaxed);
        }
    }

    /// Trunks tracked.
    pub fn len(&self) -> usize {
        self.up.len()
    }

    /// True when no trunk is tracked.
    pub fn is_empty(&self) -> bool {
        self.up.is_empty()
    }
}
