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
//! `sipXvicious`). The defaults leave out tools with legitimate users (sipsak, SIPp) and real
//! softphones that some published lists include; add them per deployment with `user_agents`.
//!
//! The matcher runs on every request, from every receive thread, so it holds no mutable state
//! (a `regex::Regex` keeps a per-call cache in a pool that threads contend for, and a
//! case-insensitive alternation hides its literals from the regex prefilter): the User-Agent is
//! ASCII-lowercased into a stack buffer and each position's two bytes are looked up in a
//! 64 Kibit set of the patterns' first two bytes; only a hit compares the patterns that start
//! with those bytes.
//!
//! A scanner that sends compact headers (SIPVicious `-c`) omits User-Agent entirely, which this
//! cannot catch: the ban list, fed by its failed registrations and unknown users, does.

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

/// Shortest pattern accepted: one or two letters would match ordinary User-Agents.
const MIN_PATTERN: usize = 3;

/// A pattern list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScannerError {
    /// A pattern shorter than 3 bytes (an empty one would match every User-Agent).
    #[error("scanner User-Agent pattern {0:?} is too short: at least 3 characters, or it matches real phones")]
    TooShort(String),
}

/// Matches User-Agent values against scanner patterns.
#[derive(Debug, Clone)]
pub struct ScannerDetector {
    /// Bit `b0 << 8 | b1` is set when a pattern starts with the bytes `b0 b1`.
    bigrams: Box<[u64; 1024]>,
    /// (first two bytes, lowercased pattern, index into `patterns`), sorted by the first field.
    by_bigram: Vec<(u16, Box<[u8]>, usize)>,
    patterns: Vec<String>,
}

fn bigram(a: u8, b: u8) -> u16 {
    u16::from_be_bytes([a, b])
}

impl ScannerDetector {
    /// A detector of [`DEFAULT_SCANNER_AGENTS`] (when `defaults`) plus `extra`.
    pub fn new<S: AsRef<str>>(defaults: bool, extra: &[S]) -> Result<Self, ScannerError> {
        let mut d = ScannerDetector::disabled();
        let builtin = if defaults { DEFAULT_SCANNER_AGENTS } else { &[] };
        for p in builtin.iter().copied().chain(extra.iter().map(AsRef::as_ref)) {
            let p = p.trim();
            if p.len() < MIN_PATTERN {
                return Err(ScannerError::TooShort(p.to_string()));
            }
            if d.patterns.iter().any(|q| q.eq_ignore_ascii_case(p)) {
                continue;
            }
            let lower: Box<[u8]> = p.to_ascii_lowercase().into_bytes().into();
            let k = bigram(lower[0], lower[1]);
            d.bigrams[usize::from(k >> 6)] |= 1 << (k & 63);
            d.by_bigram.push((k, lower, d.patterns.len()));
            d.patterns.push(p.to_string());
        }
        d.by_bigram.sort_by_key(|(k, ..)| *k);
        Ok(d)
    }

    /// A detector that matches nothing.
    pub fn disabled() -> Self {
        ScannerDetector {
            bigrams: Box::new([0; 1024]),
            by_bigram: Vec::new(),
            patterns: Vec::new(),
        }
    }

    /// Index into `patterns` of the first pattern found in `hay` (already lowercased).
    fn search(&self, hay: &[u8]) -> Option<usize> {
        if self.by_bigram.is_empty() {
            return None;
        }
        for (i, w) in hay.windows(2).enumerate() {
            let k = bigram(w[0], w[1]);
            if self.bigrams[usize::from(k >> 6)] & (1 << (k & 63)) == 0 {
                continue;
            }
            let from = self.by_bigram.partition_point(|(b, ..)| *b < k);
            let rest = &hay[i..];
            for (b, p, idx) in &self.by_bigram[from..] {
                if *b != k {
                    break;
                }
                if rest.starts_with(p) {
                    return Some(*idx);
                }
            }
        }
        None
    }

    /// The pattern `user_agent` matches, if any (for the log line).
    pub fn find(&self, user_agent: &str) -> Option<&str> {
        let mut buf = [0u8; MAX_INSPECTED];
        let i = self.search(lowered(user_agent, &mut buf))?;
        self.patterns.get(i).map(String::as_str)
    }

    /// True when `user_agent` names a scanner.
    pub fn is_scanner(&self, user_agent: &str) -> bool {
        if self.by_bigram.is_empty() {
            return false;
        }
        let mut buf = [0u8; MAX_INSPECTED];
        self.search(lowered(user_agent, &mut buf)).is_some()
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
        // Patterns sharing their first two bytes (si...) are all tried.
        assert_eq!(d.find("my-siparmyknife"), Some("siparmyknife"));
        assert_eq!(d.find("sippts 4.0"), Some("sippts"));
        assert_eq!(d.find("SIVuS"), Some("sivus"));
        // A pattern at the very end of the inspected prefix.
        assert!(d.is_scanner(&format!("{}iwar", "x".repeat(MAX_INSPECTED - 4))));
        assert!(!d.is_scanner(&format!("{}iwar", "x".repeat(MAX_INSPECTED - 3))));
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
    fn short_patterns_are_refused_and_duplicates_kept_once() {
        assert_eq!(
            ScannerDetector::new(true, &[" "]).unwrap_err(),
            ScannerError::TooShort(String::new())
        );
        assert!(ScannerDetector::new(false, &["ab"]).is_err());
        assert!(ScannerDetector::new(false, &["abc"]).is_ok());
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
    fn agrees_with_a_naive_search_on_mutated_user_agents() {
        use rand::{Rng, SeedableRng};
        let d = defaults();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pieces = [
            "sip", "SIP", "friendly", "-scanner", "vax", "iwa", "r", "pp", "lsip", " ", "/1.0", "é",
        ];
        for _ in 0..20_000 {
            let ua: String =
                (0..rng.gen_range(0..8)).map(|_| pieces[rng.gen_range(0..pieces.len())]).collect();
            let lower = ua.to_ascii_lowercase();
            let naive = DEFAULT_SCANNER_AGENTS.iter().any(|p| lower.contains(p));
            assert_eq!(d.is_scanner(&ua), naive, "{ua:?}");
        }
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
