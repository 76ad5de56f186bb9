//! The RTP load generator shared by the media relay benchmarks: `bench/rtp_loadgen.rs` (a whole
//! system under test, calls set up over SIP or rtpengine's ng protocol) and
//! `examples/relay_load.rs` (the relay library in process).
//!
//! Two generator sockets, GA and GB, send 50 packets/s per direction per stream of 172-byte RTP
//! (G.711, 20 ms) with `sendmmsg` from one thread, and read them back after the relay with
//! `recvmmsg`. Latency: the generator stamps each packet (CLOCK_REALTIME) just before sending;
//! the kernel stamps its arrival at the far socket (SO_TIMESTAMPNS), so the number covers
//! generator → relay → far socket and not the generator's own read delay.
//!
//! Both drivers include this file with `#[path = "..."] mod rtp_gen;`: examples cannot share a
//! module otherwise, and benchmark code has no place in sipborder's library API. Each driver
//! uses only part of it, hence the few `dead_code` allowances below.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Packet size: 12-byte RTP header + 160 bytes (20 ms of G.711).
pub const PKT: usize = 172;
/// Packets are sent every 20 ms per stream; stream `i` in millisecond slot `i % 20`.
pub const FRAME_MS: u64 = 20;
/// Datagrams per `sendmmsg`: small enough that the first and last packet of one chunk are
/// stamped within a few tens of microseconds of their real departure.
const CHUNK: usize = 16;
/// Datagrams per `recvmmsg`.
const RX_BATCH: usize = 256;
/// Latency histogram: 1 µs buckets up to 100 ms.
pub const HIST_US: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Small OS helpers
// ---------------------------------------------------------------------------------------------

/// Pins the calling thread to one CPU. Without it the scheduler's wake-affine logic tends to
/// stack the generator and the relay worker on one core (each wakes the other), turning
/// microseconds of relay latency into scheduler time slices.
pub fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain C data; the CPU_* helpers stay within it; sched_setaffinity
    // reads it for the duration of the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CLOCK_REALTIME in nanoseconds: the clock the kernel's SO_TIMESTAMPNS stamps use.
fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU time of `who` (`RUSAGE_SELF`, `RUSAGE_THREAD`).
pub fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain C data; all-zero is valid, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live out-parameter.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// Jiffies over all CPUs since boot, from /proc/stat: how loaded the machine was.
#[allow(dead_code)] // rtp_loadgen counts steal as busy and never reads it apart
pub struct Jiffies {
    /// Neither idle nor iowait; steal included.
    pub busy: u64,
    /// Time a hypervisor gave our CPUs to another guest.
    pub steal: u64,
    /// Everything: user, nice, system, idle, iowait, irq, softirq, steal.
    pub total: u64,
}

/// The machine's CPU counters now; all zero (total 1) if /proc/stat cannot be read.
pub fn cpu_jiffies() -> Jiffies {
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
        return Jiffies { busy: 0, steal: 0, total: 1 };
    }
    let total: u64 = f.iter().take(8).sum();
    Jiffies { busy: total.saturating_sub(f[3] + f[4]), steal: f[7], total }
}

/// Sets an integer socket option; a failure leaves the default, which the reports reveal.
pub fn setsockopt_int(s: &UdpSocket, level: libc::c_int, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: passes a live c_int of the right size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
}

