//! DTMF between the legs (`trunks[].dtmf`), with a relay that records what it is told: INFO
//! relayed or played as RFC 4733, events taken out of the media sent as INFO, payload-type
//! renumbering installed from the negotiated SDPs.

use super::*;
use crate::media::relay::{
    self, DirectionMedia, DtmfInjection, EventFormat, PairId, PairSpec, PairStats, PeerSpec,
    RelayError, RelayEvent,
};
use crate::media::{MediaSettings, RelayControl};
use crate::shard::ShardSetup;
use std::sync::Mutex;

/// What the B2BUA asked of the relay.
#[derive(Debug, Default)]
struct Recorded {
    opened: Vec<PairId>,
    media: Vec<(PairId, relay::Side, DirectionMedia)>,
    injected: Vec<(PairId, relay::Side, DtmfInjection)>,
}

#[derive(Debug, Default)]
struct RecordingRelay(Mutex<Recorded>);

impl RelayControl for RecordingRelay {
    fn open(&self, spec: PairSpec) -> Result<(), RelayError> {
        self.0.lock().unwrap().opened.push(spec.id);
        Ok(())
    }
    fn update(&self, _: PairId, _: relay::Side, _: PeerSpec) -> Result<(), RelayError> {
        Ok(())
    }
    fn close(&self, _: PairId) -> Result<(), RelayError> {
        Ok(())
    }
    fn stats(&self, _: PairId) -> Option<PairStats> {
        None
    }
    fn set_media(
        &self,
        id: PairId,
        from: relay::Side,
        m: DirectionMedia,
    ) -> Result<(), RelayError> {
        self.0.lock().unwrap().media.push((id, from, m));
        Ok(())
    }
    fn inject_dtmf(
        &self,
        id: PairId,
        toward: relay::Side,
        e: DtmfInjection,
    ) -> Result<(), RelayError> {
        self.0.lock().unwrap().injected.push((id, toward, e));
        Ok(())
    }
}

impl RecordingRelay {
    /// The instructions last installed for media arriving on `from`.
    fn last_media(&self, from: relay::Side) -> DirectionMedia {
        let r = self.0.lock().unwrap();
        r.media
            .iter()
            .rev()
            .find(|(_, s, _)| *s == from)
            .map(|(_, _, m)| m.clone())
            .expect("media set")
    }

    fn injected(&self) -> Vec<(PairId, relay::Side, DtmfInjection)> {
        self.0.lock().unwrap().injected.clone()
    }

    /// The first RTP pair opened.
    fn rtp_pair(&self) -> PairId {
        self.0.lock().unwrap().opened[0]
    }
}

/// `trunk` gets `dtmf: mode` in the shard test config.
fn config_with(trunk_address: &str, mode: &str) -> String {
    let line = format!("    address: {trunk_address}\n");
    let out = CONFIG.replace(&line, &format!("{line}    dtmf: {mode}\n"));
    assert_ne!(out, CONFIG, "{trunk_address} is in the config");
    out
}

fn harness(yaml: &str) -> (Harness, Arc<RecordingRelay>) {
    let cfg = crate::config::load_str(yaml, "test.yaml").expect("test config is valid");
    let router = Arc::new(Router::from_config(&cfg));
    let relay = Arc::new(RecordingRelay::default());
    let now = Instant::now();
    let shard = Shard::from_setup(
        now,
        ShardSetup {
            index: 0,
            count: 1,
            health: Arc::new(crate::trunk::health::TrunkHealth::new(router.trunks.len())),
            router,
            timers: crate::server::timer_config(&cfg),
            relay: relay.clone(),
            media: MediaSettings { learning_window: Duration::from_secs(3), timeout: None },
            quarantine: Duration::from_secs(2),
            bindings: Arc::new(crate::nat::bindings::BindingTable::new()),
        },
    );
    (Harness { shard, now }, relay)
}

