//! The YAML schema of a policy file (`policies/*.yaml`), as written by people.
//!
//! ```yaml
//! description: what this file is for
//! rules:
//!   - name: e164-called
//!     when:                      # every field optional; all given must hold
//!       direction: to-trunk      # to-trunk | to-lan
//!       message: request         # request | response
//!       method: INVITE           # or [INVITE, UPDATE]; for a response, its CSeq method
//!       response: 4xx            # or 404, or [404, 5xx]; implies a response
//!       present: [P-Asserted-Identity]
//!       absent: Privacy
//!       headers: {User-Agent: "^MicroSIP"}     # value regex, any instance
//!       ruri_user: "^0[1-9]"     # also ruri_host, from_user, from_host, to_user, to_host
//!       source_zone: lan         # or a list
//!     do:
//!       - set: {header: X-Trunk, value: "${ruri.host}"}
//!       - add: {header: X-Note, value: "from ${from.user}"}
//!       - remove: {header: X-Asterisk-HangupCause}   # or [A, B], or {regex: "^X-"}
//!       - rename: {from: Remote-Party-ID, to: P-Asserted-Identity}
//!       - replace: {header: User-Agent, regex: "MicroSIP/.*", with: "sipborder"}
//!       - rewrite_user: {header: Request-URI, regex: "^0([1-9]\\d+)$", with: "+49$1"}
//!       - rewrite_user: {header: To, strip_prefix: "00", add_prefix: "+"}
//!       - rewrite_host: {header: Request-URI, value: sip.itsp.example}
//!       - display_name: {header: From, value: "Reception"}
//!       - allow_headers: [Allow, Supported, User-Agent, P-Asserted-Identity]
//!       - translate_response: {from: 404, to: 480}
//!       - codecs: [PCMA, PCMU]
//!       - reject: {code: 403, reason: Forbidden}
//! tests:
//!   - name: national number becomes E.164
//!     direction: to-trunk
//!     message: |
//!       INVITE sip:0301234567@pbx.example SIP/2.0
//!       ...
//!     expect:
//!       request_uri: sip:+49301234567@pbx.example
//!       headers: {P-Asserted-Identity: "<sip:+4930123@itsp.example>"}
//!       absent: [X-Asterisk-HangupCause]
//!       fired: [e164-called]
//!       # also: status: 480, reject: 488, body_contains: [..], body_lacks: [..]
//! ```
//!
//! # What a rule can touch
//!
//! Topology hiding is built in and a policy can neither break it nor be blocked by it. The B2BUA
//! writes these headers itself on every leg, and a rule that names one in any action (`set`,
//! `add`, `remove`, `rename` from or to, `replace`, `rewrite_*`, `display_name`, `allow_headers`)
//! is refused when the file is loaded, with its line and column: **Via, Call-ID, CSeq, Contact,
//! Route, Record-Route, Max-Forwards, Content-Length**. **From** and **To** carry the dialog tags
//! the B2BUA owns: their URI and display name may be changed with `rewrite_user`, `rewrite_host`
//! and `display_name` only (tags survive). A `remove: {regex}` that would match any of these names
//! is refused too (the regex is tried against each at load), and `allow_headers` keeps them
//! whatever the list says, with Content-Type and the per-leg headers the B2BUA builds (RSeq, RAck,
//! Authorization, Proxy-Authorization, Proxy-Require, Session-Expires, Min-SE).
//!
//! # Semantics
//!
//! - Rules run in file order on the outgoing message; each sees what earlier rules changed. A
//!   message crossing from peer X to peer Y runs X's policies, then Y's.
//! - A rule *fires* when its conditions hold. A rule with `reject` only matches requests, one with
//!   `translate_response` only responses; ACK is never rejected.
//! - Header names match case-insensitively, compact forms included (`f` is From). Value regexes
//!   match if any instance of the header matches; host regexes ignore case, user regexes do not.
//!   A URI without a user part has an empty user.
//! - `set` replaces every instance by one (in place) or adds the header; `add` appends another.
//! - Templates (`value` of set, add, rewrite_*, display_name) know `${from.user}`,
//!   `${from.host}`, `${to.user}`, `${to.host}`, `${ruri.user}`, `${ruri.host}` and
//!   `${header.NAME}` (first instance); `$$` is a `$`. If one names something the message lacks,
//!   the action is skipped: no half-filled header is ever written.
//! - `replace.with` and `rewrite_*.with` use the regex crate's replacement syntax (`$1`).
//!   `rewrite_*` with `strip_prefix` does nothing unless the part starts with it; `add_prefix`
//!   alone always adds. They rewrite every URI of every instance (`Diversion`, a two-value
//!   P-Asserted-Identity), tel: URIs included (a tel: URI has no host).
//! - `codecs` keeps the listed codecs in that order plus telephone-event in SDP bodies; an offer in
//!   a request left with nothing is rejected with 488, a response or ACK keeps its body.
//! - `translate_response` changes only 3xx-6xx into 3xx-6xx (a 1xx or 2xx would break call
//!   state); the reason phrase is the standard one unless given.
//!
//! Values that can be checked alone (directions, status codes) are checked while deserializing so
//! serde_yaml reports their position; regexes, header names and templates are kept as text here
//! and checked by `compile`, which reports every problem at once with its line and column.

