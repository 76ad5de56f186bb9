//! Rules that span several values, checked after serde has built the [`Config`].
//!
//! Each rule names the offending value by its path in the document and lets the [`Locator`]
//! find it in the text; every rule runs, so all problems are reported at once.

use super::locate::{Locator, Seg};
use super::{Config, ConfigError, TransportKind, ZoneConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Smallest accepted `limits.max_message_size`: below this, ordinary INVITEs with SDP no
/// longer fit.
const MIN_MESSAGE_SIZE: usize = 1024;
/// Largest accepted `limits.max_message_size` (1 MiB): far above any sane SIP message, and it
/// bounds what one TCP peer can make us buffer.
const MAX_MESSAGE_SIZE: usize = 1_048_576;
/// Fewer header lines than this rejects legitimate requests (an INVITE through a few proxies
/// carries 15-20).
const MIN_HEADERS: usize = 16;

/// Builds a path from keys and indices: `path!["routes", i, "targets", j]`.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { &[$(Seg::from($seg)),*][..] };
}

/// Runs every rule; an empty result means the configuration is usable.
pub(super) fn validate(config: &Config, locator: &Locator, file: &str) -> Vec<ConfigError> {
    let mut c = Checker { config, locator, file, errors: Vec::new() };
    c.zones();
    c.trunks();
    c.routes();
    c.timers();
    c.limits();
    c.metrics();
    c.media();
    c.trunk_edge();
    c.security();
    c.errors
}

