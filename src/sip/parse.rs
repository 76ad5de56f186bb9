//! Wire bytes → validated [`SipMsg`], or a ready answer / drop decision.
//!
//! rsip 0.4 supplies the types and the URI grammar; this module adds what it does not (see
//! ../shared/reference/rsip-notes.md): size and count limits, the start-line checks rsip is lax
//! about (version, status range, method case), the header forms it cannot read (via
//! [`super::normalize`]), and the semantic checks of RFC 3261 §8.1.1 / §8.2 / §18.3.
//!
//! The message is read once. The normalizer's scan already walks every header line, so
//! [`parse`] splits the lines itself and builds the `rsip::Request` / `rsip::Response` with
//! [`headers::make`], handing only the Request-URI to rsip's grammar. rsip's whole-message
//! tokenizer is avoided because each optional part it does not find (a URI without user part,
//! the response grammar it tries before the request one) formats the rest of the message into
//! an error string: more than half its time on a typical INVITE. A test checks that what is built
//! equals what rsip builds, for every vector and every mutated message that parses.
//!
//! A bad request that still names its Via, From, To, Call-ID and CSeq gets a complete 4xx/5xx to
//! send back, built from the raw header lines so it works however broken the rest is. A bad
//! response or ACK cannot be answered (RFC 3261 §17.1.1.3, §17.2.3) and is dropped with a bounded
//! metric label. Nothing here may panic on wire data: slicing goes through `get` or offsets the
//! code has just found, and the module's tests feed truncated and mutated vectors through [`parse`].

// `ParseError::Answer` is ~140 bytes, but every `Result` here is `Result<SipMsg, _>` or feeds one,
// and `SipMsg` is larger still: boxing the error would not shrink the `Result`.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method};

use super::headers;
use super::message::{SipMsg, Transport, ViaInfo};
use super::normalize::{self, find_byte, find_crlf, find_head_end, is_token};

/// Bounds every message must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message, start line to last body byte.
    pub max_message_size: usize,
    /// Most header lines accepted (after unfolding; repeated headers count once per line).
    pub max_headers: usize,
    /// Most Via values accepted (comma-separated values count one each).
    pub max_vias: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_message_size: 65536, max_headers: 128, max_vias: 32 }
    }
}

/// Why a message was dropped without an answer; a bounded set, usable as a Prometheus label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Nothing but CRLFs (a keepalive that reached the parser).
    Empty,
    /// Over [`Limits::max_message_size`] and not answerable.
    TooLarge,
    /// Does not look like SIP at all.
    NotSip,
    /// Looks like SIP but the start line cannot be read.
    BadStartLine,
    /// A request whose Via, From, To, Call-ID or CSeq line is present but unusable (top Via
    /// unparseable, control characters), so no answer can be addressed.
    BadHeader,
    /// A request lacking one of Via, From, To, Call-ID, CSeq, so no answer can be built.
    MissingHeader,
    /// Over [`Limits::max_headers`] and not answerable.
    TooManyHeaders,
    /// A response that failed a check.
    BadResponse,
    /// An ACK that failed a check.
    BadAck,
}

impl DropReason {
    /// Short snake_case label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::TooLarge => "too_large",
            DropReason::NotSip => "not_sip",
            DropReason::BadStartLine => "bad_start_line",
            DropReason::BadHeader => "bad_header",
            DropReason::MissingHeader => "missing_header",
            DropReason::TooManyHeaders => "too_many_headers",
            DropReason::BadResponse => "bad_response",
            DropReason::BadAck => "bad_ack",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A message that did not become a [`SipMsg`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Enough of a request parsed to answer it: `response` is a complete wire-ready response
    /// (e.g. 400 with a reason phrase naming the problem, 501 for an unknown method, 505 for a bad
    /// version, 413 too large when headers were readable), to be sent per the top Via (`via`).
    #[error("rejected with {code} {reason}")]
    Answer {
        /// Status code of `response`.
        code: u16,
        /// Reason phrase of `response`: short, printable ASCII.
        reason: String,
        /// The complete response, ready for the wire.
        response: Vec<u8>,
        /// The request's top Via, saying where `response` goes (RFC 3261 §18.2.2).
        via: ViaInfo,
    },
    /// Cannot be answered (a response, an ACK, or a request too broken to find
    /// Via/From/To/Call-ID/CSeq): drop it and count it under `reason`.
    #[error("dropped: {reason}")]
    Drop {
        /// Why, as a bounded label.
        reason: DropReason,
    },
}

/// Methods sipborder implements, advertised in the Allow of a 501.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, MESSAGE";

/// Longest reason phrase [`reject`] copies from its caller.
const MAX_REASON: usize = 64;

/// Parses and validates one SIP message (one UDP datagram or one frame from
/// [`crate::transport::framing::StreamFramer`]).
///
/// CRLFs before the start line are skipped (RFC 3261 §7.5). A body longer than Content-Length is
/// cut to it (RFC 3261 §18.3); shorter is an error.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<SipMsg, ParseError> {
    let bytes = skip_leading_crlf(bytes);
    if bytes.is_empty() {
        return Err(ParseError::Drop { reason: DropReason::Empty });
    }
    let start_end = find_crlf(bytes, 0).unwrap_or(bytes.len());
    let start = classify(&bytes[..start_end]);
    let kind = match &start {
        Ok(s) => s.kind(),
        Err(BadStart::Request { ack, .. }) => Kind::Request { ack: *ack },
        Err(BadStart::Drop(reason)) => return Err(ParseError::Drop { reason: *reason }),
    };
    if bytes.len() > limits.max_message_size {
        return Err(too_large(bytes, kind, limits.max_message_size));
    }
    let start = match start {
        Ok(s) => s,
        Err(BadStart::Request { code, reason, .. }) => {
            return Err(fail(bytes, kind, code, reason, None))
        }
        Err(BadStart::Drop(reason)) => return Err(ParseError::Drop { reason }),
    };

    let norm = normalize::normalize_scan(bytes);
    let msg: &[u8] = &norm.bytes;
    let Some(body_start) = norm.body_start else {
        return Err(fail(msg, kind, 400, "Incomplete Header Section", None));
    };
    if norm.header_lines > limits.max_headers {
        return Err(fail(msg, kind, 400, "Too Many Headers", Some(DropReason::TooManyHeaders)));
    }
    // Start line and header lines, each with its CRLF; the normalizer never changes the start line.
    let Ok(head) = std::str::from_utf8(&msg[..body_start - 2]) else {
        return Err(fail(msg, kind, 400, "Invalid UTF-8 In Headers", None));
    };
    let headers = match build_headers(head, start_end + 2, norm.header_lines) {
        Some(h) => h,
        None => return Err(fail(msg, kind, 400, "Malformed Header Line", None)),
    };

    let body = &msg[body_start..];
    let req_method = match start {
        Start::Request { method_str, .. } => Some(method_str),
        _ => None,
    };
    let ess = match check(&headers, req_method, body.len(), limits) {
        Ok(e) => e,
        Err(reason) => return Err(fail(msg, kind, 400, reason, None)),
    };
    let Essentials {
        call_id,
        cseq,
        cseq_method,
        from_tag,
        to_tag,
        via,
        via_count,
        max_forwards,
        content_length,
    } = ess;
    let call_id = call_id.to_owned();
    let from_tag = from_tag.map(str::to_owned);
    let to_tag = to_tag.map(str::to_owned);
    // RFC 3261 §18.3: bytes past Content-Length are not part of the message.
    let body = body[..content_length.unwrap_or(body.len()).min(body.len())].to_vec();
    let headers = rsip::Headers::from(headers);

