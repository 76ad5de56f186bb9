//! Joining two calls that cross sipborder: the attended transfer of a PBX (a REFER whose
//! Refer-To carries Replaces) when the carrier side has `refer: local`.
//!
//! The PBX holds call 1 with carrier party X and call 2 with carrier party Y, and asks X to
//! replace its dialog with Y. Carriers rarely do Replaces, so sipborder joins the two carrier
//! legs itself and the carriers see nothing: each call gives up its PBX leg (BYE) and points
//! that side of its media relay at the other call's relay ports — the SDP each call last sent
//! to the PBX, readdressed to the relay's bind address. Media then runs X → call 1's relay →
//! call 2's relay → Y, on the ports both carriers already know.
//!
//! The two calls usually live on different shards (the shard is the hash of the Call-ID), so
//! they talk in [`PeerMsg`]s, which the shard tasks carry (a shard delivers those addressed to
//! itself at once). After the join each call keeps one live leg and a [`PeerRef`] to the other
//! call: a hang-up on either side ends both; re-INVITEs and UPDATEs from a remaining carrier
//! leg are answered here (the relay follows its new address), nothing crosses.

use super::call::{CallKey, CallState, EndCause, Side};
use super::dispatch::{B2bua, ClientRole};
use super::reply::ReplyTemplate;
use crate::dialog::DialogState;
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::sip::replaces::Replaces;
use crate::sip::sdp::{answer_direction, readdress};
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::Method;
use std::net::IpAddr;
use std::time::Instant;

/// A call on some shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRef {
    /// Shard index.
    pub shard: usize,
    /// The call there.
    pub key: CallKey,
}

/// A call's side given up to another call.
#[derive(Debug, Clone, Copy)]
pub struct Join {
    /// The side whose leg was (or is being) given up: the PBX's.
    pub side: Side,
    /// The other call, once the join is done; `None` while asked and not yet answered.
    pub peer: Option<PeerRef>,
}

/// What calls on different shards say to each other.
#[derive(Debug, Clone)]
pub enum PeerMsg {
    /// Asks the call owning the dialog `replaces` names to give that leg up and send its
    /// other party's media to `sdp` (the asking call's relay ports).
    Join {
        /// The asking call.
        from: PeerRef,
        /// The dialog to replace (as the PBX wrote it).
        replaces: Replaces,
        /// The zone of the asking PBX leg: only a leg of the same zone is given up.
        zone: crate::transport::flow::ZoneId,
        /// Where the joined call's media must go.
        target: MediaTarget,
    },
    /// The join is done; the asking call sends to `sdp`.
    Joined {
        /// The asking call.
        to: CallKey,
        /// The joined call.
        from: PeerRef,
        /// Where the asking call's media must go.
        target: MediaTarget,
    },
    /// The join was refused with `code` (481: no such dialog; 491: busy; 488: not anchored).
    JoinFailed {
        /// The asking call.
        to: CallKey,
        /// Why, as a SIP code for the NOTIFY.
        code: u16,
    },
    /// The joined call ended: end this one.
    Hangup {
        /// The call to end.
        to: CallKey,
    },
    /// A message for a dialog that lives on the receiving shard (an INVITE with Replaces and
    /// what follows in its dialog), forwarded by the shard its Call-ID hashes to.
    Forward(Box<SipMsg>, Flow),
    /// The call holding `call_id` ended: stop forwarding it.
    Release {
        /// The Call-ID no longer forwarded.
        call_id: String,
    },
}

/// Where a joined call's media must go to reach the other call's remaining party.
#[derive(Debug, Clone)]
pub struct MediaTarget {
    /// For an anchored receiver's relay: the sender's relay ports at their bind address, or
    /// (sender not anchored) its remaining party's own SDP.
    pub relay: Vec<u8>,
    /// For a receiver that is not anchored, to offer its remaining party in a re-INVITE: what
    /// the sender's PBX leg was last sent (its advertised relay ports, or the party's SDP).
    pub public: Vec<u8>,
}

/// A [`PeerMsg`] and the shard it goes to.
#[derive(Debug, Clone)]
pub struct PeerEnvelope {
    /// Destination shard.
    pub shard: usize,
    /// The message.
    pub msg: PeerMsg,
}

fn transfers(result: &'static str) {
    metrics::counter!(crate::observe::names::TRANSFERS_TOTAL, "result" => result).increment(1);
}

