//! The trunk's digest client: answers 401/407 challenges on REGISTER, INVITE, re-INVITE and BYE.
//!
//! One [`DigestClient`] per trunk keeps, per (header kind, realm), the last challenge, its nonce
//! count and cnonce, so later requests can carry credentials at once (`nc` counting up on the
//! same nonce). One [`AuthAttempt`] per logical request (an INVITE and its authenticated
//! retries) is the loop guard: the first challenge is answered, `stale=true` is answered
//! silently with the new nonce, and a second non-stale challenge for the same realm fails the
//! request — the server has seen our credentials and refused them (the PJSIP "dummy challenge"
//! of ../shared/vectors/seed003/004..009 does exactly that for unknown users).
//!
//! The caller resends the request with a new CSeq (and the ACK/CANCEL of that transaction use
//! it), adds the returned headers, and uses the same Request-URI it passed here: `uri=` must
//! equal the Request-URI sent.

use std::collections::HashMap;

use crate::trunk::digest::{
    compute_response, Challenge, Credentials, DigestError, Qop, ResponseInput,
};

/// Stale challenges answered per request before giving up: a server that calls every nonce
/// stale would otherwise keep us retrying for ever.
pub const MAX_STALE_ROUNDS: u8 = 3;

/// Which pair of headers a challenge came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// 401: `WWW-Authenticate` answered with `Authorization`.
    Www,
    /// 407: `Proxy-Authenticate` answered with `Proxy-Authorization`.
    Proxy,
}

impl AuthKind {
    /// The kind for a challenge status (401, 407); `None` for any other status.
    pub fn from_status(status: u16) -> Option<Self> {
        match status {
            401 => Some(Self::Www),
            407 => Some(Self::Proxy),
            _ => None,
        }
    }

    /// The header carrying the challenge.
    pub fn challenge_header(self) -> &'static str {
        match self {
            Self::Www => "WWW-Authenticate",
            Self::Proxy => "Proxy-Authenticate",
        }
    }

    /// The header carrying our credentials.
    pub fn credentials_header(self) -> &'static str {
        match self {
            Self::Www => "Authorization",
            Self::Proxy => "Proxy-Authorization",
        }
    }
}

/// The account the trunk authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The username (often not the user part of From).
    pub username: String,
    /// The password.
    pub password: String,
}

/// A header to add to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Authorization` or `Proxy-Authorization`.
    pub name: &'static str,
    /// The `Digest ...` value.
    pub value: String,
}

/// Why the request cannot be authenticated. The call fails toward the PBX with
/// [`AuthFailure::SIP_STATUS`] and is recorded with [`AuthFailure::CAUSE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// A second challenge that is not stale: our credentials were refused.
    Rejected {
        /// The realm that refused them.
        realm: String,
    },
    /// Too many `stale=true` rounds for one request.
    TooManyStale,
    /// No challenge in the response could be answered.
    NoUsableChallenge(DigestError),
}

impl AuthFailure {
    /// Q.850 cause 21, "Call rejected".
    pub const CAUSE: u8 = 21;
    /// 403 Forbidden toward the PBX.
    pub const SIP_STATUS: u16 = 403;
}

/// What to do with a 401/407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeOutcome {
    /// Resend the request (new CSeq, new branch) with these headers.
    Retry {
        /// Credentials for every realm known, the challenged one included.
        headers: Vec<AuthHeader>,
        /// True when the retry only answers `stale=true` (not worth logging).
        stale: bool,
    },
    /// Give up and fail the request.
    Fail(AuthFailure),
}

/// The loop guard for one logical request. Create one per request the caller may have to
/// resend; keep it across the retries.
#[derive(Debug, Clone, Default)]
pub struct AuthAttempt {
    answered: Vec<(AuthKind, String)>,
    stale_rounds: u8,
}

#[derive(Debug, Clone)]
struct RealmState {
    challenge: Challenge,
    qop: Option<Qop>,
    cnonce: String,
    /// Nonce count already used with `challenge.nonce`.
    nc: u32,
}

/// Digest client state for one trunk account.
pub struct DigestClient {
    realms: HashMap<(AuthKind, String), RealmState>,
    /// Ordered like `realms` was filled, so headers come out in a stable order.
    order: Vec<(AuthKind, String)>,
    cnonce: Box<dyn FnMut() -> String + Send>,
}

