//! The Reason header (RFC 3326), in requests (BYE, CANCEL) and in responses (RFC 6432):
//! `Reason: Q.850;cause=17;text="User busy", SIP;cause=486`.
//!
//! Parsing accepts several comma-separated values in one header and several headers; each value
//! is a protocol (`SIP`, `Q.850` or any token), a `cause`, an optional quoted `text` and any
//! other parameters (RFC 8606's `location`). Formatting quotes and escapes the text so that a
//! Reason passed on from one side can never inject header lines into the other.

use std::fmt;

use thiserror::Error;

use crate::policy::causes::{known_cause_text, CauseLocation};

/// The protocol a Reason value speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReasonProtocol {
    /// `SIP`: the cause is a SIP status code.
    Sip,
    /// `Q.850`: the cause is an ISDN/ISUP cause value.
    Q850,
    /// Any other protocol token, kept as received.
    Other(String),
}

impl ReasonProtocol {
    fn parse(token: &str) -> Self {
        if token.eq_ignore_ascii_case("SIP") {
            Self::Sip
        } else if token.eq_ignore_ascii_case("Q.850") {
            Self::Q850
        } else {
            Self::Other(token.to_string())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Sip => "SIP",
            Self::Q850 => "Q.850",
            Self::Other(t) => t,
        }
    }
}

/// One reason-value of a Reason header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// Which protocol `cause` belongs to.
    pub protocol: ReasonProtocol,
    /// The `cause` parameter, if present and numeric.
    pub cause: Option<u16>,
    /// The `text` parameter, unquoted and unescaped.
    pub text: Option<String>,
    /// Every other parameter in order, names as received, values unquoted.
    pub params: Vec<(String, Option<String>)>,
}

/// Why a Reason header value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReasonError {
    /// A reason-value has no protocol token (`;cause=16`, or an empty element).
    #[error("Reason value without a protocol")]
    MissingProtocol,
    /// A protocol or parameter name holds characters a token may not.
    #[error("invalid token {0:?} in Reason")]
    BadToken(String),
    /// The `cause` parameter is not a number.
    #[error("Reason cause {0:?} is not a number")]
    BadCause(String),
    /// A quoted-string is not closed.
    #[error("unterminated quoted-string in Reason")]
    Unterminated,
}

impl Reason {
    /// A `Q.850;cause=N;text="..."` value with the standard Q.850 text (none for a cause Q.850
    /// does not define).
    pub fn q850(cause: u8) -> Self {
        Self {
            protocol: ReasonProtocol::Q850,
            cause: Some(u16::from(cause)),
            text: known_cause_text(cause).map(str::to_string),
            params: Vec::new(),
        }
    }

    /// A `SIP;cause=N;text="..."` value.
    pub fn sip(code: u16, text: Option<&str>) -> Self {
        Self {
            protocol: ReasonProtocol::Sip,
            cause: Some(code),
            text: text.map(str::to_string),
            params: Vec::new(),
        }
    }

    /// The cause when this is a Q.850 value with a cause in the Q.850 range (1–127).
    pub fn q850_cause(&self) -> Option<u8> {
        if self.protocol != ReasonProtocol::Q850 {
            return None;
        }
        self.cause.and_then(|c| u8::try_from(c).ok()).filter(|c| (1..=127).contains(c))
    }

