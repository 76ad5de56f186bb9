//! The edge guard as a state machine: arbitrary sequences of checks, strikes, call admissions,
//! resource slots, bans, lifts, housekeeping and reloads, with time moving forward.
//!
//! Inputs starting with a byte below 0x20 instead feed the rest, as text, to the network parser
//! and the scanner matcher.
//!
//! Properties beyond "never panics": tables stay within their bounds, caps are never exceeded,
//! a parsed network prints and parses back to itself, the scanner agrees with a naive
//! substring search, and once every ticket and slot is dropped all counts are back to zero,
//! across reloads that renumber trunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipborder::b2bua::router::TrunkId;
use sipborder::security::admission::ActiveScope;
use sipborder::security::scanner::{ScannerDetector, DEFAULT_SCANNER_AGENTS};
use sipborder::security::{EdgeGuard, Network, Reason, Resource, SecurityConfig, Slot, Ticket};
use sipborder::transport::flow::ZoneId;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
zones:
  trunk:
    acl: [198.51.100.0/25, "2001:db8:5::/48"]
    rate:
      requests: {rate: 5, burst: 4}
      invite: {rate: 1, burst: 2}
      register: {rate: 1, burst: 1}
    trusted_rate: {invite: {rate: 2, burst: 3}}
    calls: {max_concurrent: 6, cps: {rate: 3, burst: 4}}
    calls_per_source: {max_concurrent: 2, cps: {rate: 1, burst: 2}}
  lan: {trusted: true, calls: {max_concurrent: 5}}
trunks:
  itsp: {max_concurrent: 3, cps: {rate: 2, burst: 3}}
  pbx: {max_concurrent: 4}
scanner: {user_agents: [evil-dialer]}
ban: {window: 10s, ttl: 30s, auth_failures: 2, unknown_users: 3, malformed: 4, max_entries: 8}
limits:
  max_tcp_connections: 6
  max_tcp_connections_per_source: 2
  max_dialogs: 5
  max_dialogs_per_source: 1
  max_transactions: 7
  max_transactions_per_source: 3
sources: {max_tracked: 8, ipv6_prefix: 64}
"#;

const ZONES: [&str; 2] = ["lan", "trunk"];
const TRUNKS: [&str; 2] = ["itsp", "pbx"];
const TRUNKS_SWAPPED: [&str; 2] = ["pbx", "itsp"];

fn config() -> &'static SecurityConfig {
    static C: OnceLock<SecurityConfig> = OnceLock::new();
    C.get_or_init(|| serde_yaml::from_str(CONFIG).expect("fuzz config parses"))
}

fn detector() -> &'static ScannerDetector {
    static D: OnceLock<ScannerDetector> = OnceLock::new();
    D.get_or_init(|| ScannerDetector::new::<&str>(true, &[]).expect("defaults build"))
}

fn source(b: u8) -> IpAddr {
    match b >> 6 {
        0 | 1 => IpAddr::V4([198, 51, 100, b & 0x7f].into()),
        2 => IpAddr::V4([192, 0, 2, b & 0x3f].into()),
        _ => IpAddr::V6([0x2001, 0xdb8, 5, u16::from(b & 3), 0, 0, 0, u16::from(b)].into()),
    }
}

