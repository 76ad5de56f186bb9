//! Call admission: caps on concurrent calls and on new calls per second, per trunk, per zone
//! and per source, checked together when a call starts and released when it ends.
//!
//! A call is admitted only if every scope it names has room; the scopes are taken one after
//! another and a refusal gives back what the earlier ones took, so a refused call leaves no
//! trace. Concurrency counts are atomics (a trunk or zone is shared by every shard) and the
//! per-second caps are token buckets behind a lock per scope, touched only by new calls.
//!
//! Admission is meant for new calls only (an initial INVITE the transaction layer has not seen
//! before), not for every INVITE: retransmissions and re-INVITEs must not count.
//!
//! A [`Ticket`] holds the counters it was admitted against (not indices into a table), so it
//! releases the right ones even after a configuration reload renumbered trunks, and it releases
//! them when dropped: a call removed from its shard's table cannot leak its slots, and a ticket
//! cannot be released twice. [`CallAdmission::reconfigured`] carries the counters of trunks and
//! zones that keep their name over to the new configuration.

use super::rate::{RateLimit, TokenBucket};
use super::source::{lock, SourceKeying, SourceTable, Tracked};
use crate::b2bua::router::TrunkId;
use crate::transport::flow::ZoneId;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Caps of one scope; absent fields mean no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallCaps {
    /// Most calls in progress at once.
    pub max_concurrent: Option<u32>,
    /// New calls per second (`rate`) with `burst` at once.
    pub cps: Option<RateLimit>,
}

impl CallCaps {
    /// True when nothing is capped.
    pub fn is_unlimited(&self) -> bool {
        self.max_concurrent.is_none() && self.cps.is_none()
    }
}

/// Which scope refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The trunk the call comes from or goes to.
    Trunk,
    /// The zone the call arrived in.
    Zone,
    /// The call's source address.
    Source,
}

impl Scope {
    /// Short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Trunk => "trunk",
            Scope::Zone => "zone",
            Scope::Source => "source",
        }
    }
}

/// Which cap refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallLimit {
    /// Concurrent calls.
    Concurrent,
    /// New calls per second.
    Rate,
    /// The per-source table is full of sources with calls in progress.
    Capacity,
}

impl CallLimit {
    /// Short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            CallLimit::Concurrent => "concurrent",
            CallLimit::Rate => "rate",
            CallLimit::Capacity => "capacity",
        }
    }
}

/// A call refused by admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("call refused: {} {} cap reached", scope.label(), limit.label())]
pub struct Refusal {
    /// The scope that had no room.
    pub scope: Scope,
    /// The cap that was reached.
    pub limit: CallLimit,
    /// For a rate cap, when the next call would be admitted; `None` for concurrency caps (the
    /// caller picks a Retry-After).
    pub retry_after: Option<std::time::Duration>,
}

/// What a new call is counted against; `None` scopes are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionKey {
    /// The trunk: the configured peer the call came from, or the one it is routed to.
    pub trunk: Option<TrunkId>,
    /// The zone it arrived in; also selects the per-source caps.
    pub zone: Option<ZoneId>,
    /// Its source address; counted only together with `zone`, whose per-source caps apply.
    /// Leave it `None` for trusted peers, whose calls the trunk caps govern.
    pub source: Option<IpAddr>,
}

/// Proof of admission. Dropping it (or handing it to [`CallAdmission::release`]) gives the
/// call's slots back.
#[derive(Debug)]
#[must_use = "dropping a ticket releases the call's slots at once"]
pub struct Ticket {
    trunk: Option<Arc<ScopeCounter>>,
    zone: Option<Arc<ScopeCounter>>,
    source: Option<(Arc<SourceTable<SourceCalls>>, IpAddr)>,
}

impl Ticket {
    /// True when the call counts against a trunk, a zone, a source (in that order).
    pub fn counted(&self) -> (bool, bool, bool) {
        (self.trunk.is_some(), self.zone.is_some(), self.source.is_some())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        for scope in [self.trunk.take(), self.zone.take()].into_iter().flatten() {
            scope.release();
        }
        if let Some((table, ip)) = self.source.take() {
            table.update(ip, |s| {
                s.active = s.active.saturating_sub(1);
                // A source without calls and without a rate to remember is forgotten at once.
                ((), s.active == 0 && s.cps.is_none())
            });
        }
    }
}

/// Counters of a trunk or zone.
#[derive(Debug)]
struct ScopeCounter {
    /// `u32::MAX` when uncapped; an atomic so a reload can change it under live calls.
    max_concurrent: AtomicU32,
    active: AtomicU32,
    cps: Mutex<(Option<RateLimit>, Option<TokenBucket>)>,
}

