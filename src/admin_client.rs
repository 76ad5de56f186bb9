//! The client side of the admin endpoint, for `sipborder bans`: one plain HTTP/1.0 request to
//! the metrics listener, blocking (the CLI has no runtime), bounded by timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a request to the admin endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The URL is not `http://host:port[/]`.
    #[error("admin URL {0:?}: expected http://host:port")]
    Url(String),
    /// Connecting, sending or reading failed.
    #[error("admin endpoint {addr}: {source}")]
    Io {
        /// Where.
        addr: String,
        /// What.
        source: std::io::Error,
    },
    /// The answer was not HTTP.
    #[error("admin endpoint answered something that is not HTTP")]
    NotHttp,
}

/// `host:port` of an `http://host:port[/]` URL.
fn authority(url: &str) -> Result<&str, AdminError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| AdminError::Url(url.into()))?;
    let auth = rest.trim_end_matches('/');
    if auth.is_empty() || auth.contains('/') {
        return Err(AdminError::Url(url.into()));
    }
    Ok(auth)
}

/// Sends `method path` to the admin endpoint at `url`; returns the status and the body.
pub fn request(url: &str, method: &str, path: &str) -> Result<(u16, String), AdminError> {
    let auth = authority(url)?;
    let io = |source| AdminError::Io { addr: auth.to_string(), source };
    let addr: SocketAddr =
        auth.to_socket_addrs().map_err(io)?.next().ok_or_else(|| AdminError::Url(url.into()))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(io)?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {auth}\r\n\r\n").map_err(io)?;
    let mut out = Vec::new();
    s.take(16 * 1024 * 1024).read_to_end(&mut out).map_err(io)?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(AdminError::NotHttp)?;
    let status =
        head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or(AdminError::NotHttp)?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(authority("http://127.0.0.1:9091").ok(), Some("127.0.0.1:9091"));
        assert_eq!(authority("http://127.0.0.1:9091/").ok(), Some("127.0.0.1:9091"));
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://x:1/metrics").is_err());
    }
}
