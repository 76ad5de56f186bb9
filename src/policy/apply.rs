//! Running a compiled policy on one outgoing message.
//!
//! The message is the rsip message the B2BUA built for the outgoing leg, changed in place.
//! Conditions are evaluated cheapest first and read the message without allocating; only a rule
//! whose conditions hold pays for its actions. A rule *fires* when its conditions hold, whether or
//! not its actions found something to change.
//!
//! Actions that make no sense for the message at hand are skipped rather than refused: a Request-URI
//! rewrite on a response, a status translation on a request, a rejection of an ACK (it cannot be
//! answered). A template naming something the message lacks (`${from.user}` of a From without a
//! user part, `${header.X}` of an absent X) skips its action, so a rule never writes a half-filled
//! header. Headers the B2BUA owns are protected twice: compile refuses rules naming them, and the
//! regex and allow-list removals here never drop them.

use super::compile::{
    Act, CompiledPolicy, Cond, HName, Part, Piece, Template, UriField, UriOp, UriTarget,
};
use super::rules::{Direction, MessageKind};
use super::topology;
use crate::sip::headers::{make, name_value};
use crate::sip::sdp::SessionDescription;
use rsip::{Header, SipMessage};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// What the caller knows about the message beyond its text.
#[derive(Debug, Clone, Copy)]
pub struct MessageContext<'a> {
    /// The zone the message arrived from (`when: {source_zone: ...}`).
    pub source_zone: &'a str,
}

/// The rules that fired, in order (their conditions held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied<'p> {
    /// Rule names, borrowed from the policy.
    pub fired: Vec<&'p str>,
}

/// A rule refused the request: answer it with this status instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected with {code} {reason}")]
pub struct Reject {
    /// Status code, 400..699.
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
}

impl CompiledPolicy {
    /// Runs the plan for `dir` on `msg`, in place.
    ///
    /// On `Err`, a rule refused the request (or the codec filter left nothing: 488); the message
    /// may be partly rewritten and should be dropped.
    pub fn apply<'p>(
        &'p self,
        dir: Direction,
        ctx: &MessageContext<'_>,
        msg: &mut SipMessage,
    ) -> Result<Applied<'p>, Reject> {
        let mut applied = Applied::default();
        self.apply_into(dir, ctx, msg, &mut applied.fired)?;
        Ok(applied)
    }

    /// [`apply`](Self::apply), keeping the fired rules when a rule rejects (for reports).
    pub(crate) fn apply_into<'p>(
        &'p self,
        dir: Direction,
        ctx: &MessageContext<'_>,
        msg: &mut SipMessage,
        fired: &mut Vec<&'p str>,
    ) -> Result<(), Reject> {
        let mut view = View::default();
        for &i in &self.plans[dir.index()] {
            let Some(rule) = self.rules.get(i) else { continue };
            if !holds(&rule.cond, msg, ctx, &mut view) {
                continue;
            }
            fired.push(rule.name.as_str());
            for act in &rule.actions {
                run(act, msg, &mut view)?;
                if rewrites_from_or_to(act) {
                    view = View::default();
                }
            }
        }
        Ok(())
    }
}

/// The policies attached to one trunk, run in order.
#[derive(Debug, Clone, Default)]
pub struct PolicyChain {
    policies: Vec<Arc<CompiledPolicy>>,
}

/// What fired across a chain: (policy name, rule name), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainApplied<'p> {
    /// (policy name, rule name) pairs; bounded labels for metrics.
    pub fired: Vec<(&'p str, &'p str)>,
}

impl PolicyChain {
    /// A chain of the given policies, applied in this order.
    pub fn new(policies: Vec<Arc<CompiledPolicy>>) -> Self {
        PolicyChain { policies }
    }

    /// The policies, in order.
    pub fn policies(&self) -> &[Arc<CompiledPolicy>] {
        &self.policies
    }

    /// Runs every policy's plan for `dir`; stops at the first rejection.
    pub fn apply<'p>(
        &'p self,
        dir: Direction,
        ctx: &MessageContext<'_>,
        msg: &mut SipMessage,
    ) -> Result<ChainApplied<'p>, Reject> {
        let mut out = ChainApplied::default();
        for p in &self.policies {
            let a = p.apply(dir, ctx, msg)?;
            out.fired.extend(a.fired.into_iter().map(|r| (p.name(), r)));
        }
        Ok(out)
    }
}

fn headers(msg: &SipMessage) -> &rsip::Headers {
    match msg {
        SipMessage::Request(r) => &r.headers,
        SipMessage::Response(r) => &r.headers,
    }
}

fn headers_mut(msg: &mut SipMessage) -> &mut rsip::Headers {
    match msg {
        SipMessage::Request(r) => &mut r.headers,
        SipMessage::Response(r) => &mut r.headers,
    }
}

fn first<'m>(msg: &'m SipMessage, name: &HName) -> Option<&'m str> {
    headers(msg).iter().find(|h| name.matches(h)).map(|h| name_value(h).1)
}

fn status(msg: &SipMessage) -> Option<u16> {
    match msg {
        SipMessage::Request(_) => None,
        SipMessage::Response(r) => Some(r.status_code.code()),
    }
}

/// True for the headers the B2BUA owns ([`topology::B2BUA_OWNED`]), by variant first since
/// every retain pass asks it of every header.
fn owned(h: &Header) -> bool {
    match h {
        Header::Via(_)
        | Header::CallId(_)
        | Header::CSeq(_)
        | Header::From(_)
        | Header::To(_)
        | Header::Contact(_)
        | Header::Route(_)
        | Header::RecordRoute(_)
        | Header::MaxForwards(_)
        | Header::ContentLength(_) => true,
        Header::Other(n, _) => topology::is_owned(n),
        _ => false,
    }
}

/// Where the URI parts of From and To are, found once per message and reused by every condition
/// and template. Only a rewrite of From or To changes their text: compile refuses every other
/// action naming them and the removals never drop them, so other actions may move the headers
/// but leave the spans valid.
#[derive(Debug, Default)]
struct View {
    from: Slot,
    to: Slot,
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Unknown,
    Missing,
    Found(UriSpans),
}

fn rewrites_from_or_to(act: &Act) -> bool {
    match act {
        Act::Rewrite(UriTarget::Header(h), _, _) | Act::Display(h, _) => {
            h.as_str() == "From" || h.as_str() == "To"
        }
        _ => false,
    }
}

