//! nf_tables over netlink, encoded here without libnftnl: the one kind of rule a docker lab
//! needs in the host's firewall, `iptables -I DOCKER-USER -i BRIDGE -o BRIDGE -m comment
//! --comment TEXT -j ACCEPT`, inserted, listed and deleted without an `iptables` binary (the lab
//! image is one static binary `FROM scratch`).
//!
//! The rule is built exactly as iptables-nft (iptables ≥ 1.8, the `nf_tables` variant) builds
//! it, so that `iptables -L DOCKER-USER -v` and `iptables -S DOCKER-USER` on the host list it as
//! their own: in table `filter` of family `ip` (`NFPROTO_IPV4`), chain `DOCKER-USER` (which
//! dockerd creates at start), the expressions
//!
//! 1. `meta load iifname => reg 1`, then `cmp eq reg 1 "BRIDGE\0"` (the name with its NUL: an
//!    exact match, not the `BRIDGE+` prefix match);
//! 2. the same for `oifname`;
//! 3. `counter packets 0 bytes 0` (before the verdict, as iptables-nft puts it);
//! 4. `immediate reg 0 accept` (the verdict `NF_ACCEPT`),
//!
//! and the comment as rule user data: one TLV of type `NFTNL_UDATA_RULE_COMMENT` (0), a length
//! byte, and the text with its NUL (libnftnl's `include/libnftnl/udata.h`). `nft list` shows
//! it as `comment "TEXT"`; iptables-nft lists it as `-m comment --comment "TEXT"` and matches it
//! in `iptables -D` with that option (a comment it adds itself, iptables 1.8.9 stores as an xt
//! `comment` match instead).
//!
//! Message formats and numbers are the kernel's UAPI: `include/uapi/linux/netlink.h`
//! (`nlmsghdr`, `nlattr`, `NLM_F_*`, `NLMSG_ERROR`/`NLMSG_DONE`),
//! `include/uapi/linux/netfilter/nfnetlink.h` (`nfgenmsg`, `NFNL_SUBSYS_NFTABLES`,
//! `NFNL_MSG_BATCH_BEGIN`/`END`) and `include/uapi/linux/netfilter/nf_tables.h`
//! (`NFT_MSG_*`, `NFTA_*` attributes, `NFT_META_*`, `NFT_CMP_EQ`, `NFT_REG_*`). Changes to the
//! ruleset go in a batch (BATCH_BEGIN, the message, BATCH_END) as the kernel requires; reads
//! are single requests or dumps. Integers in nf_tables attributes are big-endian; the netlink
//! and attribute headers are in host order.
//!
//! Everything here needs `CAP_NET_ADMIN` in the network namespace whose firewall it changes
//! (the host's: the guard service runs with `network_mode: host`).

use std::fmt;
use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// The table of iptables-nft's filter rules (family `ip`).
pub const TABLE: &str = "filter";
/// The chain dockerd keeps for the administrator's own rules, evaluated first in `FORWARD`.
pub const CHAIN: &str = "DOCKER-USER";
/// Longest interface name (`IFNAMSIZ` − 1).
pub const MAX_IFNAME: usize = 15;
/// Longest rule comment iptables accepts (`-m comment`: 255 bytes with the NUL).
pub const MAX_COMMENT: usize = 254;

// include/uapi/linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

// include/uapi/linux/netfilter/nfnetlink.h, include/uapi/linux/netfilter.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNETLINK_V0: u8 = 0;
const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_IPV4: u8 = 2;
const NF_ACCEPT: u32 = 1;

// include/uapi/linux/netfilter/nf_tables.h
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

// libnftnl include/libnftnl/udata.h
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// An nf_tables operation that failed: what was being done and the reason (the kernel's errno
/// for a refused request, e.g. `ENOENT` for a missing table or chain, `EPERM` without
/// `CAP_NET_ADMIN`; or a socket error).
#[derive(Debug)]
pub struct NftError {
    /// What was being done, e.g. "inserting a rule in ip filter DOCKER-USER".
    pub what: String,
    /// Why it failed.
    pub source: io::Error,
}

