//! `cargo xtask package`: the Debian package, laid out by hand and built with `dpkg-deb`, then
//! checked with lintian. Man pages and shell completions are generated from vland's own CLI
//! definition, so they never drift from `vland --help`.
use crate::paths::{target_dir, workspace_root};
use crate::prereqs::ensure_host_tools;
use crate::process::{clean_cargo_env, output, run, step};
use anyhow::{Context, bail};
use clap::CommandFactory;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "vland";
const MAINTAINER: &str = "vland maintainers <vland@example.org>";
/// What building and checking the package needs besides cargo.
pub const TOOLS: &[(&str, &str)] = &[("dpkg-deb", "dpkg"), ("dpkg-shlibdeps", "dpkg-dev"), ("strip", "binutils"), ("lintian", "lintian")];

/// Binaries of the workspace that the package ships besides `vland`, by cargo bin name and
/// installed path. This is the hook for the CNI plugin: once a `vland-cni` binary target exists,
/// it is built and installed where Debian's containernetworking-plugins live, so Podman finds it.
/// Until then the package ships no plugin (and no stand-in for one).
const EXTRA_BINARIES: &[(&str, &str)] = &[("vland-cni", "usr/lib/cni/vland")];

/// Builds `target/debian/vland_<version>_<arch>.deb` and returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    ensure_host_tools(TOOLS)?;
    let vland = crate::ebpf::build_daemon()?;
    let version = vland::cli::Cli::command().get_version().context("the CLI has no version")?.to_string();
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?.trim().to_string();

    let out = target_dir().join("debian");
    let root = out.join(format!("{PACKAGE}_{version}_{arch}"));
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    step(&format!("laying out {}", root.display()));
    let mut binaries = vec![(vland, PathBuf::from("usr/sbin/vland"))];
    for (bin, dest) in EXTRA_BINARIES {
        if let Some(built) = build_extra_binary(bin)? {
            binaries.push((built, PathBuf::from(dest)));
        }
    }
    for (built, dest) in &binaries {
        let dest = root.join(dest);
        install(built, &dest, 0o755)?;
        run(Command::new("strip").args(["--strip-unneeded", "--remove-section=.comment", "--remove-section=.note"]).arg(&dest))?;
    }
    let repo = workspace_root();
    install(&repo.join("packaging/vland.service"), &root.join("lib/systemd/system/vland.service"), 0o644)?;
    install(&repo.join("packaging/vland.toml"), &root.join("etc/vland/vland.toml"), 0o644)?;
    install(&repo.join("monitoring/vland-dashboard.json"), &root.join("usr/share/vland/grafana/vland-dashboard.json"), 0o644)?;
    install(&repo.join("monitoring/vland-alerts.yml"), &root.join("usr/share/vland/prometheus/vland-alerts.yml"), 0o644)?;
    man_pages(&root.join("usr/share/man/man8"))?;
    completions(&root.join("usr/share"))?;
    docs(&root.join("usr/share/doc").join(PACKAGE), &version)?;
    control(&root, &version, &arch, &binaries.iter().map(|(_, dest)| root.join(dest)).collect::<Vec<_>>())?;

    let deb = out.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    run(Command::new("dpkg-deb").args(["--root-owner-group", "-Zxz", "--build"]).arg(&root).arg(&deb))?;
    step("lintian (errors fail the package)");
    // --fail-on error: warnings are shown, errors fail; running as root needs --allow-root.
    run(Command::new("lintian").args(["--fail-on", "error", "--allow-root", "--tag-display-limit", "0"]).arg(&deb))?;
    step(&format!("built {}", deb.display()));
    Ok(deb)
}

/// Builds a workspace binary target if the workspace has one by that name.
fn build_extra_binary(bin: &str) -> anyhow::Result<Option<PathBuf>> {
    let metadata = output(clean_cargo_env(&mut Command::new("cargo")).current_dir(workspace_root()).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
    ]))?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let Some(package) = metadata["packages"].as_array().into_iter().flatten().find(|p| {
        p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"] == bin && t["kind"].as_array().is_some_and(|k| k.contains(&"bin".into())))
    }) else {
        return Ok(None);
    };
    step(&format!("building {bin} (release)"));
    let name = package["name"].as_str().context("a package without a name")?;
    run(clean_cargo_env(&mut Command::new("cargo")).current_dir(workspace_root()).args([
        "build",
        "--release",
        "--package",
        name,
        "--bin",
        bin,
    ]))?;
    Ok(Some(target_dir().join("release").join(bin)))
}

