//! The registration proxy (zones with `register_proxy`): a device's REGISTER crosses to the
//! registrar as sipborder's own leg (its Contact names sipborder, with a token), the binding
//! table remembers where the device really is, the device gets a short expiry (its NAT pinhole
//! stays open) while the registrar sees a long one, and refreshes in between are answered from
//! the cache. Digest challenges of the registrar reach the device unchanged. Calls to the
//! token go to the device over the flow it registered from; keepalives watch each binding.

use super::dispatch::{B2bua, ClientRole};
use super::reply::ReplyTemplate;
use crate::dialog::uri::{contact_uri, split_top_level_commas};
use crate::nat::bindings::Binding;
use crate::policy::topology::copy_crossing;
use crate::sip::build::remove_header;
use crate::sip::callid::new_call_id;
use crate::sip::headers::{make, param};
use crate::sip::message::{SipMsg, Transport};
use crate::sip::token::{new_tag, random_token};
use crate::transaction::{TransactionLayer, TxId};
use crate::transport::flow::{Flow, ZoneId};
use rsip::{Header, Method};
use std::time::{Duration, Instant};

/// Two unanswered keepalives drop a binding.
const KEEPALIVE_MISSES: u32 = 2;

fn expires_of(msg: &SipMsg, contact: &str) -> Option<u64> {
    param(contact, "expires")
        .and_then(|e| e.parse().ok())
        .or_else(|| msg.header("Expires").and_then(|e| e.trim().parse().ok()))
}

impl B2bua {
    /// A REGISTER in a zone with a registration proxy.
    pub(crate) fn on_register(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: SipMsg,
        flow: Flow,
        tl: &mut TransactionLayer,
    ) {
        let Some((cfg, registrar)) =
            self.router.zone(flow.zone).and_then(|z| z.register_proxy.clone())
        else {
            let allow = make("Allow", super::local::ALLOW);
            self.reply_local(now, tl, tx, &msg, flow, 405, None, &[allow]);
            return;
        };
        let aor = crate::sip::headers::addr_uri(msg.header("To").unwrap_or("")).to_string();
        let contact_value = msg.header("Contact").map(str::to_string);
        let Some(contact_value) = contact_value else {
            // A query: answer with what is registered for the AOR.
            let contacts: Vec<Header> = self
                .bindings
                .of_aor(&aor)
                .into_iter()
                .filter_map(|t| self.bindings.get(&t))
                .map(|b| {
                    make(
                        "Contact",
                        format!(
                            "<{}>;expires={}",
                            b.device_contact,
                            b.device_expires_at.saturating_duration_since(now).as_secs()
                        ),
                    )
                })
                .collect();
            self.reply_local(now, tl, tx, &msg, flow, 200, None, &contacts);
            return;
        };
        let first = split_top_level_commas(&contact_value)
            .into_iter()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let wildcard = first == "*";
        let expires = expires_of(&msg, &first).unwrap_or(3600);
        let device_contact = contact_uri(&first).unwrap_or_default();
        let client_expires = cfg.client_expires.0;
        let has_credentials =
            msg.header("Authorization").is_some() || msg.header("Proxy-Authorization").is_some();

        if wildcard || expires == 0 {
            // De-registration: forget the binding(s) here, tell the registrar.
            let tokens = if wildcard {
                self.bindings.of_aor(&aor)
            } else {
                self.bindings.find(&aor, &device_contact).into_iter().collect()
            };
            let token = tokens.first().cloned();
            for t in &tokens {
                self.bindings.remove(t);
            }
            metrics::gauge!("sipborder_registrations").set(self.bindings.len() as f64);
            let call_id = new_call_id(&mut self.rng, self.shard, self.shards);
            let contact = if wildcard {
                "*".to_string()
            } else {
                format!(
                    "<sip:{}@{}>",
                    token.as_deref().unwrap_or("gone"),
                    self.proxy_hostport(registrar)
                )
            };
            self.forward_register(
                now, tx, &msg, flow, registrar, &call_id, 1, &contact, 0, None, tl,
            );
            return;
        }

        // A refresh well inside the registrar's binding is answered from the cache.
        if let Some(token) = self.bindings.find(&aor, &device_contact) {
            let fresh = self
                .bindings
                .get(&token)
                .and_then(|b| b.registrar_expires_at)
                .is_some_and(|until| until > now + client_expires + Duration::from_secs(30));
            if fresh && !has_credentials {
                self.bindings.update(&token, |b| {
                    b.flow = flow;
                    b.device_expires_at = now + client_expires;
                    b.missed_keepalives = 0;
                });
                let c = make(
                    "Contact",
                    format!("<{device_contact}>;expires={}", client_expires.as_secs()),
                );
                self.reply_local(now, tl, tx, &msg, flow, 200, None, &[c]);
                return;
            }
        }
        let token = self
            .bindings
            .find(&aor, &device_contact)
            .unwrap_or_else(|| random_token(&mut self.rng, 16));
        let existing = self.bindings.get(&token);
        let (call_id, cseq) = match &existing {
            Some(b) => (b.upstream_call_id.clone(), b.upstream_cseq + 1),
            None => (new_call_id(&mut self.rng, self.shard, self.shards), 1),
        };
        self.bindings.put(Binding {
            token: token.clone(),
            aor: aor.clone(),
            device_contact: device_contact.clone(),
            flow,
            device_expires_at: now + client_expires,
            registrar_expires_at: existing.as_ref().and_then(|b| b.registrar_expires_at),
            upstream_call_id: call_id.clone(),
            upstream_cseq: cseq,
            owner_shard: self.shard,
            missed_keepalives: 0,
        });
        // The same round drops expired bindings, so it runs even without keepalives. The
        // earliest wins: a binding of a zone without keepalives (next round in client_expires)
        // registered first must not put off the pings of a zone that has them.
        let every = if cfg.keepalive.0.is_zero() { client_expires } else { cfg.keepalive.0 };
        let due = now + every;
        self.next_keepalive = Some(self.next_keepalive.map_or(due, |k| k.min(due)));
        let contact = format!("<sip:{token}@{}>", self.proxy_hostport(registrar));
        let upstream =
            cfg.registrar_expires.0.as_secs().min(expires.max(cfg.registrar_expires.0.as_secs()));
        self.forward_register(
            now,
            tx,
            &msg,
            flow,
            registrar,
            &call_id,
            cseq,
            &contact,
            upstream,
            Some(token),
            tl,
        );
    }

