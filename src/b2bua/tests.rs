//! Whole-shard tests: a [`Shard`] driven with a fake clock and raw SIP text, asserting on what
//! sipborder sends on each leg.
//!
//! The harness plays every peer: the phone or PBX on the LAN (leg A of outbound calls), the ITSP
//! edges on the trunk zone (leg B), and the reverse for inbound calls. Time only moves when a test
//! calls [`Harness::advance`], which fires every deadline the shard asked for on the way.

mod dtmf;

use crate::b2bua::Router;
use crate::shard::Shard;
use crate::sip::headers::{addr_uri, param};
use crate::sip::message::{SipMsg, Transport};
use crate::sip::parse::{parse, Limits};
use crate::sip::wire::reason_phrase;
use crate::transport::flow::{ConnId, Flow, ZoneId};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const T4: Duration = Duration::from_secs(5);

/// LAN zone 0 (10.0.0.1), trunk zone 1 (203.0.113.1); two ITSP edges and a PBX.
const CONFIG: &str = "
zones:
  - name: lan
    udp: 10.0.0.1:5060
    tcp: 10.0.0.1:5060
    media: { address: 127.0.0.1, advertise: 10.0.0.1, ports: 30000-31999 }
  - name: trunk
    udp: 203.0.113.1:5060
    tcp: 203.0.113.1:5060
    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }
trunks:
  - name: itsp
    zone: trunk
    address: 198.51.100.10:5060
  - name: itsp-backup
    zone: trunk
    address: 198.51.100.11:5060
  - name: pbx
    zone: lan
    address: 10.0.0.50:5060
routes:
  - name: lan-out
    from: lan
    targets: [itsp, itsp-backup]
  - name: trunk-in
    from: trunk
    targets: [pbx]
";

/// Asserts `got` is `original` anchored toward a zone whose SDP address is `ip`: sipborder's
/// `o=`, every `c=` and `a=rtcp` naming `ip`, relay ports in `m=` (0 stays 0), every other
/// line byte-identical.
fn assert_anchored(got: &str, original: &str, ip: &str) {
    let g: Vec<&str> = got.split("\r\n").collect();
    let o: Vec<&str> = original.split("\r\n").collect();
    assert_eq!(g.len(), o.len(), "same lines:\n{got}\n--- vs ---\n{original}");
    for (a, b) in g.iter().zip(&o) {
        if let Some(rest) = a.strip_prefix("o=") {
            assert!(rest.starts_with("sipborder ") && rest.ends_with(ip), "{a}");
        } else if a.starts_with("c=") {
            assert!(a.ends_with(ip) || a.ends_with("0.0.0.0"), "{a}");
        } else if a.starts_with("a=rtcp:") {
            assert!(a.ends_with(ip) || !a.contains(" IN "), "{a}");
        } else if let Some(m) = a.strip_prefix("m=") {
            let port: u16 = m.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(1);
            let orig_port = b.split_whitespace().nth(1).unwrap_or("");
            assert!(port == 0 && orig_port == "0" || (30000..34000).contains(&port), "{a}");
        } else {
            assert_eq!(a, b);
        }
    }
}

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

/// One message sipborder put on the wire: where to, and the text.
type Sent = (Flow, String);

// ---------------------------------------------------------------------------------------------
// Flows (ZoneId(0) = lan, ZoneId(1) = trunk)
// ---------------------------------------------------------------------------------------------

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn udp(zone: u16, remote: &str) -> Flow {
    Flow::to(ZoneId(zone), Transport::Udp, addr(remote))
}

/// The MicroSIP softphone on the LAN.
fn phone() -> Flow {
    udp(0, "10.0.0.20:50952")
}

/// The PBX (CUCM) on the LAN; also the target of inbound calls.
fn pbx() -> Flow {
    udp(0, "10.0.0.50:5060")
}

/// The first ITSP edge.
fn itsp() -> Flow {
    udp(1, "198.51.100.10:5060")
}

/// The second ITSP edge.
fn itsp_backup() -> Flow {
    udp(1, "198.51.100.11:5060")
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

struct Harness {
    shard: Shard,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(CONFIG)
    }

    fn with_config(yaml: &str) -> Harness {
        let cfg = crate::config::load_str(yaml, "test.yaml").expect("test config is valid");
        let router = Arc::new(Router::from_config(&cfg));
        let timers = crate::server::timer_config(&cfg);
        Harness { shard: Shard::new(0, 1, router, timers), now: Instant::now() }
    }

    /// A harness whose router carries the edge guard of `yaml`'s `security:` section, as
    /// the server builds it.
    fn with_guard(yaml: &str) -> Harness {
        let cfg = crate::config::load_str(yaml, "test.yaml").expect("test config is valid");
        let mut router = Router::from_config(&cfg);
        let zones: Vec<&str> = cfg.zones.iter().map(|z| z.name.as_str()).collect();
        let trunks: Vec<&str> = cfg.trunks.iter().map(|t| t.name.as_str()).collect();
        let guard = crate::security::EdgeGuard::new(&cfg.security, &zones, &trunks)
            .expect("security section is valid");
        router.guard = Some(Arc::new(guard));
        let timers = crate::server::timer_config(&cfg);
        Harness { shard: Shard::new(0, 1, Arc::new(router), timers), now: Instant::now() }
    }

    fn drain(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        while let Some(t) = self.shard.poll_transmit() {
            out.push((t.flow, String::from_utf8(t.bytes.to_vec()).expect("UTF-8 on the wire")));
        }
        out
    }

    /// `text` arrives from `flow`; returns what sipborder sent in reaction.
    fn feed(&mut self, flow: Flow, text: &str) -> Vec<Sent> {
        let msg = parse(text.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("test message does not parse ({e}):\n{text}"));
        self.shard.handle_message(self.now, msg, flow);
        self.drain()
    }

    /// The transport reports `flow`'s peer unreachable.
    fn transport_error(&mut self, flow: Flow) -> Vec<Sent> {
        self.shard.handle_transport_error(self.now, flow);
        self.drain()
    }

    /// Fires the next deadline if it is not after `until`; None when there is none.
    fn step(&mut self, until: Instant) -> Option<Vec<Sent>> {
        let t = self.shard.poll_timeout()?;
        if t > until {
            return None;
        }
        self.now = self.now.max(t);
        self.shard.handle_timeout(self.now);
        Some(self.drain())
    }

    /// Moves the clock forward by `d`, firing every deadline on the way at its own time.
    fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let end = self.now + d;
        let mut out = Vec::new();
        let mut steps = 0;
        while let Some(o) = self.step(end) {
            out.extend(o);
            steps += 1;
            assert!(steps < 100_000, "timers do not settle");
        }
        self.now = end;
        self.shard.handle_timeout(end);
        out.extend(self.drain());
        out
    }

    /// Lets every transaction and call timer run out.
    fn settle(&mut self) -> Vec<Sent> {
        self.advance(T1 * 64 + T4 + T2)
    }

    /// Nothing of any call is left once the timers ran out.
    fn assert_clean(&mut self) {
        self.settle();
        let b = self.shard.b2bua();
        assert_eq!(b.calls(), 0, "calls left in the table");
        assert_eq!(b.dialogs(), 0, "dialog index entries left: {:?}", b.dialogs);
        assert_eq!(self.shard.transactions().len(), 0, "transactions left");
        assert!(b.clients.is_empty(), "client transaction roles left: {:?}", b.clients);
        assert!(b.invite_servers.is_empty(), "INVITE server index left");
        assert!(b.own_call_ids.is_empty(), "own Call-IDs left: {:?}", b.own_call_ids);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading what was sent
// ---------------------------------------------------------------------------------------------

fn msg(text: &str) -> SipMsg {
    parse(text.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("sipborder sent something that does not parse ({e}):\n{text}"))
}

/// Start line and header section.
fn head(text: &str) -> &str {
    text.split_once("\r\n\r\n").map_or(text, |(h, _)| h)
}

fn body(text: &str) -> &str {
    text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn hdr_opt(text: &str, name: &str) -> Option<String> {
    msg(text).header(name).map(str::to_string)
}

fn hdr(text: &str, name: &str) -> String {
    hdr_opt(text, name).unwrap_or_else(|| panic!("no {name} header in:\n{text}"))
}

fn to_tag(text: &str) -> Option<String> {
    msg(text).to_tag
}

fn from_tag(text: &str) -> Option<String> {
    msg(text).from_tag
}

fn call_id(text: &str) -> String {
    msg(text).call_id
}

fn cseq(text: &str) -> String {
    hdr(text, "CSeq")
}

fn branch(text: &str) -> String {
    msg(text).via.branch.expect("top Via has a branch")
}

fn is_req(text: &str, method: &str) -> bool {
    text.starts_with(&format!("{method} "))
}

fn is_resp(text: &str, code: u16) -> bool {
    text.starts_with(&format!("SIP/2.0 {code} "))
}

/// Private IPv4 addresses (10/8, 172.16/12, 192.168/16) written anywhere in `text`.
fn private_ips(text: &str) -> Vec<Ipv4Addr> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.trim_matches('.').parse::<Ipv4Addr>().ok())
        .filter(Ipv4Addr::is_private)
        .collect()
}

fn dump(out: &[Sent]) -> String {
    out.iter()
        .map(|(f, t)| format!("--> {:?} {}\n{}", f.transport, f.remote, head(t)))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The one message of `out` matching `pred` (`what` names it in the failure).
fn only<'a>(out: &'a [Sent], what: &str, pred: impl Fn(&Flow, &str) -> bool) -> &'a Sent {
    let m: Vec<&Sent> = out.iter().filter(|(f, t)| pred(f, t)).collect();
    assert_eq!(m.len(), 1, "expected exactly one {what}, got {}:\n{}", m.len(), dump(out));
    m[0]
}

fn count(out: &[Sent], pred: impl Fn(&Flow, &str) -> bool) -> usize {
    out.iter().filter(|(f, t)| pred(f, t)).count()
}

/// The one `method` request sent to `flow`.
fn req_to(out: &[Sent], flow: Flow, method: &str) -> String {
    let what = format!("{method} to {}", flow.remote);
    only(out, &what, |f, t| *f == flow && is_req(t, method)).1.clone()
}

/// The one `code` response sent to `flow`.
fn resp_to(out: &[Sent], flow: Flow, code: u16) -> String {
    let what = format!("{code} to {}", flow.remote);
    only(out, &what, |f, t| *f == flow && is_resp(t, code)).1.clone()
}

fn none_to(out: &[Sent], flow: Flow) {
    assert!(
        out.iter().all(|(f, _)| *f != flow),
        "expected nothing toward {}:\n{}",
        flow.remote,
        dump(out)
    );
}

// ---------------------------------------------------------------------------------------------
// Writing messages
// ---------------------------------------------------------------------------------------------

static NEXT_BRANCH: AtomicU64 = AtomicU64::new(1);

fn new_branch() -> String {
    format!("z9hG4bKtest{}", NEXT_BRANCH.fetch_add(1, Ordering::Relaxed))
}

