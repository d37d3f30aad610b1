//! Developer tasks: building the eBPF object with its toolchain, the demo lab, the test suite.
mod demo;
mod ebpf;
mod paths;
mod prereqs;
mod process;
mod test;
mod toolchain;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "vland developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the eBPF toolchain if missing (rust-src, bpf-linker) and build the eBPF object.
    BuildEbpf,
    /// Build the eBPF object and the `vland` binary that embeds it (release).
    Build,
    /// Build everything and run the self-contained demo lab (namespaces, a veth uplink).
    Demo {
        /// Keep the lab after the demo instead of removing it.
        #[arg(long)]
        keep: bool,
    },
    /// Install prerequisites and run every test: unit, namespace integration, VM suite.
    Test {
        /// Extra arguments passed to `cargo test` after `--`, e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::BuildEbpf => ebpf::build().map(|_| ()),
        Command::Build => ebpf::build_daemon().map(|_| ()),
        Command::Demo { keep } => demo::run(keep),
        Command::Test { args } => test::run_all(&args),
    }
}
