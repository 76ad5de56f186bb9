//! Load test of the RTP relay data plane on 127.0.0.1.
//!
//! Opens N pairs, then one generator thread drives 50 packets/s per direction per pair of
//! 172-byte RTP (G.711, 20 ms) with `sendmmsg`, and reads them back after the relay with
//! `recvmmsg`. Reports relay CPU per relayed packet, loss, and added latency: the generator
//! stamps each packet just before sending; the kernel stamps its arrival at the far socket
//! (SO_TIMESTAMPNS), so the number covers generator → relay → far socket and not the generator's
//! own read delay.
//!
//! ```text
//! cargo run --release --example relay_load -- --pairs 500,1000,2000 --datapath epoll,uring
//!     [--secs 10] [--warmup 2] [--threads 1] [--pin true] [--batch-wait-us 100]
//! ```
//!
//! All traffic stays on loopback; the run is bounded by `--warmup` + `--secs`. Loss is split into
//! "before relay" (never accepted by the relay: its socket queues overflowed) and "after relay"
//! (relayed but not read back: the generator's own socket overflowed, or still in flight).
//!
//! The generator is `bench/rtp_gen.rs`, shared with the whole-system benchmark
//! `bench/rtp_loadgen.rs`.

#[path = "../bench/rtp_gen.rs"]
mod rtp_gen;

use rtp_gen::{cpu_jiffies, drive, generator_socket, pin, rusage, Plan, Streams, HIST_US};
use sipborder::media::relay::{
    self, DatapathKind, EndpointSpec, PairId, PairSpec, PeerSpec, Relay, RelayConfig,
};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

struct Args {
    pairs: Vec<usize>,
    kinds: Vec<DatapathKind>,
    secs: u64,
    warmup: u64,
    threads: usize,
    pin: bool,
    batch_wait_us: Option<u64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        pairs: vec![500, 1000, 2000],
        kinds: vec![DatapathKind::Epoll, DatapathKind::IoUring],
        secs: 10,
        warmup: 2,
        threads: 1,
        pin: true,
        batch_wait_us: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < argv.len() {
        let v = &argv[i + 1];
        match argv[i].as_str() {
            "--pairs" => a.pairs = v.split(',').map(|s| s.parse().expect("pairs")).collect(),
            "--datapath" => {
                a.kinds = v
                    .split(',')
                    .map(|s| match s {
                        "epoll" => DatapathKind::Epoll,
                        "uring" | "io_uring" => DatapathKind::IoUring,
                        "auto" => DatapathKind::Auto,
                        _ => panic!("datapath: epoll, uring or auto"),
                    })
                    .collect()
            }
            "--secs" => a.secs = v.parse().expect("secs"),
            "--warmup" => a.warmup = v.parse().expect("warmup"),
            "--threads" => a.threads = v.parse().expect("threads"),
            "--pin" => a.pin = v.parse().expect("pin: true or false"),
            "--batch-wait-us" => a.batch_wait_us = Some(v.parse().expect("microseconds")),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

fn run(kind: DatapathKind, pairs: usize, a: &Args) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let on_thread_start: Option<relay::ThreadHook> = (a.pin && cpus > 1)
        .then(|| std::sync::Arc::new(move |i: usize| pin(1 + i % (cpus - 1))) as relay::ThreadHook);
    let relay = Relay::start(RelayConfig {
        threads: a.threads,
        datapath: kind,
        on_thread_start,
        batch_wait: a
            .batch_wait_us
            .map_or(RelayConfig::default().batch_wait, Duration::from_micros),
        ..Default::default()
    })
    .expect("relay start");
    let loopback = SocketAddr::V4(SocketAddrV4::new([127, 0, 0, 1].into(), 0));
    let ga = generator_socket().expect("generator socket A");
    let gb = generator_socket().expect("generator socket B");
    let (ga_addr, gb_addr) = (ga.local_addr().unwrap(), gb.local_addr().unwrap());

    let mut streams = Streams::with_capacity(pairs);
    for i in 0..pairs {
        let ra = UdpSocket::bind(loopback).unwrap();
        let rb = UdpSocket::bind(loopback).unwrap();
        let (la, lb) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
        relay
            .open(PairSpec::new(
                PairId(i as u64),
                EndpointSpec::new(ra, PeerSpec::strict(ga_addr)),
                EndpointSpec::new(rb, PeerSpec::strict(gb_addr)),
            ))
            .expect("open pair");
        streams.relayed(la, lb);
    }
    // Let the worker attach every socket before traffic starts.
    std::thread::sleep(Duration::from_millis(200));

    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(a.warmup);
    let stop_at = measure_from + Duration::from_secs(a.secs);
    let pin_gen = a.pin && cpus > 1;
    let gen = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            if pin_gen {
                pin(0);
            }
            // This tool's measurement, kept so its numbers stay comparable with earlier runs:
            // stragglers read in the drain count towards latency, the read lag is reported,
            // and each wake-up empties the sockets.
            let plan = Plan {
                measure_from,
                stop_at,
                sample_drain: true,
                read_lag: true,
                rx_batches: usize::MAX,
            };
            drive([ga, gb], streams, plan)
        })
        .unwrap();