/// The value of the first From (or To) header.
fn addr_value(msg: &SipMessage, from: bool) -> Option<&str> {
    headers(msg).iter().find_map(|h| {
        let hit = match h {
            Header::From(_) => from,
            Header::To(_) => !from,
            Header::Other(n, _) => n.eq_ignore_ascii_case(if from { "From" } else { "To" }),
            _ => false,
        };
        hit.then(|| name_value(h).1)
    })
}

impl View {
    fn addr<'m>(&mut self, msg: &'m SipMessage, from: bool) -> Option<(&'m str, &UriSpans)> {
        let value = addr_value(msg, from)?;
        let slot = if from { &mut self.from } else { &mut self.to };
        if matches!(slot, Slot::Unknown) {
            *slot = match elements(value).next().and_then(|e| uri_spans(value, e)) {
                Some(s) => Slot::Found(s),
                None => Slot::Missing,
            };
        }
        match slot {
            Slot::Found(s) => Some((value, &*s)),
            _ => None,
        }
    }
}

fn holds(c: &Cond, msg: &SipMessage, ctx: &MessageContext<'_>, view: &mut View) -> bool {
    match (c.kind, msg) {
        (Some(MessageKind::Request), SipMessage::Response(_))
        | (Some(MessageKind::Response), SipMessage::Request(_)) => return false,
        _ => {}
    }
    if !c.responses.is_empty() {
        match status(msg) {
            Some(code) if c.responses.iter().any(|s| s.matches(code)) => {}
            _ => return false,
        }
    }
    if !c.methods.is_empty() {
        let ok = match msg {
            SipMessage::Request(r) => c.methods.iter().any(|(m, _)| *m == r.method),
            SipMessage::Response(r) => {
                let cseq = r.headers.iter().find_map(|h| match h {
                    Header::CSeq(_) => Some(name_value(h).1),
                    _ => None,
                });
                let cseq_method = cseq.and_then(|v| v.split_ascii_whitespace().nth(1));
                cseq_method
                    .is_some_and(|cm| c.methods.iter().any(|(_, n)| n.eq_ignore_ascii_case(cm)))
            }
        };
        if !ok {
            return false;
        }
    }
    if !c.zones.is_empty() && !c.zones.iter().any(|z| z == ctx.source_zone) {
        return false;
    }
    if !c.present.iter().all(|h| first(msg, h).is_some()) {
        return false;
    }
    if c.absent.iter().any(|h| first(msg, h).is_some()) {
        return false;
    }
    for (h, m) in &c.header_res {
        if !headers(msg).iter().any(|x| h.matches(x) && m.is_match(name_value(x).1)) {
            return false;
        }
    }
    c.uri_res.iter().all(|(field, part, m)| {
        with_uri_part(msg, view, *field, *part, |v| v.is_some_and(|v| m.is_match(v)))
    })
}

/// Calls `f` with a URI part of the message (`Some("")` for a URI without user part, `None` when
/// the URI itself is missing), without allocating.
fn with_uri_part<R>(
    msg: &SipMessage,
    view: &mut View,
    field: UriField,
    part: Part,
    f: impl FnOnce(Option<&str>) -> R,
) -> R {
    match field {
        UriField::RequestUri => {
            let SipMessage::Request(r) = msg else { return f(None) };
            match part {
                Part::User => f(Some(r.uri.user().unwrap_or(""))),
                Part::Host => match &r.uri.host_with_port.host {
                    rsip::Host::Domain(d) => f(Some(d.value())),
                    rsip::Host::IpAddr(ip) => {
                        use std::io::Write as _;
                        let mut buf = [0u8; 48];
                        let mut w = &mut buf[..];
                        let _ = write!(w, "{ip}");
                        let n = 48 - w.len();
                        f(std::str::from_utf8(&buf[..n]).ok())
                    }
                },
            }
        }
        UriField::From | UriField::To => {
            let text = view.addr(msg, field == UriField::From).and_then(|(v, s)| match part {
                Part::User => v.get(s.user.clone()),
                Part::Host => s.host.clone().and_then(|h| v.get(h)),
            });
            f(text)
        }
    }
}

/// Renders a template against the current message; `None` when a variable is missing or empty.
fn render(t: &Template, msg: &SipMessage, view: &mut View) -> Option<String> {
    if let Some(lit) = t.literal() {
        return Some(lit.to_string());
    }
    let mut out = String::new();
    for p in &t.pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            // A value read from the message goes into a header: one line only.
            Piece::Var(super::compile::Var::Header(h)) => {
                out.push_str(first(msg, h).filter(|v| !v.is_empty() && !v.contains(['\r', '\n']))?)
            }
            Piece::Var(super::compile::Var::Uri(field, part)) => {
                let ok = with_uri_part(msg, view, *field, *part, |v| match v {
                    Some(v) if !v.is_empty() => {
                        out.push_str(v);
                        true
                    }
                    _ => false,
                });
                if !ok {
                    return None;
                }
            }
        }
    }
    Some(out)
}

