//! The hot loop: moving datagrams from relay sockets to their partner sockets.
//!
//! Two implementations sit behind [`Datapath`]; an in-kernel (eBPF) fast path would be a third,
//! mirroring the plane's latch state into maps.
//!
//! - [`UringPath`] (default): one multishot `recvmsg` per socket drawing from a shared
//!   provided-buffer ring, so one `io_uring_enter` reaps datagrams from every ready socket and
//!   submits every forwarding `send` of the previous round: batching crosses sockets, which is what
//!   50 pps streams need (a single socket rarely holds more than one datagram).
//! - [`EpollPath`]: level-triggered epoll, then `recvmmsg` on each ready socket into a slab and one
//!   `sendmmsg` of the same slab slots on its partner. Two syscalls per packet at low rates.
//!
//! Per packet neither allocates, locks or copies payload: the datagram lands in a preallocated
//! buffer, the plane may rewrite a few header bytes in it (payload type, sequence number), and
//! that same buffer is handed to the kernel for sending.

use super::net::{self, RawAddr};
use super::worker::{drain_eventfd, Plane, Verdict};
use super::DatapathKind;
use io_uring::types::{Fd, Fixed, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::Submitter;
use io_uring::{cqueue, opcode, squeue, IoUring};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Receive buffer per datagram: a 1500-byte MTU with room to spare, plus io_uring's header.
pub(crate) const BUF_SIZE: usize = 2048;

/// Moves packets for one worker.
pub(crate) trait Datapath {
    /// Which implementation this is.
    fn kind(&self) -> DatapathKind;
    /// Starts delivering datagrams arriving on `fd` as `slot`.
    fn attach(&mut self, slot: u32, fd: RawFd) -> io::Result<()>;
    /// Stops watching `slot`; calls [`Plane::release`] once the kernel holds no reference to the
    /// socket (at once for epoll, after cancellation completes for io_uring).
    fn detach(&mut self, slot: u32, fd: RawFd, plane: &mut Plane);
    /// Waits up to `timeout` for traffic or a wake-up and relays whatever is ready.
    fn poll(&mut self, plane: &mut Plane, timeout: Duration) -> io::Result<()>;
    /// Worker exit, after every slot was detached: let outstanding kernel work finish.
    fn shutdown(&mut self, plane: &mut Plane);
}

/// Builds the requested datapath; `Auto` prefers io_uring and falls back to epoll when io_uring
/// is unavailable (seccomp, `kernel.io_uring_disabled`, kernel older than 6.0).
pub(crate) fn build(
    kind: DatapathKind,
    batch: usize,
    batch_wait: Duration,
    uring_buffers: u16,
    wake_fd: RawFd,
) -> io::Result<Box<dyn Datapath>> {
    let uring = || UringPath::new(uring_buffers, batch, batch_wait, wake_fd);
    match kind {
        DatapathKind::Epoll => Ok(Box::new(EpollPath::new(batch, wake_fd)?)),
        DatapathKind::IoUring => Ok(Box::new(uring()?)),
        DatapathKind::Auto => match uring() {
            Ok(p) => Ok(Box::new(p)),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable, relay falls back to epoll");
                Ok(Box::new(EpollPath::new(batch, wake_fd)?))
            }
        },
    }
}

fn timeout_ms(t: Duration) -> i32 {
    // Round up so a sub-millisecond deadline does not become a busy loop.
    t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
}

// ---------------------------------------------------------------------------------------------
// epoll + recvmmsg / sendmmsg
// ---------------------------------------------------------------------------------------------

const WAKE_TOKEN: u64 = u64::MAX;
const MAX_EVENTS: usize = 512;

/// epoll over the worker's sockets; `recvmmsg` into a slab, `sendmmsg` from the same slab.
pub(crate) struct EpollPath {
    epfd: OwnedFd,
    wake_fd: RawFd,
    batch: usize,
    events: Box<[libc::epoll_event]>,
    slab: Box<[u8]>,
    names: Box<[RawAddr]>,
    iov: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    out_names: Box<[RawAddr]>,
    out_iov: Box<[libc::iovec]>,
    out_hdrs: Box<[libc::mmsghdr]>,
}

