//! A zero-copy reader for classic pcap and pcapng captures.
//!
//! The format is sniffed from the first four bytes, never from the file name. Both byte orders,
//! microsecond and nanosecond pcap, and pcapng with several interfaces (each with its own link
//! type and timestamp resolution) are read. Records are returned as slices of the mapped file, so
//! reading allocates nothing per packet.
//!
//! A record cut short at the end of the file is counted in [`ReaderStats::truncated_records`] and
//! ends the read; it is not an error. A structurally impossible header (an absurd snapshot length,
//! a record larger than [`MAX_RECORD`], a pcapng block whose length is not a multiple of four) is
//! an error that names the byte offset, since nothing after it can be trusted.

use std::fmt;

/// The largest record we accept. libpcap's own limit is 256 KiB (262144) for most link types.
pub const MAX_RECORD: u32 = 256 * 1024;

/// pcapng allows larger blocks (name-resolution, comments); we still bound them.
const MAX_BLOCK: u32 = 16 * 1024 * 1024;

/// How far ahead of the current record the reader touches the mapped file.
const READ_AHEAD: usize = 8192;

/// Maximum number of interfaces in one pcapng section we keep track of.
const MAX_INTERFACES: usize = 256;

/// A link-layer header type, as numbered by tcpdump.org's LINKTYPE_ values.
pub type LinkType = u16;

/// One captured packet, borrowed from the capture.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Timestamp in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Link type of the interface it was captured on.
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
    /// The length of the packet on the wire (may exceed `data.len()` when the snap length cut it).
    pub orig_len: u32,
}

/// What went wrong while reading a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcapError {
    /// Fewer bytes than a file header.
    Empty,
    /// The magic number is neither pcap nor pcapng.
    NotACapture,
    /// A header field has an impossible value; the string says which, with the byte offset.
    Corrupt(String),
    /// A link type we cannot decode.
    UnknownLinkType(u32),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Empty => write!(f, "empty or too short to be a capture"),
            PcapError::NotACapture => {
                write!(f, "not a pcap or pcapng capture (unknown magic number)")
            }
            PcapError::Corrupt(s) => write!(f, "corrupt capture: {s}"),
            PcapError::UnknownLinkType(l) => write!(f, "unsupported link type {l}"),
        }
    }
}

impl std::error::Error for PcapError {}

/// Counters kept while reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Records returned.
    pub records: u64,
    /// A record cut short by the end of the file (0 or 1: it ends the read).
    pub truncated_records: u64,
    /// pcapng blocks skipped because they carry no packet (statistics, name resolution, ...).
    pub skipped_blocks: u64,
}

/// The link types the decoder understands.
pub fn link_type_supported(l: u32) -> bool {
    matches!(
        l,
        crate::decode::LINKTYPE_NULL
            | crate::decode::LINKTYPE_ETHERNET
            | crate::decode::LINKTYPE_RAW
            | crate::decode::LINKTYPE_RAW_ALT
            | crate::decode::LINKTYPE_LOOP
            | crate::decode::LINKTYPE_LINUX_SLL
            | crate::decode::LINKTYPE_LINUX_SLL2
            | crate::decode::LINKTYPE_IPV4
            | crate::decode::LINKTYPE_IPV6
    )
}

#[derive(Clone, Copy, Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        link: LinkType,
    },
    PcapNg,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    /// Nanoseconds per timestamp unit numerator/denominator: ts_ns = raw * mul / div.
    mul: u64,
    div: u64,
}

/// Iterates over the packets of a capture held in memory.
pub struct PcapReader<'a> {
    buf: &'a [u8],
    pos: usize,
    format: Format,
    big_endian: bool,
    ifaces: [Option<Interface>; MAX_INTERFACES],
    n_ifaces: usize,
    stats: ReaderStats,
    done: bool,
}

fn rd_u16(b: &[u8], at: usize, be: bool) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    let a = [s[0], s[1]];
    Some(if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    })
}

