//! The HTTP listener of the metrics section: `/metrics` for Prometheus, and the ban list for
//! operators — `GET /bans` (JSON) and `DELETE /bans/<ip>` to lift one.
//!
//! The exporter's own listener cannot serve anything but metrics, so sipborder serves the
//! rendered exposition itself next to the admin paths. This is deliberately tiny HTTP/1.x: one
//! request per connection, a bounded head read with a timeout, no bodies taken in. The
//! listener has no authentication, so it belongs on loopback or a management network (the
//! default is 127.0.0.1).

use crate::security::BanEntry;
use crate::server::security::Security;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest request head read; anything longer is refused (431).
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the accept queue.
const MAX_CONCURRENT: usize = 16;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Answer {
    fn json(status: u16, value: serde_json::Value) -> Answer {
        Answer { status, content_type: "application/json", body: value.to_string() + "\n" }
    }

    fn error(status: u16, message: &str) -> Answer {
        Answer::json(status, serde_json::json!({ "error": message }))
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            _ => "Error",
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// One ban as JSON: times as Unix seconds (wall clock) and seconds left.
fn ban_json(e: &BanEntry, now: Instant, wall: SystemTime) -> serde_json::Value {
    let unix = |at: Instant| {
        let t = if at >= now { wall.checked_add(at - now) } else { wall.checked_sub(now - at) };
        t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
    };
    serde_json::json!({
        "source": e.source.to_string(),
        "reason": e.reason.label(),
        "strikes": e.strikes,
        "since": unix(e.since),
        "until": unix(e.until),
        "expires_in_s": e.until.saturating_duration_since(now).as_secs(),
    })
}

/// The answer to `method path` (what the listener does, without the sockets).
pub fn answer(
    method: &str,
    path: &str,
    metrics: impl FnOnce() -> String,
    security: Option<&Security>,
) -> Answer {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/bans" || path.starts_with("/bans/") {
        let Some(security) = security else { return Answer::error(404, "no ban list") };
        let guard = security.load().guard.clone();
        let now = Instant::now();
        return match (method, path.strip_prefix("/bans/")) {
            ("GET", None) => {
                let wall = SystemTime::now();
                let list: Vec<_> =
                    guard.bans().list(now).iter().map(|e| ban_json(e, now, wall)).collect();
                Answer::json(200, serde_json::json!({ "bans": list }))
            }
            ("DELETE", Some(ip)) => match ip.parse::<IpAddr>() {
                Err(_) => Answer::error(400, "not an IP address"),
                Ok(ip) => match guard.bans().lift(ip) {
                    Some(e) => {
                        metrics::counter!(super::names::BANS_ENDED_TOTAL, "how" => "lifted")
                            .increment(1);
                        let lifted = ban_json(&e, now, SystemTime::now());
                        Answer::json(200, serde_json::json!({ "lifted": lifted }))
                    }
                    None => Answer::error(404, "not banned"),
                },
            },
            _ => Answer::error(405, "use GET /bans or DELETE /bans/<ip>"),
        };
    }
    match (method, path) {
        ("GET", "/health") => Answer { status: 200, content_type: "text/plain", body: "OK".into() },
        // Any other path renders the metrics, like the exporter's own listener did.
        ("GET", _) => {
            Answer { status: 200, content_type: "text/plain; version=0.0.4", body: metrics() }
        }
        _ => Answer::error(405, "method not allowed"),
    }
}

/// Serves `listener` forever: metrics from `handle`, bans from `security`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    security: Option<Arc<Security>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    // The recorder's histograms need upkeep; the exporter's listener used to do it.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let handle = handle.clone();
        let security = security.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(HEAD_TIMEOUT, async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() <= MAX_HEAD {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            if !matches!(read, Ok(true)) {
                return;
            }
            let reply = if head.len() > MAX_HEAD {
                Answer::error(431, "request head too large")
            } else {
                let text = String::from_utf8_lossy(&head);
                let mut parts = text.lines().next().unwrap_or("").split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                answer(method, path, || handle.render(), security.as_deref())
            };
            let _ = stream.write_all(&reply.to_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::ban::Reason;

    fn security() -> Security {
        let cfg = crate::config::embedded();
        Security::new(&cfg).expect("embedded security config")
    }

    #[test]
    fn bans_are_listed_and_lifted() {
        let s = security();
        let empty = answer("GET", "/bans", String::new, Some(&s));
        assert_eq!((empty.status, empty.body.as_str()), (200, "{\"bans\":[]}\n"));
        let ip: IpAddr = "127.0.0.9".parse().expect("ip");
        s.load().guard.bans().ban(ip, Instant::now(), Reason::Scanner, Duration::from_secs(60));
        let list = answer("GET", "/bans", String::new, Some(&s));
        let v: serde_json::Value = serde_json::from_str(&list.body).expect("json");
        assert_eq!(v["bans"][0]["source"], "127.0.0.9");
        assert_eq!(v["bans"][0]["reason"], "scanner");
        assert!(v["bans"][0]["expires_in_s"].as_u64().is_some_and(|s| s <= 60));
        let lifted = answer("DELETE", "/bans/127.0.0.9", String::new, Some(&s));
        assert_eq!(lifted.status, 200, "{}", lifted.body);
        assert_eq!(answer("DELETE", "/bans/127.0.0.9", String::new, Some(&s)).status, 404);
        assert_eq!(answer("DELETE", "/bans/nope", String::new, Some(&s)).status, 400);
        assert_eq!(answer("POST", "/bans", String::new, Some(&s)).status, 405);
    }

    #[test]
    fn metrics_and_health_are_served() {
        let m = answer("GET", "/metrics", || "x 1\n".into(), None);
        assert_eq!((m.status, m.body.as_str()), (200, "x 1\n"));
        assert_eq!(answer("GET", "/health", String::new, None).body, "OK");
        assert_eq!(answer("GET", "/bans", String::new, None).status, 404);
        let bytes = String::from_utf8(m.to_bytes()).expect("utf8");
        assert!(
            bytes.starts_with("HTTP/1.1 200 OK\r\n") && bytes.contains("Content-Length: 4\r\n")
        );
    }
}
