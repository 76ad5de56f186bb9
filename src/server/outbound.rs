//! Sending: UDP straight from the zone socket, TCP through the connection table (an existing
//! connection by id, else one to the same peer, else a new one).

use super::dispatch::Dispatcher;
use super::sockets::Bound;
use super::tcp;
use crate::config::Config;
use crate::sip::message::Transport;
use crate::transport::flow::{ConnId, Flow, Transmit, ZoneId};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// A live TCP connection's writer.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Queue of serialized messages for the writer task.
    pub tx: mpsc::Sender<Bytes>,
    /// Zone.
    pub zone: ZoneId,
    /// Peer address.
    pub remote: SocketAddr,
}

#[derive(Debug, Default)]
struct ConnMaps {
    by_id: HashMap<ConnId, ConnHandle>,
    by_remote: HashMap<(ZoneId, SocketAddr), ConnId>,
}

/// Everything needed to send.
pub struct Outbound {
    udp: Vec<Option<Arc<tokio::net::UdpSocket>>>,
    tcp_local: Vec<Option<SocketAddr>>,
    // A read-mostly table of connections; held only for map operations, never across an await.
    conns: RwLock<ConnMaps>,
    next_conn: AtomicU64,
    errors: mpsc::UnboundedSender<Flow>,
    dispatcher: OnceLock<Arc<Dispatcher>>,
    /// Idle timeout for TCP connections.
    pub idle_timeout: Duration,
    /// Maximum message size (TCP framing).
    pub max_message_size: usize,
}

impl Outbound {
    /// Sender over the bound sockets; transport errors are reported on `errors`.
    pub fn new(bound: &Bound, cfg: &Config, errors: mpsc::UnboundedSender<Flow>) -> Self {
        let n = cfg.zones.len();
        let mut udp = vec![None; n];
        for (z, s) in &bound.udp {
            udp[z.0 as usize] = Some(s.clone());
        }
        let mut tcp_local = vec![None; n];
        for (z, a) in &bound.tcp_ip {
            tcp_local[z.0 as usize] = Some(*a);
        }
        Outbound {
            udp,
            tcp_local,
            conns: RwLock::new(ConnMaps::default()),
            next_conn: AtomicU64::new(1),
            errors,
            dispatcher: OnceLock::new(),
            idle_timeout: cfg.limits.tcp_idle_timeout.0,
            max_message_size: cfg.limits.max_message_size,
        }
    }

    /// Wires the dispatcher that outbound connections' readers feed.
    pub fn set_dispatcher(&self, d: Arc<Dispatcher>) {
        let _ = self.dispatcher.set(d);
    }

    /// A fresh connection id.
    pub fn new_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a connection (accepted or being opened).
    pub fn register(&self, id: ConnId, h: ConnHandle) {
        if let Ok(mut m) = self.conns.write() {
            m.by_remote.insert((h.zone, h.remote), id);
            m.by_id.insert(id, h);
        }
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, id: ConnId) {
        if let Ok(mut m) = self.conns.write() {
            if let Some(h) = m.by_id.remove(&id) {
                if m.by_remote.get(&(h.zone, h.remote)) == Some(&id) {
                    m.by_remote.remove(&(h.zone, h.remote));
                }
            }
        }
    }

    /// Open TCP connections.
    pub fn connections(&self) -> usize {
        self.conns.read().map(|m| m.by_id.len()).unwrap_or(0)
    }

    fn lookup(&self, flow: &Flow) -> Option<ConnHandle> {
        let m = self.conns.read().ok()?;
        if let Some(h) = flow.conn.and_then(|c| m.by_id.get(&c)) {
            return Some(h.clone());
        }
        m.by_remote.get(&(flow.zone, flow.remote)).and_then(|c| m.by_id.get(c)).cloned()
    }

    /// Sends one message; never blocks. Toward a zone that is not trusted, product and
    /// diagnostic headers are scrubbed first (`security.disclosure`).
    pub fn send(self: &Arc<Self>, mut t: Transmit) {
        if let Some(d) = self.dispatcher.get() {
            let sec = d.security();
            if sec.scrubs(t.flow.zone) {
                if let Some(b) = crate::security::disclosure::scrub(&t.bytes, &sec.disclosure) {
                    t.bytes = Bytes::from(b);
                }
            }
        }
        metrics::counter!(crate::observe::names::SIP_MESSAGES_SENT_TOTAL).increment(1);
        match t.flow.transport {
            Transport::Udp | Transport::Other => self.send_udp(t),
            Transport::Tcp | Transport::Tls => self.send_tcp(t),
        }
    }

    fn send_udp(&self, t: Transmit) {
        let Some(Some(sock)) = self.udp.get(t.flow.zone.0 as usize) else {
            let _ = self.errors.send(t.flow);
            return;
        };
        match sock.try_send_to(&t.bytes, t.flow.remote) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let sock = sock.clone();
                tokio::spawn(async move {
                    let _ = sock.send_to(&t.bytes, t.flow.remote).await;
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, to = %t.flow.remote, "udp send failed");
                let _ = self.errors.send(t.flow);
            }
        }
    }

    fn send_tcp(self: &Arc<Self>, t: Transmit) {
        if let Some(h) = self.lookup(&t.flow) {
            if h.tx.try_send(t.bytes.clone()).is_ok() {
                return;
            }
        }
        // No usable connection: open one (RFC 3261 §18.2.2: to the Via's received/sent-by).
        let Some(d) = self.dispatcher.get().cloned() else { return };
        let local = self.tcp_local.get(t.flow.zone.0 as usize).copied().flatten();
        let id = self.new_conn_id();
        let (tx, rx) = mpsc::channel::<Bytes>(1024);
        let _ = tx.try_send(t.bytes);
        self.register(id, ConnHandle { tx, zone: t.flow.zone, remote: t.flow.remote });
        let me = self.clone();
        let flow = t.flow;
        tokio::spawn(async move {
            match tcp::connect(local, flow.remote).await {
                Ok(stream) => {
                    tcp::run_connection(flow.zone, id, stream, flow.remote, rx, d, me).await
                }
                Err(e) => {
                    tracing::info!(error = %e, to = %flow.remote, "tcp connect failed");
                    me.unregister(id);
                    let _ = me.errors.send(flow);
                }
            }
        });
    }
}
