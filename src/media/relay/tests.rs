//! End-to-end tests of the relay through real UDP sockets on 127.0.0.1, run against both
//! datapaths, plus the allocation count of the packet path.

mod cost;
mod dtmf;

use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;

// ---- allocation counting: only on threads a test tagged with its group ----------------------

struct CountingAlloc;

const GROUPS: usize = 8;
static ALLOCS: [AtomicU64; GROUPS] = [const { AtomicU64::new(0) }; GROUPS];
static NEXT_GROUP: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// 0: not counted; otherwise the group whose counter this thread's allocations bump.
    static GROUP: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc() {
    let g = GROUP.try_with(Cell::get).unwrap_or(0);
    if g != 0 {
        ALLOCS[g % GROUPS].fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: defers every operation to the system allocator unchanged; counting touches only an
// atomic and a const thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ---- helpers ---------------------------------------------------------------------------------

const KINDS: [DatapathKind; 2] = [DatapathKind::Epoll, DatapathKind::IoUring];
const QUIET: Duration = Duration::from_millis(150);

struct Harness {
    relay: Relay,
    events: Arc<Mutex<Vec<RelayEvent>>>,
}

fn start(kind: DatapathKind) -> Harness {
    start_with(kind, |_| {})
}

fn start_with(kind: DatapathKind, tweak: impl FnOnce(&mut RelayConfig)) -> Harness {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let mut cfg = RelayConfig {
        threads: 1,
        datapath: kind,
        uring_buffers: 256,
        on_event: Some(Arc::new(move |e| ev.lock().unwrap().push(e))),
        ..RelayConfig::default()
    };
    tweak(&mut cfg);
    let relay = Relay::start(cfg).expect("relay starts");
    assert_eq!(relay.datapaths(), vec![kind]);
    Harness { relay, events }
}

impl Harness {
    fn wait_event(&self, pred: impl Fn(&RelayEvent) -> bool) -> RelayEvent {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("event not seen; got {:?}", self.events.lock().unwrap());
    }

    fn stats(&self, id: u64) -> PairStats {
        self.relay.stats(PairId(id)).expect("pair open")
    }

    /// Polls until `pred` holds on the pair's stats (the worker publishes asynchronously).
    fn wait_stats(&self, id: u64, pred: impl Fn(&PairStats) -> bool) -> PairStats {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let s = self.stats(id);
            if pred(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

fn rtp(ssrc: u32, seq: u16, ts: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(12)];
    p[0] = 0x80;
    p[1] = 0; // PCMU
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    p
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("datagram expected");
    (buf[..n].to_vec(), from)
}

fn nothing(s: &UdpSocket) -> bool {
    s.set_read_timeout(Some(QUIET)).unwrap();
    let mut buf = [0u8; 2048];
    let r = s.recv_from(&mut buf);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    r.is_err()
}

/// A pair with relay sockets `ra`/`rb`; returns their addresses.
fn open(h: &Harness, id: u64, a: PeerSpec, b: PeerSpec) -> (SocketAddr, SocketAddr) {
    open_spec(h, id, a, b, |_| {})
}

fn open_spec(
    h: &Harness,
    id: u64,
    a: PeerSpec,
    b: PeerSpec,
    tweak: impl FnOnce(&mut PairSpec),
) -> (SocketAddr, SocketAddr) {
    let ra = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rb = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (la, lb) = (addr(&ra), addr(&rb));
    let mut spec = PairSpec::new(PairId(id), EndpointSpec::new(ra, a), EndpointSpec::new(rb, b));
    tweak(&mut spec);
    h.relay.open(spec).unwrap();
    (la, lb)
}

// ---- tests -----------------------------------------------------------------------------------

#[test]
fn relays_both_directions_byte_identical() {
    for kind in KINDS {
        // A long housekeeping period: a lone packet must not wait for it (io_uring batching).
        let h = start_with(kind, |c| c.housekeeping = Duration::from_secs(2));
        let (pa, pb) = (udp(), udp());
        let (ra, rb) = open(&h, 1, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));

        let p = rtp(0xa1, 100, 16000, 172);
        let t0 = Instant::now();
        pa.send_to(&p, ra).unwrap();
        let (got, from) = recv(&pb);
        assert!(t0.elapsed() < Duration::from_millis(500), "{kind:?}: lone packet held back");
        assert_eq!(got, p, "{kind:?}: payload changed");
        assert_eq!(from, rb, "{kind:?}: must come from the relay's B port");

        let q = rtp(0xb2, 7, 320, 172);
        pb.send_to(&q, rb).unwrap();
        let (got, from) = recv(&pa);
        assert_eq!(got, q);
        assert_eq!(from, ra);

        let s = h.wait_stats(1, |s| s.b_to_a.packets == 1);
        assert_eq!((s.a_to_b.packets, s.a_to_b.bytes), (1, 172));
        assert_eq!((s.b_to_a.packets, s.b_to_a.bytes), (1, 172));
        assert_eq!(s.a_to_b.peer, Some(addr(&pa)));
        assert_eq!(s.a_to_b.ssrc, Some(0xa1));
        assert!(s.a_to_b.last_packet.is_some() && s.a_to_b.idle.unwrap() < Duration::from_secs(2));
        assert_eq!((s.local_a, s.local_b), (ra, rb));
    }
}

#[test]
fn strict_latching_drops_rtp_injection() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb, attacker) = (udp(), udp(), udp());
        let (ra, _rb) = open(&h, 2, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));

        // RTPBleed: a foreign port sends to the relay port, even with a plausible SSRC.
        for seq in 0..5 {
            attacker.send_to(&rtp(0xa1, seq, 0, 172), ra).unwrap();
        }
        assert!(nothing(&pb), "{kind:?}: injected RTP reached the callee");
        assert!(nothing(&attacker), "{kind:?}: attacker got media back");
        let s = h.wait_stats(2, |s| s.a_to_b.dropped_foreign == 5);
        assert_eq!(s.a_to_b.dropped_foreign, 5);
        assert_eq!(s.a_to_b.packets, 0);

        // The real peer still gets through.
        pa.send_to(&rtp(0xa1, 9, 0, 172), ra).unwrap();
        recv(&pb);
    }
}

