//! HTTP Digest authentication as SIP uses it (RFC 2617, RFC 7616, RFC 8760): the parts the
//! trunk's client ([`crate::trunk::digest_client`]) and server ([`crate::trunk::digest_server`])
//! share — algorithms, the response computation, and the challenge/credentials header values.
//!
//! Only `qop=auth` (or no qop, RFC 2069 style) is spoken: `auth-int` would need the body hashed
//! into every request, and no trunk seen so far requires it.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use thiserror::Error;

/// A digest algorithm from the IANA "HTTP Digest Hash Algorithms" registry that we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the default when a challenge names none.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (RFC 7616, RFC 8760).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Reads an `algorithm=` token, case-insensitively (servers send `md5` as often as `MD5`).
    pub fn from_token(token: &str) -> Option<Self> {
        const ALL: [Algorithm; 6] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// The registry name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// True for the `-sess` variants, whose HA1 also covers the nonce and cnonce.
    pub fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess)
    }

    /// `H(data)` as lowercase hex.
    pub fn hex(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 | Self::Sha256Sess => hex::encode(Sha256::digest(data.as_bytes())),
            Self::Sha512_256 | Self::Sha512_256Sess => {
                hex::encode(Sha512_256::digest(data.as_bytes()))
            }
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a challenge or credentials value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// The scheme is not `Digest` (e.g. `Basic`), or the value is empty.
    #[error("not a Digest challenge or credentials")]
    NotDigest,
    /// The auth-param list does not follow `name=token-or-quoted-string, ...`.
    #[error("malformed Digest parameter list")]
    Malformed,
    /// A parameter the scheme requires is absent.
    #[error("Digest parameter {0} is missing")]
    Missing(&'static str),
    /// An `algorithm` we do not implement (e.g. `AKAv1-MD5`).
    #[error("unsupported Digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The challenge offers only qop values we do not speak (`auth-int`), or a `-sess`
    /// algorithm without any qop (its HA1 needs a cnonce, which only exists with a qop).
    #[error("unsupported Digest qop {0:?}")]
    UnsupportedQop(String),
}

/// Everything a response hash is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The username.
    pub username: &'a str,
    /// The realm.
    pub realm: &'a str,
    /// The password.
    pub password: &'a str,
    /// The server nonce.
    pub nonce: &'a str,
    /// The request method (`INVITE`, `ACK`, ...).
    pub method: &'a str,
    /// The `uri` parameter, which must be the Request-URI sent.
    pub uri: &'a str,
    /// `(nc, cnonce)` with `qop=auth`; `None` for the RFC 2069 form without qop.
    pub qop_auth: Option<(&'a str, &'a str)>,
}

/// The `response` value: `KD(HA1, nonce:nc:cnonce:qop:HA2)`, or `KD(HA1, nonce:HA2)` without a
/// qop (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).
pub fn compute_response(input: &ResponseInput<'_>) -> String {
    let alg = input.algorithm;
    let mut ha1 = alg.hex(&format!("{}:{}:{}", input.username, input.realm, input.password));
    if alg.is_session() {
        let cnonce = input.qop_auth.map(|(_, c)| c).unwrap_or_default();
        ha1 = alg.hex(&format!("{ha1}:{}:{cnonce}", input.nonce));
    }
    let ha2 = alg.hex(&format!("{}:{}", input.method, input.uri));
    match input.qop_auth {
        Some((nc, cnonce)) => alg.hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", input.nonce)),
        None => alg.hex(&format!("{ha1}:{}:{ha2}", input.nonce)),
    }
}

/// One parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space; credentials are kept per realm.
    pub realm: String,
    /// The server nonce.
    pub nonce: String,
    /// Returned unchanged in the credentials.
    pub opaque: Option<String>,
    /// `stale=true`: our previous credentials were right but the nonce expired.
    pub stale: bool,
    /// The algorithm (MD5 when the challenge names none).
    pub algorithm: Algorithm,
    /// The `algorithm` token as the server spelled it, echoed back so that a server comparing
    /// it byte for byte is satisfied.
    pub algorithm_token: Option<String>,
    /// The qop values offered, lowercased; empty when the challenge has no qop.
    pub qop: Vec<String>,
}

