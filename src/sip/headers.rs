//! Name/value access to rsip headers without caring which enum variant holds them.
//!
//! rsip stores each known header in its own variant and everything else in `Other(name, value)`;
//! the layers above want one uniform view (name matching is case-insensitive, RFC 3261 §7.3.1).

use rsip::headers::UntypedHeader;
use rsip::Header;

macro_rules! known_headers {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The header's canonical name and its raw value.
        pub fn name_value(h: &Header) -> (&str, &str) {
            match h {
                $(Header::$variant(v) => ($name, v.value()),)*
                Header::Other(n, v) => (n.as_str(), v.as_str()),
            }
        }

        /// Builds a header from a name and value, choosing rsip's variant when it has one.
        pub fn make(name: &str, value: impl Into<String>) -> Header {
            let value = value.into();
            $(if name.eq_ignore_ascii_case($name) {
                return Header::$variant(rsip::headers::$variant::new(value));
            })*
            Header::Other(name.to_string(), value)
        }
    };
}

known_headers! {
    Accept => "Accept",
    AcceptEncoding => "Accept-Encoding",
    AcceptLanguage => "Accept-Language",
    AlertInfo => "Alert-Info",
    Allow => "Allow",
    AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization",
    CSeq => "CSeq",
    CallId => "Call-ID",
    CallInfo => "Call-Info",
    Contact => "Contact",
    ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding",
    ContentLanguage => "Content-Language",
    ContentLength => "Content-Length",
    ContentType => "Content-Type",
    Date => "Date",
    ErrorInfo => "Error-Info",
    Event => "Event",
    Expires => "Expires",
    From => "From",
    InReplyTo => "In-Reply-To",
    MaxForwards => "Max-Forwards",
    MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires",
    Organization => "Organization",
    Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate",
    ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require",
    RecordRoute => "Record-Route",
    ReplyTo => "Reply-To",
    Require => "Require",
    RetryAfter => "Retry-After",
    Route => "Route",
    Server => "Server",
    Subject => "Subject",
    SubscriptionState => "Subscription-State",
    Supported => "Supported",
    Timestamp => "Timestamp",
    To => "To",
    Unsupported => "Unsupported",
    UserAgent => "User-Agent",
    Via => "Via",
    Warning => "Warning",
    WwwAuthenticate => "WWW-Authenticate",
}

/// True when `h` is named `name` (case-insensitive).
pub fn is_named(h: &Header, name: &str) -> bool {
    name_value(h).0.eq_ignore_ascii_case(name)
}

/// Extracts a `;name=value` parameter from a header value such as a From/To/Via
/// (parameters after the URI's closing `>` when the value has one).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let p = p.trim();
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (p, ""),
        };
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The URI inside a name-addr (`"Alice" <sip:a@b>;tag=x` → `sip:a@b`) or an addr-spec
/// (`sip:a@b;tag=x` → `sip:a@b`, header parameters cut).
pub fn addr_uri(value: &str) -> &str {
    if let Some(start) = value.find('<') {
        let rest = &value[start + 1..];
        match rest.find('>') {
            Some(end) => rest[..end].trim(),
            None => rest.trim(),
        }
    } else {
        let v = value.trim();
        v.split(';').next().unwrap_or(v).trim()
    }
}

/// The display name of a name-addr, without quotes (`"Alice" <sip:..>` → `Alice`).
pub fn display_name(value: &str) -> Option<&str> {
    let start = value.find('<')?;
    let d = value[..start].trim();
    let d = d.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap_or(d);
    (!d.is_empty()).then_some(d)
}

/// The user part of a SIP URI string (`sip:alice@host;x` → `alice`), without password.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':').map(|(_, r)| r)?;
    let at = rest.find('@')?;
    let user = &rest[..at];
    Some(user.split(':').next().unwrap_or(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_after_name_addr() {
        let v = "\"Bob\" <sip:bob@b.example;transport=tcp>;tag=a6c85cf";
        assert_eq!(param(v, "tag"), Some("a6c85cf"));
        assert_eq!(param(v, "transport"), None);
        assert_eq!(addr_uri(v), "sip:bob@b.example;transport=tcp");
        assert_eq!(display_name(v), Some("Bob"));
        assert_eq!(uri_user(addr_uri(v)), Some("bob"));
    }

    #[test]
    fn params_of_addr_spec() {
        let v = "sip:alice@a.example;tag=1928301774";
        assert_eq!(param(v, "tag"), Some("1928301774"));
        assert_eq!(addr_uri(v), "sip:alice@a.example");
        assert_eq!(display_name(v), None);
    }

    #[test]
    fn make_picks_variant_case_insensitively() {
        assert!(matches!(make("call-id", "x"), Header::CallId(_)));
        assert!(matches!(make("X-Foo", "x"), Header::Other(_, _)));
        assert_eq!(name_value(&make("cseq", "1 INVITE")), ("CSeq", "1 INVITE"));
    }
}
