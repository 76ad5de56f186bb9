//! The Replaces header (RFC 3891): which dialog a new one takes the place of, as found in an
//! INVITE's `Replaces` header or escaped into a REFER's `Refer-To` URI (`?Replaces=...`,
//! attended transfer, RFC 5589).

/// A dialog named by a Replaces header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// Call-ID of the dialog.
    pub call_id: String,
    /// `to-tag`: the tag of the UA receiving the Replaces (RFC 3891 §3).
    pub to_tag: String,
    /// `from-tag`: the other end's tag.
    pub from_tag: String,
    /// `early-only` was present.
    pub early_only: bool,
}

/// Why a Replaces value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplacesError {
    /// No Call-ID before the parameters.
    #[error("Replaces has no Call-ID")]
    NoCallId,
    /// `to-tag` or `from-tag` missing (both are mandatory).
    #[error("Replaces lacks to-tag or from-tag")]
    NoTags,
    /// A `%` escape that is not two hex digits, or not UTF-8 once decoded.
    #[error("Replaces is badly escaped")]
    BadEscape,
}

impl Replaces {
    /// Parses a Replaces header value: `callid;to-tag=x;from-tag=y[;early-only]`.
    pub fn parse(value: &str) -> Result<Replaces, ReplacesError> {
        let mut parts = value.split(';');
        let call_id = parts.next().unwrap_or("").trim();
        if call_id.is_empty() {
            return Err(ReplacesError::NoCallId);
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, val) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => (p.trim(), ""),
            };
            if name.eq_ignore_ascii_case("to-tag") {
                to_tag = Some(val.to_string());
            } else if name.eq_ignore_ascii_case("from-tag") {
                from_tag = Some(val.to_string());
            } else if name.eq_ignore_ascii_case("early-only") {
                early_only = true;
            }
        }
        match (to_tag, from_tag) {
            (Some(t), Some(f)) if !t.is_empty() && !f.is_empty() => {
                Ok(Replaces { call_id: call_id.to_string(), to_tag: t, from_tag: f, early_only })
            }
            _ => Err(ReplacesError::NoTags),
        }
    }

    /// The Replaces escaped into a Refer-To URI's headers (`sip:x@y?Replaces=a%40b%3Bto-tag%3D1`),
    /// `Ok(None)` when the URI carries none (a blind transfer).
    pub fn from_refer_to(uri: &str) -> Result<Option<Replaces>, ReplacesError> {
        let Some((_, headers)) = uri.split_once('?') else { return Ok(None) };
        let headers = headers.trim_end_matches('>');
        for h in headers.split('&') {
            let Some((name, val)) = h.split_once('=') else { continue };
            if name.trim().eq_ignore_ascii_case("Replaces") {
                return Replaces::parse(&unescape(val)?).map(Some);
            }
        }
        Ok(None)
    }

    /// True when `(call_id, local, remote)` is the dialog named here, read from either end:
    /// RFC 3891 writes the tags from the recipient's view, and some PBXs write them from
    /// their own.
    pub fn names(&self, call_id: &str, local: &str, remote: Option<&str>) -> bool {
        call_id == self.call_id
            && ((local == self.to_tag && remote.is_none_or(|r| r == self.from_tag))
                || (local == self.from_tag && remote.is_none_or(|r| r == self.to_tag)))
    }
}

/// Percent-decoding of a URI header value (RFC 3261 §19.1.2 escapes `@`, `;`, `=` there).
/// By hand: a dozen lines, where a crate would bring a dependency for one call site.
fn unescape(s: &str) -> Result<String, ReplacesError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(ReplacesError::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ReplacesError::BadEscape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ReplacesError::BadEscape)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ReplacesError::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_value_with_both_tags_and_early_only() {
        let r = Replaces::parse("425928@bobster.example.org;to-tag=7743;from-tag=6472").unwrap();
        assert_eq!(r.call_id, "425928@bobster.example.org");
        assert_eq!((r.to_tag.as_str(), r.from_tag.as_str()), ("7743", "6472"));
        assert!(!r.early_only);
        assert!(Replaces::parse("a@b;from-tag=1;to-tag=2;early-only").unwrap().early_only);
        assert_eq!(Replaces::parse("a@b;to-tag=1"), Err(ReplacesError::NoTags));
        assert_eq!(Replaces::parse(";to-tag=1;from-tag=2"), Err(ReplacesError::NoCallId));
    }

    #[test]
    fn escaped_in_refer_to_as_cucm_and_asterisk_write_it() {
        let uri = "sip:10003@10.0.0.50?Replaces=abc%4010.0.0.50%3Bto-tag%3D77%3Bfrom-tag%3D88";
        let r = Replaces::from_refer_to(uri).unwrap().unwrap();
        assert_eq!(r.call_id, "abc@10.0.0.50");
        assert_eq!((r.to_tag.as_str(), r.from_tag.as_str()), ("77", "88"));
        // Other URI headers beside it, lower case name.
        let uri = "sip:y@h?Require=replaces&replaces=c1%3Bfrom-tag%3D2%3Bto-tag%3D1";
        assert_eq!(Replaces::from_refer_to(uri).unwrap().unwrap().call_id, "c1");
        assert_eq!(Replaces::from_refer_to("sip:10003@10.0.0.50").unwrap(), None);
        assert_eq!(
            Replaces::from_refer_to("sip:y@h?Replaces=c1%3Bto-tag%3D1%3Bfrom-tag%3D2%G1"),
            Err(ReplacesError::BadEscape)
        );
        assert_eq!(Replaces::from_refer_to("sip:y@h?Replaces=c%"), Err(ReplacesError::BadEscape));
    }

    #[test]
    fn names_a_dialog_read_from_either_end() {
        let r = Replaces::parse("c1;to-tag=ours;from-tag=theirs").unwrap();
        assert!(r.names("c1", "ours", Some("theirs")));
        assert!(r.names("c1", "theirs", Some("ours")));
        assert!(r.names("c1", "ours", None));
        assert!(!r.names("c1", "ours", Some("other")));
        assert!(!r.names("c2", "ours", Some("theirs")));
    }
}
