//! `BindingTable`: devices registered through sipborder's registration proxy — what the
//! registrar sees (a token in sipborder's Contact) mapped to where the device really is (the
//! source address, transport and connection its REGISTER came from, never the Contact it
//! wrote: a NAT or a broken ALG may have written nonsense there).
//!
//! Shared by every shard: a REGISTER is handled by the shard of its Call-ID, but a call to the
//! device arrives with the registrar's Call-ID on any shard. Reads (call routing) far outnumber
//! writes (registrations), hence read/write locks held only for map operations.

use crate::transport::flow::Flow;
use rustc_hash::FxHashMap;
use std::sync::RwLock;
use std::time::Instant;

/// One registered device.
#[derive(Debug, Clone)]
pub struct Binding {
    /// User part of sipborder's Contact toward the registrar (unique per binding).
    pub token: String,
    /// Address of record (To URI).
    pub aor: String,
    /// The Contact URI the device wrote (Request-URI of calls to it).
    pub device_contact: String,
    /// Where the device's REGISTER came from: calls go back this way.
    pub flow: Flow,
    /// The device must refresh by then.
    pub device_expires_at: Instant,
    /// The registrar's binding lasts until then (None until it accepted).
    pub registrar_expires_at: Option<Instant>,
    /// Call-ID sipborder uses toward the registrar for this binding.
    pub upstream_call_id: String,
    /// Last CSeq sipborder used toward the registrar.
    pub upstream_cseq: u32,
    /// Shard that runs this binding's keepalive and expiry.
    pub owner_shard: usize,
    /// Consecutive keepalives without an answer.
    pub missed_keepalives: u32,
}

/// All bindings.
#[derive(Debug, Default)]
pub struct BindingTable {
    by_token: RwLock<FxHashMap<String, Binding>>,
    by_device: RwLock<FxHashMap<(String, String), String>>,
}

impl BindingTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The binding of `token`.
    pub fn get(&self, token: &str) -> Option<Binding> {
        self.by_token.read().ok()?.get(token).cloned()
    }

    /// The token of the binding of `device_contact` for `aor`.
    pub fn find(&self, aor: &str, device_contact: &str) -> Option<String> {
        self.by_device.read().ok()?.get(&(aor.to_string(), device_contact.to_string())).cloned()
    }

    /// Tokens of every binding of `aor`.
    pub fn of_aor(&self, aor: &str) -> Vec<String> {
        self.by_device
            .read()
            .map(|m| m.iter().filter(|((a, _), _)| a == aor).map(|(_, t)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// Adds or replaces a binding.
    pub fn put(&self, b: Binding) {
        if let Ok(mut d) = self.by_device.write() {
            d.insert((b.aor.clone(), b.device_contact.clone()), b.token.clone());
        }
        if let Ok(mut t) = self.by_token.write() {
            t.insert(b.token.clone(), b);
        }
    }

    /// Changes a binding in place; false when it is gone.
    pub fn update(&self, token: &str, f: impl FnOnce(&mut Binding)) -> bool {
        match self.by_token.write() {
            Ok(mut t) => match t.get_mut(token) {
                Some(b) => {
                    f(b);
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Removes a binding.
    pub fn remove(&self, token: &str) -> Option<Binding> {
        let b = self.by_token.write().ok()?.remove(token)?;
        if let Ok(mut d) = self.by_device.write() {
            d.remove(&(b.aor.clone(), b.device_contact.clone()));
        }
        Some(b)
    }

    /// Tokens owned by `shard`.
    pub fn owned_by(&self, shard: usize) -> Vec<String> {
        self.by_token
            .read()
            .map(|m| {
                m.values().filter(|b| b.owner_shard == shard).map(|b| b.token.clone()).collect()
            })
            .unwrap_or_default()
    }

    /// Bindings held.
    pub fn len(&self) -> usize {
        self.by_token.read().map(|m| m.len()).unwrap_or(0)
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Transport;
    use crate::transport::flow::ZoneId;

    fn b(token: &str, aor: &str, contact: &str) -> Binding {
        let now = Instant::now();
        Binding {
            token: token.into(),
            aor: aor.into(),
            device_contact: contact.into(),
            flow: Flow::to(
                ZoneId(0),
                Transport::Udp,
                "203.0.113.9:40000".parse().unwrap_or_else(|_| unreachable!()),
            ),
            device_expires_at: now,
            registrar_expires_at: None,
            upstream_call_id: "c".into(),
            upstream_cseq: 1,
            owner_shard: 0,
            missed_keepalives: 0,
        }
    }

    #[test]
    fn several_devices_per_aor_each_with_its_own_binding() {
        let t = BindingTable::new();
        t.put(b("t1", "sip:100@pbx", "sip:100@192.168.1.5:5060"));
        t.put(b("t2", "sip:100@pbx", "sip:100@10.0.0.7:5062"));
        assert_eq!(t.find("sip:100@pbx", "sip:100@10.0.0.7:5062").as_deref(), Some("t2"));
        let mut all = t.of_aor("sip:100@pbx");
        all.sort();
        assert_eq!(all, vec!["t1", "t2"]);
        assert!(t.remove("t1").is_some());
        assert_eq!(t.find("sip:100@pbx", "sip:100@192.168.1.5:5060"), None);
        assert_eq!(t.len(), 1);
    }
}
