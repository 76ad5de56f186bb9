//! Per-source state shared by the rate limiter, the ban list and the admission counters: how a
//! source address becomes a key, and a sharded map whose memory stays bounded under a flood of
//! spoofed sources.
//!
//! Two choices matter for an edge facing the internet:
//!
//! - **Keys.** An IPv6 host usually owns a whole /64, so limiting or banning single IPv6
//!   addresses would let one attacker rotate through 2^64 of them; sources are keyed by their
//!   IPv6 prefix (/64 by default). IPv4-mapped IPv6 addresses (a dual-stack socket) key as the
//!   IPv4 address they carry.
//! - **Bounded memory.** Every table has a capacity. When a shard is full it first forgets the
//!   entries that are *idle* (equal to a fresh entry: a full token bucket, an expired ban), which
//!   loses nothing; if that is not enough it evicts the least recently seen eighth, which under a
//!   spoofed flood are the one-packet sources, while a source that keeps sending stays tracked.
//!   Entries that hold accounting a later release will undo (concurrent calls) are never
//!   evicted. Sweeps cost O(shard) but run once per eighth of a shard's inserts.
//!
//! The shard is picked with a randomly keyed hash, separate from the one inside each map, so an
//! attacker choosing source addresses can neither aim at one shard nor collide within it.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// How source addresses become keys of per-source state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceKeying {
    /// IPv6 sources are tracked per prefix of this length (1..=128; default 64).
    pub ipv6_prefix: u8,
}

impl Default for SourceKeying {
    fn default() -> Self {
        SourceKeying { ipv6_prefix: 64 }
    }
}

