//! `MediaController`: the media side of one signalling shard — relay ports per zone, one
//! [`MediaSession`] per call, SDP rewritten toward each leg, relay pairs opened, updated and
//! closed as offers and answers cross.

use super::numbering::{free_dynamic_payload_type, is_free, plan_direction, Numbering};
use super::ports::{PortPair, PortPool, PortPoolError};
use super::relay::{
    self, DirectionMedia, DtmfInjection, EndpointSpec, IceCredentials, PairId, PairSpec, PairStats,
    PeerSpec, Relay, RelayError,
};
use super::session::{MediaSession, Stream};
use crate::config::DtmfMode;
use crate::sip::sdp::{
    EventPlan, IceLitePlan, MediaPlan, MediaSection, RewritePlan, RtcpPlan, SdpError,
    SessionDescription,
};
use crate::sip::token::random_token;
use crate::transport::flow::ZoneId;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which leg an SDP came from (media's own view of the B2BUA's sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The inbound leg.
    A,
    /// The outbound leg.
    B,
}

impl Leg {
    pub(crate) fn idx(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }

    fn relay_side(self) -> relay::Side {
        match self {
            Leg::A => relay::Side::A,
            Leg::B => relay::Side::B,
        }
    }

    fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }
}

/// Why an SDP could not be anchored.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The SDP does not parse.
    #[error("bad SDP: {0}")]
    Sdp(#[from] SdpError),
    /// A zone ran out of relay ports (the call gets 503).
    #[error(transparent)]
    NoPorts(#[from] PortPoolError),
    /// The zone has no media configuration.
    #[error("zone {0:?} has no relay address")]
    NoZone(ZoneId),
    /// The relay refused a command.
    #[error("relay: {0}")]
    Relay(#[from] RelayError),
}

/// Why a DTMF event could not be played into a call's media.
#[derive(Debug, thiserror::Error)]
pub enum DtmfUnavailable {
    /// Media flows around sipborder.
    #[error("media is not anchored")]
    NotAnchored,
    /// The receiving leg negotiated no telephone-event.
    #[error("the leg negotiated no telephone-event")]
    NoTelephoneEvent,
    /// The relay refused the command.
    #[error("relay: {0}")]
    Relay(#[from] RelayError),
}

/// The relay as the controller uses it; a trait so shard tests can run without relay threads.
pub trait RelayControl: Send + Sync + std::fmt::Debug {
    /// Starts relaying a pair.
    fn open(&self, spec: PairSpec) -> Result<(), RelayError>;
    /// Changes one side's remote.
    fn update(&self, id: PairId, side: relay::Side, peer: PeerSpec) -> Result<(), RelayError>;
    /// Stops relaying and closes the pair's sockets.
    fn close(&self, id: PairId) -> Result<(), RelayError>;
    /// Current statistics.
    fn stats(&self, id: PairId) -> Option<PairStats>;
    /// Rewrite/DTMF instructions for media arriving on `from`.
    fn set_media(
        &self,
        id: PairId,
        from: relay::Side,
        media: DirectionMedia,
    ) -> Result<(), RelayError>;
    /// Plays an RFC 4733 event into the stream toward `toward`.
    fn inject_dtmf(
        &self,
        id: PairId,
        toward: relay::Side,
        event: DtmfInjection,
    ) -> Result<(), RelayError>;
}

impl RelayControl for Relay {
    fn open(&self, spec: PairSpec) -> Result<(), RelayError> {
        Relay::open(self, spec)
    }
    fn update(&self, id: PairId, side: relay::Side, peer: PeerSpec) -> Result<(), RelayError> {
        Relay::update(self, id, side, peer)
    }
    fn close(&self, id: PairId) -> Result<(), RelayError> {
        Relay::close(self, id)
    }
    fn stats(&self, id: PairId) -> Option<PairStats> {
        Relay::stats(self, id)
    }
    fn set_media(
        &self,
        id: PairId,
        from: relay::Side,
        media: DirectionMedia,
    ) -> Result<(), RelayError> {
        Relay::set_media(self, id, from, media)
    }
    fn inject_dtmf(
        &self,
        id: PairId,
        toward: relay::Side,
        event: DtmfInjection,
    ) -> Result<(), RelayError> {
        Relay::inject_dtmf(self, id, toward, event)
    }
}

/// A relay that relays nothing: opens, updates and closes succeed, stats are empty. For shard
/// unit tests and dry runs (`sipborder policy test`), where no packet ever flows.
#[derive(Debug, Default)]
pub struct NullRelay;

impl RelayControl for NullRelay {
    fn open(&self, _spec: PairSpec) -> Result<(), RelayError> {
        Ok(())
    }
    fn update(&self, _id: PairId, _side: relay::Side, _peer: PeerSpec) -> Result<(), RelayError> {
        Ok(())
    }
    fn close(&self, _id: PairId) -> Result<(), RelayError> {
        Ok(())
    }
    fn stats(&self, _id: PairId) -> Option<PairStats> {
        None
    }
    fn set_media(
        &self,
        _id: PairId,
        _from: relay::Side,
        _media: DirectionMedia,
    ) -> Result<(), RelayError> {
        Ok(())
    }
    fn inject_dtmf(
        &self,
        _id: PairId,
        _toward: relay::Side,
        _event: DtmfInjection,
    ) -> Result<(), RelayError> {
        Ok(())
    }
}

/// A zone's relay ports as one shard sees them.
#[derive(Debug)]
pub struct MediaZone {
    /// Ports of this shard's slice of the zone's range.
    pub pool: PortPool,
    /// Address written into SDP toward this zone (advertised or bind address).
    pub sdp_ip: IpAddr,
}

/// Settings shared by every session.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// NAT learning window.
    pub learning_window: Duration,
    /// Media timeout handed to the relay (None: off).
    pub timeout: Option<Duration>,
}

/// Per-direction totals of a call's media, for CDRs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaTotals {
    /// Packets relayed.
    pub packets: u64,
    /// Bytes relayed.
    pub bytes: u64,
    /// Packets lost (sequence gaps).
    pub lost: u64,
    /// Worst interarrival jitter of the streams, milliseconds.
    pub jitter_ms: f64,
    /// Packets dropped for coming from the wrong source.
    pub dropped_foreign: u64,
}

/// The media side of a shard.
#[derive(Debug)]
pub struct MediaController {
    shard: u64,
    zones: Vec<Option<MediaZone>>,
    relay: Arc<dyn RelayControl>,
    settings: MediaSettings,
    next_pair: u64,
    rng: SmallRng,
    /// Open pair → the owner the session was created for (the call).
    owners: rustc_hash::FxHashMap<PairId, u64>,
    exhausted: u64,
}

/// What becomes of telephone-event in the SDP (section `m`, numbering `own_x`, first codec's
/// clock `clock`) that leg `from` sends toward the other leg.
///
/// sipborder negotiates telephone-event with a leg whenever it converts DTMF for that leg: the
/// leg's peer wants RFC 4733 (INFO from the other leg is played into the media toward it), or
/// the other leg's peer wants INFO (events from this leg are taken out and sent as INFO). So an
/// SDP without telephone-event gets one added toward such a leg — with the leg's own number
/// when it already wrote telephone-event (an answer may only list what the offer did, RFC 3264
/// §6.1), a free dynamic number when it has written no SDP yet (an offer), and none when its
/// own SDP left telephone-event out (it declined). The SDP that comes back then carries
/// telephone-event the sender never offered: it is taken out again.
fn events_toward(
    st: &Stream,
    m: &MediaSection<'_>,
    own_x: &Numbering,
    clock: u32,
    from: Leg,
    dtmf: [DtmfMode; 2],
) -> EventPlan {
    let (x, y) = (from.idx(), from.other().idx());
    if own_x.telephone_event().is_some() {
        // An m= line of nothing but events keeps them: it needs a format (the rewrite agrees).
        let audio =
            m.payload_types().any(|pt| own_x.encoding(pt).is_none_or(|e| !e.is_telephone_event()));
        return if st.events_added[x] && audio { EventPlan::Strip } else { EventPlan::Keep };
    }
    if dtmf[y] != DtmfMode::Rfc4733 && dtmf[x] != DtmfMode::Info {
        return EventPlan::Keep;
    }
    let (payload_type, clock_rate) = match st.numbering[y].as_ref() {
        None => match free_dynamic_payload_type(m) {
            Some(pt) => (pt, clock),
            None => return EventPlan::Keep,
        },
        Some(n) => match n.telephone_event() {
            Some(f) if is_free(m, f.payload_type) => (f.payload_type, f.clock_rate),
            _ => return EventPlan::Keep,
        },
    };
    EventPlan::Add { payload_type, clock_rate }
}

/// True for addresses a NAT'd endpoint would write (RFC 1918, RFC 6598 CGN, link-local, ULA).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

impl MediaController {
    /// The zones of `router`, each with shard `shard`'s slice (of `shards`) of its port range.
    pub fn zones_for_shard(
        router: &crate::b2bua::Router,
        shard: usize,
        shards: usize,
        quarantine: Duration,
    ) -> Vec<Option<MediaZone>> {
        let shards = shards.max(1) as u32;
        router
            .zones
            .iter()
            .map(|z| {
                let (lo, hi) = z.media_ports;
                let lo = lo + lo % 2;
                // Whole pairs only: an odd last port has no RTCP partner.
                let pairs = (u32::from(hi) + 1).saturating_sub(u32::from(lo)) / 2;
                let per = pairs / shards;
                if per == 0 {
                    return None;
                }
                let start = u32::from(lo) + 2 * per * shard as u32;
                let end = start + 2 * per - 1;
                let (Ok(start), Ok(end)) = (u16::try_from(start), u16::try_from(end)) else {
                    return None;
                };
                Some(MediaZone {
                    pool: PortPool::new(z.media_ip, start, end, quarantine),
                    sdp_ip: z.media_sdp_ip,
                })
            })
            .collect()
    }

    /// A controller for shard `shard` over `zones` (index = [`ZoneId`]).
    pub fn new(
        shard: usize,
        zones: Vec<Option<MediaZone>>,
        relay: Arc<dyn RelayControl>,
        settings: MediaSettings,
    ) -> Self {
        MediaController {
            shard: shard as u64,
            zones,
            relay,
            settings,
            next_pair: 1,
            rng: SmallRng::from_entropy(),
            owners: Default::default(),
            exhausted: 0,
        }
    }

    /// Updates the addresses written into SDP (reload, STUN-discovered public address); port
    /// pools stay as they are.
    pub fn set_sdp_ips(&mut self, ips: &[std::net::IpAddr]) {
        for (z, ip) in self.zones.iter_mut().zip(ips) {
            if let Some(z) = z {
                z.sdp_ip = *ip;
            }
        }
    }

    /// Ports in use and available per zone.
    pub fn port_usage(&self) -> Vec<(ZoneId, usize, usize)> {
        self.zones
            .iter()
            .enumerate()
            .filter_map(|(i, z)| {
                z.as_ref().map(|z| (ZoneId(i as u16), z.pool.in_use(), z.pool.available()))
            })
            .collect()
    }

    /// A new session for a call (`owner`) between `a_zone` and `b_zone`.
    pub fn session(
        &mut self,
        owner: u64,
        a_zone: ZoneId,
        b_zone: ZoneId,
        anchored: bool,
    ) -> MediaSession {
        let sess_id = rand::Rng::gen_range(&mut self.rng, 1_000_000_000u64..9_000_000_000);
        MediaSession::new(owner, [a_zone, b_zone], anchored, sess_id)
    }

    /// The owner of an open pair (relay events name pairs).
    pub fn owner_of(&self, id: PairId) -> Option<u64> {
        self.owners.get(&id).copied()
    }

    /// Open pairs.
    pub fn open_pairs(&self) -> usize {
        self.owners.len()
    }

    /// Times a zone had no free ports.
    pub fn exhausted(&self) -> u64 {
        self.exhausted
    }

    /// True when a zone can anchor media (has a relay address and ports).
    pub fn can_anchor(&self, zone: ZoneId) -> bool {
        self.zones.get(zone.0 as usize).is_some_and(Option::is_some)
    }

    fn pair_id(&mut self) -> PairId {
        // The shard index in the high bits lets relay events find their shard.
        let id = PairId((self.shard << 48) | self.next_pair);
        self.next_pair += 1;
        id
    }

    /// Shard owning a pair id.
    pub fn shard_of_pair(id: PairId) -> usize {
        (id.0 >> 48) as usize
    }

    fn allocate(&mut self, now: Instant, zone: ZoneId) -> Result<PortPair, MediaError> {
        let z = self
            .zones
            .get_mut(zone.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(MediaError::NoZone(zone))?;
        let r = z.pool.allocate(now);
        if r.is_err() {
            self.exhausted += 1;
        }
        Ok(r?)
    }

    fn sdp_ip(&self, zone: ZoneId) -> Option<IpAddr> {
        self.zones.get(zone.0 as usize).and_then(Option::as_ref).map(|z| z.sdp_ip)
    }

    /// An SDP (offer or answer) from `from`: updates the relay and returns the body for the
    /// other leg. `source` is the IP the leg's signalling comes from (NAT detection).
    pub fn on_sdp(
        &mut self,
        now: Instant,
        s: &mut MediaSession,
        from: Leg,
        body: &[u8],
        source: IpAddr,
    ) -> Result<Vec<u8>, MediaError> {
        self.take_sdp(now, s, from, body, source, true)
    }

    /// [`Self::on_sdp`] for an SDP whose body for the other leg is not sent (the answer of a
    /// leg replacing a transferor): the other leg keeps reading media with the payload numbers
    /// it was given before.
    pub fn on_sdp_not_relayed(
        &mut self,
        now: Instant,
        s: &mut MediaSession,
        from: Leg,
        body: &[u8],
        source: IpAddr,
    ) -> Result<Vec<u8>, MediaError> {
        self.take_sdp(now, s, from, body, source, false)
    }

    fn take_sdp(
        &mut self,
        now: Instant,
        s: &mut MediaSession,
        from: Leg,
        body: &[u8],
        source: IpAddr,
        relayed: bool,
    ) -> Result<Vec<u8>, MediaError> {
        if !s.anchored {
            return Ok(body.to_vec());
        }
        let sdp = SessionDescription::parse(body)?;
        let x = from.idx();
        let y = from.other().idx();
        if sdp.offers_ice() && s.ice[x].is_none() {
            s.ice[x] = Some((random_token(&mut self.rng, 8), random_token(&mut self.rng, 24)));
        }
        let remote_ufrag = sdp.ice().ufrag.map(str::to_string);
        let session_c = sdp.connection().and_then(|c| c.ip);
        let dtmf = s.dtmf;
        let mut event_plans = vec![EventPlan::Keep; sdp.media().len()];
        for (i, m) in sdp.media().iter().enumerate() {
            if s.streams.len() <= i {
                s.streams.push(Stream::default());
            }
            if m.is_rejected() || !m.is_rtp() {
                self.close_stream(now, s, i);
                if let Some(st) = s.streams.get_mut(i) {
                    st.rejected = true;
                }
                continue;
            }
            if s.streams[i].ports.is_none() {
                let a = self.allocate(now, s.zones[0])?;
                let b = match self.allocate(now, s.zones[1]) {
                    Ok(b) => b,
                    Err(e) => {
                        if let Some(z) =
                            self.zones.get_mut(s.zones[0].0 as usize).and_then(Option::as_mut)
                        {
                            z.pool.release(now, a.port);
                        }
                        return Err(e);
                    }
                };
                s.streams[i].ports = Some([a.port, b.port]);
                s.streams[i].pending = Some([a, b]);
                s.streams[i].rejected = false;
            }
            let ip = m.effective_address().and_then(|c| c.ip).or(session_c);
            let hold = ip.is_some_and(|ip| ip.is_unspecified());
            let rtp_peer = ip.filter(|_| !hold).map(|ip| SocketAddr::new(ip, m.port));
            let rtcp_peer = if m.rtcp_mux {
                None
            } else {
                ip.filter(|_| !hold).map(|ip| {
                    let rip = m
                        .rtcp
                        .as_ref()
                        .and_then(|r| r.connection.as_ref())
                        .and_then(|c| c.ip)
                        .unwrap_or(ip);
                    SocketAddr::new(rip, m.rtcp.as_ref().map_or(m.port.wrapping_add(1), |r| r.port))
                })
            };
            // Behind NAT (issue: a private c= address, or signalling from elsewhere than the SDP
            // names): latch to the first source instead of trusting the written address.
            let nat = ip.is_some_and(|ip| !ip.is_unspecified() && (is_private(ip) || ip != source));
            let spec = |addr: Option<SocketAddr>| {
                if nat {
                    PeerSpec::learn(addr, self.settings.learning_window)
                } else {
                    match addr {
                        Some(a) => PeerSpec::strict(a),
                        None => PeerSpec { addr: None, mode: relay::LatchMode::Strict },
                    }
                }
            };
            let (rtp_spec, rtcp_spec) = (spec(rtp_peer), spec(rtcp_peer));
            let clock = m
                .payload_types()
                .next()
                .and_then(|pt| m.rtpmaps_for(pt).next())
                .map_or(8000, |r| r.clock_rate);
            let st = &mut s.streams[i];
            st.clock_rate[x] = clock;
            st.mux[x] = m.rtcp_mux;
            let numbering = Numbering::from_media(m);
            if relayed {
                let plan = events_toward(st, m, &numbering, clock, from, dtmf);
                // The body toward the other leg keeps these payload numbers, give or take
                // telephone-event.
                st.told[y] = Some(match plan {
                    EventPlan::Add { payload_type, clock_rate } => {
                        numbering.with_event(payload_type, clock_rate)
                    }
                    EventPlan::Strip => numbering.without_events(),
                    EventPlan::Keep => numbering.clone(),
                });
                st.events_added[y] = matches!(plan, EventPlan::Add { .. });
                if let Some(p) = event_plans.get_mut(i) {
                    *p = plan;
                }
            }
            st.numbering[x] = Some(numbering);
            if let Some([ea, eb]) = st.pending.take() {
                // First SDP for this stream: open both pairs with what is known so far.
                let ice = s.ice[x].as_ref().map(|(u, p)| IceCredentials {
                    local_ufrag: u.clone(),
                    local_pwd: p.clone(),
                    remote_ufrag: remote_ufrag.clone(),
                });
                let unknown = PeerSpec { addr: None, mode: relay::LatchMode::Strict };
                let (rtp_id, rtcp_id) = (self.pair_id(), self.pair_id());
                let mk = |sock: std::net::UdpSocket, leg: usize, peer: PeerSpec| {
                    let mut e = EndpointSpec::new(sock, peer).with_clock_rate(clock);
                    if leg == x {
                        if let Some(c) = ice.clone() {
                            e = e.with_ice(c);
                        }
                    }
                    e
                };
                let (rtp_x, rtcp_x) = (rtp_spec, rtcp_spec);
                let peer_for = |leg: usize, own: PeerSpec| if leg == x { own } else { unknown };
                let rtp = PairSpec {
                    id: rtp_id,
                    a: mk(ea.rtp, 0, peer_for(0, rtp_x)),
                    b: mk(eb.rtp, 1, peer_for(1, rtp_x)),
                    media_timeout: self.settings.timeout,
                };
                let rtcp = PairSpec::new(
                    rtcp_id,
                    mk(ea.rtcp, 0, peer_for(0, rtcp_x)),
                    mk(eb.rtcp, 1, peer_for(1, rtcp_x)),
                );
                self.relay.open(rtp)?;
                self.relay.open(rtcp)?;
                st.pairs = Some((rtp_id, rtcp_id));
                self.owners.insert(rtp_id, s.owner);
                self.owners.insert(rtcp_id, s.owner);
            } else if let Some((rtp_id, rtcp_id)) = st.pairs {
                if st.peer[x] != rtp_peer || st.nat[x] != nat {
                    self.relay.update(rtp_id, from.relay_side(), rtp_spec)?;
                    self.relay.update(rtcp_id, from.relay_side(), rtcp_spec)?;
                }
            }
            let st = &mut s.streams[i];
            st.peer[x] = rtp_peer;
            st.nat[x] = nat;
            // sipborder copies a=rtcp-mux across, so one side without it means no mux on either
            // leg (RFC 5761 §5.1.1: an offer of mux answered without it). The leg that offered
            // mux had no RTCP address until now: its RTCP goes to its RTP port + 1.
            if !m.rtcp_mux && st.mux[y] {
                st.mux[y] = false;
                if let (Some((_, rtcp_id)), Some(peer)) = (st.pairs, st.peer[y]) {
                    let addr = SocketAddr::new(peer.ip(), peer.port().wrapping_add(1));
                    let spec = if st.nat[y] {
                        PeerSpec::learn(Some(addr), self.settings.learning_window)
                    } else {
                        PeerSpec::strict(addr)
                    };
                    self.relay.update(rtcp_id, from.other().relay_side(), spec)?;
                }
            }
        }
        self.install_directions(s)?;
        self.rewrite_toward(s, &sdp, y, &event_plans)
    }

    /// Gives the relay each stream's per-direction instructions (payload renumbering, DTMF)
    /// where they changed.
    fn install_directions(&self, s: &mut MediaSession) -> Result<(), MediaError> {
        for st in s.streams.iter_mut().filter(|st| !st.rejected) {
            let Some((rtp_id, _)) = st.pairs else { continue };
            for (x, leg) in [(0, Leg::A), (1, Leg::B)] {
                let y = 1 - x;
                // Y never negotiated the events sipborder had X send: they reach Y as INFO.
                let y_wants = if st.events_added[x] { DtmfMode::Info } else { s.dtmf[y] };
                let plan = plan_direction(
                    st.told[x].as_ref(),
                    st.numbering[x].as_ref(),
                    st.numbering[y].as_ref(),
                    y_wants,
                );
                if st.installed[x].as_ref() != Some(&plan) {
                    self.relay.set_media(rtp_id, leg.relay_side(), plan.clone())?;
                    st.installed[x] = Some(plan);
                }
            }
        }
        Ok(())
    }

    /// How each leg's peer wants DTMF (call set-up, fail-over, a transfer replacing a leg);
    /// the relay is told at once for streams already open.
    pub fn set_dtmf_modes(
        &mut self,
        s: &mut MediaSession,
        modes: [crate::config::DtmfMode; 2],
    ) -> Result<(), MediaError> {
        s.dtmf = modes;
        if s.anchored {
            self.install_directions(s)?;
        }
        Ok(())
    }

    /// Plays `event` as RFC 4733 packets into the first stream toward `toward` that negotiated
    /// telephone-event.
    pub fn inject_dtmf(
        &self,
        s: &MediaSession,
        toward: Leg,
        event: DtmfInjection,
    ) -> Result<(), DtmfUnavailable> {
        if !s.anchored {
            return Err(DtmfUnavailable::NotAnchored);
        }
        let from = toward.other().idx();
        let stream = s.streams.iter().find(|st| {
            !st.rejected
                && st.pairs.is_some()
                && st.installed[from].as_ref().is_some_and(|d| d.events_out.is_some())
        });
        let Some((rtp_id, _)) = stream.and_then(|st| st.pairs) else {
            return Err(DtmfUnavailable::NoTelephoneEvent);
        };
        self.relay.inject_dtmf(rtp_id, toward.relay_side(), event)?;
        Ok(())
    }

    /// Builds the body for leg `y` from `sdp`, with telephone-event per `events` (by `m=`).
    fn rewrite_toward(
        &mut self,
        s: &mut MediaSession,
        sdp: &SessionDescription<'_>,
        y: usize,
        events: &[EventPlan],
    ) -> Result<Vec<u8>, MediaError> {
        let zone = s.zones[y];
        let ip = self.sdp_ip(zone).ok_or(MediaError::NoZone(zone))?;
        let ice = s.ice[y].clone();
        let candidates: Vec<Vec<String>> = s
            .streams
            .iter()
            .map(|st| match (st.ports, &ice) {
                (Some(p), Some(_)) => {
                    let mut c =
                        vec![format!("candidate:1 1 UDP 2130706431 {ip} {} typ host", p[y])];
                    // RTCP has a component of its own unless both legs multiplex.
                    if !st.mux.iter().all(|m| *m) {
                        c.push(format!("candidate:1 2 UDP 2130706430 {ip} {} typ host", p[y] + 1));
                    }
                    c
                }
                _ => Vec::new(),
            })
            .collect();
        let cand_refs: Vec<Vec<&str>> =
            candidates.iter().map(|v| v.iter().map(String::as_str).collect()).collect();
        let plans: Vec<MediaPlan<'_>> = sdp
            .media()
            .iter()
            .enumerate()
            .map(|(i, _)| match s.streams.get(i) {
                Some(st) if !st.rejected => match st.ports {
                    Some(p) => MediaPlan {
                        events: events.get(i).copied().unwrap_or_default(),
                        port: Some(p[y]),
                        rtcp: RtcpPlan::Port(p[y] + 1),
                        ice: ice.as_ref().map(|(u, pw)| IceLitePlan {
                            ufrag: u,
                            pwd: pw,
                            candidates: cand_refs.get(i).map_or(&[][..], |v| &v[..]),
                        }),
                    },
                    None => MediaPlan::KEEP,
                },
                _ => MediaPlan::KEEP,
            })
            .collect();
        let out = &mut s.out[y];
        let plan = |version: u64| RewritePlan {
            username: "sipborder",
            sess_id: out.sess_id,
            sess_version: version,
            address: ip,
            media: &plans,
        };
        let mut body = sdp.rewrite(&plan(out.version)).body;
        if out.last.as_deref() != Some(&body[..]) {
            // RFC 3264 §8: a changed SDP carries a higher version toward the same leg.
            if out.last.is_some() {
                out.version += 1;
                body = sdp.rewrite(&plan(out.version)).body;
            }
            out.last = Some(body.clone());
        }
        Ok(body)
    }

    fn close_stream(&mut self, now: Instant, s: &mut MediaSession, i: usize) {
        let Some(st) = s.streams.get_mut(i) else { return };
        if let Some((rtp, rtcp)) = st.pairs.take() {
            let _ = self.relay.close(rtp);
            let _ = self.relay.close(rtcp);
            self.owners.remove(&rtp);
            self.owners.remove(&rtcp);
        }
        st.pending = None;
        // Pairs opened later for this m= line start without instructions.
        st.installed = [None, None];
        if let Some(ports) = st.ports.take() {
            for (leg, port) in ports.iter().enumerate() {
                if let Some(z) =
                    self.zones.get_mut(s.zones[leg].0 as usize).and_then(Option::as_mut)
                {
                    z.pool.release(now, *port);
                }
            }
        }
    }

    /// Ends a session: pairs closed, ports back to their pools (after quarantine).
    pub fn close(&mut self, now: Instant, s: &mut MediaSession) {
        for i in 0..s.streams.len() {
            self.close_stream(now, s, i);
        }
    }

    /// Media totals of a session, per direction (a→b, b→a).
    pub fn totals(&self, s: &MediaSession) -> [MediaTotals; 2] {
        let mut t = [MediaTotals::default(); 2];
        for st in &s.streams {
            let Some((rtp, _)) = st.pairs else { continue };
            let Some(ps) = self.relay.stats(rtp) else { continue };
            for (dir, d) in [(0, &ps.a_to_b), (1, &ps.b_to_a)] {
                t[dir].packets += d.packets;
                t[dir].bytes += d.bytes;
                t[dir].lost += d.lost.max(0) as u64;
                t[dir].dropped_foreign += d.dropped_foreign;
                t[dir].jitter_ms = t[dir].jitter_ms.max(d.jitter_ms);
            }
        }
        t
    }
}
