//! RFC 4028 session timers, per leg. Each leg negotiates its own Session-Expires and
//! refresher; sipborder refreshes a leg whose peer does not do timers (UPDATE when the peer
//! allows it, else a re-INVITE repeating the last SDP), answers a peer's refreshes itself
//! instead of bothering the other leg, and ends the call on both legs when a refresh fails or a
//! session expires unrefreshed.

use super::call::{CallKey, EndCause, Side};
use super::dispatch::{B2bua, ClientRole};
use crate::config::SessionTimerConfig;
use crate::sip::headers::{make, param};
use crate::sip::message::SipMsg;
use crate::transaction::TransactionLayer;
use crate::transport::flow::ZoneId;
use rsip::{Header, Method};
use std::time::{Duration, Instant};

/// The timer of one leg.
#[derive(Debug, Clone)]
pub struct LegTimer {
    /// Negotiated session interval.
    pub interval: Duration,
    /// sipborder is the refresher on this leg.
    pub we_refresh: bool,
    /// The session lapses at this time unless refreshed.
    pub expires_at: Instant,
    /// Our next refresh (when we refresh).
    pub refresh_at: Option<Instant>,
    /// A refresh of ours is in flight.
    pub refreshing: bool,
}

impl LegTimer {
    fn new(now: Instant, interval: Duration, we_refresh: bool) -> LegTimer {
        LegTimer {
            interval,
            we_refresh,
            expires_at: now + interval,
            refresh_at: we_refresh.then(|| now + interval / 2),
            refreshing: false,
        }
    }

    /// A refresh succeeded at `now`.
    pub fn refreshed(&mut self, now: Instant) {
        self.expires_at = now + self.interval;
        self.refreshing = false;
        if self.we_refresh {
            self.refresh_at = Some(now + self.interval / 2);
        }
    }

    /// When the peer must have refreshed by (RFC 4028 §10: BYE at SE - min(32 s, SE/3)).
    pub fn deadline(&self) -> Instant {
        self.expires_at - (self.interval / 3).min(Duration::from_secs(32))
    }

    /// The next instant this timer needs attention.
    pub fn next_event(&self) -> Instant {
        match (self.we_refresh, self.refresh_at) {
            (true, Some(r)) if !self.refreshing => r.min(self.deadline()),
            _ => self.deadline(),
        }
    }
}

/// `Session-Expires: N;refresher=X` → (N, refresher).
pub fn session_expires(msg: &SipMsg) -> Option<(Duration, Option<String>)> {
    let v = msg.header("Session-Expires")?;
    let secs: u64 = v.split(';').next()?.trim().parse().ok()?;
    Some((Duration::from_secs(secs), param(v, "refresher").map(|r| r.to_ascii_lowercase())))
}

fn min_se(msg: &SipMsg) -> Option<Duration> {
    msg.header("Min-SE")
        .and_then(|v| v.split(';').next()?.trim().parse().ok())
        .map(Duration::from_secs)
}

impl B2bua {
    /// Session timer settings of legs in `zone`.
    pub(crate) fn timer_config(&self, zone: ZoneId) -> Option<SessionTimerConfig> {
        self.router.zone(zone).and_then(|z| z.session_timer.clone())
    }

    /// Headers for the INVITE toward B when B's zone does timers.
    pub(crate) fn timer_request_headers(&self, zone: ZoneId) -> Vec<Header> {
        match self.timer_config(zone) {
            Some(c) => vec![
                make("Session-Expires", c.interval.0.as_secs().to_string()),
                make("Min-SE", c.min_se.0.as_secs().to_string()),
            ],
            None => Vec::new(),
        }
    }

    /// RFC 4028 §8.1: an INVITE asking for an interval below our Min-SE gets 422.
    pub(crate) fn timer_too_small(&self, zone: ZoneId, msg: &SipMsg) -> Option<Header> {
        let cfg = self.timer_config(zone)?;
        let (se, _) = session_expires(msg)?;
        (se < cfg.min_se.0).then(|| make("Min-SE", cfg.min_se.0.as_secs().to_string()))
    }

