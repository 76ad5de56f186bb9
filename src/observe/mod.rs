//! Observability: Prometheus metrics, logging setup, call records and CDRs.

pub mod admin;
pub mod calls;
pub mod cdr;
pub mod logging;
pub mod metrics;
pub mod names;
