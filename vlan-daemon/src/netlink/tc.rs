//! The TC setup vland makes on its own child links: a clsact qdisc with one cls_bpf filter per
//! hook it uses (egress always; ingress only as a fallback for XDP), at a fixed priority and
//! handle so vland finds and replaces exactly its own. (Classic filters rather than tcx: tcx
//! attach and detach each wait for an RCU grace period under RTNL, ~10 ms per device; a filter
//! costs tens of microseconds and goes with its device.)
use super::{Netlink, errno, nl_err};
use futures::StreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption};
use std::os::fd::{AsRawFd, BorrowedFd};

/// vland's filters: early (before filters added with tc's default priority, 49152), on a
/// priority few scripts pick.
const FILTER_PRIORITY: u16 = 0x00f0;
const FILTER_HANDLE: u32 = 1;
const ETH_P_ALL: u16 = 0x0003;

/// A clsact hook.
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    Ingress,
    Egress,
}

impl Hook {
    fn parent(self) -> TcHandle {
        let minor = match self {
            Hook::Ingress => TcHandle::MIN_INGRESS,
            Hook::Egress => TcHandle::MIN_EGRESS,
        };
        TcHandle { major: 0xffff, minor }
    }
}

/// vland's filter on `hook` of link `index`, as the kernel identifies it.
fn filter(index: u32, hook: Hook) -> TcMessage {
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.parent = hook.parent();
    msg.header.handle = TcHandle::from(FILTER_HANDLE);
    msg.header.info = ((FILTER_PRIORITY as u32) << 16) | ETH_P_ALL.to_be() as u32;
    msg
}

impl Netlink {
    /// Sends one request and waits for its acknowledgement.
    async fn acked(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), rtnetlink::Error> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut responses = self.handle.clone().request(req)?;
        while let Some(msg) = responses.next().await {
            if let NetlinkPayload::Error(e) = msg.payload
                && e.code.is_some()
            {
                return Err(rtnetlink::Error::NetlinkError(e));
            }
        }
        Ok(())
    }

    /// Adds the clsact qdisc to `index` unless it has one (it may be shared with other TC users:
    /// vland never removes it; it goes with the device).
    pub async fn ensure_clsact(&self, index: u32) -> anyhow::Result<()> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.handle = TcHandle { major: 0xffff, minor: 0 };
        msg.header.parent = TcHandle::CLSACT;
        msg.attributes.push(TcAttribute::Kind("clsact".into()));
        match self.acked(RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_CREATE | NLM_F_EXCL).await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_err(&format!("add the clsact qdisc to link {index}"))(e)),
        }
    }

    /// Puts program `prog` (named `name`) in vland's filter on `hook` of `index`, creating the
    /// filter or swapping its program atomically.
    pub async fn replace_filter(&self, index: u32, hook: Hook, prog: BorrowedFd<'_>, name: &str) -> anyhow::Result<()> {
        let mut msg = filter(index, hook);
        msg.attributes.push(TcAttribute::Kind("bpf".into()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
            TcOption::Bpf(TcFilterBpfOption::ProgName(name.into())),
            TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
        ]));
        self.acked(RouteNetlinkMessage::NewTrafficFilter(msg), NLM_F_CREATE | NLM_F_REPLACE)
            .await
            .map_err(nl_err(&format!("attach the {hook:?} filter to link {index}")))
    }

    /// Removes vland's filter from `hook` of `index`; one that is not there is fine.
    pub async fn delete_filter(&self, index: u32, hook: Hook) -> anyhow::Result<()> {
        let mut msg = filter(index, hook);
        msg.attributes.push(TcAttribute::Kind("bpf".into()));
        match self.acked(RouteNetlinkMessage::DelTrafficFilter(msg), 0).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(libc::ENOENT | libc::EINVAL)) => Ok(()),
            Err(e) => Err(nl_err(&format!("remove the {hook:?} filter from link {index}"))(e)),
        }
    }

    /// The program id in vland's filter on `hook` of `index`, if the filter is there.
    pub async fn filter_program(&self, index: u32, hook: Hook) -> anyhow::Result<Option<u32>> {
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = hook.parent();
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetTrafficFilter(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut responses = self.handle.clone().request(req).map_err(nl_err("list TC filters"))?;
        let mut found = None;
        while let Some(msg) = responses.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(f)) => {
                    if f.header.info >> 16 != FILTER_PRIORITY as u32 || u32::from(f.header.handle) != FILTER_HANDLE {
                        continue;
                    }
                    found = f.attributes.iter().find_map(|a| match a {
                        TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
                            TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => Some(*id),
                            _ => None,
                        }),
                        _ => None,
                    });
                }
                // No clsact qdisc (so no filter) answers EINVAL.
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    let err = rtnetlink::Error::NetlinkError(e);
                    if matches!(errno(&err), Some(libc::EINVAL | libc::ENOENT)) {
                        return Ok(None);
                    }
                    return Err(nl_err(&format!("list the {hook:?} filters of link {index}"))(err));
                }
                _ => {}
            }
        }
        Ok(found)
    }
}
