//! The demo's front-end part: what a container runtime sees. A CNI ADD through `vland-cni`
//! attaches a "pod" to the network the daemon already runs, the daemon counts it like any
//! endpoint, and DEL removes it again.
use super::{Lab, heading, ns, show};
use crate::netlab::add_ns;
use anyhow::{Context, bail};
use std::io::Write;
use std::process::{Command, Stdio};

const POD: &str = "pod1";
const CONTAINER_ID: &str = "demo0pod1";

/// Runs `vland-cni` with `command` for the demo's pod; its stdout (the CNI result).
fn cni(lab: &Lab, host: &str, command: &str) -> anyhow::Result<String> {
    let conf = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "macvlan_net",
        "type": "vland",
        "socket": lab.dir.join(format!("{host}.sock")),
        "network": "macvlan_net",
    });
    let plugin = lab.vland.with_file_name("vland-cni");
    let mut child = Command::new(&plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", CONTAINER_ID)
        .env("CNI_NETNS", format!("/run/netns/{}", ns(POD)))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", plugin.parent().unwrap_or(&plugin))
        .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={POD}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", plugin.display()))?;
    child.stdin.take().expect("piped").write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("vland-cni {command} failed: {text}");
    }
    Ok(text)
}

/// CNI ADD, a ping from the pod, the pod in `vland stats`, then DEL. False when something did
/// not behave.
pub fn cni_pod(lab: &Lab, host: &str) -> anyhow::Result<bool> {
    heading(&format!("CNI (Podman, containerd, Multus): `vland-cni` ADD attaches {POD} to macvlan_net on {host} through its daemon"));
    add_ns(&ns(POD))?;
    let result: serde_json::Value = serde_json::from_str(&cni(lab, host, "ADD")?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    let mut ok = show(&["ip", "netns", "exec", &ns(POD), "ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.10.1"])?;
    heading(&format!("vland stats on {host}: the pod is counted like the config's endpoints"));
    ok &= lab.vland(host, &["stats"]).status()?.success();
    heading("CNI DEL: the attachment goes, the pod's namespace is left to its runtime");
    cni(lab, host, "DEL")?;
    ok &= show(&["ip", "-n", &ns(POD), "-br", "link"])?;
    Ok(ok)
}
