//! Serializing rsip messages onto the wire.
//!
//! rsip's own `Display` writes reason phrases as Rust identifiers (`486 BusyHere`), turns the
//! body into UTF-8 lossily (which corrupts binary bodies) and allocates once per header; this
//! writer produces standard reason phrases, copies the body byte-exact, always computes
//! Content-Length itself (so no layer can send a stale one) and writes into one buffer.

use super::headers::name_value;
use bytes::{BufMut, Bytes, BytesMut};
use rsip::{Header, StatusCode};
use std::fmt::Write as _;

/// The standard reason phrase of a status code (RFC 3261 §21 and extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

/// A status code carrying an explicit reason phrase (rsip keeps it for `Other`).
pub fn status(code: u16, reason: Option<&str>) -> StatusCode {
    match reason {
        Some(r) => StatusCode::Other(code, r.to_string()),
        None => StatusCode::Other(code, reason_phrase(code).to_string()),
    }
}

fn status_text(sc: &StatusCode) -> (u16, &str) {
    match sc {
        StatusCode::Other(c, r) => (*c, r.as_str()),
        other => {
            let c = other.code();
            (c, reason_phrase(c))
        }
    }
}

fn put_headers_and_body(buf: &mut BytesMut, headers: &rsip::Headers, body: &[u8]) {
    for h in headers.iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        let (n, v) = name_value(h);
        buf.put_slice(n.as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(v.as_bytes());
        buf.put_slice(b"\r\n");
    }
    let _ = write!(buf, "Content-Length: {}\r\n\r\n", body.len());
    buf.put_slice(body);
}

fn headers_len(headers: &rsip::Headers) -> usize {
    headers
        .iter()
        .map(|h| {
            let (n, v) = name_value(h);
            n.len() + v.len() + 4
        })
        .sum()
}

/// Serializes a request.
pub fn encode_request(r: &rsip::Request) -> Bytes {
    let mut buf = BytesMut::with_capacity(64 + headers_len(&r.headers) + r.body.len() + 24);
    let _ = write!(buf, "{} {} SIP/2.0\r\n", r.method, r.uri);
    put_headers_and_body(&mut buf, &r.headers, &r.body);
    buf.freeze()
}

/// Serializes a response.
pub fn encode_response(r: &rsip::Response) -> Bytes {
    let mut buf = BytesMut::with_capacity(48 + headers_len(&r.headers) + r.body.len() + 24);
    let (code, reason) = status_text(&r.status_code);
    let _ = write!(buf, "SIP/2.0 {code} {reason}\r\n");
    put_headers_and_body(&mut buf, &r.headers, &r.body);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::headers::make;

    #[test]
    fn response_has_real_reason_phrase_and_content_length() {
        let r = rsip::Response {
            status_code: StatusCode::BusyHere,
            version: rsip::Version::V2,
            headers: vec![make("Call-ID", "x"), make("Content-Length", "99")].into(),
            body: vec![0xff, 0x00],
        };
        let b = encode_response(&r);
        assert_eq!(
            &b[..],
            b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nContent-Length: 2\r\n\r\n\xff\x00"
        );
    }

    #[test]
    fn explicit_reason_kept() {
        let r = rsip::Response {
            status_code: status(400, Some("Missing Call-ID")),
            version: rsip::Version::V2,
            headers: Default::default(),
            body: vec![],
        };
        assert!(encode_response(&r).starts_with(b"SIP/2.0 400 Missing Call-ID\r\n"));
    }
}
