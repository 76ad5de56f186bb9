//! SDP bodies through parse, the anchoring rewrite with a fixed plan (telephone-event added,
//! stripped, kept), the codec filter, and the readdressing of a joined call.
//!
//! Properties beyond "never panics": no endpoint address named in the offer survives the
//! rewrite (the leak safety net), and what the rewrite and the filter produce parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipborder::sip::sdp::{
    answer_direction, readdress, EventPlan, IceLitePlan, MediaPlan, RewritePlan, RtcpPlan,
    SessionDescription,
};

const OUR_ADDRESS: &str = "203.0.113.10";
/// Everything sipborder itself writes into a rewritten body.
const GENERATED: &str = "203.0.113.10 1 UDP 2130706431 sbc1 0123456789abcdefghijkl sipborder";

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(data) else { return };
    let candidates = ["1 1 UDP 2130706431 203.0.113.10 40000 typ host"];
    let ice = IceLitePlan { ufrag: "sbc1", pwd: "0123456789abcdefghijkl", candidates: &candidates };
    let media = [
        MediaPlan {
            port: Some(40000),
            rtcp: RtcpPlan::MuxOnly,
            ice: Some(ice),
            events: EventPlan::Add { payload_type: 101, clock_rate: 8000 },
        },
        MediaPlan {
            port: Some(40002),
            rtcp: RtcpPlan::Port(40009),
            ice: None,
            events: EventPlan::Strip,
        },
        MediaPlan { port: None, rtcp: RtcpPlan::KeepPort, ice: None, events: EventPlan::Keep },
    ];
    let plan = RewritePlan {
        username: "sipborder",
        sess_id: 1,
        sess_version: 2,
        address: OUR_ADDRESS.parse().unwrap(),
        media: &media,
    };
    let out = sdp.rewrite(&plan);
    let text = String::from_utf8_lossy(&out.body);
    for a in sdp.endpoint_addresses() {
        if a.parse::<std::net::IpAddr>().is_ok() && !GENERATED.contains(a) {
            assert!(!text.contains(a), "{a} leaked into\n{text}");
        }
    }
    if let Err(e) = SessionDescription::parse(&out.body) {
        panic!(
            "rewritten body does not parse: {e}\n--- in:\n{}\n--- out:\n{text}",
            String::from_utf8_lossy(data)
        );
    }
    // What a joined call hands its relay (attended transfer) must stay SDP that parses.
    let joined = readdress(data, OUR_ADDRESS.parse().unwrap());
    if let Err(e) = SessionDescription::parse(&joined) {
        panic!("readdressed body does not parse: {e}\n{}", String::from_utf8_lossy(&joined));
    }
    let _ = answer_direction(&out.body, data);
    for m in sdp.media() {
        let _ = (m.is_hold(), m.effective_address(), m.effective_direction(), m.is_rtp());
        let _ = (m.fmts().count(), m.payload_types().count(), m.encoding_name(8));
    }
    for preference in [&["PCMA", "opus", "G722"][..], &["telephone-event"][..], &[][..]] {
        if let Ok(filtered) = sdp.filter_codecs(preference) {
            if let Err(e) = SessionDescription::parse(&filtered) {
                panic!(
                    "filtered body does not parse: {e}\n--- in:\n{}\n--- out:\n{}",
                    String::from_utf8_lossy(data),
                    String::from_utf8_lossy(&filtered)
                );
            }
        }
    }
});
