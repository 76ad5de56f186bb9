//! DTMF interworking between the legs of a call. `trunks[].dtmf` says how a peer wants to
//! receive DTMF:
//!
//! - `rfc4733`: a DTMF INFO from the other leg is answered 200 here and played by the relay as
//!   RFC 4733 events into the media toward this peer (nothing when the peer negotiated no
//!   telephone-event: the INFO is still answered, and the loss logged and counted);
//! - `info`: the relay takes the other leg's RFC 4733 events out of the media and reports each
//!   finished one; it goes to this peer as an INFO (`application/dtmf-relay`) in the dialog;
//! - `passthrough`: both cross as they came (payload types renumbered by the relay).

use super::call::{Call, CallKey, CallState, Side};
use super::dispatch::{B2bua, ClientRole};
use super::policy_hook::police_request;
use super::router::TrunkId;
use crate::config::DtmfMode;
use crate::dialog::{Dialog, DialogState};
use crate::media::relay::{self, DtmfInjection, PairId};
use crate::media::Leg;
use crate::observe::names;
use crate::sip::dtmf_info::{self, DTMF_RELAY};
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::Method;
use std::time::{Duration, Instant};

/// Power level of injected events (RFC 4733 §2.3.4: -10 dBm0, a typical keypad level).
const INJECTED_VOLUME: u8 = 10;

fn leg(side: Side) -> Leg {
    match side {
        Side::A => Leg::A,
        Side::B => Leg::B,
    }
}

/// Why a key press taken out of the media could not go to the other leg as INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoDialog {
    /// The call is ending, cancelled, or has no dialog on that leg yet (ringing without an
    /// early dialog).
    Gone,
    /// Early media toward the caller, who has not PRACKed a reliable provisional of the early
    /// dialog: it may not know the dialog (an unreliable 18x can be lost or overtaken) and
    /// would answer 481, so nothing is sent.
    EarlyUnconfirmed,
}

impl NoDialog {
    fn result(self) -> &'static str {
        match self {
            NoDialog::Gone => "dropped",
            NoDialog::EarlyUnconfirmed => "early_unconfirmed",
        }
    }
}

/// The dialog an INFO toward `to` goes in: the confirmed one once answered; before that, the
/// early dialog whose SDP the early media follows — toward the callee always (sipborder is
/// its UAC and has the dialog from the 18x), toward the caller once it PRACKed one of that
/// dialog's reliable provisionals (the caller's dialog is presented under the fork's tag).
fn info_dialog(call: &mut Call, to: Side) -> Result<&mut Dialog, NoDialog> {
    match call.state {
        CallState::Answered | CallState::Confirmed => match call.dialog_mut(to) {
            Some(d) if d.state == DialogState::Confirmed => Ok(d),
            _ => Err(NoDialog::Gone),
        },
        CallState::Proceeding => {
            let live = call.initial.as_ref().is_some_and(|i| i.cancelled.is_none());
            let f = call.early_media_fork.filter(|_| live).ok_or(NoDialog::Gone)?;
            let fork = call.forks.get(f).ok_or(NoDialog::Gone)?;
            match to {
                Side::B => {
                    let d = &mut call.forks.get_mut(f).ok_or(NoDialog::Gone)?.b;
                    if d.state == DialogState::Terminated {
                        return Err(NoDialog::Gone);
                    }
                    Ok(d)
                }
                Side::A if fork.a_pracked => {
                    call.a.local_tag = fork.a_tag.clone();
                    Ok(&mut call.a)
                }
                Side::A => Err(NoDialog::EarlyUnconfirmed),
            }
        }
        CallState::Ending | CallState::Ended => Err(NoDialog::Gone),
    }
}

fn count(conversion: &'static str, result: &'static str) {
    metrics::counter!(names::DTMF_EVENTS_TOTAL, "conversion" => conversion, "result" => result)
        .increment(1);
}

impl B2bua {
    /// How the peer of `trunk` wants DTMF (a leg without a configured peer: passthrough).
    pub(crate) fn dtmf_mode(&self, trunk: Option<TrunkId>) -> DtmfMode {
        trunk.and_then(|t| self.router.trunk(t)).map_or(DtmfMode::Passthrough, |t| t.dtmf)
    }

