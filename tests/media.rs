//! End-to-end media through the real binary: raw UDP SIP endpoints on both legs (a phone on the
//! LAN side, the ITSP on the trunk side), each with its own RTP socket whose port it writes in its
//! SDP. Every test is one behaviour a user would notice: audio both ways, early media, hold and
//! resume, a codec change, delayed offer, bypass, injected RTP dropped, a silent call torn down,
//! ports neither leaked nor over-committed, ICE-lite answering a connectivity check, and DTMF:
//! telephone-events renumbered per leg, INFO relayed, INFO ↔ RFC 4733 per `trunks[].dtmf`.

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use common::*;
use rtp::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long any single SIP message or RTP burst may take to show up.
const WAIT: Duration = Duration::from_secs(3);

/// One side of a call: a SIP socket and an RTP socket (RTCP would be the next port; these tests
/// do not send RTCP).
struct Ua {
    sip: RawUdp,
    rtp: UdpSocket,
}

impl Ua {
    fn new(sip: RawUdp) -> Ua {
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
        Ua { sip, rtp }
    }

    /// With an RTCP socket on the RTP port + 1, where RTCP goes when it is not multiplexed.
    fn with_rtcp(sip: RawUdp) -> (Ua, UdpSocket) {
        for _ in 0..200 {
            let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
            let port = rtp.local_addr().expect("rtp addr").port();
            if port % 2 == 1 {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
                return (Ua { sip, rtp }, rtcp);
            }
        }
        panic!("no adjacent RTP/RTCP port pair free");
    }

    fn rtp_addr(&self) -> SocketAddr {
        self.rtp.local_addr().expect("rtp addr")
    }
}

/// An audio SDP from 127.0.0.1:`port` offering payload type `pt` (0 PCMU or 8 PCMA) and
/// telephone-event, with direction `dir`; `extra` lines go at the end of the media section.
fn sdp(version: u32, port: u16, pt: u8, dir: &str, extra: &str) -> String {
    let name = if pt == 8 { "PCMA" } else { "PCMU" };
    format!(
        "v=0\r\n\
         o=- 4711 {version} IN IP4 127.0.0.1\r\n\
         s=-\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP {pt} 101\r\n\
         a=rtpmap:{pt} {name}/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a={dir}\r\n\
         {extra}"
    )
}

/// The `o=` session version.
fn sdp_version(sdp: &str) -> u64 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no o= version in\n{sdp}"))
}

/// The CSeq number of a SIP message (0 when absent).
fn cseq_number(msg: &str) -> u32 {
    header(msg, "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The value of the first `a=<name>:` line.
fn attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("a={name}:");
    sdp.lines().find_map(|l| l.trim_end().strip_prefix(prefix.as_str()))
}

/// An RTCP sender report (RFC 3550 §6.4.1) without report blocks: 28 bytes.
fn rtcp_sr(ssrc: u32, count: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xe8, 0, 0, 0, 0, 0, 0, u8::try_from(count % 256).unwrap_or(0)]);
    p.extend_from_slice(&(count * 160).to_be_bytes());
    p.extend_from_slice(&count.to_be_bytes());
    p.extend_from_slice(&(count * 160).to_be_bytes());
    p
}

/// The SIP call the tests drive: the phone's dialog state and the ITSP's view of leg B.
struct Call {
    p: Ports,
    phone: Ua,
    itsp: Ua,
    call_id: String,
    from_tag: String,
    /// The phone's dialog: To tag and remote target once answered.
    to_tag: Option<String>,
    target: String,
    cseq: u32,
    /// The last request the ITSP received (what its responses answer).
    itsp_req: String,
    /// ITSP's To tag.
    itsp_tag: String,
}

impl Call {
    /// The phone sends an INVITE (with `body` as SDP, or none: delayed offer); returns once the
    /// ITSP has it (and has sent 100 Trying, so sipborder stops retransmitting).
    fn invite(p: Ports, body: Option<&str>) -> Call {
        Self::invite_with(p, Ua::new(RawUdp::bind()), Ua::new(RawUdp::bind_port(p.itsp)), body)
    }

    fn invite_with(p: Ports, phone: Ua, itsp: Ua, body: Option<&str>) -> Call {
        let mut call = Call::new(p, phone, itsp);
        call.send_invite(body);
        call.itsp_gets_invite();
        call
    }

    /// A call not started yet. The called number is unique per call: it crosses unchanged, so
    /// an ITSP socket shared by several calls tells their INVITEs apart by it.
    fn new(p: Ports, phone: Ua, itsp: Ua) -> Call {
        let n = phone.sip.port();
        Call {
            p,
            phone,
            itsp,
            call_id: format!("media-{n}-{}@127.0.0.1", std::process::id()),
            from_tag: format!("ph{n}"),
            to_tag: None,
            target: format!("sip:49{n}@127.0.0.1:{}", p.lan),
            cseq: 1,
            itsp_req: String::new(),
            itsp_tag: format!("it{n}"),
        }
    }

    fn callee(&self) -> String {
        format!("49{}", self.phone.sip.port())
    }

    fn send_invite(&self, body: Option<&str>) {
        self.phone.sip.send_to(&self.request("INVITE", body), self.p.lan);
    }

    fn itsp_gets_invite(&mut self) {
        let start = format!("INVITE sip:{}@", self.callee());
        let (inv, _) = self
            .itsp
            .sip
            .recv_until(WAIT, |m| m.starts_with(&start))
            .unwrap_or_else(|| panic!("{start}... at the ITSP"));
        self.itsp_req = inv;
        self.itsp_send(100, "Trying", None);
    }

    /// A request in the phone's dialog (the INVITE when no To tag yet).
    fn request(&self, method: &str, body: Option<&str>) -> String {
        self.typed_request(method, body.map(|b| ("application/sdp", b)))
    }