#[test]
fn learn_mode_latches_first_source_and_relatches_on_same_ssrc() {
    for kind in KINDS {
        let h = start(kind);
        let (pb, nat1, nat2, stranger) = (udp(), udp(), udp(), udp());
        let sdp_private: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (ra, rb) = open(
            &h,
            3,
            PeerSpec::learn(Some(sdp_private), Duration::from_secs(5)),
            PeerSpec::strict(addr(&pb)),
        );

        nat1.send_to(&rtp(0x5551, 1, 0, 172), ra).unwrap();
        recv(&pb);
        let ev = h.wait_event(|e| matches!(e, RelayEvent::Latched { side: Side::A, .. }));
        assert_eq!(ev, RelayEvent::Latched { id: PairId(3), side: Side::A, peer: addr(&nat1) });
        // Media toward A now goes to the learned source, not the SDP address.
        pb.send_to(&rtp(0x7777, 1, 0, 100), rb).unwrap();
        assert_eq!(recv(&nat1).1, ra);

        // Another source with another SSRC is refused.
        stranger.send_to(&rtp(0x6666, 2, 160, 172), ra).unwrap();
        assert!(nothing(&pb), "{kind:?}: second source with a new SSRC accepted");
        assert_eq!(h.wait_stats(3, |s| s.a_to_b.dropped_foreign == 1).a_to_b.dropped_foreign, 1);

        // NAT rebinding: new port, same SSRC: re-latch.
        nat2.send_to(&rtp(0x5551, 2, 160, 172), ra).unwrap();
        recv(&pb);
        pb.send_to(&rtp(0x7777, 2, 160, 100), rb).unwrap();
        assert_eq!(recv(&nat2).1, ra);
        assert_eq!(h.stats(3).a_to_b.peer, Some(addr(&nat2)));
        // The old binding is now foreign.
        nat1.send_to(&rtp(0x9999, 3, 320, 172), ra).unwrap();
        assert!(nothing(&pb));
    }
}

#[test]
fn learn_mode_without_address_drops_until_latched() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, rb) =
            open(&h, 4, PeerSpec::strict(addr(&pa)), PeerSpec::learn(None, Duration::from_secs(5)));
        // B's remote is unknown: A's media cannot go anywhere yet.
        pa.send_to(&rtp(1, 1, 0, 50), ra).unwrap();
        let s = h.wait_stats(4, |s| s.a_to_b.dropped_unroutable == 1);
        assert_eq!(s.a_to_b.dropped_unroutable, 1);
        pb.send_to(&rtp(2, 1, 0, 50), rb).unwrap();
        assert_eq!(recv(&pa).1, ra);
        pa.send_to(&rtp(1, 2, 160, 50), ra).unwrap();
        assert_eq!(recv(&pb).1, rb);
    }
}

