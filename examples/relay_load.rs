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

use sipborder::media::relay::{
    self, DatapathKind, EndpointSpec, PairId, PairSpec, PeerSpec, Relay, RelayConfig,
};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const PKT: usize = 172;
const FRAME_MS: u64 = 20;
const CHUNK: usize = 16;
const RX_BATCH: usize = 256;
const HIST_US: usize = 100_000;

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

/// Pins the calling thread to one CPU. Without it the scheduler's wake-affine logic tends to
/// stack the generator and the relay worker on one core (each wakes the other), turning
/// microseconds of relay latency into scheduler time slices.
fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain C data; the CPU_* helpers stay within it; sched_setaffinity
    // reads it for the duration of the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// (busy, steal, total) jiffies over all CPUs, from /proc/stat.
fn cpu_jiffies() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        return (0, 0, 1);
    }
    let total: u64 = f.iter().take(8).sum();
    let idle = f[3] + f[4];
    (total - idle - f[7], f[7], total)
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain C data; all-zero is valid, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live out-parameter.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn big_buffers(s: &UdpSocket) {
    let fd = s.as_raw_fd();
    let size: libc::c_int = 64 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: passes a live c_int of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
    }
    let on: libc::c_int = 1;
    // SAFETY: passes a live c_int of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    s.set_nonblocking(true).unwrap();
}

fn sockaddr_in(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = a else { panic!("IPv4 only") };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
        sin_zero: [0; 8],
    }
}

/// Per-direction generator state. Direction 0: GA → relay A → relay B → GB; 1: the reverse.
struct Stream {
    buf: [u8; PKT],
    dest: libc::sockaddr_in,
    seq: u16,
    ts: u32,
}

struct Outcome {
    sent: u64,
    received: u64,
    bad_source: u64,
    hist: Vec<u32>,
    over: u64,
    samples: u64,
    load_cpu: Duration,
    elapsed: Duration,
    read_lag_ns: u64,
}

