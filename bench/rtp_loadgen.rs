//! RTP load generator for the media relay benchmark (bench/rtp_bench.sh drives it).
//!
//! Sets up N calls through a relay under test, then sends 50 packets/s per direction per call of
//! 172-byte RTP (12-byte header + 160 bytes of G.711) for a bounded time, and reports:
//!
//! - CPU µs per relayed packet: the system under test's process CPU time (every thread, from
//!   `/proc/<pid>/task/*/schedstat`) over the measured window, divided by the packets it relayed
//!   in that window;
//! - loss: packets sent minus packets received back (after a short drain);
//! - added latency p50/p99: the sender stamps each packet (CLOCK_REALTIME) just before sending,
//!   the kernel stamps its arrival at the far socket (SO_TIMESTAMPNS). The same is measured for
//!   a few probe streams sent straight from one generator socket to the other in the same run
//!   (the baseline: loopback plus the generator's own batching); the relay's added latency is
//!   the relayed percentile minus the baseline percentile.
//!
//! Targets:
//!
//! - `--target sipborder`: calls set up over SIP (UDP). A LAN-side UA sends INVITEs to
//!   sipborder's LAN zone with SDP naming generator socket GA; a built-in ITSP-side UA, bound on
//!   the port sipborder's trunk points to, answers 200 with SDP naming generator socket GB. The
//!   relay ports are read from the rewritten SDPs (the 200 at the LAN UA, the INVITE at the
//!   ITSP UA).
//! - `--target rtpengine`: calls created over rtpengine's ng control protocol (bencoded UDP):
//!   `offer` with GA's SDP, `answer` with GB's; the relay ports come from the SDPs it returns.
//!
//! Every call's remote on each side is the same generator socket (GA or GB): the relays under
//! test keep one socket per call and side anyway, and the generator stays two sockets wide, so
//! `sendmmsg` batches cross calls and its own cost stays low (it is reported). It runs on one
//! thread, optionally pinned; the generator itself is `bench/rtp_gen.rs`, shared with
//! `examples/relay_load.rs`.
//!
//! ```text
//! rtp_loadgen --target sipborder --pid PID --lan 127.0.0.1:5060 --itsp-port 5090 --calls 500
//! rtp_loadgen --target rtpengine --pid PID --ng 127.0.0.1:2223 --calls 500
//!     [--secs 20] [--warmup 3] [--pin-gen CPU] [--label TEXT] [--setup-rate 1000]
//! ```
//!
//! Output: one `key=value` line on stdout per run (the script collects them), details on stderr.
//! Everything is bounded: setup has a deadline, the load runs `--warmup` + `--secs`, the drain
//! at most 2 s, teardown at most 10 s.

#[path = "rtp_gen.rs"]
mod rtp_gen;

use rtp_gen::{
    cpu_jiffies, drive, generator_socket, pin, rusage, setsockopt_int, Plan, Streams, FRAME_MS,
    HIST_US,
};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// Probe streams for the baseline (one per millisecond slot).
const PROBES: usize = FRAME_MS as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sipborder,
    Rtpengine,
}

