//! Command line (clap): `run`, `check`, `version`.

use crate::observe::logging::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// sipborder: a SIP session border controller and B2BUA.
#[derive(Debug, Parser)]
#[command(name = "sipborder", version, about, propagate_version = true)]
pub struct Cli {
    /// Log level or filter (e.g. `info`, `sipborder=debug`); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the SBC (with the built-in config unless -c is given).
    Run {
        /// Configuration file.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and exit (non-zero with file:line:column errors).
    Check {
        /// Configuration file (the built-in one when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}