impl B2bua {
    /// Messages for other calls produced since the last call (the shard delivers them).
    pub fn take_peer_messages(&mut self) -> Vec<PeerEnvelope> {
        std::mem::take(&mut self.peer_out)
    }

    fn send_peer(&mut self, shard: usize, msg: PeerMsg) {
        self.peer_out.push(PeerEnvelope { shard, msg });
    }

    fn me(&self, key: CallKey) -> PeerRef {
        PeerRef { shard: self.shard, key }
    }

    /// The address media reaches the relay at on `side`'s zone: its bind address (the
    /// advertised one may be a NAT's outside), loopback when bound to the wildcard.
    fn relay_ip(&self, key: CallKey, side: Side) -> Option<IpAddr> {
        let zone = self.calls.get(&key)?.dialog(side)?.flow.zone;
        let ip = self.router.zone(zone)?.media_ip;
        Some(match ip {
            IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        })
    }

    /// Where the other call's media must go to reach this call's remaining party, built from
    /// what `side` (the PBX leg being given up) was last sent: anchored, this call's relay
    /// ports (readdressed to the bind address for a relay, as advertised for a party); not
    /// anchored, the remaining party's own SDP, which that leg was sent unchanged.
    fn media_target(&self, key: CallKey, side: Side) -> Option<MediaTarget> {
        let public = self.calls.get(&key)?.sdp_to[side.idx()].clone()?;
        let relay = if self.anchored(key) {
            readdress(&public, self.relay_ip(key, side)?)
        } else {
            public.clone()
        };
        Some(MediaTarget { relay, public })
    }

    /// Sends this call's remaining party's media to `target` (the other call's): anchored, the
    /// relay side that served the PBX leg points at it and the remaining party is told
    /// nothing; not anchored, the remaining party gets a re-INVITE offering it.
    fn follow_peer(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        target: &MediaTarget,
        tl: &mut TransactionLayer,
    ) {
        if !self.anchored(key) {
            self.move_media(now, key, side.other(), &target.public, tl);
            return;
        }
        let source = crate::sip::sdp::SessionDescription::parse(&target.relay)
            .ok()
            .and_then(|s| s.connection().and_then(|c| c.ip))
            .or_else(|| self.relay_ip(key, side));
        let Some(ip) = source else { return };
        if let Err(e) = self.take_unrelayed_body(now, key, side, &target.relay, ip) {
            tracing::warn!(error = %e, "joined call's relay could not follow its peer");
        }
    }

