//! ICE-lite on relay ports: answer STUN binding requests (RFC 8445 §7.3, RFC 8489) with
//! short-term credentials. Rare next to RTP, so this path may allocate.

use super::IceCredentials;
use std::net::SocketAddr;
use stun_rs::attributes::ice::UseCandidate;
use stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, UserName, XorMappedAddress,
};
use stun_rs::error::StunErrorLevel;
use stun_rs::methods::BINDING;
use stun_rs::{
    DecoderContextBuilder, HMACKey, MessageClass, MessageDecoder, MessageDecoderBuilder,
    MessageEncoderBuilder, StunAttributeType, StunMessageBuilder, TransactionId,
};

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER: usize = 20;
/// Binding request message type (RFC 8489 §5).
const BINDING_REQUEST: u16 = 0x0001;

/// Whether a datagram is a STUN message: top two bits zero, magic cookie, a length that matches.
#[inline]
pub(crate) fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER
        && data[0] & 0xc0 == 0
        && data[4..8] == MAGIC_COOKIE
        && usize::from(u16::from_be_bytes([data[2], data[3]])) + HEADER == data.len()
}

/// An endpoint's ICE-lite state: credentials with the HMAC key derived once.
#[derive(Debug)]
pub(crate) struct IceAgent {
    local_ufrag: String,
    remote_ufrag: Option<String>,
    key: HMACKey,
    decoder: MessageDecoder,
}

/// What to do with a STUN datagram.
#[derive(Debug)]
pub(crate) enum StunAction {
    /// Authenticated binding request: send `response`; `use_candidate` says ICE nominated.
    Answer { response: Vec<u8>, use_candidate: bool },
    /// Rejected request; send `response` if there is one (401/400), and count it.
    Reject { response: Option<Vec<u8>> },
    /// Not for us or needs no answer (binding indication keepalive, stray response).
    Ignore,
}

impl IceAgent {
    /// Derives the short-term key from `creds.local_pwd` (SASLprep / OpaqueString).
    pub(crate) fn new(creds: &IceCredentials) -> Result<IceAgent, String> {
        let key = HMACKey::new_short_term(&creds.local_pwd).map_err(|e| e.to_string())?;
        let ctx = DecoderContextBuilder::default().with_key(key.clone()).with_validation().build();
        Ok(IceAgent {
            local_ufrag: creds.local_ufrag.clone(),
            remote_ufrag: creds.remote_ufrag.clone(),
            key,
            decoder: MessageDecoderBuilder::default().with_context(ctx).build(),
        })
    }

    /// Handles one STUN datagram (already recognised by [`is_stun`]) from `src`.
    pub(crate) fn handle(&self, data: &[u8], src: SocketAddr) -> StunAction {
        let msg_type = u16::from_be_bytes([data[0], data[1]]);
        if msg_type != BINDING_REQUEST {
            // Indications are ICE keepalives (RFC 8445 §11); responses are not ours to take.
            return StunAction::Ignore;
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&data[8..HEADER]);
        let tid = TransactionId::from(tid);

        let msg = match self.decoder.decode(data) {
            Ok((msg, _)) => msg,
            Err(e) => {
                // A bad FINGERPRINT means "not STUN" (RFC 8489 §7.3): silently dropped. Bad
                // MESSAGE-INTEGRITY earns a 401 so the peer's agent learns its credentials are off.
                let integrity = matches!(&e.0, StunErrorLevel::Attribute(a)
                    if a.attr_type == Some(MessageIntegrity::get_type()));
                let response = integrity.then(|| error_response(tid, 401, "Unauthorized"));
                return StunAction::Reject { response };
            }
        };
        if msg.get::<MessageIntegrity>().is_none() || msg.get::<Fingerprint>().is_none() {
            return StunAction::Reject { response: Some(error_response(tid, 400, "Bad Request")) };
        }
        let Some(user) = msg.get::<UserName>().and_then(|u| u.as_user_name().ok()) else {
            return StunAction::Reject { response: Some(error_response(tid, 400, "Bad Request")) };
        };
        if !self.username_ok(user.as_str()) {
            return StunAction::Reject { response: Some(error_response(tid, 401, "Unauthorized")) };
        }
        let use_candidate = msg.get::<UseCandidate>().is_some();
        let response = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
            .with_transaction_id(tid)
            .with_attribute(XorMappedAddress::from(src))
            .with_attribute(MessageIntegrity::new(self.key.clone()))
            .with_attribute(Fingerprint::default())
            .build();
        match encode(&response) {
            Some(response) => StunAction::Answer { response, use_candidate },
            None => StunAction::Reject { response: None },
        }
    }

