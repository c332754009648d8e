//! Packet decoding: link layer → IPv4/IPv6 (with extension headers) → TCP/UDP.
//!
//! The decoder fills a [`Packet`] in place and never allocates. Anything it cannot make sense of is
//! a [`DecodeError`], counted by kind and handed to policy (which passes it by default); it never
//! panics on any input.

pub mod frag;

/// BSD loopback: 4-byte address family in host byte order.
pub const LINKTYPE_NULL: u32 = 0;
/// Ethernet II, with optional 802.1Q / 802.1ad tags.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IP (DLT_RAW on most platforms).
pub const LINKTYPE_RAW_ALT: u32 = 12;
/// Raw IP.
pub const LINKTYPE_RAW: u32 = 101;
/// OpenBSD loopback: 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// IP protocol numbers.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol numbers.
pub const IPPROTO_UDP: u8 = 17;

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
}

const MAX_VLAN_TAGS: usize = 4;

/// Why a packet could not be decoded. Each kind has its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DecodeError {
    /// The link-layer header is cut short.
    TruncatedLink = 0,
    /// The IPv4 header is cut short or invalid (version, IHL, total length).
    BadIpv4 = 1,
    /// The IPv6 header is cut short or invalid.
    BadIpv6 = 2,
    /// An IPv6 extension header chain is cut short.
    BadIpv6Ext = 3,
    /// The TCP header is cut short or its data offset is invalid.
    BadTcp = 4,
    /// The UDP header is cut short or its length is invalid.
    BadUdp = 5,
    /// The link type is not one we decode.
    UnsupportedLink = 6,
}

impl DecodeError {
    /// Number of kinds (for counter arrays).
    pub const COUNT: usize = 7;
    /// All kinds, in counter order.
    pub const ALL: [DecodeError; 7] = [
        DecodeError::TruncatedLink,
        DecodeError::BadIpv4,
        DecodeError::BadIpv6,
        DecodeError::BadIpv6Ext,
        DecodeError::BadTcp,
        DecodeError::BadUdp,
        DecodeError::UnsupportedLink,
    ];
    /// Label used in metrics and summaries.
    pub fn name(self) -> &'static str {
        match self {
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::BadIpv4 => "bad_ipv4",
            DecodeError::BadIpv6 => "bad_ipv6",
            DecodeError::BadIpv6Ext => "bad_ipv6_ext",
            DecodeError::BadTcp => "bad_tcp",
            DecodeError::BadUdp => "bad_udp",
            DecodeError::UnsupportedLink => "unsupported_link",
        }
    }
}

/// What the packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum L3Kind {
    /// Not IP (ARP, LLDP, ...): passes untouched.
    #[default]
    NotIp,
    /// IP, but neither TCP nor UDP (ICMP, GRE, ...): passes untouched.
    OtherIp,
    /// A TCP or UDP packet with its header decoded.
    Transport,
    /// An IP fragment that needs reassembly before the transport header can be read.
    Fragment,
}

/// Fragment description for [`L3Kind::Fragment`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragInfo {
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// A decoded packet. Addresses are 16 bytes; IPv4 uses the v4-mapped form `::ffff:a.b.c.d`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Packet {
    /// What was found.
    pub kind: L3Kind,
    /// 4 or 6 (0 when not IP).
    pub ip_version: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Transport protocol number (the last next-header for IPv6).
    pub proto: u8,
    /// Source port (TCP/UDP).
    pub sport: u16,
    /// Destination port (TCP/UDP).
    pub dport: u16,
    /// TCP flags.
    pub tcp_flags: u8,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgement number.
    pub ack: u32,
    /// Offset of the IP header in the frame.
    pub l3_off: u16,
    /// Offset of the transport header (or of the fragment data).
    pub l4_off: u16,
    /// Offset of the transport payload.
    pub payload_off: u16,
    /// Length of the transport payload (or of the fragment data).
    pub payload_len: u16,
    /// Fragment description when `kind == Fragment`.
    pub frag: FragInfo,
}

impl Packet {
    /// The transport payload within `frame`.
    #[inline]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let s = self.payload_off as usize;
        frame.get(s..s + self.payload_len as usize).unwrap_or(&[])
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// IPv4 address in the v4-mapped IPv6 form used for flow keys.
#[inline]
pub fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Turns a 16-byte key address back into an `IpAddr`.
pub fn to_ip(a: &[u8; 16]) -> std::net::IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}

