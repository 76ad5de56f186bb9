//! `B2bua`: the call table of one shard and the dispatch of transaction events to the flows.

use super::call::{Call, CallKey, CallState, EndCause, Side};
use super::reply::ReplyTemplate;
use super::router::Router;
use crate::media::{MediaController, MediaTotals};
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::transaction::{TransactionLayer, TxEvent, TxId};
use crate::transport::flow::Flow;
use crate::trunk::health::TrunkHealth;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rsip::{Header, Method};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

/// What a client transaction we started is for.
#[derive(Debug, Clone)]
pub(crate) enum ClientRole {
    /// The INVITE on B.
    Initial(CallKey),
    /// A re-INVITE relayed to the other side.
    ReInvite(CallKey),
    /// A non-INVITE request relayed within the call; its response goes back through `server_tx`.
    Relay { call: CallKey, from: Side, server_tx: TxId, reply: ReplyTemplate },
    /// A PRACK on B; when A's PRACK caused it, its answer goes back to A.
    Prack { call: CallKey, a_prack: Option<(TxId, ReplyTemplate)> },
    /// A BYE we sent as part of ending the call.
    Bye(CallKey),
    /// The INVITE toward a transfer target (REFER handled locally).
    TransferInvite(CallKey),
    /// A session refresh of ours on one leg (RFC 4028).
    Refresh { call: CallKey, side: Side, cseq: u32 },
    /// A re-INVITE of ours moving one leg's media to a transfer's new party (not anchored).
    MediaMove { call: CallKey, side: Side, cseq: u32 },
    /// A REGISTER forwarded to a registrar for a device.
    Register {
        server_tx: TxId,
        reply: ReplyTemplate,
        token: Option<String>,
        device_contact: Option<String>,
        source_zone: crate::transport::flow::ZoneId,
    },
    /// A keepalive OPTIONS toward a registered device.
    BindingProbe { token: String },
    /// A request whose outcome does not matter (BYE to a losing fork).
    Discard,
    /// An out-of-dialog request relayed without a call (MESSAGE, OPTIONS to a user).
    /// `to_tag` is ours toward the requester (its To had none).
    Standalone { server_tx: TxId, reply: ReplyTemplate, to_tag: String },
}

/// Counters of one shard.
#[derive(Debug, Default, Clone, Copy)]
pub struct B2buaStats {
    /// Calls created.
    pub calls_total: u64,
    /// Calls that were answered.
    pub calls_answered: u64,
    /// Calls that ended (answered or not).
    pub calls_ended: u64,
}

/// A finished call, for metrics and CDRs.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Leg A Call-ID.
    pub a_call_id: String,
    /// Leg B Call-ID.
    pub b_call_id: String,
    /// Zone name of leg A.
    pub a_zone: String,
    /// Trunk of leg B (name), if one was chosen.
    pub b_trunk: Option<String>,
    /// Final SIP code toward A (200 for answered calls).
    pub final_code: u16,
    /// Why it ended.
    pub cause: EndCause,
    /// INVITE arrival.
    pub started: Instant,
    /// First provisional (18x) from B, if any.
    pub first_provisional: Option<Instant>,
    /// Answer, if answered.
    pub answered: Option<Instant>,
    /// End.
    pub ended: Instant,
    /// Media totals [A→B, B→A] (zero for calls not anchored).
    pub media: [MediaTotals; 2],
    /// Calling number: user part of A's From.
    pub from: Option<String>,
    /// Called number: user part of A's Request-URI.
    pub to: Option<String>,
    /// Q.850 cause received from or sent to a carrier for this call, if any.
    pub q850_cause: Option<u8>,
}

