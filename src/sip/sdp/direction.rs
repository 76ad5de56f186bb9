//! Media direction attributes (RFC 3264 §5.1, §6.1).

use std::fmt;

/// A media direction: `a=sendrecv`, `a=sendonly`, `a=recvonly` or `a=inactive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`, also the meaning of no direction attribute at all.
    SendRecv,
    /// `a=sendonly`: the usual way to put the other side on hold.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction named by an attribute name (`sendrecv`, ...), or `None` for any other
    /// attribute.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        // RFC 4566 attribute names are case-sensitive, but some PBXs shout; accepting either costs
        // nothing and keeps such a hold from being missed.
        if name.eq_ignore_ascii_case("sendrecv") {
            Some(Direction::SendRecv)
        } else if name.eq_ignore_ascii_case("sendonly") {
            Some(Direction::SendOnly)
        } else if name.eq_ignore_ascii_case("recvonly") {
            Some(Direction::RecvOnly)
        } else if name.eq_ignore_ascii_case("inactive") {
            Some(Direction::Inactive)
        } else {
            None
        }
    }

    /// The attribute name, without `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The same stream seen from the other end: `sendonly` ↔ `recvonly`, the others unchanged.
    /// This is what an answerer that accepts everything puts in its answer.
    pub fn mirror(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The answer to this offered direction from an answerer willing to do `local`
    /// (RFC 3264 §6.1): it may only send what the offerer receives and receive what it sends.
    pub fn answer_with(self, local: Direction) -> Direction {
        let m = self.mirror();
        Direction::from_flags(m.sends() && local.sends(), m.receives() && local.receives())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Direction::{self, *};

    #[test]
    fn mirror_swaps_send_and_receive() {
        assert_eq!(SendOnly.mirror(), RecvOnly);
        assert_eq!(RecvOnly.mirror(), SendOnly);
        assert_eq!(SendRecv.mirror(), SendRecv);
        assert_eq!(Inactive.mirror(), Inactive);
    }

    #[test]
    fn answer_narrows_to_what_both_sides_allow() {
        assert_eq!(SendOnly.answer_with(SendRecv), RecvOnly);
        assert_eq!(SendRecv.answer_with(SendOnly), SendOnly);
        assert_eq!(SendOnly.answer_with(SendOnly), Inactive);
        assert_eq!(Inactive.answer_with(SendRecv), Inactive);
        assert_eq!(RecvOnly.answer_with(SendRecv), SendOnly);
    }

    #[test]
    fn attribute_names_round_trip() {
        for d in [SendRecv, SendOnly, RecvOnly, Inactive] {
            assert_eq!(Direction::from_attribute(d.as_str()), Some(d));
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!(Direction::from_attribute("SENDONLY"), Some(SendOnly));
        assert_eq!(Direction::from_attribute("rtcp-mux"), None);
    }
}
