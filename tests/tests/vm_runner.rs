//! The VM runner itself (`cargo xtask vm-run`): exit codes, separate stdout and stderr, no
//! network card, the host's paths visible, and guest writes kept away from the host.
use std::process::Command;

#[test]
fn vm_run_isolates_the_guest_and_returns_its_exit_code_and_streams() {
    let Some(xtask) = std::env::var_os("VLAND_XTASK") else {
        panic!("VLAND_XTASK is unset: run the tests with `cargo xtask test`");
    };
    let marker = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-wrote-this");
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "ls /sys/class/net; echo to-stderr >&2; test -f {manifest}/Cargo.toml && echo sees-repo; \
         touch {marker} && echo wrote; echo guest-kernel $(uname -r); exit 7",
        manifest = env!("CARGO_MANIFEST_DIR"),
        marker = marker.display()
    );
    let out = Command::new(xtask).args(["vm-run", "--timeout", "300", "--", "sh", "-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "stdout: {stdout}\nstderr: {stderr}");
    // Only loopback: no network card, so nothing can leave the guest.
    let links: Vec<&str> = stdout.lines().take_while(|l| !l.starts_with("sees-repo")).collect();
    assert_eq!(links, vec!["lo"], "{stdout}");
    assert!(stdout.contains("sees-repo") && stdout.contains("wrote"), "{stdout}");
    assert!(!stdout.contains("to-stderr") && stderr.contains("to-stderr"), "streams mixed: {stdout} / {stderr}");
    // A Debian distribution kernel, not this machine's.
    let host_kernel = String::from_utf8_lossy(&Command::new("uname").arg("-r").output().unwrap().stdout).trim().to_string();
    let guest_kernel = stdout.lines().find_map(|l| l.strip_prefix("guest-kernel ")).unwrap_or_default().to_string();
    assert!(!guest_kernel.is_empty() && guest_kernel != host_kernel, "guest kernel {guest_kernel:?}, host {host_kernel}");
    // The guest's write went to its overlay, never to the host.
    assert!(!marker.exists(), "the guest wrote through to the host");
}
