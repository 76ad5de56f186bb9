//! Loading a policy file: parse, check, and compile it into per-direction plans.
//!
//! Everything that can be decided once is decided here, so applying a policy to a message costs
//! no regex compilation, no name lookups beyond a case-insensitive compare, and no allocation
//! while rules do not match: regexes are compiled, header names expanded from compact forms and
//! canonicalised, templates split into literal and variable pieces, and the rules sorted into one
//! plan per direction.
//!
//! A file is checked as a whole: serde_yaml stops at the first syntax or schema error, but every
//! later problem (bad regex, header the B2BUA owns, unknown template variable, test naming a rule
//! that does not exist) is collected, each with the line and column of the value at fault, found
//! with the configuration's own locator.

use super::rules::{
    Action, CodeSpec, Direction, List, MessageKind, PolicyFile, RewriteUri, TestCase, When,
};
use super::topology;
use crate::config::locate::{Locator, Seg};
use crate::config::ConfigError;
use crate::sip::headers::{make, name_value};
use crate::sip::normalize::{expand_compact, is_token};
use regex::{Regex, RegexBuilder};
use rsip::Header;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// One problem in a policy file, with where it is.
///
/// Displays as `file:line:column: message`; `line` and `column` are 1-based and both 0 when the
/// problem has no position (unreadable file), the display then being `file: message`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}{}: {message}", position(.line, .column))]
pub struct PolicyError {
    /// The file as named by the caller.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: usize,
    /// 1-based column in characters, 0 if unknown.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

fn position(line: &usize, column: &usize) -> String {
    if *line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// Every problem found, in file then text order; one per line when displayed. Never empty when
/// returned by this module.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl From<PolicyError> for PolicyErrors {
    fn from(e: PolicyError) -> Self {
        PolicyErrors(vec![e])
    }
}

/// So a configuration check can list policy problems among its own.
impl From<PolicyError> for ConfigError {
    fn from(e: PolicyError) -> Self {
        ConfigError { file: e.file, line: e.line, column: e.column, message: e.message }
    }
}

/// Headers no policy may name: the B2BUA writes them on each leg. From and To are owned too, but
/// their URI and display name may be rewritten (see [`is_from_or_to`]).
pub fn owned_by_b2bua() -> impl Iterator<Item = &'static str> {
    topology::B2BUA_OWNED.iter().copied().filter(|n| !is_from_or_to(n))
}

fn is_from_or_to(name: &str) -> bool {
    name.eq_ignore_ascii_case("From") || name.eq_ignore_ascii_case("To")
}

/// Kept by `allow_headers` whatever the list says: besides the owned ones, the headers the B2BUA
/// builds per leg (stripping them would break PRACK, authentication or session timers) and
/// Content-Type, without which a body cannot be read (RFC 3261 §20.15).
const ALWAYS_ALLOWED: &[&str] = &[
    "Content-Type",
    "RSeq",
    "RAck",
    "Authorization",
    "Proxy-Authorization",
    "Proxy-Require",
    "Session-Expires",
    "Min-SE",
];

/// A header name, canonical (compact forms expanded, rsip's spelling for known headers), matched
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HName {
    name: Box<str>,
    /// rsip's variant for a known header: matching it is one compare, no name lookup.
    kind: Option<std::mem::Discriminant<Header>>,
}

impl HName {
    fn new(written: &str) -> HName {
        let written = written.trim();
        let written = expand_compact(written.as_bytes()).unwrap_or(written);
        match make(written, "") {
            Header::Other(_, _) => HName { name: written.into(), kind: None },
            known => HName {
                name: name_value(&known).0.into(),
                kind: Some(std::mem::discriminant(&known)),
            },
        }
    }

    /// True when a header named `name` (as rsip reports it) is this one.
    #[inline]
    pub(crate) fn is(&self, name: &str) -> bool {
        name.len() == self.name.len() && name.eq_ignore_ascii_case(&self.name)
    }

    /// True when `h` is this header.
    #[inline]
    pub(crate) fn matches(&self, h: &Header) -> bool {
        match h {
            Header::Other(n, _) => self.is(n),
            known => self.kind == Some(std::mem::discriminant(known)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }
}

/// A regex, or the plain text test it amounts to. Most patterns in policies are literals with
/// an anchor (`^X-`, `<file:`, `^Cisco-SIPGateway`); for those a byte compare is several times
/// cheaper than a regex search, whose fixed cost dominates on short header values.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Exact(Box<str>, bool),
    Prefix(Box<str>, bool),
    Suffix(Box<str>, bool),
    Contains(Box<str>, bool),
    Regex(Regex),
}

impl Matcher {
    fn new(re: Regex, nocase: bool) -> Matcher {
        let p = re.as_str();
        let (anchored_start, rest) = match p.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, p),
        };
        let (anchored_end, lit) = match rest.strip_suffix('$') {
            Some(r) if !r.ends_with('\\') => (true, r),
            _ => (false, rest),
        };
        // Case folding beyond ASCII is the regex crate's business.
        let plain = !lit.is_empty()
            && lit.chars().all(|c| !"\\.+*?()|[]{}^$#".contains(c) && !c.is_whitespace())
            && (!nocase || lit.is_ascii());
        if !plain {
            return Matcher::Regex(re);
        }
        let lit: Box<str> = lit.into();
        match (anchored_start, anchored_end) {
            (true, true) => Matcher::Exact(lit, nocase),
            (true, false) => Matcher::Prefix(lit, nocase),
            (false, true) => Matcher::Suffix(lit, nocase),
            (false, false) => Matcher::Contains(lit, nocase),
        }
    }

    #[inline]
    pub(crate) fn is_match(&self, s: &str) -> bool {
        fn eq(a: &[u8], b: &[u8], nocase: bool) -> bool {
            if nocase {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        }
        let (h, b) = (s.as_bytes(), |l: &str| l.len());
        match self {
            Matcher::Exact(l, n) => eq(h, l.as_bytes(), *n),
            Matcher::Prefix(l, n) => h.len() >= b(l) && eq(&h[..b(l)], l.as_bytes(), *n),
            Matcher::Suffix(l, n) => h.len() >= b(l) && eq(&h[h.len() - b(l)..], l.as_bytes(), *n),
            Matcher::Contains(l, false) => s.contains(&**l),
            Matcher::Contains(l, true) => {
                h.windows(b(l)).any(|w| w.eq_ignore_ascii_case(l.as_bytes()))
            }
            Matcher::Regex(re) => re.is_match(s),
        }
    }
}

