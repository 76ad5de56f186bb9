//! Rewrites the legal header-section forms rsip 0.4 cannot read into forms it can, before it sees
//! the bytes.
//!
//! rsip rejects three things RFC 3261 allows (see ../shared/reference/rsip-notes.md):
//! header lines folded onto a continuation line (§7.3.1), whitespace between a header name and its
//! colon (`Via  : ...`, §7.3.1 / §25.1 HCOLON), and it does not know the compact header names
//! (§7.3.3 and the extensions' registrations). This module unfolds, strips the whitespace and
//! expands the compact names. Only the header section is touched; the body is copied byte for byte.
//!
//! Almost every real message needs none of this, so the common case is one read-only scan and a
//! borrowed result: no allocation, no copy.

use std::borrow::Cow;

/// Compact header names (RFC 3261 §7.3.3 and the RFCs that registered the others) and the full
/// names rsip and the rest of sipborder match on.
const COMPACT: [(u8, &str); 20] = [
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// The full header name for a one-letter compact name (case-insensitive), if it is one.
pub fn expand_compact(name: &[u8]) -> Option<&'static str> {
    match name {
        [c] => {
            let c = c.to_ascii_lowercase();
            COMPACT.iter().find(|(k, _)| *k == c).map(|(_, full)| *full)
        }
        _ => None,
    }
}

/// RFC 3261 §25.1 `token` characters (the same set rsip accepts in header names), as a table
/// because the scan tests every byte of every header name.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~');
        i += 1;
    }
    t
};

/// True for RFC 3261 `token` characters.
#[inline]
pub fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

#[inline]
fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Index of the first `needle` in `hay`, eight bytes at a time (std offers no public memchr for
/// byte slices, and a byte loop is the scan's main cost).
#[inline]
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes) ^ pattern;
        // Classic "has zero byte": the lowest set bit marks the first matching byte.
        let found = word.wrapping_sub(LO) & !word & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|&b| b == needle).map(|p| offset + p)
}

/// Index of the first `\r\n` at or after `from`, or `None`.
#[inline]
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let nl = i + find_byte(b'\n', buf.get(i..)?)?;
        if nl > from && buf.get(nl - 1) == Some(&b'\r') {
            return Some(nl - 1);
        }
        i = nl + 1;
    }
}

/// Index of the first `\r\n\r\n` (the end of the header section), or `None`.
#[inline]
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let at = find_crlf(buf, i)?;
        if buf.get(at + 2..at + 4) == Some(b"\r\n") {
            return Some(at);
        }
        i = at + 2;
    }
}

/// What the read-only scan learned about a message's header section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadScan {
    /// Number of logical header lines (continuation lines not counted, start line not counted).
    pub header_lines: usize,
    /// Offset of the body (just past the empty line), `None` when the message has no empty line.
    pub body_start: Option<usize>,
    /// True when unfolding, whitespace stripping or compact-name expansion would change the bytes.
    pub needs_rewrite: bool,
}

/// The result of [`normalize_scan`]: the bytes rsip can read plus what the scan counted.
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    /// The message, borrowed when nothing needed changing.
    pub bytes: Cow<'a, [u8]>,
    /// Number of logical header lines.
    pub header_lines: usize,
    /// Offset of the body in `bytes`, `None` when the message has no empty line after its headers.
    pub body_start: Option<usize>,
}

/// How one header line has to change, decided from its name part.
enum LineFix {
    /// Leave the line as it is.
    Keep,
    /// Replace bytes `..colon` (name and any whitespace before the colon) with `name`.
    Rename { name_end: usize, colon: usize },
}

/// Looks at the start of a (non-continuation) header line.
#[inline]
fn line_fix(line: &[u8]) -> LineFix {
    let name_end = line.iter().position(|&b| !is_token(b)).unwrap_or(line.len());
    if name_end == 0 {
        return LineFix::Keep;
    }
    let mut colon = name_end;
    while line.get(colon).copied().is_some_and(is_wsp) {
        colon += 1;
    }
    if line.get(colon) != Some(&b':') {
        return LineFix::Keep;
    }
    if colon != name_end || (name_end == 1 && expand_compact(&line[..1]).is_some()) {
        LineFix::Rename { name_end, colon }
    } else {
        LineFix::Keep
    }
}

/// Cheap pre-check for [`line_fix`]: only a one-letter name (`v:`) or whitespace just before the
/// first colon (`Via :`, `v :`) can need a fix. False positives (a colon inside a malformed line)
/// only cost the slow path, which then keeps the line as it is.
#[inline]
fn may_need_fix(line: &[u8]) -> bool {
    match find_byte(b':', line) {
        Some(1) => expand_compact(&line[..1]).is_some(),
        Some(colon) if colon > 1 => is_wsp(line[colon - 1]),
        _ => false,
    }
}