    /// Both legs' DTMF wishes of a call, as its trunks say now.
    pub(crate) fn call_dtmf_modes(&self, key: CallKey) -> [DtmfMode; 2] {
        match self.calls.get(&key) {
            Some(c) => [self.dtmf_mode(c.a_trunk), self.dtmf_mode(c.b_trunk)],
            None => [DtmfMode::Passthrough; 2],
        }
    }

    /// Tells the call's media how its legs want DTMF (after a leg's peer changed).
    pub(crate) fn apply_dtmf_modes(&mut self, key: CallKey, modes: [DtmfMode; 2]) {
        let Some(session) = self.calls.get_mut(&key).and_then(|c| c.media.as_mut()) else {
            return;
        };
        if let Err(e) = self.media.set_dtmf_modes(session, modes) {
            tracing::warn!(error = %e, "DTMF handling could not be given to the relay");
        }
    }

    /// An INFO from `side`. When the other leg's peer wants RFC 4733, the call's media is
    /// anchored and the INFO carries a key press, it is answered here and the key played into
    /// the media toward that peer; returns whether it was handled (otherwise it is relayed).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn info_to_rfc4733(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) -> bool {
        let other = side.other();
        if self.call_dtmf_modes(key)[other.idx()] != DtmfMode::Rfc4733 {
            return false;
        }
        let Some(ctype) = msg.header("Content-Type") else { return false };
        if !dtmf_info::is_dtmf(ctype) {
            return false;
        }
        let anchored =
            self.calls.get(&key).and_then(|c| c.media.as_ref()).is_some_and(|m| m.anchored);
        if !anchored {
            // Media flows around sipborder: the INFO is the only way the key can cross.
            return false;
        }
        let Some(info) = dtmf_info::parse(ctype, msg.body()) else {
            self.reply_local(now, tl, tx, msg, flow, 400, Some("Bad DTMF Body"), &[]);
            count("info_to_rfc4733", "invalid");
            return true;
        };
        self.reply_local(now, tl, tx, msg, flow, 200, None, &[]);
        let Some(session) = self.calls.get(&key).and_then(|c| c.media.as_ref()) else {
            return true;
        };
        let ev =
            DtmfInjection { event: info.event, duration: info.duration, volume: INJECTED_VOLUME };
        match self.media.inject_dtmf(session, leg(other), ev) {
            Ok(()) => {
                count("info_to_rfc4733", "converted");
                tracing::debug!(
                    event = info.event,
                    ms = info.duration.as_millis() as u64,
                    "INFO played as RFC 4733 events"
                );
            }
            Err(e) => {
                count("info_to_rfc4733", "dropped");
                tracing::info!(event = info.event, error = %e, "INFO key press not played");
            }
        }
        true
    }

    /// The relay took a finished RFC 4733 event arriving on `from` out of the media: it goes
    /// to the other leg as an INFO in the dialog.
    pub(crate) fn rfc4733_to_info(
        &mut self,
        now: Instant,
        id: PairId,
        from: relay::Side,
        event: u8,
        duration: Duration,
        tl: &mut TransactionLayer,
    ) {
        let Some(key) = self.media.owner_of(id).map(CallKey) else { return };
        let from = match from {
            relay::Side::A => Side::A,
            relay::Side::B => Side::B,
        };
        let to = from.other();
        let Some(body) = dtmf_info::dtmf_relay_body(event, duration) else { return };
        let Some(call) = self.calls.get_mut(&key) else { return };
        let _span = call.span.clone().entered();
        let (req, f) = match info_dialog(call, to) {
            Ok(d) => {
                let cseq = d.next_cseq();
                let extra = vec![make("Content-Type", DTMF_RELAY)];
                (d.request(Method::Info, cseq, extra, body.into_bytes()), d.flow)
            }
            Err(why) => {
                count("rfc4733_to_info", why.result());
                tracing::debug!(event, reason = why.result(), "RFC 4733 event not sent as INFO");
                return;
            }
        };
        let req = match police_request(&self.router, call, from, req) {
            Ok(r) => r,
            Err(rej) => {
                count("rfc4733_to_info", "dropped");
                tracing::info!(code = rej.code, "DTMF INFO refused by policy");
                return;
            }
        };
        let t = tl.send_request(now, req, f);
        self.clients.insert(t, ClientRole::Discard);
        count("rfc4733_to_info", "converted");
        tracing::debug!(event, ms = duration.as_millis() as u64, "RFC 4733 event sent as INFO");
    }
}
