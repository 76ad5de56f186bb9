//! How the B2BUA behaves on a leg that faces a carrier: digest challenges answered with the
//! trunk's credentials (one answer per request, a second non-stale challenge fails the call
//! with 403 / cause 21), and Q.850 causes carried in Reason headers both ways (RFC 3326,
//! RFC 6432, tables of RFC 3398 with per-trunk overrides).

use super::call::{CallKey, EndCause, Side};
use super::dispatch::{B2bua, ClientRole};
use super::router::TrunkId;
use crate::config::ZoneKind;
use crate::policy::causes::cause_for_bye_or_cancel;
use crate::policy::reason::{parse_reason_headers, Reason};
use crate::sip::build::remove_header;
use crate::sip::headers::{is_named, make};
use crate::sip::message::SipMsg;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::ZoneId;
use crate::trunk::digest_client::{AuthKind, ChallengeOutcome, DigestClient};
use rsip::Header;
use std::time::Instant;

impl B2bua {
    /// True when `zone` faces carriers.
    pub(crate) fn is_trunk_zone(&self, zone: ZoneId) -> bool {
        self.router.zone(zone).is_some_and(|z| z.kind == ZoneKind::Trunk)
    }

    /// A `Reason: Q.850;cause=N` header toward `trunk` when it wants one.
    pub(crate) fn reason_toward(
        &self,
        trunk: Option<TrunkId>,
        zone: ZoneId,
        cause: u8,
    ) -> Option<Header> {
        let wants = trunk.and_then(|t| self.router.trunk(t)).is_none_or(|t| t.send_reason);
        (wants && self.is_trunk_zone(zone)).then(|| make("Reason", Reason::q850(cause).to_string()))
    }

    /// Adds a normal-clearing Q.850 Reason to a BYE or CANCEL toward a carrier, unless the
    /// request already carries a Q.850 Reason (passed on from the other leg).
    pub(crate) fn add_clearing_reason(
        &self,
        trunk: Option<TrunkId>,
        zone: ZoneId,
        headers: &mut Vec<Header>,
    ) {
        let has_q850 = parse_reason_headers(
            headers
                .iter()
                .filter(|h| is_named(h, "Reason"))
                .map(|h| crate::sip::headers::name_value(h).1),
        )
        .iter()
        .any(|r| r.q850_cause().is_some());
        if !has_q850 {
            headers.extend(self.reason_toward(trunk, zone, cause_for_bye_or_cancel()));
        }
    }

    /// The final code to send toward the LAN for a failure `code` from trunk `trunk` whose
    /// response carried `msg`'s Reason headers, and the Q.850 cause behind it (a received
    /// Q.850 Reason wins over the status code, RFC 3398 §7.2.4.1).
    pub(crate) fn map_trunk_failure(
        &self,
        trunk: Option<TrunkId>,
        zone: ZoneId,
        code: u16,
        msg: Option<&SipMsg>,
    ) -> (u16, Option<u8>) {
        let Some(t) = trunk.and_then(|t| self.router.trunk(t)) else { return (code, None) };
        if !self.is_trunk_zone(zone) {
            return (code, None);
        }
        let reasons = msg.map(|m| parse_reason_headers(m.header_all("Reason"))).unwrap_or_default();
        let out = t.causes.sip_toward_pbx(code, &reasons);
        let warning = msg.and_then(|m| m.header("Warning"));
        let cause = t.causes.cause_of_failure(code, warning, &reasons);
        if let Some(c) = reasons.iter().find_map(Reason::q850_cause) {
            metrics::counter!(crate::observe::names::Q850_CAUSES_RECEIVED_TOTAL, "trunk" => t.name.clone(), "cause" => c.to_string()).increment(1);
        }
        (out, cause)
    }

