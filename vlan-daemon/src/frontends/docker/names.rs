//! Docker's names for what Docker made: the plugin API sends only IDs, so `vland stats` and the
//! metrics ask Docker's own API (`GET /networks/ID` on `[daemon] docker_api`, default
//! /var/run/docker.sock) for the network's name and its containers (name, ID, endpoint ID), and
//! show them as `docker network ls` and `docker ps` do. Docker not answering (not running, another
//! socket, too slow) is not an error: the rows then carry the 12-character IDs. Answers are cached
//! for a few seconds, so a Prometheus scrape or `stats --watch` does not ask on every reading.
use super::short;
use crate::frontends::store::{Fragments, Origin};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Docker's API socket when the config names none.
pub const DEFAULT_API: &str = "/var/run/docker.sock";
/// How long one question to Docker may take: stats must not hang on a stuck dockerd.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long an answer (or Docker's silence) is reused.
const TTL: Duration = Duration::from_secs(5);

/// How one Docker endpoint is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// `docker network ls`'s NAME, else the network's 12-character ID.
    pub network: String,
    /// `docker ps`'s NAMES, else the endpoint's 12-character ID.
    pub container: String,
    /// "docker container NAME (ID)", else the plugin's "docker endpoint ID".
    pub owner: String,
}

/// What `GET /networks/ID` answers, the parts used here.
#[derive(Debug, Clone, Deserialize)]
struct NetworkInspect {
    #[serde(rename = "Name")]
    name: String,
    /// Container ID -> its endpoint on this network.
    #[serde(rename = "Containers", default)]
    containers: Option<HashMap<String, ContainerOnNetwork>>,
}

#[derive(Debug, Clone, Deserialize)]
struct ContainerOnNetwork {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
}

type Cache = HashMap<(PathBuf, String), (Instant, Option<NetworkInspect>)>;
static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Docker's names for every Docker endpoint among `fragments`, by vland's endpoint name. Asks
/// Docker once per network (or reuses a recent answer); nothing is asked when there is no Docker
/// endpoint.
pub fn resolve(api: Option<&Path>, fragments: &Fragments) -> BTreeMap<String, Named> {
    let api = api.unwrap_or(Path::new(DEFAULT_API));
    let mut out = BTreeMap::new();
    let mut networks: HashMap<&str, Option<NetworkInspect>> = HashMap::new();
    for (name, f) in &fragments.endpoints {
        let Origin::DockerEndpoint { network_id, endpoint_id, .. } = &f.origin else { continue };
        let inspect = networks.entry(network_id).or_insert_with(|| cached(api, network_id));
        out.insert(name.clone(), named(network_id, endpoint_id, inspect.as_ref()));
    }
    out
}

/// The names for one endpoint from Docker's answer, or the IDs without one.
fn named(network_id: &str, endpoint_id: &str, inspect: Option<&NetworkInspect>) -> Named {
    let container = inspect
        .and_then(|n| n.containers.as_ref())
        .and_then(|c| c.iter().find(|(_, c)| c.endpoint_id == endpoint_id))
        .map(|(id, c)| (short(id).to_string(), c.name.clone()));
    Named {
        network: inspect.map_or_else(|| short(network_id).to_string(), |n| n.name.clone()),
        container: container.as_ref().map_or_else(|| short(endpoint_id).to_string(), |(_, name)| name.clone()),
        owner: match container {
            Some((id, name)) => format!("docker container {name} ({id})"),
            None => format!("docker endpoint {}", short(endpoint_id)),
        },
    }
}

fn cached(api: &Path, network_id: &str) -> Option<NetworkInspect> {
    let key = (api.to_path_buf(), network_id.to_string());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    cache.retain(|_, (at, _)| at.elapsed() < TTL);
    if let Some((_, answer)) = cache.get(&key) {
        return answer.clone();
    }
    let answer = match inspect_network(api, network_id) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::debug!(api = %api.display(), network = network_id, "Docker's names unavailable, showing IDs: {e:#}");
            None
        }
    };
    cache.insert(key, (Instant::now(), answer.clone()));
    answer
}

