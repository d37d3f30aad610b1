//! The per-device sysctls of endpoint children, read and written from one thread inside their
//! namespace. Without IPv6 settings a child has no IPv6 at all: no SLAAC, DAD or MLD surprises (a
//! common complaint about Docker); with them, autoconf stays off unless asked for. arp_notify
//! makes the child announce itself when it comes up (as CNI does). All must precede link up.
//!
//! A new child inherits its namespace's `default` values, so it needs a write only where it wants
//! something else; in a namespace vland creates (and owns), the defaults are set first to what
//! most of its children want, so most children need no write at all.
use crate::config::Network;
use crate::netns;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

/// What one child's sysctls should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSysctls {
    pub ifname: String,
    pub ipv6: bool,
    pub autoconf: bool,
    pub arp_notify: bool,
}

/// A sysctl under /proc/sys/net (e.g. `ipv4/conf/eth0/arp_notify`) and its 0/1 value.
pub type Setting = (String, bool);

/// The namespace-wide values a new child inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// None: the kernel has no IPv6.
    pub ipv6: Option<bool>,
    pub arp_notify: bool,
}

impl DeviceSysctls {
    pub fn for_network(ifname: &str, net: &Network) -> Self {
        Self {
            ifname: ifname.to_string(),
            ipv6: net.ipam6.is_some() || net.ipv6_autoconf,
            autoconf: net.ipv6_autoconf,
            arp_notify: net.gratuitous_arp,
        }
    }

    /// Every setting vland makes on this device (IPv6 ones only where the kernel has IPv6).
    pub fn wanted(&self, ipv6_here: bool) -> Vec<Setting> {
        let key = |family: &str, name: &str| format!("{family}/conf/{}/{name}", self.ifname);
        let mut out = vec![(key("ipv4", "arp_notify"), self.arp_notify)];
        if ipv6_here {
            out.push((key("ipv6", "disable_ipv6"), !self.ipv6));
            if self.ipv6 {
                out.push((key("ipv6", "accept_ra"), self.autoconf));
                out.push((key("ipv6", "autoconf"), self.autoconf));
                out.push((key("ipv6", "ndisc_notify"), true));
            }
        }
        out
    }

    /// What a child created now starts with: the namespace's defaults where it has them (the
    /// rest unknown, so written).
    pub fn inherited(&self, defaults: Defaults) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::from([(format!("ipv4/conf/{}/arp_notify", self.ifname), defaults.arp_notify)]);
        if let Some(ipv6) = defaults.ipv6 {
            out.insert(format!("ipv6/conf/{}/disable_ipv6", self.ifname), !ipv6);
        }
        out
    }
}

/// The settings among `wanted` that `present` does not already have.
pub fn differences(wanted: Vec<Setting>, present: &BTreeMap<String, bool>) -> Vec<Setting> {
    wanted.into_iter().filter(|(key, value)| present.get(key) != Some(value)).collect()
}

/// The defaults vland gives a namespace it creates: what most of its children want.
pub fn majority_defaults(devices: &[&DeviceSysctls], ipv6_here: bool) -> Defaults {
    let majority = |f: fn(&DeviceSysctls) -> bool| 2 * devices.iter().filter(|d| f(d)).count() > devices.len();
    Defaults { ipv6: ipv6_here.then(|| majority(|d| d.ipv6)), arp_notify: majority(|d| d.arp_notify) }
}

/// A kernel without IPv6 has no such files: nothing to turn off.
pub fn has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6/conf/default").exists()
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// Reads the namespace's defaults and the current value of each key (missing keys are left out);
/// must run inside the namespace.
pub fn read_here(keys: Vec<String>) -> (Defaults, BTreeMap<String, bool>) {
    let defaults = Defaults {
        ipv6: has_ipv6().then(|| !netns::read_sysctl_flag("ipv6/conf/default/disable_ipv6").unwrap_or(false)),
        arp_notify: netns::read_sysctl_flag("ipv4/conf/default/arp_notify").unwrap_or(false),
    };
    let values = keys.into_iter().filter_map(|k| netns::read_sysctl_flag(&k).map(|v| (k, v))).collect();
    (defaults, values)
}

/// Sets the `default` values of a namespace vland just created.
pub fn set_namespace_defaults(ns: &File, defaults: Defaults) -> anyhow::Result<()> {
    netns::run_in(ns, move || {
        if let Some(ipv6) = defaults.ipv6 {
            netns::write_sysctl("ipv6/conf/default/disable_ipv6", flag(!ipv6))?;
        }
        netns::write_sysctl("ipv4/conf/default/arp_notify", flag(defaults.arp_notify))
    })
}

/// Writes `settings` (in order: disable_ipv6 before the IPv6 keys that need it).
pub fn write(ns: &File, settings: Vec<Setting>) -> anyhow::Result<()> {
    if settings.is_empty() {
        return Ok(());
    }
    netns::run_in(ns, move || settings.iter().try_for_each(|(key, on)| netns::write_sysctl(key, flag(*on))))
}
