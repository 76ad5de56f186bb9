//! Every metric sipborder exports, in one place, so modules, dashboards and alert rules agree.
//!
//! Conventions (Prometheus): `sipborder_` prefix, base units (seconds, bytes), `_total` for
//! counters, bounded label sets only (`zone`, `trunk`, `direction`, `method`, `class`, `result`,
//! `cause`, `reason`, `action`, `conversion`) — never Call-IDs, numbers or addresses.

/// Calls ended, by `zone` (of leg A), `trunk` (of leg B), `result`.
pub const CALLS_TOTAL: &str = "sipborder_calls_total";
/// Calls in progress (gauge).
pub const CALLS_ACTIVE: &str = "sipborder_calls_active";
/// Dialogs indexed (gauge): one per leg and early fork.
pub const DIALOGS: &str = "sipborder_dialogs";
/// Live transactions (gauge).
pub const TRANSACTIONS: &str = "sipborder_transactions";
/// SIP messages received, by `kind` (request/response).
pub const SIP_MESSAGES_RECEIVED_TOTAL: &str = "sipborder_sip_messages_received_total";
/// SIP messages sent.
pub const SIP_MESSAGES_SENT_TOTAL: &str = "sipborder_sip_messages_sent_total";
/// SIP requests received, by `method`.
pub const SIP_REQUESTS_TOTAL: &str = "sipborder_sip_requests_total";
/// SIP responses received, by `class` (1xx..6xx).
pub const SIP_RESPONSES_TOTAL: &str = "sipborder_sip_responses_total";
/// Messages refused at parsing, by `action` (answered/dropped/closed) and `reason`/`code`.
pub const SIP_PARSE_ERRORS_TOTAL: &str = "sipborder_sip_parse_errors_total";
/// Transaction retransmissions (timers A, E, G).
pub const TRANSACTION_RETRANSMISSIONS_TOTAL: &str = "sipborder_transaction_retransmissions_total";
/// Transaction timeouts (timers B, F).
pub const TRANSACTION_TIMEOUTS_TOTAL: &str = "sipborder_transaction_timeouts_total";
/// INVITE to 200 (histogram, seconds).
pub const CALL_SETUP_SECONDS: &str = "sipborder_call_setup_seconds";
/// INVITE to first 18x (histogram, seconds).
pub const POST_DIAL_DELAY_SECONDS: &str = "sipborder_post_dial_delay_seconds";
/// Answer to end (histogram, seconds).
pub const CALL_DURATION_SECONDS: &str = "sipborder_call_duration_seconds";
/// Relay ports in use, by `zone` (gauge).
pub const RELAY_PORTS_IN_USE: &str = "sipborder_relay_ports_in_use";
/// Relay ports free, by `zone` (gauge).
pub const RELAY_PORTS_FREE: &str = "sipborder_relay_ports_free";
/// Calls refused because a zone's relay ports ran out, by `zone`.
pub const RELAY_PORTS_EXHAUSTED_TOTAL: &str = "sipborder_relay_ports_exhausted_total";
/// RTP packets relayed, by `trunk` and `direction` (a_to_b/b_to_a), counted at call end.
pub const RTP_PACKETS_TOTAL: &str = "sipborder_rtp_packets_total";
/// RTP bytes relayed, by `trunk` and `direction`, counted at call end.
pub const RTP_BYTES_TOTAL: &str = "sipborder_rtp_bytes_total";
/// RTP packets lost (sequence gaps), by `trunk` and `direction`, counted at call end.
pub const RTP_LOST_PACKETS_TOTAL: &str = "sipborder_rtp_lost_packets_total";
/// Media packets dropped because they came from the wrong source, by `zone` (of leg A, as in
/// [`CALLS_TOTAL`]) and `direction` (a_to_b: arrived on the port facing leg A), counted at call
/// end.
pub const RTP_DROPPED_FOREIGN_TOTAL: &str = "sipborder_rtp_dropped_foreign_total";
/// Interarrival jitter at call end (histogram, seconds), by `trunk` and `direction`.
pub const RTP_JITTER_SECONDS: &str = "sipborder_rtp_jitter_seconds";
/// Policy rule hits, by `policy` and `rule` (names come from config files: bounded).
pub const POLICY_RULE_HITS_TOTAL: &str = "sipborder_policy_rule_hits_total";
/// Registration state per `trunk` (gauge: 1 registered, 0 not).
pub const REGISTRATION_UP: &str = "sipborder_registration_up";
/// Trunk reachability per `trunk` (gauge: 1 up, 0 down).
pub const TRUNK_UP: &str = "sipborder_trunk_up";
/// Q.850 causes sent toward trunks, by `trunk` and `cause`.
pub const Q850_CAUSES_SENT_TOTAL: &str = "sipborder_q850_causes_sent_total";
/// Q.850 causes received from trunks, by `trunk` and `cause`.
pub const Q850_CAUSES_RECEIVED_TOTAL: &str = "sipborder_q850_causes_received_total";
/// CDRs written to the CDR file.
pub const CDR_RECORDS_WRITTEN_TOTAL: &str = "sipborder_cdr_records_written_total";
/// CDRs lost, by `reason` (queue_full: the writer fell behind; write_error; writer_gone).
pub const CDR_RECORDS_DROPPED_TOTAL: &str = "sipborder_cdr_records_dropped_total";
/// CDR file errors, by `op` (open, write, flush, rotate, prune, encode).
pub const CDR_ERRORS_TOTAL: &str = "sipborder_cdr_errors_total";
/// DTMF key presses converted between the legs (`trunks[].dtmf`), by `conversion`
/// (info_to_rfc4733, rfc4733_to_info) and `result` (converted; dropped: the receiving leg
/// negotiated no telephone-event or had no dialog, early or confirmed; early_unconfirmed: a key
/// in early media toward a caller that did not PRACK a reliable 18x of the early dialog, so
/// may not know it; invalid: an unreadable INFO body).
pub const DTMF_EVENTS_TOTAL: &str = "sipborder_dtmf_events_total";

