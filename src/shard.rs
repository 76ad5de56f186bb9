//! `Shard`: one signalling shard, sans-IO — a transaction layer and the B2BUA above it.
//!
//! Input: [`Shard::handle_message`], [`Shard::handle_timeout`], [`Shard::handle_transport_error`].
//! Output: [`Shard::poll_transmit`], [`Shard::poll_timeout`]. The tokio runtime in
//! `server` owns the sockets and the clock; tests drive a shard with a fake clock.

use crate::b2bua::{B2bua, Router};
use crate::media::controller::NullRelay;
use crate::media::{MediaController, MediaSettings, RelayControl};
use crate::sip::message::SipMsg;
use crate::transaction::{TimerConfig, TransactionLayer};
use crate::transport::flow::{Flow, Transmit};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One signalling shard.
#[derive(Debug)]
pub struct Shard {
    tl: TransactionLayer,
    b2b: B2bua,
}

impl Shard {
    /// Shard `index` of `count`, with `router` and `timers`, anchoring media on a relay that
    /// moves no packets (unit tests).
    pub fn new(index: usize, count: usize, router: Arc<Router>, timers: TimerConfig) -> Shard {
        let settings = MediaSettings { learning_window: Duration::from_secs(3), timeout: None };
        Self::with_relay(
            index,
            count,
            router,
            timers,
            Arc::new(NullRelay),
            settings,
            Duration::from_secs(2),
        )
    }

    /// Shard `index` of `count` anchoring media on `relay`.
    pub fn with_relay(
        index: usize,
        count: usize,
        router: Arc<Router>,
        timers: TimerConfig,
        relay: Arc<dyn RelayControl>,
        settings: MediaSettings,
        quarantine: Duration,
    ) -> Shard {
        let zones = router.zones.iter().map(|z| z.address.clone()).collect();
        let media_zones = MediaController::zones_for_shard(&router, index, count, quarantine);
        let media = MediaController::new(index, media_zones, relay, settings);
        Shard {
            tl: TransactionLayer::new(timers, zones),
            b2b: B2bua::new(index, count, router, media),
        }
    }

    /// A relay event for one of this shard's calls.
    pub fn handle_relay_event(&mut self, now: Instant, ev: crate::media::relay::RelayEvent) {
        self.b2b.handle_relay_event(now, ev, &mut self.tl);
        self.pump(now);
    }

    fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.tl.poll_event() {
            self.b2b.handle_event(now, ev, &mut self.tl);
        }
    }

    /// A parsed message arrived on `flow`.
    pub fn handle_message(&mut self, now: Instant, msg: SipMsg, flow: Flow) {
        self.tl.handle_message(now, msg, flow);
        self.pump(now);
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tl.handle_timeout(now);
        self.pump(now);
        self.b2b.handle_timeout(now, &mut self.tl);
        self.pump(now);
    }

    /// The transport could not reach `flow`'s peer.
    pub fn handle_transport_error(&mut self, now: Instant, flow: Flow) {
        self.tl.handle_transport_error(now, flow);
        self.pump(now);
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tl.poll_transmit()
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.tl.poll_timeout(), self.b2b.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Swaps routing and timers (config reload); calls in progress keep what they started with.
    pub fn reload(&mut self, router: Arc<Router>, timers: TimerConfig) {
        self.tl.set_timer_config(timers);
        self.b2b.set_router(router);
    }

    /// The B2BUA (state getters).
    pub fn b2bua(&self) -> &B2bua {
        &self.b2b
    }

    /// Mutable B2BUA (draining call records).
    pub fn b2bua_mut(&mut self) -> &mut B2bua {
        &mut self.b2b
    }

    /// The transaction layer (state getters).
    pub fn transactions(&self) -> &TransactionLayer {
        &self.tl
    }
}
