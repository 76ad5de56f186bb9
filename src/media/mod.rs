//! Media: relay ports, per-call sessions, SDP anchoring, and the relay data plane.

pub mod controller;
pub mod numbering;
pub mod ports;
pub mod relay;
pub mod session;

pub use controller::{
    DtmfUnavailable, Leg, MediaController, MediaError, MediaSettings, MediaTotals, MediaZone,
    RelayControl,
};
pub use session::MediaSession;
