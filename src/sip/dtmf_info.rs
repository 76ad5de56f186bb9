//! DTMF carried in SIP INFO bodies (RFC 6086 transport, no standard package): the de-facto
//! `application/dtmf-relay` (`Signal=5\r\nDuration=160\r\n`, duration in milliseconds) and
//! `application/dtmf` (the key alone). Parsing never panics and bounds what it accepts.

use std::time::Duration;

/// Duration assumed when a body names none (`application/dtmf`, or `Duration` missing).
pub const DEFAULT_DURATION: Duration = Duration::from_millis(250);
/// Shortest key press played: below one 20 ms packet an event is not recognisable.
pub const MIN_DURATION: Duration = Duration::from_millis(40);
/// Longest key press played (longer ones are cut): nobody holds a key longer, and a longer one
/// would hold back the keys queued after it. Beyond 0xFFFF units the relay segments the event.
pub const MAX_DURATION: Duration = Duration::from_millis(8000);
/// Bodies longer than this are not DTMF (a real one is a few dozen bytes).
const MAX_BODY: usize = 512;

/// Content type of the bodies sipborder sends.
pub const DTMF_RELAY: &str = "application/dtmf-relay";
const DTMF: &str = "application/dtmf";

/// A key press an INFO carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfInfo {
    /// RFC 4733 event code (0–9, 10 `*`, 11 `#`, 12–15 A–D, 16 flash).
    pub event: u8,
    /// How long the key was pressed (clamped to [`MIN_DURATION`]..=[`MAX_DURATION`]).
    pub duration: Duration,
}

/// The RFC 4733 event code of a key as written in INFO bodies: one symbol (`0`–`9`, `*`, `#`,
/// `A`–`D` in either case) or the event number itself (`10`–`16`).
pub fn event_of(signal: &str) -> Option<u8> {
    let s = signal.trim();
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => match c {
            '0'..='9' => Some(c as u8 - b'0'),
            '*' => Some(10),
            '#' => Some(11),
            'A'..='D' => Some(c as u8 - b'A' + 12),
            'a'..='d' => Some(c as u8 - b'a' + 12),
            _ => None,
        },
        _ => s.parse::<u8>().ok().filter(|n| (10..=16).contains(n)),
    }
}

/// How an event code is written in a `Signal=` line (flash, which has no key, as `16`).
pub fn signal_of(event: u8) -> Option<&'static str> {
    const SYMBOLS: [&str; 17] =
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D", "16"];
    SYMBOLS.get(usize::from(event)).copied()
}

fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Whether an INFO with this Content-Type carries DTMF (the bodies [`parse`] reads).
pub fn is_dtmf(content_type: &str) -> bool {
    let t = media_type(content_type);
    t.eq_ignore_ascii_case(DTMF_RELAY) || t.eq_ignore_ascii_case(DTMF)
}

fn clamp(d: Duration) -> Duration {
    d.clamp(MIN_DURATION, MAX_DURATION)
}

/// The key press of an INFO body with `content_type`; `None` when it is not a DTMF body or names
/// no valid key.
pub fn parse(content_type: &str, body: &[u8]) -> Option<DtmfInfo> {
    if body.len() > MAX_BODY {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let t = media_type(content_type);
    if t.eq_ignore_ascii_case(DTMF) {
        // Some senders use the dtmf-relay form under this type too.
        if text.contains('=') {
            return parse_relay(text);
        }
        return Some(DtmfInfo { event: event_of(text)?, duration: DEFAULT_DURATION });
    }
    if t.eq_ignore_ascii_case(DTMF_RELAY) {
        return parse_relay(text);
    }
    None
}

fn parse_relay(text: &str) -> Option<DtmfInfo> {
    let mut event = None;
    let mut duration = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let k = k.trim();
        if k.eq_ignore_ascii_case("Signal") {
            event = Some(event_of(v)?);
        } else if k.eq_ignore_ascii_case("Duration") {
            // A bad duration is not worth losing the digit over.
            duration = v.trim().parse::<u64>().ok().map(Duration::from_millis);
        }
    }
    Some(DtmfInfo { event: event?, duration: clamp(duration.unwrap_or(DEFAULT_DURATION)) })
}

/// An `application/dtmf-relay` body for `event` lasting `duration` (whole milliseconds).
pub fn dtmf_relay_body(event: u8, duration: Duration) -> Option<String> {
    let signal = signal_of(event)?;
    Some(format!("Signal={signal}\r\nDuration={}\r\n", duration.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn dtmf_relay_bodies() {
        let p = |b: &str| parse("application/dtmf-relay", b.as_bytes());
        assert_eq!(
            p("Signal=5\r\nDuration=160\r\n"),
            Some(DtmfInfo { event: 5, duration: ms(160) })
        );
        // Spaces, LF only, other case, other order, no trailing newline.
        assert_eq!(p("duration= 200\nsignal = #"), Some(DtmfInfo { event: 11, duration: ms(200) }));
        assert_eq!(p("Signal=*\r\n"), Some(DtmfInfo { event: 10, duration: DEFAULT_DURATION }));
        assert_eq!(p("Signal=d\r\nDuration=x\r\n").map(|d| d.event), Some(15));
        assert_eq!(p("Signal=16\r\nDuration=500\r\n").map(|d| d.event), Some(16));
        assert_eq!(p("Signal=10\r\n").map(|d| d.event), Some(10));
        // Durations are clamped to what RFC 4733 can carry.
        assert_eq!(p("Signal=1\r\nDuration=5\r\n").map(|d| d.duration), Some(MIN_DURATION));
        assert_eq!(p("Signal=1\r\nDuration=99999999\r\n").map(|d| d.duration), Some(MAX_DURATION));
        for bad in
            ["", "Duration=100\r\n", "Signal=\r\n", "Signal=E\r\n", "Signal=17\r\n", "Signal=55"]
        {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dtmf_bodies_and_content_types() {
        let d = parse("Application/DTMF; charset=x", b"7\r\n");
        assert_eq!(d, Some(DtmfInfo { event: 7, duration: DEFAULT_DURATION }));
        let relay_form = parse("application/dtmf", b"Signal=3\r\nDuration=120\r\n");
        assert_eq!(relay_form, Some(DtmfInfo { event: 3, duration: ms(120) }));
        assert_eq!(parse("application/dtmf", b"77"), None);
        assert_eq!(parse("application/sdp", b"Signal=5\r\n"), None);
        assert_eq!(parse("application/dtmf-relay", &[b'S'; 600]), None);
        assert_eq!(parse("application/dtmf-relay", b"Signal=\xff5\r\n"), None);
        assert!(is_dtmf(" application/dtmf-relay ") && is_dtmf("application/dtmf"));
        assert!(!is_dtmf("application/sdp") && !is_dtmf(""));
    }

    #[test]
    fn every_event_round_trips_through_a_body() {
        for event in 0..=16u8 {
            let body = dtmf_relay_body(event, ms(130)).expect("an event with a signal");
            assert_eq!(
                parse(DTMF_RELAY, body.as_bytes()),
                Some(DtmfInfo { event, duration: ms(130) }),
                "{body}"
            );
        }
        assert_eq!(dtmf_relay_body(9, ms(100)).as_deref(), Some("Signal=9\r\nDuration=100\r\n"));
        assert_eq!(dtmf_relay_body(17, ms(100)), None);
    }
}
