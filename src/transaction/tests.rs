//! RFC 3261 §17 (+ RFC 6026) behaviour of the sans-IO transaction layer, driven with a fake clock.
//!
//! Every test builds messages as raw SIP text, parses them with the production parser, feeds them
//! to a [`TransactionLayer`] together with an explicit `now`, and asserts on what the layer puts on
//! the wire (`poll_transmit`) and what it tells the transaction user (`poll_event`).

use super::layer::response_flow;
use super::{TimerConfig, TransactionLayer, TxError, TxEvent, TxId};
use crate::sip::build::response_to;
use crate::sip::headers::make;
use crate::sip::message::{SipMsg, Transport};
use crate::sip::parse::{parse, parse_via, Limits};
use crate::sip::wire::reason_phrase;
use crate::transport::flow::{ConnId, Flow, Transmit, ZoneAddress, ZoneId};
use rsip::Method;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Fixtures

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const T4: Duration = Duration::from_secs(5);
const T1X64: Duration = Duration::from_secs(32);

/// Request-URI the inbound requests are sent to (our address on zone 0).
const OUR_URI: &str = "sip:bob@192.0.2.10";
/// Request-URI of the requests we send.
const PEER_URI: &str = "sip:carol@203.0.113.20";
const CALL_ID: &str = "a84b4c76e66710@pc33.example.com";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs_f(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn layer_with(cfg: TimerConfig) -> TransactionLayer {
    TransactionLayer::new(
        cfg,
        vec![ZoneAddress {
            host: "192.0.2.10".to_string(),
            udp_port: Some(5060),
            tcp_port: Some(5060),
        }],
    )
}

fn layer() -> TransactionLayer {
    layer_with(TimerConfig::default())
}

/// A phone behind NAT: it writes 10.0.0.5:5062 in its Via, we see 198.51.100.7:40000.
fn phone_udp() -> Flow {
    Flow::to(ZoneId(0), Transport::Udp, addr("198.51.100.7:40000"))
}

/// The same phone over a TCP connection from an ephemeral port.
fn phone_tcp() -> Flow {
    Flow {
        zone: ZoneId(0),
        transport: Transport::Tcp,
        remote: addr("198.51.100.7:40001"),
        conn: Some(ConnId(7)),
    }
}

/// The peer we send requests to.
fn uas_udp() -> Flow {
    Flow::to(ZoneId(0), Transport::Udp, addr("203.0.113.20:5060"))
}

fn uas_tcp() -> Flow {
    Flow {
        zone: ZoneId(0),
        transport: Transport::Tcp,
        remote: addr("203.0.113.20:5060"),
        conn: Some(ConnId(9)),
    }
}

/// Parses SIP text given as lines (CRLF-joined, blank line appended).
fn sip(lines: &[String]) -> SipMsg {
    let mut text = lines.join("\r\n");
    text.push_str("\r\n\r\n");
    parse(text.as_bytes(), &Limits::default()).expect("test message parses")
}

/// An inbound request with full control over the fields §17.2.3 matches on.
fn inbound(
    method: &str,
    uri: &str,
    via: &str,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
) -> SipMsg {
    let to = match to_tag {
        Some(t) => format!("To: Bob <sip:bob@192.0.2.10>;tag={t}"),
        None => "To: Bob <sip:bob@192.0.2.10>".to_string(),
    };
    sip(&[
        format!("{method} {uri} SIP/2.0"),
        format!("Via: {via}"),
        "Max-Forwards: 70".to_string(),
        "From: Alice <sip:alice@example.com>;tag=1928301774".to_string(),
        to,
        format!("Call-ID: {call_id}"),
        format!("CSeq: {cseq} {method}"),
        "Contact: <sip:alice@10.0.0.5:5062>".to_string(),
        "Content-Length: 0".to_string(),
    ])
}

/// Top Via of the phone (RFC 3261 branch, asks for rport).
fn phone_via(branch: &str) -> String {
    format!("SIP/2.0/UDP 10.0.0.5:5062;branch={branch};rport")
}

fn phone_via_tcp(branch: &str) -> String {
    format!("SIP/2.0/TCP 10.0.0.5:5062;branch={branch}")
}

fn invite_in(via: &str) -> SipMsg {
    inbound("INVITE", OUR_URI, via, CALL_ID, 1, None)
}

fn ack_in(via: &str, to_tag: &str) -> SipMsg {
    inbound("ACK", OUR_URI, via, CALL_ID, 1, Some(to_tag))
}

/// A request for the layer to send (the layer adds the Via).
fn outbound(method: &str) -> rsip::Request {
    let text = format!(
        "{method} {PEER_URI} SIP/2.0\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sbc@192.0.2.10>;tag=b2b-1\r\n\
         To: <sip:carol@203.0.113.20>\r\n\
         Call-ID: out-1@192.0.2.10\r\n\
         CSeq: 1 {method}\r\n\
         Route: <sip:edge.example.net;lr>\r\n\
         Contact: <sip:sbc@192.0.2.10:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_bytes()).expect("outbound request parses")
}

/// The peer's answer to a request we sent (`sent` is what went on the wire, parsed).
fn reply_to(sent: &SipMsg, code: u16, to_tag: Option<&str>) -> SipMsg {
    let via = sent.header("Via").expect("Via");
    let to = sent.header("To").expect("To");
    let to = match to_tag {
        Some(t) => format!("{to};tag={t}"),
        None => to.to_string(),
    };
    sip(&[
        format!("SIP/2.0 {code} {}", reason_phrase(code)),
        format!("Via: {via};received=192.0.2.10"),
        format!("From: {}", sent.header("From").expect("From")),
        format!("To: {to}"),
        format!("Call-ID: {}", sent.call_id),
        format!("CSeq: {} {}", sent.cseq, sent.cseq_method),
        "Content-Length: 0".to_string(),
    ])
}

/// What the TU would answer to an inbound request.
fn answer(req: &SipMsg, code: u16, flow: Flow) -> rsip::Response {
    let tag = if code > 100 { Some("uas-tag-1") } else { None };
    response_to(req, code, None, tag, flow.remote)
}

fn decode(t: &Transmit) -> SipMsg {
    parse(&t.bytes, &Limits::default()).expect("what the layer sends parses")
}

fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// The one message the layer sent, with its flow.
fn sent_one(l: &mut TransactionLayer) -> (Flow, SipMsg) {
    let t = transmits(l);
    assert_eq!(t.len(), 1, "expected exactly one transmit, got {t:?}");
    (t[0].flow, decode(&t[0]))
}

/// The new request the TU was told about.
fn new_request(l: &mut TransactionLayer) -> (TxId, SipMsg, Flow) {
    let ev = events(l);
    assert_eq!(ev.len(), 1, "expected one event, got {ev:?}");
    match ev.into_iter().next() {
        Some(TxEvent::Request { tx: Some(tx), msg, flow }) => (tx, msg, flow),
        other => panic!("expected a new request, got {other:?}"),
    }
}

/// Status codes and transaction ids of the responses the TU was told about.
fn responses(ev: &[TxEvent]) -> Vec<(Option<TxId>, u16)> {
    ev.iter()
        .filter_map(|e| match e {
            TxEvent::Response { tx, msg, .. } => Some((*tx, msg.status().unwrap_or(0))),
            _ => None,
        })
        .collect()
}

fn branch_of(m: &SipMsg) -> String {
    m.via.branch.clone().expect("branch")
}

fn vias(m: &SipMsg) -> usize {
    m.header_all("Via").flat_map(|v| v.split(',')).count()
}

/// Fires every timer up to and including `until`, stepping exactly to each deadline as a real
/// timer would. Returns what went on the wire and what the TU heard, stamped with the time since
/// `t0`.
struct Run {
    sent: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, TxEvent)>,
}

impl Run {
    fn sent_at(&self) -> Vec<Duration> {
        self.sent.iter().map(|(d, _)| *d).collect()
    }
}

fn run_until(l: &mut TransactionLayer, t0: Instant, until: Instant) -> Run {
    let mut run = Run { sent: Vec::new(), events: Vec::new() };
    while let Some(deadline) = l.poll_timeout() {
        if deadline > until {
            break;
        }
        l.handle_timeout(deadline);
        run.sent.extend(std::iter::from_fn(|| l.poll_transmit()).map(|t| (deadline - t0, t)));
        run.events.extend(std::iter::from_fn(|| l.poll_event()).map(|e| (deadline - t0, e)));
    }
    run
}

/// Times of Timer A/E/G style retransmissions: first after `first`, interval doubling, capped at
/// `cap` when given, strictly before `end`.
fn backoff(first: Duration, cap: Option<Duration>, end: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    let (mut at, mut interval) = (first, first);
    while at < end {
        out.push(at);
        interval *= 2;
        if let Some(c) = cap {
            interval = interval.min(c);
        }
        at += interval;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// INVITE server (§17.2.1, RFC 6026 §7.1)

#[test]
fn invite_server_sends_100_trying_at_once() {
    let t0 = Instant::now();
    let mut l = layer();
    l.handle_message(t0, invite_in(&phone_via("z9hG4bKinv1")), phone_udp());

    let (flow, trying) = sent_one(&mut l);
    assert_eq!(trying.status(), Some(100));
    assert_eq!(flow, phone_udp(), "rport: the 100 goes back to the NAT's source address");
    assert_eq!(branch_of(&trying), "z9hG4bKinv1");
    assert_eq!(trying.via.rport, Some(Some(40000)));
    assert_eq!(trying.via.received.as_deref(), Some("198.51.100.7"));
    assert_eq!(trying.cseq_method, Method::Invite);
    assert_eq!(trying.to_tag, None, "a 100 carries no To tag");

    let (tx, msg, flow) = new_request(&mut l);
    assert_eq!(msg.method(), Method::Invite);
    assert_eq!(flow, phone_udp());
    assert!(l.server_invite_pending(tx));
    assert_eq!(l.len(), 1);
}

#[test]
fn invite_server_retransmitted_invite_resends_last_provisional_and_never_reaches_tu_again() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKinv2");
    l.handle_message(t0, invite_in(&via), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);

    // Before the TU said anything, the retransmission gets the 100 again.
    l.handle_message(t0 + ms(500), invite_in(&via), phone_udp());
    let (to, m) = sent_one(&mut l);
    assert_eq!((to, m.status()), (phone_udp(), Some(100)));
    assert!(events(&mut l).is_empty(), "a retransmitted INVITE never makes a second call");

    l.respond(t0 + ms(600), tx, answer(&invite, 180, flow)).expect("180");
    let (_, ringing) = sent_one(&mut l);
    assert_eq!(ringing.status(), Some(180));

    for i in 0..3u64 {
        l.handle_message(t0 + ms(1500 + i * 1000), invite_in(&via), phone_udp());
        let (to, m) = sent_one(&mut l);
        assert_eq!((to, m.status()), (phone_udp(), Some(180)), "last provisional re-sent");
        assert!(events(&mut l).is_empty());
    }
    assert_eq!(l.stats().absorbed, 4);
    assert_eq!(l.len(), 1);
}

#[test]
fn invite_server_retransmitted_invite_in_completed_gets_the_final_again() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKinv3");
    l.handle_message(t0, invite_in(&via), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0 + ms(10), tx, answer(&invite, 486, flow)).expect("486");
    let _ = transmits(&mut l);

    l.handle_message(t0 + ms(200), invite_in(&via), phone_udp());
    let (to, m) = sent_one(&mut l);
    assert_eq!((to, m.status()), (phone_udp(), Some(486)));
    assert!(events(&mut l).is_empty());
}

#[test]
fn invite_server_2xx_enters_accepted_absorbs_retransmits_and_timer_l_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKinv4");
    l.handle_message(t0, invite_in(&via), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);

    l.respond(t0 + ms(100), tx, answer(&invite, 200, flow)).expect("200");
    let (to, ok) = sent_one(&mut l);
    assert_eq!((to, ok.status()), (phone_udp(), Some(200)));
    assert!(!l.server_invite_pending(tx));

    // Accepted (RFC 6026 §7.1): retransmitted INVITEs are absorbed silently — the TU
    // retransmits the 2xx itself, and the INVITE must not start a second call.
    l.handle_message(t0 + ms(500), invite_in(&via), phone_udp());
    assert!(transmits(&mut l).is_empty(), "the layer does not resend the 2xx");
    assert!(events(&mut l).is_empty(), "nor does the TU see the retransmission");

    // The TU may still send the 2xx again through the transaction while it is Accepted.
    l.respond(t0 + ms(600), tx, answer(&invite, 200, flow)).expect("2xx retransmission");
    assert_eq!(sent_one(&mut l).1.status(), Some(200));
    assert_eq!(
        l.respond(t0 + ms(700), tx, answer(&invite, 486, flow)),
        Err(TxError::BadState),
        "no non-2xx after a 2xx"
    );

    // Timer L = 64*T1 from the 2xx.
    let run = run_until(&mut l, t0, t0 + ms(100) + T1X64 - ms(1));
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 1);
    let run = run_until(&mut l, t0, t0 + ms(100) + T1X64);
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 0, "Timer L terminated the transaction");
    assert_eq!(
        l.respond(t0 + ms(100) + T1X64, tx, answer(&invite, 200, flow)),
        Err(TxError::NoTransaction)
    );
}

