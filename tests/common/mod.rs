//! Shared harness for end-to-end tests: the real `sipborder` binary with a generated config,
//! SIPp peers, raw UDP/TCP SIP endpoints, and a /metrics reader. Everything on 127.0.0.1;
//! every process is stopped by PID when its guard drops; every wait is bounded.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A port free for both UDP and TCP on 127.0.0.1 (allocated from a per-process range so tests
/// running in parallel never collide).
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        // 10000-15999: below the kernel's ephemeral ports (32768 up), and clear of the relay
        // ports the test configs give sipborder (the default 20000-29999, and 16000-18999 in
        // tests/media.rs): a relay port of one test's sipborder must never be a SIP port
        // another test probed as free a moment earlier.
        let base = 10000 + (std::process::id() % 60) as u16 * 100;
        let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    }
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        let udp = UdpSocket::bind(("127.0.0.1", p)).is_ok();
        let tcp = TcpListener::bind(("127.0.0.1", p)).is_ok();
        if udp && tcp {
            return p;
        }
    }
}

/// Ports of a two-zone test setup.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// sipborder LAN zone (UDP+TCP).
    pub lan: u16,
    /// sipborder trunk zone (UDP+TCP).
    pub trunk: u16,
    /// The PBX (a test peer on the LAN side).
    pub pbx: u16,
    /// The first ITSP edge.
    pub itsp: u16,
    /// The second ITSP edge.
    pub itsp2: u16,
    /// /metrics.
    pub metrics: u16,
}

impl Ports {
    /// Fresh ports.
    pub fn new() -> Ports {
        Ports {
            lan: free_port(),
            trunk: free_port(),
            pbx: free_port(),
            itsp: free_port(),
            itsp2: free_port(),
            metrics: free_port(),
        }
    }
}

/// Options for [`config`].
#[derive(Debug, Clone)]
pub struct Setup {
    /// Transport toward the ITSP trunks.
    pub itsp_transport: &'static str,
    /// Transport toward the PBX.
    pub pbx_transport: &'static str,
    /// T1.
    pub t1: &'static str,
    /// Ring timeout (Timer C).
    pub ring_timeout: &'static str,
    /// Extra YAML appended at the end.
    pub extra: String,
    /// Extra YAML lines under the `itsp` trunk (indented by 4 spaces).
    pub itsp_extra: String,
    /// Extra YAML lines under the `trunk` zone (indented by 4 spaces).
    pub trunk_zone_extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            itsp_transport: "udp",
            pbx_transport: "udp",
            t1: "100ms",
            ring_timeout: "3m",
            extra: String::new(),
            itsp_extra: String::new(),
            trunk_zone_extra: String::new(),
        }
    }
}

/// A config like the embedded default on the given ports.
pub fn config(p: &Ports, s: &Setup) -> String {
    format!(
        r#"zones:
  - name: lan
    udp: 127.0.0.1:{lan}
    tcp: 127.0.0.1:{lan}
  - name: trunk
    kind: trunk
    udp: 127.0.0.1:{trunk}
    tcp: 127.0.0.1:{trunk}
{tz}
trunks:
  - name: itsp
    zone: trunk
    address: 127.0.0.1:{itsp}
    transport: {it}
{ie}
  - name: itsp-backup
    zone: trunk
    address: 127.0.0.1:{itsp2}
    transport: {it}
  - name: pbx
    zone: lan
    address: 127.0.0.1:{pbx}
    transport: {pt}
routes:
  - name: lan-to-itsp
    from: lan
    targets: [itsp, itsp-backup]
  - name: trunk-to-pbx
    from: trunk
    targets: [pbx]
timers:
  t1: {t1}
  invite_ring_timeout: {rt}
metrics:
  listen: 127.0.0.1:{metrics}
runtime:
  shards: 2
  worker_threads: 2
{extra}"#,
        lan = p.lan,
        trunk = p.trunk,
        itsp = p.itsp,
        itsp2 = p.itsp2,
        pbx = p.pbx,
        metrics = p.metrics,
        it = s.itsp_transport,
        pt = s.pbx_transport,
        t1 = s.t1,
        rt = s.ring_timeout,
        extra = s.extra,
        tz = s.trunk_zone_extra,
        ie = s.itsp_extra,
    )
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new directory under the target dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU16 = AtomicU16::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sipborder-test-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Path of a file inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SB_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The path of the binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sipborder"))
}

