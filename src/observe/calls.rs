//! What is recorded when a call ends.

use super::names;
use crate::b2bua::CallRecord;

/// Result label of a finished call (bounded set).
pub fn result_label(code: u16) -> &'static str {
    match code {
        200..=299 => "answered",
        486 | 600 => "busy",
        487 => "cancelled",
        404 | 484 | 604 => "not_found",
        408 | 480 => "no_answer",
        400..=499 => "failed_4xx",
        500..=599 => "failed_5xx",
        _ => "failed_6xx",
    }
}

/// Counts a finished call: outcome, timings and its media totals. Media counters move at call
/// end (the relay's per-call counters are read when the call closes), so their rate lags by
/// the length of the calls.
pub fn record_finished(rec: &CallRecord) {
    let trunk = rec.b_trunk.clone().unwrap_or_else(|| "none".to_string());
    metrics::counter!(
        names::CALLS_TOTAL,
        "zone" => rec.a_zone.clone(),
        "trunk" => trunk.clone(),
        "result" => result_label(rec.final_code)
    )
    .increment(1);
    if let Some(p) = rec.first_provisional {
        metrics::histogram!(names::POST_DIAL_DELAY_SECONDS)
            .record(p.saturating_duration_since(rec.started).as_secs_f64());
    }
    if let Some(a) = rec.answered {
        metrics::histogram!(names::CALL_SETUP_SECONDS)
            .record(a.saturating_duration_since(rec.started).as_secs_f64());
        metrics::histogram!(names::CALL_DURATION_SECONDS)
            .record(rec.ended.saturating_duration_since(a).as_secs_f64());
    }
    for (direction, m) in [("a_to_b", &rec.media[0]), ("b_to_a", &rec.media[1])] {
        // Counted even when nothing was relayed: an injection into a call whose own media never
        // started is exactly what this counter is for.
        if m.dropped_foreign > 0 {
            metrics::counter!(
                names::RTP_DROPPED_FOREIGN_TOTAL,
                "zone" => rec.a_zone.clone(),
                "direction" => direction
            )
            .increment(m.dropped_foreign);
        }
        // Calls without anchored media would only add zero-valued series.
        if m.packets == 0 && m.lost == 0 {
            continue;
        }
        let labels = [("trunk", trunk.clone()), ("direction", direction.to_string())];
        metrics::counter!(names::RTP_PACKETS_TOTAL, &labels).increment(m.packets);
        metrics::counter!(names::RTP_BYTES_TOTAL, &labels).increment(m.bytes);
        metrics::counter!(names::RTP_LOST_PACKETS_TOTAL, &labels).increment(m.lost);
        if m.packets > 0 {
            metrics::histogram!(names::RTP_JITTER_SECONDS, &labels).record(m.jitter_ms / 1000.0);
        }
    }
    tracing::info!(
        a_call_id = %rec.a_call_id,
        b_call_id = %rec.b_call_id,
        code = rec.final_code,
        cause = ?rec.cause,
        "call ended"
    );
}
