//! Wire bytes through the parser and validator, with the default limits and with tight ones
//! (so the size, header and Via limits are reached by small inputs), and through `reject`.
//!
//! Property beyond "never panics": a message that parses, serialized again the way sipborder
//! sends it, parses again with the same identity (Call-ID, CSeq, method, tags, top Via). A
//! failure there means sipborder would forward something the next hop (or sipborder itself)
//! cannot read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipborder::sip::parse::{parse, parse_via, reject, Limits};
use sipborder::sip::replaces::Replaces;
use sipborder::sip::wire::{encode_request, encode_response};

const TIGHT: Limits = Limits { max_message_size: 1024, max_headers: 16, max_vias: 3 };

fuzz_target!(|data: &[u8]| {
    for limits in [Limits::default(), TIGHT] {
        let Ok(msg) = parse(data, &limits) else { continue };
        let wire = match &msg.raw {
            rsip::SipMessage::Request(r) => encode_request(r),
            rsip::SipMessage::Response(r) => encode_response(r),
        };
        // Serializing may lengthen the message (rsip prints URIs its own way): no size limit;
        // and it writes a computed Content-Length, one header more when the input had none.
        let relaxed =
            Limits { max_message_size: usize::MAX, max_headers: limits.max_headers + 1, ..limits };
        let again = match parse(&wire, &relaxed) {
            Ok(m) => m,
            Err(e) => panic!(
                "re-serialized message does not parse: {e}\n--- in:\n{}\n--- out:\n{}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&wire)
            ),
        };
        assert_eq!(again.call_id, msg.call_id);
        assert_eq!((again.cseq, again.cseq_method), (msg.cseq, msg.cseq_method));
        assert_eq!(again.method(), msg.method());
        assert_eq!(again.status(), msg.status());
        assert_eq!((&again.from_tag, &again.to_tag), (&msg.from_tag, &msg.to_tag));
        assert_eq!(again.via, msg.via);
        assert_eq!(again.via_count, msg.via_count);
        assert_eq!(again.body(), msg.body());
    }
    let _ = reject(data, 400, "Fuzzed \r\n Reason \u{7f}");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_via(text);
        // Replaces, as an INVITE header and escaped into a Refer-To (attended transfer).
        if let Ok(r) = Replaces::parse(text) {
            assert!(!r.call_id.is_empty() && !r.to_tag.is_empty() && !r.from_tag.is_empty());
        }
        let _ = Replaces::from_refer_to(text);
    }
});
