//! The per-device sysctls of endpoint children, written from one thread inside their namespace.
//! Without IPv6 settings a child has no IPv6 at all: no SLAAC, DAD or MLD surprises (a common
//! complaint about Docker); with them, autoconf stays off unless asked for. arp_notify makes the
//! child announce itself when it comes up (as CNI does). All must precede link up.
//!
//! A new child inherits its namespace's `default` values, so it is written only where it needs
//! something else; a child that already existed is written every apply (undoing drift). In a
//! namespace vland creates (and owns), the defaults are set first to what most of its children
//! want, so most children need no write at all.
use crate::config::Network;
use crate::netns;
use std::fs::File;
use std::path::Path;

/// What one child's sysctls should be.
#[derive(Clone)]
pub struct DeviceSysctls {
    ifname: String,
    ipv6: bool,
    autoconf: bool,
    arp_notify: bool,
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
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// A kernel without IPv6 has no such files: nothing to turn off.
fn has_ipv6() -> bool {
    Path::new("/proc/sys/net/ipv6/conf/default").exists()
}

/// Sets the `default` values of a namespace vland just created to what most of `devices` want.
pub fn set_namespace_defaults(ns: &File, devices: &[DeviceSysctls]) -> anyhow::Result<()> {
    let majority = |f: fn(&DeviceSysctls) -> bool| 2 * devices.iter().filter(|d| f(d)).count() > devices.len();
    let (ipv6, arp_notify) = (majority(|d| d.ipv6), majority(|d| d.arp_notify));
    netns::run_in(ns, move || {
        if has_ipv6() {
            netns::write_sysctl("ipv6/conf/default/disable_ipv6", flag(!ipv6))?;
        }
        netns::write_sysctl("ipv4/conf/default/arp_notify", flag(arp_notify))
    })
}

/// Writes what each device needs; with each, whether this apply created it.
pub fn write(ns: &File, devices: Vec<(DeviceSysctls, bool)>) -> anyhow::Result<()> {
    netns::run_in(ns, move || {
        let ipv6_here = has_ipv6();
        let default_ipv6 = ipv6_here.then(|| !netns::read_sysctl_flag("ipv6/conf/default/disable_ipv6").unwrap_or(false));
        let default_arp_notify = netns::read_sysctl_flag("ipv4/conf/default/arp_notify").unwrap_or(false);
        for (d, new) in devices {
            if ipv6_here && !(new && default_ipv6 == Some(d.ipv6)) {
                netns::write_sysctl(&format!("ipv6/conf/{}/disable_ipv6", d.ifname), flag(!d.ipv6))?;
            }
            if ipv6_here && d.ipv6 {
                for key in ["accept_ra", "autoconf"] {
                    netns::write_sysctl(&format!("ipv6/conf/{}/{key}", d.ifname), flag(d.autoconf))?;
                }
                netns::write_sysctl(&format!("ipv6/conf/{}/ndisc_notify", d.ifname), "1")?;
            }
            if !(new && default_arp_notify == d.arp_notify) {
                netns::write_sysctl(&format!("ipv4/conf/{}/arp_notify", d.ifname), flag(d.arp_notify))?;
            }
        }
        Ok(())
    })
}
