//! The site edge with a real NAT: network namespaces this test creates (its own hosts; traffic
//! never leaves them), a phone with a private address behind a router doing nftables
//! masquerade with the UDP conntrack timeout lowered to 20 s, sipborder with a public and a LAN
//! interface, a PBX on the LAN, and the "internet" (a bridge whose own address plays the ITSP
//! or carrier). Real peers: baresip as the phone, SIPp as PBX and ITSP; raw UDP endpoints
//! (sockets the test opens inside a namespace) where a message has to be written wrongly on
//! purpose or read header by header.
//!
//! ```text
//!  phone 192.168.77.2 ── router: masquerade, 203.0.113.20 ──┐
//!                                                            ├── inet: a bridge; its own
//!  sbc public 203.0.113.10 ──────────────────────────────────┤   203.0.113.30 plays the
//!    (or: sbc 172.31.77.10 ── edge: 1:1 NAT, 203.0.113.10 ───┘   ITSP, carrier, STUN server)
//!  sbc LAN 10.77.0.1 ── PBX 10.77.0.2
//! ```
//!
//! Namespaces are global state and the tests time NAT expiry: topologies serialize themselves
//! (one at a time per test binary), and `cargo test --test site_edge -- --test-threads=1` is
//! the way to run them. Needs root; without namespace support the tests fail saying so.

mod common;
#[path = "common/netns.rs"]
mod netns;

use common::{body, header, headers, respond, RawUdp};
use netns::{http_get_in, udp_in, Topology};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PHONE_IP: &str = "192.168.77.2";
const ROUTER_WAN_IP: &str = "203.0.113.20";
/// sipborder's public address (its own interface, or the 1:1 NAT's outside address).
const SBC_PUBLIC_IP: &str = "203.0.113.10";
/// sipborder's inside address when it sits behind the 1:1 NAT.
const SBC_DMZ_IP: &str = "172.31.77.10";
const SBC_LAN_IP: &str = "10.77.0.1";
const PBX_IP: &str = "10.77.0.2";
/// The host on the internet bridge: ITSP, carrier, STUN server.
const ITSP_IP: &str = "203.0.113.30";
/// The UDP conntrack timeout set in the router: a pinhole idle this long is gone.
const NAT_UDP_TIMEOUT: u64 = 20;
/// How long the phones stay silent before the PBX calls them: past the NAT timeout with margin.
const IDLE: Duration = Duration::from_secs(NAT_UDP_TIMEOUT + 6);

/// The phones' router: source NAT for everything leaving on the outside interface.
const MASQUERADE: &str = "table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"wan\" counter masquerade
  }
}
";

/// A static 1:1 NAT in front of sipborder: the public address maps to its inside address both
/// ways, ports kept.
const ONE_TO_ONE: &str = "table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname \"wan\" ip daddr 203.0.113.10 counter dnat to 172.31.77.10
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"wan\" ip saddr 172.31.77.10 counter snat to 203.0.113.10
  }
}
";

/// How sipborder's public side is attached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Public {
    /// Its own interface on the internet bridge (203.0.113.10).
    Direct,
    /// Behind a 1:1 NAT namespace (inside 172.31.77.10, outside 203.0.113.10).
    OneToOneNat,
}

/// Builds the site: inet, sbc and pbx always; the phone behind its masquerading router when
/// `phones`; the 1:1 NAT in front of sipborder for [`Public::OneToOneNat`].
fn site(phones: bool, public: Public) -> Topology {
    let mut hosts = vec!["inet", "sbc", "pbx"];
    if phones {
        hosts.extend(["router", "phone"]);
    }
    if public == Public::OneToOneNat {
        hosts.push("edge");
    }
    let t = Topology::new(&hosts);
    t.bridge("inet", "br0");
    t.addr("inet", "br0", &format!("{ITSP_IP}/24"));
    if phones {
        t.veth("inet", "to-router", "router", "wan");
        t.enslave("inet", "to-router", "br0");
        t.addr("router", "wan", &format!("{ROUTER_WAN_IP}/24"));
        t.veth("router", "lan", "phone", "eth0");
        t.addr("router", "lan", "192.168.77.1/24");
        t.addr("phone", "eth0", &format!("{PHONE_IP}/24"));
        t.default_route("phone", "192.168.77.1");
        t.nft("router", MASQUERADE);
        t.sysctl(
            "router",
            &[
                "net.ipv4.ip_forward=1",
                &format!("net.netfilter.nf_conntrack_udp_timeout={NAT_UDP_TIMEOUT}"),
                &format!("net.netfilter.nf_conntrack_udp_timeout_stream={NAT_UDP_TIMEOUT}"),
            ],
        );
        // The idle test means nothing if the timeout did not take: read it back.
        let got = t.exec("router", "sysctl", &["-n", "net.netfilter.nf_conntrack_udp_timeout"]);
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), NAT_UDP_TIMEOUT.to_string());
    }
    match public {
        Public::Direct => {
            t.veth("inet", "to-sbc", "sbc", "pub");
            t.enslave("inet", "to-sbc", "br0");
            t.addr("sbc", "pub", &format!("{SBC_PUBLIC_IP}/24"));
        }
        Public::OneToOneNat => {
            t.veth("inet", "to-edge", "edge", "wan");
            t.enslave("inet", "to-edge", "br0");
            t.addr("edge", "wan", &format!("{SBC_PUBLIC_IP}/24"));
            t.veth("edge", "dmz", "sbc", "pub");
            t.addr("edge", "dmz", "172.31.77.1/24");
            t.addr("sbc", "pub", &format!("{SBC_DMZ_IP}/24"));
            t.default_route("sbc", "172.31.77.1");
            t.nft("edge", ONE_TO_ONE);
            t.sysctl("edge", &["net.ipv4.ip_forward=1"]);
        }
    }
    t.veth("sbc", "lan", "pbx", "eth0");
    t.addr("sbc", "lan", &format!("{SBC_LAN_IP}/24"));
    t.addr("pbx", "eth0", &format!("{PBX_IP}/24"));
    t
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

// ------------------------------------------------------------------------------------------
// sipborder inside the sbc namespace
// ------------------------------------------------------------------------------------------

