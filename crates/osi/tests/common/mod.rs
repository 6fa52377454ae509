//! Helpers shared by the integration tests: hex, capture files (pcap and pcapng, Ethernet/
//! IPv4/TCP with per-direction reassembly), a pcap writer, and a walker that decodes one
//! TPKT stream through every layer.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use mtalab_osi::acse::AcseApdu;
use mtalab_osi::cotp::{Reassembler, Tpdu};
use mtalab_osi::presentation::{AbortPpdu, CpType, CpaPpdu, CprPpdu, UserData};
use mtalab_osi::rtse::RtseApdu;
use mtalab_osi::session::{self, Spdu, SpduCode};
use mtalab_osi::{OsiError, tpkt};

/// The shared vectors directory (`/work/shared/vectors`, or `$MTALAB_VECTORS`).
pub fn vectors_dir() -> PathBuf {
    if let Ok(d) = std::env::var("MTALAB_VECTORS") {
        return PathBuf::from(d);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for up in here.ancestors() {
        let cand = up.join("shared/vectors");
        if cand.is_dir() {
            return cand;
        }
        let cand = up.parent().map(|p| p.join("shared/vectors"));
        if let Some(c) = cand
            && c.is_dir()
        {
            return c;
        }
    }
    PathBuf::from("/work/shared/vectors")
}

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Direction of a segment: true = from the initiator (client).
pub type Dir = bool;

/// One `.txt` vector line: direction (C = initiator) and TCP payload.
pub fn read_txt(name: &str) -> Vec<(Dir, Vec<u8>)> {
    let text = std::fs::read_to_string(vectors_dir().join(name)).expect("vector file");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (d, h) = l.split_at(1);
            (d == "C", hex(h))
        })
        .collect()
}

/// A TCP flow key: (src ip, src port, dst ip, dst port).
pub type Flow = ([u8; 4], u16, [u8; 4], u16);

/// Reads a pcap or pcapng file and returns the reassembled TCP payload of every flow (by
/// sequence number, duplicates dropped), in first-seen order of the flows.
pub fn read_capture(bytes: &[u8]) -> Vec<(Flow, Vec<u8>)> {
    let mut packets: Vec<(u32, Vec<u8>)> = Vec::new(); // (linktype, frame)
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    if magic == 0x0a0d0d0a {
        // pcapng: SHB, IDB (link types), EPB/SPB
        let mut off = 0;
        let mut linktypes = Vec::new();
        while off + 12 <= bytes.len() {
            let bt = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
            let bl = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
            let body = &bytes[off + 8..off + bl - 4];
            match bt {
                1 => linktypes.push(u16::from_le_bytes(body[0..2].try_into().unwrap()) as u32),
                6 => {
                    let iface = u32::from_le_bytes(body[0..4].try_into().unwrap()) as usize;
                    let cap = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
                    packets.push((linktypes[iface], body[20..20 + cap].to_vec()));
                }
                3 => {
                    let len = u32::from_le_bytes(body[0..4].try_into().unwrap()) as usize;
                    packets.push((linktypes[0], body[4..4 + len].to_vec()));
                }
                _ => {}
            }
            off += bl;
        }
    } else {
        let le = magic == 0xa1b2c3d4 || magic == 0xa1b23c4d;
        let rd = |b: &[u8]| {
            let a: [u8; 4] = b.try_into().unwrap();
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let lt = rd(&bytes[20..24]);
        let mut off = 24;
        while off + 16 <= bytes.len() {
            let incl = rd(&bytes[off + 8..off + 12]) as usize;
            off += 16;
            packets.push((lt, bytes[off..off + incl].to_vec()));
            off += incl;
        }
    }
    let mut flows: Vec<Flow> = Vec::new();
    let mut segs: BTreeMap<Flow, Vec<(u32, Vec<u8>)>> = BTreeMap::new();
    for (lt, frame) in packets {
        let ip = match lt {
            1 => &frame[14..],
            113 => &frame[16..],
            0 => &frame[4..],
            _ => &frame[..],
        };
        if ip[0] >> 4 != 4 || ip[9] != 6 {
            continue;
        }
        let ihl = usize::from(ip[0] & 15) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let tcp = &ip[ihl..total];
        let src: [u8; 4] = ip[12..16].try_into().unwrap();
        let dst: [u8; 4] = ip[16..20].try_into().unwrap();
        let sp = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dp = u16::from_be_bytes([tcp[2], tcp[3]]);
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let doff = usize::from(tcp[12] >> 4) * 4;
        let syn = tcp[13] & 0x02 != 0;
        let payload = &tcp[doff..];
        let key = (src, sp, dst, dp);
        if !flows.contains(&key) {
            flows.push(key);
        }
        let entry = segs.entry(key).or_default();
        if syn {
            entry.push((seq.wrapping_add(1), Vec::new()));
        } else if !payload.is_empty() {
            entry.push((seq, payload.to_vec()));
        }
    }
    flows
        .into_iter()
        .map(|f| {
            let mut s = segs.remove(&f).unwrap_or_default();
            let base = s.iter().map(|(q, _)| *q).min().unwrap_or(0);
            s.sort_by_key(|(q, _)| q.wrapping_sub(base));
            let mut out = Vec::new();
            let mut next = base;
            for (q, p) in s {
                let off = next.wrapping_sub(q) as usize;
                if q.wrapping_sub(base) <= next.wrapping_sub(base) && off < p.len() {
                    out.extend_from_slice(&p[off..]);
                    next = next.wrapping_add((p.len() - off) as u32);
                }
            }
            (f, out)
        })
        .filter(|(_, d)| !d.is_empty())
        .collect()
}

/// Splits a byte stream into TPKT payloads (TPDUs).
pub fn tpkts(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let (tpdu, used) = tpkt::decode(stream).expect("tpkt").expect("whole tpkt");
        out.push(tpdu.to_vec());
        stream = &stream[used..];
    }
    out
}

