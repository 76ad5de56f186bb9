//! Small URI helpers the dialog layer needs on top of rsip.

use crate::sip::headers::addr_uri;

/// Parses a URI string with rsip, falling back to a plain `sip:` URI on failure so a slightly
/// odd remote target (rsip is strict about some legal forms) never stops a dialog.
pub fn parse_uri(s: &str) -> Option<rsip::Uri> {
    rsip::Uri::try_from(s).ok()
}

/// The URI of each Record-Route/Route value, in order (values may hold several comma-separated
/// entries).
pub fn route_entries<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        for part in split_top_level_commas(v) {
            let part = part.trim();
            if !part.is_empty() {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// Splits a header value on commas that are not inside `<>` or quotes.
pub fn split_top_level_commas(v: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts
}

/// The URI inside a Contact value (first contact only).
pub fn contact_uri(contact: &str) -> Option<String> {
    let first = split_top_level_commas(contact).into_iter().next()?;
    let u = addr_uri(first);
    (!u.is_empty() && u != "*").then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_inside_brackets_are_kept() {
        let v = "<sip:p1.example.com;lr>, <sip:p2.example.com;lr;x=\"a,b\">";
        assert_eq!(route_entries([v].into_iter()).len(), 2);
    }

    #[test]
    fn contact_uri_of_name_addr() {
        assert_eq!(
            contact_uri("\"A\" <sip:a@10.0.0.1:5060;transport=tcp>;expires=60").as_deref(),
            Some("sip:a@10.0.0.1:5060;transport=tcp")
        );
        assert_eq!(contact_uri("*"), None);
    }
}
