//! `Registration`: sipborder registering itself at an ITSP (sans-IO). Re-registers before
//! expiry, answers digest challenges (the same loop guard as calls), follows 423 Min-Expires,
//! backs off with jitter after failures, and de-registers on shutdown.

use super::digest_client::{
    Account, AuthAttempt, AuthHeader, AuthKind, ChallengeOutcome, DigestClient,
};
use crate::sip::headers::{make, param};
use crate::sip::message::SipMsg;
use rsip::{Header, Method};
use std::time::{Duration, Instant};

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    /// Not registered; a REGISTER goes out at `next_at`.
    Idle,
    /// A REGISTER is in flight.
    Registering,
    /// Registered until the given time.
    Registered(Instant),
    /// Failed; retrying at `next_at` (back-off).
    Failed,
}

/// What the edge should do after a response.
#[derive(Debug)]
pub enum RegAction {
    /// Send this REGISTER now (auth retry or 423 retry).
    Send(Box<rsip::Request>),
    /// Nothing now (success or back-off armed).
    Wait,
}

/// One trunk's registration.
#[derive(Debug)]
pub struct Registration {
    registrar: String,
    aor: String,
    contact: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: Duration,
    /// Current state.
    pub state: RegState,
    /// When the next REGISTER is due.
    pub next_at: Option<Instant>,
    backoff: Duration,
    attempt: AuthAttempt,
    account: Option<Account>,
    deregistering: bool,
}

