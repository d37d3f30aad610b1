//! A property test of reconciliation: random sequences of valid configs applied, edited and
//! taken down, with `kill -9` at random points, checked against what the kernel shows after
//! every run that finished: exactly the last config (links, addresses, MACs, programs,
//! namespaces), nothing leaked (links, namespaces, pins, state records, journal), and no two
//! endpoints with one IP, MAC or slot.
//!
//! Seeded and reproducible: the seed is printed; `VLAND_PROPERTY_SEED=N` replays a run and
//! `VLAND_PROPERTY_STEPS=N` makes it longer (at least 200).
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use vland_tests::{Lab, filter_programs, ip, run_ok};

const ENDPOINTS: [&str; 8] = ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"];

/// One endpoint as a config says it.
#[derive(Debug, Clone)]
struct Ep {
    name: &'static str,
    /// In the shared namespace (under this ifname) rather than one of its own.
    shared_ifname: Option<String>,
    ip: Option<String>,
    mac: Option<String>,
}

fn random_config(rng: &mut StdRng) -> Vec<Ep> {
    let mut eps = Vec::new();
    let mut shared = 0;
    let mut ips: Vec<u8> = (100..120).collect();
    let mut macs: Vec<u8> = (1..20).collect();
    for name in ENDPOINTS {
        if !rng.random_bool(0.6) {
            continue;
        }
        let shared_ifname = rng.random_bool(0.3).then(|| {
            shared += 1;
            format!("eth{}", shared - 1)
        });
        let ip = rng.random_bool(0.4).then(|| format!("172.16.10.{}", ips.remove(rng.random_range(0..ips.len()))));
        let mac = rng.random_bool(0.3).then(|| format!("02:00:00:00:00:{:02x}", macs.remove(rng.random_range(0..macs.len()))));
        eps.push(Ep { name, shared_ifname, ip, mac });
    }
    eps
}

fn body(lab: &Lab, eps: &[Ep]) -> String {
    // Allocation draws from .1-.63; static addresses are .100-.119: the two never meet.
    let mut s = "[networks.n]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\nip_range = \"172.16.10.0/26\"\ngateway = \"172.16.10.1\"\n".to_string();
    for e in eps {
        s.push_str(&format!("\n[endpoints.{}]\nnetwork = \"n\"\n", e.name));
        match &e.shared_ifname {
            Some(ifname) => s.push_str(&format!("netns = \"{}\"\nifname = \"{ifname}\"\n", lab.ns("shared"))),
            None => s.push_str(&format!("netns = \"{}\"\n", lab.ns(e.name))),
        }
        if let Some(ip) = &e.ip {
            s.push_str(&format!("ip = \"{ip}\"\n"));
        }
        if let Some(mac) = &e.mac {
            s.push_str(&format!("mac = \"{mac}\"\n"));
        }
    }
    s
}

