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

/// Counts a finished call.
pub fn record_finished(rec: &CallRecord) {
    let trunk = rec.b_trunk.clone().unwrap_or_else(|| "none".to_string());
    metrics::counter!(
        names::CALLS_TOTAL,
        "zone" => rec.a_zone.clone(),
        "trunk" => trunk,
        "result" => result_label(rec.final_code)
    )
    .increment(1);
    if let Some(a) = rec.answered {
        metrics::histogram!("sipborder_call_setup_seconds").record((a - rec.started).as_secs_f64());
        metrics::histogram!("sipborder_call_duration_seconds")
            .record((rec.ended - a).as_secs_f64());
    }
    tracing::info!(
        a_call_id = %rec.a_call_id,
        b_call_id = %rec.b_call_id,
        code = rec.final_code,
        cause = ?rec.cause,
        "call ended"
    );
}