#[test]
fn invite_server_timer_g_retransmits_non_2xx_at_t1_2t1_4t1_capped_at_t2_over_udp() {
    let t0 = Instant::now();
    let mut l = layer();
    l.handle_message(t0, invite_in(&phone_via("z9hG4bKinv5")), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    let (_, busy) = sent_one(&mut l);
    assert_eq!(busy.status(), Some(486));

    let run = run_until(&mut l, t0, t0 + T1X64 - ms(1));
    // 0.5, 1.5, 3.5, 7.5, then every T2: 11.5, 15.5, ... 31.5.
    let expected = backoff(T1, Some(T2), T1X64);
    assert_eq!(&expected[..4], &[ms(500), ms(1500), ms(3500), ms(7500)]);
    assert_eq!(run.sent_at(), expected);
    for (_, t) in &run.sent {
        assert_eq!(t.flow, phone_udp());
        assert_eq!(decode(t).status(), Some(486));
    }
    assert!(run.events.is_empty());
    assert_eq!(l.stats().retransmissions, expected.len() as u64);
}

#[test]
fn invite_server_non_2xx_over_tcp_is_never_retransmitted() {
    let t0 = Instant::now();
    let mut l = layer();
    l.handle_message(t0, invite_in(&phone_via_tcp("z9hG4bKinv6")), phone_tcp());
    let (to, trying) = sent_one(&mut l);
    assert_eq!((to.conn, trying.status()), (Some(ConnId(7)), Some(100)));
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    assert_eq!(sent_one(&mut l).1.status(), Some(486));

    let run = run_until(&mut l, t0, t0 + T1X64 - ms(1));
    assert!(run.sent.is_empty(), "no Timer G over TCP: {:?}", run.sent_at());
    assert!(run.events.is_empty());
    assert_eq!(l.len(), 1, "Timer H still bounds the wait for the ACK");
}

#[test]
fn invite_server_ack_confirms_and_timer_i_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKinv7");
    l.handle_message(t0, invite_in(&via), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    let _ = transmits(&mut l);

    // One Timer G retransmission at T1, then the ACK arrives.
    let run = run_until(&mut l, t0, t0 + secs_f(1.0));
    assert_eq!(run.sent_at(), vec![T1]);
    let ack_at = t0 + secs_f(1.0);
    l.handle_message(ack_at, ack_in(&via, "uas-tag-1"), phone_udp());
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty(), "the ACK of a non-2xx is the transaction's, not the TU's");

    // Confirmed: ACK retransmissions are absorbed, G and H no longer run.
    l.handle_message(ack_at + ms(100), ack_in(&via, "uas-tag-1"), phone_udp());
    assert!(transmits(&mut l).is_empty() && events(&mut l).is_empty());
    let run = run_until(&mut l, t0, ack_at + T4 - ms(1));
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 1);

    // Timer I = T4.
    let run = run_until(&mut l, t0, ack_at + T4);
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 0);
    let run = run_until(&mut l, t0, t0 + secs_f(100.0));
    assert!(run.events.is_empty(), "no AckTimeout after the ACK");
}

