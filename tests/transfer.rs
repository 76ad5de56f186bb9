//! Transfers sipborder performs itself (`refer: local` on the carrier trunk), end to end: the
//! real binary, a PBX and a carrier played over raw UDP, RTP on real sockets.
//!
//! Attended transfer: the PBX holds two calls to the carrier (X and Y) and joins them with a
//! REFER whose Refer-To carries Replaces. The carrier must see nothing — no REFER, no
//! re-INVITE — and X and Y must hear each other through the relay ports they already know.

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use common::*;
use rtp::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(3);

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// One call from the PBX to the carrier, as both ends see it.
struct CarrierCall {
    /// The PBX's dialog: Call-ID, its tag, sipborder's tag, sipborder's Contact, CSeq.
    call_id: String,
    pbx_tag: String,
    sbc_tag: String,
    target: String,
    cseq: u32,
    /// The INVITE as the carrier got it (its dialog: Call-ID, tags).
    at_carrier: String,
    /// The carrier party's RTP socket, and the relay port it sends to.
    rtp: UdpSocket,
    carrier_relay: SocketAddr,
}

struct Pbx {
    sip: RawUdp,
    rtp: UdpSocket,
}

impl Pbx {
    fn request(&self, p: &Ports, c: &CarrierCall, method: &str, extra: &str, body: &str) -> String {
        let me = self.sip.port();
        let to_tag =
            if c.sbc_tag.is_empty() { String::new() } else { format!(";tag={}", c.sbc_tag) };
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bK{method}{cseq}{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:100@127.0.0.1:{me}>;tag={ftag}\r\n\
             To: <sip:4900@127.0.0.1:{lan}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:100@127.0.0.1:{me}>\r\n\
             {extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
            target = c.target,
            ftag = c.pbx_tag,
            lan = p.lan,
            cid = c.call_id,
            cseq = c.cseq,
            branch = c.call_id.split('@').next().unwrap_or(""),
            len = body.len(),
        )
    }
}

/// A Call-ID of the PBX's that sipborder's 2 shards put on `shard` (so the two calls of a
/// transfer sit on different shards and must talk across them).
fn call_id_on_shard(prefix: &str, shard: usize) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}-{}@127.0.0.1", std::process::id()))
        .find(|c| sipborder::sip::callid::shard_of(c, 2) == shard)
        .expect("a Call-ID on the shard")
}

/// The PBX calls `callee` at the carrier, which answers with its party's RTP socket.
fn place(p: &Ports, pbx: &Pbx, carrier: &RawUdp, call_id: String, callee: &str) -> CarrierCall {
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("carrier rtp");
    let mut c = CarrierCall {
        call_id,
        pbx_tag: format!("pbx-{callee}"),
        sbc_tag: String::new(),
        target: format!("sip:{callee}@127.0.0.1:{}", p.lan),
        cseq: 1,
        at_carrier: String::new(),
        rtp,
        carrier_relay: "0.0.0.0:0".parse().expect("addr"),
    };
    let pbx_port = pbx.rtp.local_addr().expect("pbx rtp").port();
    pbx.sip.send_to(&pbx.request(p, &c, "INVITE", "", &sdp(pbx_port)), p.lan);
    let start = format!("INVITE sip:{callee}@");
    let (inv, _) = carrier
        .recv_until(WAIT, |m| m.starts_with(&start))
        .unwrap_or_else(|| panic!("{start}... at the carrier"));
    c.carrier_relay = media_addr(body(&inv));
    let party = c.rtp.local_addr().expect("rtp").port();
    let contact = format!(
        "Contact: <sip:{callee}@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n",
        p.itsp
    );
    carrier
        .send_to(&respond(&inv, 200, "OK", &format!("c-{callee}"), &contact, &sdp(party)), p.trunk);
    let (ok, _) = pbx
        .sip
        .recv_until(WAIT, |m| m.starts_with("SIP/2.0 200") && m.contains(&c.call_id))
        .expect("200 at the PBX");
    c.sbc_tag = header(&ok, "To").and_then(tag).expect("sipborder's tag").to_string();
    c.target = header(&ok, "Contact")
        .map(|v| v.trim_start_matches('<').split('>').next().unwrap_or(v).to_string())
        .expect("Contact");
    pbx.sip.send_to(&pbx.request(p, &c, "ACK", "", ""), p.lan);
    carrier.recv_until(WAIT, |m| m.starts_with("ACK ")).expect("ACK at the carrier");
    c.at_carrier = inv;
    c
}

