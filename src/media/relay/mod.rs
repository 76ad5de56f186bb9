//! RTP/RTCP relay data plane: dedicated worker threads that receive media on relay ports, check
//! the source against the latched peer, and send the same buffer out of the partner port.
//!
//! The signalling side drives it through [`Relay`] — [`Relay::open`], [`Relay::update`],
//! [`Relay::close`], [`Relay::stats`] — none of which blocks: commands go through a bounded
//! channel to the worker that owns the pair (pairs are dealt to workers round robin), and
//! statistics are atomics the worker writes and anyone reads.
//!
//! A relayed stream is a pair of endpoints: media from leg A's remote arrives on endpoint A and
//! leaves through endpoint B to leg B's remote, and the other way round. RTP and RTCP (without
//! rtcp-mux) are separate pairs; on a muxed pair RTCP is recognised and counted apart.
//!
//! Latching (see [`LatchMode`]): strict by default; a NAT'd endpoint learns its first source in a
//! short window and afterwards re-latches only to a source carrying the same SSRC. Foreign
//! packets are dropped and counted. Endpoints with [`IceCredentials`] answer STUN binding
//! requests as an ICE-lite agent, and an authenticated, nominated check moves the latch.
//!
//! The per-packet loop lives in `datapath.rs` behind the `Datapath` trait: io_uring (multishot
//! receives, provided buffers, batched sends) or epoll with `recvmmsg`/`sendmmsg`.
//!
//! Per direction, [`Relay::set_media`] installs a payload-type renumbering (the legs negotiated
//! different numbers for the same codec) and DTMF handling, applied in the receive buffer
//! (`rewrite.rs`): RFC 4733 events can be taken out of a stream and reported as
//! [`RelayEvent::Dtmf`] (the other leg wants SIP INFO), and [`Relay::inject_dtmf`] plays events
//! into a stream (`dtmf.rs`), with the sequence numbers of relayed packets shifted so the
//! receiver sees one stream.

mod datapath;
mod direction;
mod dtmf;
mod latch;
mod net;
mod rewrite;
mod stats;
mod stun;
mod telephone_event;
mod worker;

#[cfg(test)]
mod tests;

pub use direction::{DirectionMedia, DtmfInjection, EventFormat, PayloadMap, PayloadSet};
pub use stats::DirectionStats;
pub use telephone_event::TelephoneEvent;

use stats::DirCounters;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{Command, OpenPair, PreparedEnd, Waker, WorkerConfig};

/// Identifies a relayed stream (one RTP or one RTCP pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairId(pub u64);

/// One of the two endpoints of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Faces leg A's remote.
    A,
    /// Faces leg B's remote.
    B,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// How an endpoint decides which source to accept media from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchMode {
    /// Only the address the SDP named.
    Strict,
    /// Behind NAT: the first RTP/RTCP source seen within `window` of open/update is latched;
    /// afterwards a new source is accepted only with the same SSRC (re-latch after NAT
    /// rebinding). Past the window with nothing latched, only the SDP address can start media.
    Learn {
        /// Learning window, counted from open or the last update.
        window: Duration,
    },
}

/// The remote an endpoint talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSpec {
    /// The address the SDP named (`c=` + `m=` port); `None` if unknown (e.g. held with 0.0.0.0).
    pub addr: Option<SocketAddr>,
    /// How to latch.
    pub mode: LatchMode,
}

impl PeerSpec {
    /// Accept media only from `addr`.
    pub fn strict(addr: SocketAddr) -> PeerSpec {
        PeerSpec { addr: Some(addr), mode: LatchMode::Strict }
    }

    /// NAT'd endpoint: learn the source within `window`; send to `addr` until then.
    pub fn learn(addr: Option<SocketAddr>, window: Duration) -> PeerSpec {
        PeerSpec { addr, mode: LatchMode::Learn { window } }
    }
}

/// ICE-lite credentials of one endpoint (RFC 8445 short-term credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// Our `a=ice-ufrag`.
    pub local_ufrag: String,
    /// Our `a=ice-pwd`: the MESSAGE-INTEGRITY key of requests and responses.
    pub local_pwd: String,
    /// The remote's ufrag, if known: then USERNAME must be exactly `local:remote`.
    pub remote_ufrag: Option<String>,
}