/// A wire message: start line, header lines, Content-Length computed, body.
fn build(start: &str, headers: &[String], body: &str) -> String {
    let mut s = format!("{start}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s
}

/// Rewrites a wire message: the start line with `start` (when given) and each header line with
/// what `f` returns for it (nothing drops it); Content-Length is recomputed.
fn rewrite(text: &str, start: Option<&str>, f: impl Fn(&str) -> Vec<String>) -> String {
    let (head, body) = text.split_once("\r\n\r\n").expect("blank line after the headers");
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let hs: Vec<String> = lines
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .flat_map(&f)
        .collect();
    build(start.unwrap_or(first), &hs, body)
}

/// The vector `name` (a request within a dialog) moved into `template`'s dialog: the start line
/// and the headers that name the dialog and the hop (Via, From, To, Call-ID, CSeq, Contact,
/// Max-Forwards) are the template's; every other header is the vector's, byte for byte.
fn vector_in_dialog(name: &str, template: &str) -> String {
    const OWN: [&str; 7] =
        ["via:", "from:", "to:", "call-id:", "cseq:", "contact:", "max-forwards:"];
    let own = |l: &str| OWN.iter().any(|p| l.to_ascii_lowercase().starts_with(p));
    let (head, _) = template.split_once("\r\n\r\n").expect("template head");
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let ours: Vec<String> = lines.filter(|l| own(l)).map(str::to_string).collect();
    let placed = std::cell::Cell::new(false);
    rewrite(&vector(name), Some(start), |l| {
        match (own(l), placed.replace(placed.get() || own(l))) {
            (true, false) => ours.clone(),
            (true, true) => vec![],
            (false, _) => vec![l.to_string()],
        }
    })
}

fn vector(name: &str) -> String {
    let path = format!("{VECTORS}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// The MicroSIP INVITE of seed002 (early offer, rport, 100rel supported), sent to a number via
/// sipborder's LAN address, with a preloaded Route and a Record-Route added so both can be
/// checked not to cross. `with_100rel: false` drops 100rel from Supported.
fn microsip_invite(with_100rel: bool) -> String {
    rewrite(
        &vector("seed002/d2_01_invite_microsip.sip"),
        Some("INVITE sip:0123456789@10.0.0.1 SIP/2.0"),
        |l| {
            if l.starts_with("To:") {
                vec!["To: <sip:0123456789@10.0.0.1>".into()]
            } else if l.starts_with("Contact:") {
                vec![
                    l.to_string(),
                    "Record-Route: <sip:10.0.0.5;lr;ftag=rr-secret>".into(),
                    "Route: <sip:10.0.0.1;lr;x=route-secret>".into(),
                ]
            } else if l.starts_with("Supported:") && !with_100rel {
                vec!["Supported: replaces, timer, norefersub".into()]
            } else {
                vec![l.to_string()]
            }
        },
    )
}

const MICROSIP_BRANCH: &str = "z9hG4bKPj15728c40ffd34c83b084dc67d9e93d9c";
const MICROSIP_CALL_ID: &str = "6c46d346e3084913a77014b523c9e389";
const MICROSIP_FROM_TAG: &str = "cb9e96b542084e3db354b9a6e98e5527";
const MICROSIP_CONTACT: &str = "192.168.80.11:50952";

/// A plain INVITE from `flow` to `ruri`, its own Call-ID and tag.
fn invite(flow: Flow, ruri: &str, extra: &[&str], body: &str) -> String {
    let n = NEXT_BRANCH.fetch_add(1, Ordering::Relaxed);
    let host = flow.remote.ip();
    let mut hs = vec![
        format!("Via: SIP/2.0/UDP {};branch={}", flow.remote, new_branch()),
        "Max-Forwards: 70".to_string(),
        format!("From: \"Caller\" <sip:200@{host}>;tag=caller-{n}"),
        format!("To: <{ruri}>"),
        format!("Call-ID: call-{n}@{host}"),
        "CSeq: 10 INVITE".to_string(),
        format!("Contact: <sip:200@{}>", flow.remote),
    ];
    hs.extend(extra.iter().map(|s| s.to_string()));
    if !body.is_empty() {
        hs.push("Content-Type: application/sdp".into());
    }
    build(&format!("INVITE {ruri} SIP/2.0"), &hs, body)
}

/// A response to `req` as its recipient would write it: Via list, From, To (with `to_tag` added
/// when To had none), Call-ID and CSeq copied, then `extra` and `body`.
fn reply(req: &str, code: u16, to_tag: Option<&str>, extra: &[&str], body: &str) -> String {
    let m = msg(req);
    let mut hs: Vec<String> = m.header_all("Via").map(|v| format!("Via: {v}")).collect();
    hs.push(format!("From: {}", hdr(req, "From")));
    let to = hdr(req, "To");
    let to = match to_tag {
        Some(t) if param(&to, "tag").is_none() && code > 100 => format!("{to};tag={t}"),
        _ => to,
    };
    hs.push(format!("To: {to}"));
    hs.push(format!("Call-ID: {}", m.call_id));
    hs.push(format!("CSeq: {}", cseq(req)));
    hs.extend(extra.iter().map(|s| s.to_string()));
    build(&format!("SIP/2.0 {code} {}", reason_phrase(code)), &hs, body)
}

/// The ACK of a non-2xx final `resp` to `invite` (same branch, To from the response).
fn ack_non_2xx(invite: &str, resp: &str) -> String {
    let m = msg(invite);
    let uri = m.request_uri().expect("a request").to_string();
    let hs = vec![
        format!("Via: {}", hdr(invite, "Via")),
        "Max-Forwards: 70".to_string(),
        format!("From: {}", hdr(invite, "From")),
        format!("To: {}", hdr(resp, "To")),
        format!("Call-ID: {}", m.call_id),
        format!("CSeq: {} ACK", m.cseq),
    ];
    build(&format!("ACK {uri} SIP/2.0"), &hs, "")
}

/// The CANCEL of `invite` (same Request-URI, top Via, From, To, Call-ID, CSeq number).
fn cancel_of(invite: &str) -> String {
    let m = msg(invite);
    let uri = m.request_uri().expect("a request").to_string();
    let hs = vec![
        format!("Via: {}", hdr(invite, "Via")),
        "Max-Forwards: 70".to_string(),
        format!("From: {}", hdr(invite, "From")),
        format!("To: {}", hdr(invite, "To")),
        format!("Call-ID: {}", m.call_id),
        format!("CSeq: {} CANCEL", m.cseq),
    ];
    build(&format!("CANCEL {uri} SIP/2.0"), &hs, "")
}

/// One end of a dialog as the peer (not sipborder) sees it.
#[derive(Debug, Clone)]
struct Peer {
    flow: Flow,
    call_id: String,
    /// The peer's own From value (with its tag).
    from: String,
    /// sipborder's side (with sipborder's tag).
    to: String,
    /// Request-URI of requests: sipborder's Contact.
    target: String,
    contact: String,
    cseq: u32,
}

impl Peer {
    /// The caller: it sent `invite` and sipborder answered `answer` (any response with a tag).
    fn caller(flow: Flow, invite: &str, answer: &str) -> Peer {
        let m = msg(invite);
        Peer {
            flow,
            call_id: m.call_id.clone(),
            from: hdr(invite, "From"),
            to: hdr(answer, "To"),
            target: addr_uri(&hdr(answer, "Contact")).to_string(),
            contact: hdr(invite, "Contact"),
            cseq: m.cseq,
        }
    }

    /// The callee: sipborder sent it `invite` and it answered with tag `tag` and `contact`.
    fn callee(flow: Flow, invite: &str, tag: &str, contact: &str) -> Peer {
        Peer {
            flow,
            call_id: call_id(invite),
            from: format!("{};tag={tag}", hdr(invite, "To")),
            to: hdr(invite, "From"),
            target: addr_uri(&hdr(invite, "Contact")).to_string(),
            contact: contact.to_string(),
            cseq: 100,
        }
    }

    /// A new request within the dialog (next CSeq).
    fn request(&mut self, method: &str, extra: &[&str], body: &str) -> String {
        self.cseq += 1;
        self.request_cseq(method, self.cseq, extra, body)
    }

    /// The ACK of a 2xx to the INVITE with CSeq `cseq`.
    fn ack(&self, cseq: u32, body: &str) -> String {
        let extra: &[&str] = if body.is_empty() { &[] } else { &["Content-Type: application/sdp"] };
        self.request_cseq("ACK", cseq, extra, body)
    }

    fn request_cseq(&self, method: &str, cseq: u32, extra: &[&str], body: &str) -> String {
        let mut hs = vec![
            format!("Via: SIP/2.0/UDP {};rport;branch={}", self.flow.remote, new_branch()),
            "Max-Forwards: 70".to_string(),
            format!("From: {}", self.from),
            format!("To: {}", self.to),
            format!("Call-ID: {}", self.call_id),
            format!("CSeq: {cseq} {method}"),
        ];
        if matches!(method, "INVITE" | "UPDATE" | "REFER" | "NOTIFY" | "SUBSCRIBE") {
            hs.push(format!("Contact: {}", self.contact));
        }
        hs.extend(extra.iter().map(|s| s.to_string()));
        build(&format!("{method} {} SIP/2.0", self.target), &hs, body)
    }

    /// A response of ours to a request sipborder sent this peer.
    fn answer(&self, req: &str, code: u16, extra: &[&str], body: &str) -> String {
        let contact = format!("Contact: {}", self.contact);
        let mut hs: Vec<&str> = vec![contact.as_str()];
        hs.extend_from_slice(extra);
        reply(req, code, None, &hs, body)
    }
}

/// An established call: both peers, the INVITE on each leg and the 2xx A got.
struct Up {
    a: Peer,
    b: Peer,
    a_invite: String,
    b_invite: String,
    a_ok: String,
}

fn callee_contact(flow: Flow) -> String {
    format!("<sip:callee@{}>", flow.remote)
}

/// `invite` arrives from `a_flow`; the first target rings (tag `b1`) and answers; A ACKs.
fn establish(h: &mut Harness, a_flow: Flow, invite: &str) -> Up {
    let out = h.feed(a_flow, invite);
    let (b_flow, b_invite) = only(&out, "INVITE on leg B", |_, t| is_req(t, "INVITE")).clone();
    let contact = callee_contact(b_flow);
    let c = format!("Contact: {contact}");
    let out = h.feed(b_flow, &reply(&b_invite, 180, Some("b1"), &[&c], ""));
    resp_to(&out, a_flow, 180);
    let answer = sdp("198.51.100.20", 30000, "sendrecv");
    let ok = reply(&b_invite, 200, Some("b1"), &[&c, "Content-Type: application/sdp"], &answer);
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, a_flow, 200);
    req_to(&out, b_flow, "ACK");
    let a = Peer::caller(a_flow, invite, &a_ok);
    let out = h.feed(a_flow, &a.ack(a.cseq, ""));
    assert!(out.is_empty(), "A's ACK must not be forwarded:\n{}", dump(&out));
    let b = Peer::callee(b_flow, &b_invite, "b1", &contact);
    Up { a, b, a_invite: invite.to_string(), b_invite, a_ok }
}

/// `from` hangs up; the BYE sipborder sends toward `other` is answered.
fn hang_up(h: &mut Harness, from: &mut Peer, other: Flow) {
    let bye = from.request("BYE", &[], "");
    let out = h.feed(from.flow, &bye);
    resp_to(&out, from.flow, 200);
    let relayed = req_to(&out, other, "BYE");
    h.feed(other, &reply(&relayed, 200, None, &[], ""));
}

/// A hangs up; both BYEs are answered.
fn hang_up_from_a(h: &mut Harness, up: &mut Up) {
    let b = up.b.flow;
    hang_up(h, &mut up.a, b);
}

// =============================================================================================
// 1. Topology hiding
// =============================================================================================

#[test]
fn topology_hiding_invite_from_lan_carries_nothing_of_leg_a() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    for secret in [
        MICROSIP_CALL_ID,
        MICROSIP_FROM_TAG,
        MICROSIP_BRANCH,
        MICROSIP_CONTACT,
        "192.168.71.146",
        "rr-secret",
        "route-secret",
        "10.0.0.5",
    ] {
        assert!(!head(&b).contains(secret), "{secret} leaked onto leg B:\n{b}");
    }
    assert_eq!(private_ips(head(&b)), Vec::<Ipv4Addr>::new(), "private address on leg B:\n{b}");
    let m = msg(&b);
    assert_ne!(m.call_id, MICROSIP_CALL_ID);
    assert_ne!(m.from_tag.as_deref(), Some(MICROSIP_FROM_TAG));
    assert!(m.from_tag.is_some() && m.to_tag.is_none());
    assert_eq!(m.via_count, 1, "one Via, ours");
    assert_eq!((m.via.host.as_str(), m.via.port), ("203.0.113.1", Some(5060)));
    assert_ne!(m.via.branch.as_deref(), Some(MICROSIP_BRANCH));
    assert_eq!(hdr(&b, "Contact"), "<sip:203.0.113.1:5060>");
    assert_eq!(m.max_forwards, Some(69));
    assert!(hdr_opt(&b, "Record-Route").is_none() && hdr_opt(&b, "Route").is_none());
    assert!(b.starts_with("INVITE sip:0123456789@198.51.100.10:5060 SIP/2.0\r\n"), "{b}");
    // The SDP is anchored: leg B sees only sipborder's trunk-zone address and relay ports.
    assert_anchored(body(&b), body(&inv), "203.0.113.1");
}

#[test]
fn topology_hiding_200_to_lan_carries_nothing_of_leg_b() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let ok = reply(
        &b,
        200,
        Some("b-secret-tag"),
        &[
            "Record-Route: <sip:198.51.100.99;lr;x=b-rr-secret>",
            "Contact: <sip:b-contact-secret@198.51.100.10:5070>",
            "Content-Type: application/sdp",
        ],
        &sdp("198.51.100.20", 30000, "sendrecv"),
    );
    let out = h.feed(itsp(), &ok);
    let a_ok = resp_to(&out, phone(), 200);
    let b_call_id = call_id(&b);
    let our_b_tag = from_tag(&b).expect("our tag on B");
    for secret in
        [b_call_id.as_str(), our_b_tag.as_str(), "b-secret-tag", "b-rr-secret", "b-contact-secret"]
    {
        assert!(!head(&a_ok).contains(secret), "{secret} leaked onto leg A:\n{a_ok}");
    }
    for net in ["198.51.100.", "203.0.113."] {
        assert!(!head(&a_ok).contains(net), "trunk-side address {net} on leg A:\n{a_ok}");
    }
    let m = msg(&a_ok);
    assert_eq!(m.call_id, MICROSIP_CALL_ID);
    assert_eq!(m.from_tag.as_deref(), Some(MICROSIP_FROM_TAG));
    assert!(m.to_tag.is_some());
    assert_eq!(hdr(&a_ok, "Contact"), "<sip:10.0.0.1:5060>");
    assert!(hdr_opt(&a_ok, "Record-Route").is_none());
    // A's own Via comes back, stamped with where the INVITE came from.
    assert_eq!(m.via.branch.as_deref(), Some(MICROSIP_BRANCH));
    assert_eq!(m.via.rport, Some(Some(50952)));
}

#[test]
fn topology_hiding_invite_from_trunk_carries_nothing_of_the_itsp() {
    let mut h = Harness::new();
    let inv = invite(
        itsp(),
        "sip:100@203.0.113.1",
        &["Record-Route: <sip:198.51.100.99;lr>", "User-Agent: Carrier"],
        &sdp("198.51.100.20", 20000, "sendrecv"),
    );
    let out = h.feed(itsp(), &inv);
    let b = req_to(&out, pbx(), "INVITE");
    let a = msg(&inv);
    for secret in [
        a.call_id.as_str(),
        a.from_tag.as_deref().unwrap_or_default(),
        a.via.branch.as_deref().unwrap_or_default(),
        "198.51.100.",
        "203.0.113.",
    ] {
        assert!(!head(&b).contains(secret), "{secret} leaked toward the PBX:\n{b}");
    }
    let m = msg(&b);
    assert_eq!((m.via.host.as_str(), m.via.port, m.via_count), ("10.0.0.1", Some(5060), 1));
    assert_eq!(hdr(&b, "Contact"), "<sip:10.0.0.1:5060>");
    assert_eq!(m.max_forwards, Some(69));
    assert_eq!(hdr(&b, "User-Agent"), "Carrier");
}

// =============================================================================================
// 2. Basic call
// =============================================================================================

#[test]
fn invite_gets_100_trying_at_once_and_goes_to_the_first_target() {
    let mut h = Harness::new();
    let out = h.feed(phone(), &microsip_invite(true));
    assert_eq!(out.len(), 2, "{}", dump(&out));
    let trying = resp_to(&out, phone(), 100);
    assert_eq!(to_tag(&trying), None, "100 Trying carries no To tag");
    req_to(&out, itsp(), "INVITE");
}

#[test]
fn ringing_and_answer_relayed_to_a_under_one_a_side_tag() {
    let mut h = Harness::new();
    let out = h.feed(phone(), &microsip_invite(true));
    let b = req_to(&out, itsp(), "INVITE");
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let out = h.feed(itsp(), &reply(&b, 180, Some("b1"), &[c], ""));
    let ring = resp_to(&out, phone(), 180);
    let a_tag = to_tag(&ring).expect("180 toward A has a To tag");
    assert_ne!(a_tag, "b1");
    let out = h.feed(itsp(), &reply(&b, 200, Some("b1"), &[c], &sdp("198.51.100.20", 1, "x")));
    let ok = resp_to(&out, phone(), 200);
    assert_eq!(to_tag(&ok), Some(a_tag), "180 and 200 of one dialog share the A tag");
    assert_eq!(cseq(&ok), "6521 INVITE");
    assert_eq!(body(&ok), sdp("198.51.100.20", 1, "x"));
}

#[test]
fn b_2xx_acked_at_once_and_a_ack_not_forwarded() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let ok = reply(&b, 200, Some("b1"), &[c], &sdp("198.51.100.20", 1, "sendrecv"));
    let out = h.feed(itsp(), &ok);
    let ack = req_to(&out, itsp(), "ACK");
    let a_ok = resp_to(&out, phone(), 200);
    assert!(ack.starts_with("ACK sip:callee@198.51.100.10:5060 SIP/2.0\r\n"), "{ack}");
    assert_eq!(call_id(&ack), call_id(&b));
    assert_eq!(from_tag(&ack), from_tag(&b));
    assert_eq!(to_tag(&ack).as_deref(), Some("b1"));
    assert_eq!(cseq(&ack), format!("{} ACK", msg(&b).cseq));
    assert_ne!(branch(&ack), branch(&b), "the ACK of a 2xx is a new transaction");
    // B retransmits its 200: the same ACK again, nothing toward A.
    let out = h.feed(itsp(), &ok);
    assert_eq!(out, vec![(itsp(), ack.clone())]);
    // A's ACK ends at sipborder.
    let a = Peer::caller(phone(), &inv, &a_ok);
    let out = h.feed(phone(), &a.ack(a.cseq, ""));
    assert!(out.is_empty(), "{}", dump(&out));
    assert_eq!(h.shard.b2bua().calls(), 1);
}

#[test]
fn bye_from_a_answered_and_sent_on_b_with_b_tags() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let bye = up.a.request("BYE", &["Reason: Q.850;cause=16"], "");
    let out = h.feed(phone(), &bye);
    let ok = resp_to(&out, phone(), 200);
    assert_eq!(cseq(&ok), "6522 BYE");
    let b_bye = req_to(&out, itsp(), "BYE");
    assert!(b_bye.starts_with("BYE sip:callee@198.51.100.10:5060 SIP/2.0\r\n"), "{b_bye}");
    assert_eq!(call_id(&b_bye), call_id(&up.b_invite));
    assert_eq!(from_tag(&b_bye), from_tag(&up.b_invite));
    assert_eq!(to_tag(&b_bye).as_deref(), Some("b1"));
    assert_eq!(cseq(&b_bye), "2 BYE");
    assert_eq!(hdr(&b_bye, "Reason"), "Q.850;cause=16");
    assert_eq!(h.shard.b2bua().calls(), 1, "the call waits for B's answer to the BYE");
    h.feed(itsp(), &up.b.answer(&b_bye, 200, &[], ""));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

#[test]
fn bye_from_b_answered_and_sent_to_a() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let bye = up.b.request("BYE", &[], "");
    let out = h.feed(itsp(), &bye);
    resp_to(&out, itsp(), 200);
    let a_bye = req_to(&out, phone(), "BYE");
    assert!(a_bye.starts_with("BYE sip:192.168.80.11:50952;ob SIP/2.0\r\n"), "{a_bye}");
    assert_eq!(call_id(&a_bye), MICROSIP_CALL_ID);
    assert_eq!(to_tag(&a_bye).as_deref(), Some(MICROSIP_FROM_TAG));
    assert_eq!(from_tag(&a_bye), to_tag(&up.a_ok));
    assert_eq!(cseq(&a_bye), "1 BYE");
    h.feed(phone(), &up.a.answer(&a_bye, 200, &[], ""));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

