//! `TrunkEdge`: the registrations and keepalives of the trunks one shard looks after (trunk
//! index modulo shard count), driven like the B2BUA through the shard's transaction layer.

use super::digest_client::DigestClient;
use super::health::TrunkHealth;
use super::keepalive::Keepalive;
use super::registration::{RegAction, Registration};
use crate::b2bua::{Router, TrunkId};
use crate::observe::names;
use crate::sip::callid::new_call_id;
use crate::sip::message::Transport;
use crate::sip::token::new_tag;
use crate::transaction::{TransactionLayer, TxEvent, TxId};
use crate::transport::flow::Flow;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register(usize),
    Keepalive(usize),
}

/// Trunk-edge state machines of one shard.
#[derive(Debug)]
pub struct TrunkEdge {
    regs: Vec<(TrunkId, Flow, Registration)>,
    kas: Vec<(TrunkId, Flow, Keepalive)>,
    clients: FxHashMap<u16, DigestClient>,
    owned: FxHashMap<TxId, Purpose>,
    health: Arc<TrunkHealth>,
    names: Vec<String>,
    rng: SmallRng,
}

impl TrunkEdge {
    /// The edge for shard `shard` of `shards`.
    pub fn new(
        now: Instant,
        shard: usize,
        shards: usize,
        router: &Router,
        health: Arc<TrunkHealth>,
    ) -> Self {
        let mut rng = SmallRng::from_entropy();
        let mut regs = Vec::new();
        let mut kas = Vec::new();
        let mut clients = FxHashMap::default();
        for (i, t) in router.trunks.iter().enumerate() {
            if i % shards.max(1) != shard {
                continue;
            }
            let id = TrunkId(i as u16);
            let flow = Flow::to(t.zone, t.transport, t.addr);
            let Some(zone) = router.zone(t.zone) else { continue };
            let hostport = zone.address.host_port(t.transport);
            let tparam = if t.transport == Transport::Tcp { ";transport=tcp" } else { "" };
            let target =
                if t.domain.parse::<std::net::IpAddr>().is_ok() || t.domain.starts_with('[') {
                    format!("{}:{}", t.domain, t.addr.port())
                } else {
                    t.domain.clone()
                };
            if let Some(reg) = &t.register {
                let registrar =
                    reg.registrar.clone().unwrap_or_else(|| format!("sip:{target}{tparam}"));
                let aor = format!("sip:{}@{}", reg.user, t.domain);
                let contact = format!("<sip:{}@{hostport}{tparam}>", reg.user);
                let r = Registration::new(
                    now,
                    registrar,
                    aor,
                    contact,
                    new_call_id(&mut rng, shard, shards),
                    new_tag(&mut rng),
                    reg.expires.0,
                    t.account.clone(),
                );
                regs.push((id, flow, r));
                clients.insert(id.0, DigestClient::with_random_cnonce());
            }
            if let Some(cfg) = &t.keepalive {
                let k = Keepalive::new(
                    now,
                    cfg.clone(),
                    format!("sip:{target}{tparam}"),
                    format!("sip:{}", zone.address.host),
                    new_call_id(&mut rng, shard, shards),
                    new_tag(&mut rng),
                );
                kas.push((id, flow, k));
            }
        }
        let names = router.trunks.iter().map(|t| t.name.clone()).collect();
        TrunkEdge { regs, kas, clients, owned: FxHashMap::default(), health, names, rng }
    }

    fn name(&self, t: TrunkId) -> String {
        self.names.get(t.0 as usize).cloned().unwrap_or_default()
    }

