//! Digest authentication demanded from a zone's peers (RFC 3261 §22): requests that start
//! something (out of dialog) from a source that is not a configured trunk must carry valid
//! Proxy-Authorization, else they get a 407 challenge. Unknown users get exactly the same
//! challenge as known ones (no user enumeration, the server computes a dummy digest for them).

use super::dispatch::B2bua;
use crate::sip::headers::make;
use crate::sip::message::SipMsg;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use crate::trunk::digest_server::Verdict;
use rsip::Method;
use std::time::Instant;

/// What the zone's digest check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZoneAuth {
    /// No authentication needed, or the credentials hold (the user, when authenticated).
    Pass(Option<String>),
    /// A challenge was sent; stop here.
    Challenged {
        /// Credentials were present and wrong (counts toward a ban).
        failed: bool,
    },
}

impl B2bua {
    /// Checks an out-of-dialog request against its zone's digest server; answers 407 itself
    /// when the request must (re)authenticate.
    pub(crate) fn zone_auth(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) -> ZoneAuth {
        let Some(server) = self.router.zone(flow.zone).and_then(|z| z.auth.clone()) else {
            return ZoneAuth::Pass(None);
        };
        let method = msg.method();
        if method == Method::Ack
            || method == Method::Cancel
            || self.router.trunk_by_source(flow.zone, flow.remote).is_some()
        {
            return ZoneAuth::Pass(None);
        }
        let ruri = msg.request_uri().map(|u| u.to_string()).unwrap_or_default();
        let method_s = crate::server::dispatch::method_label(method);
        let verdict = msg.header("Proxy-Authorization").map(|v| {
            match server.verify_request(now, method_s, &ruri, v) {
                // Some clients (SIPp among them) write the target without its user in uri=;
                // accept that when it names the same host as the Request-URI.
                Verdict::Bad => match digest_uri(v) {
                    Some(u) if same_host(u, &ruri) => server.verify_request(now, method_s, u, v),
                    _ => Verdict::Bad,
                },
                other => other,
            }
        });
        let (stale, failed) = match verdict {
            Some(Verdict::Ok(user)) => return ZoneAuth::Pass(Some(user)),
            Some(Verdict::Stale) => (true, false),
            Some(Verdict::Bad) => (false, true),
            None => (false, false),
        };
        if failed {
            self.strike(now, flow, crate::security::Reason::AuthFailed);
        } else if !stale && !server.has_user(&claimed_user(msg)) {
            // Same challenge on the wire; only the ban counter knows the user does not exist.
            self.strike(now, flow, crate::security::Reason::UnknownUser);
        }
        if failed {
            let zone = self.router.zone(flow.zone).map(|z| z.name.clone()).unwrap_or_default();
            metrics::counter!(crate::observe::names::AUTH_FAILURES_TOTAL, "zone" => zone)
                .increment(1);
            tracing::info!(source = %flow.remote, "digest authentication failed");
        }
        let challenge = make("Proxy-Authenticate", server.challenge(now, stale));
        self.reply_local(now, tl, tx, msg, flow, 407, None, &[challenge]);
        ZoneAuth::Challenged { failed }
    }
}

/// The user a request speaks for: the AOR (To) of a REGISTER, the caller (From) otherwise.
fn claimed_user(msg: &SipMsg) -> String {
    let header = if msg.method() == Method::Register { "To" } else { "From" };
    let uri = crate::sip::headers::addr_uri(msg.header(header).unwrap_or(""));
    crate::sip::headers::uri_user(uri).unwrap_or("").to_string()
}

/// The `uri=` parameter of a digest credentials value.
fn digest_uri(value: &str) -> Option<&str> {
    let i = value.find("uri=\"")? + 5;
    let rest = value.get(i..)?;
    rest.find('"').and_then(|j| rest.get(..j))
}

/// True when two SIP URIs name the same host[:port].
fn same_host(a: &str, b: &str) -> bool {
    let host = |u: &str| {
        let u = u.split_once(':').map_or(u, |(_, r)| r);
        let u = u.rsplit_once('@').map_or(u, |(_, h)| h);
        u.split(';').next().unwrap_or(u).to_ascii_lowercase()
    };
    host(a) == host(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_host_comparison() {
        assert!(same_host("sip:127.0.0.1:5060", "sip:service@127.0.0.1:5060"));
        assert!(!same_host("sip:10.0.0.9:5060", "sip:service@127.0.0.1:5060"));
        assert_eq!(digest_uri("Digest username=\"a\",uri=\"sip:x\",response=\"r\""), Some("sip:x"));
    }
}