// =============================================================================================
// 3. Our 2xx toward A until its ACK
// =============================================================================================

/// INVITE from the phone answered by the ITSP; returns the 200 A got (not ACKed yet).
fn answered_not_acked(h: &mut Harness, inv: &str) -> (String, String) {
    let out = h.feed(phone(), inv);
    let b = req_to(&out, itsp(), "INVITE");
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let out = h.feed(itsp(), &reply(&b, 200, Some("b1"), &[c], &sdp("198.51.100.20", 1, "x")));
    (resp_to(&out, phone(), 200), b)
}

#[test]
fn our_2xx_to_a_retransmitted_t1_doubling_capped_at_t2_until_ack() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let (a_ok, _) = answered_not_acked(&mut h, &inv);
    let start = h.now;
    let end = start + Duration::from_secs(20);
    let mut times = Vec::new();
    while let Some(out) = h.step(end) {
        for (f, t) in &out {
            if *f == phone() && is_resp(t, 200) {
                assert_eq!(t, &a_ok, "the retransmission is the same response");
                times.push(h.now - start);
            }
        }
    }
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    // Gaps T1, 2T1, 4T1, then T2 (= 8T1 here) each time.
    assert_eq!(ms, vec![500, 1500, 3500, 7500, 11500, 15500, 19500]);
    let mut a = Peer::caller(phone(), &inv, &a_ok);
    let out = h.feed(phone(), &a.ack(a.cseq, ""));
    assert!(out.is_empty(), "{}", dump(&out));
    let out = h.advance(Duration::from_secs(10));
    assert_eq!(count(&out, |_, t| is_resp(t, 200)), 0, "{}", dump(&out));
    assert_eq!(h.shard.b2bua().calls(), 1, "the call goes on");
    hang_up(&mut h, &mut a, itsp());
    h.assert_clean();
}

#[test]
fn our_2xx_never_acked_ends_the_call_with_bye_on_both_legs() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let (a_ok, b) = answered_not_acked(&mut h, &inv);
    let out = h.advance(T1 * 64 - Duration::from_millis(1));
    assert_eq!(count(&out, |_, t| is_req(t, "BYE")), 0, "{}", dump(&out));
    let out = h.advance(Duration::from_millis(1));
    let a_bye = req_to(&out, phone(), "BYE");
    let b_bye = req_to(&out, itsp(), "BYE");
    assert_eq!(call_id(&a_bye), MICROSIP_CALL_ID);
    assert_eq!(from_tag(&a_bye), to_tag(&a_ok));
    assert_eq!(call_id(&b_bye), call_id(&b));
    assert_eq!(to_tag(&b_bye).as_deref(), Some("b1"));
    h.feed(phone(), &reply(&a_bye, 200, None, &[], ""));
    h.feed(itsp(), &reply(&b_bye, 200, None, &[], ""));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

// =============================================================================================
// 4. Delayed offer
// =============================================================================================

#[test]
fn delayed_offer_b_ack_waits_for_a_ack_and_carries_its_answer() {
    let mut h = Harness::new();
    // CUCM on the LAN calls out without SDP (seed002 d2_17..21).
    let inv = vector("seed002/d2_17_invite_cucm_delayed_offer.sip");
    let out = h.feed(pbx(), &inv);
    resp_to(&out, pbx(), 100);
    let b = req_to(&out, itsp(), "INVITE");
    assert_eq!(body(&b), "", "no offer on B either");
    assert_eq!(msg(&b).max_forwards, Some(68));
    let offer = body(&vector("seed002/d2_20_200ok_offer.sip")).to_string();
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let out = h.feed(itsp(), &reply(&b, 180, Some("b1"), &[c], ""));
    resp_to(&out, pbx(), 180);
    let ok = reply(&b, 200, Some("b1"), &[c, "Content-Type: application/sdp"], &offer);
    let out = h.feed(itsp(), &ok);
    let a_ok = resp_to(&out, pbx(), 200);
    assert_anchored(body(&a_ok), &offer, "10.0.0.1");
    assert_eq!(count(&out, |_, t| is_req(t, "ACK")), 0, "B's ACK waits for A's answer");
    // B retransmits its 200 meanwhile: still no ACK.
    let out = h.feed(itsp(), &ok);
    assert_eq!(count(&out, |_, t| is_req(t, "ACK")), 0, "{}", dump(&out));
    let answer = body(&vector("seed002/d2_21_ack_with_answer.sip")).to_string();
    let mut a = Peer::caller(pbx(), &inv, &a_ok);
    let out = h.feed(pbx(), &a.ack(a.cseq, &answer));
    let ack = req_to(&out, itsp(), "ACK");
    assert_anchored(body(&ack), &answer, "203.0.113.1");
    assert_eq!(cseq(&ack), "1 ACK");
    assert_eq!(to_tag(&ack).as_deref(), Some("b1"));
    assert_eq!(hdr(&ack, "Content-Type"), "application/sdp");
    assert_eq!(out.len(), 1, "{}", dump(&out));
    // B retransmits its 200 now: the same ACK, answer included, again.
    let out = h.feed(itsp(), &ok);
    assert_eq!(out, vec![(itsp(), ack.clone())]);
    // The 2xx toward A is no longer retransmitted.
    let out = h.advance(T1 * 4);
    assert_eq!(count(&out, |_, t| is_resp(t, 200)), 0, "{}", dump(&out));
    hang_up(&mut h, &mut a, itsp());
    h.assert_clean();
}

// =============================================================================================
// 5. CANCEL
// =============================================================================================

#[test]
fn cancel_before_any_provisional_is_held_until_b_rings() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let out = h.feed(phone(), &cancel_of(&inv));
    let ok = resp_to(&out, phone(), 200);
    assert_eq!(cseq(&ok), "6521 CANCEL");
    let r487 = resp_to(&out, phone(), 487);
    assert_eq!(cseq(&r487), "6521 INVITE");
    none_to(&out, itsp());
    // B rings: the CANCEL goes now, the 180 does not reach A.
    let out = h.feed(itsp(), &reply(&b, 180, Some("b1"), &[], ""));
    none_to(&out, phone());
    let cancel = req_to(&out, itsp(), "CANCEL");
    assert_eq!(branch(&cancel), branch(&b), "CANCEL shares the INVITE's branch");
    assert_eq!(cseq(&cancel), format!("{} CANCEL", msg(&b).cseq));
    assert_eq!(call_id(&cancel), call_id(&b));
    h.feed(phone(), &ack_non_2xx(&inv, &r487));
    h.feed(itsp(), &reply(&cancel, 200, Some("b1"), &[], ""));
    let b487 = reply(&b, 487, Some("b1"), &[], "");
    let out = h.feed(itsp(), &b487);
    let ack = req_to(&out, itsp(), "ACK");
    assert_eq!(branch(&ack), branch(&b), "the transaction layer ACKs the 487");
    assert_eq!(to_tag(&ack).as_deref(), Some("b1"));
    none_to(&out, phone());
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

#[test]
fn cancel_after_180_answers_a_and_cancels_b() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let out = h.feed(itsp(), &reply(&b, 180, Some("b1"), &[], ""));
    let ring = resp_to(&out, phone(), 180);
    let out = h.feed(phone(), &cancel_of(&inv));
    resp_to(&out, phone(), 200);
    let r487 = resp_to(&out, phone(), 487);
    assert_eq!(to_tag(&r487), to_tag(&ring), "487 in the early dialog A saw");
    let cancel = req_to(&out, itsp(), "CANCEL");
    assert_eq!(branch(&cancel), branch(&b));
    h.feed(phone(), &ack_non_2xx(&inv, &r487));
    h.feed(itsp(), &reply(&cancel, 200, Some("b1"), &[], ""));
    let out = h.feed(itsp(), &reply(&b, 487, Some("b1"), &[], ""));
    assert_eq!(branch(&req_to(&out, itsp(), "ACK")), branch(&b));
    assert_eq!(out.len(), 1, "{}", dump(&out));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

#[test]
fn b_answering_200_after_cancel_gets_ack_and_bye() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    h.feed(itsp(), &reply(&b, 180, Some("b1"), &[], ""));
    let out = h.feed(phone(), &cancel_of(&inv));
    let r487 = resp_to(&out, phone(), 487);
    let cancel = req_to(&out, itsp(), "CANCEL");
    h.feed(phone(), &ack_non_2xx(&inv, &r487));
    // The 200 crossed the CANCEL.
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let out = h.feed(itsp(), &reply(&b, 200, Some("b1"), &[c], &sdp("198.51.100.20", 1, "x")));
    none_to(&out, phone());
    let ack = req_to(&out, itsp(), "ACK");
    let bye = req_to(&out, itsp(), "BYE");
    for m in [&ack, &bye] {
        assert_eq!(call_id(m), call_id(&b));
        assert_eq!(to_tag(m).as_deref(), Some("b1"));
    }
    assert_eq!(cseq(&ack), format!("{} ACK", msg(&b).cseq));
    h.feed(itsp(), &reply(&cancel, 481, Some("b1"), &[], ""));
    h.feed(itsp(), &reply(&bye, 200, None, &[], ""));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

// =============================================================================================
// 6. Fail-over
// =============================================================================================

#[test]
fn failover_on_503_to_backup_with_a_new_call_id() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let first = req_to(&out, itsp(), "INVITE");
    let out = h.feed(itsp(), &reply(&first, 503, Some("x"), &[], ""));
    assert_eq!(branch(&req_to(&out, itsp(), "ACK")), branch(&first));
    let second = req_to(&out, itsp_backup(), "INVITE");
    none_to(&out, phone());
    assert_ne!(call_id(&second), call_id(&first));
    assert_ne!(from_tag(&second), from_tag(&first));
    assert!(second.starts_with("INVITE sip:0123456789@198.51.100.11:5060 SIP/2.0\r\n"));
    assert_anchored(body(&second), body(&inv), "203.0.113.1");
    let b2 = Peer::callee(itsp_backup(), &second, "b2", "<sip:callee@198.51.100.11>");
    let c = format!("Contact: {}", b2.contact);
    let ok = reply(&second, 200, Some("b2"), &[&c], &sdp("198.51.100.21", 1, "sendrecv"));
    let out = h.feed(itsp_backup(), &ok);
    let a_ok = resp_to(&out, phone(), 200);
    req_to(&out, itsp_backup(), "ACK");
    let mut a = Peer::caller(phone(), &inv, &a_ok);
    h.feed(phone(), &a.ack(a.cseq, ""));
    let out = h.feed(phone(), &a.request("BYE", &[], ""));
    let bye = req_to(&out, itsp_backup(), "BYE");
    assert_eq!(call_id(&bye), call_id(&second));
    assert_eq!(to_tag(&bye).as_deref(), Some("b2"));
    h.feed(itsp_backup(), &b2.answer(&bye, 200, &[], ""));
    h.assert_clean();
}

#[test]
fn failover_on_timer_b_to_backup() {
    let mut h = Harness::new();
    let out = h.feed(phone(), &microsip_invite(true));
    let first = req_to(&out, itsp(), "INVITE");
    let out = h.advance(T1 * 64 - Duration::from_millis(1));
    assert_eq!(count(&out, |f, t| *f == itsp_backup() || is_resp(t, 408)), 0);
    assert!(count(&out, |f, t| *f == itsp() && is_req(t, "INVITE")) >= 5, "Timer A");
    let out = h.advance(Duration::from_millis(1));
    let second = req_to(&out, itsp_backup(), "INVITE");
    assert_ne!(call_id(&second), call_id(&first));
    none_to(&out, phone());
}

#[test]
fn failover_on_transport_error_to_backup() {
    let mut h = Harness::new();
    let out = h.feed(phone(), &microsip_invite(true));
    let first = req_to(&out, itsp(), "INVITE");
    let out = h.transport_error(itsp());
    let second = req_to(&out, itsp_backup(), "INVITE");
    assert_ne!(call_id(&second), call_id(&first));
    none_to(&out, phone());
}

#[test]
fn busy_486_relayed_to_a_without_failover() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let out = h.feed(itsp(), &reply(&b, 486, Some("b1"), &["Retry-After: 60"], ""));
    let busy = resp_to(&out, phone(), 486);
    none_to(&out, itsp_backup());
    assert_eq!(call_id(&busy), MICROSIP_CALL_ID);
    assert_ne!(to_tag(&busy).as_deref(), Some("b1"));
    assert_eq!(hdr(&busy, "Retry-After"), "60");
    h.feed(phone(), &ack_non_2xx(&inv, &busy));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

#[test]
fn all_targets_timing_out_relays_408_to_a() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    h.feed(phone(), &inv);
    let out = h.advance(T1 * 64);
    req_to(&out, itsp_backup(), "INVITE");
    none_to(&out, phone());
    let out = h.advance(T1 * 64);
    let timeout = resp_to(&out, phone(), 408);
    assert_eq!(cseq(&timeout), "6521 INVITE");
    assert!(to_tag(&timeout).is_some());
    h.feed(phone(), &ack_non_2xx(&inv, &timeout));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

#[test]
fn all_targets_failing_relays_the_last_code() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let first = req_to(&out, itsp(), "INVITE");
    let out = h.feed(itsp(), &reply(&first, 503, Some("x"), &[], ""));
    let second = req_to(&out, itsp_backup(), "INVITE");
    let out = h.feed(itsp_backup(), &reply(&second, 500, Some("y"), &[], ""));
    let fail = resp_to(&out, phone(), 500);
    h.feed(phone(), &ack_non_2xx(&inv, &fail));
    h.assert_clean();
}

// =============================================================================================
// 7. Forking
// =============================================================================================

#[test]
fn forks_get_distinct_a_tags_first_200_wins_and_a_late_200_is_acked_and_byed() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let c1 = "Contact: <sip:fork1@198.51.100.31>";
    let c2 = "Contact: <sip:fork2@198.51.100.32>";
    let out = h.feed(itsp(), &reply(&b, 180, Some("f1"), &[c1], ""));
    let tag1 = to_tag(&resp_to(&out, phone(), 180)).expect("tag");
    let out = h.feed(itsp(), &reply(&b, 180, Some("f2"), &[c2], ""));
    let tag2 = to_tag(&resp_to(&out, phone(), 180)).expect("tag");
    assert_ne!(tag1, tag2, "each early dialog on B is its own early dialog on A");
    // Fork 2 answers first and wins.
    let out = h.feed(itsp(), &reply(&b, 200, Some("f2"), &[c2], &sdp("198.51.100.32", 2, "x")));
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(to_tag(&a_ok), Some(tag2.clone()));
    let ack = req_to(&out, itsp(), "ACK");
    assert!(ack.starts_with("ACK sip:fork2@198.51.100.32 SIP/2.0"), "{ack}");
    // Fork 1 answers too: ACKed and hung up on B, never shown to A.
    let out = h.feed(itsp(), &reply(&b, 200, Some("f1"), &[c1], &sdp("198.51.100.31", 1, "x")));
    none_to(&out, phone());
    let ack1 = req_to(&out, itsp(), "ACK");
    let bye1 = req_to(&out, itsp(), "BYE");
    for m in [&ack1, &bye1] {
        assert!(m.contains(" sip:fork1@198.51.100.31 SIP/2.0"), "{m}");
        assert_eq!(to_tag(m).as_deref(), Some("f1"));
        assert_eq!(call_id(m), call_id(&b));
    }
    h.feed(itsp(), &reply(&bye1, 200, None, &[], ""));
    // The winner's dialog works.
    let mut a = Peer::caller(phone(), &inv, &a_ok);
    h.feed(phone(), &a.ack(a.cseq, ""));
    let out = h.feed(phone(), &a.request("BYE", &[], ""));
    let bye = req_to(&out, itsp(), "BYE");
    assert_eq!(to_tag(&bye).as_deref(), Some("f2"));
    h.feed(itsp(), &reply(&bye, 200, None, &[], ""));
    h.assert_clean();
}

// =============================================================================================
// 8. PRACK / 100rel
// =============================================================================================

