//! The per-pod firewall change, published-port map elements, sent as one
//! nf_tables netlink batch (NFT_MSG_NEWSETELEM / DELSETELEM) on a
//! NETLINK_NETFILTER socket from the rtnetlink family's `netlink-sys`.
//!
//! Starting an `nft` process costs 5-10 ms on the 2-core test VM, which
//! alone would take half of the 20 ms budget for a pod's network set-up or
//! tear-down. The elements are the only thing that changes per pod, and
//! their messages are small and stable kernel ABI (the same ones libnftnl
//! sends), so they go straight to the kernel; everything else (tables,
//! chains, rules, listing for `gc`) still goes through `nft -j`, and the
//! caller falls back to it if this path fails.

use std::os::fd::AsRawFd;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket};

use super::{NetError, Result};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
/// libnftnl's NFTNL_UDATA_SET_ELEM_COMMENT, what `nft` shows as `comment`.
const UDATA_SET_ELEM_COMMENT: u8 = 0;
const NLA_F_NESTED: u16 = 0x8000;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;

/// One map element: key and data as nf_tables registers hold them
/// (each field of a concatenation padded to 4 bytes, network byte order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub map: &'static str,
    pub key: Vec<u8>,
    pub data: Vec<u8>,
    pub comment: String,
}

/// Encodes a concatenation of fields, each padded to a 4-byte register.
pub fn concat(fields: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![];
    for f in fields {
        v.extend_from_slice(f);
        v.resize(v.len().next_multiple_of(4), 0);
    }
    v
}

fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nest(buf: &mut Vec<u8>, ty: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    inner(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Appends one netlink message (header + nfgenmsg + attributes).
fn message(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(attrs);
}

/// The batch adding (`add`) or deleting the elements, one message per map.
pub fn encode(table: &str, add: bool, elems: &[Elem], seq0: u32) -> (Vec<u8>, usize) {
    let mut buf = vec![];
    let mut seq = seq0;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    let mut maps: Vec<&str> = elems.iter().map(|e| e.map).collect();
    maps.sort_unstable();
    maps.dedup();
    for map in &maps {
        let mut a = vec![];
        attr(&mut a, NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
        attr(&mut a, NFTA_SET_ELEM_LIST_SET, &cstr(map));
        nest(&mut a, NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
            for e in elems.iter().filter(|e| e.map == *map) {
                nest(a, NFTA_LIST_ELEM, |a| {
                    nest(a, NFTA_SET_ELEM_KEY, |a| attr(a, NFTA_DATA_VALUE, &e.key));
                    if add {
                        nest(a, NFTA_SET_ELEM_DATA, |a| attr(a, NFTA_DATA_VALUE, &e.data));
                        let c = cstr(&e.comment);
                        let mut u = vec![UDATA_SET_ELEM_COMMENT, c.len() as u8];
                        u.extend_from_slice(&c);
                        attr(a, NFTA_SET_ELEM_USERDATA, &u);
                    }
                });
            }
        });
        seq += 1;
        let (ty, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
        };
        message(
            &mut buf,
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            flags,
            seq,
            NFPROTO_INET,
            0,
            &a,
        );
    }
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq + 1,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    (buf, maps.len())
}

/// Sends the batch and waits for every message's acknowledgement; the
/// kernel applies the batch atomically, so an error means nothing changed.
pub fn apply(table: &str, add: bool, elems: &[Elem]) -> Result<()> {
    if elems.is_empty() {
        return Ok(());
    }
    let err = |what: &str, e: std::io::Error| NetError::Nft(format!("netlink {what}: {e}"));
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| err("socket", e))?;
    sock.bind_auto().map_err(|e| err("bind", e))?;
    let tv = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a valid timeval on our own socket.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let seq0 = std::process::id().wrapping_mul(65536);
    let (buf, expected) = encode(table, add, elems, seq0);
    sock.send(&buf, 0).map_err(|e| err("send", e))?;
    let mut acked = 0;
    while acked < expected {
        let mut rx: Vec<u8> = Vec::with_capacity(16384);
        sock.recv(&mut rx, 0).map_err(|e| err("recv", e))?;
        let mut off = 0;
        while off + 16 <= rx.len() {
            let len = u32::from_ne_bytes(rx[off..off + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(rx[off + 4..off + 6].try_into().expect("2 bytes"));
            if len < 16 || off + len > rx.len() {
                break;
            }
            if ty == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(rx[off + 16..off + 20].try_into().expect("4 bytes"));
                if code != 0 {
                    return Err(NetError::Nft(format!(
                        "netlink {} of published-port elements in table {table}: {}",
                        if add { "add" } else { "delete" },
                        std::io::Error::from_raw_os_error(-code)
                    )));
                }
                acked += 1;
            }
            off += len.next_multiple_of(4);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_padded_and_messages_framed() {
        assert_eq!(
            concat(&[&[6], &8080u16.to_be_bytes()]),
            [6, 0, 0, 0, 0x1f, 0x90, 0, 0]
        );
        let e = Elem {
            map: "ports_any",
            key: concat(&[&[6], &80u16.to_be_bytes()]),
            data: concat(&[&[198, 18, 0, 2], &80u16.to_be_bytes()]),
            comment: "pod:x".into(),
        };
        let (buf, n) = encode(
            "t",
            true,
            &[
                e.clone(),
                Elem {
                    map: "ports_ip",
                    ..e
                },
            ],
            7,
        );
        assert_eq!(n, 2);
        // begin, two element messages, end; every length 4-aligned and consistent.
        let mut off = 0;
        let mut types = vec![];
        while off < buf.len() {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            types.push(u16::from_ne_bytes(
                buf[off + 4..off + 6].try_into().unwrap(),
            ));
            off += len.next_multiple_of(4);
        }
        assert_eq!(off, buf.len());
        assert_eq!(types, [0x10, (10 << 8) | 12, (10 << 8) | 12, 0x11]);
        let needle = b"pod:x\0";
        assert!(buf.windows(needle.len()).any(|w| w == needle));
    }
}
