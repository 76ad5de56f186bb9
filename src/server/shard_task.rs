//! The task that runs one [`Shard`]: inputs from the dispatcher, its timers, its transmits.

use super::outbound::Outbound;
use super::stats::SharedStats;
use crate::b2bua::join::PeerMsg;
use crate::b2bua::Router;
use crate::observe::names;
use crate::shard::Shard;
use crate::sip::message::SipMsg;
use crate::transaction::TimerConfig;
use crate::transport::flow::Flow;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a shard task receives.
// A parsed message is by far the most common input; boxing it would add an allocation per
// message to save a memcpy into the channel slot.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ShardInput {
    /// A parsed message.
    Message(SipMsg, Flow),
    /// A flow could not be reached.
    TransportError(Flow),
    /// New routing and timers.
    Reload(Arc<Router>, TimerConfig),
    /// Stop taking calls, de-register trunks.
    Drain,
    /// End every call now (BYE with this Reason).
    HangupAll(String),
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn handle(shard: &mut Shard, input: ShardInput) {
    match input {
        ShardInput::Message(msg, flow) => shard.handle_message(now(), msg, flow),
        ShardInput::TransportError(flow) => shard.handle_transport_error(now(), flow),
        ShardInput::Reload(router, timers) => shard.reload(router, timers),
        ShardInput::Drain => shard.start_drain(now()),
        ShardInput::HangupAll(reason) => shard.hangup_all(now(), &reason),
    }
}

/// Channels between shard tasks for messages between calls (joins): unbounded, so two shards
/// sending to each other never wait on each other; they come per transfer, never per packet.
#[derive(Debug)]
pub struct PeerLinks {
    /// This shard's inbox.
    pub rx: mpsc::UnboundedReceiver<PeerMsg>,
    /// Every shard's inbox, by index.
    pub tx: Arc<Vec<mpsc::UnboundedSender<PeerMsg>>>,
}

impl PeerLinks {
    /// One link per shard.
    pub fn for_shards(n: usize) -> Vec<PeerLinks> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let txs = Arc::new(txs);
        rxs.into_iter().map(|rx| PeerLinks { rx, tx: txs.clone() }).collect()
    }
}

/// Runs shard `index` until its input channel closes.
pub async fn run(
    mut shard: Shard,
    index: usize,
    mut rx: mpsc::Receiver<ShardInput>,
    mut relay_rx: mpsc::UnboundedReceiver<crate::media::relay::RelayEvent>,
    mut peers: PeerLinks,
    out: Arc<Outbound>,
    stats: Arc<SharedStats>,
) {
    let mut last = shard.transactions().stats();
    loop {
        let deadline = shard.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            input = rx.recv() => {
                let Some(input) = input else { break };
                handle(&mut shard, input);
                // Take what is already queued before flushing: fewer wakeups under load.
                for _ in 0..63 {
                    match rx.try_recv() {
                        Ok(i) => handle(&mut shard, i),
                        Err(_) => break,
                    }
                }
            }
            Some(ev) = relay_rx.recv() => shard.handle_relay_event(now(), ev),
            Some(msg) = peers.rx.recv() => shard.handle_peer_message(now(), msg),
            _ = sleep => shard.handle_timeout(now()),
        }
        while let Some(t) = shard.poll_transmit() {
            out.send(t);
        }
        while let Some(p) = shard.poll_peer() {
            if let Some(tx) = peers.tx.get(p.shard) {
                let _ = tx.send(p.msg);
            }
        }
        for rec in shard.b2bua_mut().take_finished() {
            crate::observe::calls::record_finished(&rec);
            crate::observe::cdr::submit(rec);
        }
        stats.publish(
            index,
            shard.b2bua().calls(),
            shard.b2bua().dialogs(),
            shard.transactions().len(),
        );
        let media = shard.b2bua().media();
        let usage: Vec<(usize, usize, usize)> = media
            .port_usage()
            .into_iter()
            .map(|(z, used, free)| (z.0 as usize, used, free))
            .collect();
        stats.publish_ports(index, &usage, media.exhausted());
        let now_stats = shard.transactions().stats();
        if now_stats.retransmissions != last.retransmissions {
            metrics::counter!(names::TRANSACTION_RETRANSMISSIONS_TOTAL)
                .increment(now_stats.retransmissions - last.retransmissions);
        }
        if now_stats.timeouts != last.timeouts {
            metrics::counter!(names::TRANSACTION_TIMEOUTS_TOTAL)
                .increment(now_stats.timeouts - last.timeouts);
        }
        last = now_stats;
    }
}

/// Tells every shard about a flow the transport could not reach.
pub async fn forward_transport_errors(
    mut rx: mpsc::UnboundedReceiver<Flow>,
    shards: Vec<mpsc::Sender<ShardInput>>,
) {
    while let Some(flow) = rx.recv().await {
        for s in &shards {
            let _ = s.send(ShardInput::TransportError(flow)).await;
        }
    }
}
