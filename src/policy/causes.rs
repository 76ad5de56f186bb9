//! SIP final response ↔ Q.850 cause mapping at the trunk edge.
//!
//! The defaults are the two tables of RFC 3398: §8.2.6.1 (a SIP failure response received →
//! the cause sent toward the PSTN) and §7.2.4.1 (a cause received from the PSTN → the SIP final
//! response). A trunk may override single rows from its YAML (`causes: { sip_to_q850: {...},
//! q850_to_sip: {...} }`), which is how a Q.1912.5-style profile is expressed: see
//! [`q1912_5_overrides`] and `config/examples/causes-q1912.5.yaml`.
//!
//! The Reason header itself (RFC 3326 / RFC 6432) lives in [`crate::policy::reason`]; the
//! helpers here that take `&[Reason]` decide between a received Q.850 cause and the status code.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

use crate::policy::reason::Reason;

/// Q.850 cause 16, "Normal call clearing": what a BYE or CANCEL stands for (RFC 3398 §8.2.6.1).
pub const NORMAL_CLEARING: u8 = 16;
/// Q.850 cause 21, "Call rejected": what a failed trunk authentication is reported as.
pub const CALL_REJECTED: u8 = 21;
/// Q.850 cause 31, "Normal, unspecified": RFC 3398's default for an unlisted SIP status.
pub const NORMAL_UNSPECIFIED: u8 = 31;
/// RFC 3398's default SIP response for a cause its table does not list.
pub const DEFAULT_SIP_FOR_CAUSE: u16 = 500;

/// Where the cause was generated, as far as the mapping cares (Q.850 §2.2.6 has more values;
/// RFC 3398 only distinguishes the user from the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseLocation {
    /// The called user (location code 0, `U` in RFC 8606).
    User,
    /// Any network location.
    Network,
}

/// RFC 3398 §8.2.6.1, SIP status → Q.850 cause. 487 (no mapping: the caller cancelled) and
/// 488/606 (decided by the Warning header) are handled in code, not listed here.
pub const RFC3398_SIP_TO_Q850: &[(u16, u8)] = &[
    (400, 41),
    (401, 21),
    (402, 21),
    (403, 21),
    (404, 1),
    (405, 63),
    (406, 79),
    (407, 21),
    (408, 102),
    (410, 22),
    (413, 127),
    (414, 127),
    (415, 79),
    (416, 127),
    (420, 127),
    (421, 127),
    (423, 127),
    (480, 18),
    (481, 41),
    (482, 25),
    (483, 25),
    (484, 28),
    (485, 1),
    (486, 17),
    (500, 41),
    (501, 79),
    (502, 38),
    (503, 41),
    (504, 102),
    (505, 127),
    (513, 127),
    (600, 17),
    (603, 21),
    (604, 1),
];

/// RFC 3398 §7.2.4.1, Q.850 cause → SIP status. Cause 16 is a BYE/CANCEL, not a response, and
/// 21 becomes 603 when the cause location is the user; both are handled in code.
///
/// Cause 29 is 501 here: the RFC's table prints "510 Not implemented", a status SIP does not
/// define; the reason phrase and every implementation say 501.
pub const RFC3398_Q850_TO_SIP: &[(u8, u16)] = &[
    (1, 404),
    (2, 404),
    (3, 404),
    (17, 486),
    (18, 408),
    (19, 480),
    (20, 480),
    (21, 403),
    (22, 410),
    (23, 410),
    (26, 404),
    (27, 502),
    (28, 484),
    (29, 501),
    (31, 480),
    (34, 503),
    (38, 503),
    (41, 503),
    (42, 503),
    (47, 503),
    (55, 403),
    (57, 403),
    (58, 503),
    (65, 488),
    (70, 488),
    (79, 501),
    (87, 403),
    (88, 503),
    (102, 504),
    (111, 500),
    (127, 500),
];

/// Warning codes (RFC 3261 §20.43) that speak of an unavailable bearer capability, for which
/// RFC 3398 §8.2.6.1 recommends cause 65 on a 488/606; every other warning keeps cause 31.
const BEARER_WARNINGS: &[u16] = &[
    304, // Media type not available
    305, // Incompatible media format
    370, // Insufficient bandwidth: the bearer's transfer rate cannot be met
];

