//! One dialog of one leg.

use super::uri::parse_uri;
use crate::sip::headers::make;
use crate::transport::flow::Flow;
use rsip::{Header, Method};

/// RFC 3261 §12 dialog states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// A BYE was sent or received.
    Terminated,
}

/// The state of one dialog as one side of sipborder sees it.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID of this leg.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (None until the peer answered with one).
    pub remote_tag: Option<String>,
    /// Our URI as written in From (requests we send) without tag, e.g. `"Alice" <sip:100@10.0.0.1>`.
    pub local_uri: String,
    /// The peer's URI as written in To (requests we send) without tag.
    pub remote_uri: String,
    /// Last CSeq number we used.
    pub local_cseq: u32,
    /// Last CSeq number the peer used (requests out of order are rejected with 500, §12.2.2).
    pub remote_cseq: Option<u32>,
    /// Where requests go: the peer's Contact URI.
    pub remote_target: String,
    /// Route set (already in the order to send).
    pub route_set: Vec<String>,
    /// Our Contact value on this leg.
    pub local_contact: String,
    /// Transport path to the peer (sipborder sends to where the peer's signalling comes from,
    /// not to what its Contact claims: NAT-safe and ALG-proof).
    pub flow: Flow,
    /// Current state.
    pub state: DialogState,
}

impl Dialog {
    /// Takes the next local CSeq number.
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.wrapping_add(1) & 0x7fff_ffff;
        self.local_cseq
    }

    /// From value of requests we send.
    pub fn from_value(&self) -> String {
        format!("{};tag={}", self.local_uri, self.local_tag)
    }

    /// To value of requests we send.
    pub fn to_value(&self) -> String {
        match &self.remote_tag {
            Some(t) => format!("{};tag={}", self.remote_uri, t),
            None => self.remote_uri.clone(),
        }
    }

    /// A request within this dialog (no Via: the transaction layer adds it). `cseq` is the
    /// number to use (ACK and CANCEL reuse the INVITE's; others take [`Self::next_cseq`]).
    pub fn request(
        &self,
        method: Method,
        cseq: u32,
        extra: Vec<Header>,
        body: Vec<u8>,
    ) -> rsip::Request {
        let uri = parse_uri(&self.remote_target)
            .or_else(|| parse_uri(crate::sip::headers::addr_uri(&self.remote_uri)))
            .unwrap_or_default();
        let mut headers: Vec<Header> = Vec::with_capacity(8 + extra.len() + self.route_set.len());
        for r in &self.route_set {
            headers.push(make("Route", r.clone()));
        }
        headers.push(make("Max-Forwards", "70"));
        headers.push(make("From", self.from_value()));
        headers.push(make("To", self.to_value()));
        headers.push(make("Call-ID", self.call_id.clone()));
        headers.push(make("CSeq", format!("{cseq} {method}")));
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        ) {
            headers.push(make("Contact", self.local_contact.clone()));
        }
        headers.extend(extra);
        rsip::Request { method, uri, version: rsip::Version::V2, headers: headers.into(), body }
    }

    /// Checks and records the CSeq of a request from the peer; false when it is lower than
    /// the last one (§12.2.2: answer 500).
    pub fn accept_remote_cseq(&mut self, cseq: u32, method: Method) -> bool {
        if method == Method::Ack || method == Method::Cancel {
            return true;
        }
        match self.remote_cseq {
            Some(last) if cseq < last => false,
            _ => {
                self.remote_cseq = Some(cseq);
                true
            }
        }
    }
}
