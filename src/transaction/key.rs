//! Transaction matching keys (RFC 3261 §17.1.3 for clients, §17.2.3 for servers).

use crate::sip::message::SipMsg;
use rsip::Method;
use std::mem::{discriminant, Discriminant};

/// Server transaction key. With an RFC 3261 branch: branch + sent-by + method (ACK matches
/// INVITE). Without the magic cookie (RFC 2543 peers) the branch slot carries a composite of
/// Request-URI, Call-ID, From tag, CSeq number and the top Via (transport, sent-by, branch),
/// which is what §17.2.3 falls back on. The To tag is left out so the ACK of a non-2xx (which
/// carries the response's tag) still finds its INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    branch: String,
    sent_by: String,
    method: Discriminant<Method>,
}

impl ServerKey {
    /// Key of an incoming request. ACK and CANCEL: `as_method` lets the caller look up the
    /// INVITE transaction a CANCEL or a non-2xx ACK belongs to.
    pub fn of(msg: &SipMsg, as_method: Method) -> ServerKey {
        let via = &msg.via;
        let sent_by = match via.port {
            Some(p) => format!("{}:{}", via.host, p),
            None => via.host.clone(),
        };
        let branch = if via.has_rfc3261_branch() {
            via.branch.clone().unwrap_or_default()
        } else {
            format!(
                "2543|{}|{}|{}|{}|{}|{}",
                msg.request_uri().map(ToString::to_string).unwrap_or_default(),
                msg.call_id,
                msg.from_tag.as_deref().unwrap_or(""),
                msg.cseq,
                via.transport.as_via_token(),
                via.branch.as_deref().unwrap_or("")
            )
        };
        ServerKey { branch, sent_by, method: discriminant(&as_method) }
    }

    /// Key for the request's own transaction (ACK folded onto INVITE).
    pub fn for_request(msg: &SipMsg) -> ServerKey {
        let m = match msg.method() {
            Method::Ack => Method::Invite,
            m => m,
        };
        Self::of(msg, m)
    }
}

/// Client transaction key: our branch and the CSeq method of the response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The branch we generated.
    pub branch: String,
    /// CSeq method (a CANCEL has its own transaction with the INVITE's branch).
    pub method: Discriminant<Method>,
}

impl ClientKey {
    /// Key of `branch` for requests of `method`.
    pub fn new(branch: String, method: Method) -> ClientKey {
        ClientKey { branch, method: discriminant(&method) }
    }
}

/// RFC 3261 branch: magic cookie plus 16 random characters.
pub fn new_branch(rng: &mut impl rand::Rng) -> String {
    let mut s = String::with_capacity(23);
    s.push_str("z9hG4bK");
    s.push_str(&crate::sip::token::random_token(rng, 16));
    s
}