/// An audio SDP from `ip:port` with PCMA and, when given, telephone-event as `te`.
fn sdp_te(ip: &str, port: u16, te: Option<u8>) -> String {
    let (fmt, maps) = match te {
        Some(pt) => (
            format!(" {pt}"),
            format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8{fmt}\r\na=rtpmap:8 PCMA/8000\r\n{maps}a=sendrecv\r\n"
    )
}

/// `invite` (with its SDP) from `a_flow`; the callee answers with `answer`; A ACKs.
fn establish_with(h: &mut Harness, a_flow: Flow, invite: &str, answer: &str) -> Up {
    let out = h.feed(a_flow, invite);
    let (b_flow, b_invite) = only(&out, "INVITE on leg B", |_, t| is_req(t, "INVITE")).clone();
    let contact = callee_contact(b_flow);
    let c = format!("Contact: {contact}");
    let ok = reply(&b_invite, 200, Some("b1"), &[&c, "Content-Type: application/sdp"], answer);
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, a_flow, 200);
    let a = Peer::caller(a_flow, invite, &a_ok);
    h.feed(a_flow, &a.ack(a.cseq, ""));
    let b = Peer::callee(b_flow, &b_invite, "b1", &contact);
    Up { a, b, a_invite: invite.to_string(), b_invite, a_ok }
}

/// Like [`establish_with`] once `invite` from `a_flow` has become `b_invite` on leg B.
fn establish_with_invite_sent(
    h: &mut Harness,
    a_flow: Flow,
    invite: &str,
    b_invite: &str,
    answer: &str,
) -> Up {
    let b_flow = if a_flow == pbx() { itsp() } else { pbx() };
    let contact = callee_contact(b_flow);
    let c = format!("Contact: {contact}");
    let ok = reply(b_invite, 200, Some("b1"), &[&c, "Content-Type: application/sdp"], answer);
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, a_flow, 200);
    let a = Peer::caller(a_flow, invite, &a_ok);
    h.feed(a_flow, &a.ack(a.cseq, ""));
    let b = Peer::callee(b_flow, b_invite, "b1", &contact);
    Up { a, b, a_invite: invite.to_string(), b_invite: b_invite.to_string(), a_ok }
}

/// The PBX calls out through the ITSP; the PBX offers telephone-event `pbx_te`, the ITSP
/// answers `itsp_te`.
fn outbound(h: &mut Harness, pbx_te: Option<u8>, itsp_te: Option<u8>) -> Up {
    let offer = sdp_te("10.0.0.50", 4000, pbx_te);
    let inv = invite(pbx(), "sip:0301234567@10.0.0.1", &[], &offer);
    establish_with(h, pbx(), &inv, &sdp_te("198.51.100.20", 30000, itsp_te))
}

const DTMF_RELAY: &str = "Content-Type: application/dtmf-relay";