fn text(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Ok(n) = s.parse::<Network>() {
        let back: Network = n.to_string().parse().expect("a printed network parses");
        assert_eq!(back, n);
        assert!(n.contains(n.addr()));
    }
    let lower = s.to_ascii_lowercase();
    let prefix = &lower.as_bytes()[..lower.len().min(256)];
    let naive =
        DEFAULT_SCANNER_AGENTS.iter().any(|p| prefix.windows(p.len()).any(|w| w == p.as_bytes()));
    assert_eq!(detector().is_scanner(&s), naive, "{s:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    if first < 0x20 {
        return text(rest);
    }
    let mut guard = EdgeGuard::new(config(), &ZONES, &TRUNKS).expect("guard builds");
    let mut swapped = false;
    let t0 = Instant::now();
    let mut now = t0;
    let mut tickets: Vec<Ticket> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for op in rest.chunks_exact(4) {
        let (kind, src, flags, dt) = (op[0], source(op[1]), op[2], op[3]);
        now += Duration::from_millis(u64::from(dt) * 20);
        let zone = ZoneId(u16::from(flags & 1));
        let trusted = flags & 2 != 0;
        match kind % 10 {
            0 => {
                let method = match flags >> 2 & 3 {
                    0 => None,
                    1 => Some(rsip::Method::Invite),
                    2 => Some(rsip::Method::Register),
                    _ => Some(rsip::Method::Options),
                };
                let ua = match flags >> 4 & 3 {
                    0 => None,
                    1 => Some("friendly-scanner"),
                    2 => Some("Evil-Dialer 1.0"),
                    _ => Some("MicroSIP/3.21"),
                };
                let v = guard.check(now, zone, src, trusted, method, ua);
                let _ = (v.label(), v.reason());
                let s = guard.screen(now, zone, src, trusted);
                assert!(!(s.is_pass() && v.reason().is_some_and(|r| r.label() == "banned")));
            }
            1 => {
                let reason = [Reason::AuthFailed, Reason::UnknownUser, Reason::Malformed]
                    [usize::from(flags >> 2) % 3];
                let _ = guard.strike(now, zone, src, trusted, reason);
            }
            2 => {
                let trunk = match flags >> 2 & 3 {
                    0 | 1 => None,
                    t => Some(TrunkId(u16::from(t - 2))),
                };
                if let Ok(t) = guard.admit_call(now, zone, trunk, src, trusted) {
                    tickets.push(t);
                }
            }
            3 => {
                if !tickets.is_empty() {
                    let t = tickets.swap_remove(usize::from(flags) % tickets.len());
                    guard.admission().release(t);
                }
            }
            4 => {
                let r = [Resource::TcpConnection, Resource::Dialog, Resource::Transaction]
                    [usize::from(flags >> 2) % 3];
                if let Ok(s) = guard.acquire(r, now, zone, src, trusted) {
                    slots.push(s);
                }
            }
            5 => {
                if !slots.is_empty() {
                    drop(slots.swap_remove(usize::from(flags) % slots.len()));
                }
            }
            6 => {
                guard.housekeeping(now);
            }
            7 => {
                if flags & 4 != 0 {
                    let _ = guard.bans().lift(src);
                } else {
                    guard.bans().ban(
                        src,
                        now,
                        Reason::Manual,
                        Duration::from_millis(u64::from(flags) * 100),
                    );
                }
                let _ = guard.bans().list(now);
            }
            8 => {
                swapped = !swapped;
                let trunks = if swapped { &TRUNKS_SWAPPED } else { &TRUNKS };
                guard = guard.reload(config(), &ZONES, trunks).expect("reload");
            }
            _ => {
                let _ = guard.check_body(usize::from(flags) * 300);
            }
        }
        let stats = guard.stats();
        // Two rate tables per zone (untrusted, trusted), 8 sources each, plus shard slack.
        assert!(stats.sources_tracked <= 4 * 8 + 4, "{stats:?}");
        assert!(stats.bans <= 8 && stats.struck <= 8, "{stats:?}");
        assert!(
            stats.tcp_connections <= 6 && stats.dialogs <= 5 && stats.transactions <= 7,
            "{stats:?}"
        );
        let (itsp, pbx) = if swapped { (TrunkId(1), TrunkId(0)) } else { (TrunkId(0), TrunkId(1)) };
        assert!(guard.admission().active(ActiveScope::Trunk(itsp)) <= 3);
        assert!(guard.admission().active(ActiveScope::Trunk(pbx)) <= 4);
        assert!(guard.admission().active(ActiveScope::Zone(ZoneId(1))) <= 6);
        assert!(guard.admission().active(ActiveScope::Zone(ZoneId(0))) <= 5);
    }
    drop(tickets);
    drop(slots);
    let stats = guard.stats();
    assert_eq!((stats.tcp_connections, stats.dialogs, stats.transactions), (0, 0, 0));
    for t in 0..2 {
        assert_eq!(guard.admission().active(ActiveScope::Trunk(TrunkId(t))), 0);
        assert_eq!(guard.admission().active(ActiveScope::Zone(ZoneId(t))), 0);
    }
    guard.housekeeping(now + Duration::from_secs(3600));
    let stats = guard.stats();
    assert_eq!((stats.sources_tracked, stats.bans, stats.struck), (0, 0, 0), "{stats:?}");
    assert_eq!(guard.admission().sources_tracked(), 0);
});