#[test]
fn reliable_183_and_prack_relayed_end_to_end_when_a_supports_100rel() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    assert!(msg(&b).has_option_tag("Supported", "100rel"));
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let early = sdp("198.51.100.20", 30000, "sendrecv");
    let p183 = reply(
        &b,
        183,
        Some("b1"),
        &[c, "Require: 100rel", "RSeq: 7", "Content-Type: application/sdp"],
        &early,
    );
    let out = h.feed(itsp(), &p183);
    let a183 = resp_to(&out, phone(), 183);
    assert!(msg(&a183).has_option_tag("Require", "100rel"), "{a183}");
    assert_eq!(hdr(&a183, "RSeq"), "1", "our own RSeq toward A");
    assert_anchored(body(&a183), &early, "10.0.0.1");
    assert_eq!(count(&out, |_, t| is_req(t, "PRACK")), 0, "B's PRACK waits for A's");
    // Not PRACKed yet: retransmitted after T1.
    let out = h.advance(T1);
    assert_eq!(resp_to(&out, phone(), 183), a183);
    let mut a = Peer::caller(phone(), &inv, &a183);
    let prack = a.request("PRACK", &["RAck: 1 6521 INVITE"], "");
    let out = h.feed(phone(), &prack);
    let b_prack = req_to(&out, itsp(), "PRACK");
    assert_eq!(hdr(&b_prack, "RAck"), format!("7 {} INVITE", msg(&b).cseq));
    assert_eq!(to_tag(&b_prack).as_deref(), Some("b1"));
    assert_eq!(call_id(&b_prack), call_id(&b));
    let out = h.feed(itsp(), &reply(&b_prack, 200, None, &[], ""));
    let ok = resp_to(&out, phone(), 200);
    assert_eq!(cseq(&ok), "6522 PRACK");
    // No more 183 retransmissions.
    let out = h.advance(T1 * 8);
    assert_eq!(count(&out, |_, t| is_resp(t, 183)), 0, "{}", dump(&out));
    let out = h.feed(itsp(), &reply(&b, 200, Some("b1"), &[c], &early));
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(to_tag(&a_ok), to_tag(&a183));
    h.feed(phone(), &a.ack(6521, ""));
    let out = h.feed(phone(), &a.request("BYE", &[], ""));
    let bye = req_to(&out, itsp(), "BYE");
    h.feed(itsp(), &reply(&bye, 200, None, &[], ""));
    h.assert_clean();
}

#[test]
fn reliable_183_pracked_by_sipborder_when_a_lacks_100rel() {
    let mut h = Harness::new();
    let inv = microsip_invite(false);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let p183 = reply(&b, 183, Some("b1"), &[c, "Require: 100rel", "RSeq: 42"], "");
    let out = h.feed(itsp(), &p183);
    let a183 = resp_to(&out, phone(), 183);
    assert!(!msg(&a183).has_option_tag("Require", "100rel"), "{a183}");
    assert!(hdr_opt(&a183, "RSeq").is_none(), "{a183}");
    let prack = req_to(&out, itsp(), "PRACK");
    assert_eq!(hdr(&prack, "RAck"), format!("42 {} INVITE", msg(&b).cseq));
    assert_eq!(to_tag(&prack).as_deref(), Some("b1"));
    let out = h.feed(itsp(), &reply(&prack, 200, None, &[], ""));
    assert!(out.is_empty(), "the 200 to our own PRACK stays here:\n{}", dump(&out));
    // Not reliable toward A: never retransmitted.
    let out = h.advance(T1 * 4);
    assert_eq!(count(&out, |_, t| is_resp(t, 183)), 0, "{}", dump(&out));
    let out = h.feed(itsp(), &reply(&b, 200, Some("b1"), &[c], &sdp("198.51.100.20", 1, "x")));
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(to_tag(&a_ok), to_tag(&a183));
    let mut a = Peer::caller(phone(), &inv, &a_ok);
    h.feed(phone(), &a.ack(a.cseq, ""));
    hang_up(&mut h, &mut a, itsp());
    h.assert_clean();
}

// =============================================================================================
// 9. re-INVITE
// =============================================================================================

#[test]
fn reinvite_hold_from_a_and_resume_from_b_relayed_with_each_legs_cseq() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    // Hold from A.
    let hold = sdp("192.168.71.146", 4008, "sendonly");
    let reinv = up.a.request("INVITE", &["Content-Type: application/sdp"], &hold);
    let out = h.feed(phone(), &reinv);
    resp_to(&out, phone(), 100);
    let b_reinv = req_to(&out, itsp(), "INVITE");
    assert_eq!(cseq(&b_reinv), "2 INVITE");
    assert_eq!(call_id(&b_reinv), call_id(&up.b_invite));
    assert_eq!(to_tag(&b_reinv).as_deref(), Some("b1"));
    assert_eq!(from_tag(&b_reinv), from_tag(&up.b_invite));
    assert!(body(&b_reinv).contains("a=sendonly"));
    let held = sdp("198.51.100.20", 30000, "recvonly");
    let ok = up.b.answer(&b_reinv, 200, &["Content-Type: application/sdp"], &held);
    let out = h.feed(itsp(), &ok);
    let b_ack = req_to(&out, itsp(), "ACK");
    assert_eq!(cseq(&b_ack), "2 ACK");
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(cseq(&a_ok), "6522 INVITE");
    assert_eq!(to_tag(&a_ok), to_tag(&up.a_ok));
    assert!(body(&a_ok).contains("a=recvonly"));
    let out = h.feed(phone(), &up.a.ack(6522, ""));
    assert!(out.is_empty(), "A's ACK stays on leg A:\n{}", dump(&out));
    // Resume from B.
    let resume = sdp("198.51.100.20", 30000, "sendrecv");
    let reinv = up.b.request("INVITE", &["Content-Type: application/sdp"], &resume);
    let out = h.feed(itsp(), &reinv);
    let a_reinv = req_to(&out, phone(), "INVITE");
    assert_eq!(cseq(&a_reinv), "1 INVITE");
    assert_eq!(call_id(&a_reinv), MICROSIP_CALL_ID);
    assert_eq!(to_tag(&a_reinv).as_deref(), Some(MICROSIP_FROM_TAG));
    assert!(body(&a_reinv).contains("a=sendrecv"));
    let ok =
        up.a.answer(&a_reinv, 200, &["Content-Type: application/sdp"], &sdp("1.1.1.1", 1, "x"));
    let out = h.feed(phone(), &ok);
    assert_eq!(cseq(&req_to(&out, phone(), "ACK")), "1 ACK");
    let b_ok = resp_to(&out, itsp(), 200);
    assert_eq!(cseq(&b_ok), "101 INVITE");
    assert_eq!(hdr(&b_ok, "Contact"), "<sip:203.0.113.1:5060>");
    let out = h.feed(itsp(), &up.b.ack(101, ""));
    assert!(out.is_empty(), "B's ACK stays on leg B:\n{}", dump(&out));
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn reinvite_glare_from_b_while_ours_is_pending_gets_491() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let reinv =
        up.a.request("INVITE", &["Content-Type: application/sdp"], &sdp("10.0.0.20", 1, "x"));
    let out = h.feed(phone(), &reinv);
    let b_reinv = req_to(&out, itsp(), "INVITE");
    let theirs =
        up.b.request("INVITE", &["Content-Type: application/sdp"], &sdp("1.1.1.1", 1, "y"));
    let out = h.feed(itsp(), &theirs);
    let glare = resp_to(&out, itsp(), 491);
    none_to(&out, phone());
    h.feed(itsp(), &ack_non_2xx(&theirs, &glare));
    // Ours goes on.
    let ok =
        up.b.answer(&b_reinv, 200, &["Content-Type: application/sdp"], &sdp("1.1.1.1", 1, "z"));
    let out = h.feed(itsp(), &ok);
    resp_to(&out, phone(), 200);
    h.feed(phone(), &up.a.ack(up.a.cseq, ""));
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn second_reinvite_from_a_while_the_first_is_pending_gets_500_with_retry_after() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let first =
        up.a.request("INVITE", &["Content-Type: application/sdp"], &sdp("10.0.0.20", 1, "x"));
    let out = h.feed(phone(), &first);
    let b_reinv = req_to(&out, itsp(), "INVITE");
    let second =
        up.a.request("INVITE", &["Content-Type: application/sdp"], &sdp("10.0.0.20", 1, "y"));
    let out = h.feed(phone(), &second);
    let r500 = resp_to(&out, phone(), 500);
    assert_eq!(cseq(&r500), format!("{} INVITE", up.a.cseq));
    let ra: u32 = hdr(&r500, "Retry-After").trim().parse().expect("Retry-After seconds");
    assert!(ra <= 10);
    none_to(&out, itsp());
    h.feed(phone(), &ack_non_2xx(&second, &r500));
    let ok =
        up.b.answer(&b_reinv, 200, &["Content-Type: application/sdp"], &sdp("1.1.1.1", 1, "z"));
    let out = h.feed(itsp(), &ok);
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(cseq(&a_ok), format!("{} INVITE", up.a.cseq - 1));
    h.feed(phone(), &up.a.ack(up.a.cseq - 1, ""));
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn offerless_reinvite_from_b_gets_its_answer_in_a_ack_relayed_to_b() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let out = h.feed(itsp(), &up.b.request("INVITE", &[], ""));
    let a_reinv = req_to(&out, phone(), "INVITE");
    assert_eq!(body(&a_reinv), "");
    let offer = sdp("10.0.0.20", 4008, "sendrecv");
    let ok = up.a.answer(&a_reinv, 200, &["Content-Type: application/sdp"], &offer);
    let out = h.feed(phone(), &ok);
    assert_eq!(count(&out, |_, t| is_req(t, "ACK")), 0, "A's ACK waits for B's answer");
    let b_ok = resp_to(&out, itsp(), 200);
    assert_anchored(body(&b_ok), &offer, "203.0.113.1");
    let answer = sdp("198.51.100.20", 30000, "sendrecv");
    let out = h.feed(itsp(), &up.b.ack(up.b.cseq, &answer));
    let ack = req_to(&out, phone(), "ACK");
    assert_eq!(cseq(&ack), msg(&a_reinv).cseq.to_string() + " ACK");
    assert_anchored(body(&ack), &answer, "10.0.0.1");
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

// =============================================================================================
// 10. Other in-dialog requests
// =============================================================================================

/// Methods relayed within a dialog, with what each carries and the success code its peer answers.
fn relayed_methods() -> Vec<(&'static str, Vec<&'static str>, String, u16)> {
    vec![
        (
            "INFO",
            vec!["Content-Type: application/dtmf-relay"],
            "Signal=5\r\nDuration=160\r\n".to_string(),
            200,
        ),
        ("MESSAGE", vec!["Content-Type: text/plain"], "hello".to_string(), 200),
        (
            "NOTIFY",
            vec!["Event: refer", "Subscription-State: active;expires=60"],
            String::new(),
            200,
        ),
        ("REFER", vec!["Refer-To: <sip:3000@example.com>"], String::new(), 202),
        ("UPDATE", vec!["Content-Type: application/sdp"], sdp("192.0.2.1", 4000, "sendrecv"), 200),
    ]
}

#[test]
fn in_dialog_requests_from_a_relayed_to_b_and_answers_back() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let mut b_cseq = 1;
    for (method, extra, payload, code) in relayed_methods() {
        let req = up.a.request(method, &extra, &payload);
        let out = h.feed(phone(), &req);
        let b_req = req_to(&out, itsp(), method);
        b_cseq += 1;
        assert_eq!(cseq(&b_req), format!("{b_cseq} {method}"));
        assert_eq!(call_id(&b_req), call_id(&up.b_invite));
        assert_eq!(to_tag(&b_req).as_deref(), Some("b1"));
        assert_eq!(from_tag(&b_req), from_tag(&up.b_invite));
        if payload.starts_with("v=0") {
            assert_anchored(body(&b_req), &payload, "203.0.113.1");
        } else {
            assert_eq!(body(&b_req), payload, "{method} body");
        }
        for e in &extra {
            let (n, v) = e.split_once(": ").expect("header line");
            assert_eq!(hdr(&b_req, n), v, "{method} {n}");
        }
        let out = h.feed(itsp(), &up.b.answer(&b_req, code, &["X-Answer: yes"], ""));
        let resp = resp_to(&out, phone(), code);
        assert_eq!(cseq(&resp), format!("{} {method}", up.a.cseq));
        assert_eq!(call_id(&resp), MICROSIP_CALL_ID);
        assert_eq!(hdr(&resp, "X-Answer"), "yes");
        assert!(!head(&resp).contains("198.51.100."), "{resp}");
    }
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn in_dialog_requests_from_b_relayed_to_a_and_answers_back() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let mut a_cseq = 0;
    for (method, extra, payload, code) in relayed_methods() {
        let req = up.b.request(method, &extra, &payload);
        let out = h.feed(itsp(), &req);
        let a_req = req_to(&out, phone(), method);
        a_cseq += 1;
        assert_eq!(cseq(&a_req), format!("{a_cseq} {method}"));
        assert_eq!(call_id(&a_req), MICROSIP_CALL_ID);
        assert_eq!(to_tag(&a_req).as_deref(), Some(MICROSIP_FROM_TAG));
        assert_eq!(from_tag(&a_req), to_tag(&up.a_ok));
        if payload.starts_with("v=0") {
            assert_anchored(body(&a_req), &payload, "10.0.0.1");
        } else {
            assert_eq!(body(&a_req), payload, "{method} body");
        }
        assert!(!head(&a_req).contains("198.51.100."), "{a_req}");
        let out = h.feed(phone(), &up.a.answer(&a_req, code, &[], ""));
        let resp = resp_to(&out, itsp(), code);
        assert_eq!(cseq(&resp), format!("{} {method}", up.b.cseq));
        assert_eq!(call_id(&resp), call_id(&up.b_invite));
        assert!(private_ips(head(&resp)).is_empty(), "{resp}");
    }
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn message_outside_a_dialog_relayed_with_a_fresh_identity_and_answered_with_a_tag() {
    let mut h = Harness::new();
    // MicroSIP's MESSAGE (seed002 d2_27) to a number.
    let m = rewrite(
        &vector("seed002/d2_27_message.sip"),
        Some("MESSAGE sip:0123@10.0.0.1 SIP/2.0"),
        |l| vec![l.to_string()],
    );
    let out = h.feed(phone(), &m);
    let b = req_to(&out, itsp(), "MESSAGE");
    assert_eq!(body(&b), "selam");
    assert_eq!(hdr(&b, "Content-Type"), "text/plain");
    assert!(private_ips(head(&b)).is_empty(), "{b}");
    assert_ne!(call_id(&b), call_id(&m));
    assert_ne!(from_tag(&b), from_tag(&m));
    assert_eq!(msg(&b).via.host, "203.0.113.1");
    let out = h.feed(itsp(), &reply(&b, 200, Some("b-secret"), &[], ""));
    let ok = resp_to(&out, phone(), 200);
    assert_eq!(call_id(&ok), call_id(&m));
    assert_eq!(cseq(&ok), "11151 MESSAGE");
    let tag = to_tag(&ok).expect("a final response carries a To tag (RFC 3261 §8.2.6.2)");
    assert_ne!(tag, "b-secret");
    h.assert_clean();
}