/// 40 packets from `from` (to its relay port) reach `to` from `to`'s relay port.
fn audio(from: &CarrierCall, to: &CarrierCall, stream_id: u32, what: &str) {
    let sent = stream(0, 0xabc0_0000 + stream_id, stream_id, 100, 40);
    for pkt in &sent {
        from.rtp.send_to(pkt, from.carrier_relay).expect("send rtp");
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = recv_n(&to.rtp, sent.len(), WAIT);
    assert_relayed(&got, &sent, to.carrier_relay, what);
}

#[test]
fn attended_transfer_joins_two_carrier_calls_across_shards_and_they_hear_each_other() {
    let p = Ports::new();
    let setup = Setup { itsp_extra: "    refer: local\n".into(), ..Setup::default() };
    let sbc = Sbc::start(p, &config(&p, &setup));
    let pbx = Pbx { sip: RawUdp::bind(), rtp: UdpSocket::bind("127.0.0.1:0").expect("pbx rtp") };
    let carrier = RawUdp::bind_port(p.itsp);
    let x = place(&p, &pbx, &carrier, call_id_on_shard("att-x", 0), "4901");
    let y = place(&p, &pbx, &carrier, call_id_on_shard("att-y", 1), "4902");
    // The PBX completes the transfer on X's call, naming its dialog with Y.
    let replaces = format!(
        "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
        y.call_id.replace('@', "%40"),
        y.sbc_tag,
        y.pbx_tag
    );
    let mut xr = CarrierCall { cseq: 2, ..x };
    let refer_to =
        format!("Refer-To: <sip:4902@127.0.0.1?Replaces={replaces}>\r\nEvent: refer\r\n");
    pbx.sip.send_to(&pbx.request(&p, &xr, "REFER", &refer_to, ""), p.lan);
    // 202, NOTIFYs up to 200 OK, and a BYE on each PBX leg; every request answered.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut accepted, mut notified_ok, mut byes) = (false, false, Vec::new());
    while !(accepted && notified_ok && byes.len() == 2) && Instant::now() < deadline {
        let Some(m) = pbx.sip.recv(Duration::from_millis(500)) else { continue };
        if m.starts_with("SIP/2.0 202") {
            accepted = true;
            continue;
        }
        if m.starts_with("SIP/2.0") {
            continue;
        }
        if m.starts_with("NOTIFY ") && body(&m).starts_with("SIP/2.0 200") {
            notified_ok = true;
        }
        if m.starts_with("BYE ") {
            byes.push(header(&m, "Call-ID").unwrap_or("").to_string());
        }
        pbx.sip.send_to(&respond(&m, 200, "OK", "pbx", "", ""), p.lan);
    }
    assert!(accepted && notified_ok, "202 and NOTIFY 200 at the PBX\n{}", sbc.log());
    byes.sort();
    let mut want = vec![xr.call_id.clone(), y.call_id.clone()];
    want.sort();
    assert_eq!(byes, want, "both PBX legs ended\n{}", sbc.log());
    // The carrier was told nothing.
    let told = carrier.recv_until(Duration::from_millis(500), |m| !m.starts_with("SIP/2.0"));
    assert!(told.is_none(), "the carrier got {told:?}");
    // X and Y hear each other on the relay ports each already knew.
    audio(&xr, &y, 1, "X → Y");
    audio(&y, &xr, 2, "Y → X");
    assert!(drain(&pbx.rtp, Duration::from_millis(200)).is_empty(), "nothing reaches the PBX");
    // X hangs up: the carrier gets the BYE for Y's call, and no call is left.
    xr.cseq = 1;
    let at = &xr.at_carrier;
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{itsp};branch=z9hG4bKxbye\r\n\
         Max-Forwards: 70\r\nFrom: {to};tag=c-4901\r\nTo: {from}\r\nCall-ID: {cid}\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        contact = header(at, "Contact")
            .map(|v| v.trim_start_matches('<').split('>').next().unwrap_or(v).to_string())
            .expect("sipborder's Contact"),
        itsp = p.itsp,
        to = header(at, "To").unwrap_or(""),
        from = header(at, "From").unwrap_or(""),
        cid = header(at, "Call-ID").unwrap_or(""),
    );
    carrier.send_to(&bye, p.trunk);
    let y_cid = header(&y.at_carrier, "Call-ID").unwrap_or("").to_string();
    let (bye_y, _) = carrier
        .recv_until(WAIT, |m| m.starts_with("BYE ") && m.contains(&y_cid))
        .unwrap_or_else(|| panic!("BYE for Y's call at the carrier\n{}", sbc.log()));
    carrier.send_to(&respond(&bye_y, 200, "OK", "c", "", ""), p.trunk);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sbc.metric("sipborder_calls_active") > 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sbc.metric("sipborder_calls_active"), 0.0, "{}", sbc.metrics());
    assert_eq!(sbc.metric("sipborder_transfers_total{result=\"completed\"}"), 1.0);
}

