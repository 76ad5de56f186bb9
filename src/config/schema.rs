//! The configuration schema: what `config/sipborder.yaml` may contain.
//!
//! Every struct denies unknown keys so a typo is an error with a location, never a silently
//! ignored setting. Values that can be checked on their own (addresses, durations, regexes,
//! port ranges) are checked while deserializing, so serde_yaml reports their line and column;
//! cross references (a route naming a trunk that does not exist) are checked in
//! `super::validate` and located afterwards.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sides sipborder listens on (at least one).
    pub zones: Vec<ZoneConfig>,
    /// The SIP peers calls are sent to: ITSP trunks and the LAN PBX alike.
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// Ordered dial-peer style routing table; first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// RFC 3261 timer base values.
    #[serde(default)]
    pub timers: TimersConfig,
    /// Hard limits on what is accepted from the wire.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Prometheus exporter; absent means off.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Call detail records (JSON lines); absent means off.
    #[serde(default)]
    pub cdr: Option<CdrSection>,
    /// Media relay.
    #[serde(default)]
    pub media: MediaConfig,
    /// Process-wide runtime knobs.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Security at the edge: ACLs, rate limits, call admission, bans, hard limits, what
    /// untrusted zones are told (see `crate::security`).
    #[serde(default)]
    pub security: crate::security::SecurityConfig,
    /// Policy files compiled at load, by the path written in `trunks[].policies` (filled by
    /// the loader, never read from YAML).
    #[serde(skip)]
    pub compiled_policies: std::collections::HashMap<
        std::path::PathBuf,
        std::sync::Arc<crate::policy::CompiledPolicy>,
    >,
}

/// Which way a zone faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    /// Toward the PBX and phones.
    #[default]
    Lan,
    /// Toward carriers: messages sent here are `to-trunk` for policies, carry Q.850 Reasons.
    Trunk,
}

/// One side of the SBC: a set of listening sockets and the address advertised there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Unique name, used by trunks and routes (`lan`, `trunk`, ...).
    pub name: String,
    /// Which way the zone faces (default `lan`).
    #[serde(default)]
    pub kind: ZoneKind,
    /// UDP listen address (`ip:port`). At least one of `udp`/`tcp` is required.
    #[serde(default)]
    pub udp: Option<SocketAddr>,
    /// TCP listen address (`ip:port`).
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    /// Address written into Via/Contact on this zone when it differs from the listen address
    /// (static 1:1 NAT). Defaults to the listen IP.
    #[serde(default)]
    pub advertise: Option<IpAddr>,
    /// Relay sockets of this zone (anchored media). Absent: the listen IP and the global range.
    #[serde(default)]
    pub media: Option<ZoneMediaConfig>,
    /// Digest authentication demanded from this zone's peers (trunks configured in the zone
    /// are trusted by address and not challenged).
    #[serde(default)]
    pub auth: Option<ZoneAuthConfig>,
    /// RFC 4028 session timers on the legs in this zone (off when absent).
    #[serde(default)]
    pub session_timer: Option<SessionTimerConfig>,
    /// REGISTERs arriving in this zone are relayed to a registrar (remote phones to the LAN
    /// PBX, or the PBX's own trunk registration to the ITSP), with a binding table so calls
    /// reach the registered device over the flow it registered from.
    #[serde(default)]
    pub register_proxy: Option<RegisterProxyConfig>,
    /// Discover the zone's public address with STUN (sipborder behind a NAT without a static
    /// `advertise`): asked at start and every `interval`; a change is applied like a reload.
    #[serde(default)]
    pub stun: Option<StunConfig>,
}

/// STUN discovery of a zone's public address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StunConfig {
    /// STUN server (`ip:port`).
    pub server: SocketAddr,
    /// How often to ask again (default 5m).
    #[serde(default = "default_stun_interval")]
    pub interval: DurationValue,
}

fn default_stun_interval() -> DurationValue {
    DurationValue(Duration::from_secs(300))
}

/// Registration proxy of a zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterProxyConfig {
    /// Trunk (e.g. the PBX) the REGISTERs go to.
    pub registrar: String,
    /// Expiry given to the devices (short: keeps their NAT pinhole open).
    #[serde(default = "default_client_expires")]
    pub client_expires: DurationValue,
    /// Expiry asked of the registrar (refreshes in between are answered from the cache).
    #[serde(default = "default_registrar_expires")]
    pub registrar_expires: DurationValue,
    /// Keepalive toward each binding: OPTIONS over UDP, CRLF pings over TCP; `0s` = off.
    #[serde(default = "default_binding_keepalive")]
    pub keepalive: DurationValue,
}

fn default_client_expires() -> DurationValue {
    DurationValue(Duration::from_secs(60))
}