#[derive(Debug)]
struct Args {
    target: Target,
    pid: u32,
    calls: usize,
    secs: u64,
    warmup: u64,
    lan: SocketAddr,
    itsp_port: u16,
    ng: SocketAddr,
    pin_gen: Option<usize>,
    label: String,
    setup_rate: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: rtp_loadgen --target sipborder|rtpengine --pid PID --calls N \
         [--lan IP:PORT --itsp-port PORT | --ng IP:PORT] [--secs S] [--warmup S] \
         [--pin-gen CPU] [--label TEXT] [--setup-rate CPS]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        target: Target::Sipborder,
        pid: 0,
        calls: 500,
        secs: 20,
        warmup: 3,
        lan: "127.0.0.1:5060".parse().unwrap_or_else(|_| usage()),
        itsp_port: 5090,
        ng: "127.0.0.1:2223".parse().unwrap_or_else(|_| usage()),
        pin_gen: None,
        label: String::new(),
        setup_rate: 1000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if !argv.len().is_multiple_of(2) {
        usage();
    }
    for kv in argv.chunks(2) {
        let v = &kv[1];
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage());
        match kv[0].as_str() {
            "--target" => {
                a.target = match v.as_str() {
                    "sipborder" => Target::Sipborder,
                    "rtpengine" => Target::Rtpengine,
                    _ => usage(),
                }
            }
            "--pid" => a.pid = num(v) as u32,
            "--calls" => a.calls = num(v) as usize,
            "--secs" => a.secs = num(v),
            "--warmup" => a.warmup = num(v),
            "--lan" => a.lan = v.parse().unwrap_or_else(|_| usage()),
            "--itsp-port" => a.itsp_port = num(v) as u16,
            "--ng" => a.ng = v.parse().unwrap_or_else(|_| usage()),
            "--pin-gen" => a.pin_gen = Some(num(v) as usize),
            "--label" => a.label = v.clone(),
            "--setup-rate" => a.setup_rate = num(v).max(1),
            _ => usage(),
        }
    }
    if a.pid == 0 || a.calls == 0 {
        usage();
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Small OS helpers
// ---------------------------------------------------------------------------------------------

/// CPU time of every thread of `pid`, by thread name, from schedstat (nanosecond resolution,
/// where /proc/<pid>/stat counts 10 ms ticks).
fn process_cpu(pid: u32) -> HashMap<String, Duration> {
    let mut out: HashMap<String, Duration> = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.flatten() {
        let p = t.path();
        let ns = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()));
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if let Some(ns) = ns {
            // Threads of a pool share a name: keyed by name and tid to keep them apart.
            let key = format!("{}#{}", name.trim(), t.file_name().to_string_lossy());
            *out.entry(key).or_default() += Duration::from_nanos(ns);
        }
    }
    out
}

fn total(m: &HashMap<String, Duration>) -> Duration {
    m.values().sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join("/"))
        .unwrap_or_default()
}

/// The first `m=audio` port of an SDP body.
fn sdp_port(sdp: &str) -> Option<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

fn gen_sdp(port: u16, sess: usize) -> String {
    format!(
        "v=0\r\no=loadgen {sess} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Relay ports of one call: where GA sends (the port advertised toward the LAN UA) and where
/// GB sends (the port advertised toward the ITSP UA). Media from GA arrives at GB from `to_b`'s
/// port and the other way round.
#[derive(Debug, Clone, Copy)]
struct CallPorts {
    to_a: SocketAddr,
    to_b: SocketAddr,
}

// ---------------------------------------------------------------------------------------------
// SIP: a LAN-side UA placing calls and an ITSP-side UA answering them
// ---------------------------------------------------------------------------------------------

/// Value of header `name` (or its compact form) in `msg`.
fn hdr<'a>(msg: &'a str, name: &str, compact: &str) -> Option<&'a str> {
    msg.split("\r\n").skip(1).take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)).then(|| v.trim())
    })
}

fn hdrs<'a>(msg: &'a str, name: &str, compact: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)).then(|| v.trim())
        })
        .collect()
}

fn sip_body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The response to `req` (Via, From, To with our tag, Call-ID, CSeq copied).
fn response(req: &str, code: u16, reason: &str, to_tag: &str, contact: &str, sdp: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for v in hdrs(req, "Via", "v") {
        out.push_str("Via: ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    let to = hdr(req, "To", "t").unwrap_or("");
    let tag = if to.contains(";tag=") { String::new() } else { format!(";tag={to_tag}") };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}{tag}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <{contact}>\r\n",
        hdr(req, "From", "f").unwrap_or(""),
        hdr(req, "Call-ID", "i").unwrap_or(""),
        hdr(req, "CSeq", "").unwrap_or(""),
    ));
    if sdp.is_empty() {
        out.push_str("Content-Length: 0\r\n\r\n");
    } else {
        out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
    }
    out
}

