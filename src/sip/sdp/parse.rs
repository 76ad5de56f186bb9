//! SDP parsing (RFC 4566/8866) that borrows the body and remembers every line's bytes.
//!
//! Only the lines sipborder reads or owns are interpreted (`v=`, `o=`, `c=`, `m=`, `s=`, and the
//! attributes `rtcp`, `rtcp-mux`, directions, `rtpmap`, `fmtp`, `rtcp-fb`, and ICE's); everything
//! else is kept as opaque bytes so that [`SessionDescription::rewrite`] can hand it on untouched.
//! Lines that sipborder owns must be well formed, because it writes them back; every other line
//! only has to look like `<letter>=<value>`.
//!
//! [`SessionDescription::rewrite`]: super::SessionDescription::rewrite

use std::net::IpAddr;
use std::ops::Range;

use super::direction::Direction;
use super::error::{SdpError, SdpErrorReason};

/// Line ending of a body, taken from its first line, used for lines sipborder adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineEnding {
    CrLf,
    Lf,
}

impl LineEnding {
    pub(crate) fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::CrLf => b"\r\n",
            LineEnding::Lf => b"\n",
        }
    }
}

/// What a line is, as far as rewriting and filtering care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Empty or whitespace only (not valid SDP, but seen at the end of bodies).
    Blank,
    /// `s=`: required, so a leaking one is replaced rather than dropped.
    SessionName,
    Origin,
    /// `c=`; `hold` is the unspecified address of a legacy hold, which a rewrite keeps.
    Connection {
        hold: Option<IpAddr>,
    },
    Media,
    /// `a=rtcp` in a media section.
    Rtcp {
        port: u16,
        has_address: bool,
    },
    /// Any ICE attribute: removed or replaced by every rewrite.
    Ice,
    /// `a=rtpmap`; `index` into the section's `rtpmaps`.
    Rtpmap {
        pt: u8,
        index: usize,
    },
    /// `a=fmtp` or `a=rtcp-fb` for one payload type.
    PayloadAttr {
        pt: u8,
    },
    Other,
}

/// One line of the body: its text without the line ending, and the ending as it was
/// (`\r\n`, `\n`, or nothing on a last line without one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line<'a> {
    pub(crate) text: &'a [u8],
    pub(crate) eol: &'a [u8],
    pub(crate) kind: LineKind,
}

/// The `o=` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Username, `-` for most phones.
    pub username: &'a str,
    /// Session id, numeric by RFC but kept as text because not every endpoint complies.
    pub sess_id: &'a str,
    /// Session version, as text for the same reason.
    pub sess_version: &'a str,
    /// `IN`.
    pub nettype: &'a str,
    /// `IP4` or `IP6`.
    pub addrtype: &'a str,
    /// The address as written (an IP address or a host name).
    pub address: &'a str,
    /// `address` when it is an IP address.
    pub ip: Option<IpAddr>,
}

impl Origin<'_> {
    /// The session id as a number, if it is one.
    pub fn sess_id_number(&self) -> Option<u64> {
        parse_digits(self.sess_id)
    }

    /// The session version as a number, if it is one.
    pub fn sess_version_number(&self) -> Option<u64> {
        parse_digits(self.sess_version)
    }
}

/// A `c=` line, or the address part of `a=rtcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection<'a> {
    /// `IN`.
    pub nettype: &'a str,
    /// `IP4` or `IP6`.
    pub addrtype: &'a str,
    /// The address as written, without a multicast `/ttl` or `/count` suffix.
    pub address: &'a str,
    /// `address` when it is an IP address.
    pub ip: Option<IpAddr>,
}

impl Connection<'_> {
    /// The legacy RFC 2543 hold: `c=IN IP4 0.0.0.0` (or the IPv6 unspecified address).
    pub fn is_hold(&self) -> bool {
        self.ip.is_some_and(|ip| ip.is_unspecified())
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtcp<'a> {
    /// RTCP port.
    pub port: u16,
    /// Address, when the attribute names one.
    pub connection: Option<Connection<'a>>,
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpMap<'a> {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMA`, `telephone-event`, ...).
    pub encoding: &'a str,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u16>,
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fmtp<'a> {
    /// Payload type.
    pub payload_type: u8,
    /// Everything after the payload type.
    pub params: &'a str,
}

/// The ICE attributes of a session or media level (RFC 8839).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceAttributes<'a> {
    /// `a=ice-ufrag`.
    pub ufrag: Option<&'a str>,
    /// `a=ice-pwd`.
    pub pwd: Option<&'a str>,
    /// `a=ice-lite` was present.
    pub lite: bool,
    /// `a=ice-options`.
    pub options: Option<&'a str>,
    /// Every `a=candidate` line, whole (`a=candidate:...`), without its line ending.
    pub candidates: Vec<&'a str>,
    /// `a=end-of-candidates` was present.
    pub end_of_candidates: bool,
}

