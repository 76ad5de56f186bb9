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