    /// [`Self::request`] with a body of any type.
    fn typed_request(&self, method: &str, body: Option<(&str, &str)>) -> String {
        let me = self.phone.sip.port();
        let to_tag = self.to_tag.as_deref().map(|t| format!(";tag={t}")).unwrap_or_default();
        let (ctype, body) = match body {
            Some((t, b)) => (format!("Content-Type: {t}\r\n"), b),
            None => (String::new(), ""),
        };
        let branch = format!("z9hG4bK{method}{}{}", self.cseq, me);
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:100@127.0.0.1:{me}>;tag={from_tag}\r\n\
             To: <sip:{callee}@127.0.0.1:{lan}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:100@127.0.0.1:{me}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            target = self.target,
            callee = self.callee(),
            from_tag = self.from_tag,
            lan = self.p.lan,
            call_id = self.call_id,
            cseq = self.cseq,
            len = body.len(),
        )
    }

    /// The ITSP answers its last request.
    fn itsp_send(&self, code: u16, reason: &str, body: Option<&str>) {
        let contact = format!("Contact: <sip:itsp@127.0.0.1:{}>\r\n", self.p.itsp);
        let (extra, body) = match body {
            Some(b) => (format!("{contact}Content-Type: application/sdp\r\n"), b),
            None => (contact, ""),
        };
        let r = respond(&self.itsp_req, code, reason, &self.itsp_tag, &extra, body);
        self.itsp.sip.send_to(&r, self.p.trunk);
    }

    /// The phone's next response with `code` to its current request.
    fn phone_gets(&mut self, code: u16) -> String {
        let want = format!("SIP/2.0 {code} ");
        let cseq = self.cseq.to_string();
        let (r, _) = self
            .phone
            .sip
            .recv_until(WAIT, |m| {
                m.starts_with(&want)
                    && header(m, "CSeq").and_then(|c| c.split_whitespace().next())
                        == Some(cseq.as_str())
            })
            .unwrap_or_else(|| panic!("no {code} at the phone for CSeq {cseq}"));
        if (200..300).contains(&code) || (code > 100 && code < 200 && !body(&r).is_empty()) {
            self.to_tag = header(&r, "To").and_then(tag).map(str::to_string);
            if let Some(c) = header(&r, "Contact") {
                self.target = c.trim_start_matches('<').split('>').next().unwrap_or(c).to_string();
            }
        }
        r
    }

    /// ITSP responds `code` (with SDP `body`), the phone receives it; returns the phone's copy.
    fn answer(&mut self, code: u16, reason: &str, body: Option<&str>) -> String {
        self.itsp_send(code, reason, body);
        self.phone_gets(code)
    }

    /// The phone ACKs the 2xx (with an SDP answer for a delayed offer); returns the ITSP's ACK
    /// (the one for the ITSP's current INVITE: same CSeq number).
    fn ack(&mut self, body: Option<&str>) -> String {
        let msg = self.request("ACK", body);
        self.phone.sip.send_to(&msg, self.p.lan);
        let n = cseq_number(&self.itsp_req);
        let (a, _) = self
            .itsp
            .sip
            .recv_until(WAIT, |m| m.starts_with("ACK ") && cseq_number(m) == n)
            .expect("ACK at the ITSP");
        // The answer's media address reaches the relay thread through its command queue while
        // the 200 is already on its way: on a loaded 2-core machine a packet sent the instant
        // the ACK crossed can beat it and be dropped, as any relay must drop media it has no
        // destination for (a real phone's first packet comes 20 ms after the 200). The tests
        // are about what is relayed once the call is up.
        std::thread::sleep(Duration::from_millis(150));
        a
    }

    /// The phone sends a re-INVITE; returns what the ITSP receives.
    fn reinvite(&mut self, body: &str) -> String {
        self.cseq += 1;
        let msg = self.request("INVITE", Some(body));
        self.phone.sip.send_to(&msg, self.p.lan);
        // A later CSeq than the last INVITE: never a late retransmission of the previous one.
        let last = cseq_number(&self.itsp_req);
        let (inv, _) = self
            .itsp
            .sip
            .recv_until(WAIT, |m| {
                m.starts_with("INVITE ")
                    && header(m, "To").and_then(tag).is_some()
                    && cseq_number(m) > last
            })
            .expect("re-INVITE at the ITSP");
        self.itsp_req = inv.clone();
        inv
    }

    /// Phone hangs up; the ITSP gets the BYE and confirms; the phone gets the 200.
    fn bye(&mut self) {
        self.cseq += 1;
        let msg = self.request("BYE", None);
        self.phone.sip.send_to(&msg, self.p.lan);
        let (bye, _) =
            self.itsp.sip.recv_until(WAIT, |m| m.starts_with("BYE ")).expect("BYE at the ITSP");
        self.itsp_req = bye;
        self.itsp_send(200, "OK", None);
        self.phone_gets(200);
    }

    /// A whole answered call: INVITE with the phone's SDP, 200 with the ITSP's, ACK. Returns
    /// (relay address toward the phone, relay address toward the ITSP).
    fn answered(p: Ports) -> (Call, SocketAddr, SocketAddr) {
        let phone = Ua::new(RawUdp::bind());
        let offer = sdp(1, phone.rtp_addr().port(), 0, "sendrecv", "");
        let mut call =
            Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
        let toward_itsp = media_addr(body(&call.itsp_req));
        let answer = sdp(1, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
        let ok = call.answer(200, "OK", Some(&answer));
        let toward_phone = media_addr(body(&ok));
        call.ack(None);
        (call, toward_phone, toward_itsp)
    }

    /// ~50 packets each way at the same time; asserts both sides get exactly the other's
    /// payloads, in order, from the relay port advertised toward them.
    fn two_way_audio(&self, toward_phone: SocketAddr, toward_itsp: SocketAddr, pt: u8, first: u16) {
        let up = stream(pt, 0x1111_0001, 1, first, 50);
        let down = stream(pt, 0x2222_0002, 2, first, 50);
        for (u, d) in up.iter().zip(&down) {
            self.phone.rtp.send_to(u, toward_phone).expect("phone sends");
            self.itsp.rtp.send_to(d, toward_itsp).expect("itsp sends");
            // Paced a little, like a real 20 ms stream squeezed: no burst overflows a queue.
            std::thread::sleep(Duration::from_millis(2));
        }
        let at_itsp = recv_n(&self.itsp.rtp, up.len(), WAIT);
        let at_phone = recv_n(&self.phone.rtp, down.len(), WAIT);
        assert_relayed(&at_itsp, &up, toward_itsp, "phone → ITSP");
        assert_relayed(&at_phone, &down, toward_phone, "ITSP → phone");
    }
}

fn start(setup: &Setup) -> (Sbc, Ports) {
    let ports = Ports::new();
    let sbc = Sbc::start(ports, &config(&ports, setup));
    (sbc, ports)
}

