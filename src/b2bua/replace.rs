//! An INVITE with Replaces (RFC 3891) from the PBX's side: a new dialog takes the place of one
//! of a call's legs — call pickup, a PBX completing its own attended transfer, a phone taking
//! over a call. sipborder swaps the leg in place: the new dialog is answered with the SDP the
//! old leg had (the relay ports stay, so the other party sees nothing), the relay follows the
//! new endpoint, and the replaced leg gets a BYE.
//!
//! The INVITE's own Call-ID usually hashes to another shard than the call's. The shard it
//! reaches forwards it, and every later message of that Call-ID, to the shard of the replaced
//! Call-ID (`Shard::handle_message`); when the call ends, that shard sends
//! [`PeerMsg::Release`](super::join::PeerMsg::Release) so the forwarding stops.

use super::call::{CallKey, CallState, Side};
use super::dispatch::{B2bua, ClientRole};
use super::initial::local_contact;
use super::local::strip_tag;
use super::reply::ReplyTemplate;
use crate::dialog::uri::{contact_uri, route_entries};
use crate::dialog::{Dialog, DialogState};
use crate::sip::headers::{addr_uri, make};
use crate::sip::message::SipMsg;
use crate::sip::replaces::Replaces;
use crate::sip::sdp::answer_direction;
use crate::sip::token::new_tag;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::Method;
use std::time::Instant;

fn transfers(result: &'static str) {
    metrics::counter!(crate::observe::names::TRANSFERS_TOTAL, "result" => result).increment(1);
}

impl B2bua {
    /// The ACK answering the offer in our 2xx to an INVITE with Replaces that had none.
    pub(crate) fn take_answer_in_ack(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        ack: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        if !super::anchoring::has_sdp(ack) {
            tracing::info!("ACK without the answer to our offer: media not moved");
            return;
        }
        if let Err(e) = self.follow_new_party(now, key, side, ack.body(), flow.remote.ip(), tl) {
            tracing::info!(error = %e, "answer in the ACK could not be anchored");
        }
    }

    /// An out-of-dialog INVITE carrying a Replaces header.
    pub(crate) fn on_invite_with_replaces(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let refuse = |b: &mut Self, tl: &mut TransactionLayer, code, why: Option<&str>| {
            transfers("rejected");
            b.reply_local(now, tl, tx, msg, flow, code, why, &[]);
            b.release_call_id(&msg.call_id);
        };
        let replaces = match Replaces::parse(msg.header("Replaces").unwrap_or("")) {
            Ok(r) => r,
            Err(e) => return refuse(self, tl, 400, Some(&e.to_string())),
        };
        // RFC 3891 §3: no such dialog, or one that is not (or no longer) confirmed → 481.
        // Only a leg of the zone the INVITE comes from can be replaced (a carrier cannot take
        // over the PBX's leg); the answer is the same 481, so nothing tells the two apart.
        let found = self.find_replaced(&replaces).filter(|&(key, side)| {
            self.calls
                .get(&key)
                .and_then(|c| c.dialog(side))
                .is_some_and(|d| d.flow.zone == flow.zone)
        });
        let Some((key, side)) = found else {
            return refuse(self, tl, 481, None);
        };
        let busy = self.calls.get(&key).is_none_or(|c| {
            c.state != CallState::Confirmed
                || c.transfer.is_some()
                || c.reinvite.is_some()
                || c.join.is_some()
        });
        if busy || replaces.early_only {
            // early-only: the call is answered, which the sender asked not to replace.
            let code = if busy { 491 } else { 486 };
            return refuse(self, tl, code, None);
        }
        // Without an offer (delayed offer) the 2xx offers what the leg had, and the ACK's answer
        // moves the media.
        let offered = super::anchoring::has_sdp(msg);
        let Some(ours) = self.calls.get(&key).and_then(|c| c.sdp_to[side.idx()].clone()) else {
            return refuse(self, tl, 488, None);
        };
        if offered {
            if let Err(e) = self.follow_new_party(now, key, side, msg.body(), flow.remote.ip(), tl)
            {
                tracing::info!(error = %e, "SDP of a replacing INVITE could not be anchored");
                return refuse(self, tl, 488, None);
            }
        }
        let Some(call) = self.calls.get_mut(&key) else { return };
        let body = if offered { answer_direction(&ours, msg.body()) } else { ours };
        call.sdp_to[side.idx()] = Some(body.clone());
        let from = msg.header("From").unwrap_or("");
        let new = Dialog {
            call_id: msg.call_id.clone(),
            local_tag: new_tag(&mut self.rng),
            remote_tag: msg.from_tag.clone(),
            local_uri: strip_tag(msg.header("To").unwrap_or("")),
            remote_uri: strip_tag(from),
            local_cseq: 0,
            remote_cseq: Some(msg.cseq),
            remote_target: msg
                .header("Contact")
                .and_then(contact_uri)
                .unwrap_or_else(|| addr_uri(from).to_string()),
            route_set: route_entries(msg.header_all("Record-Route")),
            local_contact: local_contact(self, flow),
            flow,
            state: DialogState::Confirmed,
        };
        let mut resp =
            ReplyTemplate::of(msg, flow.remote).response(200, None, Some(&new.local_tag));
        resp.headers.push(make("Contact", new.local_contact.clone()));
        resp.headers.push(make("Supported", super::local::SUPPORTED));
        resp.headers.push(make("Content-Type", "application/sdp"));
        resp.body = body;
        // The replaced leg ends (RFC 3891 §3: its replacement's recipient sends the BYE).
        let Some(call) = self.calls.get_mut(&key) else { return };
        let old = match side {
            Side::A => Some(std::mem::replace(&mut call.a, new.clone())),
            Side::B => call
                .winner
                .and_then(|w| call.forks.get_mut(w))
                .map(|f| std::mem::replace(&mut f.b, new.clone())),
        };
        call.timers[side.idx()] = None;
        call.last_ack[side.idx()] = None;
        self.send_2xx_until_ack(now, key, side, tx, msg.cseq, resp, flow, !offered, tl);
        self.dialogs.insert((new.call_id.clone(), new.local_tag.clone()), (key, side));
        if let Some(mut old) = old {
            self.dialogs.remove(&(old.call_id.clone(), old.local_tag.clone()));
            self.release_call_id(&old.call_id);
            if old.state == DialogState::Confirmed {
                let cseq = old.next_cseq();
                let bye = old.request(Method::Bye, cseq, vec![], vec![]);
                let t = tl.send_request(now, bye, old.flow);
                self.clients.insert(t, ClientRole::Discard);
            }
        }
        transfers("replaced");
        tracing::info!(replaced = %replaces.call_id, "a call leg was replaced (INVITE with Replaces)");
    }
}
