//! Every metric sipborder exports, in one place, so modules, dashboards and alert rules agree.
//!
//! Conventions (Prometheus): `sipborder_` prefix, base units (seconds, bytes), `_total` for
//! counters, bounded label sets only (`zone`, `trunk`, `direction`, `method`, `class`, `result`,
//! `cause`, `reason`, `action`) — never Call-IDs, numbers or addresses.

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
/// RTP packets relayed, by `trunk`.
pub const RTP_PACKETS_TOTAL: &str = "sipborder_rtp_packets_total";
/// RTP bytes relayed, by `trunk`.
pub const RTP_BYTES_TOTAL: &str = "sipborder_rtp_bytes_total";
/// RTP packets lost (sequence gaps), by `trunk`.
pub const RTP_LOST_PACKETS_TOTAL: &str = "sipborder_rtp_lost_packets_total";
/// Media packets dropped because they came from the wrong source, by `zone`.
pub const RTP_DROPPED_FOREIGN_TOTAL: &str = "sipborder_rtp_dropped_foreign_total";
/// Interarrival jitter at call end (histogram, seconds), by `trunk`.
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