fn default_registrar_expires() -> DurationValue {
    DurationValue(Duration::from_secs(3600))
}

fn default_binding_keepalive() -> DurationValue {
    DurationValue(Duration::from_secs(25))
}

/// Session timer of the legs in one zone: negotiated per leg; sipborder refreshes a leg
/// whose peer does not support timers, and ends the call when a refresh fails or a session
/// expires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionTimerConfig {
    /// Session interval asked for (Session-Expires).
    pub interval: DurationValue,
    /// Smallest interval accepted (Min-SE; a smaller one gets 422).
    pub min_se: DurationValue,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig {
            interval: DurationValue(Duration::from_secs(1800)),
            min_se: DurationValue(Duration::from_secs(90)),
        }
    }
}

/// Digest server settings of a zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneAuthConfig {
    /// Realm of the challenges.
    pub realm: String,
    /// File of `user:password` lines (passwords never sit in this config).
    pub users_file: std::path::PathBuf,
    /// How long a nonce stays valid (default 5m); older ones get `stale=true`.
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl: DurationValue,
}

fn default_nonce_ttl() -> DurationValue {
    DurationValue(Duration::from_secs(300))
}

impl ZoneAuthConfig {
    /// Reads the users file.
    pub fn users(&self) -> Result<std::collections::HashMap<String, String>, String> {
        let text = std::fs::read_to_string(&self.users_file)
            .map_err(|e| format!("users_file {}: {e}", self.users_file.display()))?;
        let mut users = std::collections::HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, p) = line.split_once(':').ok_or_else(|| {
                format!(
                    "users_file {} line {}: expected user:password",
                    self.users_file.display(),
                    n + 1
                )
            })?;
            users.insert(u.trim().to_string(), p.to_string());
        }
        Ok(users)
    }
}

/// Where a zone's relay ports live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneMediaConfig {
    /// IP the relay sockets bind on (default: the zone's listen IP).
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// IP written into SDP toward this zone when it differs (static 1:1 NAT).
    #[serde(default)]
    pub advertise: Option<IpAddr>,
    /// Port range, `low-high` (default: the global `media.ports`).
    #[serde(default)]
    pub ports: Option<PortRange>,
}

/// A port range written `20000-29999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port range like 20000-29999")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                let bad = || {
                    E::custom(format!("bad port range {v:?} (write e.g. 20000-29999, low < high, at least 2 ports)"))
                };
                let (a, b) = v.split_once('-').ok_or_else(bad)?;
                let low: u16 = a.trim().parse().map_err(|_| bad())?;
                let high: u16 = b.trim().parse().map_err(|_| bad())?;
                if low == 0 || high <= low {
                    return Err(bad());
                }
                Ok(PortRange { low, high })
            }
        }
        d.deserialize_str(V)
    }
}

/// How a call's media is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Through sipborder's relay: SDP rewritten to our ports.
    #[default]
    Anchor,
    /// Around sipborder: SDP untouched, no ports taken.
    Bypass,
    /// Anchor when the legs are in different zones or an endpoint is behind NAT, else bypass.
    Auto,
}

/// Which relay datapath to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DatapathKind {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    /// epoll + recvmmsg/sendmmsg.
    Epoll,
    /// io_uring.
    IoUring,
}

/// Media relay settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Default media mode of routes.
    pub mode: MediaMode,
    /// Default relay port range of zones.
    pub ports: PortRange,
    /// A call whose media stopped this long is ended with BYE on both legs; `0s` turns it off.
    pub timeout: DurationValue,
    /// A released port pair rests this long before reuse.
    pub quarantine: DurationValue,
    /// An endpoint behind NAT is latched to the first source seen within this window.
    pub learning_window: DurationValue,
    /// Relay threads; 0 means one per CPU.
    pub threads: usize,
    /// Relay datapath.
    pub datapath: DatapathKind,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            mode: MediaMode::Anchor,
            ports: PortRange { low: 20000, high: 29999 },
            timeout: DurationValue(Duration::from_secs(60)),
            quarantine: DurationValue(Duration::from_secs(2)),
            learning_window: DurationValue(Duration::from_secs(3)),
            threads: 0,
            datapath: DatapathKind::Auto,
        }
    }
}

/// Transport used toward a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP with Content-Length framing.
    Tcp,
}

