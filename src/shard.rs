//! `Shard`: one signalling shard, sans-IO — a transaction layer and the B2BUA above it.
//!
//! Input: [`Shard::handle_message`], [`Shard::handle_timeout`], [`Shard::handle_transport_error`].
//! Output: [`Shard::poll_transmit`], [`Shard::poll_timeout`]. The tokio runtime in
//! `server` owns the sockets and the clock; tests drive a shard with a fake clock.

use crate::b2bua::join::{PeerEnvelope, PeerMsg};
use crate::b2bua::{B2bua, Router};
use crate::media::controller::NullRelay;
use crate::media::{MediaController, MediaSettings, RelayControl};
use crate::sip::message::SipMsg;
use crate::transaction::{TimerConfig, TransactionLayer};
use crate::transport::flow::{Flow, Transmit};
use crate::trunk::edge::TrunkEdge;
use crate::trunk::health::TrunkHealth;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most Call-IDs one shard forwards to others at once (dialogs that replaced another's leg).
const MAX_FORWARDED: usize = 10_000;

/// One signalling shard.
#[derive(Debug)]
pub struct Shard {
    tl: TransactionLayer,
    b2b: B2bua,
    edge: TrunkEdge,
    /// Messages for calls on other shards, for the task to carry.
    peer_out: std::collections::VecDeque<PeerEnvelope>,
    /// Call-IDs hashing here whose dialog lives on another shard (an INVITE with Replaces
    /// joins the call of the Call-ID it replaces): everything of theirs goes there.
    forwarded: rustc_hash::FxHashMap<String, usize>,
}

/// What a shard is built from.
pub struct ShardSetup {
    /// Shard index.
    pub index: usize,
    /// Shard count.
    pub count: usize,
    /// Routing table.
    pub router: Arc<Router>,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// The media relay.
    pub relay: Arc<dyn RelayControl>,
    /// Media settings.
    pub media: MediaSettings,
    /// Relay port quarantine.
    pub quarantine: Duration,
    /// Trunk health shared by all shards.
    pub health: Arc<TrunkHealth>,
    /// Registration-proxy bindings shared by all shards.
    pub bindings: Arc<crate::nat::bindings::BindingTable>,
}

impl Shard {
    /// Shard `index` of `count`, with `router` and `timers`, anchoring media on a relay that
    /// moves no packets (unit tests).
    pub fn new(index: usize, count: usize, router: Arc<Router>, timers: TimerConfig) -> Shard {
        let health = Arc::new(TrunkHealth::new(router.trunks.len()));
        Self::from_setup(
            Instant::now(),
            ShardSetup {
                index,
                count,
                router,
                timers,
                relay: Arc::new(NullRelay),
                media: MediaSettings { learning_window: Duration::from_secs(3), timeout: None },
                quarantine: Duration::from_secs(2),
                health,
                bindings: Arc::new(crate::nat::bindings::BindingTable::new()),
            },
        )
    }

    /// A shard from its setup; trunk registrations and keepalives start due at `now`.
    pub fn from_setup(now: Instant, s: ShardSetup) -> Shard {
        let zones = s.router.zones.iter().map(|z| z.address.clone()).collect();
        let media_zones =
            MediaController::zones_for_shard(&s.router, s.index, s.count, s.quarantine);
        let media = MediaController::new(s.index, media_zones, s.relay, s.media);
        let edge = TrunkEdge::new(now, s.index, s.count, &s.router, s.health.clone());
        Shard {
            tl: TransactionLayer::new(s.timers, zones),
            b2b: B2bua::new(s.index, s.count, s.router, media, s.health, s.bindings),
            edge,
            peer_out: Default::default(),
            forwarded: Default::default(),
        }
    }

    /// Starts draining (SIGTERM): new calls get 503 with Retry-After, trunks de-register;
    /// calls in progress go on.
    pub fn start_drain(&mut self, now: Instant) {
        self.b2b.start_drain();
        self.edge.shutdown(now, &mut self.tl);
    }

    /// Ends every call with BYE carrying `reason` (the drain's grace time is over).
    pub fn hangup_all(&mut self, now: Instant, reason: &str) {
        self.b2b.hangup_all(now, reason, &mut self.tl);
        self.pump(now);
    }

    /// A relay event for one of this shard's calls.
    pub fn handle_relay_event(&mut self, now: Instant, ev: crate::media::relay::RelayEvent) {
        self.b2b.handle_relay_event(now, ev, &mut self.tl);
        self.pump(now);
    }

    fn pump(&mut self, now: Instant) {
        loop {
            while let Some(ev) = self.tl.poll_event() {
                if self.edge.claims(&ev) {
                    self.edge.handle_event(now, ev, &mut self.tl);
                } else {
                    self.b2b.handle_event(now, ev, &mut self.tl);
                }
            }
            // Messages between calls: those for this shard are delivered at once (which may
            // queue events and more messages), the others wait for the task.
            let peers = self.b2b.take_peer_messages();
            if peers.is_empty() {
                break;
            }
            let me = self.b2b.shard;
            for p in peers {
                if p.shard == me {
                    self.b2b.handle_peer_message(now, p.msg, &mut self.tl);
                } else {
                    self.peer_out.push_back(p);
                }
            }
        }
    }

    /// A message from a call on another shard.
    pub fn handle_peer_message(&mut self, now: Instant, msg: PeerMsg) {
        match msg {
            PeerMsg::Forward(msg, flow) => self.handle_message(now, *msg, flow),
            PeerMsg::Release { call_id } => {
                self.forwarded.remove(&call_id);
            }
            msg => {
                self.b2b.handle_peer_message(now, msg, &mut self.tl);
                self.pump(now);
            }
        }
    }

    /// The shard a message belongs to when it is not this one: a Call-ID already forwarded,
    /// or a new INVITE whose Replaces names a dialog of another shard (remembered, so its ACK,
    /// BYE and the rest follow). Forwarding is not in the dispatcher so no table is shared:
    /// each shard keeps its own, and only these dialogs pay the extra hop.
    fn forward_target(&mut self, msg: &SipMsg) -> Option<usize> {
        if !self.forwarded.is_empty() {
            if let Some(&s) = self.forwarded.get(&msg.call_id) {
                return Some(s);
            }
        }
        if !msg.is_request() || msg.method() != rsip::Method::Invite || msg.to_tag.is_some() {
            return None;
        }
        let replaces = crate::sip::replaces::Replaces::parse(msg.header("Replaces")?).ok()?;
        let me = self.b2b.shard;
        // The replaced dialog may itself have been forwarded from here.
        let target = match self.forwarded.get(&replaces.call_id) {
            Some(&s) => s,
            None => crate::sip::callid::shard_of(&replaces.call_id, self.b2b.shards),
        };
        if target == me {
            return None;
        }
        // Bounded: a flood of Replaces INVITEs cannot grow the table without end (past the
        // bound they are answered here, 481, as naming no dialog of this shard).
        if self.forwarded.len() >= MAX_FORWARDED {
            return None;
        }
        self.forwarded.insert(msg.call_id.clone(), target);
        Some(target)
    }

    /// Call-IDs this shard forwards to another (dialogs that replaced a leg there).
    pub fn forwarded(&self) -> usize {
        self.forwarded.len()
    }

    /// Next message for a call on another shard.
    pub fn poll_peer(&mut self) -> Option<PeerEnvelope> {
        self.peer_out.pop_front()
    }

    /// A parsed message arrived on `flow`.
    pub fn handle_message(&mut self, now: Instant, msg: SipMsg, flow: Flow) {
        if let Some(shard) = self.forward_target(&msg) {
            let msg = PeerMsg::Forward(Box::new(msg), flow);
            self.peer_out.push_back(PeerEnvelope { shard, msg });
            return;
        }
        let Ok(hold) = self.transaction_slot(now, &msg, flow) else { return };
        self.tl.handle_message_holding(now, msg, flow, hold);
        self.pump(now);
    }

    /// A request from an untrusted source that would start a server transaction takes a slot
    /// against `security.limits.max_transactions_per_source`, held by the transaction until it
    /// ends (Timer J/I included: a source that floods distinct requests holds them that long).
    /// Over the cap the request is dropped silently and counted — an untrusted source learns
    /// nothing. Trusted peers (configured trunks, trusted zones) are not counted per source;
    /// the dispatcher caps the total for everyone. CANCEL is never refused: it ends a
    /// transaction the source already holds.
    fn transaction_slot(
        &self,
        now: Instant,
        msg: &SipMsg,
        flow: Flow,
    ) -> Result<Option<crate::transaction::Hold>, ()> {
        let router = self.b2b.router();
        let Some(guard) = router.guard.as_ref() else { return Ok(None) };
        if msg.is_request() && msg.method() == rsip::Method::Cancel
            || guard.zone_trusted(flow.zone)
            || router.trunk_by_source(flow.zone, flow.remote).is_some()
            || !self.tl.starts_server_transaction(msg)
        {
            return Ok(None);
        }
        match guard.acquire(
            crate::security::Resource::Transaction,
            now,
            flow.zone,
            flow.remote.ip(),
            false,
        ) {
            Ok(slot) => Ok(Some(Box::new(slot))),
            Err(e) => {
                let reason = match e {
                    crate::security::LimitExceeded::PerSource(_) => "transactions_per_source",
                    crate::security::LimitExceeded::Total(_) => "transactions",
                };
                let zone = router.zone(flow.zone).map(|z| z.name.clone()).unwrap_or_default();
                metrics::counter!(crate::observe::names::SECURITY_REFUSED_TOTAL, "zone" => zone, "reason" => reason, "action" => "dropped").increment(1);
                tracing::debug!(source = %flow.remote, reason, "request dropped: transaction cap");
                Err(())
            }
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tl.handle_timeout(now);
        self.pump(now);
        self.edge.handle_timeout(now, &mut self.tl);
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
        [self.tl.poll_timeout(), self.b2b.poll_timeout(), self.edge.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Swaps routing and timers (config reload); calls in progress keep what they started with.
    pub fn reload(&mut self, router: Arc<Router>, timers: TimerConfig) {
        self.tl.set_timer_config(timers);
        self.tl.set_zones(router.zones.iter().map(|z| z.address.clone()).collect());
        let ips: Vec<std::net::IpAddr> = router.zones.iter().map(|z| z.media_sdp_ip).collect();
        self.b2b.media_mut().set_sdp_ips(&ips);
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