impl ScopeCounter {
    fn new(caps: CallCaps) -> Self {
        ScopeCounter {
            max_concurrent: AtomicU32::new(caps.max_concurrent.unwrap_or(u32::MAX)),
            active: AtomicU32::new(0),
            cps: Mutex::new((caps.cps, None)),
        }
    }

    fn set_caps(&self, caps: CallCaps) {
        self.max_concurrent.store(caps.max_concurrent.unwrap_or(u32::MAX), Ordering::Release);
        let mut g = lock(&self.cps);
        if g.0 != caps.cps {
            // The bucket restarts full under the new rate rather than carrying tokens banked
            // under the old burst.
            *g = (caps.cps, None);
        }
    }

    /// Takes a concurrency slot and a rate token, or neither.
    fn acquire(&self, scope: Scope, now: Instant) -> Result<(), Refusal> {
        let max = self.max_concurrent.load(Ordering::Acquire);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| Refusal { scope, limit: CallLimit::Concurrent, retry_after: None })?;
        let mut g = lock(&self.cps);
        let (limit, bucket) = &mut *g;
        if let Some(l) = limit {
            let b = bucket.get_or_insert_with(|| TokenBucket::new(l, now));
            if let Err(wait) = b.try_take(l, now) {
                drop(g);
                self.release();
                return Err(Refusal { scope, limit: CallLimit::Rate, retry_after: Some(wait) });
            }
        }
        Ok(())
    }

    /// Undoes an [`acquire`](Self::acquire) of a call that another scope refused: the rate
    /// token too, since the call never started.
    fn undo(&self) {
        self.release();
        let mut g = lock(&self.cps);
        let (limit, bucket) = &mut *g;
        if let (Some(l), Some(b)) = (limit, bucket) {
            b.refund(l);
        }
    }

    fn release(&self) {
        // Saturating: a release the counter cannot match must not wrap to 4 billion calls.
        let _ = self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Calls of one source.
#[derive(Debug, Clone, Copy)]
struct SourceCalls {
    active: u32,
    cps: Option<TokenBucket>,
    cps_limit: Option<RateLimit>,
    seen: Instant,
}

impl Tracked for SourceCalls {
    type Ctx = ();

    fn is_idle(&self, _: &(), now: Instant) -> bool {
        self.active == 0
            && match (&self.cps, &self.cps_limit) {
                (Some(b), Some(l)) => b.is_full(l, now),
                _ => true,
            }
    }

    fn rank(&self) -> Instant {
        self.seen
    }

    /// A source with calls in progress holds counts its calls' tickets will undo.
    fn is_pinned(&self) -> bool {
        self.active > 0
    }
}

/// The caps of one zone: for the zone as a whole, and for each of its untrusted sources.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ZoneCaps {
    /// All calls of the zone.
    pub zone: CallCaps,
    /// Each source's calls.
    pub per_source: CallCaps,
}

/// Admission counters for every trunk, zone and source.
#[derive(Debug)]
pub struct CallAdmission {
    trunks: Vec<(String, Arc<ScopeCounter>)>,
    zones: Vec<(String, Arc<ScopeCounter>)>,
    source_caps: Vec<CallCaps>,
    sources: Arc<SourceTable<SourceCalls>>,
}

impl CallAdmission {
    /// Counters for `trunks` (in [`TrunkId`] order) and `zones` (in [`ZoneId`] order), tracking
    /// at most about `max_sources` sources.
    pub fn new(
        trunks: &[(&str, CallCaps)],
        zones: &[(&str, ZoneCaps)],
        max_sources: usize,
        keying: SourceKeying,
    ) -> CallAdmission {
        CallAdmission::build(
            trunks,
            zones,
            &[],
            &[],
            Arc::new(SourceTable::new(max_sources, keying)),
        )
    }

    /// The same counters under new caps and a new trunk and zone list: a trunk or zone keeps its
    /// count of calls in progress when its name stays, whatever its new position. Calls
    /// admitted before keep releasing what they took.
    pub fn reconfigured(
        &self,
        trunks: &[(&str, CallCaps)],
        zones: &[(&str, ZoneCaps)],
    ) -> CallAdmission {
        CallAdmission::build(trunks, zones, &self.trunks, &self.zones, self.sources.clone())
    }

