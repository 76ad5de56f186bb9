//! Requests within a call: ACK, BYE, re-INVITE (with glare), PRACK from A, and everything else
//! relayed to the other leg (UPDATE, INFO, MESSAGE, NOTIFY, REFER, OPTIONS).

use super::call::{CallKey, CallState, EndCause, PendingReinvite, Side};
use super::dispatch::{B2bua, ClientRole};
use super::local::relay_response;
use super::policy_hook::{police_request, police_response};
use super::reply::ReplyTemplate;
use crate::dialog::uri::contact_uri;
use crate::dialog::{Dialog, DialogState};
use crate::policy::topology::copy_crossing;
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::{Header, Method};
use std::time::Instant;

impl B2bua {
    /// Locates the call and side of an in-dialog message by Call-ID and our tag.
    fn lookup(&self, call_id: &str, our_tag: Option<&str>) -> Option<(CallKey, Side)> {
        let tag = our_tag?;
        self.dialogs.get(&(call_id.to_string(), tag.to_string())).copied()
    }

    /// The dialog to send on toward `to` for a request that arrived on the other side with
    /// `msg` (early dialogs: the fork the request belongs to). Returns a clone for an early A
    /// dialog presented under a fork's tag.
    fn target_dialog(&mut self, key: CallKey, from: Side, msg: &SipMsg) -> Option<&mut Dialog> {
        let call = self.calls.get_mut(&key)?;
        if call.winner.is_some() {
            return call.dialog_mut(from.other());
        }
        match from {
            Side::A => {
                let f = msg.to_tag.as_deref().and_then(|t| call.fork_by_a_tag(t))?;
                Some(&mut call.forks[f].b)
            }
            Side::B => {
                // Early request from B toward A: present it under the fork's A tag.
                let f = msg.from_tag.as_deref().and_then(|t| call.fork_by_b_tag(t))?;
                call.a.local_tag = call.forks[f].a_tag.clone();
                Some(&mut call.a)
            }
        }
    }