struct Checker<'a> {
    config: &'a Config,
    locator: &'a Locator,
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn report(&mut self, path: &[Seg], message: String) {
        let (line, column) = self.locator.locate(path).map_or((0, 0), |p| (p.line, p.column));
        self.errors.push(ConfigError { file: self.file.to_string(), line, column, message });
    }

    /// " (line N)" pointing at another place in the text, for "already used by ..." messages.
    fn line_note(&self, path: &[Seg]) -> String {
        self.locator.locate(path).map_or_else(String::new, |p| format!(" (line {})", p.line))
    }

    fn zone(&self, name: &str) -> Option<&ZoneConfig> {
        self.config.zones.iter().find(|z| z.name == name)
    }

    fn zones(&mut self) {
        let zones = &self.config.zones;
        if zones.is_empty() {
            self.report(
                path!["zones"],
                "no zones are configured; define at least one, with a name and a udp or tcp listen address"
                    .to_string(),
            );
        }
        for (i, zone) in zones.iter().enumerate() {
            let label = zone_label(zone, i);
            if zone.name.trim().is_empty() {
                self.report(
                    path!["zones", i, "name"],
                    format!("{label}: name is empty; give every zone a unique name such as \"lan\" or \"trunk\""),
                );
            } else if let Some(first) = zones[..i].iter().position(|z| z.name == zone.name) {
                let note = self.line_note(path!["zones", first, "name"]);
                self.report(
                    path!["zones", i, "name"],
                    format!("{label}: the name is already used by another zone{note}; zone names must be unique"),
                );
            }
            if zone.udp.is_none() && zone.tcp.is_none() {
                self.report(
                    path!["zones", i],
                    format!(
                        "{label}: no listen address; give it udp: ip:port, tcp: ip:port, or both"
                    ),
                );
            }
            self.listen_clash(i, "udp", |z| z.udp);
            self.listen_clash(i, "tcp", |z| z.tcp);
        }
    }

    /// Reports zone `i` if its `proto` address cannot be bound next to an earlier zone's.
    fn listen_clash(
        &mut self,
        i: usize,
        proto: &str,
        addr_of: fn(&ZoneConfig) -> Option<SocketAddr>,
    ) {
        let zones = &self.config.zones;
        let Some(addr) = addr_of(&zones[i]) else { return };
        let clash = zones[..i]
            .iter()
            .enumerate()
            .find_map(|(j, other)| addr_of(other).filter(|o| clashes(addr, *o)).map(|o| (j, o)));
        let Some((j, other_addr)) = clash else { return };
        let label = zone_label(&zones[i], i);
        let other = zone_label(&zones[j], j);
        let note = self.line_note(path!["zones", j, proto]);
        let message = if other_addr == addr {
            format!(
                "{label}: {proto} {addr} is already the {proto} address of {other}{note}; \
                 each zone needs its own address or port"
            )
        } else {
            format!(
                "{label}: {proto} {addr} overlaps {proto} {other_addr} of {other}{note} \
                 (an unspecified address listens on every interface); \
                 give the zones different ports or specific addresses"
            )
        };
        self.report(path!["zones", i, proto], message);
    }

    fn trunks(&mut self) {
        let trunks = &self.config.trunks;
        let zone_list = name_list("zones", self.config.zones.iter().map(|z| z.name.as_str()));
        for (i, trunk) in trunks.iter().enumerate() {
            let label = if trunk.name.trim().is_empty() {
                format!("trunks[{i}]")
            } else {
                format!("trunk {:?}", trunk.name)
            };
            if trunk.name.trim().is_empty() {
                self.report(
                    path!["trunks", i, "name"],
                    format!("{label}: name is empty; give every trunk a unique name, routes refer to it"),
                );
            } else if let Some(first) = trunks[..i].iter().position(|t| t.name == trunk.name) {
                let note = self.line_note(path!["trunks", first, "name"]);
                self.report(
                    path!["trunks", i, "name"],
                    format!("{label}: the name is already used by another trunk{note}; trunk names must be unique"),
                );
            }
            let Some(zone) = self.zone(&trunk.zone) else {
                self.report(
                    path!["trunks", i, "zone"],
                    format!(
                        "{label}: zone {:?} is not a configured zone ({zone_list})",
                        trunk.zone
                    ),
                );
                continue;
            };
            if zone.udp.is_none() && zone.tcp.is_none() {
                continue; // already reported on the zone
            }
            let (needed, has) = match trunk.transport {
                TransportKind::Udp => ("udp", zone.udp.is_some()),
                TransportKind::Tcp => ("tcp", zone.tcp.is_some()),
            };
            if !has {
                let other = if needed == "udp" { "tcp" } else { "udp" };
                self.report(
                    path!["trunks", i, "transport"],
                    format!(
                        "{label}: transport {needed} needs zone {:?} to listen on {needed}, but it has only {other}; \
                         add {needed}: ip:port to the zone or set transport: {other}",
                        trunk.zone
                    ),
                );
            }
        }
    }

    fn routes(&mut self) {
        let zone_list = name_list("zones", self.config.zones.iter().map(|z| z.name.as_str()));
        let trunk_list = name_list("trunks", self.config.trunks.iter().map(|t| t.name.as_str()));
        for (i, route) in self.config.routes.iter().enumerate() {
            let label = if route.name.trim().is_empty() {
                format!("routes[{i}]")
            } else {
                format!("route {:?}", route.name)
            };
            if self.zone(&route.from).is_none() {
                self.report(
                    path!["routes", i, "from"],
                    format!(
                        "{label}: from zone {:?} is not a configured zone ({zone_list})",
                        route.from
                    ),
                );
            }
            if route.targets.is_empty() {
                self.report(
                    path!["routes", i, "targets"],
                    format!("{label}: targets is empty; list at least one trunk ({trunk_list})"),
                );
            }
            for (j, target) in route.targets.iter().enumerate() {
                if !self.config.trunks.iter().any(|t| &t.name == target) {
                    self.report(
                        path!["routes", i, "targets", j],
                        format!(
                            "{label}: target {target:?} is not a configured trunk ({trunk_list})"
                        ),
                    );
                }
            }
        }
    }

    fn timers(&mut self) {
        let t = &self.config.timers;
        let (t1, t2, t4) = (t.t1.0, t.t2.0, t.t4.0);
        if t1.is_zero() {
            self.report(
                path!["timers", "t1"],
                "timers.t1 is 0; it must be greater than 0 (RFC 3261 recommends 500ms)".to_string(),
            );
        }
        if t2 < t1 {
            self.report(
                path!["timers", "t2"],
                format!("timers.t2 ({}) is less than t1 ({}); t2 must be at least t1 (RFC 3261 default 4s)", show(t2), show(t1)),
            );
        }
        if t4.is_zero() {
            self.report(
                path!["timers", "t4"],
                "timers.t4 is 0; it must be greater than 0 (RFC 3261 default 5s)".to_string(),
            );
        }
    }

    fn limits(&mut self) {
        let l = &self.config.limits;
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&l.max_message_size) {
            self.report(
                path!["limits", "max_message_size"],
                format!(
                    "limits.max_message_size is {}; allowed is {MIN_MESSAGE_SIZE} to {MAX_MESSAGE_SIZE} bytes",
                    l.max_message_size
                ),
            );
        }
        if l.max_headers < MIN_HEADERS {
            self.report(
                path!["limits", "max_headers"],
                format!(
                    "limits.max_headers is {}; it must be at least {MIN_HEADERS}",
                    l.max_headers
                ),
            );
        }
        if l.max_vias < 1 {
            self.report(
                path!["limits", "max_vias"],
                format!("limits.max_vias is {}; it must be at least 1", l.max_vias),
            );
        }
    }

    /// Credentials resolvable, registration and keepalive values sane.
    fn trunk_edge(&mut self) {
        let mut errs = Vec::new();
        let trunk_names: Vec<String> = self.config.trunks.iter().map(|t| t.name.clone()).collect();
        for (i, z) in self.config.zones.iter().enumerate() {
            if let Some(rp) = &z.register_proxy {
                if !trunk_names.contains(&rp.registrar) {
                    errs.push((
                        path!["zones", i, "register_proxy", "registrar"].to_vec(),
                        format!(
                            "zone \"{}\": registrar \"{}\" is not a configured trunk (trunks: {})",
                            z.name,
                            rp.registrar,
                            trunk_names.join(", ")
                        ),
                    ));
                }
                if rp.client_expires.0 > rp.registrar_expires.0 {
                    errs.push((
                        path!["zones", i, "register_proxy", "client_expires"].to_vec(),
                        format!(
                            "zone \"{}\": client_expires must not exceed registrar_expires",
                            z.name
                        ),
                    ));
                }
            }
        }
        for (i, z) in self.config.zones.iter().enumerate() {
            if z.stun.is_some() && z.advertise.is_some() {
                errs.push((
                    path!["zones", i, "stun"].to_vec(),
                    format!(
                        "zone \"{}\": give a static advertise address or stun discovery, not both",
                        z.name
                    ),
                ));
            }
        }
        for (i, z) in self.config.zones.iter().enumerate() {
            if let Some(auth) = &z.auth {
                if let Err(e) = auth.users() {
                    errs.push((
                        path!["zones", i, "auth", "users_file"].to_vec(),
                        format!("zone \"{}\": {e}", z.name),
                    ));
                }
            }
        }
        for (i, t) in self.config.trunks.iter().enumerate() {
            if let Some(auth) = &t.auth {
                if let Err(e) = auth.password() {
                    errs.push((
                        path!["trunks", i, "auth"].to_vec(),
                        format!("trunk \"{}\": {e}", t.name),
                    ));
                }
            }
            if let Some(reg) = &t.register {
                if reg.expires.0 < Duration::from_secs(60) {
                    errs.push((
                        path!["trunks", i, "register", "expires"].to_vec(),
                        format!("trunk \"{}\": register.expires must be at least 60s", t.name),
                    ));
                }
                if t.auth.is_none() {
                    // Allowed: some ITSPs register by IP; nothing to report.
                }
            }
            if let Some(k) = &t.keepalive {
                if k.interval.0.is_zero() || k.up_interval.0.is_zero() || k.retries == 0 {
                    errs.push((path!["trunks", i, "keepalive"].to_vec(), format!("trunk \"{}\": keepalive interval, up_interval and retries must be positive", t.name)));
                }
            }
        }
        for (p, m) in errs {
            self.report(&p, m);
        }
    }

    /// Two zones relaying on the same IP must not share relay ports.
    fn media(&mut self) {
        let zones = &self.config.zones;
        let addr = |z: &ZoneConfig| {
            z.media.as_ref().and_then(|m| m.address).or(z.udp.or(z.tcp).map(|a| a.ip()))
        };
        let range = |z: &ZoneConfig| z.media.as_ref().and_then(|m| m.ports);
        let mut found = Vec::new();
        for (i, a) in zones.iter().enumerate() {
            for (j, b) in zones.iter().enumerate().skip(i + 1) {
                let (Some(ra), Some(rb)) = (range(a), range(b)) else { continue };
                if addr(a) == addr(b) && ra.low <= rb.high && rb.low <= ra.high {
                    found.push((i, j, ra, rb));
                }
            }
        }
        for (i, j, ra, rb) in found {
            let note = self.line_note(path!["zones", i, "media", "ports"]);
            let (za, zb) = (zone_label(&zones[i], i), zone_label(&zones[j], j));
            self.report(
                path!["zones", j, "media", "ports"],
                format!(
                    "relay ports {}-{} of {zb} overlap {}-{} of {za}{note} on the same address; \
                     give each zone its own range",
                    rb.low, rb.high, ra.low, ra.high
                ),
            );
        }
    }

    /// The `security` block against the zones and trunks it names, and every trunk's address
    /// inside its zone's ACL (else the trunk's own answers would be dropped).
    fn security(&mut self) {
        let sec = &self.config.security;
        let zones: Vec<&str> = self.config.zones.iter().map(|z| z.name.as_str()).collect();
        let trunks: Vec<&str> = self.config.trunks.iter().map(|t| t.name.as_str()).collect();
        for p in sec.problems(&zones, &trunks) {
            let mut segs = vec![Seg::from("security")];
            segs.extend(p.path.iter().map(|s| match s {
                crate::security::guard::PathStep::Key(k) => Seg::from(k.as_str()),
                crate::security::guard::PathStep::Index(i) => Seg::from(*i),
            }));
            self.report(&segs, p.to_string());
        }
        for (i, t) in self.config.trunks.iter().enumerate() {
            let Some(zs) = sec.zones.get(&t.zone) else { continue };
            if zs.acl.allows(t.address.ip()) {
                continue;
            }
            let note = self.line_note(path!["security", "zones", t.zone.as_str(), "acl"]);
            self.report(
                path!["trunks", i, "address"],
                format!(
                    "trunk {:?}: address {} is not in the ACL of zone {:?}{note}; its messages would be dropped: add {} to security.zones.{}.acl",
                    t.name,
                    t.address.ip(),
                    t.zone,
                    t.address.ip(),
                    t.zone
                ),
            );
        }
    }

    fn metrics(&mut self) {
        let Some(metrics) = &self.config.metrics else {
            return;
        };
        let listen = metrics.listen;
        let clash = self
            .config
            .zones
            .iter()
            .enumerate()
            .find_map(|(i, z)| z.tcp.filter(|a| clashes(listen, *a)).map(|a| (i, a)));
        if let Some((i, tcp)) = clash {
            let note = self.line_note(path!["zones", i, "tcp"]);
            let zone = zone_label(&self.config.zones[i], i);
            let how = if tcp == listen { "is" } else { "overlaps" };
            self.report(
                path!["metrics", "listen"],
                format!(
                    "metrics.listen {listen} {how} the tcp address {tcp} of {zone}{note}; \
                     the metrics exporter needs a port of its own, e.g. 127.0.0.1:9091"
                ),
            );
        }
    }
}