/// One side of a pair as the caller hands it over.
#[derive(Debug)]
pub struct EndpointSpec {
    /// Already bound (the port pool binds); the relay makes it non-blocking and marks it DSCP EF.
    pub socket: UdpSocket,
    /// The remote on this side.
    pub peer: PeerSpec,
    /// ICE-lite credentials, if this side does ICE.
    pub ice: Option<IceCredentials>,
    /// RTP clock rate of media received on this side (jitter conversion); 8000 by default.
    pub clock_rate: u32,
}

impl EndpointSpec {
    /// An endpoint without ICE at 8 kHz.
    pub fn new(socket: UdpSocket, peer: PeerSpec) -> EndpointSpec {
        EndpointSpec { socket, peer, ice: None, clock_rate: 8000 }
    }

    /// With ICE-lite credentials.
    pub fn with_ice(mut self, ice: IceCredentials) -> EndpointSpec {
        self.ice = Some(ice);
        self
    }

    /// With another RTP clock rate (e.g. 48000 for Opus).
    pub fn with_clock_rate(mut self, clock_rate: u32) -> EndpointSpec {
        self.clock_rate = clock_rate;
        self
    }
}

/// A relayed stream to open.
#[derive(Debug)]
pub struct PairSpec {
    /// Caller-chosen identifier, unique among open pairs.
    pub id: PairId,
    /// Endpoint facing leg A.
    pub a: EndpointSpec,
    /// Endpoint facing leg B.
    pub b: EndpointSpec,
    /// Report [`RelayEvent::MediaTimeout`] when no RTP arrives in either direction for this long.
    pub media_timeout: Option<Duration>,
}

impl PairSpec {
    /// A pair without media timeout.
    pub fn new(id: PairId, a: EndpointSpec, b: EndpointSpec) -> PairSpec {
        PairSpec { id, a, b, media_timeout: None }
    }
}

/// Which hot loop the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatapathKind {
    /// io_uring if the kernel allows it, else epoll.
    #[default]
    Auto,
    /// io_uring only (start fails without it).
    IoUring,
    /// epoll + recvmmsg/sendmmsg.
    Epoll,
}

/// Things the relay tells the signalling side, from a worker thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// No RTP in either direction for `idle` (at least the pair's media timeout): end the call.
    MediaTimeout {
        /// The pair.
        id: PairId,
        /// How long it has been silent.
        idle: Duration,
    },
    /// A side latched to a new source (learned, re-latched by SSRC, or nominated by ICE).
    Latched {
        /// The pair.
        id: PairId,
        /// Which endpoint.
        side: Side,
        /// The new peer.
        peer: SocketAddr,
    },
    /// The pair's sockets are closed: its ports can be bound again.
    Closed {
        /// The pair.
        id: PairId,
    },
    /// The worker could not start relaying an opened pair; it is closed again.
    OpenFailed {
        /// The pair.
        id: PairId,
        /// Why.
        reason: String,
    },
    /// An RFC 4733 event arriving on `side` finished and was taken out of the stream (the
    /// direction has `events_to_signalling`). Sent once per key press — never per packet — so
    /// the handler's channel sees a few a second at most per call and may allocate.
    Dtmf {
        /// The pair.
        id: PairId,
        /// The endpoint the event arrived on.
        side: Side,
        /// Event code (0–9, 10 `*`, 11 `#`, 12–15 A–D, 16 flash).
        event: u8,
        /// How long it lasted.
        duration: Duration,
    },
}

impl RelayEvent {
    /// The pair the event is about.
    pub fn pair(&self) -> PairId {
        match self {
            RelayEvent::MediaTimeout { id, .. }
            | RelayEvent::Latched { id, .. }
            | RelayEvent::Closed { id }
            | RelayEvent::OpenFailed { id, .. }
            | RelayEvent::Dtmf { id, .. } => *id,
        }
    }
}

