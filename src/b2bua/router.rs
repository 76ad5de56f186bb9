//! The routing table (dial-peer style): which trunk(s) a new call or out-of-dialog request goes to.

use crate::config::{
    Config, KeepaliveConfig, MediaMode, RegisterConfig, RegisterProxyConfig, SessionTimerConfig,
    TransportKind, ZoneKind,
};
use crate::policy::causes::CauseMap;
use crate::policy::PolicyChain;
use crate::sip::message::Transport;
use crate::transport::flow::{ZoneAddress, ZoneId};
use crate::trunk::digest_client::Account;
use crate::trunk::digest_server::DigestServer;
use regex::Regex;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Index of a trunk in [`Router::trunks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrunkId(pub u16);

/// A zone as the signalling core sees it.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Configured name.
    pub name: String,
    /// Address written into Via/Contact on this zone.
    pub address: ZoneAddress,
    /// IPs this zone listens on (a Request-URI naming one of them is addressed to sipborder).
    pub local_ips: Vec<IpAddr>,
    /// IP relay sockets bind on.
    pub media_ip: IpAddr,
    /// IP written into SDP toward this zone.
    pub media_sdp_ip: IpAddr,
    /// Relay port range (inclusive).
    pub media_ports: (u16, u16),
    /// Which way it faces.
    pub kind: ZoneKind,
    /// Digest server challenging this zone's unknown peers.
    pub auth: Option<Arc<DigestServer>>,
    /// Session timer settings of legs in this zone.
    pub session_timer: Option<SessionTimerConfig>,
    /// Registration proxy: settings and the registrar trunk.
    pub register_proxy: Option<(RegisterProxyConfig, TrunkId)>,
}

/// A SIP peer calls are sent to.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// Configured name.
    pub name: String,
    /// Zone it is reached through.
    pub zone: ZoneId,
    /// Signalling address.
    pub addr: SocketAddr,
    /// Transport toward it.
    pub transport: Transport,
    /// Host written in Request-URI and To toward it.
    pub domain: String,
    /// Digest account answering its challenges.
    pub account: Option<Account>,
    /// Only answer challenges of this realm.
    pub auth_realm: Option<String>,
    /// Registration settings.
    pub register: Option<RegisterConfig>,
    /// OPTIONS keepalive settings.
    pub keepalive: Option<KeepaliveConfig>,
    /// Cause tables toward this peer.
    pub causes: Arc<CauseMap>,
    /// Add Reason headers toward it.
    pub send_reason: bool,
    /// Pass its Reason headers on.
    pub pass_reason: bool,
    /// Policies run on every message exchanged with it.
    pub policies: PolicyChain,
    /// REFER handling toward it.
    pub refer: crate::config::ReferMode,
    /// How it wants DTMF.
    pub dtmf: crate::config::DtmfMode,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Configured name.
    pub name: String,
    /// Zone the call must come from.
    pub from: ZoneId,
    prefix: Option<String>,
    user: Option<Regex>,
    /// Trunks to try in order.
    pub targets: Vec<TrunkId>,
    /// Media handling of calls on this route.
    pub media: MediaMode,
}

impl Route {
    fn matches(&self, zone: ZoneId, user: &str) -> bool {
        zone == self.from
            && self.prefix.as_deref().is_none_or(|p| user.starts_with(p))
            && self.user.as_ref().is_none_or(|r| r.is_match(user))
    }
}

/// Zones, trunks and routes resolved to indices, built once per (re)load.
#[derive(Debug, Clone)]
pub struct Router {
    /// Zones by [`ZoneId`].
    pub zones: Vec<Zone>,
    /// Trunks by [`TrunkId`].
    pub trunks: Vec<Trunk>,
    routes: Vec<Route>,
    default_media: MediaMode,
    /// The edge guard (call admission, strikes); `None` in unit tests without one. Set by
    /// the server when it builds the router, so a reload swaps both together.
    pub guard: Option<Arc<crate::security::EdgeGuard>>,
}

/// Zones that bind relay sockets on the same IP and did not choose their own range would fight
/// over the same ports: the global range is split evenly between them, in config order.
fn split_shared_default_ranges(cfg: &Config, zones: &mut [Zone]) {
    let explicit =
        |i: usize| cfg.zones.get(i).and_then(|z| z.media.as_ref()).and_then(|m| m.ports).is_some();
    let mut seen: Vec<IpAddr> = Vec::new();
    for i in 0..zones.len() {
        let ip = zones[i].media_ip;
        if explicit(i) || seen.contains(&ip) {
            continue;
        }
        seen.push(ip);
        let sharing: Vec<usize> =
            (0..zones.len()).filter(|&j| !explicit(j) && zones[j].media_ip == ip).collect();
        if sharing.len() < 2 {
            continue;
        }
        let (lo, hi) = (u32::from(cfg.media.ports.low), u32::from(cfg.media.ports.high));
        let per = (hi - lo + 1) / sharing.len() as u32 / 2 * 2;
        for (k, &j) in sharing.iter().enumerate() {
            let start = lo + per * k as u32;
            let end = start + per - 1;
            if let (Ok(a), Ok(b)) = (u16::try_from(start), u16::try_from(end)) {
                zones[j].media_ports = (a, b);
            }
        }
    }
}

impl Router {
    /// Builds the table from a validated config (unknown names were rejected by validation;
    /// anything unresolved here is skipped rather than trusted).
    pub fn from_config(cfg: &Config) -> Router {
        let zones: Vec<Zone> = cfg
            .zones
            .iter()
            .map(|z| {
                let listen_ip = z.udp.or(z.tcp).map(|a| a.ip());
                let host = z
                    .advertise
                    .or(listen_ip)
                    .map(|ip| ip.to_string())
                    .unwrap_or_else(|| "127.0.0.1".to_string());
                let mut local_ips: Vec<IpAddr> =
                    [z.udp, z.tcp].iter().flatten().map(|a| a.ip()).collect();
                local_ips.extend(z.advertise);
                local_ips.dedup();
                let media_ip = z
                    .media
                    .as_ref()
                    .and_then(|m| m.address)
                    .or(listen_ip)
                    .unwrap_or(IpAddr::from([127, 0, 0, 1]));
                let media_sdp_ip =
                    z.media.as_ref().and_then(|m| m.advertise).or(z.advertise).unwrap_or(media_ip);
                let range = z.media.as_ref().and_then(|m| m.ports).unwrap_or(cfg.media.ports);
                Zone {
                    name: z.name.clone(),
                    address: ZoneAddress {
                        host,
                        udp_port: z.udp.map(|a| a.port()),
                        tcp_port: z.tcp.map(|a| a.port()),
                    },
                    local_ips,
                    media_ip,
                    media_sdp_ip,
                    media_ports: (range.low, range.high),
                    kind: z.kind,
                    session_timer: z.session_timer.clone(),
                    register_proxy: z.register_proxy.as_ref().and_then(|rp| {
                        let t = cfg.trunks.iter().position(|t| t.name == rp.registrar)?;
                        Some((rp.clone(), TrunkId(t as u16)))
                    }),
                    auth: z.auth.as_ref().and_then(|a| {
                        let users = a.users().ok()?;
                        // One secret and epoch per config load, shared by every shard through
                        // the router: a nonce made by one shard verifies in any other.
                        let secret: [u8; 32] = rand::random();
                        Some(Arc::new(DigestServer::new(
                            a.realm.clone(),
                            users,
                            a.nonce_ttl.0,
                            secret,
                            std::time::Instant::now(),
                        )))
                    }),
                }
            })
            .collect();
        let mut zones = zones;
        split_shared_default_ranges(cfg, &mut zones);
        let zone_id =
            |name: &str| zones.iter().position(|z| z.name == name).map(|i| ZoneId(i as u16));
        let trunks: Vec<Trunk> = cfg
            .trunks
            .iter()
            .filter_map(|t| {
                Some(Trunk {
                    name: t.name.clone(),
                    zone: zone_id(&t.zone)?,
                    addr: t.address,
                    transport: match t.transport {
                        TransportKind::Udp => Transport::Udp,
                        TransportKind::Tcp => Transport::Tcp,
                    },
                    domain: t.domain.clone().unwrap_or_else(|| match t.address.ip() {
                        IpAddr::V6(ip) => format!("[{ip}]"),
                        ip => ip.to_string(),
                    }),
                    account: t.auth.as_ref().and_then(|a| {
                        a.password()
                            .ok()
                            .map(|password| Account { username: a.username.clone(), password })
                    }),
                    auth_realm: t.auth.as_ref().and_then(|a| a.realm.clone()),
                    register: t.register.clone(),
                    keepalive: t.keepalive.clone(),
                    causes: Arc::new(
                        t.causes
                            .overrides
                            .as_ref()
                            .and_then(|o| CauseMap::from_overrides(o).ok())
                            .unwrap_or_else(CauseMap::rfc3398),
                    ),
                    send_reason: t.causes.send_reason,
                    pass_reason: t.causes.pass_reason,
                    refer: t.refer,
                    dtmf: t.dtmf,
                    policies: PolicyChain::new(
                        t.policies
                            .iter()
                            .filter_map(|p| cfg.compiled_policies.get(p).cloned())
                            .collect(),
                    ),
                })
            })
            .collect();
        let trunk_id =
            |name: &str| trunks.iter().position(|t| t.name == name).map(|i| TrunkId(i as u16));
        let routes = cfg
            .routes
            .iter()
            .filter_map(|r| {
                Some(Route {
                    name: r.name.clone(),
                    from: zone_id(&r.from)?,
                    prefix: r.matcher.as_ref().and_then(|m| m.prefix.clone()),
                    user: r.matcher.as_ref().and_then(|m| m.user.as_ref().map(|u| u.0.clone())),
                    targets: r.targets.iter().filter_map(|t| trunk_id(t)).collect(),
                    media: r.media.unwrap_or(cfg.media.mode),
                })
            })
            .filter(|r| !r.targets.is_empty())
            .collect();
        Router { zones, trunks, routes, default_media: cfg.media.mode, guard: None }
    }

    /// Media mode for calls that match no route (calls to registered devices).
    pub fn default_media(&self) -> MediaMode {
        self.default_media
    }

    /// First route matching a request from `zone` for Request-URI user `user`.
    pub fn route(&self, zone: ZoneId, user: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(zone, user))
    }

    /// The trunk a message from `source` on `zone` came from (by address, then by IP).
    pub fn trunk_by_source(&self, zone: ZoneId, source: SocketAddr) -> Option<TrunkId> {
        let by = |f: &dyn Fn(&Trunk) -> bool| {
            self.trunks.iter().position(|t| t.zone == zone && f(t)).map(|i| TrunkId(i as u16))
        };
        by(&|t| t.addr == source).or_else(|| by(&|t| t.addr.ip() == source.ip()))
    }

    /// A trunk by id.
    pub fn trunk(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(id.0 as usize)
    }

    /// A zone by id.
    pub fn zone(&self, id: ZoneId) -> Option<&Zone> {
        self.zones.get(id.0 as usize)
    }

    /// True when `host` (from a Request-URI) names sipborder on `zone`.
    pub fn is_local_host(&self, zone: ZoneId, host: &str) -> bool {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        self.zone(zone).is_some_and(|z| {
            z.address.host == h || z.local_ips.iter().any(|ip| ip.to_string() == h)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_routes_both_ways() {
        let r = Router::from_config(&crate::config::embedded());
        let lan = ZoneId(0);
        let trunk = ZoneId(1);
        let out = r.route(lan, "0123456789").map(|r| r.targets.clone());
        assert_eq!(out.map(|t| t.len()), Some(2));
        let inb = r.route(trunk, "100").map(|r| r.targets[0]);
        assert_eq!(inb.and_then(|t| r.trunk(t)).map(|t| t.name.as_str()), Some("pbx"));
        assert!(r.is_local_host(lan, "127.0.0.1"));
    }
}