impl IceAttributes<'_> {
    /// Whether any ICE attribute was seen at this level.
    pub fn is_present(&self) -> bool {
        self.ufrag.is_some()
            || self.pwd.is_some()
            || self.lite
            || self.options.is_some()
            || !self.candidates.is_empty()
            || self.end_of_candidates
    }
}

/// One `m=` section and the attributes sipborder reads from it.
#[derive(Clone, Debug)]
pub struct MediaSection<'a> {
    /// `audio`, `video`, `image`, ...
    pub media: &'a str,
    /// Port; 0 marks a rejected or disabled stream.
    pub port: u16,
    /// The `/<count>` after the port, when present.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `udptl`, ...
    pub proto: &'a str,
    /// The format list as written (payload types for RTP); see [`MediaSection::fmts`].
    pub fmt_list: &'a str,
    /// The section's own `c=`.
    pub connection: Option<Connection<'a>>,
    /// The section's `a=rtcp` (the first, if repeated).
    pub rtcp: Option<Rtcp<'a>>,
    /// `a=rtcp-mux` was present.
    pub rtcp_mux: bool,
    /// The section's own direction attribute; `None` if absent (see
    /// [`MediaSection::effective_direction`]).
    pub direction: Option<Direction>,
    /// Every `a=rtpmap`, in order, including repeated payload types and payload types missing
    /// from the `m=` line.
    pub rtpmaps: Vec<RtpMap<'a>>,
    /// Every `a=fmtp` with a numeric format, in order.
    pub fmtps: Vec<Fmtp<'a>>,
    /// The section's ICE attributes.
    pub ice: IceAttributes<'a>,
    // Copies of the session level, so that the effective values need no back reference.
    session_connection: Option<Connection<'a>>,
    session_direction: Option<Direction>,
    /// Byte span of the port digits in the `m=` line.
    pub(crate) port_span: Range<usize>,
    /// Byte offset just past the proto token in the `m=` line.
    pub(crate) proto_end: usize,
    /// Index of the section's last non-blank line, where added attributes go.
    pub(crate) insert_after: usize,
}

impl<'a> MediaSection<'a> {
    /// The formats of the `m=` line, in order, duplicates included.
    pub fn fmts(&self) -> impl Iterator<Item = &'a str> + 'a {
        tokens(self.fmt_list).map(|(_, t)| t)
    }

    /// The numeric formats of the `m=` line (RTP payload types), in order, duplicates included.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + 'a {
        self.fmts().filter_map(parse_digits)
    }

    /// Port 0: the stream is rejected (RFC 3264 §6) or disabled.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// Where the endpoint receives this stream: the section's `c=`, else the session's.
    pub fn effective_address(&self) -> Option<&Connection<'a>> {
        self.connection.as_ref().or(self.session_connection.as_ref())
    }

    /// The section's direction, else the session's, else `sendrecv` (RFC 4566 default).
    pub fn effective_direction(&self) -> Direction {
        self.direction.or(self.session_direction).unwrap_or(Direction::SendRecv)
    }

    /// On hold: `a=sendonly` or `a=inactive` (section or session level), or `c=` 0.0.0.0.
    pub fn is_hold(&self) -> bool {
        matches!(self.effective_direction(), Direction::SendOnly | Direction::Inactive)
            || self.effective_address().is_some_and(Connection::is_hold)
    }

    /// The `a=rtpmap` entries for one payload type (several when an endpoint repeats it).
    pub fn rtpmaps_for(&self, pt: u8) -> impl Iterator<Item = &RtpMap<'a>> {
        self.rtpmaps.iter().filter(move |r| r.payload_type == pt)
    }

    /// The encoding of a payload type: its first `a=rtpmap`, else the static RFC 3551 name.
    pub fn encoding_name(&self, pt: u8) -> Option<&'a str> {
        match self.rtpmaps_for(pt).next() {
            Some(r) => Some(r.encoding),
            None => super::codecs::static_encoding(pt),
        }
    }

    /// Whether the stream carries RTP (so its formats are payload types).
    pub fn is_rtp(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
    }
}

/// A parsed SDP body that borrows the bytes it came from.
#[derive(Clone, Debug)]
pub struct SessionDescription<'a> {
    pub(crate) lines: Vec<Line<'a>>,
    pub(crate) line_ending: LineEnding,
    pub(crate) origin: Origin<'a>,
    pub(crate) connection: Option<Connection<'a>>,
    pub(crate) direction: Option<Direction>,
    pub(crate) ice: IceAttributes<'a>,
    pub(crate) media: Vec<MediaSection<'a>>,
    pub(crate) endpoint_addresses: Vec<&'a str>,
    /// Index of the session part's last non-blank line, where `a=ice-lite` goes.
    pub(crate) session_insert_after: usize,
    pub(crate) body_len: usize,
}