    /// The RFC 8606 `location` parameter read as RFC 3398 needs it: `U` is the user, any other
    /// value a network; `None` when absent.
    pub fn location(&self) -> Option<CauseLocation> {
        let (_, value) = self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case("location"))?;
        let value = value.as_deref()?;
        Some(if value.eq_ignore_ascii_case("U") {
            CauseLocation::User
        } else {
            CauseLocation::Network
        })
    }

    /// Parses one Reason header value, which may hold several comma-separated reason-values.
    /// An empty value gives an empty list.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, ReasonError> {
        let elements = split_outside_quotes(value, ',')?;
        if elements.len() == 1 && elements[0].trim().is_empty() {
            return Ok(Vec::new());
        }
        elements.into_iter().map(Self::parse_one).collect()
    }

    fn parse_one(element: &str) -> Result<Self, ReasonError> {
        let mut parts = split_outside_quotes(element, ';')?.into_iter();
        let protocol = parts.next().map(str::trim).unwrap_or_default();
        if protocol.is_empty() {
            return Err(ReasonError::MissingProtocol);
        }
        check_token(protocol)?;
        let mut reason = Self {
            protocol: ReasonProtocol::parse(protocol),
            cause: None,
            text: None,
            params: Vec::new(),
        };
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
                None => (param.trim(), None),
            };
            if name.is_empty() {
                continue; // a stray ';' carries nothing
            }
            check_token(name)?;
            if name.eq_ignore_ascii_case("cause") {
                let v = value.unwrap_or_default();
                reason.cause = Some(v.parse().map_err(|_| ReasonError::BadCause(v))?);
            } else if name.eq_ignore_ascii_case("text") {
                reason.text = value;
            } else {
                reason.params.push((name.to_string(), value));
            }
        }
        Ok(reason)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.as_str())?;
        if let Some(cause) = self.cause {
            write!(f, ";cause={cause}")?;
        }
        if let Some(text) = &self.text {
            write!(f, ";text={}", quote(text))?;
        }
        for (name, value) in &self.params {
            match value {
                Some(v) if is_token(v) => write!(f, ";{name}={v}")?,
                Some(v) => write!(f, ";{name}={}", quote(v))?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// Every reason-value of several Reason header values (one per header line), in order. A value
/// that does not parse is skipped: a peer's malformed Reason must not fail the call.
pub fn parse_reason_headers<'a, I>(values: I) -> Vec<Reason>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut out = Vec::new();
    for value in values {
        let Ok(elements) = split_outside_quotes(value, ',') else { continue };
        out.extend(elements.into_iter().filter_map(|e| Reason::parse_one(e).ok()));
    }
    out
}

/// One Reason header value for `reasons`, keeping only the first value of each protocol
/// (RFC 3326 §2: at most one reason-value per protocol in a message).
pub fn format_reasons(reasons: &[Reason]) -> String {
    let mut seen: Vec<&ReasonProtocol> = Vec::new();
    let mut out = String::new();
    for r in reasons {
        if seen.contains(&&r.protocol) {
            continue;
        }
        seen.push(&r.protocol);
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&r.to_string());
    }
    out
}

