//! From bytes on a socket to the shard that owns the call: parse, answer or count what does not
//! parse, hash the Call-ID.

use super::outbound::Outbound;
use super::shard_task::ShardInput;
use crate::observe::names;
use crate::sip::callid::shard_of;
use crate::sip::message::Transport;
use crate::sip::parse::{parse, Limits, ParseError};
use crate::transaction::layer::response_flow;
use crate::transport::flow::{ConnId, Flow, Transmit, ZoneId};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Parses inbound messages and routes them to shards.
pub struct Dispatcher {
    shards: Vec<mpsc::Sender<ShardInput>>,
    limits: Limits,
    outbound: Arc<Outbound>,
}

impl Dispatcher {
    /// A dispatcher over `shards`.
    pub fn new(
        shards: Vec<mpsc::Sender<ShardInput>>,
        limits: Limits,
        outbound: Arc<Outbound>,
    ) -> Self {
        Dispatcher { shards, limits, outbound }
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
        match parse(bytes, &self.limits) {
            Ok(msg) => {
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
                let to = response_flow(&via, flow);
                self.outbound.send(Transmit { flow: to, bytes: Bytes::from(response) });
            }
            Err(ParseError::Drop { reason }) => {
                metrics::counter!(names::SIP_PARSE_ERRORS_TOTAL, "action" => "dropped", "reason" => reason.label()).increment(1);
                tracing::debug!(%source, reason = reason.label(), "dropped unparseable message");
            }
        }
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
