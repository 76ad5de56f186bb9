//! `sipborder` binary: command line, config loading, runtime start, signals.

use anyhow::Context;
use clap::Parser;
use sipborder::cli::{Cli, Command};
use sipborder::config::{self, Config};
use std::path::Path;
use std::process::ExitCode;

// Signalling allocates short-lived strings per message; mimalloc's thread-local free lists cut
// that cost well below glibc's malloc (measured in bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn load(path: Option<&Path>) -> Result<Config, config::ConfigErrors> {
    match path {
        Some(p) => config::load_file(p),
        None => config::load_str(config::EMBEDDED_YAML, "<embedded config/sipborder.yaml>"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("sipborder {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check { config } => match load(config.as_deref()) {
            Ok(_) => {
                println!(
                    "{}: OK",
                    config
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "<embedded>".into())
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            sipborder::observe::logging::init(&cli.log_level, cli.log_format);
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            match run(cfg, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sipborder: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(cfg: Config, path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if cfg.runtime.worker_threads > 0 {
        rt.worker_threads(cfg.runtime.worker_threads);
    }
    let rt = rt.build().context("starting the tokio runtime")?;
    rt.block_on(async move {
        if let Some(m) = &cfg.metrics {
            sipborder::observe::metrics::install(m.listen)?;
        }
        let server = sipborder::server::Server::start(&cfg).await?;
        tokio::spawn(sipborder::observe::metrics::sample_gauges(server.stats.clone()));
        for z in &cfg.zones {
            tracing::info!(zone = %z.name, udp = ?z.udp, tcp = ?z.tcp, "listening");
        }
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let new = load(path.as_deref());
                    match new {
                        Ok(c) => {
                            server.reload(&c).await;
                            tracing::info!("configuration reloaded");
                        }
                        Err(e) => tracing::error!(errors = %e, "reload rejected, keeping the running configuration"),
                    }
                }
                _ = term.recv() => { tracing::info!("SIGTERM: exiting"); break; }
                _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted: exiting"); break; }
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}
