//! The trunk edge end to end: digest answered toward the ITSP (401 and 407, verified by SIPp's
//! verifyauth), the challenge-loop guard, registration, keepalive fail-over, Q.850 Reasons.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn auth_setup(dir: &TempDir) -> Setup {
    let secret = dir.path("itsp.secret");
    std::fs::write(&secret, "itsp-secret\n").expect("write secret");
    Setup {
        itsp_extra: format!(
            "    auth:\n      username: \"4930123\"\n      password_file: {}\n",
            secret.display()
        ),
        ..Setup::default()
    }
}

fn start(setup: &Setup) -> (Sbc, Ports) {
    let ports = Ports::new();
    let sbc = Sbc::start(ports, &config(&ports, setup));
    (sbc, ports)
}

fn scen(name: &str) -> String {
    scenario(name).to_string_lossy().to_string()
}

#[test]
fn invite_challenged_with_401_is_answered_with_valid_digest() {
    let dir = TempDir::new("auth401");
    let (sbc, p) = start(&auth_setup(&dir));
    let uas = Sipp::uas(p.itsp, &["-sf", &scen("uas_digest_401.xml")], &[]);
    let r = Sipp::uac(p.lan, &["-sn", "uac"], 3, 5, &[], Duration::from_secs(30));
    assert_eq!(
        (r.successful, r.failed),
        (3, 0),
        "{r:?}\nuas errors: {}\n{}",
        uas.errors(),
        sbc.log()
    );
}

#[test]
fn invite_challenged_with_407_is_answered_with_proxy_authorization() {
    let dir = TempDir::new("auth407");
    let (sbc, p) = start(&auth_setup(&dir));
    let uas = Sipp::uas(p.itsp, &["-sf", &scen("uas_digest_407.xml")], &[]);
    let r = Sipp::uac(p.lan, &["-sn", "uac"], 3, 5, &[], Duration::from_secs(30));
    assert_eq!(
        (r.successful, r.failed),
        (3, 0),
        "{r:?}\nuas errors: {}\n{}",
        uas.errors(),
        sbc.log()
    );
}

#[test]
fn a_second_challenge_fails_the_call_with_403_instead_of_looping() {
    let dir = TempDir::new("authloop");
    let (sbc, p) = start(&auth_setup(&dir));
    let uas = Sipp::uas(p.itsp, &["-sf", &scen("uas_digest_loop.xml")], &[]);
    let r =
        Sipp::uac(p.lan, &["-sf", &scen("uac_expect_403.xml")], 2, 2, &[], Duration::from_secs(30));
    assert_eq!((r.successful, r.failed), (2, 0), "{r:?}\n{}", sbc.log());
    // Each call: the INVITE, one answered challenge, then nothing more (no third INVITE).
    std::thread::sleep(Duration::from_millis(2500));
    let trace = uas.messages();
    let invites = trace.lines().filter(|l| l.starts_with("INVITE sip:")).count();
    assert_eq!(invites, 4, "two INVITEs per call, no loop:\n{trace}");
}

