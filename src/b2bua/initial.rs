//! The initial INVITE: routing, building leg B, provisionals and forks, PRACK, the 2xx, CANCEL,
//! Timer C, and fail-over to the next target.

use super::anchoring::has_sdp;
use super::call::{
    Call, CallKey, CallState, EndCause, Fork, InitialInvite, ReliableProvisional, Side, Unacked2xx,
};
use super::dispatch::{B2bua, ClientRole};
use super::local::{relay_response, strip_tag};
use super::policy_hook::{police_request, police_response, run_policies};
use super::reply::ReplyTemplate;
use crate::dialog::uri::{contact_uri, route_entries};
use crate::dialog::{Dialog, DialogState};
use crate::media::MediaError;
use crate::policy::topology::copy_crossing;
use crate::sip::callid::new_call_id;
use crate::sip::headers::{addr_uri, display_name, make, uri_user};
use crate::sip::message::{SipMsg, Transport};
use crate::sip::token::new_tag;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::{Header, Method};
use std::time::Instant;

/// Option tags of a Supported/Require header list, minus `drop`.
fn option_tags(msg: &SipMsg, header: &str, drop: &str) -> Vec<String> {
    msg.header_all(header)
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(drop))
        .map(str::to_string)
        .collect()
}

/// Removes option tag `tag` from every `header` line (dropping lines left empty).
pub(crate) fn strip_option_tag(headers: &mut rsip::Headers, header: &str, tag: &str) {
    let mut v: Vec<Header> = std::mem::take(headers).into();
    v.retain_mut(|h| {
        if !crate::sip::headers::is_named(h, header) {
            return true;
        }
        let kept: Vec<&str> = crate::sip::headers::name_value(h)
            .1
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(tag))
            .collect();
        if kept.is_empty() {
            return false;
        }
        *h = make(header, kept.join(", "));
        true
    });
    *headers = v.into();
}

/// Where one attempt of a call goes.
struct AttemptTarget {
    flow: Flow,
    ruri: String,
    remote_uri: String,
    trunk: Option<super::router::TrunkId>,
    policies: crate::policy::PolicyChain,
    name: String,
}

/// Our Contact on a zone for a transport.
pub(crate) fn local_contact(b: &B2bua, flow: Flow) -> String {
    let hp = b
        .router
        .zone(flow.zone)
        .map(|z| z.address.host_port(flow.transport))
        .unwrap_or_else(|| "127.0.0.1:5060".to_string());
    match flow.transport {
        Transport::Tcp => format!("<sip:{hp};transport=tcp>"),
        _ => format!("<sip:{hp}>"),
    }
}