/// Receives [`RelayEvent`]s on a worker thread; must not block (e.g. an unbounded tokio sender).
pub type EventHandler = Arc<dyn Fn(RelayEvent) + Send + Sync>;
/// Runs first thing on each worker thread with its index (CPU pinning, instrumentation).
pub type ThreadHook = Arc<dyn Fn(usize) + Send + Sync>;

/// Relay configuration.
#[derive(Clone)]
pub struct RelayConfig {
    /// Worker threads; each owns the sockets of the pairs dealt to it.
    pub threads: usize,
    /// Datagrams per `recvmmsg`/`sendmmsg` call (epoll); completions an io_uring worker waits
    /// for, up to `batch_wait`, before it processes a round.
    pub batch: usize,
    /// io_uring (Linux ≥ 6.12): once traffic woke a worker, how long it may wait for `batch`
    /// completions so one round covers many sockets; bounds the latency this adds. Zero: process
    /// each completion as it comes (a wake-up per packet at low rates).
    pub batch_wait: Duration,
    /// Which datapath to run.
    pub datapath: DatapathKind,
    /// Bounded command queue per worker; a full queue makes control calls fail with `Busy`.
    pub queue_depth: usize,
    /// Receive buffers per worker in the io_uring provided-buffer ring (power of two ≤ 32768).
    pub uring_buffers: u16,
    /// How often a worker checks media timeouts.
    pub housekeeping: Duration,
    /// Where events go; `None` discards them.
    pub on_event: Option<EventHandler>,
    /// Called on each worker thread as it starts.
    pub on_thread_start: Option<ThreadHook>,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: 32,
            batch_wait: Duration::from_micros(100),
            datapath: DatapathKind::Auto,
            queue_depth: 4096,
            uring_buffers: 4096,
            housekeeping: Duration::from_millis(250),
            on_event: None,
            on_thread_start: None,
        }
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("threads", &self.threads)
            .field("batch", &self.batch)
            .field("batch_wait", &self.batch_wait)
            .field("datapath", &self.datapath)
            .field("queue_depth", &self.queue_depth)
            .field("uring_buffers", &self.uring_buffers)
            .field("housekeeping", &self.housekeeping)
            .field("on_event", &self.on_event.is_some())
            .field("on_thread_start", &self.on_thread_start.is_some())
            .finish()
    }
}

/// Control-call failures.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A pair with this id is open.
    #[error("relay pair {0:?} is already open")]
    Duplicate(PairId),
    /// No open pair has this id.
    #[error("no relay pair {0:?}")]
    UnknownPair(PairId),
    /// The owning worker's command queue is full; nothing was changed, retry later.
    #[error("relay worker command queue is full")]
    Busy,
    /// The worker thread is gone.
    #[error("relay worker has stopped")]
    Stopped,
    /// Preparing a socket failed (non-blocking, DSCP, local address).
    #[error("relay socket: {0}")]
    Socket(#[from] io::Error),
    /// The ICE password could not be turned into a key.
    #[error("ICE credentials: {0}")]
    Ice(String),
}

/// Snapshot of a pair's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct PairStats {
    /// Media from leg A's remote: received on endpoint A, sent out of endpoint B.
    pub a_to_b: DirectionStats,
    /// Media from leg B's remote: received on endpoint B, sent out of endpoint A.
    pub b_to_a: DirectionStats,
    /// Local address of endpoint A.
    pub local_a: SocketAddr,
    /// Local address of endpoint B.
    pub local_b: SocketAddr,
}

/// What a pair's worker publishes; shared by the worker and [`Relay::stats`] readers.
#[derive(Debug)]
pub(crate) struct PairShared {
    /// Indexed by the receiving side.
    pub(crate) dirs: [DirCounters; 2],
    clock_rates: [u32; 2],
    local: [SocketAddr; 2],
}

struct WorkerHandle {
    tx: SyncSender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    kind: DatapathKind,
}

struct PairEntry {
    worker: usize,
    shared: Arc<PairShared>,
}

