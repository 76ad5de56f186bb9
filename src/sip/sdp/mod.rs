//! SDP for media anchoring: parse a body, rewrite it for the other leg, filter its codecs.
//!
//! The rewrite keeps every line sipborder does not own byte for byte and in order, so odd but
//! real bodies (repeated payload types, `a=rtpmap` without a format, `a=X-nat`, `b=TIAS`,
//! `a=ssrc`) cross the anchor unharmed, while `o=`, `c=`, `m=` ports, `a=rtcp` and ICE lines carry
//! sipborder's own address, ports and credentials. Parsing borrows the body and never panics.
//!
//! ```text
//! let offer = SessionDescription::parse(body)?;
//! let filtered = offer.filter_codecs(&["PCMA", "PCMU"])?;      // 488 on NothingLeft
//! let offer = SessionDescription::parse(&filtered)?;
//! let out = offer.rewrite(&RewritePlan { username, sess_id, sess_version, address, media: &plans });
//! ```

mod codecs;
mod direction;
mod error;
mod parse;
mod readdress;
mod rewrite;

pub use codecs::{static_encoding, NothingLeft};
pub use direction::Direction;
pub use error::{SdpError, SdpErrorReason};
pub use parse::{
    Connection, Fmtp, IceAttributes, MediaSection, Origin, Rtcp, RtpMap, SessionDescription,
};
pub use readdress::{answer_direction, continue_origin, readdress};
pub use rewrite::{EventPlan, IceLitePlan, MediaPlan, RewriteOutput, RewritePlan, RtcpPlan};

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

    /// An ICE offer from a phone behind NAT: host and server-reflexive candidates, rtcp-mux.
    pub(crate) const ICE_OFFER: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 192.168.1.20\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0\r\n\
        m=audio 50000 RTP/AVP 111 0 8 101\r\n\
        c=IN IP4 192.168.1.20\r\n\
        a=rtcp:50001 IN IP4 192.168.1.20\r\n\
        a=ice-ufrag:8hhY\r\n\
        a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n\
        a=ice-options:trickle\r\n\
        a=candidate:1 1 UDP 2130706431 192.168.1.20 50000 typ host\r\n\
        a=candidate:2 1 UDP 1694498815 198.51.100.7 61000 typ srflx raddr 192.168.1.20 rport 50000\r\n\
        a=end-of-candidates\r\n\
        a=mid:0\r\n\
        a=rtcp-mux\r\n\
        a=sendrecv\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=ssrc:2231627014 cname:4TOk42mSjXCkVIa6\r\n";

    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("vectors directory") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "sip") {
                out.push(path);
            }
        }
    }

    /// The body of a SIP message: everything after the first empty line.
    fn body_of(message: &[u8]) -> &[u8] {
        message
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .and_then(|at| message.get(at + 4..))
            .unwrap_or_default()
    }

    /// The body of one vector, by path under the vectors directory.
    pub(crate) fn vector_body(name: &str) -> Vec<u8> {
        let message = std::fs::read(Path::new(VECTORS).join(name)).expect(name);
        body_of(&message).to_vec()
    }

    /// Every SDP body in the vectors, with its file name, sorted.
    pub(crate) fn sdp_vectors() -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        walk(Path::new(VECTORS), &mut files);
        files.sort();
        files
            .into_iter()
            .filter_map(|path| {
                let message = std::fs::read(&path).expect("vector");
                let body = body_of(&message);
                body.starts_with(b"v=0").then(|| (path.display().to_string(), body.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{sdp_vectors, ICE_OFFER};
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Parse, and whatever parses goes through rewrite and the codec filter; nothing may panic,
    /// and no endpoint IP address may survive a rewrite toward the trunk.
    fn exercise(body: &[u8]) -> bool {
        let Ok(sdp) = SessionDescription::parse(body) else { return false };
        let candidates = ["1 1 UDP 2130706431 203.0.113.10 40000 typ host"];
        let ice =
            IceLitePlan { ufrag: "sbc1", pwd: "0123456789abcdefghijkl", candidates: &candidates };
        let media = [
            MediaPlan {
                port: Some(40000),
                rtcp: RtcpPlan::MuxOnly,
                ice: Some(ice),
                events: EventPlan::Keep,
            },
            MediaPlan {
                port: Some(40002),
                rtcp: RtcpPlan::Port(40009),
                ice: None,
                events: EventPlan::Keep,
            },
        ];
        let plan = RewritePlan {
            username: "sipborder",
            sess_id: 1,
            sess_version: 2,
            address: "203.0.113.10".parse().unwrap(),
            media: &media,
        };
        let out = sdp.rewrite(&plan);
        let text = String::from_utf8_lossy(&out.body);
        for a in sdp.endpoint_addresses() {
            let generated = "203.0.113.10 1 UDP 2130706431 sbc1 0123456789abcdefghijkl sipborder";
            if a.parse::<std::net::IpAddr>().is_ok() && !generated.contains(a) {
                assert!(
                    !text.contains(a),
                    "{a} leaked from\n{}\ninto\n{text}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        let _ = sdp.filter_codecs(&["PCMA", "opus", "G722"]);
        for m in sdp.media() {
            let _ = (m.is_hold(), m.effective_address(), m.fmts().count(), m.encoding_name(8));
        }
        true
    }

    #[test]
    fn mutated_vectors_never_panic_nor_leak() {
        let mut bodies: Vec<Vec<u8>> = sdp_vectors().into_iter().map(|(_, b)| b).collect();
        bodies.push(ICE_OFFER.as_bytes().to_vec());
        let mut rng = StdRng::seed_from_u64(0x5d9_0fec);
        let tokens: [&[u8]; 14] = [
            b"\r\n",
            b"\n",
            b"\r",
            b" ",
            b"/",
            b":",
            b"=",
            b"0.0.0.0",
            b"\r\nm=audio 0 RTP/AVP 0",
            b"\r\na=rtcp:",
            b"\r\nc=IN IP6 ::",
            b"\r\na=candidate:",
            b"\xff",
            b"192.168.1.1",
        ];
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut m = bodies[rng.gen_range(0..bodies.len())].clone();
            for _ in 0..rng.gen_range(1..=4) {
                if m.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..m.len());
                match rng.gen_range(0..6) {
                    0 => m[at] ^= 1 << rng.gen_range(0..8),
                    1 => {
                        m.remove(at);
                    }
                    2 => m.insert(at, rng.gen()),
                    3 => {
                        let t = tokens[rng.gen_range(0..tokens.len())];
                        m.splice(at..at, t.iter().copied());
                    }
                    4 => m.truncate(at),
                    _ => {
                        let end = (at + rng.gen_range(1..60)).min(m.len());
                        let chunk = m[at..end].to_vec();
                        m.splice(at..at, chunk);
                    }
                }
            }
            parsed += usize::from(exercise(&m));
        }
        // Most mutations must still parse, or the rewrite and filter would go unexercised.
        assert!(parsed > 5_000, "only {parsed} of 20000 mutated bodies parsed");
    }

    #[test]
    fn truncations_never_panic() {
        for (_, body) in sdp_vectors() {
            for n in 0..=body.len() {
                let _ = exercise(&body[..n]);
                let _ = exercise(&body[n..]);
            }
        }
        for garbage in
            [&b""[..], b"\0", b"v=", b"v=0", b"v=0\r\n", b"\xff\xfe\xfd", b"=\n=\n", b"m=\r\n"]
        {
            assert!(!exercise(garbage));
        }
    }
}
