//! The VM suite's runner: a Debian distribution kernel booted under qemu (TCG; KVM does not work
//! on this machine kind) with the host's root file system shared read-only, so the guest sees the
//! repository and target dir at the same paths. Used for what this machine's kernel lacks:
//! ipvlan, 802.1Q and dummy links.
mod image;
mod initramfs;
mod qemu;

pub use image::{KernelChoice, prepare};
pub use qemu::{RunOptions, run};

/// Exit code of `vm-run` when the guest did not finish in time (as timeout(1) uses).
pub const TIMEOUT_EXIT: i32 = 124;