/// The relay: worker threads plus the control handle. `Sync`: share it (e.g. in an `Arc`)
/// between signalling tasks.
pub struct Relay {
    workers: Vec<WorkerHandle>,
    pairs: RwLock<HashMap<PairId, PairEntry>>,
    epoch: Instant,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("workers", &self.workers.len())
            .field("datapaths", &self.datapaths())
            .field("pairs", &self.len())
            .finish()
    }
}

impl Relay {
    /// Starts `cfg.threads` worker threads. Fails if a thread or its datapath cannot start
    /// (with `DatapathKind::Auto`, io_uring trouble falls back to epoll instead).
    pub fn start(cfg: RelayConfig) -> io::Result<Relay> {
        let epoch = Instant::now();
        let mut relay = Relay { workers: Vec::new(), pairs: RwLock::new(HashMap::new()), epoch };
        for index in 0..cfg.threads.max(1) {
            let (tx, rx) = sync_channel(cfg.queue_depth.max(1));
            let waker = Arc::new(Waker::new()?);
            let (ready_tx, ready_rx) = sync_channel(1);
            let wcfg = WorkerConfig {
                index,
                datapath: cfg.datapath,
                batch: cfg.batch,
                batch_wait: cfg.batch_wait,
                uring_buffers: cfg.uring_buffers,
                housekeeping: cfg.housekeeping,
                epoch,
                on_event: cfg.on_event.clone(),
                on_thread_start: cfg.on_thread_start.clone(),
            };
            let w = waker.clone();
            let thread = std::thread::Builder::new()
                .name(format!("relay-{index}"))
                .spawn(move || worker::run(wcfg, rx, w, ready_tx))?;
            let kind = match ready_rx.recv() {
                Ok(Ok(kind)) => kind,
                Ok(Err(e)) => {
                    let _ = thread.join();
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("relay worker died during start")),
            };
            relay.workers.push(WorkerHandle { tx, waker, thread: Some(thread), kind });
        }
        Ok(relay)
    }

    /// The datapath each worker runs (after any fallback).
    pub fn datapaths(&self) -> Vec<DatapathKind> {
        self.workers.iter().map(|w| w.kind).collect()
    }

