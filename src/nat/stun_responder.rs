//! STUN binding requests on SIP ports (RFC 8489 §3): a phone behind NAT asks "what address do
//! you see me at?" on the same socket it sends SIP from; sipborder answers with the source it
//! saw (XOR-MAPPED-ADDRESS), no credentials needed for this plain binding.

use std::net::SocketAddr;
use stun_rs::attributes::stun::{Fingerprint, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{MessageClass, MessageEncoderBuilder, StunMessageBuilder, TransactionId};

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// True for a STUN binding request: top bits 00, method binding, class request, cookie, length.
pub fn is_binding_request(data: &[u8]) -> bool {
    data.len() >= 20
        && data[0..2] == [0x00, 0x01]
        && data[4..8] == MAGIC_COOKIE
        && usize::from(u16::from_be_bytes([data[2], data[3]])) + 20 == data.len()
}

/// The success response to binding request `data` from `source`.
pub fn binding_response(data: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    if !is_binding_request(data) {
        return None;
    }
    let mut tid = [0u8; 12];
    tid.copy_from_slice(data.get(8..20)?);
    let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
        .with_transaction_id(TransactionId::from(tid))
        .with_attribute(XorMappedAddress::from(source))
        .with_attribute(Fingerprint::default())
        .build();
    let mut buf = vec![0u8; 128];
    let n = MessageEncoderBuilder::default().build().encode(&mut buf, &msg).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_rs::{MessageDecoderBuilder, StunMessageBuilder};

    #[test]
    fn answers_with_the_source_it_saw() {
        let req = StunMessageBuilder::new(BINDING, MessageClass::Request).build();
        let mut buf = vec![0u8; 64];
        let n = MessageEncoderBuilder::default().build().encode(&mut buf, &req).unwrap_or(0);
        let src: SocketAddr = "198.51.100.7:40123".parse().unwrap_or_else(|_| unreachable!());
        let resp = binding_response(&buf[..n], src).expect("a response");
        let (msg, _) = MessageDecoderBuilder::default().build().decode(&resp).expect("decodes");
        assert_eq!(msg.class(), MessageClass::SuccessResponse);
        let mapped = msg
            .get::<XorMappedAddress>()
            .and_then(|a| a.as_xor_mapped_address().ok())
            .map(|a| *a.socket_address());
        assert_eq!(mapped, Some(src));
        assert!(binding_response(b"OPTIONS sip:x SIP/2.0\r\n\r\n", src).is_none());
    }
}