fn rd_u32(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let a = [s[0], s[1], s[2], s[3]];
    Some(if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

impl<'a> PcapReader<'a> {
    /// Sniffs the format and reads the file header.
    pub fn new(buf: &'a [u8]) -> Result<Self, PcapError> {
        if buf.len() < 4 {
            return Err(PcapError::Empty);
        }
        let magic = [buf[0], buf[1], buf[2], buf[3]];
        let mut r = PcapReader {
            buf,
            pos: 0,
            format: Format::PcapNg,
            big_endian: false,
            ifaces: [None; MAX_INTERFACES],
            n_ifaces: 0,
            stats: ReaderStats::default(),
            done: false,
        };
        let pcap = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false)),
            [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false)),
            [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true)),
            [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true)),
            _ => None,
        };
        if let Some((be, nanos)) = pcap {
            if buf.len() < 24 {
                return Err(PcapError::Empty);
            }
            let snaplen = rd_u32(buf, 16, be).unwrap_or(0);
            let linkfield = rd_u32(buf, 20, be).unwrap_or(0);
            // The upper bits of the link-type field carry the FCS length and flags.
            let link = linkfield & 0x0fff_ffff;
            if snaplen > MAX_BLOCK {
                return Err(PcapError::Corrupt(format!(
                    "snapshot length {snaplen} in the file header is absurd (max {MAX_RECORD})"
                )));
            }
            if !link_type_supported(link) {
                return Err(PcapError::UnknownLinkType(link));
            }
            r.format = Format::Pcap {
                big_endian: be,
                nanos,
                link: link as LinkType,
            };
            r.big_endian = be;
            r.pos = 24;
            return Ok(r);
        }
        if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            if buf.len() < 12 {
                return Err(PcapError::Empty);
            }
            // Byte-order magic of the section header decides the endianness.
            let bom = [buf[8], buf[9], buf[10], buf[11]];
            r.big_endian = match bom {
                [0x4d, 0x3c, 0x2b, 0x1a] => false,
                [0x1a, 0x2b, 0x3c, 0x4d] => true,
                _ => {
                    return Err(PcapError::Corrupt(
                        "pcapng section header has a bad byte-order magic".into(),
                    ))
                }
            };
            return Ok(r);
        }
        Err(PcapError::NotACapture)
    }

    /// Counters so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Byte offset of the next record (for progress reporting).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next packet, `Ok(None)` at the end (including after a truncated last record).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<RawPacket<'a>>, PcapError> {
        if self.done {
            return Ok(None);
        }
        match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                link,
            } => self.next_pcap(big_endian, nanos, link),
            Format::PcapNg => self.next_ng(),
        }
    }

    #[inline]
    fn truncated(&mut self) -> Result<Option<RawPacket<'a>>, PcapError> {
        self.stats.truncated_records += 1;
        self.done = true;
        Ok(None)
    }

    #[inline]
    fn next_pcap(
        &mut self,
        be: bool,
        nanos: bool,
        link: LinkType,
    ) -> Result<Option<RawPacket<'a>>, PcapError> {
        let buf = self.buf;
        let pos = self.pos;
        if pos >= buf.len() {
            self.done = true;
            return Ok(None);
        }
        // Reading a capture is bound by memory latency: each record header depends on the
        // previous record's length, so nothing overlaps. Touching the bytes a few records ahead
        // starts those cache misses early (a safe stand-in for a prefetch instruction).
        if let Some(&b) = buf.get(pos + READ_AHEAD) {
            std::hint::black_box(b);
        }
        let Some(hdr) = buf.get(pos..pos + 16) else {
            return self.truncated();
        };
        // One fixed-size view of the record header: no further bounds checks.
        let hdr: &[u8; 16] = hdr.try_into().unwrap_or(&[0; 16]);
        let word = |i: usize| {
            let a = [hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]];
            if be {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        let sec = word(0) as u64;
        let frac = word(4) as u64;
        let incl = word(8);
        let orig = word(12);
        if incl > MAX_RECORD {
            self.done = true;
            return Err(PcapError::Corrupt(format!(
                "record {} at byte offset {pos} has captured length {incl} (max {MAX_RECORD})",
                self.stats.records + 1
            )));
        }
        let start = pos + 16;
        let end = start + incl as usize;
        let Some(data) = buf.get(start..end) else {
            return self.truncated();
        };
        self.pos = end;
        self.stats.records += 1;
        let ts_ns = sec.saturating_mul(1_000_000_000).saturating_add(if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        });
        Ok(Some(RawPacket {
            ts_ns,
            link,
            data,
            orig_len: orig,
        }))
    }

    fn next_ng(&mut self) -> Result<Option<RawPacket<'a>>, PcapError> {
        loop {
            let buf = self.buf;
            let pos = self.pos;
            if pos >= buf.len() {
                self.done = true;
                return Ok(None);
            }
            if buf.len() - pos < 12 {
                return self.truncated();
            }
            // A section header may switch byte order, so peek at it first.
            let raw_type = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            if raw_type == [0x0a, 0x0d, 0x0d, 0x0a] {
                let bom = [buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]];
                self.big_endian = match bom {
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    _ => {
                        self.done = true;
                        return Err(PcapError::Corrupt(format!(
                            "pcapng section header at byte offset {pos} has a bad byte-order magic"
                        )));
                    }
                };
                // A new section starts a new interface list.
                self.n_ifaces = 0;
            }
            let be = self.big_endian;
            let btype = rd_u32(buf, pos, be).unwrap_or(0);
            let blen = rd_u32(buf, pos + 4, be).unwrap_or(0);
            if blen < 12 || blen % 4 != 0 || blen > MAX_BLOCK {
                self.done = true;
                return Err(PcapError::Corrupt(format!(
                    "pcapng block at byte offset {pos} has length {blen}"
                )));
            }
            let end = pos + blen as usize;
            let Some(block) = buf.get(pos..end) else {
                return self.truncated();
            };
            self.pos = end;
            let body = &block[8..block.len() - 4];
            match btype {
                0x0A0D_0D0A => {}
                // Interface Description Block.
                0x0000_0001 => {
                    let link = rd_u16(body, 0, be).unwrap_or(0) as u32;
                    if !link_type_supported(link) {
                        self.done = true;
                        return Err(PcapError::UnknownLinkType(link));
                    }
                    let (mul, div) = parse_if_tsresol(body.get(8..).unwrap_or(&[]), be);
                    if self.n_ifaces < MAX_INTERFACES {
                        self.ifaces[self.n_ifaces] = Some(Interface {
                            link: link as LinkType,
                            mul,
                            div,
                        });
                        self.n_ifaces += 1;
                    } else {
                        self.done = true;
                        return Err(PcapError::Corrupt(format!(
                            "more than {MAX_INTERFACES} interfaces in one pcapng section"
                        )));
                    }
                }
                // Enhanced Packet Block.
                0x0000_0006 => {
                    let ifid = rd_u32(body, 0, be).unwrap_or(u32::MAX) as usize;
                    let hi = rd_u32(body, 4, be).unwrap_or(0) as u64;
                    let lo = rd_u32(body, 8, be).unwrap_or(0) as u64;
                    let cap = rd_u32(body, 12, be).unwrap_or(0);
                    let orig = rd_u32(body, 16, be).unwrap_or(0);
                    return self.ng_packet(pos, ifid, (hi << 32) | lo, cap, orig, body, 20);
                }
                // Simple Packet Block: interface 0, no timestamp.
                0x0000_0003 => {
                    let orig = rd_u32(body, 0, be).unwrap_or(0);
                    let cap = orig.min(body.len().saturating_sub(4) as u32);
                    return self.ng_packet(pos, 0, 0, cap, orig, body, 4);
                }
                // Obsolete Packet Block.
                0x0000_0002 => {
                    let ifid = rd_u16(body, 0, be).unwrap_or(u16::MAX) as usize;
                    let hi = rd_u32(body, 4, be).unwrap_or(0) as u64;
                    let lo = rd_u32(body, 8, be).unwrap_or(0) as u64;
                    let cap = rd_u32(body, 12, be).unwrap_or(0);
                    let orig = rd_u32(body, 16, be).unwrap_or(0);
                    return self.ng_packet(pos, ifid, (hi << 32) | lo, cap, orig, body, 20);
                }
                _ => {
                    self.stats.skipped_blocks += 1;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ng_packet(
        &mut self,
        pos: usize,
        ifid: usize,
        ts: u64,
        cap: u32,
        orig: u32,
        body: &'a [u8],
        data_off: usize,
    ) -> Result<Option<RawPacket<'a>>, PcapError> {
        let Some(Some(iface)) = self.ifaces.get(ifid).filter(|_| ifid < self.n_ifaces) else {
            self.done = true;
            return Err(PcapError::Corrupt(format!(
                "packet block at byte offset {pos} names interface {ifid}, which was not described"
            )));
        };
        if cap > MAX_RECORD {
            self.done = true;
            return Err(PcapError::Corrupt(format!(
                "packet block at byte offset {pos} has captured length {cap} (max {MAX_RECORD})"
            )));
        }
        let Some(data) = body.get(data_off..data_off + cap as usize) else {
            self.done = true;
            return Err(PcapError::Corrupt(format!(
                "packet block at byte offset {pos}: captured length {cap} exceeds the block"
            )));
        };
        self.stats.records += 1;
        let ts_ns = if iface.div == 1 {
            ts.saturating_mul(iface.mul)
        } else {
            ((ts as u128 * iface.mul as u128) / iface.div as u128).min(u64::MAX as u128) as u64
        };
        Ok(Some(RawPacket {
            ts_ns,
            link: iface.link,
            data,
            orig_len: orig,
        }))
    }
}

