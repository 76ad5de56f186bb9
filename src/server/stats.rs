//! Live counters each shard publishes for the metrics exporter and for tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Per-shard gauges written by the shard task (one writer each), read by anyone.
#[derive(Debug)]
pub struct SharedStats {
    shards: Vec<ShardGauges>,
}

#[derive(Debug, Default)]
struct ShardGauges {
    calls: AtomicU64,
    dialogs: AtomicU64,
    transactions: AtomicU64,
}

impl SharedStats {
    /// Gauges for `n` shards.
    pub fn new(n: usize) -> Self {
        SharedStats { shards: (0..n).map(|_| ShardGauges::default()).collect() }
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