    let raw = match start {
        Start::Request { method, uri, .. } => {
            let Some(uri) = parse_uri(uri) else {
                return Err(fail(msg, kind, 400, "Malformed Request-URI", None));
            };
            rsip::SipMessage::Request(rsip::Request {
                method,
                uri,
                version: rsip::Version::V2,
                headers,
                body,
            })
        }
        Start::Response { code, reason } => {
            // What rsip's own conversion does: well-known codes become their variant (the phrase
            // is implied), others keep the phrase as sent.
            let status_code = match rsip::StatusCode::from(code) {
                rsip::StatusCode::Other(c, _) => {
                    rsip::StatusCode::Other(c, String::from_utf8_lossy(reason).into_owned())
                }
                known => known,
            };
            rsip::SipMessage::Response(rsip::Response {
                status_code,
                version: rsip::Version::V2,
                headers,
                body,
            })
        }
    };
    Ok(SipMsg { raw, call_id, cseq, cseq_method, from_tag, to_tag, via, via_count, max_forwards })
}

/// Splits the header lines of `head` (from `from`, the byte after the start line) into rsip
/// headers, exactly as rsip's own tokenizer would (name = token, `:`, optional SP/HT, value to the
/// end of the line, repeated headers kept apart), but without its cost: rsip's message tokenizer
/// formats an error string holding the rest of the message each time an optional part is absent,
/// which is most of its time on a typical request. `None` for a line rsip would refuse.
fn build_headers(head: &str, from: usize, expected: usize) -> Option<Vec<Header>> {
    let b = head.as_bytes();
    let mut out = Vec::with_capacity(expected);
    let mut i = from;
    while i < b.len() {
        let end = find_crlf(b, i).unwrap_or(b.len());
        let mut j = i;
        while j < end && is_token(b[j]) {
            j += 1;
        }
        if j == i || b.get(j) != Some(&b':') {
            return None;
        }
        let mut v = j + 1;
        while v < end && (b[v] == b' ' || b[v] == b'\t') {
            v += 1;
        }
        // All split points are ASCII bytes, so these are char boundaries.
        out.push(headers::make(head.get(i..j)?, head.get(v..end)?));
        i = end + 2;
    }
    Some(out)
}

/// Parses a Request-URI with rsip's URI grammar, requiring all of it to be consumed (rsip's
/// `Uri::try_from` ignores trailing input; in a request line that input would not be a SP).
fn parse_uri(uri: &[u8]) -> Option<rsip::Uri> {
    let (rest, tok) = rsip::common::uri::Tokenizer::<&[u8], u8>::tokenize(uri).ok()?;
    if !rest.is_empty() {
        return None;
    }
    rsip::Uri::try_from(tok).ok()
}

/// Builds the answer (or drop decision) for a message the caller has already judged bad, e.g. a
/// stream message without Content-Length (RFC 3261 §18.3): a request gets `code` and `reason`
/// (cut to 64 printable ASCII characters), a response or ACK is dropped.
pub fn reject(bytes: &[u8], code: u16, reason: &str) -> ParseError {
    let bytes = skip_leading_crlf(bytes);
    if bytes.is_empty() {
        return ParseError::Drop { reason: DropReason::Empty };
    }
    let start_end = find_crlf(bytes, 0).unwrap_or(bytes.len());
    let kind = match classify(&bytes[..start_end]) {
        Ok(s) => s.kind(),
        Err(BadStart::Request { ack, .. }) => Kind::Request { ack },
        Err(BadStart::Drop(reason)) => return ParseError::Drop { reason },
    };
    let reason: String =
        reason.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(MAX_REASON).collect();
    let code = if (400..=699).contains(&code) { code } else { 400 };
    answer_or_drop(bytes, kind, code, &reason, None)
}

// ---------------------------------------------------------------------------------------------
// Start line

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request { ack: bool },
    Response,
}

/// A start line that passed.
enum Start<'a> {
    Request { method: Method, method_str: &'a str, uri: &'a [u8] },
    Response { code: u16, reason: &'a [u8] },
}

/// A start line that did not.
enum BadStart {
    /// A request that is wrong in a way that still lets it be answered (if its headers allow).
    Request { ack: bool, code: u16, reason: &'static str },
    /// Not answerable at all.
    Drop(DropReason),
}

impl Start<'_> {
    fn kind(&self) -> Kind {
        match self {
            Start::Request { method, .. } => Kind::Request { ack: *method == Method::Ack },
            Start::Response { .. } => Kind::Response,
        }
    }
}

/// Methods rsip 0.4 can represent, spelled as RFC 3261 requires (methods are case-sensitive).
fn known_method(m: &[u8]) -> Option<Method> {
    Some(match m {
        b"INVITE" => Method::Invite,
        b"ACK" => Method::Ack,
        b"BYE" => Method::Bye,
        b"CANCEL" => Method::Cancel,
        b"OPTIONS" => Method::Options,
        b"REGISTER" => Method::Register,
        b"INFO" => Method::Info,
        b"UPDATE" => Method::Update,
        b"PRACK" => Method::PRack,
        b"REFER" => Method::Refer,
        b"NOTIFY" => Method::Notify,
        b"SUBSCRIBE" => Method::Subscribe,
        b"MESSAGE" => Method::Message,
        b"PUBLISH" => Method::Publish,
        _ => return None,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads the start line far enough to know what the message is and whether it can be answered.
fn classify(line: &[u8]) -> Result<Start<'_>, BadStart> {
    let drop = BadStart::Drop;
    if let Some(rest) = line.strip_prefix(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (rsip also takes extra SPs).
        let rest = rest.strip_prefix(b"2.0 ").ok_or(drop(DropReason::BadResponse))?;
        let rest = &rest[rest.iter().position(|&b| b != b' ').unwrap_or(rest.len())..];
        return match rest {
            [a, b, c, b' ', reason @ ..]
                if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
            {
                let code =
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                if (100..=699).contains(&code) {
                    Ok(Start::Response { code, reason })
                } else {
                    Err(drop(DropReason::BadResponse))
                }
            }
            _ => Err(drop(DropReason::BadResponse)),
        };
    }

    // Only failures need to know whether the line looked like SIP at all.
    let sip_ish = || contains(line, b"SIP/");
    let not_sip = || drop(if sip_ish() { DropReason::BadStartLine } else { DropReason::NotSip });
    let sp = find_byte(b' ', line).ok_or_else(not_sip)?;
    let method = &line[..sp];
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(not_sip());
    }
    let ack = method == b"ACK";
    let bad = |code, reason| Err(BadStart::Request { ack, code, reason });
    let rest = &line[sp + 1..];
    let Some(vsp) = rest.iter().rposition(|&b| b == b' ') else {
        return if sip_ish() { bad(400, "Malformed Request Line") } else { Err(not_sip()) };
    };
    let (uri, version) = (&rest[..vsp], &rest[vsp + 1..]);
    let uri_ok = !uri.is_empty() && !uri.iter().any(|&b| b == b' ' || b == b'\t');
    if version != b"SIP/2.0" {
        let is_version = version.len() > 4
            && version[..4].eq_ignore_ascii_case(b"SIP/")
            && version[4..].iter().all(|&b| b.is_ascii_digit() || b == b'.');
        return match () {
            _ if !is_version && !sip_ish() => Err(not_sip()),
            _ if !is_version || !uri_ok || version[4..].eq_ignore_ascii_case(b"2.0") => {
                bad(400, "Malformed Request Line")
            }
            _ => bad(505, "Version Not Supported"),
        };
    }
    if !uri_ok {
        return bad(400, "Malformed Request Line");
    }
    match known_method(method) {
        // Token bytes are ASCII, so from_utf8 cannot fail; the fallback keeps it panic-free.
        Some(m) => Ok(Start::Request {
            method: m,
            method_str: std::str::from_utf8(method).unwrap_or(""),
            uri,
        }),
        None => bad(501, "Not Implemented"),
    }
}

// ---------------------------------------------------------------------------------------------
// Semantic checks (RFC 3261 §8.1.1, §8.2, §18.3, §20)

struct Essentials<'a> {
    call_id: &'a str,
    cseq: u32,
    cseq_method: Method,
    from_tag: Option<&'a str>,
    to_tag: Option<&'a str>,
    via: ViaInfo,
    via_count: usize,
    max_forwards: Option<u32>,
    content_length: Option<usize>,
}