#[test]
fn our_2xx_over_tcp_is_not_retransmitted() {
    let mut h = Harness::new();
    let tcp = Flow {
        zone: ZoneId(0),
        transport: Transport::Tcp,
        remote: addr("10.0.0.50:40000"),
        conn: Some(ConnId(3)),
    };
    let inv = invite(tcp, "sip:0123@10.0.0.1", &[], &sdp("10.0.0.50", 4000, "sendrecv"))
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let out = h.feed(tcp, &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let c = "Contact: <sip:callee@198.51.100.10:5060>";
    let out = h.feed(itsp(), &reply(&b, 200, Some("b1"), &[c], &sdp("198.51.100.20", 1, "x")));
    let (f, a_ok) = only(&out, "200 toward A", |_, t| is_resp(t, 200)).clone();
    assert_eq!(f.conn, Some(ConnId(3)));
    let out = h.advance(T1 * 32);
    assert_eq!(count(&out, |_, t| is_resp(t, 200)), 0, "{}", dump(&out));
    let mut a = Peer::caller(tcp, &inv, &a_ok);
    h.feed(tcp, &a.ack(a.cseq, ""));
    let out = h.feed(tcp, &a.request("BYE", &[], ""));
    let bye = req_to(&out, itsp(), "BYE");
    h.feed(itsp(), &reply(&bye, 200, None, &[], ""));
    h.assert_clean();
}

// =============================================================================================
// 11. What sipborder answers itself
// =============================================================================================

#[test]
fn options_to_sipborder_answered_locally_even_with_max_forwards_0_over_tcp() {
    let mut h = Harness::new();
    // CUCM's ping (seed002 d2_08): no user part, Max-Forwards 0, over TCP.
    let opts = vector("seed002/d2_08_options_cucm.sip");
    let conn = Flow {
        zone: ZoneId(0),
        transport: Transport::Tcp,
        remote: addr("10.0.0.50:40123"),
        conn: Some(ConnId(7)),
    };
    let out = h.feed(conn, &opts);
    assert_eq!(out.len(), 1, "answered, not forwarded:\n{}", dump(&out));
    let (f, ok) = &out[0];
    assert!(is_resp(ok, 200), "{ok}");
    assert_eq!(f.conn, Some(ConnId(7)), "over the connection it came on");
    assert_eq!(cseq(ok), "101 OPTIONS");
    assert!(msg(ok).has_option_tag("Allow", "INVITE"));
    assert!(msg(ok).has_option_tag("Allow", "OPTIONS"));
    assert_eq!(hdr(ok, "Accept"), "application/sdp");
    assert!(msg(ok).has_option_tag("Supported", "100rel"));
    assert!(to_tag(ok).is_some());
    // The same from the trunk side, UDP, Max-Forwards 70.
    let ping = invite(itsp(), "sip:203.0.113.1", &[], "")
        .replace("INVITE sip:", "OPTIONS sip:")
        .replace("10 INVITE", "1 OPTIONS");
    let out = h.feed(itsp(), &ping);
    assert_eq!(out.len(), 1, "{}", dump(&out));
    resp_to(&out, itsp(), 200);
    h.assert_clean();
}

#[test]
fn an_untrusted_source_holds_at_most_its_share_of_transactions_until_they_end() {
    let yaml = format!("{CONFIG}security:\n  limits: {{max_transactions_per_source: 2}}\n");
    let mut h = Harness::with_guard(&yaml);
    let ping = |flow: Flow, n: u32| {
        invite(flow, "sip:203.0.113.1", &[], "")
            .replace("INVITE sip:", "OPTIONS sip:")
            .replace("10 INVITE", &format!("{n} OPTIONS"))
    };
    let guard = h.shard.b2bua().router().guard.clone().expect("guard");
    // The phone (not a configured trunk) gets two transactions; the third is dropped silently.
    let first = ping(phone(), 1);
    resp_to(&h.feed(phone(), &first), phone(), 200);
    resp_to(&h.feed(phone(), &ping(phone(), 2)), phone(), 200);
    assert_eq!(guard.stats().transactions, 2, "held by the non-INVITE server transactions");
    let out = h.feed(phone(), &ping(phone(), 3));
    assert!(out.is_empty(), "over the cap, nothing goes back:\n{}", dump(&out));
    // A retransmission of a held one is still answered (its transaction absorbs it).
    resp_to(&h.feed(phone(), &first), phone(), 200);
    // Another source, and a trusted trunk, are not held back by the phone's share.
    let other = udp(0, "10.0.0.21:5060");
    resp_to(&h.feed(other, &ping(other, 1)), other, 200);
    for n in 1..=5 {
        resp_to(&h.feed(itsp(), &ping(itsp(), n)), itsp(), 200);
    }
    assert_eq!(guard.stats().transactions, 3, "the trunk's are not counted per source");
    // Once Timer J ends them, the slots are back and the phone is answered again.
    h.assert_clean();
    assert_eq!(guard.stats().transactions, 0);
    resp_to(&h.feed(phone(), &ping(phone(), 4)), phone(), 200);
    h.assert_clean();
}

#[test]
fn invite_with_max_forwards_0_gets_483() {
    let mut h = Harness::new();
    let inv = microsip_invite(true).replace("Max-Forwards: 70", "Max-Forwards: 0");
    let out = h.feed(phone(), &inv);
    resp_to(&out, phone(), 483);
    none_to(&out, itsp());
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

#[test]
fn request_in_an_unknown_dialog_gets_481() {
    let mut h = Harness::new();
    let mut stranger = Peer {
        flow: phone(),
        call_id: "nobody@10.0.0.20".into(),
        from: "<sip:200@10.0.0.20>;tag=x1".into(),
        to: "<sip:300@10.0.0.1>;tag=never-issued".into(),
        target: "sip:10.0.0.1:5060".into(),
        contact: "<sip:200@10.0.0.20:50952>".into(),
        cseq: 1,
    };
    for method in ["BYE", "INFO", "INVITE", "UPDATE"] {
        let out = h.feed(phone(), &stranger.request(method, &[], ""));
        let r = resp_to(&out, phone(), 481);
        assert_eq!(cseq(&r), format!("{} {method}", stranger.cseq));
        assert_eq!(out.iter().filter(|(_, t)| !is_resp(t, 100)).count(), 1, "{}", dump(&out));
    }
    h.assert_clean();
}

#[test]
fn ack_for_an_unknown_dialog_is_dropped_silently() {
    let mut h = Harness::new();
    let stranger = Peer {
        flow: phone(),
        call_id: "nobody@10.0.0.20".into(),
        from: "<sip:200@10.0.0.20>;tag=x1".into(),
        to: "<sip:300@10.0.0.1>;tag=never-issued".into(),
        target: "sip:10.0.0.1:5060".into(),
        contact: "<sip:200@10.0.0.20:50952>".into(),
        cseq: 1,
    };
    let out = h.feed(phone(), &stranger.ack(1, ""));
    assert!(out.is_empty(), "{}", dump(&out));
    h.assert_clean();
}

#[test]
fn invite_with_one_of_our_own_b_call_ids_is_a_loop_482() {
    let mut h = Harness::new();
    let out = h.feed(phone(), &microsip_invite(true));
    let b = req_to(&out, itsp(), "INVITE");
    // The ITSP routes it straight back to us.
    let looped = rewrite(&b, None, |l| {
        if l.starts_with("Via:") {
            vec![
                l.to_string(),
                format!("Via: SIP/2.0/UDP 198.51.100.10:5060;branch={}", new_branch()),
            ]
        } else {
            vec![l.to_string()]
        }
    });
    let looped = looped.replacen(
        "INVITE sip:0123456789@198.51.100.10:5060",
        "INVITE sip:0123456789@203.0.113.1",
        1,
    );
    let out = h.feed(itsp(), &looped);
    let r = resp_to(&out, itsp(), 482);
    assert_eq!(call_id(&r), call_id(&b));
    none_to(&out, pbx());
    assert_eq!(h.shard.b2bua().calls(), 1, "only the original call");
}

#[test]
fn invite_matching_no_route_gets_404() {
    let cfg = CONFIG.replace(
        "  - name: lan-out\n    from: lan\n",
        "  - name: lan-out\n    from: lan\n    match: {prefix: \"9\"}\n",
    );
    assert_ne!(cfg, CONFIG);
    let mut h = Harness::with_config(&cfg);
    let out = h.feed(phone(), &microsip_invite(true));
    let r = resp_to(&out, phone(), 404);
    assert!(to_tag(&r).is_some());
    assert_eq!(count(&out, |_, t| is_req(t, "INVITE")), 0);
    // A number with the prefix goes out.
    let inv = invite(phone(), "sip:90123@10.0.0.1", &[], &sdp("10.0.0.20", 4000, "sendrecv"));
    let out = h.feed(phone(), &inv);
    req_to(&out, itsp(), "INVITE");
}

#[test]
fn register_gets_405_with_allow() {
    let mut h = Harness::new();
    let reg = vector("seed002/d2_10_register1.sip");
    let out = h.feed(phone(), &reg);
    let (_, r) = only(&out, "405", |_, t| is_resp(t, 405));
    assert!(msg(r).has_option_tag("Allow", "INVITE"), "{r}");
    assert!(!msg(r).has_option_tag("Allow", "REGISTER"), "{r}");
    assert_eq!(out.len(), 1, "{}", dump(&out));
    h.assert_clean();
}

// =============================================================================================
// 12. Timer C
// =============================================================================================

#[test]
fn ringing_too_long_cancels_b_and_answers_a_408_after_b_487() {
    let cfg = format!("{CONFIG}timers:\n  invite_ring_timeout: 10s\n");
    let mut h = Harness::with_config(&cfg);
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let b = req_to(&out, itsp(), "INVITE");
    let out = h.feed(itsp(), &reply(&b, 180, Some("b1"), &[], ""));
    resp_to(&out, phone(), 180);
    let out = h.advance(Duration::from_secs(10) - Duration::from_millis(1));
    assert!(out.is_empty(), "{}", dump(&out));
    let out = h.advance(Duration::from_millis(1));
    let cancel = req_to(&out, itsp(), "CANCEL");
    assert_eq!(branch(&cancel), branch(&b));
    assert!(hdr(&cancel, "Reason").contains("408"), "{cancel}");
    none_to(&out, phone());
    h.feed(itsp(), &reply(&cancel, 200, Some("b1"), &[], ""));
    let out = h.feed(itsp(), &reply(&b, 487, Some("b1"), &[], ""));
    req_to(&out, itsp(), "ACK");
    let timeout = resp_to(&out, phone(), 408);
    assert_eq!(cseq(&timeout), "6521 INVITE");
    h.feed(phone(), &ack_non_2xx(&inv, &timeout));
    assert_eq!(h.shard.b2bua().calls(), 0);
    h.assert_clean();
}

// =============================================================================================
// 13. No leaked state
// =============================================================================================

#[test]
fn no_state_left_after_calls_interleaved_in_one_shard() {
    let mut h = Harness::new();
    // Call 1: answered; call 2: rejected; call 3: cancelled; all at once.
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    let inv2 = invite(phone(), "sip:222@10.0.0.1", &[], &sdp("10.0.0.20", 4002, "sendrecv"));
    let b2 = req_to(&h.feed(phone(), &inv2), itsp(), "INVITE");
    let inv3 = invite(phone(), "sip:333@10.0.0.1", &[], &sdp("10.0.0.20", 4004, "sendrecv"));
    let b3 = req_to(&h.feed(phone(), &inv3), itsp(), "INVITE");
    assert_eq!(h.shard.b2bua().calls(), 3);
    let out = h.feed(itsp(), &reply(&b2, 603, Some("r2"), &[], ""));
    let decline = resp_to(&out, phone(), 603);
    h.feed(phone(), &ack_non_2xx(&inv2, &decline));
    h.feed(itsp(), &reply(&b3, 180, Some("r3"), &[], ""));
    let out = h.feed(phone(), &cancel_of(&inv3));
    let r487 = resp_to(&out, phone(), 487);
    let cancel = req_to(&out, itsp(), "CANCEL");
    h.feed(phone(), &ack_non_2xx(&inv3, &r487));
    h.feed(itsp(), &reply(&cancel, 200, Some("r3"), &[], ""));
    h.feed(itsp(), &reply(&b3, 487, Some("r3"), &[], ""));
    assert_eq!(h.shard.b2bua().calls(), 1);
    hang_up_from_a(&mut h, &mut up);
    h.assert_clean();
}

#[test]
fn no_state_left_after_failover_following_early_dialogs() {
    let mut h = Harness::new();
    let inv = microsip_invite(true);
    let out = h.feed(phone(), &inv);
    let first = req_to(&out, itsp(), "INVITE");
    // Two early dialogs on the first target, then it gives up.
    let out =
        h.feed(itsp(), &reply(&first, 180, Some("e1"), &["Contact: <sip:e1@198.51.100.10>"], ""));
    let first_a_tag = to_tag(&resp_to(&out, phone(), 180));
    h.feed(itsp(), &reply(&first, 180, Some("e2"), &["Contact: <sip:e2@198.51.100.10>"], ""));
    let out = h.feed(itsp(), &reply(&first, 503, Some("e2"), &[], ""));
    let second = req_to(&out, itsp_backup(), "INVITE");
    let c = "Contact: <sip:callee@198.51.100.11>";
    let out = h.feed(itsp_backup(), &reply(&second, 180, Some("k1"), &[c], ""));
    let ring = resp_to(&out, phone(), 180);
    assert_eq!(to_tag(&ring), first_a_tag, "the early dialog A knows goes on");
    let out = h
        .feed(itsp_backup(), &reply(&second, 200, Some("k1"), &[c], &sdp("198.51.100.21", 1, "x")));
    let a_ok = resp_to(&out, phone(), 200);
    let mut a = Peer::caller(phone(), &inv, &a_ok);
    h.feed(phone(), &a.ack(a.cseq, ""));
    let out = h.feed(phone(), &a.request("BYE", &[], ""));
    let bye = req_to(&out, itsp_backup(), "BYE");
    h.feed(itsp_backup(), &reply(&bye, 200, None, &[], ""));
    h.assert_clean();
}

#[test]
fn no_state_left_after_a_failed_call_and_an_unanswered_bye() {
    let mut h = Harness::new();
    let mut up = establish(&mut h, phone(), &microsip_invite(true));
    // B never answers our BYE: Timer F ends it.
    let out = h.feed(phone(), &up.a.request("BYE", &[], ""));
    req_to(&out, itsp(), "BYE");
    h.assert_clean();
}

// =============================================================================================
// 14. Inbound calls
// =============================================================================================

#[test]
fn call_from_trunk_routes_to_the_pbx_and_back() {
    let mut h = Harness::new();
    let inv = invite(itsp(), "sip:100@203.0.113.1", &[], &sdp("198.51.100.20", 20000, "sendrecv"));
    let mut up = establish(&mut h, itsp(), &inv);
    assert_eq!(up.b.flow, pbx());
    assert!(
        up.b_invite.starts_with("INVITE sip:100@10.0.0.50:5060 SIP/2.0\r\n"),
        "{}",
        up.b_invite
    );
    assert_eq!(hdr(&up.a_ok, "Contact"), "<sip:203.0.113.1:5060>");
    assert_eq!(call_id(&up.a_ok), call_id(&inv));
    assert_eq!(up.a_invite, inv);
    // The PBX hangs up.
    let out = h.feed(pbx(), &up.b.request("BYE", &[], ""));
    resp_to(&out, pbx(), 200);
    let bye = req_to(&out, itsp(), "BYE");
    assert_eq!(call_id(&bye), call_id(&inv));
    h.feed(itsp(), &up.a.answer(&bye, 200, &[], ""));
    h.assert_clean();
}

// =============================================================================================
// RFC 4028 session timers, per leg
// =============================================================================================

fn timer_config(interval: &str, min_se: &str) -> String {
    CONFIG
        .replace(
            "    media: { address: 127.0.0.1, advertise: 10.0.0.1, ports: 30000-31999 }\n",
            &format!("    media: {{ address: 127.0.0.1, advertise: 10.0.0.1, ports: 30000-31999 }}\n    session_timer: {{ interval: {interval}, min_se: {min_se} }}\n"),
        )
        .replace(
            "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n",
            &format!("    media: {{ address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }}\n    session_timer: {{ interval: {interval}, min_se: {min_se} }}\n"),
        )
}

#[test]
fn session_timer_too_small_an_interval_gets_422_with_min_se() {
    let mut h = Harness::with_config(&timer_config("600s", "120s"));
    let inv = invite(
        phone(),
        "sip:0123456789@10.0.0.1",
        &["Supported: timer", "Session-Expires: 90"],
        &sdp("10.0.0.20", 4000, "sendrecv"),
    );
    let out = h.feed(phone(), &inv);
    let r = resp_to(&out, phone(), 422);
    assert_eq!(hdr(&r, "Min-SE"), "120");
    assert_eq!(count(&out, |_, t| is_req(t, "INVITE")), 0, "nothing goes to the trunk");
}

#[test]
fn session_timer_each_leg_negotiates_its_own_and_the_trunks_value_never_reaches_the_lan() {
    let mut h = Harness::with_config(&timer_config("600s", "90s"));
    let inv = invite(
        phone(),
        "sip:0123456789@10.0.0.1",
        &["Supported: timer", "Session-Expires: 1800;refresher=uac"],
        &sdp("10.0.0.20", 4000, "sendrecv"),
    );
    let out = h.feed(phone(), &inv);
    let (b_flow, b_invite) = only(&out, "INVITE on B", |_, t| is_req(t, "INVITE")).clone();
    // Leg B gets sipborder's own interval, not A's.
    assert_eq!(hdr(&b_invite, "Session-Expires"), "600");
    assert_eq!(hdr(&b_invite, "Min-SE"), "90");
    assert!(msg(&b_invite).has_option_tag("Supported", "timer"));
    let c = format!("Contact: {}", callee_contact(b_flow));
    let ok = reply(
        &b_invite,
        200,
        Some("b1"),
        &[
            &c,
            "Session-Expires: 600;refresher=uas",
            "Require: timer",
            "Content-Type: application/sdp",
        ],
        &sdp("198.51.100.20", 30000, "sendrecv"),
    );
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, phone(), 200);
    // A asked for 1800 with itself refreshing: it gets exactly that back.
    assert_eq!(hdr(&a_ok, "Session-Expires"), "1800;refresher=uac");
    assert!(msg(&a_ok).has_option_tag("Require", "timer"));
    assert!(!hdr(&a_ok, "Session-Expires").starts_with("600"), "B's value stays on B");
}

#[test]
fn session_timer_sipborder_refreshes_a_leg_whose_peer_has_no_timers_and_answers_refreshes_itself() {
    let mut h = Harness::with_config(&timer_config("120s", "90s"));
    // The phone knows nothing of timers; the trunk does and refreshes leg B itself.
    let inv = invite(
        phone(),
        "sip:0123456789@10.0.0.1",
        &["Allow: INVITE, ACK, BYE, CANCEL, UPDATE"],
        &sdp("10.0.0.20", 4000, "sendrecv"),
    );
    let out = h.feed(phone(), &inv);
    let (b_flow, b_invite) = only(&out, "INVITE on B", |_, t| is_req(t, "INVITE")).clone();
    let contact = callee_contact(b_flow);
    let c = format!("Contact: {contact}");
    let ok = reply(
        &b_invite,
        200,
        Some("b1"),
        &[&c, "Session-Expires: 120;refresher=uas", "Content-Type: application/sdp"],
        &sdp("198.51.100.20", 30000, "sendrecv"),
    );
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(
        hdr(&a_ok, "Session-Expires"),
        "120;refresher=uas",
        "sipborder keeps the phone's leg alive"
    );
    let a = Peer::caller(phone(), &inv, &a_ok);
    h.feed(phone(), &a.ack(a.cseq, ""));
    let mut b = Peer::callee(b_flow, &b_invite, "b1", &contact);
    // At half the interval sipborder refreshes leg A with an UPDATE (the phone allows it).
    let out = h.advance(Duration::from_secs(60) + T1 / 2);
    let upd = req_to(&out, phone(), "UPDATE");
    assert!(body(&upd).is_empty(), "a refresh, no new offer");
    assert_eq!(hdr(&upd, "Session-Expires"), "120;refresher=uac");
    assert_eq!(count(&out, |f, t| *f == b_flow && is_req(t, "UPDATE")), 0, "leg B is not bothered");
    h.feed(phone(), &reply(&upd, 200, None, &["Session-Expires: 120;refresher=uac"], ""));
    // The trunk refreshes leg B with a body-less UPDATE: answered by sipborder, not relayed.
    let refresh = b.request("UPDATE", &["Session-Expires: 120;refresher=uac"], "");
    let out = h.feed(b_flow, &refresh);
    let r = resp_to(&out, b_flow, 200);
    assert!(hdr(&r, "Session-Expires").starts_with("120"));
    assert_eq!(
        count(&out, |f, t| *f == phone() && is_req(t, "UPDATE")),
        0,
        "not relayed to the phone"
    );
    // The phone stops answering refreshes: the next one fails and both legs get a BYE.
    let out = h.advance(Duration::from_secs(61));
    assert!(count(&out, |f, t| *f == phone() && is_req(t, "UPDATE")) >= 1, "{}", dump(&out));
    let out = h.advance(T1 * 64 + Duration::from_secs(1));
    assert!(count(&out, |f, t| *f == phone() && is_req(t, "BYE")) >= 1, "{}", dump(&out));
    assert!(count(&out, |f, t| *f == b_flow && is_req(t, "BYE")) >= 1, "{}", dump(&out));
}

#[test]
fn session_timer_a_peer_that_never_refreshes_gets_the_call_ended_before_expiry() {
    let mut h = Harness::with_config(&timer_config("120s", "90s"));
    let inv = invite(
        phone(),
        "sip:0123456789@10.0.0.1",
        &["Supported: timer"],
        &sdp("10.0.0.20", 4000, "sendrecv"),
    );
    let out = h.feed(phone(), &inv);
    let (b_flow, b_invite) = only(&out, "INVITE on B", |_, t| is_req(t, "INVITE")).clone();
    let c = format!("Contact: {}", callee_contact(b_flow));
    let ok = reply(
        &b_invite,
        200,
        Some("b1"),
        &[
            &c,
            "Session-Expires: 120;refresher=uas",
            "Require: timer",
            "Content-Type: application/sdp",
        ],
        &sdp("198.51.100.20", 30000, "sendrecv"),
    );
    let out = h.feed(b_flow, &ok);
    let a_ok = resp_to(&out, phone(), 200);
    assert_eq!(hdr(&a_ok, "Session-Expires"), "120;refresher=uac", "a timer-aware phone refreshes");
    let a = Peer::caller(phone(), &inv, &a_ok);
    h.feed(phone(), &a.ack(a.cseq, ""));
    // Nobody refreshes: at SE - min(32, SE/3) = 88 s both legs are hung up with a Reason.
    let out = h.advance(Duration::from_secs(87));
    assert_eq!(count(&out, |_, t| is_req(t, "BYE")), 0, "{}", dump(&out));
    let out = h.advance(Duration::from_secs(2));
    let byes: Vec<&Sent> = out.iter().filter(|(_, t)| is_req(t, "BYE")).collect();
    assert!(
        byes.iter().any(|(f, _)| *f == phone()) && byes.iter().any(|(f, _)| *f == b_flow),
        "{}",
        dump(&out)
    );
    assert!(byes.iter().all(|(_, t)| hdr(t, "Reason").contains("Session timer expired")));
}

// =============================================================================================
// Digest answers within a call (re-INVITE, BYE toward a challenging trunk)
// =============================================================================================

#[test]
fn a_bye_challenged_by_the_trunk_is_sent_again_with_credentials_once() {
    let secret = std::env::temp_dir().join(format!("sb-bye-secret-{}", std::process::id()));
    std::fs::write(&secret, "itsp-secret\n").expect("secret");
    let yaml = CONFIG.replace(
        "    address: 198.51.100.10:5060\n",
        &format!("    address: 198.51.100.10:5060\n    auth: {{ username: \"4930123\", password_file: {} }}\n", secret.display()),
    );
    let mut h = Harness::with_config(&yaml);
    let mut up = establish(
        &mut h,
        phone(),
        &invite(phone(), "sip:0123456789@10.0.0.1", &[], &sdp("10.0.0.20", 4000, "sendrecv")),
    );
    let bye = up.a.request("BYE", &[], "");
    let out = h.feed(phone(), &bye);
    let b_bye = req_to(&out, itsp(), "BYE");
    let challenge = "WWW-Authenticate: Digest realm=\"itsp.example\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"";
    let out = h.feed(itsp(), &reply(&b_bye, 401, None, &[challenge], ""));
    let again = req_to(&out, itsp(), "BYE");
    let auth = hdr(&again, "Authorization");
    assert!(auth.contains("username=\"4930123\"") && auth.contains("nonce=\"n1\""), "{again}");
    assert_ne!(cseq(&again), cseq(&b_bye), "a new CSeq");
    // A second challenge is not answered again.
    let out = h.feed(itsp(), &reply(&again, 401, None, &[challenge], ""));
    assert_eq!(count(&out, |_, t| is_req(t, "BYE")), 0, "{}", dump(&out));
    let _ = std::fs::remove_file(&secret);
    h.assert_clean();
}

// =============================================================================================
// Registration proxy (site edge): a NATed phone registers to the LAN PBX through sipborder
// =============================================================================================

fn register(
    from: Flow,
    contact: &str,
    call_id: &str,
    cseq: u32,
    expires: u32,
    extra: &[&str],
) -> String {
    let mut hs = vec![
        format!("Via: SIP/2.0/UDP 192.168.1.5:5060;rport;branch={}", new_branch()),
        "Max-Forwards: 70".to_string(),
        "From: <sip:100@pbx.example>;tag=ph1".to_string(),
        "To: <sip:100@pbx.example>".to_string(),
        format!("Call-ID: {call_id}"),
        format!("CSeq: {cseq} REGISTER"),
        format!("Contact: <{contact}>"),
        format!("Expires: {expires}"),
    ];
    hs.extend(extra.iter().map(|s| s.to_string()));
    let _ = from;
    build("REGISTER sip:pbx.example SIP/2.0", &hs, "")
}

#[test]
fn registration_proxy_binds_the_nat_flow_caches_refreshes_and_routes_calls_back() {
    let yaml = CONFIG.replace(
        "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n",
        "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n    register_proxy: { registrar: pbx, client_expires: 60s, registrar_expires: 3600s, keepalive: 0s }\n",
    );
    let mut h = Harness::with_config(&yaml);
    // The phone is behind a NAT: private Contact, public source.
    let nat = udp(1, "198.51.100.77:40000");
    let device = "sip:100@192.168.1.5:5060";
    let out = h.feed(nat, &register(nat, device, "ph-call-1", 1, 3600, &[]));
    let (_, up) =
        only(&out, "REGISTER to the PBX", |f, t| *f == pbx() && is_req(t, "REGISTER")).clone();
    let contact = hdr(&up, "Contact");
    assert!(
        contact.starts_with("<sip:") && contact.contains("@10.0.0.1:5060>"),
        "sipborder's own contact: {contact}"
    );
    assert!(contact.ends_with(";expires=3600"), "{contact}");
    assert!(
        !up.contains("192.168.1.5") && !up.contains("ph-call-1"),
        "nothing of the device leaks:\n{up}"
    );
    assert_eq!(
        up.split_whitespace().nth(1),
        Some("sip:pbx.example"),
        "Request-URI kept for the digest"
    );
    // The PBX challenges: the phone gets the challenge unchanged.
    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"abc\", algorithm=MD5";
    let out = h.feed(pbx(), &reply(&up, 401, Some("p1"), &[challenge], ""));
    let r = resp_to(&out, nat, 401);
    assert_eq!(hdr(&r, "WWW-Authenticate"), "Digest realm=\"pbx\", nonce=\"abc\", algorithm=MD5");
    // The phone answers it: credentials cross untouched.
    let creds = "Authorization: Digest username=\"100\", realm=\"pbx\", nonce=\"abc\", uri=\"sip:pbx.example\", response=\"0123456789abcdef0123456789abcdef\"";
    let out = h.feed(nat, &register(nat, device, "ph-call-1", 2, 3600, &[creds]));
    let (_, up2) =
        only(&out, "REGISTER to the PBX", |f, t| *f == pbx() && is_req(t, "REGISTER")).clone();
    assert_eq!(format!("Authorization: {}", hdr(&up2, "Authorization")), creds);
    assert_eq!(call_id(&up2), call_id(&up), "one registration Call-ID toward the PBX");
    let token_contact = hdr(&up2, "Contact");
    let ok = reply(&up2, 200, Some("p1"), &[&format!("Contact: {token_contact}")], "");
    let out = h.feed(pbx(), &ok);
    let r = resp_to(&out, nat, 200);
    assert_eq!(
        hdr(&r, "Contact"),
        format!("<{device}>;expires=60"),
        "the phone refreshes every minute"
    );
    // A refresh inside the PBX's hour is answered from the cache.
    let out = h.feed(nat, &register(nat, device, "ph-call-1", 3, 3600, &[]));
    resp_to(&out, nat, 200);
    assert_eq!(count(&out, |f, _| *f == pbx()), 0, "the PBX is not bothered: {}", dump(&out));
    // The PBX calls the phone at sipborder's contact: the INVITE goes to the NAT's public
    // address the REGISTER came from, with the device's Contact as Request-URI.
    let token =
        token_contact.trim_start_matches("<sip:").split('@').next().unwrap_or("").to_string();
    let inv = invite(
        pbx(),
        &format!("sip:{token}@10.0.0.1:5060"),
        &[],
        &sdp("10.0.0.60", 4000, "sendrecv"),
    );
    let out = h.feed(pbx(), &inv);
    let (f, to_phone) = only(&out, "INVITE to the phone", |_, t| is_req(t, "INVITE")).clone();
    assert_eq!(f.remote, nat.remote, "sent where the REGISTER came from, not to 192.168.1.5");
    assert!(to_phone.starts_with(&format!("INVITE {device} SIP/2.0")), "{to_phone}");
    // De-registration reaches the PBX and forgets the binding.
    h.feed(f, &reply(&to_phone, 486, Some("ph"), &[], ""));
    let out = h.feed(nat, &register(nat, device, "ph-call-1", 4, 0, &[]));
    let (_, bye) =
        only(&out, "de-REGISTER to the PBX", |f, t| *f == pbx() && is_req(t, "REGISTER")).clone();
    assert!(hdr(&bye, "Contact").ends_with(";expires=0"), "{bye}");
    assert!(h.shard.b2bua().bindings.is_empty());
}

#[test]
fn seed002_cucm_registration_replays_through_the_registration_proxy() {
    // MicroSIP registering to CUCM (seed002 d2_10..d2_15), now from behind a NAT through
    // sipborder: the phone's own messages, CUCM's own challenge and 200.
    let yaml = CONFIG.replace(
        "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n",
        "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n    register_proxy: { registrar: pbx, client_expires: 60s, registrar_expires: 3600s, keepalive: 0s }\n",
    );
    let mut h = Harness::with_config(&yaml);
    let nat = udp(1, "198.51.100.77:50952");
    let out = h.feed(nat, &vector("seed002/d2_10_register1.sip"));
    let (_, up) =
        only(&out, "REGISTER to the PBX", |f, t| *f == pbx() && is_req(t, "REGISTER")).clone();
    assert!(!up.contains("192.168.80.11"), "the phone's private address stays out:\n{up}");
    assert_eq!(up.split_whitespace().nth(1), Some("sip:192.168.80.100"), "{up}");
    // CUCM's challenge (d2_12) reaches the phone unchanged.
    let d2_12 = vector("seed002/d2_12_401.sip");
    let challenge = format!("WWW-Authenticate: {}", hdr(&d2_12, "WWW-Authenticate"));
    let out = h.feed(pbx(), &reply(&up, 401, Some("1745811662"), &[&challenge], ""));
    let r = resp_to(&out, nat, 401);
    assert_eq!(format!("WWW-Authenticate: {}", hdr(&r, "WWW-Authenticate")), challenge);
    assert_eq!(call_id(&r), "26a8f5dd71574735a0224cee6701e1c5", "the phone's own Call-ID");
    assert_eq!(cseq(&r), "24081 REGISTER");
    // The phone's authenticated REGISTER (d2_13): credentials cross byte for byte, so CUCM
    // verifies them against the Request-URI the phone signed.
    let d2_13 = vector("seed002/d2_13_register2_auth.sip");
    let out = h.feed(nat, &d2_13);
    let (_, up2) =
        only(&out, "REGISTER to the PBX", |f, t| *f == pbx() && is_req(t, "REGISTER")).clone();
    assert_eq!(hdr(&up2, "Authorization"), hdr(&d2_13, "Authorization"));
    assert_eq!(up2.split_whitespace().nth(1), Some("sip:192.168.80.100"));
    assert_eq!(call_id(&up2), call_id(&up));
    // CUCM's 200 (d2_15): Expires 120 and its x-cisco-newreg Contact parameter.
    let contact = format!("Contact: {};x-cisco-newreg", hdr(&up2, "Contact"));
    let out = h.feed(
        pbx(),
        &reply(
            &up2,
            200,
            Some("1745811662"),
            &[&contact, "Expires: 120", "Server: Cisco-CUCM14.0", "Supported: X-cisco-sis-10.0.0"],
            "",
        ),
    );
    let ok = resp_to(&out, nat, 200);
    assert_eq!(cseq(&ok), "24082 REGISTER");
    let phone_contact = hdr(&ok, "Contact");
    assert!(
        phone_contact.starts_with("<sip:10001@192.168.80.11:50952;ob>")
            && phone_contact.contains("expires=60"),
        "the phone sees its own Contact with the short expiry: {phone_contact}"
    );
    assert_eq!(h.shard.b2bua().bindings.len(), 1);
}

// =============================================================================================
// Transfers performed by sipborder (refer: local on the carrier trunk)
// =============================================================================================

#[test]
fn a_pbx_transfer_of_a_carrier_call_is_done_locally_and_the_carrier_sees_nothing() {
    let yaml = CONFIG.replace(
        "    address: 198.51.100.10:5060\n",
        "    address: 198.51.100.10:5060\n    refer: local\n",
    );
    let mut h = Harness::with_config(&yaml);
    // A carrier call answered by the PBX.
    let carrier_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut up =
        establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &carrier_offer));
    // The PBX transfers it to 10003: MicroSIP's REFER to CUCM (seed002 d2_22) as it was
    // (Expires, Supported: norefersub, Accept, Allow-Events, User-Agent...), in this call's
    // dialog.
    let refer = vector_in_dialog("seed002/d2_22_refer.sip", &up.b.request("REFER", &[], ""));
    assert!(refer.contains("Refer-To: <sip:10003@192.168.80.100>\r\n"), "{refer}");
    let out = h.feed(pbx(), &refer);
    // Answered as CUCM did (d2_23): 202 with a Contact.
    let accepted = resp_to(&out, pbx(), 202);
    assert!(hdr_opt(&accepted, "Contact").is_some(), "{accepted}");
    assert_eq!(cseq(&accepted), cseq(&refer));
    let notify = req_to(&out, pbx(), "NOTIFY");
    assert_eq!(body(&notify), "SIP/2.0 100 Trying\r\n");
    assert_eq!(hdr(&notify, "Event"), "refer");
    assert_eq!(count(&out, |f, _| *f == itsp()), 0, "the carrier sees no REFER: {}", dump(&out));
    // sipborder itself calls 10003 at the PBX, as the carrier's caller, on the same relay ports.
    let new_invite = out
        .iter()
        .find(|(f, t)| *f == pbx() && is_req(t, "INVITE"))
        .map(|(_, t)| t.clone())
        .expect("an INVITE toward the transfer target");
    assert!(new_invite.starts_with("INVITE sip:10003@10.0.0.50:5060 SIP/2.0"), "{new_invite}");
    assert_ne!(call_id(&new_invite), call_id(&up.b_invite), "a new leg");
    assert_eq!(hdr(&new_invite, "Referred-By"), "<sip:10001@192.168.80.100>");
    let old_port =
        body(&up.b_invite).lines().find(|l| l.starts_with("m=audio")).map(str::to_string);
    let new_port = body(&new_invite).lines().find(|l| l.starts_with("m=audio")).map(str::to_string);
    assert_eq!(new_port, old_port, "the target gets the relay port the transferor had");
    // The target answers: NOTIFY 200 to the transferor, its leg is ended, the carrier is untouched.
    let c = "Contact: <sip:10003@10.0.0.50:5060>";
    let ok = reply(
        &new_invite,
        200,
        Some("t3"),
        &[c, "Content-Type: application/sdp"],
        &sdp("10.0.0.63", 4000, "sendrecv"),
    );
    let out = h.feed(pbx(), &ok);
    assert!(
        out.iter().any(|(_, t)| is_req(t, "ACK") && call_id(t) == call_id(&new_invite)),
        "{}",
        dump(&out)
    );
    let done = out
        .iter()
        .find(|(_, t)| is_req(t, "NOTIFY"))
        .map(|(_, t)| t.clone())
        .expect("final NOTIFY");
    assert_eq!(body(&done), "SIP/2.0 200 OK\r\n");
    assert!(hdr(&done, "Subscription-State").starts_with("terminated"));
    assert!(
        out.iter().any(|(_, t)| is_req(t, "BYE") && call_id(t) == call_id(&up.b_invite)),
        "the transferor's leg ends"
    );
    assert_eq!(count(&out, |f, _| *f == itsp()), 0, "the carrier sees nothing: {}", dump(&out));
    // The carrier now talks to 10003: its BYE reaches the new leg.
    let bye = up.a.request("BYE", &[], "");
    let out = h.feed(itsp(), &bye);
    let relayed = req_to(&out, pbx(), "BYE");
    assert_eq!(call_id(&relayed), call_id(&new_invite));
    h.feed(pbx(), &reply(&relayed, 200, None, &[], ""));
    h.assert_clean();
}

