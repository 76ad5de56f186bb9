//! INVITE client transaction (RFC 3261 §17.1.1, figure 5, with the RFC 6026 Accepted state).

use super::timers::{ArmedTimers, TimerKind};
use super::{Ctx, TxEvent};
use crate::sip::headers::{make, name_value};
use crate::sip::message::SipMsg;
use crate::sip::wire::encode_request;
use crate::transport::flow::Flow;
use bytes::Bytes;
use rsip::headers::UntypedHeader;
use rsip::{Header, Method};
use std::time::{Duration, Instant};

/// States of figure 5 plus Accepted (RFC 6026 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional arrived.
    Proceeding,
    /// A non-2xx final arrived and was ACKed; absorbing its retransmissions (Timer D).
    Completed,
    /// A 2xx arrived; further 2xx (retransmissions, other forks) go to the user (Timer M).
    Accepted,
    /// Done; the layer removes it.
    Terminated,
}

/// Where the CANCEL for this INVITE stands (§9.1: not before a provisional arrived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelState {
    /// Not asked for.
    None,
    /// Asked for before any provisional; sent when one arrives. Holds extra headers (Reason).
    Pending(Vec<Header>),
    /// Ready to go out now (the layer takes it and starts a CANCEL transaction).
    Ready(Vec<Header>),
    /// Sent.
    Sent,
}

/// An INVITE we sent.
#[derive(Debug)]
pub struct InviteClientTransaction {
    /// Current state.
    pub state: State,
    /// Destination.
    pub flow: Flow,
    /// The INVITE as sent (our Via on top): the template for the ACK and the CANCEL.
    pub request: rsip::Request,
    bytes: Bytes,
    ack: Option<Bytes>,
    interval: Duration,
    /// CANCEL progress.
    pub cancel: CancelState,
    pub(crate) armed: ArmedTimers,
}

impl InviteClientTransaction {
    /// Sends the INVITE; arms A (UDP) and B.
    pub(crate) fn start(ctx: &mut Ctx<'_>, flow: Flow, request: rsip::Request) -> Self {
        let bytes = encode_request(&request);
        let mut tx = InviteClientTransaction {
            state: State::Calling,
            flow,
            request,
            bytes: bytes.clone(),
            ack: None,
            interval: ctx.cfg.t1,
            cancel: CancelState::None,
            armed: ArmedTimers::default(),
        };
        ctx.send(flow, bytes);
        if !flow.transport.is_reliable() {
            let i = tx.interval;
            ctx.arm(&mut tx.armed, TimerKind::A, i);
        }
        let b = ctx.cfg.t1x64();
        ctx.arm(&mut tx.armed, TimerKind::B, b);
        let c = ctx.cfg.timer_c;
        ctx.arm(&mut tx.armed, TimerKind::C, c);
        tx
    }

