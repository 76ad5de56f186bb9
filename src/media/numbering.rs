//! Payload-type numbering per leg, and the relay instructions for one direction derived from
//! it.
//!
//! RFC 3264 lets each side of an offer/answer use its own numbers for a codec (§6.1 only says
//! the answerer SHOULD reuse the offer's), and senders disagree on whose numbers to send with:
//! a PBX that offered telephone-event as 101 often keeps sending 101 after a carrier answered
//! 96. sipborder passes each leg the other's SDP, so a packet from leg X is read with the
//! numbers X was given (the SDP sipborder sent it) and, failing that, X's own; it leaves with
//! the number leg Y wrote for the same codec in its own SDP (what Y expects to receive).
//! Numbers Y already knows for the same codec pass unchanged, so senders that follow the RFC
//! see no rewriting at all.

use super::relay::{DirectionMedia, EventFormat};
use crate::config::DtmfMode;
use crate::sip::sdp::{static_encoding, MediaSection};

/// A codec as SDP names it: encoding (case-insensitive), clock rate, channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    name: String,
    clock_rate: u32,
    channels: u16,
}

impl Encoding {
    fn new(name: &str, clock_rate: u32, channels: u16) -> Encoding {
        Encoding { name: name.to_ascii_lowercase(), clock_rate, channels: channels.max(1) }
    }

    /// Whether this is RFC 4733 `telephone-event`.
    pub fn is_telephone_event(&self) -> bool {
        self.name == "telephone-event"
    }

    /// RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
}

/// RTP clock rate of a static payload type (RFC 3551 tables 4 and 5).
fn static_clock_rate(pt: u8) -> u32 {
    match pt {
        6 => 16000,
        10 | 11 => 44100,
        16 => 11025,
        17 => 22050,
        14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => 90000,
        _ => 8000,
    }
}

/// One leg's numbering of one `m=` line: payload type → codec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbering(Vec<(u8, Encoding)>);

impl Numbering {
    /// The numbering an `m=` line declares: each payload type of the format list with its first
    /// `a=rtpmap`, or its RFC 3551 static meaning. Types neither names are left out.
    pub fn from_media(m: &MediaSection<'_>) -> Numbering {
        let mut v: Vec<(u8, Encoding)> = Vec::new();
        for pt in m.payload_types().filter(|pt| *pt < 128) {
            if v.iter().any(|(p, _)| *p == pt) {
                continue;
            }
            let enc = match m.rtpmaps_for(pt).next() {
                Some(r) => Encoding::new(r.encoding, r.clock_rate, r.channels.unwrap_or(1)),
                None => match static_encoding(pt) {
                    Some(name) => Encoding::new(name, static_clock_rate(pt), 1),
                    None => continue,
                },
            };
            v.push((pt, enc));
        }
        Numbering(v)
    }

    /// The codec of `pt`.
    pub fn encoding(&self, pt: u8) -> Option<&Encoding> {
        self.0.iter().find(|(p, _)| *p == pt).map(|(_, e)| e)
    }

    /// The (first) payload type of `enc`.
    pub fn payload_type(&self, enc: &Encoding) -> Option<u8> {
        self.0.iter().find(|(_, e)| e == enc).map(|(p, _)| *p)
    }

    /// The telephone-event format, preferring the clock rate of the first codec (RFC 4733 §7.1.1:
    /// events share the audio's clock); else the first telephone-event.
    pub fn telephone_event(&self) -> Option<EventFormat> {
        let audio_clock =
            self.0.iter().find(|(_, e)| !e.is_telephone_event()).map(|(_, e)| e.clock_rate);
        let events = || self.0.iter().filter(|(_, e)| e.is_telephone_event());
        let pick =
            events().find(|(_, e)| Some(e.clock_rate) == audio_clock).or_else(|| events().next());
        pick.map(|(pt, e)| EventFormat { payload_type: *pt, clock_rate: e.clock_rate })
    }
}