/// Remote phones register through the `remote` zone to the PBX. `remote` pings its bindings
/// every 10 s (half the NAT timeout); `remote-nokeepalive` (port 5062) is the control that
/// does not. The devices' expiry is long on purpose, so that only sipborder's keepalives can
/// hold the pinholes during the test.
const REMOTE_PHONES: &str = "zones:
  - name: remote
    udp: 203.0.113.10:5060
    media: { address: 203.0.113.10, ports: 30000-30999 }
    register_proxy: { registrar: pbx, client_expires: 300s, registrar_expires: 3600s, keepalive: 10s }
  - name: remote-nokeepalive
    udp: 203.0.113.10:5062
    media: { address: 203.0.113.10, ports: 32000-32999 }
    register_proxy: { registrar: pbx, client_expires: 300s, registrar_expires: 3600s, keepalive: 0s }
  - name: lan
    udp: 10.77.0.1:5060
    media: { address: 10.77.0.1, ports: 31000-31999 }
trunks:
  - name: pbx
    zone: lan
    address: 10.77.0.2:5060
routes:
  - name: phones-to-pbx
    from: remote
    targets: [pbx]
timers: { t1: 100ms }
metrics: { listen: 10.77.0.1:9091 }
runtime: { shards: 2, worker_threads: 2 }
";

/// sipborder behind the 1:1 NAT: `PUBLIC` is replaced by `advertise: ...` or `stun: ...`.
const BEHIND_ONE_TO_ONE: &str = "zones:
  - name: public
    kind: trunk
    udp: 172.31.77.10:5060
    PUBLIC
    media: { address: 172.31.77.10, ports: 30000-30999 }
  - name: lan
    udp: 10.77.0.1:5060
    media: { address: 10.77.0.1, ports: 31000-31999 }
trunks:
  - name: carrier
    zone: public
    address: 203.0.113.30:5060
  - name: pbx
    zone: lan
    address: 10.77.0.2:5060
routes:
  - name: carrier-to-pbx
    from: public
    targets: [pbx]
  - name: pbx-to-carrier
    from: lan
    targets: [carrier]
timers: { t1: 100ms }
metrics: { listen: 10.77.0.1:9091 }
runtime: { shards: 2, worker_threads: 2 }
";

/// The PBX registers its trunk to the ITSP through sipborder's LAN zone. No route leads from
/// the public side to the PBX: an ITSP call can reach it only through the binding.
const PBX_TRUNK_REGISTRATION: &str = "zones:
  - name: public
    kind: trunk
    udp: 203.0.113.10:5060
    media: { address: 203.0.113.10, ports: 30000-30999 }
  - name: lan
    udp: 10.77.0.1:5060
    media: { address: 10.77.0.1, ports: 31000-31999 }
    register_proxy: { registrar: itsp, client_expires: 120s, registrar_expires: 3600s, keepalive: 10s }
trunks:
  - name: itsp
    zone: public
    address: 203.0.113.30:5060
  - name: pbx
    zone: lan
    address: 10.77.0.2:5060
routes:
  - name: pbx-to-itsp
    from: lan
    targets: [itsp]
timers: { t1: 100ms }
metrics: { listen: 10.77.0.1:9091 }
runtime: { shards: 2, worker_threads: 2 }
";

/// Starts sipborder in the sbc namespace with `yaml` and waits until it answers OPTIONS on
/// its LAN address (bounded).
fn start_sbc(t: &mut Topology, yaml: &str) {
    let cfg = t.workdir("sipborder").join("sipborder.yaml");
    std::fs::write(&cfg, yaml).expect("write config");
    let filter = std::env::var("SB_TEST_LOG").unwrap_or_else(|_| "info".into());
    let cfg = cfg.to_string_lossy().to_string();
    t.spawn(
        "sipborder",
        "sbc",
        env!("CARGO_BIN_EXE_sipborder"),
        &["run", "-c", &cfg],
        &[("RUST_LOG", filter.as_str())],
    );
    let probe = RawUdp { sock: udp_in(&t.ns("sbc"), sa(SBC_LAN_IP, 0)) };
    let lan = sa(SBC_LAN_IP, 5060);
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        let msg = format!(
            "OPTIONS sip:{SBC_LAN_IP}:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {SBC_LAN_IP}:{p};branch=z9hG4bKready{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@{SBC_LAN_IP}>;tag=probe\r\n\
             To: <sip:{SBC_LAN_IP}:5060>\r\n\
             Call-ID: ready-{n}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            p = probe.port()
        );
        let _ = probe.sock.send_to(msg.as_bytes(), lan);
        if probe.recv(Duration::from_millis(200)).is_some_and(|r| r.starts_with("SIP/2.0 200")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sipborder did not come up in its namespace; log:\n{}",
            t.log("sipborder")
        );
    }
}

/// sipborder's /metrics, read from inside its namespace.
fn metrics(t: &Topology) -> String {
    http_get_in(&t.ns("sbc"), sa(SBC_LAN_IP, 9091), "/metrics")
}

/// Sum of a metric's samples whose label text contains every one of `labels`.
fn metric(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Waits (bounded) until both relay directions counted at least `min` RTP packets; returns
/// (a_to_b, b_to_a). The relay reports them at call end, a moment after the BYE.
fn wait_rtp(t: &Topology, min: f64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = metrics(t);
        let v = (
            metric(&m, "sipborder_rtp_packets_total", &["direction=\"a_to_b\""]),
            metric(&m, "sipborder_rtp_packets_total", &["direction=\"b_to_a\""]),
        );
        if (v.0 >= min && v.1 >= min) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ------------------------------------------------------------------------------------------
// SIPp and baresip
// ------------------------------------------------------------------------------------------

/// A registrar (the PBX, or the ITSP): challenges every new registration, checks the digest of
/// `user`/`password`, and grants an hour to the Contact sipborder wrote.
fn registrar_scenario(realm: &str, user: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar">
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="{realm}", nonce="[pid]n[call_number]", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authok" username="{user}" password="{password}"/>
      <ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" assign_to="all,uri"/>
    </action>
  </recv>
  <Reference variables="all"/>
  <nop hide="true" test="authok" next="good"/>
  <send next="end">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="good"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]R[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <[$uri]>;expires=3600
      Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"#
    )
}

/// The PBX registering its ITSP trunk (4930123 / itsp-secret) through sipborder, on the socket
/// it will later take calls on.
const PBX_REGISTER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="pbx trunk registration">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:itsp.example SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:4930123@itsp.example>;tag=[pid]P[call_number]
      To: <sip:4930123@itsp.example>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:4930123@[local_ip]:[local_port]>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:itsp.example SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:4930123@itsp.example>;tag=[pid]P[call_number]
      To: <sip:4930123@itsp.example>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:4930123@[local_ip]:[local_port]>
      [authentication username=4930123 password=itsp-secret]
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// Writes a scenario file into the topology's directory; returns its path.
fn scenario_file(t: &Topology, name: &str, xml: &str) -> String {
    let p = t.dir.path(name);
    std::fs::write(&p, xml).expect("write scenario");
    p.to_string_lossy().to_string()
}

/// Common SIPp arguments: bind address, no keyboard, traces in the working directory.
fn sipp_args<'a>(ip: &'a str, port: &'a str, media_port: &'a str) -> Vec<&'a str> {
    vec!["-i", ip, "-p", port, "-mp", media_port, "-nostdin", "-trace_msg", "-trace_err"]
}