impl<'a> SessionDescription<'a> {
    /// Parses an SDP body. Never panics; refuses bodies that do not start with `v=0`, lack an
    /// `o=`, contain a line that is not `<letter>=<value>`, or have a malformed line that
    /// sipborder owns (`o=`, `c=`, `m=`, `a=rtcp`, `a=rtpmap`).
    pub fn parse(body: &'a [u8]) -> Result<Self, SdpError> {
        Parser::new(body).run()
    }

    /// The `o=` line.
    pub fn origin(&self) -> &Origin<'a> {
        &self.origin
    }

    /// The session-level `c=`.
    pub fn connection(&self) -> Option<&Connection<'a>> {
        self.connection.as_ref()
    }

    /// The session-level direction attribute, `None` if absent.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// The session-level ICE attributes.
    pub fn ice(&self) -> &IceAttributes<'a> {
        &self.ice
    }

    /// The `m=` sections, in order.
    pub fn media(&self) -> &[MediaSection<'a>] {
        &self.media
    }

    /// Whether the endpoint offered ICE anywhere (session or any section).
    pub fn offers_ice(&self) -> bool {
        self.ice.is_present() || self.media.iter().any(|m| m.ice.is_present())
    }

    /// Whether the body's first line ends in CRLF (otherwise bare LF); added lines follow it.
    pub fn uses_crlf(&self) -> bool {
        self.line_ending == LineEnding::CrLf
    }

    /// Number of lines in the body.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The endpoint's addresses as written in `o=`, `c=`, `a=rtcp` and `a=candidate`
    /// (unspecified addresses left out): what a rewrite must not let through.
    pub fn endpoint_addresses(&self) -> &[&'a str] {
        &self.endpoint_addresses
    }
}

/// Parses an all-digit string; `str::parse` alone would accept a leading `+`.
pub(crate) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Whitespace-separated tokens (space or tab) with their byte offsets in `s`.
fn tokens(s: &str) -> Tokens<'_> {
    Tokens { s, at: 0 }
}

/// Byte-wise splitting: `str::split` with a char pattern costs several times more, and both
/// separators are ASCII, so every cut is a char boundary.
struct Tokens<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let bytes = self.s.as_bytes();
        let start =
            self.at + bytes.get(self.at..)?.iter().position(|&b| b != b' ' && b != b'\t')?;
        let len = bytes.get(start..)?.iter().position(|&b| b == b' ' || b == b'\t');
        let end = len.map_or(bytes.len(), |l| start + l);
        self.at = end;
        Some((start, self.s.get(start..end)?))
    }
}

fn trim(s: &str) -> &str {
    let t = trim_bytes(s.as_bytes());
    let start = t.as_ptr() as usize - s.as_ptr() as usize;
    s.get(start..start + t.len()).unwrap_or_default()
}

/// Position of the first `needle` in `hay`, eight bytes at a time: line and attribute scanning
/// is most of the parse, and std has no public memchr.
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let x = word ^ pattern;
        // Non-zero exactly when some byte of x is zero, i.e. some byte equals `needle`.
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return chunk.iter().position(|&b| b == needle).map(|p| base + p);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&b| b == needle).map(|p| base + p)
}

/// Lines of `body`, each with its `\n` if it has one.
fn lines_of(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = find_byte(rest, b'\n').map_or(rest.len(), |p| p + 1);
        let (line, tail) = rest.split_at_checked(end)?;
        rest = tail;
        Some(line)
    })
}

fn is_blank(text: &[u8]) -> bool {
    text.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn trim_bytes(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The ICE attributes (RFC 8839), all removed or replaced by a rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IceAttr {
    Candidate,
    Ufrag,
    Pwd,
    Lite,
    Options,
    EndOfCandidates,
    /// `remote-candidates`, `ice-mismatch`, `ice-pacing`.
    Other,
}

/// The attributes sipborder reads, told apart in one `match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attr {
    Ice(IceAttr),
    Direction(Direction),
    Rtcp,
    RtcpMux,
    Rtpmap,
    Fmtp,
    RtcpFb,
    Other,
}

impl Attr {
    fn classify(name: &[u8]) -> Attr {
        // RFC 4566 names are case-sensitive, but some PBXs shout; a lowercase copy on the stack
        // accepts both for the price of one comparison chain.
        let mut buf = [0u8; 20];
        let Some(lower) = buf.get_mut(..name.len()) else {
            return Attr::Other;
        };
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        match &*lower {
            b"rtpmap" => Attr::Rtpmap,
            b"fmtp" => Attr::Fmtp,
            b"rtcp" => Attr::Rtcp,
            b"rtcp-mux" => Attr::RtcpMux,
            b"rtcp-fb" => Attr::RtcpFb,
            b"sendrecv" => Attr::Direction(Direction::SendRecv),
            b"sendonly" => Attr::Direction(Direction::SendOnly),
            b"recvonly" => Attr::Direction(Direction::RecvOnly),
            b"inactive" => Attr::Direction(Direction::Inactive),
            b"candidate" => Attr::Ice(IceAttr::Candidate),
            b"ice-ufrag" => Attr::Ice(IceAttr::Ufrag),
            b"ice-pwd" => Attr::Ice(IceAttr::Pwd),
            b"ice-lite" => Attr::Ice(IceAttr::Lite),
            b"ice-options" => Attr::Ice(IceAttr::Options),
            b"end-of-candidates" => Attr::Ice(IceAttr::EndOfCandidates),
            b"remote-candidates" | b"ice-mismatch" | b"ice-pacing" => Attr::Ice(IceAttr::Other),
            _ => Attr::Other,
        }
    }
}

/// `<nettype> <addrtype> <address>[/ttl[/count]]`, the shape shared by `c=` and `a=rtcp`.
fn parse_connection<'a>(nettype: &'a str, addrtype: &'a str, address: &'a str) -> Connection<'a> {
    let address = split_slash(address).0;
    Connection { nettype, addrtype, address, ip: address.parse().ok() }
}