impl EpollPath {
    pub(crate) fn new(batch: usize, wake_fd: RawFd) -> io::Result<EpollPath> {
        let batch = batch.clamp(1, 1024);
        // SAFETY: no pointers; the result is checked.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let zero_iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        // SAFETY: mmsghdr is plain C data for which all-zero bytes are a valid value.
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut p = EpollPath {
            epfd,
            wake_fd,
            batch,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS].into_boxed_slice(),
            slab: vec![0u8; batch * BUF_SIZE].into_boxed_slice(),
            names: vec![RawAddr::NONE; batch].into_boxed_slice(),
            iov: vec![zero_iov; batch].into_boxed_slice(),
            hdrs: vec![zero_hdr; batch].into_boxed_slice(),
            out_names: vec![RawAddr::NONE; batch].into_boxed_slice(),
            out_iov: vec![zero_iov; batch].into_boxed_slice(),
            out_hdrs: vec![zero_hdr; batch].into_boxed_slice(),
        };
        // The boxed slices never move or resize, so these pointers stay valid for `p`'s life.
        for i in 0..batch {
            p.iov[i] = libc::iovec {
                iov_base: p.slab[i * BUF_SIZE..].as_mut_ptr().cast(),
                iov_len: BUF_SIZE,
            };
            let h = &mut p.hdrs[i].msg_hdr;
            h.msg_name = p.names[i].as_mut_ptr();
            h.msg_namelen = RawAddr::CAPACITY;
            h.msg_iov = &mut p.iov[i];
            h.msg_iovlen = 1;
            let o = &mut p.out_hdrs[i].msg_hdr;
            o.msg_name = p.out_names[i].as_mut_ptr();
            o.msg_iov = &mut p.out_iov[i];
            o.msg_iovlen = 1;
        }
        p.ctl(libc::EPOLL_CTL_ADD, wake_fd, WAKE_TOKEN)?;
        Ok(p)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `ev` is a live epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Drains one ready socket: `recvmmsg` a batch, decide, `sendmmsg` the forwarded slots.
    #[inline]
    fn pump(&mut self, plane: &mut Plane, slot: u32, now: &super::worker::Now) {
        let Some(fd) = plane.fd(slot) else { return };
        loop {
            for h in self.hdrs.iter_mut() {
                h.msg_hdr.msg_namelen = RawAddr::CAPACITY;
            }
            // SAFETY: every header points into this struct's boxed buffers (names, iov, slab),
            // which are alive and unaliased for the duration of the call.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    self.batch as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r <= 0 {
                return;
            }
            let r = r as usize;
            let mut k = 0;
            let mut out_fd = -1;
            let mut out_slot = 0;
            for i in 0..r {
                let h = &self.hdrs[i];
                if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    plane.note_invalid(slot);
                    continue;
                }
                let len = h.msg_len as usize;
                let src = self.names[i].decode_received(h.msg_hdr.msg_namelen);
                let data = &mut self.slab[i * BUF_SIZE..i * BUF_SIZE + len];
                if let Verdict::Forward { out, fd, dest } = plane.on_packet(slot, src, data, now) {
                    self.out_names[k] = dest;
                    self.out_iov[k] =
                        libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: len };
                    self.out_hdrs[k].msg_hdr.msg_namelen = dest.socklen();
                    out_fd = fd;
                    out_slot = out;
                    k += 1;
                }
            }
            // Everything read from one socket leaves through its one partner.
            if k > 0 {
                self.flush(plane, out_fd, out_slot, k);
            }
            if r < self.batch {
                return;
            }
        }
    }

    fn flush(&mut self, plane: &Plane, fd: RawFd, out_slot: u32, k: usize) {
        let mut sent = 0;
        while sent < k {
            // SAFETY: out_hdrs[sent..k] point at out_names / out_iov entries and slab bytes that
            // stay untouched until the call returns.
            let r = unsafe {
                libc::sendmmsg(fd, self.out_hdrs[sent..].as_mut_ptr(), (k - sent) as u32, 0)
            };
            if r < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first remaining datagram failed; skip it and carry on with the rest.
                plane.note_send_error(out_slot);
                sent += 1;
            } else {
                sent += r as usize;
            }
        }
    }
}

impl Datapath for EpollPath {
    fn kind(&self) -> DatapathKind {
        DatapathKind::Epoll
    }