/// A presentation PDU, by the SPDU that carried it.
#[derive(Debug, Clone)]
pub enum Ppdu {
    Cp(CpType),
    Cpa(CpaPpdu),
    Cpr(CprPpdu),
    Abort(AbortPpdu),
    Data(UserData),
}

/// One TSDU decoded through every layer.
#[derive(Debug, Clone)]
pub struct Layers {
    /// Names of its SPDUs (position-aware).
    pub names: Vec<&'static str>,
    pub spdus: Vec<Spdu>,
    pub ppdu: Option<Ppdu>,
    /// (context id, value) pairs of the PPDU's user data.
    pub pdvs: Vec<(i64, Vec<u8>)>,
    pub acse: Vec<AcseApdu>,
    pub rtse: Vec<RtseApdu>,
}

/// Decodes one TSDU through session, presentation, ACSE and RTSE.
pub fn decode_tsdu(tsdu: &[u8]) -> Result<Layers, OsiError> {
    let spdus = session::decode_tsdu(tsdu)?;
    let names = spdus
        .iter()
        .enumerate()
        .map(|(i, s)| s.code.name(i > 0).unwrap_or("?"))
        .collect();
    let last = spdus.last().unwrap();
    let cat2 = spdus.len() > 1;
    let ppdu = match (last.code, cat2) {
        (SpduCode::CN, false) => last
            .params
            .user_data
            .as_deref()
            .map(CpType::decode)
            .transpose()?
            .map(Ppdu::Cp),
        (SpduCode::AC, false) => last
            .params
            .user_data
            .as_deref()
            .map(CpaPpdu::decode)
            .transpose()?
            .map(Ppdu::Cpa),
        (SpduCode::RF, false) => match last.params.reason.as_deref() {
            Some([_, rest @ ..]) if !rest.is_empty() => Some(Ppdu::Cpr(CprPpdu::decode(rest)?)),
            _ => None,
        },
        (SpduCode::AB, false) => last
            .params
            .user_data
            .as_deref()
            .map(AbortPpdu::decode)
            .transpose()?
            .map(Ppdu::Abort),
        (SpduCode::DT, true) if !last.user_information.is_empty() => {
            Some(Ppdu::Data(UserData::decode(&last.user_information)?))
        }
        _ => last
            .params
            .user_data
            .as_deref()
            .map(UserData::decode)
            .transpose()?
            .map(Ppdu::Data),
    };
    let user_data = match &ppdu {
        Some(Ppdu::Cp(cp)) => cp
            .normal_mode_parameters
            .as_ref()
            .and_then(|n| n.user_data.clone()),
        Some(Ppdu::Cpa(c)) => c
            .normal_mode_parameters
            .as_ref()
            .and_then(|n| n.user_data.clone()),
        Some(Ppdu::Cpr(CprPpdu::NormalModeParameters(n))) => n.user_data.clone(),
        Some(Ppdu::Abort(AbortPpdu::Aru(
            mtalab_osi::presentation::AruPpdu::NormalModeParameters(n),
        ))) => n.user_data.clone(),
        Some(Ppdu::Data(u)) => Some(u.clone()),
        _ => None,
    };
    let pdvs: Vec<(i64, Vec<u8>)> = user_data
        .as_ref()
        .map(|u| {
            u.values()
                .into_iter()
                .map(|(c, v)| (c, v.to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let mut acse = Vec::new();
    let mut rtse = Vec::new();
    for (_, v) in &pdvs {
        if (0x60..=0x64).contains(&v[0]) {
            let a = AcseApdu::decode(v)?;
            for ext in a.user_information() {
                if let Some(val) = ext.value() {
                    rtse.push(RtseApdu::decode(val)?);
                }
            }
            acse.push(a);
        } else {
            rtse.push(RtseApdu::decode(v)?);
        }
    }
    Ok(Layers {
        names,
        spdus,
        ppdu,
        pdvs,
        acse,
        rtse,
    })
}

/// One TPDU of a stream with, for the DT that closes a TSDU, its decoded layers.
#[derive(Debug, Clone)]
pub struct Unit {
    pub tpdu: Tpdu,
    pub layers: Option<Layers>,
}

/// Decodes a whole one-direction byte stream: TPKT, COTP (reassembling TSDUs), and each
/// TSDU through the upper layers.
pub fn decode_stream(stream: &[u8]) -> Result<Vec<Unit>, OsiError> {
    let mut out = Vec::new();
    let mut r = Reassembler::new(1 << 24);
    let mut rest = stream;
    while !rest.is_empty() {
        let (tpdu, used) = tpkt::decode(rest)?.expect("whole tpkt");
        rest = &rest[used..];
        let t = Tpdu::decode(tpdu)?;
        let layers = match &t {
            Tpdu::Dt(d) => match r.push(&d.user_data, d.eot)? {
                Some(tsdu) => Some(decode_tsdu(&tsdu)?),
                None => None,
            },
            _ => None,
        };
        out.push(Unit { tpdu: t, layers });
    }
    Ok(out)
}

/// Writes a pcap (Ethernet/IPv4/TCP) of a conversation: `frames` are (from initiator?,
/// payload). Sequence and acknowledgement numbers are consistent so dissectors reassemble.
pub fn write_pcap(frames: &[(Dir, Vec<u8>)], client_port: u16, server_port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut seq = [1000u32, 5000u32]; // client, server
    let mut t = 0u32;
    let mut packet =
        |out: &mut Vec<u8>, from_client: bool, flags: u8, payload: &[u8], seq: &mut [u32; 2]| {
            let (si, di) = if from_client { (0, 1) } else { (1, 0) };
            let (sp, dp) = if from_client {
                (client_port, server_port)
            } else {
                (server_port, client_port)
            };
            let ack = if flags & 0x10 != 0 { seq[di] } else { 0 };
            let mut tcp = Vec::new();
            tcp.extend_from_slice(&sp.to_be_bytes());
            tcp.extend_from_slice(&dp.to_be_bytes());
            tcp.extend_from_slice(&seq[si].to_be_bytes());
            tcp.extend_from_slice(&ack.to_be_bytes());
            tcp.push(5 << 4);
            tcp.push(flags);
            tcp.extend_from_slice(&65535u16.to_be_bytes());
            tcp.extend_from_slice(&[0, 0, 0, 0]);
            tcp.extend_from_slice(payload);
            let total = 20 + tcp.len();
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(total as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            let (src, dst) = if from_client {
                ([127, 0, 0, 1], [127, 0, 0, 2])
            } else {
                ([127, 0, 0, 2], [127, 0, 0, 1])
            };
            ip.extend_from_slice(&src);
            ip.extend_from_slice(&dst);
            let sum = {
                let mut s = 0u32;
                for c in ip.chunks(2) {
                    s += u32::from(u16::from_be_bytes([c[0], c[1]]));
                }
                while s > 0xffff {
                    s = (s & 0xffff) + (s >> 16);
                }
                !(s as u16)
            };
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&tcp);
            let mut eth = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
            if !from_client {
                eth[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
                eth[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            }
            eth.extend_from_slice(&ip);
            t += 1000;
            out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&(eth.len() as u32).to_le_bytes());
            out.extend_from_slice(&(eth.len() as u32).to_le_bytes());
            out.extend_from_slice(&eth);
            let adv = payload.len() as u32 + u32::from(flags & 0x03 != 0);
            seq[si] = seq[si].wrapping_add(adv);
        };
    packet(&mut out, true, 0x02, &[], &mut seq);
    packet(&mut out, false, 0x12, &[], &mut seq);
    packet(&mut out, true, 0x10, &[], &mut seq);
    for (from_client, payload) in frames {
        for chunk in payload.chunks(1460) {
            packet(&mut out, *from_client, 0x18, chunk, &mut seq);
        }
    }
    packet(&mut out, true, 0x11, &[], &mut seq);
    packet(&mut out, false, 0x11, &[], &mut seq);
    packet(&mut out, true, 0x10, &[], &mut seq);
    out
}