#[test]
fn invite_server_ack_over_tcp_terminates_at_once() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via_tcp("z9hG4bKinv8");
    l.handle_message(t0, invite_in(&via), phone_tcp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 603, flow)).expect("603");
    let _ = transmits(&mut l);
    l.handle_message(t0 + ms(50), ack_in(&via, "uas-tag-1"), phone_tcp());
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 0, "Timer I is zero over reliable transports");
}

#[test]
fn invite_server_timer_h_fires_ack_timeout_when_no_ack_comes() {
    let t0 = Instant::now();
    let mut l = layer();
    l.handle_message(t0, invite_in(&phone_via("z9hG4bKinv9")), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    let final_at = t0 + ms(300);
    l.respond(final_at, tx, answer(&invite, 480, flow)).expect("480");
    let _ = transmits(&mut l);

    let run = run_until(&mut l, t0, final_at + T1X64 - ms(1));
    assert!(run.events.is_empty());
    assert_eq!(l.len(), 1);
    let run = run_until(&mut l, t0, final_at + T1X64);
    assert_eq!(run.events.len(), 1);
    match &run.events[0] {
        (at, TxEvent::AckTimeout { tx: t }) => {
            assert_eq!(*t, tx);
            assert_eq!(*at, ms(300) + T1X64);
        }
        other => panic!("expected AckTimeout, got {other:?}"),
    }
    assert_eq!(l.len(), 0);
}

#[test]
fn invite_server_ack_is_matched_by_branch_and_sent_by() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKinv10");
    l.handle_message(t0, invite_in(&via), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    let _ = transmits(&mut l);

    // Another branch (what an ACK for a 2xx looks like): not this transaction's; goes to the TU.
    l.handle_message(t0 + ms(100), ack_in(&phone_via("z9hG4bKother"), "uas-tag-1"), phone_udp());
    match events(&mut l).as_slice() {
        [TxEvent::Request { tx: None, msg, .. }] => assert_eq!(msg.method(), Method::Ack),
        other => panic!("expected a transaction-less ACK, got {other:?}"),
    }
    // Same branch, other sent-by: not a match either (§17.2.3).
    let foreign = "SIP/2.0/UDP 10.0.0.99:5062;branch=z9hG4bKinv10;rport";
    l.handle_message(t0 + ms(200), ack_in(foreign, "uas-tag-1"), phone_udp());
    assert!(matches!(events(&mut l).as_slice(), [TxEvent::Request { tx: None, .. }]));

    // Timer G still runs: the transaction was not confirmed.
    let run = run_until(&mut l, t0, t0 + T1);
    assert_eq!(run.sent_at(), vec![T1]);

    // The real ACK matches and stops G.
    l.handle_message(t0 + ms(600), ack_in(&via, "uas-tag-1"), phone_udp());
    assert!(events(&mut l).is_empty());
    let run = run_until(&mut l, t0, t0 + T1X64 + T1X64);
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 0);
}

#[test]
fn invite_server_matches_rfc2543_ack_without_magic_cookie() {
    // RFC 2543 peers: no branch at all, or a branch without the z9hG4bK cookie.
    for (i, via) in ["SIP/2.0/UDP 198.51.100.7:5060", "SIP/2.0/UDP 198.51.100.7:5060;branch=1a2b3c"]
        .into_iter()
        .enumerate()
    {
        let t0 = Instant::now();
        let mut l = layer();
        let call_id = format!("legacy-{i}@198.51.100.7");
        let from = Flow::to(ZoneId(0), Transport::Udp, addr("198.51.100.7:5060"));
        let invite = inbound("INVITE", OUR_URI, via, &call_id, 7, None);
        l.handle_message(t0, invite.clone(), from);
        let _ = transmits(&mut l);
        let (tx, invite_seen, flow) = new_request(&mut l);

        // The retransmission matches on Call-ID, From tag, CSeq, Request-URI and top Via.
        l.handle_message(t0 + ms(100), invite, from);
        assert_eq!(sent_one(&mut l).1.status(), Some(100));
        assert!(events(&mut l).is_empty(), "legacy retransmission absorbed ({via})");

        l.respond(t0 + ms(200), tx, answer(&invite_seen, 486, flow)).expect("486");
        let _ = transmits(&mut l);

        // An ACK with another CSeq number is a different request.
        let wrong = inbound("ACK", OUR_URI, via, &call_id, 8, Some("uas-tag-1"));
        l.handle_message(t0 + ms(300), wrong, from);
        assert!(matches!(events(&mut l).as_slice(), [TxEvent::Request { tx: None, .. }]));

        // The ACK (same Call-ID, From tag, CSeq number, Request-URI, Via; To tag of the 486).
        let ack = inbound("ACK", OUR_URI, via, &call_id, 7, Some("uas-tag-1"));
        l.handle_message(t0 + ms(400), ack, from);
        assert!(events(&mut l).is_empty(), "legacy ACK matched the transaction ({via})");
        let run = run_until(&mut l, t0, t0 + ms(400) + T4);
        assert!(run.sent.is_empty(), "Timer G stopped by the ACK ({via})");
        assert!(run.events.is_empty());
        assert_eq!(l.len(), 0, "Timer I ended it ({via})");
    }
}