/// Session-timer refreshes (RFC 4028), by `result`: `sent` (sipborder refreshed a leg),
/// `answered` (a peer's refresh answered by sipborder), `failed` (our refresh refused or timed
/// out), `expired` (a session ran out; the call was ended).
pub const SESSION_REFRESHES_TOTAL: &str = "sipborder_session_refreshes_total";
/// Transfers handled by sipborder (`refer: local`), by `result`: `completed` (blind or
/// attended), `failed` (the target did not answer, or the replaced call could not be joined),
/// `rejected` (refused before anything was tried), `replaced` (an INVITE with Replaces took
/// over a call's leg).
pub const TRANSFERS_TOTAL: &str = "sipborder_transfers_total";
/// Messages, connections and calls refused by the edge guard, by `zone` and `reason` (acl,
/// banned, scanner, rate_*, calls_*, body_size, tcp_connections, transactions, dialogs...) and
/// `action` (dropped: silently; rejected: answered 503/413 toward a trusted peer).
pub const SECURITY_REFUSED_TOTAL: &str = "sipborder_security_refused_total";
/// Bans in force (gauge).
pub const BANS: &str = "sipborder_bans";
/// Bans issued, by `reason` (auth_failed, unknown_user, malformed, scanner, manual).
pub const BANS_TOTAL: &str = "sipborder_bans_total";
/// Bans lifted by an operator (admin endpoint) or ended by their TTL, by `how` (lifted/expired).
pub const BANS_ENDED_TOTAL: &str = "sipborder_bans_ended_total";
/// Strikes counted toward bans, by `reason`.
pub const SECURITY_STRIKES_TOTAL: &str = "sipborder_security_strikes_total";
/// Sources tracked by the per-source rate tables (gauge).
pub const SECURITY_SOURCES_TRACKED: &str = "sipborder_security_sources_tracked";
/// Inbound TCP connections held (gauge).
pub const TCP_CONNECTIONS: &str = "sipborder_tcp_connections";
/// Failed digest authentications by peers of a zone that demands it, by `zone`.
pub const AUTH_FAILURES_TOTAL: &str = "sipborder_auth_failures_total";

/// Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// A metric of the catalogue: name, type and the HELP text the exporter publishes.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Exported name.
    pub name: &'static str,
    /// Prometheus type.
    pub kind: Kind,
    /// One-line HELP text (promtool's lint wants one on every metric).
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

