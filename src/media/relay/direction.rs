//! What the signalling side tells the relay about one direction of a pair beyond where to send
//! it: payload types renumbered for the receiving leg, and what happens to RFC 4733
//! telephone-events (forwarded, taken out and reported, or injected).

use std::time::Duration;

/// Payload-type renumbering of one direction: the payload type a packet arrives with → the one
/// the receiving leg expects for the same codec. Identity unless told otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct PayloadMap([u8; 128]);

impl PayloadMap {
    /// Every payload type left as it is.
    pub fn identity() -> PayloadMap {
        let mut m = [0u8; 128];
        for (i, v) in m.iter_mut().enumerate() {
            *v = i as u8;
        }
        PayloadMap(m)
    }

    /// Packets arriving with `from` leave with `to` (both taken modulo 128, the PT field width).
    pub fn set(&mut self, from: u8, to: u8) {
        self.0[usize::from(from & 0x7f)] = to & 0x7f;
    }

    /// The outgoing payload type for `pt`.
    #[inline]
    pub fn get(&self, pt: u8) -> u8 {
        self.0[usize::from(pt & 0x7f)]
    }

    /// Whether nothing is renumbered.
    pub fn is_identity(&self) -> bool {
        self.0.iter().enumerate().all(|(i, v)| usize::from(*v) == i)
    }
}

impl Default for PayloadMap {
    fn default() -> PayloadMap {
        PayloadMap::identity()
    }
}

impl std::fmt::Debug for PayloadMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 128 identity entries would bury the few that matter.
        let changed = self.0.iter().enumerate().filter(|(i, v)| usize::from(**v) != *i);
        f.debug_map().entries(changed).finish()
    }
}

/// A set of payload types (0–127).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PayloadSet(u128);

impl PayloadSet {
    /// Adds `pt` (modulo 128).
    pub fn insert(&mut self, pt: u8) {
        self.0 |= 1u128 << (pt & 0x7f);
    }

    /// Whether `pt` is in the set.
    #[inline]
    pub fn contains(&self, pt: u8) -> bool {
        self.0 >> (pt & 0x7f) & 1 == 1
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// The telephone-event format a leg negotiated (`a=rtpmap:<pt> telephone-event/<rate>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFormat {
    /// Payload type.
    pub payload_type: u8,
    /// RTP clock rate (durations and timestamps count in it).
    pub clock_rate: u32,
}

/// The relay's instructions for one direction of a pair (media arriving from one leg).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectionMedia {
    /// Payload types renumbered for the receiving leg.
    pub payload_map: PayloadMap,
    /// Payload types that carry telephone-events as they arrive.
    pub events_in: PayloadSet,
    /// Clock rate of the arriving events (their durations are reported in time); 8000 if 0.
    pub events_in_clock: u32,
    /// Take telephone-events out of the stream and report each finished one as
    /// [`super::RelayEvent::Dtmf`] instead of forwarding it (the receiving leg wants SIP INFO).
    pub events_to_signalling: bool,
    /// The receiving leg's telephone-event format, for events the signalling side injects;
    /// `None`: the leg negotiated none and injection requests are ignored.
    pub events_out: Option<EventFormat>,
}

/// One DTMF event the signalling side asks the relay to play into a stream as RFC 4733
/// packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfInjection {
    /// Event code (0–15 digits and letters, 16 flash).
    pub event: u8,
    /// How long the key was pressed.
    pub duration: Duration,
    /// Power level in -dBm0 (RFC 4733 §2.3.4).
    pub volume: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_map_is_identity_until_set_and_masks_to_seven_bits() {
        let mut m = PayloadMap::default();
        assert!(m.is_identity());
        assert_eq!(m.get(101), 101);
        m.set(101, 96);
        assert!(!m.is_identity());
        assert_eq!(m.get(101), 96);
        // The marker bit is not part of the payload type.
        assert_eq!(m.get(101 | 0x80), 96);
        m.set(200, 250);
        assert_eq!(m.get(200 & 0x7f), 250 & 0x7f);
        assert_eq!(format!("{m:?}"), "{72: 122, 101: 96}");
    }

    #[test]
    fn payload_set() {
        let mut s = PayloadSet::default();
        assert!(s.is_empty());
        s.insert(0);
        s.insert(127);
        s.insert(101);
        assert!(s.contains(0) && s.contains(127) && s.contains(101));
        assert!(!s.contains(100) && !s.contains(1));
        assert!(s.contains(101 | 0x80));
    }
}
