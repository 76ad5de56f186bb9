//! Payload-type renumbering and RFC 4733 events through real sockets, on both datapaths.

use super::*;

/// Commands reach the worker between datapath polls: give it a moment before sending media
/// that depends on them.
fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}

fn event_packet(pt: u8, seq: u16, ts: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut p = rtp(0xe1, seq, ts, 12);
    p[1] = pt;
    p.extend_from_slice(&TelephoneEvent { event, end, volume: 10, duration }.encode());
    p
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

fn ts_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}

fn ssrc_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}

#[test]
fn payload_types_are_renumbered_per_direction() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, rb) = open(&h, 21, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        let mut a_to_b = PayloadMap::identity();
        a_to_b.set(101, 96);
        let mut b_to_a = PayloadMap::identity();
        b_to_a.set(96, 101);
        for (from, map) in [(Side::A, a_to_b), (Side::B, b_to_a)] {
            let media = DirectionMedia { payload_map: map, ..Default::default() };
            h.relay.set_media(PairId(21), from, media).unwrap();
        }
        settle();
        let mut ev = event_packet(101, 1, 160, 5, false, 160);
        ev[1] |= 0x80;
        pa.send_to(&ev, ra).unwrap();
        let (got, _) = recv(&pb);
        assert_eq!(got[1], 0x80 | 96, "{kind:?}: PT 101 leaves as 96, marker kept");
        assert_eq!(got[2..], ev[2..], "{kind:?}: nothing else changes");
        pb.send_to(&event_packet(96, 1, 160, 7, false, 160), rb).unwrap();
        assert_eq!(recv(&pa).0[1], 101, "{kind:?}: 96 back to 101 the other way");
        // Audio PTs not in the map cross unchanged.
        pa.send_to(&rtp(0xa1, 2, 320, 172), ra).unwrap();
        assert_eq!(recv(&pb).0[1], 0, "{kind:?}");
    }
}

#[test]
fn events_are_taken_out_reported_and_the_stream_stays_gap_free() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, _rb) = open(&h, 22, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        let mut events_in = PayloadSet::default();
        events_in.insert(101);
        let media = DirectionMedia {
            events_in,
            events_in_clock: 8000,
            events_to_signalling: true,
            ..Default::default()
        };
        h.relay.set_media(PairId(22), Side::A, media).unwrap();
        settle();
        // Audio 10, event '9' (100 ms, three end packets) in 11..=16, audio 17.
        pa.send_to(&rtp(0xe1, 10, 1600, 172), ra).unwrap();
        let mut seq = 11;
        for (end, d) in [(false, 400), (false, 800), (true, 800), (true, 800), (true, 800)] {
            pa.send_to(&event_packet(101, seq, 1760, 9, end, d), ra).unwrap();
            seq += 1;
        }
        pa.send_to(&rtp(0xe1, seq, 2560, 172), ra).unwrap();
        let first = recv(&pb).0;
        let second = recv(&pb).0;
        assert_eq!((first[1], seq_of(&first)), (0, 10), "{kind:?}");
        assert_eq!((second[1], seq_of(&second)), (0, 11), "{kind:?}: follows without a gap");
        assert_eq!(ts_of(&second), 2560, "{kind:?}: timestamps are left alone");
        assert!(nothing(&pb), "{kind:?}: no event packet crossed");
        let ev = h.wait_event(|e| matches!(e, RelayEvent::Dtmf { .. }));
        assert_eq!(
            ev,
            RelayEvent::Dtmf {
                id: PairId(22),
                side: Side::A,
                event: 9,
                duration: Duration::from_millis(100)
            },
            "{kind:?}"
        );
        let count = h
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, RelayEvent::Dtmf { .. }))
            .count();
        assert_eq!(count, 1, "{kind:?}: one report for three end packets");
    }
}

#[test]
fn injected_events_continue_the_stream_toward_the_leg() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        let (ra, _rb) = open(&h, 23, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        let media = DirectionMedia {
            events_out: Some(EventFormat { payload_type: 96, clock_rate: 8000 }),
            ..Default::default()
        };
        h.relay.set_media(PairId(23), Side::A, media).unwrap();
        settle();
        pa.send_to(&rtp(0x1234, 300, 48_000, 172), ra).unwrap();
        assert_eq!(seq_of(&recv(&pb).0), 300);
        let inj = DtmfInjection { event: 5, duration: Duration::from_millis(200), volume: 10 };
        let t0 = Instant::now();
        h.relay.inject_dtmf(PairId(23), Side::B, inj).unwrap();
        let mut events = Vec::new();
        while events.len() < 7 {
            let (p, from) = recv(&pb);
            assert_eq!(from, _rb, "{kind:?}: from the relay port facing B");
            events.push(p);
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_millis(1500),
            "{kind:?}: seven packets 50 ms apart took {took:?}"
        );
        let tev: Vec<TelephoneEvent> =
            events.iter().filter_map(|p| TelephoneEvent::decode(&p[12..])).collect();
        assert_eq!(tev.len(), 7);
        assert!(events.iter().all(|p| p[1] & 0x7f == 96 && ssrc_of(p) == 0x1234), "{kind:?}");
        assert_eq!(events[0][1] & 0x80, 0x80, "{kind:?}: marker on the first");
        let seqs: Vec<u16> = events.iter().map(|p| seq_of(p)).collect();
        assert_eq!(seqs, (301..308).collect::<Vec<u16>>(), "{kind:?}");
        let ts = ts_of(&events[0]);
        assert!(events.iter().all(|p| ts_of(p) == ts), "{kind:?}: one timestamp per event");
        assert!(ts >= 48_000, "{kind:?}: the stream's current timestamp");
        let durations: Vec<(u16, bool)> = tev.iter().map(|e| (e.duration, e.end)).collect();
        assert_eq!(
            durations,
            vec![
                (400, false),
                (800, false),
                (1200, false),
                (1600, false),
                (1600, true),
                (1600, true),
                (1600, true)
            ],
            "{kind:?}"
        );
        assert!(tev.iter().all(|e| e.event == 5 && e.volume == 10));
        // The audio that follows is shifted past the injected packets.
        pa.send_to(&rtp(0x1234, 301, 48_160, 172), ra).unwrap();
        assert_eq!(seq_of(&recv(&pb).0), 308, "{kind:?}");
    }
}

#[test]
fn injection_without_telephone_event_sends_nothing() {
    for kind in KINDS {
        let h = start(kind);
        let (pa, pb) = (udp(), udp());
        open(&h, 24, PeerSpec::strict(addr(&pa)), PeerSpec::strict(addr(&pb)));
        let inj = DtmfInjection { event: 1, duration: Duration::from_millis(100), volume: 10 };
        h.relay.inject_dtmf(PairId(24), Side::B, inj).unwrap();
        assert!(nothing(&pb), "{kind:?}");
        assert!(matches!(
            h.relay.inject_dtmf(PairId(99), Side::B, inj),
            Err(RelayError::UnknownPair(_))
        ));
    }
}
