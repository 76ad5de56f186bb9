//! Codec policy: keep only the payloads a trunk may see, in the order of a preference list, as
//! Cisco CUBE's `voice class codec` does.

use super::parse::{LineKind, MediaSection, SessionDescription};
use super::rewrite::Out;

/// No media section has a codec of the preference list left: the caller answers 488 Not
/// Acceptable Here (RFC 3261 §21.4.26).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no media section has a codec of the preference list left")]
pub struct NothingLeft;

/// The encoding name of a static RTP payload type (RFC 3551 §6), usable without `a=rtpmap`.
pub fn static_encoding(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 | 16 | 17 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        18 => "G729",
        25 => "CelB",
        26 => "JPEG",
        28 => "nv",
        31 => "H261",
        32 => "MPV",
        33 => "MP2T",
        34 => "H263",
        _ => return None,
    })
}

fn is_telephone_event(name: &str) -> bool {
    name.eq_ignore_ascii_case("telephone-event")
}

/// A set of payload types without allocation.
#[derive(Clone, Copy, Debug, Default)]
struct PtSet([u64; 4]);

impl PtSet {
    /// Adds `pt`; false if it was already there.
    fn insert(&mut self, pt: u8) -> bool {
        let bit = 1u64 << (pt & 63);
        match self.0.get_mut(usize::from(pt >> 6)) {
            Some(word) if *word & bit == 0 => {
                *word |= bit;
                true
            }
            _ => false,
        }
    }

    fn contains(&self, pt: u8) -> bool {
        self.0.get(usize::from(pt >> 6)).is_some_and(|w| w & (1u64 << (pt & 63)) != 0)
    }
}

#[derive(Debug)]
enum Decision {
    /// Not RTP, or already rejected: the filter has no say.
    Untouched,
    /// Nothing of the preference list: port 0.
    Reject,
    /// These payload types, in this order.
    Keep { order: Vec<u8>, kept: PtSet },
}

fn decide(m: &MediaSection<'_>, preference: &[&str]) -> Decision {
    if m.is_rejected() || !m.is_rtp() {
        return Decision::Untouched;
    }
    let mut seen = PtSet::default();
    let mut ranked: Vec<(usize, u8)> = Vec::new();
    let mut events: Vec<u8> = Vec::new();
    for pt in m.payload_types() {
        // An m= line that lists a payload type twice (Digium D40) gets it once.
        if !seen.insert(pt) {
            continue;
        }
        let mut rank: Option<usize> = None;
        let mut event = false;
        let mut visit = |name: &str| {
            if is_telephone_event(name) {
                event = true;
            } else if let Some(r) = preference.iter().position(|p| p.eq_ignore_ascii_case(name)) {
                rank = Some(rank.map_or(r, |old| old.min(r)));
            }
        };
        let mut mapped = false;
        for r in m.rtpmaps_for(pt) {
            mapped = true;
            visit(r.encoding);
        }
        if !mapped {
            if let Some(name) = static_encoding(pt) {
                visit(name);
            }
        }
        match (rank, event) {
            (Some(r), _) => ranked.push((r, pt)),
            (None, true) => events.push(pt),
            (None, false) => {}
        }
    }
    if ranked.is_empty() {
        return Decision::Reject;
    }
    // Stable: payloads of equal rank (L16/16000 and L16/8000) keep the endpoint's order.
    ranked.sort_by_key(|&(r, _)| r);
    let order: Vec<u8> = ranked.into_iter().map(|(_, pt)| pt).chain(events).collect();
    let mut kept = PtSet::default();
    for &pt in &order {
        kept.insert(pt);
    }
    Decision::Keep { order, kept }
}

