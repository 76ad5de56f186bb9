//! The digest server for zones that authenticate their peers (config: a realm and users).
//!
//! Nonces are stateless: `hex(ms since the server's epoch, 16 digits) ‖ hex(HMAC-SHA-256(secret,
//! timestamp ‖ realm))[..32]`. Verifying one needs no table, survives any number of challenges
//! in flight, and tells an expired nonce (answer `stale=true`) from a forged one. What it cannot
//! do is refuse a replayed `nc` within the nonce's lifetime; keep `nonce_ttl` short (tens of
//! seconds) for that reason.
//!
//! No user enumeration: the challenge does not depend on the user at all, and a request from an
//! unknown user is hashed against a dummy password exactly like a known user's before it is
//! refused with the same [`Verdict::Bad`] as a wrong password.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::trunk::digest::{
    compute_response, constant_time_eq, hmac_sha256, quote, Algorithm, Credentials, ResponseInput,
};

/// A nonce issued this far in the future of `now` is not ours (clock skew is impossible: both
/// ends of the check read the same monotonic clock, so this only absorbs caller rounding).
const FUTURE_SLACK_MS: u64 = 1_000;
/// Hex digits of the timestamp part of a nonce.
const TS_HEX: usize = 16;
/// Hex digits of the MAC part of a nonce (128 bits).
const MAC_HEX: usize = 32;

/// The result of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    Ok(String),
    /// Right password, expired nonce: challenge again with `stale=true`.
    Stale,
    /// Anything else (unknown user, wrong password, forged or foreign nonce, malformed
    /// header): challenge again without `stale`.
    Bad,
}