fn lab_namespaces(lab: &Lab) -> BTreeSet<String> {
    run_ok("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix(&lab.ns("")).map(String::from))
        .collect()
}

fn names(ns: &str) -> BTreeSet<String> {
    ip::link_names(ns).into_iter().collect()
}

/// The kernel and the state equal `eps` (None: after `down`), and nothing else is left.
fn check(lab: &Lab, applied: Option<&[Ep]>, step: usize, seed: u64) {
    let ctx = format!("step {step} (VLAND_PROPERTY_SEED={seed})");
    let eps = applied.unwrap_or(&[]);
    let mut want_ns: BTreeSet<String> = ["sw", "h1", "shared"].iter().map(|s| s.to_string()).collect();
    want_ns.extend(eps.iter().filter(|e| e.shared_ifname.is_none()).map(|e| e.name.to_string()));
    assert_eq!(lab_namespaces(lab), want_ns, "namespaces, {ctx}");

    let mut seen_ips = BTreeMap::new();
    let mut seen_macs = BTreeMap::new();
    for e in eps {
        let (ns, ifname) = match &e.shared_ifname {
            Some(i) => (lab.ns("shared"), i.clone()),
            None => (lab.ns(e.name), "eth0".to_string()),
        };
        let l = ip::link(&ns, &ifname);
        assert_eq!(l.ifalias, Some(format!("vland:{}", e.name)), "{}: {l:?}, {ctx}", e.name);
        assert!(l.is_up() && l.kind() == "macvlan", "{}: {l:?}, {ctx}", e.name);
        assert!(vland_tests::ingress_counter(&ns, &ifname).is_some(), "{} has no ingress counter, {ctx}", e.name);
        assert_eq!(filter_programs(&ns, &ifname, "egress"), vec!["vland_egress"], "{}, {ctx}", e.name);
        let addrs = ip::addrs(&ns, "-4", &["dev", &ifname]);
        assert_eq!(addrs.len(), 1, "{}: {addrs:?}, {ctx}", e.name);
        let got = &addrs[0];
        assert_eq!(got.prefixlen, 24, "{}, {ctx}", e.name);
        match &e.ip {
            Some(want) => assert_eq!(&got.local, want, "{}, {ctx}", e.name),
            None => {
                let last: u8 = got.local.rsplit('.').next().unwrap().parse().unwrap();
                assert!(
                    got.local.starts_with("172.16.10.") && (2..64).contains(&last),
                    "{}: {} outside ip_range, {ctx}",
                    e.name,
                    got.local
                );
            }
        }
        if let Some(mac) = &e.mac {
            assert_eq!(&l.address, mac, "{}, {ctx}", e.name);
        }
        if let Some(other) = seen_ips.insert(got.local.clone(), e.name) {
            panic!("{} given to both {other} and {}, {ctx}", got.local, e.name);
        }
        if let Some(other) = seen_macs.insert(l.address.clone(), e.name) {
            panic!("MAC {} on both {other} and {}, {ctx}", l.address, e.name);
        }
    }
    // No other links: each own namespace holds lo and its child, the shared one its children.
    for e in eps.iter().filter(|e| e.shared_ifname.is_none()) {
        assert_eq!(names(&lab.ns(e.name)), BTreeSet::from(["lo".to_string(), "eth0".into()]), "{}, {ctx}", e.name);
    }
    let mut want_shared = BTreeSet::from(["lo".to_string()]);
    want_shared.extend(eps.iter().filter_map(|e| e.shared_ifname.clone()));
    assert_eq!(names(&lab.ns("shared")), want_shared, "shared namespace, {ctx}");
    // The host: its uplink only (macvlan children live in the endpoint namespaces).
    assert_eq!(names(&lab.ns("h1")), BTreeSet::from(["lo".to_string(), "eth0".into()]), "host, {ctx}");

    // The state: exactly these endpoints, distinct slots, an empty journal.
    let state_path = lab.dir.join("h1-state/state.json");
    let pins = std::path::PathBuf::from(format!("{}-h1", lab.bpf_dir.display()));
    // `down` removes the pins; an apply keeps the shared maps and programs, even with no
    // endpoint left (an apply of an empty config: one step in ~1500), but no per-link pins.
    if applied.is_none() {
        assert!(!pins.exists(), "pins left after down: {:?}, {ctx}", std::fs::read_dir(&pins).map(|d| d.count()));
    } else {
        assert_eq!(std::fs::read_dir(pins.join("links")).map(|d| d.count()).unwrap_or(0), 0, "link pins, {ctx}");
    }
    let Ok(text) = std::fs::read_to_string(&state_path) else { return assert!(eps.is_empty(), "no state, {ctx}") };
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(state["pending_links"].as_array().map(Vec::len).unwrap_or(0), 0, "journal not empty, {ctx}");
    let recorded: BTreeSet<&str> = state["endpoints"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(recorded, eps.iter().map(|e| e.name).collect(), "state endpoints, {ctx}");
    let slots: Vec<u64> = state["endpoints"].as_object().into_iter().flat_map(|m| m.values()).filter_map(|r| r["slot"].as_u64()).collect();
    assert_eq!(slots.iter().collect::<BTreeSet<_>>().len(), eps.len(), "slots {slots:?}, {ctx}");
    let recorded_ns: BTreeSet<String> =
        state["namespaces"].as_array().map(|a| a.iter().filter_map(|n| n.as_str()).map(String::from).collect()).unwrap_or_default();
    let want_recorded: BTreeSet<String> = eps.iter().filter(|e| e.shared_ifname.is_none()).map(|e| lab.ns(e.name)).collect();
    assert_eq!(recorded_ns, want_recorded, "namespaces recorded as vland's, {ctx}");
}

fn steps() -> usize {
    std::env::var("VLAND_PROPERTY_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200).max(200)
}

#[test]
fn random_applies_edits_downs_and_kills_keep_the_kernel_equal_to_the_last_config() {
    let seed = std::env::var("VLAND_PROPERTY_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("property test seed: VLAND_PROPERTY_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut lab, host) = Lab::with_host();
    lab.add_ns("shared");
    for e in ENDPOINTS {
        lab.expect_ns(e);
    }
    let config = lab.config("h1", "");
    // The [daemon] table: state and pins in the lab's dirs.
    let header: String = std::fs::read_to_string(&config).unwrap().lines().take(3).map(|l| format!("{l}\n")).collect();
    // How long an apply of every endpoint takes here, to spread the kills over a run.
    let all: Vec<Ep> = ENDPOINTS.iter().map(|&name| Ep { name, shared_ifname: None, ip: None, mac: None }).collect();
    std::fs::write(&config, format!("{header}\n{}", body(&lab, &all))).unwrap();
    let start = Instant::now();
    lab.vland_ok(&host, &config, &["apply"]);
    let full = start.elapsed().max(Duration::from_millis(50));
    lab.vland_ok(&host, &config, &["down"]);
    let (mut current, mut checked, mut kills, mut downs) = (None::<Vec<Ep>>, 0, 0, 0);
    let started = Instant::now();
    for step in 0..steps() {
        let roll = rng.random_range(0..100);
        let killed = roll < 30;
        if roll % 5 == 0 {
            // down (killed or not): the config file stays; down reads only its [daemon] table.
            downs += 1;
            if killed {
                kills += 1;
                kill_after(&host, &config, "down", full.mul_f64(rng.random::<f64>()));
                current = None;
                // A killed down leaves an unknown mix: the next finished run decides.
                continue;
            }
            lab.vland_ok(&host, &config, &["down"]);
            check(&lab, None, step, seed);
            checked += 1;
            current = Some(Vec::new());
            continue;
        }
        let eps = random_config(&mut rng);
        let prev_state = std::fs::read_to_string(lab.dir.join("h1-state/state.json")).unwrap_or_default();
        std::fs::write(&config, format!("{header}\n{}", body(&lab, &eps))).unwrap();
        if killed {
            kills += 1;
            kill_after(&host, &config, "apply", full.mul_f64(rng.random::<f64>()));
            current = None;
            continue;
        }
        let out = lab.vland(&host, &config, &["apply"]);
        assert!(
            out.status.success(),
            "apply failed at step {step} (VLAND_PROPERTY_SEED={seed}): {}\nconfig:\n{}\nstate before:\n{}",
            String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains(" INFO ")).collect::<Vec<_>>().join("\n"),
            body(&lab, &eps),
            prev_state
        );
        check(&lab, Some(&eps), step, seed);
        checked += 1;
        current = Some(eps);
    }
    // Whatever the last step was, a final apply and down converge.
    if current.is_none() {
        lab.vland_ok(&host, &config, &["apply"]);
    }
    lab.vland_ok(&host, &config, &["down"]);
    check(&lab, None, steps(), seed);
    eprintln!(
        "property test: {} steps ({checked} checked, {kills} killed, {downs} downs) in {:.0?}, seed {seed}",
        steps(),
        started.elapsed()
    );
}

/// Runs `vland CMD` and SIGKILLs it after `delay` (it may have finished by then).
fn kill_after(host: &str, config: &std::path::Path, cmd: &str, delay: Duration) {
    let mut child = Lab::vland_command(host, &[cmd], Some(config)).stderr(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL: nsenter has exec'd into vland
    let _ = child.wait();
}
