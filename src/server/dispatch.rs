//! From bytes on a socket to the shard that owns the call: screen the source (ACL, bans)
//! before parsing, parse, answer or count what does not parse, check the message (scanner
//! User-Agent, per-source rates, body size, transaction total), hash the Call-ID.
//!
//! The edge guard runs here, on the receiving task, so a flood is turned away on every core
//! before it costs a shard anything. Refusals toward untrusted sources are silent; a trusted
//! peer (a configured trunk, or a zone marked trusted) gets a stateless 503 with Retry-After.

use super::outbound::Outbound;
use super::security::{EdgeState, Security};
use super::shard_task::ShardInput;
use super::stats::SharedStats;
use crate::observe::names;
use crate::security::ban::Reason;
use crate::security::Verdict;
use crate::sip::callid::shard_of;
use crate::sip::message::{SipMsg, Transport};
use crate::sip::parse::{parse, Limits, ParseError};
use crate::transaction::layer::response_flow;
use crate::transport::flow::{ConnId, Flow, Transmit, ZoneId};
use bytes::Bytes;
use rsip::Method;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Parses inbound messages and routes them to shards.
pub struct Dispatcher {
    shards: Vec<mpsc::Sender<ShardInput>>,
    limits: Limits,
    outbound: Arc<Outbound>,
    security: Arc<Security>,
    stats: Arc<SharedStats>,
}

impl Dispatcher {
    /// A dispatcher over `shards`, guarded by `security`; `stats` tells the live transaction
    /// count (the total cap).
    pub fn new(
        shards: Vec<mpsc::Sender<ShardInput>>,
        limits: Limits,
        outbound: Arc<Outbound>,
        security: Arc<Security>,
        stats: Arc<SharedStats>,
    ) -> Self {
        Dispatcher { shards, limits, outbound, security, stats }
    }

    /// The security state in force.
    pub fn security(&self) -> Arc<EdgeState> {
        self.security.load()
    }

    /// Largest message accepted.
    pub fn max_message_size(&self) -> usize {
        self.limits.max_message_size
    }

    /// Answers a TCP message the framer could not delimit (missing or bad Content-Length, too
    /// large) when its head names enough to route an answer.
    pub fn answer_unframed(
        &self,
        zone: ZoneId,
        remote: SocketAddr,
        conn: ConnId,
        head: &[u8],
        code: u16,
        reason: &str,
    ) {
        if let ParseError::Answer { response, via, .. } =
            crate::sip::parse::reject(head, code, reason)
        {
            let flow = Flow { zone, transport: Transport::Tcp, remote, conn: Some(conn) };
            self.outbound
                .send(Transmit { flow: response_flow(&via, flow), bytes: Bytes::from(response) });
        }
    }