use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// One policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Free text for the reader.
    #[serde(default)]
    pub description: Option<String>,
    /// The rules, applied in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Examples the test suite and `sipborder policy test` check.
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

/// `{name, when, do}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Reported when the rule fires; unique within a file.
    pub name: String,
    /// Conditions; all must hold. Absent: always.
    #[serde(default)]
    pub when: When,
    /// Actions, in order.
    #[serde(rename = "do")]
    pub actions: Vec<Action>,
}

/// Which way the message crosses: toward the carrier side or toward the LAN side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The outgoing leg's zone faces the carrier.
    ToTrunk,
    /// The outgoing leg's zone faces the LAN (PBX, phones).
    ToLan,
}

impl Direction {
    /// Both directions, in plan order.
    pub const ALL: [Direction; 2] = [Direction::ToTrunk, Direction::ToLan];

    /// As written in YAML and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToTrunk => "to-trunk",
            Direction::ToLan => "to-lan",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::ToTrunk => 0,
            Direction::ToLan => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "to-trunk" => Ok(Direction::ToTrunk),
            "to-lan" => Ok(Direction::ToLan),
            other => Err(format!("unknown direction {other:?}, expected to-trunk or to-lan")),
        }
    }
}

/// Requests or responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// Requests only.
    Request,
    /// Responses only.
    Response,
}

/// A status code (`404`) or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSpec {
    /// Exactly this code.
    Code(u16),
    /// Any code of this hundred (`4` for `4xx`).
    Class(u16),
}

impl CodeSpec {
    /// True when `code` is covered.
    pub fn matches(self, code: u16) -> bool {
        match self {
            CodeSpec::Code(c) => c == code,
            CodeSpec::Class(c) => code / 100 == c,
        }
    }

    /// The hundred the spec lies in (`4` for 404 and for 4xx).
    pub fn class(self) -> u16 {
        match self {
            CodeSpec::Code(c) => c / 100,
            CodeSpec::Class(c) => c,
        }
    }

    fn parse(s: &str) -> Option<CodeSpec> {
        let s = s.trim();
        if let Some(d) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            return match d.parse::<u16>() {
                Ok(c) if (1..=6).contains(&c) && d.len() == 1 => Some(CodeSpec::Class(c)),
                _ => None,
            };
        }
        match s.parse::<u16>() {
            Ok(c) if (100..=699).contains(&c) => Some(CodeSpec::Code(c)),
            _ => None,
        }
    }
}

