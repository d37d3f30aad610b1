//! `cargo xtask bench`: each benchmark with its baseline, side by side in one run; a table, and
//! target/bench/results.json. Targets are ratios, since this machine is noisy; tests never
//! assert times.
mod arp;
mod cluster;
mod cni;
mod control_plane;
mod datapath;
mod docker;
mod drop_rate;
mod ebpf_cost;
mod lab;
mod podman;
mod report;

use crate::ebpf::build_daemon;
use crate::paths::target_dir;
use crate::prereqs::ensure_host_tools;
use crate::process::step;

/// The benchmarks, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// eBPF cost per packet.
    Ebpf,
    /// Disallowed-VLAN drop rate.
    Drops,
    /// apply/down, stats and memory.
    ControlPlane,
    /// Cluster-scope apply (etcd) against local scope.
    Cluster,
    /// iperf3 between two endpoints: vland's children against plain ones.
    Datapath,
    /// ARP answered on the parent (XDP) against the kernel path, 500 endpoints.
    Arp,
    /// `docker run` / `docker rm -f` with vland as Docker's driver against Docker's macvlan.
    Docker,
    /// CNI ADD/DEL: vland-cni against the reference macvlan + host-local plugins.
    Cni,
    /// podman run --rm: Podman's CNI backend with vland against netavark's macvlan.
    Podman,
}

pub fn run(quick: bool, only: &[Group]) -> anyhow::Result<()> {
    let wanted = |g: Group| only.is_empty() || only.contains(&g);
    ensure_host_tools(&[("nft", "nftables"), ("ethtool", "ethtool"), ("iperf3", "iperf3")])?;
    let vland = build_daemon()?;
    let mut results = Vec::new();
    if wanted(Group::Ebpf) {
        step("benchmark: eBPF cost per packet (BPF_PROG_TEST_RUN)");
        results.extend(ebpf_cost::run(quick)?);
    }
    if wanted(Group::Drops) {
        step("benchmark: disallowed-VLAN drop rate (XDP vs nftables)");
        results.extend(drop_rate::run(&vland, quick)?);
    }
    if wanted(Group::ControlPlane) {
        step("benchmark: control plane, stats and memory (namespaces lab)");
        results.extend(control_plane::run(&vland, quick)?);
    }
    if wanted(Group::Cluster) {
        step("benchmark: cluster networks (single-member etcd) against local ones");
        results.extend(cluster::run(&vland, quick)?);
    }
    if wanted(Group::Datapath) {
        step("benchmark: endpoint data path (iperf3, vland's children vs plain macvlan children)");
        results.extend(datapath::run(&vland, quick)?);
    }
    if wanted(Group::Arp) {
        step("benchmark: ARP answered by the parent's XDP responder vs the kernel path (500 endpoints)");
        results.extend(arp::run(&vland, quick)?);
    }
    if wanted(Group::Docker) {
        step("benchmark: docker run and rm -f, vland's Docker driver vs Docker's macvlan (private dockerd)");
        ensure_host_tools(&[("dockerd", "docker.io"), ("busybox", "busybox-static")])?;
        results.extend(docker::run(&vland, quick)?);
    }
    if wanted(Group::Cni) {
        step("benchmark: CNI ADD and DEL, vland-cni vs the reference macvlan + host-local plugins");
        results.extend(cni::run(&vland, quick)?);
    }
    if wanted(Group::Podman) {
        step("benchmark: podman run --rm, CNI backend with vland vs netavark's macvlan");
        results.extend(podman::run(&vland, quick)?);
    }
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    print!("{}", report::table(&results));
    step(&format!("results: {}", out_dir.join("results.json").display()));
    Ok(())
}