#[derive(Debug, Clone, Default)]
struct SipCall {
    sent: Option<Instant>,
    tries: u32,
    /// Final answer at the LAN UA: 2xx (with the relay port toward GA) or a failure code.
    final_code: u16,
    to_a: Option<u16>,
    /// Relay port toward GB, from the INVITE the ITSP UA received.
    to_b: Option<u16>,
    to_tag: String,
    contact: String,
    bye_done: bool,
}

/// The two SIP user agents of the sipborder target.
struct Sip {
    run: u32,
    lan: SocketAddr,
    ua_a: UdpSocket,
    ua_b: UdpSocket,
    calls: Vec<SipCall>,
    buf: Vec<u8>,
}

impl Sip {
    fn new(lan: SocketAddr, itsp_port: u16, calls: usize) -> io::Result<Sip> {
        let ua_a = UdpSocket::bind("127.0.0.1:0")?;
        let ua_b = UdpSocket::bind(("127.0.0.1", itsp_port))?;
        for s in [&ua_a, &ua_b] {
            setsockopt_int(s, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20);
            s.set_read_timeout(Some(Duration::from_millis(2)))?;
        }
        Ok(Sip {
            run: std::process::id(),
            lan,
            ua_a,
            ua_b,
            calls: vec![SipCall::default(); calls],
            buf: vec![0u8; 65536],
        })
    }

    fn a_port(&self) -> u16 {
        self.ua_a.local_addr().map_or(0, |a| a.port())
    }

    fn call_id(&self, i: usize) -> String {
        format!("lg-{}-{i}@127.0.0.1", self.run)
    }

    fn index_of_call_id(&self, cid: &str) -> Option<usize> {
        let prefix = format!("lg-{}-", self.run);
        cid.strip_prefix(&prefix)?.split('@').next()?.parse().ok().filter(|&i| i < self.calls.len())
    }

