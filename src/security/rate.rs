//! Per-source request rate limits: token buckets for all requests, and for INVITE and REGISTER
//! separately, kept per source address in bounded memory.
//!
//! A bucket holds at most `burst` tokens and gains `rate` per second; each request takes one. The
//! bucket keeps only its state (tokens, last refill): the [`RateLimit`] it is judged by is passed
//! in, so a limiter tracking 100k sources stores the configured rates once, not 300k times.
//! Time is always passed in (`now`), never read, so the buckets are tested with a fake clock.
//!
//! Only requests are limited. A peer's responses are driven by what sipborder sent it, so
//! limiting them would throttle sipborder's own calls; stray responses die at transaction
//! matching, and a source flooding them is an ACL or ban matter.

use super::source::{SourceKeying, SourceTable, Tracked};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Slowest rate accepted, so a refill wait always fits a `Duration` and a Retry-After.
const MIN_RATE: f64 = 0.001;

/// A configured rate: `rate` tokens per second, at most `burst` banked.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawRateLimit")]
pub struct RateLimit {
    rate: f64,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    rate: f64,
    burst: u32,
}

/// A rate limit that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    /// Rate not a finite number of at least 0.001 per second.
    #[error("bad rate {0}: a number of requests per second, at least 0.001")]
    Rate(f64),
    /// Burst of zero: nothing would ever pass.
    #[error("bad burst 0: at least 1 (requests allowed at once)")]
    Burst,
}

impl TryFrom<RawRateLimit> for RateLimit {
    type Error = RateError;
    fn try_from(r: RawRateLimit) -> Result<Self, RateError> {
        RateLimit::new(r.rate, r.burst)
    }
}

impl RateLimit {
    /// `rate` per second with `burst` at once.
    pub fn new(rate: f64, burst: u32) -> Result<RateLimit, RateError> {
        if !rate.is_finite() || rate < MIN_RATE {
            return Err(RateError::Rate(rate));
        }
        if burst == 0 {
            return Err(RateError::Burst);
        }
        Ok(RateLimit { rate, burst })
    }

    /// Tokens gained per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Most tokens banked.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// The state of one token bucket; see the module doc for why the limit is passed in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: &RateLimit, now: Instant) -> TokenBucket {
        TokenBucket { tokens: f64::from(limit.burst), last: now }
    }

    fn refill(&mut self, limit: &RateLimit, now: Instant) {
        // Receive threads take `now` before they take the lock, so a slightly older `now` may
        // arrive after a newer one: it refills nothing rather than moving time backwards.
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * limit.rate).min(f64::from(limit.burst));
            self.last = now;
        }
    }

    /// Tokens available at `now` (fractional).
    pub fn available(&mut self, limit: &RateLimit, now: Instant) -> f64 {
        self.refill(limit, now);
        self.tokens
    }

    /// Takes one token, or says how long until one is there.
    pub fn try_take(&mut self, limit: &RateLimit, now: Instant) -> Result<(), Duration> {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait(limit))
        }
    }

    /// Gives back a token taken by [`try_take`](Self::try_take) for an attempt that another limit
    /// refused, so a refusal costs nothing.
    pub fn refund(&mut self, limit: &RateLimit) {
        self.tokens = (self.tokens + 1.0).min(f64::from(limit.burst));
    }

    /// True when the bucket would be full at `now`: it is then no different from a new one.
    pub fn is_full(&self, limit: &RateLimit, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * limit.rate >= f64::from(limit.burst)
    }

    /// Time until one token is available (after a refill).
    fn wait(&self, limit: &RateLimit) -> Duration {
        let secs = (1.0 - self.tokens).max(0.0) / limit.rate;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// Which bucket a request is counted in besides the all-requests one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// The all-requests bucket.
    Requests,
    /// INVITE.
    Invite,
    /// REGISTER.
    Register,
}

impl RateClass {
    /// The class a request method is counted in (besides [`RateClass::Requests`]).
    pub fn of(method: rsip::Method) -> RateClass {
        match method {
            rsip::Method::Invite => RateClass::Invite,
            rsip::Method::Register => RateClass::Register,
            _ => RateClass::Requests,
        }
    }

