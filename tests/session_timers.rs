//! RFC 4028 end to end: sipborder keeps a leg alive whose peer has no timers, and ends the
//! call when that peer stops answering the refreshes.

mod common;

use common::*;
use std::time::Duration;

fn start() -> (Sbc, Ports) {
    let ports = Ports::new();
    // A short interval so the test sees several refreshes in a 10 s call.
    let setup = Setup {
        trunk_zone_extra: "    session_timer: { interval: 4s, min_se: 2s }\n".into(),
        ..Setup::default()
    };
    let sbc = Sbc::start(ports, &config(&ports, &setup));
    (sbc, ports)
}

#[test]
fn a_trunk_without_timers_is_refreshed_by_sipborder_and_the_call_lasts() {
    let (sbc, p) = start();
    // -aa: the UAS answers UPDATE (the refreshes) with 200.
    let _uas = Sipp::uas(
        p.itsp,
        &["-sf", scenario("uas_allow_update.xml").to_str().unwrap_or_default()],
        &["-aa"],
    );
    let r = Sipp::uac(p.lan, &["-sn", "uac"], 2, 2, &["-d", "10000"], Duration::from_secs(40));
    assert_eq!((r.successful, r.failed), (2, 0), "{r:?}\n{}", sbc.log());
    // The calls lasted because sipborder refreshed them: every 2 s (half of 4 s) on each leg
    // toward the timer-less trunk, so at least 4 per 10 s call, and none failed.
    let sent = sbc.metric("sipborder_session_refreshes_total{result=\"sent\"}");
    assert!(sent >= 8.0, "refreshes sent: {sent}\n{}", sbc.metrics());
    assert_eq!(sbc.metric("sipborder_session_refreshes_total{result=\"failed\"}"), 0.0);
}

#[test]
fn a_trunk_that_ignores_refreshes_gets_the_call_ended_on_both_legs() {
    let (sbc, p) = start();
    // Without -aa the UAS never answers UPDATE: the refresh fails and sipborder hangs up.
    let _uas = Sipp::uas(p.itsp, &["-sn", "uas"], &[]);
    let r = Sipp::uac(
        p.lan,
        &["-sf", scenario("uac_wait_bye.xml").to_str().unwrap_or_default()],
        1,
        1,
        &[],
        Duration::from_secs(40),
    );
    assert_eq!(r.successful, 1, "the caller got sipborder's BYE: {r:?}\n{}", sbc.log());
    assert!(
        sbc.log().contains("session refresh") || sbc.log().contains("session timer"),
        "{}",
        sbc.log()
    );
    // Whichever came first (the unanswered refresh timing out, or the session running out)
    // was counted.
    let ended = sbc.metric("sipborder_session_refreshes_total{result=\"failed\"}")
        + sbc.metric("sipborder_session_refreshes_total{result=\"expired\"}");
    assert!(ended >= 1.0, "{}", sbc.metrics());
}
