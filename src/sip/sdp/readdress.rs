//! SDP bodies sipborder hands to its own relay when it joins two calls (attended transfer):
//! what one call told the PBX becomes, readdressed to the relay's bind address, what the other
//! call's relay sends to. And the direction of a locally answered offer.

use super::Direction;

/// `body` with every `c=` address and every `a=rtcp:` address set to `ip`, and the ICE lines
/// dropped (the relay talks to itself: no connectivity checks). Other lines are kept as they
/// are, with the body's own line ends.
pub fn readdress(body: &[u8], ip: std::net::IpAddr) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(body.len());
    for line in text.lines() {
        if line.starts_with("a=candidate:")
            || line.starts_with("a=ice-")
            || line.starts_with("a=end-of-candidates")
            || line.is_empty()
        {
            continue;
        }
        if line.starts_with("c=") {
            out.push_str(&format!("c=IN {family} {ip}"));
        } else if let Some(rest) = line.strip_prefix("a=rtcp:") {
            let port = rest.split_whitespace().next().unwrap_or("");
            if rest.contains(" IN ") {
                out.push_str(&format!("a=rtcp:{port} IN {family} {ip}"));
            } else {
                out.push_str(line);
            }
        } else {
            out.push_str(line);
        }
        out.push_str(eol);
    }
    out.into_bytes()
}

/// `new` (another endpoint's SDP) under the `o=` line of `prev` (the SDP last sent on the leg)
/// with its version one higher: to the leg it is the same session, changed (RFC 3264 §8).
/// `new` unchanged when either has no usable origin.
pub fn continue_origin(prev: &[u8], new: &[u8]) -> Vec<u8> {
    let prev = String::from_utf8_lossy(prev);
    let Some(origin) = prev.lines().find_map(|l| l.strip_prefix("o=")) else {
        return new.to_vec();
    };
    let mut fields: Vec<&str> = origin.split_whitespace().collect();
    let Some(version) = fields.get(2).and_then(|v| v.parse::<u64>().ok()) else {
        return new.to_vec();
    };
    let bumped = version.wrapping_add(1).to_string();
    fields[2] = &bumped;
    let line = format!("o={}", fields.join(" "));
    let text = String::from_utf8_lossy(new);
    if !text.lines().any(|l| l.starts_with("o=")) {
        return new.to_vec();
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + 16);
    for l in text.lines() {
        if l.is_empty() {
            continue;
        }
        out.push_str(if l.starts_with("o=") { &line } else { l });
        out.push_str(eol);
    }
    out.into_bytes()
}

/// `ours` (the SDP last sent on a leg) as the answer to `offer` from that leg: its direction
/// attributes set to what answers the offer's (RFC 3264 §6.1: sendonly → recvonly, inactive →
/// inactive), so a hold through a joined call is answered correctly.
pub fn answer_direction(ours: &[u8], offer: &[u8]) -> Vec<u8> {
    let offered = String::from_utf8_lossy(offer)
        .lines()
        .filter_map(|l| l.strip_prefix("a=").and_then(Direction::from_attribute))
        .next_back()
        .unwrap_or(Direction::SendRecv);
    let answer = offered.answer_with(Direction::SendRecv);
    let text = String::from_utf8_lossy(ours);
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(ours.len());
    let mut written = false;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if line.strip_prefix("a=").and_then(Direction::from_attribute).is_some() {
            if !written {
                out.push_str("a=");
                out.push_str(answer.as_str());
                out.push_str(eol);
                written = true;
            }
            continue;
        }
        out.push_str(line);
        out.push_str(eol);
    }
    if !written && answer != Direction::SendRecv {
        out.push_str("a=");
        out.push_str(answer.as_str());
        out.push_str(eol);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "v=0\r\no=sipborder 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\nc=IN IP4 10.0.0.1\r\na=rtcp:30001 IN IP4 10.0.0.1\r\na=ice-ufrag:abcd\r\na=candidate:1 1 UDP 1 10.0.0.1 30000 typ host\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    #[test]
    fn every_address_names_the_relay_and_ice_is_gone() {
        let out =
            String::from_utf8(readdress(OURS.as_bytes(), "127.0.0.1".parse().unwrap())).unwrap();
        assert!(!out.contains("c=IN IP4 10.0.0.1"), "{out}");
        assert_eq!(out.matches("c=IN IP4 127.0.0.1\r\n").count(), 2, "{out}");
        assert!(out.contains("a=rtcp:30001 IN IP4 127.0.0.1\r\n"), "{out}");
        assert!(out.contains("o=sipborder 1 2 IN IP4 10.0.0.1\r\n"), "origin kept: {out}");
        assert!(!out.contains("ice-") && !out.contains("candidate"), "{out}");
        assert!(out.contains("m=audio 30000 RTP/AVP 0 101\r\n"));
    }

    #[test]
    fn another_partys_sdp_keeps_the_legs_origin_with_the_version_bumped() {
        let theirs = "v=0\r\no=- 77 3 IN IP4 198.51.100.30\r\ns=-\r\nc=IN IP4 198.51.100.30\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
        let out = String::from_utf8(continue_origin(OURS.as_bytes(), theirs.as_bytes())).unwrap();
        assert!(out.starts_with("v=0\r\no=sipborder 1 3 IN IP4 10.0.0.1\r\ns=-\r\n"), "{out}");
        assert!(out.contains("c=IN IP4 198.51.100.30\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"));
        assert_eq!(continue_origin(b"v=0\r\n", theirs.as_bytes()), theirs.as_bytes());
    }

    #[test]
    fn a_hold_offer_is_answered_recvonly_and_a_resume_sendrecv() {
        let hold = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
        let out = String::from_utf8(answer_direction(OURS.as_bytes(), hold.as_bytes())).unwrap();
        assert!(out.contains("a=recvonly\r\n") && !out.contains("a=sendrecv"), "{out}");
        let resume = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let out = String::from_utf8(answer_direction(OURS.as_bytes(), resume.as_bytes())).unwrap();
        assert!(out.contains("a=sendrecv\r\n"), "{out}");
        let inactive = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n";
        let no_dir = OURS.replace("a=sendrecv\r\n", "");
        let out =
            String::from_utf8(answer_direction(no_dir.as_bytes(), inactive.as_bytes())).unwrap();
        assert!(out.ends_with("a=inactive\r\n"), "{out}");
    }
}
