//! SIP message helpers on top of rsip: parsing with limits and validation, header access,
//! serialization, response building.

pub mod build;
pub mod callid;
pub mod dtmf_info;
pub mod headers;
pub mod message;
pub mod normalize;
pub mod parse;
pub mod replaces;
pub mod sdp;
pub mod token;
pub mod wire;
