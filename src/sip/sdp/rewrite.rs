//! Media anchoring rewrite: the body one leg sends, as the other leg must see it.
//!
//! sipborder owns `o=`, `c=`, the `m=` port, `a=rtcp` and the ICE attributes; it writes those from
//! the [`RewritePlan`] and copies every other line byte for byte, in order. As a safety net, any
//! copied line that still names one of the endpoint's addresses is dropped, so that a private
//! address in an attribute sipborder does not know cannot reach the trunk.

use std::io::Write as _;
use std::net::IpAddr;

use super::parse::{find_byte, LineKind, MediaSection, SessionDescription};

/// What the other leg must see: sipborder's `o=` identity and address, and per `m=` section the
/// relay ports and ICE-lite credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewritePlan<'a> {
    /// `o=` username of sipborder's identity on this leg.
    pub username: &'a str,
    /// `o=` session id, stable for the leg.
    pub sess_id: u64,
    /// `o=` session version, which the caller increments whenever this leg's SDP changes.
    pub sess_version: u64,
    /// sipborder's media address on this leg, for `o=`, `c=` and `a=rtcp`.
    pub address: IpAddr,
    /// One entry per `m=` section, in order; sections without an entry are treated as
    /// [`MediaPlan::KEEP`].
    pub media: &'a [MediaPlan<'a>],
}

/// The rewrite of one `m=` section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaPlan<'a> {
    /// Relay RTP port for the `m=` line; `None` keeps the line as it is. A rejected section
    /// (port 0) keeps port 0 whatever this says.
    pub port: Option<u16>,
    /// What becomes of `a=rtcp`.
    pub rtcp: RtcpPlan,
    /// ICE-lite credentials toward an endpoint that offered ICE; `None` removes every ICE line.
    pub ice: Option<IceLitePlan<'a>>,
    /// What becomes of RFC 4733 `telephone-event`.
    pub events: EventPlan,
}

impl MediaPlan<'_> {
    /// Keeps the `m=` port and the `a=rtcp` port, removes ICE: what sections beyond the plan get.
    pub const KEEP: MediaPlan<'static> =
        MediaPlan { port: None, rtcp: RtcpPlan::KeepPort, ice: None, events: EventPlan::Keep };
}

/// The rewrite of `telephone-event` in one section: sipborder negotiates it on a leg's behalf
/// when it converts DTMF for that leg (`trunks[].dtmf`), and takes it out of what the leg that
/// never offered it gets back (RFC 3264 §6.1: an answer lists only offered formats). A
/// rejected or non-RTP section is never changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventPlan {
    /// As the section has it.
    #[default]
    Keep,
    /// Appends this payload type to the `m=` formats with `a=rtpmap:<pt> telephone-event/<clock>`
    /// and `a=fmtp:<pt> 0-16`; nothing when the section already uses the number.
    Add {
        /// The payload type.
        payload_type: u8,
        /// Its RTP clock rate (the audio's, RFC 4733 §2.1).
        clock_rate: u32,
    },
    /// Removes every telephone-event format with its `a=rtpmap`, `a=fmtp` and `a=rtcp-fb`;
    /// nothing when no other format would be left on the `m=` line.
    Strip,
}

/// Payload types 0–127 as a bit set, for the formats a rewrite takes out.
#[derive(Clone, Copy, Debug, Default)]
struct Pts(u128);

impl Pts {
    fn contains(self, pt: u8) -> bool {
        pt < 128 && self.0 & (1u128 << pt) != 0
    }
}

/// What the rewrite of one section does with telephone-event, settled against the section.
#[derive(Clone, Copy, Debug)]
enum Events {
    Keep,
    Add(u8, u32),
    Strip(Pts),
}

fn settle_events(m: &MediaSection<'_>, plan: EventPlan) -> Events {
    if m.is_rejected() || !m.is_rtp() {
        return Events::Keep;
    }
    match plan {
        EventPlan::Keep => Events::Keep,
        EventPlan::Add { payload_type: pt, clock_rate } => {
            let used = pt >= 128
                || m.payload_types().any(|p| p == pt)
                || m.rtpmaps.iter().any(|r| r.payload_type == pt);
            if used {
                Events::Keep
            } else {
                Events::Add(pt, clock_rate)
            }
        }
        EventPlan::Strip => {
            let mut te = Pts::default();
            for r in &m.rtpmaps {
                if r.payload_type < 128 && r.encoding.eq_ignore_ascii_case("telephone-event") {
                    te.0 |= 1u128 << r.payload_type;
                }
            }
            let others = m.fmts().any(|f| parse_fmt(f).is_none_or(|pt| !te.contains(pt)));
            if te.0 == 0 || !others {
                Events::Keep
            } else {
                Events::Strip(te)
            }
        }
    }
}

impl Events {
    fn changes(self) -> bool {
        !matches!(self, Events::Keep)
    }
}

fn parse_fmt(f: &str) -> Option<u8> {
    super::parse::parse_digits::<u8>(f)
}

/// The format list of an `m=` line (the text after the proto token) with `events` applied.
fn write_formats(out: &mut Out, m: &MediaSection<'_>, rest: &[u8], events: Events) {
    match events {
        Events::Keep => out.push(rest),
        Events::Add(pt, _) => {
            out.push(rest);
            out.push(b" ");
            out.push_u64(pt.into());
        }
        Events::Strip(te) => {
            for f in m.fmts() {
                if parse_fmt(f).is_some_and(|pt| te.contains(pt)) {
                    continue;
                }
                out.push(b" ");
                out.push(f.as_bytes());
            }
        }
    }
}