    /// sipborder's host:port on the registrar's zone.
    fn proxy_hostport(&self, registrar: super::router::TrunkId) -> String {
        self.router
            .trunk(registrar)
            .and_then(|t| self.router.zone(t.zone).map(|z| z.address.host_port(t.transport)))
            .unwrap_or_default()
    }

    /// Sends the REGISTER on to the registrar as sipborder's own leg. Credentials pass through
    /// unchanged (the Request-URI too, so the digest's `uri=` still matches).
    #[allow(clippy::too_many_arguments)]
    fn forward_register(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &SipMsg,
        flow: Flow,
        registrar: super::router::TrunkId,
        call_id: &str,
        cseq: u32,
        contact: &str,
        expires: u64,
        token: Option<String>,
        tl: &mut TransactionLayer,
    ) {
        let Some(trunk) = self.router.trunk(registrar).cloned() else { return };
        let Some(uri) = msg.request_uri().cloned() else { return };
        let mut headers: Vec<Header> = vec![
            make("Max-Forwards", msg.max_forwards.unwrap_or(70).saturating_sub(1).to_string()),
            make(
                "From",
                format!(
                    "{};tag={}",
                    super::local::strip_tag(msg.header("From").unwrap_or("")),
                    new_tag(&mut self.rng)
                ),
            ),
            make("To", super::local::strip_tag(msg.header("To").unwrap_or(""))),
            make("Call-ID", call_id.to_string()),
            make("CSeq", format!("{cseq} REGISTER")),
            make(
                "Contact",
                if contact == "*" {
                    "*".to_string()
                } else {
                    format!("{contact};expires={expires}")
                },
            ),
            make("Expires", expires.to_string()),
        ];
        copy_crossing(msg, &mut headers, &["Expires"]);
        for name in ["Authorization", "Proxy-Authorization"] {
            for v in msg.header_all(name) {
                headers.push(make(name, v));
            }
        }
        let req = rsip::Request {
            method: Method::Register,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        let out = Flow::to(trunk.zone, trunk.transport, trunk.addr);
        let ctx = tl.send_request(now, req, out);
        let reply = ReplyTemplate::of(msg, flow.remote);
        let device_contact = msg
            .header("Contact")
            .map(|c| split_top_level_commas(c).into_iter().next().unwrap_or("").trim().to_string());
        self.clients.insert(
            ctx,
            ClientRole::Register {
                server_tx: tx,
                reply,
                token,
                device_contact,
                source_zone: flow.zone,
            },
        );
    }

    /// The registrar answered a forwarded REGISTER.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_register_response(
        &mut self,
        now: Instant,
        server_tx: TxId,
        reply: &ReplyTemplate,
        token: Option<String>,
        device_contact: Option<String>,
        source_zone: ZoneId,
        msg: &SipMsg,
        tl: &mut TransactionLayer,
    ) {
        let code = msg.status().unwrap_or(0);
        if code < 200 {
            return;
        }
        // sipborder is the UAS toward the device: its final responses need a To tag of ours
        // (RFC 3261 §8.2.6.2); the registrar's tag belongs to the other leg and was dropped.
        let to_tag = new_tag(&mut self.rng);
        let mut resp = super::local::relay_response(msg, reply, Some(&to_tag), None);
        remove_header(&mut resp.headers, "Contact");
        remove_header(&mut resp.headers, "Expires");
        if (200..300).contains(&code) {
            if let Some(token) = &token {
                let ours = format!("sip:{token}@");
                let granted = msg
                    .header_all("Contact")
                    .flat_map(split_top_level_commas)
                    .find(|c| crate::sip::headers::addr_uri(c).starts_with(&ours))
                    .and_then(|c| param(c, "expires").and_then(|e| e.parse::<u64>().ok()))
                    .or_else(|| msg.header("Expires").and_then(|e| e.trim().parse().ok()))
                    .unwrap_or(3600);
                self.bindings.update(token, |b| {
                    b.registrar_expires_at = Some(now + Duration::from_secs(granted))
                });
                let client = self
                    .router
                    .zone(source_zone)
                    .and_then(|z| z.register_proxy.as_ref().map(|(c, _)| c.client_expires.0))
                    .unwrap_or(Duration::from_secs(60));
                if let Some(dc) = device_contact.as_deref().and_then(contact_uri) {
                    resp.headers
                        .push(make("Contact", format!("<{dc}>;expires={}", client.as_secs())));
                }
            }
            metrics::gauge!("sipborder_registrations").set(self.bindings.len() as f64);
        } else if let Some(token) = &token {
            // Refused (wrong credentials, ...): keep no binding the registrar does not know.
            if !matches!(code, 401 | 407)
                && self.bindings.get(token).is_some_and(|b| b.registrar_expires_at.is_none())
            {
                self.bindings.remove(token);
            }
        }
        let _ = tl.respond(now, server_tx, resp);
    }

