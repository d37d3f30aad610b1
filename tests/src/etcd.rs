//! etcd members (Debian's etcd-server) for the cluster tests, run inside a lab's switch
//! namespace on a control subnet of the lab's bridge, so that vland in every lab host reaches
//! them and no port can clash with anything outside the lab. Killed by PID when dropped; their
//! data dirs live in the lab's dir.
use crate::lab::Lab;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// The control subnet: the switch holds .1 (where the members listen), hosts get .10 and up.
pub const CONTROL_NET: &str = "192.168.77";

struct Member {
    name: String,
    client: String,
    peer: String,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Etcd {
    members: Vec<Member>,
    switch: String,
    initial_cluster: String,
}

impl Etcd {
    /// Starts `count` members as one cluster in the lab's switch namespace (made by
    /// `add_switch`) and waits until every one is healthy.
    pub fn start(lab: &Lab, count: usize) -> Etcd {
        assert!(which("etcd"), "etcd is missing: `apt-get install etcd-server` (cargo xtask test installs it)");
        let switch = lab.ns("sw");
        lab.exec(&switch, &["ip", "addr", "replace", &format!("{CONTROL_NET}.1/24"), "dev", "br0"]);
        let members: Vec<Member> = (0..count)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://{CONTROL_NET}.1:{}", 2379 + 2 * i),
                peer: format!("http://{CONTROL_NET}.1:{}", 2380 + 2 * i),
                data: lab.dir.join(format!("etcd-m{i}")),
                log: lab.dir.join(format!("etcd-m{i}.log")),
                child: None,
            })
            .collect();
        let initial_cluster = members.iter().map(|m| format!("{}={}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let mut etcd = Etcd { members, switch, initial_cluster };
        for i in 0..count {
            etcd.spawn(i);
        }
        etcd.wait_healthy(&(0..count).collect::<Vec<_>>());
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let child = Lab::command_in(&self.switch, "etcd")
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data)
            .args(["--listen-client-urls", &m.client, "--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer, "--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new", "--initial-cluster-token", "vlt"])
            .args(["--listen-metrics-urls", &format!("http://{CONTROL_NET}.1:{}", 12379 + i)])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&m.log).unwrap())
            .spawn()
            .expect("cannot start etcd");
        self.members[i].child = Some(child);
    }

    /// Client URLs of every member, as a TOML array.
    pub fn toml_urls(&self) -> String {
        format!("[{}]", self.members.iter().map(|m| format!("\"{}\"", m.client)).collect::<Vec<_>>().join(", "))
    }

    pub fn healthy(&self, i: usize) -> bool {
        let addr = self.members[i].client.trim_start_matches("http://");
        crate::http::get_in_netns(&self.switch, addr, "/health").is_some_and(|b| b.contains("\"health\":\"true\""))
    }

    pub fn wait_healthy(&self, members: &[usize]) {
        let ok = crate::wait_until(Duration::from_secs(30), || members.iter().all(|i| self.healthy(*i)));
        assert!(ok.is_some(), "etcd did not become healthy: {}", self.logs());
    }

    /// SIGKILL to member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data dir (it rejoins the cluster).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// gRPC requests member `i` served, per method, from its metrics.
    pub fn grpc_requests(&self, i: usize) -> u64 {
        let addr = format!("{CONTROL_NET}.1:{}", 12379 + i);
        let text = crate::http::get_in_netns(&self.switch, &addr, "/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub fn logs(&self) -> String {
        self.members.iter().map(|m| std::fs::read_to_string(&m.log).unwrap_or_default()).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}
