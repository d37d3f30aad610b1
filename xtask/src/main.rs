//! Developer tasks: building the eBPF object with its toolchain, the demo lab, the lint, the test suite.
mod bench;
mod demo;
mod ebpf;
mod lint;
mod netlab;
mod package;
mod paths;
mod prereqs;
mod process;
mod test;
mod toolchain;
mod vm;

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
    /// Benchmarks against their baselines; writes target/bench/results.json.
    Bench {
        /// Smaller sizes and fewer repetitions (under 3 minutes).
        #[arg(long)]
        quick: bool,
        /// Run only these benchmarks (results.json then holds only theirs).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<bench::Group>,
    },
    /// Run CMD inside a fresh VM booting a Debian kernel; exits with CMD's exit code.
    VmRun {
        #[arg(long, value_enum, default_value = "bookworm")]
        kernel: vm::KernelChoice,
        /// Seconds before the guest is stopped and the run reported as a timeout.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[arg(long, default_value_t = 512)]
        memory_mb: u32,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Download and prepare a VM kernel image (done on first use by vm-run and test).
    VmPrepare {
        #[arg(long, value_enum, default_value = "bookworm")]
        kernel: vm::KernelChoice,
    },
    /// `cargo fmt --check`, and clippy with `-D warnings` over the host crates (all targets) and over
    /// the eBPF crate for bpfel-unknown-none; installs rustfmt, clippy and the eBPF nightly if missing.
    Lint,
    /// Build the Debian package target/debian/vland_<version>_<arch>.deb (release build, man pages,
    /// completions, the unit, the example config, dashboards) and check it with lintian.
    Package,
    /// The lint, then every test (unit, namespace integration, VM suite), prerequisites installed first.
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
        Command::Bench { quick, only } => bench::run(quick, &only),
        Command::VmRun { kernel, timeout, memory_mb, command } => {
            let opts = vm::RunOptions { kernel, timeout: std::time::Duration::from_secs(timeout), memory_mb };
            let code = vm::run(&opts, &command)?;
            std::process::exit(code);
        }
        Command::VmPrepare { kernel } => {
            let image = vm::prepare(kernel)?;
            println!("{} {}", image.kernel_version, image.vmlinux.display());
            Ok(())
        }
        Command::Lint => lint::run(),
        Command::Package => package::build().map(|_| ()),
        Command::Test { args } => test::run_all(&args),
    }
}
