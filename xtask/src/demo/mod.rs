//! The main job: the seed's lab rebuilt with namespaces on this machine. A "switch" namespace
//! routes between the hosts' subnet (gateway 172.16.10.1 on a bridge) and a test server on
//! 10.20.30.0/24; two "Docker hosts" plug into the bridge with a veth uplink `eth0`, each runs
//! the vland daemon with one half of the subnet, and their endpoints are the "containers".
mod engines;

use crate::ebpf::build_daemon;
use crate::netlab::{add_ns, in_ns, quiet};
use crate::paths::target_dir;
use crate::prereqs::ensure_host_tools;
use crate::process::step;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PREFIX: &str = "vdemo-";

/// Set by Ctrl-C: the demo stops at the next step, and the lab's Drop cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
const HOST_TEMPLATE: &str = include_str!("../../demo/host.toml");

struct Host {
    name: &'static str,
    own_ip: &'static str,
    range: &'static str,
    endpoint: &'static str,
}

const HOSTS: [Host; 2] = [
    Host { name: "docker1", own_ip: "172.16.10.2/24", range: "172.16.10.0/25", endpoint: "web1" },
    Host { name: "docker2", own_ip: "172.16.10.3/24", range: "172.16.10.128/25", endpoint: "web2" },
];

fn ns(short: &str) -> String {
    format!("{PREFIX}{short}")
}

/// Runs a command, echoing it first, as a person would type it.
fn show(args: &[&str]) -> anyhow::Result<bool> {
    println!("$ {}", args.join(" "));
    let status = Command::new(args[0]).args(&args[1..]).status().with_context(|| format!("cannot run {}", args[0]))?;
    check_interrupted()?;
    Ok(status.success())
}

fn heading(text: &str) {
    println!("\n==> {text}");
}

/// Everything the demo made, removed on drop: after success, on error and after Ctrl-C.
struct Lab {
    vland: PathBuf,
    dir: PathBuf,
    daemons: Vec<Child>,
    keep: bool,
}

impl Lab {
    fn config_path(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{host}.toml"))
    }

    fn vland(&self, host: &str, args: &[&str]) -> Command {
        self.vland_with(host, &self.config_path(host), args)
    }

    fn vland_with(&self, host: &str, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", ns(host))).arg(&self.vland).args(args).arg("--config").arg(config);
        cmd
    }