    /// A request with a To tag (not ACK, not CANCEL).
    pub(crate) fn on_in_dialog_request(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some((key, side)) = self.lookup(&msg.call_id, msg.to_tag.as_deref()) else {
            self.reply_local(now, tl, tx, &msg, flow, 481, None, &[]);
            return;
        };
        let method = msg.method();
        let cseq_ok = self.calls.get_mut(&key).and_then(|c| {
            let d = match side {
                Side::A => Some(&mut c.a),
                Side::B => match c.winner {
                    Some(w) => c.forks.get_mut(w).map(|f| &mut f.b),
                    None => msg
                        .from_tag
                        .as_deref()
                        .and_then(|t| c.fork_by_b_tag(t))
                        .and_then(|f| c.forks.get_mut(f))
                        .map(|f| &mut f.b),
                },
            }?;
            Some(d.accept_remote_cseq(msg.cseq, method))
        });
        match cseq_ok {
            None => {
                self.reply_local(now, tl, tx, &msg, flow, 481, None, &[]);
                return;
            }
            Some(false) => {
                self.reply_local(now, tl, tx, &msg, flow, 500, Some("CSeq Out Of Order"), &[]);
                return;
            }
            Some(true) => {}
        }
        if msg.max_forwards == Some(0) {
            self.reply_local(now, tl, tx, &msg, flow, 483, None, &[]);
            return;
        }
        if self.in_dialog_of_joined(now, key, side, tx, &msg, flow, tl) {
            return;
        }
        match method {
            Method::Bye => self.on_bye(now, key, side, tx, msg, flow, tl),
            Method::Invite => self.on_reinvite(now, key, side, tx, msg, flow, tl),
            Method::PRack if side == Side::A => self.on_a_prack(now, key, tx, msg, flow, tl),
            _ => self.relay_in_dialog(now, key, side, tx, msg, flow, tl),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_bye(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        self.reply_local(now, tl, tx, &msg, flow, 200, None, &[]);
        if self.transferor_left(key, side) {
            // The transferor hangs up during its transfer: only its own leg ends.
            if let Some(d) = self.calls.get_mut(&key).and_then(|c| c.dialog_mut(side)) {
                d.state = DialogState::Terminated;
            }
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else { return };
        call.end_cause.get_or_insert(EndCause::Bye(side));
        if let Some(d) = call.dialog_mut(side) {
            d.state = DialogState::Terminated;
        }
        if call.state == CallState::Proceeding {
            // A BYE before the answer (an early-dialog BYE from A): treat like a CANCEL.
            if let Some(init) = call.initial.as_mut() {
                if tl.server_invite_pending(init.server_tx) && init.cancelled.is_none() {
                    let tag = call.a.local_tag.clone();
                    let _ =
                        tl.respond(now, init.server_tx, init.reply.response(487, None, Some(&tag)));
                    init.cancelled = Some(487);
                    if let Some(ctx) = init.client_tx {
                        tl.cancel(now, ctx, vec![]);
                        return;
                    }
                }
            }
            self.finish_call(key, now, 487);
            return;
        }
        call.state = CallState::Ending;
        call.unacked.clear();
        let other = side.other();
        let mut extra: Vec<Header> = Vec::new();
        copy_crossing(&msg, &mut extra, &[]);
        // Reasons: stripped from a carrier that should not pass them, added toward a carrier.
        let (from_trunk, from_zone) =
            (if side == Side::A { call.a_trunk } else { call.b_trunk }, flow.zone);
        let to = self.leg_trunk(key, other);
        let pass = from_trunk.and_then(|t| self.router.trunk(t)).is_none_or(|t| t.pass_reason);
        if !pass && self.is_trunk_zone(from_zone) {
            extra.retain(|h| !crate::sip::headers::is_named(h, "Reason"));
        }
        if let Some((t, z)) = to {
            self.add_clearing_reason(t, z, &mut extra);
        }
        let Some(call) = self.calls.get_mut(&key) else { return };
        let out = match call.dialog_mut(other) {
            Some(d) if d.state == DialogState::Confirmed => {
                d.state = DialogState::Terminated;
                let cseq = d.next_cseq();
                Some((d.request(Method::Bye, cseq, extra, vec![]), d.flow))
            }
            _ => None,
        };
        match out {
            Some((req, f)) => {
                call.byes_pending = 1;
                // A BYE must go out whatever a rule says; a rejection leaves it as built.
                let req = police_request(&self.router, call, side, req.clone()).unwrap_or(req);
                let t = tl.send_request(now, req, f);
                self.clients.insert(t, ClientRole::Bye(key));
            }
            None => self.finish_call(key, now, 200),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_reinvite(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get(&key) else { return };
        match call.state {
            CallState::Ending | CallState::Ended => {
                self.reply_local(now, tl, tx, &msg, flow, 481, None, &[]);
                return;
            }
            CallState::Proceeding => {
                self.reply_local(now, tl, tx, &msg, flow, 491, None, &[]);
                return;
            }
            _ => {}
        }
        if let Some(r) = &call.reinvite {
            if r.from == side {
                // RFC 3261 §14.2: a second INVITE while the first is pending.
                let ra = make("Retry-After", (self.rng_small() % 10).to_string());
                self.reply_local(now, tl, tx, &msg, flow, 500, None, &[ra]);
            } else {
                self.reply_local(now, tl, tx, &msg, flow, 491, None, &[]);
            }
            return;
        }
        // RFC 4028: a re-INVITE that only refreshes this leg's session is answered here.
        if let Some((headers, body)) = self.local_refresh_answer(now, key, side, &msg) {
            let reply = ReplyTemplate::of(&msg, flow.remote);
            let tag = None;
            let mut resp = reply.response(200, None, tag);
            let contact =
                self.calls.get(&key).and_then(|c| c.dialog(side)).map(|d| d.local_contact.clone());
            if let Some(c) = contact {
                resp.headers.push(make("Contact", c));
            }
            for h in headers {
                resp.headers.push(h);
            }
            resp.body = body;
            self.send_2xx_until_ack(now, key, side, tx, msg.cseq, resp, flow, false, tl);
            return;
        }
        let other = side.other();
        let reply = ReplyTemplate::of(&msg, flow.remote);
        let offerless = msg.body().is_empty();
        let body = match self.cross_sdp(now, key, side, &msg, flow.remote.ip()) {
            Ok(Some(b)) => b,
            Ok(None) => msg.body().to_vec(),
            Err(e) => {
                // The session stays as it was (RFC 3264 §8: a refused re-offer changes nothing).
                let (code, reason) = match e {
                    crate::media::MediaError::NoPorts(_) => (503, "No Media Ports"),
                    _ => (488, "Not Acceptable Here"),
                };
                self.reply_local(now, tl, tx, &msg, flow, code, Some(reason), &[]);
                return;
            }
        };
        let Some(call) = self.calls.get_mut(&key) else { return };
        if let Some(t) = msg.header("Contact").and_then(contact_uri) {
            if let Some(d) = call.dialog_mut(side) {
                d.remote_target = t;
            }
        }
        let Some(d) = call.dialog_mut(other) else {
            self.reply_local(now, tl, tx, &msg, flow, 481, None, &[]);
            return;
        };
        let cseq = d.next_cseq();
        let mut extra: Vec<Header> = Vec::new();
        copy_crossing(&msg, &mut extra, &[]);
        let req = d.request(Method::Invite, cseq, extra, body);
        let f = d.flow;
        let req = match police_request(&self.router, call, side, req) {
            Ok(r) => r,
            Err(rej) => {
                self.reply_local(now, tl, tx, &msg, flow, rej.code, Some(&rej.reason), &[]);
                return;
            }
        };
        let ctx = tl.send_request(now, req, f);
        call.reinvite = Some(PendingReinvite {
            from: side,
            server_tx: tx,
            reply,
            client_tx: ctx,
            out_cseq: cseq,
            offerless,
            in_cseq: msg.cseq,
        });
        self.clients.insert(ctx, ClientRole::ReInvite(key));
    }

    /// Sends `resp`, a 2xx answering `side`'s INVITE with CSeq `cseq` itself, through `tx`, and
    /// keeps it to retransmit until the ACK (RFC 3261 §13.3.1.4: the 2xx is the TU's to resend).
    /// `answer_in_ack`: the 2xx carries our offer, the ACK's answer moves `side`'s media.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_2xx_until_ack(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        cseq: u32,
        resp: rsip::Response,
        flow: Flow,
        answer_in_ack: bool,
        tl: &mut TransactionLayer,
    ) {
        let _ = tl.respond(now, tx, resp.clone());
        let t1 = tl.timer_config().t1;
        let Some(call) = self.calls.get_mut(&key) else { return };
        let give_up = now + t1 * 64;
        let due = if flow.transport.is_reliable() { give_up } else { now + t1 };
        call.unacked.push(super::call::Unacked2xx {
            side,
            cseq,
            tx,
            response: resp,
            interval: t1,
            due,
            give_up,
            forward_ack: None,
            answer_in_ack,
        });
        self.wake_at(due, key);
    }

    pub(crate) fn rng_small(&mut self) -> u32 {
        rand::Rng::gen(&mut self.rng)
    }

    /// A response to a re-INVITE we relayed.
    pub(crate) fn on_reinvite_response(
        &mut self,
        now: Instant,
        key: CallKey,
        msg: SipMsg,
        source: std::net::IpAddr,
        tl: &mut TransactionLayer,
    ) {
        let code = msg.status().unwrap_or(0);
        let t1 = tl.timer_config().t1;
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(r) = call.reinvite.clone() else {
            if (200..300).contains(&code) {
                // 2xx retransmission after we finished: ACK again.
                let side = if call.a.call_id == msg.call_id { Side::A } else { Side::B };
                self.resend_ack(key, side, msg.cseq, tl);
            }
            return;
        };
        let from = r.from;
        let to = from.other();
        let contact = call.dialog(from).map(|d| d.local_contact.clone());
        let mut resp = relay_response(&msg, &r.reply, None, contact.as_deref());
        if code < 300 {
            if let Some(b) = self.cross_sdp_lenient(now, key, to, &msg, source) {
                resp.body = b;
            }
        }
        let Some(call) = self.calls.get_mut(&key) else { return };
        let resp = police_response(&self.router, call, to, resp);
        match code {
            101..=199 => {
                let _ = tl.respond(now, r.server_tx, resp);
            }
            200..=299 => {
                if let (Some(t), Some(d)) =
                    (msg.header("Contact").and_then(contact_uri), call.dialog_mut(to))
                {
                    d.remote_target = t;
                }
                let delayed = r.offerless && !msg.body().is_empty();
                if !delayed {
                    if let Some(d) = call.dialog(to) {
                        let ack = d.request(Method::Ack, r.out_cseq, vec![], vec![]);
                        let bytes = tl.send_stateless(ack, d.flow);
                        call.last_ack[to.idx()] = Some((r.out_cseq, bytes));
                    }
                }
                let _ = tl.respond(now, r.server_tx, resp.clone());
                let reliable = call.dialog(from).is_some_and(|d| d.flow.transport.is_reliable());
                let give_up = now + t1 * 64;
                let due = if reliable { give_up } else { now + t1 };
                call.unacked.push(super::call::Unacked2xx {
                    side: from,
                    cseq: r.in_cseq,
                    tx: r.server_tx,
                    response: resp,
                    interval: t1,
                    due,
                    give_up,
                    forward_ack: delayed.then_some(r.out_cseq),
                    answer_in_ack: false,
                });
                call.reinvite = None;
                self.wake_at(due, key);
                // A completed offer/answer refreshes both legs' sessions (RFC 4028 §7).
                self.leg_refreshed(now, key, Side::A);
                self.leg_refreshed(now, key, Side::B);
            }
            _ => {
                let _ = tl.respond(now, r.server_tx, resp);
                call.reinvite = None;
                if code == 408 || code == 481 {
                    self.hangup_both(now, key, EndCause::SessionFailure, tl);
                }
            }
        }
    }

    /// A relayed re-INVITE timed out or could not be sent.
    pub(crate) fn on_reinvite_failure(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        if let Some(r) = call.reinvite.take() {
            let _ = tl.respond(now, r.server_tx, r.reply.response(code, None, None));
        }
        self.hangup_both(now, key, EndCause::SessionFailure, tl);
    }

    /// The ACK of a 2xx (outside transactions).
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some((key, side)) = self.lookup(&msg.call_id, msg.to_tag.as_deref()) else { return };
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(pos) = call.unacked.iter().position(|u| u.side == side && u.cseq == msg.cseq)
        else {
            return;
        };
        let u = call.unacked.remove(pos);
        if call.state == CallState::Answered && side == Side::A {
            call.state = CallState::Confirmed;
        }
        if u.answer_in_ack {
            self.take_answer_in_ack(now, key, side, &msg, flow, tl);
            return;
        }
        let Some(out_cseq) = u.forward_ack else { return };
        // Delayed offer: this ACK carries the answer, which goes on in the other leg's ACK.
        let body = self
            .cross_sdp_lenient(now, key, side, &msg, flow.remote.ip())
            .unwrap_or_else(|| msg.body().to_vec());
        let Some(call) = self.calls.get_mut(&key) else { return };
        let other = side.other();
        if let Some(d) = call.dialog(other) {
            let mut extra = Vec::new();
            copy_crossing(&msg, &mut extra, &[]);
            let ack = d.request(Method::Ack, out_cseq, extra, body);
            let flow = d.flow;
            let ack = police_request(&self.router, call, side, ack.clone()).unwrap_or(ack);
            let bytes = tl.send_stateless(ack, flow);
            call.last_ack[other.idx()] = Some((out_cseq, bytes));
        }
    }

    /// PRACK from A for a reliable provisional we sent.
    fn on_a_prack(
        &mut self,
        now: Instant,
        key: CallKey,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let rseq = msg
            .header("RAck")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok());
        let Some(call) = self.calls.get_mut(&key) else { return };
        let pos = rseq.and_then(|r| call.reliable.iter().position(|p| p.a_rseq == r));
        let Some(pos) = pos else {
            // Already PRACKed (retransmission answered 200) or unknown: RFC 3262 §3 says 481.
            let known = rseq.is_some_and(|r| r <= call.a_rseq);
            let code = if known { 200 } else { 481 };
            self.reply_local(now, tl, tx, &msg, flow, code, None, &[]);
            return;
        };
        let p = call.reliable.remove(pos);
        if let Some(f) = call.forks.get_mut(p.fork) {
            f.a_pracked = true;
        }
        match p.b_rseq {
            Some(b_rseq) => {
                let reply = ReplyTemplate::of(&msg, flow.remote);
                self.send_b_prack(now, key, p.fork, b_rseq, Some((tx, reply, &msg)), tl);
            }
            None => self.reply_local(now, tl, tx, &msg, flow, 200, None, &[]),
        }
    }

    /// Any other in-dialog request: the same method on the other leg, its answer relayed back.
    #[allow(clippy::too_many_arguments)]
    fn relay_in_dialog(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let method = msg.method();
        if method == Method::Info && self.info_to_rfc4733(now, key, side, tx, &msg, flow, tl) {
            return;
        }
        if method == Method::Refer {
            // REFER handling is the business of the peer it would go to.
            let other_trunk = self.calls.get(&key).and_then(|c| match side {
                Side::A => c.b_trunk,
                Side::B => c.a_trunk,
            });
            match other_trunk.and_then(|t| self.router.trunk(t)).map(|t| t.refer) {
                Some(crate::config::ReferMode::Local) => {
                    self.refer_locally(now, key, side, tx, &msg, flow, tl);
                    return;
                }
                Some(crate::config::ReferMode::Reject) => {
                    self.reply_local(
                        now,
                        tl,
                        tx,
                        &msg,
                        flow,
                        403,
                        Some("Transfer Not Allowed"),
                        &[],
                    );
                    return;
                }
                _ => {}
            }
        }
        let glare = method == Method::Update
            && !msg.body().is_empty()
            && self.calls.get(&key).is_some_and(|c| c.reinvite.is_some());
        if glare {
            self.reply_local(now, tl, tx, &msg, flow, 491, None, &[]);
            return;
        }
        if method == Method::Update {
            // RFC 4028: a body-less UPDATE refreshing this leg's session is answered here.
            if let Some((headers, _)) = self.local_refresh_answer(now, key, side, &msg) {
                let mut extra = headers;
                if let Some(c) = self
                    .calls
                    .get(&key)
                    .and_then(|c| c.dialog(side))
                    .map(|d| d.local_contact.clone())
                {
                    extra.push(make("Contact", c));
                }
                self.reply_local(now, tl, tx, &msg, flow, 200, None, &extra);
                return;
            }
            if let Some(t) = msg.header("Contact").and_then(contact_uri) {
                if let Some(d) = self.calls.get_mut(&key).and_then(|c| c.dialog_mut(side)) {
                    d.remote_target = t;
                }
            }
        }
        let body = match self.cross_sdp(now, key, side, &msg, flow.remote.ip()) {
            Ok(Some(b)) => b,
            Ok(None) => msg.body().to_vec(),
            Err(e) => {
                let (code, reason) = match e {
                    crate::media::MediaError::NoPorts(_) => (503, "No Media Ports"),
                    _ => (488, "Not Acceptable Here"),
                };
                self.reply_local(now, tl, tx, &msg, flow, code, Some(reason), &[]);
                return;
            }
        };
        let Some(d) = self.target_dialog(key, side, &msg) else {
            self.reply_local(now, tl, tx, &msg, flow, 481, None, &[]);
            return;
        };
        let cseq = d.next_cseq();
        let mut extra: Vec<Header> = Vec::new();
        copy_crossing(&msg, &mut extra, &[]);
        let req = d.request(method, cseq, extra, body);
        let f = d.flow;
        let policed = match self.calls.get(&key) {
            Some(call) => police_request(&self.router, call, side, req),
            None => Ok(req),
        };
        let req = match policed {
            Ok(r) => r,
            Err(rej) => {
                self.reply_local(now, tl, tx, &msg, flow, rej.code, Some(&rej.reason), &[]);
                return;
            }
        };
        let ctx = tl.send_request(now, req, f);
        let reply = ReplyTemplate::of(&msg, flow.remote);
        self.clients.insert(ctx, ClientRole::Relay { call: key, from: side, server_tx: tx, reply });
    }

    /// The answer to a relayed in-dialog request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_relay_response(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        server_tx: TxId,
        reply: &ReplyTemplate,
        msg: &SipMsg,
        source: std::net::IpAddr,
        tl: &mut TransactionLayer,
    ) {
        let code = msg.status().unwrap_or(0);
        let refresh = msg.cseq_method == Method::Update && (200..300).contains(&code);
        let contact = if refresh {
            self.calls.get(&key).and_then(|c| c.dialog(from)).map(|d| d.local_contact.clone())
        } else {
            None
        };
        if refresh {
            if let (Some(t), Some(d)) = (
                msg.header("Contact").and_then(contact_uri),
                self.calls.get_mut(&key).and_then(|c| c.dialog_mut(from.other())),
            ) {
                d.remote_target = t;
            }
        }
        let mut resp = relay_response(msg, reply, None, contact.as_deref());
        if code < 300 {
            if let Some(b) = self.cross_sdp_lenient(now, key, from.other(), msg, source) {
                resp.body = b;
            }
        }
        let resp = match self.calls.get(&key) {
            Some(call) => police_response(&self.router, call, from.other(), resp),
            None => resp,
        };
        let _ = tl.respond(now, server_tx, resp);
        if refresh {
            self.leg_refreshed(now, key, Side::A);
            self.leg_refreshed(now, key, Side::B);
        }
    }
}
