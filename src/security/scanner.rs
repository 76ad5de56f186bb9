//! Scanner detection by User-Agent.
//!
//! SIP scanners announce themselves more often than not. SIPVicious (svmap, svwar, svcrack:
//! `makeRequest` in its `libs/svhelper.py`) sends `User-Agent: friendly-scanner` by default;
//! SIPPTS (pepelux) sends `pplsip`; the VaxSIP SDK, sundayddr, iWar and sipcli are the usual
//! brute-force dialers. Their requests are dropped silently: any answer, even a 403, tells the
//! scanner a SIP service lives here.
//!
//! Patterns are plain substrings matched case-insensitively (ASCII) anywhere in the
//! User-Agent, not regular expressions (an operator adding `sip.vicious` should not match
//! `sipXvicious`). The User-Agent is lowercased into a stack buffer and searched for the
//! lowercased patterns: a case-insensitive regex would hide the literals from the regex crate's
//! prefilter and cost several times more on every message. The
//! defaults leave out tools with legitimate users (sipsak, SIPp) and real softphones that some
//! published lists include; add them per deployment with `user_agents`.
//!
//! A scanner that sends compact headers (SIPVicious `-c`) omits User-Agent entirely, which this
//! cannot catch: the ban list, fed by its failed registrations and unknown users, does.

use regex::bytes::Regex;

/// User-Agent substrings of known SIP scanners, matched case-insensitively.
pub const DEFAULT_SCANNER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "friendly-request",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "vaxipuseragent",
    "pplsip",
    "sippts",
    "sivus",
    "siparmyknife",
];

/// Longest User-Agent prefix inspected; scanners name themselves up front, and the bound keeps
/// the cost per message fixed however long the header is.
const MAX_INSPECTED: usize = 256;

/// A pattern list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScannerError {
    /// An empty pattern would match every User-Agent.
    #[error("empty scanner User-Agent pattern (it would match every User-Agent)")]
    EmptyPattern,
    /// The combined matcher could not be built (e.g. too many or too long patterns).
    #[error("scanner User-Agent patterns too large: {0}")]
    TooLarge(String),
}

/// Matches User-Agent values against scanner patterns.
#[derive(Debug, Clone)]
pub struct ScannerDetector {
    /// One alternation of the escaped, lowercased patterns; `None` when there are none.
    re: Option<Regex>,
    patterns: Vec<String>,
}

impl ScannerDetector {
    /// A detector of [`DEFAULT_SCANNER_AGENTS`] (when `defaults`) plus `extra`.
    pub fn new<S: AsRef<str>>(defaults: bool, extra: &[S]) -> Result<Self, ScannerError> {
        let mut patterns: Vec<String> = Vec::new();
        let builtin = if defaults { DEFAULT_SCANNER_AGENTS } else { &[] };
        for p in builtin.iter().copied().chain(extra.iter().map(AsRef::as_ref)) {
            let p = p.trim();
            if p.is_empty() {
                return Err(ScannerError::EmptyPattern);
            }
            if !patterns.iter().any(|q| q.eq_ignore_ascii_case(p)) {
                patterns.push(p.to_string());
            }
        }
        let re = if patterns.is_empty() {
            None
        } else {
            let alternation: Vec<String> =
                patterns.iter().map(|p| regex::escape(&p.to_ascii_lowercase())).collect();
            // Unicode off: the input is matched as bytes, and `.` never appears (escaped).
            let re = regex::bytes::RegexBuilder::new(&format!("(?:{})", alternation.join("|")))
                .unicode(false)
                .build()
                .map_err(|e| ScannerError::TooLarge(e.to_string()))?;
            Some(re)
        };
        Ok(ScannerDetector { re, patterns })
    }

    /// A detector that matches nothing.
    pub fn disabled() -> Self {
        ScannerDetector { re: None, patterns: Vec::new() }
    }

    /// The pattern `user_agent` matches, if any (for the log line).
    pub fn find(&self, user_agent: &str) -> Option<&str> {
        let re = self.re.as_ref()?;
        let mut buf = [0u8; MAX_INSPECTED];
        let lower = lowered(user_agent, &mut buf);
        let m = re.find(lower)?;
        let text = m.as_bytes();
        self.patterns.iter().find(|p| p.as_bytes().eq_ignore_ascii_case(text)).map(String::as_str)
    }

