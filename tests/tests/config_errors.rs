//! A bad config is reported whole, every error naming its key, and changes nothing in the kernel.
use vland_tests::{Lab, ip, run_ok};

#[test]
fn all_errors_are_reported_at_once_and_nothing_is_created() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.ns("never");
    // Lab::config puts its 4-line [daemon] table first: `mtuu` lands on line 12.
    let body = include_str!("../fixtures/config_errors.toml").replace("{ns}", &ns);
    let config = lab.config("h1", &body);
    let out = lab.vland(&host, &config, &["apply"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "networks.lan.mtuu (line 12)",
        "networks.lan.mode",
        "networks.lan.subnet: invalid subnet 172.16.10.1/24: it should be 172.16.10.0/24",
        "networks.lan.gateway",
        "endpoints.a.ip",
        "endpoints.b.network",
        "nothing was changed",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
    assert!(!run_ok("ip", &["netns", "list"]).contains(&ns), "a namespace was created for a bad config");
}

#[test]
fn a_missing_parent_is_reported_before_anything_is_created() {
    let (mut lab, host) = Lab::with_host();
    let ns = lab.ns("never");
    let body = format!("[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth9\"\n\n[endpoints.a]\nnetwork = \"lan\"\nnetns = \"{ns}\"\n");
    let config = lab.config("h1", &body);
    let out = lab.vland(&host, &config, &["apply"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("networks.lan.parent: interface eth9 does not exist"), "{err}");
    assert!(!run_ok("ip", &["netns", "list"]).contains(&ns));
}

#[test]
fn a_namespace_path_of_another_kind_is_a_config_error_and_leaves_down_working() {
    let (mut lab, host) = Lab::with_host();
    let good = lab.ns("good");
    let body = format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\n\n\
         [endpoints.a]\nnetwork = \"lan\"\nnetns = \"{good}\"\n\n[endpoints.b]\nnetwork = \"lan\"\nnetns_path = \"/proc/self/ns/mnt\"\n"
    );
    let config = lab.config("h1", &body);
    let out = lab.vland(&host, &config, &["apply"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("endpoints.b.netns_path: /proc/self/ns/mnt is a namespace, but not a network namespace"), "{err}");
    assert!(!run_ok("ip", &["netns", "list"]).contains(&good), "nothing may change for a config with errors");
    // Nothing was recorded, so the fixed config applies and down works.
    let fixed = lab.config("h1", &body.replace("netns_path = \"/proc/self/ns/mnt\"", &format!("netns = \"{}\"", lab.ns("other"))));
    lab.vland_ok(&host, &fixed, &["apply"]);
    lab.vland_ok(&host, &fixed, &["down"]);
    assert!(!run_ok("ip", &["netns", "list"]).contains(&good));
}

/// Issue 12 D5: an endpoint the kernel refuses (here: its MAC is taken on the parent by a link
/// vland did not make, so its child cannot come up) fails alone; the other namespaces are applied, and `down` still works.
#[test]
fn a_failing_endpoint_blocks_neither_the_others_nor_down() {
    let (mut lab, host) = Lab::with_host();
    let (a, b) = (lab.ns("a"), lab.ns("b"));
    lab.exec(
        &host,
        &["ip", "link", "add", "foreign0", "link", "eth0", "address", "02:00:00:00:00:42", "type", "macvlan", "mode", "bridge"],
    );
    // macvlan refuses a taken MAC when a child comes up, not when it is made.
    lab.exec(&host, &["ip", "link", "set", "foreign0", "up"]);
    let body = format!(
        "[networks.lan]\ndriver = \"macvlan\"\nparent = \"eth0\"\nsubnet = \"172.16.10.0/24\"\n\n\
         [endpoints.a]\nnetwork = \"lan\"\nnetns = \"{a}\"\nmac = \"02:00:00:00:00:42\"\n\n[endpoints.b]\nnetwork = \"lan\"\nnetns = \"{b}\"\n"
    );
    let config = lab.config("h1", &body);
    let out = lab.vland(&host, &config, &["apply"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("1 of 2 namespaces failed"), "{err}");
    assert!(err.contains(&format!("namespace {a}")), "{err}");
    assert!(ip::first_addr(&b, "-4", "eth0").is_some(), "the other endpoint was not applied: {err}");
    lab.vland_ok(&host, &config, &["down"]);
    assert!(!run_ok("ip", &["netns", "list"]).contains(&b));
    lab.exec(&host, &["ip", "link", "del", "foreign0"]);
}
