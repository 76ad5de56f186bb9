//! Re-INVITEs sipborder sends on its own to move a leg's media: when a transfer replaced the
//! party on the other side and media is not anchored (`media: bypass`), the remaining party
//! must be told the new party's address. With media anchored this is never needed — the relay
//! follows the new party and the remaining leg keeps the ports it knows.

use super::call::{CallKey, Side};
use super::dispatch::{B2bua, ClientRole};
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::sip::sdp::continue_origin;
use crate::transaction::TransactionLayer;
use rsip::Method;
use std::time::Instant;

impl B2bua {
    /// True when the call's media crosses the relay.
    pub(crate) fn anchored(&self, key: CallKey) -> bool {
        self.calls.get(&key).and_then(|c| c.media.as_ref()).is_some_and(|m| m.anchored)
    }

    /// Sends a re-INVITE on `side` offering `sdp` (another party's), under the origin line
    /// this leg already knows with its version bumped (RFC 3264 §8: one session, one origin).
    pub(crate) fn move_media(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        sdp: &[u8],
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let body = match &call.sdp_to[side.idx()] {
            Some(prev) => continue_origin(prev, sdp),
            None => sdp.to_vec(),
        };
        call.sdp_to[side.idx()] = Some(body.clone());
        let Some(d) = call.dialog_mut(side) else { return };
        let cseq = d.next_cseq();
        let req =
            d.request(Method::Invite, cseq, vec![make("Content-Type", "application/sdp")], body);
        let flow = d.flow;
        let tx = tl.send_request(now, req, flow);
        self.clients.insert(tx, ClientRole::MediaMove { call: key, side, cseq });
        tracing::info!("re-INVITE to move the remaining party's media (not anchored)");
    }

    /// The answer to a [`Self::move_media`] re-INVITE: a 2xx is ACKed and its SDP kept (the
    /// remaining party's, for later refreshes); a refusal leaves the call as it is.
    pub(crate) fn on_media_move_response(
        &mut self,
        key: CallKey,
        side: Side,
        cseq: u32,
        msg: &SipMsg,
        tl: &mut TransactionLayer,
    ) {
        let code = msg.status().unwrap_or(0);
        if code < 200 {
            return;
        }
        if !(200..300).contains(&code) {
            tracing::warn!(code, "the remaining party refused the transfer's new media address");
            return;
        }
        if let Some(call) = self.calls.get_mut(&key) {
            if super::anchoring::has_sdp(msg) {
                call.sdp_from[side.idx()] = Some(msg.body().to_vec());
            }
        }
        self.ack_own_invite(key, side, cseq, tl);
    }

    /// ACKs the 2xx to a re-INVITE sipborder itself sent on `side` with CSeq `cseq`, and keeps
    /// the ACK to resend when the 2xx is retransmitted.
    pub(crate) fn ack_own_invite(
        &mut self,
        key: CallKey,
        side: Side,
        cseq: u32,
        tl: &mut TransactionLayer,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(d) = call.dialog(side) else { return };
        let ack = d.request(Method::Ack, cseq, vec![], vec![]);
        let bytes = tl.send_stateless(ack, d.flow);
        call.last_ack[side.idx()] = Some((cseq, bytes));
    }

    /// A new party took `side`'s place with `sdp` (its signalling from `source`): anchored, the
    /// relay follows it and the other leg is told nothing; not anchored, the other leg still
    /// sends to the party that left, so it is re-INVITEd with the new party's SDP.
    pub(crate) fn follow_new_party(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        sdp: &[u8],
        source: std::net::IpAddr,
        tl: &mut TransactionLayer,
    ) -> Result<(), crate::media::MediaError> {
        self.take_unrelayed_body(now, key, side, sdp, source)?;
        if !self.anchored(key) {
            self.move_media(now, key, side.other(), sdp, tl);
        }
        Ok(())
    }
}
