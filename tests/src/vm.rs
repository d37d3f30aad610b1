//! Tests that need kernel features this machine's kernel may lack (ipvlan, 802.1Q, dummy).
//! A test binary marks them `#[ignore = "needs ... (runs in the VM suite)"]` and has one ordinary
//! test that calls [`run_guest_tests`]: it asks `vland doctor` whether this kernel has the
//! features; if so the marked tests run right here, else the binary boots once in the VM
//! (`cargo xtask vm-run`) and runs them there. Either way their output is shown and a failure
//! fails this test, so nothing is skipped silently.
use crate::vland_bin;
use std::io::Write;
use std::process::Command;

/// Features `vland doctor` reports as missing on this kernel, out of `features`.
pub fn missing_features(features: &[&str]) -> Vec<String> {
    let out = Command::new(vland_bin()).args(["doctor", "--json"]).output().expect("cannot run vland doctor");
    assert!(out.status.success(), "vland doctor failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json printed non-JSON");
    features.iter().filter(|f| report["features"][**f]["available"] != true).map(|f| f.to_string()).collect()
}

/// Straight to the terminal: libtest captures only the print macros, and this report must show.
fn say(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

pub fn run_guest_tests(features: &[&str]) {
    let exe = std::env::current_exe().expect("no current_exe");
    let test_args = ["--ignored", "--test-threads=1", "--color=never"];
    let missing = missing_features(features);
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    let out = if missing.is_empty() {
        say(&format!("\n[{name}] this kernel has {features:?} (per vland doctor): running the kernel-feature tests here\n"));
        Command::new(&exe).args(test_args).output().expect("cannot re-run the test binary")
    } else {
        let xtask = std::env::var_os("VLAND_XTASK").unwrap_or_else(|| {
            panic!(
                "this kernel lacks {missing:?} and VLAND_XTASK is unset: run the tests with `cargo xtask test`, which runs them in the VM"
            )
        });
        let kernel = std::env::var("VLAND_VM_KERNEL").unwrap_or_else(|_| "bookworm".to_string());
        say(&format!(
            "\n[{name}] this kernel lacks {missing:?} (per vland doctor): running the kernel-feature tests in the VM ({kernel} kernel)\n"
        ));
        Command::new(xtask)
            .args(["vm-run", "--kernel", &kernel, "--timeout", "900", "--"])
            .arg(&exe)
            .args(test_args)
            .output()
            .expect("cannot run xtask vm-run")
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines() {
        say(&format!("[{name}] {line}\n"));
    }
    if out.status.code() == Some(124) {
        panic!("the VM timed out before the tests finished (not a test failure):\n{stderr}");
    }
    assert!(out.status.success(), "kernel-feature tests failed ({}):\n{stdout}\n{stderr}", out.status);
    // A run that executed nothing must not pass.
    let ran = stdout.lines().filter_map(|l| l.strip_prefix("test result: ok. ")).any(|l| !l.starts_with("0 passed"));
    assert!(ran, "no kernel-feature test ran:\n{stdout}\n{stderr}");
}
