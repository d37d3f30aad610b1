//! Checks of the config against the running kernel, made before anything is changed and
//! reported together with the config's own errors.
use crate::config::{Config, ConfigErrors};
use crate::netlink::Netlink;

pub async fn check(config: &Config, host: &Netlink, errors: &mut ConfigErrors) -> anyhow::Result<()> {
    for net in config.networks.values() {
        let key = |k: &str| format!("networks.{}.{k}", net.name);
        match host.link_by_name(&net.parent).await? {
            None => errors.push(
                key("parent"),
                format!("interface {} does not exist in vland's network namespace: create it or name an existing one (see `ip link`)", net.parent),
            ),
            Some(parent) => {
                if parent.kind.as_deref() == Some(net.driver.kind()) {
                    errors.push(key("parent"), format!("{} is itself a {} child; use its parent instead", net.parent, net.driver.kind()));
                }
                if let (Some(want), Some(have)) = (net.mtu, parent.mtu)
                    && want > have
                {
                    errors.push(key("mtu"), format!("{want} is above the MTU {have} of parent {}: use at most {have}", net.parent));
                }
            }
        }
    }
    Ok(())
}