/// Decodes `frame` captured with link type `link` into `p`.
#[inline]
pub fn decode(link: u16, frame: &[u8], p: &mut Packet) -> Result<(), DecodeError> {
    *p = Packet::default();
    let (ethertype, off) = match link as u32 {
        LINKTYPE_ETHERNET => ethernet(frame)?,
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let b = frame.get(0..4).ok_or(DecodeError::TruncatedLink)?;
            let fam = if link as u32 == LINKTYPE_LOOP {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            } else {
                // Host byte order of the capturing machine: accept either.
                let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if le < 256 {
                    le
                } else {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                }
            };
            match fam {
                2 => (0x0800, 4),
                24 | 28 | 30 => (0x86dd, 4),
                _ => return Ok(()),
            }
        }
        LINKTYPE_RAW | LINKTYPE_RAW_ALT | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            match frame.first().map(|b| b >> 4) {
                Some(4) => (0x0800, 0),
                Some(6) => (0x86dd, 0),
                _ => return Err(DecodeError::BadIpv4),
            }
        }
        LINKTYPE_LINUX_SLL => (be16(frame, 14).ok_or(DecodeError::TruncatedLink)?, 16),
        LINKTYPE_LINUX_SLL2 => (be16(frame, 0).ok_or(DecodeError::TruncatedLink)?, 20),
        _ => return Err(DecodeError::UnsupportedLink),
    };
    match ethertype {
        0x0800 => ipv4(frame, off, p),
        0x86dd => ipv6(frame, off, p),
        _ => Ok(()),
    }
}

#[inline]
fn ethernet(frame: &[u8]) -> Result<(u16, usize), DecodeError> {
    let mut et = be16(frame, 12).ok_or(DecodeError::TruncatedLink)?;
    let mut off = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if et == 0x8100 || et == 0x88a8 || et == 0x9100 {
            et = be16(frame, off + 2).ok_or(DecodeError::TruncatedLink)?;
            off += 4;
        } else {
            break;
        }
    }
    Ok((et, off))
}

#[inline]
fn ipv4(frame: &[u8], off: usize, p: &mut Packet) -> Result<(), DecodeError> {
    let h = frame.get(off..off + 20).ok_or(DecodeError::BadIpv4)?;
    if h[0] >> 4 != 4 {
        return Err(DecodeError::BadIpv4);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if ihl < 20 || total < ihl || frame.len() < off + ihl {
        return Err(DecodeError::BadIpv4);
    }
    // The frame may carry Ethernet padding after the datagram, or be cut by the snap length.
    let end = (off + total).min(frame.len());
    p.ip_version = 4;
    p.src = v4_mapped([h[12], h[13], h[14], h[15]]);
    p.dst = v4_mapped([h[16], h[17], h[18], h[19]]);
    p.proto = h[9];
    p.l3_off = off as u16;
    let fl = u16::from_be_bytes([h[6], h[7]]);
    let more = fl & 0x2000 != 0;
    let frag_off = (fl & 0x1fff) * 8;
    let l4 = off + ihl;
    if more || frag_off != 0 {
        p.kind = L3Kind::Fragment;
        p.frag = FragInfo {
            id: u16::from_be_bytes([h[4], h[5]]) as u32,
            offset: frag_off,
            more,
        };
        p.l4_off = l4 as u16;
        p.payload_off = l4 as u16;
        p.payload_len = (end - l4) as u16;
        return Ok(());
    }
    transport(frame, l4, end, p)
}

#[inline]
fn ipv6(frame: &[u8], off: usize, p: &mut Packet) -> Result<(), DecodeError> {
    let h = frame.get(off..off + 40).ok_or(DecodeError::BadIpv6)?;
    if h[0] >> 4 != 6 {
        return Err(DecodeError::BadIpv6);
    }
    let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
    let end = (off + 40 + plen).min(frame.len());
    p.ip_version = 6;
    p.src.copy_from_slice(&h[8..24]);
    p.dst.copy_from_slice(&h[24..40]);
    p.l3_off = off as u16;
    let mut nh = h[6];
    let mut at = off + 40;
    // However many extension headers there are: a receiver walks them all, so a chain longer
    // than some limit would carry its payload past an engine that gave up. The walk is bounded by
    // the packet: every header moves `at` on by at least 8 bytes, and one that ends past the
    // packet is an error.
    loop {
        match nh {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let e = frame.get(at..at + 2).ok_or(DecodeError::BadIpv6Ext)?;
                nh = e[0];
                at += (e[1] as usize + 1) * 8;
                if at > end {
                    return Err(DecodeError::BadIpv6Ext);
                }
            }
            51 => {
                // Authentication header: length in 4-octet units, minus 2.
                let e = frame.get(at..at + 2).ok_or(DecodeError::BadIpv6Ext)?;
                nh = e[0];
                at += (e[1] as usize + 2) * 4;
                if at > end {
                    return Err(DecodeError::BadIpv6Ext);
                }
            }
            44 => {
                let e = frame.get(at..at + 8).ok_or(DecodeError::BadIpv6Ext)?;
                let fo = u16::from_be_bytes([e[2], e[3]]);
                let more = fo & 1 != 0;
                let offset = fo & 0xfff8;
                let id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                let next = e[0];
                at += 8;
                if more || offset != 0 {
                    p.proto = next;
                    p.kind = L3Kind::Fragment;
                    p.frag = FragInfo { id, offset, more };
                    p.l4_off = at as u16;
                    p.payload_off = at as u16;
                    p.payload_len = end.saturating_sub(at) as u16;
                    return Ok(());
                }
                // An atomic fragment: carry on with the next header.
                nh = next;
            }
            _ => {
                p.proto = nh;
                return transport(frame, at, end, p);
            }
        }
    }
}