fn trim_wsp(s: &str) -> &str {
    // Byte-wise (rsip values hold no CRLF, so trimming all ASCII whitespace is the same as SP/HT).
    s.trim_ascii()
}

/// Stores the first value of a header; a second, different one is a conflict.
fn once<'a>(
    slot: &mut Option<&'a str>,
    v: &'a str,
    conflict: &'static str,
) -> Result<(), &'static str> {
    let v = trim_wsp(v);
    match slot {
        Some(old) if *old != v => Err(conflict),
        Some(_) => Ok(()),
        None => {
            *slot = Some(v);
            Ok(())
        }
    }
}

/// Parses a run of ASCII digits of at most `max_digits`.
fn digits(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits.min(19) {
        return None;
    }
    // At most 19 digits: cannot overflow a u64.
    s.bytes().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// True when a From/To value is a name-addr or addr-spec whose URI has a scheme (`x:` followed
/// by something).
fn addr_ok(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    // A quoted display name may itself hold '<' or ':'.
    if b.first() == Some(&b'"') {
        i = 1;
        while let Some(&c) = b.get(i) {
            i += match c {
                b'\\' => 2,
                b'"' => break,
                _ => 1,
            };
        }
        i += 1;
    }
    if let Some(lt) = b.get(i..).and_then(|r| find_byte(b'<', r)) {
        i += lt + 1;
    }
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let scheme_start = i;
    while b.get(i).copied().is_some_and(is_token) {
        i += 1;
    }
    i > scheme_start && b.get(i) == Some(&b':') && !matches!(b.get(i + 1), None | Some(b'>' | b' '))
}

/// The `tag` parameter of a From/To value: [`headers::param`]`(v, "tag")` computed with byte
/// searches (the generic version costs about a tenth of the whole validation), empty tags as none.
/// A test checks both agree.
fn tag(v: &str) -> Option<&str> {
    // Every index below is of an ASCII byte found in `v`, so each slice is on a char boundary.
    let mut rest = v.rfind('>').map_or(v, |i| &v[i + 1..]);
    while let Some(semi) = find_byte(b';', rest.as_bytes()) {
        rest = &rest[semi + 1..];
        let p = &rest[..find_byte(b';', rest.as_bytes()).unwrap_or(rest.len())];
        let (k, val) = match find_byte(b'=', p.as_bytes()) {
            Some(eq) => (p[..eq].trim_ascii(), p[eq + 1..].trim_ascii()),
            None => (p.trim_ascii(), ""),
        };
        if k.eq_ignore_ascii_case("tag") {
            return Some(val).filter(|t| !t.is_empty());
        }
    }
    None
}

fn check<'a>(
    hdrs: &'a [Header],
    req_method: Option<&str>,
    body_len: usize,
    limits: &Limits,
) -> Result<Essentials<'a>, &'static str> {
    let (mut call_id, mut from, mut to, mut cseq, mut max_fwd, mut clen) =
        (None, None, None, None, None, None);
    let mut top_via: Option<&str> = None;
    let mut via_count = 0usize;
    for h in hdrs {
        match h {
            Header::Via(v) => {
                let (first, n) = via_values(v.value());
                via_count += n;
                if top_via.is_none() {
                    top_via = first;
                }
            }
            Header::CallId(v) => once(&mut call_id, v.value(), "Conflicting Call-ID")?,
            Header::From(v) => once(&mut from, v.value(), "Conflicting From")?,
            Header::To(v) => once(&mut to, v.value(), "Conflicting To")?,
            Header::CSeq(v) => once(&mut cseq, v.value(), "Conflicting CSeq")?,
            Header::MaxForwards(v) => once(&mut max_fwd, v.value(), "Conflicting Max-Forwards")?,
            Header::ContentLength(v) => once(&mut clen, v.value(), "Conflicting Content-Length")?,
            _ => {}
        }
    }

    if via_count > limits.max_vias {
        return Err("Too Many Via Headers");
    }
    let via = parse_via(top_via.ok_or("Missing Via")?).ok_or("Malformed Via")?;

    let call_id = call_id.ok_or("Missing Call-ID")?;
    if call_id.is_empty() || !call_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("Malformed Call-ID");
    }
    let from = from.ok_or("Missing From")?;
    if !addr_ok(from) {
        return Err("Malformed From");
    }
    let to = to.ok_or("Missing To")?;
    if !addr_ok(to) {
        return Err("Malformed To");
    }

    let cseq = cseq.ok_or("Missing CSeq")?;
    let (num, method) = cseq.split_once([' ', '\t']).ok_or("Malformed CSeq")?;
    let method = trim_wsp(method);
    let num = digits(num, 10).ok_or("Malformed CSeq")?;
    let num = u32::try_from(num).ok().filter(|n| *n < 1 << 31).ok_or("CSeq Number Out Of Range")?;
    let cseq_method = match req_method {
        Some(m) if m != method => return Err("CSeq Method Mismatch"),
        _ => known_method(method.as_bytes()).ok_or("Malformed CSeq")?,
    };

    let max_forwards = match max_fwd {
        Some(v) => Some(digits(v, 3).filter(|n| *n <= 255).ok_or("Invalid Max-Forwards")? as u32),
        None => None,
    };
    let content_length = match clen {
        Some(v) => {
            let n = digits(v, 19)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("Invalid Content-Length")?;
            if n > body_len {
                return Err("Body Shorter Than Content-Length");
            }
            Some(n)
        }
        None => None,
    };

    Ok(Essentials {
        call_id,
        cseq: num,
        cseq_method,
        from_tag: tag(from),
        to_tag: tag(to),
        via,
        via_count,
        max_forwards,
        content_length,
    })
}

/// The first value of a Via header line and how many comma-separated values it holds (commas
/// inside quoted parameter values do not count; empty values are ignored).
fn via_values(v: &str) -> (Option<&str>, usize) {
    let b = v.as_bytes();
    // Nearly every Via line holds one value and no quotes: two word-at-a-time searches.
    if find_byte(b'"', b).is_none() && find_byte(b',', b).is_none() {
        let blank = b.iter().all(|&c| c == b' ' || c == b'\t');
        return if blank { (None, 0) } else { (Some(v), 1) };
    }
    let (mut first, mut count) = (None, 0);
    let (mut start, mut quoted, mut escaped, mut content) = (0, false, false, false);
    for (i, &c) in b.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                if content {
                    count += 1;
                    first = first.or_else(|| v.get(start..i));
                }
                (start, content) = (i + 1, false);
                continue;
            }
            _ => {}
        }
        content |= c != b' ' && c != b'\t';
    }
    if content {
        count += 1;
        first = first.or_else(|| v.get(start..));
    }
    (first, count)
}

