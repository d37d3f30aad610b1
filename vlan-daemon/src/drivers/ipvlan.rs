//! ipvlan children: they share the parent's MAC, so no MAC is sent; all children of one parent
//! share one mode and flag (the kernel keeps them per parent).
use super::modes::modes;
use super::{ChildDriver, ChildSpec, Driver, Options, Report};
use crate::netlink::{ChildInfo, LinkFacts};
use netlink_packet_route::link::{IpVlanFlags, IpVlanMode, LinkMessage};
use rtnetlink::LinkIpVlan;

modes!(
    /// Docker's ipvlan_mode values, l2 first (the default).
    IpvlanMode: IpVlanMode {
        L2 = "l2" => IpVlanMode::L2,
        L3 = "l3" => IpVlanMode::L3,
        L3s = "l3s" => IpVlanMode::L3S,
    }
);

modes!(
    /// Docker's ipvlan_flag values; "bridge" is the absence of the other two flags.
    IpvlanFlag: IpVlanFlags {
        Bridge = "bridge" => IpVlanFlags::empty(),
        Private = "private" => IpVlanFlags::Private,
        Vepa = "vepa" => IpVlanFlags::Vepa,
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipvlan {
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
}

impl Ipvlan {
    pub fn from_options(opts: &Options<'_>, report: Report<'_>) -> Option<Ipvlan> {
        if !opts.source_macs.is_empty() {
            report("source_macs", "only macvlan mode \"source\" uses source_macs: remove them or set mode = \"source\"".into());
        }
        let mode = opts.mode.map(|m| IpvlanMode::parse(m, "ipvlan mode")).transpose().map_err(|msg| report("mode", msg));
        let flag = opts.ipvlan_flag.map(|f| IpvlanFlag::parse(f, "ipvlan flag")).transpose().map_err(|msg| report("ipvlan_flag", msg));
        Some(Ipvlan { mode: mode.ok()?.unwrap_or_default(), flag: flag.ok()?.unwrap_or_default() })
    }
}

impl ChildDriver for Ipvlan {
    fn kind(&self) -> &'static str {
        "ipvlan"
    }

    fn takes_parent_mac(&self) -> bool {
        true
    }

    fn parent_answers_neighbours(&self) -> bool {
        self.mode == IpvlanMode::L2
    }

    fn routes_by_device(&self) -> bool {
        matches!(self.mode, IpvlanMode::L3 | IpvlanMode::L3s)
    }

    fn max_endpoints(&self) -> Option<(usize, &'static str)> {
        None
    }

    fn parent_conflict(&self, other: &Driver, other_name: &str, parent: &str) -> Option<(&'static str, String)> {
        let Driver::Ipvlan(o) = other else { return None };
        (o != self).then(|| {
            (
                "mode",
                format!(
                    "all ipvlan children of one parent share one mode and flag; `{other_name}` on {parent} uses {}/{}: use the same here or another parent",
                    o.mode, o.flag
                ),
            )
        })
    }

    fn child_message(&self, spec: &ChildSpec<'_>) -> LinkMessage {
        let mut b =
            LinkIpVlan::new(spec.name, spec.parent_index, self.mode.kernel()).flag(self.flag.kernel()).setns_by_fd(spec.target_netns);
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        b.build()
    }

    fn drift(&self, link: &LinkFacts) -> Vec<String> {
        let Some(ChildInfo::Ipvlan { mode, flags }) = &link.child else {
            return vec![format!("no ipvlan settings reported -> mode {}", self.mode)];
        };
        let mut reasons = Vec::new();
        match IpvlanMode::from_kernel(*mode) {
            Some(m) if m == self.mode => {}
            have => reasons.push(format!("mode {} -> {}", have.map_or_else(|| format!("{mode:?}"), |m| m.to_string()), self.mode)),
        }
        match IpvlanFlag::from_kernel(*flags) {
            Some(f) if f == self.flag => {}
            have => reasons.push(format!("ipvlan_flag {} -> {}", have.map_or_else(|| format!("{flags:?}"), |f| f.to_string()), self.flag)),
        }
        reasons
    }

    fn busy_explanation(&self, parent: &str) -> String {
        format!(
            "parent {parent} refused an ipvlan child (busy): it already carries macvlan children or is enslaved to a bridge or \
             bond; macvlan and ipvlan cannot share a parent"
        )
    }

    fn host_access_refusal(&self) -> Option<String> {
        // private keeps slaves apart; vepa sends slave-to-slave traffic out to the switch.
        (self.flag != IpvlanFlag::Bridge).then(|| {
            format!(
                "ipvlan_flag {} keeps children from reaching a sibling on their parent directly, so a host child cannot reach \
                 them: use ipvlan_flag = \"bridge\" or remove host_access",
                self.flag
            )
        })
    }
}