impl Numbering {
    /// This numbering with `payload_type` as telephone-event (sipborder added it to an SDP).
    pub fn with_event(&self, payload_type: u8, clock_rate: u32) -> Numbering {
        let mut n = self.clone();
        n.0.retain(|(p, _)| *p != payload_type);
        n.0.push((payload_type, Encoding::new("telephone-event", clock_rate, 1)));
        n
    }

    /// This numbering without telephone-event (sipborder took it out of an SDP).
    pub fn without_events(&self) -> Numbering {
        Numbering(self.0.iter().filter(|(_, e)| !e.is_telephone_event()).cloned().collect())
    }
}

/// A dynamic payload type `m` does not use for anything: 101, the number most equipment
/// writes for telephone-event, else the first free one of 96–127.
pub fn free_dynamic_payload_type(m: &MediaSection<'_>) -> Option<u8> {
    std::iter::once(101).chain(96..=127).find(|pt| is_free(m, *pt))
}

/// Whether `m` neither lists nor maps `pt`.
pub fn is_free(m: &MediaSection<'_>, pt: u8) -> bool {
    !m.payload_types().any(|p| p == pt) && !m.rtpmaps.iter().any(|r| r.payload_type == pt)
}

/// The relay instructions for media from leg X to leg Y. `told_x`: the numbering in the SDP
/// sipborder last sent X; `own_x`, `own_y`: each leg's own SDP; `y_wants`: how Y wants DTMF.
pub fn plan_direction(
    told_x: Option<&Numbering>,
    own_x: Option<&Numbering>,
    own_y: Option<&Numbering>,
    y_wants: DtmfMode,
) -> DirectionMedia {
    let mut d = DirectionMedia::default();
    for pt in 0..128u8 {
        let enc =
            told_x.and_then(|n| n.encoding(pt)).or_else(|| own_x.and_then(|n| n.encoding(pt)));
        let Some(enc) = enc else { continue };
        if enc.is_telephone_event() {
            if d.events_in.is_empty() {
                d.events_in_clock = enc.clock_rate;
            }
            d.events_in.insert(pt);
        }
        let Some(y) = own_y else { continue };
        if y.encoding(pt) == Some(enc) {
            continue;
        }
        if let Some(q) = y.payload_type(enc) {
            d.payload_map.set(pt, q);
        }
    }
    match y_wants {
        DtmfMode::Passthrough => {}
        DtmfMode::Info => d.events_to_signalling = !d.events_in.is_empty(),
        DtmfMode::Rfc4733 => d.events_out = own_y.and_then(Numbering::telephone_event),
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::SessionDescription;

    fn numbering(m_line: &str, attrs: &str) -> Numbering {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{m_line}\r\n{attrs}"
        );
        let sdp = SessionDescription::parse(body.as_bytes()).expect("test SDP parses");
        Numbering::from_media(&sdp.media()[0])
    }

    fn pbx() -> Numbering {
        numbering(
            "m=audio 4000 RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        )
    }

    fn carrier() -> Numbering {
        numbering(
            "m=audio 5000 RTP/AVP 8 96",
            "a=rtpmap:8 pcma/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
        )
    }

    #[test]
    fn numbering_reads_rtpmaps_and_static_types() {
        let n = pbx();
        assert_eq!(n.encoding(0), Some(&Encoding::new("PCMU", 8000, 1)), "static, no rtpmap");
        assert_eq!(n.encoding(8), Some(&Encoding::new("pcma", 8000, 1)), "case-insensitive");
        assert!(n.encoding(101).is_some_and(Encoding::is_telephone_event));
        assert_eq!(n.encoding(96), None);
        assert_eq!(n.telephone_event(), Some(EventFormat { payload_type: 101, clock_rate: 8000 }));
        // A dynamic type without rtpmap means nothing; opus picks its own event clock.
        let opus = numbering(
            "m=audio 4000 RTP/AVP 111 97 126 101",
            "a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=rtpmap:126 telephone-event/48000\r\n",
        );
        assert_eq!(opus.encoding(97), None);
        assert_eq!(opus.encoding(111), Some(&Encoding::new("OPUS", 48000, 2)));
        assert_eq!(
            opus.telephone_event(),
            Some(EventFormat { payload_type: 126, clock_rate: 48000 })
        );
        assert_eq!(numbering("m=audio 4000 RTP/AVP 0", "").telephone_event(), None);
    }

    #[test]
    fn pbx_101_and_carrier_96_are_mapped_both_ways() {
        let (pbx, carrier) = (pbx(), carrier());
        // The PBX was told the carrier's numbers but sends its own 101.
        let up = plan_direction(Some(&carrier), Some(&pbx), Some(&carrier), DtmfMode::Passthrough);
        assert_eq!(up.payload_map.get(101), 96);
        assert_eq!(up.payload_map.get(8), 8);
        assert_eq!(up.payload_map.get(96), 96, "the carrier's own number passes");
        assert!(up.events_in.contains(101) && up.events_in.contains(96));
        assert!(!up.events_to_signalling && up.events_out.is_none());
        let down = plan_direction(Some(&pbx), Some(&carrier), Some(&pbx), DtmfMode::Passthrough);
        assert_eq!(down.payload_map.get(96), 101);
        assert_eq!(down.payload_map.get(101), 101);
    }

    #[test]
    fn same_numbers_need_no_rewrite() {
        let n = pbx();
        let d = plan_direction(Some(&n), Some(&n), Some(&n), DtmfMode::Passthrough);
        assert!(d.payload_map.is_identity());
    }

    #[test]
    fn a_number_told_to_the_sender_wins_over_its_own_meaning() {
        // X was told 96 = telephone-event (Y's numbering) but itself uses 96 for G729 and 97
        // for events: 96 from X is telephone-event and passes; 97 becomes 96.
        let x = numbering(
            "m=audio 4000 RTP/AVP 96 97",
            "a=rtpmap:96 G729/8000\r\na=rtpmap:97 telephone-event/8000\r\n",
        );
        let y = carrier();
        let d = plan_direction(Some(&y), Some(&x), Some(&y), DtmfMode::Passthrough);
        assert_eq!(d.payload_map.get(96), 96);
        assert_eq!(d.payload_map.get(97), 96);
    }

    #[test]
    fn dtmf_modes_decide_what_the_relay_does_with_events() {
        let (pbx, carrier) = (pbx(), carrier());
        // The PBX wants INFO: the carrier's events are taken out.
        let to_pbx = plan_direction(Some(&pbx), Some(&carrier), Some(&pbx), DtmfMode::Info);
        assert!(to_pbx.events_to_signalling && to_pbx.events_in.contains(96));
        assert_eq!(to_pbx.events_in_clock, 8000);
        // The carrier wants RFC 4733: events can be injected with its 96.
        let to_carrier =
            plan_direction(Some(&carrier), Some(&pbx), Some(&carrier), DtmfMode::Rfc4733);
        assert_eq!(to_carrier.events_out, Some(EventFormat { payload_type: 96, clock_rate: 8000 }));
        // A carrier without telephone-event cannot be given events.
        let plain = numbering("m=audio 5000 RTP/AVP 8", "");
        let d = plan_direction(Some(&plain), Some(&pbx), Some(&plain), DtmfMode::Rfc4733);
        assert_eq!(d.events_out, None);
        // Nothing to take out when no telephone-event was negotiated.
        let d = plan_direction(Some(&plain), Some(&plain), Some(&plain), DtmfMode::Info);
        assert!(!d.events_to_signalling);
    }

    #[test]
    fn unknown_receiver_leaves_numbers_alone() {
        let d = plan_direction(None, Some(&pbx()), None, DtmfMode::Passthrough);
        assert!(d.payload_map.is_identity());
        assert!(d.events_in.contains(101));
    }
}