impl NftError {
    fn new(what: impl Into<String>, source: io::Error) -> NftError {
        NftError { what: what.into(), source }
    }

    fn kernel(what: impl Into<String>, errno: i32) -> NftError {
        NftError::new(what, io::Error::from_raw_os_error(errno))
    }

    /// The table or chain does not exist (`ENOENT`).
    pub fn is_missing(&self) -> bool {
        self.source.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32)
    }

    /// The caller may not change or read the ruleset (`EPERM`: no `CAP_NET_ADMIN`).
    pub fn is_permission(&self) -> bool {
        self.source.raw_os_error() == Some(nix::errno::Errno::EPERM as i32)
    }
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for NftError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

// ------------------------------------------------------------------ encoding

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Append one attribute (`nlattr` header, payload, padding to 4 bytes).
fn put(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

fn put_strz(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    put(buf, ty, &v);
}

fn put_be32(buf: &mut Vec<u8>, ty: u16, v: u32) {
    put(buf, ty, &v.to_be_bytes());
}

fn put_be64(buf: &mut Vec<u8>, ty: u16, v: u64) {
    put(buf, ty, &v.to_be_bytes());
}

/// Append a nested attribute (`NLA_F_NESTED`, as libmnl marks them) whose contents `f` writes.
fn nest(buf: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    f(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

/// One netlink message: `nlmsghdr` (length filled in at the end), `nfgenmsg`, then what `f`
/// appends.
fn message(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, NFNETLINK_V0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    f(&mut buf);
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// A batch around one ruleset change: `NFNL_MSG_BATCH_BEGIN` (sequence `seq`), the message
/// built with sequence `seq + 1`, `NFNL_MSG_BATCH_END` (`seq + 2`).
fn batch(seq: u32, inner: impl FnOnce(u32) -> Vec<u8>) -> Vec<u8> {
    let res_id = NFNL_SUBSYS_NFTABLES;
    let mut buf = message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, NFPROTO_UNSPEC, res_id, |_| {});
    buf.extend(inner(seq.wrapping_add(1)));
    buf.extend(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq.wrapping_add(2), NFPROTO_UNSPEC, res_id, |_| {}));
    buf
}

fn check_ifname(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['/', '\0']) || name.chars().any(char::is_whitespace) || name.ends_with('+') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not an interface name (1–{MAX_IFNAME} characters, no '/', blank or trailing '+')")));
    }
    Ok(())
}

/// The rule user data of a comment: `NFTNL_UDATA_RULE_COMMENT`, length, text and NUL.
pub fn comment_userdata(comment: &str) -> io::Result<Vec<u8>> {
    if comment.is_empty() || comment.len() > MAX_COMMENT || comment.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("rule comment {comment:?}: 1–{MAX_COMMENT} bytes without NUL")));
    }
    let mut v = vec![NFTNL_UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    Ok(v)
}

fn expr(buf: &mut Vec<u8>, name: &str, data: impl FnOnce(&mut Vec<u8>)) {
    nest(buf, NFTA_LIST_ELEM, |b| {
        put_strz(b, NFTA_EXPR_NAME, name);
        nest(b, NFTA_EXPR_DATA, data);
    });
}

fn ifname_match(buf: &mut Vec<u8>, key: u32, name: &str) {
    expr(buf, "meta", |b| {
        put_be32(b, NFTA_META_KEY, key);
        put_be32(b, NFTA_META_DREG, NFT_REG_1);
    });
    let mut value = name.as_bytes().to_vec();
    value.push(0);
    expr(buf, "cmp", |b| {
        put_be32(b, NFTA_CMP_SREG, NFT_REG_1);
        put_be32(b, NFTA_CMP_OP, NFT_CMP_EQ);
        nest(b, NFTA_CMP_DATA, |d| put(d, NFTA_DATA_VALUE, &value));
    });
}

