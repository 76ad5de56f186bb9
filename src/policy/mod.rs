//! The policy engine: what crosses from one leg to the other and how it is rewritten.

pub mod topology;