    std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
    let relayed = |r: &Relay| -> u64 {
        (0..pairs)
            .filter_map(|i| r.stats(PairId(i as u64)))
            .map(|s| s.a_to_b.packets + s.b_to_a.packets)
            .sum()
    };
    let worker_cpu = |r: &Relay| -> Duration { r.worker_cpu_time().into_iter().flatten().sum() };
    let j0 = cpu_jiffies();
    let (p0, c0, proc0, m0) =
        (relayed(&relay), worker_cpu(&relay), rusage(libc::RUSAGE_SELF), Instant::now());
    std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
    let (p1, c1, proc1, m1) =
        (relayed(&relay), worker_cpu(&relay), rusage(libc::RUSAGE_SELF), Instant::now());
    let j1 = cpu_jiffies();
    let o = gen.join().unwrap();
    let jt = (j1.total - j0.total).max(1) as f64;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ours = ((proc1 - proc0).as_secs_f64() / (m1 - m0).as_secs_f64()) / ncpu;
    eprintln!(
        "  machine during window: busy {:.0}% (this process {:.0}%), steal {:.0}%",
        100.0 * ((j1.busy - j1.steal) - (j0.busy - j0.steal)) as f64 / jt,
        100.0 * ours,
        100.0 * (j1.steal - j0.steal) as f64 / jt
    );
    eprintln!(
        "  generator: cpu {:.2}us/pkt-sent, avg kernel-stamp->read lag {}us",
        o.cpu.as_secs_f64() * 1e6 / o.sent.max(1) as f64,
        o.read_lag_ns / o.latency.samples.max(1) / 1000
    );
    let mut drops = 0;
    let relay_in = relayed(&relay);
    for i in 0..pairs {
        if let Some(s) = relay.stats(PairId(i as u64)) {
            for d in [&s.a_to_b, &s.b_to_a] {
                drops +=
                    d.dropped_foreign + d.dropped_unroutable + d.dropped_invalid + d.send_errors;
            }
        }
    }

    let pkts = (p1 - p0).max(1);
    let worker_us = (c1 - c0).as_secs_f64() * 1e6 / pkts as f64;
    // Whole-process CPU minus the generator's share over the same window (approximated by its
    // average rate): includes io_uring's kernel workers if any ran.
    let total_secs = o.elapsed.as_secs_f64();
    let gen_share = o.cpu.as_secs_f64() * (m1 - m0).as_secs_f64() / total_secs;
    let proc_us = ((proc1 - proc0).as_secs_f64() - gen_share) * 1e6 / pkts as f64;
    let pps = pkts as f64 / (m1 - m0).as_secs_f64();
    let lost = o.sent.saturating_sub(o.received);
    let p = |q| o.latency.percentile(q).map_or("-".into(), |v| format!("{v}"));
    println!(
        "{:<7} pairs={:<5} pps={:>7.0} worker_cpu={:>5.2}us/pkt proc_cpu~{:>5.2}us/pkt \
         sent={} lost={} ({:.4}%) [before relay {} / after relay {}] relay_drops={} bad_src={} latency_us p50={} p99={} p99.9={} max>{}={}",
        format!("{:?}", relay.datapaths()[0]),
        pairs,
        pps,
        worker_us,
        proc_us,
        o.sent,
        lost,
        100.0 * lost as f64 / o.sent.max(1) as f64,
        o.sent.saturating_sub(relay_in),
        relay_in.saturating_sub(o.received),
        drops,
        o.bad_source,
        p(0.5),
        p(0.99),
        p(0.999),
        HIST_US,
        o.latency.over,
    );
}

fn main() {
    let a = parse_args();
    for &kind in &a.kinds {
        for &pairs in &a.pairs {
            run(kind, pairs, &a);
        }
    }
}
