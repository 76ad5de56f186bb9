//! INVITE server transaction (RFC 3261 §17.2.1, figure 7, with RFC 6026's Accepted state).

use super::timers::{ArmedTimers, TimerKind};
use super::{Ctx, TxError, TxEvent};
use crate::sip::message::SipMsg;
use crate::transport::flow::Flow;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// States of figure 7 plus Accepted (RFC 6026 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE received, 100 sent, waiting for the user's final response.
    Proceeding,
    /// A 2xx was sent; retransmitted INVITEs are absorbed, the user retransmits the 2xx (Timer L).
    Accepted,
    /// A non-2xx final was sent; retransmitting it until the ACK (Timers G, H).
    Completed,
    /// The ACK arrived; absorbing ACK retransmissions (Timer I).
    Confirmed,
    /// Done; the layer removes it.
    Terminated,
}

/// An INVITE we received.
#[derive(Debug)]
pub struct InviteServerTransaction {
    /// Current state.
    pub state: State,
    /// Where responses go (§18.2.2 / RFC 3581 applied by the layer).
    pub response_flow: Flow,
    last: Option<Bytes>,
    interval: Duration,
    pub(crate) armed: ArmedTimers,
}

impl InviteServerTransaction {
    /// Creates the transaction and sends `trying` (the 100) at once.
    pub(crate) fn start(ctx: &mut Ctx<'_>, response_flow: Flow, trying: Bytes) -> Self {
        ctx.send(response_flow, trying.clone());
        InviteServerTransaction {
            state: State::Proceeding,
            response_flow,
            last: Some(trying),
            interval: ctx.cfg.t1,
            armed: ArmedTimers::default(),
        }
    }

    /// A retransmission of the INVITE arrived.
    pub(crate) fn on_retransmit(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            if let Some(b) = &self.last {
                ctx.send(self.response_flow, b.clone());
            }
        }
    }

    /// An ACK with this transaction's branch arrived.
    pub(crate) fn on_ack(&mut self, ctx: &mut Ctx<'_>, msg: SipMsg, flow: Flow) {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                self.armed.cancel(TimerKind::G);
                self.armed.cancel(TimerKind::H);
                if self.response_flow.transport.is_reliable() {
                    self.state = State::Terminated;
                } else {
                    let i = ctx.cfg.t4;
                    ctx.arm(&mut self.armed, TimerKind::I, i);
                }
            }
            // RFC 6026 §7.1: in Accepted an ACK goes to the user (RFC 2543 peers reuse the branch).
            State::Accepted => ctx.events.push_back(TxEvent::Request { tx: None, msg, flow }),
            _ => {}
        }
    }

    /// The user sends a response.
    pub(crate) fn respond(
        &mut self,
        ctx: &mut Ctx<'_>,
        code: u16,
        bytes: Bytes,
    ) -> Result<(), TxError> {
        match (self.state, code) {
            (State::Proceeding, 100..=199) => {
                ctx.send(self.response_flow, bytes.clone());
                self.last = Some(bytes);
            }
            (State::Proceeding, 200..=299) => {
                ctx.send(self.response_flow, bytes);
                self.last = None;
                self.state = State::Accepted;
                let l = ctx.cfg.t1x64();
                ctx.arm(&mut self.armed, TimerKind::L, l);
            }
            (State::Accepted, 200..=299) => ctx.send(self.response_flow, bytes),
            (State::Proceeding, 300..=699) => {
                ctx.send(self.response_flow, bytes.clone());
                self.last = Some(bytes);
                self.state = State::Completed;
                if !self.response_flow.transport.is_reliable() {
                    let g = self.interval;
                    ctx.arm(&mut self.armed, TimerKind::G, g);
                }
                let h = ctx.cfg.t1x64();
                ctx.arm(&mut self.armed, TimerKind::H, h);
            }
            _ => return Err(TxError::BadState),
        }
        Ok(())
    }

    /// True until a final response was sent.
    pub fn is_proceeding(&self) -> bool {
        self.state == State::Proceeding
    }

    /// A timer entry popped.
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_>, kind: TimerKind, at: Instant) {
        if !self.armed.take(kind, at) {
            return;
        }
        match kind {
            TimerKind::G => {
                if let Some(b) = &self.last {
                    ctx.send(self.response_flow, b.clone());
                }
                self.interval = (self.interval * 2).min(ctx.cfg.t2);
                let i = self.interval;
                ctx.arm(&mut self.armed, TimerKind::G, i);
            }
            TimerKind::H => {
                self.state = State::Terminated;
                self.armed = ArmedTimers::default();
                ctx.events.push_back(TxEvent::AckTimeout { tx: ctx.id });
            }
            TimerKind::I | TimerKind::L => self.state = State::Terminated,
            _ => {}
        }
    }
}