#[test]
fn payload_types_renumbered_between_legs_that_disagree() {
    let (mut h, relay) = harness(CONFIG);
    let mut up = outbound(&mut h, Some(101), Some(96));
    let up_map = relay.last_media(relay::Side::A);
    assert_eq!(up_map.payload_map.get(101), 96, "the PBX's 101 reaches the ITSP as 96");
    assert_eq!(up_map.payload_map.get(8), 8);
    assert!(!up_map.events_to_signalling && up_map.events_out.is_none(), "passthrough");
    assert_eq!(relay.last_media(relay::Side::B).payload_map.get(96), 101);
    // A re-INVITE from the ITSP with another number updates the mapping.
    let reoffer = sdp_te("198.51.100.20", 30000, Some(97));
    let out = h.feed(itsp(), &up.b.request("INVITE", &["Content-Type: application/sdp"], &reoffer));
    let to_pbx = req_to(&out, pbx(), "INVITE");
    let answer = sdp_te("10.0.0.50", 4000, Some(101));
    let out =
        h.feed(pbx(), &up.a.answer(&to_pbx, 200, &["Content-Type: application/sdp"], &answer));
    resp_to(&out, itsp(), 200);
    assert_eq!(relay.last_media(relay::Side::B).payload_map.get(97), 101);
    assert_eq!(relay.last_media(relay::Side::A).payload_map.get(101), 97);
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn dtmf_info_crosses_unchanged_in_passthrough_both_ways() {
    let (mut h, relay) = harness(CONFIG);
    let mut up = outbound(&mut h, Some(101), Some(101));
    let bodies = [
        ("Content-Type: application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
        ("Content-Type: application/dtmf", "7"),
    ];
    for (ctype, payload) in bodies {
        let out = h.feed(pbx(), &up.a.request("INFO", &[ctype], payload));
        let b_info = req_to(&out, itsp(), "INFO");
        assert_eq!(
            (hdr(&b_info, "Content-Type"), body(&b_info)),
            (ctype[14..].to_string(), payload)
        );
        let out = h.feed(itsp(), &up.b.answer(&b_info, 200, &[], ""));
        resp_to(&out, pbx(), 200);
        let out = h.feed(itsp(), &up.b.request("INFO", &[ctype], payload));
        let a_info = req_to(&out, pbx(), "INFO");
        assert_eq!(body(&a_info), payload);
        let out = h.feed(pbx(), &up.a.answer(&a_info, 200, &[], ""));
        resp_to(&out, itsp(), 200);
    }
    assert!(relay.injected().is_empty());
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn info_toward_an_rfc4733_carrier_is_answered_here_and_played_with_its_payload_type() {
    let (mut h, relay) = harness(&config_with("198.51.100.10:5060", "rfc4733"));
    let mut up = outbound(&mut h, None, Some(96));
    let toward_itsp = relay.last_media(relay::Side::A);
    assert_eq!(toward_itsp.events_out, Some(EventFormat { payload_type: 96, clock_rate: 8000 }));
    let out = h.feed(pbx(), &up.a.request("INFO", &[DTMF_RELAY], "Signal=5\r\nDuration=200\r\n"));
    resp_to(&out, pbx(), 200);
    none_to(&out, itsp());
    let want = DtmfInjection { event: 5, duration: Duration::from_millis(200), volume: 10 };
    assert_eq!(relay.injected(), vec![(relay.rtp_pair(), relay::Side::B, want)]);
    // A body that names no key is refused; other INFO still crosses.
    let out = h.feed(pbx(), &up.a.request("INFO", &[DTMF_RELAY], "Signal=Z\r\n"));
    resp_to(&out, pbx(), 400);
    let out = h.feed(pbx(), &up.a.request("INFO", &["Content-Type: application/x-other"], "x"));
    let b_info = req_to(&out, itsp(), "INFO");
    h.feed(itsp(), &up.b.answer(&b_info, 200, &[], ""));
    assert_eq!(relay.injected().len(), 1);
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn info_toward_an_rfc4733_carrier_without_telephone_event_is_answered_and_dropped() {
    let (mut h, relay) = harness(&config_with("198.51.100.10:5060", "rfc4733"));
    let mut up = outbound(&mut h, None, None);
    let out = h.feed(pbx(), &up.a.request("INFO", &["Content-Type: application/dtmf"], "9"));
    resp_to(&out, pbx(), 200);
    none_to(&out, itsp());
    assert!(relay.injected().is_empty(), "nothing the carrier could decode");
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn events_from_the_carrier_reach_an_info_pbx_as_info() {
    let (mut h, relay) = harness(&config_with("10.0.0.50:5060", "info"));
    // The carrier calls the PBX (leg A is the carrier, leg B the PBX).
    let offer = sdp_te("198.51.100.20", 30000, Some(96));
    let inv = invite(itsp(), "sip:10001@203.0.113.1", &[], &offer);
    let mut up = establish_with(&mut h, itsp(), &inv, &sdp_te("10.0.0.50", 4000, Some(101)));
    let from_carrier = relay.last_media(relay::Side::A);
    assert!(from_carrier.events_to_signalling, "the carrier's events are taken out");
    assert!(from_carrier.events_in.contains(96) && from_carrier.events_in.contains(101));
    assert!(
        !relay.last_media(relay::Side::B).events_to_signalling,
        "the carrier wants them as they are"
    );
    let ev = RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::A,
        event: 9,
        duration: Duration::from_millis(120),
    };
    h.shard.handle_relay_event(h.now, ev);
    let out = h.drain();
    let info = req_to(&out, pbx(), "INFO");
    assert_eq!(hdr(&info, "Content-Type"), "application/dtmf-relay");
    assert_eq!(body(&info), "Signal=9\r\nDuration=120\r\n");
    assert_eq!(call_id(&info), call_id(&up.b_invite), "in the PBX's dialog");
    none_to(&out, itsp());
    let out = h.feed(pbx(), &up.b.answer(&info, 200, &[], ""));
    assert!(out.is_empty(), "sipborder's own INFO: its answer goes nowhere:\n{}", dump(&out));
    // '*' and '#' are written as symbols.
    let ev = RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::A,
        event: 11,
        duration: Duration::from_millis(80),
    };
    h.shard.handle_relay_event(h.now, ev);
    let info = req_to(&h.drain(), pbx(), "INFO");
    assert_eq!(body(&info), "Signal=#\r\nDuration=80\r\n");
    h.feed(pbx(), &up.b.answer(&info, 200, &[], ""));
    hang_up(&mut h, &mut up.a, pbx());
    h.assert_clean();
}

#[test]
fn an_event_of_an_unknown_pair_or_a_call_being_set_up_sends_nothing() {
    let (mut h, relay) = harness(&config_with("10.0.0.50:5060", "info"));
    let ev = |id| RelayEvent::Dtmf {
        id,
        side: relay::Side::A,
        event: 1,
        duration: Duration::from_millis(100),
    };
    h.shard.handle_relay_event(h.now, ev(PairId(999)));
    assert!(h.drain().is_empty());
    // Ringing: the PBX's dialog is not confirmed yet.
    let offer = sdp_te("198.51.100.20", 30000, Some(96));
    let out = h.feed(itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &offer));
    req_to(&out, pbx(), "INVITE");
    h.shard.handle_relay_event(h.now, ev(relay.rtp_pair()));
    assert!(h.drain().iter().all(|(_, t)| !is_req(t, "INFO")));
}

#[test]
fn a_transfer_target_with_other_numbers_is_mapped_to_what_the_carrier_was_told() {
    let yaml = CONFIG.replace(
        "    address: 198.51.100.10:5060\n",
        "    address: 198.51.100.10:5060\n    refer: local\n",
    );
    let (mut h, relay) = harness(&yaml);
    // The carrier (telephone-event 96) calls the PBX (101): the carrier was told 101.
    let offer = sdp_te("198.51.100.20", 30000, Some(96));
    let inv = invite(itsp(), "sip:10001@203.0.113.1", &[], &offer);
    let mut up = establish_with(&mut h, itsp(), &inv, &sdp_te("10.0.0.50", 4000, Some(101)));
    assert_eq!(relay.last_media(relay::Side::A).payload_map.get(96), 101);
    // The PBX transfers to 10003, which answers with 97; the carrier is not told anything.
    let refer = up.b.request("REFER", &["Refer-To: <sip:10003@10.0.0.50>"], "");
    let out = h.feed(pbx(), &refer);
    resp_to(&out, pbx(), 202);
    let target_invite = out
        .iter()
        .find(|(f, t)| *f == pbx() && is_req(t, "INVITE"))
        .map(|(_, t)| t.clone())
        .expect("an INVITE toward the transfer target");
    let c = "Contact: <sip:10003@10.0.0.50:5060>";
    let answer = sdp_te("10.0.0.63", 4002, Some(97));
    let ok = reply(&target_invite, 200, Some("t3"), &[c, "Content-Type: application/sdp"], &answer);
    let out = h.feed(pbx(), &ok);
    none_to(&out, itsp());
    let from_carrier = relay.last_media(relay::Side::A);
    assert_eq!(from_carrier.payload_map.get(101), 97, "what the carrier was told → the target's");
    assert_eq!(from_carrier.payload_map.get(96), 97, "the carrier's own number too");
    let from_target = relay.last_media(relay::Side::B);
    assert_eq!(from_target.payload_map.get(97), 96, "the target's number → the carrier's");
}

/// What follows the port on the `m=audio` line: protocol and formats.
fn m_formats(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_once(' '))
        .map_or("", |(_, rest)| rest)
}

/// The telephone-event payload types an SDP body lists on its `m=audio` line.
fn te_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.contains("telephone-event") || l.starts_with("a=fmtp:")).collect()
}