/// Scans the header section without changing anything: one pass, line by line, stopping at the
/// empty line; lines and colons are found eight bytes at a time.
pub fn scan(msg: &[u8]) -> HeadScan {
    let mut header_lines = 0;
    let mut needs_rewrite = false;
    // The start line is never rewritten and never a header.
    let Some(start_end) = find_crlf(msg, 0) else {
        return HeadScan { header_lines, body_start: None, needs_rewrite };
    };
    let mut i = start_end + 2;
    let mut first = true;
    loop {
        let end = find_crlf(msg, i);
        if end == Some(i) {
            return HeadScan { header_lines, body_start: Some(i + 2), needs_rewrite };
        }
        let line = msg.get(i..end.unwrap_or(msg.len())).unwrap_or_default();
        match line.first() {
            None => {}
            // A continuation right after the start line has nothing to continue: rsip will refuse
            // it and the caller reports a malformed header.
            Some(&b) if is_wsp(b) => needs_rewrite |= !first,
            Some(_) => {
                header_lines += 1;
                needs_rewrite = needs_rewrite || may_need_fix(line);
            }
        }
        first = false;
        match end {
            Some(e) => i = e + 2,
            None => return HeadScan { header_lines, body_start: None, needs_rewrite },
        }
    }
}

/// Unfolds, strips whitespace before colons and expands compact names in the header section.
/// Returns the input borrowed when nothing needs changing.
pub fn normalize(msg: &[u8]) -> Cow<'_, [u8]> {
    normalize_scan(msg).bytes
}

/// [`normalize`] that also returns what the scan counted, so the parser need not scan again.
pub fn normalize_scan(msg: &[u8]) -> Normalized<'_> {
    let s = scan(msg);
    if !s.needs_rewrite {
        return Normalized {
            bytes: Cow::Borrowed(msg),
            header_lines: s.header_lines,
            body_start: s.body_start,
        };
    }
    let (out, body_start) = rewrite(msg, s.body_start);
    Normalized { bytes: Cow::Owned(out), header_lines: s.header_lines, body_start }
}

