//! SIGTERM drains: new calls get 503 with Retry-After, calls in progress go on until the grace
//! time, then every leg gets a BYE with a Reason, and the process exits 0.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_refuses_new_calls_then_hangs_up_the_rest_with_a_reason_and_exits_cleanly() {
    let ports = Ports::new();
    let setup = Setup { extra: "".into(), ..Setup::default() };
    let yaml =
        config(&ports, &setup).replace("  shards: 2\n", "  shards: 2\n  shutdown_grace: 3s\n");
    let mut sbc = Sbc::start(ports, &yaml);
    // Load: 6 calls that only end when sipborder hangs them up.
    let _uas = Sipp::uas(ports.itsp, &["-sn", "uas"], &[]);
    let load = std::thread::spawn(move || {
        Sipp::uac(
            ports.lan,
            &["-sf", scenario("uac_wait_bye.xml").to_str().unwrap_or_default()],
            6,
            20,
            &[],
            Duration::from_secs(40),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while sbc.metric("sipborder_calls_active") < 6.0 {
        assert!(Instant::now() < deadline, "calls never established:\n{}", sbc.metrics());
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ =
        std::process::Command::new("kill").arg("-TERM").arg(sbc.child.id().to_string()).status();
    std::thread::sleep(Duration::from_millis(300));
    // A new call is refused with a hint to come back later.
    let phone = RawUdp::bind();
    let inv = format!(
        "INVITE sip:0301@127.0.0.1:{lan} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKd1\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=d1\r\nTo: <sip:0301@127.0.0.1>\r\nCall-ID: drain-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        lan = ports.lan,
        me = phone.port()
    );
    phone.send_to(&inv, ports.lan);
    let (r, _) = phone
        .recv_until(Duration::from_secs(3), |m| m.starts_with("SIP/2.0 5"))
        .expect("a refusal");
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
    assert!(header(&r, "Retry-After").is_some(), "{r}");
    // Calls in progress survive the start of the drain...
    assert!(sbc.metric("sipborder_calls_active") >= 6.0 || sbc.metrics().is_empty());
    // ...and are hung up after the 3 s grace; the UAC sees a BYE for each and answers it.
    let r = load.join().expect("load thread");
    assert_eq!((r.successful, r.failed), (6, 0), "{r:?}\n{}", sbc.log());
    let status = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = sbc.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "sipborder did not exit:\n{}", sbc.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(status.success(), "exit status {status:?}\n{}", sbc.log());
    let log = sbc.log();
    assert!(
        log.contains("hanging up remaining calls") && log.contains("drained, exiting"),
        "{log}"
    );
}