    fn attach(&mut self, slot: u32, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, u64::from(slot))
    }

    fn detach(&mut self, slot: u32, fd: RawFd, plane: &mut Plane) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, u64::from(slot));
        plane.release(slot);
    }

    fn poll(&mut self, plane: &mut Plane, timeout: Duration) -> io::Result<()> {
        // SAFETY: `events` is a live buffer of `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms(timeout),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        let now = plane.now();
        for i in 0..n as usize {
            let token = self.events[i].u64;
            if token == WAKE_TOKEN {
                drain_eventfd(self.wake_fd);
            } else {
                self.pump(plane, token as u32, &now);
            }
        }
        Ok(())
    }

    fn shutdown(&mut self, _plane: &mut Plane) {}
}

// ---------------------------------------------------------------------------------------------
// io_uring: multishot recvmsg + provided buffer ring + batched sends
// ---------------------------------------------------------------------------------------------

const BGID: u16 = 0x5250;
const KIND_SHIFT: u32 = 60;
const K_RECV: u64 = 1;
const K_SEND: u64 = 2;
const K_WAKE: u64 = 3;
const K_CANCEL: u64 = 4;
const K_PROBE: u64 = 5;
const LOW_MASK: u64 = (1 << KIND_SHIFT) - 1;

fn recv_ud(slot: u32) -> u64 {
    K_RECV << KIND_SHIFT | u64::from(slot)
}

fn send_ud(out: u32, bid: u16) -> u64 {
    K_SEND << KIND_SHIFT | u64::from(out) << 16 | u64::from(bid)
}

/// Anonymous mapping, so memory the kernel might still touch after teardown is never handed
/// back to the allocator for reuse.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `new` mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The provided-buffer ring: `entries` buffers of BUF_SIZE the kernel picks from on receive,
/// returned by us after the forwarding send completes (or at once for dropped packets).
struct BufRing {
    ring: Mapping,
    bufs: Mapping,
    entries: u16,
    tail: u16,
}

