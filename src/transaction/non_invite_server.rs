//! Non-INVITE server transaction (RFC 3261 §17.2.2, figure 8).

use super::timers::{ArmedTimers, TimerKind};
use super::{Ctx, TxError};
use crate::transport::flow::Flow;
use bytes::Bytes;
use std::time::Instant;

/// States of figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request received, nothing sent.
    Trying,
    /// A provisional was sent.
    Proceeding,
    /// The final was sent; retransmitted requests get it again until Timer J.
    Completed,
    /// Done; the layer removes it.
    Terminated,
}

/// A non-INVITE request we received.
#[derive(Debug)]
pub struct NonInviteServerTransaction {
    /// Current state.
    pub state: State,
    /// Where responses go.
    pub response_flow: Flow,
    last: Option<Bytes>,
    pub(crate) armed: ArmedTimers,
}

impl NonInviteServerTransaction {
    /// Creates the transaction in Trying.
    pub(crate) fn start(response_flow: Flow) -> Self {
        NonInviteServerTransaction {
            state: State::Trying,
            response_flow,
            last: None,
            armed: ArmedTimers::default(),
        }
    }

    /// A retransmission of the request arrived.
    pub(crate) fn on_retransmit(&mut self, ctx: &mut Ctx<'_>) {
        if let (State::Proceeding | State::Completed, Some(b)) = (self.state, &self.last) {
            ctx.send(self.response_flow, b.clone());
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
            (State::Trying | State::Proceeding, 100..=199) => {
                ctx.send(self.response_flow, bytes.clone());
                self.last = Some(bytes);
                self.state = State::Proceeding;
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                ctx.send(self.response_flow, bytes.clone());
                self.last = Some(bytes);
                self.state = State::Completed;
                if self.response_flow.transport.is_reliable() {
                    self.state = State::Terminated;
                } else {
                    let j = ctx.cfg.t1x64();
                    ctx.arm(&mut self.armed, TimerKind::J, j);
                }
            }
            _ => return Err(TxError::BadState),
        }
        Ok(())
    }

    /// A timer entry popped.
    pub(crate) fn on_timer(&mut self, _ctx: &mut Ctx<'_>, kind: TimerKind, at: Instant) {
        if self.armed.take(kind, at) && kind == TimerKind::J {
            self.state = State::Terminated;
        }
    }
}
