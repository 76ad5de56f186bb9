//! Building responses from requests (RFC 3261 §8.2.6) and editing Via for the return path.

use super::headers::{make, name_value, param};
use super::message::SipMsg;
use super::wire::status;
use rsip::{Header, Headers};
use std::net::SocketAddr;

/// Adds `received` (when the source IP differs from sent-by) and fills an `rport` that was asked
/// for (RFC 3261 §18.2.1, RFC 3581 §4) on a Via value, so the response finds its way back.
pub fn via_with_source(via: &str, source: SocketAddr) -> String {
    let ip = source.ip().to_string();
    let mut out = String::with_capacity(via.len() + 40);
    let mut parts = via.split(';');
    let sent = parts.next().unwrap_or("");
    out.push_str(sent.trim_end());
    let sent_by_host = sent
        .split_whitespace()
        .nth(1)
        .map(|hp| {
            if let Some(rest) = hp.strip_prefix('[') {
                rest.split(']').next().unwrap_or(rest)
            } else {
                hp.split(':').next().unwrap_or(hp)
            }
        })
        .unwrap_or("");
    let mut has_rport = false;
    for p in parts {
        let name = p.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            has_rport = true;
            out.push_str(";rport=");
            out.push_str(&source.port().to_string());
            continue;
        }
        out.push(';');
        out.push_str(p.trim());
    }
    if has_rport || sent_by_host != ip {
        out.push_str(";received=");
        out.push_str(&ip);
    }
    out
}

/// A response to `req` with its Via list (top one stamped with the source), From, To (with
/// `to_tag` added when the request had none), Call-ID and CSeq copied, as §8.2.6.2 requires.
/// The caller adds Contact, Allow and the rest.
pub fn response_to(
    req: &SipMsg,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
    source: SocketAddr,
) -> rsip::Response {
    let mut headers: Vec<Header> = Vec::with_capacity(8);
    let mut first_via = true;
    for h in req.headers().iter() {
        let (n, v) = name_value(h);
        match h {
            Header::Via(_) => {
                if first_via {
                    first_via = false;
                    headers.push(make("Via", via_with_source(v, source)));
                } else {
                    headers.push(h.clone());
                }
            }
            Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(h.clone()),
            Header::To(_) => {
                if let (Some(tag), None) = (to_tag, param(v, "tag")) {
                    if code > 100 {
                        headers.push(make("To", format!("{v};tag={tag}")));
                        continue;
                    }
                }
                headers.push(h.clone());
            }
            _ => {
                let _ = n;
            }
        }
    }
    rsip::Response {
        status_code: status(code, reason),
        version: rsip::Version::V2,
        headers: Headers::from(headers),
        body: Vec::new(),
    }
}

/// Inserts `h` as the first header (rsip's `Headers` has no insert).
pub fn prepend_header(headers: &mut Headers, h: Header) {
    let mut v: Vec<Header> = std::mem::take(headers).into();
    v.insert(0, h);
    *headers = v.into();
}

/// Removes every header named `name`.
pub fn remove_header(headers: &mut Headers, name: &str) {
    headers.retain(|h| !name_value(h).0.eq_ignore_ascii_case(name));
}

/// Replaces the first header named `name` (dropping any repeats), or appends it.
pub fn set_header(headers: &mut Headers, name: &str, value: impl Into<String>) {
    let mut v: Vec<Header> = std::mem::take(headers).into();
    match v.iter().position(|h| name_value(h).0.eq_ignore_ascii_case(name)) {
        Some(pos) => {
            v[pos] = make(name, value);
            let mut i = 0;
            v.retain(|h| {
                let keep = i <= pos || !name_value(h).0.eq_ignore_ascii_case(name);
                i += 1;
                keep
            });
        }
        None => v.push(make(name, value)),
    }
    *headers = v.into();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rport_filled_and_received_added() {
        let v = "SIP/2.0/UDP 192.168.1.2:5060;rport;branch=z9hG4bKabc";
        let s: SocketAddr = "203.0.113.5:40000".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            via_with_source(v, s),
            "SIP/2.0/UDP 192.168.1.2:5060;rport=40000;branch=z9hG4bKabc;received=203.0.113.5"
        );
    }

    #[test]
    fn received_only_when_host_differs() {
        let v = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc";
        let same: SocketAddr = "10.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(via_with_source(v, same), v);
    }
}