/// `GET /networks/ID` on Docker's API socket. One HTTP/1.0 request per connection, so the answer
/// ends where the stream does (no chunked encoding, no keep-alive): a few lines instead of an
/// HTTP client stack for one blocking call.
fn inspect_network(api: &Path, network_id: &str) -> anyhow::Result<NetworkInspect> {
    anyhow::ensure!(network_id.chars().all(|c| c.is_ascii_alphanumeric()), "network ID {network_id:?} is not Docker's");
    let mut stream = UnixStream::connect(api)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET /networks/{network_id} HTTP/1.0\r\nHost: docker\r\nConnection: close\r\n\r\n")?;
    let deadline = Instant::now() + TIMEOUT;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        anyhow::ensure!(Instant::now() < deadline, "Docker did not answer within {TIMEOUT:?}");
        match stream.read(&mut buf)? {
            0 => break,
            n => reply.extend_from_slice(&buf[..n]),
        }
        anyhow::ensure!(reply.len() < 16 << 20, "Docker's answer is too large");
    }
    parse_reply(&reply)
}

fn parse_reply(reply: &[u8]) -> anyhow::Result<NetworkInspect> {
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))?;
    let head = std::str::from_utf8(&reply[..split])?;
    let status = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("");
    anyhow::ensure!(status == "200", "Docker answered {:?}", head.lines().next().unwrap_or(""));
    Ok(serde_json::from_slice(&reply[split + 4..])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawEndpoint;
    use crate::frontends::store::{DockerPhase, EndpointFragment};
    use std::os::unix::net::UnixListener;

    const NET: &str = "4f1c0b5e2d7a9c3e8b6f0a1d2c3b4a5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
    const EP: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";
    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn fragments() -> Fragments {
        let mut f = Fragments::default();
        f.endpoints.insert(
            format!("docker-{}", short(EP)),
            EndpointFragment {
                config: RawEndpoint::default(),
                origin: Origin::DockerEndpoint { network_id: NET.into(), endpoint_id: EP.into(), phase: DockerPhase::Created },
            },
        );
        f
    }

    /// A one-shot Docker API on a socket: answers `reply` to the first connection, and hands
    /// back the request it read.
    fn fake_docker(reply: String) -> (PathBuf, std::thread::JoinHandle<String>) {
        let dir = std::env::temp_dir().join(format!("vland-names-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 4096];
            let n = s.read(&mut req).unwrap();
            s.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        (path, handle)
    }

    #[test]
    fn names_come_from_dockers_network_inspect() {
        let body = format!(
            r#"{{"Name":"macvlan_net","Id":"{NET}","Containers":{{"{CID}":{{"Name":"web","EndpointID":"{EP}","IPv4Address":"10.10.10.2/24"}}}}}}"#
        );
        let (path, server) = fake_docker(format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}"));
        let names = resolve(Some(&path), &fragments());
        let request = server.join().unwrap();
        assert!(request.starts_with(&format!("GET /networks/{NET} HTTP/1.0\r\n")), "{request}");
        let n = &names[&format!("docker-{}", short(EP))];
        assert_eq!(
            n,
            &Named { network: "macvlan_net".into(), container: "web".into(), owner: "docker container web (0123456789ab)".into() }
        );
        // Asked again within the TTL: the cached answer (the fake served one connection only).
        assert_eq!(resolve(Some(&path), &fragments()), names);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn without_docker_the_ids_are_shown() {
        let dir = std::env::temp_dir().join(format!("vland-names-none-{}", std::process::id()));
        let names = resolve(Some(&dir.join("docker.sock")), &fragments());
        let n = &names[&format!("docker-{}", short(EP))];
        assert_eq!(n, &Named { network: short(NET).into(), container: short(EP).into(), owner: format!("docker endpoint {}", short(EP)) });
        // Docker's error answer (an unknown network) is the same as none.
        let (path, server) = fake_docker("HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"network not found\"}".into());
        let names = resolve(Some(&path), &fragments());
        server.join().unwrap();
        assert_eq!(names[&format!("docker-{}", short(EP))].network, short(NET));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn no_docker_endpoint_asks_nothing() {
        assert!(resolve(Some(Path::new("/nonexistent/docker.sock")), &Fragments::default()).is_empty());
    }
}