/// Q.850 cause 65, "Bearer capability not implemented".
const BEARER_NOT_IMPLEMENTED: u8 = 65;

/// A per-trunk override row that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CauseError {
    /// Only final non-2xx responses (300–699) map to and from causes.
    #[error("SIP status {0} cannot be mapped to or from a Q.850 cause (must be 300-699)")]
    SipCodeOutOfRange(u16),
    /// Q.850 cause values are 7 bits; 0 is not a cause.
    #[error("Q.850 cause {0} is out of range (must be 1-127)")]
    CauseOutOfRange(u8),
}

/// The `causes:` section of a trunk's configuration: rows that replace the RFC 3398 defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CauseOverrides {
    /// SIP status received → Q.850 cause sent toward the trunk.
    #[serde(default)]
    pub sip_to_q850: BTreeMap<u16, u8>,
    /// Q.850 cause received from the trunk → SIP status sent toward the PBX.
    #[serde(default)]
    pub q850_to_sip: BTreeMap<u8, u16>,
}

/// The cause map of one trunk: RFC 3398 defaults plus that trunk's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CauseMap {
    // Overrides are kept apart from the defaults so that the special rules (487, 488/606 by
    // Warning, 21 at the user) apply only to rows nobody overrode.
    sip_to_q850: BTreeMap<u16, u8>,
    q850_to_sip: BTreeMap<u8, u16>,
}

impl CauseMap {
    /// The RFC 3398 tables with no overrides.
    pub fn rfc3398() -> Self {
        Self::default()
    }

    /// RFC 3398 with the given rows replaced. Later rows win over earlier ones.
    pub fn with_overrides(
        sip_to_cause: &[(u16, u8)],
        cause_to_sip: &[(u8, u16)],
    ) -> Result<Self, CauseError> {
        let mut map = Self::rfc3398();
        for &(code, cause) in sip_to_cause {
            check_sip(code)?;
            check_cause(cause)?;
            map.sip_to_q850.insert(code, cause);
        }
        for &(cause, code) in cause_to_sip {
            check_cause(cause)?;
            check_sip(code)?;
            map.q850_to_sip.insert(cause, code);
        }
        Ok(map)
    }

    /// RFC 3398 with a trunk's configured overrides.
    pub fn from_overrides(overrides: &CauseOverrides) -> Result<Self, CauseError> {
        let s: Vec<(u16, u8)> = overrides.sip_to_q850.iter().map(|(&k, &v)| (k, v)).collect();
        let c: Vec<(u8, u16)> = overrides.q850_to_sip.iter().map(|(&k, &v)| (k, v)).collect();
        Self::with_overrides(&s, &c)
    }

    /// RFC 3398 with the Q.1912.5 differences of [`q1912_5_overrides`].
    pub fn q1912_5() -> Self {
        // The profile is static data whose rows are all in range (a test checks it).
        Self::from_overrides(&q1912_5_overrides()).unwrap_or_default()
    }

    /// The Q.850 cause for a SIP final response `code` received from one side, to be sent
    /// toward the other (and recorded). `warning` is the response's Warning header value, used
    /// for 488 and 606. `None` for 1xx, 2xx and 487: there was no failure to report (487 is
    /// the answer to our own CANCEL; the teardown cause is [`cause_for_bye_or_cancel`]).
    pub fn cause_for_sip(&self, code: u16, warning: Option<&str>) -> Option<u8> {
        if code < 300 {
            return None;
        }
        if let Some(&cause) = self.sip_to_q850.get(&code) {
            return Some(cause);
        }
        match code {
            487 => None,
            488 | 606 => Some(cause_for_warning(warning)),
            _ => Some(default_cause_for_sip(code)),
        }
    }

    /// The SIP final response for a Q.850 `cause`, with the location unknown (taken as the
    /// network, which is what RFC 3398 assumes for cause 21 without one).
    pub fn sip_for_cause(&self, cause: u8) -> u16 {
        self.sip_for_cause_at(cause, CauseLocation::Network)
    }