/// Where a URI lives.
#[derive(Debug, Clone)]
pub(crate) enum UriTarget {
    /// The request line.
    RequestUri,
    /// Every name-addr of every instance of a header.
    Header(HName),
}

/// User or host part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    User,
    Host,
}

/// How a URI part is rewritten.
#[derive(Debug, Clone)]
pub(crate) enum UriOp {
    Value(Template),
    Regex(Regex, String),
    Prefix { strip: Option<String>, add: String },
}

/// A value with `${...}` references, split once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Template {
    pub(crate) pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Lit(String),
    Var(Var),
}

/// What a template can read from the message.
#[derive(Debug, Clone)]
pub(crate) enum Var {
    Uri(UriField, Part),
    Header(HName),
}

/// The URIs conditions and templates can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriField {
    RequestUri,
    From,
    To,
}

const TEMPLATE_VARS: &str =
    "${from.user}, ${from.host}, ${to.user}, ${to.host}, ${ruri.user}, ${ruri.host}, ${header.NAME}";

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(r) = after.strip_prefix('$') {
                lit.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let Some(end) = r.find('}') else {
                    return Err(format!("unclosed ${{ in {text:?}"));
                };
                let var = parse_var(&r[..end])?;
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Var(var));
                rest = &r[end + 1..];
            } else {
                lit.push('$');
                rest = after;
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template { pieces })
    }

    /// The text when the template has no variables.
    pub(crate) fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

fn parse_var(name: &str) -> Result<Var, String> {
    let n = name.trim();
    let uri = |f, p| Ok(Var::Uri(f, p));
    match n {
        "from.user" => uri(UriField::From, Part::User),
        "from.host" => uri(UriField::From, Part::Host),
        "to.user" => uri(UriField::To, Part::User),
        "to.host" => uri(UriField::To, Part::Host),
        "ruri.user" => uri(UriField::RequestUri, Part::User),
        "ruri.host" => uri(UriField::RequestUri, Part::Host),
        _ => match n.strip_prefix("header.") {
            Some(h) if valid_header_name(h) => Ok(Var::Header(HName::new(h))),
            _ => Err(format!("unknown template variable ${{{name}}}; known: {TEMPLATE_VARS}")),
        },
    }
}

/// Compiled conditions, cheapest first when evaluated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cond {
    pub(crate) kind: Option<MessageKind>,
    pub(crate) methods: Vec<(rsip::Method, String)>,
    pub(crate) responses: Vec<CodeSpec>,
    pub(crate) zones: Vec<String>,
    pub(crate) present: Vec<HName>,
    pub(crate) absent: Vec<HName>,
    pub(crate) header_res: Vec<(HName, Matcher)>,
    pub(crate) uri_res: Vec<(UriField, Part, Matcher)>,
}

/// Compiled actions.
#[derive(Debug, Clone)]
pub(crate) enum Act {
    Set(HName, Template),
    Add(HName, Template),
    Remove(Vec<HName>),
    RemoveRegex(Matcher),
    Rename(HName, HName),
    Replace(HName, Regex, String),
    Rewrite(UriTarget, Part, UriOp),
    Display(HName, Template),
    Allow(Vec<HName>),
    Translate { from: Vec<CodeSpec>, to: u16, reason: Option<String> },
    Codecs(Vec<String>),
    Reject { code: u16, reason: String },
}

/// One rule, ready to run.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) name: String,
    pub(crate) cond: Cond,
    pub(crate) actions: Vec<Act>,
}

/// A policy file, checked and compiled: one plan (the rules that can apply, in order) per
/// direction. Cheap to share behind an `Arc` across calls; calls in progress keep the `Arc` they
/// started with across a reload.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) description: Option<String>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) plans: [Vec<usize>; 2],
    pub(crate) tests: Vec<TestCase>,
}

impl CompiledPolicy {
    /// The file stem (`itsp-generic` for `policies/itsp-generic.yaml`): a bounded metric label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file as named when loading.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The file's `description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Rule names in file order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Names of the rules that can apply in `dir`, in order.
    pub fn plan(&self, dir: Direction) -> impl Iterator<Item = &str> {
        self.plans[dir.index()].iter().filter_map(|&i| self.rules.get(i)).map(|r| r.name.as_str())
    }

    /// The file's `tests:`.
    pub fn tests(&self) -> &[TestCase] {
        &self.tests
    }
}

/// Parses, checks and compiles a policy text. `origin` names it in errors.
pub fn compile_str(text: &str, origin: &str) -> Result<CompiledPolicy, PolicyErrors> {
    let file: PolicyFile = serde_yaml::from_str(text).map_err(|e| {
        let c = crate::config::from_serde(&e, origin);
        PolicyError { file: c.file, line: c.line, column: c.column, message: c.message }
    })?;
    let locator = Locator::new(text);
    let mut cx = Checker { locator: &locator, file: origin, errors: Vec::new() };
    let rules: Vec<CompiledRule> =
        file.rules.iter().enumerate().filter_map(|(i, r)| cx.rule(i, r, &file)).collect();
    cx.tests(&file);
    if !cx.errors.is_empty() {
        let mut errors = cx.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(PolicyErrors(errors));
    }
    let plans = Direction::ALL.map(|d| {
        file.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.when.direction.is_none_or(|w| w == d))
            .map(|(i, _)| i)
            .collect()
    });
    Ok(CompiledPolicy {
        name: stem(origin),
        origin: origin.to_string(),
        description: file.description,
        rules,
        plans,
        tests: file.tests,
    })
}