struct Parser<'a> {
    body: &'a [u8],
    /// The body as text when all of it is UTF-8 (the usual case): one validation instead of
    /// one per line.
    text: Option<&'a str>,
    sdp: SessionDescription<'a>,
    have_origin: bool,
    line_no: usize,
}

impl<'a> Parser<'a> {
    fn new(body: &'a [u8]) -> Self {
        // Real bodies average 20-30 bytes a line; a rare regrowth is cheaper than counting.
        let estimate = body.len() / 20 + 4;
        Parser {
            body,
            text: std::str::from_utf8(body).ok(),
            sdp: SessionDescription {
                lines: Vec::with_capacity(estimate),
                line_ending: LineEnding::CrLf,
                origin: Origin {
                    username: "",
                    sess_id: "",
                    sess_version: "",
                    nettype: "",
                    addrtype: "",
                    address: "",
                    ip: None,
                },
                connection: None,
                direction: None,
                ice: IceAttributes::default(),
                media: Vec::new(),
                endpoint_addresses: Vec::new(),
                session_insert_after: 0,
                body_len: body.len(),
            },
            have_origin: false,
            line_no: 0,
        }
    }

    fn err(&self, reason: SdpErrorReason) -> SdpError {
        SdpError::new(self.line_no, reason)
    }

    /// `bytes`, a slice of the body, as text.
    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, SdpError> {
        let whole = self.text.and_then(|text| {
            // `bytes` lies within the body, so the offset cannot underflow; `get` refuses a cut
            // that is not a char boundary.
            let start = (bytes.as_ptr() as usize).checked_sub(self.body.as_ptr() as usize)?;
            text.get(start..start + bytes.len())
        });
        match whole {
            Some(s) => Ok(s),
            None => std::str::from_utf8(bytes).map_err(|_| self.err(SdpErrorReason::NotUtf8)),
        }
    }

