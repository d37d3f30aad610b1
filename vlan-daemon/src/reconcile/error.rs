//! Why an apply failed, sorted by what trying again can do about it. The config, how it fits this
//! kernel and its address ranges, the size of the data plane and a state file vland refuses all
//! stay as they are until someone changes something: the daemon then waits for a change (an
//! edited config, SIGHUP, a reload, a link event). Anything else (netlink, namespaces, bpffs,
//! files) may be passing, and is retried.
use crate::config::ConfigErrors;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The config is invalid, or does not fit the kernel (preflight) or its address ranges; every
    /// error is listed.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The config file could not be read.
    #[error(transparent)]
    ConfigUnreadable(anyhow::Error),
    #[error("{configured} endpoints, but vland's eBPF maps hold at most {max}: remove endpoints")]
    TooManyEndpoints { configured: usize, max: u32 },
    #[error(transparent)]
    State(#[from] StateError),
    /// The cluster side of a `scope = "cluster"` network (etcd, blocks, the pool's record).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A kernel or IO error, with the context of what vland was doing.
    #[error(transparent)]
    Kernel(#[from] anyhow::Error),
}

impl ApplyError {
    /// Whether the same apply can only fail again until something changes.
    pub fn is_permanent(&self) -> bool {
        match self {
            ApplyError::Config(_) | ApplyError::ConfigUnreadable(_) | ApplyError::TooManyEndpoints { .. } => true,
            ApplyError::State(e) => e.is_permanent(),
            ApplyError::Cluster(e) => e.is_permanent(),
            // Unless it is a refusal (an unsafe dir, a bpf dir of another instance): it stays.
            ApplyError::Kernel(e) => e.chain().any(|c| c.is::<crate::secure_fs::Refusal>()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use std::path::PathBuf;

    fn config_errors() -> ConfigErrors {
        let mut errors = ConfigErrors { source_name: "vland.toml".into(), errors: Vec::new() };
        errors.push("networks.lan.parent", "interface eth9 does not exist in vland's network namespace");
        errors.push("endpoints.web2.network", "no free address left in 10.0.0.0/30 of network `lan`");
        errors
    }

    #[test]
    fn what_a_retry_cannot_fix_is_permanent() {
        assert!(ApplyError::from(config_errors()).is_permanent());
        assert!(ApplyError::ConfigUnreadable(anyhow::anyhow!("cannot read config vland.toml")).is_permanent());
        assert!(ApplyError::TooManyEndpoints { configured: 5000, max: 4095 }.is_permanent());
        let refused = StateError::Refused { path: PathBuf::from("/var/lib/vland/state.json"), reason: "it has no `version`".into() };
        assert!(ApplyError::from(refused).is_permanent());
        let newer = StateError::Newer { path: PathBuf::from("/var/lib/vland/state.json"), found: 9 };
        assert!(ApplyError::from(newer).is_permanent());
    }

    #[test]
    fn kernel_and_io_errors_are_retried() {
        let netlink: anyhow::Result<()> = Err(std::io::Error::from_raw_os_error(libc::ENODEV)).context("create macvlan child of eth0");
        assert!(!ApplyError::from(netlink.unwrap_err()).is_permanent());
        let unreadable = StateError::Unreadable {
            path: PathBuf::from("/var/lib/vland/state.json"),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(!ApplyError::from(unreadable).is_permanent());
    }

    #[test]
    fn the_messages_stay_whole() {
        // Every config error, as ConfigErrors lists them.
        let text = ApplyError::from(config_errors()).to_string();
        assert!(text.starts_with("invalid config vland.toml: 2 errors") && text.contains("eth9") && text.contains("10.0.0.0/30"), "{text}");
        // The context chain of a kernel error, in the alternate form the daemon logs.
        let inner: anyhow::Result<()> = Err(std::io::Error::from_raw_os_error(libc::ENODEV)).context("create macvlan child of eth0");
        let e = ApplyError::from(inner.context("endpoint web1").unwrap_err());
        let text = format!("{e:#}");
        assert!(text.starts_with("endpoint web1: create macvlan child of eth0: "), "{text}");
        // And through anyhow, as the command line prints it.
        let text = format!("{:#}", anyhow::Error::from(e));
        assert!(text.starts_with("endpoint web1: create macvlan child of eth0: "), "{text}");
    }
}
