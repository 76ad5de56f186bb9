//! Per-call retransmissions the UA core owns: the 2xx to an INVITE until its ACK
//! (RFC 3261 §13.3.1.4) and reliable provisionals until their PRACK (RFC 3262 §3).

use super::call::EndCause;
use super::dispatch::B2bua;
use crate::transaction::TransactionLayer;
use std::cmp::Reverse;
use std::time::Instant;

impl B2bua {
    /// Fires every call timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, tl: &mut TransactionLayer) {
        if self.next_keepalive.is_some_and(|k| k <= now) {
            self.next_keepalive = self.run_binding_keepalives(now, tl);
        }
        let t2 = tl.timer_config().t2;
        while let Some(Reverse((at, key))) = self.wakeups.peek().copied() {
            if at > now {
                break;
            }
            self.wakeups.pop();
            let mut give_up = false;
            let mut next: Option<Instant> = None;
            if let Some(call) = self.calls.get_mut(&key) {
                for u in call.unacked.iter_mut() {
                    if u.due > now {
                        next = Some(next.map_or(u.due, |n| n.min(u.due)));
                        continue;
                    }
                    if now >= u.give_up {
                        give_up = true;
                        continue;
                    }
                    let _ = tl.respond(now, u.tx, u.response.clone());
                    u.interval = (u.interval * 2).min(t2);
                    u.due = (now + u.interval).min(u.give_up);
                    next = Some(next.map_or(u.due, |n| n.min(u.due)));
                }
                let server_tx = call.initial.as_ref().map(|i| i.server_tx);
                call.reliable.retain_mut(|p| {
                    if p.due > now {
                        next = Some(next.map_or(p.due, |n| n.min(p.due)));
                        return true;
                    }
                    if now >= p.give_up {
                        return false;
                    }
                    if let Some(stx) = server_tx {
                        let _ = tl.respond(now, stx, p.response.clone());
                    }
                    p.interval *= 2;
                    p.due = (now + p.interval).min(p.give_up);
                    next = Some(next.map_or(p.due, |n| n.min(p.due)));
                    true
                });
            }
            if give_up {
                tracing::info!("2xx never acknowledged, ending call");
                self.hangup_both(now, key, EndCause::SessionFailure, tl);
                continue;
            }
            let timers = self.run_session_timers(now, key, tl);
            if let Some(n) = [next, timers].into_iter().flatten().min() {
                self.wake_at(n, key);
            }
        }
    }
}
