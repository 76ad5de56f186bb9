//! The RFC 4733 §2.3 telephone-event payload (event, end bit, volume, duration) and where it
//! sits in an RTP packet. Read and written in place, without allocation: the relay calls this
//! per packet of a direction that converts events.

/// Payload length of one event (RFC 4733 §2.3: four octets, no redundancy).
pub(crate) const PAYLOAD_LEN: usize = 4;
/// RTP fixed header length (RFC 3550 §5.1).
pub(crate) const RTP_HEADER_LEN: usize = 12;
/// An injected event packet: fixed header plus one event, no CSRC, no extension.
pub(crate) const PACKET_LEN: usize = RTP_HEADER_LEN + PAYLOAD_LEN;

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (RFC 4733 §3.2: 0–9 digits, 10 `*`, 11 `#`, 12–15 A–D, 16 flash).
    pub event: u8,
    /// The E bit: the last packet(s) of the event.
    pub end: bool,
    /// Power level in -dBm0, 0–63 (the R bit is sent as zero).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first event of `payload`; `None` when it is shorter than one event.
    pub fn decode(payload: &[u8]) -> Option<TelephoneEvent> {
        let p = payload.get(..PAYLOAD_LEN)?;
        Some(TelephoneEvent {
            event: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3f,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    /// The four payload octets.
    pub fn encode(&self) -> [u8; PAYLOAD_LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        let e = if self.end { 0x80 } else { 0 };
        [self.event, e | (self.volume & 0x3f), d0, d1]
    }
}

/// Where the payload of an RTP packet starts and ends, past CSRCs and a header extension and
/// before padding (RFC 3550 §5.1, §5.3.1); `None` when the header claims more than the packet
/// holds. Never panics, whatever the bytes.
pub(crate) fn payload_range(packet: &[u8]) -> Option<std::ops::Range<usize>> {
    let first = *packet.first()?;
    let csrc = usize::from(first & 0x0f) * 4;
    let mut start = RTP_HEADER_LEN.checked_add(csrc)?;
    if first & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        let words = usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        start = start.checked_add(4 + words * 4)?;
    }
    let mut end = packet.len();
    if first & 0x20 != 0 {
        let pad = usize::from(*packet.last()?);
        end = end.checked_sub(pad)?;
    }
    (start <= end).then_some(start..end)
}

/// Writes a complete event packet (version 2, no padding, no CSRC) into `out`.
pub(crate) fn write_packet(
    out: &mut [u8; PACKET_LEN],
    payload_type: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    ev: &TelephoneEvent,
) {
    out[0] = 0x80;
    out[1] = (u8::from(marker) << 7) | (payload_type & 0x7f);
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    out[12..16].copy_from_slice(&ev.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rfc_layout() {
        let ev = TelephoneEvent { event: 11, end: true, volume: 10, duration: 1600 };
        let bytes = ev.encode();
        // RFC 4733 §2.3: event, E|R|volume, duration (network order).
        assert_eq!(bytes, [11, 0x80 | 10, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::decode(&bytes), Some(ev));
        // The R bit and oversized volumes never leak into the E bit.
        let loud = TelephoneEvent { event: 1, end: false, volume: 0xff, duration: 0 };
        assert_eq!(loud.encode()[1], 0x3f);
        let r_bit_set = TelephoneEvent::decode(&[5, 0x40 | 7, 0, 160]);
        assert_eq!(r_bit_set.map(|e| (e.end, e.volume)), Some((false, 7)));
    }

    #[test]
    fn short_payloads_are_refused() {
        for n in 0..PAYLOAD_LEN {
            assert_eq!(TelephoneEvent::decode(&[0u8; 4][..n]), None);
        }
    }

    #[test]
    fn payload_range_skips_csrcs_extension_and_padding() {
        let mut p = vec![0x80, 101, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0x8a, 0, 160];
        assert_eq!(payload_range(&p), Some(12..16));
        // Two CSRCs.
        p[0] = 0x82;
        p.splice(12..12, [0u8; 8]);
        assert_eq!(payload_range(&p), Some(20..24));
        // A one-word extension after them.
        p[0] = 0x92;
        p.splice(20..20, [0xbe, 0xde, 0, 1, 1, 2, 3, 4]);
        assert_eq!(payload_range(&p), Some(28..32));
        // Padding of 4 (last octet counts itself).
        p[0] = 0xb2;
        p.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(payload_range(&p), Some(28..32));
    }

    #[test]
    fn payload_range_never_panics_on_lies() {
        // Header claims 15 CSRCs, a huge extension, or more padding than bytes.
        for first in [0x8f, 0x90, 0xa0, 0xbf, 0xff, 0x00] {
            for len in 0..40 {
                let mut p = vec![0xffu8; len];
                if let Some(b) = p.first_mut() {
                    *b = first;
                }
                if let Some(r) = payload_range(&p) {
                    assert!(r.start <= r.end && r.end <= p.len());
                }
            }
        }
    }

    #[test]
    fn written_packet_parses_back() {
        let mut out = [0u8; PACKET_LEN];
        let ev = TelephoneEvent { event: 5, end: false, volume: 10, duration: 400 };
        write_packet(&mut out, 96, true, 0xfffe, 123_456, 0xdead_beef, &ev);
        assert_eq!(out[0], 0x80);
        assert_eq!(out[1], 0x80 | 96);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 0xfffe);
        assert_eq!(u32::from_be_bytes([out[4], out[5], out[6], out[7]]), 123_456);
        assert_eq!(u32::from_be_bytes([out[8], out[9], out[10], out[11]]), 0xdead_beef);
        let r = payload_range(&out).expect("payload");
        assert_eq!(TelephoneEvent::decode(&out[r]), Some(ev));
    }
}