    /// Strips Reason headers from a relayed message when the trunk they came from says so.
    pub(crate) fn filter_trunk_reason(
        &self,
        from_trunk: Option<TrunkId>,
        zone: ZoneId,
        headers: &mut rsip::Headers,
    ) {
        let pass = from_trunk.and_then(|t| self.router.trunk(t)).is_none_or(|t| t.pass_reason);
        if !pass && self.is_trunk_zone(zone) {
            remove_header(headers, "Reason");
        }
    }

    /// A 401/407 to B's INVITE: resend it with credentials (new CSeq, new transaction), or
    /// fail. Returns true when the challenge was handled (retried or failed the call).
    pub(crate) fn retry_invite_with_auth(
        &mut self,
        now: Instant,
        key: CallKey,
        old_tx: TxId,
        msg: &SipMsg,
        tl: &mut TransactionLayer,
    ) -> bool {
        let code = msg.status().unwrap_or(0);
        let Some(kind) = AuthKind::from_status(code) else { return false };
        let Some(call) = self.calls.get(&key) else { return false };
        let Some(trunk) = call.b_trunk.and_then(|t| self.router.trunk(t)) else { return false };
        let Some(account) = trunk.account.clone() else { return false };
        let realm_ok = trunk.auth_realm.as_ref().is_none_or(|r| {
            msg.header_all(kind.challenge_header()).any(|c| c.contains(&format!("realm=\"{r}\"")))
        });
        let Some(template) = tl.client_invite(old_tx).cloned() else { return false };
        let trunk_id = call.b_trunk;
        let uri = template.uri.to_string();
        let challenges: Vec<String> =
            msg.header_all(kind.challenge_header()).map(str::to_string).collect();
        let challenge_refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
        let client = self
            .auth
            .entry(trunk_id.map_or(0, |t| t.0))
            .or_insert_with(DigestClient::with_random_cnonce);
        let Some(call) = self.calls.get_mut(&key) else { return false };
        let outcome = if realm_ok {
            client.on_challenge(
                &mut call.auth_attempt,
                kind,
                &challenge_refs,
                "INVITE",
                &uri,
                &account,
            )
        } else {
            ChallengeOutcome::Fail(crate::trunk::digest_client::AuthFailure::Rejected {
                realm: String::new(),
            })
        };
        match outcome {
            ChallengeOutcome::Retry { headers, .. } => {
                let cseq = call.b.next_cseq();
                let mut req = template;
                remove_header(&mut req.headers, "Via");
                remove_header(&mut req.headers, "Authorization");
                remove_header(&mut req.headers, "Proxy-Authorization");
                crate::sip::build::set_header(&mut req.headers, "CSeq", format!("{cseq} INVITE"));
                for h in headers {
                    req.headers.push(make(h.name, h.value));
                }
                let flow = call.b.flow;
                let ctx = tl.send_request(now, req, flow);
                call.b_invite_cseq = cseq;
                for f in call.forks.iter_mut() {
                    f.b.local_cseq = cseq;
                }
                call.b.local_cseq = cseq;
                call.b_invite_tx = Some(ctx);
                if let Some(init) = call.initial.as_mut() {
                    init.client_tx = Some(ctx);
                }
                self.clients.remove(&old_tx);
                self.clients.insert(ctx, ClientRole::Initial(key));
                true
            }
            ChallengeOutcome::Fail(why) => {
                tracing::warn!(?why, trunk = ?trunk_id, "trunk refused our credentials, failing the call");
                call.q850_cause = Some(crate::trunk::digest_client::AuthFailure::CAUSE);
                let Some(init) = call.initial.as_ref() else { return false };
                let tag = call.a.local_tag.clone();
                let _ = tl.respond(now, init.server_tx, init.reply.response(403, None, Some(&tag)));
                call.end_cause = Some(EndCause::Refused(403));
                self.clients.remove(&old_tx);
                self.finish_call(key, now, 403);
                true
            }
        }
    }