    /// On the answer: starts the timers of both legs from A's INVITE and B's 2xx, and returns
    /// the headers for the 2xx toward A.
    pub(crate) fn start_timers(
        &mut self,
        now: Instant,
        key: CallKey,
        a_invite: &SipMsg,
        b_ok: &SipMsg,
    ) -> Vec<Header> {
        let Some(call) = self.calls.get(&key) else { return Vec::new() };
        let (a_zone, b_zone) = (call.a.flow.zone, call.b.flow.zone);
        let (a_cfg, b_cfg) = (self.timer_config(a_zone), self.timer_config(b_zone));
        let mut headers = Vec::new();
        let mut timers: [Option<LegTimer>; 2] = [None, None];
        if let Some(cfg) = b_cfg {
            timers[1] = Some(match session_expires(b_ok) {
                // B chose: refresher=uac is us (we sent the INVITE on B).
                Some((se, refresher)) => {
                    LegTimer::new(now, se, refresher.as_deref() != Some("uas"))
                }
                // B does not do timers: keep the leg alive ourselves.
                None => LegTimer::new(now, cfg.interval.0, true),
            });
        }
        if let Some(cfg) = a_cfg {
            let supports = a_invite.has_option_tag("Supported", "timer")
                || a_invite.has_option_tag("Require", "timer");
            let (se, asked) = session_expires(a_invite).unwrap_or((cfg.interval.0, None));
            let se = se.max(cfg.min_se.0).max(min_se(a_invite).unwrap_or(Duration::ZERO));
            // RFC 4028 §9: honour the caller's choice, else let a timer-aware caller refresh.
            let a_refreshes = match asked.as_deref() {
                Some("uac") => true,
                Some("uas") => false,
                _ => supports,
            };
            let refresher = if a_refreshes { "uac" } else { "uas" };
            headers
                .push(make("Session-Expires", format!("{};refresher={refresher}", se.as_secs())));
            if supports {
                headers.push(make("Require", "timer"));
            }
            timers[0] = Some(LegTimer::new(now, se, !a_refreshes));
        }
        let next = timers.iter().flatten().map(LegTimer::next_event).min();
        if let Some(call) = self.calls.get_mut(&key) {
            call.timers = timers;
        }
        if let Some(n) = next {
            self.wake_at(n, key);
        }
        headers
    }

    /// A successful re-INVITE or UPDATE on `side` refreshes that leg's session.
    pub(crate) fn leg_refreshed(&mut self, now: Instant, key: CallKey, side: Side) {
        let next = self.calls.get_mut(&key).and_then(|c| {
            let t = c.timers[side.idx()].as_mut()?;
            t.refreshed(now);
            Some(t.next_event())
        });
        if let Some(n) = next {
            self.wake_at(n, key);
        }
    }

    /// Checks a call's session timers at `now`: refreshes due legs, ends expired sessions.
    /// Returns the next instant to look again.
    pub(crate) fn run_session_timers(
        &mut self,
        now: Instant,
        key: CallKey,
        tl: &mut TransactionLayer,
    ) -> Option<Instant> {
        let call = self.calls.get(&key)?;
        let mut expired = false;
        let mut due = Vec::new();
        for side in [Side::A, Side::B] {
            let Some(t) = &call.timers[side.idx()] else { continue };
            if now >= t.deadline() {
                expired = true;
            } else if t.we_refresh && !t.refreshing && t.refresh_at.is_some_and(|r| r <= now) {
                due.push(side);
            }
        }
        if expired {
            tracing::info!("session timer expired, ending the call");
            refreshes("expired");
            let reason = make("Reason", "SIP;cause=408;text=\"Session timer expired\"");
            self.hangup_both_with(now, key, EndCause::SessionFailure, vec![reason], tl);
            return None;
        }
        for side in due {
            self.send_refresh(now, key, side, tl);
        }
        let call = self.calls.get(&key)?;
        call.timers.iter().flatten().map(LegTimer::next_event).min()
    }

    /// Sends our refresh on `side`: UPDATE without SDP when the peer allows UPDATE, else a
    /// re-INVITE repeating the SDP it last got from us.
    fn send_refresh(&mut self, now: Instant, key: CallKey, side: Side, tl: &mut TransactionLayer) {
        let Some(call) = self.calls.get_mut(&key) else { return };
        if call.reinvite.is_some() {
            // An offer/answer is crossing: it refreshes the session anyway; look again soon.
            if let Some(t) = call.timers[side.idx()].as_mut() {
                t.refresh_at = Some(now + Duration::from_secs(2));
            }
            return;
        }
        let use_update = call.peer_allows_update[side.idx()];
        let sdp = call.sdp_to[side.idx()].clone();
        let Some(t) = call.timers[side.idx()].as_mut() else { return };
        let se = t.interval.as_secs();
        t.refreshing = true;
        let Some(d) = call.dialog_mut(side) else { return };
        let cseq = d.next_cseq();
        let mut extra = vec![
            make("Session-Expires", format!("{se};refresher=uac")),
            make("Supported", "timer"),
        ];
        let (method, body) = match (use_update, sdp) {
            (false, Some(body)) => {
                extra.push(make("Content-Type", "application/sdp"));
                (Method::Invite, body)
            }
            _ => (Method::Update, Vec::new()),
        };
        let req = d.request(method, cseq, extra, body);
        let flow = d.flow;
        let tx = tl.send_request(now, req, flow);
        self.clients.insert(tx, ClientRole::Refresh { call: key, side, cseq });
        refreshes("sent");
    }