/// A generator socket on 127.0.0.1: large queues (FORCE: the sysctl cap is too small for 100k
/// packets/s of bursts; needs CAP_NET_ADMIN, else the capped size applies), kernel receive
/// timestamps, non-blocking.
pub fn generator_socket() -> io::Result<UdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        setsockopt_int(&s, libc::SOL_SOCKET, opt, 64 << 20);
    }
    setsockopt_int(&s, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    s.set_nonblocking(true)?;
    Ok(s)
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

/// The kernel's receive timestamp (SO_TIMESTAMPNS) of a datagram `recvmmsg` filled in.
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

// ---------------------------------------------------------------------------------------------
// Streams and measurements
// ---------------------------------------------------------------------------------------------

/// One direction of one stream. The packet carries the stream index (bytes 12..16, native
/// order) and direction (byte 16) so the receiver can attribute it, and the send stamp (bytes
/// 20..28) for latency.
struct Stream {
    buf: [u8; PKT],
    dest: libc::sockaddr_in,
    seq: u16,
    ts: u32,
}

/// The streams [`drive`] sends, each both ways: relayed streams first, then probes.
/// Direction 0 is sent from GA and read at GB, direction 1 the reverse.
pub struct Streams {
    streams: Vec<Stream>,
    /// `expect[idx*2+dir]`: the source port a packet of stream idx, direction dir, must come
    /// from.
    expect: Vec<u16>,
    first_probe: Option<usize>,
}

impl Streams {
    /// Room for `n` streams (both directions each).
    pub fn with_capacity(n: usize) -> Streams {
        Streams {
            streams: Vec::with_capacity(n * 2),
            expect: Vec::with_capacity(n * 2),
            first_probe: None,
        }
    }

    /// Adds a stream through the relay: `a` is the relay socket facing GA (GA sends to it, GB's
    /// packets come out of it), `b` the one facing GB.
    pub fn relayed(&mut self, a: SocketAddr, b: SocketAddr) {
        assert!(self.first_probe.is_none(), "relayed streams come before probes");
        self.push(a, b);
    }

    /// Adds a probe stream sent straight between the generator sockets: the baseline latency
    /// (loopback plus the generator's own batching) in the same run.
    #[allow(dead_code)] // relay_load has no baseline
    pub fn probe(&mut self, ga: SocketAddr, gb: SocketAddr) {
        self.first_probe.get_or_insert(self.streams.len() / 2);
        // Seen from GA, GB is the far end that also sends back: a relay of one socket.
        self.push(gb, ga);
    }

    fn push(&mut self, a: SocketAddr, b: SocketAddr) {
        let idx = self.streams.len() / 2;
        for (dir, dest, from) in [(0u8, a, b.port()), (1u8, b, a.port())] {
            let mut buf = [0u8; PKT];
            buf[0] = 0x80;
            buf[8..12].copy_from_slice(&((idx as u32) << 1 | u32::from(dir)).to_be_bytes());
            buf[12..16].copy_from_slice(&(idx as u32).to_ne_bytes());
            buf[16] = dir;
            self.streams.push(Stream { buf, dest: sockaddr_in(dest), seq: 0, ts: 0 });
            self.expect.push(from);
        }
    }
}

/// Latency histogram, 1 µs buckets up to [`HIST_US`].
pub struct Histogram {
    counts: Vec<u32>,
    /// Every sample, those beyond the last bucket included.
    pub samples: u64,
    /// Samples beyond the last bucket.
    pub over: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: vec![0; HIST_US], samples: 0, over: 0 }
    }

    fn add(&mut self, us: usize) {
        self.samples += 1;
        match self.counts.get_mut(us) {
            Some(c) => *c += 1,
            None => self.over += 1,
        }
    }

    /// The smallest bucket (µs) at or below which a share `p` of the samples lie; `None` if
    /// that is beyond the last bucket.
    pub fn percentile(&self, p: f64) -> Option<usize> {
        let target = ((self.samples as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (us, &c) in self.counts.iter().enumerate() {
            acc += u64::from(c);
            if acc >= target {
                return Some(us);
            }
        }
        None
    }
}

/// When and how [`drive`] measures: the two drivers differ only here.
pub struct Plan {
    /// Latency samples and the measured window start here (after the warm-up).
    pub measure_from: Instant,
    /// The last packets are sent before this; then at most 2 s of drain for stragglers.
    pub stop_at: Instant,
    /// Keep latency samples of packets read during the drain too, not only those read in
    /// `measure_from..stop_at`.
    pub sample_drain: bool,
    /// Also sum the kernel-stamp → read lag: one clock read per sampled packet, which the
    /// generator's own CPU per packet then includes.
    pub read_lag: bool,
    /// `recvmmsg` batches per socket per wake-up before the next tick is served;
    /// `usize::MAX`: until the socket has less than a batch.
    pub rx_batches: usize,
}

/// What [`drive`] measured. Probes are counted apart from the relayed streams.
pub struct Outcome {
    /// Packets of relayed streams sent, and read back from the expected relay port.
    pub sent: u64,
    pub received: u64,
    /// Packets of probe streams sent, and read back.
    pub probe_sent: u64,
    pub probe_received: u64,
    /// Packets from an unexpected source port (or not ours at all).
    pub bad_source: u64,
    /// Relayed packets read in `measure_from..stop_at`.
    pub window_received: u64,
    /// Latency of relayed packets.
    pub latency: Histogram,
    /// Latency of probes.
    pub base: Histogram,
    /// Sum of kernel-stamp → read lag over every latency sample (with [`Plan::read_lag`]).
    pub read_lag_ns: u64,
    /// `stop_at - measure_from`.
    #[allow(dead_code)] // relay_load times the window by its own clock
    pub window: Duration,
    /// The generator thread's CPU time during the window, and the packets (probes included)
    /// it sent then.
    pub window_cpu: Duration,
    pub window_sent: u64,
    /// The generator thread's CPU time over the whole run, and the run's length (drain
    /// included).
    pub cpu: Duration,
    pub elapsed: Duration,
}

/// The generator/sink loop, one thread: every millisecond the streams of that slot are sent
/// (in `sendmmsg` chunks, both directions), then whatever came back is read with `recvmmsg`.
/// `sockets`: GA and GB, from [`generator_socket`].
pub fn drive(sockets: [UdpSocket; 2], streams: Streams, plan: Plan) -> Outcome {
    let Streams { mut streams, expect, first_probe } = streams;
    let Plan { measure_from, stop_at, .. } = plan;
    let n_streams = streams.len() / 2;
    let probes_from = first_probe.unwrap_or(n_streams);
    let mut o = Outcome {
        sent: 0,
        received: 0,
        probe_sent: 0,
        probe_received: 0,
        bad_source: 0,
        window_received: 0,
        latency: Histogram::new(),
        base: Histogram::new(),
        read_lag_ns: 0,
        window: stop_at.saturating_duration_since(measure_from),
        window_cpu: Duration::ZERO,
        window_sent: 0,
        cpu: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    // Stream i sends at offset (i % 20) ms within each 20 ms frame: load spread evenly.
    let mut by_slot: Vec<Vec<usize>> = vec![Vec::new(); FRAME_MS as usize];
    for i in 0..n_streams {
        by_slot[i % FRAME_MS as usize].push(i);
    }
    // SAFETY (every zeroed below): plain C structs for which all-zero bytes are valid.
    let mut tx_hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; CHUNK];
    let mut tx_iov = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; CHUNK];
    let mut rx_bufs = vec![[0u8; 2048]; RX_BATCH];
    let mut rx_names: Vec<libc::sockaddr_in> = vec![unsafe { std::mem::zeroed() }; RX_BATCH];
    let mut rx_ctrl = vec![[0u64; 8]; RX_BATCH];
    let mut rx_iov: Vec<libc::iovec> = rx_bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
        .collect();
    let mut rx_hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; RX_BATCH];

    let fds = [sockets[0].as_raw_fd(), sockets[1].as_raw_fd()];
    let start = Instant::now();
    let drain_until = stop_at + Duration::from_secs(2);
    let mut tick: u64 = 0;
    let mut cpu_at_window: Option<Duration> = None;
    let mut sent_at_window = 0u64;
    loop {
        let now = Instant::now();
        if cpu_at_window.is_none() && now >= measure_from {
            cpu_at_window = Some(thread_cpu());
            sent_at_window = o.sent + o.probe_sent;
        }
        if o.window_cpu.is_zero() && now >= stop_at {
            o.window_cpu = thread_cpu().saturating_sub(cpu_at_window.unwrap_or_default());
            o.window_sent = o.sent + o.probe_sent - sent_at_window;
        }
        // After the last send, wait for stragglers (late is not lost), bounded.
        if now >= drain_until || (now >= stop_at && o.received >= o.sent) {
            break;
        }
        // Send every tick that is due (catching up in a burst if the thread was late).
        while now < stop_at && start + Duration::from_millis(tick) <= now {
            let slot = (tick % FRAME_MS) as usize;
            for dir in 0..2 {
                for chunk in by_slot[slot].chunks(CHUNK) {
                    let stamp = realtime_ns();
                    for (k, &idx) in chunk.iter().enumerate() {
                        let s = &mut streams[idx * 2 + dir];
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
                    // Bounded: a failing send gives up on the rest of the chunk.
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
                    let probes =
                        chunk.iter().take(done).filter(|&&i| i >= probes_from).count() as u64;
                    o.probe_sent += probes;
                    o.sent += done as u64 - probes;
                }
            }
            tick += 1;
        }

        // Wait for packets or the next tick.
        let next = start + Duration::from_millis(tick);
        let wait = next.saturating_duration_since(Instant::now()).min(Duration::from_millis(5));
        let mut pfd = [
            libc::pollfd { fd: fds[0], events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: fds[1], events: libc::POLLIN, revents: 0 },
        ];
        let ts = libc::timespec { tv_sec: 0, tv_nsec: wait.as_nanos() as i64 };
        // SAFETY: `pfd` and `ts` are live for the call.
        unsafe { libc::ppoll(pfd.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        let now = Instant::now();
        let in_window = now >= measure_from && now < stop_at;
        let record = in_window || (plan.sample_drain && now >= measure_from);
        for (dir_in, &fd) in fds.iter().enumerate() {
            for _ in 0..plan.rx_batches {
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
                    let idx = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]) as usize;
                    // Arriving at GA (0) is direction 1 (B → A), and the other way round.
                    let dir = 1 - dir_in;
                    let from_port = u16::from_be(rx_names[i].sin_port);
                    if idx >= n_streams || expect[idx * 2 + dir] != from_port {
                        o.bad_source += 1;
                        continue;
                    }
                    let probe = idx >= probes_from;
                    if probe {
                        o.probe_received += 1;
                    } else {
                        o.received += 1;
                        if in_window {
                            o.window_received += 1;
                        }
                    }
                    if !record {
                        continue;
                    }
                    let sent_ns = u64::from_ne_bytes([
                        b[20], b[21], b[22], b[23], b[24], b[25], b[26], b[27],
                    ]);
                    let Some(rx_ns) = rx_timestamp(&rx_hdrs[i].msg_hdr) else { continue };
                    if plan.read_lag {
                        o.read_lag_ns += realtime_ns().saturating_sub(rx_ns);
                    }
                    let us = (rx_ns.saturating_sub(sent_ns) / 1000) as usize;
                    if probe { &mut o.base } else { &mut o.latency }.add(us);
                }
                if (r as usize) < RX_BATCH {
                    break;
                }
            }
        }
    }
    o.cpu = thread_cpu();
    o.elapsed = start.elapsed();
    if o.window_cpu.is_zero() {
        o.window_cpu = o.cpu.saturating_sub(cpu_at_window.unwrap_or_default());
    }
    o
}