impl fmt::Display for CodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeSpec::Code(c) => write!(f, "{c}"),
            CodeSpec::Class(c) => write!(f, "{c}xx"),
        }
    }
}

const CODE_EXPECTING: &str = "a status code 100..699 such as 404, or a class such as 4xx";

impl<'de> Deserialize<'de> for CodeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CodeSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(CODE_EXPECTING)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CodeSpec, E> {
                match u16::try_from(v) {
                    Ok(c) if (100..=699).contains(&c) => Ok(CodeSpec::Code(c)),
                    _ => Err(E::custom(format!("bad status code {v}: expected {CODE_EXPECTING}"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CodeSpec, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => {
                        Err(E::custom(format!("bad status code {v}: expected {CODE_EXPECTING}")))
                    }
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CodeSpec, E> {
                CodeSpec::parse(v).ok_or_else(|| {
                    E::custom(format!("bad status code {v:?}: expected {CODE_EXPECTING}"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A status code for actions that produce one (reject, translate): 100..699.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusValue(pub u16);

impl<'de> Deserialize<'de> for StatusValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        match u16::try_from(v) {
            Ok(c) if (100..=699).contains(&c) => Ok(StatusValue(c)),
            _ => Err(de::Error::custom(format!("bad status code {v}: expected 100..699"))),
        }
    }
}

/// One value or a list of them (`method: INVITE` or `method: [INVITE, UPDATE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(List(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<List<T>, E> {
                T::deserialize(v.into_deserializer()).map(|v| List(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<List<T>, E> {
                T::deserialize(v.into_deserializer()).map(|v| List(vec![v]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<List<T>, E> {
                T::deserialize(v.into_deserializer()).map(|v| List(vec![v]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<List<T>, E> {
                T::deserialize(v.into_deserializer()).map(|v| List(vec![v]))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Conditions of a rule. Every field is optional and all given ones must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The direction the message is crossing in.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Requests or responses only.
    #[serde(default)]
    pub message: Option<MessageKind>,
    /// Request methods; for a response, the method in its CSeq.
    #[serde(default)]
    pub method: Option<List<String>>,
    /// Status codes or classes; the rule then applies to responses only.
    #[serde(default)]
    pub response: Option<List<CodeSpec>>,
    /// Headers that must all be present.
    #[serde(default)]
    pub present: Option<List<String>>,
    /// Headers that must all be absent.
    #[serde(default)]
    pub absent: Option<List<String>>,
    /// Header name → regex one of its values must match.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Regex on the Request-URI user part (requests only).
    #[serde(default)]
    pub ruri_user: Option<String>,
    /// Regex on the Request-URI host (requests only).
    #[serde(default)]
    pub ruri_host: Option<String>,
    /// Regex on the From URI user part (empty when it has none).
    #[serde(default)]
    pub from_user: Option<String>,
    /// Regex on the From URI host.
    #[serde(default)]
    pub from_host: Option<String>,
    /// Regex on the To URI user part (empty when it has none).
    #[serde(default)]
    pub to_user: Option<String>,
    /// Regex on the To URI host.
    #[serde(default)]
    pub to_host: Option<String>,
    /// Zone the message arrived from.
    #[serde(default)]
    pub source_zone: Option<List<String>>,
}

/// `set` and `add`: a header and a value template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    /// Header name.
    pub header: String,
    /// Value; may use `${from.user}`, `${from.host}`, `${to.user}`, `${to.host}`,
    /// `${ruri.user}`, `${ruri.host}`, `${header.NAME}`; `$$` is a literal `$`.
    pub value: String,
}

/// `remove`: by name(s) or by a regex on the name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    /// Header names.
    #[serde(default)]
    pub header: Option<List<String>>,
    /// Regex on header names (case-insensitive).
    #[serde(default)]
    pub regex: Option<String>,
}

/// `rename`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// Current name.
    pub from: String,
    /// New name.
    pub to: String,
}

/// `replace`: regex replacement inside a header's values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// Header name.
    pub header: String,
    /// What to find (every match is replaced).
    pub regex: String,
    /// Replacement, in the regex crate's syntax (`$1`, `${name}`).
    pub with: String,
}

/// `rewrite_user` / `rewrite_host`: one of `value`, `regex` + `with`, or `strip_prefix` and/or
/// `add_prefix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteUri {
    /// `Request-URI`, `From`, `To`, or another header holding name-addrs
    /// (`P-Asserted-Identity`, `Diversion`...).
    pub header: String,
    /// New value (template).
    #[serde(default)]
    pub value: Option<String>,
    /// Regex on the current part; no match, no change.
    #[serde(default)]
    pub regex: Option<String>,
    /// Replacement for `regex` (`$1`).
    #[serde(default)]
    pub with: Option<String>,
    /// Only when the part starts with it: removed, then `add_prefix` is put in front.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// Put in front (after `strip_prefix` when both are given).
    #[serde(default)]
    pub add_prefix: Option<String>,
}

/// `display_name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayName {
    /// `From`, `To`, or another header holding name-addrs.
    pub header: String,
    /// New display name (template); empty removes it.
    pub value: String,
}

/// `translate_response`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Translate {
    /// Codes to translate; absent: whatever response the rule matched.
    #[serde(default)]
    pub from: Option<List<CodeSpec>>,
    /// The code sent instead.
    pub to: StatusValue,
    /// Reason phrase; absent: the standard one of `to`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `reject`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectSpec {
    /// Status code, 400..699.
    pub code: StatusValue,
    /// Reason phrase; absent: the standard one.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One action: a single-key mapping naming it (`- set: {header: X, value: Y}`).
#[derive(Debug, Clone)]
pub enum Action {
    /// Replace every instance by one with this value, or add it.
    Set(HeaderValue),
    /// Append one more instance.
    Add(HeaderValue),
    /// Remove by name or by name regex.
    Remove(Remove),
    /// Rename, keeping value and position.
    Rename(Rename),
    /// Regex replacement inside values.
    Replace(Replace),
    /// Rewrite the user part of a URI.
    RewriteUser(RewriteUri),
    /// Rewrite the host part of a URI.
    RewriteHost(RewriteUri),
    /// Set or remove the display name.
    DisplayName(DisplayName),
    /// Keep only these headers (and those the B2BUA owns).
    AllowHeaders(Vec<String>),
    /// Change a response's status code.
    TranslateResponse(Translate),
    /// SDP codec filter with a preference list.
    Codecs(Vec<String>),
    /// Refuse the request.
    Reject(RejectSpec),
}

/// Action names as written in YAML.
pub const ACTION_NAMES: &[&str] = &[
    "set",
    "add",
    "remove",
    "rename",
    "replace",
    "rewrite_user",
    "rewrite_host",
    "display_name",
    "allow_headers",
    "translate_response",
    "codecs",
    "reject",
];

impl Action {
    /// The YAML key of this action.
    pub fn key(&self) -> &'static str {
        match self {
            Action::Set(_) => "set",
            Action::Add(_) => "add",
            Action::Remove(_) => "remove",
            Action::Rename(_) => "rename",
            Action::Replace(_) => "replace",
            Action::RewriteUser(_) => "rewrite_user",
            Action::RewriteHost(_) => "rewrite_host",
            Action::DisplayName(_) => "display_name",
            Action::AllowHeaders(_) => "allow_headers",
            Action::TranslateResponse(_) => "translate_response",
            Action::Codecs(_) => "codecs",
            Action::Reject(_) => "reject",
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an action written as a one-key mapping, e.g. `- set: {header: X-Foo, value: bar}`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty action; expected one of {}",
                        ACTION_NAMES.join(", ")
                    )));
                };
                let action = match key.as_str() {
                    "set" => Action::Set(map.next_value()?),
                    "add" => Action::Add(map.next_value()?),
                    "remove" => Action::Remove(map.next_value()?),
                    "rename" => Action::Rename(map.next_value()?),
                    "replace" => Action::Replace(map.next_value()?),
                    "rewrite_user" => Action::RewriteUser(map.next_value()?),
                    "rewrite_host" => Action::RewriteHost(map.next_value()?),
                    "display_name" => Action::DisplayName(map.next_value()?),
                    "allow_headers" => Action::AllowHeaders(map.next_value::<List<String>>()?.0),
                    "translate_response" => Action::TranslateResponse(map.next_value()?),
                    "codecs" => Action::Codecs(map.next_value::<List<String>>()?.0),
                    "reject" => Action::Reject(map.next_value()?),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown action `{other}`, expected one of {}",
                            ACTION_NAMES.join(", ")
                        )))
                    }
                };
                if let Some(more) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "one action per list item: `{key}` and `{more}` are in the same item; start `{more}` on its own `- ` line"
                    )));
                }
                Ok(action)
            }
        }
        d.deserialize_map(V)
    }
}

