//! Topology hiding: which headers belong to a leg (the B2BUA writes them itself on each leg and
//! never copies them across) and the copy of everything else from one leg's message to the other's.

use crate::sip::headers::name_value;
use crate::sip::message::SipMsg;
use rsip::Header;

/// Headers the B2BUA owns on each leg. A policy rule may not touch them (it would break the
/// leg's identity or the routing back to sipborder), and they are never copied across.
pub const B2BUA_OWNED: &[&str] = &[
    "Via",
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Contact",
    "Route",
    "Record-Route",
    "Max-Forwards",
    "Content-Length",
];

/// Hop-by-hop headers that describe one leg's transactions and are rebuilt per leg when needed
/// (RSeq/RAck numbering is per leg; credentials are per hop).
const PER_LEG: &[&str] = &[
    "RSeq",
    "RAck",
    "Authorization",
    "Proxy-Authorization",
    "Proxy-Require",
    // RFC 4028 timers are negotiated per leg.
    "Session-Expires",
    "Min-SE",
];

/// True when `name` is owned by the B2BUA.
pub fn is_owned(name: &str) -> bool {
    B2BUA_OWNED.iter().any(|o| o.eq_ignore_ascii_case(name))
}

fn is_per_leg(name: &str) -> bool {
    PER_LEG.iter().any(|o| o.eq_ignore_ascii_case(name))
}

/// Copies the headers of `src` that may cross to the other leg into `dst`, in order.
/// `skip` names further headers the caller rebuilds itself (e.g. Supported/Require for 100rel).
pub fn copy_crossing(src: &SipMsg, dst: &mut Vec<Header>, skip: &[&str]) {
    for h in src.headers().iter() {
        let n = name_value(h).0;
        if is_owned(n) || is_per_leg(n) || skip.iter().any(|s| s.eq_ignore_ascii_case(n)) {
            continue;
        }
        dst.push(h.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_names_are_case_insensitive() {
        assert!(is_owned("call-id"));
        assert!(is_owned("RECORD-ROUTE"));
        assert!(!is_owned("P-Asserted-Identity"));
    }
}
