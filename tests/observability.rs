//! Observability end to end: the /metrics exposition passes `promtool check metrics`, a real
//! Prometheus server scrapes sipborder and answers a PromQL query about the calls, and CDRs are
//! written as JSON lines.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn assert_calls_ok(r: &UacResult, calls: u64, sbc: &Sbc) {
    assert_eq!(
        (r.successful, r.failed),
        (calls, 0),
        "uac result {r:?}\n--- sipborder log tail ---\n{}",
        sbc.log().lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
}

/// Runs `calls` plain SIPp calls LAN → ITSP through `sbc`.
fn run_calls(sbc: &Sbc, calls: u32) {
    let p = sbc.ports;
    let _uas = Sipp::uas(p.itsp, &["-sn", "uas"], &[]);
    let r = Sipp::uac(p.lan, &["-sn", "uac"], calls, 10, &[], Duration::from_secs(60));
    assert_calls_ok(&r, u64::from(calls), sbc);
}

/// Polls `f` every 250 ms until it returns `Some`, for at most `within`.
fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn metrics_exposition_passes_promtool() {
    require("promtool");
    let ports = Ports::new();
    let sbc = Sbc::start(ports, &config(&ports, &Setup::default()));
    run_calls(&sbc, 5);
    // A message that cannot be parsed, so the parse-error counter is in the exposition too.
    RawUdp::bind().send_to("INVITE nonsense\r\n\r\n", ports.lan);
    let counted = wait_for(Duration::from_secs(10), || {
        let m = sbc.metrics();
        (metric_value(&m, "sipborder_calls_total") >= 5.0
            && m.contains("sipborder_sip_parse_errors_total"))
        .then_some(())
    });
    assert!(counted.is_some(), "calls and parse error not counted:\n{}", sbc.metrics());
    // The gauges are sampled every second: scrape once more after a sample has passed.
    std::thread::sleep(Duration::from_millis(1200));
    let text = sbc.metrics();

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().expect("promtool stdin");
        stdin.write_all(text.as_bytes()).expect("feed promtool");
    }
    let out = promtool.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- exposition ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(metric_value(&text, "sipborder_calls_total") >= 5.0, "{text}");
    assert!(
        metric_value(
            &text,
            "sipborder_calls_total{zone=\"lan\",trunk=\"itsp\",result=\"answered\"}"
        ) >= 5.0,
        "{text}"
    );
    for name in ["sipborder_calls_total", "sipborder_call_setup_seconds", "sipborder_calls_active"]
    {
        assert!(text.contains(&format!("# HELP {name} ")), "HELP for {name}:\n{text}");
    }
    assert!(text.contains("sipborder_call_setup_seconds_bucket{le="), "{text}");
    // Every message of 5 calls (INVITE, ACK, BYE from the UAC; 100/180/200/200 back to it from
    // the UAS side) was counted on arrival, by kind.
    assert!(metric_value(&text, "sipborder_sip_messages_received_total{kind=\"request\"}") >= 15.0);
    assert!(
        metric_value(&text, "sipborder_sip_messages_received_total{kind=\"response\"}") >= 15.0
    );
}