// =============================================================================================
// Attended transfer: two carrier calls joined by sipborder (REFER with Replaces)
// =============================================================================================

/// `up`'s PBX leg (leg B of an inbound call) named in a Refer-To's escaped Replaces, tags as
/// the PBX writes them (to-tag: the remote end's, sipborder's; from-tag: its own).
fn replaces_of(pbx_leg: &Peer) -> String {
    let ours = param(&pbx_leg.to, "tag").expect("sipborder's tag");
    let theirs = param(&pbx_leg.from, "tag").expect("the PBX's tag");
    format!("{}%3Bto-tag%3D{ours}%3Bfrom-tag%3D{theirs}", pbx_leg.call_id.replace('@', "%40"))
}

fn attended_refer(from: &mut Peer, replaces: &str) -> String {
    from.request(
        "REFER",
        &[
            "Event: refer",
            &format!("Refer-To: <sip:10002@10.0.0.50?Replaces={replaces}>"),
            "Referred-By: <sip:10001@10.0.0.50>",
        ],
        "",
    )
}

fn refer_local_harness() -> Harness {
    Harness::with_config(&CONFIG.replace(
        "    address: 198.51.100.10:5060\n",
        "    address: 198.51.100.10:5060\n    refer: local\n",
    ))
}

#[test]
fn an_attended_transfer_joins_two_carrier_calls_and_the_carriers_see_nothing() {
    let mut h = refer_local_harness();
    let x_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &x_offer));
    let y_offer = sdp("198.51.100.30", 30002, "sendrecv");
    let mut y = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &y_offer));
    // The PBX completes the transfer on X's call, naming its leg of Y's call.
    let refer = attended_refer(&mut x.b, &replaces_of(&y.b));
    let out = h.feed(pbx(), &refer);
    resp_to(&out, pbx(), 202);
    let notifies: Vec<&String> =
        out.iter().filter(|(_, t)| is_req(t, "NOTIFY")).map(|(_, t)| t).collect();
    assert_eq!(notifies.len(), 2, "{}", dump(&out));
    assert_eq!(body(notifies[0]), "SIP/2.0 100 Trying\r\n");
    assert_eq!(body(notifies[1]), "SIP/2.0 200 OK\r\n");
    assert!(hdr(notifies[1], "Subscription-State").starts_with("terminated"));
    // Both PBX legs end; neither carrier hears of it.
    let byes: Vec<String> = out
        .iter()
        .filter(|(f, t)| *f == pbx() && is_req(t, "BYE"))
        .map(|(_, t)| call_id(t))
        .collect();
    assert_eq!(byes.len(), 2, "{}", dump(&out));
    assert!(byes.contains(&x.b.call_id) && byes.contains(&y.b.call_id), "{byes:?}");
    assert_eq!(count(&out, |f, _| *f == itsp()), 0, "{}", dump(&out));
    for (_, t) in
        out.iter().filter(|(f, t)| *f == pbx() && (is_req(t, "BYE") || is_req(t, "NOTIFY")))
    {
        h.feed(pbx(), &reply(t, 200, None, &[], ""));
    }
    // The PBX's own BYE for X's leg, crossing ours, is answered and goes nowhere.
    let out = h.feed(pbx(), &x.b.request("BYE", &[], ""));
    resp_to(&out, pbx(), 200);
    assert_eq!(out.len(), 1, "{}", dump(&out));
    // X puts the joined call on hold: answered here (recvonly), nothing crosses.
    let hold = sdp("198.51.100.20", 30000, "sendonly");
    let reinv = x.a.request("INVITE", &["Content-Type: application/sdp"], &hold);
    let out = h.feed(itsp(), &reinv);
    let ok = resp_to(&out, itsp(), 200);
    assert!(body(&ok).contains("a=recvonly"), "{ok}");
    assert_eq!(count(&out, |_, t| !t.starts_with("SIP/2.0 ")), 0, "only answers: {}", dump(&out));
    let out = h.feed(itsp(), &x.a.ack(x.a.cseq, ""));
    assert!(out.is_empty(), "{}", dump(&out));
    // X hangs up: Y's carrier leg gets the BYE, and both calls are gone.
    let out = h.feed(itsp(), &x.a.request("BYE", &[], ""));
    resp_to(&out, itsp(), 200);
    let bye_y = out
        .iter()
        .find(|(f, t)| *f == itsp() && is_req(t, "BYE"))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("a BYE to Y:\n{}", dump(&out)));
    assert_eq!(call_id(&bye_y), y.a.call_id);
    h.feed(itsp(), &reply(&bye_y, 200, None, &[], ""));
    let _ = &mut y;
    h.assert_clean();
}