/// A SIPp UAS in the background (killed with the topology).
fn sipp_uas(
    t: &mut Topology,
    label: &str,
    host: &str,
    bind: (&str, u16, u16),
    scenario: &[&str],
    extra: &[&str],
) {
    common::require("sipp");
    let (port, mp) = (bind.1.to_string(), bind.2.to_string());
    let mut args: Vec<&str> = scenario.to_vec();
    args.extend(sipp_args(bind.0, &port, &mp));
    args.extend_from_slice(extra);
    t.spawn(label, host, "sipp", &args, &[]);
    // SIPp needs a moment to bind; a message sent before that would be lost.
    let ns = t.ns(host);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !netns::udp_port_bound(&ns, bind.1) {
        assert!(Instant::now() < deadline, "SIPp {label} did not start:\n{}", t.log(label));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one SIPp UAC call to `target` (bounded by `limit`); returns SIPp's exit code (0: the
/// call succeeded).
#[allow(clippy::too_many_arguments)]
fn sipp_uac(
    t: &Topology,
    label: &str,
    host: &str,
    target: SocketAddr,
    bind: (&str, u16, u16),
    scenario: &[&str],
    extra: &[&str],
    limit: Duration,
) -> i32 {
    common::require("sipp");
    let (target, port, mp) = (target.to_string(), bind.1.to_string(), bind.2.to_string());
    let mut args: Vec<&str> = vec![target.as_str()];
    args.extend_from_slice(scenario);
    args.extend(sipp_args(bind.0, &port, &mp));
    args.extend_from_slice(&["-m", "1"]);
    args.extend_from_slice(extra);
    t.run(label, host, "sipp", &args, limit)
}

/// Every SIP message in a SIPp `-trace_msg` file that it received, line endings as sent.
fn received_messages(trace: &str) -> Vec<String> {
    trace
        .split("-----------------------------------------------")
        .filter_map(|block| {
            let (head, msg) = block.split_once("\n\n")?;
            head.contains("message received").then(|| msg.trim().replace("\r\n", "\n"))
        })
        .collect()
}

/// The value of header `name` in a message with `\n` line ends.
fn hdr<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().skip(1).take_while(|l| !l.trim().is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// (AOR user, token) of every REGISTER with a contact a registrar received through
/// sipborder: the token is the user part of the Contact sipborder wrote at `sbc_host`.
fn registered_tokens(trace: &str, sbc_host: &str) -> Vec<(String, String)> {
    received_messages(trace)
        .iter()
        .filter(|m| m.starts_with("REGISTER "))
        .filter_map(|m| {
            let to = hdr(m, "To")?;
            let user = to.split("sip:").nth(1)?.split('@').next()?.to_string();
            let contact = hdr(m, "Contact")?;
            let token = contact.strip_prefix("<sip:")?.split_once('@')?;
            token.1.starts_with(&format!("{sbc_host}:")).then(|| (user, token.0.to_string()))
        })
        .collect()
}

/// The token the registrar was given for `user`, waiting (bounded) for the trace to show it.
fn token_of(t: &Topology, registrar: &str, user: &str, sbc_host: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let trace = t.file_containing(registrar, "messages");
        if let Some((_, tok)) =
            registered_tokens(&trace, sbc_host).into_iter().rev().find(|(u, _)| u == user)
        {
            return tok;
        }
        assert!(
            Instant::now() < deadline,
            "the registrar never saw a REGISTER for {user} with sipborder's contact:\n{trace}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a baresip phone in the phone namespace listening on `port`, registering `user`
/// (digest user 100) through sipborder's public address at `sbc_port`; it answers calls by
/// itself and plays a sine tone. `-s` prints its SIP traffic to the log.
fn start_phone(t: &mut Topology, label: &str, port: u16, user: &str, sbc_port: u16) {
    common::require("baresip");
    let dir = t.workdir(label);
    let config = format!(
        "poll_method epoll\n\
         sip_listen {PHONE_IP}:{port}\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module ausine.so\n\
         module aubridge.so\n\
         module_app account.so\n\
         audio_source ausine,440\n\
         audio_player aubridge,nil\n\
         ausrc_srate 48000\n\
         auplay_srate 48000\n\
         ausrc_channels 2\n\
         auplay_channels 2\n"
    );
    std::fs::write(dir.join("config"), config).expect("baresip config");
    // regint: the phone itself would not refresh within the test.
    let account = format!(
        "<sip:{user}@{SBC_PUBLIC_IP}:{sbc_port}>;auth_user=100;auth_pass=secret100;\
         answermode=auto;regint=300\n"
    );
    std::fs::write(dir.join("accounts"), account).expect("baresip accounts");
    let dir = dir.to_string_lossy().to_string();
    t.spawn(label, "phone", "baresip", &["-s", "-f", &dir, "-t", "120"], &[]);
}

/// Waits (bounded) for baresip's "registered" line.
fn wait_registered(t: &Topology, label: &str) {
    assert!(
        t.wait_log(label, "{0/UDP/v4} 200 OK", Duration::from_secs(10)),
        "{label} did not register through the NAT; its log:\n{}",
        t.log(label)
    );
}

/// Packets counted by the nftables rule whose line contains `action` (`counter packets N ...`).
fn nft_packets(ruleset: &str, action: &str) -> u64 {
    ruleset
        .lines()
        .filter(|l| l.contains(action))
        .filter_map(|l| {
            l.split("counter packets ").nth(1)?.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Requests a baresip phone received with `method` (from its `-s` trace: a header line naming
/// the direction, then the request line).
fn requests_received(log: &str, method: &str) -> usize {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .windows(2)
        .filter(|w| {
            w[0].contains(&format!(" -> {PHONE_IP}:")) && w[1].starts_with(&format!("{method} "))
        })
        .count()
}

// ------------------------------------------------------------------------------------------
// Raw endpoints inside namespaces
// ------------------------------------------------------------------------------------------

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(s.as_bytes()))
}

/// A quoted parameter of a digest challenge.
fn digest_param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &challenge[start..];
    Some(rest[..rest.find('"')?].to_string())
}

/// An SDP offer/answer for PCMU at `ip:port`.
fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=test 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The connection address and audio port of an SDP body.
fn sdp_audio(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp.lines().find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?.trim();
    let port = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(sa(ip, port))
}

/// Sends `n` RTP packets (PCMU, 20 ms apart) from `sock` to `to` and counts what comes back
/// meanwhile and for half a second after; returns (received, their sources).
fn rtp_exchange(sock: &UdpSocket, to: SocketAddr, n: u16) -> (usize, Vec<SocketAddr>) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
    let mut got = 0;
    let mut sources = Vec::new();
    let mut buf = [0u8; 2048];
    let mut note = |r: std::io::Result<(usize, SocketAddr)>| {
        if let Ok((len, from)) = r {
            // The packets sent here are 172 bytes; STUN or SIP would not be.
            if len == 172 {
                got += 1;
                if !sources.contains(&from) {
                    sources.push(from);
                }
            }
        }
    };
    for seq in 0..n {
        let mut pkt = vec![0x80u8, 0];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        pkt.extend_from_slice(&[0xffu8; 160]);
        let _ = sock.send_to(&pkt, to);
        note(sock.recv_from(&mut buf));
    }
    let drain_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < drain_until {
        note(sock.recv_from(&mut buf));
    }
    (got, sources)
}

/// A minimal STUN server (sipborder's own binding-response encoder) on `addr` inside `ns`,
/// stopped when dropped.
struct StunServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl StunServer {
    fn start(ns: &str, addr: SocketAddr) -> StunServer {
        let sock = udp_in(ns, addr);
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut answered = 0;
            let mut buf = [0u8; 1500];
            // Bounded by the stop flag, checked every read timeout.
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if let Some(r) =
                        sipborder::nat::stun_responder::binding_response(&buf[..n], from)
                    {
                        let _ = sock.send_to(&r, from);
                        answered += 1;
                    }
                }
            }
            answered
        });
        StunServer { stop, thread: Some(thread) }
    }

    /// Stops it; returns how many requests it answered.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for StunServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Receives until a message matching `pred` arrives, answering any OPTIONS (sipborder's
/// keepalives) with 200 on the way; bounded by `within`.
fn recv_answering_options(
    ua: &RawUdp,
    within: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<(String, SocketAddr)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((m, from)) = ua.recv_from(left) else { continue };
        if m.starts_with("OPTIONS ") {
            let _ = ua.sock.send_to(respond(&m, 200, "OK", "ka", "", "").as_bytes(), from);
            continue;
        }
        if pred(&m) {
            return Some((m, from));
        }
    }
    None
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

/// (a) A phone behind the masquerading router registers (digest) to the PBX through
/// sipborder's registration proxy: the PBX sees sipborder's token Contact, the phone's
/// credentials, and nothing of the phone's private or NAT addresses.
#[test]
fn phone_behind_nat_registers_to_the_pbx_through_the_registration_proxy() {
    let mut t = site(true, Public::Direct);
    start_sbc(&mut t, REMOTE_PHONES);
    let reg =
        scenario_file(&t, "registrar.xml", &registrar_scenario("pbx.example", "100", "secret100"));
    sipp_uas(&mut t, "pbx", "pbx", (PBX_IP, 5060, 6000), &["-sf", &reg], &[]);
    start_phone(&mut t, "phone-a", 5060, "100", 5060);
    wait_registered(&t, "phone-a");

    let token = token_of(&t, "pbx", "100", SBC_LAN_IP);
    let at_pbx = received_messages(&t.file_containing("pbx", "messages"));
    let registers: Vec<&String> = at_pbx.iter().filter(|m| m.starts_with("REGISTER ")).collect();
    // Retransmissions (T1 is 100 ms here) may repeat one; the transactions are what count.
    let mut cseqs: Vec<&str> = registers.iter().filter_map(|m| hdr(m, "CSeq")).collect();
    cseqs.dedup();
    assert_eq!(cseqs, ["1 REGISTER", "2 REGISTER"], "challenged once, then accepted");
    let last = registers.last().expect("a REGISTER");
    assert_eq!(
        hdr(last, "Contact"),
        Some(format!("<sip:{token}@{SBC_LAN_IP}:5060>;expires=3600").as_str())
    );
    assert!(
        hdr(last, "Authorization").is_some_and(|a| a.contains("username=\"100\"")),
        "the phone's credentials cross to the PBX: {last}"
    );
    assert!(
        hdr(last, "Via").is_some_and(|v| v.contains(SBC_LAN_IP)),
        "sipborder's own leg: {last}"
    );
    for m in &at_pbx {
        assert!(
            !m.contains("192.168.77.") && !m.contains(ROUTER_WAN_IP),
            "the phone's private and NAT addresses stay outside the LAN: {m}"
        );
    }
    // The phone was seen at the router's public address: the registration crossed the NAT.
    let phone_log = t.log("phone-a");
    assert!(
        phone_log.contains(&format!("received={ROUTER_WAN_IP}")),
        "sipborder answered the NAT's address (Via received):\n{phone_log}"
    );
    assert!(
        phone_log.contains(&format!("{SBC_PUBLIC_IP}:5060 -> {PHONE_IP}:5060\nSIP/2.0 200 OK")),
        "the 200 reached the phone through the NAT:\n{phone_log}"
    );
    let ruleset = t.nft_list("router");
    assert!(
        nft_packets(&ruleset, "masquerade") > 0,
        "the router masqueraded the phone's traffic:\n{ruleset}"
    );
    assert_eq!(metric(&metrics(&t), "sipborder_registrations", &[]), 1.0);
}

/// (b) + (c) Two phones behind the same NAT register, then stay silent longer than the NAT's
/// UDP timeout. sipborder pings the first (zone keepalive 10 s) and holds its pinhole open;
/// the second (control: a zone without keepalive) loses its pinhole. The PBX then calls both:
/// the first phone gets the INVITE, answers, and audio flows both ways through the relay
/// (baresip's tone one way, SIPp echoing it back the other); the second is unreachable — which
/// shows that the pinhole really expired and the keepalives are what held the first one.
#[test]
fn idle_phone_behind_nat_is_called_after_the_nat_timeout_with_two_way_audio() {
    let mut t = site(true, Public::Direct);
    start_sbc(&mut t, REMOTE_PHONES);
    let reg =
        scenario_file(&t, "registrar.xml", &registrar_scenario("pbx.example", "100", "secret100"));
    sipp_uas(&mut t, "pbx", "pbx", (PBX_IP, 5060, 6000), &["-sf", &reg], &[]);
    start_phone(&mut t, "phone-a", 5060, "100", 5060);
    start_phone(&mut t, "phone-b", 5062, "101", 5062);
    wait_registered(&t, "phone-a");
    wait_registered(&t, "phone-b");
    let registered = Instant::now();
    let token_a = token_of(&t, "pbx", "100", SBC_LAN_IP);
    let token_b = token_of(&t, "pbx", "101", SBC_LAN_IP);

    // Silence, longer than the NAT keeps an idle UDP mapping.
    std::thread::sleep(IDLE.saturating_sub(registered.elapsed()));
    let (log_a, log_b) = (t.log("phone-a"), t.log("phone-b"));
    assert!(
        requests_received(&log_a, "OPTIONS") >= 2,
        "sipborder pinged phone A through the NAT while it was idle:\n{log_a}"
    );
    assert_eq!(requests_received(&log_b, "OPTIONS"), 0, "no keepalives in the control zone");
    for (label, log) in [("phone-a", &log_a), ("phone-b", &log_b)] {
        let sent_after_register = log
            .rsplit("{0/UDP/v4} 200 OK")
            .next()
            .map(|after| after.matches(&format!("UDP {PHONE_IP}:")).count())
            .unwrap_or(0);
        let answers = requests_received(log, "OPTIONS");
        assert_eq!(
            sent_after_register, answers,
            "{label} sent nothing of its own while idle (only answers to keepalives):\n{log}"
        );
    }

    // The PBX calls both phones at once.
    let lan = sa(SBC_LAN_IP, 5060);
    let call = |label: &'static str, token: String, port: u16, mp: u16, t: &Topology| {
        sipp_uac(
            t,
            label,
            "pbx",
            lan,
            (PBX_IP, port, mp),
            &["-sn", "uac", "-s", &token],
            &["-d", "3000", "-rtp_echo"],
            Duration::from_secs(25),
        )
    };
    let (rc_a, rc_b) = std::thread::scope(|s| {
        let b = s.spawn(|| call("call-b", token_b.clone(), 5072, 6200, &t));
        let a = call("call-a", token_a.clone(), 5070, 6100, &t);
        (a, b.join().unwrap_or(-2))
    });
    let log_a = t.log("phone-a");
    assert_eq!(
        rc_a,
        0,
        "the call to the kept-alive phone completed; SIPp:\n{}\nerrors:\n{}\nphone:\n{log_a}",
        t.log("call-a"),
        t.file_containing("call-a", "errors")
    );
    assert!(requests_received(&log_a, "INVITE") >= 1, "phone A got the INVITE:\n{log_a}");
    assert!(log_a.contains("Call established"), "phone A answered:\n{log_a}");
    assert!(
        log_a.contains(&format!(
            "incoming rtp for 'audio' established, receiving from {SBC_PUBLIC_IP}:"
        )),
        "phone A heard the PBX side through the relay:\n{log_a}"
    );
    // (c) both directions crossed the relay: the tone phone→PBX, SIPp's echo PBX→phone.
    let (to_phone, from_phone) = wait_rtp(&t, 50.0);
    assert!(
        to_phone >= 50.0 && from_phone >= 50.0,
        "RTP relayed both ways during the 3 s call: PBX→phone {to_phone}, phone→PBX {from_phone}"
    );
    let log_b = t.log("phone-b");
    assert_ne!(rc_b, 0, "the control phone's pinhole expired, its call must fail");
    // ... because sipborder's INVITE died at the NAT (timer B: 408), not for want of a binding.
    let at_pbx_b = received_messages(&t.file_containing("call-b", "messages"));
    assert!(
        at_pbx_b.iter().any(|m| m.starts_with("SIP/2.0 408")),
        "the control call timed out toward the phone: {at_pbx_b:#?}"
    );
    assert_eq!(requests_received(&log_b, "INVITE"), 0, "nothing reached phone B:\n{log_b}");
    let m = metrics(&t);
    assert_eq!(metric(&m, "sipborder_bindings_dropped_total", &[]), 0.0, "phone A stayed bound");
}

/// (d) A phone whose router's ALG rewrote its Via and Contact wrongly (a private address and
/// port where nothing listens) and whose SDP names that address too: it still registers, gets
/// the PBX's call and has audio both ways, because sipborder answers and sends to where the
/// packets came from (rport, the binding's flow, media latching), never to what the message
/// says.
#[test]
fn phone_whose_alg_mangled_contact_is_wrong_is_still_reachable() {
    let mut t = site(true, Public::Direct);
    start_sbc(&mut t, REMOTE_PHONES);
    let reg =
        scenario_file(&t, "registrar.xml", &registrar_scenario("pbx.example", "100", "secret100"));
    sipp_uas(&mut t, "pbx", "pbx", (PBX_IP, 5060, 6000), &["-sf", &reg], &[]);
    let phone = RawUdp { sock: udp_in(&t.ns("phone"), sa(PHONE_IP, 5070)) };
    let rtp = udp_in(&t.ns("phone"), sa(PHONE_IP, 40000));
    let bogus = "10.99.99.99:5999";
    let contact = format!("sip:200@{bogus}");
    let sbc = sa(SBC_PUBLIC_IP, 5060);

    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{SBC_PUBLIC_IP} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {bogus};rport;branch=z9hG4bKalg{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:200@{SBC_PUBLIC_IP}>;tag=alg1\r\n\
             To: <sip:200@{SBC_PUBLIC_IP}>\r\n\
             Call-ID: alg-phone-1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>\r\n\
             Expires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n"
        )
    };
    let _ = phone.sock.send_to(register(1, "").as_bytes(), sbc);
    let (challenge, _) = phone
        .recv_until(Duration::from_secs(5), |m| m.starts_with("SIP/2.0 401"))
        .expect("the PBX's challenge reached the phone despite the bogus Via");
    let www = header(&challenge, "WWW-Authenticate").expect("challenge").to_string();
    let (realm, nonce) =
        (digest_param(&www, "realm").expect("realm"), digest_param(&www, "nonce").expect("nonce"));
    let uri = format!("sip:{SBC_PUBLIC_IP}");
    let response = md5_hex(&format!(
        "{}:{nonce}:{}",
        md5_hex(&format!("100:{realm}:secret100")),
        md5_hex(&format!("REGISTER:{uri}"))
    ));
    let auth = format!(
        "Authorization: Digest username=\"100\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n"
    );
    let _ = phone.sock.send_to(register(2, &auth).as_bytes(), sbc);
    let (ok, _) = phone
        .recv_until(Duration::from_secs(5), |m| m.starts_with("SIP/2.0 "))
        .expect("an answer to the authenticated REGISTER");
    assert!(ok.starts_with("SIP/2.0 200"), "registered: {ok}");
    for r in [&challenge, &ok] {
        assert!(
            header(r, "To").and_then(common::tag).is_some(),
            "a final response carries sipborder's To tag (RFC 3261 §8.2.6.2): {r}"
        );
    }
    assert!(
        header(&ok, "Via").is_some_and(|v| v.contains(&format!("received={ROUTER_WAN_IP}"))),
        "sipborder saw the NAT's address, not the Via's: {ok}"
    );
    let token = token_of(&t, "pbx", "200", SBC_LAN_IP);
    for m in received_messages(&t.file_containing("pbx", "messages")) {
        assert!(!m.contains("10.99.99.99"), "the mangled address stays at the edge: {m}");
    }

    // The PBX calls the phone; SIPp echoes the phone's RTP back.
    let lan = sa(SBC_LAN_IP, 5060);
    let (rc, invite, from, echoed) = std::thread::scope(|s| {
        let caller = s.spawn(|| {
            sipp_uac(
                &t,
                "call",
                "pbx",
                lan,
                (PBX_IP, 5070, 6100),
                &["-sn", "uac", "-s", &token],
                &["-d", "2000", "-rtp_echo"],
                Duration::from_secs(20),
            )
        });
        let Some((invite, from)) =
            recv_answering_options(&phone, Duration::from_secs(10), |m| m.starts_with("INVITE "))
        else {
            let rc = caller.join().unwrap_or(-2);
            panic!("the INVITE never reached the phone (SIPp exit {rc}):\n{}", t.log("call"));
        };
        let offer = sdp_audio(body(&invite)).expect("an SDP offer");
        let answer = sdp("10.99.99.99", 5998);
        let ok = respond(
            &invite,
            200,
            "OK",
            "algph",
            &format!("Contact: <{contact}>\r\nContent-Type: application/sdp\r\n"),
            &answer,
        );
        let _ = phone.sock.send_to(ok.as_bytes(), from);
        let echoed = rtp_exchange(&rtp, offer, 75);
        // The call ends with the PBX's BYE after its 2 s pause; retransmitted INVITEs and
        // keepalives meanwhile get their answer again.
        let bye = recv_answering_options(&phone, Duration::from_secs(10), |m| {
            if m.starts_with("INVITE ") {
                let _ = phone.sock.send_to(ok.as_bytes(), from);
            }
            m.starts_with("BYE ")
        });
        if let Some((bye, bfrom)) = bye {
            let _ = phone.sock.send_to(respond(&bye, 200, "OK", "algph", "", "").as_bytes(), bfrom);
        }
        (caller.join().unwrap_or(-2), invite, from, echoed)
    });
    assert_eq!(
        rc,
        0,
        "the PBX's call completed; SIPp:\n{}\nerrors:\n{}",
        t.log("call"),
        t.file_containing("call", "errors")
    );
    assert!(
        invite.starts_with(&format!("INVITE {contact} SIP/2.0")),
        "the Request-URI is what the phone registered; the packet went to its NAT flow: {invite}"
    );
    assert_eq!(from, sbc, "the INVITE came from sipborder's public address");
    let (got, sources) = echoed;
    assert!(got >= 30, "the phone's RTP came back through the relay: {got} of 75");
    assert!(sources.iter().all(|s| s.ip().to_string() == SBC_PUBLIC_IP), "{sources:?}");
    let (to_phone, from_phone) = wait_rtp(&t, 30.0);
    assert!(to_phone >= 30.0 && from_phone >= 30.0, "relayed: {to_phone} / {from_phone}");
}