fn stem(origin: &str) -> String {
    Path::new(origin).file_stem().map_or_else(|| origin.to_string(), |s| s.to_string_lossy().into())
}

/// Reads, checks and compiles a policy file; errors carry the path as given.
pub fn load_file(path: &Path) -> Result<CompiledPolicy, PolicyErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        file: origin.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    compile_str(&text, &origin)
}

/// Loads several files (a trunk's list, or `sipborder check`), reporting the problems of all
/// of them rather than stopping at the first bad file.
pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Arc<CompiledPolicy>>, PolicyErrors> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_file(p.as_ref()) {
            Ok(c) => ok.push(Arc::new(c)),
            Err(PolicyErrors(e)) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(PolicyErrors(errors))
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_token)
}

/// The one-line reason of a regex error; the crate's syntax errors span several lines (pattern,
/// caret, reason) which would break the one-problem-per-line listing.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

struct Checker<'a> {
    locator: &'a Locator,
    file: &'a str,
    errors: Vec<PolicyError>,
}

impl Checker<'_> {
    fn err(&mut self, path: &[Seg], message: String) {
        let (line, column) = self.locator.locate(path).map_or((0, 0), |p| (p.line, p.column));
        self.errors.push(PolicyError { file: self.file.to_string(), line, column, message });
    }

    fn regex(&mut self, path: &[Seg], what: &str, pattern: &str, nocase: bool) -> Option<Regex> {
        match RegexBuilder::new(pattern).case_insensitive(nocase).build() {
            Ok(r) => Some(r),
            Err(e) => {
                self.err(path, format!("{what}: bad regex {pattern:?}: {}", regex_reason(&e)));
                None
            }
        }
    }

    fn header_name(&mut self, path: &[Seg], what: &str, name: &str) -> Option<HName> {
        if valid_header_name(name.trim()) {
            Some(HName::new(name))
        } else {
            self.err(
                path,
                format!(
                    "{what}: bad header name {name:?}: a header name is a token (letters, digits and - . ! % * _ + ` ' ~)"
                ),
            );
            None
        }
    }

    /// A header an action would write or remove: refused when the B2BUA owns it.
    fn touchable(&mut self, path: &[Seg], what: &str, name: &str) -> Option<HName> {
        let h = self.header_name(path, what, name)?;
        if is_from_or_to(h.as_str()) {
            self.err(path, format!(
                "{what}: {} carries the dialog tag the B2BUA owns; change its URI or display name with rewrite_user, rewrite_host or display_name instead",
                h.as_str()
            ));
            return None;
        }
        if topology::is_owned(h.as_str()) {
            self.err(path, owned_message(what, h.as_str()));
            return None;
        }
        Some(h)
    }

    /// A header whose name-addrs a rewrite may change: From and To allowed.
    fn uri_header(&mut self, path: &[Seg], what: &str, name: &str) -> Option<HName> {
        let h = self.header_name(path, what, name)?;
        if topology::is_owned(h.as_str()) && !is_from_or_to(h.as_str()) {
            self.err(path, owned_message(what, h.as_str()));
            return None;
        }
        Some(h)
    }

    /// Text that goes into a header or a status line: a line break would let it write a header
    /// of its own (an owned one included), so control characters other than tab are refused.
    fn one_line(&mut self, path: &[Seg], what: &str, text: &str) -> bool {
        if text.chars().any(|c| c.is_control() && c != '\t') {
            self.err(path, format!("{what}: {text:?} contains a line break or control character"));
            false
        } else {
            true
        }
    }

    fn template(&mut self, path: &[Seg], what: &str, text: &str) -> Option<Template> {
        if !self.one_line(path, what, text) {
            return None;
        }
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(path, format!("{what}: {e}"));
                None
            }
        }
    }

    fn rule(
        &mut self,
        i: usize,
        rule: &super::rules::Rule,
        file: &PolicyFile,
    ) -> Option<CompiledRule> {
        let base = [Seg::Key("rules"), Seg::Index(i)];
        let errors_before = self.errors.len();
        let label = format!("rule {:?}", rule.name);
        if rule.name.trim().is_empty() {
            self.err(&[&base[..], &["name".into()]].concat(), "rule name is empty".into());
        } else if let Some(first) = file.rules[..i].iter().position(|r| r.name == rule.name) {
            let at = self.locator.locate(&["rules".into(), first.into()]).map_or(0, |p| p.line);
            self.err(
                &[&base[..], &["name".into()]].concat(),
                format!("{label}: a rule of this name is already defined on line {at}"),
            );
        }
        if rule.actions.is_empty() {
            self.err(&[&base[..], &["do".into()]].concat(), format!("{label}: `do` is empty"));
        }
        let mut cond = self.when(&base, &label, &rule.when);
        let mut actions = Vec::with_capacity(rule.actions.len());
        for (j, a) in rule.actions.iter().enumerate() {
            let path = [base[0], base[1], Seg::Key("do"), Seg::Index(j), Seg::Key(a.key())];
            if let Some(act) = self.action(&path, &label, a, &rule.when) {
                actions.push(act);
            }
        }
        // A rule that rejects only concerns requests, one that translates only responses; saying
        // so in the condition keeps it from being reported as fired on the other kind.
        let rejects = actions.iter().any(|a| matches!(a, Act::Reject { .. }));
        let translates = actions.iter().any(|a| matches!(a, Act::Translate { .. }));
        if rejects && translates {
            self.err(
                &[&base[..], &["do".into()]].concat(),
                format!("{label}: a rule cannot both reject requests and translate responses; split it in two"),
            );
        } else if cond.kind.is_none() && cond.responses.is_empty() {
            cond.kind = if rejects {
                Some(MessageKind::Request)
            } else if translates {
                Some(MessageKind::Response)
            } else {
                None
            };
        }
        (self.errors.len() == errors_before).then(|| CompiledRule {
            name: rule.name.clone(),
            cond,
            actions,
        })
    }

    fn when(&mut self, base: &[Seg], label: &str, w: &When) -> Cond {
        let at = |key: &'static str| [base[0], base[1], Seg::Key("when"), Seg::Key(key)];
        let mut c = Cond { kind: w.message, ..Cond::default() };
        if let Some(List(methods)) = &w.method {
            for (k, m) in methods.iter().enumerate() {
                match m.parse::<rsip::Method>() {
                    Ok(parsed) if valid_header_name(m) => {
                        c.methods.push((parsed, parsed.to_string()))
                    }
                    _ => {
                        let known =
                            rsip::Method::all().iter().map(ToString::to_string).collect::<Vec<_>>();
                        self.err(
                            &[&at("method")[..], &[Seg::Index(k)]].concat(),
                            format!(
                                "{label}: unknown method {m:?}; expected one of {}",
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        if let Some(List(codes)) = &w.response {
            if w.message == Some(MessageKind::Request) {
                self.err(
                    &at("response"),
                    format!("{label}: `response` cannot match when `message: request`"),
                );
            }
            c.responses = codes.clone();
        }
        if let Some(List(zones)) = &w.source_zone {
            c.zones = zones.clone();
        }
        for (key, list, out) in
            [("present", &w.present, &mut c.present), ("absent", &w.absent, &mut c.absent)]
        {
            if let Some(List(names)) = list {
                for (k, n) in names.iter().enumerate() {
                    let path = [&at(key)[..], &[Seg::Index(k)]].concat();
                    if let Some(h) = self.header_name(&path, label, n) {
                        out.push(h);
                    }
                }
            }
        }
        for (name, pattern) in &w.headers {
            let path = [&at("headers")[..], &[Seg::Key(name)]].concat();
            let h = self.header_name(&path, label, name);
            let r = self.regex(&path, label, pattern, false);
            if let (Some(h), Some(r)) = (h, r) {
                c.header_res.push((h, Matcher::new(r, false)));
            }
        }
        let uris = [
            ("ruri_user", &w.ruri_user, UriField::RequestUri, Part::User),
            ("ruri_host", &w.ruri_host, UriField::RequestUri, Part::Host),
            ("from_user", &w.from_user, UriField::From, Part::User),
            ("from_host", &w.from_host, UriField::From, Part::Host),
            ("to_user", &w.to_user, UriField::To, Part::User),
            ("to_host", &w.to_host, UriField::To, Part::Host),
        ];
        for (key, pattern, field, part) in uris {
            if let Some(p) = pattern {
                // Host names are case-insensitive (RFC 3261 §19.1.4); user parts are not.
                if let Some(r) = self.regex(&at(key), label, p, part == Part::Host) {
                    c.uri_res.push((field, part, Matcher::new(r, part == Part::Host)));
                }
            }
        }
        c
    }

    fn action(&mut self, path: &[Seg], label: &str, a: &Action, when: &When) -> Option<Act> {
        let what = format!("{label}: {}", a.key());
        let sub = |k: &'static str| [path, &[Seg::Key(k)]].concat();
        match a {
            Action::Set(hv) | Action::Add(hv) => {
                let h = self.touchable(&sub("header"), &what, &hv.header);
                let t = self.template(&sub("value"), &what, &hv.value);
                let (h, t) = (h?, t?);
                Some(if matches!(a, Action::Set(_)) { Act::Set(h, t) } else { Act::Add(h, t) })
            }
            Action::Remove(r) => match (&r.header, &r.regex) {
                (Some(List(names)), None) => {
                    let mut out = Vec::new();
                    for (k, n) in names.iter().enumerate() {
                        let p = [&sub("header")[..], &[Seg::Index(k)]].concat();
                        out.push(self.touchable(&p, &what, n));
                    }
                    if names.is_empty() {
                        self.err(&sub("header"), format!("{what}: no header named"));
                        return None;
                    }
                    out.into_iter().collect::<Option<Vec<_>>>().map(Act::Remove)
                }
                (None, Some(pattern)) => {
                    let re = Matcher::new(self.regex(&sub("regex"), &what, pattern, true)?, true);
                    let hits: Vec<&str> =
                        topology::B2BUA_OWNED.iter().copied().filter(|n| re.is_match(n)).collect();
                    if hits.is_empty() {
                        Some(Act::RemoveRegex(re))
                    } else {
                        self.err(&sub("regex"), format!(
                            "{what}: regex {pattern:?} matches {}, owned by the B2BUA (topology hiding rebuilds {} on every leg); narrow it, e.g. anchor it with ^X-",
                            hits.join(", "),
                            if hits.len() == 1 { "it" } else { "them" }
                        ));
                        None
                    }
                }
                _ => {
                    self.err(path, format!("{what}: give either `header` or `regex`"));
                    None
                }
            },
            Action::Rename(r) => {
                let from = self.touchable(&sub("from"), &what, &r.from);
                let to = self.touchable(&sub("to"), &what, &r.to);
                Some(Act::Rename(from?, to?))
            }
            Action::Replace(r) => {
                let h = self.touchable(&sub("header"), &what, &r.header);
                let re = self.regex(&sub("regex"), &what, &r.regex, false);
                let with = self.one_line(&sub("with"), &what, &r.with);
                match (h, re, with) {
                    (Some(h), Some(re), true) => Some(Act::Replace(h, re, r.with.clone())),
                    _ => None,
                }
            }
            Action::RewriteUser(r) => self.rewrite(path, &what, r, Part::User),
            Action::RewriteHost(r) => self.rewrite(path, &what, r, Part::Host),
            Action::DisplayName(d) => {
                if is_request_uri(&d.header) {
                    self.err(
                        &sub("header"),
                        format!("{what}: the Request-URI has no display name"),
                    );
                    return None;
                }
                let h = self.uri_header(&sub("header"), &what, &d.header);
                let t = self.template(&sub("value"), &what, &d.value);
                Some(Act::Display(h?, t?))
            }
            Action::AllowHeaders(names) => {
                let mut out: Vec<HName> = Vec::new();
                let mut ok = true;
                for (k, n) in names.iter().enumerate() {
                    let p = [path, &[Seg::Index(k)]].concat();
                    let Some(h) = self.header_name(&p, &what, n) else {
                        ok = false;
                        continue;
                    };
                    if topology::is_owned(h.as_str()) {
                        self.err(&p, format!(
                            "{what}: {} is owned by the B2BUA and always kept (topology hiding); drop it from the list",
                            h.as_str()
                        ));
                        ok = false;
                        continue;
                    }
                    out.push(h);
                }
                out.extend(ALWAYS_ALLOWED.iter().map(|n| HName::new(n)));
                ok.then_some(Act::Allow(out))
            }
            Action::TranslateResponse(t) => {
                let from: Vec<CodeSpec> = match (&t.from, &when.response) {
                    (Some(List(f)), _) => f.clone(),
                    (None, Some(List(r))) => r.clone(),
                    (None, None) => {
                        self.err(path, format!(
                            "{what}: say which responses to translate, with `from: 404` or the rule's `when: {{response: 404}}`"
                        ));
                        return None;
                    }
                };
                let mut ok = true;
                if let Some(bad) = from.iter().find(|c| c.class() < 3) {
                    let p = if t.from.is_some() { sub("from") } else { path.to_vec() };
                    self.err(&p, format!(
                        "{what}: {bad} cannot be translated: only final non-2xx responses (3xx-6xx) can, changing a 1xx or 2xx would break the call state"
                    ));
                    ok = false;
                }
                if t.to.0 < 300 {
                    self.err(&sub("to"), format!(
                        "{what}: cannot translate into {}: the result must be a final non-2xx response (300-699)",
                        t.to.0
                    ));
                    ok = false;
                }
                if let Some(reason) = &t.reason {
                    ok &= self.one_line(&sub("reason"), &what, reason);
                }
                ok.then(|| Act::Translate { from, to: t.to.0, reason: t.reason.clone() })
            }
            Action::Codecs(list) => {
                if list.is_empty()
                    || list.iter().any(|c| c.trim().is_empty() || c.chars().any(char::is_control))
                {
                    self.err(
                        path,
                        format!("{what}: give at least one codec name, e.g. [PCMA, PCMU]"),
                    );
                    return None;
                }
                Some(Act::Codecs(list.iter().map(|c| c.trim().to_string()).collect()))
            }
            Action::Reject(r) => {
                let mut ok = true;
                if !(400..=699).contains(&r.code.0) {
                    self.err(
                        &sub("code"),
                        format!("{what}: code {} is not a rejection; use 400-699", r.code.0),
                    );
                    ok = false;
                }
                if when.response.is_some() || when.message == Some(MessageKind::Response) {
                    self.err(path, format!("{what}: only requests can be rejected, and this rule matches responses"));
                    ok = false;
                }
                if let Some(reason) = &r.reason {
                    ok &= self.one_line(&sub("reason"), &what, reason);
                }
                let reason = r
                    .reason
                    .clone()
                    .unwrap_or_else(|| crate::sip::wire::reason_phrase(r.code.0).to_string());
                ok.then_some(Act::Reject { code: r.code.0, reason })
            }
        }
    }

    fn rewrite(&mut self, path: &[Seg], what: &str, r: &RewriteUri, part: Part) -> Option<Act> {
        let sub = |k: &'static str| [path, &[Seg::Key(k)]].concat();
        let target = if is_request_uri(&r.header) {
            Some(UriTarget::RequestUri)
        } else {
            self.uri_header(&sub("header"), what, &r.header).map(UriTarget::Header)
        };
        let prefix = r.strip_prefix.is_some() || r.add_prefix.is_some();
        let texts =
            [("with", &r.with), ("strip_prefix", &r.strip_prefix), ("add_prefix", &r.add_prefix)];
        for (key, text) in texts {
            if let Some(t) = text {
                if !self.one_line(&sub(key), what, t) {
                    return None;
                }
            }
        }
        let op = match (&r.value, &r.regex, &r.with, prefix) {
            (Some(v), None, None, false) => self.template(&sub("value"), what, v).map(UriOp::Value),
            (None, Some(re), Some(with), false) => self
                .regex(&sub("regex"), what, re, part == Part::Host)
                .map(|re| UriOp::Regex(re, with.clone())),
            (None, Some(_), None, false) => {
                self.err(&sub("regex"), format!("{what}: `regex` needs `with`, the replacement"));
                None
            }
            (None, None, Some(_), false) => {
                self.err(&sub("with"), format!("{what}: `with` needs `regex`"));
                None
            }
            (None, None, None, true) => Some(UriOp::Prefix {
                strip: r.strip_prefix.clone().filter(|s| !s.is_empty()),
                add: r.add_prefix.clone().unwrap_or_default(),
            }),
            (None, None, None, false) => {
                self.err(path, format!(
                    "{what}: say how to rewrite: `value`, `regex` with `with`, or `strip_prefix`/`add_prefix`"
                ));
                None
            }
            _ => {
                self.err(path, format!(
                    "{what}: use only one way of rewriting: `value`, `regex` with `with`, or `strip_prefix`/`add_prefix`"
                ));
                None
            }
        };
        Some(Act::Rewrite(target?, part, op?))
    }

    fn tests(&mut self, file: &PolicyFile) {
        for (i, t) in file.tests.iter().enumerate() {
            let base = [Seg::Key("tests"), Seg::Index(i)];
            let label = format!("test {:?}", t.name);
            if let Some(fired) = &t.expect.fired {
                for (k, name) in fired.iter().enumerate() {
                    if !file.rules.iter().any(|r| &r.name == name) {
                        let p = [base[0], base[1], "expect".into(), "fired".into(), Seg::Index(k)];
                        self.err(&p, format!("{label}: expects rule {name:?} to fire, but the file has no such rule"));
                    }
                }
            }
            let header_paths =
                t.expect.headers.keys().map(|k| (Seg::Key("headers"), Some(Seg::Key(k))));
            let absent_paths =
                (0..t.expect.absent.len()).map(|k| (Seg::Key("absent"), Some(Seg::Index(k))));
            let names = t.expect.headers.keys().chain(t.expect.absent.iter());
            for (name, (key, idx)) in names.zip(header_paths.chain(absent_paths)) {
                if !valid_header_name(name.trim()) {
                    let mut p = vec![base[0], base[1], "expect".into(), key];
                    p.extend(idx);
                    self.err(&p, format!("{label}: bad header name {name:?}"));
                }
            }
            if t.message.trim().is_empty() {
                self.err(
                    &[base[0], base[1], "message".into()],
                    format!("{label}: the message is empty"),
                );
            }
        }
    }
}

fn owned_message(what: &str, name: &str) -> String {
    format!(
        "{what}: {name} is owned by the B2BUA (topology hiding rebuilds it on every leg); policies cannot touch {}",
        owned_by_b2bua().collect::<Vec<_>>().join(", ")
    )
}

fn is_request_uri(name: &str) -> bool {
    let n = name.trim();
    n.eq_ignore_ascii_case("Request-URI") || n.eq_ignore_ascii_case("ruri")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<PolicyError> {
        match compile_str(text, "p.yaml") {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(PolicyErrors(v)) => v,
        }
    }

    fn one(text: &str) -> PolicyError {
        let mut v = errors(text);
        assert_eq!(v.len(), 1, "expected one error, got {v:#?}");
        v.remove(0)
    }

    fn at(e: &PolicyError) -> (usize, usize) {
        (e.line, e.column)
    }

    #[test]
    fn plans_follow_direction() {
        let p = compile_str(
            "rules:\n  - name: a\n    when: {direction: to-trunk}\n    do: [{remove: {header: X-A}}]\n\
             \x20 - name: b\n    do: [{remove: {header: X-B}}]\n\
             \x20 - name: c\n    when: {direction: to-lan}\n    do: [{remove: {header: X-C}}]\n",
            "policies/x.yaml",
        )
        .expect("valid");
        assert_eq!(p.name(), "x");
        assert_eq!(p.plan(Direction::ToTrunk).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.plan(Direction::ToLan).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(p.rule_names().count(), 3);
    }

    #[test]
    fn owned_header_is_refused_by_name() {
        let e = one("rules:\n  - name: hide\n    do:\n      - remove: {header: Via}\n");
        assert_eq!(at(&e), (4, 26));
        assert!(e.message.starts_with("rule \"hide\": remove: Via is owned by the B2BUA"), "{e}");
        assert!(e.message.contains("Call-ID, CSeq, Contact"), "{e}");
        assert_eq!(e.to_string(), format!("p.yaml:4:26: {}", e.message));
    }

    #[test]
    fn every_owned_header_is_refused_by_every_writing_action() {
        for name in owned_by_b2bua() {
            for action in [
                format!("set: {{header: {name}, value: x}}"),
                format!("add: {{header: {name}, value: x}}"),
                format!("remove: {{header: [X-Ok, {name}]}}"),
                format!("rename: {{from: {name}, to: X-Copy}}"),
                format!("rename: {{from: X-Copy, to: {name}}}"),
                format!("replace: {{header: {name}, regex: a, with: b}}"),
                format!("rewrite_user: {{header: {name}, value: x}}"),
                format!("display_name: {{header: {name}, value: x}}"),
                format!("allow_headers: [User-Agent, {name}]"),
            ] {
                let e = one(&format!("rules:\n  - name: r\n    do:\n      - {action}\n"));
                assert_eq!(e.line, 4, "{action}: {e}");
                assert!(
                    e.message.contains(&format!(": {name} is owned by the B2BUA")),
                    "{action}: {e}"
                );
            }
        }
    }

    #[test]
    fn compact_and_lowercase_owned_names_are_refused_too() {
        let e = one("rules:\n  - name: r\n    do:\n      - set: {header: v, value: x}\n");
        assert!(e.message.contains("Via is owned"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - remove: {header: call-id}\n");
        assert!(e.message.contains("Call-ID is owned"), "{e}");
    }

    #[test]
    fn from_and_to_only_through_uri_actions() {
        let e = one("rules:\n  - name: r\n    do:\n      - set: {header: From, value: x}\n");
        assert_eq!(at(&e), (4, 23));
        assert!(e.message.contains("From carries the dialog tag"), "{e}");
        assert!(e.message.contains("rewrite_user"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - rename: {from: t, to: X-To}\n");
        assert!(e.message.contains("To carries the dialog tag"), "{e}");
        compile_str(
            "rules:\n  - name: r\n    do:\n      - rewrite_user: {header: From, add_prefix: '+'}\n      - display_name: {header: To, value: x}\n",
            "p.yaml",
        )
        .expect("URI actions on From/To are allowed");
    }

    #[test]
    fn regex_matching_an_owned_name_is_refused() {
        let e = one("rules:\n  - name: r\n    do:\n      - remove: {regex: \"^(X-|Rec)\"}\n");
        assert_eq!(at(&e), (4, 25));
        assert!(e.message.contains("matches Record-Route, owned by the B2BUA"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - remove: {regex: \"id\"}\n");
        assert!(e.message.contains("matches Call-ID, owned"), "case-insensitive: {e}");
        let e = one("rules:\n  - name: r\n    do:\n      - remove: {regex: \"^[ft]\"}\n");
        assert!(e.message.contains("From, To"), "{e}");
        compile_str("rules:\n  - name: r\n    do:\n      - remove: {regex: \"^X-\"}\n", "p.yaml")
            .expect("^X- touches nothing owned");
    }

    #[test]
    fn unknown_action_is_located() {
        let e = one("rules:\n  - name: r\n    do:\n      - set: {header: X-A, value: b}\n      - strip: {header: X-A}\n");
        assert_eq!(at(&e), (5, 9));
        assert!(
            e.message.contains("unknown action `strip`, expected one of set, add, remove"),
            "{e}"
        );
    }

    #[test]
    fn two_actions_in_one_item() {
        let e = one("rules:\n  - name: r\n    do:\n      - set: {header: X-A, value: b}\n        remove: {header: X-B}\n");
        assert!(e.message.contains("one action per list item"), "{e}");
        assert_eq!(e.line, 4);
    }

    #[test]
    fn bad_regex_is_located_with_its_reason() {
        let e = one("rules:\n  - name: r\n    when:\n      ruri_user: \"^(0\"\n    do: [{remove: {header: X-A}}]\n");
        assert_eq!(at(&e), (4, 18));
        assert_eq!(e.message, "rule \"r\": bad regex \"^(0\": unclosed group");
        let e = one("rules:\n  - name: r\n    do:\n      - replace: {header: User-Agent, regex: \"a{2,1}\", with: x}\n");
        assert_eq!(at(&e), (4, 46));
        assert!(e.message.starts_with("rule \"r\": replace: bad regex \"a{2,1}\": "), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn unknown_field_is_located() {
        let e = one("rules:\n  - name: r\n    when:\n      methd: INVITE\n    do: [{remove: {header: X-A}}]\n");
        assert_eq!(at(&e), (4, 7));
        assert!(e.message.contains("unknown field `methd`"), "{e}");
        assert!(e.message.contains("`method`"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - set: {header: X-A, valeu: b}\n");
        assert_eq!(at(&e), (4, 28));
        assert!(e.message.contains("unknown field `valeu`, expected `header` or `value`"), "{e}");
        let e = one("rule:\n  - name: r\n");
        assert_eq!(at(&e), (1, 1));
        assert!(e.message.contains("unknown field `rule`"), "{e}");
    }

    #[test]
    fn bad_header_name() {
        let e = one("rules:\n  - name: r\n    do:\n      - set: {header: \"X Foo\", value: b}\n");
        assert_eq!(at(&e), (4, 23));
        assert!(e.message.contains("bad header name \"X Foo\""), "{e}");
        let e = one("rules:\n  - name: r\n    when: {present: [\"X:Y\"]}\n    do: [{remove: {header: X-A}}]\n");
        assert!(e.message.contains("bad header name \"X:Y\""), "{e}");
    }

    #[test]
    fn unknown_template_variable() {
        let e = one(
            "rules:\n  - name: r\n    do:\n      - set: {header: X-A, value: \"${from.number}\"}\n",
        );
        assert_eq!(at(&e), (4, 35));
        assert!(e.message.contains("unknown template variable ${from.number}"), "{e}");
        let e = one(
            "rules:\n  - name: r\n    do:\n      - set: {header: X-A, value: \"${from.user\"}\n",
        );
        assert!(e.message.contains("unclosed ${"), "{e}");
    }

    #[test]
    fn literal_patterns_skip_the_regex_engine() {
        let m = |p: &str, nocase| Matcher::new(Regex::new(p).expect("valid"), nocase);
        assert!(matches!(m("^X-", true), Matcher::Prefix(_, true)));
        assert!(matches!(m("<file:", false), Matcher::Contains(_, false)));
        assert!(matches!(m("^id$", false), Matcher::Exact(_, false)));
        assert!(matches!(m("-phone$", false), Matcher::Suffix(_, false)));
        for p in ["^0[1-9]", "a.b", "^$", "x\\$", "(?i)^x", "a b", "^\\+49"] {
            assert!(matches!(m(p, false), Matcher::Regex(_)), "{p}");
        }
        assert!(m("^X-", true).is_match("x-asterisk-hangupcause"));
        assert!(!m("^X-", true).is_match("Max-Forwards"));
        assert!(!m("^X-", false).is_match("x-a"));
        assert!(m("<file:", false).is_match("<file://Bellcore-dr2/>"));
        assert!(m("FILE", true).is_match("<file://x>"));
        assert!(m("-dr2/>$", false).is_match("<file://Bellcore-dr2/>"));
        assert!(!m("^id$", false).is_match("ids"));
        assert!(!m("^abc", false).is_match("ab"));
    }

    #[test]
    fn header_names_match_variants_and_others() {
        let ua = HName::new("user-agent");
        assert_eq!(ua.as_str(), "User-Agent");
        assert!(ua.matches(&make("User-Agent", "x")));
        assert!(ua.matches(&Header::Other("USER-AGENT".into(), "x".into())));
        assert!(!ua.matches(&make("Server", "x")));
        let x = HName::new("X-Foo");
        assert!(x.matches(&make("x-foo", "1")));
        assert!(!x.matches(&make("X-Foo-Bar", "1")));
        assert_eq!(HName::new("k").as_str(), "Supported");
    }

    #[test]
    fn line_breaks_in_values_are_refused() {
        let e = one(
            "rules:\n  - name: r\n    do:\n      - set: {header: X-A, value: \"a\\r\\nVia: x\"}\n",
        );
        assert_eq!(at(&e), (4, 35));
        assert!(e.message.contains("contains a line break"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - replace: {header: X-A, regex: a, with: \"\\n\"}\n");
        assert!(e.message.contains("contains a line break"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - reject: {code: 403, reason: \"No\\r\\nVia: x\"}\n");
        assert!(e.message.contains("contains a line break"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - rewrite_user: {header: To, add_prefix: \"\\n\"}\n");
        assert!(e.message.contains("contains a line break"), "{e}");
    }

    #[test]
    fn templates_split_once() {
        let t = Template::parse("<sip:${from.user}@${header.f}>;x=$$1$").expect("valid");
        assert_eq!(t.pieces.len(), 5);
        assert!(matches!(&t.pieces[3], Piece::Var(Var::Header(h)) if h.as_str() == "From"));
        assert!(matches!(&t.pieces[4], Piece::Lit(s) if s == ">;x=$1$"));
        assert_eq!(Template::parse("plain").expect("valid").literal(), Some("plain"));
    }

    #[test]
    fn unknown_method_and_bad_code() {
        let e = one("rules:\n  - name: r\n    when: {method: [INVITE, INVITED]}\n    do: [{remove: {header: X-A}}]\n");
        assert_eq!(at(&e), (3, 29));
        assert!(e.message.contains("unknown method \"INVITED\""), "{e}");
        let e = one(
            "rules:\n  - name: r\n    when: {response: 4yy}\n    do: [{remove: {header: X-A}}]\n",
        );
        assert_eq!(e.line, 3);
        assert!(e.message.contains("bad status code \"4yy\""), "{e}");
    }

    #[test]
    fn translate_needs_final_codes() {
        let e =
            one("rules:\n  - name: r\n    do:\n      - translate_response: {from: 200, to: 480}\n");
        assert!(e.message.contains("200 cannot be translated"), "{e}");
        let e =
            one("rules:\n  - name: r\n    do:\n      - translate_response: {from: 404, to: 183}\n");
        assert_eq!(at(&e), (4, 45));
        assert!(e.message.contains("cannot translate into 183"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - translate_response: {to: 480}\n");
        assert!(e.message.contains("say which responses"), "{e}");
        compile_str(
            "rules:\n  - name: r\n    when: {response: 404}\n    do:\n      - translate_response: {to: 480}\n",
            "p.yaml",
        )
        .expect("from taken from when.response");
    }

    #[test]
    fn reject_only_requests() {
        let e = one("rules:\n  - name: r\n    do:\n      - reject: {code: 200}\n");
        assert!(e.message.contains("code 200 is not a rejection"), "{e}");
        let e = one("rules:\n  - name: r\n    when: {response: 4xx}\n    do:\n      - reject: {code: 403}\n");
        assert!(e.message.contains("only requests can be rejected"), "{e}");
    }

    #[test]
    fn rewrite_modes_are_exclusive() {
        let e = one("rules:\n  - name: r\n    do:\n      - rewrite_user: {header: To, value: x, strip_prefix: '0'}\n");
        assert!(e.message.contains("use only one way"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - rewrite_user: {header: To, regex: x}\n");
        assert!(e.message.contains("`regex` needs `with`"), "{e}");
        let e = one("rules:\n  - name: r\n    do:\n      - rewrite_host: {header: To}\n");
        assert!(e.message.contains("say how to rewrite"), "{e}");
        let e = one(
            "rules:\n  - name: r\n    do:\n      - display_name: {header: Request-URI, value: x}\n",
        );
        assert!(e.message.contains("Request-URI has no display name"), "{e}");
    }

    #[test]
    fn duplicate_rule_and_empty_do() {
        let v = errors(
            "rules:\n  - name: a\n    do: []\n  - name: a\n    do: [{remove: {header: X-A}}]\n",
        );
        assert_eq!(v.len(), 2, "{v:#?}");
        assert_eq!(at(&v[0]), (3, 9));
        assert!(v[0].message.contains("`do` is empty"));
        assert_eq!(at(&v[1]), (4, 11));
        assert!(v[1].message.contains("already defined on line 2"), "{}", v[1]);
    }

    #[test]
    fn test_naming_missing_rule() {
        let e = one("rules:\n  - name: a\n    do: [{remove: {header: X-A}}]\ntests:\n  - name: t\n    direction: to-trunk\n    message: x\n    expect: {fired: [a, b]}\n");
        assert_eq!(at(&e), (8, 25));
        assert!(e.message.contains("expects rule \"b\" to fire"), "{e}");
    }

    #[test]
    fn all_problems_are_reported_in_text_order() {
        let v = errors(
            "rules:\n  - name: a\n    when: {to_user: \"(\"}\n    do:\n      - remove: {header: CSeq}\n      - set: {header: X-A, value: \"${x}\"}\n",
        );
        let lines: Vec<usize> = v.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5, 6], "{v:#?}");
    }

    #[test]
    fn yaml_syntax_error_is_located() {
        let e = one("rules:\n  - name: a\n    do: [{remove: {header: X-A}}\n  - name: b\n");
        assert_eq!(e.line, 4, "{e}");
        let e = one("rules:\n  - name: a\n");
        assert_eq!((e.line, e.column), (2, 5), "{e}");
        assert!(e.message.contains("missing field `do`"), "{e}");
        assert_eq!(e.to_string().lines().count(), 1);
    }

    #[test]
    fn unreadable_file_has_no_position() {
        let e = load_file(Path::new("/nonexistent/p.yaml")).expect_err("no such file");
        assert!(e.to_string().starts_with("/nonexistent/p.yaml: cannot read: "), "{e}");
        let c: ConfigError = e.0[0].clone().into();
        assert_eq!(c.line, 0);
    }
}
