//! Observability: Prometheus metrics, logging setup, call records.

pub mod calls;
pub mod logging;
pub mod metrics;
pub mod names;