fn zone_label(zone: &ZoneConfig, i: usize) -> String {
    if zone.name.trim().is_empty() {
        format!("zones[{i}]")
    } else {
        format!("zone {:?}", zone.name)
    }
}

/// Whether two listen addresses cannot both be bound: the same address, or the same port where
/// one side is the unspecified address of the same family. Port 0 asks the kernel for a free
/// port, so it never clashes.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    a.ip() == b.ip()
        || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

/// "trunks: itsp, pbx", naming each once, for "... is not a configured trunk (trunks: ...)".
fn name_list<'n>(what: &str, names: impl Iterator<Item = &'n str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for n in names.filter(|n| !n.trim().is_empty()) {
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    if seen.is_empty() {
        format!("no {what} are configured")
    } else {
        format!("{what}: {}", seen.join(", "))
    }
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, ConfigErrors};

    /// A valid base that every rule test breaks in one place.
    const BASE: &str = "\
zones:
  - name: lan
    udp: 127.0.0.1:5060
    tcp: 127.0.0.1:5060
  - name: trunk
    udp: 127.0.0.1:5080
trunks:
  - name: itsp
    zone: trunk
    address: 127.0.0.1:5090
  - name: pbx
    zone: lan
    address: 127.0.0.1:5070
routes:
  - name: lan-to-itsp
    from: lan
    targets: [itsp]
