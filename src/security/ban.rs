//! Automatic bans, fail2ban style: a source that fails authentication, asks for unknown users
//! or sends malformed requests too often within a window is banned for a while; a scanner is
//! banned at once. While banned, everything it sends is dropped before parsing.
//!
//! Strikes are counted per source and reason in a window that opens at the first strike: the
//! N-th strike within `window` of the first bans; a window that ran out starts over. Bans and
//! strikes live in two bounded tables (see `security::source`): when full, expired bans and
//! stale strikes go first, then the bans closest to expiry and the sources struck longest ago.
//! The ban table being empty (the usual case) makes [`BanList::is_banned`] a single atomic load.
//!
//! Strikes from UDP sources can be forged: anyone can send a REGISTER with a peer's address as
//! source. The caller must therefore never strike a trusted peer ([`super::guard::EdgeGuard`]
//! does not), and an ITSP-facing zone should have an ACL.

use super::source::{SourceKeying, SourceTable, Tracked};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::config::schema::DurationValue;

/// Why a source was struck or banned; a bounded set, usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Credentials were sent and were wrong (a challenge answered badly), RFC 3261 §22.
    AuthFailed,
    /// A request for a user or number that does not exist here (404, no route).
    UnknownUser,
    /// A request that could not be parsed or failed validation.
    Malformed,
    /// A scanner User-Agent: banned on the first request.
    Scanner,
    /// Banned by an operator.
    Manual,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 5] = [
        Reason::AuthFailed,
        Reason::UnknownUser,
        Reason::Malformed,
        Reason::Scanner,
        Reason::Manual,
    ];

    /// Short snake_case label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Reason::AuthFailed => "auth_failed",
            Reason::UnknownUser => "unknown_user",
            Reason::Malformed => "malformed",
            Reason::Scanner => "scanner",
            Reason::Manual => "manual",
        }
    }

    /// Index of the strike counter, for reasons that count.
    fn counter(self) -> Option<usize> {
        match self {
            Reason::AuthFailed => Some(0),
            Reason::UnknownUser => Some(1),
            Reason::Malformed => Some(2),
            Reason::Scanner | Reason::Manual => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Reason::AuthFailed => 0,
            Reason::UnknownUser => 1,
            Reason::Malformed => 2,
            Reason::Scanner => 3,
            Reason::Manual => 4,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Ban thresholds and duration (YAML `security.ban`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanConfig {
    /// Strikes count within this window from the first one (default 1m).
    pub window: DurationValue,
    /// How long a ban lasts (default 15m).
    pub ttl: DurationValue,
    /// Failed authentications within `window` that ban; 0 never bans for it (default 5).
    pub auth_failures: u32,
    /// Requests for unknown users within `window` that ban; 0 never (default 10).
    pub unknown_users: u32,
    /// Malformed requests within `window` that ban; 0 never (default 0: a broken phone
    /// behind a NAT would lock out its whole site).
    pub malformed: u32,
    /// Most sources tracked, struck and banned each (default 100000).
    pub max_entries: usize,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig {
            window: DurationValue(Duration::from_secs(60)),
            ttl: DurationValue(Duration::from_secs(15 * 60)),
            auth_failures: 5,
            unknown_users: 10,
            malformed: 0,
            max_entries: 100_000,
        }
    }
}

/// One ban, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanEntry {
    /// The banned source: an IPv4 address, or an IPv6 prefix's network address.
    pub source: IpAddr,
    /// Why.
    pub reason: Reason,
    /// When the ban started.
    pub since: Instant,
    /// When it ends.
    pub until: Instant,
    /// Strikes that led to it (1 for immediate bans).
    pub strikes: u32,
}

#[derive(Debug, Clone, Copy)]
struct Ban {
    reason: Reason,
    since: Instant,
    until: Instant,
    strikes: u32,
}

impl Tracked for Ban {
    type Ctx = ();
    fn is_idle(&self, _: &(), now: Instant) -> bool {
        now >= self.until
    }
    /// Under pressure the ban closest to its end goes first.
    fn rank(&self) -> Instant {
        self.until
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u32,
    start: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    windows: [Window; 3],
    seen: Instant,
}

impl Tracked for Strikes {
    type Ctx = Duration;
    fn is_idle(&self, window: &Duration, now: Instant) -> bool {
        self.windows
            .iter()
            .all(|w| w.count == 0 || now.saturating_duration_since(w.start) >= *window)
    }
    fn rank(&self) -> Instant {
        self.seen
    }
}

/// The thresholds in force; behind a lock so a reload changes them without losing bans.
#[derive(Debug, Clone, Copy)]
struct Settings {
    window: Duration,
    ttl: Duration,
    thresholds: [u32; 3],
}

impl Settings {
    fn of(config: &BanConfig) -> Settings {
        Settings {
            window: config.window.0,
            ttl: config.ttl.0,
            thresholds: [config.auth_failures, config.unknown_users, config.malformed],
        }
    }
}

/// Strikes and bans per source, shared by every receive thread.
#[derive(Debug)]
pub struct BanList {
    settings: RwLock<Settings>,
    bans: SourceTable<Ban>,
    strikes: SourceTable<Strikes>,
    started: [AtomicU64; 5],
}

/// `now + d`, or the farthest instant representable.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

impl BanList {
    /// A ban list with `config`'s thresholds.
    pub fn new(config: &BanConfig, keying: SourceKeying) -> BanList {
        BanList {
            settings: RwLock::new(Settings::of(config)),
            bans: SourceTable::new(config.max_entries, keying),
            strikes: SourceTable::new(config.max_entries, keying),
            started: Default::default(),
        }
    }

    fn settings(&self) -> Settings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies new thresholds, window and ttl (a reload); bans in force keep their end, and
    /// `max_entries` keeps its first value until a restart.
    pub fn reconfigure(&self, config: &BanConfig) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Settings::of(config);
    }

    /// The ban duration.
    pub fn ttl(&self) -> Duration {
        self.settings().ttl
    }

    /// Counts a strike against `source`. Returns the ban when this strike started one; a
    /// [`Reason::Scanner`] or [`Reason::Manual`] strike bans at once.
    pub fn strike(&self, source: IpAddr, now: Instant, reason: Reason) -> Option<BanEntry> {
        let settings = self.settings();
        let Some(i) = reason.counter() else {
            return Some(self.ban(source, now, reason, settings.ttl));
        };
        let threshold = settings.thresholds[i];
        if threshold == 0 || self.is_banned(source, now) {
            return None;
        }
        let window = settings.window;
        let fresh = Window { count: 0, start: now };
        let make = || Strikes { windows: [fresh; 3], seen: now };
        let count = self.strikes.upsert(source, now, &window, make, |s| {
            s.seen = s.seen.max(now);
            let w = &mut s.windows[i];
            if w.count == 0 || now.saturating_duration_since(w.start) >= window {
                *w = fresh;
            }
            w.count = w.count.saturating_add(1);
            w.count
        })?;
        if count < threshold {
            return None;
        }
        self.strikes.remove(source);
        let entry = self.insert(source, now, reason, settings.ttl, count);
        Some(entry)
    }

    /// Bans `source` for `ttl` from `now` (replacing any ban it has), e.g. from an admin
    /// command.
    pub fn ban(&self, source: IpAddr, now: Instant, reason: Reason, ttl: Duration) -> BanEntry {
        self.strikes.remove(source);
        self.insert(source, now, reason, ttl, 1)
    }

    fn insert(
        &self,
        source: IpAddr,
        now: Instant,
        reason: Reason,
        ttl: Duration,
        strikes: u32,
    ) -> BanEntry {
        let ban = Ban { reason, since: now, until: later(now, ttl), strikes };
        // Ban entries are never pinned, so a full shard always makes room.
        let _ = self.bans.upsert(source, now, &(), || ban, |b| *b = ban);
        self.started[reason.index()].fetch_add(1, Ordering::Relaxed);
        let entry = BanEntry {
            source: self.bans.key(source),
            reason,
            since: ban.since,
            until: ban.until,
            strikes,
        };
        tracing::warn!(
            source = %entry.source,
            reason = reason.label(),
            strikes,
            ttl_s = ttl.as_secs(),
            "source banned"
        );
        entry
    }

    /// True when `source` is banned at `now`. An expired ban is removed on the way.
    pub fn is_banned(&self, source: IpAddr, now: Instant) -> bool {
        if self.bans.len() == 0 {
            return false;
        }
        self.bans.update(source, |b| (now < b.until, now >= b.until)).unwrap_or(false)
    }

    /// Bans in force at `now`, oldest first.
    pub fn list(&self, now: Instant) -> Vec<BanEntry> {
        let mut out = Vec::new();
        self.bans.for_each(|k, b| {
            if now < b.until {
                out.push(BanEntry {
                    source: *k,
                    reason: b.reason,
                    since: b.since,
                    until: b.until,
                    strikes: b.strikes,
                });
            }
        });
        out.sort_by_key(|e| (e.since, e.source));
        out
    }

    /// Lifts the ban of `source` (and forgets its strikes); returns the ban there was.
    pub fn lift(&self, source: IpAddr) -> Option<BanEntry> {
        self.strikes.remove(source);
        let key = self.bans.key(source);
        let b = self.bans.remove(source)?;
        tracing::info!(source = %key, reason = b.reason.label(), "ban lifted");
        Some(BanEntry {
            source: key,
            reason: b.reason,
            since: b.since,
            until: b.until,
            strikes: b.strikes,
        })
    }

    /// Removes expired bans and stale strikes; returns how many bans ended.
    pub fn purge_expired(&self, now: Instant) -> usize {
        self.strikes.purge_idle(&self.settings().window, now);
        self.bans.purge_idle(&(), now)
    }

    /// Ban entries held (expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// True when no ban is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sources with strikes but no ban.
    pub fn struck(&self) -> usize {
        self.strikes.len()
    }

    /// Bans started so far for `reason` (a counter for metrics).
    pub fn started(&self, reason: Reason) -> u64 {
        self.started[reason.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn list(auth: u32, unknown: u32) -> BanList {
        let cfg = BanConfig {
            window: DurationValue(secs(60)),
            ttl: DurationValue(secs(600)),
            auth_failures: auth,
            unknown_users: unknown,
            malformed: 0,
            max_entries: 1000,
        };
        BanList::new(&cfg, SourceKeying::default())
    }

    #[test]
    fn n_auth_failures_within_the_window_ban_for_the_ttl() {
        let t0 = Instant::now();
        let b = list(3, 10);
        let a = ip("192.0.2.1");
        assert!(!b.is_banned(a, t0));
        assert!(b.strike(a, t0, Reason::AuthFailed).is_none());
        assert!(b.strike(a, t0 + secs(10), Reason::AuthFailed).is_none());
        let ban = b.strike(a, t0 + secs(59), Reason::AuthFailed).unwrap();
        assert_eq!((ban.source, ban.reason, ban.strikes), (a, Reason::AuthFailed, 3));
        assert_eq!(ban.until, t0 + secs(59 + 600));
        assert!(b.is_banned(a, t0 + secs(59)));
        assert!(b.is_banned(a, t0 + secs(658)));
        assert!(!b.is_banned(a, t0 + secs(659)), "the ban ends after its ttl");
        assert_eq!(b.len(), 0, "the expired ban was removed when looked at");
        assert_eq!(b.started(Reason::AuthFailed), 1);
    }

    #[test]
    fn strikes_outside_the_window_start_over() {
        let t0 = Instant::now();
        let b = list(3, 10);
        let a = ip("192.0.2.1");
        b.strike(a, t0, Reason::AuthFailed);
        b.strike(a, t0 + secs(30), Reason::AuthFailed);
        // 60 s after the first strike the window is over: this one opens a new window.
        assert!(b.strike(a, t0 + secs(60), Reason::AuthFailed).is_none());
        assert!(b.strike(a, t0 + secs(61), Reason::AuthFailed).is_none());
        assert!(b.strike(a, t0 + secs(62), Reason::AuthFailed).is_some());
    }

    #[test]
    fn reasons_count_apart_and_zero_never_bans() {
        let t0 = Instant::now();
        let b = list(2, 0);
        let a = ip("192.0.2.1");
        for _ in 0..100 {
            assert!(b.strike(a, t0, Reason::UnknownUser).is_none());
            assert!(b.strike(a, t0, Reason::Malformed).is_none());
        }
        assert!(b.strike(a, t0, Reason::AuthFailed).is_none());
        assert!(b.strike(a, t0, Reason::AuthFailed).is_some());
        // Once banned, further strikes do not extend the ban.
        assert!(b.strike(a, t0 + secs(5), Reason::AuthFailed).is_none());
        assert_eq!(b.list(t0 + secs(5))[0].until, t0 + secs(600));
    }

    #[test]
    fn scanner_and_manual_ban_at_once() {
        let t0 = Instant::now();
        let b = list(5, 5);
        let s = b.strike(ip("192.0.2.7"), t0, Reason::Scanner).unwrap();
        assert_eq!((s.reason, s.strikes), (Reason::Scanner, 1));
        let m = b.ban(ip("192.0.2.8"), t0 + secs(1), Reason::Manual, secs(30));
        assert_eq!(m.until, t0 + secs(31));
        let listed = b.list(t0 + secs(2));
        assert_eq!(
            listed.iter().map(|e| e.source).collect::<Vec<_>>(),
            [ip("192.0.2.7"), ip("192.0.2.8")]
        );
        assert_eq!(b.list(t0 + secs(31)).len(), 1, "expired bans are not listed");
    }

    #[test]
    fn lift_ends_a_ban_and_forgets_strikes() {
        let t0 = Instant::now();
        let b = list(2, 5);
        let a = ip("192.0.2.1");
        b.strike(a, t0, Reason::AuthFailed);
        b.strike(a, t0, Reason::AuthFailed).unwrap();
        let lifted = b.lift(a).unwrap();
        assert_eq!(lifted.reason, Reason::AuthFailed);
        assert!(!b.is_banned(a, t0));
        assert!(b.lift(a).is_none());
        // Strikes start from zero after a lift.
        assert!(b.strike(a, t0, Reason::AuthFailed).is_none());
    }

    #[test]
    fn ipv6_bans_cover_the_prefix() {
        let t0 = Instant::now();
        let b = list(1, 1);
        let e = b.strike(ip("2001:db8:1:2::99"), t0, Reason::AuthFailed).unwrap();
        assert_eq!(e.source, ip("2001:db8:1:2::"));
        assert!(b.is_banned(ip("2001:db8:1:2:ffff::1"), t0));
        assert!(!b.is_banned(ip("2001:db8:1:3::1"), t0));
        assert!(b.lift(ip("2001:db8:1:2::5")).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_struck_sources() {
        let t0 = Instant::now();
        let cfg = BanConfig { max_entries: 512, auth_failures: 2, ..BanConfig::default() };
        let b = BanList::new(&cfg, SourceKeying::default());
        for i in 0..50_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            let src = IpAddr::V4((0x0a00_0000 + i).into());
            b.strike(src, now, Reason::AuthFailed);
            b.strike(src, now, Reason::AuthFailed);
            assert!(b.len() <= 512 + 8 && b.struck() <= 512 + 8);
        }
        // The most recent bans survived.
        assert!(b.is_banned(IpAddr::V4((0x0a00_0000 + 49_999u32).into()), t0 + secs(1)));
    }

    #[test]
    fn purge_removes_expired_bans_and_stale_strikes() {
        let t0 = Instant::now();
        let b = list(3, 10);
        b.strike(ip("192.0.2.1"), t0, Reason::AuthFailed);
        b.ban(ip("192.0.2.2"), t0, Reason::Manual, secs(10));
        assert_eq!((b.len(), b.struck()), (1, 1));
        assert_eq!(b.purge_expired(t0 + secs(5)), 0);
        assert_eq!(b.purge_expired(t0 + secs(61)), 1);
        assert_eq!((b.len(), b.struck()), (0, 0));
        assert!(b.is_empty());
    }

    #[test]
    fn reconfigure_changes_thresholds_and_keeps_bans() {
        let t0 = Instant::now();
        let b = list(5, 5);
        b.ban(ip("192.0.2.9"), t0, Reason::Manual, secs(100));
        b.reconfigure(&BanConfig {
            auth_failures: 1,
            ttl: DurationValue(secs(5)),
            ..BanConfig::default()
        });
        assert!(b.is_banned(ip("192.0.2.9"), t0 + secs(50)));
        let e = b.strike(ip("192.0.2.1"), t0, Reason::AuthFailed).unwrap();
        assert_eq!(e.until, t0 + secs(5));
        assert_eq!(b.ttl(), secs(5));
    }

    #[test]
    fn huge_ttl_does_not_overflow() {
        let t0 = Instant::now();
        let b = list(1, 1);
        let e = b.ban(ip("192.0.2.1"), t0, Reason::Manual, Duration::MAX);
        assert!(e.until > t0);
        assert!(b.is_banned(ip("192.0.2.1"), t0 + secs(86_400 * 365)));
    }
}