    /// A request from the LAN UA in call `i`'s dialog (`INVITE` outside it).
    fn request(&self, i: usize, method: &str, cseq: u32, ruri: &str, body: &str) -> String {
        let me = self.a_port();
        let c = &self.calls[i];
        let to_tag = if c.to_tag.is_empty() { String::new() } else { format!(";tag={}", c.to_tag) };
        let branch = match method {
            // A non-2xx ACK shares the INVITE's branch (RFC 3261 §17.1.1.3).
            "ACK" if c.final_code >= 300 => format!("z9hG4bKlg{}x{i}INVITE", self.run),
            _ => format!("z9hG4bKlg{}x{i}{method}", self.run),
        };
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};rport;branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:gen@127.0.0.1:{me}>;tag=a{i}\r\n\
             To: <sip:lg{i}@{lan}>{to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:gen@127.0.0.1:{me}>\r\n{ctype}Content-Length: {len}\r\n\r\n{body}",
            lan = self.lan,
            cid = self.call_id(i),
            len = body.len(),
        )
    }

    fn send_invite(&mut self, i: usize, ga_port: u16) {
        let ruri = format!("sip:lg{i}@{}", self.lan);
        let msg = self.request(i, "INVITE", 1, &ruri, &gen_sdp(ga_port, i));
        let _ = self.ua_a.send_to(msg.as_bytes(), self.lan);
        let c = &mut self.calls[i];
        c.sent = Some(Instant::now());
        c.tries += 1;
    }

    /// Handles whatever arrived on both UAs; `gb_port` goes into the ITSP UA's answers.
    fn pump(&mut self, gb_port: u16, itsp_contact: &str) {
        let mut buf = std::mem::take(&mut self.buf);
        // The ITSP side: answer INVITEs with GB's SDP, confirm BYEs, note ACKs.
        for _ in 0..512 {
            let Ok((n, from)) = self.ua_b.recv_from(&mut buf) else { break };
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let Some(method) = msg.split_whitespace().next() else { continue };
            let idx = msg
                .split_whitespace()
                .nth(1)
                .and_then(|u| u.strip_prefix("sip:lg"))
                .and_then(|u| u.split('@').next())
                .and_then(|u| u.parse::<usize>().ok())
                .filter(|&i| i < self.calls.len());
            let reply = match (method, idx) {
                ("INVITE", Some(i)) => {
                    self.calls[i].to_b = sdp_port(sip_body(&msg));
                    let sdp = gen_sdp(gb_port, 100_000 + i);
                    Some(response(&msg, 200, "OK", &format!("b{i}"), itsp_contact, &sdp))
                }
                ("ACK", _) => None,
                (m, _) if m.starts_with("SIP/") => None,
                _ => Some(response(&msg, 200, "OK", "b0", itsp_contact, "")),
            };
            if let Some(r) = reply {
                let _ = self.ua_b.send_to(r.as_bytes(), from);
            }
        }
        // The LAN side: 200 → ACK (every copy: sipborder retransmits until it has one).
        for _ in 0..512 {
            let Ok((n, _)) = self.ua_a.recv_from(&mut buf) else { break };
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if !msg.starts_with("SIP/2.0 ") {
                // A request from sipborder (e.g. a BYE on media timeout): confirm it.
                if !msg.starts_with("ACK ") {
                    let r = response(&msg, 200, "OK", "x", "sip:gen@127.0.0.1", "");
                    let _ = self.ua_a.send_to(r.as_bytes(), self.lan);
                }
                continue;
            }
            let code: u16 = msg.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
            let Some(i) = hdr(&msg, "Call-ID", "i").and_then(|c| self.index_of_call_id(c)) else {
                continue;
            };
            let cseq = hdr(&msg, "CSeq", "").unwrap_or("");
            if cseq.ends_with("BYE") {
                self.calls[i].bye_done = code >= 200;
                continue;
            }
            if code < 200 {
                continue;
            }
            let c = &mut self.calls[i];
            c.final_code = code;
            if let Some(t) = hdr(&msg, "To", "t").and_then(|t| t.split(";tag=").nth(1)) {
                c.to_tag = t.split(';').next().unwrap_or(t).to_string();
            }
            if (200..300).contains(&code) {
                c.to_a = sdp_port(sip_body(&msg));
                if let Some(ct) = hdr(&msg, "Contact", "m") {
                    c.contact = ct.trim_start_matches('<').split('>').next().unwrap_or(ct).into();
                }
                let ruri = c.contact.clone();
                let ack = self.request(i, "ACK", 1, &ruri, "");
                let _ = self.ua_a.send_to(ack.as_bytes(), self.lan);
            } else {
                let ruri = format!("sip:lg{i}@{}", self.lan);
                let ack = self.request(i, "ACK", 1, &ruri, "");
                let _ = self.ua_a.send_to(ack.as_bytes(), self.lan);
            }
        }
        self.buf = buf;
    }

    /// Places every call (paced at `rate` per second, INVITE retransmitted after 2 s, at most
    /// 4 tries) and waits for their answers, bounded.
    fn setup(&mut self, ga_port: u16, gb_port: u16, rate: u64, itsp_port: u16) -> Vec<CallPorts> {
        let contact = format!("sip:itsp@127.0.0.1:{itsp_port}");
        let n = self.calls.len();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30 + n as u64 / rate);
        let mut next = 0;
        while Instant::now() < deadline {
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(n);
            while next < due {
                self.send_invite(next, ga_port);
                next += 1;
            }
            for i in 0..next {
                let c = &self.calls[i];
                if c.final_code == 0
                    && c.tries < 4
                    && c.sent.is_some_and(|t| t.elapsed() > Duration::from_secs(2))
                {
                    self.send_invite(i, ga_port);
                }
            }
            self.pump(gb_port, &contact);
            if next == n && self.calls.iter().all(|c| c.final_code != 0) {
                break;
            }
        }
        // Let the last ACKs cross.
        let settle = Instant::now() + Duration::from_millis(300);
        while Instant::now() < settle {
            self.pump(gb_port, &contact);
        }
        let failed = self.calls.iter().filter(|c| !(200..300).contains(&c.final_code)).count();
        if failed > 0 {
            let mut codes: HashMap<u16, usize> = HashMap::new();
            for c in &self.calls {
                *codes.entry(c.final_code).or_default() += 1;
            }
            eprintln!("  setup: {failed} of {n} calls not answered (final codes {codes:?})");
        }
        self.calls
            .iter()
            .filter(|c| (200..300).contains(&c.final_code))
            .filter_map(|c| {
                let ip = [127, 0, 0, 1];
                Some(CallPorts {
                    to_a: SocketAddr::V4(SocketAddrV4::new(ip.into(), c.to_a?)),
                    to_b: SocketAddr::V4(SocketAddrV4::new(ip.into(), c.to_b?)),
                })
            })
            .collect()
    }

    /// Hangs every answered call up (paced, bounded by 10 s).
    fn teardown(&mut self, gb_port: u16, itsp_port: u16) -> usize {
        let contact = format!("sip:itsp@127.0.0.1:{itsp_port}");
        let live: Vec<usize> = (0..self.calls.len())
            .filter(|&i| (200..300).contains(&self.calls[i].final_code))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        for chunk in live.chunks(100) {
            for &i in chunk {
                let ruri = self.calls[i].contact.clone();
                let bye = self.request(i, "BYE", 2, &ruri, "");
                let _ = self.ua_a.send_to(bye.as_bytes(), self.lan);
            }
            self.pump(gb_port, &contact);
        }
        while Instant::now() < deadline && live.iter().any(|&i| !self.calls[i].bye_done) {
            self.pump(gb_port, &contact);
        }
        live.iter().filter(|&&i| self.calls[i].bye_done).count()
    }
}