    /// Ends `side`'s leg with a BYE (its peer is replaced), stops its session timer.
    fn give_up_leg(&mut self, now: Instant, key: CallKey, side: Side, tl: &mut TransactionLayer) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        call.timers[side.idx()] = None;
        let Some(d) = call.dialog_mut(side) else { return };
        if d.state != DialogState::Confirmed {
            return;
        }
        d.state = DialogState::Terminated;
        let cseq = d.next_cseq();
        let bye = d.request(Method::Bye, cseq, vec![], vec![]);
        let flow = d.flow;
        let t = tl.send_request(now, bye, flow);
        self.clients.insert(t, ClientRole::Discard);
    }

    /// A REFER from `side` with Replaces in its Refer-To, the other side's peer doing
    /// transfers locally: answered 202, and the call owning the replaced dialog asked to join.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refer_with_replaces(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        replaces: Replaces,
        tl: &mut TransactionLayer,
    ) {
        let Some(target) = self.media_target(key, side) else {
            transfers("rejected");
            let why = Some("No Session Description To Join");
            self.reply_local(now, tl, tx, msg, flow, 488, why, &[]);
            return;
        };
        self.accept_refer(now, key, side, tx, msg, flow, tl);
        if let Some(call) = self.calls.get_mut(&key) {
            call.join = Some(Join { side, peer: None });
        }
        tracing::info!(replaces = %replaces.call_id, "joining the call with the replaced one");
        let shard = crate::sip::callid::shard_of(&replaces.call_id, self.shards);
        let from = self.me(key);
        self.send_peer(shard, PeerMsg::Join { from, replaces, zone: flow.zone, target });
    }

    /// A message from a call on another shard (or this one).
    pub fn handle_peer_message(&mut self, now: Instant, msg: PeerMsg, tl: &mut TransactionLayer) {
        match msg {
            PeerMsg::Join { from, replaces, zone, target } => {
                self.on_join(now, from, &replaces, zone, &target, tl)
            }
            PeerMsg::Joined { to, from, target } => self.on_joined(now, to, from, &target, tl),
            PeerMsg::JoinFailed { to, code } => self.on_join_failed(now, to, code, tl),
            // The shard handles these itself; nothing reaches a call.
            PeerMsg::Forward(..) | PeerMsg::Release { .. } => {}
            PeerMsg::Hangup { to } => {
                let Some(call) = self.calls.get_mut(&to) else { return };
                let ending = matches!(call.state, CallState::Ending | CallState::Ended);
                let Some(join) = call.join.as_mut() else { return };
                let side = join.side;
                // Told by the peer: no Hangup goes back when this call ends.
                join.peer = None;
                // Both ended at once (shutdown, media timeouts): this one's BYE is on its way.
                if !ending {
                    self.hangup_both(now, to, EndCause::Bye(side), tl);
                }
            }
        }
    }

    /// The call and side owning the dialog `r` names.
    pub(crate) fn find_replaced(&self, r: &Replaces) -> Option<(CallKey, Side)> {
        [&r.to_tag, &r.from_tag].into_iter().find_map(|tag| {
            let (key, side) = *self.dialogs.get(&(r.call_id.clone(), tag.clone()))?;
            let d = self.calls.get(&key)?.dialog(side)?;
            r.names(&d.call_id, &d.local_tag, d.remote_tag.as_deref()).then_some((key, side))
        })
    }

    fn on_join(
        &mut self,
        now: Instant,
        from: PeerRef,
        replaces: &Replaces,
        zone: crate::transport::flow::ZoneId,
        target: &MediaTarget,
        tl: &mut TransactionLayer,
    ) {
        let refuse = |b: &mut Self, code| {
            b.send_peer(from.shard, PeerMsg::JoinFailed { to: from.key, code })
        };
        // Only a leg of the asking PBX leg's zone: a REFER cannot make a call give up its
        // carrier leg.
        let found = self.find_replaced(replaces).filter(|&(key, side)| {
            self.calls.get(&key).and_then(|c| c.dialog(side)).is_some_and(|d| d.flow.zone == zone)
        });
        let Some((key, side)) = found else {
            return refuse(self, 481);
        };
        let busy = self.calls.get(&key).is_none_or(|c| {
            c.state != CallState::Confirmed
                || c.transfer.is_some()
                || c.reinvite.is_some()
                || c.join.is_some()
                || c.dialog(side).is_none_or(|d| d.state != DialogState::Confirmed)
        });
        if busy || self.me(key) == from {
            return refuse(self, 491);
        }
        let Some(answer) = self.media_target(key, side) else {
            return refuse(self, 488);
        };
        self.follow_peer(now, key, side, target, tl);
        self.give_up_leg(now, key, side, tl);
        if let Some(call) = self.calls.get_mut(&key) {
            call.join = Some(Join { side, peer: Some(from) });
        }
        tracing::info!("call joined to a transferred call, its PBX leg replaced");
        self.send_peer(
            from.shard,
            PeerMsg::Joined { to: from.key, from: self.me(key), target: answer },
        );
    }

    fn on_joined(
        &mut self,
        now: Instant,
        key: CallKey,
        from: PeerRef,
        target: &MediaTarget,
        tl: &mut TransactionLayer,
    ) {
        let pending = self.calls.get(&key).and_then(|c| c.join).filter(|j| j.peer.is_none());
        let Some(join) = pending else {
            // This call ended meanwhile: so does the one that just joined it.
            self.send_peer(from.shard, PeerMsg::Hangup { to: from.key });
            return;
        };
        transfers("completed");
        self.follow_peer(now, key, join.side, target, tl);
        self.notify_progress(now, key, join.side, "SIP/2.0 200 OK", true, tl);
        self.give_up_leg(now, key, join.side, tl);
        if let Some(j) = self.calls.get_mut(&key).and_then(|c| c.join.as_mut()) {
            j.peer = Some(from);
        }
    }

    fn on_join_failed(&mut self, now: Instant, key: CallKey, code: u16, tl: &mut TransactionLayer) {
        let Some(join) = self.calls.get_mut(&key).and_then(|c| c.join.take()) else { return };
        transfers("failed");
        tracing::info!(code, "attended transfer failed: the replaced call could not be joined");
        let gone = self
            .calls
            .get(&key)
            .and_then(|c| c.dialog(join.side))
            .is_none_or(|d| d.state != DialogState::Confirmed);
        if gone {
            // The PBX hung up its leg while waiting: nobody is left on that side.
            self.hangup_both(now, key, EndCause::Bye(join.side), tl);
            return;
        }
        let line = format!("SIP/2.0 {code} {}", crate::sip::wire::reason_phrase(code));
        self.notify_progress(now, key, join.side, &line, true, tl);
    }

    /// Tells every other shard that `call_id`, when it does not hash here (a dialog that came
    /// in forwarded), is no longer this shard's.
    pub(crate) fn release_call_id(&mut self, call_id: &str) {
        if crate::sip::callid::shard_of(call_id, self.shards) == self.shard {
            return;
        }
        let me = self.shard;
        for shard in (0..self.shards).filter(|&s| s != me) {
            self.send_peer(shard, PeerMsg::Release { call_id: call_id.to_string() });
        }
    }

    /// The peer to tell when `key` ends (called as the call is removed).
    pub(crate) fn joined_peer_ended(&mut self, peer: Option<PeerRef>) {
        if let Some(p) = peer {
            self.send_peer(p.shard, PeerMsg::Hangup { to: p.key });
        }
    }

    /// An in-dialog request on a call that is joined (or joining). `true` when it was handled
    /// here; `false` lets the usual handling go on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn in_dialog_of_joined(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) -> bool {
        let Some(join) = self.calls.get(&key).and_then(|c| c.join) else { return false };
        let method = msg.method();
        if side == join.side {
            if method != Method::Bye {
                if join.peer.is_some() {
                    self.reply_local(now, tl, tx, msg, flow, 481, None, &[]);
                    return true;
                }
                return false;
            }
            // The PBX hangs up the leg being (or already) replaced: only that leg ends.
            self.reply_local(now, tl, tx, msg, flow, 200, None, &[]);
            if let Some(d) = self.calls.get_mut(&key).and_then(|c| c.dialog_mut(side)) {
                d.state = DialogState::Terminated;
            }
            return true;
        }
        match (join.peer, method) {
            // The remaining leg hangs up: the usual BYE handling ends the call (its other
            // dialog is gone) and the peer is told as the call is removed.
            (_, Method::Bye) => false,
            (None, Method::Invite | Method::Update) => {
                self.reply_local(now, tl, tx, msg, flow, 491, None, &[]);
                true
            }
            (None, _) => false,
            (Some(_), Method::Invite | Method::Update) => {
                self.answer_joined_offer(now, key, side, tx, msg, flow, tl);
                true
            }
            (Some(_), _) => {
                self.reply_local(now, tl, tx, msg, flow, 200, None, &[]);
                true
            }
        }
    }

    /// A re-INVITE or UPDATE from the remaining leg of a joined call: the relay follows its
    /// new address, and the SDP this leg last got is the answer (direction mirrored, so a hold
    /// is answered recvonly). Nothing crosses to the other call.
    #[allow(clippy::too_many_arguments)]
    fn answer_joined_offer(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let offer = super::anchoring::has_sdp(msg).then(|| msg.body().to_vec());
        if let Some(o) = &offer {
            if let Err(e) = self.take_unrelayed_body(now, key, side, o, flow.remote.ip()) {
                tracing::info!(error = %e, "offer on a joined call refused");
                self.reply_local(now, tl, tx, msg, flow, 488, None, &[]);
                return;
            }
        }
        let Some(call) = self.calls.get_mut(&key) else { return };
        let Some(ours) = call.sdp_to[side.idx()].clone() else {
            self.reply_local(now, tl, tx, msg, flow, 488, None, &[]);
            return;
        };
        let body = match &offer {
            Some(o) => answer_direction(&ours, o),
            None => ours,
        };
        call.sdp_to[side.idx()] = Some(body.clone());
        if let Some(t) = msg.header("Contact").and_then(crate::dialog::uri::contact_uri) {
            if let Some(d) = call.dialog_mut(side) {
                d.remote_target = t;
            }
        }
        let contact = call.dialog(side).map(|d| d.local_contact.clone()).unwrap_or_default();
        let mut resp = ReplyTemplate::of(msg, flow.remote).response(200, None, None);
        resp.headers.push(make("Contact", contact));
        resp.headers.push(make("Content-Type", "application/sdp"));
        resp.body = body;
        if msg.method() == Method::Invite {
            self.send_2xx_until_ack(now, key, side, tx, msg.cseq, resp, flow, false, tl);
        } else {
            let _ = tl.respond(now, tx, resp);
        }
    }
}
