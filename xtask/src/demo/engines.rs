//! The demo's front-end part: what container engines see. Docker (a private dockerd) creates a
//! network and runs a container with vland as its network and IPAM driver; a CNI ADD through
//! `vland-cni` attaches a "pod" to the network the daemon already runs. The daemon counts both
//! like any endpoint, and `docker rm` / CNI DEL remove them again.
use super::{Lab, heading, ns, show};
use crate::netlab::add_ns;
use anyhow::{Context, bail};
use std::io::Write;
use std::process::{Command, Stdio};
use vland_tests::docker::{BUSYBOX, Dockerd};

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

/// The demo's Docker plugin socket: the driver is `vdemo`, so as not to clash with an installed
/// vland's `vland`.
pub const DOCKER_PLUGIN: &str = "/run/docker/plugins/vdemo.sock";
const DRIVER: &str = "vdemo";

/// The docker1 config's additions: the plugin socket, and Docker's API for its names in stats.
pub fn docker_config(lab: &Lab) -> (String, String) {
    let api = format!("docker_api = \"{}\"\n", lab.dir.join("docker/docker.sock").display());
    (api, format!("\n[docker]\nsocket = \"{DOCKER_PLUGIN}\"\n"))
}

fn docker_step(dockerd: &Dockerd, args: &[&str]) -> anyhow::Result<String> {
    println!("$ docker {}", args.join(" "));
    let out = dockerd.run(args);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        bail!("docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(text)
}

/// The seed's commands with `-d vdemo --ipam-driver vdemo`, on `host`'s parent: the container
/// gets 10.10.10.2, reaches the gateway and the test server, and is counted under its name.
pub fn docker(lab: &Lab, host: &str) -> anyhow::Result<bool> {
    heading(&format!("Docker: a private dockerd on {host}, with vland as its network and IPAM driver `{DRIVER}`"));
    let dockerd = Dockerd::start(&lab.dir, &ns(host));
    dockerd.import_busybox(&lab.dir);
    let d = ["-d", DRIVER, "--ipam-driver", DRIVER];
    let create = [
        &["network", "create"][..],
        &d,
        &["--subnet", "10.10.10.0/24", "--ip-range", "10.10.10.0/25", "--gateway", "10.10.10.1"],
        &["--aux-address", "docker1=10.10.10.101", "--aux-address", "docker2=10.10.10.102", "-o", "parent=eth0", "docker_net"],
    ]
    .concat();
    docker_step(&dockerd, &create)?;
    docker_step(&dockerd, &["run", "-d", "--name", "c1", "--net", "docker_net", BUSYBOX, "sleep", "600"])?;
    docker_step(&dockerd, &["exec", "c1", "ip", "address", "show", "eth0"])?;
    let mut ok = docker_step(&dockerd, &["exec", "c1", "ping", "-c", "3", "-W", "2", "10.10.10.1"]).is_ok();
    ok &= docker_step(&dockerd, &["exec", "c1", "ping", "-c", "3", "-W", "2", "10.20.30.13"]).is_ok();
    heading(&format!("vland stats on {host}: the container by Docker's names, beside the config's endpoint"));
    ok &= lab.vland(host, &["stats"]).status()?.success();
    heading("docker rm -f and docker network rm: vland removes the child and forgets the network");
    docker_step(&dockerd, &["rm", "-f", "c1"])?;
    docker_step(&dockerd, &["network", "rm", "docker_net"])?;
    ok &= show(&["ip", "-n", &ns(host), "-br", "link"])?;
    Ok(ok)
}
