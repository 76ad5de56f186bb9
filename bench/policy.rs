//! Cost of one policy application: a realistic 20-rule plan on the seed MicroSIP INVITE
//! (../shared/vectors/seed002/d2_01). The message is cloned outside the measurement
//! (`iter_batched`), so the figure is the rules alone. Results are recorded in bench/README.md.
//!
//! Two inputs: d2_01 as captured (MicroSIP dialled an IP address, so the number rules evaluate
//! and do not match), and d2_01 dialling a national number from extension 201 with a vendor
//! X- header, where the four rewriting rules (E.164, P-Asserted-Identity, X- removal, User-Agent)
//! all do their work.
//!
//! Each is measured twice: `policy/...` in wall-clock time (criterion's default) and
//! `policy_cpu/...` in the benchmark thread's CPU time, which stays meaningful on a shared
//! machine where other processes take the core away in the middle of a sample.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sipborder::policy::compile::compile_str;
use sipborder::policy::{Direction, MessageContext};
use sipborder::sip::parse::{parse, Limits};

/// Twenty rules in the to-trunk plan, the mix an ITSP trunk with a PBX behind it carries: a few
/// rewrite every INVITE, most look for something this message does not have.
const POLICY: &str = r#"
rules:
  - name: block-premium-rate
    when: {method: INVITE, ruri_user: '^(\+49|0049|0)900'}
    do: [{reject: {code: 403}}]
  - name: e164-called-international
    when: {ruri_user: '^00[1-9]\d+$'}
    do:
      - rewrite_user: {header: Request-URI, regex: '^00([1-9]\d+)$', with: '+$1'}
      - rewrite_user: {header: To, regex: '^00([1-9]\d+)$', with: '+$1'}
  - name: e164-called-national
    when: {ruri_user: '^0[1-9]\d+$'}
    do:
      - rewrite_user: {header: Request-URI, regex: '^0([1-9]\d+)$', with: '+49$1'}
      - rewrite_user: {header: To, regex: '^0([1-9]\d+)$', with: '+49$1'}
  - name: e164-calling-extension
    when: {from_user: '^[1-9]\d{0,3}$'}
    do: [{rewrite_user: {header: From, add_prefix: '+4930123456'}}]
  - name: e164-calling-national
    when: {from_user: '^0[1-9]\d+$'}
    do: [{rewrite_user: {header: From, regex: '^0([1-9]\d+)$', with: '+49$1'}}]
  - name: pai-from-from
    when: {method: INVITE, absent: P-Asserted-Identity, from_user: '^\+[1-9]\d+$'}
    do: [{set: {header: P-Asserted-Identity, value: '<sip:${from.user}@${from.host};user=phone>'}}]
  - name: clir-anonymous
    when: {method: INVITE, absent: Privacy, from_user: '(?i)^anonymous$'}
    do: [{set: {header: Privacy, value: id}}]
  - name: privacy-anonymous-from
    when: {method: INVITE, headers: {Privacy: '(?i)\b(id|user|header)\b'}}
    do:
      - display_name: {header: From, value: Anonymous}
      - rewrite_user: {header: From, value: anonymous}
  - name: strip-vendor-headers
    do: [{remove: {regex: '^X-'}}]
  - name: neutral-user-agent
    when: {present: User-Agent}
    do: [{replace: {header: User-Agent, regex: '^.*$', with: sipborder}}]
  - name: rpid-to-pai
    when: {absent: P-Asserted-Identity, present: Remote-Party-ID}
    do: [{rename: {from: Remote-Party-ID, to: P-Asserted-Identity}}]
  - name: local-ring-tone
    when: {headers: {Alert-Info: '<file:'}}
    do: [{remove: {header: Alert-Info}}]
  - name: cisco-info-packages
    when: {headers: {Send-Info: 'x-cisco-'}}
    do: [{replace: {header: Send-Info, regex: '\s*,?\s*x-cisco-[\w.-]+', with: ''}}]
  - name: not-found-is-unavailable
    when: {response: 404}
    do: [{translate_response: {to: 480}}]
  - name: asterisk-unreachable
    when: {response: 503, headers: {X-Asterisk-HangupCauseCode: '^(1|3|20)$'}}
    do: [{translate_response: {to: 480}}]
  - name: no-subscriptions
    when: {method: [SUBSCRIBE, PUBLISH]}
    do: [{reject: {code: 405}}]
  - name: carrier-side-only
    when: {source_zone: trunk}
    do: [{codecs: [PCMA, PCMU]}]
  - name: cisco-gateway
    when: {headers: {User-Agent: '^Cisco-SIPGateway'}}
    do: [{set: {header: X-Gateway, value: cube}}]
  - name: itsp-domain
    when: {to_host: '^sip\.itsp\.example$'}
    do: [{rewrite_host: {header: Request-URI, value: sip.itsp.example}}]
  - name: session-timer
    when: {method: INVITE, absent: Session-Expires, headers: {Supported: '\btimer\b'}}
    do: [{set: {header: Session-Expires, value: '1800'}}]
"#;

// The allocator of the sipborder binary (src/main.rs), so allocation costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const D2_01: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/seed002/d2_01_invite_microsip.sip");

fn message(bytes: &[u8]) -> rsip::SipMessage {
    match parse(bytes, &Limits::default()) {
        Ok(m) => m.raw,
        Err(e) => panic!("d2_01 does not parse: {e}"),
    }
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID).
struct ThreadTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

impl Measurement for ThreadTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e3, "µs")
        } else if typical < 1e9 {
            (1e6, "ms")
        } else {
            (1e9, "s")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "ns"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench<M: Measurement + 'static>(c: &mut Criterion<M>, group: &str) {
    let policy = compile_str(POLICY, "bench.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.plan(Direction::ToTrunk).count(), 20);
    let raw = std::fs::read(D2_01).unwrap_or_else(|e| panic!("{D2_01}: {e}"));
    let dialled = String::from_utf8_lossy(&raw)
        .replace("INVITE sip:192.168.80.12 SIP/2.0", "INVITE sip:0301234567@192.168.80.12 SIP/2.0")
        .replace("To: <sip:192.168.80.12>", "To: <sip:0301234567@192.168.80.12>")
        .replace("From: <sip:192.168.71.146>", "From: <sip:201@192.168.71.146>")
        .replace("User-Agent:", "X-Serialnumber: 00-11-22-33-44-55\r\nUser-Agent:");
    let ctx = MessageContext { source_zone: "lan" };

    for (name, msg, expect) in [
        ("20_rules/d2_01", message(&raw), 2),
        ("20_rules/d2_01_dialled", message(dialled.as_bytes()), 5),
    ] {
        let mut check = msg.clone();
        let fired = policy.apply(Direction::ToTrunk, &ctx, &mut check).expect("not rejected");
        assert_eq!(fired.fired.len(), expect, "{name}: {:?}", fired.fired);
        c.bench_function(&format!("{group}/{name}"), |b| {
            b.iter_batched(
                || msg.clone(),
                |mut m| {
                    let fired = policy
                        .apply(Direction::ToTrunk, black_box(&ctx), &mut m)
                        .map(|a| a.fired.len());
                    (m, fired)
                },
                BatchSize::SmallInput,
            )
        });
    }
}

fn wall(c: &mut Criterion<WallTime>) {
    bench(c, "policy");
}

fn cpu(c: &mut Criterion<ThreadTime>) {
    bench(c, "policy_cpu");
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = thread_cpu;
    config = Criterion::default().with_measurement(ThreadTime);
    targets = cpu
}
criterion_main!(wall_clock, thread_cpu);
