//! The configuration: schema, loading, and checking with file:line:column on every error.
//!
//! Loading happens in two passes. serde_yaml builds a [`Config`], catching syntax errors,
//! unknown keys and bad single values (addresses, durations, regexes) with their position.
//! Then the whole configuration is checked for rules that span several values (a route naming a
//! trunk that does not exist, two zones on one socket); all such problems are collected, not just
//! the first, so one run of `sipborder check` shows everything to fix. Their positions come from
//! a second, span-keeping parse of the same text (see `locate`).

pub mod schema;

pub(crate) mod locate;
mod validate;

#[cfg(test)]
mod security_tests;

pub use schema::*;

use std::path::Path;
use thiserror::Error;

/// The default configuration, compiled in: what `sipborder run` uses without `-c`.
pub const EMBEDDED_YAML: &str = include_str!("../../config/sipborder.yaml");

/// One problem in a configuration text, with where it is.
///
/// Displays as `file:line:column: message`, the form editors and terminals turn into a link.
/// `line` and `column` are 1-based; both are 0 when the problem has no position in the text
/// (the file cannot be read, the text holds several documents), and the display is then
/// `file: message`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}{}: {message}", position(.line, .column))]
pub struct ConfigError {
    /// The file name as given by the caller, or `<embedded>`.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: usize,
    /// 1-based column in characters, 0 if unknown.
    pub column: usize,
    /// What is wrong and what would be accepted.
    pub message: String,
}

fn position(line: &usize, column: &usize) -> String {
    if *line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// Every problem found in one configuration text, in text order. Never empty when returned
/// by this module. Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", one_per_line(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn one_per_line(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Parses and checks a configuration text. `origin` names it in error messages (a path, or
/// `<embedded>`).
///
/// Syntax and type errors stop at the first one (serde_yaml cannot go on past it); the
/// cross-reference checks that follow report everything they find.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    load_str_at(text, origin, Path::new("."))
}

/// [`load_str`] with policy paths resolved against `base` (the config file's directory).
pub fn load_str_at(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let mut config: Config = serde_yaml::from_str(text).map_err(|e| from_serde(&e, origin))?;
    let locator = locate::Locator::new(text);
    let mut errors = validate::validate(&config, &locator, origin);
    // Every policy file is compiled now, so `sipborder check` and a reload see its errors
    // (with the policy file's own line and column) before anything is swapped in.
    for (i, t) in config.trunks.iter().enumerate() {
        for (j, p) in t.policies.iter().enumerate() {
            if config.compiled_policies.contains_key(p) {
                continue;
            }
            let full = if p.is_absolute() { p.clone() } else { base.join(p) };
            match crate::policy::compile::load_file(&full) {
                Ok(c) => {
                    config.compiled_policies.insert(p.clone(), std::sync::Arc::new(c));
                }
                Err(crate::policy::PolicyErrors(es)) => {
                    if es.is_empty() {
                        let pos = locator.locate(&[
                            locate::Seg::from("trunks"),
                            locate::Seg::from(i),
                            locate::Seg::from("policies"),
                            locate::Seg::from(j),
                        ]);
                        let (line, column) = pos.map_or((0, 0), |p| (p.line, p.column));
                        errors.push(ConfigError {
                            file: origin.to_string(),
                            line,
                            column,
                            message: format!("policy {} could not be loaded", full.display()),
                        });
                    }
                    errors.extend(es.into_iter().map(ConfigError::from));
                }
            }
        }
    }
    if errors.is_empty() {
        return Ok(config);
    }
    // Stable, so problems found at one place keep the order the rules were checked in.
    errors.sort_by_key(|e| (e.line, e.column));
    Err(ConfigErrors(errors))
}

/// Reads and checks a configuration file; errors carry the path as given.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: origin.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    load_str_at(&text, &origin, base)
}

/// The compiled-in default configuration.
///
/// # Panics
/// Never in a tested build: a unit test loads the same text, so a broken default fails the test
/// suite rather than a user's start-up.
pub fn embedded() -> Config {
    match load_str(EMBEDDED_YAML, "<embedded>") {
        Ok(config) => config,
        Err(e) => panic!("the embedded config/sipborder.yaml is invalid:\n{e}"),
    }
}

/// Turns a serde_yaml error into ours, moving its position out of the message text.
pub(crate) fn from_serde(err: &serde_yaml::Error, origin: &str) -> ConfigError {
    let text = err.to_string();
    let (line, column, message) = match err.location() {
        Some(loc) => {
            // serde_yaml appends the position it also returns from location(); say it once.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            (loc.line(), loc.column(), text.replacen(&suffix, "", 1))
        }
        None => (0, 0, text),
    };
    ConfigError { file: origin.to_string(), line, column, message: explain(&message) }
}