#[test]
fn update_moves_the_peer() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb, pb2) = (udp(), udp(), udp());
        let (ra, rb) = open(&h, 5, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        pa.send_to(&rtp(1, 1, 0, 60), ra).unwrap();
        recv(&pb);

        h.relay.update(PairId(5), Side::B, PeerSpec::strict(addr(&pb2))).unwrap();
        // Commands are asynchronous: wait until the worker published the new peer.
        h.wait_stats(5, |s| s.b_to_a.peer == Some(addr(&pb2)));
        pa.send_to(&rtp(1, 2, 160, 60), ra).unwrap();
        assert_eq!(recv(&pb2).1, rb);
        assert!(nothing(&pb));
        // The old B remote is foreign now; the new one is accepted.
        pb.send_to(&rtp(2, 1, 0, 60), rb).unwrap();
        assert!(nothing(&pa));
        pb2.send_to(&rtp(2, 2, 160, 60), rb).unwrap();
        assert_eq!(recv(&pa).1, ra);
        assert!(matches!(
            h.relay.update(PairId(99), Side::A, PeerSpec::strict(ra)),
            Err(RelayError::UnknownPair(_))
        ));
    }
}

#[test]
fn close_frees_the_ports() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, rb) = open(&h, 6, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        pa.send_to(&rtp(1, 1, 0, 60), ra).unwrap();
        recv(&pb);
        assert!(matches!(
            h.relay.open(PairSpec::new(
                PairId(6),
                EndpointSpec::new(udp(), PeerSpec::strict(ra)),
                EndpointSpec::new(udp(), PeerSpec::strict(ra)),
            )),
            Err(RelayError::Duplicate(_))
        ));
        h.relay.close(PairId(6)).unwrap();
        assert!(h.relay.stats(PairId(6)).is_none());
        h.wait_event(|e| *e == RelayEvent::Closed { id: PairId(6) });
        UdpSocket::bind(ra).expect("port A free again");
        UdpSocket::bind(rb).expect("port B free again");
        assert!(matches!(h.relay.close(PairId(6)), Err(RelayError::UnknownPair(_))));
    }
}

#[test]
fn loss_and_jitter_through_the_relay() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, _) =
            open_spec(&h, 7, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)), |s| {
                s.b.clock_rate = 48000;
            });
        // seq 10..=29 without 15, 16 and 22; timestamps advance exactly with the sending clock
        // (8 kHz, 20 ms), so transit is constant up to scheduling noise.
        let start = Instant::now();
        let mut sent = 0;
        for seq in 10u16..30 {
            let due = start + Duration::from_millis(u64::from(seq - 10) * 20);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if [15, 16, 22].contains(&seq) {
                continue;
            }
            pa.send_to(&rtp(0x77, seq, u32::from(seq - 10) * 160, 172), ra).unwrap();
            sent += 1;
        }
        let s = h.wait_stats(7, |s| s.a_to_b.packets == sent);
        assert_eq!(s.a_to_b.packets, sent);
        assert_eq!(s.a_to_b.lost, 3, "{kind:?}");
        // Pacing by sleep on a shared machine: noise of a few ms, far below 400 units (50 ms);
        // the exact A.8 arithmetic is checked with synthetic arrivals in stats.rs.
        assert!(s.a_to_b.jitter < 400, "{kind:?}: jitter {}", s.a_to_b.jitter);
        assert_eq!(s.a_to_b.clock_rate, 8000);
        assert!((s.a_to_b.jitter_ms - f64::from(s.a_to_b.jitter) / 8.0).abs() < 1e-9);
        assert_eq!(s.b_to_a.clock_rate, 48000);

        // Reordering: a late packet reduces the loss count.
        pa.send_to(&rtp(0x77, 22, 12 * 160, 172), ra).unwrap();
        assert_eq!(h.wait_stats(7, |s| s.a_to_b.lost == 2).a_to_b.lost, 2);
    }
}

#[test]
fn rtcp_is_counted_separately() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, _) = open(&h, 8, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        pa.send_to(&rtp(0x42, 1, 0, 172), ra).unwrap();
        recv(&pb);
        // rtcp-mux: a sender report (PT 200) and a PLI (PT 206) on the RTP port.
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&0x42u32.to_be_bytes());
        sr.resize(28, 0);
        pa.send_to(&sr, ra).unwrap();
        assert_eq!(recv(&pb).0, sr);
        let mut pli = vec![0x81, 206, 0, 2];
        pli.extend_from_slice(&0x42u32.to_be_bytes());
        pli.extend_from_slice(&0x43u32.to_be_bytes());
        pa.send_to(&pli, ra).unwrap();
        recv(&pb);
        let s = h.wait_stats(8, |s| s.a_to_b.rtcp_packets == 2);
        assert_eq!((s.a_to_b.rtcp_packets, s.a_to_b.rtcp_bytes), (2, 40));
        assert_eq!((s.a_to_b.packets, s.a_to_b.bytes), (1, 172));
        assert_eq!(s.a_to_b.lost, 0, "RTCP must not disturb RTP sequence stats");
    }
}