    /// The SIP final response for a Q.850 `cause` generated at `location`.
    ///
    /// Cause 16 normally becomes a BYE or CANCEL; when a response must be sent anyway (the
    /// far end cleared normally before answering) it maps like 31, its class's unspecified
    /// value, to 480: nothing failed, the callee just is not there.
    pub fn sip_for_cause_at(&self, cause: u8, location: CauseLocation) -> u16 {
        if let Some(&code) = self.q850_to_sip.get(&cause) {
            return code;
        }
        match cause {
            CALL_REJECTED if location == CauseLocation::User => 603,
            NORMAL_CLEARING => 480,
            _ => default_sip_for_cause(cause),
        }
    }

    /// The SIP status to send toward the PBX for a failure response the trunk sent. A Q.850
    /// Reason from the trunk is more precise than its status code and decides (RFC 6432);
    /// without one the trunk's status passes unchanged. 487 stays 487 whatever the Reason says:
    /// it answers the PBX's own CANCEL.
    pub fn sip_toward_pbx(&self, trunk_status: u16, reasons: &[Reason]) -> u16 {
        if trunk_status < 300 || trunk_status == 487 {
            return trunk_status;
        }
        match first_q850(reasons) {
            Some((cause, _)) if cause == NORMAL_CLEARING => trunk_status,
            Some((cause, location)) => {
                let location = location.unwrap_or_else(|| location_for_sip(trunk_status));
                self.sip_for_cause_at(cause, location)
            }
            None => trunk_status,
        }
    }

    /// The cause to record (CDR, metrics) and to send toward the trunk for a failure response
    /// `status`: a Q.850 Reason carried by the response wins over the table.
    pub fn cause_of_failure(
        &self,
        status: u16,
        warning: Option<&str>,
        reasons: &[Reason],
    ) -> Option<u8> {
        if status < 300 {
            return None;
        }
        match first_q850(reasons) {
            Some((cause, _)) => Some(cause),
            None => self.cause_for_sip(status, warning),
        }
    }
}

/// The cause a BYE or CANCEL stands for: 16, "Normal call clearing" (RFC 3398 §8.2.6.1).
pub const fn cause_for_bye_or_cancel() -> u8 {
    NORMAL_CLEARING
}

/// Cause location for a SIP status per RFC 3398 §8.2.6.1: the user for 6xx, the network for
/// 4xx and 5xx (and anything else).
pub fn location_for_sip(code: u16) -> CauseLocation {
    if (600..700).contains(&code) {
        CauseLocation::User
    } else {
        CauseLocation::Network
    }
}

/// The RFC 3398 default cause for a SIP status, ignoring overrides and special rows.
fn default_cause_for_sip(code: u16) -> u8 {
    RFC3398_SIP_TO_Q850
        .binary_search_by_key(&code, |&(c, _)| c)
        .map(|i| RFC3398_SIP_TO_Q850[i].1)
        .unwrap_or(NORMAL_UNSPECIFIED)
}

fn default_sip_for_cause(cause: u8) -> u16 {
    RFC3398_Q850_TO_SIP
        .binary_search_by_key(&cause, |&(c, _)| c)
        .map(|i| RFC3398_Q850_TO_SIP[i].1)
        .unwrap_or(DEFAULT_SIP_FOR_CAUSE)
}

/// Cause for a 488/606 from its Warning header value(s): `305 host "text", 399 host "..."`.
fn cause_for_warning(warning: Option<&str>) -> u8 {
    let Some(warning) = warning else { return NORMAL_UNSPECIFIED };
    let bearer = split_outside_quotes(warning, ',').any(|value| {
        let code = value.trim_start().get(..3).and_then(|c| c.parse::<u16>().ok());
        code.is_some_and(|c| BEARER_WARNINGS.contains(&c))
    });
    if bearer {
        BEARER_NOT_IMPLEMENTED
    } else {
        NORMAL_UNSPECIFIED
    }
}

/// Splits at `sep` where it is not inside a quoted-string (warn-text may contain commas).
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, ch) in s.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// The first Q.850 Reason with a usable cause, and its RFC 8606 location if it gave one.
fn first_q850(reasons: &[Reason]) -> Option<(u8, Option<CauseLocation>)> {
    reasons.iter().find_map(|r| r.q850_cause().map(|c| (c, r.location())))
}

