//! What a message sent toward an untrusted zone may tell about what is behind sipborder.
//!
//! Headers the B2BUA copies across legs can carry product names and versions (`User-Agent:
//! Asterisk PBX 18.10.0`, `Server: FPBX-16`) and diagnostics (`Warning: 399 pbx.lan "..."`,
//! with an internal host name). Toward a zone that is not `trusted` those are the first thing a
//! scanner fingerprints, so [`scrub`] rewrites the serialized message at the last moment before
//! it leaves: every path that sends (relayed, answered locally, retransmitted) passes there, so
//! no path can forget it. Addresses are not handled here: topology hiding already rewrites
//! Via, Contact, Record-Route and SDP per leg.
//!
//! `Server`, `User-Agent` and `Warning` have no compact forms (RFC 3261 §7.3.3), and the
//! serializer never folds lines, so a line-by-line pass over the head is exact.

use serde::Deserialize;

/// Headers toward untrusted zones (YAML `security.disclosure`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisclosureConfig {
    /// Value written over any `Server` header toward an untrusted zone; empty (the default)
    /// removes the header.
    pub server: String,
    /// Value written over any `User-Agent` header toward an untrusted zone; empty (the
    /// default) removes the header.
    pub user_agent: String,
    /// Remove `Warning` headers toward untrusted zones (default true).
    pub strip_warning: bool,
}

impl Default for DisclosureConfig {
    fn default() -> Self {
        DisclosureConfig { server: String::new(), user_agent: String::new(), strip_warning: true }
    }
}

/// Longest accepted replacement value: a product token, not an essay.
pub const MAX_VALUE_LEN: usize = 128;

impl DisclosureConfig {
    /// What is wrong with a configured replacement value, if anything (it goes on the wire
    /// verbatim, so it must be one printable header line).
    pub fn value_problem(value: &str) -> Option<String> {
        if value.len() > MAX_VALUE_LEN {
            return Some(format!("value is {} bytes; at most {MAX_VALUE_LEN}", value.len()));
        }
        if value.chars().any(|c| c.is_control()) {
            return Some("value must be one printable line (no control characters)".into());
        }
        None
    }
}

/// How one header line is treated.
enum Action<'a> {
    Keep,
    Drop,
    Replace(&'a str, &'a str),
}

fn action<'a>(cfg: &'a DisclosureConfig, name: &str) -> Action<'a> {
    let replace_or_drop = |canonical: &'a str, value: &'a str| {
        if value.is_empty() {
            Action::Drop
        } else {
            Action::Replace(canonical, value)
        }
    };
    if name.eq_ignore_ascii_case("server") {
        replace_or_drop("Server", &cfg.server)
    } else if name.eq_ignore_ascii_case("user-agent") {
        replace_or_drop("User-Agent", &cfg.user_agent)
    } else if name.eq_ignore_ascii_case("warning") && cfg.strip_warning {
        Action::Drop
    } else {
        Action::Keep
    }
}

/// The message `bytes` with `Server`, `User-Agent` and `Warning` treated as `cfg` says, or
/// `None` when nothing had to change (or `bytes` is not a SIP message: a keepalive, STUN).
/// The body is copied untouched; Content-Length stays right since only the head changes.
pub fn scrub(bytes: &[u8], cfg: &DisclosureConfig) -> Option<Vec<u8>> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    // The head with the CRLF of its last line; the blank line and the body follow untouched.
    let (head, rest) = bytes.split_at(head_end + 2);
    let mut lines = head.split_inclusive(|b| *b == b'\n');
    let start = lines.next()?;
    let treat = |line: &[u8]| {
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        let name = std::str::from_utf8(name).unwrap_or_default().trim();
        match action(cfg, name) {
            // Already the configured value: leave the line (and possibly the message) alone.
            Action::Replace(_, v) if value.trim_ascii() == v.as_bytes() => Action::Keep,
            a => a,
        }
    };
    // Look before allocating: most messages carry nothing to remove.
    if !lines.clone().any(|l| !matches!(treat(l), Action::Keep)) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(start);
    for line in lines {
        match treat(line) {
            Action::Keep => out.extend_from_slice(line),
            Action::Drop => {}
            Action::Replace(canonical, value) => {
                out.extend_from_slice(canonical.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKx\r\nServer: FPBX-16.0.40(18.10.0)\r\nWarning: 399 pbx.internal.lan \"all lines busy\"\r\nwarning: 399 other \"x\"\r\nContent-Length: 4\r\n\r\nbody";

    fn text(v: Option<Vec<u8>>) -> String {
        String::from_utf8(v.expect("rewritten")).expect("utf8")
    }

    #[test]
    fn defaults_remove_product_headers_and_warnings() {
        let out = text(scrub(RESPONSE.as_bytes(), &DisclosureConfig::default()));
        assert_eq!(
            out,
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKx\r\nContent-Length: 4\r\n\r\nbody"
        );
        let req = "INVITE sip:1@x SIP/2.0\r\nUser-Agent: Asterisk PBX 18.10.0\r\nContent-Length: 0\r\n\r\n";
        let out = text(scrub(req.as_bytes(), &DisclosureConfig::default()));
        assert_eq!(out, "INVITE sip:1@x SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn configured_values_replace_and_warnings_can_stay() {
        let cfg = DisclosureConfig {
            server: "sbc".into(),
            user_agent: "sbc".into(),
            strip_warning: false,
        };
        let out = text(scrub(RESPONSE.as_bytes(), &cfg));
        assert!(out.contains("\r\nServer: sbc\r\n"), "{out}");
        assert!(!out.contains("FPBX"), "{out}");
        assert!(out.contains("Warning: 399 pbx.internal.lan"), "{out}");
        assert!(out.ends_with("\r\n\r\nbody"));
        // Already the configured value: nothing to do, no copy.
        let done = "SIP/2.0 200 OK\r\nServer: sbc\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(scrub(done.as_bytes(), &cfg), None);
    }

    #[test]
    fn clean_messages_and_non_sip_bytes_are_left_alone() {
        let clean = "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(scrub(clean.as_bytes(), &DisclosureConfig::default()), None);
        assert_eq!(scrub(b"\r\n", &DisclosureConfig::default()), None);
        assert_eq!(scrub(&[0u8, 1, 0, 8, 0x21, 0x12], &DisclosureConfig::default()), None);
        // A body that looks like headers is not touched.
        let body = "MESSAGE sip:x SIP/2.0\r\nContent-Length: 22\r\n\r\nUser-Agent: not a head";
        assert_eq!(scrub(body.as_bytes(), &DisclosureConfig::default()), None);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(DisclosureConfig::value_problem("sipborder").is_none());
        assert!(DisclosureConfig::value_problem("a\r\nX-Injected: 1").is_some());
        assert!(DisclosureConfig::value_problem(&"x".repeat(200)).is_some());
    }
}
