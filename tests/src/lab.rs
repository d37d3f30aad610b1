//! A lab: namespaces standing for hosts, a switch and containers, with vland's state and pins in
//! private directories. Modelled on the seed's topology: a "switch" namespace with a bridge that
//! holds the gateway address, and "hosts" whose uplink veth is the parent of vland's networks.
use crate::sh::{run, run_ok};
use crate::{TEST_PREFIX, vland_bin};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    /// Unique per lab: `vlt-<pid>-<n>-`.
    pub prefix: String,
    namespaces: Vec<String>,
    pub dir: PathBuf,
    pub bpf_dir: PathBuf,
    /// Host namespaces vland ran in, with their config: `down` runs there on drop.
    vland_hosts: Vec<(String, PathBuf)>,
}

impl Lab {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{TEST_PREFIX}{}-{n}-", std::process::id());
        let dir = std::env::temp_dir().join(format!("{prefix}lab"));
        std::fs::create_dir_all(&dir).unwrap();
        let bpf_dir = PathBuf::from(format!("/sys/fs/bpf/{prefix}bpf"));
        Lab { prefix, namespaces: Vec::new(), dir, bpf_dir, vland_hosts: Vec::new() }
    }

    /// The most common lab: the seed's segment (gateway 172.16.10.1/24 on the switch) and one
    /// host `h1` plugged into it, without an address of its own. Returns the host's namespace.
    pub fn with_host() -> (Lab, String) {
        let mut lab = Lab::new();
        lab.add_switch("172.16.10.1/24");
        let host = lab.add_host("h1", None);
        (lab, host)
    }

    /// The seed's segment, host h1, and a config with one macvlan endpoint `web1` on
    /// 172.16.10.0/24 (not applied): (lab, host namespace, endpoint namespace, config).
    pub fn with_one_endpoint() -> (Lab, String, String, PathBuf) {
        let (mut lab, host) = Lab::with_host();
        let ns = lab.expect_ns("web1");
        let body = format!(
            "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\ngateway = \"172.16.10.1\"\n\n[endpoints.web1]\nnetwork = \"lan\"\nnetns = \"{ns}\"\n"
        );
        let config = lab.config("h1", &body);
        (lab, host, ns, config)
    }

    /// The full name of lab namespace `short`.
    pub fn ns(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    /// Creates a namespace with IPv6 off, so no ND/MLD frames disturb exact counts.
    pub fn add_ns(&mut self, short: &str) -> String {
        let name = self.ns(short);
        run_ok("ip", &["netns", "add", &name]);
        self.namespaces.push(name.clone());
        self.exec(&name, &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
        self.exec(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }

    /// Marks a namespace that vland creates, so the lab removes it if the test fails early.
    pub fn expect_ns(&mut self, short: &str) -> String {
        let name = self.ns(short);
        self.namespaces.push(name.clone());
        name
    }

    pub fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        run_ok("ip", &args)
    }

    pub fn exec_status(&self, ns: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// The seed's L2 segment: switch namespace `sw` with bridge br0 holding `gateway_cidr`.
    pub fn add_switch(&mut self, gateway_cidr: &str) -> String {
        let sw = self.add_ns("sw");
        self.exec(&sw, &["ip", "link", "add", "br0", "type", "bridge"]);
        self.exec(&sw, &["ip", "link", "set", "br0", "up"]);
        self.exec(&sw, &["ip", "addr", "add", gateway_cidr, "dev", "br0"]);
        sw
    }

    /// A host namespace `short` whose `eth0` is a veth plugged into the switch's bridge,
    /// optionally with the host's own address on it (as in the seed: 172.16.10.2/24).
    pub fn add_host(&mut self, short: &str, host_cidr: Option<&str>) -> String {
        let host = self.add_ns(short);
        let sw = self.ns("sw");
        let port = format!("p-{short}");
        run_ok("ip", &["link", "add", "eth0", "netns", &host, "type", "veth", "peer", "name", &port, "netns", &sw]);
        self.exec(&sw, &["ip", "link", "set", &port, "master", "br0", "up"]);
        self.exec(&host, &["ip", "link", "set", "eth0", "up"]);
        if let Some(cidr) = host_cidr {
            self.exec(&host, &["ip", "addr", "add", cidr, "dev", "eth0"]);
        }
        host
    }

    /// The switch's gateway (172.16.10.1 on br0) as a permanent neighbour of `eth0` in `ns`: no
    /// ARP then in what the endpoint's counters count.
    pub fn static_gateway(&self, ns: &str) {
        let gw_mac = crate::ip::link(&self.ns("sw"), "br0").address;
        self.exec(ns, &["ip", "neigh", "replace", "172.16.10.1", "lladdr", &gw_mac, "dev", "eth0", "nud", "permanent"]);
    }

    /// The bpf dir of the config `config` wrote for `name`.
    pub fn bpf_dir_of(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}-{name}", self.bpf_dir.display()))
    }

    /// Writes a config whose [daemon] table points at this lab's private dirs, then `body`.
    pub fn config(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        let state = self.dir.join(format!("{name}-state"));
        let text = format!("[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"{}\"\n\n{body}", state.display(), self.bpf_dir_of(name).display());
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `PROGRAM` to be run inside network namespace `ns` (a name under /run/netns, or a path such
    /// as /proc/PID/ns/net) through `nsenter`, which execs it: a signal to the child reaches the
    /// program itself. Arguments are added by the caller.
    pub fn command_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let path = if ns.starts_with('/') { ns.to_string() } else { format!("/run/netns/{ns}") };
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={path}")).arg(program);
        cmd
    }

    /// `vland ARGS [--config CONFIG]` inside namespace `ns`, not yet run (no Lab needed, so
    /// closures can build it while the lab is borrowed elsewhere).
    pub fn vland_command(ns: &str, args: &[&str], config: Option<&Path>) -> Command {
        let mut cmd = Lab::command_in(ns, vland_bin());
        cmd.args(args);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd
    }

    /// Runs `vland ARGS` inside host namespace `host` (where the parents live).
    pub fn vland(&mut self, host: &str, config: &Path, args: &[&str]) -> Output {
        self.register(host, config);
        Lab::vland_command(host, args, Some(config)).output().expect("cannot run vland")
    }

    /// Remembers a host and config vland ran with: `down` runs there when the lab is dropped.
    fn register(&mut self, host: &str, config: &Path) {
        if !self.vland_hosts.iter().any(|(h, c)| h == host && c == config) {
            self.vland_hosts.push((host.to_string(), config.to_path_buf()));
        }
    }

    /// Like `vland`, but panics with vland's output unless it succeeds.
    pub fn vland_ok(&mut self, host: &str, config: &Path, args: &[&str]) -> String {
        let out = self.vland(host, config, args);
        assert!(
            out.status.success(),
            "vland {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `vland stats --json` as parsed JSON.
    pub fn stats(&mut self, host: &str, config: &Path) -> serde_json::Value {
        let text = self.vland_ok(host, config, &["stats", "--json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats --json printed non-JSON ({e}): {text}"))
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // vland's own teardown first (the path under test), then whatever is left, by force.
        for (host, config) in std::mem::take(&mut self.vland_hosts) {
            let _ = self.vland(&host, &config, &["down"]);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run("ip", &["netns", "del", ns]);
        }
        if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `vland --config` daemon running inside a lab host; stopped with SIGTERM when dropped.
pub struct Daemon {
    child: std::process::Child,
    /// Its stderr (the log), for a failing test to show.
    pub log: PathBuf,
}

impl Lab {
    pub fn spawn_daemon(&mut self, host: &str, config: &Path) -> Daemon {
        self.spawn_daemon_with(host, config, |_, _| {})
    }

    /// Like `spawn_daemon`, with `customize` called on the command (and the log file it writes
    /// stderr to) before it starts: an environment of its own, say.
    pub fn spawn_daemon_with(&mut self, host: &str, config: &Path, customize: impl FnOnce(&mut Command, &std::fs::File)) -> Daemon {
        // Registered so the lab runs `vland down` for this config when dropped.
        self.register(host, config);
        let log = self.dir.join(format!("{host}-daemon.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Lab::vland_command(host, &[], Some(config));
        customize(&mut cmd, &file);
        let child = cmd.stderr(file).spawn().expect("cannot start the vland daemon");
        Daemon { child, log }
    }
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: Signal) {
        // It may have exited already (a test that checks it refuses to run): nothing to signal.
        let _ = kill(Pid::from_raw(self.pid()), sig);
    }

    /// SIGTERM and wait; the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes; how long it took, if it held.
pub fn wait_until(limit: std::time::Duration, mut check: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}