impl B2bua {
    /// A new INVITE without To tag: route it and start leg B.
    pub(crate) fn on_initial_invite(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        if self.own_call_ids.contains(&msg.call_id) {
            self.reply_local(now, tl, tx, &msg, flow, 482, None, &[]);
            return;
        }
        let user = msg
            .request_uri()
            .and_then(|u| u.auth.as_ref())
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let binding = self.binding_target(&msg);
        let route = self.router.route(flow.zone, &user);
        if route.is_none() && binding.is_none() {
            self.strike(now, flow, crate::security::Reason::UnknownUser);
            self.reply_local(now, tl, tx, &msg, flow, 404, Some("No Route"), &[]);
            return;
        }
        if let Some(min) = self.timer_too_small(flow.zone, &msg) {
            self.reply_local(now, tl, tx, &msg, flow, 422, None, &[min]);
            return;
        }
        // A call to a registered device ignores the routes: it goes to the device.
        let targets = if binding.is_some() {
            Vec::new()
        } else {
            route.map(|r| r.targets.clone()).unwrap_or_default()
        };
        let route_media = route.map_or(self.router.default_media(), |r| r.media);
        // Trunk caps count a call on its carrier side: the trunk it comes from when that trunk
        // faces carriers, else the first trunk it goes to (a PBX's call to the ITSP counts
        // against the ITSP).
        let source_trunk = self.router.trunk_by_source(flow.zone, flow.remote);
        let from_carrier = source_trunk
            .and_then(|t| self.router.trunk(t))
            .and_then(|t| self.router.zone(t.zone))
            .is_some_and(|z| z.kind == crate::config::ZoneKind::Trunk);
        let cap_trunk =
            if from_carrier { source_trunk } else { targets.first().copied().or(source_trunk) };
        let Ok(admitted) = self.admit_call(now, tx, &msg, flow, cap_trunk, tl) else { return };
        let key = self.alloc_call_key();
        let a_tag = new_tag(&mut self.rng);
        let from = msg.header("From").unwrap_or("");
        let from_user = uri_user(addr_uri(from)).map(str::to_string);
        let to_user = Some(user.clone()).filter(|u| !u.is_empty());
        let to = msg.header("To").unwrap_or("");
        let remote_target = msg
            .header("Contact")
            .and_then(contact_uri)
            .unwrap_or_else(|| addr_uri(from).to_string());
        let a = Dialog {
            call_id: msg.call_id.clone(),
            local_tag: a_tag.clone(),
            remote_tag: msg.from_tag.clone(),
            local_uri: strip_tag(to),
            remote_uri: strip_tag(from),
            local_cseq: 0,
            remote_cseq: Some(msg.cseq),
            remote_target,
            route_set: route_entries(msg.header_all("Record-Route")),
            local_contact: local_contact(self, flow),
            flow,
            state: DialogState::Early,
        };
        let a_100rel =
            msg.has_option_tag("Supported", "100rel") || msg.has_option_tag("Require", "100rel");
        let a_requires_100rel = msg.has_option_tag("Require", "100rel");
        let reply = ReplyTemplate::of(&msg, flow.remote);
        let a_trunk = self.router.trunk_by_source(flow.zone, flow.remote);
        let a_invite_cseq = msg.cseq;
        let msg_allows_update = msg.has_option_tag("Allow", "UPDATE");
        let a_call_id = msg.call_id.clone();
        let call = Call {
            key,
            state: CallState::Proceeding,
            b: a.clone(),
            a,
            a_trunk,
            b_trunk: None,
            forks: Vec::new(),
            winner: None,
            initial: Some(InitialInvite {
                msg: Box::new(msg),
                server_tx: tx,
                reply,
                client_tx: None,
                targets,
                attempt: 0,
                cancelled: None,
                media_mode: route_media,
                binding,
            }),
            b_invite_tx: None,
            b_invite_cseq: 0,
            a_invite_cseq,
            a_tag_used: false,
            a_100rel,
            a_requires_100rel,
            a_rseq: 0,
            reliable: Vec::new(),
            unacked: Vec::new(),
            last_ack: [None, None],
            reinvite: None,
            end_cause: None,
            byes_pending: 0,
            media: None,
            timers: [None, None],
            transfer: None,
            join: None,
            sdp_from: [None, None],
            sdp_to: [None, None],
            peer_allows_update: [msg_allows_update, false],
            span: tracing::info_span!("call", a_call_id = %a_call_id, b_call_id = tracing::field::Empty),
            policies: [
                a_trunk
                    .and_then(|t| self.router.trunk(t))
                    .map(|t| t.policies.clone())
                    .unwrap_or_default(),
                Default::default(),
            ],
            auth_attempt: Default::default(),
            q850_cause: None,
            started: now,
            first_provisional: None,
            early_media_fork: None,
            answered: None,
            from_user,
            to_user,
            admitted,
        };
        self.dialogs.insert((call.a.call_id.clone(), a_tag), (key, Side::A));
        self.invite_servers.insert(tx, key);
        let _entered = call.span.clone().entered();
        self.calls.insert(key, call);
        self.stats.calls_total += 1;
        self.start_attempt(now, key, tl);
    }