#[test]
fn telephone_event_is_added_toward_an_rfc4733_carrier_and_kept_from_the_info_pbx() {
    let (mut h, relay) = harness(&config_with("198.51.100.10:5060", "rfc4733"));
    // The PBX only does INFO: its offer has no telephone-event.
    let offer = sdp_te("10.0.0.50", 4000, None);
    let inv = invite(pbx(), "sip:0301234567@10.0.0.1", &[], &offer);
    let out = h.feed(pbx(), &inv);
    let (b_flow, b_invite) = only(&out, "INVITE on leg B", |_, t| is_req(t, "INVITE")).clone();
    let to_carrier = body(&b_invite);
    // (Relay ports are real sockets: tests running beside this one may hold the first ones.)
    assert_eq!(m_formats(to_carrier), "RTP/AVP 8 101", "{to_carrier}");
    assert_eq!(
        te_lines(to_carrier),
        ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"],
        "{to_carrier}"
    );
    assert!(to_carrier
        .ends_with("a=sendrecv\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
    // The carrier accepts with its own number; the PBX never offered events and gets none.
    let contact = callee_contact(b_flow);
    let c = format!("Contact: {contact}");
    let answer = sdp_te("198.51.100.20", 30000, Some(96));
    let ok = reply(&b_invite, 200, Some("b1"), &[&c, "Content-Type: application/sdp"], &answer);
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, pbx(), 200);
    assert!(te_lines(body(&a_ok)).is_empty(), "{}", body(&a_ok));
    assert_eq!(m_formats(body(&a_ok)), "RTP/AVP 8", "{}", body(&a_ok));
    let mut a = Peer::caller(pbx(), &inv, &a_ok);
    h.feed(pbx(), &a.ack(a.cseq, ""));
    // INFO is played with the carrier's number; the carrier's own events become INFO.
    assert_eq!(
        relay.last_media(relay::Side::A).events_out,
        Some(EventFormat { payload_type: 96, clock_rate: 8000 })
    );
    let from_carrier = relay.last_media(relay::Side::B);
    assert!(from_carrier.events_to_signalling && from_carrier.events_in.contains(96));
    let out = h.feed(pbx(), &a.request("INFO", &[DTMF_RELAY], "Signal=7\r\nDuration=250\r\n"));
    resp_to(&out, pbx(), 200);
    none_to(&out, itsp());
    let want = DtmfInjection { event: 7, duration: Duration::from_millis(250), volume: 10 };
    assert_eq!(relay.injected(), vec![(relay.rtp_pair(), relay::Side::B, want)]);
    let ev = RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::B,
        event: 3,
        duration: Duration::from_millis(100),
    };
    h.shard.handle_relay_event(h.now, ev);
    let info = req_to(&h.drain(), pbx(), "INFO");
    assert_eq!(body(&info), "Signal=3\r\nDuration=100\r\n");
    h.feed(pbx(), &a.answer(&info, 200, &[], ""));
    // A re-INVITE from the carrier keeps telephone-event away from the PBX; the PBX's answer
    // gets the carrier's number back.
    let mut b = Peer::callee(b_flow, &b_invite, "b1", &contact);
    let reoffer = sdp_te("198.51.100.20", 30000, Some(96)).replace("o=- 1 1", "o=- 1 2");
    let out = h.feed(itsp(), &b.request("INVITE", &["Content-Type: application/sdp"], &reoffer));
    let to_pbx = req_to(&out, pbx(), "INVITE");
    assert!(te_lines(body(&to_pbx)).is_empty(), "{}", body(&to_pbx));
    let answer = sdp_te("10.0.0.50", 4000, None);
    let out = h.feed(pbx(), &a.answer(&to_pbx, 200, &["Content-Type: application/sdp"], &answer));
    let to_carrier = resp_to(&out, itsp(), 200);
    assert_eq!(
        te_lines(body(&to_carrier)),
        ["a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-16"],
        "{}",
        body(&to_carrier)
    );
    h.feed(itsp(), &b.ack(b.cseq, ""));
    hang_up(&mut h, &mut a, itsp());
    h.assert_clean();
}

