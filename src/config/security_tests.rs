//! The `security` block as the config loader sees it: defaults, serde errors and
//! cross-reference problems located at file:line:column.

use super::*;

const BASE: &str = "zones:\n  - name: lan\n    udp: 127.0.0.1:5060\n  - name: trunk\n    udp: 127.0.0.1:5080\ntrunks:\n  - name: itsp\n    zone: trunk\n    address: 198.51.100.7:5060\n";

fn errors(text: &str) -> Vec<ConfigError> {
    match load_str(text, "t.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigErrors(v)) => v,
    }
}

#[test]
fn absent_block_means_defaults() {
    let c = load_str(BASE, "t.yaml").expect("valid");
    assert!(c.security.zones.is_empty());
    assert!(c.security.scanner.enabled);
    assert_eq!(c.security.ban.auth_failures, 5);
}

#[test]
fn embedded_default_trusts_the_lan_and_fences_the_trunk_zone() {
    let c = embedded();
    assert!(c.security.zones["lan"].trusted);
    let trunk = &c.security.zones["trunk"];
    assert!(!trunk.trusted);
    assert!(trunk.acl.allows("127.0.0.1".parse().expect("ip")));
    assert!(!trunk.acl.allows("127.0.0.2".parse().expect("ip")));
    assert!(c.security.disclosure.strip_warning);
}

#[test]
fn bad_values_are_located_by_serde() {
    let text = format!("{BASE}security:\n  zones:\n    trunk:\n      acl: [198.51.100.0/33]\n");
    let e = &errors(&text)[0];
    assert_eq!((e.line, e.file.as_str()), (13, "t.yaml"), "{e}");
    assert!(e.message.contains("198.51.100.0/33"), "{e}");
    let text = format!("{BASE}security:\n  ban: {{ttl: forever}}\n");
    let e = &errors(&text)[0];
    assert_eq!(e.line, 11, "{e}");
}

#[test]
fn cross_references_are_located() {
    let text = format!(
        "{BASE}security:\n  zones:\n    dmz: {{trusted: true}}\n  trunks:\n    nope: {{max_concurrent: 1}}\n  disclosure:\n    server: \"a\\r\\nX-Injected: 1\"\n"
    );
    let es = errors(&text);
    let shown: Vec<String> = es.iter().map(ToString::to_string).collect();
    assert_eq!(es.len(), 3, "{shown:#?}");
    assert!(
        shown[0].starts_with("t.yaml:12:10: security.zones.dmz: no zone named \"dmz\""),
        "{shown:#?}"
    );
    assert!(shown[1].starts_with("t.yaml:14:11: security.trunks.nope:"), "{shown:#?}");
    assert!(shown[2].starts_with("t.yaml:16:13: security.disclosure.server:"), "{shown:#?}");
}

#[test]
fn a_trunk_outside_its_zone_acl_is_refused() {
    let text = format!("{BASE}security:\n  zones:\n    trunk:\n      acl: [203.0.113.0/24]\n");
    let es = errors(&text);
    assert_eq!(es.len(), 1, "{es:?}");
    let e = &es[0];
    assert_eq!((e.line, e.column), (9, 14), "{e}");
    assert!(e.message.contains("not in the ACL of zone \"trunk\" (line 13)"), "{e}");
    let ok = format!("{BASE}security:\n  zones:\n    trunk:\n      acl: [198.51.100.0/24]\n");
    assert!(load_str(&ok, "t.yaml").is_ok());
}