fn valid_port(b: &[u8]) -> Option<u16> {
    if b.is_empty() || b.len() > 5 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let p = b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// A cursor over a header value, for the byte-level Via grammar. Runs are cut at ASCII bytes, so
/// slicing the `&str` at them is always on a character boundary.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }
    /// Skips SP/HT; true when there was any.
    fn wsp(&mut self) -> bool {
        let at = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > at
    }
    /// Consumes `lit` (ASCII case-insensitive) after optional whitespace.
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.wsp();
        let end = self.i + lit.len();
        self.s.as_bytes().get(self.i..end).filter(|s| s.eq_ignore_ascii_case(lit))?;
        self.i = end;
        Some(())
    }
    /// Consumes the longest run of bytes satisfying `f`, which must accept ASCII bytes only.
    #[inline]
    fn run(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let b = self.s.as_bytes();
        let at = self.i;
        let mut i = at;
        // Every predicate passed here accepts ASCII only, so `i` stays on a char boundary.
        while i < b.len() && f(b[i]) {
            i += 1;
        }
        self.i = i;
        self.s.get(at..i).unwrap_or_default()
    }
    /// Skips a generic parameter value: a quoted string or a run up to `;`, `,` or whitespace.
    fn skip_value(&mut self) -> Option<()> {
        if self.peek() == Some(b'"') {
            self.i += 1;
            loop {
                match self.peek()? {
                    b'\\' => self.i += 2,
                    b'"' => break,
                    _ => self.i += 1,
                }
            }
            self.i += 1;
        } else {
            while self.peek().is_some_and(|c| !matches!(c, b';' | b',' | b' ' | b'\t')) {
                self.i += 1;
            }
        }
        Some(())
    }
    /// True at the end of a parameter value.
    fn at_value_end(&self) -> bool {
        matches!(self.peek(), None | Some(b';' | b',' | b' ' | b'\t'))
    }
}

