//! `vland doctor`: which kernel features this machine has, found by trying each one in a
//! throwaway network namespace (nothing outside it is touched), never by reading versions.
use crate::ebpf::{ensure_bpffs, object};
use crate::netlink::Netlink;
use crate::netns;
use aya::EbpfLoader;
use aya::programs::links::LinkOrder;
use aya::programs::tc::TcAttachOptions;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use rtnetlink::{LinkBridge, LinkDummy, LinkIpVlan, LinkMacVlan, LinkVeth, LinkVlan};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use vlan_common::names;

#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub available: bool,
    pub detail: String,
}

/// A device in vland's namespace, as far as VLAN enforcement is concerned.
#[derive(Debug, Serialize)]
pub struct Device {
    pub name: String,
    /// The device takes VLAN tags out of received frames before XDP: on a trunk, vland's TC
    /// hook (which reads the tag from the skb) decides for those frames instead of XDP.
    pub rx_vlan_offload: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub features: BTreeMap<&'static str, Feature>,
    pub devices: Vec<Device>,
}

fn outcome(r: anyhow::Result<String>) -> Feature {
    match r {
        Ok(detail) => Feature { available: true, detail },
        Err(e) => Feature { available: false, detail: format!("{e:#}") },
    }
}

pub fn run(json: bool) -> anyhow::Result<()> {
    let report = probe()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (name, f) in &report.features {
            println!("{:<12} {:<3}  {}", name, if f.available { "yes" } else { "no" }, f.detail);
        }
        for d in &report.devices {
            let offload = match d.rx_vlan_offload {
                Some(true) => "rx VLAN offload on: tagged frames are checked by the TC hook, not XDP",
                Some(false) => "rx VLAN offload off: XDP sees the tags and drops early",
                None => "rx VLAN offload unknown",
            };
            println!("device {:<12} {offload}", d.name);
        }
    }
    Ok(())
}

pub fn probe() -> anyhow::Result<Report> {
    let mut features = BTreeMap::new();
    let bpffs_mounted = crate::ebpf::is_bpffs(Path::new("/sys/fs/bpf"));
    features.insert(
        "bpffs",
        Feature {
            available: bpffs_mounted,
            detail: if bpffs_mounted {
                "mounted at /sys/fs/bpf".into()
            } else {
                "was not mounted at /sys/fs/bpf: the eBPF probes below mounted it, as vland apply does".into()
            },
        },
    );
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    features.insert(
        "btf",
        Feature {
            available: btf,
            detail: if btf { "/sys/kernel/btf/vmlinux present".into() } else { "no /sys/kernel/btf/vmlinux".into() },
        },
    );

    let links = netns::run_in_scratch(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(probe_links())
    })?;
    features.extend(links);
    Ok(Report { features, devices: devices()? })
}

/// Every device of vland's namespace but loopback, with its VLAN offload. (Asked over netlink:
/// /sys/class/net shows the namespace sysfs was mounted in, not necessarily this one.)
fn devices() -> anyhow::Result<Vec<Device>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let names = rt.block_on(async { Netlink::current()?.links().await })?;
    let mut out: Vec<Device> = names
        .into_iter()
        .filter(|l| l.name != "lo")
        .map(|l| Device { rx_vlan_offload: crate::ethtool::rx_vlan_offload(&l.name), name: l.name })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn probe_links() -> anyhow::Result<Vec<(&'static str, Feature)>> {
    let nl = Netlink::current()?;
    let mut out = Vec::new();
    let veth = nl.add_link(LinkVeth::new("vd0", "vd1").build(), "create veth pair").await;
    let veth_ok = veth.is_ok();
    out.push(("veth", outcome(veth.map(|_| "created a veth pair".to_string()))));
    out.push(("bridge", outcome(nl.add_link(LinkBridge::new("vdbr").build(), "create bridge").await.map(|_| "created a bridge".into()))));
    out.push(("dummy", outcome(nl.add_link(LinkDummy::new("vddum").build(), "create dummy").await.map(|_| "created a dummy link".into()))));
    if !veth_ok {
        for name in ["macvlan", "ipvlan", "vlan_8021q", "xdp_native", "xdp_generic", "tcx"] {
            out.push((name, Feature { available: false, detail: "not tested: needs a veth parent".into() }));
        }
        return Ok(out);
    }
    let vd0 = nl.link_by_name("vd0").await?.map(|l| l.index).unwrap_or(0);
    let vd1 = nl.link_by_name("vd1").await?.map(|l| l.index).unwrap_or(0);
    out.push((
        "macvlan",
        outcome(
            nl.add_link(LinkMacVlan::new("vdmv", vd0, netlink_packet_route::link::MacVlanMode::Bridge).build(), "create macvlan")
                .await
                .map(|_| "created a macvlan child of a veth".into()),
        ),
    ));
    // ipvlan on the other veth end: macvlan and ipvlan may not share a parent.
    out.push((
        "ipvlan",
        outcome(
            nl.add_link(LinkIpVlan::new("vdiv", vd1, netlink_packet_route::link::IpVlanMode::L2).build(), "create ipvlan")
                .await
                .map(|_| "created an ipvlan child of a veth".into()),
        ),
    ));
    out.push((
        "vlan_8021q",
        outcome(
            nl.add_link(LinkVlan::new("vd0.19", vd0, 19).build(), "create 802.1Q sub-interface")
                .await
                .map(|_| "created an 802.1Q sub-interface".into()),
        ),
    ));
    nl.set_up_by_name("vd0").await?;
    nl.set_up_by_name("vd1").await?;
    out.extend(probe_ebpf());
    Ok(out)
}

/// XDP native and generic, and tcx, on the scratch veth; maps pinned in a scratch bpffs dir.
fn probe_ebpf() -> Vec<(&'static str, Feature)> {
    // A doctor killed mid-probe left its scratch dir: the next one removes it.
    for entry in std::fs::read_dir("/sys/fs/bpf").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("vland-doctor-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = Path::new("/sys/fs/bpf").join(format!("vland-doctor-{}", std::process::id()));
    let result = (|| -> anyhow::Result<Vec<(&'static str, Feature)>> {
        ensure_bpffs(&dir)?;
        let mut bpf = EbpfLoader::new().default_map_pin_directory(&dir).load(object()?)?;
        let mut out = Vec::new();
        let xdp: &mut Xdp = bpf.program_mut(names::TRUNK_PROGRAM).unwrap().try_into()?;
        xdp.load()?;
        for (name, iface, mode) in [("xdp_native", "vd0", XdpMode::Driver), ("xdp_generic", "vd1", XdpMode::Skb)] {
            out.push((name, outcome(xdp.attach(iface, mode).map(|_| format!("attached to a veth in {mode:?} mode")).map_err(Into::into))));
        }
        let tc: &mut SchedClassifier = bpf.program_mut(names::EGRESS_PROGRAM).unwrap().try_into()?;
        tc.load()?;
        out.push((
            "tcx",
            outcome(
                tc.attach_with_options("vd0", TcAttachType::Egress, TcAttachOptions::TcxOrder(LinkOrder::default()))
                    .map(|_| "attached a tcx egress program".into())
                    .map_err(Into::into),
            ),
        ));
        Ok(out)
    })();
    // Every map the object pins (by name) went into this scratch dir: remove it all.
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or_else(|e| {
        let detail = format!("eBPF not tested: {e:#}");
        ["xdp_native", "xdp_generic", "tcx"].into_iter().map(|n| (n, Feature { available: false, detail: detail.clone() })).collect()
    })
}