    /// True when `user_agent` names a scanner.
    pub fn is_scanner(&self, user_agent: &str) -> bool {
        let Some(re) = self.re.as_ref() else { return false };
        let mut buf = [0u8; MAX_INSPECTED];
        re.is_match(lowered(user_agent, &mut buf))
    }

    /// The patterns in use.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// The first [`MAX_INSPECTED`] bytes of `s`, ASCII-lowercased into `buf`. A multibyte
/// character cut at the end cannot complete a pattern: the patterns' bytes are matched exactly.
fn lowered<'b>(s: &str, buf: &'b mut [u8; MAX_INSPECTED]) -> &'b [u8] {
    let n = s.len().min(MAX_INSPECTED);
    let out = &mut buf[..n];
    out.copy_from_slice(&s.as_bytes()[..n]);
    out.make_ascii_lowercase();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ScannerDetector {
        ScannerDetector::new::<&str>(true, &[]).unwrap()
    }

    #[test]
    fn recognises_what_the_known_tools_send() {
        let d = defaults();
        // SIPVicious 0.3.x default (svhelper.makeRequest), SIPPTS, VaxSIP, sundayddr, sipcli.
        for ua in [
            "friendly-scanner",
            "Friendly-Scanner",
            "pplsip",
            "VaxSIPUserAgent/3.1",
            "sundayddr",
            "sipcli/v1.8",
            "iWar",
            "SIPScan 1.0",
            "sip-scan",
        ] {
            assert!(d.is_scanner(ua), "{ua}");
        }
        assert_eq!(d.find("VaxSIPUserAgent/3.1"), Some("vaxsipuseragent"));
        assert_eq!(d.find("x FRIENDLY-SCANNER"), Some("friendly-scanner"));
    }

    #[test]
    fn leaves_real_products_alone() {
        let d = defaults();
        for ua in [
            "MicroSIP/3.21.3",
            "Cisco-CUCM14.0",
            "Cisco-SIPGateway/IOS-17.x",
            "Asterisk PBX 18.10.0",
            "Digium D40 1_4_1_0_57389",
            "RTCC/7.0.0.0 MediationServer",
            "FPBX-16.0.19(18.13.0)",
            "Yealink SIP-T46S 66.86.0.15",
            "PolycomVVX-VVX_410-UA/6.3.1.8427",
            "sipsak 0.9.8",
            "",
        ] {
            assert!(!d.is_scanner(ua), "{ua}");
            assert_eq!(d.find(ua), None);
        }
    }

    #[test]
    fn extra_patterns_are_literal_and_case_insensitive() {
        let d = ScannerDetector::new(false, &["evil.dialer", "SipSak"]).unwrap();
        assert!(d.is_scanner("EVIL.DIALER 2"));
        assert!(!d.is_scanner("evilXdialer"), "a pattern is not a regex");
        assert!(d.is_scanner("sipsak 0.9.8"));
        assert!(!d.is_scanner("friendly-scanner"), "defaults off");
        assert_eq!(d.patterns().len(), 2);
    }

    #[test]
    fn empty_patterns_are_refused_and_duplicates_kept_once() {
        assert_eq!(ScannerDetector::new(true, &[" "]).unwrap_err(), ScannerError::EmptyPattern);
        let d = ScannerDetector::new(true, &["Friendly-Scanner"]).unwrap();
        assert_eq!(d.patterns().len(), DEFAULT_SCANNER_AGENTS.len());
    }

    #[test]
    fn disabled_matches_nothing() {
        let d = ScannerDetector::disabled();
        assert!(!d.is_scanner("friendly-scanner"));
        let none = ScannerDetector::new::<&str>(false, &[]).unwrap();
        assert!(!none.is_scanner("friendly-scanner"));
    }

    #[test]
    fn non_ascii_patterns_match_their_exact_bytes() {
        let d = ScannerDetector::new(false, &["Scännér"]).unwrap();
        assert!(d.is_scanner("x SCäNNéR y"));
        assert_eq!(d.find("x SCäNNéR y"), Some("Scännér"));
    }

    #[test]
    fn long_and_multibyte_user_agents_are_cut_safely() {
        let d = defaults();
        let long = format!("{}friendly-scanner", "é".repeat(200));
        assert!(!d.is_scanner(&long), "past the inspected prefix");
        let edge = format!("{}x", "é".repeat(MAX_INSPECTED));
        assert!(!d.is_scanner(&edge));
        assert!(d.is_scanner(&format!("ü{}", "friendly-scanner")));
    }
}