/// A registrar played by the test: challenges the first REGISTER, verifies that the retry
/// carries credentials, grants 3 s; counts refreshes.
#[test]
fn registration_answers_the_challenge_and_refreshes_before_expiry() {
    let dir = TempDir::new("reg");
    let mut setup = auth_setup(&dir);
    setup.itsp_extra.push_str("    register:\n      user: \"4930123\"\n      expires: 60s\n");
    let ports = Ports::new();
    let registrar = RawUdp::bind_port(ports.itsp);
    let sbc = Sbc::start(ports, &config(&ports, &setup));
    let deadline = Instant::now() + Duration::from_secs(12);
    let (mut challenged, mut registered, mut refreshes) = (false, false, 0);
    while Instant::now() < deadline && refreshes < 2 {
        let Some((req, from)) =
            registrar.recv_until(Duration::from_secs(5), |m| m.starts_with("REGISTER "))
        else {
            break;
        };
        assert!(header(&req, "Contact").is_some_and(|c| c.contains("4930123@127.0.0.1")), "{req}");
        let send = |m: String| {
            let _ = registrar.sock.send_to(m.as_bytes(), from);
        };
        if header(&req, "Authorization").is_none() {
            challenged = true;
            send(respond(&req, 401, "Unauthorized", "r1", "WWW-Authenticate: Digest realm=\"itsp.example\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"\r\n", ""));
        } else {
            let auth = header(&req, "Authorization").unwrap_or("");
            assert!(
                auth.contains("username=\"4930123\"")
                    && auth.contains("uri=\"sip:127.0.0.1:")
                    && auth.contains("nc=0000000"),
                "{auth}"
            );
            if registered {
                refreshes += 1;
            }
            registered = true;
            let contact = header(&req, "Contact").unwrap_or("").to_string();
            send(respond(&req, 200, "OK", "r1", &format!("Contact: {contact};expires=3\r\n"), ""));
        }
    }
    assert!(challenged && registered, "{}", sbc.log());
    assert!(refreshes >= 1, "a 3 s registration is refreshed (at 80 %) before it lapses");
    assert_eq!(sbc.metric("sipborder_registration_up{trunk=\"itsp\"}"), 1.0, "{}", sbc.metrics());
}

#[test]
fn a_trunk_that_stops_answering_options_is_skipped_until_it_answers_again() {
    let setup = Setup {
        t1: "50ms",
        itsp_extra: "    keepalive:\n      interval: 1s\n      retries: 2\n      up_interval: 1s\n"
            .into(),
        ..Setup::default()
    };
    let (sbc, p) = start(&setup);
    // Nothing listens on the first ITSP: its pings time out (64*T1 = 3.2 s each).
    let deadline = Instant::now() + Duration::from_secs(20);
    while sbc.metric("sipborder_trunk_up{trunk=\"itsp\"}") != 0.0 || sbc.metrics().is_empty() {
        assert!(Instant::now() < deadline, "trunk never marked down:\n{}", sbc.metrics());
        std::thread::sleep(Duration::from_millis(250));
    }
    // Calls go straight to the backup (no 32 s wait on the dead trunk).
    let _backup = Sipp::uas(p.itsp2, &["-sn", "uas"], &[]);
    let t0 = Instant::now();
    let r = Sipp::uac(p.lan, &["-sn", "uac"], 3, 10, &[], Duration::from_secs(20));
    assert_eq!((r.successful, r.failed), (3, 0), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(8), "no time lost on the down trunk");
    // The first ITSP comes back (SIPp -aa answers OPTIONS) and is marked up again.
    let _first = Sipp::uas(p.itsp, &["-sn", "uas"], &["-aa"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sbc.metric("sipborder_trunk_up{trunk=\"itsp\"}") != 1.0 {
        assert!(Instant::now() < deadline, "trunk never came back:\n{}", sbc.metrics());
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn q850_reason_from_the_trunk_decides_the_code_toward_the_pbx() {
    let (_sbc, p) = start(&Setup::default());
    let itsp = RawUdp::bind_port(p.itsp);
    let phone = RawUdp::bind();
    let invite = format!(
        "INVITE sip:0301234567@127.0.0.1:{lan} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKq1\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:0301234567@127.0.0.1>\r\nCall-ID: q850-1\r\nCSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.1:{me}>\r\nContent-Length: 0\r\n\r\n",
        lan = p.lan,
        me = phone.port()
    );
    phone.send_to(&invite, p.lan);
    let (b, from) = itsp
        .recv_until(Duration::from_secs(3), |m| m.starts_with("INVITE "))
        .expect("INVITE on the trunk");
    // The carrier says 500 but its Q.850 cause is 17 (user busy): the PBX must see 486.
    let resp = respond(
        &b,
        500,
        "Server Internal Error",
        "t1",
        "Reason: Q.850;cause=17;text=\"User busy\"\r\n",
        "",
    );
    let _ = itsp.sock.send_to(resp.as_bytes(), from);
    let (a, _) = phone
        .recv_until(Duration::from_secs(3), |m| {
            m.starts_with("SIP/2.0 4") || m.starts_with("SIP/2.0 5")
        })
        .expect("final on A");
    assert!(a.starts_with("SIP/2.0 486"), "{a}");
}

#[test]
fn a_call_from_the_trunk_refused_by_the_pbx_carries_its_q850_cause() {
    let (_sbc, p) = start(&Setup::default());
    let _pbx = Sipp::uas(p.pbx, &["-sf", &scen("uas_busy.xml")], &[]);
    let carrier = RawUdp::bind();
    let invite = format!(
        "INVITE sip:100@127.0.0.1:{trunk} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKq2\r\nMax-Forwards: 70\r\nFrom: <sip:+4930999@carrier>;tag=c1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: q850-2\r\nCSeq: 1 INVITE\r\nContact: <sip:+4930999@127.0.0.1:{me}>\r\nContent-Length: 0\r\n\r\n",
        trunk = p.trunk,
        me = carrier.port()
    );
    carrier.send_to(&invite, p.trunk);
    let (r, _) = carrier
        .recv_until(Duration::from_secs(3), |m| m.starts_with("SIP/2.0 486"))
        .expect("486 toward the carrier");
    let reason = header(&r, "Reason").unwrap_or("");
    assert!(reason.starts_with("Q.850;cause=17"), "{r}");
}
