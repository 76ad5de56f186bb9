//! One relay worker thread: its endpoint table (the [`Plane`]), the per-packet decision, control
//! commands and housekeeping. The datapath moves the bytes; the plane says where they go.

use super::datapath::{self, Datapath};
use super::direction::{DirectionMedia, DtmfInjection};
use super::dtmf::Detected;
use super::latch::{Admit, Latch, Probe};
use super::net::RawAddr;
use super::rewrite::{DirectionState, RtpAction};
use super::stats::{bump, RtpReceiver};
use super::stun::{is_stun, IceAgent, StunAction};
use super::{
    DatapathKind, EventHandler, PairId, PairShared, PeerSpec, RelayEvent, Side, ThreadHook,
};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Control commands from the signalling side, applied between datapath polls.
pub(crate) enum Command {
    Open(Box<OpenPair>),
    Update {
        id: PairId,
        side: Side,
        peer: PeerSpec,
    },
    /// Rewrite/DTMF instructions for media arriving on `from`.
    Media {
        id: PairId,
        from: Side,
        media: Box<DirectionMedia>,
    },
    /// Play an event into the stream leaving toward `toward`.
    InjectDtmf {
        id: PairId,
        toward: Side,
        event: DtmfInjection,
    },
    Close(PairId),
}

/// A pair whose sockets the caller side already prepared (non-blocking, DSCP).
pub(crate) struct OpenPair {
    pub(crate) id: PairId,
    pub(crate) ends: [PreparedEnd; 2],
    pub(crate) shared: Arc<PairShared>,
    pub(crate) media_timeout: Option<Duration>,
}

pub(crate) struct PreparedEnd {
    pub(crate) socket: UdpSocket,
    pub(crate) peer: PeerSpec,
    pub(crate) ice: Option<IceAgent>,
    pub(crate) clock_rate: u32,
}

/// Wakes a worker blocked in its datapath: an eventfd the datapath watches.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
    pub(crate) stop: AtomicBool,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd, pending: AtomicBool::new(false), stop: AtomicBool::new(false) })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Called after queueing a command; a burst of commands costs one eventfd write.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, AcqRel) {
            self.kick();
        }
    }

    pub(crate) fn kick(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd; a full counter (EAGAIN) already
        // means "wake up", so the result needs no handling.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// Worker side: re-enables wake-ups, then the worker drains its queue.
    fn rearm(&self) {
        self.pending.swap(false, AcqRel);
    }
}

/// Reads an eventfd's counter to zero.
pub(crate) fn drain_eventfd(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (already zero) is fine.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// What the worker thread needs from the relay's configuration.
pub(crate) struct WorkerConfig {
    pub(crate) index: usize,
    pub(crate) datapath: DatapathKind,
    pub(crate) batch: usize,
    pub(crate) batch_wait: Duration,
    pub(crate) uring_buffers: u16,
    pub(crate) housekeeping: Duration,
    pub(crate) epoch: Instant,
    pub(crate) on_event: Option<EventHandler>,
    pub(crate) on_thread_start: Option<ThreadHook>,
}

/// The worker thread's body.
pub(crate) fn run(
    cfg: WorkerConfig,
    rx: Receiver<Command>,
    waker: Arc<Waker>,
    ready: SyncSender<io::Result<DatapathKind>>,
) {
    if let Some(hook) = &cfg.on_thread_start {
        hook(cfg.index);
    }
    let built =
        datapath::build(cfg.datapath, cfg.batch, cfg.batch_wait, cfg.uring_buffers, waker.fd());
    let mut dp = match built {
        Ok(dp) => dp,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(dp.kind()));
    drop(ready);

    let mut plane = Plane::new(cfg.epoch, cfg.on_event);
    let mut now = Instant::now();
    let mut next_housekeeping = now + cfg.housekeeping;
    let mut last_error: Option<Instant> = None;
    loop {
        waker.rearm();
        while let Ok(cmd) = rx.try_recv() {
            plane.apply(cmd, dp.as_mut(), now);
        }
        if waker.stop.load(Acquire) {
            break;
        }
        plane.run_injections(Instant::now());
        let wake =
            plane.next_injection(now).map_or(next_housekeeping, |t| t.min(next_housekeeping));
        let timeout = wake.saturating_duration_since(now);
        if let Err(e) = dp.poll(&mut plane, timeout) {
            // Persistent failure must not spin a core; log at most once a second.
            if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                tracing::warn!(worker = cfg.index, error = %e, "relay datapath poll failed");
                last_error = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        now = Instant::now();
        plane.run_injections(now);
        if now >= next_housekeeping {
            plane.housekeeping(now);
            next_housekeeping = now + cfg.housekeeping;
        }
    }
    plane.shutdown(dp.as_mut());
    dp.shutdown(&mut plane);
}

/// A batch's notion of the time, read once per wake-up rather than per packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) instant: Instant,
    /// Nanoseconds since the relay's epoch.
    pub(crate) ns: u64,
}

/// What the datapath does with a received datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verdict {
    /// Send the same bytes out of slot `out` (socket `fd`) to `dest`.
    Forward { out: u32, fd: RawFd, dest: RawAddr },
    /// Dropped (and counted) or consumed (STUN).
    Drop,
}