#[test]
fn invite_server_rfc2543_matching_tells_apart_call_id_and_request_uri() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = "SIP/2.0/UDP 198.51.100.7:5060";
    let from = Flow::to(ZoneId(0), Transport::Udp, addr("198.51.100.7:5060"));
    l.handle_message(t0, inbound("INVITE", OUR_URI, via, "c1@legacy", 1, None), from);
    l.handle_message(t0, inbound("INVITE", OUR_URI, via, "c2@legacy", 1, None), from);
    l.handle_message(t0, inbound("INVITE", "sip:dave@192.0.2.10", via, "c1@legacy", 1, None), from);
    let ev = events(&mut l);
    assert_eq!(ev.len(), 3, "three different requests, three calls: {ev:?}");
    assert!(ev.iter().all(|e| matches!(e, TxEvent::Request { tx: Some(_), .. })));
    assert_eq!(l.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// INVITE client (§17.1.1, RFC 6026 §7.2)

/// Sends an INVITE at `now`; returns its id and the INVITE as it went out.
fn send_invite(l: &mut TransactionLayer, now: Instant, flow: Flow) -> (TxId, SipMsg) {
    let tx = l.send_request(now, outbound("INVITE"), flow);
    let (to, invite) = sent_one(l);
    assert_eq!(to, flow);
    (tx, invite)
}

#[test]
fn invite_client_timer_a_retransmits_at_t1_2t1_4t1_over_udp() {
    let t0 = Instant::now();
    let mut l = layer();
    let tx = l.send_request(t0, outbound("INVITE"), uas_udp());
    let first = transmits(&mut l);
    assert_eq!(first.len(), 1);
    let invite = decode(&first[0]);
    assert_eq!(invite.method(), Method::Invite);
    assert!(invite.via.has_rfc3261_branch());
    assert_eq!(invite.via.rport, Some(None), "we ask for rport over UDP");
    assert_eq!(vias(&invite), 1);

    let run = run_until(&mut l, t0, t0 + T1X64 - ms(1));
    // No T2 cap for INVITE: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5.
    let expected = backoff(T1, None, T1X64);
    assert_eq!(expected, [500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec());
    assert_eq!(run.sent_at(), expected);
    for (_, t) in &run.sent {
        assert_eq!(t.flow, uas_udp());
        assert_eq!(t.bytes, first[0].bytes, "the very same INVITE");
    }
    assert!(run.events.is_empty());
    assert_eq!(l.stats().retransmissions, 6);
    assert!(l.client_invite(tx).is_some());
}

#[test]
fn invite_client_over_tcp_never_retransmits() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_tcp());
    assert_eq!(invite.via.transport, Transport::Tcp);
    assert_eq!(invite.via.rport, None);
    let run = run_until(&mut l, t0, t0 + T1X64);
    assert!(run.sent.is_empty(), "no Timer A over TCP: {:?}", run.sent_at());
    assert!(matches!(run.events.as_slice(), [(_, TxEvent::Timeout { tx: t })] if *t == tx));
}

#[test]
fn invite_client_timer_b_fires_timeout_after_64_t1() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, _) = send_invite(&mut l, t0, uas_udp());
    let run = run_until(&mut l, t0, t0 + T1X64 - ms(1));
    assert!(run.events.is_empty());
    let run = run_until(&mut l, t0, t0 + T1X64);
    match run.events.as_slice() {
        [(at, TxEvent::Timeout { tx: t })] => assert_eq!((*at, *t), (T1X64, tx)),
        other => panic!("expected Timeout at 64*T1, got {other:?}"),
    }
    assert_eq!(l.len(), 0);
    assert_eq!(l.stats().timeouts, 1);
    // Nothing more is sent for it, ever.
    let run = run_until(&mut l, t0, t0 + secs_f(3600.0));
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.poll_timeout(), None, "no timer left behind");
}

#[test]
fn invite_client_provisional_stops_timers_a_and_b() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    let _ = run_until(&mut l, t0, t0 + ms(600)); // one retransmission at T1

    // 100 Trying: hop-by-hop, stops retransmissions, not passed up.
    l.handle_message(t0 + ms(700), reply_to(&invite, 100, None), uas_udp());
    assert!(events(&mut l).is_empty(), "100 Trying is not the TU's business");
    assert!(transmits(&mut l).is_empty());

    l.handle_message(t0 + ms(900), reply_to(&invite, 180, Some("uas-1")), uas_udp());
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 180)]);

    let run = run_until(&mut l, t0, t0 + secs_f(120.0));
    assert!(run.sent.is_empty(), "Timer A stopped: {:?}", run.sent_at());
    assert!(run.events.is_empty(), "Timer B stopped");
    assert_eq!(l.len(), 1, "still ringing");
}

#[test]
fn invite_client_acks_non_2xx_itself_with_the_invite_branch_and_uri() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + ms(100), reply_to(&invite, 486, Some("uas-busy")), uas_udp());

    let (to, ack) = sent_one(&mut l);
    assert_eq!(to, uas_udp());
    assert_eq!(ack.method(), Method::Ack);
    assert_eq!(ack.request_uri(), invite.request_uri(), "same Request-URI (§17.1.1.3)");
    assert_eq!(branch_of(&ack), branch_of(&invite), "same branch: part of the transaction");
    assert_eq!(ack.header("Via"), invite.header("Via"), "the INVITE's top Via");
    assert_eq!(vias(&ack), 1, "a single Via");
    assert_eq!(ack.to_tag.as_deref(), Some("uas-busy"), "To from the response, with its tag");
    assert_eq!(ack.header("From"), invite.header("From"));
    assert_eq!(ack.from_tag.as_deref(), Some("b2b-1"));
    assert_eq!(ack.call_id, invite.call_id);
    assert_eq!((ack.cseq, ack.cseq_method), (invite.cseq, Method::Ack));
    assert_eq!(ack.header("Route"), invite.header("Route"), "Route set copied");
    assert!(ack.body().is_empty());

    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 486)]);
}

#[test]
fn invite_client_timer_d_absorbs_for_64_t1_over_udp_and_is_zero_over_tcp() {
    let t0 = Instant::now();
    let mut l = layer();
    let (_, invite) = send_invite(&mut l, t0, uas_udp());
    let final_at = t0 + ms(100);
    l.handle_message(final_at, reply_to(&invite, 404, Some("x")), uas_udp());
    let _ = (transmits(&mut l), events(&mut l));
    let run = run_until(&mut l, t0, final_at + T1X64 - ms(1));
    assert!(run.sent.is_empty() && run.events.is_empty(), "Timer A stopped by the final");
    assert_eq!(l.len(), 1, "Completed, waiting out Timer D");
    let _ = run_until(&mut l, t0, final_at + T1X64);
    assert_eq!(l.len(), 0);

    let t1 = t0 + Duration::from_secs(100);
    let (_, invite) = send_invite(&mut l, t1, uas_tcp());
    l.handle_message(t1 + ms(100), reply_to(&invite, 404, Some("x")), uas_tcp());
    let (to, ack) = sent_one(&mut l);
    assert_eq!((to, ack.method()), (uas_tcp(), Method::Ack));
    assert_eq!(responses(&events(&mut l)).len(), 1);
    assert_eq!(l.len(), 0, "Timer D is zero over TCP");
}