/// The generator/sink thread. `measure_from`: latency samples are kept only after this.
fn drive(
    ga: UdpSocket,
    gb: UdpSocket,
    mut streams: Vec<Stream>,
    expect_port: Vec<u16>,
    measure_from: Instant,
    stop_at: Instant,
) -> Outcome {
    let n_pairs = streams.len() / 2;
    let mut out = Outcome {
        sent: 0,
        received: 0,
        bad_source: 0,
        hist: vec![0; HIST_US],
        over: 0,
        samples: 0,
        load_cpu: Duration::ZERO,
        elapsed: Duration::ZERO,
        read_lag_ns: 0,
    };
    // Pair i sends at offset (i % 20) ms within each 20 ms frame: load spread evenly.
    let mut by_slot: Vec<Vec<usize>> = vec![Vec::new(); FRAME_MS as usize];
    for i in 0..n_pairs {
        by_slot[i % FRAME_MS as usize].push(i);
    }
    // SAFETY (both zeroed calls): plain C structs for which all-zero bytes are valid.
    let mut tx_hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; CHUNK];
    let mut tx_iov = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; CHUNK];
    let mut rx_bufs = vec![[0u8; 2048]; RX_BATCH];
    let mut rx_names: Vec<libc::sockaddr_in> = vec![unsafe { std::mem::zeroed() }; RX_BATCH];
    let mut rx_ctrl = vec![[0u64; 8]; RX_BATCH];
    let mut rx_iov: Vec<libc::iovec> = rx_bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
        .collect();
    // SAFETY: plain C struct for which all-zero bytes are valid.
    let mut rx_hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; RX_BATCH];

    let start = Instant::now();
    let mut tick: u64 = 0;
    let fds = [ga.as_raw_fd(), gb.as_raw_fd()];
    let drain_until = stop_at + Duration::from_secs(2);
    loop {
        let now = Instant::now();
        // After the last send, wait for stragglers (a late packet is not a lost one).
        if now >= drain_until || (now >= stop_at && out.received >= out.sent) {
            break;
        }
        // Send every tick that is due (catch up if the thread was late).
        while now < stop_at && start + Duration::from_millis(tick) <= now {
            let slot = (tick % FRAME_MS) as usize;
            for dir in 0..2 {
                let list = &by_slot[slot];
                for chunk in list.chunks(CHUNK) {
                    let stamp = realtime_ns();
                    for (k, &pair) in chunk.iter().enumerate() {
                        let s = &mut streams[pair * 2 + dir];
                        s.seq = s.seq.wrapping_add(1);
                        s.ts = s.ts.wrapping_add(160);
                        s.buf[2..4].copy_from_slice(&s.seq.to_be_bytes());
                        s.buf[4..8].copy_from_slice(&s.ts.to_be_bytes());
                        s.buf[20..28].copy_from_slice(&stamp.to_ne_bytes());
                        tx_iov[k] =
                            libc::iovec { iov_base: s.buf.as_mut_ptr().cast(), iov_len: PKT };
                        let h = &mut tx_hdrs[k].msg_hdr;
                        h.msg_name = (&mut s.dest as *mut libc::sockaddr_in).cast();
                        h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                        h.msg_iov = &mut tx_iov[k];
                        h.msg_iovlen = 1;
                    }
                    let mut done = 0;
                    while done < chunk.len() {
                        // SAFETY: headers point at live stream buffers and addresses.
                        let r = unsafe {
                            libc::sendmmsg(
                                fds[dir],
                                tx_hdrs[done..].as_mut_ptr(),
                                (chunk.len() - done) as u32,
                                0,
                            )
                        };
                        if r <= 0 {
                            break;
                        }
                        done += r as usize;
                    }
                    out.sent += done as u64;
                }
            }
            tick += 1;
        }

        // Wait for replies or the next tick.
        let next = start + Duration::from_millis(tick);
        let wait = next.saturating_duration_since(Instant::now()).min(Duration::from_millis(5));
        let mut pfd = [
            libc::pollfd { fd: fds[0], events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: fds[1], events: libc::POLLIN, revents: 0 },
        ];
        let ts = libc::timespec { tv_sec: 0, tv_nsec: wait.as_nanos() as i64 };
        // SAFETY: `pfd` and `ts` are live for the call.
        unsafe { libc::ppoll(pfd.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        let record = Instant::now() >= measure_from;
        for (dir_in, &fd) in fds.iter().enumerate() {
            loop {
                for i in 0..RX_BATCH {
                    let h = &mut rx_hdrs[i].msg_hdr;
                    h.msg_name = (&mut rx_names[i] as *mut libc::sockaddr_in).cast();
                    h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                    h.msg_iov = &mut rx_iov[i];
                    h.msg_iovlen = 1;
                    h.msg_control = rx_ctrl[i].as_mut_ptr().cast();
                    h.msg_controllen = 64;
                }
                // SAFETY: headers point at live buffers owned by this function.
                let r = unsafe {
                    libc::recvmmsg(
                        fd,
                        rx_hdrs.as_mut_ptr(),
                        RX_BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if r <= 0 {
                    break;
                }
                for i in 0..r as usize {
                    let len = rx_hdrs[i].msg_len as usize;
                    let b = &rx_bufs[i];
                    if len != PKT {
                        continue;
                    }
                    let pair = u32::from_ne_bytes(b[12..16].try_into().unwrap()) as usize;
                    // Arriving at GA means direction 1 (B → A) and came out of relay port A.
                    let dir = 1 - dir_in;
                    let from_port = u16::from_be(rx_names[i].sin_port);
                    if pair >= n_pairs || expect_port[pair * 2 + dir] != from_port {
                        out.bad_source += 1;
                        continue;
                    }
                    out.received += 1;
                    if !record {
                        continue;
                    }
                    let sent_ns = u64::from_ne_bytes(b[20..28].try_into().unwrap());
                    if let Some(rx_ns) = rx_timestamp(&rx_hdrs[i].msg_hdr) {
                        let read_ns = realtime_ns();
                        out.read_lag_ns += read_ns.saturating_sub(rx_ns);
                        let us = rx_ns.saturating_sub(sent_ns) / 1000;
                        out.samples += 1;
                        match out.hist.get_mut(us as usize) {
                            Some(c) => *c += 1,
                            None => out.over += 1,
                        }
                    }
                }
                if (r as usize) < RX_BATCH {
                    break;
                }
            }
        }
    }
    out.load_cpu = rusage(libc::RUSAGE_THREAD);
    out.elapsed = start.elapsed();
    out
}

fn rx_timestamp(h: &libc::msghdr) -> Option<u64> {
    // SAFETY: `h` was filled by recvmmsg with a control buffer we own; the CMSG macros walk it
    // within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

fn percentile(hist: &[u32], samples: u64, p: f64) -> Option<usize> {
    let target = ((samples as f64) * p).ceil() as u64;
    let mut acc = 0u64;
    for (us, &c) in hist.iter().enumerate() {
        acc += u64::from(c);
        if acc >= target.max(1) {
            return Some(us);
        }
    }
    None
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
    let ga = UdpSocket::bind(loopback).unwrap();
    let gb = UdpSocket::bind(loopback).unwrap();
    big_buffers(&ga);
    big_buffers(&gb);
    let (ga_addr, gb_addr) = (ga.local_addr().unwrap(), gb.local_addr().unwrap());

    let mut streams = Vec::with_capacity(pairs * 2);
    let mut expect_port = Vec::with_capacity(pairs * 2);
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
        for (dir, dest, out_port) in [(0u8, la, lb.port()), (1u8, lb, la.port())] {
            let mut buf = [0u8; PKT];
            buf[0] = 0x80;
            buf[8..12].copy_from_slice(&((i as u32) << 1 | u32::from(dir)).to_be_bytes());
            buf[12..16].copy_from_slice(&(i as u32).to_ne_bytes());
            buf[16] = dir;
            streams.push(Stream { buf, dest: sockaddr_in(dest), seq: 0, ts: 0 });
            expect_port.push(out_port);
        }
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
            drive(ga, gb, streams, expect_port, measure_from, stop_at)
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
    let jt = (j1.2 - j0.2).max(1) as f64;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ours = ((proc1 - proc0).as_secs_f64() / (m1 - m0).as_secs_f64()) / ncpu;
    eprintln!(
        "  machine during window: busy {:.0}% (this process {:.0}%), steal {:.0}%",
        100.0 * (j1.0 - j0.0) as f64 / jt,
        100.0 * ours,
        100.0 * (j1.1 - j0.1) as f64 / jt
    );
    eprintln!(
        "  generator: cpu {:.2}us/pkt-sent, avg kernel-stamp->read lag {}us",
        o.load_cpu.as_secs_f64() * 1e6 / o.sent.max(1) as f64,
        o.read_lag_ns / o.samples.max(1) / 1000
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
    let gen_share = o.load_cpu.as_secs_f64() * (m1 - m0).as_secs_f64() / total_secs;
    let proc_us = ((proc1 - proc0).as_secs_f64() - gen_share) * 1e6 / pkts as f64;
    let pps = pkts as f64 / (m1 - m0).as_secs_f64();
    let lost = o.sent.saturating_sub(o.received);
    let p = |q| percentile(&o.hist, o.samples, q).map_or("-".into(), |v| format!("{v}"));
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
        o.over,
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
