//! Command line (clap): `run`, `check`, `policy test`, `version`.

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
        /// Policy files to check as well (repeatable).
        #[arg(long = "policy", value_name = "FILE")]
        policies: Vec<PathBuf>,
    },
    /// Policy tools.
    Policy {
        /// What to do with policies.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// List or lift source bans on a running sipborder (through its metrics listener).
    Bans {
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<BansCommand>,
        /// Base URL of the metrics/admin listener.
        #[arg(long, global = true, default_value = "http://127.0.0.1:9091")]
        admin: String,
    },
    /// Print the version.
    Version,
}

/// `sipborder bans ...`.
#[derive(Debug, Subcommand)]
pub enum BansCommand {
    /// Print the bans in force (JSON).
    List,
    /// Lift the ban of one source.
    Lift {
        /// The banned address.
        ip: std::net::IpAddr,
    },
}

/// `sipborder policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Apply a policy file to a message and print the result as a unified diff with the rules
    /// that fired; without --message, run the tests the policy file carries.
    Test {
        /// Policy file (YAML).
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// SIP message file; LF line endings are fine, Content-Length is recomputed.
        #[arg(long, value_name = "FILE")]
        message: Option<PathBuf>,
        /// Direction the message crosses sipborder in.
        #[arg(long, value_enum, default_value = "to-trunk")]
        direction: PolicyDirection,
        /// Zone the message arrived from (for `source_zone` conditions).
        #[arg(long, default_value = "lan")]
        zone: String,
    },
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyDirection {
    /// Toward the carrier side.
    ToTrunk,
    /// Toward the LAN side.
    ToLan,
}

impl From<PolicyDirection> for crate::policy::rules::Direction {
    fn from(d: PolicyDirection) -> Self {
        match d {
            PolicyDirection::ToTrunk => crate::policy::rules::Direction::ToTrunk,
            PolicyDirection::ToLan => crate::policy::rules::Direction::ToLan,
        }
    }
}