impl SourceKeying {
    /// The key `ip` is tracked under: the IPv4 address itself (IPv4-mapped IPv6 included), or
    /// the IPv6 address with the bits past the prefix cleared.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let prefix = u32::from(self.ipv6_prefix.clamp(1, 128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// Locks a mutex even when a panicking thread poisoned it: every table here stays consistent
/// between statements, and refusing all later traffic would turn one bug into an outage.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a [`SourceTable`] needs to know about its entries to evict them.
pub(crate) trait Tracked {
    /// Table-wide context the entries are judged with (e.g. the configured rates).
    type Ctx;
    /// True when forgetting the entry loses nothing: it equals what a fresh insert would make.
    fn is_idle(&self, ctx: &Self::Ctx, now: Instant) -> bool;
    /// Eviction order under pressure: smallest first (e.g. last seen).
    fn rank(&self) -> Instant;
    /// True when the entry must not be evicted (it holds counts a later release undoes).
    fn is_pinned(&self) -> bool {
        false
    }
}

/// One shard on its own cache lines (128 bytes: adjacent-line prefetch pairs lines on x86), so
/// two threads locking neighbouring shards do not bounce one line between cores.
#[derive(Debug)]
#[repr(align(128))]
struct Shard<V>(Mutex<HashMap<IpAddr, V>>);

/// A sharded map from source key to per-source state, bounded in entries.
#[derive(Debug)]
pub(crate) struct SourceTable<V> {
    shards: Box<[Shard<V>]>,
    pick: RandomState,
    keying: SourceKeying,
    per_shard: usize,
    len: AtomicUsize,
    evicted: AtomicU64,
}

/// Most shards a table is split into; enough that 2..64 receive threads rarely meet on a lock.
const MAX_SHARDS: usize = 64;
/// Fewest entries a shard is sized for, so a small table does not end up with 1-entry shards.
const MIN_PER_SHARD: usize = 256;

impl<V: Tracked> SourceTable<V> {
    /// A table of at most (about) `capacity` entries.
    pub(crate) fn new(capacity: usize, keying: SourceKeying) -> Self {
        let capacity = capacity.max(1);
        let shards = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        // A power of two, so picking a shard is a mask.
        let shards = if shards.is_power_of_two() { shards } else { shards.next_power_of_two() / 2 };
        let per_shard = capacity.div_ceil(shards);
        SourceTable {
            shards: (0..shards).map(|_| Shard(Mutex::new(HashMap::new()))).collect(),
            pick: RandomState::new(),
            keying,
            per_shard,
            len: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// The key `ip` is tracked under.
    pub(crate) fn key(&self, ip: IpAddr) -> IpAddr {
        self.keying.key(ip)
    }

    fn shard(&self, key: &IpAddr) -> MutexGuard<'_, HashMap<IpAddr, V>> {
        let i = (self.pick.hash_one(key) as usize) & (self.shards.len() - 1);
        lock(&self.shards[i].0)
    }

    /// Entries held (approximate while other threads insert or remove).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Entries evicted under memory pressure so far (idle entries forgotten are not counted).
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Runs `f` on the entry of `ip`, inserting `make()` first when there is none. `None` when
    /// the entry's shard is full of pinned entries and nothing could be made room for.
    pub(crate) fn upsert<R>(
        &self,
        ip: IpAddr,
        now: Instant,
        ctx: &V::Ctx,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> Option<R> {
        let key = self.key(ip);
        let mut map = self.shard(&key);
        if let Some(v) = map.get_mut(&key) {
            return Some(f(v));
        }
        if map.len() >= self.per_shard {
            let before = map.len();
            let evicted = make_room(&mut map, self.per_shard, ctx, now);
            self.len.fetch_sub(before - map.len(), Ordering::Relaxed);
            self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
            if map.len() >= self.per_shard {
                return None;
            }
        }
        let v = map.entry(key).or_insert_with(make);
        self.len.fetch_add(1, Ordering::Relaxed);
        Some(f(v))
    }

    /// Runs `f` on the existing entry of `ip`; the entry is removed when `f` returns `true` as
    /// its second value.
    pub(crate) fn update<R>(&self, ip: IpAddr, f: impl FnOnce(&mut V) -> (R, bool)) -> Option<R> {
        let key = self.key(ip);
        let mut map = self.shard(&key);
        let v = map.get_mut(&key)?;
        let (r, remove) = f(v);
        if remove {
            map.remove(&key);
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        Some(r)
    }

    /// Removes the entry of `ip`; returns it.
    pub(crate) fn remove(&self, ip: IpAddr) -> Option<V> {
        let key = self.key(ip);
        let v = self.shard(&key).remove(&key);
        if v.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        v
    }

    /// Keeps only the entries for which `keep` holds, shard by shard; returns how many went.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&IpAddr, &mut V) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = lock(&shard.0);
            let before = map.len();
            map.retain(|k, v| keep(k, v));
            removed += before - map.len();
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Forgets every idle entry; returns how many.
    pub(crate) fn purge_idle(&self, ctx: &V::Ctx, now: Instant) -> usize {
        self.retain(|_, v| v.is_pinned() || !v.is_idle(ctx, now))
    }

    /// Calls `f` on every entry, shard by shard (each shard locked in turn).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&IpAddr, &V)) {
        for shard in self.shards.iter() {
            for (k, v) in lock(&shard.0).iter() {
                f(k, v);
            }
        }
    }
}

/// Frees room in a full shard: idle entries first, then the lowest-ranked eighth of the rest
/// (never pinned ones). Returns how many non-idle entries were evicted.
fn make_room<V: Tracked>(
    map: &mut HashMap<IpAddr, V>,
    per_shard: usize,
    ctx: &V::Ctx,
    now: Instant,
) -> usize {
    map.retain(|_, v| v.is_pinned() || !v.is_idle(ctx, now));
    // Leave headroom so the next sweep is an eighth of a shard's inserts away.
    let target = per_shard - (per_shard / 8).max(1);
    if map.len() <= target {
        return 0;
    }
    let mut ranks: Vec<Instant> =
        map.values().filter(|v| !v.is_pinned()).map(Tracked::rank).collect();
    let excess = map.len() - target;
    if ranks.is_empty() {
        return 0;
    }
    let n = excess.min(ranks.len());
    let (_, cutoff, _) = ranks.select_nth_unstable(n - 1);
    let cutoff = *cutoff;
    let mut left = n;
    map.retain(|_, v| {
        if left > 0 && !v.is_pinned() && v.rank() <= cutoff {
            left -= 1;
            false
        } else {
            true
        }
    });
    n - left
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Idle when `busy` is false; pinned when `pinned`.
    #[derive(Debug)]
    struct E {
        seen: Instant,
        busy: bool,
        pinned: bool,
    }

    impl Tracked for E {
        type Ctx = ();
        fn is_idle(&self, _: &(), _: Instant) -> bool {
            !self.busy
        }
        fn rank(&self) -> Instant {
            self.seen
        }
        fn is_pinned(&self) -> bool {
            self.pinned
        }
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn ipv6_sources_key_by_prefix_and_mapped_ipv4_as_ipv4() {
        let k = SourceKeying::default();
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(k.key(a), k.key(b));
        assert_ne!(k.key(a), k.key(c));
        assert_eq!(k.key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(k.key(mapped), "192.0.2.9".parse::<IpAddr>().unwrap());
        let full = SourceKeying { ipv6_prefix: 128 };
        assert_eq!(full.key(a), a);
        // Out-of-range prefixes are clamped rather than trusted.
        assert_eq!(SourceKeying { ipv6_prefix: 0 }.key(a), "::".parse::<IpAddr>().unwrap());
        assert_eq!(SourceKeying { ipv6_prefix: 200 }.key(a), a);
    }

    #[test]
    fn full_table_forgets_idle_entries_before_evicting() {
        let t0 = Instant::now();
        let t: SourceTable<E> = SourceTable::new(16, SourceKeying::default());
        for i in 0..16 {
            let busy = i % 2 == 0;
            t.upsert(v4(i), t0, &(), || E { seen: t0, busy, pinned: false }, |_| ()).unwrap();
        }
        assert_eq!(t.len(), 16);
        t.upsert(v4(100), t0, &(), || E { seen: t0, busy: true, pinned: false }, |_| ()).unwrap();
        assert_eq!(t.len(), 9, "the 8 idle entries went, the new one came");
        assert_eq!(t.evicted(), 0, "forgetting idle entries is not eviction");
    }

    #[test]
    fn full_table_evicts_least_recently_seen_never_pinned() {
        let t0 = Instant::now();
        let t: SourceTable<E> = SourceTable::new(16, SourceKeying::default());
        for i in 0..16u32 {
            let seen = t0 + Duration::from_secs(u64::from(i));
            let pinned = i < 4;
            t.upsert(v4(i), seen, &(), || E { seen, busy: true, pinned }, |_| ()).unwrap();
        }
        let now = t0 + Duration::from_secs(100);
        t.upsert(v4(100), now, &(), || E { seen: now, busy: true, pinned: false }, |_| ()).unwrap();
        assert!(t.len() <= 16);
        assert!(t.evicted() >= 1);
        let mut kept = Vec::new();
        t.for_each(|k, _| kept.push(*k));
        for i in 0..4 {
            assert!(kept.contains(&v4(i)), "pinned {i} kept");
        }
        assert!(!kept.contains(&v4(4)), "the oldest unpinned entry went first");
        assert!(kept.contains(&v4(15)) && kept.contains(&v4(100)));
    }

    #[test]
    fn full_table_of_pinned_entries_refuses_new_ones() {
        let t0 = Instant::now();
        let t: SourceTable<E> = SourceTable::new(4, SourceKeying::default());
        for i in 0..4 {
            t.upsert(v4(i), t0, &(), || E { seen: t0, busy: true, pinned: true }, |_| ()).unwrap();
        }
        assert!(t
            .upsert(v4(9), t0, &(), || E { seen: t0, busy: true, pinned: true }, |_| ())
            .is_none());
        // Existing entries are still reachable.
        assert!(t.upsert(v4(1), t0, &(), || unreachable!(), |_| ()).is_some());
    }

    #[test]
    fn spoofed_flood_keeps_memory_bounded() {
        let t0 = Instant::now();
        let t: SourceTable<E> = SourceTable::new(1000, SourceKeying::default());
        for i in 0..200_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            t.upsert(v4(i), now, &(), || E { seen: now, busy: true, pinned: false }, |_| ());
            assert!(t.len() <= 1000 + t.shards.len());
        }
        let mut n = 0;
        t.for_each(|_, _| n += 1);
        assert_eq!(n, t.len());
    }

    #[test]
    fn update_and_remove_keep_the_count() {
        let t0 = Instant::now();
        let t: SourceTable<E> = SourceTable::new(100, SourceKeying::default());
        t.upsert(v4(1), t0, &(), || E { seen: t0, busy: true, pinned: false }, |_| ());
        t.upsert(v4(2), t0, &(), || E { seen: t0, busy: true, pinned: false }, |_| ());
        assert_eq!(t.update(v4(1), |_| ((), true)), Some(()));
        assert_eq!(t.len(), 1);
        assert!(t.update(v4(1), |_| ((), true)).is_none());
        assert!(t.remove(v4(2)).is_some());
        assert!(t.remove(v4(2)).is_none());
        assert_eq!(t.len(), 0);
    }
}