    fn build(&mut self) -> anyhow::Result<()> {
        heading("building the lab: switch, test server, two hosts with a veth uplink each");
        let sw = ns("switch");
        let srv = ns("test-server");
        for n in [&sw, &srv] {
            add_ns(n)?;
        }
        in_ns(&sw, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(&sw, &["ip", "addr", "add", "172.16.10.1/24", "dev", "br0"])?;
        // The gateway of the Docker network the demo creates on docker1 (the seed's 10.10.10.0/24).
        in_ns(&sw, &["ip", "addr", "add", "10.10.10.1/24", "dev", "br0"])?;
        in_ns(&sw, &["ip", "link", "set", "br0", "up"])?;
        in_ns(&sw, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        quiet(&["ip", "link", "add", "eth0", "netns", &srv, "type", "veth", "peer", "name", "to-server", "netns", &sw])?;
        in_ns(&sw, &["ip", "addr", "add", "10.20.30.1/24", "dev", "to-server"])?;
        in_ns(&sw, &["ip", "link", "set", "to-server", "up"])?;
        in_ns(&srv, &["ip", "addr", "add", "10.20.30.13/24", "dev", "eth0"])?;
        in_ns(&srv, &["ip", "link", "set", "eth0", "up"])?;
        in_ns(&srv, &["ip", "route", "add", "default", "via", "10.20.30.1"])?;
        for h in &HOSTS {
            let hn = ns(h.name);
            add_ns(&hn)?;
            let port = format!("to-{}", h.name);
            quiet(&["ip", "link", "add", "eth0", "netns", &hn, "type", "veth", "peer", "name", &port, "netns", &sw])?;
            in_ns(&sw, &["ip", "link", "set", &port, "master", "br0", "up"])?;
            in_ns(&hn, &["ip", "addr", "add", h.own_ip, "dev", "eth0"])?;
            in_ns(&hn, &["ip", "link", "set", "eth0", "up"])?;
            in_ns(&hn, &["ip", "route", "add", "default", "via", "172.16.10.1"])?;
            let endpoints = format!("[endpoints.{}]\nnetwork = \"macvlan_net\"\nnetns = \"{}\"\n", h.endpoint, ns(h.endpoint));
            let config = HOST_TEMPLATE
                .replace("{STATE}", &self.dir.join(format!("{}-state", h.name)).display().to_string())
                .replace("{BPF}", &format!("/sys/fs/bpf/{PREFIX}{}", h.name))
                .replace("{SOCKET}", &self.dir.join(format!("{}.sock", h.name)).display().to_string())
                .replace("{RANGE}", h.range)
                .replace("{ENDPOINTS}", &endpoints);
            // docker1 also serves Docker's plugin API, and asks Docker for its names.
            let config = if h.name == "docker1" {
                let (api, table) = engines::docker_config(self);
                config.replacen("[daemon]\n", &format!("[daemon]\n{api}"), 1) + &table
            } else {
                config
            };
            std::fs::write(self.config_path(h.name), config)?;
        }
        println!("switch: br0 172.16.10.1/24 (gateway), to-server 10.20.30.1/24 (routes between them)");
        println!("test-server: 10.20.30.13/24, default via 10.20.30.1");
        for h in &HOSTS {
            println!("{}: eth0 {} (parent of macvlan_net, ip_range {})", h.name, h.own_ip, h.range);
        }
        Ok(())
    }

    fn start_daemons(&mut self) -> anyhow::Result<()> {
        for h in &HOSTS {
            heading(&format!("{}: vland --config {}", h.name, self.config_path(h.name).display()));
            println!(
                "{}",
                std::fs::read_to_string(self.config_path(h.name))?.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
            );
            let log = std::fs::File::create(self.dir.join(format!("{}.log", h.name)))?;
            let mut cmd = self.vland(h.name, &[]);
            cmd.stderr(Stdio::from(log)).stdin(Stdio::null());
            // Its own process group: Ctrl-C reaches the demo, which stops the daemon itself.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            self.daemons.push(cmd.spawn().context("cannot start vland")?);
        }
        for h in &HOSTS {
            wait_for_endpoint(self, h)?;
        }
        Ok(())
    }

    fn stop_daemons(&mut self) {
        for mut d in self.daemons.drain(..) {
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let _ = d.wait();
        }
    }
}

fn wait_for_endpoint(lab: &Lab, host: &Host) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = lab.vland(host.name, &["stats", "--json"]).output()?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&format!("\"endpoint\": \"{}\"", host.endpoint)) {
            return Ok(());
        }
        check_interrupted()?;
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(lab.dir.join(format!("{}.log", host.name))).unwrap_or_default();
            bail!("vland on {} did not bring up {} within 30 s; its log:\n{log}", host.name, host.endpoint);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes whatever an earlier, killed demo left: its vland state first, then the namespaces.
fn sweep(lab: &Lab) {
    for h in &HOSTS {
        if lab.config_path(h.name).exists() && Path::new(&format!("/run/netns/{}", ns(h.name))).exists() {
            let _ = lab.vland(h.name, &["down"]).stderr(Stdio::null()).status();
        }
    }
    crate::netlab::remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_daemons();
        if self.keep {
            println!("\nthe lab is kept (--keep); remove it with `cargo xtask demo` again or `ip netns del` of the {PREFIX}* namespaces");
            return;
        }
        heading("removing the lab: vland down on each host, then the namespaces");
        for h in &HOSTS {
            let _ = self.vland(h.name, &["down"]).status();
        }
        sweep(self);
        let _ = std::fs::remove_dir_all(&self.dir);
        println!("lab removed");
    }
}