    /// RFC 8445 §7.3: USERNAME is "<our ufrag>:<their ufrag>".
    fn username_ok(&self, user: &str) -> bool {
        let Some(rest) =
            user.strip_prefix(self.local_ufrag.as_str()).and_then(|r| r.strip_prefix(':'))
        else {
            return false;
        };
        self.remote_ufrag.as_deref().is_none_or(|remote| remote == rest)
    }
}

fn error_response(tid: TransactionId, code: u16, reason: &str) -> Vec<u8> {
    let mut b =
        StunMessageBuilder::new(BINDING, MessageClass::ErrorResponse).with_transaction_id(tid);
    if let Ok(ec) = stun_rs::ErrorCode::new(code, reason) {
        b = b.with_attribute(ErrorCode::new(ec));
    }
    let msg = b.with_attribute(Fingerprint::default()).build();
    encode(&msg).unwrap_or_default()
}

fn encode(msg: &stun_rs::StunMessage) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = MessageEncoderBuilder::default().build().encode(&mut buf, msg).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use stun_rs::attributes::ice::{IceControlling, Priority};

    /// A binding request as a controlling ICE agent sends it.
    pub(crate) fn binding_request(user: &str, pwd: &str, use_candidate: bool) -> Vec<u8> {
        let key = HMACKey::new_short_term(pwd).unwrap();
        let mut b = StunMessageBuilder::new(BINDING, MessageClass::Request)
            .with_attribute(UserName::new(user).unwrap())
            .with_attribute(Priority::new(0x6e7f_1eff))
            .with_attribute(IceControlling::new(0x1122_3344_5566_7788));
        if use_candidate {
            b = b.with_attribute(UseCandidate::default());
        }
        let msg = b
            .with_attribute(MessageIntegrity::new(key))
            .with_attribute(Fingerprint::default())
            .build();
        encode(&msg).unwrap()
    }

    fn agent() -> IceAgent {
        IceAgent::new(&IceCredentials {
            local_ufrag: "sbc1".into(),
            local_pwd: "relaypassword1234567890".into(),
            remote_ufrag: Some("peer".into()),
        })
        .unwrap()
    }

    #[test]
    fn answers_valid_request() {
        let src: SocketAddr = "192.0.2.4:5555".parse().unwrap();
        let req = binding_request("sbc1:peer", "relaypassword1234567890", true);
        assert!(is_stun(&req));
        let StunAction::Answer { response, use_candidate } = agent().handle(&req, src) else {
            panic!("not answered")
        };
        assert!(use_candidate);
        let ctx = DecoderContextBuilder::default()
            .with_key(HMACKey::new_short_term("relaypassword1234567890").unwrap())
            .with_validation()
            .build();
        let (msg, _) =
            MessageDecoderBuilder::default().with_context(ctx).build().decode(&response).unwrap();
        assert_eq!(msg.class(), MessageClass::SuccessResponse);
        let x = msg.get::<XorMappedAddress>().unwrap().as_xor_mapped_address().unwrap();
        assert_eq!(*x.socket_address(), src);
    }

    #[test]
    fn rejects_bad_password_and_wrong_ufrag() {
        let src: SocketAddr = "192.0.2.4:5555".parse().unwrap();
        let bad = binding_request("sbc1:peer", "wrongpassword", false);
        let StunAction::Reject { response: Some(r) } = agent().handle(&bad, src) else {
            panic!("bad integrity accepted")
        };
        let (msg, _) = MessageDecoderBuilder::default().build().decode(&r).unwrap();
        assert_eq!(msg.class(), MessageClass::ErrorResponse);
        let code =
            msg.get::<ErrorCode>().unwrap().as_error_code().unwrap().error_code().error_code();
        assert_eq!(code, 401);

        let wrong_user = binding_request("other:peer", "relaypassword1234567890", false);
        assert!(matches!(
            agent().handle(&wrong_user, src),
            StunAction::Reject { response: Some(_) }
        ));
        let wrong_remote = binding_request("sbc1:intruder", "relaypassword1234567890", false);
        assert!(matches!(agent().handle(&wrong_remote, src), StunAction::Reject { .. }));
    }

    #[test]
    fn rtp_is_not_stun() {
        let mut rtp = [0u8; 172];
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp));
    }
}