/// The rewrite of `a=rtcp` in one section. Whatever the choice, an address in `a=rtcp` becomes
/// the plan's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtcpPlan {
    /// Keep the port of an existing `a=rtcp`.
    #[default]
    KeepPort,
    /// RTCP on this relay port. An existing `a=rtcp` is rewritten; a missing one is added when
    /// the port is not the RTP port + 1 that the endpoint would otherwise assume (RFC 3605).
    Port(u16),
    /// RTCP multiplexed on the RTP port (RFC 5761): `a=rtcp` is removed.
    MuxOnly,
}

/// sipborder's ICE-lite identity for one section (RFC 8445 §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IceLitePlan<'a> {
    /// Our `a=ice-ufrag`.
    pub ufrag: &'a str,
    /// Our `a=ice-pwd`.
    pub pwd: &'a str,
    /// Candidate values written as `a=candidate:<value>`, e.g.
    /// `1 1 UDP 2130706431 203.0.113.5 40000 typ host`; the caller formats them.
    pub candidates: &'a [&'a str],
}

/// The rewritten body and what the safety net took out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteOutput {
    /// The body for the other leg.
    pub body: Vec<u8>,
    /// Copied lines dropped (or, for `s=`, blanked to `s=-`) because they named an endpoint
    /// address. Non-zero is worth a log line: some endpoint hides its address somewhere new.
    pub dropped_lines: usize,
}

/// Output buffer that writes lines and repairs a missing line ending when something follows the
/// body's unterminated last line.
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    eol: &'static [u8],
    open: bool,
}

impl Out {
    pub(crate) fn new(capacity: usize, eol: &'static [u8]) -> Self {
        Out { buf: Vec::with_capacity(capacity), eol, open: false }
    }

    /// Starts a line, terminating the previous one if it had no ending.
    pub(crate) fn start(&mut self) {
        if self.open {
            self.buf.extend_from_slice(self.eol);
            self.open = false;
        }
    }

    /// Ends a line with `eol` (empty for an unterminated last line).
    pub(crate) fn end(&mut self, eol: &[u8]) {
        self.buf.extend_from_slice(eol);
        self.open = eol.is_empty();
    }

    /// A whole line as it was.
    pub(crate) fn line(&mut self, text: &[u8], eol: &[u8]) {
        self.start();
        self.buf.extend_from_slice(text);
        self.end(eol);
    }

    /// A line sipborder adds, ended in the body's style.
    fn added(&mut self, parts: &[&[u8]]) {
        self.start();
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.extend_from_slice(self.eol);
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn push_u64(&mut self, mut n: u64) {
        // Hand-rolled: core::fmt costs more than the rest of an o= line.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
            at -= 1;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(digits.get(at..).unwrap_or_default());
    }

    /// A caller-supplied value that must stay one token: whitespace and line breaks would
    /// otherwise inject fields or whole lines.
    fn push_token(&mut self, s: &str) {
        let before = self.buf.len();
        self.buf.extend(s.bytes().filter(|b| !b.is_ascii_whitespace()));
        if self.buf.len() == before {
            self.buf.push(b'-');
        }
    }

    /// A caller-supplied value that must stay on one line.
    fn push_line_value(&mut self, s: &str) {
        self.buf.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
    }
}

/// An IP address formatted once on the stack.
struct AddrText {
    buf: [u8; 48],
    len: usize,
}

impl AddrText {
    fn new(ip: IpAddr) -> Self {
        let mut buf = [0u8; 48];
        let mut rest = &mut buf[..];
        match ip {
            // By hand for the common case: core::fmt costs as much as the rest of the rewrite.
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    let (h, t, u) = (octet / 100, octet / 10 % 10, octet % 10);
                    let digits = [b'0' + h, b'0' + t, b'0' + u];
                    let skip = if h > 0 {
                        0
                    } else if t > 0 {
                        1
                    } else {
                        2
                    };
                    let dot: &[u8] = if i < 3 { b"." } else { b"" };
                    let _ = rest.write_all(digits.get(skip..).unwrap_or_default());
                    let _ = rest.write_all(dot);
                }
            }
            // The longest IPv6 text is 45 bytes, so this cannot run out of room.
            IpAddr::V6(_) => {
                let _ = write!(rest, "{ip}");
            }
        }
        let len = 48 - rest.len();
        AddrText { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Whether `hay` contains `needle`, ASCII case-insensitively.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    // Every address has a '.' or ':', and few copied lines do: scanning for that byte first
    // makes the common miss a single pass over the line.
    let Some(k) = needle.iter().position(|&b| b == b'.' || b == b':') else {
        return needle.is_empty()
            || hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    };
    let Some(&anchor) = needle.get(k) else { return false };
    let mut from = k;
    while let Some(found) = hay.get(from..).and_then(|h| find_byte(h, anchor)) {
        let at = from + found - k;
        if hay.get(at..at + needle.len()).is_some_and(|w| w.eq_ignore_ascii_case(needle)) {
            return true;
        }
        from += found + 1;
    }
    false
}

fn addrtype_of(ip: IpAddr) -> &'static [u8] {
    if ip.is_ipv4() {
        b"IP4"
    } else {
        b"IP6"
    }
}