pub fn run(keep: bool) -> anyhow::Result<()> {
    ensure_host_tools(&[])?;
    let vland = build_daemon()?;
    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir)?;
    // Ctrl-C: let the running step fail, so the lab's Drop cleans up.
    crate::netlab::on_interrupt(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: cleaning up");
    })
    .context("cannot install the Ctrl-C handler")?;
    let mut lab = Lab { vland, dir, daemons: Vec::new(), keep };
    sweep(&lab);
    lab.build()?;
    lab.start_daemons()?;

    heading("what vland built in the containers");
    for h in &HOSTS {
        show(&["ip", "-n", &ns(h.endpoint), "-d", "address", "show", "eth0"])?;
        show(&["ip", "-n", &ns(h.endpoint), "route"])?;
    }
    heading("the test server, on another subnet, reaches both containers through the gateway");
    let mut ok = true;
    for ip in ["172.16.10.4", "172.16.10.128"] {
        ok &= show(&["ip", "netns", "exec", &ns("test-server"), "ping", "-c", "3", "-i", "0.2", "-W", "2", ip])?;
    }
    heading("web1 on docker1 reaches web2 on docker2 across the shared segment");
    ok &= show(&["ip", "netns", "exec", &ns("web1"), "ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.10.128"])?;
    heading("as in the seed, a macvlan container cannot reach its own host's parent address");
    let reached = show(&["ip", "netns", "exec", &ns("web1"), "ping", "-c", "1", "-W", "1", "172.16.10.2"])?;
    println!("{}", if reached { "unexpected: the parent answered" } else { "no answer, as expected" });
    ok &= !reached;

    heading("host_access: docker1's config gains `host_access = true`, `host_address = \"172.16.10.101\"`; `vland reload`");
    let config = std::fs::read_to_string(lab.config_path("docker1"))?;
    let with_host =
        config.replace("gateway = \"172.16.10.1\"\n", "gateway = \"172.16.10.1\"\nhost_access = true\nhost_address = \"172.16.10.101\"\n");
    std::fs::write(lab.config_path("docker1"), with_host)?;
    ok &= lab.vland("docker1", &["reload"]).status()?.success();
    show(&["ip", "-n", &ns("docker1"), "-d", "address", "show", "vh-macvlan_net"])?;
    show(&["ip", "-n", &ns("docker1"), "route"])?;
    heading("now the host reaches its container, and the container reaches the host at host_address");
    ok &= show(&["ip", "netns", "exec", &ns("docker1"), "ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.10.4"])?;
    ok &= show(&["ip", "netns", "exec", &ns("web1"), "ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.10.101"])?;

    heading("vland status on docker1 (asks the daemon through its control socket)");
    ok &= lab.vland("docker1", &["status"]).status()?.success();
    for h in &HOSTS {
        heading(&format!("vland stats on {} (read from the pinned eBPF maps)", h.name));
        let status = lab.vland(h.name, &["stats"]).status()?;
        check_interrupted()?;
        ok &= status.success();
    }
    heading("vland plan: what an edit of docker1's config would change (nothing is touched)");
    let edited = lab.dir.join("docker1-edited.toml");
    let extra = format!("\n[endpoints.web3]\nnetwork = \"macvlan_net\"\nnetns = \"{}\"\n", ns("web3"));
    std::fs::write(&edited, std::fs::read_to_string(lab.config_path("docker1"))? + &extra)?;
    // Exit code 2: there are changes (as `terraform plan -detailed-exitcode`).
    ok &= lab.vland_with("docker1", &edited, &["plan"]).status()?.code() == Some(2);
    ok &= engines::docker(&lab, "docker1")?;
    ok &= engines::cni_pod(&lab, "docker2")?;

    lab.stop_daemons();
    heading("daemons stopped (SIGTERM); the eBPF programs stay attached and counting");
    show(&["ip", "-n", &ns("web1"), "link", "show", "eth0"])?;
    drop(lab);
    if !ok {
        bail!("the demo did not behave as expected (see above)");
    }
    step("demo finished");
    Ok(())
}
