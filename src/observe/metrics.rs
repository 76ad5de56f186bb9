//! The Prometheus exporter and the gauges sampled from live state.

use crate::server::stats::SharedStats;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Errors starting the exporter.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The HTTP listener could not start.
    #[error("metrics listener on {addr}: {msg}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        msg: String,
    },
}

/// The metrics recorder, installed, and its listener, bound but not yet serving (the admin
/// paths need the server's ban list, which exists only once the server has started).
pub struct Endpoint {
    listener: tokio::net::TcpListener,
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

impl Endpoint {
    /// Serves `/metrics` and, with `security`, the ban list (see [`super::admin`]).
    pub fn serve(self, security: Option<Arc<crate::server::security::Security>>) {
        tokio::spawn(super::admin::serve(self.listener, self.handle, security));
    }
}

/// Binds the metrics listener on `addr` (inside a tokio runtime), installs the recorder and
/// publishes the HELP text of every metric in [`super::names::ALL`]. Metrics recorded from
/// now on are kept; they are served once [`Endpoint::serve`] runs.
pub async fn install(addr: SocketAddr) -> Result<Endpoint, MetricsError> {
    let err = |e: metrics_exporter_prometheus::BuildError| MetricsError::Listen {
        addr,
        msg: e.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| MetricsError::Listen { addr, msg: e.to_string() })?;
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            3600.0,
        ])
        .map_err(err)?
        // Jitter lives in milliseconds: the call-timing buckets would put every sample in one.
        .set_buckets_for_metric(
            Matcher::Full(super::names::RTP_JITTER_SECONDS.to_string()),
            &[0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5],
        )
        .map_err(err)?
        .install_recorder()
        .map_err(err)?;
    describe_all();
    Ok(Endpoint { listener, handle })
}

/// Gives every catalogued metric its HELP text (promtool's lint fails a metric without one).
/// Descriptions go to the installed recorder, so this runs after [`install`].
pub fn describe_all() {
    use super::names::Kind;
    for m in super::names::ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Samples live gauges every second.
pub async fn sample_gauges(stats: Arc<SharedStats>, zones: Vec<String>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut exhausted_seen = 0;
    loop {
        tick.tick().await;
        for (i, z) in zones.iter().enumerate() {
            let (used, free) = stats.ports(i);
            metrics::gauge!(super::names::RELAY_PORTS_IN_USE, "zone" => z.clone()).set(used as f64);
            metrics::gauge!(super::names::RELAY_PORTS_FREE, "zone" => z.clone()).set(free as f64);
        }
        let exhausted = stats.ports_exhausted();
        if exhausted > exhausted_seen {
            metrics::counter!(super::names::RELAY_PORTS_EXHAUSTED_TOTAL)
                .increment(exhausted - exhausted_seen);
            exhausted_seen = exhausted;
        }
        metrics::gauge!(super::names::CALLS_ACTIVE).set(stats.calls() as f64);
        metrics::gauge!(super::names::DIALOGS).set(stats.dialogs() as f64);
        metrics::gauge!(super::names::TRANSACTIONS).set(stats.transactions() as f64);
    }
}
