//! What sipborder answers itself (OPTIONS keepalives, refusals) and out-of-dialog requests
//! relayed without a call (MESSAGE, OPTIONS to a user), plus response relaying helpers.

use super::dispatch::{B2bua, ClientRole};
use super::initial::local_contact;
use super::reply::ReplyTemplate;
use crate::policy::topology::copy_crossing;
use crate::sip::callid::new_call_id;
use crate::sip::headers::{addr_uri, display_name, make, param, uri_user};
use crate::sip::message::{SipMsg, Transport};
use crate::sip::token::new_tag;
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::Flow;
use rsip::{Header, StatusCode};
use std::time::Instant;

/// Methods sipborder handles (Allow of local answers).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, MESSAGE";

/// Option tags sipborder supports.
pub(crate) const SUPPORTED: &str = "100rel, replaces, timer";

/// A header value with its `tag` parameter removed (the rest kept as written).
pub fn strip_tag(v: &str) -> String {
    match param(v, "tag") {
        None => v.trim().to_string(),
        Some(_) => {
            let cut = v.rfind('>').map(|i| i + 1).unwrap_or(0);
            let (head, params) = v.split_at(cut);
            let kept: Vec<&str> = params
                .split(';')
                .filter(|p| {
                    let n = p.split('=').next().unwrap_or("").trim();
                    !n.is_empty() && !n.eq_ignore_ascii_case("tag")
                })
                .collect();
            let mut out = head.trim().to_string();
            if cut == 0 {
                // addr-spec without brackets: the URI is the first segment.
                let mut parts = v.split(';');
                out = parts.next().unwrap_or("").trim().to_string();
                for p in parts {
                    let n = p.split('=').next().unwrap_or("").trim();
                    if !n.eq_ignore_ascii_case("tag") && !p.trim().is_empty() {
                        out.push(';');
                        out.push_str(p.trim());
                    }
                }
                return out;
            }
            for p in kept {
                out.push(';');
                out.push_str(p.trim());
            }
            out
        }
    }
}

/// The reason phrase a response carried, when rsip kept it (unknown codes).
fn reason_of(msg: &SipMsg) -> Option<&str> {
    match &msg.raw {
        rsip::SipMessage::Response(r) => match &r.status_code {
            StatusCode::Other(_, reason) => Some(reason.as_str()),
            _ => None,
        },
        rsip::SipMessage::Request(_) => None,
    }
}

/// The response `src` (from one leg) turned into the answer on the other leg: status, the
/// headers that may cross, the body; `to_tag` for To when the request had none; `contact` ours.
pub(crate) fn relay_response(
    src: &SipMsg,
    reply: &ReplyTemplate,
    to_tag: Option<&str>,
    contact: Option<&str>,
) -> rsip::Response {
    let code = src.status().unwrap_or(500);
    let mut resp = reply.response(code, reason_of(src), to_tag);
    let mut hs: Vec<Header> = std::mem::take(&mut resp.headers).into();
    if let Some(c) = contact {
        hs.push(make("Contact", c));
    }
    copy_crossing(src, &mut hs, &[]);
    resp.headers = hs.into();
    resp.body = src.body().to_vec();
    resp
}

impl B2bua {
    /// OPTIONS addressed to sipborder: 200 with what we support (CUCM and trunks ping this way,
    /// Max-Forwards 0 included).
    pub(crate) fn answer_options(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let extra = [
            make("Allow", ALLOW),
            make("Accept", "application/sdp"),
            make("Supported", SUPPORTED),
            make("Contact", local_contact(self, flow)),
        ];
        self.reply_local(now, tl, tx, msg, flow, 200, None, &extra);
    }

    /// MESSAGE, OPTIONS to a user, INFO/NOTIFY out of dialog: routed like a call, relayed as one
    /// transaction with a fresh identity on the other side.
    pub(crate) fn relay_out_of_dialog(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let user = msg
            .request_uri()
            .and_then(|u| u.auth.as_ref())
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let Some(target) =
            self.router.route(flow.zone, &user).and_then(|r| r.targets.first().copied())
        else {
            self.reply_local(now, tl, tx, &msg, flow, 404, Some("No Route"), &[]);
            return;
        };
        let Some(trunk) = self.router.trunk(target).cloned() else { return };
        let out = Flow::to(trunk.zone, trunk.transport, trunk.addr);
        let zone_host =
            self.router.zone(trunk.zone).map(|z| z.address.host.clone()).unwrap_or_default();
        let from_v = msg.header("From").unwrap_or("");
        let from_user = uri_user(addr_uri(from_v)).unwrap_or("anonymous");
        let from = match display_name(from_v) {
            Some(d) => {
                format!("\"{d}\" <sip:{from_user}@{zone_host}>;tag={}", new_tag(&mut self.rng))
            }
            None => format!("<sip:{from_user}@{zone_host}>;tag={}", new_tag(&mut self.rng)),
        };
        let user_at = if user.is_empty() { String::new() } else { format!("{user}@") };
        let host = format!("{}:{}", trunk.domain, trunk.addr.port());
        let tparam = if trunk.transport == Transport::Tcp { ";transport=tcp" } else { "" };
        let Ok(uri) = rsip::Uri::try_from(format!("sip:{user_at}{host}{tparam}").as_str()) else {
            return;
        };
        let mut headers: Vec<Header> = vec![
            make("Max-Forwards", msg.max_forwards.unwrap_or(70).saturating_sub(1).to_string()),
            make("From", from),
            make("To", format!("<sip:{user_at}{}>", trunk.domain)),
            make("Call-ID", new_call_id(&mut self.rng, self.shard, self.shards)),
            make("CSeq", format!("1 {}", msg.method())),
        ];
        copy_crossing(&msg, &mut headers, &[]);
        let req = rsip::Request {
            method: msg.method(),
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: msg.body().to_vec(),
        };
        let source_chain = self
            .router
            .trunk_by_source(flow.zone, flow.remote)
            .and_then(|t| self.router.trunk(t))
            .map(|t| t.policies.clone())
            .unwrap_or_default();
        let mut outgoing = rsip::SipMessage::Request(req);
        if let Err(rej) = super::policy_hook::run_policies(
            &self.router,
            [&source_chain, &trunk.policies],
            flow.zone,
            trunk.zone,
            &mut outgoing,
        ) {
            self.reply_local(now, tl, tx, &msg, flow, rej.code, Some(&rej.reason), &[]);
            return;
        }
        let rsip::SipMessage::Request(req) = outgoing else { return };
        let ctx = tl.send_request(now, req, out);
        let reply = ReplyTemplate::of(&msg, flow.remote);
        let to_tag = new_tag(&mut self.rng);
        self.clients.insert(ctx, ClientRole::Standalone { server_tx: tx, reply, to_tag });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_tag_keeps_other_params() {
        assert_eq!(strip_tag("\"A\" <sip:a@b>;tag=123;x=y"), "\"A\" <sip:a@b>;x=y");
        assert_eq!(strip_tag("<sip:a@b>;tag=123"), "<sip:a@b>");
        assert_eq!(strip_tag("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(strip_tag("<sip:a@b>"), "<sip:a@b>");
    }
}