fn is_token_char(c: char) -> bool {
    // RFC 3261 token characters.
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn check_token(s: &str) -> Result<(), ReasonError> {
    if is_token(s) {
        Ok(())
    } else {
        Err(ReasonError::BadToken(s.to_string()))
    }
}

/// A quoted-string for `s`: `"` and `\` escaped, control characters (CR, LF, ...) replaced by
/// spaces because a quoted-pair cannot carry them and they would end the header line.
fn quote(s: &str) -> String {
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

/// The content of a quoted-string with its escapes undone, or `s` itself when not quoted.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return s.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits at `sep` outside quoted-strings; an unclosed quote is an error.
fn split_outside_quotes(s: &str, sep: char) -> Result<Vec<&str>, ReasonError> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, ch) in s.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return Err(ReasonError::Unterminated);
    }
    parts.push(&s[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_3326_example() {
        let r = Reason::parse_list(r#"Q.850;cause=17;text="User busy""#).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].protocol, ReasonProtocol::Q850);
        assert_eq!(r[0].cause, Some(17));
        assert_eq!(r[0].text.as_deref(), Some("User busy"));
        assert_eq!(r[0].q850_cause(), Some(17));
    }

    #[test]
    fn parses_several_values_in_one_header() {
        let v = r#"SIP ;cause=200 ;text="Call completed elsewhere", Q.850;cause=26;text="a, b; c""#;
        let r = Reason::parse_list(v).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].protocol, ReasonProtocol::Sip);
        assert_eq!(r[0].cause, Some(200));
        assert_eq!(r[0].text.as_deref(), Some("Call completed elsewhere"));
        assert_eq!(r[0].q850_cause(), None, "a SIP cause is not a Q.850 cause");
        assert_eq!(r[1].q850_cause(), Some(26));
        assert_eq!(r[1].text.as_deref(), Some("a, b; c"));
    }

    #[test]
    fn parses_several_headers_and_skips_bad_ones() {
        let headers = [
            "SIP;cause=480;text=\"Temporarily Unavailable\"",
            "Q.850;cause=oops",
            "q.850 ; CAUSE=34 ; location=LN ; x-flag",
            "\"unterminated",
            "",
        ];
        let r = parse_reason_headers(headers);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].cause, Some(480));
        assert_eq!(r[1].protocol, ReasonProtocol::Q850);
        assert_eq!(r[1].q850_cause(), Some(34));
        assert_eq!(r[1].location(), Some(CauseLocation::Network));
        assert_eq!(r[1].params[1], ("x-flag".to_string(), None));
    }

    #[test]
    fn rfc_6432_response_reason_and_rfc_8606_location() {
        let r = Reason::parse_list("Q.850;cause=21;location=U").unwrap();
        assert_eq!(r[0].location(), Some(CauseLocation::User));
        assert_eq!(Reason::q850(17).location(), None);
    }

    #[test]
    fn strict_parse_errors() {
        assert_eq!(Reason::parse_list("").unwrap(), Vec::new());
        assert_eq!(Reason::parse_list(";cause=16"), Err(ReasonError::MissingProtocol));
        assert_eq!(Reason::parse_list("Q.850;cause=16,"), Err(ReasonError::MissingProtocol));
        assert_eq!(Reason::parse_list("Q.850;cause=x"), Err(ReasonError::BadCause("x".into())));
        assert_eq!(
            Reason::parse_list("Q.850;cause=99999"),
            Err(ReasonError::BadCause("99999".into()))
        );
        assert_eq!(Reason::parse_list("Q.850;text=\"x"), Err(ReasonError::Unterminated));
        assert!(matches!(Reason::parse_list("Q 850;cause=1"), Err(ReasonError::BadToken(_))));
    }

    #[test]
    fn q850_cause_must_be_a_q850_value() {
        assert_eq!(Reason::parse_list("Q.850;cause=0").unwrap()[0].q850_cause(), None);
        assert_eq!(Reason::parse_list("Q.850;cause=128").unwrap()[0].q850_cause(), None);
        assert_eq!(Reason::parse_list("Q.850").unwrap()[0].q850_cause(), None);
        assert_eq!(Reason::parse_list("Q.850;cause=127").unwrap()[0].q850_cause(), Some(127));
    }

    #[test]
    fn formats_with_standard_text() {
        assert_eq!(Reason::q850(16).to_string(), r#"Q.850;cause=16;text="Normal call clearing""#);
        assert_eq!(Reason::q850(17).to_string(), r#"Q.850;cause=17;text="User busy""#);
        assert_eq!(Reason::q850(24).to_string(), "Q.850;cause=24");
        assert_eq!(Reason::sip(480, None).to_string(), "SIP;cause=480");
    }

    #[test]
    fn format_escapes_and_cannot_inject_lines() {
        let mut r = Reason::sip(603, Some("say \"no\" \\ now\r\nVia: evil"));
        r.params.push(("location".into(), Some("LN".into())));
        r.params.push(("x".into(), Some("a b".into())));
        let s = r.to_string();
        assert_eq!(s, r#"SIP;cause=603;text="say \"no\" \\ now  Via: evil";location=LN;x="a b""#);
        assert!(!s.contains('\r') && !s.contains('\n'));
        let back = Reason::parse_list(&s).unwrap();
        assert_eq!(back[0].text.as_deref(), Some("say \"no\" \\ now  Via: evil"));
        assert_eq!(back[0].params, r.params);
    }

    #[test]
    fn round_trip_and_one_value_per_protocol() {
        let reasons = vec![Reason::q850(17), Reason::sip(486, Some("Busy Here")), Reason::q850(31)];
        let s = format_reasons(&reasons);
        assert_eq!(s, r#"Q.850;cause=17;text="User busy", SIP;cause=486;text="Busy Here""#);
        assert_eq!(Reason::parse_list(&s).unwrap(), reasons[..2].to_vec());
        assert_eq!(format_reasons(&[]), "");
    }

    #[test]
    fn garbage_never_panics() {
        let samples =
            ["\"", "\\", ";;;", ",,,", "Q.850;cause=", "Q.850;=3", "é;cause=1", "a;b=\"\\"];
        for s in samples {
            let _ = Reason::parse_list(s);
            let _ = parse_reason_headers([s]);
        }
        let full = r#"Q.850;cause=17;text="User \"busy\"", SIP;cause=486"#;
        for end in 0..=full.len() {
            if let Some(prefix) = full.get(..end) {
                let _ = Reason::parse_list(prefix);
            }
        }
    }
}