impl Challenge {
    /// Parses a challenge header value (`Digest realm="...", nonce="...", ...`).
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = parse_digest_params(value)?;
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let algorithm_token = get("algorithm");
        let algorithm = match &algorithm_token {
            Some(t) => Algorithm::from_token(t)
                .ok_or_else(|| DigestError::UnsupportedAlgorithm(t.clone()))?,
            None => Algorithm::Md5,
        };
        let qop = get("qop")
            .map(|q| {
                q.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            realm: get("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
            opaque: get("opaque"),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            algorithm,
            algorithm_token,
            qop,
        })
    }

    /// Whether to answer with `qop=auth` (`Some`) or without qop (`None`); an error when the
    /// offer leaves nothing we can answer.
    pub fn choose_qop(&self) -> Result<Option<Qop>, DigestError> {
        if self.qop.is_empty() {
            if self.algorithm.is_session() {
                return Err(DigestError::UnsupportedQop(String::new()));
            }
            return Ok(None);
        }
        if self.qop.iter().any(|q| q == "auth") {
            Ok(Some(Qop::Auth))
        } else {
            Err(DigestError::UnsupportedQop(self.qop.join(",")))
        }
    }

    /// The `algorithm` token to echo: the server's spelling, or the registry name.
    pub fn algorithm_echo(&self) -> &str {
        self.algorithm_token.as_deref().unwrap_or(self.algorithm.as_str())
    }
}

/// The qop we answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth`: method and URI are protected, the body is not.
    Auth,
}

/// `Authorization` / `Proxy-Authorization` Digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The realm answered.
    pub realm: String,
    /// The nonce answered.
    pub nonce: String,
    /// The Request-URI the hash covers.
    pub uri: String,
    /// The hex response.
    pub response: String,
    /// The algorithm token, as echoed.
    pub algorithm: Option<String>,
    /// The client nonce (with qop).
    pub cnonce: Option<String>,
    /// The server's opaque, echoed.
    pub opaque: Option<String>,
    /// The qop chosen (`auth`).
    pub qop: Option<String>,
    /// The nonce count, 8 hex digits (with qop).
    pub nc: Option<String>,
}

impl Credentials {
    /// Parses a credentials header value (`Digest username="...", ...`).
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = parse_digest_params(value)?;
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        Ok(Self {
            username: get("username").ok_or(DigestError::Missing("username"))?,
            realm: get("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
            uri: get("uri").ok_or(DigestError::Missing("uri"))?,
            response: get("response").ok_or(DigestError::Missing("response"))?,
            algorithm: get("algorithm"),
            cnonce: get("cnonce"),
            opaque: get("opaque"),
            qop: get("qop"),
            nc: get("nc"),
        })
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The order PJSIP, Linphone and the RFC examples use; quoting as RFC 7616 §3.4 wants
        // (algorithm, qop and nc are tokens, everything else quoted).
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response)
        )?;
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={}", token_or_quoted(a))?;
        }
        if let Some(c) = &self.cnonce {
            write!(f, ", cnonce={}", quote(c))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        if let Some(q) = &self.qop {
            write!(f, ", qop={}", token_or_quoted(q))?;
        }
        if let Some(n) = &self.nc {
            write!(f, ", nc={}", token_or_quoted(n))?;
        }
        Ok(())
    }
}

/// The auth-params of a `Digest` header value, names lowercased, values unquoted, in order.
pub fn parse_digest_params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let value = value.trim();
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let mut params = Vec::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            continue;
        }
        let name_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if name_end == 0 {
            return Err(DigestError::Malformed);
        }
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        rest = rest.strip_prefix('=').ok_or(DigestError::Malformed)?.trim_start();
        let (val, after) = if rest.starts_with('"') {
            read_quoted(rest)?
        } else {
            let end =
                rest.find(|c: char| c == ',' || c.is_ascii_whitespace()).unwrap_or(rest.len());
            if end == 0 {
                return Err(DigestError::Malformed);
            }
            (rest[..end].to_string(), &rest[end..])
        };
        params.push((name, val));
        rest = after.trim_start();
        if !rest.is_empty() {
            rest = rest.strip_prefix(',').ok_or(DigestError::Malformed)?.trim_start();
        }
    }
    Ok(params)
}

/// Reads a quoted-string at the start of `s`; returns its unescaped content and the rest.
fn read_quoted(s: &str) -> Result<(String, &str), DigestError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(DigestError::Malformed)
}