    fn build(
        trunks: &[(&str, CallCaps)],
        zones: &[(&str, ZoneCaps)],
        old_trunks: &[(String, Arc<ScopeCounter>)],
        old_zones: &[(String, Arc<ScopeCounter>)],
        sources: Arc<SourceTable<SourceCalls>>,
    ) -> CallAdmission {
        fn counter(
            old: &[(String, Arc<ScopeCounter>)],
            name: &str,
            caps: CallCaps,
        ) -> Arc<ScopeCounter> {
            match old.iter().find(|(n, _)| n == name) {
                Some((_, c)) => {
                    c.set_caps(caps);
                    c.clone()
                }
                None => Arc::new(ScopeCounter::new(caps)),
            }
        }
        CallAdmission {
            trunks: trunks
                .iter()
                .map(|(n, c)| (n.to_string(), counter(old_trunks, n, *c)))
                .collect(),
            zones: zones
                .iter()
                .map(|(n, c)| (n.to_string(), counter(old_zones, n, c.zone)))
                .collect(),
            source_caps: zones.iter().map(|(_, c)| c.per_source).collect(),
            sources,
        }
    }

    /// Admits a new call against every scope `key` names, or refuses it with the first scope
    /// that has no room (nothing is then counted anywhere). Scopes without configured caps are
    /// still counted, so [`active`](Self::active) reports them.
    pub fn try_admit(&self, now: Instant, key: &AdmissionKey) -> Result<Ticket, Refusal> {
        let trunk = key.trunk.and_then(|t| self.trunks.get(usize::from(t.0))).map(|(_, c)| c);
        let zone = key.zone.and_then(|z| self.zones.get(usize::from(z.0))).map(|(_, c)| c);
        if let Some(t) = trunk {
            t.acquire(Scope::Trunk, now)?;
        }
        if let Some(z) = zone {
            if let Err(r) = z.acquire(Scope::Zone, now) {
                if let Some(t) = trunk {
                    t.undo();
                }
                return Err(r);
            }
        }
        let source_caps = key.zone.and_then(|z| self.source_caps.get(usize::from(z.0)));
        let source = match (key.source, source_caps) {
            (Some(ip), Some(caps)) => match self.acquire_source(ip, caps, now) {
                Ok(()) => Some((self.sources.clone(), ip)),
                Err(r) => {
                    for scope in [trunk, zone].into_iter().flatten() {
                        scope.undo();
                    }
                    return Err(r);
                }
            },
            _ => None,
        };
        Ok(Ticket { trunk: trunk.cloned(), zone: zone.cloned(), source })
    }

    fn acquire_source(&self, ip: IpAddr, caps: &CallCaps, now: Instant) -> Result<(), Refusal> {
        let make = || SourceCalls {
            active: 0,
            cps: caps.cps.as_ref().map(|l| TokenBucket::new(l, now)),
            cps_limit: caps.cps,
            seen: now,
        };
        let r = self.sources.upsert(ip, now, &(), make, |s| {
            s.seen = s.seen.max(now);
            if caps.max_concurrent.is_some_and(|max| s.active >= max) {
                return Err(Refusal {
                    scope: Scope::Source,
                    limit: CallLimit::Concurrent,
                    retry_after: None,
                });
            }
            if let Some(l) = &caps.cps {
                // The entry may predate a config change: judge it by the caps of now.
                s.cps_limit = Some(*l);
                let bucket = s.cps.get_or_insert_with(|| TokenBucket::new(l, now));
                bucket.try_take(l, now).map_err(|wait| Refusal {
                    scope: Scope::Source,
                    limit: CallLimit::Rate,
                    retry_after: Some(wait),
                })?;
            }
            s.active = s.active.saturating_add(1);
            Ok(())
        });
        r.unwrap_or(Err(Refusal {
            scope: Scope::Source,
            limit: CallLimit::Capacity,
            retry_after: None,
        }))
    }

    /// Gives back the slots of an ended call (the same as dropping the ticket).
    pub fn release(&self, ticket: Ticket) {
        drop(ticket);
    }

    /// Calls in progress counted against a trunk, a zone, or a source.
    pub fn active(&self, scope: ActiveScope) -> u32 {
        let count = |c: Option<&(String, Arc<ScopeCounter>)>| {
            c.map_or(0, |(_, c)| c.active.load(Ordering::Acquire))
        };
        match scope {
            ActiveScope::Trunk(t) => count(self.trunks.get(usize::from(t.0))),
            ActiveScope::Zone(z) => count(self.zones.get(usize::from(z.0))),
            ActiveScope::Source(ip) => self.sources.update(ip, |s| (s.active, false)).unwrap_or(0),
        }
    }

    /// Sources tracked (with calls in progress or a recent call rate).
    pub fn sources_tracked(&self) -> usize {
        self.sources.len()
    }