/// How a datagram looks (RFC 7983 demultiplexing, RFC 5761 for RTP vs RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Rtp { ssrc: u32, seq: u16, ts: u32 },
    Rtcp { ssrc: u32 },
    Stun,
    Other,
}

#[inline]
pub(crate) fn classify(d: &[u8]) -> Class {
    let be32 = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    if d.len() >= 8 && d[0] >> 6 == 2 {
        // RFC 5761 §4: second byte 192..=223 is an RTCP packet type (SR 200 … APP 204, feedback
        // 205/206, XR 207), never an RTP payload type on a muxed port.
        if (192..=223).contains(&d[1]) {
            return Class::Rtcp { ssrc: be32(4) };
        }
        if d.len() >= 12 {
            return Class::Rtp {
                ssrc: be32(8),
                seq: u16::from_be_bytes([d[2], d[3]]),
                ts: be32(4),
            };
        }
        return Class::Other;
    }
    if is_stun(d) {
        return Class::Stun;
    }
    Class::Other
}

impl Class {
    fn probe(self) -> Probe {
        match self {
            Class::Rtp { ssrc, .. } => Probe::Rtp { ssrc },
            Class::Rtcp { ssrc } => Probe::Rtcp { ssrc },
            Class::Stun | Class::Other => Probe::Other,
        }
    }
}

/// One relay socket and everything the worker knows about its remote.
pub(crate) struct Endpoint {
    socket: UdpSocket,
    fd: RawFd,
    partner: u32,
    id: PairId,
    side: Side,
    /// Cleared when the pair closes; the datapath may still hold the socket for a moment.
    live: bool,
    latch: Latch,
    /// Where media leaving through this endpoint goes (the latch's destination), pre-encoded.
    dest: RawAddr,
    clock_rate: u32,
    rtp: RtpReceiver,
    last_rtp: Option<Instant>,
    shared: Arc<PairShared>,
    ice: Option<IceAgent>,
    /// Rewrite and DTMF state of the media arriving here (leaving through the partner).
    dir: DirectionState,
}

struct PairRec {
    slots: [u32; 2],
    media_timeout: Option<Duration>,
    /// Open or last update: media timeout counts from here when no RTP came since.
    since: Instant,
    timed_out: bool,
}

/// The worker's endpoint table. Slots are stable indices the datapath uses as tokens.
pub(crate) struct Plane {
    slots: Vec<Option<Endpoint>>,
    free: Vec<u32>,
    pairs: HashMap<PairId, PairRec>,
    /// Pairs closed whose sockets the datapath has not released yet: how many remain.
    closing: HashMap<PairId, u8>,
    epoch: Instant,
    on_event: Option<EventHandler>,
    /// Slots whose direction is playing injected events: the only ones the timer walks.
    injecting: Vec<u32>,
}

/// Reports a finished DTMF event. This runs once per key press, never per packet, so the
/// handler's channel (which may allocate now and then) stays off the packet path.
fn report_dtmf(on_event: &Option<EventHandler>, id: PairId, side: Side, clock: u32, d: Detected) {
    if let Some(f) = on_event {
        let micros = u64::from(d.duration) * 1_000_000 / u64::from(clock.max(1));
        let duration = Duration::from_micros(micros);
        f(RelayEvent::Dtmf { id, side, event: d.event, duration });
    }
}