    /// Short snake_case label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            RateClass::Requests => "requests",
            RateClass::Invite => "invite",
            RateClass::Register => "register",
        }
    }
}

/// The per-source limits of one kind of source; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceRates {
    /// Every request.
    pub requests: Option<RateLimit>,
    /// INVITE (initial and re-INVITE, retransmissions included).
    pub invite: Option<RateLimit>,
    /// REGISTER.
    pub register: Option<RateLimit>,
}

impl SourceRates {
    /// True when nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.requests.is_none() && self.invite.is_none() && self.register.is_none()
    }

    fn class(&self, class: RateClass) -> Option<&RateLimit> {
        match class {
            RateClass::Requests => None,
            RateClass::Invite => self.invite.as_ref(),
            RateClass::Register => self.register.as_ref(),
        }
    }
}

/// A request refused by a source's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} rate limit exceeded, retry in {retry_after:?}", class.label())]
pub struct RateLimited {
    /// The bucket that was empty.
    pub class: RateClass,
    /// When a token will be there.
    pub retry_after: Duration,
}

/// One source's buckets; a bucket for an unlimited class is never touched.
#[derive(Debug, Clone, Copy)]
struct SourceBuckets {
    requests: TokenBucket,
    invite: TokenBucket,
    register: TokenBucket,
    seen: Instant,
}

impl Tracked for SourceBuckets {
    type Ctx = SourceRates;

    fn is_idle(&self, rates: &SourceRates, now: Instant) -> bool {
        let full = |b: &TokenBucket, l: &Option<RateLimit>| l.is_none_or(|l| b.is_full(&l, now));
        full(&self.requests, &rates.requests)
            && full(&self.invite, &rates.invite)
            && full(&self.register, &rates.register)
    }

    fn rank(&self) -> Instant {
        self.seen
    }
}

/// Token buckets per source address, sharded for concurrent receive threads and bounded in the
/// number of sources tracked (see `security::source` for the eviction rule).
#[derive(Debug)]
pub struct SourceLimiter {
    rates: SourceRates,
    table: SourceTable<SourceBuckets>,
}

impl SourceLimiter {
    /// A limiter applying `rates`, tracking at most about `max_sources` sources.
    pub fn new(rates: SourceRates, max_sources: usize, keying: SourceKeying) -> SourceLimiter {
        SourceLimiter { rates, table: SourceTable::new(max_sources, keying) }
    }

    /// The limits applied.
    pub fn rates(&self) -> &SourceRates {
        &self.rates
    }