/// A Prometheus server, stopped by PID (SIGTERM, then SIGKILL) when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Prometheus {
    fn start(scrape_port: u16) -> Prometheus {
        require("prometheus");
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let cfg = dir.path("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: sipborder\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path("prometheus.log")).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let prom = Prometheus { child, port, dir };
        let ready = wait_for(Duration::from_secs(30), || {
            http_get(prom.port, "/-/ready").contains("Ready").then_some(())
        });
        assert!(ready.is_some(), "prometheus did not become ready:\n{}", prom.log());
        prom
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query returning one sample, if it returned one.
    fn query_scalar(&self, promql: &str) -> Option<f64> {
        let body = http_get(self.port, &format!("/api/v1/query?query={}", url_encode(promql)));
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        if v["status"] != "success" {
            return None;
        }
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_server_scrapes_the_call_counter() {
    let ports = Ports::new();
    let sbc = Sbc::start(ports, &config(&ports, &Setup::default()));
    let prom = Prometheus::start(ports.metrics);
    // Prometheus must have seen the target before the calls, so the counter has a history.
    let up = wait_for(Duration::from_secs(30), || {
        prom.query_scalar("up{job=\"sipborder\"}").filter(|v| *v == 1.0)
    });
    assert!(up.is_some(), "sipborder target not up in prometheus:\n{}", prom.log());
    run_calls(&sbc, 4);
    let seen = wait_for(Duration::from_secs(30), || {
        prom.query_scalar("sum(sipborder_calls_total)").filter(|v| *v >= 4.0)
    });
    assert!(
        seen.is_some(),
        "sum(sipborder_calls_total) never reached 4 (last: {:?}); exporter says {}\n{}",
        prom.query_scalar("sum(sipborder_calls_total)"),
        metric_value(&sbc.metrics(), "sipborder_calls_total"),
        prom.log()
    );
    let answered = prom.query_scalar("sum(sipborder_calls_total{result=\"answered\"})");
    assert!(answered.is_some_and(|v| v >= 4.0), "{answered:?}");
    // Every query of the Grafana dashboard evaluates on this server (with "all instances").
    for expr in dashboard_exprs() {
        let q = expr.replace("$instance", ".*");
        let body = http_get(prom.port, &format!("/api/v1/query?query={}", url_encode(&q)));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["status"], "success", "dashboard query {q}: {body}");
    }
}

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The PromQL expressions of the Grafana dashboard's panels.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo_file("deploy/grafana/sipborder-dashboard.json"))
        .expect("read dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.extend(t["expr"].as_str().map(str::to_string));
        }
    }
    out
}

/// Metric names in `text` (`sipborder_...`), with a histogram's `_bucket`/`_sum`/`_count`
/// suffix folded into its name when that is the catalogued one.
fn metric_names_in(text: &str, catalogue: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("sipborder_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let folded = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| catalogue.iter().any(|c| c == b)))
            .unwrap_or(name);
        out.push(folded.to_string());
        rest = &tail[end..];
    }
    out
}

/// Every metric name of src/observe/names.rs.
fn catalogue() -> Vec<String> {
    let names = std::fs::read_to_string(repo_file("src/observe/names.rs")).expect("names.rs");
    names
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect()
}

fn run_tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

#[test]
fn deploy_files_check_clean() {
    require("promtool");
    let prom = repo_file("deploy/prometheus");
    run_tool(Command::new("promtool").arg("check").arg("rules").arg(prom.join("alerts.yml")));
    run_tool(Command::new("promtool").arg("test").arg("rules").arg(prom.join("alerts_test.yml")));
    run_tool(Command::new("promtool").arg("check").arg("config").arg(prom.join("prometheus.yml")));

    // Alerts and dashboard use only catalogued metric names, and every dashboard query parses
    // (promtool checks it as a recording rule).
    let catalogue = catalogue();
    assert!(catalogue.len() > 20, "{catalogue:?}");
    let alerts = std::fs::read_to_string(prom.join("alerts.yml")).expect("alerts.yml");
    let exprs = dashboard_exprs();
    assert!(exprs.len() > 20);
    for name in metric_names_in(&alerts, &catalogue)
        .into_iter()
        .chain(exprs.iter().flat_map(|e| metric_names_in(e, &catalogue)))
    {
        assert!(catalogue.contains(&name), "{name} is not in src/observe/names.rs");
    }
    let dir = TempDir::new("deploy");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e.replace("$instance", ".*").replace('\'', "''");
        rules.push_str(&format!("      - record: dashboard:q{i}\n        expr: '{e}'\n"));
    }
    std::fs::write(dir.path("dashboard-rules.yml"), rules).expect("write rules");
    run_tool(
        Command::new("promtool").arg("check").arg("rules").arg(dir.path("dashboard-rules.yml")),
    );

    // The systemd unit verifies clean once its binary path exists: point it at the test build.
    require("systemd-analyze");
    let unit = std::fs::read_to_string(repo_file("deploy/sipborder.service")).expect("unit");
    let unit = unit.replace("/usr/local/bin/sipborder", &binary().display().to_string());
    std::fs::write(dir.path("sipborder.service"), unit).expect("write unit");
    let out =
        run_tool(Command::new("systemd-analyze").arg("verify").arg(dir.path("sipborder.service")));
    assert!(out.trim().is_empty(), "systemd-analyze verify complained:\n{out}");

    // The DaemonSet's ConfigMap holds a config sipborder accepts.
    let ds = std::fs::read_to_string(repo_file("deploy/kubernetes/daemonset.yaml")).expect("ds");
    let start = ds.find("  sipborder.yaml: |\n").expect("configmap key") + 20;
    let cfg: String = ds[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    std::fs::write(dir.path("k8s.yaml"), cfg).expect("write k8s config");
    run_tool(Command::new(binary()).args(["check", "-c"]).arg(dir.path("k8s.yaml")));
}