/// The carrier's INVITE from `carrier` (bound to the ITSP's port) for `callee`, with an SDP
/// naming `rtp`.
fn carrier_invite(p: &Ports, call_id: &str, callee: &str, rtp: u16) -> String {
    let body = sdp(rtp);
    format!(
        "INVITE sip:{callee}@127.0.0.1:{trunk} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{itsp};rport;branch=z9hG4bKcarrier1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:0301234567@127.0.0.1:{itsp}>;tag=carrier\r\n\
         To: <sip:{callee}@127.0.0.1:{trunk}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:0301234567@127.0.0.1:{itsp}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        trunk = p.trunk,
        itsp = p.itsp,
        len = body.len(),
    )
}

/// The carrier calls the PBX (Call-ID on shard 0), the PBX answers from `pbx_rtp`, the
/// carrier ACKs. Returns the carrier party's RTP socket, the relay port it sends to, and the
/// INVITE the PBX got.
fn carrier_calls_pbx(
    p: &Ports,
    carrier: &RawUdp,
    pbx: &RawUdp,
    pbx_rtp: &UdpSocket,
) -> (UdpSocket, SocketAddr, String) {
    let x_rtp = UdpSocket::bind("127.0.0.1:0").expect("x rtp");
    let cid = call_id_on_shard("inbound", 0);
    let x_port = x_rtp.local_addr().expect("addr").port();
    carrier.send_to(&carrier_invite(p, &cid, "4910", x_port), p.trunk);
    let (inv, _) = pbx.recv_until(WAIT, |m| m.starts_with("INVITE ")).expect("INVITE at the PBX");
    let pbx_port = pbx_rtp.local_addr().expect("addr").port();
    let contact =
        format!("Contact: <sip:4910@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n", p.pbx);
    pbx.send_to(&respond(&inv, 200, "OK", "pbx-leg", &contact, &sdp(pbx_port)), p.lan);
    let (ok, _) =
        carrier.recv_until(WAIT, |m| m.starts_with("SIP/2.0 200")).expect("200 at the carrier");
    let x_relay = media_addr(body(&ok));
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{itsp};branch=z9hG4bKcarrierack\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0301234567@127.0.0.1:{itsp}>;tag=carrier\r\nTo: {to}\r\n\
         Call-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        target = header(&ok, "Contact")
            .map(|v| v.trim_start_matches('<').split('>').next().unwrap_or(v).to_string())
            .expect("Contact"),
        itsp = p.itsp,
        to = header(&ok, "To").unwrap_or(""),
    );
    carrier.send_to(&ack, p.trunk);
    pbx.recv_until(WAIT, |m| m.starts_with("ACK ")).expect("ACK at the PBX");
    std::thread::sleep(Duration::from_millis(150));
    (x_rtp, x_relay, inv)
}