#[test]
fn an_info_pbx_answer_without_telephone_event_gets_the_carriers_number_back() {
    let (mut h, relay) = harness(&config_with("10.0.0.50:5060", "info"));
    let offer = sdp_te("198.51.100.20", 30000, Some(96));
    let inv = invite(itsp(), "sip:10001@203.0.113.1", &[], &offer);
    let out = h.feed(itsp(), &inv);
    let (_, b_invite) = only(&out, "INVITE on leg B", |_, t| is_req(t, "INVITE")).clone();
    assert_eq!(te_lines(body(&b_invite)).len(), 2, "the offer's events pass to the PBX");
    let mut up = establish_with_invite_sent(
        &mut h,
        itsp(),
        &inv,
        &b_invite,
        &sdp_te("10.0.0.50", 4000, None),
    );
    // The answer toward the carrier lists the offered 96, so the carrier sends events.
    assert_eq!(
        te_lines(body(&up.a_ok)),
        ["a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-16"],
        "{}",
        body(&up.a_ok)
    );
    let from_carrier = relay.last_media(relay::Side::A);
    assert!(from_carrier.events_to_signalling && from_carrier.events_in.contains(96));
    let ev = RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::A,
        event: 0,
        duration: Duration::from_millis(160),
    };
    h.shard.handle_relay_event(h.now, ev);
    let info = req_to(&h.drain(), pbx(), "INFO");
    assert_eq!(body(&info), "Signal=0\r\nDuration=160\r\n");
    h.feed(pbx(), &up.b.answer(&info, 200, &[], ""));
    hang_up(&mut h, &mut up.a, pbx());
    h.assert_clean();
}