impl std::fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestClient").field("realms", &self.order).finish_non_exhaustive()
    }
}

impl DigestClient {
    /// A client whose cnonces come from `cnonce` (inject a fixed sequence in tests).
    pub fn new(cnonce: impl FnMut() -> String + Send + 'static) -> Self {
        Self { realms: HashMap::new(), order: Vec::new(), cnonce: Box::new(cnonce) }
    }

    /// A client with random 128-bit hex cnonces.
    pub fn with_random_cnonce() -> Self {
        Self::new(|| hex::encode(rand::random::<[u8; 16]>()))
    }

    /// Handles a 401 (`kind` = [`AuthKind::Www`]) or 407 response to the request `method
    /// request_uri` of the logical request tracked by `attempt`. `challenges` are the values
    /// of every `WWW-Authenticate` / `Proxy-Authenticate` header of the response, in order.
    pub fn on_challenge(
        &mut self,
        attempt: &mut AuthAttempt,
        kind: AuthKind,
        challenges: &[&str],
        method: &str,
        request_uri: &str,
        account: &Account,
    ) -> ChallengeOutcome {
        let selected = match select_challenges(challenges) {
            Ok(s) => s,
            Err(e) => return ChallengeOutcome::Fail(AuthFailure::NoUsableChallenge(e)),
        };
        let all_stale = selected.iter().all(|(c, _)| c.stale);
        for (challenge, _) in &selected {
            let key = (kind, challenge.realm.clone());
            if attempt.answered.contains(&key) && !challenge.stale {
                self.forget_realm(&key);
                return ChallengeOutcome::Fail(AuthFailure::Rejected {
                    realm: challenge.realm.clone(),
                });
            }
        }
        if all_stale {
            attempt.stale_rounds = attempt.stale_rounds.saturating_add(1);
            if attempt.stale_rounds > MAX_STALE_ROUNDS {
                return ChallengeOutcome::Fail(AuthFailure::TooManyStale);
            }
        }
        let mut challenged = Vec::with_capacity(selected.len());
        for (challenge, qop) in selected {
            let key = (kind, challenge.realm.clone());
            if !attempt.answered.contains(&key) {
                attempt.answered.push(key.clone());
            }
            challenged.push(key.clone());
            self.install(key, challenge, qop);
        }
        let headers = self.authorize(method, request_uri, account);
        // authorize() drops a realm whose nonce count ran out; resending without its
        // credentials would only draw the same challenge again.
        if let Some((_, realm)) = challenged.into_iter().find(|k| !self.realms.contains_key(k)) {
            return ChallengeOutcome::Fail(AuthFailure::Rejected { realm });
        }
        ChallengeOutcome::Retry { headers, stale: all_stale }
    }

    /// Credentials for a new request (a BYE, a re-INVITE, a REGISTER refresh) with the nonces
    /// already known, counting `nc` up; empty when no challenge has been seen yet.
    pub fn authorize(
        &mut self,
        method: &str,
        request_uri: &str,
        account: &Account,
    ) -> Vec<AuthHeader> {
        let mut headers = Vec::with_capacity(self.order.len());
        let mut exhausted = Vec::new();
        for key in &self.order {
            let Some(state) = self.realms.get_mut(key) else { continue };
            match credentials(state, method, request_uri, account) {
                Some(c) => headers
                    .push(AuthHeader { name: key.0.credentials_header(), value: c.to_string() }),
                None => exhausted.push(key.clone()),
            }
        }
        for key in exhausted {
            // The nonce count ran out; the server will challenge again with a fresh nonce.
            self.forget_realm(&key);
        }
        headers
    }

    /// Forgets every nonce (e.g. after the trunk's registration failed for good).
    pub fn forget(&mut self) {
        self.realms.clear();
        self.order.clear();
    }

    fn forget_realm(&mut self, key: &(AuthKind, String)) {
        self.realms.remove(key);
        self.order.retain(|k| k != key);
    }

    fn install(&mut self, key: (AuthKind, String), challenge: Challenge, qop: Option<Qop>) {
        if let Some(state) = self.realms.get_mut(&key) {
            // The same nonce again means the server wants a higher nc, not a reset.
            if state.challenge.nonce == challenge.nonce
                && state.challenge.algorithm == challenge.algorithm
            {
                state.challenge = challenge;
                state.qop = qop;
                return;
            }
        }
        let cnonce = (self.cnonce)();
        self.realms.insert(key.clone(), RealmState { challenge, qop, cnonce, nc: 0 });
        if !self.order.contains(&key) {
            self.order.push(key);
        }
    }
}