    /// One message (a UDP datagram or a framed TCP message) arrived.
    pub async fn inbound(
        &self,
        zone: ZoneId,
        transport: Transport,
        source: SocketAddr,
        conn: Option<ConnId>,
        bytes: &[u8],
    ) {
        // STUN binding requests on SIP ports: tell the device where its packets come from.
        if transport == Transport::Udp && crate::nat::stun_responder::is_binding_request(bytes) {
            if let Some(resp) = crate::nat::stun_responder::binding_response(bytes, source) {
                let flow = Flow { zone, transport, remote: source, conn };
                self.outbound.send(Transmit { flow, bytes: Bytes::from(resp) });
            }
            return;
        }
        // RFC 5626 / common NAT keepalives over UDP: CRLFs, or a few bytes of nothing.
        if bytes.len() <= 4 && bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
            return;
        }
        let flow = Flow { zone, transport, remote: source, conn };
        let sec = self.security.load();
        let now = Instant::now();
        let trusted = sec.trusted_source(zone, source.ip());
        // ACL and bans before parsing: a foreign or banned flood costs a hash lookup.
        let screened = sec.guard.screen(now, zone, source.ip(), trusted);
        if !screened.is_pass() {
            sec.count_verdict(zone, &screened);
            return;
        }
        match parse(bytes, &self.limits) {
            Ok(msg) => {
                if !self.admit(&sec, now, &msg, flow, trusted) {
                    return;
                }
                let kind = match msg.status() {
                    None => {
                        metrics::counter!(names::SIP_REQUESTS_TOTAL, "method" => method_label(msg.method())).increment(1);
                        "request"
                    }
                    Some(code) => {
                        metrics::counter!(names::SIP_RESPONSES_TOTAL, "class" => class_label(code))
                            .increment(1);
                        "response"
                    }
                };
                metrics::counter!(names::SIP_MESSAGES_RECEIVED_TOTAL, "kind" => kind).increment(1);
                let i = shard_of(&msg.call_id, self.shards.len());
                if let Some(s) = self.shards.get(i) {
                    let _ = s.send(ShardInput::Message(msg, flow)).await;
                }
            }
            Err(ParseError::Answer { code, response, via, .. }) => {
                metrics::counter!(names::SIP_PARSE_ERRORS_TOTAL, "action" => "answered", "code" => code.to_string()).increment(1);
                sec.strike(zone, source.ip(), Reason::Malformed);
                let to = response_flow(&via, flow);
                self.outbound.send(Transmit { flow: to, bytes: Bytes::from(response) });
            }
            Err(ParseError::Drop { reason }) => {
                metrics::counter!(names::SIP_PARSE_ERRORS_TOTAL, "action" => "dropped", "reason" => reason.label()).increment(1);
                sec.strike(zone, source.ip(), Reason::Malformed);
                tracing::debug!(%source, reason = reason.label(), "dropped unparseable message");
            }
        }
    }

    /// The checks on a parsed message: scanner User-Agent, per-source rates, body size, the
    /// transaction total. Answers or drops what it refuses; true lets the message through.
    fn admit(
        &self,
        sec: &EdgeState,
        now: Instant,
        msg: &SipMsg,
        flow: Flow,
        trusted: bool,
    ) -> bool {
        let zone = flow.zone;
        let method = msg.is_request().then(|| msg.method());
        let verdict =
            sec.guard.check(now, zone, flow.remote.ip(), trusted, method, msg.header("User-Agent"));
        if let Verdict::Reject { retry_after, .. } = verdict {
            sec.count_verdict(zone, &verdict);
            self.refuse(msg, flow, 503, Some(retry_after));
            return false;
        }
        if !verdict.is_pass() {
            sec.count_verdict(zone, &verdict);
            return false;
        }
        let trusted = trusted || sec.guard.zone_trusted(zone);
        if let Err(e) = sec.guard.check_body(msg.body().len()) {
            sec.count(zone, "body_size", trusted);
            tracing::debug!(source = %flow.remote, error = %e, "body too large");
            if trusted {
                self.refuse(msg, flow, 413, None);
            }
            return false;
        }
        // A request that would start a transaction of its own (not an ACK, not a CANCEL that
        // ends one) beyond the total: shed it before it costs memory.
        let starts_tx = matches!(method, Some(m) if m != Method::Ack && m != Method::Cancel);
        if starts_tx
            && sec.max_transactions > 0
            && self.stats.transactions() >= sec.max_transactions as u64
        {
            sec.count(zone, "transactions", trusted);
            if trusted {
                self.refuse(msg, flow, 503, Some(sec.guard.busy_retry_after()));
            }
            return false;
        }
        true
    }

    /// Answers `msg` statelessly with `code` (never an ACK: ACKs are not answered).
    fn refuse(&self, msg: &SipMsg, flow: Flow, code: u16, retry_after: Option<u32>) {
        if !msg.is_request() || msg.method() == Method::Ack {
            return;
        }
        let tag = format!("{:016x}", rand::random::<u64>());
        let to_tag = msg.to_tag.is_none().then_some(tag.as_str());
        let mut resp = crate::sip::build::response_to(msg, code, None, to_tag, flow.remote);
        if let Some(secs) = retry_after {
            resp.headers.push(crate::sip::headers::make("Retry-After", secs.to_string()));
        }
        let bytes = crate::sip::wire::encode_response(&resp);
        self.outbound.send(Transmit { flow: response_flow(&msg.via, flow), bytes });
    }
}

/// Bounded label for a method.
pub fn method_label(m: rsip::Method) -> &'static str {
    use rsip::Method::*;
    match m {
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Info => "INFO",
        Invite => "INVITE",
        Message => "MESSAGE",
        Notify => "NOTIFY",
        Options => "OPTIONS",
        PRack => "PRACK",
        Publish => "PUBLISH",
        Refer => "REFER",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Update => "UPDATE",
    }
}

/// Bounded label for a status code's class.
pub fn class_label(code: u16) -> &'static str {
    match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "6xx",
    }
}
