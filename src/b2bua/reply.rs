//! `ReplyTemplate`: what is kept of a request to answer it later from the other leg's response.

use crate::sip::build::response_to;
use crate::sip::headers::{make, name_value, param};
use crate::sip::message::SipMsg;
use crate::sip::wire::status;
use rsip::Header;
use std::net::SocketAddr;

/// The Via list (top one stamped with the source), From, To, Call-ID and CSeq of a request: the
/// headers every response to it must carry (RFC 3261 §8.2.6.2). Kept instead of the whole
/// request so a pending answer costs a few short strings.
#[derive(Debug, Clone)]
pub struct ReplyTemplate {
    headers: Vec<Header>,
}

impl ReplyTemplate {
    /// Template for `req` that arrived from `source`.
    pub fn of(req: &SipMsg, source: SocketAddr) -> ReplyTemplate {
        let r = response_to(req, 200, None, None, source);
        ReplyTemplate { headers: r.headers.into() }
    }

    /// A response with `code`, an optional reason phrase, and `to_tag` added to To when the
    /// request's To had none.
    pub fn response(
        &self,
        code: u16,
        reason: Option<&str>,
        to_tag: Option<&str>,
    ) -> rsip::Response {
        let mut headers = Vec::with_capacity(self.headers.len() + 6);
        for h in &self.headers {
            if let (Header::To(_), Some(tag)) = (h, to_tag) {
                let v = name_value(h).1;
                if param(v, "tag").is_none() {
                    headers.push(make("To", format!("{v};tag={tag}")));
                    continue;
                }
            }
            headers.push(h.clone());
        }
        rsip::Response {
            status_code: status(code, reason),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }
}
