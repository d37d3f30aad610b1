//! Attaching a TC program so that it outlives vland: as a pinned tcx link where the kernel has
//! tcx (6.6+), else as a classic clsact filter, which the kernel keeps without any pin.
use anyhow::Context;
use aya::programs::links::FdLink;
use aya::programs::tc::{TcError, qdisc_add_clsact, qdisc_detach_program};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::util::KernelVersion;
use std::path::Path;

/// tcx (pinnable TC links) arrived in Linux 6.6.
pub fn has_tcx() -> bool {
    KernelVersion::current().map(|v| v >= KernelVersion::new(6, 6, 0)).unwrap_or(true)
}

/// Attaches `prog` (named `name`) to `ifname` at `attach_type`, pinned at `pin` under tcx.
/// Must run in the device's namespace.
pub fn attach(prog: &mut SchedClassifier, name: &str, ifname: &str, attach_type: TcAttachType, pin: &Path) -> anyhow::Result<()> {
    if has_tcx() {
        let id = prog.attach(ifname, attach_type).context("TC attach")?;
        let link: FdLink = prog.take_link(id)?.try_into().context("tcx attach gave no bpf_link")?;
        link.pin(pin).with_context(|| format!("cannot pin {}", pin.display()))?;
        return Ok(());
    }
    // clsact is shared with other users of TC on the device: add it if missing, never remove it.
    match qdisc_add_clsact(ifname) {
        Ok(()) => {}
        Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e).context("cannot add the clsact qdisc"),
    }
    // Replace vland's own filter (found by program name), leaving other filters alone.
    let _ = qdisc_detach_program(ifname, attach_type, name);
    let id = prog.attach(ifname, attach_type).context("TC attach (clsact)")?;
    // Dropping the link would delete the filter; the kernel keeps it on the device for us.
    std::mem::forget(prog.take_link(id)?);
    Ok(())
}
