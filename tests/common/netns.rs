//! Network namespaces for end-to-end tests that need real hosts and a real NAT: a
//! [`Topology`] guard creates uniquely named namespaces (prefixed with the test process id),
//! veth pairs, bridges, addresses, routes, nftables rules and sysctls, runs processes inside
//! with `ip netns exec`, and tears all of it down when dropped. Traffic never leaves the
//! namespaces: nothing is routed to the host's own interfaces.
//!
//! Included with `#[path = "common/netns.rs"] mod netns;` next to `mod common;` (it borrows
//! `crate::common::TempDir`), so test files that do not need namespaces never compile it.
//!
//! Needs root and kernel support for network namespaces, veth and nftables; without them the
//! first [`Topology::new`] panics with a message saying so — a test that cannot run must fail,
//! never pass unnoticed.

#![allow(dead_code)]

use crate::common::TempDir;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every namespace this harness creates starts with this, then the creating process id.
const PREFIX: &str = "sbt";

/// A process started inside a namespace, killed when the topology drops.
struct Proc {
    label: String,
    child: Child,
    log: PathBuf,
}

/// A set of namespaces and what runs in them; everything is undone on drop.
pub struct Topology {
    prefix: String,
    hosts: Vec<String>,
    procs: Vec<Proc>,
    /// Scratch directory: configs, logs, SIPp traces (one sub-directory per process label).
    pub dir: TempDir,
    /// One topology at a time per test binary, whatever `--test-threads` says: the tests
    /// time NAT expiry and media on a small machine. Released after the teardown in `drop`.
    _serial: MutexGuard<'static, ()>,
}

/// Runs `prog args`, panicking with its stderr when it fails. `what` says what was being set
/// up, so an environment without namespace support fails with a readable reason.
fn checked(prog: &str, args: &[&str], stdin: Option<&str>, what: &str) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "{what}: cannot run `{prog}` ({e}); the site-edge tests need iproute2 and nftables \
             (tests/run installs them) and root"
        )
    });
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        let _ = input.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{what}: {prog}: {e}"));
    assert!(
        out.status.success(),
        "{what}: `{prog} {}` failed ({}): {}\n(the site-edge tests need root and network \
         namespace, veth and nftables support in the kernel)",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Fails at once, with the reason, when this environment cannot create namespaces.
fn preflight() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the site-edge tests create network namespaces and need root (euid is {euid}); run them \
         as root, e.g. in the CI container"
    );
}

