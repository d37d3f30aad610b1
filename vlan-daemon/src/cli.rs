//! The command line: what each `vland` subcommand does, on top of the library.
#[cfg(feature = "etcd")]
use crate::cluster;
use crate::{config, control, daemon, doctor, reconcile, stats, status_tree};

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "vland", version, about = "Declarative macvlan/ipvlan container networking with eBPF counters")]
#[command(args_conflicts_with_subcommands = false, subcommand_negates_reqs = true)]
pub struct Cli {
    /// The declarative config (TOML). Without a subcommand, vland runs as the daemon on it.
    /// [default: /etc/vland/vland.toml]
    #[arg(long, short = 'c', global = true, env = "VLAND_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Make the kernel match the config once, then exit.
    Apply,
    /// Show what `apply` would change, and why, changing nothing. Exit code 0: nothing to do;
    /// 2: there are changes; 1: an error (as `terraform plan -detailed-exitcode`).
    Plan {
        /// The plan as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything vland created for this config's state dir, and nothing else.
    Down,
    /// Per-endpoint traffic counters, read from the pinned eBPF maps.
    Stats {
        /// Only this network's endpoints (and the trunk VLANs they use).
        #[arg(long, value_name = "NETWORK")]
        network: Option<String>,
        /// Only this endpoint (and the trunk VLAN it uses).
        #[arg(long, value_name = "ENDPOINT")]
        endpoint: Option<String>,
        /// One JSON document instead of a table (with --watch: one JSON line per interval).
        #[arg(long)]
        json: bool,
        /// Exact numbers in the table instead of human units (1.2 MiB, 3.4 kpps).
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Keep reading and show per-second rates, until interrupted.
        #[arg(long)]
        watch: bool,
        /// Seconds between two readings with --watch.
        #[arg(long, default_value_t = 1.0, requires = "watch")]
        interval: f64,
        /// Stop after this many intervals with --watch (for scripts).
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
    /// What the running daemon last applied, asked through its control socket ([daemon] socket),
    /// and the tree of what it manages: parent -> VLAN -> network -> endpoint.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make the running daemon re-apply its config now, and wait for the outcome (fails when
    /// the apply fails).
    Reload,
    /// Which kernel features this machine has, found by trying them in a scratch namespace.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// The hosts sharing `scope = "cluster"` networks through etcd ([cluster] in the config).
    #[cfg(feature = "etcd")]
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[cfg(feature = "etcd")]
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Hosts with their leases, and every network's blocks: owner and how full.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Frees the blocks and static addresses of a host that is gone. Refuses while its lease
    /// is alive (vland runs there, or stopped less than 30 s ago).
    ReleaseHost { host: String },
}

/// Runs the command line: parses the arguments, logs to stderr, and returns the exit code.
pub fn main() -> std::process::ExitCode {
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VLAND_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(!stderr_is_journal() && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // The journal stamps every line itself.
    if stderr_is_journal() {
        fmt.without_time().init()
    } else {
        fmt.init()
    }
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<ChangesPending>() => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("vland: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `vland plan` found changes to make: exit code 2, nothing else to say.
#[derive(Debug, thiserror::Error)]
#[error("the plan has changes")]
struct ChangesPending;

/// The config every command reads when neither --config nor VLAND_CONFIG names one.
pub const DEFAULT_CONFIG: &str = "/etc/vland/vland.toml";

/// Whether stderr is connected to systemd's journal: systemd sets JOURNAL_STREAM to the
/// `device:inode` of the stream it gives the service, which a redirect elsewhere no longer matches.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (dev, ino) = v.split_once(':')?;
        Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    let stderr = std::io::stderr();
    let Ok(fd) = std::os::fd::AsFd::as_fd(&stderr).try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The config file: --config, else VLAND_CONFIG, else /etc/vland/vland.toml; it must exist.
fn require_config(config: &Option<PathBuf>) -> anyhow::Result<&Path> {
    let path = config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
    if config.is_none() && !path.exists() {
        anyhow::bail!("no config at {DEFAULT_CONFIG} (the default): create it, or name one with --config FILE or VLAND_CONFIG=FILE");
    }
    Ok(path)
}

/// The daemon's control socket, from the config's [daemon] section.
fn control_socket(config: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = require_config(config)?;
    config::load_daemon_section(path)?
        .socket
        .with_context(|| format!("{} has no [daemon] socket: set one (and restart the daemon) to use status and reload", path.display()))
}

fn describe(report: &control::ApplyReport) -> String {
    match &report.error {
        Some(e) => format!("failed: {e}"),
        None => format!("ok, {} created, {} repaired, {} removed", report.created, report.repaired, report.removed),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: netlink work is sequential, and namespace work runs on threads of its own.
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The daemon's runtime: its apply loop runs on the thread that calls `block_on` and may block
/// it; one worker thread serves /metrics, the control socket and the netlink connections
/// meanwhile (see daemon.rs).
fn daemon_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("vland-serve").enable_all().build()?)
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            let path = require_config(&cli.config)?;
            daemon_runtime()?.block_on(daemon::run(path))
        }
        Some(Command::Apply) => {
            let path = require_config(&cli.config)?;
            let config = config::load_effective(path)?;
            runtime()?.block_on(reconcile::apply(&config, &path.display().to_string()))?;
            Ok(())
        }
        Some(Command::Plan { json }) => {
            let path = require_config(&cli.config)?;
            let config = config::load_effective(path)?;
            let plan = runtime()?.block_on(reconcile::plan(&config, &path.display().to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{plan}");
            }
            if plan.is_empty() { Ok(()) } else { Err(ChangesPending.into()) }
        }
        Some(Command::Down) => {
            let daemon = config::load_daemon_section(require_config(&cli.config)?)?;
            runtime()?.block_on(reconcile::down(&daemon.state_dir, &daemon.bpf_dir))?;
            Ok(())
        }
        Some(Command::Stats { network, endpoint, json, raw, watch, interval, count }) => {
            // Without a config file, the default [daemon] paths: stats reads pinned maps only.
            let daemon = match (&cli.config, Path::new(DEFAULT_CONFIG).exists()) {
                (Some(path), _) => config::load_daemon_section(path)?,
                (None, true) => config::load_daemon_section(Path::new(DEFAULT_CONFIG))?,
                (None, false) => config::DaemonConfig::default(),
            };
            let view = stats::View { filter: stats::Filter { network, endpoint }, json, raw };
            if watch {
                anyhow::ensure!(interval > 0.0, "--interval must be above 0 seconds");
                stats::watch(&daemon, &view, std::time::Duration::from_secs_f64(interval), count)
            } else {
                stats::run(&daemon, &view)
            }
        }
        Some(Command::Status { json }) => {
            let path = require_config(&cli.config)?;
            let mut answer = control::request(&control_socket(&cli.config)?, "status")?;
            // The tree from the state the daemon keeps, named through the config it runs.
            let daemon = config::load_daemon_section(path)?;
            let managed = status_tree::collect(&crate::state::read(&daemon.state_dir)?, config::load_effective(path).ok().as_ref());
            if json {
                answer["managed"] = serde_json::to_value(&managed)?;
                println!("{answer}");
            } else {
                let status: control::Status = serde_json::from_value(answer)?;
                println!("vland daemon {} on {}", status.pid, status.config);
                match status.last_apply {
                    Some(a) => {
                        println!("last apply ({}): {}", a.reason, describe(&a));
                        for action in &a.actions {
                            println!("  - {action}");
                        }
                    }
                    None => println!("no apply yet"),
                }
                print!("{}", status_tree::render(&managed));
            }
            Ok(())
        }
        Some(Command::Reload) => {
            let answer = control::request(&control_socket(&cli.config)?, "apply")?;
            let report: control::ApplyReport = serde_json::from_value(answer)?;
            anyhow::ensure!(report.ok, "the daemon's apply failed: {}", report.error.unwrap_or_default());
            println!("applied: {}", describe(&report));
            Ok(())
        }
        Some(Command::Doctor { json }) => doctor::run(json),
        #[cfg(feature = "etcd")]
        Some(Command::Cluster(command)) => {
            let path = require_config(&cli.config)?;
            let config = config::load(path)?;
            let cc = config.cluster.with_context(|| format!("{} has no [cluster] table", path.display()))?;
            runtime()?.block_on(async {
                let mut etcd = cluster::client::Etcd::connect(&cc).await?;
                match command {
                    ClusterCommand::Status { json } => {
                        let status = cluster::hosts::status(&mut etcd).await?;
                        if json {
                            println!("{}", serde_json::to_string_pretty(&status)?);
                        } else {
                            print!("{status}");
                        }
                    }
                    ClusterCommand::ReleaseHost { host } => {
                        let released = cluster::hosts::release_host(&mut etcd, &host).await?;
                        println!("released host {host}: {} block(s), {} static address(es)", released.blocks, released.statics);
                    }
                }
                Ok(())
            })
        }
    }
}