/// The carrier's half of a call it places to sipborder's public address (raw, inside the
/// inet namespace): INVITE, the answer checked, RTP both ways, BYE. Returns every message it
/// received.
fn carrier_calls_in(t: &Topology) -> Vec<String> {
    let ua = RawUdp { sock: udp_in(&t.ns("inet"), sa(ITSP_IP, 5060)) };
    let rtp = udp_in(&t.ns("inet"), sa(ITSP_IP, 40000));
    let sbc = sa(SBC_PUBLIC_IP, 5060);
    let offer = sdp(ITSP_IP, 40000);
    let invite = format!(
        "INVITE sip:5551000@{SBC_PUBLIC_IP} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ITSP_IP}:5060;branch=z9hG4bKcarrier1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:4930999@{ITSP_IP}>;tag=car1\r\n\
         To: <sip:5551000@{SBC_PUBLIC_IP}>\r\n\
         Call-ID: carrier-call-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:4930999@{ITSP_IP}:5060>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    let _ = ua.sock.send_to(invite.as_bytes(), sbc);
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    let (ok, from) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no 200 OK through the 1:1 NAT; got {seen:#?}");
        if let Some((m, from)) = ua.recv_from(left) {
            seen.push(m.clone());
            if m.starts_with("SIP/2.0 200") {
                break (m, from);
            }
        }
    };
    assert_eq!(from, sbc, "answers come from the public address (SNAT)");
    let to = header(&ok, "To").unwrap_or("").to_string();
    let ack = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} sip:{SBC_PUBLIC_IP}:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ITSP_IP}:5060;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:4930999@{ITSP_IP}>;tag=car1\r\n\
             To: {to}\r\n\
             Call-ID: carrier-call-1\r\n\
             CSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let _ = ua.sock.send_to(ack("ACK", 1, "z9hG4bKcarrier2").as_bytes(), sbc);
    let relay = sdp_audio(body(&ok)).expect("SDP in the 200");
    assert_eq!(relay.ip().to_string(), SBC_PUBLIC_IP, "media at the advertised address: {ok}");
    // RTP to the advertised relay address is DNATed inside and echoed back by the PBX.
    let (got, sources) = rtp_exchange(&rtp, relay, 50);
    assert!(got >= 20, "RTP through the 1:1 NAT both ways: {got} of 50 came back");
    assert_eq!(sources, vec![relay], "the echo comes from the advertised relay address");
    let _ = ua.sock.send_to(ack("BYE", 2, "z9hG4bKcarrier3").as_bytes(), sbc);
    let (bye_ok, _) =
        ua.recv_until(Duration::from_secs(5), |m| m.contains("CSeq: 2 BYE")).expect("BYE answered");
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    seen.push(bye_ok);
    seen
}

