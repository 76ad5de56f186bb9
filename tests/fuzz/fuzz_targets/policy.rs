//! Parsed messages through the shipped policies (policies/*.yaml, or a small inline one if none
//! load), in both directions and from both kinds of zone.
//!
//! Properties beyond "never panics": the headers the B2BUA owns (Via, Call-ID, CSeq, Contact,
//! Route, Record-Route, Max-Forwards) come out exactly as they went in, and the result
//! serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipborder::policy::compile::{compile_str, load_file, owned_by_b2bua, CompiledPolicy};
use sipborder::policy::{Direction, MessageContext, PolicyChain};
use sipborder::sip::headers::name_value;
use sipborder::sip::parse::{parse, Limits};
use sipborder::sip::wire::{encode_request, encode_response};
use std::sync::{Arc, OnceLock};

/// Used when policies/ is missing: one rule of each common kind.
const INLINE: &str = r#"
description: fuzz fallback
rules:
  - name: e164
    when: {direction: to-trunk, ruri_user: '^0([1-9]\d+)$'}
    do:
      - rewrite_user: {header: Request-URI, regex: '^0([1-9]\d+)$', with: '+49$1'}
  - name: strip-x
    when: {direction: to-trunk}
    do:
      - remove: {regex: '^X-'}
"#;

fn chain() -> &'static PolicyChain {
    static CHAIN: OnceLock<PolicyChain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"));
        files.sort();
        let mut policies: Vec<Arc<CompiledPolicy>> =
            files.iter().filter_map(|p| load_file(p).ok().map(Arc::new)).collect();
        if policies.is_empty() {
            policies.push(Arc::new(compile_str(INLINE, "inline").expect("inline policy compiles")));
        }
        PolicyChain::new(policies)
    })
}

fn owned(msg: &rsip::SipMessage) -> Vec<(String, String)> {
    let headers = match msg {
        rsip::SipMessage::Request(r) => &r.headers,
        rsip::SipMessage::Response(r) => &r.headers,
    };
    headers
        .iter()
        .map(name_value)
        .filter(|(n, _)| {
            owned_by_b2bua().any(|o| o.eq_ignore_ascii_case(n) && o != "Content-Length")
        })
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse(data, &Limits::default()) else { return };
    let before = owned(&msg.raw);
    for dir in Direction::ALL {
        for zone in ["lan", "trunk"] {
            let mut m = msg.raw.clone();
            if chain().apply(dir, &MessageContext { source_zone: zone }, &mut m).is_err() {
                continue;
            }
            assert_eq!(owned(&m), before, "a policy changed a header the B2BUA owns");
            let _ = match &m {
                rsip::SipMessage::Request(r) => encode_request(r),
                rsip::SipMessage::Response(r) => encode_response(r),
            };
        }
    }
});