    fn run(mut self) -> Result<SessionDescription<'a>, SdpError> {
        if is_blank(self.body) {
            return Err(SdpError::new(1, SdpErrorReason::Empty));
        }
        let mut seen_version = false;
        for raw in lines_of(self.body) {
            self.line_no += 1;
            let (text, eol) = match raw.strip_suffix(b"\r\n") {
                Some(t) => (t, raw.get(t.len()..).unwrap_or_default()),
                None => match raw.strip_suffix(b"\n") {
                    Some(t) => (t, raw.get(t.len()..).unwrap_or_default()),
                    None => (raw, &b""[..]),
                },
            };
            if self.line_no == 1 {
                self.sdp.line_ending = if eol == b"\n" { LineEnding::Lf } else { LineEnding::CrLf };
            }
            let kind = if is_blank(text) {
                LineKind::Blank
            } else {
                match text {
                    [b'v', b'=', value @ ..] => {
                        if seen_version {
                            return Err(self.err(SdpErrorReason::DuplicateVersion));
                        }
                        if self.line_no != 1 || trim(self.utf8(value)?) != "0" {
                            return Err(self.err(SdpErrorReason::MissingVersion));
                        }
                        seen_version = true;
                        LineKind::Other
                    }
                    _ if !seen_version => return Err(self.err(SdpErrorReason::MissingVersion)),
                    [b's', b'=', ..] => LineKind::SessionName,
                    [b'o', b'=', value @ ..] => self.origin(value)?,
                    [b'c', b'=', value @ ..] => self.connection(value)?,
                    [b'm', b'=', value @ ..] => self.media(value)?,
                    [b'a', b'=', value @ ..] => self.attribute(text, value)?,
                    [t, b'=', ..] if t.is_ascii_alphabetic() => LineKind::Other,
                    _ => return Err(self.err(SdpErrorReason::NotTypeValue)),
                }
            };
            let index = self.sdp.lines.len();
            if kind != LineKind::Blank {
                match self.sdp.media.last_mut() {
                    Some(m) => m.insert_after = index,
                    None => self.sdp.session_insert_after = index,
                }
            }
            self.sdp.lines.push(Line { text, eol, kind });
        }
        if !self.have_origin {
            return Err(SdpError::new(2, SdpErrorReason::MissingOrigin));
        }
        Ok(self.sdp)
    }

    fn note_address(&mut self, addr: &'a str, ip: Option<IpAddr>) {
        let keep = match ip {
            Some(ip) => !ip.is_unspecified(),
            // Host names and scoped IPv6 can leak as well; short or dotless tokens are more
            // likely junk, and matching them would drop innocent lines.
            None => addr.len() >= 4 && addr.contains(['.', ':']),
        };
        if keep && !self.sdp.endpoint_addresses.iter().any(|a| a.eq_ignore_ascii_case(addr)) {
            self.sdp.endpoint_addresses.push(addr);
        }
    }

    fn origin(&mut self, value: &'a [u8]) -> Result<LineKind, SdpError> {
        if self.have_origin || !self.sdp.media.is_empty() {
            return Err(self.err(SdpErrorReason::BadOrigin));
        }
        let value = self.utf8(value)?;
        let mut t = tokens(value).map(|(_, t)| t);
        let (Some(username), Some(sess_id), Some(sess_version), Some(nettype), Some(addrtype)) =
            (t.next(), t.next(), t.next(), t.next(), t.next())
        else {
            return Err(self.err(SdpErrorReason::BadOrigin));
        };
        let (Some(address), None) = (t.next(), t.next()) else {
            return Err(self.err(SdpErrorReason::BadOrigin));
        };
        let ip = address.parse().ok();
        self.sdp.origin =
            Origin { username, sess_id, sess_version, nettype, addrtype, address, ip };
        self.have_origin = true;
        self.note_address(address, ip);
        Ok(LineKind::Origin)
    }

    fn connection(&mut self, value: &'a [u8]) -> Result<LineKind, SdpError> {
        let value = self.utf8(value)?;
        let mut t = tokens(value).map(|(_, t)| t);
        let (Some(nettype), Some(addrtype), Some(address), None) =
            (t.next(), t.next(), t.next(), t.next())
        else {
            return Err(self.err(SdpErrorReason::BadConnection));
        };
        let c = parse_connection(nettype, addrtype, address);
        self.note_address(c.address, c.ip);
        match self.sdp.media.last_mut() {
            Some(m) => {
                m.connection.get_or_insert(c);
            }
            None => {
                self.sdp.connection.get_or_insert(c);
            }
        }
        Ok(LineKind::Connection { hold: c.ip.filter(|ip| ip.is_unspecified()) })
    }

    fn media(&mut self, value: &'a [u8]) -> Result<LineKind, SdpError> {
        let value = self.utf8(value)?;
        let mut t = tokens(value);
        let (Some((_, media)), Some((port_at, port_tok)), Some((proto_at, proto))) =
            (t.next(), t.next(), t.next())
        else {
            return Err(self.err(SdpErrorReason::BadMedia));
        };
        let (port_str, count_str) = split_slash(port_tok);
        let port = parse_digits(port_str).ok_or(self.err(SdpErrorReason::BadPort))?;
        let port_count = match count_str {
            Some(c) => Some(parse_digits(c).ok_or(self.err(SdpErrorReason::BadPort))?),
            None => None,
        };
        let proto_end = proto_at + proto.len();
        let fmt_list = trim(value.get(proto_end..).unwrap_or_default());
        // Offsets are into `value`; the line text has "m=" in front.
        let index = self.sdp.lines.len();
        self.sdp.media.push(MediaSection {
            media,
            port,
            port_count,
            proto,
            fmt_list,
            connection: None,
            rtcp: None,
            rtcp_mux: false,
            direction: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ice: IceAttributes::default(),
            session_connection: self.sdp.connection,
            session_direction: self.sdp.direction,
            port_span: port_at + 2..port_at + 2 + port_str.len(),
            proto_end: proto_end + 2,
            insert_after: index,
        });
        Ok(LineKind::Media)
    }

    fn attribute(&mut self, text: &'a [u8], value: &'a [u8]) -> Result<LineKind, SdpError> {
        let (name, rest) = match find_byte(value, b':') {
            Some(at) => {
                (value.get(..at).unwrap_or_default(), value.get(at + 1..).unwrap_or_default())
            }
            None => (value, &b""[..]),
        };
        let attr = Attr::classify(trim_bytes(name));
        let media = self.sdp.media.last_mut();
        match (attr, media) {
            (Attr::Ice(ice), _) => {
                let v = trim(self.utf8(rest)?);
                let line = trim(self.utf8(text)?);
                self.ice_attribute(ice, v, line);
                Ok(LineKind::Ice)
            }
            (Attr::Direction(d), Some(m)) => {
                m.direction.get_or_insert(d);
                Ok(LineKind::Other)
            }
            (Attr::Direction(d), None) => {
                self.sdp.direction.get_or_insert(d);
                Ok(LineKind::Other)
            }
            // The rest only means something inside a media section.
            (_, None) | (Attr::Other, _) => Ok(LineKind::Other),
            (Attr::Rtcp, Some(_)) => self.rtcp(rest),
            (Attr::RtcpMux, Some(m)) => {
                m.rtcp_mux = true;
                Ok(LineKind::Other)
            }
            (Attr::Rtpmap, Some(_)) => self.rtpmap(rest),
            (Attr::Fmtp | Attr::RtcpFb, Some(_)) => Ok(self.payload_attribute(attr, rest)),
        }
    }

    /// `a=fmtp` and `a=rtcp-fb`; non-numeric formats (`a=rtcp-fb:*`, non-RTP media) are not
    /// tied to a payload type and stay ordinary lines.
    fn payload_attribute(&mut self, attr: Attr, rest: &'a [u8]) -> LineKind {
        let Ok(v) = self.utf8(rest) else {
            return LineKind::Other;
        };
        let v = trim(v);
        let (fmt, params) = v.split_once([' ', '\t']).unwrap_or((v, ""));
        let Some(pt) = parse_digits::<u8>(fmt) else {
            return LineKind::Other;
        };
        if attr == Attr::Fmtp {
            if let Some(m) = self.sdp.media.last_mut() {
                m.fmtps.push(Fmtp { payload_type: pt, params: trim(params) });
            }
        }
        LineKind::PayloadAttr { pt }
    }

    fn ice_attribute(&mut self, attr: IceAttr, v: &'a str, line: &'a str) {
        if attr == IceAttr::Candidate {
            // <foundation> <component> <transport> <priority> <address> <port> typ <type>
            // [raddr <address> rport <port>] ...
            let mut t = tokens(v).map(|(_, t)| t).skip(4);
            if let Some(addr) = t.next() {
                self.note_address(addr, addr.parse().ok());
            }
            let mut t = t.skip_while(|t| !t.eq_ignore_ascii_case("raddr")).skip(1);
            if let Some(addr) = t.next() {
                self.note_address(addr, addr.parse().ok());
            }
        }
        let ice = match self.sdp.media.last_mut() {
            Some(m) => &mut m.ice,
            None => &mut self.sdp.ice,
        };
        match attr {
            IceAttr::Candidate => ice.candidates.push(line),
            IceAttr::Ufrag => {
                ice.ufrag.get_or_insert(v);
            }
            IceAttr::Pwd => {
                ice.pwd.get_or_insert(v);
            }
            IceAttr::Lite => ice.lite = true,
            IceAttr::Options => {
                ice.options.get_or_insert(v);
            }
            IceAttr::EndOfCandidates => ice.end_of_candidates = true,
            IceAttr::Other => {}
        }
    }

    fn rtcp(&mut self, rest: &'a [u8]) -> Result<LineKind, SdpError> {
        let v = self.utf8(rest)?;
        let mut t = tokens(v).map(|(_, t)| t);
        let port = t.next().and_then(parse_digits).ok_or(self.err(SdpErrorReason::BadRtcp))?;
        let connection = match (t.next(), t.next(), t.next(), t.next()) {
            (None, ..) => None,
            (Some(nettype), Some(addrtype), Some(address), None) => {
                Some(parse_connection(nettype, addrtype, address))
            }
            _ => return Err(self.err(SdpErrorReason::BadRtcp)),
        };
        if let Some(c) = &connection {
            self.note_address(c.address, c.ip);
        }
        if let Some(m) = self.sdp.media.last_mut() {
            m.rtcp.get_or_insert(Rtcp { port, connection });
        }
        Ok(LineKind::Rtcp { port, has_address: connection.is_some() })
    }

    fn rtpmap(&mut self, rest: &'a [u8]) -> Result<LineKind, SdpError> {
        let v = self.utf8(rest)?;
        let map = parse_rtpmap(v).ok_or(self.err(SdpErrorReason::BadRtpmap))?;
        let Some(m) = self.sdp.media.last_mut() else {
            return Ok(LineKind::Other);
        };
        m.rtpmaps.push(map);
        Ok(LineKind::Rtpmap { pt: map.payload_type, index: m.rtpmaps.len() - 1 })
    }
}