    /// Earliest due REGISTER or OPTIONS.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let r = self.regs.iter().filter_map(|(_, _, r)| r.next_at);
        let k = self.kas.iter().map(|(_, _, k)| k.next_at);
        r.chain(k).min()
    }

    /// Sends what is due.
    pub fn handle_timeout(&mut self, now: Instant, tl: &mut TransactionLayer) {
        for i in 0..self.regs.len() {
            let (id, flow, r) = &mut self.regs[i];
            if r.due(now) {
                let client =
                    self.clients.entry(id.0).or_insert_with(DigestClient::with_random_cnonce);
                let req = r.build(client);
                let tx = tl.send_request(now, req, *flow);
                self.owned.insert(tx, Purpose::Register(i));
            }
        }
        for i in 0..self.kas.len() {
            let (_, flow, k) = &mut self.kas[i];
            if k.due(now) {
                let req = k.build();
                let tx = tl.send_request(now, req, *flow);
                self.owned.insert(tx, Purpose::Keepalive(i));
            }
        }
    }

    /// True when `ev` belongs to a registration or a keepalive.
    pub fn claims(&self, ev: &TxEvent) -> bool {
        match ev {
            TxEvent::Response { tx: Some(t), .. }
            | TxEvent::Timeout { tx: t }
            | TxEvent::TransportError { tx: t } => self.owned.contains_key(t),
            _ => false,
        }
    }

    /// Handles an event [`Self::claims`] returned true for.
    pub fn handle_event(&mut self, now: Instant, ev: TxEvent, tl: &mut TransactionLayer) {
        let jitter: f64 = self.rng.gen();
        let (tx, outcome) = match ev {
            TxEvent::Response { tx: Some(t), msg, .. } => {
                if msg.status().unwrap_or(0) < 200 {
                    return;
                }
                (t, Some(msg))
            }
            TxEvent::Timeout { tx } | TxEvent::TransportError { tx } => (tx, None),
            _ => return,
        };
        let Some(purpose) = self.owned.remove(&tx) else { return };
        match purpose {
            Purpose::Register(i) => {
                let Some((id, flow, r)) = self.regs.get_mut(i) else { return };
                let (id, flow) = (*id, *flow);
                let was = r.is_registered(now);
                let action = match &outcome {
                    Some(msg) => {
                        let client = self
                            .clients
                            .entry(id.0)
                            .or_insert_with(DigestClient::with_random_cnonce);
                        r.on_response(now, msg, client, jitter)
                    }
                    None => {
                        r.on_failure(now, jitter);
                        RegAction::Wait
                    }
                };
                let is = r.is_registered(now);
                if let RegAction::Send(req) = action {
                    let t = tl.send_request(now, *req, flow);
                    self.owned.insert(t, Purpose::Register(i));
                }
                self.health.set_registered(id.0 as usize, is);
                let name = self.name(id);
                metrics::gauge!(names::REGISTRATION_UP, "trunk" => name.clone()).set(if is {
                    1.0
                } else {
                    0.0
                });
                if was != is {
                    tracing::info!(trunk = %name, registered = is, "trunk registration state changed");
                }
            }
            Purpose::Keepalive(i) => {
                let Some((id, _, k)) = self.kas.get_mut(i) else { return };
                let id = *id;
                let changed = match &outcome {
                    Some(msg) => k.on_response(now, msg.status().unwrap_or(0)),
                    None => k.on_failure(now),
                };
                let up = k.up;
                self.health.set_up(id.0 as usize, up);
                let name = self.name(id);
                metrics::gauge!(names::TRUNK_UP, "trunk" => name.clone()).set(if up {
                    1.0
                } else {
                    0.0
                });
                if changed.is_some() {
                    tracing::warn!(trunk = %name, up, "trunk reachability changed");
                }
            }
        }
    }

    /// De-registers every registered trunk (shutdown).
    pub fn shutdown(&mut self, now: Instant, tl: &mut TransactionLayer) {
        for i in 0..self.regs.len() {
            let (id, flow, r) = &mut self.regs[i];
            let client = self.clients.entry(id.0).or_insert_with(DigestClient::with_random_cnonce);
            if let Some(req) = r.deregister(client) {
                let t = tl.send_request(now, req, *flow);
                self.owned.insert(t, Purpose::Register(i));
            }
        }
    }

    /// Registrations and keepalives this edge runs.
    pub fn len(&self) -> usize {
        self.regs.len() + self.kas.len()
    }

    /// True when it runs nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
