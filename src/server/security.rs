//! The edge guard as the server holds it: one [`EdgeGuard`] plus what the receive path needs
//! around it (which sources are configured trunks, which zones get scrubbed headers), swapped
//! whole on reload, and the housekeeping task that keeps its gauges and logs.
//!
//! Readers take an `Arc` of the current state under a read lock held for one pointer copy; a
//! reload builds the new state from the old guard (bans, call and connection counts carry
//! over) and swaps it in. A config the guard refuses leaves the running one in place.

use crate::config::Config;
use crate::observe::names;
use crate::security::ban::Reason;
use crate::security::{DisclosureConfig, EdgeGuard, SecurityConfigError, Verdict};
use crate::transport::flow::ZoneId;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// One generation of the security settings.
#[derive(Debug)]
pub struct EdgeState {
    /// The guard.
    pub guard: Arc<EdgeGuard>,
    /// Zone names by [`ZoneId`] (metric labels).
    pub zone_names: Vec<String>,
    /// IPs of the trunks configured in each zone: sources trusted one by one.
    trunk_ips: Vec<Vec<IpAddr>>,
    /// Zones whose outbound messages are scrubbed (the zones not marked trusted).
    scrubbed: Vec<bool>,
    /// How they are scrubbed.
    pub disclosure: DisclosureConfig,
    /// Transactions in total before new requests are refused (0: no cap).
    pub max_transactions: usize,
}

impl EdgeState {
    fn build(cfg: &Config, guard: EdgeGuard) -> EdgeState {
        let zone_names: Vec<String> = cfg.zones.iter().map(|z| z.name.clone()).collect();
        let trunk_ips = zone_names
            .iter()
            .map(|z| cfg.trunks.iter().filter(|t| &t.zone == z).map(|t| t.address.ip()).collect())
            .collect();
        let scrubbed =
            (0..zone_names.len()).map(|i| !guard.zone_trusted(ZoneId(i as u16))).collect();
        EdgeState {
            max_transactions: guard.limits().max_transactions,
            guard: Arc::new(guard),
            zone_names,
            trunk_ips,
            scrubbed,
            disclosure: cfg.security.disclosure.clone(),
        }
    }

    /// True when `source` is a configured trunk of `zone` (its address, any port): such a
    /// peer gets 503 rather than silence and is never banned.
    pub fn trusted_source(&self, zone: ZoneId, source: IpAddr) -> bool {
        self.trunk_ips.get(usize::from(zone.0)).is_some_and(|ips| ips.contains(&source))
    }

    /// True when messages toward `zone` have their headers scrubbed.
    pub fn scrubs(&self, zone: ZoneId) -> bool {
        self.scrubbed.get(usize::from(zone.0)).copied().unwrap_or(true)
    }

    /// Counts a refusal under its zone, reason and action.
    pub fn count(&self, zone: ZoneId, reason: &'static str, rejected: bool) {
        let zone = self.zone_names.get(usize::from(zone.0)).cloned().unwrap_or_default();
        let action = if rejected { "rejected" } else { "dropped" };
        metrics::counter!(names::SECURITY_REFUSED_TOTAL, "zone" => zone, "reason" => reason, "action" => action)
            .increment(1);
    }

    /// Counts a verdict that is not a pass.
    pub fn count_verdict(&self, zone: ZoneId, v: &Verdict) {
        if let Some(r) = v.reason() {
            self.count(zone, r.label(), matches!(v, Verdict::Reject { .. }));
        }
    }

    /// Counts a strike against an untrusted source; a strike that bans is logged by the ban
    /// list.
    pub fn strike(&self, zone: ZoneId, source: IpAddr, reason: Reason) {
        let trusted = self.trusted_source(zone, source);
        if trusted || self.guard.zone_trusted(zone) {
            return;
        }
        metrics::counter!(names::SECURITY_STRIKES_TOTAL, "reason" => reason.label()).increment(1);
        self.guard.strike(Instant::now(), zone, source, trusted, reason);
    }
}

/// The current [`EdgeState`], shared by every receive task, the shards (through the router),
/// the admin endpoint and the housekeeping task.
#[derive(Debug)]
pub struct Security {
    current: RwLock<Arc<EdgeState>>,
}

/// Zone and trunk names in id order, as the guard wants them.
fn names(cfg: &Config) -> (Vec<&str>, Vec<&str>) {
    (
        cfg.zones.iter().map(|z| z.name.as_str()).collect(),
        cfg.trunks.iter().map(|t| t.name.as_str()).collect(),
    )
}

impl Security {
    /// The security of a (validated) config.
    pub fn new(cfg: &Config) -> Result<Security, SecurityConfigError> {
        let (zones, trunks) = names(cfg);
        let guard = EdgeGuard::new(&cfg.security, &zones, &trunks)?;
        Ok(Security { current: RwLock::new(Arc::new(EdgeState::build(cfg, guard))) })
    }

    /// The state in force.
    pub fn load(&self) -> Arc<EdgeState> {
        match self.current.read() {
            Ok(s) => s.clone(),
            // A writer panicked mid-swap: the Arc inside is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in `cfg`'s settings, keeping bans and counts; on error nothing changes.
    pub fn reload(&self, cfg: &Config) -> Result<Arc<EdgeState>, SecurityConfigError> {
        let (zones, trunks) = names(cfg);
        let guard = self.load().guard.reload(&cfg.security, &zones, &trunks)?;
        let state = Arc::new(EdgeState::build(cfg, guard));
        match self.current.write() {
            Ok(mut w) => *w = state.clone(),
            Err(poisoned) => *poisoned.into_inner() = state.clone(),
        }
        Ok(state)
    }
}

/// Every second: expired bans and idle sources forgotten (logged), gauges and counters of
/// bans published.
pub async fn housekeeping(security: Arc<Security>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut issued = [0u64; Reason::ALL.len()];
    loop {
        tick.tick().await;
        let state = security.load();
        let guard = &state.guard;
        let now = Instant::now();
        let ended = guard.housekeeping(now);
        if ended > 0 {
            tracing::info!(count = ended, "bans expired");
            metrics::counter!(names::BANS_ENDED_TOTAL, "how" => "expired").increment(ended as u64);
        }
        for (seen, reason) in issued.iter_mut().zip(Reason::ALL) {
            let n = guard.bans().started(reason);
            if n > *seen {
                metrics::counter!(names::BANS_TOTAL, "reason" => reason.label())
                    .increment(n - *seen);
                *seen = n;
            }
        }
        let stats = guard.stats();
        metrics::gauge!(names::BANS).set(guard.bans().list(now).len() as f64);
        metrics::gauge!(names::SECURITY_SOURCES_TRACKED).set(stats.sources_tracked as f64);
        metrics::gauge!(names::TCP_CONNECTIONS).set(stats.tcp_connections as f64);
    }
}
