//! The policy engine: what crosses from one leg to the other and how it is rewritten.
//!
//! `topology` is built in: the headers the B2BUA owns are rebuilt on each leg and never copied.
//! On top of it, YAML policy files (`policies/*.yaml`, schema in [`rules`]) are checked and
//! compiled once ([`compile`]) into a plan per direction, attached per trunk, and run on every
//! outgoing message ([`apply`]). A rule that names an owned header is refused at load, with its
//! file, line and column. [`testing`] runs the examples a policy file carries; [`diff`] shows
//! what the rules did.

pub mod apply;
pub mod causes;
pub mod compile;
pub mod diff;
pub mod reason;
pub mod rules;
pub mod testing;
pub mod topology;

pub use apply::{Applied, MessageContext, PolicyChain, Reject};
pub use compile::{CompiledPolicy, PolicyError, PolicyErrors};
pub use rules::Direction;