/// A SIP peer: an ITSP trunk or the LAN PBX.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Unique name, used by routes.
    pub name: String,
    /// The zone this peer is reached through.
    pub zone: String,
    /// `host:port` of the peer (IP address; DNS is not resolved).
    pub address: SocketAddr,
    /// Transport toward the peer.
    #[serde(default)]
    pub transport: TransportKind,
    /// Host part written into the Request-URI and To of requests toward this peer.
    /// Defaults to the address' IP.
    #[serde(default)]
    pub domain: Option<String>,
    /// Digest credentials sipborder answers this peer's 401/407 with.
    #[serde(default)]
    pub auth: Option<TrunkAuthConfig>,
    /// Register sipborder at this peer (an ITSP that wants a registration).
    #[serde(default)]
    pub register: Option<RegisterConfig>,
    /// OPTIONS keepalive: a peer that stops answering is skipped by routing until it answers.
    #[serde(default)]
    pub keepalive: Option<KeepaliveConfig>,
    /// SIP ↔ Q.850 cause handling toward this peer.
    #[serde(default)]
    pub causes: CausesConfig,
    /// What a REFER from the other leg does when it would go to this peer: `pass` relays it,
    /// `local` makes sipborder perform the transfer itself (carriers rarely accept REFER),
    /// `reject` refuses it (default `pass`).
    #[serde(default)]
    pub refer: ReferMode,
    /// How this peer wants to receive DTMF: `passthrough` (as the other leg sends it, RFC 4733
    /// payload types renumbered when the legs differ), `rfc4733` (SIP INFO from the other leg is
    /// answered by sipborder and played as RFC 4733 events into the media toward this peer) or
    /// `info` (RFC 4733 events from the other leg are taken out of the media and sent to this
    /// peer as SIP INFO). Default `passthrough`.
    #[serde(default)]
    pub dtmf: DtmfMode,
    /// Policy files (policies/*.yaml) run on every message sipborder exchanges with this peer,
    /// in order; paths relative to the config file.
    #[serde(default)]
    pub policies: Vec<std::path::PathBuf>,
}

/// Transfer handling toward a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReferMode {
    /// Relay the REFER.
    #[default]
    Pass,
    /// sipborder performs the transfer.
    Local,
    /// Refuse the REFER (403).
    Reject,
}

/// How a peer wants to receive DTMF (what the other leg sends is converted to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// Whatever the other leg sends crosses: INFO relayed, RFC 4733 events relayed.
    #[default]
    Passthrough,
    /// RFC 4733 telephone-events in the media; INFO from the other leg is converted.
    Rfc4733,
    /// SIP INFO (application/dtmf-relay); RFC 4733 events from the other leg are converted.
    Info,
}

/// Digest credentials. The password never sits in this file: it comes from an environment
/// variable or a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkAuthConfig {
    /// Digest username (may differ from the registered URI user).
    pub username: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (first line, trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// Only answer challenges for this realm (default: any).
    #[serde(default)]
    pub realm: Option<String>,
}

impl TrunkAuthConfig {
    /// Reads the password from the environment variable or file.
    pub fn password(&self) -> Result<String, String> {
        match (&self.password_env, &self.password_file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("environment variable {var} (password_env) is not set")),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| s.lines().next().unwrap_or("").to_string())
                .map_err(|e| format!("password_file {}: {e}", path.display())),
            (Some(_), Some(_)) => Err("give password_env or password_file, not both".into()),
            (None, None) => {
                Err("auth needs password_env or password_file (never a password in the config)"
                    .into())
            }
        }
    }
}

/// Outbound registration toward a trunk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// Registrar URI (default `sip:<domain>`).
    #[serde(default)]
    pub registrar: Option<String>,
    /// User part of the registered address (AOR) and of the Contact.
    pub user: String,
    /// Expiry asked for (default 3600s).
    #[serde(default = "default_expires")]
    pub expires: DurationValue,
}

fn default_expires() -> DurationValue {
    DurationValue(Duration::from_secs(3600))
}

/// OPTIONS keepalive (CUBE style).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    /// Interval while the trunk is up.
    pub interval: DurationValue,
    /// Consecutive unanswered pings that mark it down.
    pub retries: u32,
    /// Interval while it is down (probing for its return).
    pub up_interval: DurationValue,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            interval: DurationValue(Duration::from_secs(30)),
            retries: 3,
            up_interval: DurationValue(Duration::from_secs(5)),
        }
    }
}

/// SIP ↔ Q.850 handling toward one peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CausesConfig {
    /// Add `Reason: Q.850;cause=N` to BYE, CANCEL and failure responses sent to this peer.
    pub send_reason: bool,
    /// Pass a Reason received from this peer on to the other leg (else strip it).
    pub pass_reason: bool,
    /// Table overrides on top of RFC 3398 (e.g. a Q.1912.5 profile).
    pub overrides: Option<crate::policy::causes::CauseOverrides>,
}

impl Default for CausesConfig {
    fn default() -> Self {
        CausesConfig { send_reason: true, pass_reason: true, overrides: None }
    }
}