impl Plane {
    pub(crate) fn new(epoch: Instant, on_event: Option<EventHandler>) -> Plane {
        Plane {
            slots: Vec::new(),
            free: Vec::new(),
            pairs: HashMap::new(),
            closing: HashMap::new(),
            epoch,
            on_event,
            injecting: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn now(&self) -> Now {
        let instant = Instant::now();
        Now { instant, ns: instant.saturating_duration_since(self.epoch).as_nanos() as u64 }
    }

    #[inline]
    pub(crate) fn fd(&self, slot: u32) -> Option<RawFd> {
        match self.slots.get(slot as usize) {
            Some(Some(ep)) if ep.live => Some(ep.fd),
            _ => None,
        }
    }

    fn emit(&self, ev: RelayEvent) {
        if let Some(f) = &self.on_event {
            f(ev);
        }
    }

    /// The per-packet decision: latch check, stats, the direction's in-place rewrite (payload
    /// type, sequence number), where to send. No allocation, no lock.
    #[inline]
    pub(crate) fn on_packet(
        &mut self,
        slot: u32,
        src: Option<SocketAddr>,
        data: &mut [u8],
        now: &Now,
    ) -> Verdict {
        let Some(Some(ep)) = self.slots.get_mut(slot as usize) else {
            return Verdict::Drop;
        };
        if !ep.live {
            return Verdict::Drop;
        }
        let Some(src) = src else {
            bump(&ep.shared.dirs[ep.side.index()].dropped_invalid, 1);
            return Verdict::Drop;
        };
        let class = classify(data);
        if class == Class::Stun && ep.ice.is_some() {
            self.on_stun(slot, src, data);
            return Verdict::Drop;
        }
        let c = &ep.shared.dirs[ep.side.index()];
        match ep.latch.admit(src, class.probe(), now.instant) {
            Admit::Accept => {}
            Admit::Reject => {
                bump(&c.dropped_foreign, 1);
                return Verdict::Drop;
            }
            Admit::Latched => {
                ep.dest = RawAddr::new(src);
                c.peer.store(Some(src));
                if let Some(f) = &self.on_event {
                    f(RelayEvent::Latched { id: ep.id, side: ep.side, peer: src });
                }
            }
        }
        let len = data.len() as u64;
        match class {
            Class::Rtp { ssrc, seq, ts } => {
                bump(&c.rtp_packets, 1);
                bump(&c.rtp_bytes, len);
                let arrival = (now.ns / 1000 * u64::from(ep.clock_rate) / 1_000_000) as u32;
                ep.rtp.on_packet(ssrc, seq, ts, arrival);
                c.lost.store(ep.rtp.lost(), Relaxed);
                c.jitter.store(ep.rtp.jitter(), Relaxed);
                c.ssrc.store(1 << 32 | u64::from(ssrc), Relaxed);
                c.last_rtp.store(now.ns + 1, Relaxed);
                ep.last_rtp = Some(now.instant);
                let (id, side, clock) = (ep.id, ep.side, ep.dir.events_in_clock());
                let on_event = &self.on_event;
                let emit = |d| report_dtmf(on_event, id, side, clock, d);
                if ep.dir.on_rtp(data, ssrc, seq, ts, now.instant, emit) == RtpAction::Suppress {
                    c.last_packet.store(now.ns + 1, Relaxed);
                    return Verdict::Drop;
                }
            }
            Class::Rtcp { .. } => {
                bump(&c.rtcp_packets, 1);
                bump(&c.rtcp_bytes, len);
            }
            Class::Stun | Class::Other => bump(&c.other_packets, 1),
        }
        c.last_packet.store(now.ns + 1, Relaxed);

        let partner = ep.partner;
        match self.slots.get(partner as usize) {
            Some(Some(out)) if out.live && !out.dest.is_none() => {
                Verdict::Forward { out: partner, fd: out.fd, dest: out.dest }
            }
            _ => {
                self.count(slot, |c| &c.dropped_unroutable);
                Verdict::Drop
            }
        }
    }

    fn count(
        &self,
        slot: u32,
        which: impl Fn(&super::stats::DirCounters) -> &std::sync::atomic::AtomicU64,
    ) {
        if let Some(Some(ep)) = self.slots.get(slot as usize) {
            bump(which(&ep.shared.dirs[ep.side.index()]), 1);
        }
    }

    /// A datagram on `slot` could not be read properly (truncated, no source).
    pub(crate) fn note_invalid(&self, slot: u32) {
        self.count(slot, |c| &c.dropped_invalid);
    }

    /// Sending out of `out` failed: counted against the direction that feeds it.
    pub(crate) fn note_send_error(&self, out: u32) {
        if let Some(Some(ep)) = self.slots.get(out as usize) {
            self.count(ep.partner, |c| &c.send_errors);
        }
    }

    #[cold]
    fn on_stun(&mut self, slot: u32, src: SocketAddr, data: &[u8]) {
        let Some(Some(ep)) = self.slots.get_mut(slot as usize) else { return };
        let Some(ice) = &ep.ice else { return };
        let c = &ep.shared.dirs[ep.side.index()];
        match ice.handle(data, src) {
            StunAction::Answer { response, use_candidate } => {
                bump(&c.stun_answered, 1);
                let _ = ep.socket.send_to(&response, src);
                if ep.latch.nominate(src, use_candidate) {
                    ep.dest = RawAddr::new(src);
                    c.peer.store(Some(src));
                    let ev = RelayEvent::Latched { id: ep.id, side: ep.side, peer: src };
                    self.emit(ev);
                }
            }
            StunAction::Reject { response } => {
                bump(&c.stun_rejected, 1);
                if let Some(r) = response {
                    let _ = ep.socket.send_to(&r, src);
                }
            }
            StunAction::Ignore => {}
        }
    }

    fn alloc_slot(&mut self, ep: Endpoint) -> u32 {
        match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(ep);
                s
            }
            None => {
                self.slots.push(Some(ep));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Applies a control command.
    pub(crate) fn apply(&mut self, cmd: Command, dp: &mut dyn Datapath, now: Instant) {
        match cmd {
            Command::Open(open) => self.open(*open, dp, now),
            Command::Update { id, side, peer } => {
                let Some(rec) = self.pairs.get_mut(&id) else { return };
                rec.since = now;
                rec.timed_out = false;
                let slot = rec.slots[side.index()];
                if let Some(Some(ep)) = self.slots.get_mut(slot as usize) {
                    ep.latch.reset(peer, now);
                    let dest = ep.latch.destination();
                    ep.dest = RawAddr::from_opt(dest);
                    ep.shared.dirs[side.index()].peer.store(dest);
                }
            }
            Command::Media { id, from, media } => {
                if let Some(ep) = self.endpoint_mut(id, from) {
                    ep.dir.configure(*media);
                }
            }
            Command::InjectDtmf { id, toward, event } => {
                // The stream toward `toward` is the media arriving on the other side.
                let from = match toward {
                    Side::A => Side::B,
                    Side::B => Side::A,
                };
                let Some(slot) = self.pairs.get(&id).map(|r| r.slots[from.index()]) else {
                    return;
                };
                let Some(Some(ep)) = self.slots.get_mut(slot as usize) else { return };
                if !ep.dir.inject(event) {
                    tracing::debug!(
                        ?id,
                        "DTMF injection refused: no telephone-event or queue full"
                    );
                    return;
                }
                if !self.injecting.contains(&slot) {
                    self.injecting.push(slot);
                }
            }
            Command::Close(id) => self.close(id, dp),
        }
    }

    fn endpoint_mut(&mut self, id: PairId, side: Side) -> Option<&mut Endpoint> {
        let slot = self.pairs.get(&id)?.slots[side.index()];
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// When the next injected event packet is due, if any is playing.
    pub(crate) fn next_injection(&self, now: Instant) -> Option<Instant> {
        self.injecting
            .iter()
            .filter_map(|&s| self.slots.get(s as usize)?.as_ref()?.dir.next_injection(now))
            .min()
    }

    /// Sends the injected event packets due at `now` out of the partner of each injecting
    /// endpoint, straight from a stack buffer.
    pub(crate) fn run_injections(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.injecting.len() {
            let slot = self.injecting[i];
            let out = match self.slots.get(slot as usize) {
                Some(Some(ep)) if ep.live => match self.slots.get(ep.partner as usize) {
                    Some(Some(o)) if o.live => Some((o.fd, o.dest)),
                    _ => None,
                },
                _ => None,
            };
            let Some(Some(ep)) = self.slots.get_mut(slot as usize) else {
                self.injecting.swap_remove(i);
                continue;
            };
            let Some((fd, dest)) = out.filter(|_| ep.live) else {
                self.injecting.swap_remove(i);
                continue;
            };
            // The pair id names the stream when nothing was relayed yet.
            let fallback_ssrc = (ep.id.0 as u32) ^ 0x5b0d_e700;
            let mut pkt = [0u8; super::telephone_event::PACKET_LEN];
            while ep.dir.poll_injection(now, fallback_ssrc, &mut pkt) {
                if dest.is_none() {
                    continue;
                }
                // SAFETY: `pkt` and `dest` are live for the call; `fd` is the partner's socket,
                // open while the partner is live.
                let r = unsafe {
                    libc::sendto(
                        fd,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        libc::MSG_DONTWAIT,
                        dest.as_ptr(),
                        dest.socklen(),
                    )
                };
                if r < 0 {
                    bump(&ep.shared.dirs[ep.side.index()].send_errors, 1);
                }
            }
            if ep.dir.injecting() {
                i += 1;
            } else {
                self.injecting.swap_remove(i);
            }
        }
    }

    fn open(&mut self, open: OpenPair, dp: &mut dyn Datapath, now: Instant) {
        let OpenPair { id, ends, shared, media_timeout } = open;
        if self.pairs.contains_key(&id) || self.closing.contains_key(&id) {
            self.emit(RelayEvent::OpenFailed { id, reason: "pair id in use".into() });
            return;
        }
        let mut slots = [0u32; 2];
        for (i, end) in ends.into_iter().enumerate() {
            let side = if i == 0 { Side::A } else { Side::B };
            let latch = Latch::new(end.peer, now);
            let dest = latch.destination();
            shared.dirs[i].peer.store(dest);
            let ep = Endpoint {
                fd: end.socket.as_raw_fd(),
                socket: end.socket,
                partner: 0,
                id,
                side,
                live: true,
                latch,
                dest: RawAddr::from_opt(dest),
                clock_rate: end.clock_rate,
                rtp: RtpReceiver::default(),
                last_rtp: None,
                shared: shared.clone(),
                ice: end.ice,
                dir: DirectionState::default(),
            };
            slots[i] = self.alloc_slot(ep);
        }
        for (i, &s) in slots.iter().enumerate() {
            if let Some(Some(ep)) = self.slots.get_mut(s as usize) {
                ep.partner = slots[1 - i];
            }
        }
        self.pairs.insert(id, PairRec { slots, media_timeout, since: now, timed_out: false });
        for &s in &slots {
            let fd = self.slots[s as usize].as_ref().map(|e| e.fd).unwrap_or(-1);
            if let Err(e) = dp.attach(s, fd) {
                self.emit(RelayEvent::OpenFailed { id, reason: e.to_string() });
                self.close(id, dp);
                return;
            }
        }
    }

    fn close(&mut self, id: PairId, dp: &mut dyn Datapath) {
        let Some(rec) = self.pairs.remove(&id) else { return };
        self.closing.insert(id, 2);
        for s in rec.slots {
            let Some(Some(ep)) = self.slots.get_mut(s as usize) else { continue };
            ep.live = false;
            let fd = ep.fd;
            dp.detach(s, fd, self);
        }
    }

    /// The datapath holds no more references to `slot`'s socket: close it and free the slot.
    pub(crate) fn release(&mut self, slot: u32) {
        let Some(ep) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        self.free.push(slot);
        let id = ep.id;
        drop(ep);
        if let Some(n) = self.closing.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.closing.remove(&id);
                self.emit(RelayEvent::Closed { id });
            }
        }
    }

    /// Media timeouts: a pair with no RTP in either direction for its limit is reported once.
    pub(crate) fn housekeeping(&mut self, now: Instant) {
        for rec in self.pairs.values() {
            for s in rec.slots {
                let Some(Some(ep)) = self.slots.get_mut(s as usize) else { continue };
                let (id, side, clock) = (ep.id, ep.side, ep.dir.events_in_clock());
                let on_event = &self.on_event;
                ep.dir.expire_events(now, |d| report_dtmf(on_event, id, side, clock, d));
            }
        }
        for (id, rec) in self.pairs.iter_mut() {
            let Some(limit) = rec.media_timeout else { continue };
            let mut last = rec.since;
            for s in rec.slots {
                if let Some(Some(ep)) = self.slots.get(s as usize) {
                    last = last.max(ep.last_rtp.unwrap_or(last));
                }
            }
            let idle = now.saturating_duration_since(last);
            if idle < limit {
                rec.timed_out = false;
            } else if !rec.timed_out {
                rec.timed_out = true;
                if let Some(f) = &self.on_event {
                    f(RelayEvent::MediaTimeout { id: *id, idle });
                }
            }
        }
    }

    /// Worker exit: detach everything so the datapath can drop its kernel references first.
    fn shutdown(&mut self, dp: &mut dyn Datapath) {
        let ids: Vec<PairId> = self.pairs.keys().copied().collect();
        for id in ids {
            self.close(id, dp);
        }
    }
}