#[test]
fn cdrs_are_written_as_json_lines() {
    let ports = Ports::new();
    let dir = TempDir::new("cdr");
    let path = dir.path("cdr.jsonl");
    let setup = Setup {
        extra: format!("cdr:\n  path: {}\n  rotate: daily\n", path.display()),
        ..Setup::default()
    };
    let sbc = Sbc::start(ports, &config(&ports, &setup));
    run_calls(&sbc, 3);
    let text = wait_for(Duration::from_secs(15), || {
        std::fs::read_to_string(&path).ok().filter(|t| t.lines().count() >= 3)
    })
    .unwrap_or_else(|| {
        panic!("3 CDRs not written: {:?}\n{}", std::fs::read_to_string(&path), sbc.log())
    });
    let cdrs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(cdrs.len(), 3, "{text}");
    let mut a_ids = Vec::new();
    for c in &cdrs {
        let a = c["a_call_id"].as_str().unwrap_or_default();
        let b = c["b_call_id"].as_str().unwrap_or_default();
        assert!(!a.is_empty() && !b.is_empty() && a != b, "{c}");
        a_ids.push(a.to_string());
        assert_eq!(c["final_code"], 200, "{c}");
        assert!(c["duration_s"].as_f64().is_some_and(|d| d >= 0.0), "{c}");
        assert!(c["setup_s"].as_f64().is_some_and(|d| d >= 0.0), "{c}");
        assert_eq!((c["zone"].as_str(), c["trunk"].as_str()), (Some("lan"), Some("itsp")), "{c}");
        // SIPp's built-in uac calls `service` from `sipp` and hangs up itself.
        assert_eq!((c["from"].as_str(), c["to"].as_str()), (Some("sipp"), Some("service")), "{c}");
        assert_eq!(
            (c["hangup_side"].as_str(), c["end_reason"].as_str()),
            (Some("caller"), Some("bye"))
        );
        assert_eq!(c["q850_cause"], 16, "{c}");
        for t in ["start", "answer", "end"] {
            let v = c[t].as_str().unwrap_or_default();
            assert!(v.len() == 24 && v.ends_with('Z') && v.as_bytes()[10] == b'T', "{t}: {c}");
        }
        for dir in ["a_to_b", "b_to_a"] {
            let m = &c["media"][dir];
            for f in ["packets", "bytes", "lost", "loss_pct", "jitter_ms"] {
                assert!(m[f].is_number(), "media.{dir}.{f}: {c}");
            }
            assert!(m.get("mos").is_some(), "media.{dir}.mos: {c}");
        }
    }
    a_ids.sort();
    a_ids.dedup();
    assert_eq!(a_ids.len(), 3, "one CDR per call");
    let written = wait_for(Duration::from_secs(5), || {
        let v = sbc.metric("sipborder_cdr_records_written_total");
        (v >= 3.0).then_some(v)
    });
    assert!(written.is_some(), "{}", sbc.metrics());
}