#[test]
fn invite_client_retransmitted_final_resends_ack_and_is_not_passed_to_tu() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + ms(100), reply_to(&invite, 486, Some("b")), uas_udp());
    let ack = transmits(&mut l);
    assert_eq!(ack.len(), 1);
    assert_eq!(decode(&ack[0]).method(), Method::Ack);
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 486)]);

    for i in 1..=3u64 {
        l.handle_message(t0 + ms(100 + 500 * i), reply_to(&invite, 486, Some("b")), uas_udp());
        let again = transmits(&mut l);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].flow, uas_udp());
        assert_eq!(again[0].bytes, ack[0].bytes, "the same ACK again");
        assert!(events(&mut l).is_empty(), "retransmitted final absorbed");
    }
}

#[test]
fn invite_client_2xx_enters_accepted_and_every_2xx_reaches_tu_until_timer_m() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    let ok_at = t0 + ms(200);
    l.handle_message(ok_at, reply_to(&invite, 200, Some("fork-a")), uas_udp());
    assert!(transmits(&mut l).is_empty(), "the ACK of a 2xx is the TU's (dialog's) job");
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 200)]);

    // A 2xx from another fork and a retransmission of the first both go up (RFC 6026 §7.2).
    l.handle_message(ok_at + ms(50), reply_to(&invite, 200, Some("fork-b")), uas_udp());
    l.handle_message(ok_at + ms(500), reply_to(&invite, 200, Some("fork-a")), uas_udp());
    let ev = events(&mut l);
    assert_eq!(responses(&ev), vec![(Some(tx), 200), (Some(tx), 200)]);
    let tags: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            TxEvent::Response { msg, .. } => msg.to_tag.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(tags, ["fork-b", "fork-a"]);
    assert!(transmits(&mut l).is_empty());

    // Timer M = 64*T1 after the first 2xx; no Timer A/B traffic meanwhile.
    let run = run_until(&mut l, t0, ok_at + T1X64 - ms(1));
    assert!(run.sent.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 1);
    let _ = run_until(&mut l, t0, ok_at + T1X64);
    assert_eq!(l.len(), 0);
    // After that a 2xx is stray: still reported, without a transaction.
    l.handle_message(ok_at + T1X64, reply_to(&invite, 200, Some("fork-a")), uas_udp());
    assert_eq!(responses(&events(&mut l)), vec![(None, 200)]);
}

#[test]
fn invite_client_timer_c_fires_ring_timeout_after_a_provisional() {
    let t0 = Instant::now();
    let cfg = TimerConfig { timer_c: Duration::from_secs(60), ..TimerConfig::default() };
    let mut l = layer_with(cfg);
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + secs_f(1.0), reply_to(&invite, 180, Some("r")), uas_udp());
    let _ = events(&mut l);
    // A later provisional (not 100) restarts Timer C.
    l.handle_message(t0 + secs_f(10.0), reply_to(&invite, 183, Some("r")), uas_udp());
    let _ = events(&mut l);

    let run = run_until(&mut l, t0, t0 + secs_f(70.0) - ms(1));
    assert!(run.events.is_empty(), "Timer C counts from the last provisional");
    let run = run_until(&mut l, t0, t0 + secs_f(70.0));
    match run.events.as_slice() {
        [(at, TxEvent::RingTimeout { tx: t })] => assert_eq!((*at, *t), (secs_f(70.0), tx)),
        other => panic!("expected RingTimeout, got {other:?}"),
    }
    assert_eq!(l.len(), 1, "the TU decides: it cancels");
    l.cancel(t0 + secs_f(70.0), tx, Vec::new());
    let (_, cancel) = sent_one(&mut l);
    assert_eq!(cancel.method(), Method::Cancel);
}

#[test]
fn invite_client_cancel_before_any_provisional_is_held_until_the_first_one() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    let reason = make("Reason", "SIP;cause=487;text=\"Request Terminated\"");
    l.cancel(t0 + ms(200), tx, vec![reason]);
    assert!(transmits(&mut l).is_empty(), "§9.1: no CANCEL before a provisional");

    // Timer A keeps retransmitting the INVITE meanwhile; still no CANCEL.
    let run = run_until(&mut l, t0, t0 + ms(800));
    assert_eq!(run.sent.len(), 1);
    assert_eq!(decode(&run.sent[0].1).method(), Method::Invite);

    // The first provisional releases the CANCEL (a 100 is enough).
    l.handle_message(t0 + ms(900), reply_to(&invite, 100, None), uas_udp());
    let (to, cancel) = sent_one(&mut l);
    assert_eq!(to, uas_udp());
    assert_eq!(cancel.method(), Method::Cancel);
    assert_eq!(cancel.request_uri(), invite.request_uri(), "same Request-URI");
    assert_eq!(branch_of(&cancel), branch_of(&invite), "the INVITE's branch (§9.1)");
    assert_eq!(cancel.header("Via"), invite.header("Via"));
    assert_eq!(vias(&cancel), 1);
    assert_eq!((cancel.cseq, cancel.cseq_method), (invite.cseq, Method::Cancel));
    assert_eq!(cancel.header("To"), invite.header("To"), "To as in the INVITE (no tag)");
    assert_eq!(cancel.to_tag, None);
    assert_eq!(cancel.header("From"), invite.header("From"));
    assert_eq!(cancel.call_id, invite.call_id);
    assert_eq!(cancel.header("Route"), invite.header("Route"));
    assert!(cancel.header("Reason").is_some_and(|r| r.contains("cause=487")));
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 2, "the INVITE and its CANCEL transaction");

    // A second cancel request sends nothing more.
    l.cancel(t0 + ms(950), tx, Vec::new());
    assert!(transmits(&mut l).is_empty());

    // 200 to the CANCEL stays inside the layer; the 487 reaches the TU and is ACKed.
    l.handle_message(t0 + ms(1000), reply_to(&cancel, 200, Some("c")), uas_udp());
    assert!(events(&mut l).is_empty());
    l.handle_message(t0 + ms(1100), reply_to(&invite, 487, Some("c")), uas_udp());
    let (_, ack) = sent_one(&mut l);
    assert_eq!(ack.method(), Method::Ack);
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 487)]);
}

#[test]
fn invite_client_cancel_dropped_when_a_final_comes_before_any_provisional() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    l.cancel(t0 + ms(100), tx, Vec::new());
    l.handle_message(t0 + ms(200), reply_to(&invite, 200, Some("fast")), uas_udp());
    assert!(transmits(&mut l).is_empty(), "nothing left to cancel");
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 200)]);
    assert_eq!(l.len(), 1);
}