/// 40 packets each way between `a` (sending to `a_relay`) and `b` (to `b_relay`), checked in
/// order and from the relay port each side knows.
fn two_way(a: &UdpSocket, a_relay: SocketAddr, b: &UdpSocket, b_relay: SocketAddr) {
    let down = stream(0, 0xdddd_0001, 7, 10, 40);
    let up = stream(0, 0xeeee_0002, 8, 10, 40);
    for (d, u) in down.iter().zip(&up) {
        a.send_to(d, a_relay).expect("a sends");
        b.send_to(u, b_relay).expect("b sends");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_relayed(&recv_n(b, down.len(), WAIT), &down, b_relay, "a → b");
    assert_relayed(&recv_n(a, up.len(), WAIT), &up, a_relay, "b → a");
}

#[test]
fn a_blind_transfer_of_a_carrier_call_reaches_the_target_and_the_carrier_hears_it() {
    let p = Ports::new();
    let setup = Setup { itsp_extra: "    refer: local\n".into(), ..Setup::default() };
    let sbc = Sbc::start(p, &config(&p, &setup));
    let carrier = RawUdp::bind_port(p.itsp);
    let pbx = RawUdp::bind_port(p.pbx);
    let pbx_rtp = UdpSocket::bind("127.0.0.1:0").expect("pbx rtp");
    let (x_rtp, x_relay, inv) = carrier_calls_pbx(&p, &carrier, &pbx, &pbx_rtp);
    // The PBX transfers the carrier to 4920 (blind), in its leg's dialog.
    let sbc_contact = header(&inv, "Contact")
        .map(|v| v.trim_start_matches('<').split('>').next().unwrap_or(v).to_string())
        .expect("sipborder's Contact");
    let refer = format!(
        "REFER {sbc_contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{pbxp};rport;branch=z9hG4bKrefer1\r\n\
         Max-Forwards: 70\r\nFrom: {to};tag=pbx-leg\r\nTo: {from}\r\nCall-ID: {cid}\r\n\
         CSeq: 2 REFER\r\nContact: <sip:4910@127.0.0.1:{pbxp}>\r\nEvent: refer\r\n\
         Refer-To: <sip:4920@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
        pbxp = p.pbx,
        to = header(&inv, "To").unwrap_or(""),
        from = header(&inv, "From").unwrap_or(""),
        cid = header(&inv, "Call-ID").unwrap_or(""),
    );
    pbx.send_to(&refer, p.lan);
    // sipborder calls 4920 at the PBX itself; the target answers from its own RTP socket.
    let target_rtp = UdpSocket::bind("127.0.0.1:0").expect("target rtp");
    let mut target_relay = None;
    let mut notified_ok = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(target_relay.is_some() && notified_ok) && Instant::now() < deadline {
        let Some(m) = pbx.recv(Duration::from_millis(500)) else { continue };
        if m.starts_with("SIP/2.0") || m.starts_with("ACK ") {
            continue;
        }
        if m.starts_with("INVITE sip:4920@") {
            target_relay = Some(media_addr(body(&m)));
            let port = target_rtp.local_addr().expect("addr").port();
            let c = format!(
                "Contact: <sip:4920@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n",
                p.pbx
            );
            pbx.send_to(&respond(&m, 200, "OK", "target", &c, &sdp(port)), p.lan);
            continue;
        }
        if m.starts_with("NOTIFY ") && body(&m).starts_with("SIP/2.0 200") {
            notified_ok = true;
        }
        pbx.send_to(&respond(&m, 200, "OK", "pbx", "", ""), p.lan);
    }
    let target_relay = target_relay.unwrap_or_else(|| panic!("INVITE to 4920\n{}", sbc.log()));
    assert!(notified_ok, "NOTIFY 200 to the transferor\n{}", sbc.log());
    assert!(
        carrier.recv_until(Duration::from_millis(500), |m| !m.starts_with("SIP/2.0")).is_none(),
        "the carrier is told nothing"
    );
    two_way(&x_rtp, x_relay, &target_rtp, target_relay);
    assert!(drain(&pbx_rtp, Duration::from_millis(200)).is_empty(), "the transferor hears nothing");
    assert_eq!(sbc.metric("sipborder_transfers_total{result=\"completed\"}"), 1.0);
}

#[test]
fn an_invite_with_replaces_from_the_pbx_takes_over_a_carrier_call_on_another_shard() {
    let p = Ports::new();
    let sbc = Sbc::start(p, &config(&p, &Setup::default()));
    let carrier = RawUdp::bind_port(p.itsp);
    let pbx = RawUdp::bind_port(p.pbx);
    let pbx_rtp = UdpSocket::bind("127.0.0.1:0").expect("pbx rtp");
    let (x_rtp, x_relay, inv) = carrier_calls_pbx(&p, &carrier, &pbx, &pbx_rtp);
    // Another phone of the PBX takes the call over, its INVITE on the other shard.
    let phone = RawUdp::bind();
    let phone_rtp = UdpSocket::bind("127.0.0.1:0").expect("phone rtp");
    let leg_cid = header(&inv, "Call-ID").unwrap_or("").to_string();
    let sbc_tag = header(&inv, "From").and_then(tag).unwrap_or("").to_string();
    let new_cid = call_id_on_shard("pickup", 1);
    let offer = sdp(phone_rtp.local_addr().expect("addr").port());
    let me = phone.port();
    let pickup = format!(
        "INVITE sip:4910@127.0.0.1:{lan} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKpickup1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:4911@127.0.0.1:{me}>;tag=phone2\r\n\
         To: <sip:4910@127.0.0.1:{lan}>\r\nCall-ID: {new_cid}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:4911@127.0.0.1:{me}>\r\n\
         Replaces: {leg_cid};to-tag={sbc_tag};from-tag=pbx-leg\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        lan = p.lan,
        len = offer.len(),
    );
    phone.send_to(&pickup, p.lan);
    let (ok2, _) = phone
        .recv_until(WAIT, |m| m.starts_with("SIP/2.0 200"))
        .unwrap_or_else(|| panic!("200 at the new phone\n{}", sbc.log()));
    let phone_relay = media_addr(body(&ok2));
    let (bye_old, _) = pbx
        .recv_until(WAIT, |m| m.starts_with("BYE ") && m.contains(&leg_cid))
        .expect("BYE for the replaced leg");
    pbx.send_to(&respond(&bye_old, 200, "OK", "x", "", ""), p.lan);
    let our_tag = header(&ok2, "To").and_then(tag).unwrap_or("").to_string();
    let target = header(&ok2, "Contact")
        .map(|v| v.trim_start_matches('<').split('>').next().unwrap_or(v).to_string())
        .expect("Contact");
    let ack2 = format!(
        "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKpickupack\r\n\
         Max-Forwards: 70\r\nFrom: <sip:4911@127.0.0.1:{me}>;tag=phone2\r\n\
         To: <sip:4910@127.0.0.1:{lan}>;tag={our_tag}\r\nCall-ID: {new_cid}\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        lan = p.lan,
    );
    phone.send_to(&ack2, p.lan);
    assert!(
        carrier.recv_until(Duration::from_millis(500), |m| !m.starts_with("SIP/2.0")).is_none(),
        "the carrier is told nothing"
    );
    // Audio both ways between the carrier and the new phone, on the relay ports.
    two_way(&x_rtp, x_relay, &phone_rtp, phone_relay);
    assert!(drain(&pbx_rtp, Duration::from_millis(200)).is_empty(), "the old leg hears nothing");
    // The new phone hangs up (its BYE goes through the forwarding shard); the carrier gets it.
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKpickupbye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:4911@127.0.0.1:{me}>;tag=phone2\r\n\
         To: <sip:4910@127.0.0.1:{lan}>;tag={our_tag}\r\nCall-ID: {new_cid}\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        lan = p.lan,
    );
    phone.send_to(&bye, p.lan);
    phone.recv_until(WAIT, |m| m.starts_with("SIP/2.0 200") && m.contains("BYE")).expect("200");
    let (bye_x, _) = carrier.recv_until(WAIT, |m| m.starts_with("BYE ")).expect("BYE at carrier");
    carrier.send_to(&respond(&bye_x, 200, "OK", "c", "", ""), p.trunk);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sbc.metric("sipborder_calls_active") > 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sbc.metric("sipborder_calls_active"), 0.0, "{}", sbc.metrics());
    assert_eq!(sbc.metric("sipborder_transfers_total{result=\"replaced\"}"), 1.0);
}