/// The B2BUA of one signalling shard.
#[derive(Debug)]
pub struct B2bua {
    pub(crate) shard: usize,
    pub(crate) shards: usize,
    pub(crate) router: Arc<Router>,
    pub(crate) rng: SmallRng,
    next_call: u64,
    pub(crate) calls: HashMap<CallKey, Call>,
    /// (Call-ID, our tag) → call and side.
    pub(crate) dialogs: HashMap<(String, String), (CallKey, Side)>,
    /// Call-IDs we made up for B legs (an INVITE arriving with one looped back to us).
    pub(crate) own_call_ids: HashSet<String>,
    pub(crate) clients: HashMap<TxId, ClientRole>,
    /// Server INVITE transaction of A → call (CANCEL lookup).
    pub(crate) invite_servers: HashMap<TxId, CallKey>,
    pub(crate) wakeups: BinaryHeap<Reverse<(Instant, CallKey)>>,
    pub(crate) stats: B2buaStats,
    pub(crate) finished: Vec<CallRecord>,
    pub(crate) media: MediaController,
    pub(crate) health: Arc<TrunkHealth>,
    /// Draining for shutdown: new calls get 503 with Retry-After.
    pub(crate) draining: bool,
    /// Digest state per trunk (nonces, nc) for calls.
    pub(crate) auth: rustc_hash::FxHashMap<u16, crate::trunk::digest_client::DigestClient>,
    /// Devices registered through the registration proxy (shared by all shards).
    pub(crate) bindings: Arc<crate::nat::bindings::BindingTable>,
    /// Next keepalive round toward registered devices.
    pub(crate) next_keepalive: Option<Instant>,
    /// In-dialog requests that are already authenticated retries (a second challenge fails).
    pub(crate) auth_retried: HashSet<TxId>,
    /// Messages to calls on other shards (joins), taken by the shard.
    pub(crate) peer_out: Vec<super::join::PeerEnvelope>,
}

impl B2bua {
    /// A B2BUA for shard `shard` of `shards`, routing with `router`, anchoring with `media`.
    pub fn new(
        shard: usize,
        shards: usize,
        router: Arc<Router>,
        media: MediaController,
        health: Arc<TrunkHealth>,
        bindings: Arc<crate::nat::bindings::BindingTable>,
    ) -> Self {
        B2bua {
            shard,
            shards,
            router,
            rng: SmallRng::from_entropy(),
            next_call: 1,
            calls: HashMap::default(),
            dialogs: HashMap::default(),
            own_call_ids: HashSet::default(),
            clients: HashMap::default(),
            invite_servers: HashMap::default(),
            wakeups: BinaryHeap::new(),
            stats: B2buaStats::default(),
            finished: Vec::new(),
            media,
            health,
            draining: false,
            auth: Default::default(),
            auth_retried: HashSet::default(),
            bindings,
            next_keepalive: None,
            peer_out: Vec::new(),
        }
    }

    /// Swaps the routing table (config reload). Calls in progress keep their targets.
    pub fn set_router(&mut self, router: Arc<Router>) {
        self.router = router;
    }

    /// The routing table in use.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Calls in the table.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Dialogs indexed (one per leg and fork).
    pub fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// The media controller (port usage, open pairs).
    pub fn media(&self) -> &MediaController {
        &self.media
    }

    /// Mutable media controller (reload).
    pub fn media_mut(&mut self) -> &mut MediaController {
        &mut self.media
    }

    /// Counters.
    pub fn stats(&self) -> B2buaStats {
        self.stats
    }

    /// Takes the records of calls that ended since the last call.
    pub fn take_finished(&mut self) -> Vec<CallRecord> {
        std::mem::take(&mut self.finished)
    }

    pub(crate) fn alloc_call_key(&mut self) -> CallKey {
        let k = CallKey(self.next_call);
        self.next_call += 1;
        k
    }

