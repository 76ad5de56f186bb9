//! What the per-packet decision (latch, statistics, the direction's rewrite) costs, without the
//! socket I/O around it. Not a pass/fail test; run in release to read numbers:
//! `cargo test --release --lib packet_decision_cost -- --ignored --nocapture`.

use super::super::datapath::EpollPath;
use super::super::worker::{Command, OpenPair, Plane, PreparedEnd, Waker};
use super::*;

fn plane_with_pair(pa: SocketAddr, pb: SocketAddr) -> (Plane, EpollPath, Waker) {
    let waker = Waker::new().unwrap();
    let mut dp = EpollPath::new(32, waker.fd()).unwrap();
    let mut plane = Plane::new(Instant::now(), None);
    let end = |peer: SocketAddr| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        net::prepare_socket(&socket).unwrap();
        PreparedEnd { socket, peer: PeerSpec::strict(peer), ice: None, clock_rate: 8000 }
    };
    let (a, b) = (end(pa), end(pb));
    let local = [a.socket.local_addr().unwrap(), b.socket.local_addr().unwrap()];
    let shared = Arc::new(PairShared { dirs: Default::default(), clock_rates: [8000; 2], local });
    let open = OpenPair { id: PairId(1), ends: [a, b], shared, media_timeout: None };
    plane.apply(Command::Open(Box::new(open)), &mut dp, Instant::now());
    (plane, dp, waker)
}

#[test]
#[ignore = "a measurement: run in release with --nocapture"]
fn packet_decision_cost() {
    let pa: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let pb: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let mut map = PayloadMap::identity();
    map.set(0, 8);
    let mut events_in = PayloadSet::default();
    events_in.insert(101);
    let cases = [
        ("no rewrite", None),
        (
            "payload type map",
            Some(DirectionMedia { payload_map: map.clone(), ..Default::default() }),
        ),
        (
            "map + events to signalling + injection ready",
            Some(DirectionMedia {
                payload_map: map,
                events_in,
                events_to_signalling: true,
                events_out: Some(EventFormat { payload_type: 101, clock_rate: 8000 }),
                ..Default::default()
            }),
        ),
    ];
    const N: u32 = 5_000_000;
    for (name, media) in cases {
        let (mut plane, mut dp, _waker) = plane_with_pair(pa, pb);
        if let Some(m) = media {
            let cmd = Command::Media { id: PairId(1), from: Side::A, media: Box::new(m) };
            plane.apply(cmd, &mut dp, Instant::now());
        }
        let mut pkt = rtp(7, 0, 0, 172);
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut now = plane.now();
            for i in 0..N {
                // The datapaths read the clock once per batch, not per packet.
                if i % 32 == 0 {
                    now = plane.now();
                }
                pkt[1] = 0;
                pkt[2..4].copy_from_slice(&(i as u16).to_be_bytes());
                let v = plane.on_packet(0, Some(pa), &mut pkt, &now);
                std::hint::black_box(v);
            }
            best = best.min(t.elapsed());
        }
        let ns = best.as_nanos() as f64 / f64::from(N);
        println!("on_packet, {name}: {ns:.1} ns/packet");
    }
}
