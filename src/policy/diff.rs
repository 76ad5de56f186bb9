//! Before/after views of a message for people: `sipborder policy test` and failing policy tests.

use rsip::SipMessage;

/// The message as it would go on the wire (computed Content-Length, standard reason phrases),
/// with LF line endings so it reads and diffs cleanly in a terminal. Bytes that are not UTF-8
/// (a binary body) show as U+FFFD.
pub fn message_text(msg: &SipMessage) -> String {
    let bytes = match msg {
        SipMessage::Request(r) => crate::sip::wire::encode_request(r),
        SipMessage::Response(r) => crate::sip::wire::encode_response(r),
    };
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

/// A unified diff (3 lines of context) from `before` to `after`, labelled like `diff -u`;
/// empty when they are equal.
pub fn unified(before: &str, after: &str, before_label: &str, after_label: &str) -> String {
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(before_label, after_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn changed_line_is_shown_with_context() {
        let d = unified("A: 1\nB: 2\nC: 3\n", "A: 1\nB: two\nC: 3\n", "before", "after");
        assert_eq!(d, "--- before\n+++ after\n@@ -1,3 +1,3 @@\n A: 1\n-B: 2\n+B: two\n C: 3\n");
    }

    #[test]
    fn message_text_uses_lf_and_computed_length() {
        let r = rsip::Request {
            method: rsip::Method::Options,
            uri: rsip::Uri::try_from("sip:a@b.example").expect("uri"),
            version: rsip::Version::V2,
            headers: vec![crate::sip::headers::make("Content-Length", "99")].into(),
            body: b"hi".to_vec(),
        };
        assert_eq!(
            message_text(&SipMessage::Request(r)),
            "OPTIONS sip:a@b.example SIP/2.0\nContent-Length: 2\n\nhi"
        );
    }
}