/// The `NFTA_RULE_EXPRESSIONS` contents of `-i BRIDGE -o BRIDGE -j ACCEPT` as iptables-nft
/// builds them: iifname, oifname, counter, accept.
pub fn same_bridge_accept_expressions(bridge: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(320);
    ifname_match(&mut buf, NFT_META_IIFNAME, bridge);
    ifname_match(&mut buf, NFT_META_OIFNAME, bridge);
    expr(&mut buf, "counter", |b| {
        put_be64(b, NFTA_COUNTER_BYTES, 0);
        put_be64(b, NFTA_COUNTER_PACKETS, 0);
    });
    expr(&mut buf, "immediate", |b| {
        put_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        nest(b, NFTA_IMMEDIATE_DATA, |d| nest(d, NFTA_DATA_VERDICT, |v| put_be32(v, NFTA_VERDICT_CODE, NF_ACCEPT)));
    });
    buf
}

/// The batch that inserts `-i BRIDGE -o BRIDGE -m comment --comment COMMENT -j ACCEPT` at the
/// head of `ip filter DOCKER-USER` (`NFT_MSG_NEWRULE` with `NLM_F_CREATE` and no
/// `NLM_F_APPEND`: the kernel puts it first, as `iptables -I` does). The rule message has
/// sequence `seq + 1` and asks for an acknowledgement.
pub fn insert_rule_batch(seq: u32, bridge: &str, comment: &str) -> io::Result<Vec<u8>> {
    check_ifname(bridge)?;
    let udata = comment_userdata(comment)?;
    Ok(batch(seq, |s| {
        message(nft_type(NFT_MSG_NEWRULE), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, s, NFPROTO_IPV4, 0, |b| {
            put_strz(b, NFTA_RULE_TABLE, TABLE);
            put_strz(b, NFTA_RULE_CHAIN, CHAIN);
            put(b, NFTA_RULE_USERDATA, &udata);
            nest(b, NFTA_RULE_EXPRESSIONS, |e| e.extend(same_bridge_accept_expressions(bridge)));
        })
    }))
}

/// The batch that deletes the rule with this handle from `ip filter DOCKER-USER`
/// (`NFT_MSG_DELRULE`, sequence `seq + 1`, acknowledged).
pub fn delete_rule_batch(seq: u32, handle: u64) -> Vec<u8> {
    batch(seq, |s| {
        message(nft_type(NFT_MSG_DELRULE), NLM_F_REQUEST | NLM_F_ACK, s, NFPROTO_IPV4, 0, |b| {
            put_strz(b, NFTA_RULE_TABLE, TABLE);
            put_strz(b, NFTA_RULE_CHAIN, CHAIN);
            put_be64(b, NFTA_RULE_HANDLE, handle);
        })
    })
}

/// A dump request of the rules of `ip filter DOCKER-USER` (`NFT_MSG_GETRULE`, `NLM_F_DUMP`,
/// filtered by table and chain; replies are filtered again on receipt for kernels that dump
/// everything).
pub fn list_rules_request(seq: u32) -> Vec<u8> {
    message(nft_type(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_IPV4, 0, |b| {
        put_strz(b, NFTA_RULE_TABLE, TABLE);
        put_strz(b, NFTA_RULE_CHAIN, CHAIN);
    })
}

/// A request for the chain `ip filter DOCKER-USER` (`NFT_MSG_GETCHAIN`, acknowledged): the
/// kernel answers `ENOENT` when the table or the chain does not exist.
pub fn get_chain_request(seq: u32) -> Vec<u8> {
    message(nft_type(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_IPV4, 0, |b| {
        put_strz(b, NFTA_CHAIN_TABLE, TABLE);
        put_strz(b, NFTA_CHAIN_NAME, CHAIN);
    })
}

// ------------------------------------------------------------------ decoding

/// The attributes of a buffer: (type without the `NLA_F_*` flags, payload). Stops at the first
/// malformed one.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut v = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        v.push((ty, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    v
}

fn attr<'a>(list: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    list.iter().find(|(t, _)| *t == ty).map(|(_, p)| *p)
}