/// Parses one via-parm: `SIP/2.0/<transport> host[:port] *(;param)` (RFC 3261 §20.42, §25.1;
/// SLASH, COLON, SEMI and EQUAL may carry whitespace).
pub fn parse_via(v: &str) -> Option<ViaInfo> {
    let mut c = Cursor { s: v, i: 0 };
    c.lit(b"SIP")?;
    c.lit(b"/")?;
    c.lit(b"2.0")?;
    c.lit(b"/")?;
    c.wsp();
    let transport = match c.run(is_token) {
        t if t.eq_ignore_ascii_case("UDP") => Transport::Udp,
        t if t.eq_ignore_ascii_case("TCP") => Transport::Tcp,
        t if t.eq_ignore_ascii_case("TLS") => Transport::Tls,
        "" => return None,
        _ => Transport::Other,
    };
    if !c.wsp() {
        return None;
    }
    let host = if c.peek() == Some(b'[') {
        c.i += 1;
        let h = c.run(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if c.peek() != Some(b']') || !h.contains(':') {
            return None;
        }
        c.i += 1;
        h
    } else {
        c.run(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if host.is_empty() {
        return None;
    }
    c.wsp();
    let port = if c.peek() == Some(b':') {
        c.i += 1;
        c.wsp();
        Some(valid_port(c.run(|b| b.is_ascii_digit()).as_bytes())?)
    } else {
        None
    };

    let (mut branch, mut rport, mut received) = (None, None, None);
    loop {
        c.wsp();
        match c.peek() {
            None => break,
            Some(b';') => c.i += 1,
            Some(_) => return None,
        }
        c.wsp();
        let name = c.run(is_token);
        c.wsp();
        let has_value = c.peek() == Some(b'=');
        if has_value {
            c.i += 1;
            c.wsp();
        }
        // Each known parameter's value is read with its own grammar in one pass.
        if name.eq_ignore_ascii_case("branch") {
            let b = c.run(is_token);
            if b.is_empty() || !c.at_value_end() {
                return None;
            }
            branch.get_or_insert(b);
        } else if name.eq_ignore_ascii_case("rport") {
            let p = c.run(|b| b.is_ascii_digit());
            if !c.at_value_end() {
                return None;
            }
            let r = if p.is_empty() { None } else { Some(valid_port(p.as_bytes())?) };
            rport.get_or_insert(r);
        } else if name.eq_ignore_ascii_case("received") {
            let r = c.run(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"'));
            if r.is_empty() || !c.at_value_end() {
                return None;
            }
            received.get_or_insert(r);
        } else if has_value {
            if name.is_empty() {
                return None;
            }
            c.skip_value()?;
        }
    }
    Some(ViaInfo {
        transport,
        host: host.to_owned(),
        port,
        branch: branch.map(str::to_owned),
        rport,
        received: received.map(str::to_owned),
    })
}

// ---------------------------------------------------------------------------------------------
// Failure paths (cold: allocation and rescanning are fine here)

fn skip_leading_crlf(mut b: &[u8]) -> &[u8] {
    while let Some(rest) = b.strip_prefix(b"\r\n") {
        b = rest;
    }
    b
}

#[cold]
fn too_large(bytes: &[u8], kind: Kind, max: usize) -> ParseError {
    if kind == (Kind::Request { ack: false }) {
        let window = bytes.get(..max).unwrap_or(bytes);
        if let Some(h) = find_head_end(window) {
            return answer_or_drop(
                &bytes[..h + 4],
                kind,
                413,
                "Request Entity Too Large",
                Some(DropReason::TooLarge),
            );
        }
    }
    ParseError::Drop { reason: DropReason::TooLarge }
}

#[cold]
fn fail(
    msg: &[u8],
    kind: Kind,
    code: u16,
    reason: &'static str,
    structural: Option<DropReason>,
) -> ParseError {
    answer_or_drop(msg, kind, code, reason, structural)
}

/// The answer for a bad request, or the drop label: `structural` names a limit that was hit and
/// wins over the generic response/ACK label.
fn answer_or_drop(
    msg: &[u8],
    kind: Kind,
    code: u16,
    reason: &str,
    structural: Option<DropReason>,
) -> ParseError {
    let drop = |r: DropReason| ParseError::Drop { reason: structural.unwrap_or(r) };
    match kind {
        Kind::Response => drop(DropReason::BadResponse),
        Kind::Request { ack: true } => drop(DropReason::BadAck),
        Kind::Request { ack: false } => match build_answer(msg, code, reason) {
            Ok(e) => e,
            Err(why) => drop(why),
        },
    }
}

/// A header value that can be echoed into a response without letting the peer inject lines.
fn echo_safe(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Builds a response from the raw header lines, so it works whatever rsip thought of the message.
fn build_answer(msg: &[u8], code: u16, reason: &str) -> Result<ParseError, DropReason> {
    let head_end = find_head_end(msg).map_or(msg.len(), |h| h + 2);
    let head: Cow<'_, [u8]> = normalize::normalize(&msg[..head_end]);
    let head: &[u8] = &head;

    let (mut vias, mut from, mut to, mut call_id, mut cseq) = (Vec::new(), None, None, None, None);
    let mut i = find_crlf(head, 0).map_or(head.len(), |e| e + 2);
    while i < head.len() {
        let end = find_crlf(head, i).unwrap_or(head.len());
        let line = &head[i..end];
        i = end + 2;
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = &line[..colon];
        let value = trim_bytes(&line[colon + 1..]);
        let slot = match name {
            n if n.eq_ignore_ascii_case(b"Via") => {
                if !echo_safe(value) {
                    return Err(DropReason::BadHeader);
                }
                vias.push(value);
                continue;
            }
            n if n.eq_ignore_ascii_case(b"From") => &mut from,
            n if n.eq_ignore_ascii_case(b"To") => &mut to,
            n if n.eq_ignore_ascii_case(b"Call-ID") => &mut call_id,
            n if n.eq_ignore_ascii_case(b"CSeq") => &mut cseq,
            _ => continue,
        };
        if slot.is_none() {
            if !echo_safe(value) {
                return Err(DropReason::BadHeader);
            }
            *slot = Some(value);
        }
    }
    // Only the Via is needed to route an answer back; whatever else is present is echoed so the
    // peer (and whoever reads the capture) sees which request was refused and why.
    let top = vias.first().ok_or(DropReason::MissingHeader)?;
    let top_str = std::str::from_utf8(top).map_err(|_| DropReason::BadHeader)?;
    let via = via_values(top_str).0.and_then(parse_via).ok_or(DropReason::BadHeader)?;

    let mut out = Vec::with_capacity(256 + head.len() / 2);
    out.extend_from_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());
    for v in &vias {
        put(&mut out, b"Via", v);
    }
    if let Some(from) = from {
        put(&mut out, b"From", from);
    }
    if let Some(to) = to {
        let has_tag = std::str::from_utf8(to).ok().and_then(tag).is_some();
        out.extend_from_slice(b"To: ");
        out.extend_from_slice(to);
        if !has_tag {
            // Derived from the request so a retransmission gets the same response (RFC 3261
            // §8.2.6.2 asks for a tag; identical retransmitted answers keep the client simple).
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (call_id, cseq, top, from).hash(&mut h);
            out.extend_from_slice(format!(";tag={:016x}", h.finish()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(call_id) = call_id {
        put(&mut out, b"Call-ID", call_id);
    }
    if let Some(cseq) = cseq {
        put(&mut out, b"CSeq", cseq);
    }
    if code == 501 || code == 405 {
        put(&mut out, b"Allow", ALLOW.as_bytes());
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Ok(ParseError::Answer { code, reason: reason.to_owned(), response: out, via })
}

fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn trim_bytes(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Every `.sip` file under ../shared/vectors, sorted (shared by the sip and transport tests).
#[cfg(test)]
pub(crate) fn vector_files() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("vectors directory") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "sip") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors")), &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const INVITE: &str = "INVITE sip:bob@b.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.a.example:5060;branch=z9hG4bK776asdhds;rport\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@b.example>\r\n\
        From: Alice <sip:alice@a.example>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.a.example\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@pc33.a.example>\r\n\
        Content-Length: 4\r\n\
        \r\n\
        abcd";

    fn p(m: &str) -> Result<SipMsg, ParseError> {
        parse(m.as_bytes(), &Limits::default())
    }

    /// INVITE with the header line starting with `name:` replaced (or removed when `line` is "").
    fn with(name: &str, line: &str) -> String {
        let mut out = String::new();
        for l in INVITE.split_inclusive("\r\n") {
            if l.starts_with(&format!("{name}:")) {
                if !line.is_empty() {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            } else {
                out.push_str(l);
            }
        }
        out
    }

    #[track_caller]
    fn answered(r: Result<SipMsg, ParseError>, code: u16, reason: &str) -> String {
        match r {
            Err(ParseError::Answer { code: c, reason: rs, response, via }) => {
                assert_eq!((c, rs.as_str()), (code, reason));
                assert_eq!(via.branch.as_deref(), Some("z9hG4bK776asdhds"));
                let text = String::from_utf8(response).unwrap();
                assert!(text.starts_with(&format!("SIP/2.0 {code} {reason}\r\n")), "{text}");
                assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
                text
            }
            other => panic!("expected {code} {reason}, got {other:?}"),
        }
    }

    #[track_caller]
    #[test]
    fn missing_identity_headers_still_get_an_answer_naming_them() {
        for (name, reason) in [
            ("Call-ID", "Missing Call-ID"),
            ("From", "Missing From"),
            ("To", "Missing To"),
            ("CSeq", "Missing CSeq"),
        ] {
            let resp = answered(p(&with(name, "")), 400, reason);
            assert!(resp.starts_with(&format!("SIP/2.0 400 {reason}\r\n")), "{resp}");
            assert!(resp.contains("\r\nVia: "), "{resp}");
        }
    }

    fn dropped(r: Result<SipMsg, ParseError>, reason: DropReason) {
        match r {
            Err(ParseError::Drop { reason: got }) => assert_eq!(got, reason),
            other => panic!("expected drop {reason:?}, got {other:?}"),
        }
    }

    #[test]
    fn every_vector_parses() {
        let files = vector_files();
        assert!(files.len() >= 42, "found only {} vectors", files.len());
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let msg = parse(&bytes, &Limits::default())
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy();
            // Every file has Content-Length equal to its body, so nothing may be cut.
            let head_end = find_head_end(&bytes).unwrap() + 4;
            assert_eq!(msg.body(), &bytes[head_end..], "{name}");
            assert_eq!(msg.is_request(), !bytes.starts_with(b"SIP/"), "{name}");
            assert!(msg.via.has_rfc3261_branch(), "{name}");
        }
    }

    fn vector(name: &str) -> SipMsg {
        let path = vector_files().into_iter().find(|p| p.ends_with(name)).unwrap();
        parse(&std::fs::read(path).unwrap(), &Limits::default()).unwrap()
    }

    #[test]
    fn hand_checked_vectors() {
        let m = vector("seed002/d2_01_invite_microsip.sip");
        assert_eq!(m.call_id, "6c46d346e3084913a77014b523c9e389");
        assert_eq!((m.cseq, m.cseq_method), (6521, Method::Invite));
        assert_eq!(m.via.branch.as_deref(), Some("z9hG4bKPj15728c40ffd34c83b084dc67d9e93d9c"));
        assert_eq!(
            (m.via.host.as_str(), m.via.port, m.via.rport),
            ("192.168.71.146", Some(50952), Some(None))
        );
        assert_eq!(m.via.transport, Transport::Udp);
        assert_eq!(m.from_tag.as_deref(), Some("cb9e96b542084e3db354b9a6e98e5527"));
        assert_eq!((m.to_tag.as_deref(), m.max_forwards, m.via_count), (None, Some(70), 1));
        assert_eq!(m.body().len(), 346);

        let m = vector("seed002/d2_04_200ok_invite.sip");
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.via.rport, Some(Some(50952)));
        assert_eq!(m.via.received.as_deref(), Some("192.168.80.11"));
        assert_eq!(m.to_tag.as_deref(), Some("9d6ab2e6da5e4ad09aea771ed6a12343"));
        assert_eq!(m.method(), Method::Invite);

        let m = vector("seed002/d2_08_options_cucm.sip");
        assert_eq!(m.max_forwards, Some(0));

        // Lync: ALL-CAPS names, Content-Length mid-headers, two Allow lines kept apart.
        let m = vector("seed003/011_avaya_ipo_rx_invite_from_lync_mediation_tcp.sip");
        assert_eq!(m.call_id, "c731b9e9-1a15-4c2f-935e-8c3499717c97");
        assert_eq!((m.cseq, m.cseq_method), (34, Method::Invite));
        assert_eq!(m.via.branch.as_deref(), Some("z9hG4bK62ddc3c0"));
        assert_eq!((m.via.transport, m.via.port), (Transport::Tcp, Some(52740)));
        assert_eq!(m.from_tag.as_deref(), Some("fa8db7831f"));
        assert_eq!(
            m.header_all("Allow").collect::<Vec<_>>(),
            ["ACK", "CANCEL,BYE,INVITE,PRACK,UPDATE"]
        );
        assert!(m.has_option_tag("Allow", "prack"));
        assert_eq!(m.body().len(), 338);

        let m = vector("seed003/006_pjsipwiki_ack_for_401_cseq9775.sip");
        assert_eq!((m.cseq, m.method()), (9775, Method::Ack));
    }

    #[test]
    fn good_request_and_its_fields() {
        let m = p(INVITE).unwrap();
        assert_eq!(m.call_id, "a84b4c76e66710@pc33.a.example");
        assert_eq!(m.via.rport, Some(None));
        assert_eq!(m.body(), b"abcd");
        assert_eq!(m.header("content-length"), Some("4"));
    }

    #[test]
    fn compact_forms_folding_and_space_before_colon() {
        let m = "\r\n\r\nINVITE sip:bob@b.example SIP/2.0\r\n\
            v: SIP/2.0/UDP pc33.a.example;branch=z9hG4bK1\r\n\
            VIA  : SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK0,\r\n SIP/2.0/UDP 10.0.0.1\r\n\
            t: <sip:bob@b.example>\r\n\
            f: <sip:alice@a.example>\r\n\t;tag=88\r\n\
            i: abc@d\r\n\
            CSeq\t: 1\r\n INVITE\r\n\
            Max-Forwards: 70\r\n\
            l: 2\r\n\
            \r\n\
            hi";
        let msg = p(m).unwrap();
        assert_eq!(msg.call_id, "abc@d");
        assert_eq!((msg.cseq, msg.cseq_method), (1, Method::Invite));
        assert_eq!(msg.from_tag.as_deref(), Some("88"));
        assert_eq!(msg.via.branch.as_deref(), Some("z9hG4bK1"));
        assert_eq!(msg.via_count, 3);
        assert_eq!(msg.body(), b"hi");
        assert_eq!(msg.header_all("Via").count(), 2);
    }

    #[test]
    fn via_variants() {
        let v = parse_via(
            "SIP / 2.0 / TLS [2001:db8::1]:5061 ;branch=z9hG4bKx; received=10.0.0.1;RPORT=5062",
        )
        .unwrap();
        assert_eq!(
            (v.transport, v.host.as_str(), v.port),
            (Transport::Tls, "2001:db8::1", Some(5061))
        );
        assert_eq!(
            (v.branch.as_deref(), v.received.as_deref(), v.rport),
            (Some("z9hG4bKx"), Some("10.0.0.1"), Some(Some(5062)))
        );
        let v = parse_via("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKy;x=\"a;b,c\"").unwrap();
        assert_eq!((v.transport, v.port, v.rport), (Transport::Other, None, None));
        for bad in [
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "SIP/2.0/UDPhost",
            "SIP/3.0/UDP h",
            "SIPS/2.0/UDP h",
            "SIP/2.0/UDP h:0",
            "SIP/2.0/UDP h:65536",
            "SIP/2.0/UDP h:",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP [zz]",
            "SIP/2.0/UDP h;branch=",
            "SIP/2.0/UDP h;rport=x",
            "SIP/2.0/UDP a b",
        ] {
            assert_eq!(parse_via(bad), None, "{bad}");
        }
    }

    #[test]
    fn answer_copies_the_dialog_headers() {
        let m = with("Max-Forwards", "Max-Forwards: 999").replace(
            "Max-Forwards: 999\r\n",
            "Max-Forwards: 999\r\nVia: SIP/2.0/UDP p2.example, SIP/2.0/TCP p3.example\r\n",
        );
        let text = answered(p(&m), 400, "Invalid Max-Forwards");
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[1], "Via: SIP/2.0/UDP pc33.a.example:5060;branch=z9hG4bK776asdhds;rport");
        assert_eq!(lines[2], "Via: SIP/2.0/UDP p2.example, SIP/2.0/TCP p3.example");
        assert_eq!(lines[3], "From: Alice <sip:alice@a.example>;tag=1928301774");
        assert!(lines[4].starts_with("To: Bob <sip:bob@b.example>;tag="), "{}", lines[4]);
        assert_eq!(lines[5], "Call-ID: a84b4c76e66710@pc33.a.example");
        assert_eq!(lines[6], "CSeq: 314159 INVITE");
        // The same request gets the same To tag; the answer is itself a valid response.
        assert_eq!(text, answered(p(&m), 400, "Invalid Max-Forwards"));
        let resp = parse(text.as_bytes(), &Limits::default()).unwrap();
        assert_eq!((resp.status(), resp.via_count), (Some(400), 3));
        assert!(resp.to_tag.is_some());
        // An existing To tag is kept as it is.
        let m = with("To", "To: <sip:bob@b.example>;tag=xyz")
            .replace("Max-Forwards: 70", "Max-Forwards: -1");
        let text = answered(p(&m), 400, "Invalid Max-Forwards");
        assert!(text.contains("\r\nTo: <sip:bob@b.example>;tag=xyz\r\n"), "{text}");
    }

    #[test]
    fn each_bad_request_reason() {
        let cases: Vec<(String, u16, &str)> = vec![
            (
                with("Call-ID", "Call-ID: a84b4c76e66710@pc33.a.example\r\ni: other"),
                400,
                "Conflicting Call-ID",
            ),
            (
                with("From", "From: Alice <sip:alice@a.example>;tag=1\r\nFrom: <sip:x@y>;tag=2"),
                400,
                "Conflicting From",
            ),
            (with("To", "To: <sip:a@b>\r\nTo: <sip:c@d>"), 400, "Conflicting To"),
            (with("CSeq", "CSeq: 314159 INVITE\r\nCSeq: 2 INVITE"), 400, "Conflicting CSeq"),
            (
                with("Content-Length", "Content-Length: 4\r\nl: 3"),
                400,
                "Conflicting Content-Length",
            ),
            (
                with("Max-Forwards", "Max-Forwards: 70\r\nMax-Forwards: 69"),
                400,
                "Conflicting Max-Forwards",
            ),
            (with("Call-ID", "Call-ID: has space"), 400, "Malformed Call-ID"),
            (with("From", "From: Alice;tag=1"), 400, "Malformed From"),
            (with("To", "To: <>"), 400, "Malformed To"),
            (with("CSeq", "CSeq: abc INVITE"), 400, "Malformed CSeq"),
            (with("CSeq", "CSeq: 1"), 400, "Malformed CSeq"),
            (with("CSeq", "CSeq: 12345678901 INVITE"), 400, "Malformed CSeq"),
            (with("CSeq", "CSeq: 2147483648 INVITE"), 400, "CSeq Number Out Of Range"),
            (with("CSeq", "CSeq: 1 BYE"), 400, "CSeq Method Mismatch"),
            (with("CSeq", "CSeq: 1 invite"), 400, "CSeq Method Mismatch"),
            (with("Max-Forwards", "Max-Forwards: 256"), 400, "Invalid Max-Forwards"),
            (with("Max-Forwards", "Max-Forwards: ten"), 400, "Invalid Max-Forwards"),
            (with("Content-Length", "Content-Length: four"), 400, "Invalid Content-Length"),
            (with("Content-Length", "Content-Length: 5"), 400, "Body Shorter Than Content-Length"),
            (with("Contact", "Contact <sip:x>"), 400, "Malformed Header Line"),
            (with("Contact", "Contact: \u{7f}").replace('\u{7f}', "\u{e9}"), 0, ""),
            (
                INVITE.replace("sip:bob@b.example SIP", "sip:bob@b.example:99999 SIP"),
                400,
                "Malformed Request-URI",
            ),
            (
                INVITE.replace(
                    "INVITE sip:bob@b.example SIP/2.0",
                    "INVITE  sip:bob@b.example SIP/2.0",
                ),
                400,
                "Malformed Request Line",
            ),
            (
                INVITE.replace(
                    "INVITE sip:bob@b.example SIP/2.0",
                    "INVITE sip:bob@b.example sip/2.0",
                ),
                400,
                "Malformed Request Line",
            ),
            (INVITE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"), 505, "Version Not Supported"),
            (INVITE.replace("\r\n\r\nabcd", "\r\n"), 400, "Incomplete Header Section"),
        ];
        for (m, code, reason) in cases {
            if code == 0 {
                // Non-ASCII in a header value is legal UTF-8: it parses.
                p(&m).unwrap();
                continue;
            }
            answered(p(&m), code, reason);
        }
    }

    #[test]
    fn invalid_utf8_is_answered() {
        let mut m = with("Contact", "Contact: <sip:\u{1}@x>").into_bytes();
        let at = m.iter().position(|&b| b == 1).unwrap();
        m[at] = 0xff;
        answered(parse(&m, &Limits::default()), 400, "Invalid UTF-8 In Headers");
    }

    #[test]
    fn unknown_method_gets_501_with_allow() {
        let m = INVITE.replace("INVITE", "FOO");
        let text = answered(p(&m), 501, "Not Implemented");
        assert!(text.contains(&format!("\r\nAllow: {ALLOW}\r\n")));
        assert!(text.contains("\r\nCSeq: 314159 FOO\r\n"));
        // Lower-case is another method (RFC 3261 §7.1: methods are case-sensitive).
        answered(p(&INVITE.replacen("INVITE", "invite", 1)), 501, "Not Implemented");
        // Known to rsip, not to us: parses, the upper layers answer 405.
        assert_eq!(p(&INVITE.replace("INVITE", "PUBLISH")).unwrap().method(), Method::Publish);
    }

    #[test]
    fn limits() {
        let small = Limits { max_message_size: 300, max_headers: 7, max_vias: 1 };
        let big =
            INVITE.replace("Content-Length: 4\r\n\r\nabcd", &format!("\r\n{}", "x".repeat(500)));
        let r =
            parse(big.as_bytes(), &Limits { max_message_size: 400, max_headers: 8, max_vias: 2 });
        answered(r, 413, "Request Entity Too Large");
        let r = parse(INVITE.as_bytes(), &Limits { max_message_size: 100, ..small });
        dropped(r, DropReason::TooLarge);
        let r = parse(INVITE.as_bytes(), &Limits { max_message_size: 1000, ..small });
        answered(r, 400, "Too Many Headers");
        let m = with("Contact", "Via: SIP/2.0/UDP b.example");
        let r = parse(m.as_bytes(), &Limits { max_message_size: 1000, max_headers: 8, ..small });
        answered(r, 400, "Too Many Via Headers");
        let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
        dropped(
            parse(resp.as_bytes(), &Limits { max_message_size: 10, ..small }),
            DropReason::TooLarge,
        );
    }

    #[test]
    fn body_longer_than_content_length_is_cut() {
        let m = format!("{INVITE}\r\n\r\ntrailing");
        assert_eq!(p(&m).unwrap().body(), b"abcd");
        // Without Content-Length the datagram is the body.
        assert_eq!(p(&with("Content-Length", "")).unwrap().body(), b"abcd");
    }

    #[test]
    fn unanswerable_requests_are_dropped() {
        dropped(p(&with("Via", "")), DropReason::MissingHeader);
        dropped(p(&with("Via", "Via: SIP/2.0/UDP")), DropReason::BadHeader);
        dropped(p(&with("Via", "Via: SIP/2.0/UDP h;branch=a\u{1}b")), DropReason::BadHeader);
        dropped(p("\r\n\r\n"), DropReason::Empty);
        dropped(p(""), DropReason::Empty);
        dropped(p("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), DropReason::NotSip);
        dropped(parse(b"\x16\x03\x01\x02\x00\x01\x00", &Limits::default()), DropReason::NotSip);
        dropped(p("INVITE\r\nVia: SIP/2.0/UDP h\r\n\r\n"), DropReason::NotSip);
        // A readable Via is all an answer needs, however broken the rest is.
        assert!(matches!(
            p("INVITE SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n"),
            Err(ParseError::Answer { code: 400, .. })
        ));
        dropped(p("<bad> sip:x SIP/2.0\r\n\r\n"), DropReason::BadStartLine);
    }

    #[test]
    fn bad_responses_and_acks_are_dropped() {
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(p(ok).unwrap().status(), Some(200));
        for bad in [
            ok.replace("200 OK", "700 Nope"),
            ok.replace("200 OK", "099 Low"),
            ok.replace("200 OK", "20 OK"),
            ok.replace("SIP/2.0 200", "SIP/2.1 200"),
            ok.replace("Call-ID: x\r\n", ""),
            ok.replace("1 INVITE", "1 FOO"),
            ok.replace("Content-Length: 0", "Content-Length: 9"),
            ok.replace("\r\n\r\n", "\r\n"),
        ] {
            dropped(p(&bad), DropReason::BadResponse);
        }
        let ack = INVITE.replace("INVITE", "ACK");
        assert_eq!(p(&ack).unwrap().method(), Method::Ack);
        dropped(p(&ack.replace("314159 ACK", "1 BYE")), DropReason::BadAck);
        dropped(p(&ack.replace("SIP/2.0\r\n", "SIP/3.0\r\n")), DropReason::BadAck);
        let ack = with("Max-Forwards", "Max-Forwards: 256").replace("INVITE", "ACK");
        dropped(
            parse(ack.as_bytes(), &Limits { max_headers: 2, ..Limits::default() }),
            DropReason::TooManyHeaders,
        );
    }

    #[test]
    fn reject_for_framing_errors() {
        let m = with("Content-Length", "");
        match reject(m.as_bytes(), 400, "Missing Content-Length\r\nX: injected") {
            ParseError::Answer { code, reason, response, .. } => {
                assert_eq!((code, reason.as_str()), (400, "Missing Content-LengthX: injected"));
                assert!(
                    response.starts_with(b"SIP/2.0 400 Missing Content-LengthX: injected\r\nVia: ")
                );
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(
            reject(b"SIP/2.0 200 OK\r\n\r\n", 400, "x"),
            ParseError::Drop { reason: DropReason::BadResponse }
        );
    }

    #[test]
    fn tag_agrees_with_headers_param() {
        use crate::sip::headers::param;
        let mut values: Vec<String> = vec![
            "<sip:a@b>;tag=1".into(),
            "\"x>y\" <sip:a@b;tag=no>;foo;TAG = 2 ;bar=3".into(),
            "sip:a@b;tag=3;tag=4".into(),
            "<sip:a@b>;tag=".into(),
            "<sip:a@b>;tag".into(),
            "<sip:a@b>;xtag=1;tagx=2".into(),
            "<sip:a@b>".into(),
            ";;;tag=5;".into(),
        ];
        for path in vector_files() {
            let m = parse(&std::fs::read(path).unwrap(), &Limits::default()).unwrap();
            values.extend(m.header_all("From").chain(m.header_all("To")).map(str::to_owned));
        }
        let mut rng = StdRng::seed_from_u64(11);
        for v in values.clone() {
            for _ in 0..50 {
                let mut m = v.clone();
                let mut at = rng.gen_range(0..=m.len());
                while !m.is_char_boundary(at) {
                    at -= 1;
                }
                m.insert(at, [';', '=', '>', ' ', '\t'][rng.gen_range(0..5)]);
                values.push(m);
            }
        }
        for v in &values {
            assert_eq!(tag(v), param(v, "tag").filter(|t| !t.is_empty()), "{v:?}");
        }
    }

    #[test]
    fn addr_ok_cases() {
        for good in
            ["<sip:a@b>", "sip:a@b;tag=1", "\"a<b:c\" <sips:x@y>", "Bob <tel:+1>", " <urn:x>"]
        {
            assert!(addr_ok(good), "{good}");
        }
        for bad in ["", "Alice", "<>", "<sip:>", "\"a <sip:x>\"", ":x", "<:x>"] {
            assert!(!addr_ok(bad), "{bad}");
        }
    }

    #[test]
    fn labels_are_bounded_snake_case() {
        use DropReason::*;
        for r in [
            Empty,
            TooLarge,
            NotSip,
            BadStartLine,
            BadHeader,
            MissingHeader,
            TooManyHeaders,
            BadResponse,
            BadAck,
        ] {
            assert!(r.label().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{r}");
        }
    }

    /// What rsip itself makes of the (normalized) bytes must be what `parse` built, apart from
    /// the body past Content-Length and `Subscription-State`, which rsip's parser leaves as
    /// `Other` while `headers::make` (and so `parse`) uses rsip's own variant.
    fn assert_same_as_rsip(input: &[u8], ours: &SipMsg) {
        let input = skip_leading_crlf(input);
        let norm = normalize::normalize(input);
        let theirs = match rsip::SipMessage::try_from(&norm[..]) {
            Ok(m) => m,
            Err(_) => {
                panic!("rsip refuses what parse accepted: {:?}", String::from_utf8_lossy(input))
            }
        };
        let names = |h: &rsip::Headers| -> Vec<(String, String)> {
            h.iter()
                .map(|h| {
                    let (n, v) = headers::name_value(h);
                    (n.to_ascii_lowercase(), v.to_owned())
                })
                .collect()
        };
        let (a, b) = (
            ours.headers(),
            match &theirs {
                rsip::SipMessage::Request(r) => &r.headers,
                rsip::SipMessage::Response(r) => &r.headers,
            },
        );
        assert_eq!(names(a), names(b), "{:?}", String::from_utf8_lossy(input));
        for (x, y) in a.iter().zip(b.iter()) {
            let sub = headers::is_named(x, "Subscription-State");
            assert!(
                sub || std::mem::discriminant(x) == std::mem::discriminant(y),
                "{x:?} vs {y:?}"
            );
        }
        assert!(theirs.body().starts_with(ours.body()));
        match (&ours.raw, &theirs) {
            (rsip::SipMessage::Request(x), rsip::SipMessage::Request(y)) => {
                assert_eq!((&x.method, &x.uri, &x.version), (&y.method, &y.uri, &y.version));
            }
            (rsip::SipMessage::Response(x), rsip::SipMessage::Response(y)) => {
                assert_eq!((&x.status_code, &x.version), (&y.status_code, &y.version));
            }
            _ => panic!("kind differs"),
        }
    }

    #[test]
    fn builds_what_rsip_builds() {
        for path in vector_files() {
            let bytes = std::fs::read(&path).unwrap();
            let ours = parse(&bytes, &Limits::default()).unwrap();
            assert_same_as_rsip(&bytes, &ours);
            let theirs = rsip::SipMessage::try_from(&bytes[..]).unwrap();
            if !ours.headers().iter().any(|h| headers::is_named(h, "Subscription-State")) {
                assert_eq!(ours.raw, theirs, "{}", path.display());
            }
        }
        let odd = "SIP/2.0 299 Very Custom\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nX-Empty:\r\nX-Tabs:\t\ta \r\n\r\n";
        let ours = p(odd).unwrap();
        assert_eq!(ours.raw, rsip::SipMessage::try_from(odd).unwrap());
        assert_eq!(ours.header("x-tabs"), Some("a "));
    }

    /// Parses under catch_unwind so a panic names the input that caused it.
    fn no_panic(input: &[u8], limits: &Limits) {
        let r = std::panic::catch_unwind(|| parse(input, limits));
        match r {
            Err(_) => panic!("parse panicked on {:?}", String::from_utf8_lossy(input)),
            Ok(Err(ParseError::Answer { reason, response, .. })) => {
                assert!(
                    reason.len() <= MAX_REASON
                        && reason.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                );
                assert!(response.ends_with(b"Content-Length: 0\r\n\r\n"));
                // Answers must not let the peer inject header lines: no bare CR or LF.
                let crlf = response.windows(2).filter(|w| w == b"\r\n").count();
                let cr_or_lf = response.iter().filter(|&&b| b == b'\r' || b == b'\n').count();
                assert_eq!(cr_or_lf, 2 * crlf, "{:?}", String::from_utf8_lossy(&response));
            }
            Ok(Ok(msg)) => assert_same_as_rsip(input, &msg),
            Ok(Err(ParseError::Drop { .. })) => {}
        }
    }

    #[test]
    fn truncated_vectors_never_panic() {
        let small = Limits { max_message_size: 700, max_headers: 10, max_vias: 1 };
        for path in vector_files() {
            let bytes = std::fs::read(path).unwrap();
            for n in 0..=bytes.len() {
                no_panic(&bytes[..n], &Limits::default());
                no_panic(&bytes[n..], &Limits::default());
            }
            no_panic(&bytes, &small);
        }
    }

    #[test]
    fn mutated_vectors_never_panic() {
        let vectors: Vec<Vec<u8>> =
            vector_files().into_iter().map(|p| std::fs::read(p).unwrap()).collect();
        let mut rng = StdRng::seed_from_u64(0x5195_0bde);
        let tokens: [&[u8]; 10] =
            [b"\r\n", b"\r\n ", b" ", b":", b";", b",", b"\"", b"[", b"\r\n\r\n", b"\xff"];
        for _ in 0..6000 {
            let mut m = vectors[rng.gen_range(0..vectors.len())].clone();
            for _ in 0..rng.gen_range(1..=4) {
                if m.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..m.len());
                match rng.gen_range(0..5) {
                    0 => m[at] ^= 1 << rng.gen_range(0..8),
                    1 => {
                        m.remove(at);
                    }
                    2 => m.insert(at, rng.gen()),
                    3 => {
                        let t = tokens[rng.gen_range(0..tokens.len())];
                        m.splice(at..at, t.iter().copied());
                    }
                    _ => {
                        let end = (at + rng.gen_range(1..40)).min(m.len());
                        let chunk = m[at..end].to_vec();
                        m.splice(at..at, chunk);
                    }
                }
            }
            no_panic(&m, &Limits::default());
        }
    }
}