    /// Counts one request of `method` from `source`. Both its buckets (all requests, and INVITE
    /// or REGISTER) must have a token, and a refused request takes none.
    pub fn check(
        &self,
        source: IpAddr,
        method: rsip::Method,
        now: Instant,
    ) -> Result<(), RateLimited> {
        let class = RateClass::of(method);
        let specific = self.rates.class(class);
        if self.rates.requests.is_none() && specific.is_none() {
            return Ok(());
        }
        let rates = &self.rates;
        let make = || {
            let full = |l: &Option<RateLimit>| match l {
                Some(l) => TokenBucket::new(l, now),
                None => TokenBucket { tokens: 0.0, last: now },
            };
            SourceBuckets {
                requests: full(&rates.requests),
                invite: full(&rates.invite),
                register: full(&rates.register),
                seen: now,
            }
        };
        let taken = self.table.upsert(source, now, rates, make, |b| {
            b.seen = b.seen.max(now);
            if let Some(l) = &rates.requests {
                b.requests.try_take(l, now).map_err(|w| (RateClass::Requests, w))?;
            }
            if let Some(l) = specific {
                let bucket = match class {
                    RateClass::Invite => &mut b.invite,
                    _ => &mut b.register,
                };
                if let Err(w) = bucket.try_take(l, now) {
                    if let Some(rl) = &rates.requests {
                        b.requests.refund(rl);
                    }
                    return Err((class, w));
                }
            }
            Ok(())
        });
        match taken {
            Some(Ok(())) => Ok(()),
            Some(Err((class, retry_after))) => Err(RateLimited { class, retry_after }),
            // The table never pins entries, so a full shard always makes room; if that ever
            // changed, refusing an untracked source is the safe side.
            None => {
                Err(RateLimited { class: RateClass::Requests, retry_after: Duration::from_secs(1) })
            }
        }
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Sources evicted under memory pressure so far.
    pub fn evicted(&self) -> u64 {
        self.table.evicted()
    }

    /// Forgets sources whose buckets are full again; returns how many. Optional housekeeping:
    /// a full table does the same on its own.
    pub fn purge_idle(&self, now: Instant) -> usize {
        self.table.purge_idle(&self.rates, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::Method;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rate_limit_refuses_unworkable_values() {
        assert!(RateLimit::new(10.0, 20).is_ok());
        assert_eq!(RateLimit::new(0.0, 1), Err(RateError::Rate(0.0)));
        assert!(RateLimit::new(f64::NAN, 1).is_err());
        assert!(RateLimit::new(f64::INFINITY, 1).is_err());
        assert!(RateLimit::new(-1.0, 1).is_err());
        assert_eq!(RateLimit::new(1.0, 0), Err(RateError::Burst));
        let r: RateLimit = serde_yaml::from_str("{rate: 2.5, burst: 5}").unwrap();
        assert_eq!((r.rate(), r.burst()), (2.5, 5));
        assert!(serde_yaml::from_str::<RateLimit>("{rate: 0, burst: 5}").is_err());
        assert!(serde_yaml::from_str::<RateLimit>("{rate: 1, burst: 5, per: 1s}").is_err());
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let l = RateLimit::new(10.0, 3).unwrap();
        let mut b = TokenBucket::new(&l, t0);
        for _ in 0..3 {
            assert!(b.try_take(&l, t0).is_ok());
        }
        let wait = b.try_take(&l, t0).unwrap_err();
        assert_eq!(wait, ms(100));
        assert!(b.try_take(&l, t0 + ms(99)).is_err());
        assert!(b.try_take(&l, t0 + ms(100)).is_ok());
        assert!(b.try_take(&l, t0 + ms(150)).is_err());
        // Idle for long: refills to burst, no further.
        assert!(b.is_full(&l, t0 + Duration::from_secs(10)));
        assert_eq!(b.available(&l, t0 + Duration::from_secs(10)), 3.0);
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let t0 = Instant::now();
        let l = RateLimit::new(1.0, 1).unwrap();
        let mut b = TokenBucket::new(&l, t0 + Duration::from_secs(5));
        assert!(b.try_take(&l, t0 + Duration::from_secs(5)).is_ok());
        // An older timestamp from another thread neither refills nor panics.
        assert!(b.try_take(&l, t0).is_err());
        assert!(b.try_take(&l, t0 + Duration::from_secs(6)).is_ok());
    }

    #[test]
    fn bucket_wait_of_a_very_slow_rate_fits() {
        let t0 = Instant::now();
        let l = RateLimit::new(MIN_RATE, 1).unwrap();
        let mut b = TokenBucket::new(&l, t0);
        b.try_take(&l, t0).unwrap();
        assert_eq!(b.try_take(&l, t0).unwrap_err(), Duration::from_secs(1000));
    }

    fn rates() -> SourceRates {
        SourceRates {
            requests: Some(RateLimit::new(10.0, 5).unwrap()),
            invite: Some(RateLimit::new(1.0, 2).unwrap()),
            register: Some(RateLimit::new(1.0, 1).unwrap()),
        }
    }

    #[test]
    fn limiter_counts_invite_and_register_apart_and_in_all_requests() {
        let t0 = Instant::now();
        let l = SourceLimiter::new(rates(), 1000, SourceKeying::default());
        let a = ip("192.0.2.1");
        assert!(l.check(a, Method::Invite, t0).is_ok());
        assert!(l.check(a, Method::Invite, t0).is_ok());
        let e = l.check(a, Method::Invite, t0).unwrap_err();
        assert_eq!(e.class, RateClass::Invite);
        assert_eq!(e.retry_after, Duration::from_secs(1));
        assert!(l.check(a, Method::Register, t0).is_ok());
        assert_eq!(l.check(a, Method::Register, t0).unwrap_err().class, RateClass::Register);
        // The refused INVITE and REGISTER took no token from the all-requests bucket: 3 of 5
        // used, so two OPTIONS pass and the third is refused by the all-requests bucket.
        assert!(l.check(a, Method::Options, t0).is_ok());
        assert!(l.check(a, Method::Options, t0).is_ok());
        assert_eq!(l.check(a, Method::Options, t0).unwrap_err().class, RateClass::Requests);
        // Another source has its own buckets.
        assert!(l.check(ip("192.0.2.2"), Method::Invite, t0).is_ok());
        assert_eq!(l.tracked(), 2);
        // Time refills.
        assert!(l.check(a, Method::Invite, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn limiter_without_limits_tracks_nothing() {
        let t0 = Instant::now();
        let l = SourceLimiter::new(SourceRates::default(), 1000, SourceKeying::default());
        for _ in 0..1000 {
            assert!(l.check(ip("192.0.2.1"), Method::Invite, t0).is_ok());
        }
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn limiter_with_only_an_invite_limit_leaves_other_methods_alone() {
        let t0 = Instant::now();
        let only_invite =
            SourceRates { invite: Some(RateLimit::new(1.0, 1).unwrap()), ..Default::default() };
        let l = SourceLimiter::new(only_invite, 1000, SourceKeying::default());
        let a = ip("192.0.2.1");
        for _ in 0..100 {
            assert!(l.check(a, Method::Options, t0).is_ok());
        }
        assert!(l.check(a, Method::Invite, t0).is_ok());
        assert!(l.check(a, Method::Invite, t0).is_err());
    }

    #[test]
    fn ipv6_sources_in_one_prefix_share_buckets() {
        let t0 = Instant::now();
        let l = SourceLimiter::new(rates(), 1000, SourceKeying::default());
        assert!(l.check(ip("2001:db8::1"), Method::Register, t0).is_ok());
        assert!(l.check(ip("2001:db8::2"), Method::Register, t0).is_err());
        assert!(l.check(ip("2001:db8:0:1::2"), Method::Register, t0).is_ok());
    }

    #[test]
    fn spoofed_flood_stays_bounded_and_a_steady_attacker_stays_limited() {
        let t0 = Instant::now();
        let l = SourceLimiter::new(rates(), 2048, SourceKeying::default());
        let attacker = ip("203.0.113.66");
        let mut attacker_passed = 0;
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            let spoofed = IpAddr::V4((0x0a00_0000 + i).into());
            let _ = l.check(spoofed, Method::Invite, now);
            if i % 10 == 0 && l.check(attacker, Method::Invite, now).is_ok() {
                attacker_passed += 1;
            }
            assert!(l.tracked() <= 2048 + 64);
        }
        // One second of flood: the attacker's INVITE bucket (burst 2, 1/s) let ~3 through, not
        // a fresh burst every time its entry would have been evicted.
        assert!(attacker_passed <= 4, "attacker passed {attacker_passed} INVITEs");
        assert!(l.evicted() > 0);
    }

    #[test]
    fn a_tracked_source_costs_112_bytes() {
        // The memory figure in SourcesConfig's documentation rests on this.
        assert_eq!(std::mem::size_of::<(IpAddr, SourceBuckets)>(), 112);
    }

    #[test]
    fn idle_sources_are_purged() {
        let t0 = Instant::now();
        let l = SourceLimiter::new(rates(), 1000, SourceKeying::default());
        l.check(ip("192.0.2.1"), Method::Invite, t0).unwrap();
        l.check(ip("192.0.2.2"), Method::Options, t0).unwrap();
        assert_eq!(l.purge_idle(t0 + ms(50)), 0);
        // Requests refill at 10/s (1 token: 100 ms); INVITE at 1/s.
        assert_eq!(l.purge_idle(t0 + ms(150)), 1);
        assert_eq!(l.purge_idle(t0 + Duration::from_secs(2)), 1);
        assert_eq!(l.tracked(), 0);
    }
}