#[test]
fn invite_client_cancel_guard_times_out_when_no_final_follows_the_cancel() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + secs_f(1.0), reply_to(&invite, 180, Some("r")), uas_udp());
    let _ = events(&mut l);
    let cancel_at = t0 + secs_f(2.0);
    l.cancel(cancel_at, tx, Vec::new());
    let (_, cancel) = sent_one(&mut l);
    l.handle_message(cancel_at + ms(100), reply_to(&cancel, 200, Some("r")), uas_udp());
    assert!(events(&mut l).is_empty());

    // The UAS never sends the 487.
    let run = run_until(&mut l, t0, cancel_at + T1X64 - ms(1));
    assert!(run.events.is_empty());
    assert!(run.sent.is_empty(), "the CANCEL was answered, the INVITE is in Proceeding");
    let run = run_until(&mut l, t0, cancel_at + T1X64);
    match run.events.as_slice() {
        [(at, TxEvent::Timeout { tx: t })] => assert_eq!((*at, *t), (secs_f(2.0) + T1X64, tx)),
        other => panic!("expected Timeout 64*T1 after the CANCEL, got {other:?}"),
    }
    assert_eq!(l.len(), 0);
}

#[test]
fn invite_client_transport_error_is_reported_and_ends_the_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, _) = send_invite(&mut l, t0, uas_tcp());
    let other = l.send_request(t0, outbound("OPTIONS"), uas_udp());
    let _ = transmits(&mut l);

    l.handle_transport_error(t0 + ms(10), uas_tcp());
    match events(&mut l).as_slice() {
        [TxEvent::TransportError { tx: t }] => assert_eq!(*t, tx),
        other => panic!("expected TransportError, got {other:?}"),
    }
    assert_eq!(l.len(), 1, "the UDP OPTIONS to the same host is another flow");
    assert!(l.client_invite(tx).is_none());
    let run = run_until(&mut l, t0, t0 + T1X64);
    assert!(matches!(run.events.as_slice(), [(_, TxEvent::Timeout { tx: t })] if *t == other));
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE client (§17.1.2)

#[test]
fn non_invite_client_timer_e_doubles_up_to_t2_then_timer_f_times_out() {
    let t0 = Instant::now();
    let mut l = layer();
    let tx = l.send_request(t0, outbound("OPTIONS"), uas_udp());
    let (_, req) = sent_one(&mut l);
    assert_eq!(req.method(), Method::Options);

    let run = run_until(&mut l, t0, t0 + T1X64);
    let expected = backoff(T1, Some(T2), T1X64);
    assert_eq!(&expected[..5], &[500, 1500, 3500, 7500, 11500].map(ms));
    assert_eq!(run.sent_at(), expected);
    assert!(run.sent.iter().all(|(_, t)| decode(t).method() == Method::Options));
    match run.events.as_slice() {
        [(at, TxEvent::Timeout { tx: t })] => assert_eq!((*at, *t), (T1X64, tx)),
        other => panic!("expected Timer F, got {other:?}"),
    }
    assert_eq!(l.len(), 0);
}

#[test]
fn non_invite_client_timer_e_jumps_to_t2_after_a_provisional() {
    let t0 = Instant::now();
    let mut l = layer();
    let tx = l.send_request(t0, outbound("REGISTER"), uas_udp());
    let (_, req) = sent_one(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(600));
    assert_eq!(run.sent_at(), vec![ms(500)]);

    l.handle_message(t0 + ms(700), reply_to(&req, 100, None), uas_udp());
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 100)]);

    // E was due at 1.5 s; from then on it is T2: 5.5, 9.5, ...
    let run = run_until(&mut l, t0, t0 + secs_f(14.0));
    assert_eq!(run.sent_at(), [1500, 5500, 9500, 13500].map(ms).to_vec());
    // Timer F still bounds Proceeding.
    let run = run_until(&mut l, t0, t0 + T1X64);
    assert!(matches!(run.events.as_slice(), [(_, TxEvent::Timeout { .. })]));
    assert_eq!(l.len(), 0);
}

#[test]
fn non_invite_client_over_tcp_does_not_retransmit_but_times_out() {
    let t0 = Instant::now();
    let mut l = layer();
    let tx = l.send_request(t0, outbound("OPTIONS"), uas_tcp());
    let _ = sent_one(&mut l);
    let run = run_until(&mut l, t0, t0 + T1X64);
    assert!(run.sent.is_empty());
    assert!(
        matches!(run.events.as_slice(), [(at, TxEvent::Timeout { tx: t })] if *t == tx && *at == T1X64)
    );
}

#[test]
fn non_invite_client_timer_k_absorbs_final_retransmits_for_t4_and_is_zero_over_tcp() {
    let t0 = Instant::now();
    let mut l = layer();
    let tx = l.send_request(t0, outbound("BYE"), uas_udp());
    let (_, bye) = sent_one(&mut l);
    let final_at = t0 + secs_f(1.0);
    l.handle_message(final_at, reply_to(&bye, 200, Some("t")), uas_udp());
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 200)]);

    l.handle_message(final_at + ms(100), reply_to(&bye, 200, Some("t")), uas_udp());
    assert!(events(&mut l).is_empty(), "retransmitted final absorbed in Completed");
    let run = run_until(&mut l, t0, final_at + T4 - ms(1));
    assert!(run.sent.is_empty() && run.events.is_empty(), "E and F stopped");
    assert_eq!(l.len(), 1);
    let _ = run_until(&mut l, t0, final_at + T4);
    assert_eq!(l.len(), 0, "Timer K = T4");

    let t1 = t0 + Duration::from_secs(100);
    let tx = l.send_request(t1, outbound("BYE"), uas_tcp());
    let (_, bye) = sent_one(&mut l);
    l.handle_message(t1 + ms(10), reply_to(&bye, 200, Some("t")), uas_tcp());
    assert_eq!(responses(&events(&mut l)), vec![(Some(tx), 200)]);
    assert_eq!(l.len(), 0, "Timer K is zero over TCP");
}

#[test]
fn responses_and_timeouts_of_the_internal_cancel_never_reach_the_tu() {
    let t0 = Instant::now();
    let mut l = layer();
    let (tx, invite) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + ms(100), reply_to(&invite, 180, Some("r")), uas_udp());
    let _ = events(&mut l);
    let cancel_at = t0 + ms(200);
    l.cancel(cancel_at, tx, Vec::new());
    let (_, cancel) = sent_one(&mut l);

    // Provisional and final responses to the CANCEL: swallowed.
    l.handle_message(cancel_at + ms(50), reply_to(&cancel, 100, None), uas_udp());
    assert!(events(&mut l).is_empty());

    // The CANCEL is retransmitted by its own Timer E, never reported; Timer F of the CANCEL and
    // the INVITE's CANCEL guard expire together: only the INVITE's Timeout goes up.
    let run = run_until(&mut l, t0, cancel_at + T1X64);
    assert!(!run.sent.is_empty());
    assert!(run.sent.iter().all(|(_, t)| decode(t).method() == Method::Cancel));
    let timeouts: Vec<_> = run
        .events
        .iter()
        .map(|(_, e)| match e {
            TxEvent::Timeout { tx } => *tx,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(timeouts, vec![tx], "the CANCEL's own Timer F is not the TU's business");
    assert_eq!(l.len(), 0);

    // Second round: the CANCEL gets a 200 (and its retransmission): not reported either.
    let t1 = cancel_at + T1X64;
    let (tx, invite) = send_invite(&mut l, t1, uas_udp());
    l.handle_message(t1 + ms(100), reply_to(&invite, 183, Some("r")), uas_udp());
    let _ = events(&mut l);
    l.cancel(t1 + ms(200), tx, Vec::new());
    let (_, cancel) = sent_one(&mut l);
    l.handle_message(t1 + ms(300), reply_to(&cancel, 200, Some("r")), uas_udp());
    l.handle_message(t1 + ms(400), reply_to(&cancel, 200, Some("r")), uas_udp());
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 2, "INVITE in Proceeding, CANCEL in Completed");
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE server (§17.2.2)

fn bye_in(via: &str) -> SipMsg {
    inbound("BYE", OUR_URI, via, CALL_ID, 2, Some("uas-tag-1"))
}

#[test]
fn non_invite_server_absorbs_retransmission_in_trying() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKbye1");
    l.handle_message(t0, bye_in(&via), phone_udp());
    assert!(transmits(&mut l).is_empty(), "no automatic 100 for non-INVITE");
    let _ = new_request(&mut l);
    l.handle_message(t0 + ms(500), bye_in(&via), phone_udp());
    assert!(transmits(&mut l).is_empty(), "nothing to resend in Trying");
    assert!(events(&mut l).is_empty(), "absorbed");
    assert_eq!(l.stats().absorbed, 1);
    assert_eq!(l.len(), 1);
}