/// Polls a metric until `ok` holds (the exporter samples gauges once a second), bounded.
fn wait_metric(sbc: &Sbc, sel: &str, within: Duration, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let v = sbc.metric(sel);
        if ok(v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn audio_flows_both_ways_through_the_relay() {
    let (sbc, p) = start(&Setup::default());
    let (mut call, toward_phone, toward_itsp) = Call::answered(p);
    assert_ne!(toward_itsp, call.phone.rtp_addr(), "the ITSP is not given the phone's address");
    assert_ne!(toward_phone, call.itsp.rtp_addr(), "the phone is not given the ITSP's address");
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    call.bye();
    // Relayed packets are counted when the call ends.
    let a_to_b = wait_metric(
        &sbc,
        "sipborder_rtp_packets_total{trunk=\"itsp\",direction=\"a_to_b\"}",
        WAIT,
        |v| v >= 50.0,
    );
    assert_eq!(a_to_b, 50.0, "{}", sbc.metrics());
}

#[test]
fn early_media_flows_before_the_answer() {
    let (_sbc, p) = start(&Setup::default());
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp(1, phone.rtp_addr().port(), 0, "sendrecv", "");
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    let toward_itsp = media_addr(body(&call.itsp_req));
    let answer = sdp(1, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
    let progress = call.answer(183, "Session Progress", Some(&answer));
    let toward_phone = media_addr(body(&progress));
    // Ringback and announcements before anyone answered, both ways.
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    let ok = call.answer(200, "OK", Some(&answer));
    assert_eq!(media_addr(body(&ok)), toward_phone, "the answer keeps the early media port");
    call.ack(None);
    call.two_way_audio(toward_phone, toward_itsp, 0, 100);
    call.bye();
}

#[test]
fn hold_and_resume_keep_relay_ports_and_audio_comes_back() {
    let (_sbc, p) = start(&Setup::default());
    let (mut call, toward_phone, toward_itsp) = Call::answered(p);
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    // Call::answered leaves the initial INVITE as the ITSP's last request.
    let initial = body(&call.itsp_req).to_string();
    let phone_port = call.phone.rtp_addr().port();

    let hold = call.reinvite(&sdp(2, phone_port, 0, "sendonly", ""));
    let hold_sdp = body(&hold).to_string();
    assert_eq!(media_addr(&hold_sdp), toward_itsp, "same relay port toward the ITSP on hold");
    assert!(hold_sdp.contains("a=sendonly"), "{hold_sdp}");
    let v_hold = sdp_version(&hold_sdp);
    assert_eq!(v_hold, sdp_version(&initial) + 1, "o= version up by one:\n{initial}\n{hold_sdp}");
    let o = |s: &str| -> Vec<String> {
        let line = s.lines().find(|l| l.starts_with("o=")).unwrap_or_default();
        line.split_whitespace().take(2).map(str::to_string).collect()
    };
    assert_eq!(o(&hold_sdp), o(&initial), "same o= username and session id");
    let ok = {
        let a = sdp(2, call.itsp.rtp_addr().port(), 0, "recvonly", "");
        call.answer(200, "OK", Some(&a))
    };
    assert_eq!(media_addr(body(&ok)), toward_phone, "same relay port toward the phone on hold");
    assert!(body(&ok).contains("a=recvonly"), "{}", body(&ok));
    call.ack(None);

    let resume = call.reinvite(&sdp(3, phone_port, 0, "sendrecv", ""));
    let resume_sdp = body(&resume).to_string();
    assert_eq!(media_addr(&resume_sdp), toward_itsp, "same relay port toward the ITSP on resume");
    assert!(resume_sdp.contains("a=sendrecv"), "{resume_sdp}");
    assert_eq!(sdp_version(&resume_sdp), v_hold + 1, "o= version goes up with each change");
    let ok = {
        let a = sdp(3, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
        call.answer(200, "OK", Some(&a))
    };
    assert_eq!(media_addr(body(&ok)), toward_phone);
    call.ack(None);
    call.two_way_audio(toward_phone, toward_itsp, 0, 100);
    call.bye();
}

#[test]
fn reinvite_with_codec_change_keeps_ports_and_carries_the_new_payload_type() {
    let (_sbc, p) = start(&Setup::default());
    let (mut call, toward_phone, toward_itsp) = Call::answered(p);
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    let phone_port = call.phone.rtp_addr().port();
    let offer = call.reinvite(&sdp(2, phone_port, 8, "sendrecv", ""));
    assert_eq!(media_addr(body(&offer)), toward_itsp, "same relay port toward the ITSP");
    assert!(body(&offer).contains("m=audio ") && body(&offer).contains("RTP/AVP 8 101"));
    assert!(body(&offer).contains("a=rtpmap:8 PCMA/8000"), "{}", body(&offer));
    let ok = call.answer(200, "OK", Some(&sdp(2, call.itsp.rtp_addr().port(), 8, "sendrecv", "")));
    assert_eq!(media_addr(body(&ok)), toward_phone, "same relay port toward the phone");
    assert!(body(&ok).contains("a=rtpmap:8 PCMA/8000"));
    call.ack(None);
    call.two_way_audio(toward_phone, toward_itsp, 8, 100);
    call.bye();
}

#[test]
fn delayed_offer_offer_in_200_answer_in_ack() {
    let (_sbc, p) = start(&Setup::default());
    let mut call = Call::invite(p, None);
    assert_eq!(body(&call.itsp_req), "", "no SDP invented for a delayed offer");
    let offer = sdp(1, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
    let ok = call.answer(200, "OK", Some(&offer));
    let toward_phone = media_addr(body(&ok));
    assert_anchored(body(&ok), &offer, "127.0.0.1");
    let answer = sdp(1, call.phone.rtp_addr().port(), 0, "sendrecv", "");
    let ack = call.ack(Some(&answer));
    assert_anchored(body(&ack), &answer, "127.0.0.1");
    let toward_itsp = media_addr(body(&ack));
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    call.bye();
}

#[test]
fn bypass_route_leaves_sdp_untouched() {
    let ports = Ports::new();
    let yaml = config(&ports, &Setup::default()).replace(
        "    targets: [itsp, itsp-backup]\n",
        "    targets: [itsp, itsp-backup]\n    media: bypass\n",
    );
    assert!(yaml.contains("media: bypass"));
    let sbc = Sbc::start(ports, &yaml);
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp(1, phone.rtp_addr().port(), 0, "sendrecv", "a=ssrc:1 cname:x\r\n");
    let mut call =
        Call::invite_with(ports, phone, Ua::new(RawUdp::bind_port(ports.itsp)), Some(&offer));
    assert_eq!(body(&call.itsp_req), offer, "the ITSP sees the phone's SDP byte for byte");
    let answer = sdp(1, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
    let ok = call.answer(200, "OK", Some(&answer));
    assert_eq!(body(&ok), answer, "the phone sees the ITSP's SDP byte for byte");
    call.ack(None);
    let in_use = sbc.metric("sipborder_relay_ports_in_use{");
    assert_eq!(in_use, 0.0, "no relay ports for a bypassed call");
    call.bye();
}

#[test]
fn injected_rtp_is_dropped_and_counted() {
    let (sbc, p) = start(&Setup::default());
    let (mut call, toward_phone, toward_itsp) = Call::answered(p);
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    // RTPBleed: a stranger sends to the port facing the ITSP, hoping to be relayed to the
    // phone (or to be latched instead of the ITSP).
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("bind attacker");
    for seq in 0..20u16 {
        attacker.send_to(&rtp_packet(0, seq, 0xbad0_0bad, 66), toward_itsp).expect("inject");
        attacker.send_to(&rtp_packet(0, seq, 0xbad0_0bad, 67), toward_phone).expect("inject");
    }
    let leaked_to_phone = drain(&call.phone.rtp, Duration::from_millis(500));
    let leaked_to_itsp = drain(&call.itsp.rtp, Duration::from_millis(100));
    assert!(
        leaked_to_phone.is_empty(),
        "{} injected packets reached the phone",
        leaked_to_phone.len()
    );
    assert!(
        leaked_to_itsp.is_empty(),
        "{} injected packets reached the ITSP",
        leaked_to_itsp.len()
    );
    assert!(
        drain(&attacker, Duration::from_millis(100)).is_empty(),
        "nothing sent to the stranger"
    );
    // The real endpoints still talk, to each other only.
    call.two_way_audio(toward_phone, toward_itsp, 0, 100);
    call.bye();
    let dropped = wait_metric(&sbc, "sipborder_rtp_dropped_foreign_total{", WAIT, |v| v >= 40.0);
    assert_eq!(dropped, 40.0, "{}", sbc.metrics());
    let from_b =
        sbc.metric("sipborder_rtp_dropped_foreign_total{zone=\"lan\",direction=\"b_to_a\"}");
    assert_eq!(from_b, 20.0, "{}", sbc.metrics());
}

#[test]
fn silent_call_is_torn_down_by_media_timeout() {
    let setup = Setup { extra: "media:\n  timeout: 2s\n".into(), ..Setup::default() };
    let (sbc, p) = start(&setup);
    let (call, _, _) = Call::answered(p);
    let answered = Instant::now();
    // No RTP at all: both legs get a BYE, a little after the 2 s timeout.
    let (bye_a, _) = call
        .phone
        .sip
        .recv_until(Duration::from_secs(6), |m| m.starts_with("BYE "))
        .expect("BYE to the phone");
    let t = answered.elapsed();
    assert!(t >= Duration::from_millis(1900) && t <= Duration::from_secs(5), "BYE after {t:?}");
    call.phone.sip.send_to(&respond(&bye_a, 200, "OK", "x", "", ""), p.lan);
    let (bye_b, _) = call
        .itsp
        .sip
        .recv_until(Duration::from_secs(2), |m| m.starts_with("BYE "))
        .expect("BYE to the ITSP");
    call.itsp.sip.send_to(&respond(&bye_b, 200, "OK", "x", "", ""), p.trunk);
    let calls = wait_metric(&sbc, "sipborder_calls_active", Duration::from_secs(5), |v| v == 0.0);
    assert_eq!(calls, 0.0);
}

#[test]
fn five_hundred_calls_leave_every_port_in_the_pool() {
    // 17000-18999, split between the two zones and two shards: 1000 ports per zone.
    let setup = Setup {
        extra: "media:\n  ports: 17000-18999\n  quarantine: 200ms\n".into(),
        ..Setup::default()
    };
    let (sbc, p) = start(&setup);
    let _uas = Sipp::uas(p.itsp, &["-sn", "uas"], &[]);
    let r = Sipp::uac(p.lan, &["-sn", "uac"], 500, 100, &[], Duration::from_secs(90));
    assert_eq!((r.successful, r.failed), (500, 0), "{r:?}");
    let (calls, _, _) = sbc.wait_idle(Duration::from_secs(20));
    assert_eq!(calls, 0.0);
    let in_use =
        wait_metric(&sbc, "sipborder_relay_ports_in_use{", Duration::from_secs(5), |v| v == 0.0);
    assert_eq!(in_use, 0.0, "{}", sbc.metrics());
    for zone in ["lan", "trunk"] {
        let free = sbc.metric(&format!("sipborder_relay_ports_free{{zone=\"{zone}\"}}"));
        assert_eq!(free, 1000.0, "zone {zone}: every port free again\n{}", sbc.metrics());
    }
    // Every call was anchored (500 offers crossed): the pool really was used.
    assert!(sbc.metric("sipborder_calls_total{") >= 500.0);
}

/// A full config whose zones have two relay port pairs each and one shard: two calls fit.
fn tiny_ports_config(p: &Ports) -> String {
    format!(
        r#"zones:
  - name: lan
    udp: 127.0.0.1:{lan}
    media: {{ ports: 16000-16003 }}
  - name: trunk
    kind: trunk
    udp: 127.0.0.1:{trunk}
    media: {{ ports: 16004-16007 }}
trunks:
  - name: itsp
    zone: trunk
    address: 127.0.0.1:{itsp}
routes:
  - name: lan-to-itsp
    from: lan
    targets: [itsp]
timers:
  t1: 100ms
media:
  quarantine: 100ms
metrics:
  listen: 127.0.0.1:{metrics}
runtime:
  shards: 1
  worker_threads: 2
"#,
        lan = p.lan,
        trunk = p.trunk,
        itsp = p.itsp,
        metrics = p.metrics,
    )
}

#[test]
fn call_beyond_port_capacity_gets_503_and_is_counted() {
    let p = Ports::new();
    let sbc = Sbc::start(p, &tiny_ports_config(&p));
    let itsp = RawUdp::bind_port(p.itsp);
    // Every call's ITSP side shares the one ITSP socket.
    let itsp_ua = || Ua::new(RawUdp { sock: itsp.sock.try_clone().expect("clone socket") });
    let call = |body: bool| {
        let phone = Ua::new(RawUdp::bind());
        let offer = sdp(1, phone.rtp_addr().port(), 0, "sendrecv", "");
        let c = Call::new(p, phone, itsp_ua());
        c.send_invite(body.then_some(offer.as_str()));
        c
    };
    // Two calls ringing hold both pairs of each zone.
    let mut c1 = call(true);
    c1.itsp_gets_invite();
    let mut c2 = call(true);
    c2.itsp_gets_invite();
    assert_ne!(media_addr(body(&c1.itsp_req)), media_addr(body(&c2.itsp_req)));

    // The third finds no port: 503 at once, nothing reaches the ITSP.
    let c3 = call(true);
    let (r, _) = c3
        .phone
        .sip
        .recv_until(WAIT, |m| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1"))
        .expect("a final answer to the third call");
    assert!(r.starts_with("SIP/2.0 503 "), "{r}");
    let third = format!("INVITE sip:{}@", c3.callee());
    assert!(
        itsp.recv_until(Duration::from_millis(300), |m| m.starts_with(&third)).is_none(),
        "the refused call never reaches the trunk"
    );
    let exhausted = wait_metric(&sbc, "sipborder_relay_ports_exhausted_total", WAIT, |v| v >= 1.0);
    assert_eq!(exhausted, 1.0, "{}", sbc.metrics());

    // The first call ends (486): its ports come back after the quarantine and a new call fits.
    c1.itsp_send(486, "Busy Here", None);
    c1.phone_gets(486);
    std::thread::sleep(Duration::from_millis(400));
    let mut c4 = call(true);
    c4.itsp_gets_invite();
    assert_ne!(media_addr(body(&c4.itsp_req)), media_addr(body(&c2.itsp_req)));
    assert_eq!(sbc.metric("sipborder_relay_ports_exhausted_total"), 1.0);
}

#[test]
fn ice_lite_answers_a_connectivity_check_on_the_relay_port() {
    use stun_rs::attributes::ice::{IceControlling, Priority};
    use stun_rs::attributes::stun::{Fingerprint, MessageIntegrity, UserName, XorMappedAddress};
    use stun_rs::methods::BINDING;
    use stun_rs::{
        DecoderContextBuilder, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
        StunMessageBuilder,
    };

    let (_sbc, p) = start(&Setup::default());
    let phone = Ua::new(RawUdp::bind());
    let port = phone.rtp_addr().port();
    let ice = format!(
        "a=ice-ufrag:phU1\r\n\
         a=ice-pwd:phonepassword0123456789\r\n\
         a=candidate:1 1 UDP 2130706431 127.0.0.1 {port} typ host\r\n\
         a=rtcp-mux\r\n"
    );
    let offer = sdp(1, port, 0, "sendrecv", &ice);
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    let toward_itsp = body(&call.itsp_req).to_string();
    for l in ["a=ice-", "a=candidate", "a=end-of-candidates"] {
        assert!(!toward_itsp.contains(l), "no ICE toward the ITSP ({l}):\n{toward_itsp}");
    }
    // Most ITSPs do not multiplex RTCP: the answer declines rtcp-mux.
    let answer = sdp(1, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
    let ok = call.answer(200, "OK", Some(&answer));
    call.ack(None);
    let ans = body(&ok).to_string();
    assert!(!ans.contains("a=rtcp-mux"), "mux was declined:\n{ans}");
    assert!(ans.lines().any(|l| l.trim_end() == "a=ice-lite"), "ice-lite:\n{ans}");
    let ufrag = attr(&ans, "ice-ufrag").unwrap_or_else(|| panic!("ice-ufrag:\n{ans}"));
    let pwd = attr(&ans, "ice-pwd").unwrap_or_else(|| panic!("ice-pwd:\n{ans}"));
    assert_ne!(ufrag, "phU1");
    let relay = media_addr(&ans);
    let cand = attr(&ans, "candidate").unwrap_or_else(|| panic!("candidate:\n{ans}"));
    let f: Vec<&str> = cand.split_whitespace().collect();
    assert_eq!(
        (f.get(2).copied(), f.get(4).copied(), f.get(5).copied(), f.get(7).copied()),
        (Some("UDP"), Some("127.0.0.1"), Some(relay.port().to_string().as_str()), Some("host")),
        "a host candidate for the relay port: {cand}"
    );
    // Without mux the phone's RTCP component needs a candidate too: the relay's RTCP port.
    let rtcp_cand =
        format!("a=candidate:1 2 UDP 2130706430 127.0.0.1 {} typ host", relay.port() + 1);
    assert!(ans.lines().any(|l| l.trim_end() == rtcp_cand), "{rtcp_cand} in:\n{ans}");

    // The phone, controlling, checks the pair (its RTP socket → sipborder's relay port).
    let key = HMACKey::new_short_term(pwd).expect("key");
    let req = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_attribute(UserName::new(format!("{ufrag}:phU1")).expect("username"))
        .with_attribute(Priority::new(0x6e7f_1eff))
        .with_attribute(IceControlling::new(0x1122_3344_5566_7788))
        .with_attribute(MessageIntegrity::new(key.clone()))
        .with_attribute(Fingerprint::default())
        .build();
    let mut buf = [0u8; 512];
    let n = MessageEncoderBuilder::default().build().encode(&mut buf, &req).expect("encode");
    call.phone.rtp.send_to(&buf[..n], relay).expect("send check");
    let got = recv_n(&call.phone.rtp, 1, WAIT);
    let (resp, from) = got.first().expect("a STUN response");
    assert_eq!(*from, relay, "answered from the relay port");
    let ctx = DecoderContextBuilder::default().with_key(key).with_validation().build();
    let (msg, _) = MessageDecoderBuilder::default()
        .with_context(ctx)
        .build()
        .decode(resp)
        .expect("a valid, integrity-protected response");
    assert_eq!(msg.class(), MessageClass::SuccessResponse);
    assert_eq!(msg.transaction_id(), req.transaction_id());
    let mapped = msg
        .get::<XorMappedAddress>()
        .and_then(|a| a.as_xor_mapped_address().ok())
        .map(|x| *x.socket_address());
    assert_eq!(mapped, Some(call.phone.rtp_addr()), "XOR-MAPPED-ADDRESS is the test socket");
    call.bye();
}

#[test]
fn rtcp_flows_on_its_own_ports_when_rtcp_mux_is_declined() {
    let (_sbc, p) = start(&Setup::default());
    let (phone, phone_rtcp) = Ua::with_rtcp(RawUdp::bind());
    let (itsp, itsp_rtcp) = Ua::with_rtcp(RawUdp::bind_port(p.itsp));
    let offer = sdp(1, phone.rtp_addr().port(), 0, "sendrecv", "a=rtcp-mux\r\n");
    let mut call = Call::invite_with(p, phone, itsp, Some(&offer));
    let toward_itsp = media_addr(body(&call.itsp_req));
    let answer = sdp(1, call.itsp.rtp_addr().port(), 0, "sendrecv", "");
    let ok = call.answer(200, "OK", Some(&answer));
    assert!(!body(&ok).contains("a=rtcp-mux"), "{}", body(&ok));
    let toward_phone = media_addr(body(&ok));
    call.ack(None);
    call.two_way_audio(toward_phone, toward_itsp, 0, 1);
    // RFC 5761 §5.1.1: mux offered and not accepted means RTCP on RTP port + 1, both legs.
    let rtcp_at = |a: SocketAddr| SocketAddr::new(a.ip(), a.port() + 1);
    for n in 1..=3 {
        itsp_rtcp.send_to(&rtcp_sr(0x2222_0002, n), rtcp_at(toward_itsp)).expect("send");
        phone_rtcp.send_to(&rtcp_sr(0x1111_0001, n), rtcp_at(toward_phone)).expect("send");
    }
    let at_phone = recv_n(&phone_rtcp, 3, WAIT);
    let at_itsp = recv_n(&itsp_rtcp, 3, WAIT);
    assert_eq!(at_phone.len(), 3, "the ITSP's RTCP reaches the phone's RTCP port");
    assert_eq!(at_itsp.len(), 3, "the phone's RTCP reaches the ITSP's RTCP port");
    assert!(at_phone.iter().all(|(d, a)| *a == rtcp_at(toward_phone) && d[1] == 200));
    assert!(at_itsp.iter().all(|(d, a)| *a == rtcp_at(toward_itsp) && d[1] == 200));
    call.bye();
}

// ---- DTMF ------------------------------------------------------------------------------------

/// [`sdp`] with telephone-event as payload type `te` instead of 101.
fn sdp_te(version: u32, port: u16, te: u8) -> String {
    sdp(version, port, 0, "sendrecv", "")
        .replace(" 0 101\r\n", &format!(" 0 {te}\r\n"))
        .replace(":101 ", &format!(":{te} "))
}

/// An RFC 4733 packet: `event` with end bit `end`, volume 10, `duration` timestamp units.
fn event_packet(
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    event: u8,
    end: bool,
    duration: u16,
) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
    p.extend_from_slice(&duration.to_be_bytes());
    p
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

fn ts_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}

fn ssrc_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}

/// A request the ITSP sends in its dialog of `invite` (the INVITE it received), `cseq` its
/// own counter.
fn itsp_request(
    call: &Call,
    invite: &str,
    method: &str,
    cseq: u32,
    ctype: &str,
    body: &str,
) -> String {
    let target = header(invite, "Contact")
        .map(|c| c.trim_start_matches('<').split('>').next().unwrap_or(c).to_string())
        .expect("sipborder's Contact in the INVITE");
    let me = call.p.itsp;
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKitsp{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: {to};tag={tag}\r\n\
         To: {from}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Type: {ctype}\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        to = header(invite, "To").unwrap_or(""),
        tag = call.itsp_tag,
        from = header(invite, "From").unwrap_or(""),
        call_id = header(invite, "Call-ID").unwrap_or(""),
        len = body.len(),
    )
}

#[test]
fn telephone_events_reach_each_leg_with_its_own_payload_type() {
    let (_sbc, p) = start(&Setup::default());
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp_te(1, phone.rtp_addr().port(), 101);
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    let toward_itsp = media_addr(body(&call.itsp_req));
    // The carrier answers with its own number for telephone-event (RFC 3264 allows it).
    let answer = sdp_te(1, call.itsp.rtp_addr().port(), 96);
    let ok = call.answer(200, "OK", Some(&answer));
    assert!(body(&ok).contains("a=rtpmap:96 telephone-event/8000"), "{}", body(&ok));
    let toward_phone = media_addr(body(&ok));
    call.ack(None);
    // The PBX keeps sending its own 101 (common in the field): the carrier gets 96.
    let up: Vec<Vec<u8>> = (0..5u16)
        .map(|i| event_packet(101, 10 + i, 8000, 0x0101_0101, 5, i >= 2, 160 * (i + 1).min(3)))
        .collect();
    let down: Vec<Vec<u8>> = (0..5u16)
        .map(|i| event_packet(96, 20 + i, 16000, 0x0909_0909, 9, i >= 2, 160 * (i + 1).min(3)))
        .collect();
    for (u, d) in up.iter().zip(&down) {
        call.phone.rtp.send_to(u, toward_phone).expect("phone sends");
        call.itsp.rtp.send_to(d, toward_itsp).expect("itsp sends");
    }
    let at_itsp = recv_n(&call.itsp.rtp, up.len(), WAIT);
    let at_phone = recv_n(&call.phone.rtp, down.len(), WAIT);
    assert_eq!((at_itsp.len(), at_phone.len()), (5, 5), "every event packet crossed");
    for ((got, from), sent) in at_itsp.iter().zip(&up) {
        assert_eq!((got[1], *from), (96, toward_itsp), "101 leaves toward the carrier as 96");
        assert_eq!(got[2..], sent[2..], "nothing but the payload type changes");
    }
    for ((got, _), sent) in at_phone.iter().zip(&down) {
        assert_eq!(got[1], 101, "96 leaves toward the PBX as 101");
        assert_eq!(got[2..], sent[2..]);
    }
    // Audio (PT 0, the same on both legs) crosses untouched.
    call.two_way_audio(toward_phone, toward_itsp, 0, 100);
    call.bye();
}

#[test]
fn dtmf_info_crosses_the_call_in_dialog_both_ways() {
    let (_sbc, p) = start(&Setup::default());
    let (mut call, _, _) = Call::answered(p);
    let invite = call.itsp_req.clone();
    for (n, (ctype, payload)) in
        [("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"), ("application/dtmf", "5")]
            .into_iter()
            .enumerate()
    {
        call.cseq += 1;
        let info = call.typed_request("INFO", Some((ctype, payload)));
        call.phone.sip.send_to(&info, p.lan);
        let (at_itsp, _) =
            call.itsp.sip.recv_until(WAIT, |m| m.starts_with("INFO ")).expect("INFO at the ITSP");
        assert_eq!(header(&at_itsp, "Content-Type"), Some(ctype));
        assert_eq!(body(&at_itsp), payload, "the body crosses byte for byte");
        call.itsp_req = at_itsp;
        call.itsp_send(200, "OK", None);
        call.phone_gets(200);
        // And from the carrier to the PBX.
        let info = itsp_request(&call, &invite, "INFO", 10 + n as u32, ctype, payload);
        call.itsp.sip.send_to(&info, p.trunk);
        let (at_phone, _) =
            call.phone.sip.recv_until(WAIT, |m| m.starts_with("INFO ")).expect("INFO at the phone");
        assert_eq!(header(&at_phone, "Content-Type"), Some(ctype));
        assert_eq!(body(&at_phone), payload);
        call.phone.sip.send_to(&respond(&at_phone, 200, "OK", "x", "", ""), p.lan);
        let (r, _) = call
            .itsp
            .sip
            .recv_until(WAIT, |m| m.starts_with("SIP/2.0 200 ") && m.contains(" INFO\r\n"))
            .expect("200 to the ITSP's INFO");
        assert_eq!(cseq_number(&r), 10 + n as u32);
    }
    call.bye();
}

#[test]
fn info_from_the_pbx_reaches_an_rfc4733_carrier_as_telephone_events() {
    let setup = Setup { itsp_extra: "    dtmf: rfc4733\n".into(), ..Setup::default() };
    let (sbc, p) = start(&setup);
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp_te(1, phone.rtp_addr().port(), 101);
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    let toward_itsp = media_addr(body(&call.itsp_req));
    let answer = sdp_te(1, call.itsp.rtp_addr().port(), 96);
    let ok = call.answer(200, "OK", Some(&answer));
    let toward_phone = media_addr(body(&ok));
    call.ack(None);
    // The PBX's audio stream runs (seq 1..=5), then its phone keys 5 and it sends INFO.
    let audio = stream(0, 0x1111_0001, 1, 1, 5);
    for a in &audio {
        call.phone.rtp.send_to(a, toward_phone).expect("phone sends");
    }
    assert_eq!(recv_n(&call.itsp.rtp, 5, WAIT).len(), 5);
    call.cseq += 1;
    let info = call
        .typed_request("INFO", Some(("application/dtmf-relay", "Signal=5\r\nDuration=200\r\n")));
    call.phone.sip.send_to(&info, p.lan);
    call.phone_gets(200);
    let events = recv_n(&call.itsp.rtp, 7, WAIT);
    assert_eq!(events.len(), 7, "four updates and three end packets");
    for (i, (e, from)) in events.iter().enumerate() {
        assert_eq!(*from, toward_itsp, "from the relay port facing the carrier");
        assert_eq!(e.len(), 16, "one event, no redundancy");
        assert_eq!(e[1] & 0x7f, 96, "the carrier's telephone-event type");
        assert_eq!(e[1] & 0x80 != 0, i == 0, "marker on the first packet only");
        assert_eq!(ssrc_of(e), 0x1111_0001, "the PBX's stream");
        assert_eq!(seq_of(e), 6 + i as u16, "sequence numbers continue the stream");
        assert_eq!(ts_of(e), ts_of(&events[0].0), "one timestamp for the event");
        assert_eq!((e[12], e[13] & 0x3f), (5, 10), "event 5, volume 10");
    }
    assert!(ts_of(&events[0].0) >= 5 * 160, "the stream's current timestamp");
    let ends: Vec<u16> = events
        .iter()
        .filter(|(e, _)| e[13] & 0x80 != 0)
        .map(|(e, _)| u16::from_be_bytes([e[14], e[15]]))
        .collect();
    assert_eq!(ends, vec![1600, 1600, 1600], "three end packets, 200 ms at 8 kHz");
    // The next audio packet follows the injected ones.
    call.phone.rtp.send_to(&rtp_packet(0, 6, 0x1111_0001, 1), toward_phone).expect("send");
    let after = recv_n(&call.itsp.rtp, 1, WAIT);
    assert_eq!(after.first().map(|(a, _)| seq_of(a)), Some(13));
    assert!(
        call.itsp.sip.recv_until(Duration::from_millis(200), |m| m.starts_with("INFO ")).is_none(),
        "the carrier sees no INFO"
    );
    let n = wait_metric(
        &sbc,
        "sipborder_dtmf_events_total{conversion=\"info_to_rfc4733\",result=\"converted\"}",
        WAIT,
        |v| v >= 1.0,
    );
    assert_eq!(n, 1.0, "{}", sbc.metrics());
    call.bye();
}

#[test]
fn telephone_events_from_the_carrier_reach_an_info_pbx_as_info() {
    let ports = Ports::new();
    let pbx_line = format!("    address: 127.0.0.1:{}\n", ports.pbx);
    let yaml = config(&ports, &Setup::default())
        .replace(&pbx_line, &format!("{pbx_line}    dtmf: info\n"));
    assert!(yaml.contains("dtmf: info"));
    let sbc = Sbc::start(ports, &yaml);
    // The PBX itself calls out (its signalling address names the `pbx` peer).
    let pbx = Ua::new(RawUdp::bind_port(ports.pbx));
    let offer = sdp_te(1, pbx.rtp_addr().port(), 101);
    let mut call =
        Call::invite_with(ports, pbx, Ua::new(RawUdp::bind_port(ports.itsp)), Some(&offer));
    let toward_itsp = media_addr(body(&call.itsp_req));
    let answer = sdp_te(1, call.itsp.rtp_addr().port(), 101);
    let ok = call.answer(200, "OK", Some(&answer));
    call.ack(None);
    let _ = ok;
    // The carrier's stream: audio 100..=104, '9' held 120 ms (three end packets), audio 111.
    let ssrc = 0x2222_0002;
    for a in stream(0, ssrc, 2, 100, 5) {
        call.itsp.rtp.send_to(&a, toward_itsp).expect("itsp sends");
    }
    let updates = [(false, 400u16), (false, 800), (true, 960), (true, 960), (true, 960)];
    for (i, (end, d)) in updates.into_iter().enumerate() {
        let e = event_packet(101, 105 + i as u16, 104 * 160, ssrc, 9, end, d);
        call.itsp.rtp.send_to(&e, toward_itsp).expect("itsp sends event");
        std::thread::sleep(Duration::from_millis(20));
    }
    call.itsp.rtp.send_to(&rtp_packet(0, 110, ssrc, 2), toward_itsp).expect("itsp sends");
    let (info, _) =
        call.phone.sip.recv_until(WAIT, |m| m.starts_with("INFO ")).expect("INFO at the PBX");
    assert_eq!(header(&info, "Content-Type"), Some("application/dtmf-relay"));
    assert_eq!(body(&info), "Signal=9\r\nDuration=120\r\n");
    assert_eq!(header(&info, "Call-ID"), Some(call.call_id.as_str()), "in the PBX's dialog");
    call.phone.sip.send_to(&respond(&info, 200, "OK", "x", "", ""), ports.lan);
    // Audio only reached the PBX, gap-free: the events were taken out.
    let at_pbx = recv_n(&call.phone.rtp, 7, Duration::from_millis(800));
    let got: Vec<(u8, u16)> = at_pbx.iter().map(|(p, _)| (p[1], seq_of(p))).collect();
    assert_eq!(got, vec![(0, 100), (0, 101), (0, 102), (0, 103), (0, 104), (0, 105)]);
    let n = wait_metric(
        &sbc,
        "sipborder_dtmf_events_total{conversion=\"rfc4733_to_info\",result=\"converted\"}",
        WAIT,
        |v| v >= 1.0,
    );
    assert_eq!(n, 1.0, "{}", sbc.metrics());
    call.bye();
}

/// [`sdp`] without telephone-event: a PBX or phone that only does INFO.
fn sdp_no_te(version: u32, port: u16) -> String {
    sdp(version, port, 0, "sendrecv", "")
        .replace(" 0 101\r\n", " 0\r\n")
        .replace("a=rtpmap:101 telephone-event/8000\r\n", "")
        .replace("a=fmtp:101 0-16\r\n", "")
}

/// The event packets among `got` (payload type `pt`) as (event, end, duration, marker).
fn events_of(got: &[(Vec<u8>, SocketAddr)], pt: u8) -> Vec<(u8, bool, u16, bool)> {
    got.iter()
        .filter(|(p, _)| p[1] & 0x7f == pt)
        .map(|(p, _)| {
            (p[12], p[13] & 0x80 != 0, u16::from_be_bytes([p[14], p[15]]), p[1] & 0x80 != 0)
        })
        .collect()
}

#[test]
fn an_info_only_phone_gets_telephone_event_negotiated_with_an_rfc4733_carrier() {
    let setup = Setup { itsp_extra: "    dtmf: rfc4733\n".into(), ..Setup::default() };
    let (sbc, p) = start(&setup);
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp_no_te(1, phone.rtp_addr().port());
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    // The carrier is offered telephone-event the phone never wrote.
    let to_itsp = body(&call.itsp_req).to_string();
    assert!(to_itsp.contains(" RTP/AVP 0 101\r\n"), "{to_itsp}");
    assert_eq!(attr(&to_itsp, "rtpmap"), Some("0 PCMU/8000"));
    assert!(to_itsp.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
    let toward_itsp = media_addr(&to_itsp);
    // It accepts with its own number; the phone's answer carries no telephone-event.
    let answer = sdp_te(1, call.itsp.rtp_addr().port(), 96);
    let ok = call.answer(200, "OK", Some(&answer));
    assert!(!body(&ok).contains("telephone-event"), "{}", body(&ok));
    assert!(body(&ok).contains(" RTP/AVP 0\r\n"), "{}", body(&ok));
    let toward_phone = media_addr(body(&ok));
    call.ack(None);
    for a in stream(0, 0x1111_0001, 1, 1, 3) {
        call.phone.rtp.send_to(&a, toward_phone).expect("phone sends");
    }
    assert_eq!(recv_n(&call.itsp.rtp, 3, WAIT).len(), 3);
    // The phone keys 1 for 300 ms as INFO: played with the carrier's 96.
    call.cseq += 1;
    let info = call
        .typed_request("INFO", Some(("application/dtmf-relay", "Signal=1\r\nDuration=300\r\n")));
    call.phone.sip.send_to(&info, p.lan);
    call.phone_gets(200);
    let got = recv_n(&call.itsp.rtp, 9, WAIT);
    let evs = events_of(&got, 96);
    assert_eq!(evs.len(), 9, "six updates and three end packets: {evs:?}");
    assert!(evs.iter().all(|e| e.0 == 1));
    assert_eq!(evs.iter().filter(|e| e.1).map(|e| e.2).collect::<Vec<_>>(), [2400; 3]);
    assert_eq!(evs.iter().filter(|e| e.3).count(), 1, "one marker");
    let played = wait_metric(
        &sbc,
        "sipborder_dtmf_events_total{conversion=\"info_to_rfc4733\",result=\"converted\"}",
        WAIT,
        |v| v >= 1.0,
    );
    assert_eq!(played, 1.0, "{}", sbc.metrics());
    // The carrier's own events (its 96) reach the phone, which never negotiated them, as INFO.
    let ssrc = 0x2222_0002;
    for (i, (end, d)) in
        [(false, 400u16), (true, 640), (true, 640), (true, 640)].into_iter().enumerate()
    {
        let e = event_packet(96, 50 + i as u16, 9000, ssrc, 11, end, d);
        call.itsp.rtp.send_to(&e, toward_itsp).expect("itsp sends event");
    }
    let (at_phone, _) =
        call.phone.sip.recv_until(WAIT, |m| m.starts_with("INFO ")).expect("INFO at the phone");
    assert_eq!(body(&at_phone), "Signal=#\r\nDuration=80\r\n");
    call.phone.sip.send_to(&respond(&at_phone, 200, "OK", "x", "", ""), p.lan);
    assert!(drain(&call.phone.rtp, Duration::from_millis(300)).is_empty(), "no event packet");
    call.bye();
}

#[test]
fn info_during_early_media_is_played_to_an_rfc4733_carrier() {
    let setup = Setup { itsp_extra: "    dtmf: rfc4733\n".into(), ..Setup::default() };
    let (sbc, p) = start(&setup);
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp_no_te(1, phone.rtp_addr().port());
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    let toward_itsp = media_addr(body(&call.itsp_req));
    // The carrier's IVR: 183 with SDP, no answer yet.
    let early = sdp_te(1, call.itsp.rtp_addr().port(), 96);
    let progress = call.answer(183, "Session Progress", Some(&early));
    assert!(!body(&progress).contains("telephone-event"), "{}", body(&progress));
    let toward_phone = media_addr(body(&progress));
    std::thread::sleep(Duration::from_millis(150));
    for a in stream(0, 0x1111_0001, 1, 1, 3) {
        call.phone.rtp.send_to(&a, toward_phone).expect("phone sends");
    }
    assert_eq!(recv_n(&call.itsp.rtp, 3, WAIT).len(), 3, "early media flows");
    // The caller keys 4 for 120 ms in the early dialog (To tag from the 183).
    call.cseq += 1;
    let info = call
        .typed_request("INFO", Some(("application/dtmf-relay", "Signal=4\r\nDuration=120\r\n")));
    assert!(header(&info, "To").and_then(tag).is_some(), "in the early dialog");
    call.phone.sip.send_to(&info, p.lan);
    call.phone_gets(200);
    let got = recv_n(&call.itsp.rtp, 6, WAIT);
    let evs = events_of(&got, 96);
    let summary: Vec<(bool, u16)> = evs.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(
        summary,
        [(false, 400), (false, 800), (false, 960), (true, 960), (true, 960), (true, 960)]
    );
    assert!(evs.iter().all(|e| e.0 == 4));
    assert!(got.iter().all(|(_, from)| *from == toward_itsp));
    // The carrier's own key press in early media cannot reach this caller: it never PRACKed a
    // reliable 183, so it may not know the early dialog. Counted, nothing sent.
    for (i, (end, d)) in
        [(false, 400u16), (true, 800), (true, 800), (true, 800)].into_iter().enumerate()
    {
        let e = event_packet(96, 40 + i as u16, 7000, 0x2222_0002, 9, end, d);
        call.itsp.rtp.send_to(&e, toward_itsp).expect("itsp sends event");
    }
    let unconfirmed = wait_metric(
        &sbc,
        "sipborder_dtmf_events_total{conversion=\"rfc4733_to_info\",result=\"early_unconfirmed\"}",
        WAIT,
        |v| v >= 1.0,
    );
    assert_eq!(unconfirmed, 1.0, "{}", sbc.metrics());
    assert!(call
        .phone
        .sip
        .recv_until(Duration::from_millis(200), |m| m.starts_with("INFO "))
        .is_none());
    // The INVITE's CSeq for its 200 and ACK, then on after the INFO's.
    call.cseq = 1;
    let ok = call.answer(200, "OK", Some(&early));
    assert!(!body(&ok).contains("telephone-event"));
    call.ack(None);
    call.cseq = 2;
    call.bye();
}

#[test]
fn telephone_events_during_early_media_reach_an_info_pbx_that_pracked() {
    let ports = Ports::new();
    let pbx_line = format!("    address: 127.0.0.1:{}\n", ports.pbx);
    let yaml = config(&ports, &Setup::default())
        .replace(&pbx_line, &format!("{pbx_line}    dtmf: info\n"));
    let sbc = Sbc::start(ports, &yaml);
    let pbx = Ua::new(RawUdp::bind_port(ports.pbx));
    let offer = sdp_te(1, pbx.rtp_addr().port(), 101);
    let mut call = Call::new(ports, pbx, Ua::new(RawUdp::bind_port(ports.itsp)));
    let inv = call
        .request("INVITE", Some(&offer))
        .replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nSupported: 100rel\r\n");
    call.phone.sip.send_to(&inv, ports.lan);
    call.itsp_gets_invite();
    let toward_itsp = media_addr(body(&call.itsp_req));
    // A reliable 183 with the carrier's IVR; the PBX PRACKs it.
    let early = sdp_te(1, call.itsp.rtp_addr().port(), 101);
    let extra = format!(
        "Contact: <sip:itsp@127.0.0.1:{}>\r\nRequire: 100rel\r\nRSeq: 1\r\nContent-Type: application/sdp\r\n",
        ports.itsp
    );
    let r183 = respond(&call.itsp_req, 183, "Session Progress", &call.itsp_tag, &extra, &early);
    call.itsp.sip.send_to(&r183, ports.trunk);
    let progress = call.phone_gets(183);
    let rseq = header(&progress, "RSeq").expect("a reliable 183").trim().to_string();
    let invite_at_itsp = call.itsp_req.clone();
    call.cseq += 1;
    let prack = call
        .typed_request("PRACK", None)
        .replace("Max-Forwards: 70\r\n", &format!("Max-Forwards: 70\r\nRAck: {rseq} 1 INVITE\r\n"));
    call.phone.sip.send_to(&prack, ports.lan);
    let (b_prack, _) =
        call.itsp.sip.recv_until(WAIT, |m| m.starts_with("PRACK ")).expect("PRACK at the ITSP");
    call.itsp_req = b_prack;
    call.itsp_send(200, "OK", None);
    call.phone_gets(200);
    std::thread::sleep(Duration::from_millis(150));
    // The carrier's caller keys 7 (140 ms) into the PBX's IVR before it answers.
    let ssrc = 0x2222_0002;
    for a in stream(0, ssrc, 2, 100, 3) {
        call.itsp.rtp.send_to(&a, toward_itsp).expect("itsp sends");
    }
    let updates = [(false, 400u16), (false, 800), (true, 1120), (true, 1120), (true, 1120)];
    for (i, (end, d)) in updates.into_iter().enumerate() {
        let e = event_packet(101, 103 + i as u16, 102 * 160, ssrc, 7, end, d);
        call.itsp.rtp.send_to(&e, toward_itsp).expect("itsp sends event");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (info, _) =
        call.phone.sip.recv_until(WAIT, |m| m.starts_with("INFO ")).expect("INFO at the PBX");
    assert_eq!(body(&info), "Signal=7\r\nDuration=140\r\n");
    assert_eq!(header(&info, "Call-ID"), Some(call.call_id.as_str()));
    assert_eq!(
        header(&info, "From").and_then(tag),
        header(&progress, "To").and_then(tag),
        "in the early dialog the PBX knows"
    );
    call.phone.sip.send_to(&respond(&info, 200, "OK", "x", "", ""), ports.lan);
    let at_pbx = recv_n(&call.phone.rtp, 4, Duration::from_millis(800));
    assert!(at_pbx.iter().all(|(p, _)| p[1] == 0), "only audio reached the PBX");
    let n = wait_metric(
        &sbc,
        "sipborder_dtmf_events_total{conversion=\"rfc4733_to_info\",result=\"converted\"}",
        WAIT,
        |v| v >= 1.0,
    );
    assert_eq!(n, 1.0, "{}", sbc.metrics());
    // Answered: the call goes on as usual.
    call.itsp_req = invite_at_itsp;
    call.cseq = 1;
    call.answer(200, "OK", Some(&early));
    call.ack(None);
    call.cseq = 2;
    call.bye();
}

/// An opus-only audio SDP from 127.0.0.1:`port`, with telephone-event/48000 as `te` if given.
fn sdp_opus(port: u16, te: Option<u8>) -> String {
    let (fmt, maps) = match te {
        Some(pt) => (format!(" {pt}"), format!("a=rtpmap:{pt} telephone-event/48000\r\n")),
        None => (String::new(), String::new()),
    };
    format!(
        "v=0\r\no=- 4711 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 111{fmt}\r\na=rtpmap:111 opus/48000/2\r\n{maps}a=sendrecv\r\n"
    )
}

#[test]
fn a_long_key_press_at_48_khz_is_played_in_segments() {
    let setup = Setup { itsp_extra: "    dtmf: rfc4733\n".into(), ..Setup::default() };
    let (_sbc, p) = start(&setup);
    let phone = Ua::new(RawUdp::bind());
    let offer = sdp_opus(phone.rtp_addr().port(), None);
    let mut call = Call::invite_with(p, phone, Ua::new(RawUdp::bind_port(p.itsp)), Some(&offer));
    // telephone-event is added with the audio's clock (RFC 4733 §2.1).
    let to_itsp = body(&call.itsp_req).to_string();
    assert!(to_itsp.contains(" RTP/AVP 111 101\r\n"), "{to_itsp}");
    assert!(to_itsp.contains("a=rtpmap:101 telephone-event/48000\r\n"), "{to_itsp}");
    let toward_itsp = media_addr(&to_itsp);
    let ok = call.answer(200, "OK", Some(&sdp_opus(call.itsp.rtp_addr().port(), Some(101))));
    let toward_phone = media_addr(body(&ok));
    call.ack(None);
    for a in stream(111, 0x1111_0001, 1, 1, 3) {
        call.phone.rtp.send_to(&a, toward_phone).expect("phone sends");
    }
    assert_eq!(recv_n(&call.itsp.rtp, 3, WAIT).len(), 3);
    // '0' held 2 s: 96000 units, more than the 16-bit duration field holds.
    call.cseq += 1;
    let info = call
        .typed_request("INFO", Some(("application/dtmf-relay", "Signal=0\r\nDuration=2000\r\n")));
    let sent = Instant::now();
    call.phone.sip.send_to(&info, p.lan);
    call.phone_gets(200);
    let got = recv_n(&call.itsp.rtp, 43, Duration::from_secs(5));
    let took = sent.elapsed();
    assert_eq!(got.len(), 43, "40 updates (every 50 ms) and three end packets");
    assert!(got.iter().all(|(e, from)| *from == toward_itsp && e[1] & 0x7f == 101 && e[12] == 0));
    let t0 = ts_of(&got[0].0);
    let seg = |e: &[u8]| ts_of(e).wrapping_sub(t0);
    assert!(got.iter().all(|(e, _)| seg(e) == 0 || seg(e) == 65535), "two segments");
    let dur = |e: &[u8]| u16::from_be_bytes([e[14], e[15]]);
    let end = |e: &[u8]| e[13] & 0x80 != 0;
    let first: Vec<&Vec<u8>> = got.iter().map(|(e, _)| e).filter(|e| seg(e) == 0).collect();
    let last_of_first = first.last().expect("a first segment");
    assert_eq!((dur(last_of_first), end(last_of_first)), (65535, false), "segment 1 ends full");
    assert!(first.iter().all(|e| !end(e)));
    let ends: Vec<(u32, u16)> =
        got.iter().filter(|(e, _)| end(e)).map(|(e, _)| (seg(e), dur(e))).collect();
    assert_eq!(ends, [(65535, 30465); 3], "65535 + 30465 = 2 s at 48 kHz");
    assert_eq!(got.iter().filter(|(e, _)| e[1] & 0x80 != 0).count(), 1, "one marker");
    let seqs: Vec<u16> = got.iter().map(|(e, _)| seq_of(e)).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{seqs:?}");
    assert!(
        took >= Duration::from_millis(2000),
        "played in real time: 2 s of updates and 100 ms of end packets, took {took:?}"
    );
    eprintln!("2 s key press at 48 kHz: 43 packets in {took:?}");
    call.bye();
}
