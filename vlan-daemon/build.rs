//! Embeds the eBPF object built by `cargo xtask build-ebpf`, so `vland` needs no toolchain at run time.
use std::path::PathBuf;

fn main() {
    let object = std::env::var_os("VLAND_EBPF_OBJECT").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../target/bpfel-unknown-none/release/vlan-ebpf")
    });
    println!("cargo:rerun-if-env-changed=VLAND_EBPF_OBJECT");
    println!("cargo:rerun-if-changed={}", object.display());
    if !object.exists() {
        panic!("the eBPF object {} is missing: run `cargo xtask build-ebpf` first (or `cargo xtask build`)", object.display());
    }
    println!("cargo:rustc-env=VLAND_EBPF_OBJECT_PATH={}", object.display());
}
