//! RFC 3261 §17 transactions, sans-IO.
//!
//! The [`TransactionLayer`] takes parsed messages and timer ticks with the current time and
//! produces transmits and [`TxEvent`]s for the transaction user (the dialog/B2BUA layers above).
//! It owns retransmission (UDP only), absorption of retransmitted requests, matching per
//! §17.1.3/§17.2.3, `100 Trying` for INVITE, the ACK for non-2xx finals, CANCEL construction
//! (§9.1, held back until a provisional arrives) and the RFC 6026 Accepted states.

pub mod invite_client;
pub mod invite_server;
pub mod key;
pub mod layer;
pub mod non_invite_client;
pub mod non_invite_server;
pub mod timers;

#[cfg(test)]
mod tests;

pub use layer::{Hold, TransactionLayer};
pub use timers::{TimerConfig, TimerKind, TxId};

use crate::sip::message::SipMsg;
use crate::transport::flow::{Flow, Transmit};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use timers::{ArmedTimers, TimerQueue};

/// What the transaction layer tells its user.
#[derive(Debug)]
pub enum TxEvent {
    /// A new request. `tx` is the server transaction to answer through; `None` for an ACK that
    /// matched no transaction (the ACK of a 2xx, which belongs to the dialog).
    Request {
        /// Server transaction, if one was created.
        tx: Option<TxId>,
        /// The request.
        msg: SipMsg,
        /// Where it came from.
        flow: Flow,
    },
    /// A response for a client transaction (`None`: a stray response, e.g. a 2xx retransmission
    /// after the transaction ended, which the dialog layer answers with its ACK again).
    Response {
        /// Client transaction it matched.
        tx: Option<TxId>,
        /// The response.
        msg: SipMsg,
        /// Where it came from.
        flow: Flow,
    },
    /// Timer B or F fired (or a CANCELled INVITE never got its final): act as on a 408.
    Timeout {
        /// Client transaction.
        tx: TxId,
    },
    /// The transport could not deliver the request: act as on a 503.
    TransportError {
        /// Client transaction.
        tx: TxId,
    },
    /// Timer C: an INVITE rang for the configured ring timeout; the user should CANCEL it.
    RingTimeout {
        /// Client INVITE transaction.
        tx: TxId,
    },
    /// Timer H: an INVITE server transaction sent a non-2xx final and never got the ACK.
    AckTimeout {
        /// Server INVITE transaction.
        tx: TxId,
    },
}

/// Misuse of the layer by its user (never caused by wire input).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    /// The transaction ended or never existed.
    #[error("no such transaction")]
    NoTransaction,
    /// A response was sent after the final one, or a provisional after a final.
    #[error("response not allowed in the transaction's state")]
    BadState,
}

/// Everything a state machine may touch while handling one event.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub id: TxId,
    pub cfg: &'a TimerConfig,
    pub timers: &'a mut TimerQueue,
    pub out: &'a mut VecDeque<Transmit>,
    pub events: &'a mut VecDeque<TxEvent>,
}

impl Ctx<'_> {
    /// Arms `kind` to fire `after` from now.
    pub fn arm(&mut self, armed: &mut ArmedTimers, kind: TimerKind, after: Duration) {
        let at = self.now + after;
        armed.arm(kind, at);
        self.timers.push(at, self.id, kind);
    }

    /// Queues a transmit.
    pub fn send(&mut self, flow: Flow, bytes: bytes::Bytes) {
        self.out.push_back(Transmit { flow, bytes });
    }
}
