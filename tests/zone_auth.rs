//! A zone that demands digest authentication: phones must authenticate, wrong credentials get
//! challenged again, unknown users get the same challenge as known ones, old nonces are stale.

mod common;

use common::*;
use sipborder::trunk::digest_client::{
    Account, AuthAttempt, AuthKind, ChallengeOutcome, DigestClient,
};
use std::time::Duration;

fn start(nonce_ttl: &str) -> (Sbc, Ports, TempDir) {
    let dir = TempDir::new("zoneauth");
    let users = dir.path("users");
    std::fs::write(&users, "# user:password\n100:phone-secret\n101:other\n").expect("users file");
    let ports = Ports::new();
    let mut yaml = config(&ports, &Setup::default());
    yaml = yaml.replacen(
        &format!("    tcp: 127.0.0.1:{}\n", ports.lan),
        &format!(
            "    tcp: 127.0.0.1:{}\n    auth:\n      realm: sipborder.lan\n      users_file: {}\n      nonce_ttl: {nonce_ttl}\n",
            ports.lan,
            users.display()
        ),
        1,
    );
    let sbc = Sbc::start(ports, &yaml);
    (sbc, ports, dir)
}

fn invite(ports: &Ports, me: u16, call_id: &str, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:0301@127.0.0.1:{lan} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{me};rport;branch=z9hG4bK{call_id}{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag={call_id}\r\nTo: <sip:0301@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n{auth}Content-Length: 0\r\n\r\n",
        lan = ports.lan
    )
}

#[test]
fn a_phone_with_the_right_password_calls_out() {
    let (sbc, p, _d) = start("5m");
    let _uas = Sipp::uas(p.itsp, &["-sn", "uas"], &[]);
    let r = Sipp::uac(
        p.lan,
        &["-sf", scenario("uac_auth.xml").to_str().unwrap_or_default()],
        3,
        5,
        &["-au", "100", "-ap", "phone-secret", "-i", "127.0.0.2"],
        Duration::from_secs(30),
    );
    assert_eq!((r.successful, r.failed), (3, 0), "{r:?}\n{}", sbc.log());
}

#[test]
fn a_wrong_password_is_challenged_again_and_counted() {
    let (sbc, p, _d) = start("5m");
    let _uas = Sipp::uas(p.itsp, &["-sn", "uas"], &[]);
    let r = Sipp::uac(
        p.lan,
        &["-sf", scenario("uac_auth.xml").to_str().unwrap_or_default()],
        2,
        5,
        &["-au", "100", "-ap", "wrong", "-i", "127.0.0.2"],
        Duration::from_secs(20),
    );
    assert_eq!(r.successful, 0, "{r:?}");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(sbc.metric("sipborder_auth_failures_total{") >= 2.0, "{}", sbc.metrics());
}

#[test]
fn unknown_and_known_users_get_the_same_challenge() {
    let (_sbc, p, _d) = start("5m");
    let ua = RawUdp::bind_ip("127.0.0.2");
    let shape = |user: &str, n: u32| {
        let cid = format!("enum{user}{n}");
        ua.send_to(&invite(&p, ua.port(), &cid, 1, None), p.lan);
        let (c, _) =
            ua.recv_until(Duration::from_secs(3), |m| m.starts_with("SIP/2.0 407")).expect("407");
        let ch = header(&c, "Proxy-Authenticate").unwrap_or("").to_string();
        // Answer with made-up credentials for `user`: the second challenge must look the same.
        let fake = format!("Digest username=\"{user}\", realm=\"sipborder.lan\", nonce=\"x\", uri=\"sip:0301@127.0.0.1:{}\", response=\"00000000000000000000000000000000\"", p.lan);
        ua.send_to(&invite(&p, ua.port(), &cid, 2, Some(&fake)), p.lan);
        let (c2, _) = ua
            .recv_until(Duration::from_secs(3), |m| m.starts_with("SIP/2.0 407"))
            .expect("407 again");
        let strip = |h: &str| {
            h.split(", ").filter(|kv| !kv.starts_with("nonce=")).collect::<Vec<_>>().join(", ")
        };
        (
            strip(&ch),
            strip(header(&c2, "Proxy-Authenticate").unwrap_or("")),
            c2.lines().next().unwrap_or("").to_string(),
        )
    };
    let known = shape("100", 1);
    let unknown = shape("nobody", 2);
    assert_eq!(known, unknown, "a scanner cannot tell users apart");
}

#[test]
fn an_expired_nonce_is_answered_with_stale_true() {
    let (_sbc, p, _d) = start("1s");
    let ua = RawUdp::bind_ip("127.0.0.2");
    ua.send_to(&invite(&p, ua.port(), "stale1", 1, None), p.lan);
    let (c, _) =
        ua.recv_until(Duration::from_secs(3), |m| m.starts_with("SIP/2.0 407")).expect("407");
    let challenge = header(&c, "Proxy-Authenticate").unwrap_or("").to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let mut client = DigestClient::new(|| "0a4f113b".to_string());
    let mut attempt = AuthAttempt::default();
    let account = Account { username: "100".into(), password: "phone-secret".into() };
    let uri = format!("sip:0301@127.0.0.1:{}", p.lan);
    let ChallengeOutcome::Retry { headers, .. } =
        client.on_challenge(&mut attempt, AuthKind::Proxy, &[&challenge], "INVITE", &uri, &account)
    else {
        panic!("client refused the challenge");
    };
    ua.send_to(&invite(&p, ua.port(), "stale1", 2, Some(&headers[0].value)), p.lan);
    let (c2, _) = ua
        .recv_until(Duration::from_secs(3), |m| {
            m.starts_with("SIP/2.0 ")
                && m.contains("CSeq: 2 INVITE")
                && !m.starts_with("SIP/2.0 100")
        })
        .expect("an answer");
    assert!(c2.starts_with("SIP/2.0 407"), "{c2}");
    assert!(header(&c2, "Proxy-Authenticate").is_some_and(|h| h.contains("stale=true")), "{c2}");
}