impl SessionDescription<'_> {
    /// Writes this body as the other leg must see it (see the module documentation).
    ///
    /// A legacy hold `c=` (0.0.0.0) stays a hold; a rejected `m=` stays at port 0 and gets no
    /// ICE; `a=ice-lite` goes at session level when any section gets ICE credentials.
    pub fn rewrite(&self, plan: &RewritePlan<'_>) -> RewriteOutput {
        let addr = AddrText::new(plan.address);
        let addr = addr.as_bytes();
        let addrtype = addrtype_of(plan.address);
        let plan_for = |s: usize| plan.media.get(s).unwrap_or(&MediaPlan::KEEP);
        let ice_for = |s: usize, m: &MediaSection<'_>| plan_for(s).ice.filter(|_| !m.is_rejected());
        let any_ice = self.media.iter().enumerate().any(|(s, m)| ice_for(s, m).is_some());
        let extra: usize = plan
            .media
            .iter()
            .filter_map(|p| p.ice)
            .map(|i| {
                80 + i.ufrag.len()
                    + i.pwd.len()
                    + i.candidates.iter().map(|c| c.len() + 16).sum::<usize>()
            })
            .sum();
        let leaks = |text: &[u8]| {
            self.endpoint_addresses.iter().any(|a| {
                let a = a.as_bytes();
                !a.eq_ignore_ascii_case(addr) && contains_ignore_case(text, a)
            })
        };

        let events: Vec<Events> = self
            .media
            .iter()
            .enumerate()
            .map(|(s, m)| settle_events(m, plan_for(s).events))
            .collect();
        let mut out = Out::new(self.body_len + 64 + extra, self.line_ending.bytes());
        let mut dropped = 0;
        let mut section: Option<usize> = None;
        for (i, line) in self.lines.iter().enumerate() {
            if line.kind == LineKind::Media {
                section = Some(section.map_or(0, |s| s + 1));
            }
            let m = section.and_then(|s| self.media.get(s));
            let mp = section.map_or(&MediaPlan::KEEP, plan_for);
            match line.kind {
                LineKind::Blank => out.line(line.text, line.eol),
                LineKind::Origin => {
                    out.start();
                    out.push(b"o=");
                    out.push_token(plan.username);
                    out.push(b" ");
                    out.push_u64(plan.sess_id);
                    out.push(b" ");
                    out.push_u64(plan.sess_version);
                    out.push(b" IN ");
                    out.push(addrtype);
                    out.push(b" ");
                    out.push(addr);
                    out.end(line.eol);
                }
                LineKind::Connection { hold: Some(unspecified) } => {
                    // Written afresh rather than copied: the copy could carry anything in its
                    // nettype or a /ttl suffix.
                    out.start();
                    out.push(b"c=IN ");
                    out.push(addrtype_of(unspecified));
                    out.push(b" ");
                    out.push(AddrText::new(unspecified).as_bytes());
                    out.end(line.eol);
                }
                LineKind::Connection { hold: None } => {
                    out.start();
                    out.push(b"c=IN ");
                    out.push(addrtype);
                    out.push(b" ");
                    out.push(addr);
                    out.end(line.eol);
                }
                LineKind::Media => {
                    let port = m.filter(|m| !m.is_rejected()).and(mp.port);
                    let ev = section.and_then(|s| events.get(s)).copied().unwrap_or(Events::Keep);
                    if leaks(line.text) {
                        dropped += 1;
                        write_media_without_leaks(
                            &mut out, line.text, line.eol, m, port, ev, &leaks,
                        );
                    } else if let Some(m) = m.filter(|_| port.is_some() || ev.changes()) {
                        out.start();
                        let text = line.text;
                        match port {
                            Some(port) => {
                                out.push(text.get(..m.port_span.start).unwrap_or_default());
                                out.push_u64(port.into());
                                out.push(
                                    text.get(m.port_span.end..m.proto_end).unwrap_or_default(),
                                );
                            }
                            None => out.push(text.get(..m.proto_end).unwrap_or_default()),
                        }
                        let rest = text.get(m.proto_end..).unwrap_or_default();
                        write_formats(&mut out, m, rest, ev);
                        out.end(line.eol);
                    } else {
                        out.line(line.text, line.eol);
                    }
                }
                LineKind::Rtcp { port, has_address } => {
                    let port = match mp.rtcp {
                        RtcpPlan::MuxOnly => None,
                        RtcpPlan::Port(p) => Some(p),
                        RtcpPlan::KeepPort => Some(port),
                    };
                    match port {
                        None => {}
                        Some(p) if has_address || mp.rtcp != RtcpPlan::KeepPort => {
                            out.start();
                            write_rtcp(&mut out, p, addrtype, addr);
                            out.end(line.eol);
                        }
                        // No address and the same port: nothing to change, keep the bytes.
                        Some(_) => out.line(line.text, line.eol),
                    }
                }
                LineKind::Ice => {}
                LineKind::SessionName if leaks(line.text) => {
                    // s= is mandatory, so it is blanked rather than dropped.
                    dropped += 1;
                    out.line(b"s=-", line.eol);
                }
                LineKind::Rtpmap { pt, .. } | LineKind::PayloadAttr { pt }
                    if section
                        .and_then(|s| events.get(s))
                        .is_some_and(|e| matches!(e, Events::Strip(te) if te.contains(pt))) => {}
                LineKind::SessionName
                | LineKind::Rtpmap { .. }
                | LineKind::PayloadAttr { .. }
                | LineKind::Other => {
                    if leaks(line.text) {
                        dropped += 1;
                    } else {
                        out.line(line.text, line.eol);
                    }
                }
            }

            if section.is_none() && i == self.session_insert_after && any_ice {
                out.added(&[b"a=ice-lite"]);
            }
            let (Some(s), Some(m)) = (section, m) else { continue };
            if m.insert_after != i {
                continue;
            }
            if let Some(Events::Add(pt, clock)) = events.get(s) {
                out.start();
                out.push(b"a=rtpmap:");
                out.push_u64((*pt).into());
                out.push(b" telephone-event/");
                out.push_u64((*clock).into());
                out.end(self.line_ending.bytes());
                out.start();
                out.push(b"a=fmtp:");
                out.push_u64((*pt).into());
                // Every DTMF event and flash (RFC 4734 §3.2), what carriers write.
                out.push(b" 0-16");
                out.end(self.line_ending.bytes());
            }
            if let RtcpPlan::Port(p) = mp.rtcp {
                let rtp = mp.port.unwrap_or(m.port);
                if !m.is_rejected() && m.rtcp.is_none() && rtp.checked_add(1) != Some(p) {
                    out.start();
                    write_rtcp(&mut out, p, addrtype, addr);
                    out.end(self.line_ending.bytes());
                }
            }
            if let Some(ice) = ice_for(s, m) {
                out.start();
                out.push(b"a=ice-ufrag:");
                out.push_token(ice.ufrag);
                out.end(self.line_ending.bytes());
                out.start();
                out.push(b"a=ice-pwd:");
                out.push_token(ice.pwd);
                out.end(self.line_ending.bytes());
                for c in ice.candidates {
                    let c = c.strip_prefix("a=").unwrap_or(c);
                    let c = c.strip_prefix("candidate:").unwrap_or(c);
                    out.start();
                    out.push(b"a=candidate:");
                    out.push_line_value(c);
                    out.end(self.line_ending.bytes());
                }
                out.added(&[b"a=end-of-candidates"]);
            }
        }
        RewriteOutput { body: out.buf, dropped_lines: dropped }
    }
}

