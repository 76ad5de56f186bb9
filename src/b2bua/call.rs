//! `Call`: the two legs of one bridged call and what is in flight between them.

use super::reply::ReplyTemplate;
use super::router::TrunkId;
use crate::dialog::Dialog;
use crate::sip::message::SipMsg;
use crate::transaction::TxId;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Identifies a call inside one shard; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

/// Which leg: A received the initial INVITE, B sent it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The inbound leg.
    A,
    /// The outbound leg.
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// Index for per-side arrays.
    pub fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// Life of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE sent on B, no final yet.
    Proceeding,
    /// A 2xx was relayed to A; A's ACK pending.
    Answered,
    /// Both legs confirmed.
    Confirmed,
    /// A BYE crossed; waiting for the other leg's BYE to be answered.
    Ending,
    /// Gone; the engine removes it.
    Ended,
}

/// Who ended the call or why it failed (for logs, CDRs and Reason headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// BYE from this side.
    Bye(Side),
    /// A cancelled before answer.
    Cancelled,
    /// B answered with this final code.
    Rejected(u16),
    /// No route or local refusal.
    Refused(u16),
    /// B never answered (Timer B) on every target.
    Timeout,
    /// The ring timeout (Timer C) hit.
    NoAnswer,
    /// A 2xx was never ACKed, or an in-dialog refresh failed.
    SessionFailure,
    /// No RTP for the configured media timeout.
    MediaTimeout,
    /// No relay ports were free.
    NoMediaPorts,
    /// sipborder shut down.
    Shutdown,
}

/// One early or confirmed dialog on B and the A tag it is presented under.
#[derive(Debug, Clone)]
pub struct Fork {
    /// Our To tag toward A for this fork.
    pub a_tag: String,
    /// The dialog on B (remote tag set).
    pub b: Dialog,
    /// A PRACKed a reliable provisional of this fork: A surely knows the early dialog, so
    /// sipborder may send requests in it toward A (DTMF INFO during early media).
    pub a_pracked: bool,
}

/// A reliable provisional (RFC 3262) we sent toward A, retransmitted until A's PRACK.
#[derive(Debug, Clone)]
pub struct ReliableProvisional {
    /// RSeq we used toward A.
    pub a_rseq: u32,
    /// Fork it belongs to.
    pub fork: usize,
    /// RSeq B used, when B's provisional was itself reliable (we PRACK B when A PRACKs us).
    pub b_rseq: Option<u32>,
    /// The response, for retransmission.
    pub response: rsip::Response,
    /// Current retransmission interval.
    pub interval: Duration,
    /// Next retransmission.
    pub due: Instant,
    /// Give up after this.
    pub give_up: Instant,
}

/// A 2xx we sent (to an INVITE) and retransmit until its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
pub struct Unacked2xx {
    /// Side we sent it to.
    pub side: Side,
    /// CSeq of the INVITE it answers (the ACK carries the same).
    pub cseq: u32,
    /// Server transaction (in Accepted state) it is resent through.
    pub tx: TxId,
    /// The response.
    pub response: rsip::Response,
    /// Current interval.
    pub interval: Duration,
    /// Next retransmission.
    pub due: Instant,
    /// Give up (and end the call) after this.
    pub give_up: Instant,
    /// Delayed offer: the ACK from `side` carries the answer, which goes to the other side's
    /// ACK (CSeq given).
    pub forward_ack: Option<u32>,
    /// The 2xx carried our offer and nothing crosses: the ACK's answer only moves `side`'s
    /// media (an INVITE with Replaces that had no SDP).
    pub answer_in_ack: bool,
}

/// A re-INVITE crossing the call.
#[derive(Debug, Clone)]
pub struct PendingReinvite {
    /// Side it came from.
    pub from: Side,
    /// Server transaction on `from`.
    pub server_tx: TxId,
    /// How to answer it.
    pub reply: ReplyTemplate,
    /// Client transaction on the other side.
    pub client_tx: TxId,
    /// CSeq used on the other side.
    pub out_cseq: u32,
    /// It carried no SDP (offer comes in the 2xx, answer in the ACK).
    pub offerless: bool,
    /// CSeq of the re-INVITE as received (its ACK carries the same).
    pub in_cseq: u32,
}

/// What the initial INVITE needs until answered: enough to try the next target.
#[derive(Debug, Clone)]
pub struct InitialInvite {
    /// A's INVITE.
    pub msg: Box<SipMsg>,
    /// Server transaction on A.
    pub server_tx: TxId,
    /// How to answer it.
    pub reply: ReplyTemplate,
    /// Client transaction on B for the current target.
    pub client_tx: Option<TxId>,
    /// Remaining targets (after the current one).
    pub targets: Vec<TrunkId>,
    /// Index of the current target in the route.
    pub attempt: usize,
    /// A CANCELled, or the ring timeout fired: answer A with this once B's final arrives.
    pub cancelled: Option<u16>,
    /// Media handling of the route.
    pub media_mode: crate::config::MediaMode,
    /// The registered device the INVITE is addressed to (registration proxy), if any.
    pub binding: Option<crate::nat::bindings::Binding>,
}