/// A running sipborder, killed on drop.
pub struct Sbc {
    pub child: Child,
    pub ports: Ports,
    pub dir: TempDir,
}

impl Sbc {
    /// Starts sipborder with `yaml` and waits until it answers OPTIONS on the LAN port.
    pub fn start(ports: Ports, yaml: &str) -> Sbc {
        Self::start_with_log(
            ports,
            yaml,
            &std::env::var("SB_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
    }

    /// [`Sbc::start`] with a log filter (`RUST_LOG` syntax).
    pub fn start_with_log(ports: Ports, yaml: &str, filter: &str) -> Sbc {
        let dir = TempDir::new("sbc");
        let cfg = dir.path("sipborder.yaml");
        std::fs::write(&cfg, yaml).expect("write config");
        let log = std::fs::File::create(dir.path("sipborder.log")).expect("log file");
        let child = Command::new(binary())
            .args(["run", "-c"])
            .arg(&cfg)
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sipborder");
        let sbc = Sbc { child, ports, dir };
        sbc.wait_ready();
        sbc
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ua = RawUdp::bind();
        while Instant::now() < deadline {
            let msg = options_request(ua.port(), self.ports.lan, &format!("ready-{}", ua.port()));
            ua.send_to(&msg, self.ports.lan);
            if let Some(r) = ua.recv(Duration::from_millis(200)) {
                if r.starts_with("SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!("sipborder did not come up; log:\n{}", self.log());
    }

    /// The process log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("sipborder.log")).unwrap_or_default()
    }

    /// The /metrics exposition.
    pub fn metrics(&self) -> String {
        http_get(self.ports.metrics, "/metrics")
    }

    /// A metric's value (first sample whose name and label text match), 0 when absent.
    pub fn metric(&self, name_and_labels: &str) -> f64 {
        metric_value(&self.metrics(), name_and_labels)
    }

    /// Waits (bounded by `within`) until a metric reaches `at_least`; returns its last value.
    /// A call is counted when sipborder has finished it, which can be a moment after the far
    /// end's SIPp already saw its last message.
    pub fn wait_metric(&self, name_and_labels: &str, at_least: f64, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let v = self.metric(name_and_labels);
            if v >= at_least || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until calls, dialogs and transactions are all back to zero (bounded).
    pub fn wait_idle(&self, within: Duration) -> (f64, f64, f64) {
        let deadline = Instant::now() + within;
        loop {
            let m = self.metrics();
            let v = (
                metric_value(&m, "sipborder_calls_active"),
                metric_value(&m, "sipborder_dialogs"),
                metric_value(&m, "sipborder_transactions"),
            );
            if v == (0.0, 0.0, 0.0) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Sends SIGHUP.
    pub fn reload(&self) {
        unsafe_kill(self.child.id(), "HUP");
    }
}

impl Drop for Sbc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- sipborder log ----\n{}", self.log());
        }
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// GET over plain HTTP/1.0 on 127.0.0.1.
pub fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// Sum of the samples of a metric whose line starts with `name_and_labels` (e.g.
/// `sipborder_calls_total{` sums every label set).
pub fn metric_value(exposition: &str, sel: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(sel))
        .filter(|l| {
            sel.contains('{') || matches!(l.as_bytes().get(sel.len()), Some(b' ') | Some(b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// True when SIPp is installed (the README's test command installs it).
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed; run the test suite through .ci/run (it installs the peers)"
    );
}

/// Directory of the SIPp scenarios.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

/// A SIPp process (UAS in the background, or a UAC run to completion).
pub struct Sipp {
    pub child: Child,
    pub dir: TempDir,
}

impl Sipp {
    /// Starts a SIPp UAS on `port` with a built-in (`-sn`) or file (`-sf`) scenario.
    pub fn uas(port: u16, scenario_arg: &[&str], extra: &[&str]) -> Sipp {
        require("sipp");
        let dir = TempDir::new("sipp-uas");
        let mut cmd = Command::new("sipp");
        cmd.current_dir(&dir.0)
            .args(scenario_arg)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-nostdin",
                "-trace_err",
                "-trace_msg",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn sipp uas");
        std::thread::sleep(Duration::from_millis(300));
        Sipp { child, dir }
    }

    /// Runs a SIPp UAC against `target_port` until `calls` calls are done (bounded by
    /// `timeout`); returns (successful, failed) from its statistics file.
    pub fn uac(
        target_port: u16,
        scenario_arg: &[&str],
        calls: u32,
        rate: u32,
        extra: &[&str],
        timeout: Duration,
    ) -> UacResult {
        require("sipp");
        let dir = TempDir::new("sipp-uac");
        let local = free_port();
        let status = Command::new("timeout")
            .arg(format!("{}", timeout.as_secs().max(1)))
            .arg("sipp")
            .current_dir(&dir.0)
            .arg(format!("127.0.0.1:{target_port}"))
            .args(scenario_arg)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &local.to_string(),
                "-nostdin",
                "-trace_err",
                "-trace_stat",
                "-stf",
                "stat.csv",
            ])
            .args(["-m", &calls.to_string(), "-r", &rate.to_string(), "-fd", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run sipp uac");
        let csv = std::fs::read_to_string(dir.path("stat.csv")).unwrap_or_default();
        let (ok, failed) = last_stat(&csv);
        let errors = std::fs::read_dir(&dir.0)
            .ok()
            .and_then(|mut rd| {
                rd.find_map(|e| {
                    e.ok().filter(|e| e.file_name().to_string_lossy().contains("errors"))
                })
            })
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .unwrap_or_default();
        UacResult { exit: status.code().unwrap_or(-1), successful: ok, failed, errors }
    }

    /// The UAS's error log (scenario mismatches).
    pub fn errors(&self) -> String {
        std::fs::read_dir(&self.dir.0)
            .ok()
            .and_then(|mut rd| {
                rd.find_map(|e| {
                    e.ok().filter(|e| e.file_name().to_string_lossy().contains("errors"))
                })
            })
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .unwrap_or_default()
    }

    /// The UAS's message trace.
    pub fn messages(&self) -> String {
        std::fs::read_dir(&self.dir.0)
            .ok()
            .and_then(|mut rd| {
                rd.find_map(|e| {
                    e.ok().filter(|e| e.file_name().to_string_lossy().contains("messages"))
                })
            })
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .unwrap_or_default()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Outcome of a UAC run.
#[derive(Debug)]
pub struct UacResult {
    /// SIPp's exit code (0: all calls successful).
    pub exit: i32,
    /// Successful calls.
    pub successful: u64,
    /// Failed calls.
    pub failed: u64,
    /// SIPp's error log.
    pub errors: String,
}

/// Successful and failed call counts (cumulative columns) from the last line of a SIPp stat file.
fn last_stat(csv: &str) -> (u64, u64) {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else { return (0, 0) };
    let cols: Vec<&str> = header.split(';').collect();
    let idx = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(s), Some(f)) = (idx("SuccessfulCall(C)"), idx("FailedCall(C)")) else {
        return (0, 0);
    };
    let Some(last) = csv.lines().rfind(|l| !l.is_empty()) else { return (0, 0) };
    let v: Vec<&str> = last.split(';').collect();
    let num = |i: usize| v.get(i).and_then(|x| x.trim().parse::<u64>().ok()).unwrap_or(0);
    (num(s), num(f))
}

/// A raw UDP SIP endpoint for precise header checks.
pub struct RawUdp {
    pub sock: UdpSocket,
}

impl RawUdp {
    /// Binds 127.0.0.1:0.
    pub fn bind() -> RawUdp {
        RawUdp { sock: UdpSocket::bind("127.0.0.1:0").expect("bind udp") }
    }

    /// Binds `ip`:0 (another loopback address, e.g. 127.0.0.2, is a different host to sipborder).
    pub fn bind_ip(ip: &str) -> RawUdp {
        RawUdp { sock: UdpSocket::bind((ip, 0)).expect("bind udp ip") }
    }

    /// Binds 127.0.0.1:`port`.
    pub fn bind_port(port: u16) -> RawUdp {
        RawUdp { sock: UdpSocket::bind(("127.0.0.1", port)).expect("bind udp port") }
    }

    /// Local port.
    pub fn port(&self) -> u16 {
        self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Sends text to 127.0.0.1:`port`.
    pub fn send_to(&self, msg: &str, port: u16) {
        let _ = self.sock.send_to(msg.as_bytes(), ("127.0.0.1", port));
    }

    /// Receives one datagram as text.
    pub fn recv(&self, within: Duration) -> Option<String> {
        self.recv_from(within).map(|(m, _)| m)
    }

    /// Receives one datagram with its source.
    pub fn recv_from(&self, within: Duration) -> Option<(String, SocketAddr)> {
        let _ = self.sock.set_read_timeout(Some(within.max(Duration::from_millis(1))));
        let mut buf = vec![0u8; 65536];
        match self.sock.recv_from(&mut buf) {
            Ok((n, from)) => Some((String::from_utf8_lossy(&buf[..n]).to_string(), from)),
            Err(_) => None,
        }
    }

    /// Receives until a message satisfying `pred` arrives (others are skipped), bounded.
    pub fn recv_until(
        &self,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(String, SocketAddr)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some((m, a)) = self.recv_from(deadline.saturating_duration_since(Instant::now()))
            {
                if pred(&m) {
                    return Some((m, a));
                }
            }
        }
        None
    }
}

/// OPTIONS to sipborder itself (no user part).
pub fn options_request(from_port: u16, to_port: u16, call_id: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{to_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1:{from_port}>;tag=probe1\r\n\
         To: <sip:127.0.0.1:{to_port}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Value of the first header `name` (case-insensitive, compact forms not handled) in `msg`.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").skip(1).take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Every value of header `name`.
pub fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// The body of a message.
pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// The tag parameter of a From/To value.
pub fn tag(v: &str) -> Option<&str> {
    v.split(';').find_map(|p| p.trim().strip_prefix("tag="))
}

/// Builds a response to `req` with `code` (Via/From/To/Call-ID/CSeq copied; `to_tag` added).
pub fn respond(
    req: &str,
    code: u16,
    reason: &str,
    to_tag: &str,
    extra: &str,
    body: &str,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for v in headers(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", header(req, "From").unwrap_or("")));
    let to = header(req, "To").unwrap_or("");
    if tag(to).is_some() {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(&format!("Call-ID: {}\r\n", header(req, "Call-ID").unwrap_or("")));
    out.push_str(&format!("CSeq: {}\r\n", header(req, "CSeq").unwrap_or("")));
    out.push_str(extra);
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

/// Asserts `got` is the SDP `original` anchored toward an address `ip`: sipborder's `o=`, every
/// `c=` and `a=rtcp` address `ip` (hold 0.0.0.0 kept), relay ports in `m=` (0 stays 0), every
/// other line byte-identical, and none of the original's endpoint addresses anywhere.
pub fn assert_anchored(got: &str, original: &str, ip: &str) {
    let eol = if original.contains("\r\n") { "\r\n" } else { "\n" };
    let g: Vec<&str> = got.split(eol).collect();
    let o: Vec<&str> = original.split(eol).collect();
    assert_eq!(g.len(), o.len(), "same lines:\n{got}\n--- vs ---\n{original}");
    let mut endpoint_ips: Vec<&str> = Vec::new();
    for (a, b) in g.iter().zip(&o) {
        if let Some(rest) = a.strip_prefix("o=") {
            assert!(rest.starts_with("sipborder ") && rest.ends_with(ip), "{a}");
            endpoint_ips.extend(b.rsplit(' ').next());
        } else if a.starts_with("c=") {
            assert!(a.ends_with(ip) || a.ends_with("0.0.0.0"), "{a}");
            endpoint_ips.extend(b.rsplit(' ').next());
        } else if a.starts_with("a=rtcp:") {
            assert!(a.ends_with(ip) || !a.contains(" IN "), "{a}");
        } else if a.starts_with("m=") {
            let port = a.split_whitespace().nth(1).unwrap_or("");
            let orig_port = b.split_whitespace().nth(1).unwrap_or("");
            assert_eq!(
                port == "0",
                orig_port == "0",
                "a rejected stream stays rejected, an active one gets a relay port: {a}"
            );
        } else {
            assert_eq!(a, b);
        }
    }
    for addr in
        endpoint_ips.into_iter().filter(|a| *a != ip && *a != "0.0.0.0" && *a != "127.0.0.1")
    {
        assert!(!got.contains(addr), "endpoint address {addr} leaked:\n{got}");
    }
}