impl BufRing {
    fn new(entries: u16) -> io::Result<BufRing> {
        let ring = Mapping::new(
            usize::from(entries) * std::mem::size_of::<io_uring::types::BufRingEntry>(),
        )?;
        let bufs = Mapping::new(usize::from(entries) * BUF_SIZE)?;
        let mut r = BufRing { ring, bufs, entries, tail: 0 };
        for bid in 0..entries {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    #[inline]
    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.entries - 1));
        // SAFETY: idx < entries, inside the ring mapping; BufRingEntry's setters leave the
        // overlapping tail field of entry 0 alone.
        let e = unsafe {
            &mut *self.ring.ptr.as_ptr().cast::<io_uring::types::BufRingEntry>().add(idx)
        };
        // SAFETY: bid < entries, so the buffer lies inside the buffer mapping.
        let addr = unsafe { self.bufs.ptr.as_ptr().add(usize::from(bid) * BUF_SIZE) };
        e.set_addr(addr as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    #[inline]
    fn publish(&self) {
        // SAFETY: the tail lives inside the ring mapping, is u16-aligned, and the kernel reads it
        // concurrently, hence the atomic release store.
        unsafe {
            let tail = io_uring::types::BufRingEntry::tail(self.ring.ptr.as_ptr().cast());
            (*(tail as *const AtomicU16)).store(self.tail, Ordering::Release);
        }
    }

    #[inline]
    fn buf(&self, bid: u16) -> &[u8] {
        // SAFETY: bid < entries; the kernel finished writing this buffer before posting the CQE
        // that named it, and does not touch it again until we push it back.
        unsafe {
            std::slice::from_raw_parts(
                self.bufs.ptr.as_ptr().add(usize::from(bid) * BUF_SIZE),
                BUF_SIZE,
            )
        }
    }

    /// Buffer `bid` for in-place rewriting before it is sent on.
    #[inline]
    fn buf_mut(&mut self, bid: u16) -> &mut [u8] {
        // SAFETY: as for `buf`; `&mut self` makes this the only view of the buffer, and the
        // kernel gets it back (send, or the ring) only after this borrow ends.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.bufs.ptr.as_ptr().add(usize::from(bid) * BUF_SIZE),
                BUF_SIZE,
            )
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct SlotIo {
    fd: RawFd,
    /// Registered in the ring's file table at the slot's index: receives and sends name it
    /// by index, so the kernel skips the per-operation file lookup and reference count
    /// (fget/fput were ~6 % of relay CPU in perf).
    fixed: bool,
    attached: bool,
    armed: bool,
    detaching: bool,
    inflight: u32,
}

/// The soft limit on open descriptors (the size a registered-file table may have).
fn nofile_limit() -> u32 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    u32::try_from(r.rlim_cur).unwrap_or(u32::MAX)
}

/// io_uring datapath for one worker.
pub(crate) struct UringPath {
    // Field order is drop order: the ring goes before the buffers it points into.
    ring: IoUring,
    bufs: BufRing,
    /// Template for multishot recvmsg: only `msg_namelen` / `msg_controllen` matter.
    recv_hdr: Box<libc::msghdr>,
    /// Destination of the in-flight send that owns buffer `bid`.
    send_addrs: Box<[RawAddr]>,
    slots: Vec<SlotIo>,
    rearm: Vec<u32>,
    wake_fd: RawFd,
    wake_armed: bool,
    /// Completions to wait for per round, and the longest wait for them (µs) once one arrived.
    want: usize,
    min_wait_us: u32,
    /// Slots below this index can be registered files (0: the kernel refused a table).
    fixed_slots: u32,
}

impl UringPath {
    pub(crate) fn new(
        buffers: u16,
        batch: usize,
        batch_wait: Duration,
        wake_fd: RawFd,
    ) -> io::Result<UringPath> {
        let buffers = buffers.clamp(64, 32768).next_power_of_two();
        let cq = (u32::from(buffers) * 4).max(8192);
        // DEFER_TASKRUN: receive work runs only inside our io_uring_enter, so wake-ups from many
        // sockets accumulate and are reaped in one batch on this thread.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(cq)
            .build(2048)
            .or_else(|_| IoUring::builder().setup_coop_taskrun().setup_cqsize(cq).build(2048))
            .or_else(|_| IoUring::builder().setup_cqsize(cq).build(2048))?;
        let bufs = BufRing::new(buffers)?;
        // A sparse file table sized by the descriptor limit (the kernel refuses a larger
        // one); slots beyond it, or a kernel without sparse tables, use plain fds.
        let fixed_slots = nofile_limit().min(1 << 16);
        let fixed_slots = if ring.submitter().register_files_sparse(fixed_slots).is_ok() {
            fixed_slots
        } else {
            0
        };
        // SAFETY: the ring mapping holds `buffers` entries and outlives the registration (it is
        // dropped after the ring, see field order).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ring.ptr.as_ptr() as u64,
                buffers,
                BGID,
                0,
            )?;
        }
        // SAFETY: msghdr is plain C data for which all-zero bytes are a valid value.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = RawAddr::CAPACITY;
        // Without the kernel's min-wait (6.12), waiting for more than one completion could hold a
        // lone packet until the housekeeping timeout: wait for one.
        let batching = !batch_wait.is_zero() && ring.params().is_feature_min_timeout();
        let want = if batching { batch.clamp(1, usize::from(buffers) / 2) } else { 1 };
        let min_wait_us =
            if batching { batch_wait.as_micros().min(u128::from(u32::MAX)) as u32 } else { 0 };
        let mut p = UringPath {
            ring,
            bufs,
            recv_hdr,
            send_addrs: vec![RawAddr::NONE; usize::from(buffers)].into_boxed_slice(),
            slots: Vec::new(),
            rearm: Vec::new(),
            wake_fd,
            wake_armed: false,
            want,
            min_wait_us,
            fixed_slots,
        };
        p.self_test()?;
        p.arm_wake()?;
        Ok(p)
    }

    /// Multishot recvmsg needs Linux 6.0; prove it works before committing to this datapath.
    fn self_test(&mut self) -> io::Result<()> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let probe = K_PROBE << KIND_SHIFT;
        let e = opcode::RecvMsgMulti::new(Fd(sock.as_raw_fd()), &*self.recv_hdr, BGID)
            .build()
            .user_data(probe);
        self.push(&e)?;
        sock.send_to(b"probe", sock.local_addr()?)?;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut ok = None;
        let mut cancelled = false;
        while Instant::now() < deadline {
            let ts = Timespec::from(Duration::from_millis(50));
            let args = SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) => return Err(e),
            }
            let mut done = false;
            for cqe in self.ring.completion() {
                if cqe.user_data() != probe {
                    continue;
                }
                if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                    self.bufs.push(bid);
                }
                if ok.is_none() {
                    ok = Some(cqe.result() >= 0 && cqueue::more(cqe.flags()));
                }
                done |= !cqueue::more(cqe.flags());
            }
            self.bufs.publish();
            if done {
                break;
            }
            if ok.is_some() && !cancelled {
                let c = opcode::AsyncCancel::new(probe).build().user_data(K_CANCEL << KIND_SHIFT);
                self.push(&c)?;
                cancelled = true;
            }
        }
        match ok {
            Some(true) => Ok(()),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "multishot recvmsg not supported")),
        }
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(Fd(self.wake_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(K_WAKE << KIND_SHIFT);
        self.push(&e)?;
        self.wake_armed = true;
        Ok(())
    }

    /// Queues an SQE, submitting first if the queue is full.
    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every pointer an entry carries (msghdr, buffers, addresses) lives in this
            // struct or in a socket the plane keeps open until the request completes.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_recv(&mut self, slot: u32) -> io::Result<()> {
        let s = self.slots[slot as usize];
        let op = if s.fixed {
            opcode::RecvMsgMulti::new(Fixed(slot), &*self.recv_hdr, BGID)
        } else {
            opcode::RecvMsgMulti::new(Fd(s.fd), &*self.recv_hdr, BGID)
        };
        let e = op.build().user_data(recv_ud(slot));
        self.push(&e)?;
        self.slots[slot as usize].armed = true;
        Ok(())
    }

    fn maybe_release(
        submitter: &Submitter<'_>,
        slots: &mut [SlotIo],
        plane: &mut Plane,
        slot: u32,
    ) {
        let s = &mut slots[slot as usize];
        if s.detaching && !s.armed && s.inflight == 0 {
            if s.fixed {
                // The table holds its own reference to the socket: without this the port
                // would stay bound after the plane closes the descriptor.
                let _ = submitter.register_files_update(slot, &[-1]);
            }
            *s = SlotIo::default();
            plane.release(slot);
        }
    }

    /// Processes every completion: forwards received datagrams, recycles buffers of finished
    /// sends, re-arms receives that ended.
    fn reap(&mut self, plane: &mut Plane, now: &super::worker::Now) -> io::Result<()> {
        let mut woke = false;
        {
            let (submitter, mut sq, mut cq) = self.ring.split();
            let bufs = &mut self.bufs;
            let slots = &mut self.slots;
            let send_addrs = &mut self.send_addrs;
            let rearm = &mut self.rearm;
            let hdr = &*self.recv_hdr;
            loop {
                for cqe in &mut cq {
                    let ud = cqe.user_data();
                    let (res, flags) = (cqe.result(), cqe.flags());
                    match ud >> KIND_SHIFT {
                        K_RECV => {
                            let slot = (ud & LOW_MASK) as u32;
                            if let Some(bid) = cqueue::buffer_select(flags) {
                                let mut forwarded = false;
                                if res >= 0 {
                                    // Source and payload position first: the parsed view
                                    // borrows the buffer the plane then rewrites in place.
                                    let parsed = match RecvMsgOut::parse(bufs.buf(bid), hdr) {
                                        Ok(m) if !m.is_payload_truncated() => {
                                            let base = bufs.buf(bid).as_ptr() as usize;
                                            let p = m.payload_data();
                                            let start = p.as_ptr() as usize - base;
                                            Some((net::decode(m.name_data()), start, p.len()))
                                        }
                                        _ => None,
                                    };
                                    match parsed {
                                        Some((src, start, len)) => {
                                            let data = &mut bufs.buf_mut(bid)[start..start + len];
                                            if let Verdict::Forward { out, fd, dest } =
                                                plane.on_packet(slot, src, data, now)
                                            {
                                                let a = &mut send_addrs[usize::from(bid)];
                                                *a = dest;
                                                let (p, n) = (data.as_ptr(), data.len() as u32);
                                                let op = if slots[out as usize].fixed {
                                                    opcode::Send::new(Fixed(out), p, n)
                                                } else {
                                                    opcode::Send::new(Fd(fd), p, n)
                                                };
                                                let e = op
                                                    .dest_addr(a.as_ptr())
                                                    .dest_addr_len(a.socklen())
                                                    .build()
                                                    .user_data(send_ud(out, bid));
                                                // SAFETY: the payload stays in buffer `bid`
                                                // and the address in send_addrs[bid] until
                                                // this send's completion recycles them.
                                                while unsafe { sq.push(&e) }.is_err() {
                                                    sq.sync();
                                                    submitter.submit()?;
                                                    sq.sync();
                                                }
                                                slots[out as usize].inflight += 1;
                                                forwarded = true;
                                            }
                                        }
                                        None => plane.note_invalid(slot),
                                    }
                                }
                                if !forwarded {
                                    bufs.push(bid);
                                }
                            }
                            if !cqueue::more(flags) {
                                // Multishot ended: cancelled, out of buffers, or CQ overflow.
                                let s = &mut slots[slot as usize];
                                s.armed = false;
                                if s.detaching {
                                    Self::maybe_release(&submitter, slots, plane, slot);
                                } else if s.attached {
                                    rearm.push(slot);
                                }
                            }
                        }
                        K_SEND => {
                            let bid = ud as u16;
                            let out = ((ud & LOW_MASK) >> 16) as u32;
                            bufs.push(bid);
                            if res < 0 {
                                plane.note_send_error(out);
                            }
                            slots[out as usize].inflight -= 1;
                            Self::maybe_release(&submitter, slots, plane, out);
                        }
                        K_WAKE => {
                            woke = true;
                            if !cqueue::more(flags) {
                                self.wake_armed = false;
                            }
                        }
                        _ => {}
                    }
                }
                cq.sync();
                if cq.is_empty() {
                    break;
                }
            }
        }
        self.bufs.publish();
        while let Some(slot) = self.rearm.pop() {
            let s = self.slots[slot as usize];
            if s.attached && !s.detaching && !s.armed {
                self.arm_recv(slot)?;
            }
        }
        if woke {
            drain_eventfd(self.wake_fd);
            if !self.wake_armed {
                self.arm_wake()?;
            }
        }
        Ok(())
    }
}