    /// Sends the INVITE to the current target of the call's route.
    fn start_attempt(&mut self, now: Instant, key: CallKey, tl: &mut TransactionLayer) {
        // Trunks that keepalive marked down are skipped; nothing left → 503.
        let health = self.health.clone();
        if let Some(init) = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.initial.as_mut())
            .filter(|i| i.binding.is_none())
        {
            while init.targets.get(init.attempt).is_some_and(|t| !health.is_up(t.0 as usize)) {
                init.attempt += 1;
            }
            if init.attempt >= init.targets.len() {
                self.refuse_call(now, key, 503, "No Trunk Available", EndCause::Refused(503), tl);
                return;
            }
        }
        let Some(call) = self.calls.get(&key) else { return };
        let Some(init) = call.initial.as_ref() else { return };
        let Some(target) = self.attempt_target(init) else { return };
        let mode = init.media_mode;
        let offer = has_sdp(&init.msg).then(|| init.msg.body().to_vec());
        let a_source = call.a.flow.remote.ip();
        // Media first: the offer toward B carries B-side relay ports, or the call is refused.
        self.prepare_media(now, key, mode, target.flow.zone, target.trunk, offer.as_deref());
        let anchored_body = match &offer {
            None => None,
            Some(o) => match self.cross_body(now, key, Side::A, o, a_source) {
                Ok(b) => b,
                Err(e) => {
                    let (code, reason, cause) = match e {
                        MediaError::NoPorts(_) => (503, "No Media Ports", EndCause::NoMediaPorts),
                        MediaError::Sdp(_) => (488, "Bad SDP", EndCause::Refused(488)),
                        _ => (500, "Media Failure", EndCause::Refused(500)),
                    };
                    tracing::warn!(error = %e, code, "call refused: media could not be anchored");
                    self.refuse_call(now, key, code, reason, cause, tl);
                    return;
                }
            },
        };
        let Some(call) = self.calls.get(&key) else { return };
        let Some(init) = call.initial.as_ref() else { return };
        let msg = &init.msg;
        let flow = target.flow;
        let zone_host =
            self.router.zone(flow.zone).map(|z| z.address.host.clone()).unwrap_or_default();
        let from_v = msg.header("From").unwrap_or("");
        let from_user = uri_user(addr_uri(from_v)).unwrap_or("anonymous").to_string();
        let local_uri = match display_name(from_v) {
            Some(d) => format!("\"{d}\" <sip:{from_user}@{zone_host}>"),
            None => format!("<sip:{from_user}@{zone_host}>"),
        };
        let (ruri, remote_uri) = (target.ruri.clone(), target.remote_uri.clone());
        let max_forwards = msg.max_forwards.unwrap_or(70).saturating_sub(1);
        let mut supported = option_tags(msg, "Supported", "100rel");
        supported.push("100rel".to_string());
        let timer_headers = self.timer_request_headers(flow.zone);
        supported.retain(|t| !t.eq_ignore_ascii_case("timer"));
        if !timer_headers.is_empty() {
            supported.push("timer".to_string());
        }
        // Session timers are per leg: A's Require: timer is A's business, not B's.
        let require: Vec<String> = option_tags(msg, "Require", "100rel")
            .into_iter()
            .filter(|t| !t.eq_ignore_ascii_case("timer"))
            .collect();
        let mut extra: Vec<Header> = Vec::with_capacity(16);
        copy_crossing(msg, &mut extra, &["Supported", "Require"]);
        extra.push(make("Supported", supported.join(", ")));
        if !require.is_empty() {
            extra.push(make("Require", require.join(", ")));
        }
        extra.extend(timer_headers);
        let body = anchored_body.unwrap_or_else(|| msg.body().to_vec());

        let call_id = new_call_id(&mut self.rng, self.shard, self.shards);
        let b_tag = new_tag(&mut self.rng);
        let mut b = Dialog {
            call_id: call_id.clone(),
            local_tag: b_tag.clone(),
            remote_tag: None,
            local_uri,
            remote_uri,
            local_cseq: 0,
            remote_cseq: None,
            remote_target: ruri,
            route_set: Vec::new(),
            local_contact: local_contact(self, flow),
            flow,
            state: DialogState::Early,
        };
        let cseq = b.next_cseq();
        let mut req = b.request(Method::Invite, cseq, extra, body);
        crate::sip::build::set_header(&mut req.headers, "Max-Forwards", max_forwards.to_string());
        // Policies of the caller's peer, then of the trunk the call goes to.
        let a_chain = call.policies[0].clone();
        let a_zone = call.a.flow.zone;
        let mut out = rsip::SipMessage::Request(req);
        if let Err(rej) =
            run_policies(&self.router, [&a_chain, &target.policies], a_zone, flow.zone, &mut out)
        {
            tracing::info!(code = rej.code, reason = %rej.reason, "call rejected by policy");
            self.refuse_call(now, key, rej.code, &rej.reason, EndCause::Refused(rej.code), tl);
            return;
        }
        let rsip::SipMessage::Request(req) = out else { return };
        let ctx = tl.send_request(now, req, flow);

