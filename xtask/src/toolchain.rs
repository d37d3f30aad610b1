//! The eBPF toolchain: a nightly with rust-src, and bpf-linker built against that nightly's own
//! libLLVM. Everything is installed on first use, cached outside git, and keyed on the exact
//! nightly, so a changed toolchain (new LLVM) triggers a rebuild instead of an obscure link error.
use crate::paths::{cache_dir, workspace_root};
use crate::process::{clean_cargo_env, output, run, step};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// The toolchain used for the eBPF crate; overridable for trying another nightly.
pub fn ebpf_toolchain() -> String {
    std::env::var("VLAND_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_string())
}

pub struct EbpfToolchain {
    pub toolchain: String,
    /// Directory holding the bpf-linker binary, to be put first on PATH.
    pub linker_bin_dir: PathBuf,
}

struct RustcInfo {
    commit: String,
    llvm_version: String,
    sysroot: PathBuf,
}

pub fn ensure() -> anyhow::Result<EbpfToolchain> {
    let toolchain = ensure_nightly()?;
    let info = rustc_info(&toolchain)?;
    let linker_bin_dir = ensure_bpf_linker(&info)?;
    Ok(EbpfToolchain { toolchain, linker_bin_dir })
}

fn rustup(args: &[&str]) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(args);
    clean_cargo_env(&mut cmd);
    cmd
}

fn ensure_toolchain_installed(toolchain: &str) -> anyhow::Result<()> {
    let list = output(&mut rustup(&["toolchain", "list"]))?;
    if list.lines().any(|l| l.starts_with(toolchain)) {
        return Ok(());
    }
    step(&format!("installing Rust toolchain {toolchain} (minimal profile, rust-src)"));
    run(&mut rustup(&["toolchain", "install", toolchain, "--profile", "minimal", "--component", "rust-src"]))
}

/// The eBPF crate's nightly with rust-src (for -Z build-std=core): enough to check it, not to link it.
pub fn ensure_nightly() -> anyhow::Result<String> {
    let toolchain = ebpf_toolchain();
    ensure_toolchain_installed(&toolchain)?;
    ensure_component(Some(&toolchain), "rust-src", "needed for -Z build-std=core")?;
    Ok(toolchain)
}

/// Adds a rustup component to `toolchain` (None: the toolchain the workspace builds with) if missing.
pub fn ensure_component(toolchain: Option<&str>, component: &str, why: &str) -> anyhow::Result<()> {
    let rustup_for = |args: &[&str]| {
        let mut cmd = rustup(args);
        cmd.current_dir(workspace_root()).args(toolchain.map(|t| ["--toolchain", t]).into_iter().flatten());
        cmd
    };
    let installed = output(&mut rustup_for(&["component", "list", "--installed"]))?;
    if installed.lines().any(|l| l.starts_with(component)) {
        return Ok(());
    }
    step(&format!("adding {component} to {} ({why})", toolchain.unwrap_or("the workspace's toolchain")));
    run(&mut rustup_for(&["component", "add", component]))
}

fn rustc_info(toolchain: &str) -> anyhow::Result<RustcInfo> {
    let verbose = output(&mut rustup(&["run", toolchain, "rustc", "-vV"]))?;
    let field = |name: &str| {
        verbose
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("`rustc +{toolchain} -vV` printed no `{name}` line"))
    };
    let sysroot = output(&mut rustup(&["run", toolchain, "rustc", "--print", "sysroot"]))?;
    Ok(RustcInfo { commit: field("commit-hash:")?, llvm_version: field("LLVM version:")?, sysroot: PathBuf::from(sysroot.trim()) })
}

/// The shared libLLVM the nightly ships, by its soname (e.g. libLLVM.so.22.1-rust-1.97.0-nightly).
fn find_rust_libllvm(sysroot: &Path) -> anyhow::Result<PathBuf> {
    let lib = sysroot.join("lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .with_context(|| format!("cannot read {}", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.")))
        .collect();
    candidates.sort();
    candidates.pop().with_context(|| format!("no libLLVM.so.* in {}: this toolchain cannot host bpf-linker", lib.display()))
}

/// bpf-linker must be linked against an LLVM of the same major version as the rustc that emits
/// the bitcode. Building it against the nightly's own libLLVM guarantees that without apt.
fn ensure_bpf_linker(info: &RustcInfo) -> anyhow::Result<PathBuf> {
    let major = info.llvm_version.split('.').next().unwrap_or_default().to_string();
    let short_commit = &info.commit[..info.commit.len().min(12)];
    let key = format!("bpf-linker-{BPF_LINKER_VERSION}-llvm{}-{short_commit}", info.llvm_version);
    let root = cache_dir().join("tools").join(&key);
    let bin_dir = root.join("bin");
    let linker = bin_dir.join("bpf-linker");
    if linker.exists() && Command::new(&linker).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok(bin_dir);
    }

    let libllvm = find_rust_libllvm(&info.sysroot)?;
    let soname = libllvm.file_name().unwrap().to_owned();
    // Two links: libLLVM.so for the link step, and the soname for the binary's RUNPATH at run time.
    let prefix = root.join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    for name in [std::ffi::OsString::from("libLLVM.so"), soname] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link).with_context(|| format!("cannot link {} -> {}", link.display(), libllvm.display()))?;
    }

    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the toolchain's LLVM {} (about 80 s, once per toolchain)",
        info.llvm_version
    ));
    let mut cmd = Command::new("cargo");
    clean_cargo_env(&mut cmd)
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked", "--no-default-features"])
        .args(["--features", &format!("llvm-{major}")])
        .arg("--root")
        .arg(&root)
        .arg("--target-dir")
        .arg(cache_dir().join("tools/bpf-linker-build"))
        .env("LLVM_PREFIX", &prefix);
    run(&mut cmd).context("bpf-linker did not build; is its llvm feature available for this LLVM major?")?;
    if !Command::new(&linker).arg("--version").output().is_ok_and(|o| o.status.success()) {
        bail!("{} was built but does not run", linker.display());
    }
    Ok(bin_dir)
}