    /// Earliest call timer (or binding keepalive round).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.wakeups.peek().map(|Reverse((t, _))| *t);
        [calls, self.next_keepalive].into_iter().flatten().min()
    }

    pub(crate) fn wake_at(&mut self, at: Instant, call: CallKey) {
        self.wakeups.push(Reverse((at, call)));
    }

    /// The call an event belongs to, when it belongs to one already.
    fn call_of(&self, ev: &TxEvent, tl: &TransactionLayer) -> Option<CallKey> {
        let role_call = |tx: &TxId| match self.clients.get(tx)? {
            ClientRole::Initial(k)
            | ClientRole::ReInvite(k)
            | ClientRole::Bye(k)
            | ClientRole::TransferInvite(k) => Some(*k),
            ClientRole::Relay { call, .. }
            | ClientRole::Prack { call, .. }
            | ClientRole::Refresh { call, .. }
            | ClientRole::MediaMove { call, .. } => Some(*call),
            ClientRole::Discard
            | ClientRole::Standalone { .. }
            | ClientRole::Register { .. }
            | ClientRole::BindingProbe { .. } => None,
        };
        match ev {
            TxEvent::Request { msg, .. } => {
                if msg.method() == Method::Cancel {
                    return tl
                        .invite_for_cancel(msg)
                        .and_then(|t| self.invite_servers.get(&t).copied());
                }
                let tag = msg.to_tag.as_ref()?;
                self.dialogs.get(&(msg.call_id.clone(), tag.clone())).map(|(k, _)| *k)
            }
            TxEvent::Response { tx: Some(tx), .. }
            | TxEvent::Timeout { tx }
            | TxEvent::TransportError { tx }
            | TxEvent::RingTimeout { tx } => role_call(tx),
            _ => None,
        }
    }

    /// Handles one event from the transaction layer.
    pub fn handle_event(&mut self, now: Instant, ev: TxEvent, tl: &mut TransactionLayer) {
        // Everything logged while handling a call's event carries both legs' Call-IDs.
        let _span = self
            .call_of(&ev, tl)
            .and_then(|k| self.calls.get(&k))
            .map(|c| c.span.clone().entered());
        match ev {
            TxEvent::Request { tx, msg, flow } => self.on_request(now, tx, msg, flow, tl),
            TxEvent::Response { tx, msg, flow } => self.on_response(now, tx, msg, flow, tl),
            TxEvent::Timeout { tx } => self.on_client_failure(now, tx, 408, tl),
            TxEvent::TransportError { tx } => self.on_client_failure(now, tx, 503, tl),
            TxEvent::RingTimeout { tx } => self.on_ring_timeout(now, tx, tl),
            TxEvent::AckTimeout { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: Option<TxId>,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let method = msg.method();
        let Some(tx) = tx else {
            // An ACK outside any transaction: the ACK of a 2xx, within a dialog.
            if method == Method::Ack {
                self.on_ack(now, msg, flow, tl);
            }
            return;
        };
        if method == Method::Cancel {
            self.on_cancel(now, tx, msg, flow, tl);
            return;
        }
        if msg.to_tag.is_some() {
            self.on_in_dialog_request(now, tx, msg, flow, tl);
            return;
        }
        // Out of dialog.
        if let Some(mf) = msg.max_forwards {
            if mf == 0 && !(method == Method::Options && self.addressed_to_us(&msg, flow)) {
                self.reply_local(now, tl, tx, &msg, flow, 483, None, &[]);
                return;
            }
        }
        if !(method == Method::Options && self.addressed_to_us(&msg, flow)) {
            if let super::zone_auth::ZoneAuth::Challenged { .. } =
                self.zone_auth(now, tx, &msg, flow, tl)
            {
                return;
            }
        }
        match method {
            Method::Invite if self.draining => {
                let ra = make("Retry-After", "30");
                self.reply_local(now, tl, tx, &msg, flow, 503, Some("Shutting Down"), &[ra]);
            }
            Method::Invite if msg.header("Replaces").is_some() => {
                self.on_invite_with_replaces(now, tx, &msg, flow, tl)
            }
            Method::Invite => self.on_initial_invite(now, tx, msg, flow, tl),
            Method::Options if self.addressed_to_us(&msg, flow) => {
                self.answer_options(now, tx, &msg, flow, tl)
            }
            Method::Register => self.on_register(now, tx, msg, flow, tl),
            Method::Options | Method::Message | Method::Info | Method::Notify => {
                self.relay_out_of_dialog(now, tx, msg, flow, tl)
            }
            Method::Ack => {}
            _ => {
                let allow = make("Allow", super::local::ALLOW);
                self.reply_local(now, tl, tx, &msg, flow, 405, None, &[allow]);
            }
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        tx: Option<TxId>,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let role = tx.and_then(|t| self.clients.get(&t).cloned());
        let code = msg.status().unwrap_or(0);
        let Some(role) = role else {
            if msg.cseq_method == Method::Invite && (200..300).contains(&code) {
                self.on_stray_2xx(now, msg, flow, tl);
            }
            return;
        };
        let tx = tx.unwrap_or(crate::transaction::TxId(0));
        if code >= 200 && !matches!(role, ClientRole::Initial(_)) {
            self.clients.remove(&tx);
        }
        if code >= 200 {
            let retried = match &role {
                ClientRole::ReInvite(call) | ClientRole::Bye(call)
                    if code == 401 || code == 407 =>
                {
                    self.retry_in_dialog_with_auth(now, *call, tx, &msg, tl)
                }
                _ => {
                    self.auth_retried.remove(&tx);
                    false
                }
            };
            if retried {
                return;
            }
        }
        match role {
            ClientRole::Initial(call) => self.on_initial_response(now, tx, call, msg, flow, tl),
            ClientRole::ReInvite(call) => {
                self.on_reinvite_response(now, call, msg, flow.remote.ip(), tl)
            }
            ClientRole::Relay { call, from, server_tx, reply } => self.on_relay_response(
                now,
                call,
                from,
                server_tx,
                &reply,
                &msg,
                flow.remote.ip(),
                tl,
            ),
            ClientRole::Prack { call, a_prack } => {
                if let Some((stx, reply)) = a_prack {
                    let mut resp = super::local::relay_response(&msg, &reply, None, None);
                    if let Some(b) =
                        self.cross_sdp_lenient(now, call, Side::B, &msg, flow.remote.ip())
                    {
                        resp.body = b;
                    }
                    let resp = match self.calls.get(&call) {
                        Some(c) => {
                            super::policy_hook::police_response(&self.router, c, Side::B, resp)
                        }
                        None => resp,
                    };
                    let _ = tl.respond(now, stx, resp);
                }
            }
            ClientRole::Bye(call) => {
                if code >= 200 {
                    self.on_bye_done(now, call, tl);
                }
            }
            ClientRole::Refresh { call, side, cseq } => {
                self.on_refresh_response(now, call, side, cseq, &msg, tl)
            }
            ClientRole::MediaMove { call, side, cseq } => {
                self.on_media_move_response(call, side, cseq, &msg, tl)
            }
            ClientRole::TransferInvite(call) => {
                self.on_transfer_response(now, call, &msg, flow, tl)
            }
            ClientRole::Register { server_tx, reply, token, device_contact, source_zone } => self
                .on_register_response(
                    now,
                    server_tx,
                    &reply,
                    token,
                    device_contact,
                    source_zone,
                    &msg,
                    tl,
                ),
            ClientRole::BindingProbe { token } => self.binding_alive(&token),
            ClientRole::Discard => {}
            ClientRole::Standalone { server_tx, reply, to_tag } => {
                let resp = super::local::relay_response(&msg, &reply, Some(&to_tag), None);
                let _ = tl.respond(now, server_tx, resp);
            }
        }
    }

    /// Timer B/F or a transport error on a client transaction: treated as a `code` response.
    fn on_client_failure(&mut self, now: Instant, tx: TxId, code: u16, tl: &mut TransactionLayer) {
        self.auth_retried.remove(&tx);
        let Some(role) = self.clients.remove(&tx) else { return };
        match role {
            ClientRole::Initial(call) => self.on_initial_failure(now, tx, call, code, tl),
            ClientRole::ReInvite(call) => self.on_reinvite_failure(now, call, code, tl),
            ClientRole::Relay { call, from, server_tx, reply } => {
                let resp = reply.response(code, None, None);
                let _ = tl.respond(now, server_tx, resp);
                let _ = (call, from);
            }
            ClientRole::Prack { a_prack, .. } => {
                if let Some((stx, reply)) = a_prack {
                    let _ = tl.respond(now, stx, reply.response(code, None, None));
                }
            }
            ClientRole::Bye(call) => self.on_bye_done(now, call, tl),
            ClientRole::Refresh { call, .. } => self.on_refresh_failure(now, call, tl),
            ClientRole::MediaMove { .. } => {
                tracing::warn!(code, "re-INVITE moving a transferred call's media failed");
            }
            ClientRole::TransferInvite(call) => self.on_transfer_failure(now, call, code, tl),
            ClientRole::Register { server_tx, reply, token, .. } => {
                // The registrar never answered: the device hears so, and a binding the registrar
                // never accepted is not kept.
                let tag = crate::sip::token::new_tag(&mut self.rng);
                let _ = tl.respond(now, server_tx, reply.response(code, None, Some(&tag)));
                if let Some(t) = token {
                    if self.bindings.get(&t).is_some_and(|b| b.registrar_expires_at.is_none()) {
                        self.bindings.remove(&t);
                    }
                }
            }
            ClientRole::BindingProbe { .. } => {}
            ClientRole::Discard => {}
            ClientRole::Standalone { server_tx, reply, to_tag } => {
                let _ = tl.respond(now, server_tx, reply.response(code, None, Some(&to_tag)));
            }
        }
    }

    /// True when an out-of-dialog request names sipborder itself (no user part, or our address).
    pub(crate) fn addressed_to_us(&self, msg: &SipMsg, flow: Flow) -> bool {
        let Some(uri) = msg.request_uri() else { return false };
        let host = uri.host_with_port.host.to_string();
        uri.auth.is_none() || self.router.is_local_host(flow.zone, &host)
    }

    /// Answers `req` locally through `tx` with `code` and `extra` headers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reply_local(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        tx: TxId,
        req: &SipMsg,
        flow: Flow,
        code: u16,
        reason: Option<&str>,
        extra: &[Header],
    ) {
        let tag =
            (req.to_tag.is_none() && code > 100).then(|| crate::sip::token::new_tag(&mut self.rng));
        let mut resp =
            crate::sip::build::response_to(req, code, reason, tag.as_deref(), flow.remote);
        for h in extra {
            resp.headers.push(h.clone());
        }
        let _ = tl.respond(now, tx, resp);
    }

    /// Stops taking new calls (SIGTERM): they get 503 with Retry-After from now on.
    pub fn start_drain(&mut self) {
        self.draining = true;
    }

    /// Ends every call: BYE on confirmed legs with `reason`, unanswered INVITEs answered 503
    /// and CANCELled on B.
    pub fn hangup_all(&mut self, now: Instant, reason: &str, tl: &mut TransactionLayer) {
        let keys: Vec<CallKey> = self.calls.keys().copied().collect();
        for key in keys {
            let pending = self
                .calls
                .get(&key)
                .and_then(|c| c.initial.as_ref())
                .map(|i| (i.server_tx, i.client_tx));
            match pending {
                Some((stx, ctx)) => {
                    if let Some(call) = self.calls.get_mut(&key) {
                        let tag = call.a.local_tag.clone();
                        if let Some(init) = call.initial.as_mut() {
                            let _ = tl.respond(
                                now,
                                stx,
                                init.reply.response(503, Some("Shutting Down"), Some(&tag)),
                            );
                            init.cancelled = Some(487);
                        }
                        call.end_cause = Some(EndCause::Refused(503));
                    }
                    match ctx {
                        Some(c) => tl.cancel(now, c, vec![make("Reason", reason)]),
                        None => self.finish_call(key, now, 503),
                    }
                }
                None => self.hangup_both_with(
                    now,
                    key,
                    EndCause::Shutdown,
                    vec![make("Reason", reason)],
                    tl,
                ),
            }
        }
    }

    /// Removes a call and its indexes, recording how it ended.
    pub(crate) fn finish_call(&mut self, key: CallKey, now: Instant, final_code: u16) {
        let Some(mut call) = self.calls.remove(&key) else { return };
        self.joined_peer_ended(call.join.and_then(|j| j.peer));
        self.release_call_id(&call.a.call_id);
        if let Some(b) = call.dialog(Side::B).map(|d| d.call_id.clone()) {
            self.release_call_id(&b);
        }
        // A call refused as unknown by the far end counts toward an enumeration ban.
        if matches!(final_code, 404 | 484 | 604) && call.answered.is_none() {
            self.strike(now, call.a.flow, crate::security::Reason::UnknownUser);
        }
        let mut media = [MediaTotals::default(); 2];
        if let Some(mut session) = call.media.take() {
            media = self.media.totals(&session);
            self.media.close(now, &mut session);
        }
        self.dialogs.remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        for f in &call.forks {
            self.dialogs.remove(&(call.a.call_id.clone(), f.a_tag.clone()));
        }
        self.dialogs.remove(&(call.b.call_id.clone(), call.b.local_tag.clone()));
        self.own_call_ids.remove(&call.b.call_id);
        for f in &call.forks {
            self.dialogs.remove(&(f.b.call_id.clone(), f.b.local_tag.clone()));
            self.own_call_ids.remove(&f.b.call_id);
        }
        if let Some(tr) = &call.transfer {
            self.own_call_ids.remove(&tr.new_leg.call_id);
            self.clients.remove(&tr.tx);
        }
        // The INVITE on B stays indexed after the answer (other forks' 2xx arrive on it).
        if let Some(ctx) = call.b_invite_tx {
            self.clients.remove(&ctx);
        }
        if let Some(init) = &call.initial {
            self.invite_servers.remove(&init.server_tx);
            if let Some(ctx) = init.client_tx {
                self.clients.remove(&ctx);
            }
        }
        self.stats.calls_ended += 1;
        let router = &self.router;
        self.finished.push(CallRecord {
            a_call_id: call.a.call_id.clone(),
            b_call_id: call.b.call_id.clone(),
            a_zone: router.zone(call.a.flow.zone).map(|z| z.name.clone()).unwrap_or_default(),
            b_trunk: call.b_trunk.and_then(|t| router.trunk(t)).map(|t| t.name.clone()),
            final_code,
            cause: call.end_cause.unwrap_or(EndCause::Bye(Side::A)),
            started: call.started,
            first_provisional: call.first_provisional,
            answered: call.answered,
            ended: now,
            media,
            q850_cause: call.q850_cause,
            from: call.from_user.clone(),
            to: call.to_user.clone(),
        });
        if self.finished.len() > 4096 {
            // Nobody is draining records (tests, or metrics off): keep memory bounded.
            self.finished.drain(..2048);
        }
    }

    /// Ends a confirmed call from sipborder's side: BYE on every confirmed leg.
    pub(crate) fn hangup_both(
        &mut self,
        now: Instant,
        key: CallKey,
        cause: EndCause,
        tl: &mut TransactionLayer,
    ) {
        self.hangup_both_with(now, key, cause, Vec::new(), tl);
    }

    /// [`Self::hangup_both`] with extra headers (a Reason) on the BYEs.
    pub(crate) fn hangup_both_with(
        &mut self,
        now: Instant,
        key: CallKey,
        cause: EndCause,
        extra: Vec<Header>,
        tl: &mut TransactionLayer,
    ) {
        let mut byes = Vec::new();
        // Toward a carrier the BYE says why in Q.850 terms.
        let q850 = match cause {
            EndCause::SessionFailure | EndCause::MediaTimeout => 41,
            _ => crate::policy::causes::cause_for_bye_or_cancel(),
        };
        let reasons: Vec<Option<Header>> = [Side::A, Side::B]
            .iter()
            .map(|s| {
                let has = extra.iter().any(|h| crate::sip::headers::is_named(h, "Reason"));
                self.leg_trunk(key, *s)
                    .filter(|_| !has)
                    .and_then(|(t, z)| self.reason_toward(t, z, q850))
            })
            .collect();
        if let Some(call) = self.calls.get_mut(&key) {
            call.end_cause.get_or_insert(cause);
            call.state = CallState::Ending;
            call.unacked.clear();
            call.reliable.clear();
            for side in [Side::A, Side::B] {
                if let Some(d) = call.dialog_mut(side) {
                    if d.state == crate::dialog::DialogState::Confirmed {
                        d.state = crate::dialog::DialogState::Terminated;
                        let cseq = d.next_cseq();
                        let mut hs = extra.clone();
                        hs.extend(reasons[side.idx()].clone());
                        byes.push((d.request(Method::Bye, cseq, hs, vec![]), d.flow));
                    }
                }
            }
            call.byes_pending = byes.len() as u8;
        }
        if byes.is_empty() {
            self.finish_call(key, now, 200);
            return;
        }
        for (req, flow) in byes {
            let t = tl.send_request(now, req, flow);
            self.clients.insert(t, ClientRole::Bye(key));
        }
    }

    /// A BYE we sent was answered (or failed): the call ends when none is pending.
    fn on_bye_done(&mut self, now: Instant, key: CallKey, _tl: &mut TransactionLayer) {
        let done = match self.calls.get_mut(&key) {
            Some(call) => {
                call.byes_pending = call.byes_pending.saturating_sub(1);
                call.byes_pending == 0
            }
            None => false,
        };
        if done {
            self.finish_call(key, now, 200);
        }
    }
}