/// `<pt> <encoding>/<clock rate>[/<channels>]`.
fn parse_rtpmap(v: &str) -> Option<RtpMap<'_>> {
    let mut t = tokens(v).map(|(_, t)| t);
    let (Some(pt), Some(spec), None) = (t.next(), t.next(), t.next()) else {
        return None;
    };
    let (encoding, rate) = split_slash(spec);
    let (rate, channels) = split_slash(rate?);
    let channels = match channels {
        Some(c) => Some(parse_digits(c)?),
        None => None,
    };
    if encoding.is_empty() {
        return None;
    }
    Some(RtpMap {
        payload_type: parse_digits(pt)?,
        encoding,
        clock_rate: parse_digits(rate)?,
        channels,
    })
}

/// `a/b` → (`a`, Some(`b`)), `a` → (`a`, None); byte-wise for the reason given at [`Tokens`].
fn split_slash(s: &str) -> (&str, Option<&str>) {
    match find_byte(s.as_bytes(), b'/') {
        Some(at) => (s.get(..at).unwrap_or_default(), s.get(at + 1..)),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{sdp_vectors, vector_body};
    use super::*;

    fn parse(s: &str) -> SessionDescription<'_> {
        SessionDescription::parse(s.as_bytes()).expect("parses")
    }

    #[test]
    fn every_vector_body_parses() {
        let vectors = sdp_vectors();
        assert!(vectors.len() >= 10, "found only {} SDP bodies", vectors.len());
        for (name, body) in &vectors {
            let sdp = SessionDescription::parse(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!sdp.media().is_empty(), "{name}");
            assert!(sdp.uses_crlf(), "{name}");
            assert_eq!(sdp.line_count(), body.split(|&b| b == b'\n').count() - 1, "{name}");
        }
    }

    #[test]
    fn microsip_offer_fields() {
        let body = vector_body("seed002/d2_01_invite_microsip.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let o = sdp.origin();
        assert_eq!(
            (o.username, o.sess_id, o.sess_version, o.nettype, o.addrtype, o.address),
            ("-", "3902655284", "3902655284", "IN", "IP4", "192.168.71.146")
        );
        assert_eq!(o.sess_version_number(), Some(3902655284));
        assert_eq!(o.ip, Some("192.168.71.146".parse().unwrap()));
        assert!(sdp.connection().is_none());
        let m = &sdp.media()[0];
        assert_eq!((m.media, m.port, m.port_count, m.proto), ("audio", 4008, None, "RTP/AVP"));
        assert_eq!(m.fmts().collect::<Vec<_>>(), ["8", "0", "101"]);
        assert_eq!(m.effective_address().unwrap().address, "192.168.71.146");
        let rtcp = m.rtcp.unwrap();
        assert_eq!(rtcp.port, 4009);
        assert_eq!(rtcp.connection.unwrap().ip, Some("192.168.71.146".parse().unwrap()));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert!(!m.rtcp_mux && !m.is_hold() && !m.is_rejected() && !sdp.offers_ice());
        assert_eq!(
            m.rtpmaps[2],
            RtpMap {
                payload_type: 101,
                encoding: "telephone-event",
                clock_rate: 8000,
                channels: None
            }
        );
        assert_eq!(m.fmtps, [Fmtp { payload_type: 101, params: "0-16" }]);
        assert_eq!(sdp.endpoint_addresses(), ["192.168.71.146"]);
    }

    #[test]
    fn digium_duplicate_payload_type_is_kept() {
        let body = vector_body("seed003/001_voxlink_invite_102_digium_d40_sdp.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(m.payload_types().filter(|&pt| pt == 58).count(), 2);
        let names: Vec<_> = m.rtpmaps_for(58).map(|r| r.encoding).collect();
        assert_eq!(names, ["L16", "L16-256"]);
        assert_eq!(m.encoding_name(58), Some("L16"));
        assert_eq!(sdp.connection().unwrap().address, "192.168.170.105");
    }

    #[test]
    fn rtpmap_without_format_is_kept() {
        let body =
            vector_body("seed003/003_pjsipwiki_invite_sipp_eggowaffles_unknown_endpoint.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let m = &sdp.media()[0];
        assert_eq!(m.payload_types().collect::<Vec<_>>(), [0]);
        assert_eq!(m.rtpmaps_for(8).next().unwrap().encoding, "PCMA");
    }

    #[test]
    fn cucm_answer_with_rejected_video() {
        let body = vector_body("seed002/d2_21_ack_with_answer.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        let [audio, video] = sdp.media() else { panic!("two sections") };
        assert!(!audio.is_rejected() && video.is_rejected());
        assert_eq!(audio.direction, None);
        assert_eq!(audio.effective_direction(), Direction::SendRecv);
        assert_eq!(video.direction, Some(Direction::Inactive));
        assert_eq!(video.effective_address().unwrap().address, "192.168.80.12");
        assert_eq!(sdp.origin().address, "192.168.80.100");
        assert_eq!(sdp.endpoint_addresses(), ["192.168.80.100", "192.168.80.12"]);
    }

    #[test]
    fn lync_rtcp_without_address() {
        let body = vector_body("seed003/011_avaya_ipo_rx_invite_from_lync_mediation_tcp.sip");
        let sdp = SessionDescription::parse(&body).unwrap();
        assert_eq!(sdp.media()[0].rtcp, Some(Rtcp { port: 55651, connection: None }));
        assert_eq!(sdp.media()[0].encoding_name(13), Some("CN"));
    }

    #[test]
    fn hold_forms() {
        let base = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        let sendonly = format!("{base}m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n");
        let inactive = format!("{base}m=audio 4000 RTP/AVP 0\r\na=inactive\r\n");
        let session = format!("{base}a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n");
        let zero = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0\r\n";
        let recvonly = format!("{base}m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n");
        for held in [&sendonly, &inactive, &session, zero] {
            assert!(parse(held).media()[0].is_hold(), "{held}");
        }
        assert_eq!(parse(&session).media()[0].direction, None);
        assert_eq!(parse(&session).direction(), Some(Direction::SendOnly));
        assert!(parse(zero).connection().unwrap().is_hold());
        assert!(!parse(&recvonly).media()[0].is_hold());
    }

    #[test]
    fn lf_only_and_unterminated_last_line() {
        let sdp = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000/2 RTP/AVP 0");
        assert!(!sdp.uses_crlf());
        let m = &sdp.media()[0];
        assert_eq!((m.port, m.port_count), (4000, Some(2)));
        assert!(m.effective_address().is_none());
    }

    #[test]
    fn ice_attributes_are_collected() {
        let sdp = parse(super::super::test_support::ICE_OFFER);
        assert!(sdp.offers_ice());
        let m = &sdp.media()[0];
        assert_eq!(m.ice.ufrag, Some("8hhY"));
        assert_eq!(m.ice.pwd, Some("asd88fgpdd777uzjYhagZg"));
        assert_eq!(m.ice.options, Some("trickle"));
        assert_eq!(m.ice.candidates.len(), 2);
        assert!(m.ice.candidates[0].starts_with("a=candidate:1 1 UDP"));
        assert!(m.ice.end_of_candidates && m.rtcp_mux);
        assert_eq!(sdp.endpoint_addresses(), ["192.168.1.20", "198.51.100.7"]);
    }

    #[test]
    fn find_byte_matches_a_plain_search() {
        let hay = b"a=rtpmap:101 telephone-event/8000\r\nx";
        for n in 0..=hay.len() {
            let h = &hay[..n];
            for needle in [b'\n', b':', b'/', b'a', b'x', 0u8, 0x80] {
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "{n} {needle}"
                );
            }
        }
        assert_eq!(lines_of(b"a\r\nb\nc").collect::<Vec<_>>(), [&b"a\r\n"[..], b"b\n", b"c"]);
        assert_eq!(lines_of(b"").count(), 0);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let cases: [(&[u8], usize, SdpErrorReason); 12] = [
            (b"", 1, SdpErrorReason::Empty),
            (b" \r\n\r\n", 1, SdpErrorReason::Empty),
            (b"o=- 1 1 IN IP4 1.2.3.4\r\n", 1, SdpErrorReason::MissingVersion),
            (b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n", 1, SdpErrorReason::MissingVersion),
            (b"v=0\r\ns=-\r\n", 2, SdpErrorReason::MissingOrigin),
            (b"v=0\r\no=- 1 IN IP4 1.2.3.4\r\n", 2, SdpErrorReason::BadOrigin),
            (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 70000 RTP/AVP 0\r\n", 3, SdpErrorReason::BadPort),
            (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio +4 RTP/AVP 0\r\n", 3, SdpErrorReason::BadPort),
            (b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 4000\r\n", 3, SdpErrorReason::BadMedia),
            (b"v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4\r\n", 3, SdpErrorReason::BadConnection),
            (b"v=0\r\no=- 1 1 IN IP4 a\r\n\xff\xfe garbage\r\n", 3, SdpErrorReason::NotTypeValue),
            (b"v=0\r\no=\xff 1 1 IN IP4 a\r\n", 2, SdpErrorReason::NotUtf8),
        ];
        for (body, line, reason) in cases {
            let err = SessionDescription::parse(body).unwrap_err();
            assert_eq!(err, SdpError { line, reason }, "{:?}", String::from_utf8_lossy(body));
        }
        let more: [&[u8]; 5] = [
            b"\x00\x01\x02\x03",
            b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 4 RTP/AVP 0\r\na=rtcp:x\r\n",
            b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 4 RTP/AVP 0\r\na=rtcp:5 IN IP4\r\n",
            b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 4 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            b"v=0\r\nv=0\r\no=- 1 1 IN IP4 a\r\n",
        ];
        for body in more {
            assert!(
                SessionDescription::parse(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let err = SessionDescription::parse(b"v=0\r\nxx\r\n").unwrap_err();
        assert_eq!(err.to_string(), "SDP line 2: not a <type>=<value> line");
    }
}