// ---------------------------------------------------------------------------------------------
// rtpengine ng protocol
// ---------------------------------------------------------------------------------------------

/// A bencode value. Written by hand rather than taken from a crate: the ng protocol needs a
/// dozen lines of encoding and a small decoder for flat dictionaries of strings, and a maintained
/// bencode crate is not a dependency worth carrying for a benchmark.
#[derive(Debug, Clone, PartialEq)]
enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(Vec<(Vec<u8>, Bencode)>),
}

impl Bencode {
    fn str(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                // Keys sorted as raw bytes (BEP 3).
                let mut d: Vec<&(Vec<u8>, Bencode)> = d.iter().collect();
                d.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value at the start of `b`; returns it and the bytes it took. Nesting is
    /// bounded so a hostile reply cannot exhaust the stack.
    fn decode(b: &[u8], depth: u32) -> Option<(Bencode, usize)> {
        if depth > 32 {
            return None;
        }
        match *b.first()? {
            b'i' => {
                let end = b.iter().position(|&c| c == b'e')?;
                let v = std::str::from_utf8(&b[1..end]).ok()?.parse().ok()?;
                Some((Bencode::Int(v), end + 1))
            }
            b'l' | b'd' => {
                let dict = b[0] == b'd';
                let mut at = 1;
                let (mut list, mut map) = (Vec::new(), Vec::new());
                while *b.get(at)? != b'e' {
                    let (k, n) = Bencode::decode(&b[at..], depth + 1)?;
                    at += n;
                    if dict {
                        let Bencode::Bytes(k) = k else { return None };
                        let (v, n) = Bencode::decode(&b[at..], depth + 1)?;
                        at += n;
                        map.push((k, v));
                    } else {
                        list.push(k);
                    }
                }
                let v = if dict { Bencode::Dict(map) } else { Bencode::List(list) };
                Some((v, at + 1))
            }
            b'0'..=b'9' => {
                let colon = b.iter().position(|&c| c == b':')?;
                let len: usize = std::str::from_utf8(&b[..colon]).ok()?.parse().ok()?;
                let data = b.get(colon + 1..colon + 1 + len)?;
                Some((Bencode::Bytes(data.to_vec()), colon + 1 + len))
            }
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Bencode::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// An ng client: `cookie bencoded-dict` per datagram, the reply echoes the cookie.
struct Ng {
    sock: UdpSocket,
    server: SocketAddr,
    seq: u64,
}

impl Ng {
    fn new(server: SocketAddr) -> io::Result<Ng> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(Ng { sock, server, seq: 0 })
    }

    /// One command, retried 3 times on timeout.
    fn call(&mut self, fields: &[(&str, &str)]) -> Result<Bencode, String> {
        self.seq += 1;
        let cookie = format!("lg{}_{}", std::process::id(), self.seq);
        let dict = Bencode::Dict(
            fields.iter().map(|(k, v)| (k.as_bytes().to_vec(), Bencode::str(v))).collect(),
        );
        let mut msg = format!("{cookie} ").into_bytes();
        dict.encode(&mut msg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..3 {
            self.sock.send_to(&msg, self.server).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                let Ok(n) = self.sock.recv(&mut buf) else { continue };
                let reply = &buf[..n];
                let Some(rest) = reply.strip_prefix(cookie.as_bytes()) else { continue };
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                let (v, _) = Bencode::decode(rest, 0).ok_or("undecodable ng reply")?;
                return match v.get("result").and_then(Bencode::text).as_deref() {
                    Some("ok") => Ok(v),
                    r => Err(format!(
                        "ng {:?}: {r:?} {:?}",
                        fields.first(),
                        v.get("error-reason").and_then(Bencode::text)
                    )),
                };
            }
        }
        Err("ng: no reply".into())
    }

    /// offer (GA's SDP) then answer (GB's SDP) for `n` calls.
    fn setup(&mut self, n: usize, ga_port: u16, gb_port: u16) -> Vec<CallPorts> {
        let run = std::process::id();
        let mut out = Vec::with_capacity(n);
        let ip = [127, 0, 0, 1];
        let mut failed = 0;
        for i in 0..n {
            let cid = format!("lg-{run}-{i}");
            let offer = gen_sdp(ga_port, i);
            let answer = gen_sdp(gb_port, 100_000 + i);
            let r = self
                .call(&[
                    ("command", "offer"),
                    ("call-id", &cid),
                    ("from-tag", "a"),
                    ("sdp", &offer),
                ])
                .and_then(|o| {
                    let to_b = o.get("sdp").and_then(Bencode::text).and_then(|s| sdp_port(&s));
                    let a = self.call(&[
                        ("command", "answer"),
                        ("call-id", &cid),
                        ("from-tag", "a"),
                        ("to-tag", "b"),
                        ("sdp", &answer),
                    ])?;
                    let to_a = a.get("sdp").and_then(Bencode::text).and_then(|s| sdp_port(&s));
                    match (to_a, to_b) {
                        (Some(a), Some(b)) => Ok(CallPorts {
                            to_a: SocketAddr::V4(SocketAddrV4::new(ip.into(), a)),
                            to_b: SocketAddr::V4(SocketAddrV4::new(ip.into(), b)),
                        }),
                        _ => Err("no port in returned SDP".to_string()),
                    }
                });
            match r {
                Ok(p) => out.push(p),
                Err(e) => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!("  ng setup of call {i}: {e}");
                    }
                }
            }
        }
        if failed > 0 {
            eprintln!("  setup: {failed} of {n} calls failed");
        }
        out
    }

    fn teardown(&mut self, n: usize) -> usize {
        let run = std::process::id();
        let deadline = Instant::now() + Duration::from_secs(10);
        (0..n)
            .take_while(|_| Instant::now() < deadline)
            .filter(|i| {
                let cid = format!("lg-{run}-{i}");
                self.call(&[("command", "delete"), ("call-id", &cid), ("from-tag", "a")]).is_ok()
            })
            .count()
    }
}

fn main() {
    let a = parse_args();
    let load_before = loadavg();
    let ga = generator_socket().expect("generator socket A");
    let gb = generator_socket().expect("generator socket B");
    let (ga_addr, gb_addr) = (ga.local_addr().expect("GA"), gb.local_addr().expect("GB"));

    let t_setup = Instant::now();
    let mut sip = None;
    let mut ng = None;
    let calls = match a.target {
        Target::Sipborder => {
            let mut s = Sip::new(a.lan, a.itsp_port, a.calls).expect("SIP sockets");
            let c = s.setup(ga_addr.port(), gb_addr.port(), a.setup_rate, a.itsp_port);
            sip = Some(s);
            c
        }
        Target::Rtpengine => {
            let mut n = Ng::new(a.ng).expect("ng socket");
            let c = n.setup(a.calls, ga_addr.port(), gb_addr.port());
            ng = Some(n);
            c
        }
    };
    let setup_secs = t_setup.elapsed().as_secs_f64();
    eprintln!("  {} calls set up in {setup_secs:.1}s", calls.len());
    if calls.is_empty() {
        println!("label={} target={:?} calls=0 error=setup_failed", a.label, a.target);
        std::process::exit(1);
    }

    // Streams: every call both ways through the relay, then the direct probes.
    let n = calls.len();
    let mut streams = Streams::with_capacity(n + PROBES);
    for c in &calls {
        streams.relayed(c.to_a, c.to_b);
    }
    for _ in 0..PROBES {
        streams.probe(ga_addr, gb_addr);
    }
    // Let the relay attach every socket before traffic starts.
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(a.warmup);
    let stop_at = measure_from + Duration::from_secs(a.secs);
    let pin_gen = a.pin_gen;
    let gen = std::thread::Builder::new()
        .name("loadgen".into())
        .spawn(move || {
            if let Some(cpu) = pin_gen {
                pin(cpu);
            }
            // Latency only inside the measured window; no read-lag clock read per packet, as
            // the generator's own cost per packet is reported; bounded reads per wake-up keep
            // the sends on time.
            let plan = Plan {
                measure_from,
                stop_at,
                sample_drain: false,
                read_lag: false,
                rx_batches: 64,
            };
            drive([ga, gb], streams, plan)
        })
        .expect("spawn generator");

    std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
    let (cpu0, j0, me0) = (process_cpu(a.pid), cpu_jiffies(), rusage(libc::RUSAGE_SELF));
    std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
    let (cpu1, j1, me1) = (process_cpu(a.pid), cpu_jiffies(), rusage(libc::RUSAGE_SELF));
    let load_during = loadavg();
    let o = gen.join().expect("generator thread");

    let torn_down = match (sip.as_mut(), ng.as_mut()) {
        (Some(s), _) => s.teardown(gb_addr.port(), a.itsp_port),
        (_, Some(g)) => g.teardown(a.calls),
        _ => 0,
    };

    let sut_cpu = total(&cpu1).saturating_sub(total(&cpu0));
    let relayed = o.window_received.max(1);
    let cpu_us = sut_cpu.as_secs_f64() * 1e6 / relayed as f64;
    let pps = o.window_received as f64 / o.window.as_secs_f64();
    let lost = o.sent.saturating_sub(o.received);
    let loss_pct = 100.0 * lost as f64 / o.sent.max(1) as f64;
    let q = |h: &rtp_gen::Histogram, p: f64| h.percentile(p).unwrap_or(HIST_US);
    let (p50, p99) = (q(&o.latency, 0.5), q(&o.latency, 0.99));
    let (b50, b99) = (q(&o.base, 0.5), q(&o.base, 0.99));
    let gen_us = o.window_cpu.as_secs_f64() * 1e6 / o.window_sent.max(1) as f64;
    let gen_core = 100.0 * o.window_cpu.as_secs_f64() / o.window.as_secs_f64();
    let busy = 100.0 * (j1.busy - j0.busy) as f64 / (j1.total - j0.total).max(1) as f64;
    // What the rest of the machine (other people's builds) took from the two of us: busy CPU
    // time minus the system under test's and the generator's, as a share of all CPUs.
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let window_s = o.window.as_secs_f64().max(1e-3);
    let busy_s = (j1.busy - j0.busy) as f64 / hz;
    let gen_s = me1.saturating_sub(me0).as_secs_f64();
    let others = (100.0 * (busy_s - sut_cpu.as_secs_f64() - gen_s) / (window_s * ncpu)).max(0.0);

    // Where the system under test spent its CPU, by thread, during the window.
    let mut by_thread: Vec<(String, Duration)> = cpu1
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(cpu0.get(k).copied().unwrap_or_default())))
        .filter(|(_, d)| !d.is_zero())
        .collect();
    by_thread.sort_by_key(|t| std::cmp::Reverse(t.1));
    let threads: Vec<String> = by_thread
        .iter()
        .take(8)
        .map(|(k, d)| format!("{k}:{:.0}ms", d.as_secs_f64() * 1e3))
        .collect();
    eprintln!("  SUT threads during window: {}", threads.join(" "));
    eprintln!(
        "  window {:.1}s: relayed {} pkts ({pps:.0}/s), SUT cpu {:.3}s, machine busy {busy:.0}%, \
         generator {gen_us:.2}us/pkt sent ({gen_core:.0}% of a core), bad source {}, \
         latency beyond {}us: {}, torn down {torn_down}",
        o.window.as_secs_f64(),
        o.window_received,
        sut_cpu.as_secs_f64(),
        o.bad_source,
        HIST_US,
        o.latency.over + o.base.over,
    );
    println!(
        "label={} target={:?} calls={n} pps={pps:.0} cpu_us_per_pkt={cpu_us:.2} sent={} lost={lost} \
         loss_pct={loss_pct:.4} p50_us={p50} p99_us={p99} base_p50_us={b50} base_p99_us={b99} \
         added_p50_us={} added_p99_us={} gen_us_per_pkt={gen_us:.2} gen_core_pct={gen_core:.0} \
         machine_busy_pct={busy:.0} others_pct={others:.0} bad_source={} probes_lost={} \
         load_before={load_before} \
         load_after={load_during}",
        a.label,
        a.target,
        o.sent,
        p50.saturating_sub(b50),
        p99.saturating_sub(b99),
        o.bad_source,
        o.probe_sent.saturating_sub(o.probe_received),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencode_round_trip() {
        let v = Bencode::Dict(vec![
            (b"sdp".to_vec(), Bencode::str("v=0\r\n")),
            (b"command".to_vec(), Bencode::str("offer")),
            (b"n".to_vec(), Bencode::Int(-3)),
            (b"l".to_vec(), Bencode::List(vec![Bencode::str("a"), Bencode::Int(1)])),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d7:command5:offer1:ll1:ai1ee1:ni-3e3:sdp5:v=0\r\ne".to_vec());
        let (back, used) = Bencode::decode(&out, 0).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(back.get("command").and_then(Bencode::text).as_deref(), Some("offer"));
        assert_eq!(back.get("n"), Some(&Bencode::Int(-3)));
        assert!(Bencode::decode(b"d3:abc", 0).is_none(), "truncated input is refused");
        assert!(Bencode::decode(&[b'l'; 100], 0).is_none(), "nesting is bounded");
    }
}
