//! Test-only helpers to dig P1 octets out of captures: a pcap/pcapng reader, TCP stream
//! reassembly, TPKT splitting, session parameter lookup and a minimal BER walker. They
//! panic on anything unexpected: the captures are fixed.

use std::path::PathBuf;

pub fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The frames of a `.txt` vector: (`C` or `S`, octets).
pub fn txt_frames(name: &str) -> Vec<(char, Vec<u8>)> {
    String::from_utf8(data(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let dir = l.chars().next().unwrap();
            (dir, hex(&l[1..]))
        })
        .collect()
}

pub struct Segment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub payload: Vec<u8>,
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

/// Ethernet/IPv4/TCP payloads of a pcap or pcapng file, in capture order.
pub fn tcp_segments(file: &[u8]) -> Vec<Segment> {
    let mut frames: Vec<&[u8]> = Vec::new();
    if le32(file) == 0xa1b2c3d4 {
        // libpcap: 24-octet file header, 16-octet record headers; link type 1 (Ethernet).
        assert_eq!(le32(&file[20..]), 1, "link type");
        let mut off = 24;
        while off + 16 <= file.len() {
            let incl = le32(&file[off + 8..]) as usize;
            frames.push(&file[off + 16..off + 16 + incl]);
            off += 16 + incl;
        }
    } else {
        // pcapng: blocks of (type, total length, body, total length).
        assert_eq!(le32(file), 0x0a0d0d0a, "not pcap or pcapng");
        let mut off = 0;
        while off + 12 <= file.len() {
            let (ty, len) = (le32(&file[off..]), le32(&file[off + 4..]) as usize);
            let body = &file[off + 8..off + len - 4];
            if ty == 1 {
                assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1, "link type");
            }
            if ty == 6 {
                let cap = le32(&body[12..]) as usize;
                frames.push(&body[20..20 + cap]);
            }
            off += len;
        }
    }
    frames
        .into_iter()
        .filter_map(|f| {
            let ip = &f[14..];
            if u16::from_be_bytes([f[12], f[13]]) != 0x0800 || ip[9] != 6 {
                return None;
            }
            let ihl = usize::from(ip[0] & 15) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let tcp = &ip[ihl..total];
            let off = usize::from(tcp[12] >> 4) * 4;
            Some(Segment {
                src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
                dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
                seq: u32::from_be_bytes(tcp[4..8].try_into().unwrap()),
                payload: tcp[off..].to_vec(),
            })
        })
        .collect()
}

/// The byte stream from `src_port` to `dst_port`, retransmissions dropped.
pub fn stream(segs: &[Segment], src_port: u16, dst_port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next: Option<u32> = None;
    for s in segs
        .iter()
        .filter(|s| s.src_port == src_port && s.dst_port == dst_port && !s.payload.is_empty())
    {
        let start = next.unwrap_or(s.seq);
        let skip = start.wrapping_sub(s.seq) as usize;
        if skip >= s.payload.len() {
            continue;
        }
        out.extend_from_slice(&s.payload[skip..]);
        next = Some(s.seq.wrapping_add(s.payload.len() as u32));
    }
    out
}

/// The client ports of the TCP connections towards `server_port`, in order of appearance.
pub fn clients(segs: &[Segment], server_port: u16) -> Vec<u16> {
    let mut out = Vec::new();
    for s in segs {
        if s.dst_port == server_port && !out.contains(&s.src_port) {
            out.push(s.src_port);
        }
    }
    out
}

/// Splits a stream into TPKT payloads (RFC 1006: version 3, length counts the header).
pub fn tpkts(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        assert_eq!(rest[0], 3, "TPKT version");
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        out.push(rest[4..len].to_vec());
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    out
}

/// The session SPDUs inside a COTP DT TPDU (`02 f0 80` = LI 2, DT, EOT).
pub fn cotp_dt_data(tpdu: &[u8]) -> Option<&[u8]> {
    (tpdu.len() >= 3 && tpdu[1] == 0xf0).then(|| &tpdu[usize::from(tpdu[0]) + 1..])
}