fn run(act: &Act, msg: &mut SipMessage, view: &mut View) -> Result<(), Reject> {
    match act {
        Act::Set(h, t) => {
            let Some(value) = render(t, msg, view) else { return Ok(()) };
            let hs = headers_mut(msg);
            let mut value = Some(value);
            let mut seen = false;
            hs.retain(|x| !h.matches(x) || !std::mem::replace(&mut seen, true));
            for x in hs.iter_mut() {
                if h.matches(x) {
                    if let Some(v) = value.take() {
                        *x = make(h.as_str(), v);
                    }
                }
            }
            if let Some(v) = value {
                append(hs, make(h.as_str(), v));
            }
        }
        Act::Add(h, t) => {
            if let Some(v) = render(t, msg, view) {
                append(headers_mut(msg), make(h.as_str(), v));
            }
        }
        Act::Remove(names) => {
            headers_mut(msg).retain(|x| !names.iter().any(|h| h.matches(x)));
        }
        Act::RemoveRegex(re) => {
            headers_mut(msg).retain(|x| !re.is_match(name_value(x).0) || owned(x));
        }
        Act::Rename(from, to) => {
            for x in headers_mut(msg).iter_mut() {
                if !from.matches(x) {
                    continue;
                }
                let v = name_value(x).1;
                *x = make(to.as_str(), v.to_string());
            }
        }
        Act::Replace(h, re, with) => {
            for x in headers_mut(msg).iter_mut() {
                if !h.matches(x) {
                    continue;
                }
                let v = name_value(x).1;
                if let Cow::Owned(new) = re.replace_all(v, with.as_str()) {
                    *x = make(h.as_str(), new);
                }
            }
        }
        Act::Rewrite(target, part, op) => {
            let rendered = match op {
                UriOp::Value(t) => match render(t, msg, view) {
                    Some(v) => Some(v),
                    None => return Ok(()),
                },
                _ => None,
            };
            match target {
                UriTarget::RequestUri => {
                    if let SipMessage::Request(r) = msg {
                        rewrite_request_uri(&mut r.uri, *part, op, rendered.as_deref());
                    }
                }
                UriTarget::Header(h) => {
                    for x in headers_mut(msg).iter_mut() {
                        if !h.matches(x) {
                            continue;
                        }
                        let v = name_value(x).1;
                        if let Some(new) = rewrite_value(v, *part, op, rendered.as_deref()) {
                            *x = make(h.as_str(), new);
                        }
                    }
                }
            }
        }
        Act::Display(h, t) => {
            let Some(name) = render(t, msg, view) else { return Ok(()) };
            for x in headers_mut(msg).iter_mut() {
                if !h.matches(x) {
                    continue;
                }
                let v = name_value(x).1;
                let new = set_display(v, &name);
                if new != v {
                    *x = make(h.as_str(), new);
                }
            }
        }
        Act::Allow(keep) => {
            headers_mut(msg).retain(|x| keep.iter().any(|h| h.matches(x)) || owned(x));
        }
        Act::Translate { from, to, reason } => {
            if let SipMessage::Response(r) = msg {
                let code = r.status_code.code();
                if code >= 300 && from.iter().any(|s| s.matches(code)) {
                    r.status_code = match reason {
                        Some(text) => rsip::StatusCode::Other(*to, text.clone()),
                        None => match rsip::StatusCode::from(*to) {
                            rsip::StatusCode::Other(c, _) => crate::sip::wire::status(c, None),
                            known => known,
                        },
                    };
                }
            }
        }
        Act::Codecs(prefs) => filter_codecs(msg, prefs)?,
        Act::Reject { code, reason } => {
            if let SipMessage::Request(r) = msg {
                if r.method != rsip::Method::Ack {
                    return Err(Reject { code: *code, reason: reason.clone() });
                }
            }
        }
    }
    Ok(())
}

/// Adds a header after the others but before the Content-Type/Content-Length that close most
/// messages, where a reader of the message expects the body's description.
fn append(hs: &mut rsip::Headers, h: Header) {
    let mut v: Vec<Header> = std::mem::take(hs).into();
    let tail = v
        .iter()
        .rev()
        .take_while(|x| matches!(x, Header::ContentLength(_) | Header::ContentType(_)))
        .count();
    v.insert(v.len() - tail, h);
    *hs = v.into();
}

fn is_sdp(msg: &SipMessage) -> bool {
    let body = match msg {
        SipMessage::Request(r) => &r.body,
        SipMessage::Response(r) => &r.body,
    };
    if body.is_empty() {
        return false;
    }
    let content_type = headers(msg).iter().find_map(|h| match h {
        Header::ContentType(_) => Some(name_value(h).1),
        _ => None,
    });
    match content_type {
        Some(ct) => {
            ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        }
        None => body.starts_with(b"v=0"),
    }
}

fn filter_codecs(msg: &mut SipMessage, prefs: &[String]) -> Result<(), Reject> {
    if !is_sdp(msg) {
        return Ok(());
    }
    let prefs: Vec<&str> = prefs.iter().map(String::as_str).collect();
    let result = match SessionDescription::parse(msg.body()) {
        Ok(sdp) => sdp.filter_codecs(&prefs),
        // Not ours to judge: the media layer refuses SDP it cannot read.
        Err(_) => return Ok(()),
    };
    match result {
        Ok(body) => {
            let len = body.len();
            *msg.body_mut() = body;
            // Keep the message self-consistent; the wire encoder recomputes it anyway.
            for x in headers_mut(msg).iter_mut() {
                if matches!(x, Header::ContentLength(_)) {
                    *x = make("Content-Length", len.to_string());
                }
            }
            Ok(())
        }
        Err(_) => match msg {
            SipMessage::Request(r) if r.method != rsip::Method::Ack => {
                Err(Reject { code: 488, reason: "Not Acceptable Here".into() })
            }
            // An answer or an ACK cannot be refused; the media layer sees the mismatch.
            _ => Ok(()),
        },
    }
}

fn apply_op(op: &UriOp, rendered: Option<&str>, current: &str) -> Option<String> {
    let new = match op {
        UriOp::Value(_) => rendered?.to_string(),
        UriOp::Regex(re, with) => match re.replace(current, with.as_str()) {
            Cow::Owned(s) => s,
            Cow::Borrowed(_) => return None,
        },
        UriOp::Prefix { strip: Some(s), add } => {
            format!("{add}{}", current.strip_prefix(s.as_str())?)
        }
        UriOp::Prefix { strip: None, add } => format!("{add}{current}"),
    };
    (new != current).then_some(new)
}

fn rewrite_request_uri(uri: &mut rsip::Uri, part: Part, op: &UriOp, rendered: Option<&str>) {
    match part {
        Part::User => {
            let current = uri.user().unwrap_or("");
            let Some(new) = apply_op(op, rendered, current) else { return };
            if new.is_empty() {
                uri.auth = None;
            } else {
                let password = uri.auth.take().and_then(|a| a.password);
                uri.auth = Some(rsip::Auth { user: new, password });
            }
        }
        Part::Host => {
            let current = uri.host_with_port.host.to_string();
            let Some(new) = apply_op(op, rendered, &current) else { return };
            if let Ok(host) = new.parse::<rsip::Host>() {
                if !new.is_empty() {
                    uri.host_with_port.host = host;
                }
            }
        }
    }
}