    /// Counts a Q.850 cause sent toward a trunk.
    pub(crate) fn count_cause_sent(&self, trunk: Option<TrunkId>, cause: u8) {
        let name = trunk
            .and_then(|t| self.router.trunk(t))
            .map_or_else(|| "none".to_string(), |t| t.name.clone());
        metrics::counter!(crate::observe::names::Q850_CAUSES_SENT_TOTAL, "trunk" => name, "cause" => cause.to_string()).increment(1);
    }

    /// A 401/407 to a re-INVITE or BYE we sent toward a trunk within a call: resend it once
    /// with the trunk's credentials (new CSeq, new transaction). Returns true when resent.
    pub(crate) fn retry_in_dialog_with_auth(
        &mut self,
        now: Instant,
        key: CallKey,
        old_tx: TxId,
        msg: &SipMsg,
        tl: &mut TransactionLayer,
    ) -> bool {
        let code = msg.status().unwrap_or(0);
        let Some(kind) = AuthKind::from_status(code) else { return false };
        if self.auth_retried.remove(&old_tx) {
            // This was already our authenticated retry: no challenge loops.
            return false;
        }
        let Some(call) = self.calls.get(&key) else { return false };
        // The challenged leg is the one whose Call-ID the response carries.
        let side = if call.a.call_id == msg.call_id { Side::A } else { Side::B };
        let trunk = match side {
            Side::A => call.a_trunk,
            Side::B => call.b_trunk,
        };
        let Some(account) =
            trunk.and_then(|t| self.router.trunk(t)).and_then(|t| t.account.clone())
        else {
            return false;
        };
        let method = msg.cseq_method;
        let template = match method {
            rsip::Method::Invite => tl.client_invite(old_tx).cloned(),
            rsip::Method::Bye => {
                call.dialog(side).map(|d| d.request(rsip::Method::Bye, 0, vec![], vec![]))
            }
            _ => None,
        };
        let Some(mut req) = template else { return false };
        let uri = req.uri.to_string();
        let challenges: Vec<String> =
            msg.header_all(kind.challenge_header()).map(str::to_string).collect();
        let refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
        let client = self
            .auth
            .entry(trunk.map_or(0, |t| t.0))
            .or_insert_with(DigestClient::with_random_cnonce);
        let mut attempt = crate::trunk::digest_client::AuthAttempt::default();
        let method_s = crate::server::dispatch::method_label(method);
        let ChallengeOutcome::Retry { headers, .. } =
            client.on_challenge(&mut attempt, kind, &refs, method_s, &uri, &account)
        else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&key) else { return false };
        let Some(d) = call.dialog_mut(side) else { return false };
        let cseq = d.next_cseq();
        let flow = d.flow;
        remove_header(&mut req.headers, "Via");
        remove_header(&mut req.headers, "Authorization");
        remove_header(&mut req.headers, "Proxy-Authorization");
        crate::sip::build::set_header(&mut req.headers, "CSeq", format!("{cseq} {method}"));
        for h in headers {
            req.headers.push(make(h.name, h.value));
        }
        let tx = tl.send_request(now, req, flow);
        let role = match method {
            rsip::Method::Invite => {
                if let Some(r) = call.reinvite.as_mut() {
                    r.client_tx = tx;
                    r.out_cseq = cseq;
                }
                ClientRole::ReInvite(key)
            }
            _ => ClientRole::Bye(key),
        };
        self.clients.insert(tx, role);
        self.auth_retried.insert(tx);
        true
    }

    /// Side of a call whose leg faces a carrier (for Reasons on BYE).
    pub(crate) fn leg_trunk(&self, key: CallKey, side: Side) -> Option<(Option<TrunkId>, ZoneId)> {
        let call = self.calls.get(&key)?;
        let d = call.dialog(side)?;
        let trunk = match side {
            Side::A => call.a_trunk,
            Side::B => call.b_trunk,
        };
        Some((trunk, d.flow.zone))
    }
}