fn be32(p: Option<&[u8]>) -> Option<u32> {
    p.and_then(|p| p.get(..4)).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(p: Option<&[u8]>) -> Option<u64> {
    p.and_then(|p| p.get(..8)).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

fn strz(p: &[u8]) -> String {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// A rule of `DOCKER-USER` as far as the lab cares: the interface matches, the verdict, the
/// comment, and whether it does anything else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleInfo {
    /// Table (`filter`).
    pub table: String,
    /// Chain (`DOCKER-USER`).
    pub chain: String,
    /// The kernel's handle of the rule (what a deletion names).
    pub handle: u64,
    /// `-i NAME` (`NAME+` for iptables' prefix match).
    pub iifname: Option<String>,
    /// `-o NAME` (`NAME+` for a prefix match).
    pub oifname: Option<String>,
    /// The verdict is `ACCEPT`.
    pub accept: bool,
    /// The rule has expressions besides interface matches, a counter and the accept verdict
    /// (other matches, another verdict or target).
    pub other: bool,
    /// The rule comment (user data `NFTNL_UDATA_RULE_COMMENT`).
    pub comment: Option<String>,
}

impl RuleInfo {
    /// Whether this is exactly `-i BRIDGE -o BRIDGE -j ACCEPT` (any comment).
    pub fn is_same_bridge_accept(&self, bridge: &str) -> bool {
        self.accept && !self.other && self.iifname.as_deref() == Some(bridge) && self.oifname.as_deref() == Some(bridge)
    }
}

/// The interface name a `cmp` compares with: up to the NUL (exact match), or `NAME+` when the
/// value has no NUL (iptables-nft's prefix match).
fn ifname_of(value: &[u8]) -> String {
    match value.iter().position(|&c| c == 0) {
        Some(end) => String::from_utf8_lossy(&value[..end]).into_owned(),
        None => format!("{}+", String::from_utf8_lossy(value)),
    }
}

fn comment_of(udata: &[u8]) -> Option<String> {
    let mut b = udata;
    while b.len() >= 2 {
        let (ty, len) = (b[0], b[1] as usize);
        let value = b.get(2..2 + len)?;
        if ty == NFTNL_UDATA_RULE_COMMENT {
            return Some(strz(value));
        }
        b = &b[2 + len..];
    }
    None
}

/// Decode the attributes of an `NFT_MSG_NEWRULE` message (what follows its `nfgenmsg`).
pub fn parse_rule(payload: &[u8]) -> RuleInfo {
    let top = attrs(payload);
    let mut r = RuleInfo {
        table: attr(&top, NFTA_RULE_TABLE).map(strz).unwrap_or_default(),
        chain: attr(&top, NFTA_RULE_CHAIN).map(strz).unwrap_or_default(),
        handle: be64(attr(&top, NFTA_RULE_HANDLE)).unwrap_or(0),
        comment: attr(&top, NFTA_RULE_USERDATA).and_then(comment_of),
        ..RuleInfo::default()
    };
    // The meta key last loaded into register 1, which the next cmp compares.
    let mut reg1: Option<u32> = None;
    for (ty, elem) in attrs(attr(&top, NFTA_RULE_EXPRESSIONS).unwrap_or_default()) {
        if ty != NFTA_LIST_ELEM {
            continue;
        }
        let e = attrs(elem);
        let name = attr(&e, NFTA_EXPR_NAME).map(strz).unwrap_or_default();
        let data = attrs(attr(&e, NFTA_EXPR_DATA).unwrap_or_default());
        match name.as_str() {
            "meta" => {
                let key = be32(attr(&data, NFTA_META_KEY));
                let dreg = be32(attr(&data, NFTA_META_DREG));
                match (key, dreg) {
                    (Some(k @ (NFT_META_IIFNAME | NFT_META_OIFNAME)), Some(NFT_REG_1)) => reg1 = Some(k),
                    _ => r.other = true,
                }
            }
            "cmp" => {
                let sreg = be32(attr(&data, NFTA_CMP_SREG));
                let op = be32(attr(&data, NFTA_CMP_OP));
                let value = attr(&data, NFTA_CMP_DATA).and_then(|d| attr(&attrs(d), NFTA_DATA_VALUE));
                match (sreg, op, value, reg1.take()) {
                    (Some(NFT_REG_1), Some(NFT_CMP_EQ), Some(v), Some(NFT_META_IIFNAME)) if r.iifname.is_none() => r.iifname = Some(ifname_of(v)),
                    (Some(NFT_REG_1), Some(NFT_CMP_EQ), Some(v), Some(NFT_META_OIFNAME)) if r.oifname.is_none() => r.oifname = Some(ifname_of(v)),
                    _ => r.other = true,
                }
            }
            "counter" => {}
            "immediate" => {
                let dreg = be32(attr(&data, NFTA_IMMEDIATE_DREG));
                let code = attr(&data, NFTA_IMMEDIATE_DATA)
                    .and_then(|d| attr(&attrs(d), NFTA_DATA_VERDICT))
                    .and_then(|v| be32(attr(&attrs(v), NFTA_VERDICT_CODE)));
                if dreg == Some(NFT_REG_VERDICT) && code == Some(NF_ACCEPT) && !r.accept {
                    r.accept = true;
                } else {
                    r.other = true;
                }
            }
            _ => r.other = true,
        }
    }
    r
}

/// One message of a netlink datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
}

/// Split a datagram into its messages: (header, payload after the `nlmsghdr`).
pub fn messages(mut b: &[u8]) -> Vec<(Header, &[u8])> {
    let mut v = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        let h = Header { ty: u16::from_ne_bytes([b[4], b[5]]), flags: u16::from_ne_bytes([b[6], b[7]]), seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]) };
        v.push((h, &b[NLMSG_HDRLEN..len]));
        b = &b[align4(len).min(b.len())..];
    }
    v
}

