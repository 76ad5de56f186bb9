//! `sipborder` binary: command line, config loading, runtime start, signals.

use anyhow::Context;
use clap::Parser;
use sipborder::cli::{BansCommand, Cli, Command, PolicyCommand};
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
        Command::Check { config, policies } => {
            let mut ok = true;
            match load(config.as_deref()) {
                Ok(_) => println!(
                    "{}: OK",
                    config
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "<embedded>".into())
                ),
                Err(e) => {
                    eprintln!("{e}");
                    ok = false;
                }
            }
            // Every file is checked, so one run shows all there is to fix.
            for path in &policies {
                match sipborder::policy::compile::load_file(path) {
                    Ok(_) => println!("{}: OK", path.display()),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Command::Bans { command, admin } => {
            let (method, path) = match command.unwrap_or(BansCommand::List) {
                BansCommand::List => ("GET", "/bans".to_string()),
                BansCommand::Lift { ip } => ("DELETE", format!("/bans/{ip}")),
            };
            match sipborder::admin_client::request(&admin, method, &path) {
                Ok((status, body)) => {
                    print!("{body}");
                    if status == 200 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("sipborder: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Policy { command: PolicyCommand::Test { policy, message, direction, zone } } => {
            policy_test(&policy, message.as_deref(), direction.into(), &zone)
        }
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

/// `sipborder policy test`: exit 0 after showing what the rules did (a rejection included),
/// 1 when the file's own tests fail, 2 when the policy or the message cannot be read.
fn policy_test(
    policy: &Path,
    message: Option<&Path>,
    direction: sipborder::policy::Direction,
    zone: &str,
) -> ExitCode {
    use sipborder::policy::testing;
    let compiled = match sipborder::policy::compile::load_file(policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(message) = message else {
        let outcomes = testing::run_tests(&compiled);
        let failed = outcomes.iter().filter(|o| !o.passed).count();
        for o in &outcomes {
            println!("{o}");
        }
        println!("{} passed, {failed} failed", outcomes.len() - failed);
        return if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    };
    let text = match std::fs::read(message) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("{}: cannot read: {e}", message.display());
            return ExitCode::from(2);
        }
    };
    let trial = match testing::trial(&compiled, direction, zone, &text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", message.display());
            return ExitCode::from(2);
        }
    };
    let diff = trial.diff();
    if diff.is_empty() {
        println!("(the rules changed nothing)");
    } else {
        print!("{diff}");
    }
    if trial.fired.is_empty() {
        println!("fired: (none)");
    } else {
        println!("fired: {}", trial.fired.join(", "));
    }
    if let Some(r) = &trial.reject {
        println!("rejected: {} {}", r.code, r.reason);
    }
    ExitCode::SUCCESS
}

/// Zones with `stun:` and no static `advertise` get the address a STUN server sees them at.
fn apply_stun(cfg: &mut Config) {
    for z in cfg.zones.iter_mut() {
        let (Some(stun), None) = (&z.stun, z.advertise) else { continue };
        let Some(local) = z.udp.or(z.tcp).map(|a| a.ip()) else { continue };
        match sipborder::nat::public_address::discover(
            local,
            stun.server,
            std::time::Duration::from_secs(2),
        ) {
            Ok(ip) => {
                tracing::info!(zone = %z.name, public = %ip, "public address discovered with STUN");
                z.advertise = Some(ip);
            }
            Err(e) => {
                tracing::warn!(zone = %z.name, error = %e, "STUN discovery failed; advertising the listen address")
            }
        }
    }
}

fn run(mut cfg: Config, path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if cfg.runtime.worker_threads > 0 {
        rt.worker_threads(cfg.runtime.worker_threads);
    }
    let rt = rt.build().context("starting the tokio runtime")?;
    apply_stun(&mut cfg);
    let outcome = rt.block_on(async move {
        let metrics_endpoint = match &cfg.metrics {
            Some(m) => Some(sipborder::observe::metrics::install(m.listen).await?),
            None => None,
        };
        if let Some(c) = &cfg.cdr {
            sipborder::observe::cdr::install(c.into()).context("starting the CDR writer")?;
        }
        let server = sipborder::server::Server::start(&cfg).await?;
        if let Some(endpoint) = metrics_endpoint {
            endpoint.serve(Some(server.security.clone()));
        }
        tokio::spawn(sipborder::observe::metrics::sample_gauges(server.stats.clone(), server.zone_names.clone()));
        for z in &cfg.zones {
            tracing::info!(zone = %z.name, udp = ?z.udp, tcp = ?z.tcp, "listening");
        }
        // Periodic STUN re-discovery: a changed public address is applied like a reload.
        let stun_every = cfg.zones.iter().filter_map(|z| z.stun.as_ref().map(|s| s.interval.0)).min();
        let mut stun_tick = tokio::time::interval(stun_every.unwrap_or(std::time::Duration::from_secs(3600)));
        stun_tick.tick().await;
        let mut cfg = cfg;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let new = load(path.as_deref());
                    match new {
                        Ok(mut c) => {
                            apply_stun(&mut c);
                            match server.reload(&c).await {
                                Ok(()) => {
                                    cfg = c;
                                    tracing::info!("configuration reloaded");
                                }
                                Err(e) => tracing::error!(error = %e, "reload rejected, keeping the running configuration"),
                            }
                        }
                        Err(e) => tracing::error!(errors = %e, "reload rejected, keeping the running configuration"),
                    }
                }
                _ = stun_tick.tick(), if stun_every.is_some() => {
                    let mut fresh = cfg.clone();
                    for z in fresh.zones.iter_mut() {
                        if z.stun.is_some() {
                            z.advertise = None;
                        }
                    }
                    let fresh = tokio::task::spawn_blocking(move || { apply_stun(&mut fresh); fresh }).await?;
                    if fresh.zones.iter().zip(&cfg.zones).any(|(a, b)| a.advertise != b.advertise) {
                        tracing::info!("public address changed, applying it");
                        match server.reload(&fresh).await {
                            Ok(()) => cfg = fresh,
                            Err(e) => tracing::error!(error = %e, "public address change not applied"),
                        }
                    }
                }
                _ = term.recv() => {
                    tracing::info!(grace = ?cfg.runtime.shutdown_grace.0, "SIGTERM: draining");
                    server.drain(cfg.runtime.shutdown_grace.0).await;
                    tracing::info!("drained, exiting");
                    break;
                }
                _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted: exiting"); break; }
            }
        }
        Ok::<(), anyhow::Error>(())
    });
    // Calls ended by the shutdown sit in the CDR queue: let the writer thread store them
    // before the process exit cuts it short.
    sipborder::observe::cdr::flush(std::time::Duration::from_secs(5));
    outcome
}