#[test]
fn non_invite_server_resends_last_response_in_proceeding_and_completed() {
    let t0 = Instant::now();
    let mut l = layer();
    let via = phone_via("z9hG4bKbye2");
    l.handle_message(t0, bye_in(&via), phone_udp());
    let (tx, bye, flow) = new_request(&mut l);

    l.respond(t0 + ms(10), tx, answer(&bye, 100, flow)).expect("100");
    assert_eq!(sent_one(&mut l).1.status(), Some(100));
    l.handle_message(t0 + ms(500), bye_in(&via), phone_udp());
    let (to, m) = sent_one(&mut l);
    assert_eq!((to, m.status()), (phone_udp(), Some(100)), "Proceeding: last provisional");

    l.respond(t0 + ms(600), tx, answer(&bye, 200, flow)).expect("200");
    assert_eq!(sent_one(&mut l).1.status(), Some(200));
    l.handle_message(t0 + ms(1500), bye_in(&via), phone_udp());
    let (to, m) = sent_one(&mut l);
    assert_eq!((to, m.status()), (phone_udp(), Some(200)), "Completed: the final");
    assert!(events(&mut l).is_empty());

    assert_eq!(l.respond(t0 + ms(1600), tx, answer(&bye, 500, flow)), Err(TxError::BadState));
    assert!(transmits(&mut l).is_empty());
}

#[test]
fn non_invite_server_timer_j_over_udp_and_immediate_termination_over_tcp() {
    let t0 = Instant::now();
    let mut l = layer();
    l.handle_message(t0, bye_in(&phone_via("z9hG4bKbye3")), phone_udp());
    let (tx, bye, flow) = new_request(&mut l);
    let final_at = t0 + ms(100);
    l.respond(final_at, tx, answer(&bye, 200, flow)).expect("200");
    let _ = transmits(&mut l);
    let run = run_until(&mut l, t0, final_at + T1X64 - ms(1));
    assert!(run.sent.is_empty(), "a non-INVITE server never retransmits on its own");
    assert_eq!(l.len(), 1);
    let _ = run_until(&mut l, t0, final_at + T1X64);
    assert_eq!(l.len(), 0, "Timer J = 64*T1");

    l.handle_message(t0, bye_in(&phone_via_tcp("z9hG4bKbye4")), phone_tcp());
    let (tx, bye, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&bye, 200, flow)).expect("200");
    let (to, _) = sent_one(&mut l);
    assert_eq!(to.conn, Some(ConnId(7)));
    assert_eq!(l.len(), 0, "Timer J is zero over TCP");
}

// ---------------------------------------------------------------------------------------------
// Response routing (§18.2.2, RFC 3581 §4)

fn via(v: &str) -> crate::sip::message::ViaInfo {
    parse_via(v).expect("via parses")
}

#[test]
fn response_flow_with_rport_goes_to_source_ip_and_port() {
    let to = response_flow(&via("SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bKa"), phone_udp());
    assert_eq!(to, phone_udp());
}

#[test]
fn response_flow_without_rport_goes_to_source_ip_and_sent_by_port() {
    let to = response_flow(&via("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa"), phone_udp());
    assert_eq!(to.remote, addr("198.51.100.7:5062"), "received ip, sent-by port");
    assert_eq!((to.zone, to.transport, to.conn), (ZoneId(0), Transport::Udp, None));
    let to = response_flow(&via("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKa"), phone_udp());
    assert_eq!(to.remote, addr("198.51.100.7:5060"), "no port in sent-by: 5060");
}

#[test]
fn response_flow_over_tcp_uses_the_same_connection() {
    let to = response_flow(&via("SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bKa"), phone_tcp());
    assert_eq!(to.conn, Some(ConnId(7)), "same connection");
    assert_eq!(to.transport, Transport::Tcp);
    // Should the connection be gone, a new one goes to received:sent-by-port.
    assert_eq!(to.remote, addr("198.51.100.7:5062"));
}

#[test]
fn response_flow_over_tls_defaults_to_port_5061() {
    let tls = Flow { transport: Transport::Tls, ..phone_tcp() };
    let to = response_flow(&via("SIP/2.0/TLS 10.0.0.5;branch=z9hG4bKa"), tls);
    assert_eq!(to.conn, Some(ConnId(7)));
    assert_eq!(to.remote, addr("198.51.100.7:5061"), "default port for TLS (§18.2.2, §19.1.2)");
}

#[test]
fn responses_to_a_request_follow_response_flow() {
    let t0 = Instant::now();
    let mut l = layer();
    // No rport: to source ip, sent-by port.
    let v = "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKnorport";
    l.handle_message(t0, inbound("OPTIONS", OUR_URI, v, CALL_ID, 5, None), phone_udp());
    let (tx, opts, flow) = new_request(&mut l);
    assert_eq!(flow, phone_udp(), "the TU sees the real source");
    l.respond(t0, tx, answer(&opts, 200, flow)).expect("200");
    let (to, ok) = sent_one(&mut l);
    assert_eq!(to.remote, addr("198.51.100.7:5062"));
    assert_eq!(ok.via.received.as_deref(), Some("198.51.100.7"));
}

// ---------------------------------------------------------------------------------------------
// Configurable T1/T2/T4