fn is_token_char(c: char) -> bool {
    // RFC 3261 token characters.
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn token_or_quoted(s: &str) -> String {
    if !s.is_empty() && s.chars().all(is_token_char) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// A quoted-string for `s`. Control characters become spaces: a quoted-pair cannot carry CR or
/// LF, and a configured username must never be able to end the header line.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// HMAC-SHA-256 (RFC 2104), for the server's stateless nonces.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equality whose time depends only on the lengths, so a response check leaks nothing about
/// how many leading characters were right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_section_3_5_example() {
        let response = compute_response(&ResponseInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            qop_auth: Some(("00000001", "0a4f113b")),
        });
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1 (password "Circle of Life", lowercase "of", per erratum 4495).
    fn rfc_7616_input(algorithm: Algorithm) -> ResponseInput<'static> {
        ResponseInput {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            method: "GET",
            uri: "/dir/index.html",
            qop_auth: Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        }
    }

    #[test]
    fn rfc_7616_section_3_9_1_sha_256_and_md5() {
        assert_eq!(
            compute_response(&rfc_7616_input(Algorithm::Sha256)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(
            compute_response(&rfc_7616_input(Algorithm::Md5)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn sha_256_without_qop_matches_curl_test_2061() {
        let response = compute_response(&ResponseInput {
            algorithm: Algorithm::Sha256,
            username: "testuser",
            realm: "testrealm",
            password: "testpass",
            nonce: "1053604145",
            method: "GET",
            uri: "/2061",
            qop_auth: None,
        });
        assert_eq!(response, "9dc55255f1a2537b838311674b621d45346b862a81631bb20e4ce356ef25062d");
    }

    #[test]
    fn md5_sess_follows_rfc_2617_ha1() {
        let input =
            ResponseInput { algorithm: Algorithm::Md5Sess, ..rfc_7616_input(Algorithm::Md5Sess) };
        // Spelled out independently of compute_response.
        let md5 = |s: String| hex::encode(Md5::digest(s.as_bytes()));
        let ha1 = md5(format!(
            "{}:{}:{}",
            md5("Mufasa:http-auth@example.org:Circle of Life".into()),
            input.nonce,
            input.qop_auth.unwrap().1
        ));
        let ha2 = md5("GET:/dir/index.html".into());
        let expected =
            md5(format!("{ha1}:{}:00000001:{}:auth:{ha2}", input.nonce, input.qop_auth.unwrap().1));
        assert_eq!(compute_response(&input), expected);
        assert_ne!(compute_response(&input), compute_response(&rfc_7616_input(Algorithm::Md5)));
    }

    #[test]
    fn parses_the_pjsip_dummy_challenge() {
        // ../shared/vectors/seed003/005: lowercase algorithm, opaque, quoted qop, no spaces.
        let c = Challenge::parse(
            r#"Digest realm="asterisk",nonce="1413305427/8dd1b7f56aba97da45754f7052d8a688",opaque="3b9c806b61adf911",algorithm=md5,qop="auth""#,
        )
        .unwrap();
        assert_eq!(c.realm, "asterisk");
        assert_eq!(c.nonce, "1413305427/8dd1b7f56aba97da45754f7052d8a688");
        assert_eq!(c.opaque.as_deref(), Some("3b9c806b61adf911"));
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.algorithm_echo(), "md5");
        assert!(!c.stale);
        assert_eq!(c.choose_qop(), Ok(Some(Qop::Auth)));
    }

    #[test]
    fn parses_other_challenge_shapes() {
        // seed001 (NEC): stale=false spelled out.
        let nec = Challenge::parse(
            r#"Digest realm="CygnusIPS.nec.co.jp", nonce="cdd234bb9ce8bdb1870339930c862133", opaque="f56a5772ab4fc6e06f0c566358840ee3", stale=false, algorithm=MD5, qop="auth""#,
        )
        .unwrap();
        assert!(!nec.stale);
        // seed002 d2_12 (CUCM): no qop, no opaque.
        let cucm = Challenge::parse(
            r#"Digest realm="ccmsipline", nonce="vP42jVSdIItGRD5nYmE71/4JD/ZYUQvL", algorithm=MD5"#,
        )
        .unwrap();
        assert_eq!(cucm.choose_qop(), Ok(None));
        assert_eq!(cucm.opaque, None);
        let both = Challenge::parse(
            r#"digest realm = "r\"q" , nonce="n", qop="auth-int, auth", stale=TRUE, algorithm="SHA-256""#,
        )
        .unwrap();
        assert_eq!(both.realm, "r\"q");
        assert!(both.stale);
        assert_eq!(both.algorithm, Algorithm::Sha256);
        assert_eq!(both.qop, ["auth-int", "auth"]);
        assert_eq!(both.choose_qop(), Ok(Some(Qop::Auth)));
        let no_alg = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        assert_eq!(no_alg.algorithm, Algorithm::Md5);
        assert_eq!(no_alg.algorithm_echo(), "MD5");
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        let only_int = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#).unwrap();
        assert_eq!(only_int.choose_qop(), Err(DigestError::UnsupportedQop("auth-int".into())));
        let sess_no_qop =
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=MD5-sess"#).unwrap();
        assert!(matches!(sess_no_qop.choose_qop(), Err(DigestError::UnsupportedQop(_))));
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=AKAv1-MD5"#),
            Err(DigestError::UnsupportedAlgorithm("AKAv1-MD5".into()))
        );
        assert_eq!(Challenge::parse(r#"Digest realm="r""#), Err(DigestError::Missing("nonce")));
        assert_eq!(Challenge::parse(r#"Basic realm="r""#), Err(DigestError::NotDigest));
        assert_eq!(Challenge::parse(""), Err(DigestError::NotDigest));
        assert_eq!(Challenge::parse(r#"Digest realm="r"#), Err(DigestError::Malformed));
        assert_eq!(Challenge::parse(r#"Digest realm"#), Err(DigestError::Malformed));
        assert_eq!(Challenge::parse(r#"Digest realm="a" nonce="b""#), Err(DigestError::Malformed));
        assert_eq!(Challenge::parse(r#"Digest realm=, nonce="b""#), Err(DigestError::Malformed));
    }

    #[test]
    fn credentials_round_trip_and_pjsip_vector_parses() {
        // ../shared/vectors/seed003/007.
        let v = r#"Digest username="200", realm="asterisk", nonce="1413305427/8dd1b7f56aba97da45754f7052d8a688", uri="sip:201@10.24.20.249", response="2da759314909af8507a59cd1b6bc0baa", algorithm=md5, cnonce="-me-qsYc.rGU-I5A6n-Dy8IhCBg9wKe8", opaque="3b9c806b61adf911", qop=auth, nc=00000001"#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "200");
        assert_eq!(c.uri, "sip:201@10.24.20.249");
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.to_string(), v, "we format exactly as PJSIP does");
        assert_eq!(Credentials::parse(&c.to_string()).unwrap(), c);
        // The vector's response is reproducible (the PBX user's password is its extension).
        let response = compute_response(&ResponseInput {
            algorithm: Algorithm::Md5,
            username: "200",
            realm: "asterisk",
            password: "200",
            nonce: &c.nonce,
            method: "INVITE",
            uri: &c.uri,
            qop_auth: Some(("00000001", "-me-qsYc.rGU-I5A6n-Dy8IhCBg9wKe8")),
        });
        assert_eq!(response, c.response);
        assert_eq!(
            Credentials::parse(r#"Digest username="u""#),
            Err(DigestError::Missing("realm"))
        );
    }

    #[test]
    fn quoting_escapes_and_strips_line_breaks() {
        assert_eq!(quote("a\"b\\c\r\nd"), r#""a\"b\\c  d""#);
    }

    #[test]
    fn algorithm_tokens() {
        for a in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ] {
            assert_eq!(Algorithm::from_token(&a.as_str().to_ascii_lowercase()), Some(a));
        }
        assert_eq!(Algorithm::from_token("SHA-512"), None);
        assert_eq!(Algorithm::Sha512_256.hex("").len(), 64);
    }

    #[test]
    fn hmac_sha256_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let v = r#"Digest username="200", realm="asterisk", nonce="1413305427/8dd", uri="sip:201@10.24.20.249", response="2da7", qop=auth, nc=00000001"#;
        for end in 0..=v.len() {
            if let Some(prefix) = v.get(..end) {
                let _ = Credentials::parse(prefix);
                let _ = Challenge::parse(prefix);
            }
        }
        for s in ["Digest é=\"x\"", "Digest a=\"\\", "Digest ,,,", "Digest =x", "\u{0}"] {
            let _ = Challenge::parse(s);
        }
    }
}