/// Reads the `if_tsresol` option (code 9) of an Interface Description Block; the default is 10^-6.
fn parse_if_tsresol(mut opts: &[u8], be: bool) -> (u64, u64) {
    let mut res = (1000, 1);
    while opts.len() >= 4 {
        let code = rd_u16(opts, 0, be).unwrap_or(0);
        let len = rd_u16(opts, 2, be).unwrap_or(0) as usize;
        let padded = (len + 3) & !3;
        if code == 0 {
            break;
        }
        if code == 9 && len >= 1 {
            if let Some(&v) = opts.get(4) {
                let exp = (v & 0x7f) as u32;
                if v & 0x80 == 0 {
                    // 10^-exp seconds per unit.
                    res = if exp <= 9 {
                        (10u64.pow(9 - exp), 1)
                    } else if exp <= 18 {
                        (1, 10u64.pow(exp - 9))
                    } else {
                        (1, 1_000_000_000)
                    };
                } else if exp <= 60 {
                    // 2^-exp seconds per unit.
                    res = (1_000_000_000, 1u64 << exp);
                }
            }
        }
        let Some(rest) = opts.get(4 + padded..) else {
            break;
        };
        opts = rest;
    }
    res
}

/// Writes classic little-endian, nanosecond pcap files.
pub struct PcapWriter<W: std::io::Write> {
    w: W,
}

