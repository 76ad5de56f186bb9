//! `Keepalive`: OPTIONS pings toward a trunk, CUBE style (sans-IO). `retries` consecutive
//! unanswered pings mark the trunk down; while down it is probed every `up_interval` and the
//! first answer brings it back.

use crate::config::KeepaliveConfig;
use crate::sip::headers::make;
use rsip::Method;
use std::time::Instant;

/// OPTIONS keepalive state of one trunk.
#[derive(Debug)]
pub struct Keepalive {
    cfg: KeepaliveConfig,
    uri: String,
    from: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// Reachable.
    pub up: bool,
    failures: u32,
    /// Next ping.
    pub next_at: Instant,
    in_flight: bool,
}

impl Keepalive {
    /// Pings `uri` from `from` (our address on the trunk's zone).
    pub fn new(
        now: Instant,
        cfg: KeepaliveConfig,
        uri: String,
        from: String,
        call_id: String,
        from_tag: String,
    ) -> Self {
        Keepalive {
            cfg,
            uri,
            from,
            call_id,
            from_tag,
            cseq: 0,
            up: true,
            failures: 0,
            next_at: now,
            in_flight: false,
        }
    }

    /// Call-ID of the pings.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// True when a ping should go out.
    pub fn due(&self, now: Instant) -> bool {
        !self.in_flight && self.next_at <= now
    }

    /// The next OPTIONS.
    pub fn build(&mut self) -> rsip::Request {
        self.cseq += 1;
        self.in_flight = true;
        rsip::Request {
            method: Method::Options,
            uri: rsip::Uri::try_from(self.uri.as_str()).unwrap_or_default(),
            version: rsip::Version::V2,
            headers: vec![
                make("Max-Forwards", "70"),
                make("From", format!("<{}>;tag={}", self.from, self.from_tag)),
                make("To", format!("<{}>", self.uri)),
                make("Call-ID", self.call_id.clone()),
                make("CSeq", format!("{} OPTIONS", self.cseq)),
                make("Accept", "application/sdp"),
            ]
            .into(),
            body: Vec::new(),
        }
    }

    fn schedule(&mut self, now: Instant) {
        self.in_flight = false;
        self.next_at = now + if self.up { self.cfg.interval.0 } else { self.cfg.up_interval.0 };
    }

    /// A final response arrived: returns `Some(new state)` when up/down changed. 408 and 503
    /// count as failures (an overloaded trunk says 503), anything else as an answer.
    pub fn on_response(&mut self, now: Instant, code: u16) -> Option<bool> {
        if code == 408 || code == 503 {
            return self.on_failure(now);
        }
        self.failures = 0;
        let changed = (!self.up).then_some(true);
        self.up = true;
        self.schedule(now);
        changed
    }

    /// No answer (Timer F) or a transport error: returns `Some(false)` when it marks the
    /// trunk down.
    pub fn on_failure(&mut self, now: Instant) -> Option<bool> {
        self.failures += 1;
        let changed = (self.up && self.failures >= self.cfg.retries).then_some(false);
        if changed.is_some() {
            self.up = false;
        }
        self.schedule(now);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DurationValue;
    use std::time::Duration;

    fn ka(now: Instant) -> Keepalive {
        let cfg = KeepaliveConfig {
            interval: DurationValue(Duration::from_secs(30)),
            retries: 3,
            up_interval: DurationValue(Duration::from_secs(5)),
        };
        Keepalive::new(
            now,
            cfg,
            "sip:itsp.example".into(),
            "sip:sbc@203.0.113.1".into(),
            "ka".into(),
            "t".into(),
        )
    }

    #[test]
    fn three_missed_pings_mark_down_and_one_answer_brings_it_back() {
        let t0 = Instant::now();
        let mut k = ka(t0);
        assert!(k.due(t0));
        let _ = k.build();
        assert!(!k.due(t0), "one ping at a time");
        assert_eq!(k.on_failure(t0), None);
        assert_eq!(k.on_failure(t0), None);
        assert_eq!(k.on_failure(t0), Some(false));
        assert!(!k.up);
        assert_eq!(k.next_at, t0 + Duration::from_secs(5), "probed faster while down");
        assert_eq!(k.on_response(t0, 200), Some(true));
        assert_eq!(k.next_at, t0 + Duration::from_secs(30));
    }

    #[test]
    fn any_answer_but_408_or_503_counts_as_alive() {
        let t0 = Instant::now();
        let mut k = ka(t0);
        assert_eq!(k.on_response(t0, 404), None);
        assert!(k.up);
        for _ in 0..3 {
            let _ = k.on_response(t0, 503);
        }
        assert!(!k.up);
    }
}