        let Some(call) = self.calls.get_mut(&key) else { return };
        // A previous attempt's B identity is forgotten: its dialog never got confirmed.
        let old = (call.b.call_id.clone(), call.b.local_tag.clone());
        if call.b_invite_tx.is_some() {
            self.dialogs.remove(&old);
            self.own_call_ids.remove(&old.0);
        }
        call.span.record("b_call_id", call_id.as_str());
        call.b = b;
        call.b_trunk = target.trunk;
        call.policies[1] = target.policies.clone();
        call.b_invite_cseq = cseq;
        call.b_invite_tx = Some(ctx);
        // The previous target's early dialogs end; A keeps the tag it knows (the next target's
        // first early dialog continues under it) and the other forks' A tags are unindexed.
        for f in call.forks.drain(..) {
            if f.a_tag != call.a.local_tag {
                self.dialogs.remove(&(call.a.call_id.clone(), f.a_tag));
            }
        }
        call.a_tag_used = false;
        call.early_media_fork = None;
        call.reliable.clear();
        if let Some(init) = call.initial.as_mut() {
            init.client_tx = Some(ctx);
        }
        self.own_call_ids.insert(call_id.clone());
        self.dialogs.insert((call_id, b_tag), (key, Side::B));
        self.clients.insert(ctx, ClientRole::Initial(key));
        if let Some(call) = self.calls.get(&key) {
            tracing::debug!(a_call_id = %call.a.call_id, target = %target.name, "INVITE sent on leg B");
        }
    }

    /// Where the current attempt goes: the route's next trunk, or the registered device the
    /// INVITE is addressed to.
    fn attempt_target(&self, init: &InitialInvite) -> Option<AttemptTarget> {
        if let Some(b) = &init.binding {
            // A registered device: back over the flow its REGISTER came from, to the Contact
            // it wrote (as Request-URI only: it is never used to route).
            return Some(AttemptTarget {
                flow: b.flow,
                ruri: b.device_contact.clone(),
                remote_uri: format!("<{}>", b.aor),
                trunk: None,
                policies: Default::default(),
                name: "registered device".into(),
            });
        }
        let id = *init.targets.get(init.attempt)?;
        let trunk = self.router.trunk(id)?;
        let user = init
            .msg
            .request_uri()
            .and_then(|u| u.auth.as_ref())
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let host =
            if trunk.domain.parse::<std::net::IpAddr>().is_ok() || trunk.domain.starts_with('[') {
                format!("{}:{}", trunk.domain, trunk.addr.port())
            } else {
                trunk.domain.clone()
            };
        let tparam = if trunk.transport == Transport::Tcp { ";transport=tcp" } else { "" };
        let user_at = if user.is_empty() { String::new() } else { format!("{user}@") };
        Some(AttemptTarget {
            flow: Flow::to(trunk.zone, trunk.transport, trunk.addr),
            ruri: format!("sip:{user_at}{host}{tparam}"),
            remote_uri: format!("<sip:{user_at}{}>", trunk.domain),
            trunk: Some(id),
            policies: trunk.policies.clone(),
            name: trunk.name.clone(),
        })
    }

    /// Answers A's INVITE with `code` before any B leg exists and ends the call.
    fn refuse_call(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        reason: &str,
        cause: EndCause,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let tag = call.a.local_tag.clone();
        if let Some(init) = call.initial.as_ref() {
            let _ = tl.respond(
                now,
                init.server_tx,
                init.reply.response(code, Some(reason), Some(&tag)),
            );
        }
        call.end_cause = Some(cause);
        self.finish_call(key, now, code);
    }

    /// Finds or creates the fork for a response from B carrying `to_tag`.
    fn fork_for(&mut self, key: CallKey, msg: &SipMsg) -> Option<usize> {
        let tag = msg.to_tag.clone()?;
        let call = self.calls.get_mut(&key)?;
        if let Some(i) = call.fork_by_b_tag(&tag) {
            return Some(i);
        }
        let a_tag = if call.a_tag_used { new_tag(&mut self.rng) } else { call.a.local_tag.clone() };
        call.a_tag_used = true;
        let mut b = call.b.clone();
        b.remote_tag = Some(tag);
        if let Some(t) = msg.header("Contact").and_then(contact_uri) {
            b.remote_target = t;
        }
        let mut rs = route_entries(msg.header_all("Record-Route"));
        rs.reverse();
        b.route_set = rs;
        call.forks.push(Fork { a_tag: a_tag.clone(), b, a_pracked: false });
        let idx = call.forks.len() - 1;
        let a_call_id = call.a.call_id.clone();
        self.dialogs.entry((a_call_id, a_tag)).or_insert((key, Side::A));
        Some(idx)
    }

    /// A response to the INVITE on B.
    pub(crate) fn on_initial_response(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let code = msg.status().unwrap_or(0);
        let current = self.calls.get(&key).map(|c| c.b_invite_tx == Some(tx)).unwrap_or(false);
        if !current {
            if (200..300).contains(&code) {
                self.discard_2xx(now, &msg, flow, tl);
            }
            return;
        }
        match code {
            101..=199 => self.on_b_provisional(now, key, msg, flow, tl),
            200..=299 => self.on_b_2xx(now, key, msg, flow, tl),
            300..=699 => {
                if (code == 401 || code == 407)
                    && self.retry_invite_with_auth(now, key, tx, &msg, tl)
                {
                    return;
                }
                self.clients.remove(&tx);
                self.on_b_final_failure(now, key, code, Some(&msg), tl);
            }
            _ => {}
        }
    }

    fn on_b_provisional(
        &mut self,
        now: Instant,
        key: CallKey,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let fork = self.fork_for(key, &msg);
        // Early media: anchored from the first 18x with SDP (RFC 3960: the last one wins).
        let cancelled = self
            .calls
            .get(&key)
            .and_then(|c| c.initial.as_ref())
            .is_none_or(|i| i.cancelled.is_some());
        let body = if cancelled {
            None
        } else {
            self.cross_sdp_lenient(now, key, Side::B, &msg, flow.remote.ip())
        };
        let t1 = tl.timer_config().t1;
        let Some(call) = self.calls.get_mut(&key) else { return };
        call.first_provisional.get_or_insert(now);
        if body.is_some() && fork.is_some() {
            call.early_media_fork = fork;
        }
        let Some(init) = call.initial.as_ref() else { return };
        if init.cancelled.is_some() {
            return;
        }
        let a_tag =
            fork.map(|f| call.forks[f].a_tag.clone()).unwrap_or_else(|| call.a.local_tag.clone());
        let b_rseq = (msg.has_option_tag("Require", "100rel"))
            .then(|| msg.header("RSeq").and_then(|v| v.trim().parse::<u32>().ok()))
            .flatten();
        let reliable_to_a =
            call.a_100rel && (b_rseq.is_some() || call.a_requires_100rel) && fork.is_some();
        let mut resp = relay_response(&msg, &init.reply, Some(&a_tag), Some(&call.a.local_contact));
        if let Some(b) = body {
            resp.body = b;
        }
        let require = option_tags(&msg, "Require", "100rel");
        let mut hs: Vec<Header> = std::mem::take(&mut resp.headers).into();
        hs.retain(|h| !crate::sip::headers::is_named(h, "Require"));
        let mut require = require;
        if reliable_to_a {
            require.push("100rel".into());
            call.a_rseq += 1;
            hs.push(make("RSeq", call.a_rseq.to_string()));
        }
        if !require.is_empty() {
            hs.push(make("Require", require.join(", ")));
        }
        resp.headers = hs.into();
        let resp = police_response(&self.router, call, Side::B, resp);
        let Some(init) = call.initial.as_ref() else { return };
        let server_tx = init.server_tx;
        if reliable_to_a {
            let reliable_transport = call.a.flow.transport.is_reliable();
            call.reliable.push(ReliableProvisional {
                a_rseq: call.a_rseq,
                fork: fork.unwrap_or(0),
                b_rseq,
                response: resp.clone(),
                interval: t1,
                due: if reliable_transport { now + t1 * 64 } else { now + t1 },
                give_up: now + t1 * 64,
            });
            let due = call.reliable.last().map(|r| r.due);
            if let Some(due) = due {
                self.wake_at(due, key);
            }
        }
        let _ = tl.respond(now, server_tx, resp);
        // B's provisional was reliable but A will not PRACK it: PRACK B ourselves.
        if let (Some(rseq), false, Some(f)) = (b_rseq, reliable_to_a, fork) {
            self.send_b_prack(now, key, f, rseq, None, tl);
        }
    }

    /// PRACKs B's reliable provisional `rseq` on fork `fork`; `from_a` is A's PRACK that caused it.
    pub(crate) fn send_b_prack(
        &mut self,
        now: Instant,
        key: CallKey,
        fork: usize,
        rseq: u32,
        from_a: Option<(TxId, ReplyTemplate, &SipMsg)>,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let invite_cseq = call.b_invite_cseq;
        let a_source = Some(call.a.flow.remote.ip());
        let Some(f) = call.forks.get_mut(fork) else { return };
        let cseq = f.b.next_cseq();
        let mut extra = vec![make("RAck", format!("{rseq} {invite_cseq} INVITE"))];
        let body = match &from_a {
            Some((_, _, m)) => {
                copy_crossing(m, &mut extra, &[]);
                m.body().to_vec()
            }
            None => Vec::new(),
        };
        let body = match (&from_a, a_source) {
            (Some((_, _, m)), Some(src)) if has_sdp(m) => {
                self.cross_sdp_lenient(now, key, Side::A, m, src).unwrap_or(body)
            }
            _ => body,
        };
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(f) = call.forks.get_mut(fork) else { return };
        let req = f.b.request(Method::PRack, cseq, extra, body);
        let flow = f.b.flow;
        let req = police_request(&self.router, call, Side::A, req.clone()).unwrap_or(req);
        let t = tl.send_request(now, req, flow);
        self.clients
            .insert(t, ClientRole::Prack { call: key, a_prack: from_a.map(|(tx, r, _)| (tx, r)) });
    }

    fn on_b_2xx(
        &mut self,
        now: Instant,
        key: CallKey,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let winner = self.calls.get(&key).and_then(|c| c.winner);
        if let Some(w) = winner {
            // A retransmission from the winner, or a 2xx from another fork.
            let same = self.calls.get(&key).is_some_and(|c| c.forks[w].b.remote_tag == msg.to_tag);
            if same {
                self.resend_ack(key, Side::B, msg.cseq, tl);
            } else {
                self.discard_2xx(now, &msg, flow, tl);
            }
            return;
        }
        let Some(fork) = self.fork_for(key, &msg) else {
            self.discard_2xx(now, &msg, flow, tl);
            return;
        };
        let cancelled = self
            .calls
            .get(&key)
            .and_then(|c| c.initial.as_ref())
            .is_none_or(|i| i.cancelled.is_some());
        let body = if cancelled {
            None
        } else {
            self.cross_sdp_lenient(now, key, Side::B, &msg, flow.remote.ip())
        };
        let t1 = tl.timer_config().t1;
        let Some(call) = self.calls.get_mut(&key) else { return };
        call.winner = Some(fork);
        call.answered = Some(now);
        call.reliable.clear();
        let b_cseq = call.b_invite_cseq;
        {
            let f = &mut call.forks[fork];
            f.b.state = DialogState::Confirmed;
        }
        let Some(init) = call.initial.take() else { return };
        self.invite_servers.remove(&init.server_tx);
        self.stats.calls_answered += 1;
        if let Some(code) = init.cancelled {
            // A cancelled (or the ring timeout hit) while B answered: hang B up.
            let _ = code;
            let ack = call.forks[fork].b.request(Method::Ack, b_cseq, vec![], vec![]);
            let bytes = tl.send_stateless(ack, call.forks[fork].b.flow);
            call.last_ack[Side::B.idx()] = Some((b_cseq, bytes));
            call.a.state = DialogState::Terminated;
            self.hangup_both(now, key, EndCause::Cancelled, tl);
            return;
        }
        let delayed_offer = init.msg.body().is_empty() && !msg.body().is_empty();
        if !delayed_offer {
            let ack = call.forks[fork].b.request(Method::Ack, b_cseq, vec![], vec![]);
            let bytes = tl.send_stateless(ack, call.forks[fork].b.flow);
            call.last_ack[Side::B.idx()] = Some((b_cseq, bytes));
        }
        let a_tag = call.forks[fork].a_tag.clone();
        call.a.local_tag = a_tag.clone();
        call.a.state = DialogState::Confirmed;
        call.state = CallState::Answered;
        call.peer_allows_update[Side::B.idx()] = msg.has_option_tag("Allow", "UPDATE");
        // RFC 4028 per leg: each leg gets its own Session-Expires (B's never crosses).
        let timer_headers = self.start_timers(now, key, &init.msg, &msg);
        let Some(call) = self.calls.get_mut(&key) else { return };
        let mut resp = relay_response(&msg, &init.reply, Some(&a_tag), Some(&call.a.local_contact));
        strip_option_tag(&mut resp.headers, "Require", "timer");
        for h in timer_headers {
            resp.headers.push(h);
        }
        if let Some(b) = body {
            resp.body = b;
        }
        let resp = police_response(&self.router, call, Side::B, resp);
        let _ = tl.respond(now, init.server_tx, resp.clone());
        let reliable = call.a.flow.transport.is_reliable();
        let give_up = now + t1 * 64;
        let due = if reliable { give_up } else { now + t1 };
        call.unacked.push(Unacked2xx {
            side: Side::A,
            cseq: call.a_invite_cseq,
            tx: init.server_tx,
            response: resp,
            interval: t1,
            due,
            give_up,
            forward_ack: delayed_offer.then_some(b_cseq),
            answer_in_ack: false,
        });
        self.wake_at(due, key);
    }

    /// A final non-2xx from B (or a synthesized 408/503): fail over or relay it to A.
    pub(crate) fn on_b_final_failure(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        msg: Option<&SipMsg>,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let a_tag = msg
            .and_then(|m| m.to_tag.as_deref())
            .and_then(|t| call.fork_by_b_tag(t))
            .map(|f| call.forks[f].a_tag.clone())
            .unwrap_or_else(|| call.a.local_tag.clone());
        let Some(init) = call.initial.as_mut() else { return };
        if let Some(c) = init.cancelled {
            // A already got its 487 at CANCEL time; after a ring timeout A gets the timeout now.
            if c != 487 {
                let resp = init.reply.response(c, None, Some(&a_tag));
                let _ = tl.respond(now, init.server_tx, resp);
            }
            self.finish_call(key, now, c);
            return;
        }
        // A carrier's Q.850 Reason says what the failure means (a 500 with "user busy" must
        // not be retried on the next carrier).
        let (b_trunk0, b_zone0) = (call.b_trunk, call.b.flow.zone);
        let mapped = if let Some(m) = msg {
            let reasons = crate::policy::reason::parse_reason_headers(m.header_all("Reason"));
            let zone_is_trunk =
                self.router.zone(b_zone0).is_some_and(|z| z.kind == crate::config::ZoneKind::Trunk);
            b_trunk0
                .and_then(|t| self.router.trunk(t))
                .filter(|_| zone_is_trunk)
                .map_or(code, |t| t.causes.sip_toward_pbx(code, &reasons))
        } else {
            code
        };
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(init) = call.initial.as_mut() else { return };
        let failover = mapped == 408 || (500..600).contains(&mapped);
        if failover && init.attempt + 1 < init.targets.len() {
            init.attempt += 1;
            tracing::info!(code, attempt = init.attempt, "leg B failed, trying next target");
            self.start_attempt(now, key, tl);
            return;
        }
        let server_tx = init.server_tx;
        let (b_trunk, b_zone, a_trunk, a_zone) =
            (call.b_trunk, call.b.flow.zone, call.a_trunk, call.a.flow.zone);
        // From a carrier: a Q.850 Reason decides the code toward the LAN (RFC 3398 §7.2.4.1).
        let (out_code, cause) = self.map_trunk_failure(b_trunk, b_zone, code, msg);
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(init) = call.initial.as_ref() else { return };
        let mut resp = match msg {
            Some(m) => relay_response(m, &init.reply, Some(&a_tag), None),
            None => init.reply.response(code, None, Some(&a_tag)),
        };
        if out_code != code {
            resp.status_code = crate::sip::wire::status(out_code, None);
        }
        call.q850_cause = cause;
        call.end_cause = Some(if code == 408 && msg.is_none() {
            EndCause::Timeout
        } else {
            EndCause::Rejected(code)
        });
        self.filter_trunk_reason(b_trunk, b_zone, &mut resp.headers);
        // Toward a carrier: say why in Q.850 terms (RFC 3398 §8.2.6.1, RFC 6432).
        if self.is_trunk_zone(a_zone) {
            let map = a_trunk.and_then(|t| self.router.trunk(t)).map(|t| t.causes.clone());
            let c = map.and_then(|m| m.cause_for_sip(out_code, None));
            if let Some(c) = c {
                crate::sip::build::remove_header(&mut resp.headers, "Reason");
                if let Some(h) = self.reason_toward(a_trunk, a_zone, c) {
                    resp.headers.push(h);
                    self.count_cause_sent(a_trunk, c);
                }
                if let Some(call) = self.calls.get_mut(&key) {
                    call.q850_cause = Some(c);
                }
            }
        }
        let resp = match self.calls.get(&key) {
            Some(call) => police_response(&self.router, call, Side::B, resp),
            None => resp,
        };
        let _ = tl.respond(now, server_tx, resp);
        self.finish_call(key, now, out_code);
    }

    /// Timer B or a transport error on B's INVITE.
    pub(crate) fn on_initial_failure(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        code: u16,
        tl: &mut TransactionLayer,
    ) {
        let current = self.calls.get(&key).map(|c| c.b_invite_tx == Some(tx)).unwrap_or(false);
        if current {
            self.on_b_final_failure(now, key, code, None, tl);
        }
    }

    /// Timer C: the callee rang too long; CANCEL B and answer A 408 once B confirms.
    pub(crate) fn on_ring_timeout(&mut self, now: Instant, tx: TxId, tl: &mut TransactionLayer) {
        let Some(ClientRole::Initial(key)) = self.clients.get(&tx).cloned() else { return };
        let Some(call) = self.calls.get_mut(&key) else { return };
        if let Some(init) = call.initial.as_mut() {
            if init.cancelled.is_none() {
                init.cancelled = Some(408);
                call.end_cause = Some(EndCause::NoAnswer);
                let (bt, bz) = (call.b_trunk, call.b.flow.zone);
                let mut reason = vec![make("Reason", "SIP;cause=408;text=\"No Answer\"")];
                // Q.850 19: no answer from user (user alerted).
                reason.extend(self.reason_toward(bt, bz, 19));
                tl.cancel(now, tx, reason);
            }
        }
    }

    /// CANCEL from A: 200 to it, 487 to the INVITE, CANCEL on B.
    pub(crate) fn on_cancel(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some(inv) = tl.invite_for_cancel(&msg) else {
            self.reply_local(now, tl, tx, &msg, flow, 481, None, &[]);
            return;
        };
        let key = self.invite_servers.get(&inv).copied();
        let tag = key.and_then(|k| self.calls.get(&k)).map(|c| c.a.local_tag.clone());
        let mut ok = crate::sip::build::response_to(&msg, 200, None, tag.as_deref(), flow.remote);
        ok.headers.push(make("Content-Length", "0"));
        let _ = tl.respond(now, tx, ok);
        let Some(key) = key else { return };
        if !tl.server_invite_pending(inv) {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else { return };
        let a_tag = call.a.local_tag.clone();
        let Some(init) = call.initial.as_mut() else { return };
        let resp = init.reply.response(487, None, Some(&a_tag));
        let _ = tl.respond(now, init.server_tx, resp);
        init.cancelled = Some(487);
        call.end_cause = Some(EndCause::Cancelled);
        let mut reason: Vec<Header> =
            msg.header("Reason").map(|r| vec![make("Reason", r)]).unwrap_or_default();
        let (bt, bz) = (call.b_trunk, call.b.flow.zone);
        let client_tx = init.client_tx;
        self.add_clearing_reason(bt, bz, &mut reason);
        match client_tx {
            Some(ctx) => tl.cancel(now, ctx, reason),
            None => self.finish_call(key, now, 487),
        }
    }

    /// A 2xx that matched no transaction: a retransmission (ACK again) or an unwanted fork.
    pub(crate) fn on_stray_2xx(
        &mut self,
        now: Instant,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let found = msg
            .from_tag
            .as_ref()
            .and_then(|t| self.dialogs.get(&(msg.call_id.clone(), t.clone())).copied());
        if let Some((key, side)) = found {
            let is_winner = self
                .calls
                .get(&key)
                .and_then(|c| c.dialog(side))
                .is_some_and(|d| d.remote_tag == msg.to_tag);
            if is_winner {
                self.resend_ack(key, side, msg.cseq, tl);
                return;
            }
        }
        self.discard_2xx(now, &msg, flow, tl);
    }

    /// Sends again the ACK stored for `side` if it acknowledges CSeq `cseq`.
    pub(crate) fn resend_ack(
        &mut self,
        key: CallKey,
        side: Side,
        cseq: u32,
        tl: &mut TransactionLayer,
    ) {
        if let Some(call) = self.calls.get(&key) {
            if let (Some((c, bytes)), Some(d)) = (&call.last_ack[side.idx()], call.dialog(side)) {
                if *c == cseq {
                    tl.send_raw(d.flow, bytes.clone());
                }
            }
        }
    }

    /// ACKs and BYEs a 2xx we do not want (a losing fork, or a call already gone).
    pub(crate) fn discard_2xx(
        &mut self,
        now: Instant,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some(target) = msg.header("Contact").and_then(contact_uri) else { return };
        let mut rs = route_entries(msg.header_all("Record-Route"));
        rs.reverse();
        let from = msg.header("From").unwrap_or("");
        let to = msg.header("To").unwrap_or("");
        let d = Dialog {
            call_id: msg.call_id.clone(),
            local_tag: msg.from_tag.clone().unwrap_or_default(),
            remote_tag: msg.to_tag.clone(),
            local_uri: strip_tag(from),
            remote_uri: strip_tag(to),
            local_cseq: msg.cseq,
            remote_cseq: None,
            remote_target: target,
            route_set: rs,
            local_contact: local_contact(self, flow),
            flow: Flow { conn: None, ..flow },
            state: DialogState::Confirmed,
        };
        let ack = d.request(Method::Ack, msg.cseq, vec![], vec![]);
        tl.send_stateless(ack, d.flow);
        let bye = d.request(Method::Bye, msg.cseq.wrapping_add(1), vec![], vec![]);
        let t = tl.send_request(now, bye, d.flow);
        self.clients.insert(t, ClientRole::Discard);
    }
}