#[test]
fn nothing_is_added_when_no_leg_converts() {
    let (mut h, _relay) = harness(CONFIG);
    let offer = sdp_te("10.0.0.50", 4000, None);
    let out = h.feed(pbx(), &invite(pbx(), "sip:0301234567@10.0.0.1", &[], &offer));
    let (_, b_invite) = only(&out, "INVITE on leg B", |_, t| is_req(t, "INVITE")).clone();
    assert!(te_lines(body(&b_invite)).is_empty(), "{}", body(&b_invite));
}

// ---- Early media ----------------------------------------------------------------------------

/// A 183 with SDP `early` from the callee at `b_flow` on `b_invite` (tag `b1`), `extra`
/// headers; returns what sipborder sent.
fn early_183(
    h: &mut Harness,
    b_flow: Flow,
    b_invite: &str,
    extra: &[&str],
    early: &str,
) -> Vec<Sent> {
    let c = format!("Contact: {}", callee_contact(b_flow));
    let mut hs: Vec<&str> = vec![&c, "Content-Type: application/sdp"];
    hs.extend_from_slice(extra);
    h.feed(b_flow, &reply(b_invite, 183, Some("b1"), &hs, early))
}

#[test]
fn info_in_the_callers_early_dialog_is_played_to_an_rfc4733_carrier() {
    // The carrier's IVR answers with early media; the PBX's caller keys a menu choice.
    let (mut h, relay) = harness(&config_with("198.51.100.10:5060", "rfc4733"));
    let offer = sdp_te("10.0.0.50", 4000, None);
    let inv = invite(pbx(), "sip:0301234567@10.0.0.1", &[], &offer);
    let out = h.feed(pbx(), &inv);
    let b_invite = req_to(&out, itsp(), "INVITE");
    let out = early_183(&mut h, itsp(), &b_invite, &[], &sdp_te("198.51.100.20", 30000, Some(96)));
    let a183 = resp_to(&out, pbx(), 183);
    assert!(!body(&a183).contains("telephone-event"), "{}", body(&a183));
    let mut a = Peer::caller(pbx(), &inv, &a183);
    let out = h.feed(pbx(), &a.request("INFO", &[DTMF_RELAY], "Signal=2\r\nDuration=180\r\n"));
    resp_to(&out, pbx(), 200);
    none_to(&out, itsp());
    let want = DtmfInjection { event: 2, duration: Duration::from_millis(180), volume: 10 };
    assert_eq!(relay.injected(), vec![(relay.rtp_pair(), relay::Side::B, want)]);
}

#[test]
fn info_in_the_callees_early_dialog_is_played_to_an_rfc4733_caller() {
    // The carrier calls; the PBX plays an announcement in early media and sends INFO in it.
    let yaml = config_with("198.51.100.10:5060", "rfc4733");
    let (mut h, relay) = harness(&yaml);
    let offer = sdp_te("198.51.100.20", 30000, Some(96));
    let inv = invite(itsp(), "sip:10001@203.0.113.1", &[], &offer);
    let out = h.feed(itsp(), &inv);
    let b_invite = req_to(&out, pbx(), "INVITE");
    let out = early_183(&mut h, pbx(), &b_invite, &[], &sdp_te("10.0.0.50", 4000, None));
    let a183 = resp_to(&out, itsp(), 183);
    assert!(body(&a183).contains("a=rtpmap:96 telephone-event/8000"), "{}", body(&a183));
    let mut b = Peer::callee(pbx(), &b_invite, "b1", &callee_contact(pbx()));
    let out = h.feed(pbx(), &b.request("INFO", &["Content-Type: application/dtmf"], "4"));
    resp_to(&out, pbx(), 200);
    none_to(&out, itsp());
    let want = DtmfInjection { event: 4, duration: Duration::from_millis(250), volume: 10 };
    assert_eq!(relay.injected(), vec![(relay.rtp_pair(), relay::Side::A, want)]);
}

