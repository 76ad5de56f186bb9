//! Hot reload on SIGHUP under load: the new config and policies are validated whole and
//! swapped; a broken file is refused and the running config stays; no call fails.

mod common;

use common::*;
use std::time::Duration;

const POLICY_V1: &str = "rules:\n  - name: mark\n    when: { direction: to-trunk, method: INVITE }\n    do:\n      - set: { header: X-Policy-Version, value: \"1\" }\n";
const POLICY_V2: &str = "rules:\n  - name: mark\n    when: { direction: to-trunk, method: INVITE }\n    do:\n      - set: { header: X-Policy-Version, value: \"2\" }\n";
const POLICY_BROKEN: &str = "rules:\n  - name: bad\n    do:\n      - explode: { header: Via }\n";

#[test]
fn sighup_under_load_swaps_policies_and_refuses_a_broken_one_without_failing_calls() {
    let ports = Ports::new();
    let dir = TempDir::new("reload");
    let policy = dir.path("mark.yaml");
    std::fs::write(&policy, POLICY_V1).expect("write policy");
    let setup =
        Setup { itsp_extra: format!("    policies: [{}]\n", policy.display()), ..Setup::default() };
    let sbc = Sbc::start(ports, &config(&ports, &setup));
    let itsp = RawUdp::bind_port(ports.itsp);
    let probe = |expect: &str| {
        // One raw call attempt: the INVITE at the trunk shows which policy is live.
        let phone = RawUdp::bind();
        let inv = format!(
            "INVITE sip:0301@127.0.0.1:{lan} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKp{me}\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=p{me}\r\nTo: <sip:0301@127.0.0.1>\r\nCall-ID: probe-{me}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            lan = ports.lan,
            me = phone.port()
        );
        phone.send_to(&inv, ports.lan);
        let (b, from) = itsp
            .recv_until(Duration::from_secs(3), |m| m.starts_with("INVITE "))
            .expect("INVITE at the trunk");
        assert_eq!(header(&b, "X-Policy-Version"), Some(expect), "{b}");
        let _ = itsp.sock.send_to(respond(&b, 486, "Busy Here", "x", "", "").as_bytes(), from);
    };
    probe("1");
    drop(itsp);
    let uas = Sipp::uas(ports.itsp, &["-sn", "uas"], &[]);
    let load = std::thread::spawn(move || {
        Sipp::uac(ports.lan, &["-sn", "uac"], 300, 60, &[], Duration::from_secs(60))
    });
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&policy, POLICY_V2).expect("write v2");
    sbc.reload();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&policy, POLICY_BROKEN).expect("write broken");
    sbc.reload();
    std::thread::sleep(Duration::from_millis(500));
    let r = load.join().expect("load thread");
    assert_eq!((r.successful, r.failed), (300, 0), "{r:?}\n{}", sbc.log());
    drop(uas);
    let log = sbc.log();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("reload rejected") && log.contains("mark.yaml"),
        "the broken file is named: {log}"
    );
    // The v2 policy stayed live after the broken reload was refused.
    let itsp2 = RawUdp::bind_port(ports.itsp);
    let phone = RawUdp::bind();
    let inv = format!(
        "INVITE sip:0302@127.0.0.1:{lan} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKq{me}\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=q{me}\r\nTo: <sip:0302@127.0.0.1>\r\nCall-ID: probe2-{me}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        lan = ports.lan,
        me = phone.port()
    );
    phone.send_to(&inv, ports.lan);
    let (b, _) = itsp2
        .recv_until(Duration::from_secs(3), |m| m.starts_with("INVITE "))
        .expect("INVITE at the trunk");
    assert_eq!(header(&b, "X-Policy-Version"), Some("2"), "{b}");
}