#[test]
fn an_attended_transfer_naming_no_call_fails_in_the_notify_and_the_call_goes_on() {
    let mut h = refer_local_harness();
    let mut x = establish(
        &mut h,
        itsp(),
        &invite(itsp(), "sip:10001@203.0.113.1", &[], &sdp("198.51.100.20", 30000, "sendrecv")),
    );
    let out = h.feed(pbx(), &attended_refer(&mut x.b, "nosuch%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2"));
    resp_to(&out, pbx(), 202);
    let last = out.iter().rev().find(|(_, t)| is_req(t, "NOTIFY")).map(|(_, t)| t.clone());
    assert_eq!(last.as_deref().map(body), Some("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
    assert_eq!(count(&out, |_, t| is_req(t, "BYE")), 0, "{}", dump(&out));
    // The call is intact: a BYE from the carrier reaches the PBX.
    hang_up_from_a(&mut h, &mut x);
    h.assert_clean();
}

#[test]
fn an_attended_transfer_naming_the_other_calls_carrier_leg_is_refused() {
    let mut h = refer_local_harness();
    let offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &offer));
    let mut y = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &offer));
    // Y's carrier leg, as that carrier knows it: not the PBX's to give away.
    let carrier_leg = format!(
        "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
        y.a.call_id.replace('@', "%40"),
        param(&y.a.to, "tag").expect("tag"),
        param(&y.a.from, "tag").expect("tag")
    );
    let out = h.feed(pbx(), &attended_refer(&mut x.b, &carrier_leg));
    let last = out.iter().rev().find(|(_, t)| is_req(t, "NOTIFY")).map(|(_, t)| t.clone());
    assert_eq!(last.as_deref().map(body), Some("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
    assert_eq!(count(&out, |_, t| is_req(t, "BYE")), 0, "{}", dump(&out));
    hang_up_from_a(&mut h, &mut x);
    hang_up_from_a(&mut h, &mut y);
    h.assert_clean();
}

#[test]
fn a_badly_escaped_replaces_gets_400() {
    let mut h = refer_local_harness();
    let mut x = establish(
        &mut h,
        itsp(),
        &invite(itsp(), "sip:10001@203.0.113.1", &[], &sdp("198.51.100.20", 30000, "sendrecv")),
    );
    let out = h.feed(pbx(), &attended_refer(&mut x.b, "c%4"));
    resp_to(&out, pbx(), 400);
    hang_up_from_a(&mut h, &mut x);
    h.assert_clean();
}

// =============================================================================================
// INVITE with Replaces from the PBX: a new dialog takes over a call's leg
// =============================================================================================

#[test]
fn an_invite_with_replaces_from_the_pbx_takes_over_the_leg_and_the_carrier_sees_nothing() {
    let mut h = Harness::new();
    let x_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &x_offer));
    // Another phone picks the call up: its INVITE names the PBX's leg.
    let ours = param(&x.b.to, "tag").expect("our tag");
    let replaces = format!("Replaces: {};to-tag={ours};from-tag=b1", x.b.call_id);
    // From the carrier's zone the same header takes nothing over: 481, as for no such call.
    let hijack = invite(itsp(), "sip:10001@203.0.113.1", &[&replaces], &x_offer);
    let out = h.feed(itsp(), &hijack);
    resp_to(&out, itsp(), 481);
    assert_eq!(count(&out, |f, t| *f == pbx() && is_req(t, "BYE")), 0, "{}", dump(&out));
    let pickup =
        invite(pbx(), "sip:10001@10.0.0.1", &[&replaces], &sdp("10.0.0.64", 4000, "sendrecv"));
    let out = h.feed(pbx(), &pickup);
    let ok = resp_to(&out, pbx(), 200);
    assert_eq!(call_id(&ok), call_id(&pickup));
    let port = |s: &str| body(s).lines().find(|l| l.starts_with("m=audio")).map(str::to_string);
    assert_eq!(port(&ok), port(&x.b_invite), "the new phone gets the relay port the old leg had");
    let bye = req_to(&out, pbx(), "BYE");
    assert_eq!(call_id(&bye), x.b.call_id, "the replaced leg ends");
    assert_eq!(count(&out, |f, _| *f == itsp()), 0, "the carrier sees nothing: {}", dump(&out));
    h.feed(pbx(), &reply(&bye, 200, None, &[], ""));
    // The new phone ACKs; the carrier's BYE now reaches it.
    let mut phone2 = Peer::caller(pbx(), &pickup, &ok);
    let out = h.feed(pbx(), &phone2.ack(phone2.cseq, ""));
    assert!(out.is_empty(), "{}", dump(&out));
    let out = h.feed(itsp(), &x.a.request("BYE", &[], ""));
    let relayed = req_to(&out, pbx(), "BYE");
    assert_eq!(call_id(&relayed), call_id(&pickup));
    h.feed(pbx(), &reply(&relayed, 200, None, &[], ""));
    let _ = &mut phone2;
    h.assert_clean();
}

#[test]
fn an_invite_with_replaces_naming_no_dialog_gets_481() {
    let mut h = Harness::new();
    let r = "Replaces: nosuch@pbx;to-tag=1;from-tag=2";
    let inv = invite(pbx(), "sip:10001@10.0.0.1", &[r], &sdp("10.0.0.64", 4000, "sendrecv"));
    let out = h.feed(pbx(), &inv);
    resp_to(&out, pbx(), 481);
    assert_eq!(count(&out, |f, _| *f == itsp()), 0, "not routed as a new call: {}", dump(&out));
    let out = h.feed(pbx(), &invite(pbx(), "sip:10001@10.0.0.1", &["Replaces: x@y;to-tag=1"], ""));
    resp_to(&out, pbx(), 400);
    h.assert_clean();
}

// =============================================================================================
// Transfers with media not anchored: the remaining party gets a re-INVITE
// =============================================================================================

fn bypass_refer_local_harness() -> Harness {
    Harness::with_config(
        &CONFIG
            .replace(
                "    address: 198.51.100.10:5060\n",
                "    address: 198.51.100.10:5060\n    refer: local\n",
            )
            .replace("    targets: [pbx]\n", "    targets: [pbx]\n    media: bypass\n"),
    )
}

