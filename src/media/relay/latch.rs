//! Which source an endpoint accepts media from, and where media for that side is sent.
//!
//! Strict: only the address the SDP named. Learn (endpoint behind NAT): the first RTP/RTCP source
//! seen inside a short window after open/update wins; afterwards a different source is accepted
//! only if it carries the SSRC already flowing (NAT rebinding), which an off-path injector
//! (RTPBleed) cannot know. An ICE-authenticated binding request moves the latch in either mode.

use super::{LatchMode, PeerSpec};
use std::net::SocketAddr;
use std::time::Instant;

/// What a datagram offers the latch to judge it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    Rtp { ssrc: u32 },
    Rtcp { ssrc: u32 },
    Other,
}

/// The latch's verdict on a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Accept,
    /// Accepted, and the peer (destination) moved to the source.
    Latched,
    Reject,
}

#[derive(Debug, Clone)]
pub(crate) struct Latch {
    spec: PeerSpec,
    window_end: Option<Instant>,
    latched: Option<SocketAddr>,
    rtp_ssrc: Option<u32>,
    rtcp_ssrc: Option<u32>,
}

impl Latch {
    pub(crate) fn new(spec: PeerSpec, now: Instant) -> Latch {
        let window_end = match spec.mode {
            LatchMode::Strict => None,
            LatchMode::Learn { window } => Some(now + window),
        };
        Latch { spec, window_end, latched: None, rtp_ssrc: None, rtcp_ssrc: None }
    }

    /// The remote changed (re-INVITE): start over, with a fresh learning window.
    pub(crate) fn reset(&mut self, spec: PeerSpec, now: Instant) {
        *self = Latch::new(spec, now);
    }

    /// Where media for this side goes.
    pub(crate) fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.spec.addr)
    }

    #[inline]
    pub(crate) fn admit(&mut self, src: SocketAddr, probe: Probe, now: Instant) -> Admit {
        if self.latched == Some(src) {
            self.note_ssrc(probe);
            return Admit::Accept;
        }
        let verdict = match self.spec.mode {
            LatchMode::Strict => {
                if self.latched.is_none() && self.spec.addr == Some(src) {
                    Admit::Accept
                } else {
                    Admit::Reject
                }
            }
            LatchMode::Learn { .. } => self.learn(src, probe, now),
        };
        if verdict != Admit::Reject {
            self.note_ssrc(probe);
        }
        verdict
    }

    #[cold]
    fn learn(&mut self, src: SocketAddr, probe: Probe, now: Instant) -> Admit {
        let media = !matches!(probe, Probe::Other);
        if self.latched.is_none() {
            let in_window = self.window_end.is_some_and(|end| now < end);
            // Past the window only the SDP address may still start the stream: anything else
            // is exactly the late stranger RTPBleed relies on.
            if (in_window && media) || self.spec.addr == Some(src) {
                self.latched = Some(src);
                return Admit::Latched;
            }
            return Admit::Reject;
        }
        let same_source = match probe {
            Probe::Rtp { ssrc } => self.rtp_ssrc == Some(ssrc),
            Probe::Rtcp { ssrc } => self.rtcp_ssrc == Some(ssrc),
            Probe::Other => false,
        };
        if same_source {
            self.latched = Some(src);
            Admit::Latched
        } else {
            Admit::Reject
        }
    }

    #[inline]
    fn note_ssrc(&mut self, probe: Probe) {
        match probe {
            Probe::Rtp { ssrc } => self.rtp_ssrc = Some(ssrc),
            Probe::Rtcp { ssrc } => self.rtcp_ssrc = Some(ssrc),
            Probe::Other => {}
        }
    }

    /// ICE nominated `src` (authenticated binding request). `force`: USE-CANDIDATE was present;
    /// without it only an endpoint with no peer yet is latched. Returns whether the peer moved.
    pub(crate) fn nominate(&mut self, src: SocketAddr, force: bool) -> bool {
        if self.latched == Some(src) {
            return false;
        }
        if force || self.destination().is_none() {
            self.latched = Some(src);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn strict_accepts_only_sdp_address() {
        let now = Instant::now();
        let mut l = Latch::new(PeerSpec::strict(a("192.0.2.1:4000")), now);
        assert_eq!(l.admit(a("192.0.2.1:4000"), Probe::Rtp { ssrc: 1 }, now), Admit::Accept);
        assert_eq!(l.admit(a("192.0.2.1:4001"), Probe::Rtp { ssrc: 1 }, now), Admit::Reject);
        assert_eq!(l.destination(), Some(a("192.0.2.1:4000")));
    }

    #[test]
    fn learn_first_source_then_ssrc_relatch() {
        let now = Instant::now();
        let spec = PeerSpec::learn(Some(a("10.0.0.5:4000")), Duration::from_secs(2));
        let mut l = Latch::new(spec, now);
        assert_eq!(l.destination(), Some(a("10.0.0.5:4000")));
        let nat = a("198.51.100.9:31000");
        assert_eq!(l.admit(nat, Probe::Rtp { ssrc: 42 }, now), Admit::Latched);
        assert_eq!(l.destination(), Some(nat));
        let other = a("203.0.113.66:5000");
        assert_eq!(l.admit(other, Probe::Rtp { ssrc: 7 }, now), Admit::Reject);
        let rebound = a("198.51.100.9:31002");
        let later = now + Duration::from_secs(60);
        assert_eq!(l.admit(rebound, Probe::Rtp { ssrc: 42 }, later), Admit::Latched);
        assert_eq!(l.destination(), Some(rebound));
        assert_eq!(l.admit(nat, Probe::Rtp { ssrc: 43 }, later), Admit::Reject);
    }

    #[test]
    fn learn_window_expires() {
        let now = Instant::now();
        let sdp = a("192.0.2.1:4000");
        let mut l = Latch::new(PeerSpec::learn(Some(sdp), Duration::from_millis(500)), now);
        let late = now + Duration::from_secs(1);
        assert_eq!(l.admit(a("203.0.113.66:5000"), Probe::Rtp { ssrc: 1 }, late), Admit::Reject);
        assert_eq!(l.admit(sdp, Probe::Rtp { ssrc: 1 }, late), Admit::Latched);
        // Garbage inside the window does not latch.
        let mut l = Latch::new(PeerSpec::learn(None, Duration::from_secs(1)), now);
        assert_eq!(l.admit(a("203.0.113.66:5000"), Probe::Other, now), Admit::Reject);
        assert_eq!(l.destination(), None);
    }

    #[test]
    fn ice_nomination() {
        let now = Instant::now();
        let mut l = Latch::new(PeerSpec::strict(a("192.0.2.1:4000")), now);
        assert!(!l.nominate(a("192.0.2.9:9"), false));
        assert!(l.nominate(a("192.0.2.9:9"), true));
        assert_eq!(l.admit(a("192.0.2.9:9"), Probe::Rtp { ssrc: 1 }, now), Admit::Accept);
        assert_eq!(l.admit(a("192.0.2.1:4000"), Probe::Rtp { ssrc: 1 }, now), Admit::Reject);
    }
}
