//! One VM run: a fresh share directory, qemu with the host root read-only and the share
//! read-write, the command's stdout and stderr on serial ports 1 and 2 (relayed live), its exit
//! code in the share. A boot that dies before the command starts is retried once; a timeout is
//! reported as a timeout.
use super::image::{KernelChoice, VmImage, prepare};
use crate::paths::target_dir;
use crate::process::step;
use anyhow::{Context, bail};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct RunOptions {
    pub kernel: KernelChoice,
    pub timeout: Duration,
    pub memory_mb: u32,
}

pub enum Outcome {
    Exited(i32),
    TimedOut,
    /// The guest never reached the command (kernel or init failure).
    BootFailed(String),
}

pub fn run(opts: &RunOptions, cmd: &[String]) -> anyhow::Result<i32> {
    if cmd.is_empty() {
        bail!("vm-run needs a command after `--`");
    }
    let image = prepare(opts.kernel)?;
    for attempt in 1..=2 {
        match run_once(&image, opts, cmd)? {
            Outcome::Exited(code) => return Ok(code),
            Outcome::TimedOut => {
                eprintln!("vm-run: TIMEOUT: the guest did not finish within {} s (not a test failure)", opts.timeout.as_secs());
                return Ok(super::TIMEOUT_EXIT);
            }
            Outcome::BootFailed(console) if attempt == 1 => {
                step(&format!("the VM died before the command started; retrying once. Console tail:\n{console}"));
            }
            Outcome::BootFailed(console) => bail!("the VM failed to boot twice; console tail:\n{console}"),
        }
    }
    unreachable!()
}

/// Quoted for the guest's busybox sh (which shlex is tested against); strings never hold NUL.
fn shell_quote(s: &str) -> String {
    shlex::try_quote(s).expect("environment values, paths and arguments hold no NUL").into_owned()
}

/// The script the guest's init runs inside the guest root: the host's environment and working
/// directory, the command with its output on the serial ports, its exit code into the share.
fn run_script(share: &Path, cmd: &[String]) -> anyhow::Result<String> {
    let mut s = String::from("stty -F /dev/ttyS1 raw -echo 2>/dev/null\nstty -F /dev/ttyS2 raw -echo 2>/dev/null\n");
    for (k, v) in std::env::vars() {
        let valid =
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.starts_with(|c: char| c.is_ascii_digit());
        if valid && !matches!(k.as_str(), "PWD" | "OLDPWD" | "SHLVL" | "_") {
            s.push_str(&format!("export {k}={}\n", shell_quote(&v)));
        }
    }
    s.push_str("export VLAND_IN_VM=1\n");
    s.push_str(&format!("cd {}\n", shell_quote(&std::env::current_dir()?.display().to_string())));
    let command = shlex::try_join(cmd.iter().map(String::as_str)).expect("arguments hold no NUL");
    s.push_str(&format!("{command} </dev/null >/dev/ttyS1 2>/dev/ttyS2\n"));
    s.push_str(&format!("echo $? > {}\n", shell_quote(&share.join("exit_code").display().to_string())));
    Ok(s)
}

fn new_share() -> anyhow::Result<PathBuf> {
    let base = target_dir().join("vm-runs");
    std::fs::create_dir_all(&base)?;
    for n in 0.. {
        let dir = base.join(format!("{}-{n}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    unreachable!()
}

fn run_once(image: &VmImage, opts: &RunOptions, cmd: &[String]) -> anyhow::Result<Outcome> {
    let share = new_share()?;
    std::fs::write(share.join("run.sh"), run_script(&share, cmd)?)?;
    for f in ["console.log", "stdout", "stderr"] {
        std::fs::File::create(share.join(f))?;
    }
    let append =
        format!("console=ttyS0 panic=-1 quiet rdinit=/init vland.share={} vland.modules={}", share.display(), image.modules_dir.display());
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", &opts.memory_mb.to_string()])
        .args(["-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-nic", "none"])
        .arg("-kernel")
        .arg(&image.vmlinux)
        .arg("-initrd")
        .arg(&image.initramfs)
        .args(["-append", &append])
        .arg("-serial")
        .arg(format!("file:{}", share.join("console.log").display()))
        .arg("-serial")
        .arg(format!("file:{}", share.join("stdout").display()))
        .arg("-serial")
        .arg(format!("file:{}", share.join("stderr").display()))
        .arg("-virtfs")
        .arg("local,path=/,mount_tag=hostroot,readonly=on,security_model=none,multidevs=remap")
        .arg("-virtfs")
        .arg(format!("local,path={},mount_tag=share,security_model=none,multidevs=remap", share.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = qemu.spawn().context("cannot start qemu-system-x86_64")?;

    let stop = Arc::new(AtomicBool::new(false));
    let relays = [
        relay(share.join("stdout"), Box::new(std::io::stdout()), stop.clone()),
        relay(share.join("stderr"), Box::new(std::io::stderr()), stop.clone()),
    ];
    let deadline = Instant::now() + opts.timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, Ordering::SeqCst);
    for r in relays {
        let _ = r.join();
    }
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    let outcome = match (status, std::fs::read_to_string(share.join("exit_code"))) {
        (_, Ok(code)) => Outcome::Exited(code.trim().parse().unwrap_or(1)),
        (None, _) => Outcome::TimedOut,
        (Some(_), Err(_)) if share.join("started").exists() => {
            // The command started but the guest died under it (a kernel panic, say).
            eprintln!("vm-run: the guest stopped before the command finished; console tail:\n{}", console_tail(&share));
            Outcome::Exited(1)
        }
        (Some(status), Err(_)) => Outcome::BootFailed(format!("qemu {status}: {}\n{}", qemu_err.trim(), console_tail(&share))),
    };
    if std::env::var_os("VLAND_VM_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&share);
    }
    Ok(outcome)
}

fn console_tail(share: &Path) -> String {
    let text = std::fs::read_to_string(share.join("console.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Copies what the guest writes to a serial-port file onto our own stream, as it arrives.
fn relay(path: PathBuf, mut out: Box<dyn Write + Send>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut file) = std::fs::File::open(&path) else { return };
        let mut pos = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let finished = stop.load(Ordering::SeqCst);
            let _ = file.seek(SeekFrom::Start(pos));
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pos += n as u64;
                let _ = out.write_all(&buf[..n]);
            }
            let _ = out.flush();
            if finished {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}