/// Decodes the TCP or UDP header at `at`, with the datagram ending at `end`.
#[inline]
pub fn transport(frame: &[u8], at: usize, end: usize, p: &mut Packet) -> Result<(), DecodeError> {
    p.l4_off = at as u16;
    match p.proto {
        IPPROTO_TCP => {
            let t = frame.get(at..at + 20).ok_or(DecodeError::BadTcp)?;
            let doff = ((t[12] >> 4) as usize) * 4;
            if doff < 20 || at + doff > end {
                return Err(DecodeError::BadTcp);
            }
            p.sport = u16::from_be_bytes([t[0], t[1]]);
            p.dport = u16::from_be_bytes([t[2], t[3]]);
            p.seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            p.ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
            p.tcp_flags = t[13];
            p.payload_off = (at + doff) as u16;
            p.payload_len = (end - at - doff) as u16;
            p.kind = L3Kind::Transport;
            Ok(())
        }
        IPPROTO_UDP => {
            let u = frame.get(at..at + 8).ok_or(DecodeError::BadUdp)?;
            let ulen = u16::from_be_bytes([u[4], u[5]]) as usize;
            if ulen != 0 && ulen < 8 {
                return Err(DecodeError::BadUdp);
            }
            p.sport = u16::from_be_bytes([u[0], u[1]]);
            p.dport = u16::from_be_bytes([u[2], u[3]]);
            p.payload_off = (at + 8) as u16;
            // A UDP length of 0 is used for IPv6 jumbograms; otherwise it bounds the payload.
            let avail = end.saturating_sub(at + 8);
            p.payload_len = if ulen == 0 {
                avail
            } else {
                (ulen - 8).min(avail)
            } as u16;
            p.kind = L3Kind::Transport;
            Ok(())
        }
        _ => {
            p.kind = L3Kind::OtherIp;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0,
            0,
            64,
            6,
            0,
            0,
            10,
            0,
            0,
            1,
            192,
            0,
            2,
            1,
        ];
        f.append(&mut ip);
        f.extend_from_slice(&tcp_header(tcp_flags::SYN));
        f.extend_from_slice(payload);
        f
    }

    /// A TCP header from port 1234 to 443, without options.
    fn tcp_header(flags: u8) -> [u8; 20] {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp
    }

    #[test]
    fn decodes_tcp_v4() {
        let f = tcp_v4(b"hello");
        let mut p = Packet::default();
        decode(1, &f, &mut p).unwrap();
        assert_eq!(p.kind, L3Kind::Transport);
        assert_eq!(p.sport, 1234);
        assert_eq!(p.dport, 443);
        assert_eq!(p.payload(&f), b"hello");
        assert_eq!(to_ip(&p.src).to_string(), "10.0.0.1");
    }

    #[test]
    fn vlan_tags_and_padding() {
        let inner = tcp_v4(b"x");
        let mut f = inner[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
        f.extend_from_slice(&inner[12..]);
        f.extend_from_slice(&[0, 0, 0, 0]); // Ethernet padding
        let mut p = Packet::default();
        decode(1, &f, &mut p).unwrap();
        assert_eq!(p.payload(&f), b"x");
    }

    /// An IPv6 TCP packet behind `n` destination-options headers (8 bytes each, PadN).
    fn tcp_v6_behind_options(n: usize, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let plen = 8 * n + 20 + payload.len();
        let mut ip = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 60, 64];
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.append(&mut ip);
        for i in 0..n {
            let next = if i + 1 == n { IPPROTO_TCP } else { 60 };
            f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        f.extend_from_slice(&tcp_header(tcp_flags::ACK));
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn any_number_of_ipv6_extension_headers_is_walked() {
        // A receiver walks the whole chain, so the engine must too: a limit would let a payload
        // behind one more header pass unread.
        for n in [1, 8, 9, 40, 1000] {
            let f = tcp_v6_behind_options(n, b"hello");
            let mut p = Packet::default();
            decode(1, &f, &mut p).unwrap_or_else(|e| panic!("{n} headers: {e:?}"));
            assert_eq!(p.proto, IPPROTO_TCP);
            assert_eq!(p.dport, 443);
            assert_eq!(p.payload(&f), b"hello", "{n} headers");
        }
        // A chain that runs past the packet is still an error.
        let f = tcp_v6_behind_options(12, b"");
        let cut = &f[..14 + 40 + 8 * 11 + 4];
        let mut p = Packet::default();
        assert_eq!(decode(1, cut, &mut p), Err(DecodeError::BadIpv6Ext));
    }

    #[test]
    fn garbage_never_panics() {
        let mut p = Packet::default();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for n in 0..20000usize {
            let len = n % 200;
            let mut f = vec![0u8; len];
            for b in f.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if len > 14 {
                f[12] = if n % 2 == 0 { 0x08 } else { 0x86 };
                f[13] = if n % 2 == 0 { 0x00 } else { 0xdd };
                f[14] = if n % 2 == 0 { 0x45 } else { 0x60 };
            }
            for link in [0u16, 1, 101, 108, 113, 276, 228, 229, 7] {
                let _ = decode(link, &f, &mut p);
            }
        }
    }
}
