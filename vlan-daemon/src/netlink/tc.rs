//! The one TC setup vland makes on its own child links: a clsact qdisc with one cls_bpf filter
//! on egress, at a fixed priority and handle so vland finds and replaces exactly its own. (A
//! classic filter rather than tcx: tcx attach and detach each wait for an RCU grace period under
//! RTNL, ~10 ms per device; a filter costs tens of microseconds and goes with its device.)
use super::{Netlink, errno, nl_err};
use futures::StreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption};
use std::os::fd::{AsRawFd, BorrowedFd};

/// vland's filter on the egress hook: early (before filters added with tc's default priority,
/// 49152), on a priority few scripts pick.
const EGRESS_FILTER_PRIORITY: u16 = 0x00f0;
const EGRESS_FILTER_HANDLE: u32 = 1;
const EGRESS_PARENT: TcHandle = TcHandle { major: 0xffff, minor: TcHandle::MIN_EGRESS };
const ETH_P_ALL: u16 = 0x0003;

fn header(index: u32) -> TcMessage {
    TcMessage::with_index(index as i32)
}

impl Netlink {
    /// Sends one request and waits for its acknowledgement.
    pub(super) async fn acked(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), rtnetlink::Error> {
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
        let mut msg = header(index);
        msg.header.handle = TcHandle { major: 0xffff, minor: 0 };
        msg.header.parent = TcHandle::CLSACT;
        msg.attributes.push(TcAttribute::Kind("clsact".into()));
        match self.acked(RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_CREATE | NLM_F_EXCL).await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_err(&format!("add the clsact qdisc to link {index}"))(e)),
        }
    }

    /// Puts program `prog` (named `name`) in vland's egress filter on `index`, creating the
    /// filter or swapping its program atomically.
    pub async fn replace_egress_filter(&self, index: u32, prog: BorrowedFd<'_>, name: &str) -> anyhow::Result<()> {
        let mut msg = header(index);
        msg.header.parent = EGRESS_PARENT;
        msg.header.handle = TcHandle::from(EGRESS_FILTER_HANDLE);
        msg.header.info = ((EGRESS_FILTER_PRIORITY as u32) << 16) | ETH_P_ALL.to_be() as u32;
        msg.attributes.push(TcAttribute::Kind("bpf".into()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
            TcOption::Bpf(TcFilterBpfOption::ProgName(name.into())),
            TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
        ]));
        self.acked(RouteNetlinkMessage::NewTrafficFilter(msg), NLM_F_CREATE | NLM_F_REPLACE)
            .await
            .map_err(nl_err(&format!("attach the egress filter to link {index}")))
    }

    /// The program id in vland's egress filter on `index`, if the filter is there.
    pub async fn egress_filter_program(&self, index: u32) -> anyhow::Result<Option<u32>> {
        let mut msg = header(index);
        msg.header.parent = EGRESS_PARENT;
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetTrafficFilter(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut responses = self.handle.clone().request(req).map_err(nl_err("list egress filters"))?;
        let mut found = None;
        while let Some(msg) = responses.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(f)) => {
                    if f.header.info >> 16 != EGRESS_FILTER_PRIORITY as u32 || u32::from(f.header.handle) != EGRESS_FILTER_HANDLE {
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
                    return Err(nl_err(&format!("list the egress filters of link {index}"))(err));
                }
                _ => {}
            }
        }
        Ok(found)
    }
}