/// Deletes namespaces left by earlier runs of these tests whose process is gone (a run killed
/// before its guards dropped). Only names carrying this harness' prefix and a dead pid.
fn remove_stale() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('x').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Topology {
    /// Creates one namespace per host (loopback up).
    pub fn new(hosts: &[&str]) -> Topology {
        static N: AtomicU32 = AtomicU32::new(0);
        static SERIAL: Mutex<()> = Mutex::new(());
        // A test that panicked poisoned it after its teardown ran: the lock is still good.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        preflight();
        remove_stale();
        let mut t = Topology {
            prefix: format!("{PREFIX}{}x{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)),
            hosts: Vec::new(),
            procs: Vec::new(),
            dir: TempDir::new("netns"),
            _serial: serial,
        };
        for h in hosts {
            let ns = t.ns(h);
            checked("ip", &["netns", "add", &ns], None, "creating a network namespace");
            t.hosts.push(h.to_string());
            t.ip(h, &["link", "set", "lo", "up"]);
        }
        t
    }

    /// The namespace name of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// `ip -n NS args...`.
    pub fn ip(&self, host: &str, args: &[&str]) {
        let ns = self.ns(host);
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        checked("ip", &all, None, &format!("configuring {host}"));
    }

    /// Runs a command to completion inside `host` (bounded by `timeout(1)`), checked.
    pub fn exec(&self, host: &str, prog: &str, args: &[&str]) -> Output {
        let ns = self.ns(host);
        let mut all = vec!["netns", "exec", ns.as_str(), "timeout", "20", prog];
        all.extend_from_slice(args);
        checked("ip", &all, None, &format!("{prog} in {host}"))
    }

    /// A veth pair from `a`'s `a_if` to `b`'s `b_if`, both up.
    pub fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        let (na, nb) = (self.ns(a), self.ns(b));
        checked(
            "ip",
            &[
                "link", "add", a_if, "netns", &na, "type", "veth", "peer", "name", b_if, "netns",
                &nb,
            ],
            None,
            "creating a veth pair",
        );
        self.ip(a, &["link", "set", a_if, "up"]);
        self.ip(b, &["link", "set", b_if, "up"]);
    }

    /// An address (`ip/prefix`) on an interface.
    pub fn addr(&self, host: &str, ifname: &str, cidr: &str) {
        self.ip(host, &["addr", "add", cidr, "dev", ifname]);
    }

    /// A bridge in `host`, up.
    pub fn bridge(&self, host: &str, name: &str) {
        self.ip(host, &["link", "add", name, "type", "bridge"]);
        self.ip(host, &["link", "set", name, "up"]);
    }

    /// Makes `ifname` a port of `bridge`.
    pub fn enslave(&self, host: &str, ifname: &str, bridge: &str) {
        self.ip(host, &["link", "set", ifname, "master", bridge]);
    }

    /// The default route of `host`.
    pub fn default_route(&self, host: &str, via: &str) {
        self.ip(host, &["route", "add", "default", "via", via]);
    }

    /// Loads an nftables ruleset into `host`.
    pub fn nft(&self, host: &str, ruleset: &str) {
        let ns = self.ns(host);
        checked(
            "ip",
            &["netns", "exec", &ns, "nft", "-f", "-"],
            Some(ruleset),
            &format!("loading nftables rules into {host}"),
        );
    }

    /// The nftables ruleset of `host` as `nft list ruleset` prints it (counters included).
    pub fn nft_list(&self, host: &str) -> String {
        String::from_utf8_lossy(&self.exec(host, "nft", &["list", "ruleset"]).stdout).to_string()
    }

    /// `sysctl -w` inside `host` (per-namespace keys only).
    pub fn sysctl(&self, host: &str, settings: &[&str]) {
        let mut args = vec!["-q", "-w"];
        args.extend_from_slice(settings);
        self.exec(host, "sysctl", &args);
    }

    /// The working directory of the process labelled `label` (created).
    pub fn workdir(&self, label: &str) -> PathBuf {
        let d = self.dir.path(label);
        let _ = std::fs::create_dir_all(&d);
        d
    }

    /// Starts `prog args` inside `host` in the background, its stdout and stderr to
    /// `<label>/out.log`; killed when the topology drops (or by [`Topology::stop`]).
    pub fn spawn(
        &mut self,
        label: &str,
        host: &str,
        prog: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) {
        let wd = self.workdir(label);
        let log = wd.join("out.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host), prog])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&wd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {prog} in {host}: {e}"));
        self.procs.push(Proc { label: label.to_string(), child, log });
    }

    /// Runs `prog args` inside `host` until it exits, at most `limit` (then it is killed);
    /// returns its exit code (-1 when killed). Output goes to `<label>/out.log`.
    pub fn run(&self, label: &str, host: &str, prog: &str, args: &[&str], limit: Duration) -> i32 {
        let wd = self.workdir(label);
        let out = std::fs::File::create(wd.join("out.log")).expect("log file");
        let err = out.try_clone().expect("log file");
        let secs = limit.as_secs().max(1).to_string();
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host), "timeout", "-s", "KILL", &secs, prog])
            .args(args)
            .current_dir(&wd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map(|s| s.code().unwrap_or(-1))
            .unwrap_or_else(|e| panic!("running {prog} in {host}: {e}"))
    }

    /// Kills the process labelled `label` now and waits for it.
    pub fn stop(&mut self, label: &str) {
        if let Some(i) = self.procs.iter().position(|p| p.label == label) {
            let mut p = self.procs.remove(i);
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// True while the process labelled `label` runs.
    pub fn running(&mut self, label: &str) -> bool {
        self.procs
            .iter_mut()
            .find(|p| p.label == label)
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    /// What the process labelled `label` printed so far.
    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.dir.path(label).join("out.log")).unwrap_or_default()
    }

    /// The content of the first file in `<label>/` whose name contains `part` (SIPp names its
    /// traces `<scenario>_<pid>_messages.log`).
    pub fn file_containing(&self, label: &str, part: &str) -> String {
        std::fs::read_dir(self.dir.path(label))
            .ok()
            .and_then(|mut rd| {
                rd.find_map(|e| e.ok().filter(|e| e.file_name().to_string_lossy().contains(part)))
            })
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .unwrap_or_default()
    }

    /// Waits (bounded) until `label`'s output contains `needle`; false on timeout.
    pub fn wait_log(&self, label: &str, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log(label).contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if std::thread::panicking() {
            for p in &self.procs {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(150).collect();
                eprintln!("---- {} (last lines) ----", p.label);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        for h in self.hosts.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{}-{h}", self.prefix)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a thread that has entered the namespace `ns`, returning its result. Sockets
/// made there stay in that namespace for their whole life, whichever thread uses them later
/// — this is how the test talks from inside a namespace without a helper process.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns is given a namespace fd that stays open for the call; it switches
        // only this (short-lived, dedicated) thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|_| panic!("a thread inside namespace {ns} panicked"))
}

/// A UDP socket bound to `addr` inside `ns`.
pub fn udp_in(ns: &str, addr: SocketAddr) -> std::net::UdpSocket {
    in_ns(ns, move || {
        std::net::UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
    })
}

/// True when a UDP socket is bound to `port` inside `ns` (read from the namespace's own
/// /proc/net/udp, without binding anything that could race the process being waited for).
pub fn udp_port_bound(ns: &str, port: u16) -> bool {
    let table =
        in_ns(ns, || std::fs::read_to_string("/proc/thread-self/net/udp").unwrap_or_default());
    let needle = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1).is_some_and(|local| local.ends_with(&needle)))
}

/// GET `path` over HTTP/1.0 from inside `ns`; empty when nothing answers.
pub fn http_get_in(ns: &str, addr: SocketAddr, path: &str) -> String {
    let Some(mut s) =
        in_ns(ns, move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
    else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}
