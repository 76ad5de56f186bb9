//! The tokio runtime around the sans-IO core: sockets per zone, the TCP connection table, one
//! task per signalling shard, and the dispatch of parsed messages to the shard owning the call.
//!
//! Messages are parsed on the task that received them (so parsing uses every core), then handed
//! to the shard chosen by hashing the Call-ID ([`crate::sip::callid`]); each shard owns its call
//! table outright, so no lock sits on the path of a message.

pub mod dispatch;
pub mod outbound;
pub mod security;
pub mod shard_task;
pub mod sockets;
pub mod stats;
pub mod tcp;
pub mod udp;

use crate::b2bua::Router;
use crate::config::{Config, DatapathKind};
use crate::media::relay::{Relay, RelayConfig, RelayEvent};
use crate::media::{MediaController, MediaSettings, RelayControl};
use crate::sip::parse::Limits;
use crate::transaction::TimerConfig;
use dispatch::Dispatcher;
use outbound::Outbound;
use shard_task::ShardInput;
use stats::SharedStats;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The media relay could not start.
    #[error("media relay: {0}")]
    Relay(std::io::Error),
    /// The security section was refused (validation normally catches this first).
    #[error("{0}")]
    Security(#[from] crate::security::SecurityConfigError),
    /// A listen socket could not be bound.
    #[error("zone {zone}: cannot listen on {transport} {addr}: {source}")]
    Bind {
        /// Zone name.
        zone: String,
        /// `udp` or `tcp`.
        transport: &'static str,
        /// Address.
        addr: std::net::SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

/// Timer values from the config.
pub fn timer_config(cfg: &Config) -> TimerConfig {
    TimerConfig {
        t1: cfg.timers.t1.0,
        t2: cfg.timers.t2.0,
        t4: cfg.timers.t4.0,
        timer_c: cfg.timers.invite_ring_timeout.0,
    }
}

/// Parse limits from the config.
pub fn limits(cfg: &Config) -> Limits {
    Limits {
        max_message_size: cfg.limits.max_message_size,
        max_headers: cfg.limits.max_headers,
        max_vias: cfg.limits.max_vias,
    }
}

/// A running server: handles to reload it and to see its state.
pub struct Server {
    shards: Vec<mpsc::Sender<ShardInput>>,
    /// The edge guard in force (admin endpoint: bans).
    pub security: Arc<security::Security>,
    /// Live counters summed over shards.
    pub stats: Arc<SharedStats>,
    /// Zone names (index = zone id), for metric labels.
    pub zone_names: Vec<String>,
}

impl Server {
    /// Binds every zone, starts the shards and the receive loops. Must run inside a tokio runtime.
    pub async fn start(cfg: &Config) -> Result<Server, ServerError> {
        let shard_count = if cfg.runtime.shards == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            cfg.runtime.shards
        };
        let security = Arc::new(security::Security::new(cfg)?);
        let mut router = Router::from_config(cfg);
        router.guard = Some(security.load().guard.clone());
        let router = Arc::new(router);
        let bound = sockets::bind_all(cfg)?;
        // Relay events (media timeouts, finished DTMF events) go to the shard owning the pair.
        // Unbounded so a relay thread never blocks; they come per call or per key press, never
        // per packet, so the channel's block allocations stay off the packet path.
        let mut relay_txs = Vec::with_capacity(shard_count);
        let mut relay_rxs = Vec::with_capacity(shard_count);
        for _ in 0..shard_count {
            let (tx, rx) = mpsc::unbounded_channel::<RelayEvent>();
            relay_txs.push(tx);
            relay_rxs.push(rx);
        }
        let on_event: crate::media::relay::EventHandler = Arc::new(move |ev: RelayEvent| {
            let id = ev.pair();
            if let Some(tx) = relay_txs.get(MediaController::shard_of_pair(id)) {
                let _ = tx.send(ev);
            }
        });
        let threads = if cfg.media.threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            cfg.media.threads
        };
        let relay = Relay::start(RelayConfig {
            threads,
            datapath: match cfg.media.datapath {
                DatapathKind::Auto => crate::media::relay::DatapathKind::Auto,
                DatapathKind::Epoll => crate::media::relay::DatapathKind::Epoll,
                DatapathKind::IoUring => crate::media::relay::DatapathKind::IoUring,
            },
            on_event: Some(on_event),
            ..RelayConfig::default()
        })
        .map_err(ServerError::Relay)?;
        tracing::info!(threads, datapaths = ?relay.datapaths(), "media relay started");
        let relay: Arc<dyn RelayControl> = Arc::new(relay);
        let settings = MediaSettings {
            learning_window: cfg.media.learning_window.0,
            timeout: Some(cfg.media.timeout.0).filter(|d| !d.is_zero()),
        };
        let stats = Arc::new(SharedStats::new(shard_count, cfg.zones.len()));
        let health = Arc::new(crate::trunk::health::TrunkHealth::new(router.trunks.len()));
        let bindings = Arc::new(crate::nat::bindings::BindingTable::new());
        let (err_tx, err_rx) = mpsc::unbounded_channel();
        let outbound = Arc::new(Outbound::new(&bound, cfg, err_tx));
        let mut senders = Vec::with_capacity(shard_count);
        let mut receivers = Vec::with_capacity(shard_count);
        for _ in 0..shard_count {
            let (tx, rx) = mpsc::channel::<ShardInput>(4096);
            senders.push(tx);
            receivers.push(rx);
        }
        let dispatcher = Arc::new(Dispatcher::new(
            senders.clone(),
            limits(cfg),
            outbound.clone(),
            security.clone(),
            stats.clone(),
        ));
        outbound.set_dispatcher(dispatcher.clone());
        let links = shard_task::PeerLinks::for_shards(shard_count);
        for (i, ((rx, relay_rx), peers)) in
            receivers.into_iter().zip(relay_rxs).zip(links).enumerate()
        {
            let shard = crate::shard::Shard::from_setup(
                tokio::time::Instant::now().into_std(),
                crate::shard::ShardSetup {
                    index: i,
                    count: shard_count,
                    router: router.clone(),
                    timers: timer_config(cfg),
                    relay: relay.clone(),
                    media: settings.clone(),
                    quarantine: cfg.media.quarantine.0,
                    health: health.clone(),
                    bindings: bindings.clone(),
                },
            );
            tokio::spawn(shard_task::run(
                shard,
                i,
                rx,
                relay_rx,
                peers,
                outbound.clone(),
                stats.clone(),
            ));
        }
        tokio::spawn(shard_task::forward_transport_errors(err_rx, senders.clone()));
        for (zone, sock) in bound.udp {
            tokio::spawn(udp::receive_loop(zone, sock, dispatcher.clone()));
        }
        for (zone, listener) in bound.tcp {
            tokio::spawn(tcp::accept_loop(zone, listener, dispatcher.clone(), outbound.clone()));
        }
        tokio::spawn(security::housekeeping(security.clone()));
        Ok(Server {
            shards: senders,
            security,
            stats,
            zone_names: cfg.zones.iter().map(|z| z.name.clone()).collect(),
        })
    }

    /// Drains for shutdown: new calls refused with 503 + Retry-After, trunks de-registered,
    /// calls in progress left to end until `grace`, then hung up with a Reason. Returns when no
    /// call and no transaction is left (or a short time after the hang-up).
    pub async fn drain(&self, grace: std::time::Duration) {
        for s in &self.shards {
            let _ = s.send(ShardInput::Drain).await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.stats.calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if self.stats.calls() > 0 {
            tracing::warn!(
                calls = self.stats.calls(),
                "drain grace over, hanging up remaining calls"
            );
            for s in &self.shards {
                let reason = "SIP;cause=503;text=\"Service shutting down\"".to_string();
                let _ = s.send(ShardInput::HangupAll(reason)).await;
            }
        }
        // Let BYEs, de-REGISTERs and their answers cross (bounded).
        let settle = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while (self.stats.calls() > 0 || self.stats.transactions() > 0)
            && tokio::time::Instant::now() < settle
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Applies a new (validated) config to every shard: routes, timers and the security
    /// settings (bans and counts carry over). Listen sockets are not rebound; a change of
    /// listen addresses needs a restart. When the security settings are refused nothing
    /// changes.
    pub async fn reload(&self, cfg: &Config) -> Result<(), ServerError> {
        let state = self.security.reload(cfg)?;
        let mut router = Router::from_config(cfg);
        router.guard = Some(state.guard.clone());
        let router = Arc::new(router);
        for s in &self.shards {
            let _ = s.send(ShardInput::Reload(router.clone(), timer_config(cfg))).await;
        }
        Ok(())
    }
}