    /// The answer to our refresh.
    pub(crate) fn on_refresh_response(
        &mut self,
        now: Instant,
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
        if (200..300).contains(&code) {
            if msg.cseq_method == Method::Invite {
                // We are the UAC of this re-INVITE: ACK it on the leg.
                self.ack_own_invite(key, side, cseq, tl);
            }
            if let Some(t) = self.calls.get_mut(&key).and_then(|c| c.timers[side.idx()].as_mut()) {
                if let Some((se, _)) = session_expires(msg) {
                    t.interval = se;
                }
            }
            self.leg_refreshed(now, key, side);
            return;
        }
        if code == 491 {
            // Glare with the peer's own re-INVITE: try again shortly.
            if let Some(t) = self.calls.get_mut(&key).and_then(|c| c.timers[side.idx()].as_mut()) {
                t.refreshing = false;
                t.refresh_at = Some(now + Duration::from_secs(2));
            }
            return;
        }
        tracing::info!(code, "session refresh refused, ending the call");
        refreshes("failed");
        let reason = make("Reason", format!("SIP;cause={code};text=\"Session refresh failed\""));
        self.hangup_both_with(now, key, EndCause::SessionFailure, vec![reason], tl);
    }

    /// Our refresh timed out or could not be sent.
    pub(crate) fn on_refresh_failure(
        &mut self,
        now: Instant,
        key: CallKey,
        tl: &mut TransactionLayer,
    ) {
        refreshes("failed");
        let reason = make("Reason", "SIP;cause=408;text=\"Session refresh failed\"");
        self.hangup_both_with(now, key, EndCause::SessionFailure, vec![reason], tl);
    }

    /// A request from `side` that only refreshes its session (a body-less UPDATE, or a
    /// re-INVITE repeating the last SDP or carrying none) is answered here: returns the headers
    /// and body of the 200, or `None` when the request must be relayed.
    pub(crate) fn local_refresh_answer(
        &mut self,
        now: Instant,
        key: CallKey,
        side: Side,
        msg: &SipMsg,
    ) -> Option<(Vec<Header>, Vec<u8>)> {
        let call = self.calls.get(&key)?;
        let timer = call.timers[side.idx()].as_ref()?;
        let same_sdp = |body: &[u8]| {
            let v = |b: &[u8]| {
                crate::sip::sdp::SessionDescription::parse(b)
                    .ok()
                    .map(|s| (s.origin().sess_id.to_string(), s.origin().sess_version.to_string()))
            };
            call.sdp_from[side.idx()]
                .as_deref()
                .is_some_and(|last| v(last).is_some() && v(last) == v(body))
        };
        let refresh_only = match msg.method() {
            Method::Update => msg.body().is_empty(),
            Method::Invite => msg.body().is_empty() || same_sdp(msg.body()),
            _ => false,
        };
        if !refresh_only {
            return None;
        }
        let se =
            session_expires(msg).map_or(timer.interval, |(se, _)| se.max(Duration::from_secs(90)));
        let mut headers = vec![
            make("Session-Expires", format!("{};refresher=uac", se.as_secs())),
            make("Require", "timer"),
        ];
        let body = if msg.method() == Method::Invite {
            call.sdp_to[side.idx()].clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        if !body.is_empty() {
            headers.push(make("Content-Type", "application/sdp"));
        }
        if let Some(t) = self.calls.get_mut(&key).and_then(|c| c.timers[side.idx()].as_mut()) {
            t.interval = se;
            // The peer refreshes now (it sent the refresh).
            t.we_refresh = false;
            t.refresh_at = None;
        }
        self.leg_refreshed(now, key, side);
        refreshes("answered");
        Some((headers, body))
    }
}

fn refreshes(result: &'static str) {
    metrics::counter!(crate::observe::names::SESSION_REFRESHES_TOTAL, "result" => result)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_before_expiry_by_a_third_at_most_32_seconds() {
        let t0 = Instant::now();
        let t = LegTimer::new(t0, Duration::from_secs(1800), true);
        assert_eq!(t.deadline(), t0 + Duration::from_secs(1800 - 32));
        assert_eq!(t.refresh_at, Some(t0 + Duration::from_secs(900)));
        let short = LegTimer::new(t0, Duration::from_secs(90), false);
        assert_eq!(short.deadline(), t0 + Duration::from_secs(60));
        assert_eq!(short.next_event(), short.deadline());
    }
}
