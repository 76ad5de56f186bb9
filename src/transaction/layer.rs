//! The transaction layer: matching, creation and removal of transactions, and the I/O queues.

use super::invite_client::{self, InviteClientTransaction};
use super::invite_server::{self, InviteServerTransaction};
use super::key::{new_branch, ClientKey, ServerKey};
use super::non_invite_client::{self, NonInviteClientTransaction};
use super::non_invite_server::{self, NonInviteServerTransaction};
use super::timers::{TimerConfig, TimerQueue, TxId};
use super::{Ctx, TxError, TxEvent};
use crate::sip::build::{prepend_header, response_to};
use crate::sip::headers::make;
use crate::sip::message::{SipMsg, Transport};
use crate::sip::wire::{encode_request, encode_response};
use crate::transport::flow::{Flow, Transmit, ZoneAddress};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rsip::{Header, Method};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug)]
enum Machine {
    // Boxed: the client INVITE keeps its request as a template and is several times the size
    // of the other machines.
    InviteClient(Box<InviteClientTransaction>),
    NonInviteClient(NonInviteClientTransaction),
    InviteServer(InviteServerTransaction),
    NonInviteServer(NonInviteServerTransaction),
}

#[derive(Debug)]
enum Key {
    Client(ClientKey),
    Server(ServerKey),
}

/// Something a server transaction holds for as long as it lives, given back when it is
/// dropped (the edge guard's per-source transaction slot). Opaque here: the layer only keeps
/// it, so it needs to know nothing of what is counted or why.
pub type Hold = Box<dyn std::fmt::Debug + Send>;

#[derive(Debug)]
struct Entry {
    key: Key,
    machine: Machine,
    /// Released when the entry is removed (reaped, or the layer dropped).
    _hold: Option<Hold>,
}

impl Entry {
    fn terminated(&self) -> bool {
        match &self.machine {
            Machine::InviteClient(t) => t.state == invite_client::State::Terminated,
            Machine::NonInviteClient(t) => t.state == non_invite_client::State::Terminated,
            Machine::InviteServer(t) => t.state == invite_server::State::Terminated,
            Machine::NonInviteServer(t) => t.state == non_invite_server::State::Terminated,
        }
    }
}

/// Counters the layer keeps for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxStats {
    /// Requests or responses re-sent by Timers A, E or G.
    pub retransmissions: u64,
    /// Timers B, F (and CANCEL guard) that expired.
    pub timeouts: u64,
    /// Retransmitted requests absorbed by a server transaction.
    pub absorbed: u64,
}

/// All transactions of one signalling shard.
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TimerConfig,
    zones: Vec<ZoneAddress>,
    next_id: u64,
    rng: SmallRng,
    entries: HashMap<TxId, Entry>,
    clients: HashMap<ClientKey, TxId>,
    servers: HashMap<ServerKey, TxId>,
    internal: HashSet<TxId>,
    timers: TimerQueue,
    out: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    stats: TxStats,
}

/// Where a response to a request that arrived on `flow` goes (RFC 3261 §18.2.2, RFC 3581 §4):
/// over the same connection for stream transports (or a new one to received:sent-by-port), to
/// the source address and port when `rport` was asked, else to received:sent-by-port. A sent-by
/// without a port means the transport's default: 5061 for TLS, 5060 otherwise (§19.1.2).
pub fn response_flow(via: &crate::sip::message::ViaInfo, flow: Flow) -> Flow {
    let default_port = if flow.transport == Transport::Tls { 5061 } else { 5060 };
    let port = via.port.unwrap_or(default_port);
    let remote = if flow.transport.is_reliable() || via.rport.is_none() {
        SocketAddr::new(flow.remote.ip(), port)
    } else {
        flow.remote
    };
    Flow { remote, ..flow }
}

impl TransactionLayer {
    /// A layer using `cfg` timers and writing `zones` addresses into its Via headers.
    pub fn new(cfg: TimerConfig, zones: Vec<ZoneAddress>) -> Self {
        TransactionLayer {
            cfg,
            zones,
            next_id: 1,
            rng: SmallRng::from_entropy(),
            entries: HashMap::default(),
            clients: HashMap::default(),
            servers: HashMap::default(),
            internal: HashSet::default(),
            timers: TimerQueue::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: TxStats::default(),
        }
    }

