//! Running a policy on a sample message: the `tests:` of a policy file and
//! `sipborder policy test`.

use super::apply::{MessageContext, Reject};
use super::compile::CompiledPolicy;
use super::diff::{message_text, unified};
use super::rules::{Direction, TestCase};
use crate::sip::headers::name_value;
use crate::sip::normalize::expand_compact;
use crate::sip::parse::{parse, Limits};
use rsip::SipMessage;
use std::fmt;

/// Turns message text as people write it into wire form: LF line endings become CRLF, a missing
/// blank line after the headers is added, and Content-Length is set to the body's real length
/// (added when the message has a body but no Content-Length), so a message pasted into YAML or
/// typed by hand need not count bytes.
pub fn normalise_message(text: &str) -> Vec<u8> {
    let mut crlf = String::with_capacity(text.len() + text.len() / 16);
    let mut prev = '\0';
    for c in text.trim_start_matches(['\r', '\n']).chars() {
        if c == '\n' && prev != '\r' {
            crlf.push('\r');
        }
        crlf.push(c);
        prev = c;
    }
    let (head, body) = match crlf.find("\r\n\r\n") {
        Some(at) => (&crlf[..at], &crlf[at + 4..]),
        None => (crlf.trim_end_matches(['\r', '\n']), ""),
    };
    let mut out = String::with_capacity(crlf.len() + 24);
    let mut has_length = false;
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let name = line.split(':').next().unwrap_or("").trim();
        if i > 0 && (name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l"))
        {
            has_length = true;
            out.push_str(&format!("{name}: {}", body.len()));
        } else {
            out.push_str(line);
        }
    }
    if !has_length && !body.is_empty() {
        out.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    out.push_str("\r\n\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// One run of a policy on one message.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The message before, as text (LF endings).
    pub before: String,
    /// The message after the rules, as text; the partly rewritten message when rejected.
    pub after: String,
    /// The message after the rules.
    pub message: SipMessage,
    /// Rules that fired, in order.
    pub fired: Vec<String>,
    /// Set when a rule refused the request.
    pub reject: Option<Reject>,
}

impl Trial {
    /// A unified diff from `before` to `after`.
    pub fn diff(&self) -> String {
        unified(&self.before, &self.after, "before", "after")
    }
}

/// Parses `text` (see [`normalise_message`]) and runs the plan for `dir` on it.
/// `Err` when the message does not parse, with the parser's reason.
pub fn trial(
    policy: &CompiledPolicy,
    dir: Direction,
    zone: &str,
    text: &str,
) -> Result<Trial, String> {
    let bytes = normalise_message(text);
    let parsed = parse(&bytes, &Limits::default())
        .map_err(|e| format!("the message does not parse: {e}"))?;
    let mut message = parsed.raw;
    let before = message_text(&message);
    let mut fired = Vec::new();
    let reject = policy
        .apply_into(dir, &MessageContext { source_zone: zone }, &mut message, &mut fired)
        .err();
    let fired = fired.into_iter().map(String::from).collect();
    let after = message_text(&message);
    Ok(Trial { before, after, message, fired, reject })
}

/// The result of one `tests:` entry.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// True when every expectation held.
    pub passed: bool,
    /// One line per expectation that did not hold.
    pub problems: Vec<String>,
    /// What the rules did, as a unified diff (for failures).
    pub diff: String,
}

impl fmt::Display for TestOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed {
            return write!(f, "ok     {}", self.name);
        }
        writeln!(f, "FAILED {}", self.name)?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        if !self.diff.is_empty() {
            writeln!(f, "  what the rules did:")?;
            for line in self.diff.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// Runs every test of the file, in order.
pub fn run_tests(policy: &CompiledPolicy) -> Vec<TestOutcome> {
    policy.tests().iter().map(|t| run_test(policy, t)).collect()
}

fn values(msg: &SipMessage, name: &str) -> Vec<String> {
    let name = name.trim();
    let name = expand_compact(name.as_bytes()).unwrap_or(name);
    let headers = match msg {
        SipMessage::Request(r) => &r.headers,
        SipMessage::Response(r) => &r.headers,
    };
    headers
        .iter()
        .filter_map(|h| {
            let (n, v) = name_value(h);
            n.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
        .collect()
}

/// Runs one test and checks its expectations.
pub fn run_test(policy: &CompiledPolicy, test: &TestCase) -> TestOutcome {
    let mut problems = Vec::new();
    let t = match trial(policy, test.direction, &test.zone, &test.message) {
        Ok(t) => t,
        Err(e) => {
            return TestOutcome {
                name: test.name.clone(),
                passed: false,
                problems: vec![e],
                diff: String::new(),
            }
        }
    };
    let e = &test.expect;
    match (&t.reject, e.reject) {
        (None, Some(code)) => {
            problems.push(format!("expected a reject with {code}, but the message was let through"))
        }
        (Some(r), Some(code)) if r.code != code => {
            problems.push(format!("expected a reject with {code}, got {} {}", r.code, r.reason))
        }
        (Some(r), None) => {
            problems.push(format!("unexpectedly rejected with {} {}", r.code, r.reason))
        }
        _ => {}
    }
    for (name, want) in &e.headers {
        let got = values(&t.message, name);
        if got.is_empty() {
            problems.push(format!("{name}: expected {want:?}, but the header is absent"));
        } else if &got.join(", ") != want {
            problems.push(format!("{name}: expected {want:?}, got {:?}", got.join(", ")));
        }
    }
    for name in &e.absent {
        let got = values(&t.message, name);
        if !got.is_empty() {
            problems.push(format!("{name}: expected absent, got {:?}", got.join(", ")));
        }
    }
    if let Some(want) = &e.request_uri {
        match &t.message {
            SipMessage::Request(r) => {
                let got = r.uri.to_string();
                if &got != want {
                    problems.push(format!("Request-URI: expected {want:?}, got {got:?}"));
                }
            }
            SipMessage::Response(_) => {
                problems.push("request_uri expected, but the message is a response".into())
            }
        }
    }
    if let Some(want) = e.status {
        match &t.message {
            SipMessage::Response(r) if r.status_code.code() == want => {}
            SipMessage::Response(r) => {
                problems.push(format!("status: expected {want}, got {}", r.status_code.code()))
            }
            SipMessage::Request(_) => {
                problems.push("status expected, but the message is a request".into())
            }
        }
    }
    if let Some(want) = &e.fired {
        if &t.fired != want {
            problems.push(format!(
                "fired: expected [{}], got [{}]",
                want.join(", "),
                t.fired.join(", ")
            ));
        }
    }
    let body = String::from_utf8_lossy(t.message.body());
    for want in &e.body_contains {
        if !body.contains(want.as_str()) {
            problems.push(format!("body: expected to contain {want:?}"));
        }
    }
    for unwanted in &e.body_lacks {
        if body.contains(unwanted.as_str()) {
            problems.push(format!("body: expected not to contain {unwanted:?}"));
        }
    }
    TestOutcome { name: test.name.clone(), passed: problems.is_empty(), problems, diff: t.diff() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::compile_str;

    #[test]
    fn normalise_adds_crlf_blank_line_and_length() {
        let n = normalise_message("OPTIONS sip:a@b SIP/2.0\nContent-Length: 99\n");
        assert_eq!(n, b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        let n = normalise_message("\nINVITE sip:a@b SIP/2.0\r\nl: 1\n\nv=0\n");
        assert_eq!(n, b"INVITE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nv=0\r\n");
        let n = normalise_message("INVITE sip:a@b SIP/2.0\nCall-ID: x\n\nv=0\n");
        assert_eq!(n, b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 5\r\n\r\nv=0\r\n");
    }

    const POLICY: &str = "\
rules:
  - name: ua
    when: {message: request}
    do:
      - set: {header: User-Agent, value: sipborder}
  - name: block
    when: {ruri_user: '^0900'}
    do:
      - reject: {code: 403}
tests:
  - name: passes
    direction: to-trunk
    message: |
      OPTIONS sip:100@b.example SIP/2.0
      Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1
      From: <sip:a@b.example>;tag=1
      To: <sip:100@b.example>
      Call-ID: c1
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      User-Agent: phone
    expect:
      headers: {user-agent: sipborder}
      absent: [X-Foo]
      request_uri: sip:100@b.example
      fired: [ua]
  - name: fails
    direction: to-trunk
    message: |
      OPTIONS sip:0900123@b.example SIP/2.0
      Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1
      From: <sip:a@b.example>;tag=1
      To: <sip:100@b.example>
      Call-ID: c1
      CSeq: 1 OPTIONS
      Max-Forwards: 70
    expect:
      headers: {User-Agent: phone, X-Gone: x}
      absent: [User-Agent]
      status: 200
      fired: [ua]
  - name: broken message
    direction: to-lan
    message: not sip at all
    expect: {}
";

    #[test]
    fn passing_and_failing_tests_are_explained() {
        let p = compile_str(POLICY, "t.yaml").expect("valid");
        let out = run_tests(&p);
        assert_eq!(out.len(), 3);
        assert!(out[0].passed, "{}", out[0]);
        assert_eq!(out[0].to_string(), "ok     passes");
        assert!(!out[1].passed);
        let shown = out[1].to_string();
        for want in [
            "FAILED fails",
            "unexpectedly rejected with 403 Forbidden",
            "User-Agent: expected \"phone\", got \"sipborder\"",
            "X-Gone: expected \"x\", but the header is absent",
            "User-Agent: expected absent, got \"sipborder\"",
            "status expected, but the message is a request",
            "fired: expected [ua], got [ua, block]",
            "+User-Agent: sipborder",
        ] {
            assert!(shown.contains(want), "missing {want:?} in\n{shown}");
        }
        assert!(!out[2].passed);
        assert!(out[2].problems[0].starts_with("the message does not parse"), "{}", out[2]);
    }

    #[test]
    fn trial_shows_diff() {
        let p = compile_str(POLICY, "t.yaml").expect("valid");
        let t = trial(&p, Direction::ToTrunk, "lan", &p.tests()[0].message).expect("parses");
        assert_eq!(t.fired, ["ua"]);
        let d = t.diff();
        assert!(d.contains("-User-Agent: phone\n+User-Agent: sipborder\n"), "{d}");
    }
}