fn check_sip(code: u16) -> Result<(), CauseError> {
    if (300..700).contains(&code) {
        Ok(())
    } else {
        Err(CauseError::SipCodeOutOfRange(code))
    }
}

fn check_cause(cause: u8) -> Result<(), CauseError> {
    if (1..=127).contains(&cause) {
        Ok(())
    } else {
        Err(CauseError::CauseOutOfRange(cause))
    }
}

/// The ITU-T Q.1912.5 profile, as the rows where it differs from RFC 3398.
///
/// Q.1912.5 (and 3GPP TS 29.163, which follows it) reports most SIP failures toward ISUP as
/// 127 "Interworking, unspecified" instead of guessing a cause, maps 480 to 20 "Subscriber
/// absent", and maps cause 18 back to 480 rather than 408. Rows both documents agree on
/// (404→1, 486→17, 47→503, ...) are not repeated. These rows were taken from those
/// recommendations as remembered, not checked against the ITU text: review them against the
/// edition a carrier names before relying on them.
pub fn q1912_5_overrides() -> CauseOverrides {
    let sip_to_q850 = [
        (400, 127),
        (401, 127),
        (402, 127),
        (403, 127),
        (405, 127),
        (406, 127),
        (407, 127),
        (408, 127),
        (415, 127),
        (480, 20),
        (481, 127),
        (482, 127),
        (483, 127),
        (485, 127),
        (488, 127),
        (500, 127),
        (501, 127),
        (502, 127),
        (503, 127),
        (504, 127),
        (580, 47),
        (606, 127),
    ];
    let q850_to_sip = [(18, 480), (25, 404)];
    CauseOverrides {
        sip_to_q850: sip_to_q850.into_iter().collect(),
        q850_to_sip: q850_to_sip.into_iter().collect(),
    }
}

/// The Q.850 name of `cause`, for `Reason: ...;text="..."` and logs; "Unknown cause" for a
/// value Q.850 does not define.
pub fn cause_text(cause: u8) -> &'static str {
    known_cause_text(cause).unwrap_or("Unknown cause")
}

