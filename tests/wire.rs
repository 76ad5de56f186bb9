//! Wire-level checks against the real binary with raw sockets: malformed input, local answers,
//! and the seed vectors (real PBX and phone messages) crossing a call with leg A's identity
//! left behind.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn vector(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Points a vector's top Via at our raw socket (with rport) so answers come back to the test.
fn via_to(msg: &str, port: u16, transport: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in msg.split("\r\n") {
        let is_via = line.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case("via"));
        if is_via && !done {
            done = true;
            let branch = line
                .split(";branch=")
                .nth(1)
                .and_then(|b| b.split(';').next())
                .unwrap_or("z9hG4bKx");
            out.push_str(&format!(
                "Via: SIP/2.0/{transport} 127.0.0.1:{port};rport;branch={branch}\r\n"
            ));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.truncate(out.len() - 2);
    out
}

fn start() -> (Sbc, Ports) {
    let ports = Ports::new();
    let sbc = Sbc::start(ports, &config(&ports, &Setup::default()));
    (sbc, ports)
}

#[test]
fn request_without_call_id_gets_400_naming_it() {
    let (_sbc, p) = start();
    let ua = RawUdp::bind();
    let msg = format!(
        "INVITE sip:100@127.0.0.1:{lan} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKbad1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n",
        lan = p.lan,
        me = ua.port()
    );
    ua.send_to(&msg, p.lan);
    let r = ua.recv(Duration::from_secs(3)).expect("an answer");
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    let status = r.lines().next().unwrap_or("");
    assert!(
        status.to_ascii_lowercase().contains("call-id"),
        "reason must name the problem: {status}"
    );
}

#[test]
fn garbage_is_dropped_and_counted() {
    let (sbc, p) = start();
    let ua = RawUdp::bind();
    ua.send_to("HELLO THIS IS NOT SIP\r\n\r\n", p.lan);
    ua.send_to("SIP/2.0 200 OK\r\nVia: broken\r\n\r\n", p.lan);
    assert!(ua.recv(Duration::from_millis(500)).is_none(), "nothing is answered");
    std::thread::sleep(Duration::from_millis(200));
    let dropped = sbc.metric("sipborder_sip_parse_errors_total{action=\"dropped\"");
    assert!(dropped >= 2.0, "{}", sbc.metrics());
    // ...and the process is still serving.
    ua.send_to(&options_request(ua.port(), p.lan, "still-alive"), p.lan);
    assert!(ua.recv(Duration::from_secs(2)).is_some_and(|r| r.starts_with("SIP/2.0 200")));
}

#[test]
fn cucm_options_ping_over_tcp_with_max_forwards_zero_is_answered() {
    let (_sbc, p) = start();
    let mut s = TcpStream::connect(("127.0.0.1", p.lan)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    s.write_all(vector("seed002/d2_08_options_cucm.sip").as_bytes()).expect("send");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).expect("answer over the same connection");
    let r = String::from_utf8_lossy(&buf[..n]);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert!(header(&r, "Allow").is_some_and(|a| a.contains("INVITE")), "{r}");
    assert_eq!(header(&r, "CSeq"), Some("101 OPTIONS"));
}

/// Sends `invite` from the LAN side and returns what the trunk side receives.
fn cross(p: &Ports, invite: &str, over_tcp: bool) -> (String, RawUdp) {
    let itsp = RawUdp::bind_port(p.itsp);
    if over_tcp {
        let mut s = TcpStream::connect(("127.0.0.1", p.lan)).expect("connect");
        s.write_all(invite.as_bytes()).expect("send");
        std::mem::forget(s); // keep the connection open for the responses
    } else {
        let ua = RawUdp::bind();
        ua.send_to(&via_to(invite, ua.port(), "UDP"), p.lan);
        std::mem::forget(ua);
    }
    let (got, _) = itsp
        .recv_until(Duration::from_secs(3), |m| m.starts_with("INVITE "))
        .expect("INVITE on the trunk");
    (got, itsp)
}

fn assert_identity_left_behind(a: &str, b: &str) {
    let a_call_id = header(a, "Call-ID").unwrap_or("-");
    let a_from_tag = header(a, "From").and_then(tag).unwrap_or("-");
    assert_ne!(header(b, "Call-ID"), Some(a_call_id));
    assert!(!b.contains(a_call_id), "leg A Call-ID leaked:\n{b}");
    assert!(!b.contains(a_from_tag), "leg A From tag leaked:\n{b}");
    for via in headers(a, "Via") {
        if let Some(branch) = via.split(";branch=").nth(1).and_then(|x| x.split(';').next()) {
            assert!(!b.contains(branch), "leg A branch leaked:\n{b}");
        }
    }
    if let Some(c) = header(a, "Contact") {
        assert!(!b.contains(c), "leg A Contact leaked:\n{b}");
    }
    assert_eq!(headers(b, "Via").len(), 1, "exactly sipborder's Via on leg B:\n{b}");
    assert!(headers(b, "Record-Route").is_empty() && headers(b, "Route").is_empty());
}

#[test]
fn seed_invites_cross_to_the_trunk_with_body_and_numbers_intact() {
    let (_sbc, p) = start();
    for v in [
        "seed002/d2_01_invite_microsip.sip",
        "seed003/001_voxlink_invite_102_digium_d40_sdp.sip",
        "seed003/003_pjsipwiki_invite_sipp_eggowaffles_unknown_endpoint.sip",
        "seed002/d2_17_invite_cucm_delayed_offer.sip",
        "seed002/d2_26_invite_to_cube.sip",
    ] {
        let a = vector(v);
        let (b, itsp) = cross(&p, &a, false);
        if body(&a).is_empty() {
            assert_eq!(body(&b), "", "{v}: no SDP, none invented");
        } else {
            assert_anchored(body(&b), body(&a), "127.0.0.1");
        }
        let user = |m: &str| {
            let uri = m.split_whitespace().nth(1).unwrap_or("");
            uri.split_once('@').map(|(u, _)| u.trim_start_matches("sip:").to_string())
        };
        assert_eq!(user(&b), user(&a), "{v}: Request-URI user kept");
        assert_identity_left_behind(&a, &b);
        // Refuse the call so it ends cleanly.
        let busy = respond(&b, 486, "Busy Here", "t1", "", "");
        itsp.sock.send_to(busy.as_bytes(), ("127.0.0.1", p.trunk)).ok();
        assert!(
            itsp.recv_until(Duration::from_secs(3), |m| m.starts_with("ACK ")).is_some(),
            "{v}: 486 ACKed hop by hop"
        );
    }
}

#[test]
fn lync_invite_over_tcp_with_all_caps_headers_crosses() {
    let (_sbc, p) = start();
    let a = vector("seed003/011_avaya_ipo_rx_invite_from_lync_mediation_tcp.sip");
    let (b, itsp) = cross(&p, &a, true);
    assert!(b.starts_with("INVITE sip:98916xxx0379@"), "{b}");
    assert_anchored(body(&b), body(&a), "127.0.0.1");
    assert_eq!(headers(&b, "Allow").len(), 2, "both Allow lines carried:\n{b}");
    assert_identity_left_behind(&a, &b);
    let busy = respond(&b, 486, "Busy Here", "t1", "", "");
    itsp.sock.send_to(busy.as_bytes(), ("127.0.0.1", p.trunk)).ok();
}

#[test]
fn message_out_of_dialog_is_relayed_and_answered() {
    let (_sbc, p) = start();
    let itsp = RawUdp::bind_port(p.itsp);
    let ua = RawUdp::bind();
    let a = via_to(&vector("seed002/d2_27_message.sip"), ua.port(), "UDP");
    ua.send_to(&a, p.lan);
    let (b, _) = itsp
        .recv_until(Duration::from_secs(3), |m| m.starts_with("MESSAGE "))
        .expect("MESSAGE on the trunk");
    assert_eq!(body(&b), "selam");
    assert_identity_left_behind(&a, &b);
    itsp.sock.send_to(respond(&b, 200, "OK", "m1", "", "").as_bytes(), ("127.0.0.1", p.trunk)).ok();
    let r = ua
        .recv_until(Duration::from_secs(3), |m| m.starts_with("SIP/2.0 200"))
        .map(|x| x.0)
        .expect("200 back on A");
    assert_eq!(header(&r, "Call-ID"), header(&a, "Call-ID"));
}
