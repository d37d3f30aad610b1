//! Cluster networks against local ones: the same apply of N endpoints with `scope = "cluster"`
//! (a single-member etcd on the host namespace's 127.0.0.1) and with the default local scope,
//! taking turns; and how many requests etcd served per endpoint (from its own metrics), which
//! per-host blocks keep far below one.
use super::lab::{veth_host, vland_in};
use super::report::{Measurement, Target, median};
use crate::netlab::remove_namespaces;
use crate::paths::target_dir;
use anyhow::Context;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "vlc-";
const PER_NS: usize = 10;
const ROUNDS: usize = 3;
/// etcd's client port inside the host namespace (a fresh namespace: nothing else listens).
const ETCD: &str = "127.0.0.1:2379";

fn host() -> String {
    format!("{PREFIX}host")
}

/// `n` endpoints allocated from 10.64.0.0/16; with `cluster_host`, in cluster scope.
fn config(dir: &Path, n: usize, cluster_host: Option<&str>) -> anyhow::Result<PathBuf> {
    let name = cluster_host.unwrap_or("local");
    let mut text = format!(
        "[daemon]\nstate_dir = \"{}\"\nbpf_dir = \"/sys/fs/bpf/{PREFIX}bench\"\n\n[networks.bench]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"10.64.0.0/16\"\ngratuitous_arp = false\n",
        dir.join(format!("state-{name}")).display()
    );
    if let Some(h) = cluster_host {
        text.push_str(&format!("scope = \"cluster\"\n\n[cluster]\netcd = [\"http://{ETCD}\"]\nhost = \"{h}\"\n"));
    }
    for i in 0..n {
        text.push_str(&format!(
            "\n[endpoints.e{i}]\nnetwork = \"bench\"\nnetns = \"{PREFIX}ep{}\"\nifname = \"eth{}\"\n",
            i / PER_NS,
            i % PER_NS
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn start_etcd(dir: &Path) -> anyhow::Result<Child> {
    let url = format!("http://{ETCD}");
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", host()))
        .arg("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
        .args(["--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-cluster", "bench=http://127.0.0.1:2380"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("etcd.log"))?)
        .spawn()
        .context("cannot start etcd")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get("/health").is_ok_and(|b| b.contains("\"health\":\"true\"")) {
        anyhow::ensure!(Instant::now() < deadline, "etcd did not become healthy: see {}", dir.join("etcd.log").display());
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child)
}

/// An HTTP GET to etcd, from inside the host namespace.
fn get(path: &str) -> anyhow::Result<String> {
    let netns = vland::netns::open(&vland::netns::named_path(&host()))?;
    vland::netns::run_in(&netns, || {
        let mut s = std::net::TcpStream::connect(ETCD)?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {ETCD}\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp)
    })
}

/// gRPC requests etcd has served so far (all methods).
fn etcd_requests() -> anyhow::Result<u64> {
    let metrics = get("/metrics")?;
    Ok(metrics
        .lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

pub fn run(vland_bin: &Path, quick: bool) -> anyhow::Result<Vec<Measurement>> {
    let n = 500;
    let rounds = if quick { 1 } else { ROUNDS };
    let dir = target_dir().join("bench/cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    veth_host(PREFIX, &host())?;
    let mut etcd = None;
    let result = (|| -> anyhow::Result<Vec<Measurement>> {
        etcd = Some(start_etcd(&dir)?);
        let local = config(&dir, n, None)?;
        let (mut local_ups, mut cluster_ups, mut requests) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            local_ups.push(vland_in(&host(), vland_bin, &local, &["apply"])?.1);
            vland_in(&host(), vland_bin, &local, &["down"])?;
            remove_namespaces(&format!("{PREFIX}ep"));
            // A new host name per round: each claims its blocks afresh, as a first apply does.
            let cluster = config(&dir, n, Some(&format!("bench{round}")))?;
            let before = etcd_requests()?;
            cluster_ups.push(vland_in(&host(), vland_bin, &cluster, &["apply"])?.1);
            requests.push(etcd_requests()? - before);
            vland_in(&host(), vland_bin, &cluster, &["down"])?;
            remove_namespaces(&format!("{PREFIX}ep"));
        }
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let per_endpoint = median(requests) as f64 / n as f64;
        Ok(vec![
            Measurement::new(
                &format!("cluster apply: {n} endpoints, etcd"),
                rate(median(cluster_ups)),
                "eps/s",
                "the same apply, local scope",
                rate(median(local_ups)),
                Target::AtLeast(0.9),
            ),
            Measurement::new(
                &format!("cluster apply: etcd requests per endpoint ({n})"),
                per_endpoint,
                "req/ep",
                "one request per endpoint (per-address CAS)",
                1.0,
                Target::AtMost(0.1),
            ),
        ])
    })();
    if let Some(mut child) = etcd {
        let _ = child.kill();
        let _ = child.wait();
    }
    remove_namespaces(PREFIX);
    crate::netlab::remove_bpf_dirs(PREFIX);
    result
}
