//! Non-INVITE client transaction (RFC 3261 §17.1.2, figure 6).

use super::timers::{ArmedTimers, TimerKind};
use super::{Ctx, TxEvent};
use crate::sip::message::SipMsg;
use crate::transport::flow::Flow;
use bytes::Bytes;
use std::time::Instant;

/// States of figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional arrived.
    Proceeding,
    /// Final received; absorbing retransmitted finals until Timer K.
    Completed,
    /// Done; the layer removes it.
    Terminated,
}

/// A non-INVITE request we sent and its retransmission state.
#[derive(Debug)]
pub struct NonInviteClientTransaction {
    /// Current state.
    pub state: State,
    /// Destination.
    pub flow: Flow,
    request: Bytes,
    interval: std::time::Duration,
    pub(crate) armed: ArmedTimers,
}

impl NonInviteClientTransaction {
    /// Sends the request and arms E (UDP) and F.
    pub(crate) fn start(ctx: &mut Ctx<'_>, flow: Flow, request: Bytes) -> Self {
        let mut tx = NonInviteClientTransaction {
            state: State::Trying,
            flow,
            request: request.clone(),
            interval: ctx.cfg.t1,
            armed: ArmedTimers::default(),
        };
        ctx.send(flow, request);
        if !flow.transport.is_reliable() {
            let i = tx.interval;
            ctx.arm(&mut tx.armed, TimerKind::E, i);
        }
        let f = ctx.cfg.t1x64();
        ctx.arm(&mut tx.armed, TimerKind::F, f);
        tx
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(&mut self, ctx: &mut Ctx<'_>, msg: SipMsg, flow: Flow) {
        let code = msg.status().unwrap_or(0);
        match self.state {
            State::Trying | State::Proceeding => {
                if code < 200 {
                    self.state = State::Proceeding;
                    ctx.events.push_back(TxEvent::Response { tx: Some(ctx.id), msg, flow });
                } else {
                    self.state = State::Completed;
                    self.armed.cancel(TimerKind::E);
                    self.armed.cancel(TimerKind::F);
                    ctx.events.push_back(TxEvent::Response { tx: Some(ctx.id), msg, flow });
                    if self.flow.transport.is_reliable() {
                        self.state = State::Terminated;
                    } else {
                        let k = ctx.cfg.t4;
                        ctx.arm(&mut self.armed, TimerKind::K, k);
                    }
                }
            }
            State::Completed | State::Terminated => {}
        }
    }

    /// A timer entry popped.
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_>, kind: TimerKind, at: Instant) {
        if !self.armed.take(kind, at) {
            return;
        }
        match kind {
            TimerKind::E => {
                ctx.send(self.flow, self.request.clone());
                // In Proceeding the interval is T2 at once (§17.1.2.2), else it doubles up to T2.
                self.interval = if self.state == State::Proceeding {
                    ctx.cfg.t2
                } else {
                    (self.interval * 2).min(ctx.cfg.t2)
                };
                let i = self.interval;
                ctx.arm(&mut self.armed, TimerKind::E, i);
            }
            TimerKind::F => {
                self.state = State::Terminated;
                self.armed = ArmedTimers::default();
                ctx.events.push_back(TxEvent::Timeout { tx: ctx.id });
            }
            TimerKind::K => self.state = State::Terminated,
            _ => {}
        }
    }

    /// The transport failed to deliver.
    pub(crate) fn on_transport_error(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.state, State::Trying | State::Proceeding) {
            self.state = State::Terminated;
            self.armed = ArmedTimers::default();
            ctx.events.push_back(TxEvent::TransportError { tx: ctx.id });
        }
    }
}
