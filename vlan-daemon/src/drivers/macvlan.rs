//! macvlan children: each has a MAC of its own (passthru takes the parent's). The mode is always
//! sent: the kernel's own default is vepa, Docker's bridge.
use super::modes::modes;
use super::{ChildDriver, ChildSpec, Driver, Options, Report};
use crate::mac::Mac;
use crate::netlink::{ChildInfo, LinkFacts};
use netlink_packet_route::link::{InfoMacVlan, LinkMessage, MacVlanMacAddressMode, MacVlanMode};
use rtnetlink::LinkMacVlan;

modes!(
    /// Docker's macvlan_mode values, bridge first (the default).
    MacvlanMode: MacVlanMode {
        Bridge = "bridge" => MacVlanMode::Bridge,
        Vepa = "vepa" => MacVlanMode::Vepa,
        Private = "private" => MacVlanMode::Private,
        Passthru = "passthru" => MacVlanMode::Passthrough,
        Source = "source" => MacVlanMode::Source,
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macvlan {
    pub mode: MacvlanMode,
    /// Mode source: the senders whose frames the children receive.
    pub source_macs: Vec<Mac>,
}

impl Macvlan {
    pub fn from_options(opts: &Options<'_>, report: Report<'_>) -> Option<Macvlan> {
        if opts.ipvlan_flag.is_some() {
            report("ipvlan_flag", "only ipvlan networks have a flag: remove it or use driver = \"ipvlan\"".into());
        }
        let mode = match opts.mode.map(|m| MacvlanMode::parse(m, "macvlan mode")).transpose() {
            Ok(mode) => mode.unwrap_or_default(),
            Err(msg) => {
                report("mode", msg);
                return None;
            }
        };
        let is_source = mode == MacvlanMode::Source;
        if is_source && opts.source_macs.is_empty() {
            report("source_macs", "mode source needs the MACs to accept: source_macs = [\"02:00:00:00:00:01\"]".into());
        }
        if !is_source && !opts.source_macs.is_empty() {
            report("source_macs", "only macvlan mode \"source\" uses source_macs: remove them or set mode = \"source\"".into());
        }
        let source_macs = opts
            .source_macs
            .iter()
            .enumerate()
            .filter_map(|(i, text)| text.parse::<Mac>().map_err(|msg| report(&format!("source_macs.{i}"), msg)).ok())
            .collect();
        Some(Macvlan { mode, source_macs })
    }
}

impl ChildDriver for Macvlan {
    fn kind(&self) -> &'static str {
        "macvlan"
    }

    fn takes_parent_mac(&self) -> bool {
        self.mode == MacvlanMode::Passthru
    }

    fn parent_answers_neighbours(&self) -> bool {
        matches!(self.mode, MacvlanMode::Bridge | MacvlanMode::Vepa | MacvlanMode::Private)
    }

    fn routes_by_device(&self) -> bool {
        false
    }

    fn max_endpoints(&self) -> Option<(usize, &'static str)> {
        (self.mode == MacvlanMode::Passthru).then_some((1, "passthru gives the parent's MAC to one child only"))
    }

    fn parent_conflict(&self, other: &Driver, other_name: &str, parent: &str) -> Option<(&'static str, String)> {
        let other_passthru = matches!(other, Driver::Macvlan(m) if m.mode == MacvlanMode::Passthru);
        if self.mode == MacvlanMode::Passthru {
            return Some((
                "mode",
                format!(
                    "cannot use mode passthru: macvlan network `{other_name}` also uses parent {parent}; passthru needs the parent to itself"
                ),
            ));
        }
        other_passthru.then(|| {
            ("parent", format!("macvlan network `{other_name}` uses parent {parent} in mode passthru, which needs it to itself (cannot use mode passthru with other networks): use another parent"))
        })
    }

    fn child_message(&self, spec: &ChildSpec<'_>) -> LinkMessage {
        let mut b = LinkMacVlan::new(spec.name, spec.parent_index, self.mode.kernel()).setns_by_fd(spec.target_netns);
        // passthru always takes the parent's MAC; asking for another one is refused.
        if self.mode != MacvlanMode::Passthru {
            b = b.address(spec.mac.octets().to_vec());
        }
        if self.mode == MacvlanMode::Source {
            // The child receives frames from exactly these source MACs.
            b = b
                .append_info_data(InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set))
                .append_info_data(InfoMacVlan::MacAddrData(self.source_macs.iter().map(|m| InfoMacVlan::MacAddr(m.octets())).collect()));
        }
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        b.build()
    }

    fn drift(&self, link: &LinkFacts) -> Vec<String> {
        let Some(ChildInfo::Macvlan { mode, source_macs }) = &link.child else {
            return vec![format!("no macvlan settings reported -> mode {}", self.mode)];
        };
        let mut reasons = Vec::new();
        let have = MacvlanMode::from_kernel(*mode);
        if have != Some(self.mode) {
            reasons.push(format!("mode {} -> {}", have.map_or_else(|| format!("{mode:?}"), |m| m.to_string()), self.mode));
        }
        // The kernel keeps the source list only in mode source.
        if self.mode == MacvlanMode::Source {
            let (mut want, mut have) = (self.source_macs.clone(), source_macs.clone());
            want.sort();
            want.dedup();
            have.sort();
            have.dedup();
            if want != have {
                let list = |m: &[Mac]| m.iter().map(Mac::to_string).collect::<Vec<_>>().join(",");
                reasons.push(format!("source_macs [{}] -> [{}]", list(&have), list(&want)));
            }
        }
        reasons
    }

    fn busy_explanation(&self, parent: &str) -> String {
        format!(
            "parent {parent} refused a macvlan child (busy): it already carries ipvlan (or passthru) children or is enslaved to a \
             bridge or bond; macvlan and ipvlan cannot share a parent, and passthru must be alone on it"
        )
    }

    fn host_access_refusal(&self) -> Option<String> {
        // macvlan delivers between siblings only when both are in bridge mode.
        (self.mode != MacvlanMode::Bridge).then(|| {
            format!(
                "mode {} children do not talk to a sibling on their parent (macvlan does so in bridge mode only), so a host child \
                 cannot reach them: use mode = \"bridge\" or remove host_access",
                self.mode
            )
        })
    }
}