#[test]
fn timers_scale_with_configured_t1_t2_t4() {
    let t1 = ms(100);
    let cfg = TimerConfig { t1, t2: ms(400), t4: ms(1000), ..TimerConfig::default() };
    let mut l = layer_with(cfg);
    assert_eq!(l.timer_config().t1x64(), ms(6400));
    let t0 = Instant::now();

    // INVITE client: A at 0.1, 0.3, 0.7, 1.5, 3.1 s; B at 6.4 s.
    let inv = l.send_request(t0, outbound("INVITE"), uas_udp());
    let _ = transmits(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(6400));
    assert_eq!(run.sent_at(), [100, 300, 700, 1500, 3100, 6300].map(ms).to_vec());
    assert!(
        matches!(run.events.as_slice(), [(at, TxEvent::Timeout { tx })] if *tx == inv && *at == ms(6400))
    );

    // Non-INVITE client: E at 0.1, 0.3, 0.7, then every T2 = 0.4 s; F at 6.4 s.
    let t0 = t0 + secs_f(10.0);
    let opt = l.send_request(t0, outbound("OPTIONS"), uas_udp());
    let (_, req) = sent_one(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(1500));
    assert_eq!(run.sent_at(), [100, 300, 700, 1100, 1500].map(ms).to_vec());
    // A final at 1.6 s: Timer K = T4 = 1 s.
    l.handle_message(t0 + ms(1600), reply_to(&req, 200, Some("k")), uas_udp());
    assert_eq!(responses(&events(&mut l)), vec![(Some(opt), 200)]);
    let _ = run_until(&mut l, t0, t0 + ms(2599));
    assert_eq!(l.len(), 1);
    let _ = run_until(&mut l, t0, t0 + ms(2600));
    assert_eq!(l.len(), 0);

    // INVITE server: G at 0.1, 0.3, 0.7, 1.1, ... H at 6.4 s.
    let t0 = t0 + secs_f(10.0);
    l.handle_message(t0, invite_in(&phone_via("z9hG4bKscale")), phone_udp());
    let _ = transmits(&mut l);
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    let _ = transmits(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(6400));
    assert_eq!(run.sent_at(), backoff(t1, Some(ms(400)), ms(6400)));
    assert_eq!(&run.sent_at()[..4], &[100, 300, 700, 1100].map(ms));
    assert!(matches!(run.events.as_slice(), [(at, TxEvent::AckTimeout { .. })] if *at == ms(6400)));
    assert_eq!(l.len(), 0);
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping

#[test]
fn layer_forgets_every_transaction_once_its_flow_completes() {
    let t0 = Instant::now();
    let mut l = layer();

    // Server INVITE answered 200.
    l.handle_message(t0, invite_in(&phone_via("z9hG4bKbk1")), phone_udp());
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 200, flow)).expect("200");
    // Server INVITE answered 486 and ACKed.
    let v2 = phone_via("z9hG4bKbk2");
    l.handle_message(t0, inbound("INVITE", OUR_URI, &v2, "bk2@x", 1, None), phone_udp());
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    l.handle_message(
        t0 + ms(10),
        inbound("ACK", OUR_URI, &v2, "bk2@x", 1, Some("uas-tag-1")),
        phone_udp(),
    );
    // Server INVITE answered 486, never ACKed (Timer H).
    l.handle_message(
        t0,
        inbound("INVITE", OUR_URI, &phone_via("z9hG4bKbk3"), "bk3@x", 1, None),
        phone_udp(),
    );
    let (tx, invite, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&invite, 486, flow)).expect("486");
    // Server BYE over UDP and over TCP.
    l.handle_message(t0, bye_in(&phone_via("z9hG4bKbk4")), phone_udp());
    let (tx, bye, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&bye, 200, flow)).expect("200");
    l.handle_message(t0, bye_in(&phone_via_tcp("z9hG4bKbk5")), phone_tcp());
    let (tx, bye, flow) = new_request(&mut l);
    l.respond(t0, tx, answer(&bye, 200, flow)).expect("200");
    let _ = transmits(&mut l);

    // Client INVITE, cancelled: 180, CANCEL, 200 (CANCEL), 487, ACK.
    let (itx, inv) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + ms(100), reply_to(&inv, 180, Some("c")), uas_udp());
    l.cancel(t0 + ms(200), itx, Vec::new());
    let (_, cancel) = sent_one(&mut l);
    l.handle_message(t0 + ms(300), reply_to(&cancel, 200, Some("c")), uas_udp());
    l.handle_message(t0 + ms(400), reply_to(&inv, 487, Some("c")), uas_udp());
    // Client INVITE cancelled, CANCEL never answered, 487 arrives anyway.
    let _ = transmits(&mut l);
    let (itx, inv) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + ms(100), reply_to(&inv, 183, Some("d")), uas_udp());
    l.cancel(t0 + ms(200), itx, Vec::new());
    l.handle_message(t0 + ms(400), reply_to(&inv, 487, Some("d")), uas_udp());
    // Client INVITE cancelled before any provisional, which then never comes (Timer B).
    let _ = transmits(&mut l);
    let (itx, _) = send_invite(&mut l, t0, uas_udp());
    l.cancel(t0 + ms(200), itx, Vec::new());
    // Client INVITE answered 200 (Timer M); client OPTIONS answered (Timer K); client OPTIONS
    // never answered (Timer F); client INVITE over TCP answered 404.
    let _ = transmits(&mut l);
    let (_, inv) = send_invite(&mut l, t0, uas_udp());
    l.handle_message(t0 + ms(100), reply_to(&inv, 200, Some("e")), uas_udp());
    l.send_request(t0, outbound("OPTIONS"), uas_udp());
    let (_, opts) = sent_one(&mut l);
    l.handle_message(t0 + ms(100), reply_to(&opts, 200, Some("f")), uas_udp());
    l.send_request(t0, outbound("OPTIONS"), uas_udp());
    let _ = transmits(&mut l);
    let (_, inv) = send_invite(&mut l, t0, uas_tcp());
    l.handle_message(t0 + ms(100), reply_to(&inv, 404, Some("g")), uas_tcp());

    assert!(!l.is_empty());
    let _ = (transmits(&mut l), events(&mut l));
    // Timer C (3 min) is the longest one still in the queue.
    let _ = run_until(&mut l, t0, t0 + Duration::from_secs(3600));
    assert_eq!(l.len(), 0, "no transaction leaked");
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None, "no timer leaked");
}

// ---------------------------------------------------------------------------------------------
// The same machine under tokio's paused clock

#[tokio::test(start_paused = true)]
async fn invite_client_timers_a_and_b_fire_in_tokio_virtual_time() {
    let start = tokio::time::Instant::now();
    let wall = std::time::Instant::now();
    let mut l = layer();
    let tx = l.send_request(start.into_std(), outbound("INVITE"), uas_udp());
    assert_eq!(transmits(&mut l).len(), 1);

    let mut sent = Vec::new();
    let timeout_at = loop {
        let deadline = l.poll_timeout().expect("Timer B is armed until it fires");
        let now = tokio::time::Instant::now().into_std();
        if deadline > now {
            tokio::time::advance(deadline - now).await;
        }
        let now = tokio::time::Instant::now();
        l.handle_timeout(now.into_std());
        sent.extend(std::iter::from_fn(|| l.poll_transmit()).map(|_| now - start));
        let ev = events(&mut l);
        if let Some(TxEvent::Timeout { tx: t }) = ev.first() {
            assert_eq!(*t, tx);
            break now - start;
        }
        assert!(ev.is_empty());
    };
    assert_eq!(sent, [500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec());
    assert_eq!(timeout_at, T1X64);
    assert!(l.is_empty());
    assert!(wall.elapsed() < Duration::from_secs(5), "virtual time, not wall-clock time");
}