/// A bridged call.
#[derive(Debug)]
pub struct Call {
    /// Key in the shard.
    pub key: CallKey,
    /// Life state.
    pub state: CallState,
    /// A-side dialog (local tag = the winning fork's A tag once answered).
    pub a: Dialog,
    /// Trunk A came from, if known.
    pub a_trunk: Option<TrunkId>,
    /// Trunk B goes to.
    pub b_trunk: Option<TrunkId>,
    /// B-side dialog template (remote tag unset) for the current attempt.
    pub b: Dialog,
    /// Early/confirmed dialogs on B.
    pub forks: Vec<Fork>,
    /// The fork that answered.
    pub winner: Option<usize>,
    /// Initial INVITE state until answered or failed.
    pub initial: Option<InitialInvite>,
    /// The INVITE client transaction on B (kept after answer: other forks' 2xx arrive on it).
    pub b_invite_tx: Option<TxId>,
    /// CSeq of the INVITE on B.
    pub b_invite_cseq: u32,
    /// CSeq of A's INVITE.
    pub a_invite_cseq: u32,
    /// A 1xx with a To tag was relayed to A (later forks get fresh A tags).
    pub a_tag_used: bool,
    /// A supports 100rel (Supported or Require).
    pub a_100rel: bool,
    /// A requires 100rel.
    pub a_requires_100rel: bool,
    /// Last RSeq used toward A.
    pub a_rseq: u32,
    /// Reliable provisionals toward A awaiting PRACK.
    pub reliable: Vec<ReliableProvisional>,
    /// 2xx awaiting ACK.
    pub unacked: Vec<Unacked2xx>,
    /// The ACK we last sent on each side for a 2xx: (CSeq, bytes), resent on 2xx retransmission.
    pub last_ack: [Option<(u32, Bytes)>; 2],
    /// re-INVITE in flight.
    pub reinvite: Option<PendingReinvite>,
    /// Why it ended.
    pub end_cause: Option<EndCause>,
    /// BYEs we sent and still wait for.
    pub byes_pending: u8,
    /// Digest loop guard for B's INVITE (one answer per challenge round).
    pub auth_attempt: crate::trunk::digest_client::AuthAttempt,
    /// Q.850 cause of the outcome (received Reason or mapped from the final code).
    pub q850_cause: Option<u8>,
    /// Policies of the peers of leg A and leg B, fixed when the leg was set up.
    pub policies: [crate::policy::PolicyChain; 2],
    /// RFC 4028 session timer of each leg.
    pub timers: [Option<super::session_timer::LegTimer>; 2],
    /// Last SDP received from each leg (refresh detection).
    pub sdp_from: [Option<Vec<u8>>; 2],
    /// Last SDP sent to each leg (repeated in refreshes).
    pub sdp_to: [Option<Vec<u8>>; 2],
    /// Each leg's peer allows UPDATE (refreshes use it).
    pub peer_allows_update: [bool; 2],
    /// A transfer sipborder performs on one side (REFER handled locally).
    pub transfer: Option<super::transfer::Transfer>,
    /// This call joined (or joining) to another call in place of one of its legs (attended
    /// transfer, or an INVITE with Replaces).
    pub join: Option<super::join::Join>,
    /// Log span of the call: every line logged while handling it carries both Call-IDs.
    pub span: tracing::Span,
    /// Media of the call (None before the first attempt).
    pub media: Option<crate::media::MediaSession>,
    /// When the INVITE arrived.
    pub started: Instant,
    /// When the first 18x arrived from B.
    pub first_provisional: Option<Instant>,
    /// The fork whose 18x SDP the early media follows (RFC 3960: the last one), before answer.
    pub early_media_fork: Option<usize>,
    /// When the 2xx arrived.
    pub answered: Option<Instant>,
    /// User part of A's From (the calling number), for CDRs.
    pub from_user: Option<String>,
    /// User part of A's Request-URI (the called number), for CDRs.
    pub to_user: Option<String>,
    /// The call's admission (caps of its trunk, zone and source; a dialog slot), given back
    /// when the call is dropped, however it ended.
    pub admitted: Option<super::admission::Admitted>,
}

impl Call {
    /// The dialog of `side` for the winning fork (B only once answered).
    pub fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.winner.and_then(|w| self.forks.get(w)).map(|f| &f.b),
        }
    }

    /// Mutable form of [`Self::dialog`].
    pub fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.winner.and_then(|w| self.forks.get_mut(w)).map(|f| &mut f.b),
        }
    }

    /// Fork by our A tag.
    pub fn fork_by_a_tag(&self, tag: &str) -> Option<usize> {
        self.forks.iter().position(|f| f.a_tag == tag)
    }

    /// Fork by B's tag.
    pub fn fork_by_b_tag(&self, tag: &str) -> Option<usize> {
        self.forks.iter().position(|f| f.b.remote_tag.as_deref() == Some(tag))
    }
}
