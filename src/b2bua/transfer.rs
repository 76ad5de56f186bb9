//! Transfers sipborder performs itself (`refer: local` on the peer a REFER would go to):
//! carriers rarely accept REFER, so when the PBX transfers a carrier call, sipborder answers
//! 202, originates the new leg toward the transfer target (through routing and policy), reports
//! progress to the PBX in NOTIFYs with sipfrag bodies (RFC 3515), and on answer swaps the new
//! leg in. With media anchored the carrier leg sees nothing: the new leg gets the relay ports
//! the old one used.

use super::call::{CallKey, Side};
use super::dispatch::{B2bua, ClientRole};
use super::initial::local_contact;
use crate::dialog::uri::{contact_uri, route_entries};
use crate::dialog::{Dialog, DialogState};
use crate::sip::callid::new_call_id;
use crate::sip::headers::{addr_uri, make, uri_user};
use crate::sip::message::{SipMsg, Transport};
use crate::sip::replaces::Replaces;
use crate::sip::token::new_tag;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::Method;
use std::time::Instant;

/// A transfer in progress on one side of a call.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The side whose party is being replaced (the side that sent the REFER).
    pub side: Side,
    /// The new leg toward the transfer target (early until answered).
    pub new_leg: Dialog,
    /// Its INVITE transaction.
    pub tx: TxId,
    /// Trunk of the target.
    pub trunk: Option<super::router::TrunkId>,
    /// The transferor already hung up its leg (some PBXs BYE right after the 202).
    pub transferor_gone: bool,
}

impl B2bua {
    /// Sends a NOTIFY with `status_line` as sipfrag to `side`'s dialog (the REFER's dialog).
    pub(crate) fn notify_progress(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        status_line: &str,
        terminated: bool,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(d) = call.dialog_mut(side) else { return };
        if d.state != DialogState::Confirmed {
            return;
        }
        let cseq = d.next_cseq();
        let state = if terminated {
            "terminated;reason=noresource".to_string()
        } else {
            "active;expires=60".to_string()
        };
        let extra = vec![
            make("Event", "refer"),
            make("Subscription-State", state),
            make("Content-Type", "message/sipfrag;version=2.0"),
        ];
        let req = d.request(Method::Notify, cseq, extra, format!("{status_line}\r\n").into_bytes());
        let t = tl.send_request(now, req, d.flow);
        self.clients.insert(t, ClientRole::Discard);
    }