/// The PBX calls out to the carrier (raw, inside the inet namespace) through sipborder behind
/// the 1:1 NAT; returns the INVITE as the carrier received it and its source.
fn pbx_calls_out(t: &Topology) -> (String, SocketAddr) {
    let ua = RawUdp { sock: udp_in(&t.ns("inet"), sa(ITSP_IP, 5060)) };
    let lan = sa(SBC_LAN_IP, 5060);
    std::thread::scope(|s| {
        let caller = s.spawn(|| {
            sipp_uac(
                t,
                "pbx-out",
                "pbx",
                lan,
                (PBX_IP, 5070, 6100),
                &["-sn", "uac", "-s", "4930777"],
                &["-d", "1000"],
                Duration::from_secs(20),
            )
        });
        let (invite, from) = ua
            .recv_until(Duration::from_secs(8), |m| m.starts_with("INVITE "))
            .unwrap_or_else(|| panic!("no INVITE reached the carrier:\n{}", t.log("pbx-out")));
        let ok = respond(
            &invite,
            200,
            "OK",
            "car2",
            &format!("Contact: <sip:4930777@{ITSP_IP}:5060>\r\nContent-Type: application/sdp\r\n"),
            &sdp(ITSP_IP, 40002),
        );
        let _ = ua.sock.send_to(ok.as_bytes(), from);
        let bye = ua.recv_until(Duration::from_secs(8), |m| {
            if m.starts_with("INVITE ") {
                let _ = ua.sock.send_to(ok.as_bytes(), from);
            }
            m.starts_with("BYE ")
        });
        if let Some((bye, bfrom)) = bye {
            let _ = ua.sock.send_to(respond(&bye, 200, "OK", "car2", "", "").as_bytes(), bfrom);
        }
        let rc = caller.join().unwrap_or(-2);
        assert_eq!(
            rc,
            0,
            "the PBX's outbound call completed; SIPp:\n{}\n{}",
            t.log("pbx-out"),
            t.file_containing("pbx-out", "errors")
        );
        (invite, from)
    })
}

