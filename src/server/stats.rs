//! Live counters each shard publishes for the metrics exporter and for tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Per-shard gauges written by the shard task (one writer each), read by anyone.
#[derive(Debug)]
pub struct SharedStats {
    shards: Vec<ShardGauges>,
    zones: usize,
}

#[derive(Debug, Default)]
struct ShardGauges {
    calls: AtomicU64,
    dialogs: AtomicU64,
    transactions: AtomicU64,
    /// Per zone: relay port pairs in use, and available.
    ports_in_use: Vec<AtomicU64>,
    ports_free: Vec<AtomicU64>,
    ports_exhausted: AtomicU64,
}

impl SharedStats {
    /// Gauges for `n` shards over `zones` zones.
    pub fn new(n: usize, zones: usize) -> Self {
        let shard = || ShardGauges {
            ports_in_use: (0..zones).map(|_| AtomicU64::new(0)).collect(),
            ports_free: (0..zones).map(|_| AtomicU64::new(0)).collect(),
            ..ShardGauges::default()
        };
        SharedStats { shards: (0..n).map(|_| shard()).collect(), zones }
    }

    /// Shard `i` publishes its relay port usage: (zone index, pairs in use, pairs available),
    /// and how often a zone ran out.
    pub fn publish_ports(&self, i: usize, usage: &[(usize, usize, usize)], exhausted: u64) {
        if let Some(g) = self.shards.get(i) {
            for &(z, used, free) in usage {
                if let (Some(u), Some(f)) = (g.ports_in_use.get(z), g.ports_free.get(z)) {
                    u.store(used as u64, Ordering::Relaxed);
                    f.store(free as u64, Ordering::Relaxed);
                }
            }
            g.ports_exhausted.store(exhausted, Ordering::Relaxed);
        }
    }

    /// Relay ports (not pairs: RTP and RTCP each count) in use and free in zone `z`.
    pub fn ports(&self, z: usize) -> (u64, u64) {
        if z >= self.zones {
            return (0, 0);
        }
        let sum = |f: fn(&ShardGauges) -> &Vec<AtomicU64>| -> u64 {
            self.shards.iter().filter_map(|g| f(g).get(z)).map(|a| a.load(Ordering::Relaxed)).sum()
        };
        (2 * sum(|g| &g.ports_in_use), 2 * sum(|g| &g.ports_free))
    }

    /// Times any zone ran out of relay ports.
    pub fn ports_exhausted(&self) -> u64 {
        self.shards.iter().map(|g| g.ports_exhausted.load(Ordering::Relaxed)).sum()
    }

    /// Shard `i` publishes its current counts.
    pub fn publish(&self, i: usize, calls: usize, dialogs: usize, transactions: usize) {
        if let Some(g) = self.shards.get(i) {
            g.calls.store(calls as u64, Ordering::Relaxed);
            g.dialogs.store(dialogs as u64, Ordering::Relaxed);
            g.transactions.store(transactions as u64, Ordering::Relaxed);
        }
    }

    /// Calls in progress over all shards.
    pub fn calls(&self) -> u64 {
        self.shards.iter().map(|g| g.calls.load(Ordering::Relaxed)).sum()
    }

    /// Dialogs over all shards.
    pub fn dialogs(&self) -> u64 {
        self.shards.iter().map(|g| g.dialogs.load(Ordering::Relaxed)).sum()
    }

    /// Transactions over all shards.
    pub fn transactions(&self) -> u64 {
        self.shards.iter().map(|g| g.transactions.load(Ordering::Relaxed)).sum()
    }
}
