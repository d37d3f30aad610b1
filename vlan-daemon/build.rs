//! Embeds the eBPF object built by `cargo xtask build-ebpf`, so `vland` needs no toolchain at run
//! time. Without it (`cargo check` or clippy on a fresh clone) the build goes on with an empty
//! object, and loading eBPF programs then fails with an error saying how to build them.
use std::path::PathBuf;

fn main() {
    let object = std::env::var_os("VLAND_EBPF_OBJECT").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../target/bpfel-unknown-none/release/vlan-ebpf")
    });
    println!("cargo:rerun-if-env-changed=VLAND_EBPF_OBJECT");
    println!("cargo:rerun-if-changed={}", object.display());
    let embedded = if object.exists() {
        object
    } else {
        println!(
            "cargo:warning=the eBPF object {} is missing: this vland cannot load its programs (build with `cargo xtask build`)",
            object.display()
        );
        let empty = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("no-ebpf-object");
        std::fs::write(&empty, b"").unwrap();
        empty
    };
    println!("cargo:rustc-env=VLAND_EBPF_OBJECT_PATH={}", embedded.display());
}
