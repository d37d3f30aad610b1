//! Test harness: labs of network namespaces joined by veth, the `vland` binary run inside a lab
//! "host", readers for what the kernel shows (`ip -j`, typed) and frames built byte by byte. Every lab removes what it made when
//! dropped, also when the test panics.
pub mod capture;
pub mod docker;
pub mod engines;
pub mod etcd;
pub mod frame;
pub mod http;
pub mod ip;
pub mod lab;
pub mod sh;
pub mod vm;

pub use lab::{Daemon, Lab, wait_until};
pub use sh::{filter_programs, ingress_counter, run, run_ok, try_filters};

/// The `vland` binary under test: $VLAND_BIN (set by `cargo xtask test`), else the debug build.
pub fn vland_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("VLAND_BIN") {
        return p.into();
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/vland");
    assert!(p.exists(), "{} is missing: run the tests with `cargo xtask test`", p.display());
    p
}

/// Every test namespace and bpffs dir starts with this, so `cargo xtask test` can sweep what a
/// killed run left behind.
pub const TEST_PREFIX: &str = "vlt-";
