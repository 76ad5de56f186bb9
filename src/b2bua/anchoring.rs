//! Where the B2BUA hands SDP to the media controller: every body that crosses from one leg to
//! the other goes through [`B2bua::cross_sdp`], so no leg ever sees the other's media addresses
//! on an anchored call.

use super::call::{CallKey, EndCause, Side};
use super::dispatch::B2bua;
use crate::config::MediaMode;
use crate::media::controller::is_private;
use crate::media::{Leg, MediaError};
use crate::sip::message::SipMsg;
use crate::sip::sdp::SessionDescription;
use crate::transaction::TransactionLayer;
use crate::transport::flow::ZoneId;
use std::net::IpAddr;
use std::time::Instant;

/// True when the message carries an SDP body.
pub(crate) fn has_sdp(msg: &SipMsg) -> bool {
    !msg.body().is_empty()
        && msg.header("Content-Type").is_some_and(|c| {
            c.trim().get(..15).is_some_and(|t| t.eq_ignore_ascii_case("application/sdp"))
        })
}

fn leg(side: Side) -> Leg {
    match side {
        Side::A => Leg::A,
        Side::B => Leg::B,
    }
}

/// Whether an SDP's endpoint looks NATed from `source` (private address, or not the address
/// its signalling comes from).
fn behind_nat(body: &[u8], source: IpAddr) -> bool {
    let Ok(sdp) = SessionDescription::parse(body) else { return false };
    let ip = sdp
        .connection()
        .and_then(|c| c.ip)
        .or_else(|| sdp.media().iter().find_map(|m| m.effective_address().and_then(|c| c.ip)));
    ip.is_some_and(|ip| !ip.is_unspecified() && (is_private(ip) || ip != source))
}

impl B2bua {
    /// Gives call `key` a media session for an attempt toward `b_zone` through `b_trunk` (a
    /// new one when the B zone changed on fail-over). `mode` decides anchoring; `offer` is A's
    /// SDP, if any.
    pub(crate) fn prepare_media(
        &mut self,
        now: Instant,
        key: CallKey,
        mode: MediaMode,
        b_zone: ZoneId,
        b_trunk: Option<crate::b2bua::TrunkId>,
        offer: Option<&[u8]>,
    ) {
        let modes = [self.call_dtmf_modes(key)[0], self.dtmf_mode(b_trunk)];
        self.new_media_session(now, key, mode, b_zone, offer);
        // A fail-over keeps the session but not necessarily the B peer's DTMF wishes.
        self.apply_dtmf_modes(key, modes);
    }

    fn new_media_session(
        &mut self,
        now: Instant,
        key: CallKey,
        mode: MediaMode,
        b_zone: ZoneId,
        offer: Option<&[u8]>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        let a_zone = call.a.flow.zone;
        if call.media.as_ref().is_some_and(|m| m.zones[1] == b_zone) {
            return;
        }
        if let Some(mut old) = call.media.take() {
            self.media.close(now, &mut old);
        }
        let source = call.a.flow.remote.ip();
        let anchored = match mode {
            MediaMode::Anchor => true,
            MediaMode::Bypass => false,
            MediaMode::Auto => a_zone != b_zone || offer.is_some_and(|o| behind_nat(o, source)),
        } && self.media.can_anchor(a_zone)
            && self.media.can_anchor(b_zone);
        call.media = Some(self.media.session(key.0, a_zone, b_zone, anchored));
    }

    /// The body for the other leg when `msg` (from `from`, whose signalling comes from
    /// `source`) carries SDP; `Ok(None)` when it carries none.
    pub(crate) fn cross_sdp(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        msg: &SipMsg,
        source: IpAddr,
    ) -> Result<Option<Vec<u8>>, MediaError> {
        if !has_sdp(msg) {
            return Ok(None);
        }
        self.cross_body(now, key, from, msg.body(), source)
    }

    /// [`Self::cross_sdp`] for a body already known to be SDP.
    pub(crate) fn cross_body(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        body: &[u8],
        source: IpAddr,
    ) -> Result<Option<Vec<u8>>, MediaError> {
        self.take_body(now, key, from, body, source, true)
    }

    fn take_body(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        body: &[u8],
        source: IpAddr,
        relayed: bool,
    ) -> Result<Option<Vec<u8>>, MediaError> {
        let Some(call) = self.calls.get_mut(&key) else { return Ok(None) };
        let Some(session) = call.media.as_mut() else { return Ok(None) };
        let out = if relayed {
            self.media.on_sdp(now, session, leg(from), body, source)?
        } else {
            self.media.on_sdp_not_relayed(now, session, leg(from), body, source)?
        };
        // Kept for RFC 4028 refreshes: a re-INVITE repeating the last SDP is answered locally.
        call.sdp_from[from.idx()] = Some(body.to_vec());
        // A body the other leg is not sent is not what it last got.
        if relayed {
            call.sdp_to[from.other().idx()] = Some(out.clone());
        }
        Ok(Some(out))
    }

    /// Takes `body` from `from` into the relay without sending the other leg anything (a
    /// joined call's peer relay, a remaining leg's re-offer).
    pub(crate) fn take_unrelayed_body(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        body: &[u8],
        source: IpAddr,
    ) -> Result<(), MediaError> {
        self.take_body(now, key, from, body, source, false).map(|_| ())
    }

    /// Like [`Self::cross_sdp`] for bodies that must cross even when anchoring fails (answers:
    /// refusing them would leave a half-set-up call); the failure is logged and the body sent
    /// as it came.
    pub(crate) fn cross_sdp_lenient(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Side,
        msg: &SipMsg,
        source: IpAddr,
    ) -> Option<Vec<u8>> {
        match self.cross_sdp(now, key, from, msg, source) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "SDP could not be anchored, passed unchanged");
                None
            }
        }
    }

    /// A relay event: a media timeout ends the call; a DTMF event taken out of the media goes
    /// to the other leg as INFO.
    pub fn handle_relay_event(
        &mut self,
        now: Instant,
        ev: crate::media::relay::RelayEvent,
        tl: &mut TransactionLayer,
    ) {
        use crate::media::relay::RelayEvent;
        match ev {
            RelayEvent::MediaTimeout { id, idle } => {
                let Some(owner) = self.media.owner_of(id) else { return };
                let key = CallKey(owner);
                if self.calls.contains_key(&key) {
                    tracing::info!(idle_ms = idle.as_millis() as u64, "media timeout, ending call");
                    self.hangup_both(now, key, EndCause::MediaTimeout, tl);
                }
            }
            RelayEvent::Dtmf { id, side, event, duration } => {
                self.rfc4733_to_info(now, id, side, event, duration, tl);
            }
            _ => {}
        }
    }
}
