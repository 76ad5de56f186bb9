//! The UDP receive loop of one zone.

use super::dispatch::Dispatcher;
use crate::sip::message::Transport;
use crate::transport::flow::ZoneId;
use std::sync::Arc;

/// Receives datagrams on `sock` forever and hands them to the dispatcher.
pub async fn receive_loop(
    zone: ZoneId,
    sock: Arc<tokio::net::UdpSocket>,
    dispatcher: Arc<Dispatcher>,
) {
    // One more byte than the limit tells an oversized datagram from one exactly at the limit.
    let mut buf = vec![0u8; dispatcher.max_message_size().max(1500) + 1];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, src)) => {
                dispatcher.inbound(zone, Transport::Udp, src, None, &buf[..n]).await;
            }
            Err(e) => {
                // ICMP errors surface here on some systems; nothing to do but go on.
                tracing::trace!(error = %e, "udp receive error");
            }
        }
    }
}