/// The slow path: builds the rewritten message. Returns it and the new body offset.
fn rewrite(msg: &[u8], body_start: Option<usize>) -> (Vec<u8>, Option<usize>) {
    let head_end = match body_start {
        Some(b) => b - 2,
        None => msg.len(),
    };
    let head = &msg[..head_end];
    // Expanded names can grow a line by up to 18 bytes; a little slack avoids a reallocation.
    let mut out = Vec::with_capacity(msg.len() + 64);
    let start_end = find_crlf(head, 0).unwrap_or(head.len());
    out.extend_from_slice(&head[..start_end]);
    let mut pending_crlf = start_end < head.len();
    let mut i = start_end + 2;
    let mut first = true;
    while i < head.len() {
        let (end, has_crlf) = match find_crlf(head, i) {
            Some(e) => (e, true),
            None => (head.len(), false),
        };
        let line = &head[i..end];
        if !first && line.first().copied().is_some_and(is_wsp) {
            // RFC 3261 §7.3.1: the CRLF and the leading whitespace count as one SP.
            let content = line.iter().position(|&b| !is_wsp(b)).map_or(&line[..0], |p| &line[p..]);
            if pending_crlf {
                out.push(b' ');
            }
            out.extend_from_slice(content);
        } else {
            if pending_crlf {
                out.extend_from_slice(b"\r\n");
            }
            match line_fix(line) {
                LineFix::Keep => out.extend_from_slice(line),
                LineFix::Rename { name_end, colon } => {
                    let name = &line[..name_end];
                    match expand_compact(name) {
                        Some(full) => out.extend_from_slice(full.as_bytes()),
                        None => out.extend_from_slice(name),
                    }
                    out.extend_from_slice(&line[colon..]);
                }
            }
        }
        first = false;
        pending_crlf = has_crlf;
        i = end + 2;
    }
    if pending_crlf {
        out.extend_from_slice(b"\r\n");
    }
    let new_body_start = body_start.map(|b| {
        out.extend_from_slice(b"\r\n");
        let at = out.len();
        out.extend_from_slice(&msg[b..]);
        at
    });
    (out, new_body_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        String::from_utf8(normalize(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn vectors_take_the_fast_path() {
        let mut n = 0;
        for path in crate::sip::parse::vector_files() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(matches!(normalize(&bytes), Cow::Borrowed(_)), "{}", path.display());
            n += 1;
        }
        assert!(n >= 42);
    }

    #[test]
    fn unfolds_continuation_lines() {
        let m = "INVITE sip:a@b SIP/2.0\r\nSubject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!\r\nTo: <sip:a@b>\r\n\r\n";
        assert_eq!(
            norm(m),
            "INVITE sip:a@b SIP/2.0\r\nSubject: I know you're there, pick up the phone and talk to me!\r\nTo: <sip:a@b>\r\n\r\n"
        );
    }

    #[test]
    fn strips_whitespace_before_colon() {
        assert_eq!(
            norm("OPTIONS sip:a SIP/2.0\r\nVia  : SIP/2.0/UDP h\r\nMax-Forwards\t: 70\r\n\r\n"),
            "OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: 70\r\n\r\n"
        );
    }

    #[test]
    fn expands_compact_forms_case_insensitively() {
        let m = "INVITE sip:a SIP/2.0\r\nv: SIP/2.0/UDP h\r\nI:abc\r\nF : <sip:x>\r\nt: <sip:y>\r\nL: 0\r\nm: <sip:c>\r\nk: timer\r\nx: 90\r\nX-Foo: a\r\nz: unknown\r\n\r\n";
        assert_eq!(
            norm(m),
            "INVITE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID:abc\r\nFrom: <sip:x>\r\nTo: <sip:y>\r\nContent-Length: 0\r\nContact: <sip:c>\r\nSupported: timer\r\nSession-Expires: 90\r\nX-Foo: a\r\nz: unknown\r\n\r\n"
        );
        for (c, full) in COMPACT {
            assert_eq!(expand_compact(&[c]), Some(full));
            assert_eq!(expand_compact(&[c.to_ascii_uppercase()]), Some(full));
        }
        assert_eq!(expand_compact(b"q"), None);
        assert_eq!(expand_compact(b"ll"), None);
    }

    #[test]
    fn body_is_kept_byte_exact() {
        let body: &[u8] = b"v=0\r\n o=folded? no\r\nl: not a header\r\n\r\n\xff\x00";
        let mut m = format!("MESSAGE sip:a SIP/2.0\r\nl: {}\r\n\r\n", body.len()).into_bytes();
        m.extend_from_slice(body);
        let out = normalize_scan(&m);
        let bytes = out.bytes.as_ref();
        let b = out.body_start.unwrap();
        assert_eq!(&bytes[b..], body);
        assert!(bytes.starts_with(b"MESSAGE sip:a SIP/2.0\r\nContent-Length: "));
        assert_eq!(out.header_lines, 1);
    }

    #[test]
    fn fast_path_borrows_and_counts() {
        let m = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a>\r\n\r\nbody";
        let out = normalize_scan(m);
        assert!(matches!(out.bytes, Cow::Borrowed(_)));
        assert_eq!(out.header_lines, 2);
        assert_eq!(out.body_start, Some(m.len() - 4));
    }

    #[test]
    fn message_without_empty_line_is_rewritten_as_is() {
        assert_eq!(norm("BYE sip:a SIP/2.0\r\nv: x\r\n"), "BYE sip:a SIP/2.0\r\nVia: x\r\n");
        assert_eq!(norm("BYE sip:a SIP/2.0\r\nv: x\r\n y"), "BYE sip:a SIP/2.0\r\nVia: x y");
        assert_eq!(scan(b"BYE sip:a SIP/2.0\r\nv: x").body_start, None);
    }

    #[test]
    fn continuation_after_start_line_is_left_alone() {
        let m = "BYE sip:a SIP/2.0\r\n folded: x\r\n\r\n";
        assert!(matches!(normalize(m.as_bytes()), Cow::Borrowed(_)));
    }

    #[test]
    fn find_byte_matches_a_plain_search() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        for start in 0..40 {
            for len in 0..hay.len() - start {
                let h = &hay[start..start + len];
                for needle in [
                    b'\n',
                    0,
                    0x80,
                    0xff,
                    h.first().copied().unwrap_or(1),
                    h.last().copied().unwrap_or(2),
                ] {
                    assert_eq!(find_byte(needle, h), h.iter().position(|&b| b == needle));
                }
            }
        }
    }

    #[test]
    fn scan_agrees_with_a_line_by_line_reading() {
        let cases = [
            ("A x SIP/2.0\r\nVia: a\r\nTo: b\r\n\r\nbody", 2, false),
            ("A x SIP/2.0\r\nv: a\r\n\r\n", 1, true),
            ("A x SIP/2.0\r\nVia : a\r\n\r\n", 1, true),
            ("A x SIP/2.0\r\nVia\t: a\r\n\r\n", 1, true),
            ("A x SIP/2.0\r\nVia: a b : c\r\nx-y z: 1\r\n\r\n", 2, false),
            ("A x SIP/2.0\r\nVia: a\r\n b\r\n\r\n", 1, true),
            ("A x SIP/2.0\r\nq: a\r\nVia: \r\r\n\r\n", 2, false),
            ("A x SIP/2.0\r\n\r\n", 0, false),
            ("A x SIP/2.0\r\nVia: a", 1, false),
            ("A x SIP/2.0", 0, false),
        ];
        for (m, lines, rewrite) in cases {
            let s = scan(m.as_bytes());
            assert_eq!((s.header_lines, s.needs_rewrite), (lines, rewrite), "{m:?}");
            assert_eq!(s.body_start, find_head_end(m.as_bytes()).map(|h| h + 4), "{m:?}");
        }
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for m in [
            "",
            "\r",
            "\r\n",
            "\r\n\r\n",
            " \r\n \r\n",
            "a\r\n\r\n",
            "x\r\nv",
            "x\r\n\t",
            "x\r\nv :",
            "x\r\n:",
        ] {
            let _ = normalize_scan(m.as_bytes());
        }
    }
}
