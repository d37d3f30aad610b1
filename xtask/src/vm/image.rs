//! Preparing a bootable image from Debian's packages, once, cached outside git: the kernel
//! package behind `linux-image-amd64` (bookworm, or bookworm-backports through a private apt
//! state that leaves /etc/apt alone), its modules with a fresh depmod, the uncompressed vmlinux
//! (booted directly via PVH, which saves seconds per boot under TCG), and an initramfs.
use crate::paths::cache_dir;
use crate::prereqs::ensure_host_tools;
use crate::process::{output, run, step};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelChoice {
    /// bookworm's current `linux-image-amd64` (the default)
    Bookworm,
    /// bookworm-backports' `linux-image-amd64`
    Backports,
}

pub struct VmImage {
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    /// Extracted package root; its lib/modules/KVER is linked into the guest for modprobe.
    pub modules_dir: PathBuf,
    pub kernel_version: String,
}

/// Host tools the VM needs (command, Debian package).
pub const VM_TOOLS: &[(&str, &str)] =
    &[("qemu-system-x86_64", "qemu-system-x86"), ("depmod", "kmod"), ("xz", "xz-utils"), ("zstd", "zstd"), ("dpkg-deb", "dpkg")];

fn vm_cache() -> PathBuf {
    cache_dir().join("vm")
}

/// Apt with either the system's state, or a private one that only knows bookworm-backports.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn for_choice(choice: KernelChoice) -> anyhow::Result<Self> {
        match choice {
            KernelChoice::Bookworm => Ok(Apt { options: Vec::new() }),
            KernelChoice::Backports => {
                let dir = vm_cache().join("apt-backports");
                std::fs::create_dir_all(dir.join("lists/partial"))?;
                std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
                let mirror = system_debian_mirror()?;
                let list = dir.join("sources.list");
                std::fs::write(
                    &list,
                    format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} bookworm-backports main\n"),
                )?;
                let options = vec![
                    format!("Dir::Etc::SourceList={}", list.display()),
                    "Dir::Etc::SourceParts=/nonexistent".to_string(),
                    format!("Dir::State::Lists={}", dir.join("lists").display()),
                    format!("Dir::Cache={}", dir.join("cache").display()),
                ];
                Ok(Apt { options })
            }
        }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for o in &self.options {
            c.arg("-o").arg(o);
        }
        c
    }

    fn update(&self) -> anyhow::Result<()> {
        step("apt-get update (package lists for the VM kernel)");
        run(self.cmd("apt-get").arg("update").arg("-qq"))
    }

    /// The versioned package `linux-image-amd64` depends on, and its version.
    fn resolve_kernel(&self) -> anyhow::Result<Option<(String, String)>> {
        let deps = output(self.cmd("apt-cache").args(["depends", "linux-image-amd64"])).unwrap_or_default();
        let Some(pkg) = deps.lines().find_map(|l| l.trim().strip_prefix("Depends: ").filter(|p| p.starts_with("linux-image-"))) else {
            return Ok(None);
        };
        let policy = output(self.cmd("apt-cache").args(["policy", pkg]))?;
        let version = policy
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate: "))
            .filter(|v| *v != "(none)")
            .with_context(|| format!("apt knows no candidate for {pkg}"))?;
        Ok(Some((pkg.to_string(), version.to_string())))
    }

    fn download(&self, dir: &Path, packages: &[&str]) -> anyhow::Result<()> {
        run(self.cmd("apt-get").current_dir(dir).arg("download").arg("-q").args(packages))
    }
}

/// The Debian mirror this machine's apt already uses (backports lives beside bookworm there).
fn system_debian_mirror() -> anyhow::Result<String> {
    let mut texts = Vec::new();
    for entry in std::fs::read_dir("/etc/apt/sources.list.d").into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "sources") {
            texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    for stanza in texts.iter().flat_map(|t| t.split("\n\n")) {
        let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        if field("Suites:").is_some_and(|s| s.split_whitespace().any(|x| x == "bookworm"))
            && let Some(uri) = field("URIs:").and_then(|u| u.split_whitespace().next())
        {
            return Ok(uri.to_string());
        }
    }
    let legacy = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in legacy.lines() {
        let parts: Vec<&str> = line.split_whitespace().filter(|p| !p.starts_with('[')).collect();
        if parts.len() >= 3 && parts[0] == "deb" && parts[2] == "bookworm" {
            return Ok(parts[1].to_string());
        }
    }
    bail!("no apt source for Debian bookworm found in /etc/apt: cannot locate bookworm-backports")
}