/// One example in a policy file's `tests:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in reports.
    pub name: String,
    /// Direction the message crosses in.
    pub direction: Direction,
    /// Zone the message came from.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// The message, as SIP text; LF line endings are turned into CRLF and Content-Length is
    /// recomputed, so a hand-written message need not count bytes.
    pub message: String,
    /// What must hold after the rules.
    pub expect: Expect,
}

fn default_zone() -> String {
    "lan".to_string()
}

/// Expectations of a test.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Header → value; several instances are compared joined with `, `.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers that must be gone.
    #[serde(default)]
    pub absent: Vec<String>,
    /// The Request-URI after the rules.
    #[serde(default)]
    pub request_uri: Option<String>,
    /// The status code after the rules (responses).
    #[serde(default)]
    pub status: Option<u16>,
    /// The request is refused with this code.
    #[serde(default)]
    pub reject: Option<u16>,
    /// Rule names that fire, in order.
    #[serde(default)]
    pub fired: Option<Vec<String>>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Vec<String>,
    /// Text the body must not contain.
    #[serde(default)]
    pub body_lacks: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_specs() {
        assert_eq!(CodeSpec::parse("404"), Some(CodeSpec::Code(404)));
        assert_eq!(CodeSpec::parse("4xx"), Some(CodeSpec::Class(4)));
        assert_eq!(CodeSpec::parse("7xx"), None);
        assert_eq!(CodeSpec::parse("40xx"), None);
        assert_eq!(CodeSpec::parse("99"), None);
        assert!(CodeSpec::Class(4).matches(486));
        assert!(!CodeSpec::Code(404).matches(480));
    }

    #[test]
    fn one_or_many() {
        let w: When =
            serde_yaml::from_str("method: INVITE\nresponse: [404, 5xx]\nsource_zone: [a, b]\n")
                .expect("valid");
        assert_eq!(w.method, Some(List(vec!["INVITE".to_string()])));
        assert_eq!(w.response, Some(List(vec![CodeSpec::Code(404), CodeSpec::Class(5)])));
        assert_eq!(w.source_zone.map(|z| z.0.len()), Some(2));
    }

    #[test]
    fn actions_are_one_key_mappings() {
        let r: Rule = serde_yaml::from_str(
            "name: a\ndo:\n  - set: {header: X, value: Y}\n  - codecs: PCMA\n  - remove: {regex: '^X-'}\n",
        )
        .expect("valid");
        assert_eq!(
            r.actions.iter().map(Action::key).collect::<Vec<_>>(),
            ["set", "codecs", "remove"]
        );
    }

    #[test]
    fn direction_parses_both_ways() {
        assert_eq!("to-lan".parse::<Direction>(), Ok(Direction::ToLan));
        assert!("lan".parse::<Direction>().is_err());
        assert_eq!(Direction::ToTrunk.to_string(), "to-trunk");
    }
}