    /// Answers a REFER from `side` 202 (with our Contact) and opens its subscription with a
    /// NOTIFY of `100 Trying` (RFC 3515).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept_refer(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let contact = self
            .calls
            .get(&key)
            .and_then(|c| c.dialog(side))
            .map(|d| d.local_contact.clone())
            .unwrap_or_default();
        self.reply_local(now, tl, tx, msg, flow, 202, None, &[make("Contact", contact)]);
        self.notify_progress(now, key, side, "SIP/2.0 100 Trying", false, tl);
    }

    /// A REFER from `side` when the peer on the other side has `refer: local`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refer_locally(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some(refer_to) = msg.header("Refer-To").map(str::to_string) else {
            self.reply_local(now, tl, tx, msg, flow, 400, Some("Missing Refer-To"), &[]);
            return;
        };
        let target_uri = addr_uri(&refer_to).to_string();
        let replaces = match Replaces::from_refer_to(&target_uri) {
            Ok(r) => r,
            Err(e) => {
                transfers("rejected");
                self.reply_local(now, tl, tx, msg, flow, 400, Some(&e.to_string()), &[]);
                return;
            }
        };
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.transfer.is_some() || c.reinvite.is_some() || c.join.is_some())
        {
            self.reply_local(now, tl, tx, msg, flow, 491, None, &[]);
            return;
        }
        if let Some(r) = replaces {
            // Attended transfer: join this call's remaining party with the replaced call's.
            self.refer_with_replaces(now, key, side, tx, msg, flow, r, tl);
            return;
        }
        let user = uri_user(&target_uri).unwrap_or("").to_string();
        let other = side.other();
        // Route as if the remaining party called the target.
        let Some(other_zone) =
            self.calls.get(&key).and_then(|c| c.dialog(other)).map(|d| d.flow.zone)
        else {
            return;
        };
        self.accept_refer(now, key, side, tx, msg, flow, tl);
        let target = self
            .router
            .route(other_zone, &user)
            .and_then(|r| r.targets.iter().copied().find(|t| self.health.is_up(t.0 as usize)))
            .and_then(|t| self.router.trunk(t).map(|tr| (t, tr.clone())));
        let Some((trunk_id, trunk)) = target else {
            transfers("rejected");
            self.notify_progress(now, key, side, "SIP/2.0 404 Not Found", true, tl);
            return;
        };
        let Some(call) = self.calls.get(&key) else { return };
        // The remaining party's identity is the new leg's caller.
        let caller_uri =
            call.dialog(other).map(|d| addr_uri(&d.remote_uri).to_string()).unwrap_or_default();
        let caller_user = uri_user(&caller_uri).unwrap_or("anonymous").to_string();
        let zone_host =
            self.router.zone(trunk.zone).map(|z| z.address.host.clone()).unwrap_or_default();
        let out = Flow::to(trunk.zone, trunk.transport, trunk.addr);
        let tparam = if trunk.transport == Transport::Tcp { ";transport=tcp" } else { "" };
        let host = if trunk.domain.parse::<std::net::IpAddr>().is_ok() {
            format!("{}:{}", trunk.domain, trunk.addr.port())
        } else {
            trunk.domain.clone()
        };
        let user_at = if user.is_empty() { String::new() } else { format!("{user}@") };
        // The new leg gets the SDP the transferor's leg last got: same relay ports, same codecs.
        let sdp = call.sdp_to[side.idx()].clone().unwrap_or_default();
        let mut leg = Dialog {
            call_id: new_call_id(&mut self.rng, self.shard, self.shards),
            local_tag: new_tag(&mut self.rng),
            remote_tag: None,
            local_uri: format!("<sip:{caller_user}@{zone_host}>"),
            remote_uri: format!("<sip:{user_at}{}>", trunk.domain),
            local_cseq: 0,
            remote_cseq: None,
            remote_target: format!("sip:{user_at}{host}{tparam}"),
            route_set: Vec::new(),
            local_contact: local_contact(self, out),
            flow: out,
            state: DialogState::Early,
        };
        let cseq = leg.next_cseq();
        let mut extra = vec![make("Supported", "100rel, replaces, timer")];
        if let Some(rb) = msg.header("Referred-By") {
            extra.push(make("Referred-By", rb));
        }
        if !sdp.is_empty() {
            extra.push(make("Content-Type", "application/sdp"));
        }
        let req = leg.request(Method::Invite, cseq, extra, sdp);
        let t = tl.send_request(now, req, out);
        self.clients.insert(t, ClientRole::TransferInvite(key));
        self.own_call_ids.insert(leg.call_id.clone());
        if let Some(call) = self.calls.get_mut(&key) {
            call.transfer = Some(Transfer {
                side,
                new_leg: leg,
                tx: t,
                trunk: Some(trunk_id),
                transferor_gone: false,
            });
        }
        tracing::info!(target = %target_uri, "transferring the call locally");
    }

    /// A response to the INVITE toward the transfer target.
    pub(crate) fn on_transfer_response(
        &mut self,
        now: Instant,
        key: CallKey,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let code = msg.status().unwrap_or(0);
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(tr) = call.transfer.clone() else {
            if (200..300).contains(&code) {
                self.discard_2xx(now, msg, flow, tl);
            }
            return;
        };
        let side = tr.side;
        match code {
            180..=199 => {
                self.notify_progress(now, key, side, &format!("SIP/2.0 {code} Ringing"), false, tl)
            }
            200..=299 => {
                let mut leg = tr.new_leg.clone();
                leg.remote_tag = msg.to_tag.clone();
                if let Some(t) = msg.header("Contact").and_then(contact_uri) {
                    leg.remote_target = t;
                }
                let mut rs = route_entries(msg.header_all("Record-Route"));
                rs.reverse();
                leg.route_set = rs;
                leg.state = DialogState::Confirmed;
                let ack = leg.request(Method::Ack, leg.local_cseq, vec![], vec![]);
                let bytes = tl.send_stateless(ack, leg.flow);
                transfers("completed");
                // The target's media replaces the transferor's on the same relay ports, and its
                // peer's DTMF wishes the transferor's.
                let mut modes = self.call_dtmf_modes(key);
                modes[side.idx()] = self.dtmf_mode(tr.trunk);
                self.apply_dtmf_modes(key, modes);
                if super::anchoring::has_sdp(msg) {
                    if let Err(e) =
                        self.follow_new_party(now, key, side, msg.body(), flow.remote.ip(), tl)
                    {
                        tracing::warn!(error = %e, "SDP of the transfer target could not be anchored");
                    }
                }
                if !tr.transferor_gone {
                    self.notify_progress(now, key, side, "SIP/2.0 200 OK", true, tl);
                }
                let Some(call) = self.calls.get_mut(&key) else { return };
                let old = call.dialog(side).cloned();
                let trunk_chain = tr
                    .trunk
                    .and_then(|t| self.router.trunk(t))
                    .map(|t| t.policies.clone())
                    .unwrap_or_default();
                match side {
                    Side::A => {
                        call.a = leg.clone();
                        call.a_trunk = tr.trunk;
                    }
                    Side::B => {
                        if let Some(f) = call.winner.and_then(|w| call.forks.get_mut(w)) {
                            f.b = leg.clone();
                        }
                        call.b_trunk = tr.trunk;
                    }
                }
                call.policies[side.idx()] = trunk_chain;
                call.last_ack[side.idx()] = Some((leg.local_cseq, bytes));
                call.timers[side.idx()] = None;
                call.transfer = None;
                self.dialogs.insert((leg.call_id.clone(), leg.local_tag.clone()), (key, side));
                // The transferor's leg ends (unless it already hung up).
                if let Some(mut old) = old {
                    self.dialogs.remove(&(old.call_id.clone(), old.local_tag.clone()));
                    self.own_call_ids.remove(&old.call_id);
                    if !tr.transferor_gone && old.state == DialogState::Confirmed {
                        let cseq = old.next_cseq();
                        let bye = old.request(Method::Bye, cseq, vec![], vec![]);
                        let t = tl.send_request(now, bye, old.flow);
                        self.clients.insert(t, ClientRole::Discard);
                    }
                }
            }
            300..=699 => {
                transfers("failed");
                self.notify_progress(
                    now,
                    key,
                    side,
                    &format!("SIP/2.0 {code} Transfer Failed"),
                    true,
                    tl,
                );
                let gone = tr.transferor_gone;
                if let Some(call) = self.calls.get_mut(&key) {
                    call.transfer = None;
                    self.own_call_ids.remove(&tr.new_leg.call_id);
                }
                if gone {
                    // Nobody is left on that side: the remaining party is hung up.
                    self.hangup_both(now, key, super::call::EndCause::Bye(side), tl);
                }
            }
            _ => {}
        }
    }

    /// The target never answered (Timer B) or could not be reached.
    pub(crate) fn on_transfer_failure(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        tl: &mut TransactionLayer,
    ) {
        let Some(tr) = self.calls.get_mut(&key).and_then(|c| c.transfer.take()) else { return };
        transfers("failed");
        self.own_call_ids.remove(&tr.new_leg.call_id);
        if tr.transferor_gone {
            self.hangup_both(now, key, super::call::EndCause::Bye(tr.side), tl);
        } else {
            self.notify_progress(
                now,
                key,
                tr.side,
                &format!("SIP/2.0 {code} Transfer Failed"),
                true,
                tl,
            );
        }
    }

    /// A BYE from the transferor while its transfer runs: only its own leg ends.
    pub(crate) fn transferor_left(&mut self, key: CallKey, side: Side) -> bool {
        match self.calls.get_mut(&key).and_then(|c| c.transfer.as_mut()) {
            Some(tr) if tr.side == side => {
                tr.transferor_gone = true;
                true
            }
            _ => false,
        }
    }
}

fn transfers(result: &'static str) {
    metrics::counter!(crate::observe::names::TRANSFERS_TOTAL, "result" => result).increment(1);
}
