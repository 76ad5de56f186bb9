//! TCP connections: accept, connect, and the per-connection reader (framing) and writer.

use super::dispatch::Dispatcher;
use super::outbound::{ConnHandle, Outbound};
use crate::security::{IncompleteTimer, Resource};
use crate::sip::message::Transport;
use crate::transport::flow::{ConnId, ZoneId};
use crate::transport::flow::{Flow, Transmit};
use crate::transport::framing::{Frame, FramingError, StreamFramer};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

/// Accepts connections on a zone's listener forever.
pub async fn accept_loop(
    zone: ZoneId,
    listener: tokio::net::TcpListener,
    d: Arc<Dispatcher>,
    out: Arc<Outbound>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                // ACL, bans and the connection caps before anything is read: a refused
                // connection is closed at once, with nothing said.
                let sec = d.security();
                let now = std::time::Instant::now();
                let trusted = sec.trusted_source(zone, remote.ip());
                let screened = sec.guard.screen(now, zone, remote.ip(), trusted);
                if !screened.is_pass() {
                    sec.count_verdict(zone, &screened);
                    continue;
                }
                let slot = match sec.guard.acquire(
                    Resource::TcpConnection,
                    now,
                    zone,
                    remote.ip(),
                    trusted,
                ) {
                    Ok(slot) => slot,
                    Err(e) => {
                        sec.count(zone, "tcp_connections", false);
                        tracing::debug!(%remote, error = %e, "tcp connection refused");
                        continue;
                    }
                };
                let id = out.new_conn_id();
                let (tx, rx) = mpsc::channel::<Bytes>(1024);
                out.register(id, ConnHandle { tx, zone, remote });
                let conn = run_connection(zone, id, stream, remote, rx, d.clone(), out.clone());
                tokio::spawn(async move {
                    conn.await;
                    // Held for the connection's life: the per-source count drops when it ends.
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Opens a connection to `remote`, from the zone's IP when known.
pub async fn connect(local: Option<SocketAddr>, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if remote.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(l) = local {
        if l.is_ipv4() == remote.is_ipv4() {
            sock.bind(SocketAddr::new(l.ip(), 0))?;
        }
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), sock.connect(remote))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

fn millis_now() -> u64 {
    static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(tokio::time::Instant::now).elapsed().as_millis() as u64
}

/// Runs one connection until it closes, idles out, or breaks framing.
pub async fn run_connection(
    zone: ZoneId,
    id: ConnId,
    stream: TcpStream,
    remote: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    d: Arc<Dispatcher>,
    out: Arc<Outbound>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let last_write = Arc::new(AtomicU64::new(millis_now()));
    let lw = last_write.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if writer.write_all(&b).await.is_err() {
                break;
            }
            lw.store(millis_now(), Ordering::Relaxed);
        }
        let _ = writer.shutdown().await;
    });
    let mut framer = StreamFramer::new(d.max_message_size());
    let idle = out.idle_timeout;
    // Slowloris: a message that started arriving must be complete within this, however
    // slowly its bytes trickle in (the idle timeout is reset by every byte).
    let mut incomplete = IncompleteTimer::new(d.security().guard.limits().tcp_incomplete_timeout.0);
    'conn: loop {
        let wait = match incomplete.deadline() {
            Some(deadline) => {
                idle.min(deadline.saturating_duration_since(std::time::Instant::now()))
            }
            None => idle,
        };
        // Read straight into the framer's buffer: one copy from the kernel, none after.
        let read = tokio::time::timeout(wait, reader.read_buf(framer.read_buf())).await;
        if incomplete.expired(std::time::Instant::now()) {
            let sec = d.security();
            sec.count(zone, "tcp_incomplete", false);
            tracing::info!(%remote, buffered = framer.buffered(), "tcp message incomplete for too long, closing");
            break;
        }
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                let since_write = millis_now().saturating_sub(last_write.load(Ordering::Relaxed));
                if since_write >= idle.as_millis() as u64 {
                    tracing::debug!(%remote, "tcp connection idle, closing");
                    break;
                }
                continue;
            }
        }
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    incomplete.on_frame(std::time::Instant::now(), framer.buffered());
                    d.inbound(zone, Transport::Tcp, remote, Some(id), &m).await
                }
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 §4.4.1: answer a double-CRLF ping with a single CRLF pong.
                    out.send(Transmit {
                        flow: Flow { zone, transport: Transport::Tcp, remote, conn: Some(id) },
                        bytes: Bytes::from_static(b"\r\n"),
                    });
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(None) => {
                    // Whatever is left is the start of a message: its clock runs from now
                    // unless it was already running.
                    incomplete.on_read(std::time::Instant::now(), framer.buffered());
                    break;
                }
                Err(e) => {
                    let fatal = e.is_fatal();
                    let answer = match &e {
                        FramingError::MissingContentLength { head } => {
                            Some((head, 400, "Missing Content-Length"))
                        }
                        FramingError::BadContentLength { head } => {
                            Some((head, 400, "Bad Content-Length"))
                        }
                        FramingError::BodyTooLarge { head, .. } => {
                            Some((head, 413, "Request Entity Too Large"))
                        }
                        _ => None,
                    };
                    if let Some((head, code, reason)) = answer {
                        d.answer_unframed(zone, remote, id, head, code, reason);
                    }
                    metrics::counter!(crate::observe::names::SIP_PARSE_ERRORS_TOTAL, "action" => if fatal { "closed" } else { "answered" }, "reason" => "framing").increment(1);
                    if fatal {
                        tracing::info!(%remote, error = %e, "tcp framing error, closing connection");
                        break 'conn;
                    }
                }
            }
        }
    }
    out.unregister(id);
    // The table held the last sender: the writer drains what is queued (a final 400) and ends.
    if tokio::time::timeout(std::time::Duration::from_secs(2), writer_task).await.is_err() {
        tracing::debug!(%remote, "tcp writer did not drain in time");
    }
}