/// What the outside must see of sipborder behind a 1:1 NAT: the public address in Via,
/// Contact and SDP, the inside addresses nowhere.
fn assert_public_identity(invite: &str, from: SocketAddr) {
    assert_eq!(from, sa(SBC_PUBLIC_IP, 5060), "sent from the public address (SNAT, port kept)");
    let via = headers(invite, "Via");
    assert_eq!(via.len(), 1, "one Via, sipborder's own: {invite}");
    assert!(via[0].starts_with(&format!("SIP/2.0/UDP {SBC_PUBLIC_IP}")), "{invite}");
    assert!(
        header(invite, "Contact").is_some_and(|c| c.contains(&format!("@{SBC_PUBLIC_IP}"))
            || c.contains(&format!("sip:{SBC_PUBLIC_IP}"))),
        "{invite}"
    );
    let media = sdp_audio(body(invite)).expect("SDP offer");
    assert_eq!(media.ip().to_string(), SBC_PUBLIC_IP, "{invite}");
    assert!(
        body(invite).lines().any(|l| l.starts_with("o=") && l.trim_end().ends_with(SBC_PUBLIC_IP)),
        "{invite}"
    );
    assert!(!invite.contains("172.31.77.") && !invite.contains("10.77.0."), "{invite}");
}

/// (e) sipborder behind a static 1:1 NAT with `advertise`: a call from the public side reaches
/// the PBX and its answer, SDP and media carry the public address; a call from the PBX leaves
/// with the public address in Via, Contact and SDP. The inside address never shows outside.
#[test]
fn sipborder_behind_one_to_one_nat_advertises_its_public_address() {
    let mut t = site(false, Public::OneToOneNat);
    let public = format!("advertise: {SBC_PUBLIC_IP}");
    let yaml = BEHIND_ONE_TO_ONE.replace("PUBLIC", &public).replace(
        "ports: 30000-30999 }",
        &format!("ports: 30000-30999, advertise: {SBC_PUBLIC_IP} }}"),
    );
    start_sbc(&mut t, &yaml);
    sipp_uas(&mut t, "pbx", "pbx", (PBX_IP, 5060, 6000), &["-sn", "uas"], &["-rtp_echo"]);

    let seen = carrier_calls_in(&t);
    for m in &seen {
        assert!(!m.contains("172.31.77.") && !m.contains("10.77.0."), "inside address leaked: {m}");
    }
    let ok =
        seen.iter().find(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE")).expect("200");
    assert!(
        header(ok, "Contact").is_some_and(|c| c.contains(SBC_PUBLIC_IP)),
        "the answer's Contact is the public address: {ok}"
    );
    assert!(
        body(ok).lines().any(|l| l.starts_with("o=") && l.trim_end().ends_with(SBC_PUBLIC_IP)),
        "{ok}"
    );
    assert!(
        received_messages(&t.file_containing("pbx", "messages"))
            .iter()
            .any(|m| m.starts_with("INVITE ")),
        "the PBX got the call"
    );

    let (invite, from) = pbx_calls_out(&t);
    assert_public_identity(&invite, from);
    let rules = t.nft_list("edge");
    // NAT rules see only a flow's first packet: the SIP and RTP flows were opened from
    // outside, their replies were translated back by conntrack (checked above by source).
    assert!(nft_packets(&rules, "dnat to") > 0, "traffic was DNATed:\n{rules}");
}

/// (e, STUN) The same 1:1 NAT, but sipborder is not told its public address: it asks a STUN
/// server on the internet side at start and advertises what it learns.
#[test]
fn sipborder_behind_one_to_one_nat_learns_its_public_address_with_stun() {
    let mut t = site(false, Public::OneToOneNat);
    let stun = StunServer::start(&t.ns("inet"), sa(ITSP_IP, 3478));
    let yaml = BEHIND_ONE_TO_ONE.replace("PUBLIC", &format!("stun: {{ server: {ITSP_IP}:3478 }}"));
    start_sbc(&mut t, &yaml);
    assert!(
        t.log("sipborder").contains("public address discovered with STUN"),
        "{}",
        t.log("sipborder")
    );
    let (invite, from) = pbx_calls_out(&t);
    assert_public_identity(&invite, from);
    assert!(stun.finish() >= 1, "sipborder asked the STUN server");
}

/// (f) The PBX registers its ITSP trunk through sipborder (registration proxy on the LAN zone,
/// registrar = the ITSP): the ITSP sees sipborder's public token Contact and the PBX's digest;
/// the ITSP then calls that contact and the call reaches the PBX on the socket it registered
/// from — no route leads there otherwise.
#[test]
fn pbx_registers_its_trunk_through_sipborder_and_receives_an_inbound_call() {
    let mut t = site(false, Public::Direct);
    start_sbc(&mut t, PBX_TRUNK_REGISTRATION);
    let reg = scenario_file(
        &t,
        "itsp-registrar.xml",
        &registrar_scenario("itsp.example", "4930123", "itsp-secret"),
    );
    sipp_uas(&mut t, "itsp", "inet", (ITSP_IP, 5060, 6000), &["-sf", &reg], &[]);
    let pbx_reg = scenario_file(&t, "pbx-register.xml", PBX_REGISTER);
    let rc = sipp_uac(
        &t,
        "pbx-register",
        "pbx",
        sa(SBC_LAN_IP, 5060),
        (PBX_IP, 5060, 6000),
        &["-sf", &pbx_reg],
        // Real PBXs sign the Request-URI; SIPp signs its peer's address unless told.
        &["-auth_uri", "itsp.example"],
        Duration::from_secs(15),
    );
    assert_eq!(
        rc,
        0,
        "the PBX registered through sipborder:\n{}\n{}",
        t.log("pbx-register"),
        t.file_containing("pbx-register", "errors")
    );
    let at_pbx = received_messages(&t.file_containing("pbx-register", "messages"));
    let ok = at_pbx.iter().find(|m| m.starts_with("SIP/2.0 200")).expect("200 at the PBX");
    assert_eq!(
        hdr(ok, "Contact"),
        Some(format!("<sip:4930123@{PBX_IP}:5060>;expires=120").as_str()),
        "the PBX refreshes at sipborder's short expiry: {ok}"
    );
    let token = token_of(&t, "itsp", "4930123", SBC_PUBLIC_IP);
    for m in received_messages(&t.file_containing("itsp", "messages")) {
        assert!(!m.contains("10.77.0."), "the LAN stays hidden from the ITSP: {m}");
    }

    // The PBX now takes calls on the socket it registered from.
    sipp_uas(&mut t, "pbx", "pbx", (PBX_IP, 5060, 6000), &["-sn", "uas"], &["-rtp_echo"]);
    let rc = sipp_uac(
        &t,
        "itsp-call",
        "inet",
        sa(SBC_PUBLIC_IP, 5060),
        (ITSP_IP, 5062, 6100),
        &["-sn", "uac", "-s", &token],
        &["-d", "1000"],
        Duration::from_secs(20),
    );
    assert_eq!(
        rc,
        0,
        "the ITSP's call to the token contact completed:\n{}\n{}\nsipborder:\n{}",
        t.log("itsp-call"),
        t.file_containing("itsp-call", "errors"),
        t.log("sipborder")
    );
    let invites: Vec<String> = received_messages(&t.file_containing("pbx", "messages"))
        .into_iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect();
    assert!(!invites.is_empty(), "the call reached the PBX");
    assert!(
        invites[0].starts_with(&format!("INVITE sip:4930123@{PBX_IP}:5060 SIP/2.0")),
        "addressed to the Contact the PBX registered: {}",
        invites[0]
    );
    assert!(!invites[0].contains(ITSP_IP), "the ITSP stays hidden from the LAN: {}", invites[0]);
}

/// The README's site-edge example is a valid configuration (`sipborder check`).
#[test]
fn readme_site_edge_example_is_a_valid_config() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## Site edge")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a '## Site edge' section in README.md");
    let blocks: Vec<&str> =
        section.split("```yaml\n").skip(1).filter_map(|b| b.split("\n```").next()).collect();
    assert!(!blocks.is_empty(), "the section has YAML examples");
    let dir = common::TempDir::new("readme-site-edge");
    for (i, yaml) in blocks.iter().enumerate() {
        let path = dir.path(&format!("example{i}.yaml"));
        std::fs::write(&path, yaml).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipborder"))
            .arg("check")
            .arg("-c")
            .arg(&path)
            .output()
            .expect("run sipborder check");
        assert!(
            out.status.success(),
            "README site-edge example {i} is rejected:\n{}{}\n{yaml}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