/// The usable challenges of one response, at most one per realm: the topmost one we support
/// (RFC 8760 §2.4 — the server lists its preferred algorithm first).
fn select_challenges(values: &[&str]) -> Result<Vec<(Challenge, Option<Qop>)>, DigestError> {
    let mut selected: Vec<(Challenge, Option<Qop>)> = Vec::new();
    let mut last_error = DigestError::NotDigest;
    for value in values {
        let parsed = Challenge::parse(value).and_then(|c| c.choose_qop().map(|q| (c, q)));
        match parsed {
            Ok((c, q)) => {
                if !selected.iter().any(|(s, _)| s.realm == c.realm) {
                    selected.push((c, q));
                }
            }
            Err(e) => last_error = e,
        }
    }
    if selected.is_empty() {
        Err(last_error)
    } else {
        Ok(selected)
    }
}

/// The next credentials for `state`, or `None` when the nonce count is exhausted.
fn credentials(
    state: &mut RealmState,
    method: &str,
    uri: &str,
    account: &Account,
) -> Option<Credentials> {
    let c = &state.challenge;
    let (qop, nc) = match state.qop {
        Some(Qop::Auth) => {
            state.nc = state.nc.checked_add(1)?;
            (Some("auth".to_string()), Some(format!("{:08x}", state.nc)))
        }
        None => (None, None),
    };
    let response = compute_response(&ResponseInput {
        algorithm: c.algorithm,
        username: &account.username,
        realm: &c.realm,
        password: &account.password,
        nonce: &c.nonce,
        method,
        uri,
        qop_auth: nc.as_deref().map(|nc| (nc, state.cnonce.as_str())),
    });
    Some(Credentials {
        username: account.username.clone(),
        realm: c.realm.clone(),
        nonce: c.nonce.clone(),
        uri: uri.to_string(),
        response,
        algorithm: Some(c.algorithm_echo().to_string()),
        cnonce: qop.as_ref().map(|_| state.cnonce.clone()),
        opaque: c.opaque.clone(),
        qop,
        nc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trunk::digest::Algorithm;

    fn client(cnonces: &[&str]) -> DigestClient {
        let mut list: Vec<String> = cnonces.iter().map(|s| s.to_string()).collect();
        list.reverse();
        DigestClient::new(move || list.pop().unwrap_or_else(|| "cnonce-x".to_string()))
    }

    fn account(user: &str, password: &str) -> Account {
        Account { username: user.into(), password: password.into() }
    }

    fn retry_headers(outcome: ChallengeOutcome) -> Vec<AuthHeader> {
        match outcome {
            ChallengeOutcome::Retry { headers, .. } => headers,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    fn creds(h: &AuthHeader) -> Credentials {
        Credentials::parse(&h.value).unwrap()
    }

    /// The header value of `name` in the SIP message file `path` (under ../shared/vectors).
    fn vector_header(path: &str, name: &str) -> (String, String) {
        let text = std::fs::read_to_string(format!(
            "{}/../shared/vectors/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let request_line = text.lines().next().unwrap().to_string();
        let value = text
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        (request_line, value)
    }

    const RFC2617_CHALLENGE: &str = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    #[test]
    fn rfc_2617_worked_example_through_the_client() {
        let mut c = client(&["0a4f113b"]);
        let mut attempt = AuthAttempt::default();
        let h = retry_headers(c.on_challenge(
            &mut attempt,
            AuthKind::Www,
            &[RFC2617_CHALLENGE],
            "GET",
            "/dir/index.html",
            &account("Mufasa", "Circle Of Life"),
        ));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].name, "Authorization");
        assert_eq!(
            h[0].value,
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001"#
        );
    }

    #[test]
    fn rfc_7616_sha_256_example_through_the_client() {
        let challenge = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let mut c = client(&["f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"]);
        let h = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[challenge],
            "GET",
            "/dir/index.html",
            &account("Mufasa", "Circle of Life"),
        ));
        let cr = creds(&h[0]);
        assert_eq!(cr.response, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
        assert_eq!(cr.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(cr.opaque.as_deref(), Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"));
    }

    #[test]
    fn pjsip_dummy_challenge_vectors_do_not_loop() {
        // seed003/004: INVITE without credentials; 005: its 401; 007: the retry PJSIP sent;
        // 008: the second 401 (new opaque, not stale) that must end the attempt.
        let (invite, _) = vector_header(
            "seed003/004_pjsipwiki_invite_200_to_201_cseq9775_no_credentials.sip",
            "CSeq",
        );
        let request_uri = invite.split_whitespace().nth(1).unwrap().to_string();
        let (_, first) = vector_header(
            "seed003/005_pjsipwiki_401_unauthorized_dummy_challenge_cseq9775.sip",
            "WWW-Authenticate",
        );
        let (_, sent) = vector_header(
            "seed003/007_pjsipwiki_invite_200_to_201_cseq9776_with_authorization.sip",
            "Authorization",
        );
        let (_, second) = vector_header(
            "seed003/008_pjsipwiki_401_unauthorized_dummy_challenge_cseq9776.sip",
            "WWW-Authenticate",
        );
        assert!(first.starts_with("Digest") && second.starts_with("Digest"));

        let theirs = Credentials::parse(&sent).unwrap();
        let mut c = client(&[theirs.cnonce.as_deref().unwrap()]);
        let mut attempt = AuthAttempt::default();
        let acct = account("200", "200");
        let h = retry_headers(c.on_challenge(
            &mut attempt,
            AuthKind::Www,
            &[&first],
            "INVITE",
            &request_uri,
            &acct,
        ));
        assert_eq!(h[0].value, sent, "same credentials as the Digium phone sent in 007");
        assert_eq!(creds(&h[0]).uri, request_uri);

        let outcome =
            c.on_challenge(&mut attempt, AuthKind::Www, &[&second], "INVITE", &request_uri, &acct);
        assert_eq!(
            outcome,
            ChallengeOutcome::Fail(AuthFailure::Rejected { realm: "asterisk".into() })
        );
        assert_eq!((AuthFailure::SIP_STATUS, AuthFailure::CAUSE), (403, 21));
        assert!(
            c.authorize("INVITE", &request_uri, &acct).is_empty(),
            "refused credentials are dropped"
        );
    }

    #[test]
    fn register_without_qop_seed002() {
        let (register, _) = vector_header("seed002/d2_10_register1.sip", "CSeq");
        let request_uri = register.split_whitespace().nth(1).unwrap().to_string();
        let (_, challenge) = vector_header("seed002/d2_12_401.sip", "WWW-Authenticate");
        let mut c = client(&["unused"]);
        let acct = account("microsip01", "secret");
        let h = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[&challenge],
            "REGISTER",
            &request_uri,
            &acct,
        ));
        let cr = creds(&h[0]);
        assert_eq!((cr.qop, cr.nc, cr.cnonce), (None, None, None));
        assert_eq!(cr.uri, "sip:192.168.80.100");
        // RFC 2069 form, spelled out: MD5(HA1:nonce:HA2).
        let md5 = |s: String| Algorithm::Md5.hex(&s);
        let ha1 = md5("microsip01:ccmsipline:secret".into());
        let ha2 = md5("REGISTER:sip:192.168.80.100".into());
        assert_eq!(cr.response, md5(format!("{ha1}:vP42jVSdIItGRD5nYmE71/4JD/ZYUQvL:{ha2}")));
        // Same shape as MicroSIP's d2_13, which shows what CUCM accepted.
        let (_, theirs) = vector_header("seed002/d2_13_register2_auth.sip", "Authorization");
        let theirs = Credentials::parse(&theirs).unwrap();
        assert_eq!((theirs.realm, theirs.nonce, theirs.uri), (cr.realm, cr.nonce, cr.uri));
    }

    #[test]
    fn nc_counts_up_on_the_same_nonce() {
        let mut c = client(&["abc"]);
        let acct = account("Mufasa", "Circle Of Life");
        let h = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[RFC2617_CHALLENGE],
            "INVITE",
            "sip:a@b",
            &acct,
        ));
        assert_eq!(creds(&h[0]).nc.as_deref(), Some("00000001"));
        let bye = c.authorize("BYE", "sip:a@10.0.0.1:5060", &acct);
        let reinvite = c.authorize("INVITE", "sip:a@10.0.0.1:5060", &acct);
        let (bye, reinvite) = (creds(&bye[0]), creds(&reinvite[0]));
        assert_eq!(bye.nc.as_deref(), Some("00000002"));
        assert_eq!(reinvite.nc.as_deref(), Some("00000003"));
        assert_eq!(bye.cnonce.as_deref(), Some("abc"));
        assert_eq!(bye.uri, "sip:a@10.0.0.1:5060");
        assert_ne!(bye.response, reinvite.response);
        // The same nonce challenged again keeps counting rather than reusing nc=1.
        let h = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[RFC2617_CHALLENGE],
            "INVITE",
            "sip:a@b",
            &acct,
        ));
        assert_eq!(creds(&h[0]).nc.as_deref(), Some("00000004"));
    }

    #[test]
    fn stale_is_retried_silently_with_the_new_nonce() {
        let mut c = client(&["c1", "c2"]);
        let acct = account("u", "p");
        let mut attempt = AuthAttempt::default();
        let first = r#"Digest realm="r", nonce="n1", qop="auth""#;
        let stale = r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#;
        let h = retry_headers(c.on_challenge(
            &mut attempt,
            AuthKind::Proxy,
            &[first],
            "INVITE",
            "sip:x@y",
            &acct,
        ));
        assert_eq!(h[0].name, "Proxy-Authorization");
        match c.on_challenge(&mut attempt, AuthKind::Proxy, &[stale], "INVITE", "sip:x@y", &acct) {
            ChallengeOutcome::Retry { headers, stale: true } => {
                let cr = creds(&headers[0]);
                assert_eq!(cr.nonce, "n2");
                assert_eq!(cr.nc.as_deref(), Some("00000001"), "a new nonce restarts nc");
                assert_eq!(cr.cnonce.as_deref(), Some("c2"));
            }
            other => panic!("expected a silent retry, got {other:?}"),
        }
        let again = r#"Digest realm="r", nonce="n3", qop="auth""#;
        assert!(matches!(
            c.on_challenge(&mut attempt, AuthKind::Proxy, &[again], "INVITE", "sip:x@y", &acct),
            ChallengeOutcome::Fail(AuthFailure::Rejected { .. })
        ));
    }

    #[test]
    fn endless_stale_gives_up() {
        let mut c = client(&[]);
        let acct = account("u", "p");
        let mut attempt = AuthAttempt::default();
        let first = r#"Digest realm="r", nonce="n0""#;
        assert!(matches!(
            c.on_challenge(&mut attempt, AuthKind::Www, &[first], "INVITE", "sip:x@y", &acct),
            ChallengeOutcome::Retry { stale: false, .. }
        ));
        for i in 1..=MAX_STALE_ROUNDS {
            let stale = format!(r#"Digest realm="r", nonce="n{i}", stale=true"#);
            assert!(matches!(
                c.on_challenge(&mut attempt, AuthKind::Www, &[&stale], "INVITE", "sip:x@y", &acct),
                ChallengeOutcome::Retry { stale: true, .. }
            ));
        }
        let stale = r#"Digest realm="r", nonce="last", stale=true"#;
        assert_eq!(
            c.on_challenge(&mut attempt, AuthKind::Www, &[stale], "INVITE", "sip:x@y", &acct),
            ChallengeOutcome::Fail(AuthFailure::TooManyStale)
        );
    }

    #[test]
    fn proxy_then_uas_challenge_carries_both() {
        let mut c = client(&["a", "b"]);
        let acct = account("u", "p");
        let mut attempt = AuthAttempt::default();
        retry_headers(c.on_challenge(
            &mut attempt,
            AuthKind::Proxy,
            &[r#"Digest realm="proxy", nonce="p1", qop="auth""#],
            "INVITE",
            "sip:x@y",
            &acct,
        ));
        let h = retry_headers(c.on_challenge(
            &mut attempt,
            AuthKind::Www,
            &[r#"Digest realm="uas", nonce="u1", qop="auth""#],
            "INVITE",
            "sip:x@y",
            &acct,
        ));
        let names: Vec<_> = h.iter().map(|h| (h.name, creds(h).realm)).collect();
        assert_eq!(
            names,
            [("Proxy-Authorization", "proxy".into()), ("Authorization", "uas".into())]
        );
        assert_eq!(
            creds(&h[0]).nc.as_deref(),
            Some("00000002"),
            "the proxy nonce is used a second time"
        );
    }

    #[test]
    fn picks_the_topmost_supported_challenge_per_realm() {
        let mut c = client(&["x"]);
        let acct = account("u", "p");
        let values = [
            r#"Digest realm="r", nonce="n", algorithm=AKAv1-MD5, qop="auth""#,
            r#"Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth""#,
            r#"Digest realm="r", nonce="n", algorithm=MD5, qop="auth""#,
        ];
        let h = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &values,
            "REGISTER",
            "sip:r",
            &acct,
        ));
        assert_eq!(h.len(), 1);
        assert_eq!(creds(&h[0]).algorithm.as_deref(), Some("SHA-256"));
    }

    #[test]
    fn unusable_challenges_fail() {
        let mut c = client(&[]);
        let acct = account("u", "p");
        let outcome = c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[r#"Digest realm="r", nonce="n", qop="auth-int""#],
            "INVITE",
            "sip:x",
            &acct,
        );
        assert_eq!(
            outcome,
            ChallengeOutcome::Fail(AuthFailure::NoUsableChallenge(DigestError::UnsupportedQop(
                "auth-int".into()
            )))
        );
        let outcome = c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[],
            "INVITE",
            "sip:x",
            &acct,
        );
        assert_eq!(
            outcome,
            ChallengeOutcome::Fail(AuthFailure::NoUsableChallenge(DigestError::NotDigest))
        );
        assert_eq!(AuthKind::from_status(401), Some(AuthKind::Www));
        assert_eq!(AuthKind::from_status(407), Some(AuthKind::Proxy));
        assert_eq!(AuthKind::from_status(403), None);
        assert_eq!(AuthKind::Proxy.challenge_header(), "Proxy-Authenticate");
    }

    #[test]
    fn md5_sess_client_uses_one_cnonce_per_nonce() {
        let mut c = client(&["fixed"]);
        let acct = account("u", "p");
        let ch = r#"Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth""#;
        let h = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[ch],
            "INVITE",
            "sip:x",
            &acct,
        ));
        let next = c.authorize("BYE", "sip:x", &acct);
        let (a, b) = (creds(&h[0]), creds(&next[0]));
        assert_eq!(a.algorithm.as_deref(), Some("MD5-sess"));
        assert_eq!((a.cnonce.as_deref(), b.cnonce.as_deref()), (Some("fixed"), Some("fixed")));
        let expected = compute_response(&ResponseInput {
            algorithm: Algorithm::Md5Sess,
            username: "u",
            realm: "r",
            password: "p",
            nonce: "n",
            method: "BYE",
            uri: "sip:x",
            qop_auth: Some(("00000002", "fixed")),
        });
        assert_eq!(b.response, expected);
    }

    #[test]
    fn exhausted_nonce_count_fails_instead_of_looping() {
        let mut c = client(&["x"]);
        let acct = account("u", "p");
        let ch = r#"Digest realm="r", nonce="n", qop="auth""#;
        retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[ch],
            "INVITE",
            "sip:x",
            &acct,
        ));
        if let Some(state) = c.realms.get_mut(&(AuthKind::Www, "r".to_string())) {
            state.nc = u32::MAX;
        }
        let outcome = c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[ch],
            "INVITE",
            "sip:x",
            &acct,
        );
        assert_eq!(outcome, ChallengeOutcome::Fail(AuthFailure::Rejected { realm: "r".into() }));
    }

    #[test]
    fn random_cnonces_differ() {
        let mut c = DigestClient::with_random_cnonce();
        let acct = account("u", "p");
        let h1 = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[r#"Digest realm="r", nonce="a", qop="auth""#],
            "INVITE",
            "sip:x",
            &acct,
        ));
        let h2 = retry_headers(c.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[r#"Digest realm="r", nonce="b", qop="auth""#],
            "INVITE",
            "sip:x",
            &acct,
        ));
        let (a, b) = (creds(&h1[0]).cnonce.unwrap(), creds(&h2[0]).cnonce.unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        c.forget();
        assert!(c.authorize("BYE", "sip:x", &acct).is_empty());
    }
}