/// Session length octets (X.225 §8.2.5): one octet, or 0xff and two octets.
fn session_len(b: &[u8]) -> (usize, usize) {
    if b[0] == 0xff {
        (usize::from(u16::from_be_bytes([b[1], b[2]])), 3)
    } else {
        (usize::from(b[0]), 1)
    }
}

/// The value of parameter `code` of the SPDU starting `spdu`, with its SI.
pub fn session_param(spdu: &[u8], code: u8) -> Option<(u8, &[u8])> {
    let si = spdu[0];
    let (li, n) = session_len(&spdu[1..]);
    let params = &spdu[1 + n..1 + n + li];
    let mut pos = 0;
    while pos < params.len() {
        let pi = params[pos];
        let (len, n) = session_len(&params[pos + 1..]);
        let value = &params[pos + 1 + n..pos + 1 + n + len];
        if pi == code {
            return Some((si, value));
        }
        pos += 1 + n + len;
    }
    None
}

/// One BER element: first identifier octet (low tag numbers only), contents, whole encoding.
#[derive(Clone, Copy, Debug)]
pub struct El<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
    pub indefinite: bool,
}

pub fn element(input: &[u8]) -> (El<'_>, &[u8]) {
    let tag = input[0];
    assert_ne!(tag & 0x1f, 0x1f, "high tag numbers are not expected here");
    let l = input[1];
    if l == 0x80 {
        let mut pos = 2;
        while input[pos..pos + 2] != [0, 0] {
            let (_, rest) = element(&input[pos..]);
            pos = input.len() - rest.len();
        }
        let el = El {
            tag,
            content: &input[2..pos],
            raw: &input[..pos + 2],
            indefinite: true,
        };
        return (el, &input[pos + 2..]);
    }
    let (len, h) = if l < 0x80 {
        (usize::from(l), 2)
    } else {
        let n = usize::from(l & 0x7f);
        (
            input[2..2 + n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b)),
            2 + n,
        )
    };
    let el = El {
        tag,
        content: &input[h..h + len],
        raw: &input[..h + len],
        indefinite: false,
    };
    (el, &input[h + len..])
}

pub fn children(content: &[u8]) -> Vec<El<'_>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (el, r) = element(rest);
        out.push(el);
        rest = r;
    }
    out
}

/// The first direct child with identifier octet `tag`.
pub fn child<'a>(el: &El<'a>, tag: u8) -> El<'a> {
    *children(el.content)
        .iter()
        .find(|c| c.tag == tag)
        .unwrap_or_else(|| panic!("no child {tag:#04x} in {:#04x}", el.tag))
}

/// Depth-first, pre-order search for the first element with identifier octet `tag`.
pub fn find<'a>(input: &'a [u8], tag: u8) -> Option<El<'a>> {
    for el in children(input) {
        if el.tag == tag {
            return Some(el);
        }
        if el.tag & 0x20 != 0
            && let Some(found) = find(el.content, tag)
        {
            return Some(found);
        }
    }
    None
}

/// The octets of an OCTET STRING element, primitive or constructed.
pub fn octets(el: &El<'_>) -> Vec<u8> {
    if el.tag & 0x20 == 0 {
        el.content.to_vec()
    } else {
        children(el.content).iter().flat_map(octets).collect()
    }
}

/// The RTSE user data of every P-DATA on a session DT (`01 00 01 00` = GT, DT), each
/// being the RTTR octet-string segment (PDV `61 { 30 { 02 pcid, a0 { 04 .. } } }`).
pub fn rttr_segments(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for tpdu in tpkts(stream) {
        let Some(spdus) = cotp_dt_data(&tpdu) else {
            continue;
        };
        if spdus.starts_with(&[0x01, 0x00, 0x01, 0x00]) {
            let (user_data, _) = element(&spdus[4..]);
            let pdv = child(&user_data, 0x30);
            let single = child(&pdv, 0xa0);
            out.push(octets(&children(single.content)[0]));
        }
    }
    out
}