/// Digest server state for one zone.
pub struct DigestServer {
    realm: String,
    users: HashMap<String, String>,
    nonce_ttl: Duration,
    algorithm: Algorithm,
    secret: [u8; 32],
    epoch: Instant,
    opaque: String,
    dummy_password: String,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords or the secret.
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field("nonce_ttl", &self.nonce_ttl)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server for `realm` with `users` (username → password). `secret` keys the nonces (draw
    /// it at random at start-up); `epoch` is any instant not after the first `now` passed in.
    /// Challenges use MD5, which every SIP phone speaks; see [`Self::with_algorithm`].
    pub fn new(
        realm: impl Into<String>,
        users: HashMap<String, String>,
        nonce_ttl: Duration,
        secret: [u8; 32],
        epoch: Instant,
    ) -> Self {
        let realm = realm.into();
        let opaque = hex::encode(&hmac_sha256(&secret, format!("opaque:{realm}").as_bytes())[..8]);
        let dummy_password = hex::encode(hmac_sha256(&secret, b"dummy-password"));
        Self {
            realm,
            users,
            nonce_ttl,
            algorithm: Algorithm::Md5,
            secret,
            epoch,
            opaque,
            dummy_password,
        }
    }

    /// The same server challenging with `algorithm` (e.g. SHA-256 where all peers support it).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// True when `user` has an account here. For the caller's own bookkeeping (strikes
    /// against enumeration); the answer on the wire must never depend on it.
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The realm challenged for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A `WWW-Authenticate` / `Proxy-Authenticate` value with a fresh nonce; `stale` after a
    /// [`Verdict::Stale`].
    pub fn challenge(&self, now: Instant, stale: bool) -> String {
        let mut out = format!(
            "Digest realm={}, nonce=\"{}\", opaque=\"{}\", algorithm={}, qop=\"auth\"",
            quote(&self.realm),
            self.nonce_at(self.millis(now)),
            self.opaque,
            self.algorithm
        );
        if stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// Checks an `Authorization` / `Proxy-Authorization` value for a request with `method`.
    /// The `uri` parameter is hashed as given; use [`Self::verify_request`] to also require it
    /// to be the Request-URI.
    pub fn verify(&self, now: Instant, method: &str, authorization: &str) -> Verdict {
        self.check(now, method, None, authorization)
    }

    /// [`Self::verify`], also requiring `uri=` to equal the Request-URI received (RFC 3261
    /// §22.4), so credentials captured for one request cannot be replayed on another target.
    pub fn verify_request(
        &self,
        now: Instant,
        method: &str,
        request_uri: &str,
        authorization: &str,
    ) -> Verdict {
        self.check(now, method, Some(request_uri), authorization)
    }

    fn check(
        &self,
        now: Instant,
        method: &str,
        request_uri: Option<&str>,
        authorization: &str,
    ) -> Verdict {
        let Ok(creds) = Credentials::parse(authorization) else { return Verdict::Bad };
        let qop_auth = match (creds.qop.as_deref(), &creds.nc, &creds.cnonce) {
            (None, _, _) => None,
            (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case("auth") => {
                Some((nc.as_str(), cnonce.as_str()))
            }
            _ => return Verdict::Bad,
        };
        let algorithm_ok = match creds.algorithm.as_deref() {
            None => self.algorithm == Algorithm::Md5,
            Some(t) => Algorithm::from_token(t) == Some(self.algorithm),
        };

        // From here on the work is the same whether the user exists or not.
        let known = self.users.get(&creds.username);
        let password = known.map_or(self.dummy_password.as_str(), String::as_str);
        let expected = compute_response(&ResponseInput {
            algorithm: self.algorithm,
            username: &creds.username,
            realm: &self.realm,
            password,
            nonce: &creds.nonce,
            method,
            uri: &creds.uri,
            qop_auth,
        });
        let response_ok = constant_time_eq(expected.as_bytes(), creds.response.as_bytes());
        let nonce = self.check_nonce(now, &creds.nonce);

        let realm_ok = creds.realm == self.realm;
        let opaque_ok = creds.opaque.as_deref().is_none_or(|o| o == self.opaque);
        let uri_ok = request_uri.is_none_or(|u| u == creds.uri);
        let all_ok = known.is_some() & response_ok & realm_ok & opaque_ok & uri_ok & algorithm_ok;
        match (all_ok, nonce) {
            (true, NonceState::Fresh) => Verdict::Ok(creds.username),
            (true, NonceState::Expired) => Verdict::Stale,
            _ => Verdict::Bad,
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn nonce_at(&self, ts: u64) -> String {
        format!("{ts:0width$x}{}", self.nonce_mac(ts), width = TS_HEX)
    }

    fn nonce_mac(&self, ts: u64) -> String {
        let mut msg = ts.to_be_bytes().to_vec();
        msg.extend_from_slice(self.realm.as_bytes());
        let mac = hmac_sha256(&self.secret, &msg);
        hex::encode(&mac[..MAC_HEX / 2])
    }

    fn check_nonce(&self, now: Instant, nonce: &str) -> NonceState {
        if nonce.len() != TS_HEX + MAC_HEX || !nonce.is_ascii() {
            return NonceState::Invalid;
        }
        let (ts_hex, mac) = nonce.split_at(TS_HEX);
        let Ok(ts) = u64::from_str_radix(ts_hex, 16) else { return NonceState::Invalid };
        if !constant_time_eq(self.nonce_mac(ts).as_bytes(), mac.as_bytes()) {
            return NonceState::Invalid;
        }
        let now_ms = self.millis(now);
        let ttl_ms = u64::try_from(self.nonce_ttl.as_millis()).unwrap_or(u64::MAX);
        if ts > now_ms.saturating_add(FUTURE_SLACK_MS) {
            NonceState::Invalid
        } else if now_ms > ts.saturating_add(ttl_ms) {
            NonceState::Expired
        } else {
            NonceState::Fresh
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceState {
    Fresh,
    Expired,
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trunk::digest::Challenge;
    use crate::trunk::digest_client::{
        Account, AuthAttempt, AuthKind, ChallengeOutcome, DigestClient,
    };

    const TTL: Duration = Duration::from_secs(30);

    fn server(epoch: Instant) -> DigestServer {
        let users = HashMap::from([
            ("alice".to_string(), "wonderland".to_string()),
            ("bob".to_string(), "builder".to_string()),
        ]);
        DigestServer::new("sbc.example", users, TTL, [7; 32], epoch)
    }

    /// The Authorization value our own client builds for `challenge`.
    fn answer(challenge: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
        let mut client = DigestClient::new(|| "0a4f113b".to_string());
        let account = Account { username: user.into(), password: password.into() };
        match client.on_challenge(
            &mut AuthAttempt::default(),
            AuthKind::Www,
            &[challenge],
            method,
            uri,
            &account,
        ) {
            ChallengeOutcome::Retry { headers, .. } => headers[0].value.clone(),
            other => panic!("client refused the challenge: {other:?}"),
        }
    }

    #[test]
    fn client_to_server_round_trip() {
        let t0 = Instant::now();
        for alg in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
        ] {
            let s = server(t0).with_algorithm(alg);
            let ch = s.challenge(t0, false);
            assert!(ch.contains(&format!("algorithm={alg}")));
            let auth = answer(&ch, "alice", "wonderland", "INVITE", "sip:100@sbc.example");
            let later = t0 + Duration::from_secs(5);
            assert_eq!(s.verify(later, "INVITE", &auth), Verdict::Ok("alice".into()), "{alg}");
            assert_eq!(
                s.verify_request(later, "INVITE", "sip:100@sbc.example", &auth),
                Verdict::Ok("alice".into())
            );
            assert_eq!(
                s.verify_request(later, "INVITE", "sip:999@sbc.example", &auth),
                Verdict::Bad
            );
            assert_eq!(s.verify(later, "BYE", &auth), Verdict::Bad, "the method is covered");
        }
    }

    #[test]
    fn wrong_password_is_bad() {
        let t0 = Instant::now();
        let s = server(t0);
        let auth = answer(
            &s.challenge(t0, false),
            "alice",
            "looking-glass",
            "REGISTER",
            "sip:sbc.example",
        );
        assert_eq!(s.verify(t0, "REGISTER", &auth), Verdict::Bad);
    }

    #[test]
    fn expired_nonce_is_stale_only_with_the_right_password() {
        let t0 = Instant::now();
        let s = server(t0);
        let ch = s.challenge(t0, false);
        let good = answer(&ch, "bob", "builder", "REGISTER", "sip:sbc.example");
        let bad = answer(&ch, "bob", "nope", "REGISTER", "sip:sbc.example");
        let late = t0 + TTL + Duration::from_millis(1);
        assert_eq!(s.verify(t0 + TTL, "REGISTER", &good), Verdict::Ok("bob".into()));
        assert_eq!(s.verify(late, "REGISTER", &good), Verdict::Stale);
        assert_eq!(s.verify(late, "REGISTER", &bad), Verdict::Bad);
        let again = s.challenge(late, true);
        assert!(again.ends_with(", stale=true"));
        assert!(Challenge::parse(&again).unwrap().stale);
        let renewed = answer(&again, "bob", "builder", "REGISTER", "sip:sbc.example");
        assert_eq!(s.verify(late, "REGISTER", &renewed), Verdict::Ok("bob".into()));
    }

    #[test]
    fn unknown_user_gets_the_same_challenge_and_bad() {
        let t0 = Instant::now();
        let s = server(t0);
        let ch = s.challenge(t0, false);
        let unknown = answer(&ch, "mallory", "wonderland", "INVITE", "sip:1@sbc.example");
        let known_wrong = answer(&ch, "alice", "guess", "INVITE", "sip:1@sbc.example");
        assert_eq!(s.verify(t0, "INVITE", &unknown), Verdict::Bad);
        assert_eq!(s.verify(t0, "INVITE", &known_wrong), Verdict::Bad);
        // The next challenge does not depend on who asked: byte-identical at the same instant,
        // and the same shape at any other.
        let t1 = t0 + Duration::from_millis(1234);
        assert_eq!(s.challenge(t1, false), s.challenge(t1, false));
        let (a, b) = (s.challenge(t0, false), s.challenge(t1, false));
        assert_eq!(a.len(), b.len());
        let names = |v: &str| -> Vec<String> {
            crate::trunk::digest::parse_digest_params(v)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names(&a), ["realm", "nonce", "opaque", "algorithm", "qop"]);
        assert_eq!(names(&a), names(&b));
        // Even an expired nonce from an unknown user is just Bad, never Stale.
        assert_eq!(s.verify(t0 + TTL * 2, "INVITE", &unknown), Verdict::Bad);
    }

    #[test]
    fn forged_foreign_and_future_nonces_are_bad() {
        let t0 = Instant::now();
        let s = server(t0);
        let ch = Challenge::parse(&s.challenge(t0, false)).unwrap();
        let mut forged = ch.nonce.clone();
        let last = if forged.ends_with('0') { '1' } else { '0' };
        forged.pop();
        forged.push(last);
        let forged_ch = s.challenge(t0, false).replace(&ch.nonce, &forged);
        let auth = answer(&forged_ch, "alice", "wonderland", "INVITE", "sip:1@x");
        assert_eq!(s.verify(t0, "INVITE", &auth), Verdict::Bad);

        let other = DigestServer::new("sbc.example", HashMap::new(), TTL, [8; 32], t0);
        let foreign =
            answer(&other.challenge(t0, false), "alice", "wonderland", "INVITE", "sip:1@x");
        assert_eq!(s.verify(t0, "INVITE", &foreign), Verdict::Bad, "other secret, other opaque");

        let future = s.challenge(t0 + Duration::from_secs(60), false);
        let auth = answer(&future, "alice", "wonderland", "INVITE", "sip:1@x");
        assert_eq!(s.verify(t0, "INVITE", &auth), Verdict::Bad);
    }

    #[test]
    fn mismatched_parameters_are_bad() {
        let t0 = Instant::now();
        let s = server(t0);
        let ch = s.challenge(t0, false);
        let auth = answer(&ch, "alice", "wonderland", "INVITE", "sip:1@x");
        assert_eq!(s.verify(t0, "INVITE", &auth), Verdict::Ok("alice".into()));
        let opaque = Challenge::parse(&ch).unwrap().opaque.unwrap();
        assert_eq!(
            s.verify(t0, "INVITE", &auth.replace(&opaque, "00000000deadbeef")),
            Verdict::Bad
        );
        assert_eq!(s.verify(t0, "INVITE", &auth.replace("qop=auth", "qop=auth-int")), Verdict::Bad);
        assert_eq!(s.verify(t0, "INVITE", &auth.replace(", nc=00000001", "")), Verdict::Bad);
        // A downgrade to another algorithm than the one challenged is refused.
        let sha = server(t0).with_algorithm(Algorithm::Sha256);
        let md5_answer = answer(
            &sha.challenge(t0, false).replace("SHA-256", "MD5"),
            "alice",
            "wonderland",
            "INVITE",
            "sip:1@x",
        );
        assert_eq!(sha.verify(t0, "INVITE", &md5_answer), Verdict::Bad);
        // Another realm is refused even with a valid nonce.
        let elsewhere = answer(
            &ch.replace("sbc.example", "evil.example"),
            "alice",
            "wonderland",
            "INVITE",
            "sip:1@x",
        );
        assert_eq!(s.verify(t0, "INVITE", &elsewhere), Verdict::Bad);
    }

    #[test]
    fn rfc_2069_answer_without_qop_is_accepted() {
        let t0 = Instant::now();
        let s = server(t0);
        let ch = s.challenge(t0, false).replace(", qop=\"auth\"", "");
        let auth = answer(&ch, "alice", "wonderland", "REGISTER", "sip:sbc.example");
        assert!(!auth.contains("qop="));
        assert_eq!(s.verify(t0, "REGISTER", &auth), Verdict::Ok("alice".into()));
    }

    #[test]
    fn garbage_is_bad_and_never_panics() {
        let t0 = Instant::now();
        let s = server(t0);
        let auth = answer(&s.challenge(t0, false), "alice", "wonderland", "INVITE", "sip:1@x");
        for end in 0..auth.len() {
            if let Some(prefix) = auth.get(..end) {
                assert_eq!(s.verify(t0, "INVITE", prefix), Verdict::Bad);
            }
        }
        for junk in ["", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Digest nonce=\"é\"", "Digest username=\"alice\", realm=\"sbc.example\", nonce=\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\", uri=\"x\", response=\"y\""] {
            assert_eq!(s.verify(t0, "INVITE", junk), Verdict::Bad);
        }
        assert!(!format!("{s:?}").contains("wonderland"));
    }
}