fn write_rtcp(out: &mut Out, port: u16, addrtype: &[u8], addr: &[u8]) {
    out.push(b"a=rtcp:");
    out.push_u64(port.into());
    out.push(b" IN ");
    out.push(addrtype);
    out.push(b" ");
    out.push(addr);
}

/// An `m=` line that names an endpoint address somewhere (only hostile or broken bodies do):
/// rebuilt token by token without the offending tokens, so the section structure survives.
/// A leaking media or proto token is masked as `-` rather than dropped: both are required, and
/// without one the line would no longer parse (found by fuzzing, see the regression test
/// `leaking_media_or_proto_token_is_masked_not_dropped`).
#[allow(clippy::too_many_arguments)]
fn write_media_without_leaks(
    out: &mut Out,
    text: &[u8],
    eol: &[u8],
    m: Option<&MediaSection<'_>>,
    port: Option<u16>,
    events: Events,
    leaks: &dyn Fn(&[u8]) -> bool,
) {
    out.start();
    out.push(b"m=");
    let value = text.get(2..).unwrap_or_default();
    let mut first = true;
    // The parser's separators (space, tab) and no others: splitting on any ASCII whitespace
    // cut a token holding a form feed in two and shifted the port (found by fuzzing).
    let tokens = value.split(|&b| b == b' ' || b == b'\t').filter(|t| !t.is_empty());
    for (n, token) in tokens.enumerate() {
        let port_token = n == 1;
        let leaking = !port_token && leaks(token);
        if leaking && n > 2 {
            continue;
        }
        let stripped = |pt: u8| matches!(events, Events::Strip(te) if te.contains(pt));
        if n > 2 && std::str::from_utf8(token).ok().and_then(parse_fmt).is_some_and(stripped) {
            continue;
        }
        if !first {
            out.push(b" ");
        }
        first = false;
        match (port_token, m, port) {
            _ if leaking => out.push(b"-"),
            (true, Some(m), Some(p)) => {
                out.push_u64(p.into());
                if let Some(c) = m.port_count {
                    out.push(b"/");
                    out.push_u64(c.into());
                }
            }
            // The port token is digits only, checked when parsing.
            _ => out.push(token),
        }
    }
    if let Events::Add(pt, _) = events {
        out.push(b" ");
        out.push_u64(pt.into());
    }
    out.end(eol);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{sdp_vectors, vector_body, ICE_OFFER};
    use super::*;

    const TRUNK: &str = "203.0.113.10";

    fn plan<'a>(media: &'a [MediaPlan<'a>]) -> RewritePlan<'a> {
        RewritePlan {
            username: "sipborder",
            sess_id: 7001,
            sess_version: 3,
            address: TRUNK.parse().unwrap(),
            media,
        }
    }

    fn relay(port: u16) -> MediaPlan<'static> {
        MediaPlan {
            port: Some(port),
            rtcp: RtcpPlan::Port(port + 1),
            ice: None,
            events: EventPlan::Keep,
        }
    }

    fn text(out: &RewriteOutput) -> &str {
        std::str::from_utf8(&out.body).unwrap()
    }

    fn is_owned(line: &str) -> bool {
        const ICE: [&str; 6] = [
            "a=candidate",
            "a=ice-",
            "a=end-of-candidates",
            "a=remote-candidates",
            "a=rtcp:",
            "a=rtcp ",
        ];
        ["o=", "c=", "m="].iter().any(|p| line.starts_with(p))
            || ICE.iter().any(|p| line.starts_with(p))
    }

    fn unowned(body: &[u8]) -> Vec<&[u8]> {
        body.split_inclusive(|&b| b == b'\n')
            .filter(|l| !is_owned(&String::from_utf8_lossy(l)))
            .collect()
    }

    /// The plan that hands the endpoint its own identity back.
    fn identity(sdp: &SessionDescription<'_>) -> (RewritePlan<'static>, bool) {
        let o = sdp.origin();
        let username: &'static str = Box::leak(o.username.to_owned().into_boxed_str());
        let p = RewritePlan {
            username,
            sess_id: o.sess_id_number().unwrap(),
            sess_version: o.sess_version_number().unwrap(),
            address: o.ip.unwrap(),
            media: &[],
        };
        let mut connections: Vec<_> = sdp.connection().into_iter().copied().collect();
        for m in sdp.media() {
            connections.extend(m.connection);
            connections.extend(m.rtcp.and_then(|r| r.connection));
        }
        let same_address = connections.iter().all(|c| c.ip == o.ip);
        (p, same_address)
    }

    #[test]
    fn vectors_round_trip_except_owned_lines() {
        let mut exact = 0;
        for (name, body) in sdp_vectors() {
            let sdp = SessionDescription::parse(&body).unwrap();
            let (p, same_address) = identity(&sdp);
            let out = sdp.rewrite(&p);
            assert_eq!(out.dropped_lines, 0, "{name}");
            assert_eq!(unowned(&out.body), unowned(&body), "{name}");
            if same_address {
                assert_eq!(text(&out), String::from_utf8_lossy(&body), "{name}");
                exact += 1;
            }
        }
        assert!(exact >= 6, "only {exact} vectors were byte-exact");
    }

    #[test]
    fn vectors_toward_trunk_leak_nothing() {
        for (name, body) in sdp_vectors() {
            let sdp = SessionDescription::parse(&body).unwrap();
            let media: Vec<_> =
                (0..sdp.media().len() as u16).map(|i| relay(40000 + 2 * i)).collect();
            let out = sdp.rewrite(&plan(&media));
            let s = text(&out);
            for a in sdp.endpoint_addresses() {
                assert!(!s.contains(a), "{name} leaks {a}:\n{s}");
            }
            assert!(!s.contains("192.168.") && !s.contains("10.24."), "{name}");
            assert_eq!(out.dropped_lines, 0, "{name}");
            assert_eq!(s.matches('\n').count(), s.matches("\r\n").count(), "{name}");
            assert_eq!(unowned(&out.body), unowned(&body), "{name}");
            let again = SessionDescription::parse(&out.body).unwrap();
            assert_eq!(again.origin().address, TRUNK);
            for (m, before) in again.media().iter().zip(sdp.media()) {
                assert_eq!(m.is_rejected(), before.is_rejected(), "{name}");
                assert_eq!(m.effective_address().unwrap().address, TRUNK, "{name}");
                assert_eq!(m.rtpmaps, before.rtpmaps, "{name}");
            }
        }
    }

    #[test]
    fn microsip_offer_toward_trunk() {
        let body = vector_body("seed002/d2_01_invite_microsip.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let out = sdp.rewrite(&plan(&[relay(40000)]));
        let expected = "v=0\r\n\
            o=sipborder 7001 3 IN IP4 203.0.113.10\r\n\
            s=pjmedia\r\n\
            b=AS:84\r\n\
            t=0 0\r\n\
            a=X-nat:0\r\n\
            m=audio 40000 RTP/AVP 8 0 101\r\n\
            c=IN IP4 203.0.113.10\r\n\
            b=TIAS:64000\r\n\
            a=rtcp:40001 IN IP4 203.0.113.10\r\n\
            a=sendrecv\r\n\
            a=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\n\
            a=fmtp:101 0-16\r\n\
            a=ssrc:1913920969 cname:1ebf1ac11af82313\r\n";
        assert_eq!(text(&out), expected);
        assert!(!text(&out).contains("192.168."));
        assert_eq!(out.dropped_lines, 0);
    }

    #[test]
    fn digium_duplicates_and_orphan_rtpmap_survive() {
        let body = vector_body("seed003/001_voxlink_invite_102_digium_d40_sdp.sip");
        let out = SessionDescription::parse(&body).unwrap().rewrite(&plan(&[relay(40000)]));
        let s = text(&out);
        assert!(s.contains("m=audio 40000 RTP/AVP 9 8 0 18 58 118 58 111 96\r\n"), "{s}");
        assert!(
            s.contains("a=rtpmap:58 L16/16000\r\n") && s.contains("a=rtpmap:58 L16-256/16000\r\n")
        );
        assert!(s.contains("c=IN IP4 203.0.113.10\r\n") && !s.contains("192.168."));

        let body =
            vector_body("seed003/003_pjsipwiki_invite_sipp_eggowaffles_unknown_endpoint.sip");
        let out = SessionDescription::parse(&body).unwrap().rewrite(&plan(&[relay(40000)]));
        let s = text(&out);
        assert!(s.contains("m=audio 40000 RTP/AVP 0\r\na=rtpmap:8 PCMA/8000\r\n"), "{s}");
        // No a=rtcp in the offer and the relay pair is consecutive: nothing to add.
        assert!(!s.contains("a=rtcp"), "{s}");
    }

    #[test]
    fn cucm_rejected_video_keeps_port_zero() {
        let body = vector_body("seed002/d2_21_ack_with_answer.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let out = sdp.rewrite(&plan(&[relay(40000), relay(40002)]));
        let s = text(&out);
        assert!(s.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{s}");
        assert!(s.contains("m=video 0 RTP/AVP 31 34 96 97\r\n"), "{s}");
        assert!(s.contains("a=rtcp:40001 IN IP4 203.0.113.10\r\n"), "{s}");
        assert!(s.ends_with("a=content:main\r\na=inactive\r\n"), "{s}");
        assert!(!s.contains("192.168."), "{s}");
        let again = SessionDescription::parse(&out.body).unwrap();
        assert!(again.media()[1].is_rejected());
    }

    #[test]
    fn hold_is_carried_across() {
        let body = "v=0\r\no=- 5 6 IN IP4 192.168.1.5\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n\
                    m=audio 4002 RTP/AVP 0\r\nc=IN IP4 192.168.1.5\r\na=inactive\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        assert!(sdp.media().iter().all(MediaSection::is_hold));
        let out = sdp.rewrite(&plan(&[relay(40000), relay(40002)]));
        let s = text(&out);
        assert!(s.contains("\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"), "{s}");
        // RTCP on 40001 is what the endpoint assumes for 40000: no a=rtcp is added.
        assert!(s.contains("m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n"), "{s}");
        assert!(
            s.contains("m=audio 40002 RTP/AVP 0\r\nc=IN IP4 203.0.113.10\r\na=inactive"),
            "{s}"
        );
        let again = SessionDescription::parse(&out.body).unwrap();
        assert!(again.media().iter().all(MediaSection::is_hold));
    }

    #[test]
    fn reinvite_keeps_relay_ports_and_bumps_the_version() {
        // The caller keeps the relay ports of a stream and bumps o= when the leg's SDP changes;
        // the rewrite then differs only in what changed.
        let offer = vector_body("seed002/d2_01_invite_microsip.sip");
        let hold = String::from_utf8(offer.clone()).unwrap().replace("a=sendrecv", "a=sendonly");
        let media = [relay(40000)];
        let first = SessionDescription::parse(&offer).unwrap().rewrite(&plan(&media));
        let mut p = plan(&media);
        p.sess_version += 1;
        let second = SessionDescription::parse(hold.as_bytes()).unwrap().rewrite(&p);
        let expected = text(&first)
            .replace("o=sipborder 7001 3 ", "o=sipborder 7001 4 ")
            .replace("a=sendrecv", "a=sendonly");
        assert_eq!(text(&second), expected);
    }

    #[test]
    fn two_sections_each_get_their_ports() {
        let body = "v=0\r\no=- 5 6 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\n\
                    m=video 4002/2 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=rtcp:4004 IN IP4 10.1.1.1\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let media = [
            relay(40000),
            MediaPlan {
                port: Some(40010),
                rtcp: RtcpPlan::KeepPort,
                ice: None,
                events: EventPlan::Keep,
            },
        ];
        let s = text(&sdp.rewrite(&plan(&media))).to_owned();
        assert!(
            s.contains("m=audio 40000 RTP/AVP 0\r\na=rtcp:40001 IN IP4 203.0.113.10\r\n"),
            "{s}"
        );
        assert!(s.contains("m=video 40010/2 RTP/AVP 96\r\n"), "{s}");
        assert!(s.ends_with("a=rtcp:4004 IN IP4 203.0.113.10\r\n"), "{s}");
        // A section without a plan entry keeps its port.
        let s = text(&sdp.rewrite(&plan(&media[..1]))).to_owned();
        assert!(s.contains("m=video 4002/2 RTP/AVP 96\r\n"), "{s}");
        assert!(!s.contains("10.1.1.1"), "{s}");
    }

    #[test]
    fn rtcp_mux_and_added_rtcp() {
        let body = "v=0\r\no=- 5 6 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 10.1.1.1\r\na=rtcp-mux\r\n\
                    m=audio 4002 RTP/AVP 0\r\na=ptime:20\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        assert!(sdp.media()[0].rtcp_mux && !sdp.media()[1].rtcp_mux);
        let media = [
            MediaPlan {
                port: Some(40000),
                rtcp: RtcpPlan::MuxOnly,
                ice: None,
                events: EventPlan::Keep,
            },
            MediaPlan {
                port: Some(40002),
                rtcp: RtcpPlan::Port(40009),
                ice: None,
                events: EventPlan::Keep,
            },
        ];
        let s = text(&sdp.rewrite(&plan(&media))).to_owned();
        assert!(s.contains("m=audio 40000 RTP/AVP 0\r\na=rtcp-mux\r\n"), "{s}");
        assert!(s.ends_with("a=ptime:20\r\na=rtcp:40009 IN IP4 203.0.113.10\r\n"), "{s}");
        assert_eq!(s.matches("a=rtcp:").count(), 1, "{s}");
    }

    #[test]
    fn ice_offer_answered_with_ice_lite() {
        let sdp = SessionDescription::parse(ICE_OFFER.as_bytes()).unwrap();
        let candidates = ["1 1 UDP 2130706431 203.0.113.10 40000 typ host"];
        let media = [MediaPlan {
            port: Some(40000),
            rtcp: RtcpPlan::MuxOnly,
            ice: Some(IceLitePlan {
                ufrag: "sbc1",
                pwd: "0123456789abcdefghijkl",
                candidates: &candidates,
            }),
            events: EventPlan::Keep,
        }];
        let out = sdp.rewrite(&plan(&media));
        let expected = "v=0\r\n\
            o=sipborder 7001 3 IN IP4 203.0.113.10\r\n\
            s=-\r\n\
            t=0 0\r\n\
            a=group:BUNDLE 0\r\n\
            a=ice-lite\r\n\
            m=audio 40000 RTP/AVP 111 0 8 101\r\n\
            c=IN IP4 203.0.113.10\r\n\
            a=mid:0\r\n\
            a=rtcp-mux\r\n\
            a=sendrecv\r\n\
            a=rtpmap:111 opus/48000/2\r\n\
            a=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\n\
            a=fmtp:101 0-15\r\n\
            a=ssrc:2231627014 cname:4TOk42mSjXCkVIa6\r\n\
            a=ice-ufrag:sbc1\r\n\
            a=ice-pwd:0123456789abcdefghijkl\r\n\
            a=candidate:1 1 UDP 2130706431 203.0.113.10 40000 typ host\r\n\
            a=end-of-candidates\r\n";
        assert_eq!(text(&out), expected);
        assert_eq!(out.dropped_lines, 0);
        let again = SessionDescription::parse(&out.body).unwrap();
        assert!(again.ice().lite && again.media()[0].ice.candidates.len() == 1);

        // Toward a leg that did not offer ICE: every ICE line goes.
        let out = sdp.rewrite(&plan(&[relay(40000)]));
        let s = text(&out);
        for gone in ["ice-", "candidate", "192.168.1.20", "198.51.100.7"] {
            assert!(!s.contains(gone), "{gone} in\n{s}");
        }
        assert!(!SessionDescription::parse(&out.body).unwrap().offers_ice());
    }

    #[test]
    fn safety_net_drops_lines_naming_the_endpoint() {
        let body = "v=0\r\no=- 5 6 IN IP4 192.168.71.146\r\ns=call from 192.168.71.146\r\nt=0 0\r\n\
                    a=X-local:192.168.71.146:5060\r\nm=audio 4008 RTP/AVP 0\r\n\
                    c=IN IP4 192.168.71.146\r\na=ssrc:1 cname:user@192.168.71.146\r\na=ptime:20\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let out = sdp.rewrite(&plan(&[relay(40000)]));
        assert_eq!(out.dropped_lines, 3);
        assert_eq!(
            text(&out),
            "v=0\r\no=sipborder 7001 3 IN IP4 203.0.113.10\r\ns=-\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\nc=IN IP4 203.0.113.10\r\na=ptime:20\r\n"
        );
        // An endpoint address equal to ours is no leak.
        let mut p = plan(&[]);
        p.address = "192.168.71.146".parse().unwrap();
        assert_eq!(sdp.rewrite(&p).dropped_lines, 0);
    }

    #[test]
    fn leaking_media_line_is_rebuilt_without_the_address() {
        let body = "v=0\r\no=- 5 6 IN IP4 10.9.9.9\r\ns=-\r\nt=0 0\r\n\
                    m=image 4000/2 udptl t38 10.9.9.9\r\nc=IN IP4 0.0.0.0/127\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let out = sdp.rewrite(&plan(&[relay(40000)]));
        assert_eq!(out.dropped_lines, 1);
        assert!(
            text(&out).ends_with("m=image 40000/2 udptl t38\r\nc=IN IP4 0.0.0.0\r\n"),
            "{}",
            text(&out)
        );
    }

    #[test]
    fn leaking_media_or_proto_token_is_masked_not_dropped() {
        // Regression (tests/fuzz, target sdp): `m=audio 4028 RTP192.168.71.146` lost its proto
        // token to the leak filter and went out as `m=audio 4028`, which no parser accepts.
        let body = "v=0\r\no=- 1 1 IN IP4 192.168.71.146\r\ns=-\r\nt=0 0\r\n\
                    m=audio 4028 RTP192.168.71.146 0\r\n\
                    m=x192.168.71.146 4030 RTP/AVP 8 192.168.71.146\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        for media in [&[][..], &[relay(40000), relay(40002)][..]] {
            let out = sdp.rewrite(&plan(media));
            let s = text(&out);
            assert!(!s.contains("192.168.71.146"), "{s}");
            assert_eq!(out.dropped_lines, 2);
            let again = SessionDescription::parse(&out.body).expect(s);
            assert_eq!(again.media().len(), 2, "{s}");
            assert_eq!(again.media()[0].proto, "-");
            assert_eq!(again.media()[1].media, "-");
            assert_eq!(again.media()[1].fmts().collect::<Vec<_>>(), ["8"], "{s}");
        }
        let out = sdp.rewrite(&plan(&[]));
        assert!(
            text(&out).ends_with("m=audio 4028 - 0\r\nm=- 4030 RTP/AVP 8\r\n"),
            "{}",
            text(&out)
        );
    }

    #[test]
    fn leaking_media_line_is_split_like_the_parser_splits_it() {
        // Regression (tests/fuzz, target sdp): a form feed inside the media token was taken for
        // a separator, so the rebuilt line had `dio` where the port belongs.
        let body = "v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nt=0 0\r\n\
                    m=au\x0cdio 4000 RTP/AVP 0 10.9.9.9\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.media()[0].port, 4000);
        for (media, line) in [
            (&[][..], "m=au\x0cdio 4000 RTP/AVP 0\r\n"),
            (&[relay(40000)][..], "m=au\x0cdio 40000 RTP/AVP 0\r\n"),
        ] {
            let out = sdp.rewrite(&plan(media));
            assert!(text(&out).ends_with(line), "{:?}", text(&out));
            let again = SessionDescription::parse(&out.body)
                .unwrap_or_else(|e| panic!("{e:?}: {}", text(&out)));
            assert_eq!(again.media()[0].media, "au\x0cdio");
        }
    }

    #[test]
    fn lf_bodies_stay_lf_and_plan_values_cannot_inject_lines() {
        let body =
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\na=ice-ufrag:x";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let candidates = ["a=candidate:1 1 UDP 1 203.0.113.10 40000 typ host\r\nx=evil"];
        let media = [MediaPlan {
            port: Some(40000),
            rtcp: RtcpPlan::KeepPort,
            ice: Some(IceLitePlan { ufrag: "u\r\nx=evil", pwd: "p w", candidates: &candidates }),
            events: EventPlan::Keep,
        }];
        let mut p = plan(&media);
        p.username = "a b\r\n";
        let out = sdp.rewrite(&p);
        assert_eq!(
            text(&out),
            "v=0\no=ab 7001 3 IN IP4 203.0.113.10\ns=-\nt=0 0\na=ice-lite\nm=audio 40000 RTP/AVP 0\n\
             a=ice-ufrag:ux=evil\na=ice-pwd:pw\na=candidate:1 1 UDP 1 203.0.113.10 40000 typ hostx=evil\n\
             a=end-of-candidates\n"
        );
        // An unterminated last line that is kept stays unterminated.
        let body = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\na=ptime:20";
        let out = SessionDescription::parse(body.as_bytes()).unwrap().rewrite(&plan(&[]));
        assert!(text(&out).ends_with("m=audio 4000 RTP/AVP 0\na=ptime:20"));
    }

    #[test]
    fn address_text_and_search() {
        for ip in ["0.0.0.0", "1.2.3.4", "10.0.99.100", "255.255.255.255", "::", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(AddrText::new(ip).as_bytes(), ip.to_string().as_bytes());
        }
        assert!(contains_ignore_case(b"a=x:user@10.0.0.1;y", b"10.0.0.1"));
        assert!(contains_ignore_case(b"10.0.0.1", b"10.0.0.1"));
        assert!(contains_ignore_case(b"a=x:FE80::1", b"fe80::1"));
        assert!(!contains_ignore_case(b"a=x:10.0.0.2 10.0.0", b"10.0.0.1"));
        assert!(!contains_ignore_case(b"0.0.1", b"10.0.0.1"));
        assert!(contains_ignore_case(b"anything", b""));
        assert!(contains_ignore_case(b"a=host:PBX", b"pbx"));
    }

    #[test]
    fn ipv6_plan_address() {
        let body = vector_body("seed002/d2_01_invite_microsip.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let mut p = plan(&[]);
        p.address = "2001:db8::10".parse().unwrap();
        let s = text(&sdp.rewrite(&p)).to_owned();
        assert!(s.contains("o=sipborder 7001 3 IN IP6 2001:db8::10\r\n"), "{s}");
        assert!(
            s.contains("c=IN IP6 2001:db8::10\r\n")
                && s.contains("a=rtcp:4009 IN IP6 2001:db8::10\r\n")
        );
    }

    fn events(port: u16, events: EventPlan) -> MediaPlan<'static> {
        MediaPlan { events, ..relay(port) }
    }

    #[test]
    fn telephone_event_added_after_the_section_and_nothing_else_changes() {
        // An INFO-only PBX offers no telephone-event; toward an RFC 4733 carrier it is added.
        let body = "v=0\r\no=- 5 6 IN IP4 10.0.0.50\r\ns=-\r\nc=IN IP4 10.0.0.50\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=X-odd:keep me\r\n\
                    a=sendrecv\r\nm=video 0 RTP/AVP 96\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let add = EventPlan::Add { payload_type: 101, clock_rate: 8000 };
        let out = sdp.rewrite(&plan(&[events(40000, add), events(40002, add)]));
        assert_eq!(
            text(&out),
            "v=0\r\no=sipborder 7001 3 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\n\
             t=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n\
             a=X-odd:keep me\r\na=sendrecv\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\nm=video 0 RTP/AVP 96\r\n",
            "the rejected video section stays as it was"
        );
        let again = SessionDescription::parse(&out.body).unwrap();
        assert_eq!(again.media()[0].encoding_name(101), Some("telephone-event"));
        // A number the section already uses is not taken twice.
        let taken = EventPlan::Add { payload_type: 8, clock_rate: 8000 };
        let out = sdp.rewrite(&plan(&[events(40000, taken)]));
        assert!(text(&out).contains("m=audio 40000 RTP/AVP 8 0\r\n"), "{}", text(&out));
        assert!(!text(&out).contains("telephone-event"));
        // LF bodies get LF lines.
        let lf = body.replace("\r\n", "\n");
        let out =
            SessionDescription::parse(lf.as_bytes()).unwrap().rewrite(&plan(&[events(40000, add)]));
        assert!(
            text(&out).contains("a=sendrecv\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n")
        );
    }

    #[test]
    fn telephone_event_stripped_from_what_the_leg_never_offered() {
        let body = "v=0\r\no=- 5 6 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\n\
                    t=0 0\r\nm=audio 30000 RTP/AVP 8 96 97\r\na=rtpmap:8 PCMA/8000\r\n\
                    a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n\
                    a=rtpmap:97 TELEPHONE-EVENT/48000\r\na=rtcp-fb:97 x\r\na=ptime:20\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let out = sdp.rewrite(&plan(&[events(40000, EventPlan::Strip)]));
        assert_eq!(
            text(&out),
            "v=0\r\no=sipborder 7001 3 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\n\
             t=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n"
        );
        // A section of nothing but events keeps them: an m= line needs a format.
        let only = "v=0\r\no=- 5 6 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                    m=audio 30000 RTP/AVP 96\r\na=rtpmap:96 telephone-event/8000\r\n";
        let out = SessionDescription::parse(only.as_bytes())
            .unwrap()
            .rewrite(&plan(&[events(40000, EventPlan::Strip)]));
        assert!(text(&out)
            .ends_with("m=audio 40000 RTP/AVP 96\r\na=rtpmap:96 telephone-event/8000\r\n"));
        // Keep without a relay port leaves the line byte for byte; Strip without one still strips.
        let keep = MediaPlan { events: EventPlan::Strip, ..MediaPlan::KEEP };
        let out = sdp.rewrite(&plan(&[keep]));
        assert!(text(&out).contains("m=audio 30000 RTP/AVP 8\r\n"), "{}", text(&out));
    }

    #[test]
    fn leaking_media_line_still_gets_its_events_plan() {
        let body = "v=0\r\no=- 5 6 IN IP4 10.9.9.9\r\ns=-\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 8 96 10.9.9.9\r\na=rtpmap:96 telephone-event/8000\r\n";
        let sdp = SessionDescription::parse(body.as_bytes()).unwrap();
        let out = sdp.rewrite(&plan(&[events(40000, EventPlan::Strip)]));
        assert!(text(&out).ends_with("m=audio 40000 RTP/AVP 8\r\n"), "{}", text(&out));
        let add = EventPlan::Add { payload_type: 101, clock_rate: 8000 };
        let out = sdp.rewrite(&plan(&[events(40000, add)]));
        assert!(text(&out).contains("m=audio 40000 RTP/AVP 8 96 101\r\n"), "{}", text(&out));
    }
}