/// Adds what would be accepted where std's parse errors only say what failed, and keeps the
/// message on one line so `ConfigErrors` stays one problem per line.
fn explain(message: &str) -> String {
    let mut out =
        message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    if out.ends_with("invalid socket address syntax") || out.ends_with("expected socket address") {
        // An unquoted `[::1]:5060` reads as a YAML list, hence the advice to quote.
        out.push_str("; write ip:port, e.g. 127.0.0.1:5060 or \"[::1]:5060\" (quote IPv6; host names are not resolved)");
    } else if out.ends_with("invalid IP address syntax") || out.ends_with("expected IP address") {
        out.push_str("; write an IP address, e.g. 203.0.113.10 or 2001:db8::10");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn one_error(text: &str) -> ConfigError {
        match load_str(text, "t.yaml") {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(ConfigErrors(mut v)) => {
                assert_eq!(v.len(), 1, "expected exactly one error, got {v:?}");
                v.remove(0)
            }
        }
    }

    const ZONE: &str = "zones:\n  - name: lan\n    udp: 127.0.0.1:5060\n";

    #[test]
    fn embedded_config_loads() {
        let c = embedded();
        assert_eq!(c.zones.len(), 2);
        assert_eq!(c.zones[0].name, "lan");
        assert_eq!(
            c.trunks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["itsp", "itsp-backup", "pbx"]
        );
        assert_eq!(c.routes[0].targets, ["itsp", "itsp-backup"]);
        assert_eq!(c.trunks[0].dtmf, DtmfMode::Passthrough);
        assert_eq!(c.timers.t1.0, Duration::from_millis(500));
        assert_eq!(c.timers.invite_ring_timeout.0, Duration::from_secs(180));
        assert_eq!(c.limits.tcp_idle_timeout.0, Duration::from_secs(300));
        assert_eq!(c.metrics.map(|m| m.listen.port()), Some(9091));
    }

    #[test]
    fn trunk_dtmf_modes_parse_and_a_wrong_one_is_located() {
        let cfg = |mode: &str| {
            format!(
                "{ZONE}trunks:\n  - name: itsp\n    zone: lan\n    address: 192.0.2.1:5060\n    \
                 dtmf: {mode}\n"
            )
        };
        let modes = [
            ("passthrough", DtmfMode::Passthrough),
            ("rfc4733", DtmfMode::Rfc4733),
            ("info", DtmfMode::Info),
        ];
        for (text, mode) in modes {
            let c = load_str(&cfg(text), "t.yaml").expect("valid dtmf mode");
            assert_eq!(c.trunks[0].dtmf, mode, "{text}");
        }
        let e = one_error(&cfg("rfc2833"));
        assert_eq!(e.line, 8, "{e}");
        assert!(
            e.message.contains("rfc4733") && e.message.contains("passthrough"),
            "{}",
            e.message
        );
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = load_str(ZONE, "t.yaml").expect("minimal config is valid");
        assert!(c.trunks.is_empty() && c.routes.is_empty() && c.metrics.is_none());
        assert_eq!(c.timers.t2.0, Duration::from_secs(4));
        assert_eq!(c.limits.max_message_size, 65536);
    }

    #[test]
    fn unknown_key_names_the_key_and_its_position() {
        let e = one_error("zones:\n  - name: lan\n    udpp: 127.0.0.1:5060\n");
        assert_eq!((e.file.as_str(), e.line, e.column), ("t.yaml", 3, 5));
        assert!(e.message.contains("unknown field `udpp`"), "{}", e.message);
        assert!(e.message.contains("`udp`") && e.message.contains("`tcp`"), "{}", e.message);
        assert!(!e.message.contains("at line"), "position is said twice: {}", e.message);
        assert_eq!(e.to_string(), format!("t.yaml:3:5: {}", e.message));
    }

    #[test]
    fn unknown_top_level_key() {
        let e = one_error(&format!("{ZONE}timer:\n  t1: 1s\n"));
        assert_eq!((e.line, e.column), (4, 1));
        assert!(e.message.contains("unknown field `timer`"), "{}", e.message);
    }

    #[test]
    fn bad_duration_is_located() {
        let e = one_error(&format!("{ZONE}timers:\n  t1: 5 parsecs\n"));
        assert_eq!((e.line, e.column), (5, 7));
        assert!(e.message.starts_with("timers.t1: bad duration \"5 parsecs\""), "{}", e.message);
        assert!(e.message.contains("500ms"), "{}", e.message);
    }

    #[test]
    fn bad_address_is_located_and_explained() {
        let e = one_error("zones:\n  - name: lan\n    udp: 127.0.0.1\n");
        assert_eq!((e.line, e.column), (3, 10));
        assert!(
            e.message.starts_with("zones[0].udp: invalid socket address syntax"),
            "{}",
            e.message
        );
        assert!(e.message.contains("ip:port"), "{}", e.message);
    }

    #[test]
    fn bad_ip_is_located_and_explained() {
        let e = one_error(&format!("{ZONE}    advertise: 203.0.113\n"));
        assert_eq!((e.line, e.column), (4, 16));
        assert!(
            e.message.contains("invalid IP address syntax; write an IP address"),
            "{}",
            e.message
        );
    }

    #[test]
    fn duration_without_unit_is_located_at_the_value() {
        let e = one_error(&format!("{ZONE}limits:\n  tcp_idle_timeout: 300\n"));
        assert_eq!((e.line, e.column), (5, 21));
        assert!(
            e.message.starts_with("limits.tcp_idle_timeout: bad duration \"300\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn duration_of_wrong_type_says_what_is_expected() {
        let e = one_error(&format!("{ZONE}timers:\n  t2: [4s]\n"));
        assert_eq!((e.line, e.column), (5, 7));
        assert!(e.message.contains("expected a duration such as 500ms"), "{}", e.message);
    }

    #[test]
    fn unquoted_ipv6_address_gets_a_hint() {
        let e = one_error("zones:\n  - name: lan\n    udp: [::1]:5060\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("quote IPv6"), "{}", e.message);
        let quoted = load_str("zones:\n  - name: lan\n    udp: \"[::1]:5060\"\n", "t.yaml")
            .expect("quoted IPv6 loads");
        assert_eq!(quoted.zones[0].udp.map(|a| a.is_ipv6()), Some(true));
    }

    #[test]
    fn display_lists_one_error_per_line() {
        let errs = ConfigErrors(vec![
            ConfigError { file: "a.yaml".into(), line: 1, column: 2, message: "first".into() },
            ConfigError { file: "a.yaml".into(), line: 0, column: 0, message: "second".into() },
        ]);
        assert_eq!(errs.to_string(), "a.yaml:1:2: first\na.yaml: second");
    }

    #[test]
    fn bad_regex_is_located_on_one_line() {
        let text = format!(
            "{ZONE}trunks:\n  - {{name: pbx, zone: lan, address: 127.0.0.1:5070}}\n\
             routes:\n  - name: r\n    from: lan\n    match:\n      user: \"^(1\"\n    targets: [pbx]\n"
        );
        let e = one_error(&text);
        assert_eq!((e.line, e.column), (10, 13));
        assert!(e.message.contains("bad regex \"^(1\""), "{}", e.message);
        assert!(e.message.contains("unclosed group"), "{}", e.message);
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn bad_transport_lists_the_choices() {
        let text = format!("{ZONE}trunks:\n  - name: pbx\n    zone: lan\n    address: 127.0.0.1:5070\n    transport: tls\n");
        let e = one_error(&text);
        assert_eq!((e.line, e.column), (8, 16));
        assert!(
            e.message.contains("unknown variant `tls`, expected `udp` or `tcp`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let e = one_error(&format!("{ZONE}limits:\n  max_headers: many\n"));
        assert_eq!((e.line, e.column), (5, 16));
        assert!(e.message.starts_with("limits.max_headers: invalid type"), "{}", e.message);
    }

    #[test]
    fn missing_field_is_located_at_its_mapping() {
        let e = one_error(&format!("{ZONE}trunks:\n  - name: pbx\n    address: 127.0.0.1:5070\n"));
        assert_eq!((e.line, e.column), (5, 5));
        assert!(e.message.contains("missing field `zone`"), "{}", e.message);
    }

    #[test]
    fn yaml_syntax_error_is_located() {
        let e = one_error("zones:\n  - name: lan\n   udp: 127.0.0.1:5060\n");
        assert_eq!((e.line, e.column), (3, 4));
        assert_eq!(e.to_string().lines().count(), 1);
    }

    #[test]
    fn empty_text_asks_for_zones() {
        let e = one_error("# nothing here\n");
        assert!(e.message.contains("missing field `zones`"), "{}", e.message);
    }

    #[test]
    fn several_documents_have_no_position() {
        let e = one_error(&format!("{ZONE}---\n{ZONE}"));
        assert_eq!((e.line, e.column), (0, 0));
        assert!(e.to_string().starts_with("t.yaml: "), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported_in_text_order() {
        let text = "\
zones:
  - name: lan
    udp: 127.0.0.1:5060
routes:
  - name: r
    from: nowhere
    targets: [a, b]
timers:
  t1: 0s
";
        let err = load_str(text, "t.yaml").expect_err("four problems");
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 4, "{shown}");
        assert!(lines[0].starts_with("t.yaml:6:11: route \"r\": from zone \"nowhere\""), "{shown}");
        assert!(lines[1].starts_with("t.yaml:7:15: route \"r\": target \"a\""), "{shown}");
        assert!(lines[2].starts_with("t.yaml:7:18: route \"r\": target \"b\""), "{shown}");
        assert!(lines[3].starts_with("t.yaml:9:7: timers.t1"), "{shown}");
    }

    #[test]
    fn load_file_reports_the_path() {
        let dir =
            std::env::temp_dir().join(format!("sipborder-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.yaml");
        std::fs::write(&path, "zones:\n  - name: lan\n    udpp: 1.2.3.4:5\n")
            .expect("write temp file");
        let err = load_file(&path).expect_err("unknown key");
        assert!(err.to_string().starts_with(&format!("{}:3:5: ", path.display())), "{err}");

        std::fs::write(&path, EMBEDDED_YAML).expect("write temp file");
        assert!(load_file(&path).is_ok());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn unreadable_file_is_an_error_without_position() {
        let path = Path::new("/nonexistent/sipborder.yaml");
        let err = load_file(path).expect_err("no such file");
        let shown = err.to_string();
        assert!(shown.starts_with("/nonexistent/sipborder.yaml: cannot read: "), "{shown}");
    }
}