const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Registration {
    /// A registration of `aor` (`sip:user@domain`) at `registrar` with our `contact`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        now: Instant,
        registrar: String,
        aor: String,
        contact: String,
        call_id: String,
        from_tag: String,
        expires: Duration,
        account: Option<Account>,
    ) -> Self {
        Registration {
            registrar,
            aor,
            contact,
            call_id,
            from_tag,
            cseq: 0,
            expires,
            state: RegState::Idle,
            next_at: Some(now),
            backoff: BACKOFF_MIN,
            attempt: AuthAttempt::default(),
            account,
            deregistering: false,
        }
    }

    /// Call-ID of the registration (stable across refreshes, RFC 3261 §10.2.4).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// True while registered.
    pub fn is_registered(&self, now: Instant) -> bool {
        matches!(self.state, RegState::Registered(until) if until > now)
    }

    /// True when a REGISTER should go out.
    pub fn due(&self, now: Instant) -> bool {
        self.state != RegState::Registering && self.next_at.is_some_and(|t| t <= now)
    }

    /// Builds the next REGISTER (credentials from `client` when a nonce is known).
    pub fn build(&mut self, client: &mut DigestClient) -> rsip::Request {
        let auth = match &self.account {
            Some(a) => client.authorize("REGISTER", &self.registrar, a),
            None => Vec::new(),
        };
        self.request(auth)
    }

    fn request(&mut self, auth: Vec<AuthHeader>) -> rsip::Request {
        self.cseq += 1;
        self.state = RegState::Registering;
        let expires = if self.deregistering { 0 } else { self.expires.as_secs() };
        let mut headers: Vec<Header> = vec![
            make("Max-Forwards", "70"),
            make("From", format!("<{}>;tag={}", self.aor, self.from_tag)),
            make("To", format!("<{}>", self.aor)),
            make("Call-ID", self.call_id.clone()),
            make("CSeq", format!("{} REGISTER", self.cseq)),
            make("Contact", self.contact.clone()),
            make("Expires", expires.to_string()),
        ];
        headers.extend(auth.into_iter().map(|h| make(h.name, h.value)));
        rsip::Request {
            method: Method::Register,
            uri: rsip::Uri::try_from(self.registrar.as_str()).unwrap_or_default(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }

    /// Starts de-registration (Expires: 0) on shutdown; the returned request goes out now.
    pub fn deregister(&mut self, client: &mut DigestClient) -> Option<rsip::Request> {
        if !matches!(self.state, RegState::Registered(_)) {
            return None;
        }
        self.deregistering = true;
        Some(self.build(client))
    }

    fn fail(&mut self, now: Instant, jitter: f64) {
        self.state = RegState::Failed;
        self.attempt = AuthAttempt::default();
        // Back-off with ±20 % jitter so a fleet of SBCs doesn't hammer a recovering registrar in step.
        let wait = self.backoff.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        self.next_at = Some(now + wait);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Timer F or a transport error: back off. `jitter` is uniform in [0, 1).
    pub fn on_failure(&mut self, now: Instant, jitter: f64) {
        self.fail(now, jitter);
    }

    /// A final response to our REGISTER.
    pub fn on_response(
        &mut self,
        now: Instant,
        msg: &SipMsg,
        client: &mut DigestClient,
        jitter: f64,
    ) -> RegAction {
        let code = msg.status().unwrap_or(0);
        match code {
            200..=299 => {
                if self.deregistering {
                    self.state = RegState::Idle;
                    self.next_at = None;
                    return RegAction::Wait;
                }
                let granted = granted_expiry(msg, &self.contact).unwrap_or(self.expires);
                let granted = granted.max(Duration::from_secs(1));
                self.state = RegState::Registered(now + granted);
                // Refresh at 80 % of the granted time, well before the binding lapses.
                self.next_at = Some(now + granted.mul_f64(0.8));
                self.backoff = BACKOFF_MIN;
                self.attempt = AuthAttempt::default();
                RegAction::Wait
            }
            401 | 407 => {
                let Some(account) = self.account.clone() else {
                    self.fail(now, jitter);
                    return RegAction::Wait;
                };
                let kind = AuthKind::from_status(code).unwrap_or(AuthKind::Www);
                let challenges: Vec<&str> = msg.header_all(kind.challenge_header()).collect();
                match client.on_challenge(
                    &mut self.attempt,
                    kind,
                    &challenges,
                    "REGISTER",
                    &self.registrar,
                    &account,
                ) {
                    ChallengeOutcome::Retry { headers, .. } => {
                        RegAction::Send(Box::new(self.request(headers)))
                    }
                    ChallengeOutcome::Fail(why) => {
                        tracing::warn!(?why, registrar = %self.registrar, "registration refused");
                        self.fail(now, jitter);
                        RegAction::Wait
                    }
                }
            }
            423 => {
                // RFC 3261 §10.2.8: ask again with at least Min-Expires.
                let min = msg.header("Min-Expires").and_then(|v| v.trim().parse::<u64>().ok());
                match min {
                    Some(m) if Duration::from_secs(m) > self.expires => {
                        self.expires = Duration::from_secs(m);
                        let auth = match &self.account {
                            Some(a) => client.authorize("REGISTER", &self.registrar, a),
                            None => Vec::new(),
                        };
                        RegAction::Send(Box::new(self.request(auth)))
                    }
                    _ => {
                        self.fail(now, jitter);
                        RegAction::Wait
                    }
                }
            }
            _ => {
                tracing::warn!(code, registrar = %self.registrar, "registration failed");
                self.fail(now, jitter);
                RegAction::Wait
            }
        }
    }
}

/// The expiry the registrar granted our contact: its `expires` parameter in the 200's Contact
/// list, else the Expires header.
fn granted_expiry(msg: &SipMsg, our_contact: &str) -> Option<Duration> {
    let ours = crate::sip::headers::addr_uri(our_contact);
    for v in msg.header_all("Contact") {
        for c in crate::dialog::uri::split_top_level_commas(v) {
            if crate::sip::headers::addr_uri(c) == ours {
                if let Some(e) = param(c, "expires").and_then(|e| e.parse::<u64>().ok()) {
                    return Some(Duration::from_secs(e));
                }
            }
        }
    }
    msg.header("Expires").and_then(|e| e.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse::{parse, Limits};

    fn reg(now: Instant, account: bool) -> Registration {
        Registration::new(
            now,
            "sip:itsp.example".into(),
            "sip:4930123@itsp.example".into(),
            "<sip:4930123@203.0.113.1:5080>".into(),
            "regcallid".into(),
            "regtag".into(),
            Duration::from_secs(300),
            account.then(|| Account { username: "4930123".into(), password: "secret".into() }),
        )
    }

    fn response(req: &rsip::Request, code: u16, extra: &str) -> SipMsg {
        let text = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 203.0.113.1:5080;branch=z9hG4bKr\r\nFrom: <sip:4930123@itsp.example>;tag=regtag\r\nTo: <sip:4930123@itsp.example>;tag=srv\r\nCall-ID: regcallid\r\nCSeq: {} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n",
            req.headers.iter().find_map(|h| match h { Header::CSeq(c) => Some(rsip::headers::UntypedHeader::value(c).split(' ').next().unwrap_or("1").to_string()), _ => None }).unwrap_or_default()
        );
        parse(text.as_bytes(), &Limits::default()).expect("parses")
    }

    #[test]
    fn registers_then_refreshes_at_80_percent_of_the_granted_expiry() {
        let t0 = Instant::now();
        let mut r = reg(t0, false);
        let mut c = DigestClient::new(|| "cn".into());
        assert!(r.due(t0));
        let req = r.build(&mut c);
        assert_eq!(req.method, Method::Register);
        assert!(!r.due(t0), "in flight");
        let ok = response(&req, 200, "Contact: <sip:4930123@203.0.113.1:5080>;expires=120\r\n");
        assert!(matches!(r.on_response(t0, &ok, &mut c, 0.5), RegAction::Wait));
        assert!(r.is_registered(t0));
        assert_eq!(r.next_at, Some(t0 + Duration::from_secs(96)));
        assert!(!r.is_registered(t0 + Duration::from_secs(121)));
    }

    #[test]
    fn answers_a_challenge_once_and_fails_on_a_second_non_stale_one() {
        let t0 = Instant::now();
        let mut r = reg(t0, true);
        let mut c = DigestClient::new(|| "cn".into());
        let req = r.build(&mut c);
        let ch = "WWW-Authenticate: Digest realm=\"itsp\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"\r\n";
        let RegAction::Send(retry) = r.on_response(t0, &response(&req, 401, ch), &mut c, 0.5)
        else {
            panic!("expected a retry");
        };
        let auth = retry.headers.iter().find(|h| crate::sip::headers::is_named(h, "Authorization"));
        assert!(auth.is_some(), "credentials sent");
        assert!(matches!(
            r.on_response(t0, &response(&retry, 401, ch), &mut c, 0.5),
            RegAction::Wait
        ));
        assert_eq!(r.state, RegState::Failed);
        let next = r.next_at.expect("retry armed");
        assert!(
            next >= t0 + Duration::from_secs(4) && next <= t0 + Duration::from_secs(6),
            "5 s back-off with jitter"
        );
    }

    #[test]
    fn follows_min_expires_on_423_and_backs_off_exponentially() {
        let t0 = Instant::now();
        let mut r = reg(t0, false);
        let mut c = DigestClient::new(|| "cn".into());
        let req = r.build(&mut c);
        let RegAction::Send(again) =
            r.on_response(t0, &response(&req, 423, "Min-Expires: 600\r\n"), &mut c, 0.5)
        else {
            panic!("expected a retry with the new expiry");
        };
        assert!(again
            .headers
            .iter()
            .any(|h| crate::sip::headers::name_value(h) == ("Expires", "600")));
        r.on_failure(t0, 0.5);
        let first = r.next_at.map(|t| t - t0);
        let _ = r.build(&mut c);
        r.on_failure(t0, 0.5);
        let second = r.next_at.map(|t| t - t0);
        assert_eq!((first, second), (Some(Duration::from_secs(5)), Some(Duration::from_secs(10))));
    }

    #[test]
    fn deregisters_with_expires_zero() {
        let t0 = Instant::now();
        let mut r = reg(t0, false);
        let mut c = DigestClient::new(|| "cn".into());
        assert!(r.deregister(&mut c).is_none(), "nothing to undo");
        let req = r.build(&mut c);
        r.on_response(t0, &response(&req, 200, ""), &mut c, 0.5);
        let bye = r.deregister(&mut c).expect("a de-REGISTER");
        assert!(bye.headers.iter().any(|h| crate::sip::headers::name_value(h) == ("Expires", "0")));
    }
}