/// Byte ranges of one URI's parts inside a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UriSpans {
    /// The user part without password; empty at the host's start when there is none.
    pub(crate) user: Range<usize>,
    /// True when the URI has a user part (`user@`, or a tel: number).
    pub(crate) has_user: bool,
    /// From the user's start to just past `@` (user, password, `@`): what removing the user cuts.
    pub(crate) userinfo: Range<usize>,
    /// The host, without port; `None` for tel: URIs.
    pub(crate) host: Option<Range<usize>>,
    /// The URI itself.
    pub(crate) uri: Range<usize>,
    /// Where a `<` would go (start of the element after its display name, or the URI itself).
    pub(crate) angle: Option<Range<usize>>,
}

/// The comma-separated elements of a header value, commas inside quotes or `<...>` kept.
pub(crate) fn elements(value: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let b = value.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let (mut quoted, mut angle, mut i) = (false, false, start);
        while i < b.len() {
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' if !angle => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => break,
                _ => {}
            }
            i += 1;
        }
        let end = i.min(b.len());
        let r = start..end;
        if end >= b.len() {
            done = true;
        } else {
            start = end + 1;
        }
        Some(r)
    })
}

/// Finds the URI of one element (`"Bob" <sip:bob@h>;tag=x`, `sip:bob@h;tag=x`, `<tel:+1>`).
pub(crate) fn uri_spans(value: &str, element: Range<usize>) -> Option<UriSpans> {
    let b = value.as_bytes();
    let el = value.get(element.clone())?;
    // The `<` outside quotes, if any.
    let mut quoted = false;
    let mut lt = None;
    let mut i = 0;
    let eb = el.as_bytes();
    while i < eb.len() {
        match eb[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => {
                lt = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let (uri, angle) = match lt {
        Some(lt) => {
            let s = element.start + lt + 1;
            let e = value[s..element.end].find('>').map_or(element.end, |g| s + g);
            (s..e, Some(element.start + lt..(e + 1).min(element.end)))
        }
        None => {
            let lead = el.len() - el.trim_start().len();
            let s = element.start + lead;
            // In an addr-spec, parameters after the URI belong to the header (RFC 3261 §20).
            let e = value[s..element.end].find(';').map_or(element.end, |p| s + p);
            let e = s + value[s..e].trim_end().len();
            (s..e, None)
        }
    };
    let colon = uri.start + value[uri.clone()].find(':')?;
    let scheme = &value[uri.start..colon];
    let rest = colon + 1..uri.end;
    if scheme.eq_ignore_ascii_case("tel") {
        let end = value[rest.clone()].find(';').map_or(rest.end, |p| rest.start + p);
        return Some(UriSpans {
            user: rest.start..end,
            has_user: true,
            userinfo: rest.start..end,
            host: None,
            uri,
            angle,
        });
    }
    let rest_str = &value[rest.clone()];
    let limit = rest_str.find(['?', '>']).unwrap_or(rest_str.len());
    let at = rest_str[..limit].rfind('@');
    let (user, userinfo, host_start) = match at {
        Some(at) => {
            let info = &rest_str[..at];
            let ulen = info.find(':').unwrap_or(info.len());
            (rest.start..rest.start + ulen, rest.start..rest.start + at + 1, rest.start + at + 1)
        }
        None => (rest.start..rest.start, rest.start..rest.start, rest.start),
    };
    let host_end = if b.get(host_start) == Some(&b'[') {
        value[host_start..rest.end].find(']').map_or(rest.end, |p| host_start + p + 1)
    } else {
        value[host_start..rest.end].find([':', ';', '?', '>']).map_or(rest.end, |p| host_start + p)
    };
    Some(UriSpans {
        user,
        has_user: at.is_some(),
        userinfo,
        host: Some(host_start..host_end),
        uri,
        angle,
    })
}

/// Rewrites the user or host of every URI in a header value; `None` when nothing changed.
fn rewrite_value(value: &str, part: Part, op: &UriOp, rendered: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    let mut changed = false;
    for el in elements(value) {
        let Some(s) = uri_spans(value, el) else { continue };
        let edit = match part {
            Part::User => {
                let current = &value[s.user.clone()];
                let Some(new) = apply_op(op, rendered, current) else { continue };
                match (s.has_user, new.is_empty(), s.host.is_some()) {
                    (true, false, _) => (s.user.clone(), new),
                    (true, true, true) => (s.userinfo.clone(), new),
                    (false, false, true) => (s.user.start..s.user.start, format!("{new}@")),
                    _ => continue,
                }
            }
            Part::Host => {
                let Some(host) = s.host.clone() else { continue };
                let Some(new) = apply_op(op, rendered, &value[host.clone()]) else { continue };
                if new.is_empty() {
                    continue;
                }
                (host, new)
            }
        };
        out.push_str(&value[copied..edit.0.start]);
        out.push_str(&edit.1);
        copied = edit.0.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&value[copied..]);
    Some(out)
}

/// Sets (or with `""` removes) the display name of every element of a header value.
fn set_display(value: &str, name: &str) -> String {
    let mut out = String::with_capacity(value.len() + name.len() + 4);
    let mut copied = 0;
    let quoted = if name.is_empty() {
        String::new()
    } else {
        let mut q = String::with_capacity(name.len() + 3);
        q.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push_str("\" ");
        q
    };
    for el in elements(value) {
        let Some(s) = uri_spans(value, el.clone()) else { continue };
        let lead = value[el.clone()].len() - value[el.clone()].trim_start().len();
        let start = el.start + lead;
        out.push_str(&value[copied..start]);
        match s.angle {
            Some(angle) => {
                out.push_str(&quoted);
                copied = angle.start;
            }
            None if name.is_empty() => copied = start,
            None => {
                out.push_str(&quoted);
                out.push('<');
                out.push_str(&value[s.uri.clone()]);
                out.push('>');
                copied = s.uri.end;
            }
        }
    }
    out.push_str(&value[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::compile_str;
    use crate::sip::parse::{parse, Limits};

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

    fn vector(name: &str) -> SipMessage {
        let bytes = std::fs::read(format!("{VECTORS}/{name}")).expect(name);
        parse(&bytes, &Limits::default()).expect("vector parses").raw
    }

    fn msg(text: &str) -> SipMessage {
        let t = crate::policy::testing::normalise_message(text);
        parse(&t, &Limits::default()).expect("test message parses").raw
    }

    const INVITE: &str = "INVITE sip:0301234567@pbx.example SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
From: \"Alice Smith\" <sip:201@10.0.0.5>;tag=1928301774
To: <sip:0301234567@pbx.example>
Call-ID: a84b4c76e66710@10.0.0.5
CSeq: 314159 INVITE
Contact: <sip:201@10.0.0.5:5060>
User-Agent: Asterisk PBX 18.10.0
X-Asterisk-HangupCause: Normal Clearing
X-Asterisk-HangupCauseCode: 16
P-Asserted-Identity: <sip:201@10.0.0.5>, <tel:201>
Content-Type: application/sdp
Content-Length: 0

v=0
o=- 1 1 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 4000 RTP/AVP 9 0 8 18 101
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
";

    fn run_policy(
        rules: &str,
        dir: Direction,
        zone: &str,
        m: &mut SipMessage,
    ) -> Result<Vec<String>, Reject> {
        let p =
            compile_str(&format!("rules:\n{rules}"), "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        p.apply(dir, &MessageContext { source_zone: zone }, m)
            .map(|a| a.fired.into_iter().map(String::from).collect())
    }

    fn fired(rules: &str, m: &mut SipMessage) -> Vec<String> {
        run_policy(rules, Direction::ToTrunk, "lan", m).expect("not rejected")
    }

    fn all(m: &SipMessage, name: &str) -> Vec<String> {
        headers(m)
            .iter()
            .filter_map(|h| {
                let (n, v) = name_value(h);
                n.eq_ignore_ascii_case(name).then(|| v.to_string())
            })
            .collect()
    }

    fn ruri(m: &SipMessage) -> String {
        match m {
            SipMessage::Request(r) => r.uri.to_string(),
            SipMessage::Response(_) => panic!("not a request"),
        }
    }

    fn rule(when: &str, action: &str) -> String {
        format!("  - name: r\n    when: {when}\n    do:\n      - {action}\n")
    }

    const NOOP: &str = "remove: {header: X-Nothing}";

    // ---- conditions ----

    #[test]
    fn direction_condition() {
        let r = rule("{direction: to-lan}", NOOP);
        let mut m = msg(INVITE);
        assert!(fired(&r, &mut m).is_empty());
        assert_eq!(run_policy(&r, Direction::ToLan, "lan", &mut m).expect("ok"), ["r"]);
    }

    #[test]
    fn method_condition_on_requests_and_cseq_of_responses() {
        let mut m = msg(INVITE);
        assert_eq!(fired(&rule("{method: [BYE, INVITE]}", NOOP), &mut m), ["r"]);
        assert!(fired(&rule("{method: BYE}", NOOP), &mut m).is_empty());
        let mut resp = vector("seed003/013_avaya_ipo_tx_404_not_found.sip");
        assert_eq!(fired(&rule("{method: INVITE}", NOOP), &mut resp), ["r"]);
        assert!(fired(&rule("{method: REGISTER}", NOOP), &mut resp).is_empty());
    }

    #[test]
    fn message_kind_and_response_conditions() {
        let mut req = msg(INVITE);
        let mut resp = vector("seed003/013_avaya_ipo_tx_404_not_found.sip");
        assert_eq!(fired(&rule("{message: request}", NOOP), &mut req), ["r"]);
        assert!(fired(&rule("{message: request}", NOOP), &mut resp).is_empty());
        assert_eq!(fired(&rule("{message: response}", NOOP), &mut resp), ["r"]);
        assert_eq!(fired(&rule("{response: 404}", NOOP), &mut resp), ["r"]);
        assert_eq!(fired(&rule("{response: [5xx, 4xx]}", NOOP), &mut resp), ["r"]);
        assert!(fired(&rule("{response: 486}", NOOP), &mut resp).is_empty());
        assert!(fired(&rule("{response: 4xx}", NOOP), &mut req).is_empty());
    }

    #[test]
    fn header_presence_and_value_conditions() {
        let mut m = msg(INVITE);
        assert_eq!(
            fired(&rule("{present: [user-agent, P-Asserted-Identity]}", NOOP), &mut m),
            ["r"]
        );
        assert!(fired(&rule("{present: [Privacy]}", NOOP), &mut m).is_empty());
        assert_eq!(fired(&rule("{absent: Privacy}", NOOP), &mut m), ["r"]);
        assert!(fired(&rule("{absent: [Privacy, User-Agent]}", NOOP), &mut m).is_empty());
        assert_eq!(fired(&rule("{headers: {User-Agent: '^Asterisk'}}", NOOP), &mut m), ["r"]);
        assert!(fired(&rule("{headers: {User-Agent: '^Cisco'}}", NOOP), &mut m).is_empty());
        assert!(
            fired(&rule("{headers: {Privacy: '.*'}}", NOOP), &mut m).is_empty(),
            "absent header never matches"
        );
        // Any instance may match; compact names are expanded.
        let mut two =
            msg(&INVITE.replace("User-Agent: Asterisk", "User-Agent: Old\nUser-Agent: Asterisk"));
        assert_eq!(fired(&rule("{headers: {User-Agent: '^Asterisk'}}", NOOP), &mut two), ["r"]);
        assert_eq!(fired(&rule("{headers: {f: 'Alice'}}", NOOP), &mut m), ["r"]);
    }

    #[test]
    fn uri_conditions() {
        let mut m = msg(INVITE);
        for (when, hit) in [
            ("{ruri_user: '^0[1-9]'}", true),
            ("{ruri_user: '^\\+'}", false),
            ("{ruri_host: '^PBX\\.example$'}", true),
            ("{from_user: '^2\\d\\d$'}", true),
            ("{from_host: '^10\\.'}", true),
            ("{to_user: '^0301'}", true),
            ("{to_host: 'itsp'}", false),
        ] {
            assert_eq!(!fired(&rule(when, NOOP), &mut m).is_empty(), hit, "{when}");
        }
        // A URI without user part has an empty user; an IP host reads as text.
        let mut d201 = vector("seed002/d2_01_invite_microsip.sip");
        assert_eq!(
            fired(&rule("{from_user: '^$', ruri_host: '^192\\.168\\.80\\.12$'}", NOOP), &mut d201),
            ["r"]
        );
        // The Request-URI of a response is missing: the condition fails.
        let mut resp = vector("seed003/013_avaya_ipo_tx_404_not_found.sip");
        assert!(fired(&rule("{ruri_user: '.*'}", NOOP), &mut resp).is_empty());
        assert_eq!(fired(&rule("{from_user: '^4957'}", NOOP), &mut resp), ["r"]);
    }

    #[test]
    fn source_zone_condition() {
        let r = rule("{source_zone: [pbx, lan]}", NOOP);
        let mut m = msg(INVITE);
        assert_eq!(fired(&r, &mut m), ["r"]);
        assert!(run_policy(&r, Direction::ToTrunk, "itsp", &mut m).expect("ok").is_empty());
    }

    #[test]
    fn all_conditions_must_hold() {
        let mut m = msg(INVITE);
        assert!(fired(&rule("{method: INVITE, absent: User-Agent}", NOOP), &mut m).is_empty());
        assert_eq!(
            fired(
                &rule("{method: INVITE, present: User-Agent, direction: to-trunk}", NOOP),
                &mut m
            ),
            ["r"]
        );
    }

    // ---- actions ----

    #[test]
    fn set_replaces_all_instances_or_adds() {
        let mut m = msg(INVITE);
        fired(
            &rule(
                "{}",
                "set: {header: p-asserted-identity, value: '<sip:${from.user}@itsp.example>'}",
            ),
            &mut m,
        );
        assert_eq!(all(&m, "P-Asserted-Identity"), ["<sip:201@itsp.example>"]);
        fired(&rule("{}", "set: {header: Privacy, value: id}"), &mut m);
        assert_eq!(all(&m, "Privacy"), ["id"]);
    }

    #[test]
    fn set_with_a_missing_variable_is_skipped() {
        let mut m = vector("seed002/d2_01_invite_microsip.sip");
        let f = fired(
            &rule(
                "{}",
                "set: {header: P-Asserted-Identity, value: '<sip:${from.user}@${from.host}>'}",
            ),
            &mut m,
        );
        assert_eq!(f, ["r"], "the rule fires");
        assert!(all(&m, "P-Asserted-Identity").is_empty(), "but writes nothing");
        fired(
            &rule(
                "{}",
                "set: {header: X-Host, value: '${from.host}/${ruri.host}/${header.User-Agent}'}",
            ),
            &mut m,
        );
        assert_eq!(all(&m, "X-Host"), ["192.168.71.146/192.168.80.12/MicroSIP/3.21.3"]);
    }

    #[test]
    fn add_appends_an_instance() {
        let mut m = msg(INVITE);
        fired(&rule("{}", "add: {header: P-Asserted-Identity, value: '<tel:+4930201>'}"), &mut m);
        assert_eq!(
            all(&m, "P-Asserted-Identity"),
            ["<sip:201@10.0.0.5>, <tel:201>", "<tel:+4930201>"]
        );
    }

    #[test]
    fn remove_by_name_and_by_regex() {
        let mut m = msg(INVITE);
        fired(&rule("{}", "remove: {header: [user-agent, X-Asterisk-HangupCause]}"), &mut m);
        assert!(all(&m, "User-Agent").is_empty());
        assert!(all(&m, "X-Asterisk-HangupCause").is_empty());
        assert_eq!(all(&m, "X-Asterisk-HangupCauseCode"), ["16"]);
        fired(&rule("{}", "remove: {regex: '^x-asterisk-'}"), &mut m);
        assert!(all(&m, "X-Asterisk-HangupCauseCode").is_empty(), "regex is case-insensitive");
        assert_eq!(all(&m, "Call-ID").len(), 1);
    }

    #[test]
    fn rename_keeps_value_and_position() {
        let mut m = vector("seed002/d2_17_invite_cucm_delayed_offer.sip");
        let before: Vec<String> = headers(&m).iter().map(|h| name_value(h).0.to_string()).collect();
        fired(&rule("{}", "rename: {from: Remote-Party-ID, to: P-Asserted-Identity}"), &mut m);
        let after: Vec<String> = headers(&m).iter().map(|h| name_value(h).0.to_string()).collect();
        let at = before.iter().position(|n| n == "Remote-Party-ID").expect("RPID");
        assert_eq!(after[at], "P-Asserted-Identity");
        assert_eq!(
            all(&m, "P-Asserted-Identity"),
            ["<sip:192.168.80.100>;party=calling;screen=yes;privacy=off"]
        );
    }

    #[test]
    fn replace_inside_values() {
        let mut m = vector("seed002/d2_01_invite_microsip.sip");
        fired(
            &rule(
                "{}",
                "replace: {header: User-Agent, regex: 'MicroSIP/(\\S+)', with: 'Phone $1'}",
            ),
            &mut m,
        );
        assert_eq!(all(&m, "User-Agent"), ["Phone 3.21.3"]);
        fired(&rule("{}", "replace: {header: Supported, regex: ',?\\s*100rel', with: ''}"), &mut m);
        assert_eq!(all(&m, "Supported"), ["replaces, timer, norefersub"]);
    }

    #[test]
    fn rewrite_user_of_request_uri_to_e164() {
        let mut m = msg(INVITE);
        fired(
            &rule(
                "{}",
                "rewrite_user: {header: Request-URI, regex: '^0([1-9]\\d+)$', with: '+49$1'}",
            ),
            &mut m,
        );
        assert_eq!(ruri(&m), "sip:+49301234567@pbx.example");
        // Already E.164: no match, no change.
        fired(
            &rule(
                "{}",
                "rewrite_user: {header: Request-URI, regex: '^0([1-9]\\d+)$', with: '+49$1'}",
            ),
            &mut m,
        );
        assert_eq!(ruri(&m), "sip:+49301234567@pbx.example");
        // From E.164 back to national.
        fired(
            &rule(
                "{}",
                "rewrite_user: {header: Request-URI, strip_prefix: '+49', add_prefix: '0'}",
            ),
            &mut m,
        );
        assert_eq!(ruri(&m), "sip:0301234567@pbx.example");
    }

    #[test]
    fn rewrite_user_prefixes_on_headers() {
        let mut m = msg(INVITE);
        fired(
            &rule("{}", "rewrite_user: {header: To, strip_prefix: '0', add_prefix: '+49'}"),
            &mut m,
        );
        assert_eq!(all(&m, "To"), ["<sip:+49301234567@pbx.example>"]);
        // strip_prefix that does not match: nothing happens, add_prefix included.
        fired(
            &rule("{}", "rewrite_user: {header: To, strip_prefix: '00', add_prefix: '+'}"),
            &mut m,
        );
        assert_eq!(all(&m, "To"), ["<sip:+49301234567@pbx.example>"]);
        // Every element of a multi-valued header, tel: included; tags survive on From.
        fired(
            &rule("{}", "rewrite_user: {header: P-Asserted-Identity, add_prefix: '+4930'}"),
            &mut m,
        );
        assert_eq!(all(&m, "P-Asserted-Identity"), ["<sip:+4930201@10.0.0.5>, <tel:+4930201>"]);
        fired(&rule("{}", "rewrite_user: {header: From, value: '+4930${from.user}'}"), &mut m);
        assert_eq!(all(&m, "From"), ["\"Alice Smith\" <sip:+4930201@10.0.0.5>;tag=1928301774"]);
    }

    #[test]
    fn rewrite_user_inserts_and_removes_user_parts() {
        let mut m = vector("seed002/d2_01_invite_microsip.sip");
        fired(&rule("{}", "rewrite_user: {header: From, value: anonymous}"), &mut m);
        assert_eq!(
            all(&m, "From"),
            ["<sip:anonymous@192.168.71.146>;tag=cb9e96b542084e3db354b9a6e98e5527"]
        );
        fired(&rule("{}", "rewrite_user: {header: Request-URI, value: '1000'}"), &mut m);
        assert_eq!(ruri(&m), "sip:1000@192.168.80.12");
        fired(&rule("{}", "rewrite_user: {header: From, regex: '.*', with: ''}"), &mut m);
        assert_eq!(all(&m, "From"), ["<sip:192.168.71.146>;tag=cb9e96b542084e3db354b9a6e98e5527"]);
    }

    #[test]
    fn rewrite_host() {
        let mut m = msg(INVITE);
        fired(&rule("{}", "rewrite_host: {header: Request-URI, value: sip.itsp.example}"), &mut m);
        assert_eq!(ruri(&m), "sip:0301234567@sip.itsp.example");
        fired(&rule("{}", "rewrite_host: {header: From, value: '${ruri.host}'}"), &mut m);
        assert_eq!(all(&m, "From"), ["\"Alice Smith\" <sip:201@sip.itsp.example>;tag=1928301774"]);
        fired(&rule("{}", "rewrite_host: {header: To, regex: '^pbx\\.', with: 'sip.'}"), &mut m);
        assert_eq!(all(&m, "To"), ["<sip:0301234567@sip.example>"]);
        fired(
            &rule("{}", "rewrite_host: {header: P-Asserted-Identity, value: 203.0.113.10}"),
            &mut m,
        );
        assert_eq!(
            all(&m, "P-Asserted-Identity"),
            ["<sip:201@203.0.113.10>, <tel:201>"],
            "tel: has no host"
        );
    }

    #[test]
    fn display_name_set_and_removed() {
        let mut m = msg(INVITE);
        fired(&rule("{}", "display_name: {header: From, value: 'Reception \"Main\"'}"), &mut m);
        assert_eq!(
            all(&m, "From"),
            ["\"Reception \\\"Main\\\"\" <sip:201@10.0.0.5>;tag=1928301774"]
        );
        fired(&rule("{}", "display_name: {header: From, value: ''}"), &mut m);
        assert_eq!(all(&m, "From"), ["<sip:201@10.0.0.5>;tag=1928301774"]);
        let mut d201 = vector("seed002/d2_01_invite_microsip.sip");
        fired(&rule("{}", "display_name: {header: To, value: '${ruri.host}'}"), &mut d201);
        assert_eq!(all(&d201, "To"), ["\"192.168.80.12\" <sip:192.168.80.12>"]);
    }

    #[test]
    fn display_name_turns_addr_spec_into_name_addr() {
        let mut m = msg(&INVITE
            .replace("To: <sip:0301234567@pbx.example>", "To: sip:0301234567@pbx.example;tag=abc"));
        fired(&rule("{}", "display_name: {header: To, value: Bob}"), &mut m);
        assert_eq!(all(&m, "To"), ["\"Bob\" <sip:0301234567@pbx.example>;tag=abc"]);
    }

    #[test]
    fn allow_headers_keeps_owned_and_listed() {
        let mut m = msg(INVITE);
        fired(&rule("{}", "allow_headers: [P-Asserted-Identity]"), &mut m);
        let names: Vec<&str> = headers(&m).iter().map(|h| name_value(h).0).collect();
        assert_eq!(
            names,
            [
                "Via",
                "Max-Forwards",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Contact",
                "P-Asserted-Identity",
                "Content-Type",
                "Content-Length"
            ]
        );
    }

    #[test]
    fn translate_response() {
        let mut resp = vector("seed003/013_avaya_ipo_tx_404_not_found.sip");
        fired(&rule("{}", "translate_response: {from: 404, to: 480}"), &mut resp);
        assert_eq!(status(&resp), Some(480));
        let wire = crate::sip::wire::encode_response(match &resp {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => unreachable!(),
        });
        assert!(wire.starts_with(b"SIP/2.0 480 Temporarily Unavailable\r\n"));
        let f = fired(
            &rule("{response: 480}", "translate_response: {to: 503, reason: Try Later}"),
            &mut resp,
        );
        assert_eq!(f, ["r"]);
        assert_eq!(status(&resp), Some(503));
        // A request is never translated.
        let mut m = msg(INVITE);
        fired(&rule("{}", "translate_response: {from: 4xx, to: 480}"), &mut m);
        assert_eq!(ruri(&m), "sip:0301234567@pbx.example");
    }

    #[test]
    fn codec_filter_keeps_preference_and_telephone_event() {
        let mut m = msg(INVITE);
        fired(&rule("{}", "codecs: [PCMA, PCMU]"), &mut m);
        let body = String::from_utf8(m.body().clone()).expect("utf8");
        assert!(body.contains("m=audio 4000 RTP/AVP 8 0 101\r\n"), "{body}");
        assert!(!body.contains("G722") && !body.contains("G729"), "{body}");
        assert!(body.contains("a=fmtp:101 0-16"), "{body}");
        assert_eq!(all(&m, "Content-Length"), [body.len().to_string()]);
    }

    #[test]
    fn codec_filter_with_nothing_left_rejects_offers_with_488() {
        let mut m = msg(INVITE);
        let r = run_policy(&rule("{}", "codecs: [opus]"), Direction::ToTrunk, "lan", &mut m);
        assert_eq!(r, Err(Reject { code: 488, reason: "Not Acceptable Here".into() }));
        // A response keeps its body.
        let mut ok = vector("seed002/d2_04_200ok_invite.sip");
        let before = ok.body().clone();
        assert_eq!(fired(&rule("{}", "codecs: [opus]"), &mut ok), ["r"]);
        assert_eq!(ok.body(), &before);
        // No SDP: nothing to filter.
        let mut d217 = vector("seed002/d2_17_invite_cucm_delayed_offer.sip");
        assert_eq!(fired(&rule("{}", "codecs: [opus]"), &mut d217), ["r"]);
    }

    #[test]
    fn reject_requests() {
        let mut m = msg(INVITE);
        let r = run_policy(
            &rule("{ruri_user: '^0900'}", "reject: {code: 403}"),
            Direction::ToTrunk,
            "lan",
            &mut m,
        );
        assert_eq!(r, Ok(vec![]));
        let r = run_policy(
            &rule("{ruri_user: '^030'}", "reject: {code: 403, reason: Premium Blocked}"),
            Direction::ToTrunk,
            "lan",
            &mut m,
        );
        assert_eq!(r, Err(Reject { code: 403, reason: "Premium Blocked".into() }));
        let r = run_policy(&rule("{}", "reject: {code: 603}"), Direction::ToTrunk, "lan", &mut m);
        assert_eq!(r, Err(Reject { code: 603, reason: "Decline".into() }));
        let mut ack = vector("seed002/d2_05_ack.sip");
        assert!(run_policy(
            &rule("{}", "reject: {code: 603}"),
            Direction::ToTrunk,
            "lan",
            &mut ack
        )
        .is_ok());
    }

    #[test]
    fn rules_run_in_order_and_see_earlier_changes() {
        let rules = "  - name: e164\n    when: {from_user: '^2\\d\\d$'}\n    do:\n      - rewrite_user: {header: From, add_prefix: '+4930'}\n\
                     \x20 - name: pai\n    when: {absent: Privacy}\n    do:\n      - set: {header: P-Asserted-Identity, value: '<sip:${from.user}@itsp.example>'}\n\
                     \x20 - name: never\n    when: {method: BYE}\n    do:\n      - remove: {header: User-Agent}\n";
        let mut m = msg(INVITE);
        assert_eq!(fired(rules, &mut m), ["e164", "pai"]);
        assert_eq!(all(&m, "P-Asserted-Identity"), ["<sip:+4930201@itsp.example>"]);
        assert_eq!(all(&m, "User-Agent").len(), 1);
    }

    #[test]
    fn chain_runs_policies_in_order() {
        let a = compile_str(
            "rules:\n  - name: ua\n    do: [{set: {header: User-Agent, value: A}}]\n",
            "a.yaml",
        )
        .expect("a");
        let b = compile_str("rules:\n  - name: ua\n    when: {headers: {User-Agent: '^A$'}}\n    do: [{set: {header: User-Agent, value: B}}]\n", "b.yaml").expect("b");
        let chain = PolicyChain::new(vec![Arc::new(a), Arc::new(b)]);
        let mut m = msg(INVITE);
        let out = chain
            .apply(Direction::ToTrunk, &MessageContext { source_zone: "lan" }, &mut m)
            .expect("ok");
        assert_eq!(out.fired, [("a", "ua"), ("b", "ua")]);
        assert_eq!(all(&m, "User-Agent"), ["B"]);
    }

    #[test]
    fn owned_by_variant_agrees_with_topology() {
        for name in topology::B2BUA_OWNED {
            assert!(owned(&make(name, "x")), "{name}");
            assert!(owned(&Header::Other(name.to_lowercase(), "x".into())), "{name}");
        }
        for name in ["User-Agent", "X-Via", "P-Asserted-Identity", "Content-Type", "RSeq"] {
            assert!(!owned(&make(name, "x")), "{name}");
        }
    }

    #[test]
    fn view_is_refreshed_after_each_action() {
        let rules = "  - name: r\n    do:\n      - rewrite_user: {header: From, value: '999'}\n      - set: {header: X-From, value: '${from.user}'}\n";
        let mut m = msg(INVITE);
        fired(rules, &mut m);
        assert_eq!(all(&m, "X-From"), ["999"]);
    }

    // ---- URI scanning ----

    #[test]
    fn uri_spans_of_common_forms() {
        let v =
            "\"Smith, John\" <sip:+4930:pw@[2001:db8::1]:5060;user=phone>;tag=x, <tel:+1555;ext=2>";
        let els: Vec<Range<usize>> = elements(v).collect();
        assert_eq!(els.len(), 2);
        let s = uri_spans(v, els[0].clone()).expect("sip");
        assert_eq!(&v[s.user.clone()], "+4930");
        assert_eq!(&v[s.host.clone().expect("host")], "[2001:db8::1]");
        assert_eq!(&v[s.userinfo.clone()], "+4930:pw@");
        let t = uri_spans(v, els[1].clone()).expect("tel");
        assert_eq!(&v[t.user.clone()], "+1555");
        assert!(t.host.is_none());
        assert!(uri_spans("garbage", 0..7).is_none());
        let a = "sip:alice@a.example;tag=1";
        let s = uri_spans(a, 0..a.len()).expect("addr-spec");
        assert_eq!(&a[s.uri.clone()], "sip:alice@a.example");
    }

    #[test]
    fn rewriting_odd_values_never_panics() {
        let op = UriOp::Prefix { strip: None, add: "+".into() };
        for v in [
            "",
            "<",
            ">",
            "\"",
            "\"<sip:a@b>",
            "<sip:>",
            "sip:",
            "sip:@",
            "<sip:a@[::1>",
            ",,,",
            "x <tel:>",
            "\"\\",
            "<sip:a@b",
        ] {
            let _ = rewrite_value(v, Part::User, &op, None);
            let _ = rewrite_value(v, Part::Host, &op, None);
            let _ = set_display(v, "x");
            let _ = set_display(v, "");
        }
    }
}
