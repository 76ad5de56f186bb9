//! Call admission and strikes, where the B2BUA meets the edge guard.
//!
//! A new call (an initial INVITE the transaction layer has not seen before) takes a ticket
//! against the caps of its trunk, its zone and its source, and a dialog slot against the
//! dialog caps; both live in the [`super::call::Call`] and are given back when it is dropped,
//! so every way a call ends (failure, CANCEL, BYE, timeouts, shutdown) releases them without
//! a release call on each path. Refusals are answered 503 through the server transaction
//! (which would otherwise linger unanswered): with Retry-After toward a trusted peer, bare
//! toward an untrusted source, which learns nothing about which limit it hit.

use super::dispatch::B2bua;
use super::router::TrunkId;
use crate::security::ban::Reason;
use crate::security::{Resource, Slot, Ticket, Verdict};
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use std::time::Instant;

/// What an admitted call holds until it ends.
#[derive(Debug)]
pub struct Admitted {
    _ticket: Ticket,
    _dialog: Slot,
}

impl B2bua {
    /// True when `flow`'s source is a configured trunk of its zone.
    fn trusted_source(&self, flow: Flow) -> bool {
        self.router.trunk_by_source(flow.zone, flow.remote).is_some()
    }

    /// Admits a new call from `flow` counted against `trunk`. `Err` when it was refused (and
    /// answered); `Ok(None)` when no guard is configured (unit tests).
    pub(crate) fn admit_call(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        trunk: Option<TrunkId>,
        tl: &mut TransactionLayer,
    ) -> Result<Option<Admitted>, ()> {
        let Some(guard) = self.router.guard.clone() else { return Ok(None) };
        let trusted = self.trusted_source(flow);
        let source = flow.remote.ip();
        let trusted_here = trusted || guard.zone_trusted(flow.zone);
        // (metric label, Retry-After when answered to a trusted peer)
        let (label, retry) = match guard.admit_call(now, flow.zone, trunk, source, trusted) {
            Ok(ticket) => match guard.acquire(Resource::Dialog, now, flow.zone, source, trusted) {
                Ok(slot) => return Ok(Some(Admitted { _ticket: ticket, _dialog: slot })),
                Err(_) => ("dialogs", trusted_here.then(|| guard.busy_retry_after())),
            },
            Err(v @ Verdict::Reject { retry_after, .. }) => (v.label(), Some(retry_after)),
            Err(v) => (v.label(), None),
        };
        let zone = self.router.zone(flow.zone).map(|z| z.name.clone()).unwrap_or_default();
        let action = if retry.is_some() { "rejected" } else { "dropped" };
        metrics::counter!(crate::observe::names::SECURITY_REFUSED_TOTAL, "zone" => zone, "reason" => label, "action" => action).increment(1);
        tracing::info!(source = %flow.remote, reason = label, "call refused by admission control");
        let extra: Vec<rsip::Header> =
            retry.map(|s| make("Retry-After", s.to_string())).into_iter().collect();
        self.reply_local(now, tl, tx, msg, flow, 503, None, &extra);
        Err(())
    }

    /// Counts a strike against `flow`'s source (ignored for trusted peers and zones).
    pub(crate) fn strike(&self, now: Instant, flow: Flow, reason: Reason) {
        let Some(guard) = &self.router.guard else { return };
        let trusted = self.trusted_source(flow);
        if trusted || guard.zone_trusted(flow.zone) {
            return;
        }
        metrics::counter!(crate::observe::names::SECURITY_STRIKES_TOTAL, "reason" => reason.label())
            .increment(1);
        guard.strike(now, flow.zone, flow.remote.ip(), trusted, reason);
    }
}