    /// Forgets sources without calls whose rate bucket is full again; returns how many.
    pub fn purge_idle(&self, now: Instant) -> usize {
        self.sources.purge_idle(&(), now)
    }
}

/// What [`CallAdmission::active`] reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveScope {
    /// A trunk.
    Trunk(TrunkId),
    /// A zone.
    Zone(ZoneId),
    /// A source address.
    Source(IpAddr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn caps(max: Option<u32>, cps: Option<(f64, u32)>) -> CallCaps {
        CallCaps { max_concurrent: max, cps: cps.map(|(r, b)| RateLimit::new(r, b).unwrap()) }
    }

    fn zone(zone: CallCaps, per_source: CallCaps) -> ZoneCaps {
        ZoneCaps { zone, per_source }
    }

    const T0: TrunkId = TrunkId(0);
    const Z0: ZoneId = ZoneId(0);

    fn key(source: &str) -> AdmissionKey {
        AdmissionKey { trunk: Some(T0), zone: Some(Z0), source: Some(ip(source)) }
    }

    fn admission(trunk: CallCaps, z: ZoneCaps, max_sources: usize) -> CallAdmission {
        CallAdmission::new(&[("itsp", trunk)], &[("lan", z)], max_sources, SourceKeying::default())
    }

    #[test]
    fn concurrent_cap_per_trunk_and_release() {
        let t0 = Instant::now();
        let a = admission(caps(Some(2), None), ZoneCaps::default(), 1000);
        let k = key("192.0.2.1");
        let t1 = a.try_admit(t0, &k).unwrap();
        let t2 = a.try_admit(t0, &k).unwrap();
        let r = a.try_admit(t0, &k).unwrap_err();
        assert_eq!((r.scope, r.limit, r.retry_after), (Scope::Trunk, CallLimit::Concurrent, None));
        assert_eq!(a.active(ActiveScope::Trunk(T0)), 2);
        assert_eq!(a.active(ActiveScope::Zone(Z0)), 2, "uncapped scopes are still counted");
        assert_eq!(a.active(ActiveScope::Source(ip("192.0.2.1"))), 2);
        a.release(t1);
        assert_eq!(a.active(ActiveScope::Trunk(T0)), 1);
        let t3 = a.try_admit(t0, &k).unwrap();
        a.release(t2);
        drop(t3);
        assert_eq!(a.active(ActiveScope::Trunk(T0)), 0);
        assert_eq!(a.active(ActiveScope::Source(ip("192.0.2.1"))), 0);
        assert_eq!(a.sources_tracked(), 0, "a source without calls nor rate is forgotten");
    }

    #[test]
    fn cps_cap_per_zone_refills_with_time() {
        let t0 = Instant::now();
        let a = CallAdmission::new(
            &[],
            &[("lan", zone(caps(None, Some((2.0, 2))), CallCaps::default()))],
            1000,
            SourceKeying::default(),
        );
        let k = AdmissionKey { trunk: None, zone: Some(Z0), source: None };
        let _t1 = a.try_admit(t0, &k).unwrap();
        let _t2 = a.try_admit(t0, &k).unwrap();
        let r = a.try_admit(t0, &k).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Zone, CallLimit::Rate));
        assert_eq!(r.retry_after, Some(Duration::from_millis(500)));
        assert_eq!(a.active(ActiveScope::Zone(Z0)), 2, "the refused call holds no slot");
        assert!(a.try_admit(t0 + Duration::from_millis(500), &k).is_ok());
    }

    #[test]
    fn refusal_by_a_later_scope_gives_back_earlier_ones() {
        let t0 = Instant::now();
        let a = admission(
            caps(Some(10), Some((1.0, 1))),
            zone(caps(Some(10), Some((1.0, 1))), caps(Some(0), None)),
            1000,
        );
        // The source cap (0 concurrent) refuses after trunk and zone took a slot and a token.
        let r = a.try_admit(t0, &key("192.0.2.1")).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Source, CallLimit::Concurrent));
        assert_eq!(a.active(ActiveScope::Trunk(T0)), 0);
        assert_eq!(a.active(ActiveScope::Zone(Z0)), 0);
        // Their rate tokens came back too: a call without a source is admitted at once.
        let k = AdmissionKey { source: None, ..key("192.0.2.1") };
        assert_eq!(a.try_admit(t0, &k).unwrap().counted(), (true, true, false));
    }

    #[test]
    fn per_source_caps_apply_per_source() {
        let t0 = Instant::now();
        let a = admission(
            CallCaps::default(),
            zone(CallCaps::default(), caps(Some(1), Some((1.0, 2)))),
            1000,
        );
        let x = a.try_admit(t0, &key("192.0.2.1")).unwrap();
        let r = a.try_admit(t0, &key("192.0.2.1")).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Source, CallLimit::Concurrent));
        let y = a.try_admit(t0, &key("192.0.2.2")).unwrap();
        a.release(x);
        // Concurrency is free again, but the source's rate bucket (burst 2) is spent.
        let r = a.try_admit(t0, &key("192.0.2.1")).unwrap();
        a.release(r);
        let r = a.try_admit(t0, &key("192.0.2.1")).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Source, CallLimit::Rate));
        a.release(y);
        assert_eq!(a.active(ActiveScope::Source(ip("192.0.2.1"))), 0);
        assert_eq!(a.active(ActiveScope::Zone(Z0)), 0);
        // Sources whose rate bucket refilled are forgotten.
        assert_eq!(a.purge_idle(t0 + Duration::from_secs(5)), 2);
    }

    #[test]
    fn unknown_scopes_are_not_counted() {
        let t0 = Instant::now();
        let a = CallAdmission::new(&[], &[], 1000, SourceKeying::default());
        let k = AdmissionKey {
            trunk: Some(TrunkId(7)),
            zone: Some(ZoneId(3)),
            source: Some(ip("192.0.2.1")),
        };
        let t = a.try_admit(t0, &k).unwrap();
        assert_eq!(t.counted(), (false, false, false));
        assert_eq!(a.active(ActiveScope::Trunk(TrunkId(7))), 0);
    }

    #[test]
    fn sources_with_calls_are_never_evicted() {
        let t0 = Instant::now();
        let a = admission(CallCaps::default(), zone(CallCaps::default(), caps(Some(5), None)), 4);
        let tickets: Vec<Ticket> =
            (1..=4).map(|i| a.try_admit(t0, &key(&format!("192.0.2.{i}"))).unwrap()).collect();
        let r = a.try_admit(t0, &key("192.0.2.99")).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Source, CallLimit::Capacity));
        assert_eq!(a.active(ActiveScope::Zone(Z0)), 4);
        drop(tickets);
        assert!(a.try_admit(t0, &key("192.0.2.99")).is_ok());
    }

    #[test]
    fn reload_keeps_counts_by_name_and_old_tickets_release_what_they_took() {
        let t0 = Instant::now();
        let a = CallAdmission::new(
            &[("itsp", caps(Some(3), None)), ("pbx", CallCaps::default())],
            &[("lan", ZoneCaps::default())],
            1000,
            SourceKeying::default(),
        );
        let k = AdmissionKey { trunk: Some(TrunkId(0)), zone: Some(Z0), source: None };
        let old = a.try_admit(t0, &k).unwrap();
        // The new config puts "itsp" second, lowers its cap, and drops "pbx".
        let b = a.reconfigured(
            &[("new", CallCaps::default()), ("itsp", caps(Some(1), None))],
            &[("lan", ZoneCaps::default())],
        );
        assert_eq!(b.active(ActiveScope::Trunk(TrunkId(1))), 1, "itsp kept its call");
        assert_eq!(b.active(ActiveScope::Trunk(TrunkId(0))), 0);
        let r = b.try_admit(t0, &AdmissionKey { trunk: Some(TrunkId(1)), ..k }).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Trunk, CallLimit::Concurrent), "new cap applies");
        drop(old);
        assert_eq!(b.active(ActiveScope::Trunk(TrunkId(1))), 0);
        assert_eq!(b.active(ActiveScope::Trunk(TrunkId(0))), 0, "the new trunk 0 was untouched");
        assert_eq!(b.active(ActiveScope::Zone(Z0)), 0);
    }

    #[test]
    fn concurrent_admission_from_threads_never_exceeds_the_cap() {
        let t0 = Instant::now();
        let a = Arc::new(admission(caps(Some(50), None), ZoneCaps::default(), 1000));
        let peak = Arc::new(AtomicU32::new(0));
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let (a, peak) = (a.clone(), peak.clone());
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..10_000u32 {
                        let k = key(&format!("10.0.{n}.{}", i % 200));
                        if let Ok(t) = a.try_admit(t0, &k) {
                            peak.fetch_max(a.active(ActiveScope::Trunk(T0)), Ordering::Relaxed);
                            held.push(t);
                        }
                        if held.len() > 20 || i % 7 == 0 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(peak.load(Ordering::Relaxed) <= 50);
        assert_eq!(a.active(ActiveScope::Trunk(T0)), 0);
        assert_eq!(a.active(ActiveScope::Zone(Z0)), 0);
        assert_eq!(a.sources_tracked(), 0);
    }
}