    /// Builds a request of `method` from the INVITE per §9.1 (CANCEL) / §17.1.1.3 (ACK):
    /// same Request-URI, top Via, From, Call-ID, CSeq number and Route set.
    pub fn derived_request(
        &self,
        method: Method,
        to: Option<&str>,
        extra: &[Header],
    ) -> rsip::Request {
        let mut headers: Vec<Header> = Vec::with_capacity(8 + extra.len());
        let mut via_done = false;
        for h in self.request.headers.iter() {
            match h {
                Header::Via(_) if !via_done => {
                    via_done = true;
                    headers.push(h.clone());
                }
                Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(h.clone()),
                Header::To(_) => match to {
                    Some(t) => headers.push(make("To", t)),
                    None => headers.push(h.clone()),
                },
                Header::CSeq(c) => {
                    let num = c.value().split_whitespace().next().unwrap_or("1").to_string();
                    headers.push(make("CSeq", format!("{num} {method}")));
                }
                _ => {}
            }
        }
        headers.push(make("Max-Forwards", "70"));
        headers.extend(extra.iter().cloned());
        rsip::Request {
            method,
            uri: self.request.uri.clone(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }

    /// Asks for a CANCEL; it goes out at once if a provisional was seen, else when one is.
    pub(crate) fn request_cancel(&mut self, ctx: &mut Ctx<'_>, extra: Vec<Header>) {
        match self.state {
            State::Calling if self.cancel == CancelState::None => {
                self.cancel = CancelState::Pending(extra);
            }
            State::Proceeding
                if matches!(self.cancel, CancelState::None | CancelState::Pending(_)) =>
            {
                self.cancel = CancelState::Ready(extra);
                let g = ctx.cfg.t1x64();
                ctx.arm(&mut self.armed, TimerKind::CancelGuard, g);
            }
            _ => {}
        }
    }

    /// Takes a CANCEL that is ready to be sent.
    pub(crate) fn take_ready_cancel(&mut self) -> Option<Vec<Header>> {
        if let CancelState::Ready(_) = self.cancel {
            if let CancelState::Ready(extra) =
                std::mem::replace(&mut self.cancel, CancelState::Sent)
            {
                return Some(extra);
            }
        }
        None
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(&mut self, ctx: &mut Ctx<'_>, msg: SipMsg, flow: Flow) {
        let code = msg.status().unwrap_or(0);
        match (self.state, code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.armed.cancel(TimerKind::A);
                self.armed.cancel(TimerKind::B);
                // Timer C restarts on each provisional that is not a 100 (RFC 3261 §16.7 2.).
                if code > 100 {
                    let c = ctx.cfg.timer_c;
                    ctx.arm(&mut self.armed, TimerKind::C, c);
                }
                if let CancelState::Pending(extra) =
                    std::mem::replace(&mut self.cancel, CancelState::None)
                {
                    self.cancel = CancelState::Ready(extra);
                    let g = ctx.cfg.t1x64();
                    ctx.arm(&mut self.armed, TimerKind::CancelGuard, g);
                }
                if code > 100 {
                    ctx.events.push_back(TxEvent::Response { tx: Some(ctx.id), msg, flow });
                }
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.armed = ArmedTimers::default();
                if matches!(self.cancel, CancelState::Pending(_)) {
                    self.cancel = CancelState::None;
                }
                let m = ctx.cfg.t1x64();
                ctx.arm(&mut self.armed, TimerKind::M, m);
                ctx.events.push_back(TxEvent::Response { tx: Some(ctx.id), msg, flow });
            }
            (State::Calling | State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                self.armed = ArmedTimers::default();
                if matches!(self.cancel, CancelState::Pending(_)) {
                    self.cancel = CancelState::None;
                }
                let to = msg.header("To").map(str::to_string);
                let ack = encode_request(&self.derived_request(Method::Ack, to.as_deref(), &[]));
                ctx.send(self.flow, ack.clone());
                self.ack = Some(ack);
                ctx.events.push_back(TxEvent::Response { tx: Some(ctx.id), msg, flow });
                let d = ctx.cfg.timer_d(self.flow.transport.is_reliable());
                if d.is_zero() {
                    self.state = State::Terminated;
                } else {
                    ctx.arm(&mut self.armed, TimerKind::D, d);
                }
            }
            (State::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    ctx.send(self.flow, ack.clone());
                }
            }
            (State::Accepted, 200..=299) => {
                ctx.events.push_back(TxEvent::Response { tx: Some(ctx.id), msg, flow });
            }
            _ => {}
        }
    }

    /// A timer entry popped.
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_>, kind: TimerKind, at: Instant) {
        if !self.armed.take(kind, at) {
            return;
        }
        match kind {
            TimerKind::A => {
                ctx.send(self.flow, self.bytes.clone());
                self.interval *= 2;
                let i = self.interval;
                ctx.arm(&mut self.armed, TimerKind::A, i);
            }
            TimerKind::B | TimerKind::CancelGuard => {
                if matches!(self.state, State::Calling | State::Proceeding) {
                    self.state = State::Terminated;
                    self.armed = ArmedTimers::default();
                    ctx.events.push_back(TxEvent::Timeout { tx: ctx.id });
                }
            }
            TimerKind::C if self.state == State::Proceeding => {
                ctx.events.push_back(TxEvent::RingTimeout { tx: ctx.id });
            }
            TimerKind::D | TimerKind::M => self.state = State::Terminated,
            _ => {}
        }
    }

    /// The transport failed to deliver the INVITE.
    pub(crate) fn on_transport_error(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.state, State::Calling | State::Proceeding) {
            self.state = State::Terminated;
            self.armed = ArmedTimers::default();
            ctx.events.push_back(TxEvent::TransportError { tx: ctx.id });
        }
    }

    /// The To header value of the INVITE as sent.
    pub fn to_header(&self) -> Option<&str> {
        self.request.headers.iter().find_map(|h| match h {
            Header::To(_) => Some(name_value(h).1),
            _ => None,
        })
    }
}