impl<W: std::io::Write> PcapWriter<W> {
    /// Writes the file header for `link`.
    pub fn new(mut w: W, link: LinkType) -> std::io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&MAX_RECORD.to_le_bytes());
        h[20..24].copy_from_slice(&(link as u32).to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w })
    }

    /// Appends one record.
    pub fn write(&mut self, ts_ns: u64, data: &[u8], orig_len: u32) -> std::io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> std::io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_le(link: u32, recs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&link.to_le_bytes());
        for (i, r) in recs.iter().enumerate() {
            v.extend_from_slice(&(i as u32 + 1).to_le_bytes());
            v.extend_from_slice(&5u32.to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(r);
        }
        v
    }

    #[test]
    fn reads_pcap_and_counts_truncation() {
        let mut f = pcap_le(1, &[&[1, 2, 3], &[4, 5, 6, 7]]);
        let mut r = PcapReader::new(&f).unwrap();
        let p = r.next().unwrap().unwrap();
        assert_eq!(p.data, &[1, 2, 3]);
        assert_eq!(p.ts_ns, 1_000_005_000);
        assert_eq!(r.next().unwrap().unwrap().data, &[4, 5, 6, 7]);
        assert!(r.next().unwrap().is_none());
        assert_eq!(r.stats().truncated_records, 0);
        f.truncate(f.len() - 2);
        let mut r = PcapReader::new(&f).unwrap();
        assert!(r.next().unwrap().is_some());
        assert!(r.next().unwrap().is_none());
        assert_eq!(r.stats().truncated_records, 1);
        assert_eq!(r.stats().records, 1);
    }

    #[test]
    fn rejects_absurd_record_and_unknown_link() {
        let mut f = pcap_le(1, &[&[1, 2, 3]]);
        f[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(&f).unwrap();
        assert!(matches!(r.next(), Err(PcapError::Corrupt(_))));
        let f = pcap_le(147, &[]);
        assert_eq!(
            PcapReader::new(&f).err(),
            Some(PcapError::UnknownLinkType(147))
        );
        assert_eq!(PcapReader::new(b"").err(), Some(PcapError::Empty));
        assert_eq!(
            PcapReader::new(b"hello world, not a capture").err(),
            Some(PcapError::NotACapture)
        );
    }

    #[test]
    fn writer_round_trip() {
        let mut w = PcapWriter::new(Vec::new(), 1).unwrap();
        w.write(3_000_000_007, &[9, 8, 7], 3).unwrap();
        let v = w.into_inner().unwrap();
        let mut r = PcapReader::new(&v).unwrap();
        let p = r.next().unwrap().unwrap();
        assert_eq!(p.ts_ns, 3_000_000_007);
        assert_eq!(p.data, &[9, 8, 7]);
    }
}
