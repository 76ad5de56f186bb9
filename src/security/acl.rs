//! Zone ACLs: the source networks a zone accepts messages from.
//!
//! The trunk zone typically accepts only the ITSP's signalling addresses; everything else is
//! dropped before it is parsed, silently (an answer would confirm to a scanner that something
//! listens) and counted. An empty ACL allows every source, so a zone without one behaves as
//! before ACLs existed.
//!
//! Networks are written `198.51.100.0/24`, `203.0.113.7` (a single host), `2001:db8::/32` or
//! `::1/128`. A network with host bits set (`198.51.100.7/24`) is refused rather than silently
//! widened: it is usually a typo for either the host or the network, and guessing wrong opens the
//! zone. Sources arriving on a dual-stack socket as IPv4-mapped IPv6 (`::ffff:192.0.2.1`) are
//! matched as the IPv4 address they carry, and an IPv4-mapped network in the list is stored as
//! its IPv4 equivalent, so either spelling works.

use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a network could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// Not an address, nor `address/prefix`.
    #[error(
        "bad network {0:?}: write an address or address/prefix, e.g. 198.51.100.0/24, 203.0.113.7, 2001:db8::/32"
    )]
    BadAddress(String),
    /// The prefix length is not a number within the address family's width.
    #[error("bad prefix length in {text:?}: a number from 0 to {max}")]
    BadPrefix {
        /// The network as written.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits past the prefix length are set.
    #[error("{text:?} has host bits set: write {network} for the network, or the address alone for one host")]
    HostBits {
        /// The network as written.
        text: String,
        /// The network with the host bits cleared.
        network: Network,
    },
}

/// One IPv4 or IPv6 network: an address whose bits past `prefix` are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0)
}