/// The re-INVITE sipborder sent `to`, answered 200 (with `answer`) and ACKed.
fn answer_media_move(h: &mut Harness, out: &[Sent], to: Flow, answer: &str) -> String {
    let reinvite = req_to(out, to, "INVITE");
    let ok = reply(&reinvite, 200, None, &["Content-Type: application/sdp"], answer);
    let acked = h.feed(to, &ok);
    assert!(
        acked.iter().any(|(f, t)| *f == to
            && is_req(t, "ACK")
            && cseq(t).starts_with(&cseq(&reinvite).replace(" INVITE", ""))),
        "the 200 is ACKed: {}",
        dump(&acked)
    );
    reinvite
}

#[test]
fn a_blind_transfer_not_anchored_moves_the_carriers_media_to_the_target() {
    let mut h = bypass_refer_local_harness();
    let x_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &x_offer));
    assert!(body(&x.b_invite).contains("c=IN IP4 198.51.100.20"), "bypass: the PBX got X's SDP");
    let refer = x.b.request("REFER", &["Event: refer", "Refer-To: <sip:10003@10.0.0.50>"], "");
    let out = h.feed(pbx(), &refer);
    let to_target = out
        .iter()
        .find(|(f, t)| *f == pbx() && is_req(t, "INVITE"))
        .map(|(_, t)| t.clone())
        .expect("INVITE to the target");
    assert!(body(&to_target).contains("c=IN IP4 198.51.100.20"), "the target is sent X's SDP");
    let target_sdp = sdp("10.0.0.63", 4000, "sendrecv");
    let c = "Contact: <sip:10003@10.0.0.50:5060>";
    let ok = reply(&to_target, 200, Some("t3"), &[c, "Content-Type: application/sdp"], &target_sdp);
    let out = h.feed(pbx(), &ok);
    // The carrier is re-INVITEd with the target's address, under the origin it knows.
    let reinvite = answer_media_move(&mut h, &out, itsp(), &x_offer);
    assert!(body(&reinvite).contains("c=IN IP4 10.0.0.63\r\n"), "{reinvite}");
    assert!(body(&reinvite).contains("m=audio 4000 "), "{reinvite}");
    // o=<user> <sess-id> <version> ...: user and session kept, version one higher.
    let origin = |s: &str| -> Vec<String> {
        let o = body(s).lines().find_map(|l| l.strip_prefix("o=")).expect("o=").to_string();
        o.split_whitespace().map(str::to_string).collect()
    };
    let (before, after) = (origin(&x.a_ok), origin(&reinvite));
    assert_eq!((&before[..2], &before[3..]), (&after[..2], &after[3..]), "same origin");
    let version = |o: &[String]| o[2].parse::<u64>().expect("version");
    assert_eq!(version(&after), version(&before) + 1);
    hang_up(&mut h, &mut x.a, pbx());
    h.assert_clean();
}

#[test]
fn an_attended_transfer_not_anchored_reinvites_each_carrier_with_the_others_address() {
    let mut h = bypass_refer_local_harness();
    let x_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &x_offer));
    let y_offer = sdp("198.51.100.30", 30002, "sendrecv");
    let y = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &y_offer));
    let out = h.feed(pbx(), &attended_refer(&mut x.b, &replaces_of(&y.b)));
    resp_to(&out, pbx(), 202);
    let reinvites: Vec<&String> =
        out.iter().filter(|(f, t)| *f == itsp() && is_req(t, "INVITE")).map(|(_, t)| t).collect();
    assert_eq!(reinvites.len(), 2, "{}", dump(&out));
    let to_x = reinvites.iter().find(|t| call_id(t) == x.a.call_id).expect("re-INVITE to X");
    let to_y = reinvites.iter().find(|t| call_id(t) == y.a.call_id).expect("re-INVITE to Y");
    assert!(
        body(to_x).contains("c=IN IP4 198.51.100.30\r\n") && body(to_x).contains("m=audio 30002 "),
        "{to_x}"
    );
    assert!(
        body(to_y).contains("c=IN IP4 198.51.100.20\r\n") && body(to_y).contains("m=audio 30000 "),
        "{to_y}"
    );
    let (to_x, to_y) = (to_x.to_string(), to_y.to_string());
    for (re, answer) in [(&to_x, &x_offer), (&to_y, &y_offer)] {
        let out = h.feed(itsp(), &reply(re, 200, None, &["Content-Type: application/sdp"], answer));
        assert!(
            out.iter().any(|(_, t)| is_req(t, "ACK") && call_id(t) == call_id(re)),
            "{}",
            dump(&out)
        );
    }
    // X hangs up: Y's call ends too.
    let out = h.feed(itsp(), &x.a.request("BYE", &[], ""));
    let bye_y = out
        .iter()
        .find(|(f, t)| *f == itsp() && is_req(t, "BYE") && call_id(t) == y.a.call_id)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("BYE to Y:\n{}", dump(&out)));
    h.feed(itsp(), &reply(&bye_y, 200, None, &[], ""));
    for (_, t) in out.iter().filter(|(f, t)| *f == pbx() && is_req(t, "BYE")) {
        h.feed(pbx(), &reply(t, 200, None, &[], ""));
    }
    h.assert_clean();
}

#[test]
fn an_invite_with_replaces_not_anchored_moves_the_carriers_media_to_the_new_phone() {
    let mut h = bypass_refer_local_harness();
    let x_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &x_offer));
    let ours = param(&x.b.to, "tag").expect("our tag");
    let replaces = format!("Replaces: {};to-tag={ours};from-tag=b1", x.b.call_id);
    let phone_sdp = sdp("10.0.0.64", 4000, "sendrecv");
    let pickup = invite(pbx(), "sip:10001@10.0.0.1", &[&replaces], &phone_sdp);
    let out = h.feed(pbx(), &pickup);
    let ok = resp_to(&out, pbx(), 200);
    assert!(body(&ok).contains("c=IN IP4 198.51.100.20"), "the phone is sent X's address: {ok}");
    let reinvite = answer_media_move(&mut h, &out, itsp(), &x_offer);
    assert!(body(&reinvite).contains("c=IN IP4 10.0.0.64\r\n"), "{reinvite}");
    let bye = req_to(&out, pbx(), "BYE");
    h.feed(pbx(), &reply(&bye, 200, None, &[], ""));
    let phone2 = Peer::caller(pbx(), &pickup, &ok);
    h.feed(pbx(), &phone2.ack(phone2.cseq, ""));
    let out = h.feed(itsp(), &x.a.request("BYE", &[], ""));
    let relayed = req_to(&out, pbx(), "BYE");
    assert_eq!(call_id(&relayed), call_id(&pickup));
    h.feed(pbx(), &reply(&relayed, 200, None, &[], ""));
    h.assert_clean();
}

#[test]
fn an_invite_with_replaces_without_sdp_gets_our_offer_and_its_ack_answer_moves_the_media() {
    let mut h = bypass_refer_local_harness();
    let x_offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &x_offer));
    let ours = param(&x.b.to, "tag").expect("our tag");
    let replaces = format!("Replaces: {};to-tag={ours};from-tag=b1", x.b.call_id);
    let pickup = invite(pbx(), "sip:10001@10.0.0.1", &[&replaces], "");
    let out = h.feed(pbx(), &pickup);
    let ok = resp_to(&out, pbx(), 200);
    assert!(body(&ok).contains("c=IN IP4 198.51.100.20"), "our offer: what the leg had: {ok}");
    assert_eq!(count(&out, |f, t| *f == itsp() && is_req(t, "INVITE")), 0, "not before the ACK");
    let bye = req_to(&out, pbx(), "BYE");
    h.feed(pbx(), &reply(&bye, 200, None, &[], ""));
    // The ACK carries the new phone's answer: the carrier is moved to it.
    let phone2 = Peer::caller(pbx(), &pickup, &ok);
    let out = h.feed(pbx(), &phone2.ack(phone2.cseq, &sdp("10.0.0.65", 4002, "sendrecv")));
    let reinvite = answer_media_move(&mut h, &out, itsp(), &x_offer);
    assert!(body(&reinvite).contains("c=IN IP4 10.0.0.65\r\n"), "{reinvite}");
    let out = h.feed(itsp(), &x.a.request("BYE", &[], ""));
    let relayed = req_to(&out, pbx(), "BYE");
    assert_eq!(call_id(&relayed), call_id(&pickup));
    h.feed(pbx(), &reply(&relayed, 200, None, &[], ""));
    h.assert_clean();
}

#[test]
fn shutting_down_a_joined_pair_sends_each_carrier_one_bye() {
    let mut h = refer_local_harness();
    let offer = sdp("198.51.100.20", 30000, "sendrecv");
    let mut x = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &offer));
    let y = establish(&mut h, itsp(), &invite(itsp(), "sip:10001@203.0.113.1", &[], &offer));
    let out = h.feed(pbx(), &attended_refer(&mut x.b, &replaces_of(&y.b)));
    for (_, t) in out.iter().filter(|(f, t)| *f == pbx() && !t.starts_with("SIP/2.0")) {
        h.feed(pbx(), &reply(t, 200, None, &[], ""));
    }
    h.shard.hangup_all(h.now, "SIP;cause=503");
    let out = h.drain();
    let mut byes: Vec<String> = out
        .iter()
        .filter(|(f, t)| *f == itsp() && is_req(t, "BYE"))
        .map(|(_, t)| call_id(t))
        .collect();
    byes.sort();
    let mut want = vec![x.a.call_id.clone(), y.a.call_id.clone()];
    want.sort();
    assert_eq!(byes, want, "one BYE per carrier leg: {}", dump(&out));
    for (_, t) in out.iter().filter(|(f, t)| *f == itsp() && is_req(t, "BYE")) {
        h.feed(itsp(), &reply(t, 200, None, &[], ""));
    }
    h.assert_clean();
}

#[test]
fn a_zone_without_keepalives_registering_first_does_not_delay_another_zones_pings() {
    let yaml = CONFIG
        .replace(
            "    media: { address: 127.0.0.1, advertise: 10.0.0.1, ports: 30000-31999 }\n",
            "    media: { address: 127.0.0.1, advertise: 10.0.0.1, ports: 30000-31999 }\n    register_proxy: { registrar: pbx, client_expires: 60s, registrar_expires: 3600s, keepalive: 0s }\n",
        )
        .replace(
            "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n",
            "    media: { address: 127.0.0.1, advertise: 203.0.113.1, ports: 32000-33999 }\n    register_proxy: { registrar: pbx, client_expires: 60s, registrar_expires: 3600s, keepalive: 10s }\n",
        );
    let mut h = Harness::with_config(&yaml);
    // A LAN phone (no keepalives in its zone) registers first, then a remote one behind a NAT.
    let lan_phone = udp(0, "10.0.0.99:5060");
    h.feed(lan_phone, &register(lan_phone, "sip:101@10.0.0.99:5060", "lan-ph", 1, 3600, &[]));
    let nat = udp(1, "198.51.100.77:40000");
    h.feed(nat, &register(nat, "sip:100@192.168.1.5:5060", "nat-ph", 1, 3600, &[]));
    // Within the remote zone's 10 s, the NATed phone is pinged through its pinhole.
    let out = h.advance(Duration::from_secs(11));
    assert!(
        out.iter().any(|(f, t)| *f == nat && is_req(t, "OPTIONS")),
        "OPTIONS keepalive to the NATed phone: {}",
        dump(&out)
    );
    assert!(!out.iter().any(|(f, t)| *f == lan_phone && is_req(t, "OPTIONS")));
}

/// Two shards of two, with the messages between them carried by hand (what the shard tasks
/// do): everything each sends on the wire is collected.
struct TwoShards {
    shards: [Shard; 2],
    now: Instant,
}

impl TwoShards {
    fn new() -> TwoShards {
        let cfg = crate::config::load_str(CONFIG, "test.yaml").expect("test config is valid");
        let router = Arc::new(Router::from_config(&cfg));
        let timers = crate::server::timer_config(&cfg);
        TwoShards {
            shards: [Shard::new(0, 2, router.clone(), timers), Shard::new(1, 2, router, timers)],
            now: Instant::now(),
        }
    }

    /// `text` arrives at the shard its Call-ID hashes to; peer messages are carried until
    /// none is left; returns what both shards sent.
    fn feed(&mut self, flow: Flow, text: &str) -> Vec<Sent> {
        let m = msg(text);
        let i = crate::sip::callid::shard_of(&m.call_id, 2);
        self.shards[i].handle_message(self.now, m, flow);
        let mut out = Vec::new();
        loop {
            let mut carried = false;
            for i in 0..2 {
                while let Some(p) = self.shards[i].poll_peer() {
                    self.shards[p.shard].handle_peer_message(self.now, p.msg);
                    carried = true;
                }
            }
            for s in &mut self.shards {
                while let Some(t) = s.poll_transmit() {
                    out.push((t.flow, String::from_utf8(t.bytes.to_vec()).expect("UTF-8")));
                }
            }
            if !carried {
                return out;
            }
        }
    }
}

/// `text` with its Call-ID replaced by one (derived from `seed`) that hashes to `shard` of 2.
fn on_shard(text: &str, seed: &str, shard: usize) -> String {
    let old = call_id(text);
    let new = (0..1000)
        .map(|i| format!("{seed}-{i}@test"))
        .find(|c| crate::sip::callid::shard_of(c, 2) == shard)
        .expect("a Call-ID on the shard");
    text.replace(&old, &new)
}

#[test]
fn a_replacing_dialog_on_another_shard_is_forwarded_until_its_call_ends() {
    let mut t = TwoShards::new();
    // The carrier's call lives on shard 0, its PBX leg too.
    let offer = sdp("198.51.100.20", 30000, "sendrecv");
    let inv = on_shard(&invite(itsp(), "sip:10001@203.0.113.1", &[], &offer), "carrier", 0);
    let out = t.feed(itsp(), &inv);
    let (_, to_pbx) =
        only(&out, "INVITE to the PBX", |f, t| *f == pbx() && is_req(t, "INVITE")).clone();
    let c = format!("Contact: {}", callee_contact(pbx()));
    let ok = reply(
        &to_pbx,
        200,
        Some("b1"),
        &[&c, "Content-Type: application/sdp"],
        &sdp("10.0.0.50", 4000, "sendrecv"),
    );
    let out = t.feed(pbx(), &ok);
    let a_ok = resp_to(&out, itsp(), 200);
    let mut x = Peer::caller(itsp(), &inv, &a_ok);
    t.feed(itsp(), &x.ack(x.cseq, ""));
    // A phone takes the PBX leg over with a Call-ID of shard 1: forwarded to shard 0.
    let ours = from_tag(&to_pbx).expect("our tag");
    let r = format!("Replaces: {};to-tag={ours};from-tag=b1", call_id(&to_pbx));
    let pickup = on_shard(
        &invite(pbx(), "sip:10001@10.0.0.1", &[&r], &sdp("10.0.0.64", 4000, "sendrecv")),
        "pickup",
        1,
    );
    let out = t.feed(pbx(), &pickup);
    let ok2 = resp_to(&out, pbx(), 200);
    assert_eq!(t.shards[1].forwarded(), 1, "shard 1 forwards the new Call-ID");
    assert_eq!(t.shards[0].b2bua().calls(), 1);
    assert_eq!(t.shards[1].b2bua().calls(), 0, "no call was made on shard 1");
    for (_, m) in out.iter().filter(|(f, m)| *f == pbx() && is_req(m, "BYE")) {
        t.feed(pbx(), &reply(m, 200, None, &[], ""));
    }
    let phone = Peer::caller(pbx(), &pickup, &ok2);
    assert!(t.feed(pbx(), &phone.ack(phone.cseq, "")).is_empty(), "the ACK reaches shard 0");
    // The carrier hangs up: the BYE reaches the phone, whose answer crosses back to shard 0.
    let out = t.feed(itsp(), &x.request("BYE", &[], ""));
    let bye = req_to(&out, pbx(), "BYE");
    assert_eq!(call_id(&bye), call_id(&pickup));
    t.feed(pbx(), &reply(&bye, 200, None, &[], ""));
    assert_eq!(t.shards[0].b2bua().calls(), 0);
    assert_eq!(t.shards[1].forwarded(), 0, "released when the call ended");
}