    /// Timer configuration in use.
    pub fn timer_config(&self) -> &TimerConfig {
        &self.cfg
    }

    /// Replaces timer values (config reload); running transactions keep their armed timers.
    pub fn set_timer_config(&mut self, cfg: TimerConfig) {
        self.cfg = cfg;
    }

    /// Replaces the addresses written into Via (reload, or a STUN-discovered public address).
    pub fn set_zones(&mut self, zones: Vec<ZoneAddress>) {
        self.zones = zones;
    }

    /// The address sipborder uses on `zone`.
    pub fn zone_address(&self, zone: crate::transport::flow::ZoneId) -> Option<&ZoneAddress> {
        self.zones.get(zone.0 as usize)
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counters since start.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn ctx(&mut self, now: Instant, id: TxId) -> (Ctx<'_>, &mut HashMap<TxId, Entry>) {
        (
            Ctx {
                now,
                id,
                cfg: &self.cfg,
                timers: &mut self.timers,
                out: &mut self.out,
                events: &mut self.events,
            },
            &mut self.entries,
        )
    }

    fn reap(&mut self, id: TxId) {
        let done = self.entries.get(&id).is_some_and(Entry::terminated);
        if done {
            if let Some(e) = self.entries.remove(&id) {
                match e.key {
                    Key::Client(k) => {
                        self.clients.remove(&k);
                    }
                    Key::Server(k) => {
                        self.servers.remove(&k);
                    }
                }
            }
            self.internal.remove(&id);
        }
    }

    /// Runs `f` on transaction `id`'s machine, drops the events of internal (CANCEL)
    /// transactions, and removes the transaction if it terminated.
    fn drive<R>(
        &mut self,
        now: Instant,
        id: TxId,
        f: impl FnOnce(&mut Machine, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let internal = self.internal.contains(&id);
        let events_before = self.events.len();
        let r = {
            let (mut ctx, entries) = self.ctx(now, id);
            let entry = entries.get_mut(&id)?;
            f(&mut entry.machine, &mut ctx)
        };
        if internal {
            self.events.truncate(events_before);
        }
        self.reap(id);
        Some(r)
    }

    /// Feeds one parsed message that arrived on `flow`.
    pub fn handle_message(&mut self, now: Instant, msg: SipMsg, flow: Flow) {
        self.handle_message_holding(now, msg, flow, None)
    }

    /// Like [`Self::handle_message`]; when the message starts a server transaction, that
    /// transaction keeps `hold` until it ends (otherwise `hold` is dropped at once).
    pub fn handle_message_holding(
        &mut self,
        now: Instant,
        msg: SipMsg,
        flow: Flow,
        hold: Option<Hold>,
    ) {
        if msg.is_request() {
            self.handle_request(now, msg, flow, hold)
        } else {
            self.handle_response(now, msg, flow)
        }
    }

    /// True when `msg` is a request that would start a new server transaction: not an ACK,
    /// and no transaction has seen it yet (a retransmission is absorbed by its own).
    pub fn starts_server_transaction(&self, msg: &SipMsg) -> bool {
        msg.is_request()
            && msg.method() != Method::Ack
            && !self.servers.contains_key(&ServerKey::for_request(msg))
    }

    fn handle_request(&mut self, now: Instant, msg: SipMsg, flow: Flow, hold: Option<Hold>) {
        let method = msg.method();
        let key = ServerKey::for_request(&msg);
        let existing = self.servers.get(&key).copied();
        if method == Method::Ack {
            match existing {
                Some(id) => {
                    self.drive(now, id, |m, ctx| {
                        if let Machine::InviteServer(t) = m {
                            t.on_ack(ctx, msg, flow);
                        }
                    });
                }
                None => self.events.push_back(TxEvent::Request { tx: None, msg, flow }),
            }
            return;
        }
        if let Some(id) = existing {
            self.stats.absorbed += 1;
            self.drive(now, id, |m, ctx| match m {
                Machine::InviteServer(t) => t.on_retransmit(ctx),
                Machine::NonInviteServer(t) => t.on_retransmit(ctx),
                _ => {}
            });
            return;
        }
        let id = self.alloc_id();
        let rflow = response_flow(&msg.via, flow);
        let machine = if method == Method::Invite {
            let trying = encode_response(&response_to(&msg, 100, None, None, flow.remote));
            let (mut ctx, _) = self.ctx(now, id);
            Machine::InviteServer(InviteServerTransaction::start(&mut ctx, rflow, trying))
        } else {
            Machine::NonInviteServer(NonInviteServerTransaction::start(rflow))
        };
        self.servers.insert(key.clone(), id);
        self.entries.insert(id, Entry { key: Key::Server(key), machine, _hold: hold });
        self.events.push_back(TxEvent::Request { tx: Some(id), msg, flow });
    }

    fn handle_response(&mut self, now: Instant, msg: SipMsg, flow: Flow) {
        let Some(branch) = msg.via.branch.clone() else {
            self.events.push_back(TxEvent::Response { tx: None, msg, flow });
            return;
        };
        let key = ClientKey::new(branch, msg.cseq_method);
        let Some(id) = self.clients.get(&key).copied() else {
            self.events.push_back(TxEvent::Response { tx: None, msg, flow });
            return;
        };
        let cancel = self.drive(now, id, |m, ctx| match m {
            Machine::InviteClient(t) => {
                t.on_response(ctx, msg, flow);
                t.take_ready_cancel()
                    .map(|extra| (t.derived_request(Method::Cancel, None, &extra), t.flow))
            }
            Machine::NonInviteClient(t) => {
                t.on_response(ctx, msg, flow);
                None
            }
            _ => None,
        });
        if let Some(Some((req, f))) = cancel {
            self.start_cancel(now, req, f);
        }
    }

    fn start_cancel(&mut self, now: Instant, req: rsip::Request, flow: Flow) {
        let branch = req.headers.iter().find_map(|h| match h {
            Header::Via(v) => {
                crate::sip::headers::param(rsip::headers::UntypedHeader::value(v), "branch")
                    .map(str::to_string)
            }
            _ => None,
        });
        let Some(branch) = branch else { return };
        let id = self.alloc_id();
        let bytes = encode_request(&req);
        let (mut ctx, _) = self.ctx(now, id);
        let t = NonInviteClientTransaction::start(&mut ctx, flow, bytes);
        let key = ClientKey::new(branch, Method::Cancel);
        self.clients.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry { key: Key::Client(key), machine: Machine::NonInviteClient(t), _hold: None },
        );
        self.internal.insert(id);
    }

    fn via_for(&mut self, flow: Flow) -> (String, String) {
        let branch = new_branch(&mut self.rng);
        let hostport = self
            .zones
            .get(flow.zone.0 as usize)
            .map(|z| z.host_port(flow.transport))
            .unwrap_or_else(|| "0.0.0.0:5060".to_string());
        let rport = if flow.transport == Transport::Udp { ";rport" } else { "" };
        let via = format!(
            "SIP/2.0/{} {};branch={}{}",
            flow.transport.as_via_token(),
            hostport,
            branch,
            rport
        );
        (via, branch)
    }

    /// Sends a request in a new client transaction; the layer adds the top Via.
    /// ACK is not a transaction: use [`Self::send_stateless`]; CANCEL: use [`Self::cancel`].
    pub fn send_request(&mut self, now: Instant, mut req: rsip::Request, flow: Flow) -> TxId {
        let (via, branch) = self.via_for(flow);
        prepend_header(&mut req.headers, make("Via", via));
        let id = self.alloc_id();
        let method = req.method;
        let (mut ctx, _) = self.ctx(now, id);
        let machine = if method == Method::Invite {
            Machine::InviteClient(Box::new(InviteClientTransaction::start(&mut ctx, flow, req)))
        } else {
            Machine::NonInviteClient(NonInviteClientTransaction::start(
                &mut ctx,
                flow,
                encode_request(&req),
            ))
        };
        let key = ClientKey::new(branch, method);
        self.clients.insert(key.clone(), id);
        self.entries.insert(id, Entry { key: Key::Client(key), machine, _hold: None });
        id
    }

    /// Sends a request outside any transaction (the ACK of a 2xx) with a fresh Via; returns the
    /// bytes so the dialog can send them again when the 2xx is retransmitted.
    pub fn send_stateless(&mut self, mut req: rsip::Request, flow: Flow) -> Bytes {
        let (via, _) = self.via_for(flow);
        prepend_header(&mut req.headers, make("Via", via));
        let bytes = encode_request(&req);
        self.out.push_back(Transmit { flow, bytes: bytes.clone() });
        bytes
    }

    /// Queues already serialized bytes (a stored ACK sent again).
    pub fn send_raw(&mut self, flow: Flow, bytes: Bytes) {
        self.out.push_back(Transmit { flow, bytes });
    }

    /// Sends a response through server transaction `tx`.
    pub fn respond(&mut self, now: Instant, tx: TxId, resp: rsip::Response) -> Result<(), TxError> {
        let code = resp.status_code.code();
        let bytes = encode_response(&resp);
        self.drive(now, tx, |m, ctx| match m {
            Machine::InviteServer(t) => t.respond(ctx, code, bytes),
            Machine::NonInviteServer(t) => t.respond(ctx, code, bytes),
            _ => Err(TxError::NoTransaction),
        })
        .unwrap_or(Err(TxError::NoTransaction))
    }

    /// Cancels client INVITE transaction `tx` (§9.1); `extra` headers (e.g. Reason) go on the
    /// CANCEL. Nothing happens once a final response arrived.
    pub fn cancel(&mut self, now: Instant, tx: TxId, extra: Vec<Header>) {
        let ready = self.drive(now, tx, |m, ctx| match m {
            Machine::InviteClient(t) => {
                t.request_cancel(ctx, extra);
                t.take_ready_cancel()
                    .map(|extra| (t.derived_request(Method::Cancel, None, &extra), t.flow))
            }
            _ => None,
        });
        if let Some(Some((req, flow))) = ready {
            self.start_cancel(now, req, flow);
        }
    }

    /// The server INVITE transaction a CANCEL refers to (same branch and sent-by, §9.2).
    pub fn invite_for_cancel(&self, cancel: &SipMsg) -> Option<TxId> {
        self.servers.get(&ServerKey::of(cancel, Method::Invite)).copied()
    }

    /// True while server INVITE transaction `tx` has not sent a final response.
    pub fn server_invite_pending(&self, tx: TxId) -> bool {
        matches!(
            self.entries.get(&tx).map(|e| &e.machine),
            Some(Machine::InviteServer(t)) if t.is_proceeding()
        )
    }

    /// The INVITE a client transaction sent (template for dialog requests built from it).
    pub fn client_invite(&self, tx: TxId) -> Option<&rsip::Request> {
        match self.entries.get(&tx).map(|e| &e.machine) {
            Some(Machine::InviteClient(t)) => Some(&t.request),
            _ => None,
        }
    }

    /// Every client transaction toward `flow`'s peer fails with a transport error.
    pub fn handle_transport_error(&mut self, now: Instant, flow: Flow) {
        let ids: Vec<TxId> = self
            .entries
            .iter()
            .filter(|(_, e)| match &e.machine {
                Machine::InviteClient(t) => same_peer(&t.flow, &flow),
                Machine::NonInviteClient(t) => same_peer(&t.flow, &flow),
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drive(now, id, |m, ctx| match m {
                Machine::InviteClient(t) => t.on_transport_error(ctx),
                Machine::NonInviteClient(t) => t.on_transport_error(ctx),
                _ => {}
            });
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, id, kind)) = self.timers.pop_due(now) {
            let sent_before = self.out.len();
            let timed_out = self.drive(now, id, |m, ctx| {
                let events_before = ctx.events.len();
                match m {
                    Machine::InviteClient(t) => t.on_timer(ctx, kind, at),
                    Machine::NonInviteClient(t) => t.on_timer(ctx, kind, at),
                    Machine::InviteServer(t) => t.on_timer(ctx, kind, at),
                    Machine::NonInviteServer(t) => t.on_timer(ctx, kind, at),
                }
                ctx.events.len() > events_before
                    && matches!(ctx.events.back(), Some(TxEvent::Timeout { .. }))
            });
            self.stats.retransmissions += (self.out.len() - sent_before) as u64;
            if timed_out == Some(true) {
                self.stats.timeouts += 1;
            }
        }
    }

    /// Earliest timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }
}

fn same_peer(a: &Flow, b: &Flow) -> bool {
    a.zone == b.zone
        && a.transport == b.transport
        && (a.remote == b.remote || (a.conn.is_some() && a.conn == b.conn))
}