#[test]
fn events_during_early_media_reach_an_info_callee_in_its_early_dialog() {
    // The carrier's caller keys digits into the PBX's IVR before it answers.
    let (mut h, relay) = harness(&config_with("10.0.0.50:5060", "info"));
    let offer = sdp_te("198.51.100.20", 30000, Some(96));
    let inv = invite(itsp(), "sip:10001@203.0.113.1", &[], &offer);
    let out = h.feed(itsp(), &inv);
    let b_invite = req_to(&out, pbx(), "INVITE");
    let out = early_183(&mut h, pbx(), &b_invite, &[], &sdp_te("10.0.0.50", 4000, None));
    resp_to(&out, itsp(), 183);
    assert!(relay.last_media(relay::Side::A).events_to_signalling);
    let ev = RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::A,
        event: 6,
        duration: Duration::from_millis(140),
    };
    h.shard.handle_relay_event(h.now, ev);
    let out = h.drain();
    let info = req_to(&out, pbx(), "INFO");
    assert_eq!(body(&info), "Signal=6\r\nDuration=140\r\n");
    assert_eq!(call_id(&info), call_id(&b_invite), "leg B's Call-ID");
    assert_eq!(to_tag(&info).as_deref(), Some("b1"), "the early dialog's remote tag");
    assert_eq!(from_tag(&info), from_tag(&b_invite));
    assert!(info.starts_with("INFO sip:callee@10.0.0.50:5060 SIP/2.0\r\n"), "{info}");
    let b = Peer::callee(pbx(), &b_invite, "b1", &callee_contact(pbx()));
    let out = h.feed(pbx(), &b.answer(&info, 200, &[], ""));
    assert!(out.is_empty(), "{}", dump(&out));
}

#[test]
fn events_during_early_media_reach_an_info_caller_only_after_it_pracked() {
    let (mut h, relay) = harness(&config_with("10.0.0.50:5060", "info"));
    let ev = |event| RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::B,
        event,
        duration: Duration::from_millis(100),
    };
    // Without 100rel the PBX may not know the early dialog: no INFO.
    let offer = sdp_te("10.0.0.50", 4000, None);
    let inv = invite(pbx(), "sip:0301234567@10.0.0.1", &[], &offer);
    let out = h.feed(pbx(), &inv);
    let b_invite = req_to(&out, itsp(), "INVITE");
    let out = early_183(&mut h, itsp(), &b_invite, &[], &sdp_te("198.51.100.20", 30000, Some(96)));
    resp_to(&out, pbx(), 183);
    h.shard.handle_relay_event(h.now, ev(1));
    assert!(h.drain().iter().all(|(_, t)| !is_req(t, "INFO")));

    // With a PRACKed reliable 183 it does.
    let (mut h, relay) = harness(&config_with("10.0.0.50:5060", "info"));
    let inv = invite(pbx(), "sip:0301234567@10.0.0.1", &["Supported: 100rel"], &offer);
    let out = h.feed(pbx(), &inv);
    let b_invite = req_to(&out, itsp(), "INVITE");
    let out = early_183(
        &mut h,
        itsp(),
        &b_invite,
        &["Require: 100rel", "RSeq: 7"],
        &sdp_te("198.51.100.20", 30000, Some(96)),
    );
    let a183 = resp_to(&out, pbx(), 183);
    let ev = |event| RelayEvent::Dtmf {
        id: relay.rtp_pair(),
        side: relay::Side::B,
        event,
        duration: Duration::from_millis(100),
    };
    h.shard.handle_relay_event(h.now, ev(1));
    assert!(h.drain().iter().all(|(_, t)| !is_req(t, "INFO")), "not PRACKed yet");
    let mut a = Peer::caller(pbx(), &inv, &a183);
    let out = h.feed(pbx(), &a.request("PRACK", &["RAck: 1 10 INVITE"], ""));
    let b_prack = req_to(&out, itsp(), "PRACK");
    let out = h.feed(itsp(), &reply(&b_prack, 200, None, &[], ""));
    resp_to(&out, pbx(), 200);
    h.shard.handle_relay_event(h.now, ev(8));
    let info = req_to(&h.drain(), pbx(), "INFO");
    assert_eq!(body(&info), "Signal=8\r\nDuration=100\r\n");
    assert_eq!(call_id(&info), call_id(&inv));
    assert_eq!(from_tag(&info), to_tag(&a183), "in the early dialog the PBX knows");
    assert_eq!(to_tag(&info), from_tag(&inv));
}