pub fn prepare(choice: KernelChoice) -> anyhow::Result<VmImage> {
    ensure_host_tools(VM_TOOLS)?;
    let apt = Apt::for_choice(choice)?;
    let (pkg, version) = match apt.resolve_kernel()? {
        Some(found) if choice == KernelChoice::Bookworm => found,
        _ => {
            // No lists yet (fresh machine, or the private backports state): fetch them once.
            apt.update()?;
            apt.resolve_kernel()?.context("apt cannot resolve linux-image-amd64")?
        }
    };
    let dir = vm_cache().join(format!("{pkg}_{version}"));
    let ready = dir.join("ready");
    if let Ok(kver) = std::fs::read_to_string(&ready) {
        let image = image_paths(&dir, kver.trim());
        let stamp_file = dir.join("initramfs.stamp");
        if std::fs::read_to_string(&stamp_file).ok().as_deref() != Some(super::initramfs::stamp().as_str()) {
            step("rebuilding the VM initramfs (its recipe changed)");
            super::initramfs::build(&dir.join("root/bin/busybox"), &image.modules_dir, &image.initramfs)?;
            std::fs::write(&stamp_file, super::initramfs::stamp())?;
        }
        return Ok(image);
    }
    step(&format!("preparing the VM image from {pkg} {version} (downloaded once, then cached)"));
    let _ = std::fs::remove_dir_all(&dir);
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs)?;
    if apt.download(&debs, &[&pkg]).is_err() {
        // Debian removes superseded kernels: refresh the lists and resolve again.
        apt.update()?;
        apt.download(&debs, &[&pkg])?;
    }
    Apt::for_choice(KernelChoice::Bookworm)?.download(&debs, &["busybox-static"])?;

    let root = dir.join("root");
    for deb in std::fs::read_dir(&debs)?.flatten() {
        run(Command::new("dpkg-deb").arg("-x").arg(deb.path()).arg(&root))?;
    }
    let modules_base = root.join("lib/modules");
    let kver = std::fs::read_dir(&modules_base)
        .with_context(|| format!("{} has no lib/modules", pkg))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("the kernel package has no modules directory")?;
    run(Command::new("depmod").arg("-b").arg(&root).arg(&kver))?;

    let vmlinuz = root.join(format!("boot/vmlinuz-{kver}"));
    let vmlinux = dir.join("vmlinux");
    extract_vmlinux(&vmlinuz, &vmlinux)?;
    let busybox = root.join("bin/busybox");
    super::initramfs::build(&busybox, &modules_base.join(&kver), &dir.join("initramfs.cpio"))?;
    std::fs::write(dir.join("initramfs.stamp"), super::initramfs::stamp())?;
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::write(&ready, &kver)?;
    Ok(image_paths(&dir, &kver))
}

fn image_paths(dir: &Path, kver: &str) -> VmImage {
    VmImage {
        vmlinux: dir.join("vmlinux"),
        initramfs: dir.join("initramfs.cpio"),
        modules_dir: dir.join("root/lib/modules").join(kver),
        kernel_version: kver.to_string(),
    }
}

/// The technique of the kernel tree's scripts/extract-vmlinux: find a compressed stream inside
/// the bzImage and decompress it until an ELF comes out.
fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(vmlinuz).with_context(|| format!("cannot read {}", vmlinuz.display()))?;
    let formats: [(&[u8], &[&str]); 3] =
        [(b"\xfd7zXZ\x00", &["xz", "-dc"]), (b"\x28\xb5\x2f\xfd", &["zstd", "-dcq"]), (b"\x1f\x8b\x08", &["gzip", "-dc"])];
    for (magic, tool) in formats {
        let mut start = 0;
        while let Some(pos) = memchr::memmem::find(&data[start..], magic).map(|p| p + start) {
            let mut child = Command::new(tool[0])
                .args(&tool[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let mut stdin = child.stdin.take().unwrap();
            let payload = data[pos..].to_vec();
            // Trailing bytes after the stream make the tool complain; its output is still whole.
            let writer = std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut stdin, &payload);
            });
            let result = child.wait_with_output()?;
            let _ = writer.join();
            if result.stdout.starts_with(b"\x7fELF") {
                std::fs::write(out, &result.stdout)?;
                return Ok(());
            }
            start = pos + 1;
        }
    }
    bail!("no compressed ELF kernel found inside {}", vmlinuz.display())
}