#[test]
fn stun_binding_request_is_answered_and_nominates() {
    use stun_rs::attributes::stun::XorMappedAddress;
    use stun_rs::{DecoderContextBuilder, HMACKey, MessageClass, MessageDecoderBuilder};
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb, ice_peer) = (udp(), udp(), udp());
        let ra = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rb = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (la, lb) = (addr(&ra), addr(&rb));
        let creds = IceCredentials {
            local_ufrag: "rlyA".into(),
            local_pwd: "asd88fgpdd777uzjYhagZg".into(),
            remote_ufrag: None,
        };
        let spec = PairSpec::new(
            PairId(9),
            EndpointSpec::new(ra, PeerSpec::strict(addr(&pa))).with_ice(creds.clone()),
            EndpointSpec::new(rb, PeerSpec::strict(addr(&pb))),
        );
        h.relay.open(spec).unwrap();

        // Wrong password: 401, counted, no latch.
        let bad = stun::tests::binding_request("rlyA:remote", "not-the-password", true);
        ice_peer.send_to(&bad, la).unwrap();
        let (resp, from) = recv(&ice_peer);
        assert_eq!(from, la);
        let (msg, _) = MessageDecoderBuilder::default().build().decode(&resp).unwrap();
        assert_eq!(msg.class(), MessageClass::ErrorResponse);
        // Wrong ufrag: rejected too.
        let wrong = stun::tests::binding_request("other:remote", &creds.local_pwd, true);
        ice_peer.send_to(&wrong, la).unwrap();
        recv(&ice_peer);
        assert_eq!(h.wait_stats(9, |s| s.a_to_b.stun_rejected == 2).a_to_b.stun_rejected, 2);

        let req = stun::tests::binding_request("rlyA:remote", &creds.local_pwd, true);
        ice_peer.send_to(&req, la).unwrap();
        let (resp, from) = recv(&ice_peer);
        assert_eq!(from, la);
        let ctx = DecoderContextBuilder::default()
            .with_key(HMACKey::new_short_term(&creds.local_pwd).unwrap())
            .with_validation()
            .build();
        let (msg, _) = MessageDecoderBuilder::default()
            .with_context(ctx)
            .build()
            .decode(&resp)
            .expect("integrity and fingerprint verify");
        assert_eq!(msg.class(), MessageClass::SuccessResponse);
        let mapped = msg.get::<XorMappedAddress>().unwrap().as_xor_mapped_address().unwrap();
        assert_eq!(*mapped.socket_address(), addr(&ice_peer));
        assert!(msg.get::<stun_rs::attributes::stun::MessageIntegrity>().is_some());
        assert!(msg.get::<stun_rs::attributes::stun::Fingerprint>().is_some());

        // USE-CANDIDATE nominated this path: media for A now goes there and comes from there.
        let s = h.wait_stats(9, |s| s.a_to_b.peer == Some(addr(&ice_peer)));
        assert_eq!(s.a_to_b.stun_answered, 1);
        pb.send_to(&rtp(5, 1, 0, 80), lb).unwrap();
        assert_eq!(recv(&ice_peer).1, la);
        ice_peer.send_to(&rtp(6, 1, 0, 80), la).unwrap();
        assert_eq!(recv(&pb).1, lb);
        // STUN never reaches the other side.
        assert!(nothing(&pb));
    }
}

#[test]
fn media_timeout_is_reported() {
    for kind in KINDS {
        let h = start_with(kind, |c| c.housekeeping = Duration::from_millis(20));
        let (pa, pb) = (udp(), udp());
        open_spec(&h, 10, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)), |s| {
            s.media_timeout = Some(Duration::from_millis(200));
        });
        let t0 = Instant::now();
        let ev = h.wait_event(|e| matches!(e, RelayEvent::MediaTimeout { .. }));
        let RelayEvent::MediaTimeout { id, idle } = ev else { unreachable!() };
        assert_eq!(id, PairId(10));
        assert!(idle >= Duration::from_millis(200));
        assert!(t0.elapsed() >= Duration::from_millis(150));
    }
}

#[test]
fn sockets_get_dscp_ef() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    net::prepare_socket(&s).unwrap();
    assert_eq!(socket2::SockRef::from(&s).tos().unwrap(), net::DSCP_EF_TOS);
    let s6 = match UdpSocket::bind("[::1]:0") {
        Ok(s) => s,
        Err(_) => return, // no IPv6 on this host
    };
    net::prepare_socket(&s6).unwrap();
    assert_eq!(socket2::SockRef::from(&s6).tclass_v6().unwrap(), net::DSCP_EF_TOS);
}

