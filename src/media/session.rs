//! `MediaSession`: one call's media state — its streams, their relay ports and pairs, and the
//! SDP identity sipborder presents to each leg.

use super::numbering::Numbering;
use super::ports::PortPair;
use super::relay::{DirectionMedia, PairId};
use crate::config::DtmfMode;
use crate::transport::flow::ZoneId;
use std::net::SocketAddr;

/// One `m=` line of the call.
#[derive(Debug, Default)]
pub struct Stream {
    /// Relay RTP ports [toward A's zone, toward B's zone] (RTCP is port + 1).
    pub ports: Option<[u16; 2]>,
    /// Sockets allocated but not yet handed to the relay.
    pub(crate) pending: Option<[PortPair; 2]>,
    /// Relay pairs (RTP, RTCP) once open.
    pub pairs: Option<(PairId, PairId)>,
    /// Each leg's RTP address from its SDP.
    pub peer: [Option<SocketAddr>; 2],
    /// Each leg detected behind NAT.
    pub nat: [bool; 2],
    /// Each leg asked for rtcp-mux (cleared once the other leg's SDP came without it).
    pub mux: [bool; 2],
    /// RTP clock rate per leg.
    pub clock_rate: [u32; 2],
    /// Rejected (port 0) or not RTP.
    pub rejected: bool,
    /// Each leg's payload numbering, from its own last SDP.
    pub numbering: [Option<Numbering>; 2],
    /// The numbering in the SDP sipborder last sent each leg.
    pub told: [Option<Numbering>; 2],
    /// Relay instructions installed for media from each leg.
    pub installed: [Option<DirectionMedia>; 2],
    /// sipborder added telephone-event to the SDP it last sent each leg, on behalf of the other
    /// leg, which never offered it: that leg's events are turned into INFO, and telephone-event
    /// is taken out of what it sends back.
    pub events_added: [bool; 2],
}

/// The `o=` identity and last body sent toward one leg.
#[derive(Debug, Default)]
pub struct OutgoingSdp {
    /// Session id (stable per leg).
    pub sess_id: u64,
    /// Session version, incremented when the body toward the leg changes.
    pub version: u64,
    /// Last body sent.
    pub last: Option<Vec<u8>>,
}

/// A call's media.
#[derive(Debug)]
pub struct MediaSession {
    /// Who the session belongs to (the call), for relay events.
    pub owner: u64,
    /// Relayed (true) or flowing around sipborder (false).
    pub anchored: bool,
    /// Zones of leg A and leg B.
    pub zones: [ZoneId; 2],
    /// Streams by `m=` index.
    pub streams: Vec<Stream>,
    /// SDP identity toward each leg.
    pub out: [OutgoingSdp; 2],
    /// ICE-lite credentials (ufrag, pwd) presented to a leg that does ICE.
    pub ice: [Option<(String, String)>; 2],
    /// How each leg's peer wants DTMF.
    pub dtmf: [DtmfMode; 2],
}

impl MediaSession {
    /// A session between two zones.
    pub fn new(owner: u64, zones: [ZoneId; 2], anchored: bool, sess_id: u64) -> Self {
        MediaSession {
            owner,
            anchored,
            zones,
            streams: Vec::new(),
            out: [
                OutgoingSdp { sess_id, version: 1, last: None },
                OutgoingSdp { sess_id: sess_id + 1, version: 1, last: None },
            ],
            ice: [None, None],
            dtmf: [DtmfMode::Passthrough; 2],
        }
    }

    /// Relay ports held (pairs).
    pub fn ports_held(&self) -> usize {
        self.streams.iter().filter(|s| s.ports.is_some()).count() * 2
    }
}