/// The errno of an `NLMSG_ERROR` payload (0 for an acknowledgement).
fn error_code(payload: &[u8]) -> i32 {
    payload.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(-(nix::errno::Errno::EBADMSG as i32))
}

// ------------------------------------------------------------------ the socket

/// A netfilter netlink socket bound to the caller's network namespace.
pub struct Nft {
    sock: Socket,
    seq: u32,
}

impl Nft {
    /// Open a `NETLINK_NETFILTER` socket.
    pub fn open() -> Result<Nft, NftError> {
        let wrap = |e| NftError::new("opening a netfilter netlink socket", e);
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(wrap)?;
        sock.bind_auto().map_err(wrap)?;
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(1);
        Ok(Nft { sock, seq: seed })
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    /// Send a request and read replies until the message with sequence `last` is answered
    /// (acknowledgement, error or end of dump). Errors for any of `seqs` fail the request;
    /// data messages go to `on_data` (type, payload after the `nlmsghdr`).
    fn transact(&mut self, what: &str, req: &[u8], seqs: &[u32], last: u32, mut on_data: impl FnMut(u16, &[u8])) -> Result<(), NftError> {
        let kernel = SocketAddr::new(0, 0);
        self.sock.send_to(req, &kernel, 0).map_err(|e| NftError::new(what, e))?;
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(|e| NftError::new(what, e))?;
            for (h, payload) in messages(&buf) {
                if !seqs.contains(&h.seq) {
                    continue;
                }
                match h.ty {
                    NLMSG_ERROR => {
                        let code = error_code(payload);
                        if code != 0 {
                            return Err(NftError::kernel(what, -code));
                        }
                        if h.seq == last {
                            return Ok(());
                        }
                    }
                    NLMSG_DONE if h.seq == last => return Ok(()),
                    NLMSG_DONE => {}
                    ty => on_data(ty, payload),
                }
            }
        }
    }

