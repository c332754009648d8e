//! Bounded IPv4/IPv6 fragment reassembly.
//!
//! Limits: fragments per datagram, datagrams in flight, bytes held in total, and a timeout. When a
//! limit is hit the oldest datagram is dropped (and counted), so a flood of fragments that never
//! complete cannot grow memory. Overlapping fragments keep the bytes that arrived first.

use ahash::RandomState;
use hashbrown::HashMap;

/// Limits for [`Reassembler`].
#[derive(Clone, Copy, Debug)]
pub struct FragLimits {
    /// Datagrams being reassembled at once.
    pub max_datagrams: usize,
    /// Fragments accepted per datagram.
    pub max_fragments: usize,
    /// Bytes held across all datagrams.
    pub max_bytes: usize,
    /// A datagram not completed within this time is dropped.
    pub timeout_ns: u64,
}

impl Default for FragLimits {
    fn default() -> Self {
        FragLimits {
            max_datagrams: 1024,
            max_fragments: 64,
            max_bytes: 4 << 20,
            timeout_ns: 30_000_000_000,
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct FragStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped for a limit, a timeout or an inconsistency.
    pub dropped: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
    v6: bool,
}

struct Datagram {
    first_ns: u64,
    buf: Vec<u8>,
    /// Byte ranges received, [start, end).
    ranges: Vec<(u16, u16)>,
    /// Total length once the last fragment has been seen.
    total: Option<u16>,
}

/// Reassembles fragmented datagrams.
pub struct Reassembler {
    lim: FragLimits,
    map: HashMap<Key, Datagram, RandomState>,
    bytes: usize,
    /// A completed datagram's transport bytes.
    out: Vec<u8>,
    /// Buffers recycled from finished datagrams.
    spare: Vec<Vec<u8>>,
    /// Counters.
    pub stats: FragStats,
}

impl Reassembler {
    /// A reassembler with the given limits and a randomly seeded hash.
    pub fn new(lim: FragLimits) -> Self {
        Reassembler {
            lim,
            map: HashMap::with_capacity_and_hasher(64, RandomState::new()),
            bytes: 0,
            out: Vec::with_capacity(2048),
            spare: Vec::new(),
            stats: FragStats::default(),
        }
    }

    /// Bytes currently held.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Datagrams currently in flight.
    pub fn in_flight(&self) -> usize {
        self.map.len()
    }

    fn release(&mut self, k: &Key) {
        if let Some(mut d) = self.map.remove(k) {
            self.bytes -= d.buf.len();
            d.buf.clear();
            if self.spare.len() < 16 {
                self.spare.push(d.buf);
            }
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self
            .map
            .iter()
            .min_by_key(|(_, d)| d.first_ns)
            .map(|(k, _)| *k)
        {
            self.release(&k);
            self.stats.dropped += 1;
        }
    }

    /// Drops datagrams older than the timeout.
    pub fn expire(&mut self, now_ns: u64) {
        let to = self.lim.timeout_ns;
        let old: Vec<Key> = self
            .map
            .iter()
            .filter(|(_, d)| now_ns.saturating_sub(d.first_ns) > to)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.release(&k);
            self.stats.dropped += 1;
        }
    }

    /// Adds a fragment. Returns the whole transport-layer datagram when this fragment completes it.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        now_ns: u64,
        src: &[u8; 16],
        dst: &[u8; 16],
        proto: u8,
        v6: bool,
        id: u32,
        offset: u16,
        more: bool,
        data: &[u8],
    ) -> Option<&[u8]> {
        self.stats.fragments += 1;
        let key = Key {
            src: *src,
            dst: *dst,
            id,
            proto,
            v6,
        };
        let start = offset as usize;
        let end = start + data.len();
        // Fragments other than the last must carry a multiple of 8 bytes; nothing may pass 65535.
        if end > u16::MAX as usize || (more && data.len() % 8 != 0) || data.is_empty() {
            self.release(&key);
            self.stats.dropped += 1;
            return None;
        }
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.lim.max_datagrams {
                self.evict_oldest();
            }
            let buf = self.spare.pop().unwrap_or_default();
            self.map.insert(
                key,
                Datagram {
                    first_ns: now_ns,
                    buf,
                    ranges: Vec::new(),
                    total: None,
                },
            );
        }
        while self.bytes + data.len() > self.lim.max_bytes && self.map.len() > 1 {
            // Evict something other than this datagram.
            let victim = self
                .map
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, d)| d.first_ns)
                .map(|(k, _)| *k);
            match victim {
                Some(v) => {
                    self.release(&v);
                    self.stats.dropped += 1;
                }
                None => break,
            }
        }
        let max_fragments = self.lim.max_fragments;
        let max_bytes = self.lim.max_bytes;
        let d = self.map.get_mut(&key)?;
        let inconsistent = d.ranges.len() >= max_fragments
            || (!more && d.total.is_some_and(|t| t as usize != end))
            || d.total.is_some_and(|t| end > t as usize)
            || (!more && d.ranges.iter().any(|&(_, e)| e as usize > end));
        let grow = end.saturating_sub(d.buf.len());
        if inconsistent || self.bytes + grow > max_bytes {
            self.release(&key);
            self.stats.dropped += 1;
            return None;
        }
        if d.buf.len() < end {
            d.buf.resize(end, 0);
            self.bytes += grow;
        }
        // First arrival wins: write only the parts not yet covered.
        let mut pos = start;
        while pos < end {
            let covered = d
                .ranges
                .iter()
                .find(|&&(s, e)| (s as usize) <= pos && pos < e as usize)
                .map(|&(_, e)| e as usize);
            if let Some(e) = covered {
                pos = e.min(end);
                continue;
            }
            let next = d
                .ranges
                .iter()
                .map(|&(s, _)| s as usize)
                .filter(|&s| s > pos)
                .min()
                .unwrap_or(end)
                .min(end);
            d.buf[pos..next].copy_from_slice(&data[pos - start..next - start]);
            pos = next;
        }
        d.ranges.push((start as u16, end as u16));
        if !more {
            d.total = Some(end as u16);
        }
        let total = d.total?;
        // Complete when the union of the ranges covers [0, total).
        d.ranges.sort_unstable();
        let mut reach = 0u16;
        for &(s, e) in &d.ranges {
            if s > reach {
                return None;
            }
            reach = reach.max(e);
        }
        if reach < total {
            return None;
        }
        self.out.clear();
        self.out.extend_from_slice(&d.buf[..total as usize]);
        self.release(&key);
        self.stats.reassembled += 1;
        Some(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order_with_overlap() {
        let mut r = Reassembler::new(FragLimits::default());
        let data: Vec<u8> = (0..100u8).collect();
        let a = [1u8; 16];
        let b = [2u8; 16];
        assert!(r
            .add(0, &a, &b, 6, false, 7, 48, true, &data[48..96])
            .is_none());
        assert!(r
            .add(0, &a, &b, 6, false, 7, 96, false, &data[96..])
            .is_none());
        // Overlapping retransmission of the middle with other bytes: first arrival wins.
        assert!(r
            .add(0, &a, &b, 6, false, 7, 40, true, &[0xee; 16])
            .is_none());
        let out = r
            .add(0, &a, &b, 6, false, 7, 0, true, &data[0..48])
            .unwrap();
        assert_eq!(&out[..40], &data[..40]);
        assert_eq!(&out[40..48], &[0xee; 8]);
        assert_eq!(&out[48..], &data[48..]);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn flood_stays_bounded() {
        let lim = FragLimits {
            max_datagrams: 100,
            max_bytes: 64 * 1024,
            ..FragLimits::default()
        };
        let mut r = Reassembler::new(lim);
        for i in 0..100_000u32 {
            let src = [(i % 251) as u8; 16];
            r.add(i as u64, &src, &[9; 16], 17, true, i, 8, true, &[0u8; 1024]);
            assert!(r.in_flight() <= 100);
            assert!(r.bytes_held() <= 64 * 1024 + 2048);
        }
        assert!(r.stats.dropped > 90_000);
    }
}
