//! vland as a library: the daemon, the subcommands and every piece they are made of, so that the
//! thin `vland` binary, the tests and the developer tasks all use one implementation.
//!
//! config (TOML -> validated model) -> reconcile (desired vs recorded vs kernel) -> netlink /
//! drivers (the kernel) ; ebpf (programs and pinned maps) -> stats / metrics.
pub mod apply_metrics;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conflict_watch;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod drivers;
pub mod ebpf;
pub mod ethtool;
pub mod exposition;
pub mod file_cache;
pub mod fnv;
pub mod frontends;
pub mod ipam;
pub mod listen;
pub mod mac;
pub mod metrics;
pub mod netlink;
pub mod netns;
pub mod notify;
pub mod preflight;
pub mod reconcile;
pub mod secure_fs;
pub mod state;
pub mod stats;
pub mod status_tree;
