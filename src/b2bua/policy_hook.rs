//! Where the B2BUA hands crossing messages to the policy engine: every request or response
//! built for one leg out of the other leg's message runs the policies of the peer it came from
//! and then of the peer it goes to, with the direction the outgoing leg faces. A call keeps the
//! policies it started with (a reload does not change a call in progress).
//!
//! Free functions over `(&Router, &Call)` so they can run while the call is borrowed mutably.

use super::call::{Call, Side};
use super::router::Router;
use crate::config::ZoneKind;
use crate::observe::names;
use crate::policy::{Direction, MessageContext, PolicyChain, Reject};
use crate::transport::flow::ZoneId;
use rsip::SipMessage;

fn direction_of(router: &Router, zone: ZoneId) -> Direction {
    match router.zone(zone).map(|z| z.kind) {
        Some(ZoneKind::Trunk) => Direction::ToTrunk,
        _ => Direction::ToLan,
    }
}

/// Runs `chains` (source peer first) on `msg` going out on `to_zone`.
pub(crate) fn run_policies(
    router: &Router,
    chains: [&PolicyChain; 2],
    from_zone: ZoneId,
    to_zone: ZoneId,
    msg: &mut SipMessage,
) -> Result<(), Reject> {
    if chains.iter().all(|c| c.policies().is_empty()) {
        return Ok(());
    }
    let dir = direction_of(router, to_zone);
    let source_zone = router.zone(from_zone).map_or("", |z| z.name.as_str());
    let ctx = MessageContext { source_zone };
    for chain in chains {
        let applied = chain.apply(dir, &ctx, msg)?;
        for (policy, rule) in applied.fired {
            metrics::counter!(names::POLICY_RULE_HITS_TOTAL, "policy" => policy.to_string(), "rule" => rule.to_string())
                .increment(1);
        }
    }
    Ok(())
}

fn zones(call: &Call, from: Side) -> (ZoneId, ZoneId) {
    match from {
        Side::A => (call.a.flow.zone, call.b.flow.zone),
        Side::B => (call.b.flow.zone, call.a.flow.zone),
    }
}

/// A request crossing from `from` to the other leg, after policy; `Err` when a rule rejects it
/// (answer the original with the code instead of forwarding).
pub(crate) fn police_request(
    router: &Router,
    call: &Call,
    from: Side,
    req: rsip::Request,
) -> Result<rsip::Request, Reject> {
    let (f, t) = (&call.policies[from.idx()], &call.policies[from.other().idx()]);
    if f.policies().is_empty() && t.policies().is_empty() {
        return Ok(req);
    }
    let (fz, tz) = zones(call, from);
    let mut msg = SipMessage::Request(req);
    run_policies(router, [f, t], fz, tz, &mut msg)?;
    match msg {
        SipMessage::Request(r) => Ok(r),
        SipMessage::Response(_) => Err(Reject { code: 500, reason: "Policy Error".into() }),
    }
}

/// A response crossing from `from` to the other leg, after policy (code translation, header
/// rewrites). A response cannot be rejected; a rule that tries is ignored.
pub(crate) fn police_response(
    router: &Router,
    call: &Call,
    from: Side,
    resp: rsip::Response,
) -> rsip::Response {
    let (f, t) = (&call.policies[from.idx()], &call.policies[from.other().idx()]);
    if f.policies().is_empty() && t.policies().is_empty() {
        return resp;
    }
    let (fz, tz) = zones(call, from);
    let backup = resp.clone();
    let mut msg = SipMessage::Response(resp);
    match run_policies(router, [f, t], fz, tz, &mut msg) {
        Ok(()) => match msg {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => backup,
        },
        Err(_) => backup,
    }
}
