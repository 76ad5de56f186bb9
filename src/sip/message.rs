//! `SipMsg`: one parsed, validated SIP message with the fields every layer needs extracted once.
//!
//! rsip does the grammar; this type adds what rsip does not (see ../shared/reference/rsip-notes.md):
//! the semantic checks of RFC 3261 §8.1.1 (Call-ID, CSeq, From, To, Via, Max-Forwards present and
//! well formed) and a cache of the identifiers the transaction and dialog layers match on, so no
//! layer re-parses a header on the hot path.

use rsip::{Header, Method};

/// Transport named in a Via header (or used on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// Anything else (SCTP, WS, ...): kept so it can be echoed, never used for sending.
    Other,
}

impl Transport {
    /// The token as written in a Via (`UDP`, `TCP`, `TLS`).
    pub fn as_via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Other => "UDP",
        }
    }

    /// Reliable transports never retransmit (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// The top Via of a message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// Transport token.
    pub transport: Transport,
    /// sent-by host (IP or name, without brackets for IPv6).
    pub host: String,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// `branch` parameter, if any.
    pub branch: Option<String>,
    /// `rport` parameter: `None` absent, `Some(None)` present without value, `Some(Some(p))` with value.
    pub rport: Option<Option<u16>>,
    /// `received` parameter, if any.
    pub received: Option<String>,
}

impl ViaInfo {
    /// True when the branch carries the RFC 3261 magic cookie, so matching by branch is allowed.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch.as_deref().is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// Start line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request: method and Request-URI.
    Request {
        /// The method.
        method: Method,
        /// Request-URI.
        uri: rsip::Uri,
    },
    /// A response: status code and reason phrase.
    Response {
        /// Status code, 100..=699.
        code: u16,
    },
}

/// One parsed and validated SIP message.
#[derive(Debug, Clone)]
pub struct SipMsg {
    /// The message as rsip parsed it; headers are kept in wire order.
    pub raw: rsip::SipMessage,
    /// Call-ID value.
    pub call_id: String,
    /// CSeq sequence number (0..2^31-1).
    pub cseq: u32,
    /// CSeq method (equals the request method for requests).
    pub cseq_method: Method,
    /// From tag (required in requests by us? no: RFC 2543 peers may omit; None then).
    pub from_tag: Option<String>,
    /// To tag; present in in-dialog requests and most responses.
    pub to_tag: Option<String>,
    /// The top Via.
    pub via: ViaInfo,
    /// Number of Via header values.
    pub via_count: usize,
    /// Max-Forwards value if present.
    pub max_forwards: Option<u32>,
}

impl SipMsg {
    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.raw, rsip::SipMessage::Request(_))
    }

    /// The request method, or the CSeq method for a response.
    pub fn method(&self) -> Method {
        match &self.raw {
            rsip::SipMessage::Request(r) => r.method,
            rsip::SipMessage::Response(_) => self.cseq_method,
        }
    }

    /// Status code for responses, `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match &self.raw {
            rsip::SipMessage::Request(_) => None,
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
        }
    }

    /// Request-URI of a request.
    pub fn request_uri(&self) -> Option<&rsip::Uri> {
        match &self.raw {
            rsip::SipMessage::Request(r) => Some(&r.uri),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// The headers in wire order.
    pub fn headers(&self) -> &rsip::Headers {
        match &self.raw {
            rsip::SipMessage::Request(r) => &r.headers,
            rsip::SipMessage::Response(r) => &r.headers,
        }
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        match &self.raw {
            rsip::SipMessage::Request(r) => &r.body,
            rsip::SipMessage::Response(r) => &r.body,
        }
    }

    /// First header whose (case-insensitive, compact forms expanded) name is `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().iter().find_map(|h| {
            let (n, v) = super::headers::name_value(h);
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// All values of header `name`, in order, repeated header lines included.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers().iter().filter_map(move |h| {
            let (n, v) = super::headers::name_value(h);
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// True when a comma-separated option tag list header (Supported, Require, Allow...)
    /// contains `tag` in any of its lines.
    pub fn has_option_tag(&self, header: &str, tag: &str) -> bool {
        self.header_all(header)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(tag))
    }
}

/// Convenience: is this rsip header one of the given variants' name.
pub fn is_header(h: &Header, name: &str) -> bool {
    super::headers::name_value(h).0.eq_ignore_ascii_case(name)
}