fn install(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(to.parent().context("no parent")?)?;
    fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(to.parent().context("no parent")?)?;
    fs::write(to, contents)?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// gzip -9n, as Debian policy wants for man pages and changelogs (no name or time stamp inside).
fn gzip(path: &Path) -> anyhow::Result<()> {
    run(Command::new("gzip").args(["-9nf"]).arg(path))
}

/// vland(8) and one page per subcommand (vland-stats(8), ...): a daemon and its admin commands.
fn man_pages(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let mut cmd = vland::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![cmd.clone()];
    // Built, so each subcommand's display name is `vland-<name>`: its page's name and file.
    pages.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let source = format!("vland {}", cmd.get_version().unwrap_or_default());
    for page in pages {
        let man = clap_mangen::Man::new(page).section("8").manual("System Administration").source(source.clone());
        let path = man.generate_to(dir)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        gzip(&path)?;
    }
    Ok(())
}

fn completions(share: &Path) -> anyhow::Result<()> {
    use clap_complete::Shell;
    for (shell, dir, file) in [
        (Shell::Bash, "bash-completion/completions", "vland"),
        (Shell::Zsh, "zsh/vendor-completions", "_vland"),
        (Shell::Fish, "fish/vendor_completions.d", "vland.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut vland::cli::Cli::command(), "vland", &mut text);
        write(&share.join(dir).join(file), &text, 0o644)?;
    }
    Ok(())
}

fn docs(dir: &Path, version: &str) -> anyhow::Result<()> {
    let copyright = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vland

Files: *
Copyright: 2025-2026 The vland contributors
License: MIT or Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0. The MIT license:
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 THE SOFTWARE.
";
    write(&dir.join("copyright"), copyright.as_bytes(), 0o644)?;
    // The date of the commit being packaged, so the same commit gives the same changelog.
    let date = output(Command::new("git").current_dir(workspace_root()).args(["log", "-1", "--format=%aD"]))?;
    let changelog = format!(
        "{PACKAGE} ({version}) unstable; urgency=medium\n\n  * Built from the vland repository by cargo xtask package.\n\n -- {MAINTAINER}  {}\n",
        date.trim()
    );
    // A native package (no Debian revision): its changelog is changelog.gz.
    let path = dir.join("changelog");
    write(&path, changelog.as_bytes(), 0o644)?;
    gzip(&path)
}

/// DEBIAN/: control (dependencies from dpkg-shlibdeps), conffiles, md5sums, maintainer scripts.
fn control(root: &Path, version: &str, arch: &str, binaries: &[PathBuf]) -> anyhow::Result<()> {
    let debian = root.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    fs::set_permissions(&debian, fs::Permissions::from_mode(0o755))?;
    let depends = shlib_depends(binaries)?;
    let installed_kib = du_kib(root)?;
    let control = format!(
        "Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: {MAINTAINER}
Installed-Size: {installed_kib}
Depends: {depends}
Recommends: iproute2
Suggests: prometheus
Section: net
Priority: optional
Description: declarative macvlan/ipvlan container networking with eBPF counters
 vland is a host daemon that puts containers directly on the physical
 network: macvlan and ipvlan networks, 802.1Q sub-interfaces and trunk VLAN
 enforcement, described in one TOML file and applied over rtnetlink.
 eBPF programs count every endpoint's traffic exactly; the counters are
 served to Prometheus and shown by `vland stats`.
 .
 The package ships the daemon, its systemd unit, an example
 /etc/vland/vland.toml, man pages, shell completions, and a Grafana
 dashboard and Prometheus alert rules under /usr/share/vland.
"
    );
    write(&debian.join("control"), control.as_bytes(), 0o644)?;
    write(&debian.join("conffiles"), b"/etc/vland/vland.toml\n", 0o644)?;
    // The unit is not enabled or started on install: the example config manages nothing, and a
    // network daemon starting before it is configured would surprise. `systemctl enable --now vland`.
    let postinst = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then\n    systemctl --system daemon-reload >/dev/null || true\nfi\n";
    write(&debian.join("postinst"), postinst.as_bytes(), 0o755)?;
    let postrm = "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then\n    systemctl --system daemon-reload >/dev/null || true\nfi\n";
    write(&debian.join("postrm"), postrm.as_bytes(), 0o755)?;
    let prerm = "#!/bin/sh\nset -e\nif [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then\n    deb-systemd-invoke stop vland.service >/dev/null || true\nfi\n";
    write(&debian.join("prerm"), prerm.as_bytes(), 0o755)?;
    let sums = output(
        Command::new("sh")
            .current_dir(root)
            .args(["-c", "find . -type f ! -path './DEBIAN/*' ! -path './etc/*' | sed 's|^\\./||' | LC_ALL=C sort | xargs md5sum"]),
    )?;
    write(&debian.join("md5sums"), sums.as_bytes(), 0o644)
}

/// The shared libraries' packages the binaries link against, as dpkg-shlibdeps finds them.
fn shlib_depends(binaries: &[PathBuf]) -> anyhow::Result<String> {
    // dpkg-shlibdeps wants to run in a source tree with debian/control.
    let scratch = target_dir().join("debian/shlibdeps");
    fs::create_dir_all(scratch.join("debian"))?;
    fs::write(scratch.join("debian/control"), format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"))?;
    let out = output(Command::new("dpkg-shlibdeps").current_dir(&scratch).args(["-O", "--warnings=0"]).arg("-e").args(binaries))?;
    let depends = out.lines().find_map(|l| l.strip_prefix("shlibs:Depends=")).map(str::trim).unwrap_or_default().to_string();
    if depends.is_empty() {
        bail!("dpkg-shlibdeps found no dependencies for {binaries:?}: {out}");
    }
    Ok(depends)
}

fn du_kib(root: &Path) -> anyhow::Result<u64> {
    let out = output(Command::new("du").args(["-sk", "--exclude=DEBIAN"]).arg(root))?;
    out.split_whitespace().next().and_then(|n| n.parse().ok()).context("du printed no size")
}