";

    /// The errors of `text`, displayed; the text must deserialize.
    fn errors(text: &str) -> Vec<String> {
        match load_str(text, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(ConfigErrors(v)) => v.iter().map(ToString::to_string).collect(),
        }
    }

    fn replaced(from: &str, to: &str) -> String {
        assert!(BASE.contains(from), "{from:?} not in BASE");
        BASE.replacen(from, to, 1)
    }

    #[test]
    fn base_is_valid() {
        assert_eq!(errors(BASE), Vec::<String>::new());
    }

    #[test]
    fn no_zones() {
        assert_eq!(
            errors("zones: []\n"),
            ["t.yaml:1:8: no zones are configured; define at least one, with a name and a udp or tcp listen address"]
        );
    }

    #[test]
    fn empty_zone_name() {
        let text = replaced("- name: trunk\n", "- name: \"\"\n");
        let e = errors(&text);
        assert_eq!(e[0], "t.yaml:5:11: zones[1]: name is empty; give every zone a unique name such as \"lan\" or \"trunk\"");
        // The trunk naming "trunk" now fails too: all problems are reported.
        assert_eq!(
            e[1],
            "t.yaml:9:11: trunk \"itsp\": zone \"trunk\" is not a configured zone (zones: lan)"
        );
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn duplicate_zone_name() {
        let text = replaced("- name: trunk\n", "- name: lan\n");
        let e = errors(&text);
        assert!(e.contains(&"t.yaml:5:11: zone \"lan\": the name is already used by another zone (line 2); zone names must be unique".to_string()), "{e:#?}");
    }

    #[test]
    fn zone_without_listen_address() {
        let text = replaced("    udp: 127.0.0.1:5080\n", "    advertise: 192.0.2.1\n");
        assert_eq!(
            errors(&text),
            [
                // The trunk on that zone is not blamed as well: the zone is what needs fixing.
                "t.yaml:5:5: zone \"trunk\": no listen address; give it udp: ip:port, tcp: ip:port, or both",
            ]
        );
    }

    #[test]
    fn shared_udp_address() {
        let text = replaced("    udp: 127.0.0.1:5080\n", "    udp: 127.0.0.1:5060\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:6:10: zone \"trunk\": udp 127.0.0.1:5060 is already the udp address of zone \"lan\" (line 3); \
              each zone needs its own address or port"]
        );
    }

    #[test]
    fn shared_tcp_address() {
        let text = replaced("    udp: 127.0.0.1:5080\n", "    tcp: 127.0.0.1:5060\n");
        let e = errors(&text);
        assert_eq!(
            e[0],
            "t.yaml:6:10: zone \"trunk\": tcp 127.0.0.1:5060 is already the tcp address of zone \"lan\" (line 4); \
             each zone needs its own address or port"
        );
    }

    #[test]
    fn unspecified_address_overlaps() {
        let text = replaced("    udp: 127.0.0.1:5080\n", "    udp: 0.0.0.0:5060\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:6:10: zone \"trunk\": udp 0.0.0.0:5060 overlaps udp 127.0.0.1:5060 of zone \"lan\" (line 3) \
              (an unspecified address listens on every interface); give the zones different ports or specific addresses"]
        );
    }

    #[test]
    fn same_port_on_different_ips_or_protocols_is_fine() {
        let text = replaced(
            "    udp: 127.0.0.1:5080\n",
            "    udp: 127.0.0.2:5060\n    tcp: \"[::]:5060\"\n",
        );
        assert_eq!(errors(&text), Vec::<String>::new());
        let zero = "zones:\n  - {name: a, udp: 127.0.0.1:0}\n  - {name: b, udp: 127.0.0.1:0}\n";
        assert_eq!(errors(zero), Vec::<String>::new());
    }

    #[test]
    fn duplicate_trunk_name() {
        let text = replaced("  - name: pbx\n", "  - name: itsp\n");
        let e = errors(&text);
        assert_eq!(
            e,
            ["t.yaml:11:11: trunk \"itsp\": the name is already used by another trunk (line 8); trunk names must be unique"]
        );
    }

    #[test]
    fn empty_trunk_name() {
        let text = replaced("  - name: pbx\n", "  - name: ''\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:11:11: trunks[1]: name is empty; give every trunk a unique name, routes refer to it"]
        );
    }

    #[test]
    fn trunk_zone_must_exist() {
        let text = replaced("    zone: trunk\n", "    zone: trunc\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:9:11: trunk \"itsp\": zone \"trunc\" is not a configured zone (zones: lan, trunk)"]
        );
    }

    #[test]
    fn trunk_tcp_needs_zone_tcp() {
        let text = replaced(
            "    address: 127.0.0.1:5090\n",
            "    address: 127.0.0.1:5090\n    transport: tcp\n",
        );
        assert_eq!(
            errors(&text),
            ["t.yaml:11:16: trunk \"itsp\": transport tcp needs zone \"trunk\" to listen on tcp, but it has only udp; \
              add tcp: ip:port to the zone or set transport: udp"]
        );
    }

    #[test]
    fn trunk_udp_needs_zone_udp_and_defaulted_transport_points_at_the_trunk() {
        let text = replaced("    udp: 127.0.0.1:5080\n", "    tcp: 127.0.0.1:5080\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:8:5: trunk \"itsp\": transport udp needs zone \"trunk\" to listen on udp, but it has only tcp; \
              add udp: ip:port to the zone or set transport: tcp"]
        );
    }

    #[test]
    fn route_from_must_exist() {
        let text = replaced("    from: lan\n", "    from: wan\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:16:11: route \"lan-to-itsp\": from zone \"wan\" is not a configured zone (zones: lan, trunk)"]
        );
    }

    #[test]
    fn route_targets_must_not_be_empty() {
        let text = replaced("    targets: [itsp]\n", "    targets: []\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:17:14: route \"lan-to-itsp\": targets is empty; list at least one trunk (trunks: itsp, pbx)"]
        );
    }

    #[test]
    fn route_target_must_be_a_trunk() {
        let text = replaced("    targets: [itsp]\n", "    targets:\n      - itsp\n      - itsp2\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:19:9: route \"lan-to-itsp\": target \"itsp2\" is not a configured trunk (trunks: itsp, pbx)"]
        );
    }

    #[test]
    fn route_target_without_any_trunks() {
        let text = "zones:\n  - {name: lan, udp: 127.0.0.1:5060}\nroutes:\n  - {name: r, from: lan, targets: [x]}\n";
        assert_eq!(
            errors(text),
            ["t.yaml:4:36: route \"r\": target \"x\" is not a configured trunk (no trunks are configured)"]
        );
    }

    #[test]
    fn timers() {
        let text = format!("{BASE}timers:\n  t1: 0ms\n  t4: 0s\n");
        assert_eq!(
            errors(&text),
            [
                "t.yaml:19:7: timers.t1 is 0; it must be greater than 0 (RFC 3261 recommends 500ms)",
                "t.yaml:20:7: timers.t4 is 0; it must be greater than 0 (RFC 3261 default 5s)",
            ]
        );
        let text = format!("{BASE}timers:\n  t1: 1s\n  t2: 500ms\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:20:7: timers.t2 (500ms) is less than t1 (1s); t2 must be at least t1 (RFC 3261 default 4s)"]
        );
    }

    #[test]
    fn defaulted_timer_points_at_its_section() {
        let text = format!("{BASE}timers:\n  t1: 5s\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:19:3: timers.t2 (4s) is less than t1 (5s); t2 must be at least t1 (RFC 3261 default 4s)"]
        );
    }

    #[test]
    fn limits() {
        let text =
            format!("{BASE}limits:\n  max_message_size: 1023\n  max_headers: 15\n  max_vias: 0\n");
        assert_eq!(
            errors(&text),
            [
                "t.yaml:19:21: limits.max_message_size is 1023; allowed is 1024 to 1048576 bytes",
                "t.yaml:20:16: limits.max_headers is 15; it must be at least 16",
                "t.yaml:21:13: limits.max_vias is 0; it must be at least 1",
            ]
        );
        let text = format!("{BASE}limits:\n  max_message_size: 1048577\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:19:21: limits.max_message_size is 1048577; allowed is 1024 to 1048576 bytes"]
        );
        let text =
            format!("{BASE}limits:\n  max_message_size: 1024\n  max_headers: 16\n  max_vias: 1\n");
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn metrics_must_not_take_a_zone_tcp_port() {
        let text = format!("{BASE}metrics:\n  listen: 127.0.0.1:5060\n");
        assert_eq!(
            errors(&text),
            ["t.yaml:19:11: metrics.listen 127.0.0.1:5060 is the tcp address 127.0.0.1:5060 of zone \"lan\" (line 4); \
              the metrics exporter needs a port of its own, e.g. 127.0.0.1:9091"]
        );
        // The same port as a zone's UDP socket is fine: the exporter is TCP only.
        let text = format!("{BASE}metrics:\n  listen: 127.0.0.1:5080\n");
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "\
zones:
  - name: lan
    udp: 127.0.0.1:5060
  - name: lan
trunks:
  - {name: pbx, zone: lan, address: 127.0.0.1:5070, transport: tcp}
  - {name: pbx, zone: wan, address: 127.0.0.1:5071}
routes:
  - name: r
    from: dmz
    targets: [pbx, itsp]
limits:
  max_vias: 0
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:4:5: zone \"lan\": no listen address; give it udp: ip:port, tcp: ip:port, or both",
                "t.yaml:4:11: zone \"lan\": the name is already used by another zone (line 2); zone names must be unique",
                "t.yaml:6:64: trunk \"pbx\": transport tcp needs zone \"lan\" to listen on tcp, but it has only udp; \
                 add tcp: ip:port to the zone or set transport: udp",
                "t.yaml:7:12: trunk \"pbx\": the name is already used by another trunk (line 6); trunk names must be unique",
                "t.yaml:7:23: trunk \"pbx\": zone \"wan\" is not a configured zone (zones: lan)",
                "t.yaml:10:11: route \"r\": from zone \"dmz\" is not a configured zone (zones: lan)",
                "t.yaml:11:20: route \"r\": target \"itsp\" is not a configured trunk (trunks: pbx)",
                "t.yaml:13:13: limits.max_vias is 0; it must be at least 1",
            ]
        );
    }

    #[test]
    fn overlapping_relay_ranges_on_one_address_are_refused() {
        let text = "zones:\n  - name: lan\n    udp: 127.0.0.1:5060\n    media: { ports: 20000-25000 }\n  - name: trunk\n    udp: 127.0.0.1:5080\n    media:\n      ports: 24000-29999\n";
        let errs = crate::config::load_str(text, "t.yaml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            errs.contains(
                "t.yaml:8:14: relay ports 24000-29999 of zone \"trunk\" overlap 20000-25000"
            ),
            "{errs}"
        );
    }
}