    /// Whether the chain `ip filter DOCKER-USER` exists (false on `ENOENT`).
    pub fn chain_exists(&mut self) -> Result<bool, NftError> {
        let seq = self.next_seq(1);
        match self.transact("looking up chain DOCKER-USER of table ip filter", &get_chain_request(seq), &[seq], seq, |_, _| {}) {
            Ok(()) => Ok(true),
            Err(e) if e.is_missing() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The rules of `ip filter DOCKER-USER`, in chain order.
    pub fn rules(&mut self) -> Result<Vec<RuleInfo>, NftError> {
        let seq = self.next_seq(1);
        let mut v = Vec::new();
        self.transact("listing the rules of ip filter DOCKER-USER", &list_rules_request(seq), &[seq], seq, |ty, payload| {
            if ty == nft_type(NFT_MSG_NEWRULE) && payload.len() >= 4 && payload[0] == NFPROTO_IPV4 {
                let r = parse_rule(&payload[4..]);
                if r.table == TABLE && r.chain == CHAIN {
                    v.push(r);
                }
            }
        })?;
        Ok(v)
    }

    /// Insert `-i BRIDGE -o BRIDGE -m comment --comment COMMENT -j ACCEPT` at the head of
    /// `ip filter DOCKER-USER` (whether or not it is there already).
    pub fn insert_same_bridge_accept(&mut self, bridge: &str, comment: &str) -> Result<(), NftError> {
        let what = format!("inserting `-i {bridge} -o {bridge} -j ACCEPT` in ip filter DOCKER-USER");
        let seq = self.next_seq(3);
        let req = insert_rule_batch(seq, bridge, comment).map_err(|e| NftError::new(what.clone(), e))?;
        self.transact(&what, &req, &[seq, seq.wrapping_add(1), seq.wrapping_add(2)], seq.wrapping_add(1), |_, _| {})
    }

    /// Delete the rule with this handle from `ip filter DOCKER-USER`.
    pub fn delete(&mut self, handle: u64) -> Result<(), NftError> {
        let seq = self.next_seq(3);
        self.transact(&format!("deleting rule {handle} of ip filter DOCKER-USER"), &delete_rule_batch(seq, handle), &[seq, seq.wrapping_add(1), seq.wrapping_add(2)], seq.wrapping_add(1), |_, _| {})
    }
}

/// The bridges among `bridges` that have no `-i B -o B -j ACCEPT` rule in `DOCKER-USER` (with
/// any comment).
pub fn missing_same_bridge_rules(nft: &mut Nft, bridges: &[String]) -> Result<Vec<String>, NftError> {
    let rules = nft.rules()?;
    Ok(bridges.iter().filter(|b| !rules.iter().any(|r| r.is_same_bridge_accept(b))).cloned().collect())
}

/// Insert `-i B -o B -m comment --comment COMMENT -j ACCEPT` for every bridge that has no such
/// rule yet (idempotent); returns the bridges a rule was inserted for.
pub fn ensure_same_bridge_rules(nft: &mut Nft, bridges: &[String], comment: &str) -> Result<Vec<String>, NftError> {
    let missing = missing_same_bridge_rules(nft, bridges)?;
    // Each goes to the head of the chain: the last first, so the chain lists them in order.
    for b in missing.iter().rev() {
        nft.insert_same_bridge_accept(b, comment)?;
    }
    Ok(missing)
}

/// Delete every `-i B -o B -j ACCEPT` rule of these bridges from `DOCKER-USER` — only those
/// with this comment when one is given, else whatever their comment; returns how many.
/// A rule deleted meanwhile by someone else is not an error.
pub fn remove_same_bridge_rules(nft: &mut Nft, bridges: &[String], comment: Option<&str>) -> Result<usize, NftError> {
    let mut n = 0;
    for r in nft.rules()? {
        let ours = bridges.iter().any(|b| r.is_same_bridge_accept(b)) && comment.is_none_or(|c| r.comment.as_deref() == Some(c));
        if !ours {
            continue;
        }
        match nft.delete(r.handle) {
            Ok(()) => n += 1,
            Err(e) if e.is_missing() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn attributes_are_padded_and_nested() {
        let mut b = Vec::new();
        put_strz(&mut b, 1, "filter");
        // len 4 + 7 = 11 (host order), type 1, "filter\0", one byte of padding
        assert_eq!(b, [&11u16.to_ne_bytes()[..], &1u16.to_ne_bytes(), b"filter\0", &[0]].concat());
        let mut n = Vec::new();
        nest(&mut n, 4, |x| put_be32(x, 2, 6));
        assert_eq!(n, [&12u16.to_ne_bytes()[..], &(4 | NLA_F_NESTED).to_ne_bytes(), &8u16.to_ne_bytes(), &2u16.to_ne_bytes(), &[0, 0, 0, 6]].concat());
        assert_eq!(attrs(&n), vec![(4, &n[4..])]);
    }

    /// The expressions, byte for byte as libnftnl serializes iptables-nft's rule (on a
    /// little-endian host: attribute headers little-endian, values big-endian).
    #[test]
    fn expressions_match_iptables_nft() {
        let e = same_bridge_accept_expressions("br0");
        let want = concat!(
            // meta load iifname => reg 1
            "2400", "0180", "0900", "0100", "6d65746100000000", "1400", "0280", "0800", "0200", "00000006", "0800", "0100", "00000001",
            // cmp eq reg 1 "br0\0"
            "2c00", "0180", "0800", "0100", "636d7000", "2000", "0280", "0800", "0100", "00000001", "0800", "0200", "00000000",
            "0c00", "0380", "0800", "0100", "62723000",
            // meta load oifname => reg 1
            "2400", "0180", "0900", "0100", "6d65746100000000", "1400", "0280", "0800", "0200", "00000007", "0800", "0100", "00000001",
            // cmp eq reg 1 "br0\0"
            "2c00", "0180", "0800", "0100", "636d7000", "2000", "0280", "0800", "0100", "00000001", "0800", "0200", "00000000",
            "0c00", "0380", "0800", "0100", "62723000",
            // counter bytes 0 packets 0
            "2c00", "0180", "0c00", "0100", "636f756e74657200", "1c00", "0280", "0c00", "0100", "0000000000000000", "0c00", "0200", "0000000000000000",
            // immediate reg 0 accept
            "3000", "0180", "0e00", "0100", "696d6d65646961746500", "0000", "1c00", "0280", "0800", "0100", "00000000",
            "1000", "0280", "0c00", "0280", "0800", "0100", "00000001",
        );
        if cfg!(target_endian = "little") {
            assert_eq!(hex(&e), want);
        }
        // Whatever the host's byte order, it decodes as the rule it is.
        let mut payload = Vec::new();
        nest(&mut payload, NFTA_RULE_EXPRESSIONS, |x| x.extend(&e));
        let r = parse_rule(&payload);
        assert!(r.is_same_bridge_accept("br0"), "{r:?}");
        assert!(!r.is_same_bridge_accept("br1"));
    }

    #[test]
    fn comment_is_one_udata_tlv() {
        assert_eq!(comment_userdata("mtalab lab x").unwrap(), b"\x00\x0dmtalab lab x\x00");
        assert_eq!(comment_of(b"\x00\x0dmtalab lab x\x00"), Some("mtalab lab x".into()));
        assert_eq!(comment_of(b"\x01\x02ab\x00\x03xy\x00"), Some("xy".into()));
        assert!(comment_userdata("").is_err());
        assert!(comment_userdata(&"x".repeat(255)).is_err());
    }

    #[test]
    fn insert_batch_layout() {
        let b = insert_rule_batch(100, "mtl123456-2", "mtalab lab q").unwrap();
        let msgs = messages(&b);
        assert_eq!(msgs.len(), 3);
        let (begin, bp) = msgs[0];
        assert_eq!((begin.ty, begin.flags, begin.seq), (NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 100));
        // nfgenmsg: AF_UNSPEC, version 0, res_id NFNL_SUBSYS_NFTABLES (big-endian)
        assert_eq!(bp, [0, 0, 0, 10]);
        let (rule, rp) = msgs[1];
        assert_eq!(rule.ty, 0x0a06);
        assert_eq!(rule.flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        assert_eq!(rule.seq, 101);
        assert_eq!(&rp[..4], [NFPROTO_IPV4, 0, 0, 0]);
        let top = attrs(&rp[4..]);
        assert_eq!(top.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_USERDATA, NFTA_RULE_EXPRESSIONS]);
        let r = parse_rule(&rp[4..]);
        assert_eq!((r.table.as_str(), r.chain.as_str(), r.comment.as_deref()), ("filter", "DOCKER-USER", Some("mtalab lab q")));
        assert!(r.is_same_bridge_accept("mtl123456-2"));
        let (end, ep) = msgs[2];
        assert_eq!((end.ty, end.seq), (NFNL_MSG_BATCH_END, 102));
        assert_eq!(ep, [0, 0, 0, 10]);
        // The whole datagram is the three messages, nothing more.
        assert_eq!(b.len(), msgs.iter().map(|(_, p)| NLMSG_HDRLEN + p.len()).sum::<usize>());
        assert!(insert_rule_batch(1, "a-name-too-long-for-ifnamsiz", "c").is_err());
        assert!(insert_rule_batch(1, "br+", "c").is_err());
    }

    #[test]
    fn delete_and_list_requests() {
        let d = delete_rule_batch(7, 0x0102);
        let m = messages(&d);
        assert_eq!(m[1].0.ty, 0x0a08);
        let top = attrs(&m[1].1[4..]);
        assert_eq!(attr(&top, NFTA_RULE_HANDLE), Some(&[0, 0, 0, 0, 0, 0, 1, 2][..]));
        let l = list_rules_request(9);
        let m = messages(&l);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].0.ty, m[0].0.flags), (0x0a07, NLM_F_REQUEST | NLM_F_DUMP));
        let c = get_chain_request(3);
        let m = messages(&c);
        let top = attrs(&m[0].1[4..]);
        assert_eq!(attr(&top, NFTA_CHAIN_NAME).map(strz).as_deref(), Some("DOCKER-USER"));
    }

    #[test]
    fn other_rules_are_not_taken_for_ours() {
        // -i br0 -o br0 -j DROP: same matches, another verdict.
        let mut e = Vec::new();
        ifname_match(&mut e, NFT_META_IIFNAME, "br0");
        ifname_match(&mut e, NFT_META_OIFNAME, "br0");
        expr(&mut e, "immediate", |b| {
            put_be32(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            nest(b, NFTA_IMMEDIATE_DATA, |d| nest(d, NFTA_DATA_VERDICT, |v| put_be32(v, NFTA_VERDICT_CODE, 0)));
        });
        let mut p = Vec::new();
        nest(&mut p, NFTA_RULE_EXPRESSIONS, |x| x.extend(&e));
        let r = parse_rule(&p);
        assert!(!r.accept && r.other && !r.is_same_bridge_accept("br0"));
        // -i br+ (prefix match: no NUL in the compared value)
        let mut e = Vec::new();
        expr(&mut e, "meta", |b| {
            put_be32(b, NFTA_META_KEY, NFT_META_IIFNAME);
            put_be32(b, NFTA_META_DREG, NFT_REG_1);
        });
        expr(&mut e, "cmp", |b| {
            put_be32(b, NFTA_CMP_SREG, NFT_REG_1);
            put_be32(b, NFTA_CMP_OP, NFT_CMP_EQ);
            nest(b, NFTA_CMP_DATA, |d| put(d, NFTA_DATA_VALUE, b"br"));
        });
        let mut p = Vec::new();
        nest(&mut p, NFTA_RULE_EXPRESSIONS, |x| x.extend(&e));
        assert_eq!(parse_rule(&p).iifname.as_deref(), Some("br+"));
    }

    #[test]
    fn acks_errors_and_truncation() {
        let mut d = message(NLMSG_ERROR, 0, 5, 0, 0, |_| {});
        // An nfgenmsg-sized error payload of -ENOENT
        d.truncate(NLMSG_HDRLEN);
        d.extend_from_slice(&(-2i32).to_ne_bytes());
        let len = d.len() as u32;
        d[0..4].copy_from_slice(&len.to_ne_bytes());
        let m = messages(&d);
        assert_eq!(m[0].0.seq, 5);
        assert_eq!(error_code(m[0].1), -2);
        assert!(NftError::kernel("x", 2).is_missing());
        // A length beyond the datagram ends the walk.
        let mut bad = d.clone();
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&bad).is_empty());
        assert!(attrs(&[0xff, 0x00, 0x01, 0x00]).is_empty());
    }
}
