//! The initramfs: static busybox, the modules needed to mount the shared root (9p over virtio,
//! overlayfs) in dependency order, and /init, which builds the guest's root and runs the command.
use anyhow::{Context, bail};
use cpio::NewcBuilder;
use std::collections::{BTreeMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::process::Command;

const NEEDED_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];
const INIT: &str = include_str!("init.sh");
/// File type and permission bits of the archive's entries ("newc" format, which the kernel unpacks).
const DIR: u32 = 0o040755;
const FILE: u32 = 0o100644;
const EXEC: u32 = 0o100755;
const SYMLINK: u32 = 0o120777;

/// Changes whenever what goes into the initramfs changes, so cached images are rebuilt.
pub fn stamp() -> String {
    let text = format!("{INIT}{NEEDED_MODULES:?}");
    format!("{:016x}", const_fnv1a_hash::fnv1a_hash_str_64(&text))
}

pub fn build(busybox: &Path, modules: &Path, out: &Path) -> anyhow::Result<()> {
    let deps = read_modules_dep(modules)?;
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in NEEDED_MODULES {
        match deps.keys().find(|path| module_name(path) == *name) {
            Some(path) => visit(path, &deps, &mut seen, &mut order),
            None if builtin.lines().any(|l| module_name(l) == *name) => {}
            None => bail!("module {name} is neither built in nor in {}", modules.display()),
        }
    }

    let mut entries = Vec::new();
    let mut add = |name: &str, mode: u32, data: Vec<u8>| entries.push((NewcBuilder::new(name).mode(mode), Cursor::new(data)));
    for d in ["bin", "dev", "proc", "sys", "modules", "host", "upper", "newroot"] {
        add(d, DIR, Vec::new());
    }
    add("bin/busybox", EXEC, std::fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?);
    add("bin/sh", SYMLINK, b"busybox".to_vec());
    add("init", EXEC, INIT.as_bytes().to_vec());
    let mut list = String::new();
    for path in &order {
        let file = format!("{}.ko", module_name(path));
        add(&format!("modules/{file}"), FILE, decompressed(&modules.join(path))?);
        list.push_str(&file);
        list.push('\n');
    }
    add("modules/order", FILE, list.into_bytes());
    let archive = cpio::write_cpio(entries.into_iter(), Vec::new()).context("cannot build the initramfs")?;
    std::fs::write(out, archive).with_context(|| format!("cannot write {}", out.display()))
}

/// modules.dep: "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko ...".
fn read_modules_dep(modules: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(modules.join("modules.dep")).context("no modules.dep: did depmod run?")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| (m.to_string(), d.split_whitespace().map(String::from).collect()))
        .collect())
}

/// "kernel/net/9p/9pnet_virtio.ko.xz" -> "9pnet_virtio"
fn module_name(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file)
}

/// Depth first: every dependency is loaded before the module that needs it.
fn visit(path: &str, deps: &BTreeMap<String, Vec<String>>, seen: &mut HashSet<String>, order: &mut Vec<String>) {
    if !seen.insert(path.to_string()) {
        return;
    }
    for d in deps.get(path).into_iter().flatten() {
        visit(d, deps, seen, order);
    }
    order.push(path.to_string());
}

/// busybox insmod wants plain .ko files; newer Debian kernels ship .ko.xz or .ko.zst.
fn decompressed(path: &Path) -> anyhow::Result<Vec<u8>> {
    let tool: Option<&[&str]> = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => Some(&["xz", "-dc"]),
        Some("zst") => Some(&["zstd", "-dcq"]),
        Some("gz") => Some(&["gzip", "-dc"]),
        _ => None,
    };
    match tool {
        None => Ok(std::fs::read(path)?),
        Some(t) => {
            let out = Command::new(t[0]).args(&t[1..]).arg(path).output()?;
            if !out.status.success() {
                bail!("cannot decompress {}", path.display());
            }
            Ok(out.stdout)
        }
    }
}