    /// The binding an INVITE is addressed to (Request-URI user is one of our tokens).
    pub(crate) fn binding_target(&self, msg: &SipMsg) -> Option<Binding> {
        let user = msg.request_uri()?.auth.as_ref()?.user.clone();
        self.bindings.get(&user)
    }

    /// Keepalives toward the bindings this shard owns, and their expiry. Returns the next
    /// time to run.
    pub(crate) fn run_binding_keepalives(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
    ) -> Option<Instant> {
        let tokens = self.bindings.owned_by(self.shard);
        if tokens.is_empty() {
            return None;
        }
        let mut every = Duration::from_secs(3600);
        for token in tokens {
            let Some(b) = self.bindings.get(&token) else { continue };
            let Some((cfg, _)) =
                self.router.zone(b.flow.zone).and_then(|z| z.register_proxy.clone())
            else {
                continue;
            };
            if now > b.device_expires_at + Duration::from_secs(10)
                || b.missed_keepalives >= KEEPALIVE_MISSES
            {
                tracing::info!(aor = %b.aor, "binding dropped (expired or unreachable)");
                metrics::counter!("sipborder_bindings_dropped_total", "reason" => if b.missed_keepalives >= KEEPALIVE_MISSES { "unreachable" } else { "expired" }).increment(1);
                self.bindings.remove(&token);
                continue;
            }
            let k = cfg.keepalive.0;
            if k.is_zero() {
                every = every.min(cfg.client_expires.0);
                continue;
            }
            every = every.min(k);
            if b.flow.transport == Transport::Udp {
                // OPTIONS: an answer proves the pinhole is open both ways.
                let target = b.device_contact.clone();
                let host = self
                    .router
                    .zone(b.flow.zone)
                    .map(|z| z.address.host.clone())
                    .unwrap_or_default();
                let req = rsip::Request {
                    method: Method::Options,
                    uri: rsip::Uri::try_from(target.as_str()).unwrap_or_default(),
                    version: rsip::Version::V2,
                    headers: vec![
                        make("Max-Forwards", "70"),
                        make("From", format!("<sip:{host}>;tag={}", new_tag(&mut self.rng))),
                        make("To", format!("<{target}>")),
                        make("Call-ID", new_call_id(&mut self.rng, self.shard, self.shards)),
                        make("CSeq", "1 OPTIONS"),
                    ]
                    .into(),
                    body: Vec::new(),
                };
                let t = tl.send_request(now, req, b.flow);
                self.clients.insert(t, ClientRole::BindingProbe { token: token.clone() });
                self.bindings.update(&token, |b| b.missed_keepalives += 1);
            } else {
                // RFC 5626 §4.4.1: a double-CRLF ping on the connection.
                tl.send_raw(b.flow, bytes::Bytes::from_static(b"\r\n\r\n"));
            }
        }
        Some(now + every)
    }

    /// A binding answered (any response) its keepalive.
    pub(crate) fn binding_alive(&mut self, token: &str) {
        self.bindings.update(token, |b| b.missed_keepalives = 0);
    }
}
