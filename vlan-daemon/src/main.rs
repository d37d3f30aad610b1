//! vland: Docker-style macvlan/ipvlan networks for containers on the physical network, made
//! declarative, with eBPF counters on every endpoint. Everything lives in the library.
fn main() -> std::process::ExitCode {
    vland::cli::main()
}