/// Every metric above, with its HELP text. A unit test keeps this list and the constants in
/// step, so a metric cannot be exported without a description.
pub const ALL: &[Metric] = &[
    m(CALLS_TOTAL, Kind::Counter, "Calls ended, by zone of leg A, trunk of leg B and result."),
    m(CALLS_ACTIVE, Kind::Gauge, "Calls in progress."),
    m(DIALOGS, Kind::Gauge, "Dialogs indexed: one per leg and early fork."),
    m(TRANSACTIONS, Kind::Gauge, "Live SIP transactions."),
    m(SIP_MESSAGES_RECEIVED_TOTAL, Kind::Counter, "SIP messages received, by kind."),
    m(SIP_MESSAGES_SENT_TOTAL, Kind::Counter, "SIP messages sent."),
    m(SIP_REQUESTS_TOTAL, Kind::Counter, "SIP requests received, by method."),
    m(SIP_RESPONSES_TOTAL, Kind::Counter, "SIP responses received, by class."),
    m(
        SIP_PARSE_ERRORS_TOTAL,
        Kind::Counter,
        "SIP messages refused at parsing, by action and reason.",
    ),
    m(
        TRANSACTION_RETRANSMISSIONS_TOTAL,
        Kind::Counter,
        "SIP transaction retransmissions (timers A, E, G).",
    ),
    m(TRANSACTION_TIMEOUTS_TOTAL, Kind::Counter, "SIP transaction timeouts (timers B, F)."),
    m(CALL_SETUP_SECONDS, Kind::Histogram, "Time from INVITE to answer, seconds."),
    m(POST_DIAL_DELAY_SECONDS, Kind::Histogram, "Time from INVITE to the first 18x, seconds."),
    m(
        CALL_DURATION_SECONDS,
        Kind::Histogram,
        "Time from answer to end of answered calls, seconds.",
    ),
    m(RELAY_PORTS_IN_USE, Kind::Gauge, "Media relay ports in use, by zone."),
    m(RELAY_PORTS_FREE, Kind::Gauge, "Media relay ports free, by zone."),
    m(
        RELAY_PORTS_EXHAUSTED_TOTAL,
        Kind::Counter,
        "Calls refused because a zone ran out of relay ports.",
    ),
    m(RTP_PACKETS_TOTAL, Kind::Counter, "RTP packets relayed, by trunk and direction."),
    m(RTP_BYTES_TOTAL, Kind::Counter, "RTP bytes relayed, by trunk and direction."),
    m(RTP_LOST_PACKETS_TOTAL, Kind::Counter, "RTP packets lost, by trunk and direction."),
    m(
        RTP_DROPPED_FOREIGN_TOTAL,
        Kind::Counter,
        "Media packets dropped for coming from the wrong source, by zone of leg A and direction.",
    ),
    m(RTP_JITTER_SECONDS, Kind::Histogram, "RTP interarrival jitter at call end, seconds."),
    m(POLICY_RULE_HITS_TOTAL, Kind::Counter, "Policy rule hits, by policy and rule."),
    m(REGISTRATION_UP, Kind::Gauge, "Outbound registration state per trunk (1 registered)."),
    m(TRUNK_UP, Kind::Gauge, "Trunk reachability per trunk (1 up)."),
    m(
        Q850_CAUSES_SENT_TOTAL,
        Kind::Counter,
        "Q.850 causes sent toward trunks, by trunk and cause.",
    ),
    m(
        Q850_CAUSES_RECEIVED_TOTAL,
        Kind::Counter,
        "Q.850 causes received from trunks, by trunk and cause.",
    ),
    m(CDR_RECORDS_WRITTEN_TOTAL, Kind::Counter, "Call detail records written."),
    m(CDR_RECORDS_DROPPED_TOTAL, Kind::Counter, "Call detail records lost, by reason."),
    m(CDR_ERRORS_TOTAL, Kind::Counter, "CDR file errors, by operation."),
    m(SESSION_REFRESHES_TOTAL, Kind::Counter, "Session-timer refreshes, by result."),
    m(TRANSFERS_TOTAL, Kind::Counter, "Transfers performed by sipborder, by result."),
    m(
        DTMF_EVENTS_TOTAL,
        Kind::Counter,
        "DTMF key presses converted between SIP INFO and RFC 4733, by conversion and result.",
    ),
    m(
        SECURITY_REFUSED_TOTAL,
        Kind::Counter,
        "Messages, connections and calls refused at the edge, by zone, reason and action.",
    ),
    m(BANS, Kind::Gauge, "Source bans in force."),
    m(BANS_TOTAL, Kind::Counter, "Source bans issued, by reason."),
    m(BANS_ENDED_TOTAL, Kind::Counter, "Source bans ended, by how (lifted or expired)."),
    m(SECURITY_STRIKES_TOTAL, Kind::Counter, "Strikes counted toward bans, by reason."),
    m(SECURITY_SOURCES_TRACKED, Kind::Gauge, "Sources tracked by the per-source rate tables."),
    m(TCP_CONNECTIONS, Kind::Gauge, "Inbound TCP connections held."),
    m(AUTH_FAILURES_TOTAL, Kind::Counter, "Failed digest authentications, by zone."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_lists_every_constant_once_with_a_valid_name() {
        let src = include_str!("names.rs");
        let consts: Vec<&str> = src
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter(|l| l.contains(": &str = \""))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        let listed: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        for c in &consts {
            assert_eq!(listed.iter().filter(|n| *n == c).count(), 1, "{c} in ALL once");
        }
        assert_eq!(consts.len(), listed.len());
        for m in ALL {
            assert!(m.name.starts_with("sipborder_"), "{}", m.name);
            assert!(m
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert_eq!(m.kind == Kind::Counter, m.name.ends_with("_total"), "{}", m.name);
            if m.kind == Kind::Histogram {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(!m.help.is_empty() && !m.help.contains('\n'));
        }
    }
}
