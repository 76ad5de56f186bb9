//! Far-end NAT traversal: the registration proxy's binding table and keepalives toward
//! registered devices. sipborder relies on where packets come from, never on what a router's
//! ALG wrote into them.

pub mod bindings;
pub mod public_address;
pub mod stun_responder;