impl Network {
    /// The network of `addr`/`prefix`; `None` when the prefix is too long for the family or
    /// host bits are set.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Network> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        let n = Network { addr, prefix }.normalized();
        (n.addr == Network::truncate(n.addr, n.prefix)).then_some(n)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` lies in this network (IPv4-mapped IPv6 sources count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(a) & mask4(self.prefix)) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(a) & mask6(self.prefix)) == u128::from(n),
            _ => false,
        }
    }

    fn truncate(addr: IpAddr, prefix: u8) -> IpAddr {
        match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask6(prefix))),
        }
    }

    /// `::ffff:a.b.c.d/p` (p >= 96) as `a.b.c.d/(p-96)`: sources are canonicalized the same way,
    /// so a mapped network written in the config still matches.
    fn normalized(self) -> Network {
        match self.addr {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Network { addr: IpAddr::V4(v4), prefix: self.prefix - 96 },
                None => self,
            },
            _ => self,
        }
    }
}

impl FromStr for Network {
    type Err = AclError;

    fn from_str(text: &str) -> Result<Network, AclError> {
        let s = text.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
        let addr: IpAddr = addr.parse().map_err(|_| AclError::BadAddress(text.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| AclError::BadPrefix { text: text.to_string(), max })?,
            Some(_) => return Err(AclError::BadPrefix { text: text.to_string(), max }),
        };
        Network::new(addr, prefix).ok_or_else(|| AclError::HostBits {
            text: text.to_string(),
            network: Network { addr: Network::truncate(addr, prefix), prefix }.normalized(),
        })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Network;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a network like 198.51.100.0/24, 203.0.113.7 or 2001:db8::/32")
            }
            // Checked inside the visitor so serde_yaml marks the bad value, not its key.
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Network, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// The networks a zone accepts sources from; empty allows every source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    networks: Vec<Network>,
    /// (network, mask) pairs per family, so a check is a mask and a compare per entry.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Acl {
    /// An ACL of `networks` (duplicates are kept once).
    pub fn new(networks: impl IntoIterator<Item = Network>) -> Acl {
        let mut acl = Acl::default();
        for n in networks {
            if acl.networks.contains(&n) {
                continue;
            }
            acl.networks.push(n);
            match n.addr {
                IpAddr::V4(a) => acl.v4.push((u32::from(a), mask4(n.prefix))),
                IpAddr::V6(a) => acl.v6.push((u128::from(a), mask6(n.prefix))),
            }
        }
        acl
    }

    /// Parses each of `items` as a [`Network`]; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Acl, AclError> {
        let nets = items.iter().map(|s| s.as_ref().parse()).collect::<Result<Vec<_>, _>>()?;
        Ok(Acl::new(nets))
    }

    /// True when messages from `ip` are accepted: the ACL is empty or a network contains it.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.networks.is_empty() {
            return true;
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|(n, m)| a & m == *n)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|(n, m)| a & m == *n)
            }
        }
    }

    /// True when the ACL allows every source.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The networks, in the order given.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }
}

impl<'de> Deserialize<'de> for Acl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Network>::deserialize(d).map(Acl::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_hosts_and_ipv6() {
        let n: Network = "198.51.100.0/24".parse().unwrap();
        assert_eq!((n.addr(), n.prefix()), (ip("198.51.100.0"), 24));
        let h: Network = "203.0.113.7".parse().unwrap();
        assert_eq!(h.prefix(), 32);
        let l: Network = "::1/128".parse().unwrap();
        assert_eq!((l.addr(), l.prefix()), (ip("::1"), 128));
        let b: Network = "[2001:db8::]/32".parse().unwrap();
        assert_eq!(b.to_string(), "2001:db8::/32");
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert_eq!(" 10.0.0.0/8 ".parse::<Network>().unwrap().prefix(), 8);
    }

    #[test]
    fn refuses_bad_networks_with_a_useful_message() {
        for bad in
            ["", "/24", "198.51.100", "198.51.100.0/", "example.com", "1.2.3.4/+8", "1.2.3.4/ 8"]
        {
            assert!(bad.parse::<Network>().is_err(), "{bad:?}");
        }
        assert!(matches!(
            "198.51.100.0/33".parse::<Network>(),
            Err(AclError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!("::/129".parse::<Network>(), Err(AclError::BadPrefix { max: 128, .. })));
        let e = "198.51.100.7/24".parse::<Network>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"198.51.100.7/24\" has host bits set: write 198.51.100.0/24 for the network, or the address alone for one host"
        );
    }

    #[test]
    fn empty_acl_allows_everything() {
        let acl = Acl::default();
        assert!(acl.allows(ip("192.0.2.1")) && acl.allows(ip("2001:db8::1")));
        assert!(Acl::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn allows_only_listed_networks() {
        let acl = Acl::parse(&["198.51.100.0/24", "203.0.113.7", "2001:db8:5::/48"]).unwrap();
        assert!(acl.allows(ip("198.51.100.0")));
        assert!(acl.allows(ip("198.51.100.255")));
        assert!(!acl.allows(ip("198.51.101.0")));
        assert!(acl.allows(ip("203.0.113.7")));
        assert!(!acl.allows(ip("203.0.113.8")));
        assert!(acl.allows(ip("2001:db8:5:ffff::1")));
        assert!(!acl.allows(ip("2001:db8:6::1")));
        // A v4 network never matches a v6 source and the other way round.
        assert!(!acl.allows(ip("::1")));
    }

    #[test]
    fn ipv4_mapped_sources_and_networks_match_as_ipv4() {
        let acl = Acl::parse(&["198.51.100.0/24"]).unwrap();
        assert!(acl.allows(ip("::ffff:198.51.100.9")));
        assert!(!acl.allows(ip("::ffff:198.51.101.9")));
        let mapped = Acl::parse(&["::ffff:192.0.2.0/120"]).unwrap();
        assert_eq!(mapped.networks()[0].to_string(), "192.0.2.0/24");
        assert!(mapped.allows(ip("192.0.2.200")));
    }

    #[test]
    fn deserializes_from_yaml_with_the_bad_value_named() {
        let acl: Acl = serde_yaml::from_str("[198.51.100.0/24, 203.0.113.7, '::1/128']").unwrap();
        assert_eq!(acl.networks().len(), 3);
        let e = serde_yaml::from_str::<Acl>("[198.51.100.0/24, 10.1.1.1/8]").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn duplicates_are_kept_once() {
        let acl = Acl::parse(&["192.0.2.1", "192.0.2.1/32"]).unwrap();
        assert_eq!(acl.networks().len(), 1);
    }
}