impl Datapath for UringPath {
    fn kind(&self) -> DatapathKind {
        DatapathKind::IoUring
    }

    fn attach(&mut self, slot: u32, fd: RawFd) -> io::Result<()> {
        let i = slot as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, SlotIo::default());
        }
        // The re-arm list must never grow on the packet path.
        self.rearm.reserve(self.slots.len().saturating_sub(self.rearm.capacity()));
        let fixed = slot < self.fixed_slots
            && self.ring.submitter().register_files_update(slot, &[fd]).is_ok();
        self.slots[i] =
            SlotIo { fd, fixed, attached: true, armed: false, detaching: false, inflight: 0 };
        self.arm_recv(slot)
    }

    fn detach(&mut self, slot: u32, _fd: RawFd, plane: &mut Plane) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            plane.release(slot);
            return;
        };
        s.detaching = true;
        s.attached = false;
        if s.armed {
            let e =
                opcode::AsyncCancel::new(recv_ud(slot)).build().user_data(K_CANCEL << KIND_SHIFT);
            if self.push(&e).is_ok() {
                return;
            }
            // Could not even queue the cancel: the ring is broken; drop our bookkeeping and let
            // the ring's teardown release the socket.
            self.slots[slot as usize].armed = false;
        }
        Self::maybe_release(&self.ring.submitter(), &mut self.slots, plane, slot);
    }

    fn poll(&mut self, plane: &mut Plane, timeout: Duration) -> io::Result<()> {
        let ts = Timespec::from(timeout);
        // With DEFER_TASKRUN the kernel wakes us only once `want` receives are pending (or the
        // min-wait passed with at least one): fewer wake-ups, fuller rounds.
        let args = SubmitArgs::new().min_wait_usec(self.min_wait_us).timespec(&ts);
        match self.ring.submitter().submit_with_args(self.want, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {
            }
            Err(e) => return Err(e),
        }
        let now = plane.now();
        self.reap(plane, &now)
    }

    fn shutdown(&mut self, plane: &mut Plane) {
        // Wait (bounded) for cancellations and sends so sockets close only when the kernel is
        // done with them; anything left is torn down with the ring.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.slots.iter().any(|s| s.detaching) && Instant::now() < deadline {
            if self.poll(plane, Duration::from_millis(10)).is_err() {
                break;
            }
        }
    }
}