/// One routing rule (like a CUBE dial-peer).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name shown in logs.
    pub name: String,
    /// Zone the call must come from.
    pub from: String,
    /// Conditions on the Request-URI user; absent means any.
    #[serde(default, rename = "match")]
    pub matcher: Option<RouteMatch>,
    /// Trunk names tried in order; the next one is tried on 408, 5xx or transport error.
    pub targets: Vec<String>,
    /// Media mode for calls on this route (default: `media.mode`).
    #[serde(default)]
    pub media: Option<MediaMode>,
}

/// Request-URI user conditions; all given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Literal prefix of the user part.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Regular expression the whole user part is searched with.
    #[serde(default)]
    pub user: Option<RegexValue>,
}

/// A regular expression compiled while the config is read.
#[derive(Debug, Clone)]
pub struct RegexValue(pub regex::Regex);

impl<'de> Deserialize<'de> for RegexValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseStr("a regular expression", |s: &str| {
            regex::Regex::new(s)
                .map(RegexValue)
                .map_err(|e| format!("bad regex {s:?}: {}", regex_error_summary(&e)))
        }))
    }
}

/// The one-line reason of a regex error. regex's syntax errors span several lines (pattern,
/// caret, reason), which would break the one-problem-per-line error listing; the last line
/// holds the reason.
fn regex_error_summary(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

/// A duration written like `500ms`, `4s`, `3m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseStr("a duration such as 500ms, 4s or 2m", |s: &str| {
            humantime::parse_duration(s)
                .map(DurationValue)
                .map_err(|e| format!("bad duration {s:?}: {e} (write e.g. 500ms, 4s, 2m)"))
        }))
    }
}

/// A visitor that parses a string scalar with a function.
///
/// The check runs inside the visitor, while serde_yaml still stands on the scalar, so the error
/// is marked at the value; checking after `String::deserialize` returns would mark it at the key.
struct ParseStr<F>(&'static str, F);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'de> for ParseStr<F> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        (self.1)(s).map_err(E::custom)
    }
}

/// RFC 3261 timer base values (§17, table 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersConfig {
    /// RTT estimate; base of timers A, B, E, F, G, H, J (default 500ms).
    pub t1: DurationValue,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4s).
    pub t2: DurationValue,
    /// Maximum time a message stays in the network (default 5s).
    pub t4: DurationValue,
    /// Timer C: how long an INVITE may ring after a provisional before it is cancelled (default 3m).
    pub invite_ring_timeout: DurationValue,
}

impl Default for TimersConfig {
    fn default() -> Self {
        TimersConfig {
            t1: DurationValue(Duration::from_millis(500)),
            t2: DurationValue(Duration::from_secs(4)),
            t4: DurationValue(Duration::from_secs(5)),
            invite_ring_timeout: DurationValue(Duration::from_secs(180)),
        }
    }
}

/// Hard limits on input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest SIP message accepted, bytes (default 65536).
    pub max_message_size: usize,
    /// Most header lines in one message (default 128).
    pub max_headers: usize,
    /// Most Via header values in one message (default 32).
    pub max_vias: usize,
    /// TCP connection closed after this long without traffic (default 5m).
    pub tcp_idle_timeout: DurationValue,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_size: 65536,
            max_headers: 128,
            max_vias: 32,
            tcp_idle_timeout: DurationValue(Duration::from_secs(300)),
        }
    }
}

/// Prometheus exporter settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP listener serving `/metrics`.
    pub listen: SocketAddr,
}

/// Call detail records: one JSON object per finished call and line, written by a thread of its
/// own (`crate::observe::cdr`). Read at start-up only: a change needs a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrSection {
    /// The live file, e.g. `/var/log/sipborder/cdr.jsonl`; rotated files go beside it.
    pub path: std::path::PathBuf,
    /// `daily` (at UTC midnight, to `cdr-YYYY-MM-DD.jsonl`) or `size:100MiB` (to
    /// `cdr.jsonl.1`, `.2`, ...). Default `daily`.
    #[serde(default)]
    pub rotate: crate::observe::cdr::Rotate,
    /// Rotated files kept; older ones are deleted (default 30).
    #[serde(default = "default_cdr_keep")]
    pub keep: usize,
}

fn default_cdr_keep() -> usize {
    30
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shards: 0,
            worker_threads: 0,
            shutdown_grace: DurationValue(Duration::from_secs(30)),
        }
    }
}

/// Process-wide runtime knobs. The defaults (all 0) size everything to the machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Signalling shards (independent call tables); 0 means one per CPU.
    pub shards: usize,
    /// Tokio worker threads for signalling; 0 means one per CPU.
    pub worker_threads: usize,
    /// On SIGTERM, calls in progress may go on this long before they are hung up.
    pub shutdown_grace: DurationValue,
}
