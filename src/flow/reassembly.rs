//! Bounded in-order reassembly of the first bytes of a TCP stream direction.
//!
//! Segments may arrive out of order, overlap, or be retransmitted; every byte position is written
//! once (the first arrival wins, as in the first-write policy of most IDS reassemblers) and a
//! bitmap records what is present. [`StreamPrefix::data`] is the contiguous prefix from the first
//! byte of the stream. Nothing beyond the cap is kept, so memory per direction is fixed.

/// Whether sequence number `a` is at or after `b` (serial arithmetic: the two are taken to be
/// within 2^31 of each other, across wrap-around).
#[inline]
pub fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// Offset of sequence number `seq` from `base`, negative when before it, across wrap-around.
#[inline]
fn offset(base: u32, seq: u32) -> i64 {
    seq.wrapping_sub(base) as i32 as i64
}

/// The reassembled prefix of one TCP direction.
pub struct StreamPrefix {
    buf: Box<[u8]>,
    have: Box<[u64]>,
    base: Option<u32>,
    contiguous: usize,
    /// Data arrived beyond the cap.
    pub overflow: bool,
    /// Bytes that arrived again for positions already filled.
    pub overlaps: u32,
    /// Of those, bytes whose value differed from the one kept.
    pub conflicts: u32,
    /// Bytes written into the window (each position once), in or out of order.
    pub stored: u32,
}

impl StreamPrefix {
    /// A prefix buffer of `cap` bytes (rounded up to a multiple of 64).
    pub fn new(cap: usize) -> Self {
        let cap = cap.div_ceil(64) * 64;
        StreamPrefix {
            buf: vec![0u8; cap].into_boxed_slice(),
            have: vec![0u64; cap / 64].into_boxed_slice(),
            base: None,
            contiguous: 0,
            overflow: false,
            overlaps: 0,
            conflicts: 0,
            stored: 0,
        }
    }

    /// Forgets everything (for reuse by another flow).
    pub fn reset(&mut self) {
        if self.base.is_some() {
            self.have.iter_mut().for_each(|w| *w = 0);
        }
        self.base = None;
        self.contiguous = 0;
        self.overflow = false;
        self.overlaps = 0;
        self.conflicts = 0;
        self.stored = 0;
    }

    /// Capacity in bytes.
    pub fn cap(&self) -> usize {
        self.buf.len()
    }

    /// Raises the capacity to `cap` bytes (rounded up to a multiple of 64), keeping what is
    /// held. Used once per inspection slot for a ClientHello that announces itself larger than
    /// the usual cap; the slot keeps the larger buffer for its later flows. Returns the bytes
    /// added.
    pub fn grow(&mut self, cap: usize) -> usize {
        let cap = cap.div_ceil(64) * 64;
        let old = self.buf.len();
        if cap <= old {
            return 0;
        }
        let mut buf = vec![0u8; cap].into_boxed_slice();
        buf[..old].copy_from_slice(&self.buf);
        let mut have = vec![0u64; cap / 64].into_boxed_slice();
        have[..self.have.len()].copy_from_slice(&self.have);
        self.buf = buf;
        self.have = have;
        cap - old
    }

    /// Sets the sequence number of the first data byte (the SYN's sequence number plus one).
    pub fn set_start(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(seq);
        }
    }

    /// Whether the start of the stream is known.
    pub fn started(&self) -> bool {
        self.base.is_some()
    }

    /// Adds a segment. Returns true when the contiguous prefix grew.
    pub fn add(&mut self, seq: u32, data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        let base = *self.base.get_or_insert(seq);
        let cap = self.buf.len();
        // Offset of the segment relative to the stream start, allowing for wrap-around.
        let (mut start, mut d) = (offset(base, seq), data);
        if start < 0 {
            // Starts before the stream start (a retransmission that covers it): cut the head.
            let cut = (-start) as usize;
            if cut >= d.len() {
                return false;
            }
            d = &d[cut..];
            start = 0;
        }
        let start = start as usize;
        if start >= cap {
            self.overflow = true;
            return false;
        }
        let end = (start + d.len()).min(cap);
        if start + d.len() > cap {
            self.overflow = true;
        }
        // Walk the range a bitmap word at a time: a word with none of the range's bits set (the
        // common, in-order case) is one copy; only words that overlap earlier data go byte by byte.
        let overlaps_before = self.overlaps;
        let mut i = start;
        while i < end {
            let w = i / 64;
            let lo = i % 64;
            let hi = (end - w * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let have = self.have[w] & mask;
            let src = &d[i - start..i - start + (hi - lo)];
            if have == 0 {
                self.buf[i..i + (hi - lo)].copy_from_slice(src);
            } else {
                for (k, &b) in src.iter().enumerate() {
                    if self.have[w] & (1u64 << (lo + k)) == 0 {
                        self.buf[i + k] = b;
                    } else {
                        self.overlaps = self.overlaps.saturating_add(1);
                        if self.buf[i + k] != b {
                            self.conflicts = self.conflicts.saturating_add(1);
                        }
                    }
                }
            }
            self.have[w] |= mask;
            i = w * 64 + hi;
        }
        let new =
            ((end - start) as u32).saturating_sub(self.overlaps.wrapping_sub(overlaps_before));
        self.stored = self.stored.saturating_add(new);
        let before = self.contiguous;
        while self.contiguous < cap {
            let w = self.have[self.contiguous / 64] >> (self.contiguous % 64);
            if w == u64::MAX >> (self.contiguous % 64) {
                self.contiguous += 64 - self.contiguous % 64;
            } else {
                self.contiguous += (!w).trailing_zeros() as usize;
                break;
            }
        }
        self.contiguous > before
    }

    /// Whether a segment has bytes at or past the cap, which are not kept.
    pub fn reaches_past_cap(&self, seq: u32, len: usize) -> bool {
        let Some(base) = self.base else {
            return false;
        };
        offset(base, seq) + len as i64 > self.buf.len() as i64
    }

    /// The sequence number of the first byte after the contiguous prefix (None before any data).
    pub fn next_seq(&self) -> Option<u32> {
        self.base.map(|b| b.wrapping_add(self.contiguous as u32))
    }

    /// The contiguous prefix.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.contiguous]
    }

    /// Whether the prefix filled the buffer.
    pub fn full(&self) -> bool {
        self.contiguous >= self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_overlap_and_retransmission() {
        let msg: Vec<u8> = (0..200u8).collect();
        let mut s = StreamPrefix::new(128);
        s.set_start(1000);
        assert!(!s.add(1050, &msg[50..100]));
        assert!(s.data().is_empty());
        assert!(s.add(1000, &msg[0..60]));
        assert_eq!(s.data(), &msg[..100]);
        // Overlapping retransmission with different bytes does not change what was kept.
        s.add(1090, &[0xff; 20]);
        assert_eq!(&s.data()[..100], &msg[..100]);
        assert_eq!(s.data().len(), 110);
        assert!(s.overlaps >= 10);
        // Beyond the cap.
        s.add(1100, &msg[100..200]);
        assert!(s.full());
        assert!(s.overflow);
        assert_eq!(s.data().len(), 128);
    }

    #[test]
    fn sequence_wraparound() {
        let mut s = StreamPrefix::new(64);
        s.set_start(u32::MAX - 2);
        s.add(u32::MAX - 2, b"abc");
        s.add(0, b"def");
        assert_eq!(s.data(), b"abcdef");
        s.add(u32::MAX - 10, b"0123456789z");
        assert_eq!(s.data(), b"abcdef");
    }
}