/// Relays 100k packets (both directions) after `prepare` and a 2k warm-up, and asserts the
/// worker thread allocated nothing meanwhile.
fn assert_packet_path_does_not_allocate(
    kind: DatapathKind,
    id: u64,
    prepare: impl FnOnce(&Harness, &UdpSocket, &UdpSocket, SocketAddr, SocketAddr),
) {
    let group = NEXT_GROUP.fetch_add(1, Ordering::Relaxed) % GROUPS;
    let h = start_with(kind, |c| {
        c.on_event = None;
        c.on_thread_start = Some(Arc::new(move |_| GROUP.with(|g| g.set(group))));
    });
    let (pa, pb) = (udp(), udp());
    let (ra, rb) = open(&h, id, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
    prepare(&h, &pa, &pb, ra, rb);
    let relay_counters = || ALLOCS[group].load(Ordering::Relaxed);

    let mut buf = [0u8; 2048];
    let mut pump = |from: u32, count: u32| {
        let (mut sent, mut got) = (0u32, 0u32);
        while got < count {
            while sent < count && sent - got < 64 {
                let seq = (from + sent) as u16;
                // Both directions, so both endpoints' paths are exercised.
                if sent % 2 == 0 {
                    pa.send_to(&rtp(1, seq, u32::from(seq) * 160, 172), ra).unwrap();
                } else {
                    pb.send_to(&rtp(2, seq, u32::from(seq) * 160, 172), rb).unwrap();
                }
                sent += 1;
            }
            let sock = if got % 2 == 0 { &pb } else { &pa };
            sock.recv_from(&mut buf).expect("relayed packet");
            got += 1;
        }
    };
    pump(0, 2_000);
    let before = relay_counters();
    pump(2_000, 100_000);
    let after = relay_counters();
    let s = h.stats(id);
    assert_eq!(s.a_to_b.packets + s.b_to_a.packets, 102_000, "{kind:?}");
    assert_eq!(after - before, 0, "{kind:?}: worker allocated during 100k packets");
    assert!(before > 0, "{kind:?}: counting did not reach the worker thread");
}

/// 100k relayed packets cause no allocation on the worker thread once warmed up.
#[test]
fn packet_path_does_not_allocate() {
    for kind in KINDS {
        assert_packet_path_does_not_allocate(kind, 11, |_, _, _, _, _| {});
    }
}

/// The same with the per-direction rewrite busy on every packet: payload types renumbered one
/// way, and the other way's sequence numbers shifted by an event injected earlier.
#[test]
fn rewriting_packet_path_does_not_allocate() {
    for kind in KINDS {
        assert_packet_path_does_not_allocate(kind, 12, |h, pa, _pb, ra, _rb| {
            let mut map = PayloadMap::identity();
            map.set(1, 8);
            let a = DirectionMedia { payload_map: map, ..Default::default() };
            h.relay.set_media(PairId(12), Side::A, a).unwrap();
            let b = DirectionMedia {
                events_out: Some(EventFormat { payload_type: 101, clock_rate: 8000 }),
                ..Default::default()
            };
            h.relay.set_media(PairId(12), Side::B, b).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let inj = DtmfInjection { event: 1, duration: Duration::from_millis(60), volume: 10 };
            h.relay.inject_dtmf(PairId(12), Side::A, inj).unwrap();
            // 2 updates + 3 end packets reach A; the stream B→A is shifted by 5 from here on.
            for _ in 0..5 {
                let (p, from) = recv(pa);
                assert_eq!((p[1] & 0x7f, from), (101, ra), "{kind:?}");
            }
        });
    }
}

/// Pairs opened in the media controller's pattern (each call's RTP pair, then its RTCP pair,
/// from several shards) spread their RTP pairs evenly over the workers; round robin over two
/// workers put every RTP pair on the first.
#[test]
fn rtp_pairs_spread_over_workers() {
    for workers in [2usize, 3, 4] {
        let mut per = vec![0usize; workers];
        for shard in 0..2u64 {
            // RTP pairs get odd ids, their RTCP pairs the next even one.
            for n in (1..2000u64).step_by(2) {
                per[worker_for(PairId(shard << 48 | n), workers)] += 1;
            }
        }
        let even = 2000 / workers;
        for (w, &count) in per.iter().enumerate() {
            assert!(count.abs_diff(even) * 20 <= even, "{workers} workers: worker {w} has {count}");
        }
    }
    assert_eq!(worker_for(PairId(7), 1), 0);
}