/// The Q.850 name of `cause`, or `None` for a value Q.850 does not define.
pub fn known_cause_text(cause: u8) -> Option<&'static str> {
    Some(match cause {
        1 => "Unallocated (unassigned) number",
        2 => "No route to specified transit network",
        3 => "No route to destination",
        4 => "Send special information tone",
        5 => "Misdialled trunk prefix",
        6 => "Channel unacceptable",
        7 => "Call awarded and being delivered in an established channel",
        8 => "Preemption",
        9 => "Preemption - circuit reserved for reuse",
        16 => "Normal call clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "No answer from user (user alerted)",
        20 => "Subscriber absent",
        21 => "Call rejected",
        22 => "Number changed",
        23 => "Redirection to new destination",
        25 => "Exchange routing error",
        26 => "Non-selected user clearing",
        27 => "Destination out of order",
        28 => "Invalid number format (address incomplete)",
        29 => "Facility rejected",
        30 => "Response to STATUS ENQUIRY",
        31 => "Normal, unspecified",
        34 => "No circuit/channel available",
        38 => "Network out of order",
        39 => "Permanent frame mode connection out of service",
        40 => "Permanent frame mode connection operational",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        43 => "Access information discarded",
        44 => "Requested circuit/channel not available",
        46 => "Precedence call blocked",
        47 => "Resource unavailable, unspecified",
        49 => "Quality of service not available",
        50 => "Requested facility not subscribed",
        53 => "Outgoing calls barred within CUG",
        55 => "Incoming calls barred within CUG",
        57 => "Bearer capability not authorized",
        58 => "Bearer capability not presently available",
        62 => "Inconsistency in designated outgoing access information and subscriber class",
        63 => "Service or option not available, unspecified",
        65 => "Bearer capability not implemented",
        66 => "Channel type not implemented",
        69 => "Requested facility not implemented",
        70 => "Only restricted digital information bearer capability is available",
        79 => "Service or option not implemented, unspecified",
        81 => "Invalid call reference value",
        82 => "Identified channel does not exist",
        83 => "A suspended call exists, but this call identity does not",
        84 => "Call identity in use",
        85 => "No call suspended",
        86 => "Call having the requested call identity has been cleared",
        87 => "User not member of CUG",
        88 => "Incompatible destination",
        90 => "Non-existent CUG",
        91 => "Invalid transit network selection",
        95 => "Invalid message, unspecified",
        96 => "Mandatory information element is missing",
        97 => "Message type non-existent or not implemented",
        98 => {
            "Message not compatible with call state or message type non-existent or not implemented"
        }
        99 => "Information element / parameter non-existent or not implemented",
        100 => "Invalid information element contents",
        101 => "Message not compatible with call state",
        102 => "Recovery on timer expiry",
        103 => "Parameter non-existent or not implemented - passed on",
        110 => "Message with unrecognized parameter discarded",
        111 => "Protocol error, unspecified",
        127 => "Interworking, unspecified",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3398 §8.2.6.1 as written in ../shared/reference/q850-causes.md, row by row
    /// (grouped rows expanded). `None` is "no cause" (487).
    const REFERENCE_SIP_TO_Q850: &[(u16, Option<u8>)] = &[
        (400, Some(41)),
        (401, Some(21)),
        (402, Some(21)),
        (403, Some(21)),
        (404, Some(1)),
        (405, Some(63)),
        (406, Some(79)),
        (407, Some(21)),
        (408, Some(102)),
        (410, Some(22)),
        (413, Some(127)),
        (414, Some(127)),
        (416, Some(127)),
        (420, Some(127)),
        (421, Some(127)),
        (423, Some(127)),
        (415, Some(79)),
        (480, Some(18)),
        (481, Some(41)),
        (482, Some(25)),
        (483, Some(25)),
        (484, Some(28)),
        (485, Some(1)),
        (486, Some(17)),
        (487, None),
        (488, Some(31)),
        (500, Some(41)),
        (501, Some(79)),
        (502, Some(38)),
        (503, Some(41)),
        (504, Some(102)),
        (505, Some(127)),
        (513, Some(127)),
        (600, Some(17)),
        (603, Some(21)),
        (604, Some(1)),
        (606, Some(31)),
    ];

    /// RFC 3398 §7.2.4.1 as written in the reference file (16 and 21-at-user tested apart).
    const REFERENCE_Q850_TO_SIP: &[(u8, u16)] = &[
        (1, 404),
        (2, 404),
        (3, 404),
        (17, 486),
        (18, 408),
        (19, 480),
        (20, 480),
        (21, 403),
        (22, 410),
        (23, 410),
        (26, 404),
        (27, 502),
        (28, 484),
        (29, 501),
        (31, 480),
        (34, 503),
        (38, 503),
        (41, 503),
        (42, 503),
        (47, 503),
        (55, 403),
        (57, 403),
        (58, 503),
        (65, 488),
        (70, 488),
        (79, 501),
        (87, 403),
        (88, 503),
        (102, 504),
        (111, 500),
        (127, 500),
    ];

    #[test]
    fn every_sip_to_q850_row_of_the_reference() {
        let map = CauseMap::rfc3398();
        for &(code, cause) in REFERENCE_SIP_TO_Q850 {
            assert_eq!(map.cause_for_sip(code, None), cause, "SIP {code}");
        }
    }

    #[test]
    fn every_q850_to_sip_row_of_the_reference() {
        let map = CauseMap::rfc3398();
        for &(cause, code) in REFERENCE_Q850_TO_SIP {
            assert_eq!(map.sip_for_cause(cause), code, "cause {cause}");
        }
    }

    #[test]
    fn published_tables_are_sorted_for_binary_search() {
        assert!(RFC3398_SIP_TO_Q850.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(RFC3398_Q850_TO_SIP.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn unlisted_sip_codes_map_to_31() {
        let map = CauseMap::rfc3398();
        for code in [300, 302, 409, 411, 422, 489, 491, 494, 580, 599, 605, 699] {
            assert_eq!(map.cause_for_sip(code, None), Some(31), "SIP {code}");
        }
    }

    #[test]
    fn no_cause_for_provisional_success_or_cancelled() {
        let map = CauseMap::rfc3398();
        for code in [0, 100, 180, 183, 200, 202, 299, 487] {
            assert_eq!(map.cause_for_sip(code, None), None, "SIP {code}");
        }
        assert_eq!(cause_for_bye_or_cancel(), 16);
    }

    #[test]
    fn warning_decides_488_and_606() {
        let map = CauseMap::rfc3398();
        let bearer = Some(r#"305 trunk.example "Incompatible media format""#);
        assert_eq!(map.cause_for_sip(488, bearer), Some(65));
        assert_eq!(map.cause_for_sip(606, Some("304 x \"Media type not available\"")), Some(65));
        assert_eq!(map.cause_for_sip(606, Some("370 x \"Insufficient bandwidth\"")), Some(65));
        assert_eq!(map.cause_for_sip(488, Some(r#"399 x "a, 305 in text""#)), Some(31));
        assert_eq!(map.cause_for_sip(488, Some(r#"399 x "misc", 305 y "fmt""#)), Some(65));
        assert_eq!(map.cause_for_sip(488, Some("garbage")), Some(31));
        assert_eq!(map.cause_for_sip(488, Some("")), Some(31));
        assert_eq!(map.cause_for_sip(488, Some("30")), Some(31));
        // The Warning only matters where RFC 3398 says so.
        assert_eq!(map.cause_for_sip(486, bearer), Some(17));
    }

    #[test]
    fn unlisted_causes_map_to_500() {
        let map = CauseMap::rfc3398();
        for cause in [0, 4, 24, 30, 44, 63, 95, 99, 100, 103, 126, 128, 255] {
            assert_eq!(map.sip_for_cause(cause), 500, "cause {cause}");
        }
    }

    #[test]
    fn cause_21_from_the_user_is_603_and_16_is_480() {
        let map = CauseMap::rfc3398();
        assert_eq!(map.sip_for_cause_at(21, CauseLocation::User), 603);
        assert_eq!(map.sip_for_cause_at(21, CauseLocation::Network), 403);
        assert_eq!(map.sip_for_cause_at(17, CauseLocation::User), 486);
        assert_eq!(map.sip_for_cause(16), 480);
    }

    #[test]
    fn location_is_user_for_6xx_only() {
        assert_eq!(location_for_sip(600), CauseLocation::User);
        assert_eq!(location_for_sip(603), CauseLocation::User);
        assert_eq!(location_for_sip(486), CauseLocation::Network);
        assert_eq!(location_for_sip(503), CauseLocation::Network);
    }

    #[test]
    fn overrides_win_both_ways() {
        let map = CauseMap::with_overrides(
            &[(404, 3), (487, 127), (488, 88), (480, 20)],
            &[(47, 500), (21, 404), (16, 487), (99, 400)],
        )
        .unwrap();
        assert_eq!(map.cause_for_sip(404, None), Some(3));
        assert_eq!(map.cause_for_sip(487, None), Some(127));
        assert_eq!(map.cause_for_sip(488, Some("305 x \"fmt\"")), Some(88));
        assert_eq!(map.cause_for_sip(480, None), Some(20));
        assert_eq!(map.cause_for_sip(486, None), Some(17), "untouched rows keep RFC 3398");
        assert_eq!(map.cause_for_sip(200, None), None);
        assert_eq!(map.sip_for_cause(47), 500);
        assert_eq!(map.sip_for_cause_at(21, CauseLocation::User), 404);
        assert_eq!(map.sip_for_cause(16), 487);
        assert_eq!(map.sip_for_cause(99), 400);
        assert_eq!(map.sip_for_cause(17), 486);
    }

    #[test]
    fn out_of_range_overrides_are_refused() {
        assert_eq!(
            CauseMap::with_overrides(&[(200, 16)], &[]),
            Err(CauseError::SipCodeOutOfRange(200))
        );
        assert_eq!(CauseMap::with_overrides(&[(404, 0)], &[]), Err(CauseError::CauseOutOfRange(0)));
        assert_eq!(
            CauseMap::with_overrides(&[], &[(128, 500)]),
            Err(CauseError::CauseOutOfRange(128))
        );
        assert_eq!(
            CauseMap::with_overrides(&[], &[(17, 700)]),
            Err(CauseError::SipCodeOutOfRange(700))
        );
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ExampleFile {
        causes: CauseOverrides,
    }

    #[test]
    fn q1912_5_example_yaml_is_the_profile() {
        let yaml = include_str!("../../config/examples/causes-q1912.5.yaml");
        let file: ExampleFile = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(file.causes, q1912_5_overrides());
        let map = CauseMap::from_overrides(&file.causes).unwrap();
        assert_eq!(map, CauseMap::q1912_5());
        assert_ne!(map, CauseMap::rfc3398());
        assert_eq!(map.cause_for_sip(480, None), Some(20));
        assert_eq!(map.cause_for_sip(503, None), Some(127));
        assert_eq!(map.cause_for_sip(404, None), Some(1));
        assert_eq!(map.sip_for_cause(18), 480);
        assert_eq!(map.sip_for_cause(47), 503);
    }

    #[test]
    fn overrides_yaml_refuses_unknown_keys_and_accepts_partial() {
        let bad = "sip_to_q850: {404: 1}\nq850_to_sipp: {47: 503}\n";
        assert!(serde_yaml::from_str::<CauseOverrides>(bad).is_err());
        let partial: CauseOverrides = serde_yaml::from_str("q850_to_sip: {47: 503}\n").unwrap();
        assert!(partial.sip_to_q850.is_empty());
        assert_eq!(partial.q850_to_sip.get(&47), Some(&503));
        assert!(serde_yaml::from_str::<CauseOverrides>("sip_to_q850: {404: 300}\n").is_err());
    }

    #[test]
    fn reason_from_the_trunk_decides_the_status_toward_the_pbx() {
        let map = CauseMap::rfc3398();
        let busy = Reason::parse_list("Q.850;cause=17;text=\"User busy\"").unwrap();
        assert_eq!(map.sip_toward_pbx(500, &busy), 486);
        assert_eq!(map.sip_toward_pbx(500, &[]), 500);
        assert_eq!(map.sip_toward_pbx(487, &busy), 487);
        let rejected = Reason::parse_list("Q.850;cause=21").unwrap();
        assert_eq!(map.sip_toward_pbx(603, &rejected), 603, "6xx implies the user location");
        assert_eq!(map.sip_toward_pbx(480, &rejected), 403);
        let at_user = Reason::parse_list("Q.850;cause=21;location=U").unwrap();
        assert_eq!(map.sip_toward_pbx(480, &at_user), 603);
        let clearing = Reason::parse_list("Q.850;cause=16").unwrap();
        assert_eq!(map.sip_toward_pbx(480, &clearing), 480);
        let sip_only = Reason::parse_list("SIP;cause=503").unwrap();
        assert_eq!(map.sip_toward_pbx(500, &sip_only), 500);
        let both = Reason::parse_list("SIP;cause=503, Q.850;cause=34").unwrap();
        assert_eq!(map.sip_toward_pbx(500, &both), 503);
    }

    #[test]
    fn recorded_cause_prefers_the_reason() {
        let map = CauseMap::rfc3398();
        let reasons = Reason::parse_list("Q.850;cause=34").unwrap();
        assert_eq!(map.cause_of_failure(503, None, &reasons), Some(34));
        assert_eq!(map.cause_of_failure(503, None, &[]), Some(41));
        assert_eq!(map.cause_of_failure(200, None, &reasons), None);
        assert_eq!(map.cause_of_failure(487, None, &[]), None);
    }

    #[test]
    fn cause_texts() {
        assert_eq!(cause_text(16), "Normal call clearing");
        assert_eq!(cause_text(17), "User busy");
        assert_eq!(cause_text(21), "Call rejected");
        assert_eq!(cause_text(31), "Normal, unspecified");
        assert_eq!(cause_text(127), "Interworking, unspecified");
        assert_eq!(cause_text(0), "Unknown cause");
        assert_eq!(known_cause_text(200), None);
        for &(_, cause) in RFC3398_SIP_TO_Q850 {
            assert!(known_cause_text(cause).is_some(), "cause {cause}");
        }
        for &(cause, _) in RFC3398_Q850_TO_SIP {
            assert!(known_cause_text(cause).is_some(), "cause {cause}");
        }
    }
}