impl SessionDescription<'_> {
    /// Keeps, in every RTP section, only the payload types whose encoding name (case-insensitive;
    /// static payload types known without `a=rtpmap`) is in `preference`, ordered by it, plus
    /// `telephone-event` at the end.
    ///
    /// `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` of payloads not kept are dropped, and so is an
    /// `a=rtpmap` of a kept payload type that names another encoding (a repeated payload type).
    /// A section left with nothing but `telephone-event` is rejected with port 0 (RFC 3264 §6)
    /// and otherwise kept as it was. Sections that are not RTP (T.38, BFCP) or already rejected
    /// are left alone. Every other line is copied byte for byte.
    ///
    /// The result is a new body, to be parsed again for [`rewrite`](Self::rewrite). Fails with
    /// [`NothingLeft`] when the filter rejected a section and no section is left active.
    pub fn filter_codecs(&self, preference: &[&str]) -> Result<Vec<u8>, NothingLeft> {
        let decisions: Vec<Decision> = self.media.iter().map(|m| decide(m, preference)).collect();
        let active = decisions.iter().zip(&self.media).any(|(d, m)| match d {
            Decision::Keep { .. } => true,
            Decision::Untouched => !m.is_rejected(),
            Decision::Reject => false,
        });
        if !active && decisions.iter().any(|d| matches!(d, Decision::Reject)) {
            return Err(NothingLeft);
        }

        let mut out = Out::new(self.body_len, self.line_ending.bytes());
        let mut section: Option<usize> = None;
        for line in &self.lines {
            if line.kind == LineKind::Media {
                section = Some(section.map_or(0, |s| s + 1));
            }
            let decision = section.and_then(|s| decisions.get(s).zip(self.media.get(s)));
            match (line.kind, decision) {
                (LineKind::Media, Some((Decision::Reject, m))) => {
                    out.start();
                    out.push(line.text.get(..m.port_span.start).unwrap_or_default());
                    out.push(b"0");
                    out.push(line.text.get(m.port_span.end..).unwrap_or_default());
                    out.end(line.eol);
                }
                (LineKind::Media, Some((Decision::Keep { order, .. }, m))) => {
                    out.start();
                    out.push(line.text.get(..m.proto_end).unwrap_or_default());
                    for &pt in order {
                        out.push(b" ");
                        out.push_u64(pt.into());
                    }
                    out.end(line.eol);
                }
                (LineKind::Rtpmap { pt, index }, Some((Decision::Keep { kept, .. }, m))) => {
                    let wanted = m.rtpmaps.get(index).is_some_and(|r| {
                        is_telephone_event(r.encoding)
                            || preference.iter().any(|p| p.eq_ignore_ascii_case(r.encoding))
                    });
                    if kept.contains(pt) && wanted {
                        out.line(line.text, line.eol);
                    }
                }
                (LineKind::PayloadAttr { pt }, Some((Decision::Keep { kept, .. }, _))) => {
                    if kept.contains(pt) {
                        out.line(line.text, line.eol);
                    }
                }
                _ => out.line(line.text, line.eol),
            }
        }
        Ok(out.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::vector_body;
    use super::*;

    fn filter(body: &[u8], preference: &[&str]) -> Result<String, NothingLeft> {
        let sdp = SessionDescription::parse(body).unwrap();
        let out = sdp.filter_codecs(preference)?;
        SessionDescription::parse(&out).expect("filtered body parses");
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn keeps_pcma_and_telephone_event() {
        let body = vector_body("seed002/d2_01_invite_microsip.sip");
        let s = filter(&body, &["G729", "pcma"]).unwrap();
        assert!(s.contains("m=audio 4008 RTP/AVP 8 101\r\n"), "{s}");
        assert!(!s.contains("a=rtpmap:0 "), "{s}");
        for kept in ["a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"]
        {
            assert!(s.contains(kept), "{kept} missing in\n{s}");
        }
        // Everything else is byte for byte what came in, minus the one rtpmap.
        let original = String::from_utf8(body).unwrap();
        let expected = original
            .replace("RTP/AVP 8 0 101", "RTP/AVP 8 101")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "");
        assert_eq!(s, expected);
    }

    #[test]
    fn orders_by_preference() {
        let body = vector_body("seed002/d2_01_invite_microsip.sip");
        let s = filter(&body, &["PCMU", "PCMA"]).unwrap();
        assert!(s.contains("m=audio 4008 RTP/AVP 0 8 101\r\n"), "{s}");
    }

    #[test]
    fn digium_repeated_payload_type() {
        let body = vector_body("seed003/001_voxlink_invite_102_digium_d40_sdp.sip");
        let s = filter(&body, &["pcma", "L16"]).unwrap();
        assert!(s.contains("m=audio 4062 RTP/AVP 8 58 118 96\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:58 L16/16000\r\n") && s.contains("a=rtpmap:118 L16/8000\r\n"));
        for gone in ["L16-256", "G722", "PCMU", "G729", "G726"] {
            assert!(!s.contains(gone), "{gone} in\n{s}");
        }
        assert!(s.contains("a=fmtp:96 0-15\r\n"));
    }

    #[test]
    fn static_payloads_without_rtpmap_and_orphan_rtpmap() {
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 18 0 13 96\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:* trr-int 5\r\n\
                     a=rtpmap:96 opus/48000/2\r\na=fmtp:18 annexb=no\r\n";
        let s = filter(body, &["CN", "G729"]).unwrap();
        assert!(
            s.contains(
                "m=audio 4000 RTP/AVP 13 18\r\na=rtcp-fb:* trr-int 5\r\na=fmtp:18 annexb=no\r\n"
            ),
            "{s}"
        );

        let body =
            vector_body("seed003/003_pjsipwiki_invite_sipp_eggowaffles_unknown_endpoint.sip");
        let s = filter(&body, &["PCMU"]).unwrap();
        assert!(
            s.contains("m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"),
            "{s}"
        );
        assert_eq!(filter(&body, &["PCMA"]), Err(NothingLeft));
    }

    #[test]
    fn section_with_nothing_left_is_rejected() {
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                     m=video 4002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42e01f\r\n";
        let s = filter(body, &["PCMA"]).unwrap();
        assert!(s.contains("m=audio 4000 RTP/AVP 8 101\r\n"), "{s}");
        // Rejected, otherwise untouched (RFC 3264 keeps the formats of a rejected stream).
        assert!(s.ends_with("m=video 0 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42e01f\r\n"));
        let sdp = SessionDescription::parse(s.as_bytes()).unwrap();
        assert!(!sdp.media()[0].is_rejected() && sdp.media()[1].is_rejected());
    }

    #[test]
    fn nothing_left_anywhere_is_an_error() {
        let body = vector_body("seed002/d2_01_invite_microsip.sip");
        assert_eq!(filter(&body, &["G729"]), Err(NothingLeft));
        assert_eq!(filter(&body, &[]), Err(NothingLeft));
        assert_eq!(
            NothingLeft.to_string(),
            "no media section has a codec of the preference list left"
        );
        // The CUCM answer's video is already rejected, so only audio counts.
        let body = vector_body("seed002/d2_21_ack_with_answer.sip");
        assert_eq!(filter(&body, &["G722"]), Err(NothingLeft));
        let s = filter(&body, &["PCMU"]).unwrap();
        assert!(s.contains("m=video 0 RTP/AVP 31 34 96 97\r\n"), "{s}");
    }

    #[test]
    fn non_rtp_sections_are_left_alone() {
        let body = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n\
                    m=image 4002 udptl t38\na=T38FaxVersion:0\n";
        let s = filter(body.as_bytes(), &["PCMA"]).unwrap();
        assert_eq!(s, body.replace("m=audio 4000", "m=audio 0"));
    }

    #[test]
    fn static_table() {
        assert_eq!(static_encoding(0), Some("PCMU"));
        assert_eq!(static_encoding(8), Some("PCMA"));
        assert_eq!(static_encoding(9), Some("G722"));
        assert_eq!(static_encoding(18), Some("G729"));
        assert_eq!(static_encoding(3), Some("GSM"));
        assert_eq!(static_encoding(4), Some("G723"));
        assert_eq!(static_encoding(13), Some("CN"));
        assert_eq!(static_encoding(96), None);
        let mut set = PtSet::default();
        assert!(set.insert(255) && set.insert(0) && !set.insert(255));
        assert!(set.contains(255) && set.contains(0) && !set.contains(64));
    }
}