    /// CPU time each worker thread has used so far (`None` where the clock is unavailable).
    pub fn worker_cpu_time(&self) -> Vec<Option<Duration>> {
        use std::os::unix::thread::JoinHandleExt;
        self.workers
            .iter()
            .map(|w| {
                let t = w.thread.as_ref()?.as_pthread_t();
                let mut clock: libc::clockid_t = 0;
                // SAFETY: `t` names a thread we have not joined, so it is still a valid handle;
                // `clock` is a live out-parameter.
                if unsafe { libc::pthread_getcpuclockid(t, &mut clock) } != 0 {
                    return None;
                }
                let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: `ts` is a live out-parameter.
                if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
                    return None;
                }
                Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
            })
            .collect()
    }

    /// Number of open pairs.
    pub fn len(&self) -> usize {
        self.pairs.read().map_or(0, |p| p.len())
    }

    /// Whether no pair is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn prepare(end: EndpointSpec) -> Result<(PreparedEnd, SocketAddr), RelayError> {
        let local = net::prepare_socket(&end.socket)?;
        let ice = match &end.ice {
            Some(c) => Some(stun::IceAgent::new(c).map_err(RelayError::Ice)?),
            None => None,
        };
        // A zero rate would turn every arrival time into 0 and the jitter into nonsense.
        let clock_rate = if end.clock_rate == 0 { 8000 } else { end.clock_rate };
        Ok((PreparedEnd { socket: end.socket, peer: end.peer, ice, clock_rate }, local))
    }

    /// Starts relaying a pair. The sockets are the relay's from here on; they are closed by
    /// [`Relay::close`] (watch for [`RelayEvent::Closed`] before rebinding their ports), or at
    /// once if `open` fails.
    pub fn open(&self, spec: PairSpec) -> Result<(), RelayError> {
        if self.pairs.read().is_ok_and(|p| p.contains_key(&spec.id)) {
            return Err(RelayError::Duplicate(spec.id));
        }
        let PairSpec { id, a, b, media_timeout } = spec;
        let (a, local_a) = Self::prepare(a)?;
        let (b, local_b) = Self::prepare(b)?;
        let shared = Arc::new(PairShared {
            dirs: Default::default(),
            clock_rates: [a.clock_rate, b.clock_rate],
            local: [local_a, local_b],
        });
        let mut pairs = self.pairs.write().map_err(|_| RelayError::Stopped)?;
        if pairs.contains_key(&id) {
            return Err(RelayError::Duplicate(id));
        }
        let worker = worker_for(id, self.workers.len());
        let cmd = Command::Open(Box::new(OpenPair {
            id,
            ends: [a, b],
            shared: shared.clone(),
            media_timeout,
        }));
        self.send(worker, cmd)?;
        pairs.insert(id, PairEntry { worker, shared });
        Ok(())
    }

    /// The remote on one side changed (re-INVITE): new address and/or latch mode; latching
    /// starts over with a fresh learning window. Local ports stay.
    pub fn update(&self, id: PairId, side: Side, peer: PeerSpec) -> Result<(), RelayError> {
        let worker = self.worker_of(id)?;
        self.send(worker, Command::Update { id, side, peer })
    }

    /// Installs how media arriving on `from` is rewritten and what happens to its DTMF events
    /// (replaces the previous instructions; the stream's sequence shift carries on).
    pub fn set_media(
        &self,
        id: PairId,
        from: Side,
        media: DirectionMedia,
    ) -> Result<(), RelayError> {
        let worker = self.worker_of(id)?;
        self.send(worker, Command::Media { id, from, media: Box::new(media) })
    }

    /// Plays an RFC 4733 event into the stream leaving toward `toward` (asynchronously; ignored
    /// when that direction has no telephone-event format).
    pub fn inject_dtmf(
        &self,
        id: PairId,
        toward: Side,
        event: DtmfInjection,
    ) -> Result<(), RelayError> {
        let worker = self.worker_of(id)?;
        self.send(worker, Command::InjectDtmf { id, toward, event })
    }

    /// Stops relaying and closes the pair's sockets (asynchronously: [`RelayEvent::Closed`]
    /// tells when the ports are free). Statistics are no longer available afterwards.
    pub fn close(&self, id: PairId) -> Result<(), RelayError> {
        let mut pairs = self.pairs.write().map_err(|_| RelayError::Stopped)?;
        let worker = pairs.get(&id).ok_or(RelayError::UnknownPair(id))?.worker;
        self.send(worker, Command::Close(id))?;
        pairs.remove(&id);
        Ok(())
    }

    /// Current statistics of an open pair.
    pub fn stats(&self, id: PairId) -> Option<PairStats> {
        let shared = self.pairs.read().ok()?.get(&id)?.shared.clone();
        Some(PairStats {
            a_to_b: shared.dirs[0].snapshot(self.epoch, shared.clock_rates[0]),
            b_to_a: shared.dirs[1].snapshot(self.epoch, shared.clock_rates[1]),
            local_a: shared.local[0],
            local_b: shared.local[1],
        })
    }

    fn worker_of(&self, id: PairId) -> Result<usize, RelayError> {
        let pairs = self.pairs.read().map_err(|_| RelayError::Stopped)?;
        Ok(pairs.get(&id).ok_or(RelayError::UnknownPair(id))?.worker)
    }

    fn send(&self, worker: usize, cmd: Command) -> Result<(), RelayError> {
        let w = &self.workers[worker];
        match w.tx.try_send(cmd) {
            Ok(()) => {
                w.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(RelayError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(RelayError::Stopped),
        }
    }
}

/// The worker a pair goes to: a hash of its id rather than round robin. Callers open pairs in
/// patterns — the media controller opens each call's RTP pair and then its RTCP pair — and round
/// robin over two workers would deal every RTP pair to one and every (nearly idle) RTCP pair to
/// the other. Fibonacci hashing spreads consecutive ids evenly, every other id as well.
fn worker_for(id: PairId, workers: usize) -> usize {
    let h = id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    ((h * workers.max(1) as u64) >> 32) as usize
}

impl Drop for Relay {
    fn drop(&mut self) {
        for w in &self.workers {
            w.waker.stop.store(true, Ordering::Release);
            w.waker.kick();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
