//! Addresses learned from DNS answers for catalogued names, shared by all workers.
//!
//! Read-mostly: workers look an address up when a flow starts (not per packet) and insert when a
//! DNS answer for a catalogued name passes. Entries expire with the record's TTL, clamped between
//! a floor and the policy's maximum. The table is bounded: when full, expired entries are purged,
//! and if it is still full the new address is not learned (and that is counted).

use ahash::RandomState;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an address was learned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedEntry {
    /// The tool.
    pub tool: u16,
    /// Indicator index within the tool.
    pub indicator: u16,
    /// Expiry, in the packet clock (ns).
    pub expires_ns: u64,
    /// The catalogue the tool index belongs to ([`crate::catalog::Catalog::tag`]).
    pub catalog: u64,
}

/// The shared learned-address table.
pub struct Learned {
    map: DashMap<[u8; 16], LearnedEntry, RandomState>,
    max: usize,
    /// Addresses not learned because the table was full.
    pub dropped: AtomicU64,
    /// Addresses learned (inserted or refreshed).
    pub inserted: AtomicU64,
    last_purge_ns: AtomicU64,
}

/// The shortest time an address stays learned, whatever the TTL says (seconds).
pub const MIN_TTL: u32 = 30;

impl Learned {
    /// A table of at most `max` addresses.
    pub fn new(max: usize) -> Self {
        Learned {
            map: DashMap::with_hasher(RandomState::new()),
            max,
            dropped: AtomicU64::new(0),
            inserted: AtomicU64::new(0),
            last_purge_ns: AtomicU64::new(0),
        }
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Learns `addr` for `tool` at `now_ns` with `ttl` seconds, clamped to `[MIN_TTL, max_ttl]`.
    pub fn learn(
        &self,
        addr: [u8; 16],
        tool: u16,
        indicator: u16,
        ttl: u32,
        max_ttl: u32,
        now_ns: u64,
    ) {
        self.learn_tagged(addr, tool, indicator, ttl, max_ttl, now_ns, 0)
    }

    /// [`Learned::learn`] for a tool index of the catalogue tagged `catalog`.
    #[allow(clippy::too_many_arguments)]
    pub fn learn_tagged(
        &self,
        addr: [u8; 16],
        tool: u16,
        indicator: u16,
        ttl: u32,
        max_ttl: u32,
        now_ns: u64,
        catalog: u64,
    ) {
        let ttl = ttl.clamp(MIN_TTL.min(max_ttl), max_ttl.max(1)) as u64;
        let e = LearnedEntry {
            tool,
            indicator,
            expires_ns: now_ns.saturating_add(ttl * 1_000_000_000),
            catalog,
        };
        if self.map.len() >= self.max && !self.map.contains_key(&addr) {
            // Purging walks the whole table: at most once a second of packet time, so that a
            // flood of answers cannot make every insert a full scan.
            let last = self.last_purge_ns.load(Ordering::Relaxed);
            if now_ns.saturating_sub(last) >= 1_000_000_000
                && self
                    .last_purge_ns
                    .compare_exchange(last, now_ns, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.map.retain(|_, v| v.expires_ns > now_ns);
            }
            if self.map.len() >= self.max {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.map.insert(addr, e);
        self.inserted.fetch_add(1, Ordering::Relaxed);
    }

    /// The live entry for `addr`, if any.
    #[inline]
    pub fn get(&self, addr: &[u8; 16], now_ns: u64) -> Option<LearnedEntry> {
        if self.map.is_empty() {
            return None;
        }
        let e = *self.map.get(addr)?;
        (e.expires_ns > now_ns).then_some(e)
    }

    /// The live entry for `addr` learned under catalogue `catalog`: entries learned before a
    /// reload to another catalogue hold tool indices of that catalogue and are ignored.
    #[inline]
    pub fn get_tagged(&self, addr: &[u8; 16], now_ns: u64, catalog: u64) -> Option<LearnedEntry> {
        self.get(addr, now_ns).filter(|e| e.catalog == catalog)
    }

    /// A snapshot of the live entries (for the kernel block set and for tests).
    pub fn snapshot(&self, now_ns: u64) -> Vec<([u8; 16], LearnedEntry)> {
        self.map
            .iter()
            .filter(|r| r.value().expires_ns > now_ns)
            .map(|r| (*r.key(), *r.value()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_clamp_and_bound() {
        let l = Learned::new(2);
        l.learn([1; 16], 3, 0, 1, 3600, 0);
        // TTL 1 s is raised to the floor.
        assert!(l.get(&[1; 16], 10_000_000_000).is_some());
        assert!(l.get(&[1; 16], 31_000_000_000).is_none());
        // TTL of a day is clamped to the maximum.
        l.learn([2; 16], 3, 0, 86_400, 60, 0);
        assert!(l.get(&[2; 16], 61_000_000_000).is_none());
        // Full of live entries: the next one is dropped.
        l.learn([3; 16], 3, 0, 100, 3600, 0);
        assert_eq!(l.len(), 2);
        assert_eq!(l.dropped.load(Ordering::Relaxed), 1);
    }
}
