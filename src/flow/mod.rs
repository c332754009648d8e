//! Bidirectional flows and the bounded, seeded, per-worker flow table.
//!
//! A flow is keyed by its 5-tuple in canonical order (lower endpoint first), so both directions
//! find the same entry. Each worker owns its table: no lock, no sharing. The table holds at most
//! `capacity` flows; when full, the oldest idle of a small random sample is evicted (an
//! approximation of LRU that costs a few cache lines, not a list update per packet). Idle flows
//! are expired by an incremental sweep that visits a few slots per packet.

pub mod reassembly;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Canonical 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct FlowKey {
    /// Lower endpoint address.
    pub a: [u8; 16],
    /// Higher endpoint address.
    pub b: [u8; 16],
    /// Lower endpoint port.
    pub a_port: u16,
    /// Higher endpoint port.
    pub b_port: u16,
    /// Transport protocol.
    pub proto: u8,
}

impl std::hash::Hash for FlowKey {
    /// Five 64-bit words instead of the derived byte-slice writes: the flow hash runs for every
    /// packet, and the table's hasher is randomly seeded, so fewer, wider writes lose nothing.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_ne_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        h.write_u64(w(&self.a, 0));
        h.write_u64(w(&self.a, 8));
        h.write_u64(w(&self.b, 0));
        h.write_u64(w(&self.b, 8));
        h.write_u64((self.a_port as u64) << 24 | (self.b_port as u64) << 8 | self.proto as u64);
    }
}

impl FlowKey {
    /// The canonical key for a packet, and whether the packet goes from `a` to `b`.
    #[inline]
    pub fn new(
        src: &[u8; 16],
        sport: u16,
        dst: &[u8; 16],
        dport: u16,
        proto: u8,
    ) -> (FlowKey, bool) {
        if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    a: *src,
                    b: *dst,
                    a_port: sport,
                    b_port: dport,
                    proto,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    a: *dst,
                    b: *src,
                    a_port: dport,
                    b_port: sport,
                    proto,
                },
                false,
            )
        }
    }
}

/// Where a flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum FlowState {
    /// Still being inspected.
    #[default]
    Undecided = 0,
    /// Decided: no catalogued tool, passes.
    Clean = 1,
    /// Decided: a catalogued tool, passes (alert or allow).
    Passed = 2,
    /// Decided: a catalogued tool, blocked.
    Blocked = 3,
}

/// Flag bits in [`Flow::flags`].
pub mod flags {
    /// The `a` endpoint is the client.
    pub const CLIENT_IS_A: u8 = 0x01;
    /// The orientation was guessed (no SYN seen).
    pub const GUESSED: u8 = 0x02;
    /// FIN seen from a.
    pub const FIN_A: u8 = 0x04;
    /// FIN seen from b.
    pub const FIN_B: u8 = 0x08;
    /// RST seen.
    pub const RST: u8 = 0x10;
    /// A DNS answer may still teach addresses after the decision.
    pub const DNS_LEARN: u8 = 0x20;
    /// The flow has ended (FIN both ways or RST): linger briefly for trailing packets.
    pub const CLOSED: u8 = 0x40;
}

/// Sentinel for "no inspection state".
pub const NO_SLOT: u32 = u32::MAX;
/// Sentinel for "no tool".
pub const NO_TOOL: u16 = u16::MAX;

/// One tracked flow. Kept small: see the `flow_size` test.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flow {
    /// The 5-tuple.
    pub key: FlowKey,
    /// Flags (see [`flags`]).
    pub flags: u8,
    /// Decision.
    pub state: FlowState,
    /// Detection method (index into `engine::Method`), when a tool was found.
    pub method: u8,
    /// Packets inspected so far.
    pub inspected: u8,
    /// Catalogued tool, or [`NO_TOOL`].
    pub tool: u16,
    /// Allow rule that decided it (+1), 0 = default.
    pub rule: u16,
    /// First packet time.
    pub first_ns: u64,
    /// Last packet time.
    pub last_ns: u64,
    /// Packets from the client, from the server.
    pub pkts: [u32; 2],
    /// Bytes (on the wire) from the client, from the server.
    pub bytes: [u64; 2],
    /// Flow id (unique per run).
    pub id: u64,
    /// Index of the inspection state, or [`NO_SLOT`].
    pub slot: u32,
    /// A weak candidate found at flow start (port or address), for when nothing better comes.
    pub candidate_tool: u16,
    /// Method of the candidate.
    pub candidate_method: u8,
    /// Confidence of the candidate (0 = none, 1 low, 2 medium, 3 high).
    pub candidate_conf: u8,
    /// Packets dropped (blocked) in this flow.
    pub dropped: u32,
    /// Sequence number of the first data byte from the client and from the server (SYN + 1).
    pub isn: [u32; 2],
    /// Bit 0: the client's is known; bit 1: the server's.
    pub isn_known: u8,
}

impl Flow {
    /// Whether the client is the `a` endpoint.
    #[inline]
    pub fn client_is_a(&self) -> bool {
        self.flags & flags::CLIENT_IS_A != 0
    }
}

/// Table counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStats {
    /// Flows created.
    pub created: u64,
    /// Flows ended by FIN/RST or idle timeout.
    pub expired: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
}

/// Idle timeouts in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP flows.
    pub tcp_ns: u64,
    /// UDP flows.
    pub udp_ns: u64,
    /// Flows after FIN both ways or RST.
    pub closed_ns: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_ns: 600_000_000_000,
            udp_ns: 120_000_000_000,
            closed_ns: 5_000_000_000,
        }
    }
}

/// A bounded flow table owned by one worker.
pub struct FlowTable {
    hasher: RandomState,
    index: HashTable<u32>,
    slab: Vec<Flow>,
    used: Vec<bool>,
    free: Vec<u32>,
    capacity: usize,
    sweep: usize,
    rng: u64,
    timeouts: Timeouts,
    /// Counters.
    pub stats: TableStats,
}

impl FlowTable {
    /// A table for at most `capacity` flows, with a randomly seeded hash.
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        let capacity = capacity.clamp(16, u32::MAX as usize - 1);
        let initial = capacity.min(1 << 16);
        let hasher = RandomState::default();
        let rng = hasher.hash_one(0x5eed_u64) | 1;
        FlowTable {
            hasher,
            index: HashTable::with_capacity(initial),
            slab: Vec::with_capacity(initial),
            used: Vec::with_capacity(initial),
            free: Vec::new(),
            capacity,
            sweep: 0,
            rng,
            timeouts,
            stats: TableStats::default(),
        }
    }

    /// Flows currently tracked.
    #[inline]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The maximum number of flows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the table's own structures (flows and index).
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Flow>()
            + self.used.capacity()
            + self.free.capacity() * 4
            + self.index.capacity() * 5
    }

    #[inline]
    fn hash(&self, k: &FlowKey) -> u64 {
        self.hasher.hash_one(k)
    }

    /// The table's (per-table, randomly seeded) hash of a key: lets tests show that crafted
    /// keys cannot be made to collide across tables.
    pub fn hash_of(&self, k: &FlowKey) -> u64 {
        self.hash(k)
    }

    /// Finds a flow.
    #[inline]
    pub fn get(&self, k: &FlowKey) -> Option<u32> {
        let h = self.hash(k);
        let slab = &self.slab;
        self.index.find(h, |&i| slab[i as usize].key == *k).copied()
    }

    /// The flow at `idx`.
    #[inline]
    pub fn flow(&self, idx: u32) -> &Flow {
        &self.slab[idx as usize]
    }

    /// The flow at `idx`, mutably.
    #[inline]
    pub fn flow_mut(&mut self, idx: u32) -> &mut Flow {
        &mut self.slab[idx as usize]
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Picks the flow to evict when full: the oldest idle of 8 random slots. Returns its index.
    pub fn eviction_victim(&mut self) -> Option<u32> {
        if self.slab.is_empty() {
            return None;
        }
        let mut best: Option<(u64, u32)> = None;
        for _ in 0..8 {
            let i = (self.next_rand() % self.slab.len() as u64) as u32;
            if !self.used[i as usize] {
                continue;
            }
            let f = &self.slab[i as usize];
            // Closed flows first, then the least recently seen.
            let age_key = if f.flags & flags::CLOSED != 0 {
                0
            } else {
                f.last_ns
            };
            if best.is_none_or(|(b, _)| age_key < b) {
                best = Some((age_key, i));
            }
        }
        best.map(|(_, i)| i)
            .or_else(|| self.used.iter().position(|&u| u).map(|i| i as u32))
    }

    /// Inserts a new flow. The table must not be full (evict first).
    pub fn insert(&mut self, flow: Flow) -> u32 {
        debug_assert!(self.len() < self.capacity);
        let idx = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = flow;
                self.used[i as usize] = true;
                i
            }
            None => {
                self.slab.push(flow);
                self.used.push(true);
                (self.slab.len() - 1) as u32
            }
        };
        let h = self.hash(&flow.key);
        let hasher = &self.hasher;
        let slab = &self.slab;
        self.index
            .insert_unique(h, idx, |&i| hasher.hash_one(slab[i as usize].key));
        self.stats.created += 1;
        idx
    }

    /// Whether the table is at capacity.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// Removes a flow and returns it.
    pub fn remove(&mut self, idx: u32) -> Flow {
        let f = self.slab[idx as usize];
        let h = self.hash(&f.key);
        if let Ok(e) = self.index.find_entry(h, |&i| i == idx) {
            e.remove();
        }
        self.used[idx as usize] = false;
        self.free.push(idx);
        f
    }

    /// Whether the flow at `idx` has been idle past its timeout at `now`.
    #[inline]
    pub fn is_expired(&self, idx: u32, now_ns: u64) -> bool {
        let f = &self.slab[idx as usize];
        let to = if f.flags & flags::CLOSED != 0 {
            self.timeouts.closed_ns
        } else if f.key.proto == crate::decode::IPPROTO_TCP {
            self.timeouts.tcp_ns
        } else {
            self.timeouts.udp_ns
        };
        now_ns.saturating_sub(f.last_ns) > to
    }

    /// Advances the expiry sweep by `n` slots; returns an expired flow's index, if one was found.
    #[inline]
    pub fn sweep_step(&mut self, now_ns: u64, n: usize) -> Option<u32> {
        let len = self.slab.len();
        if len == 0 {
            return None;
        }
        for _ in 0..n {
            self.sweep += 1;
            if self.sweep >= len {
                self.sweep = 0;
            }
            let i = self.sweep as u32;
            if self.used[self.sweep] && self.is_expired(i, now_ns) {
                return Some(i);
            }
        }
        None
    }

    /// Indices of every tracked flow (for the final flush).
    pub fn indices(&self) -> Vec<u32> {
        self.used
            .iter()
            .enumerate()
            .filter(|(_, &u)| u)
            .map(|(i, _)| i as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_size() {
        // The design target is at most 128 bytes per tracked flow.
        let s = std::mem::size_of::<Flow>();
        println!("size_of::<Flow>() = {s} bytes");
        assert!(s <= 128, "Flow is {s} bytes");
    }

    #[test]
    fn key_is_symmetric() {
        let a = [1u8; 16];
        let b = [2u8; 16];
        let (k1, d1) = FlowKey::new(&a, 10, &b, 20, 6);
        let (k2, d2) = FlowKey::new(&b, 20, &a, 10, 6);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
    }

    #[test]
    fn bounded_with_eviction() {
        let mut t = FlowTable::new(1000, Timeouts::default());
        for i in 0..10_000u32 {
            let mut src = [0u8; 16];
            src[..4].copy_from_slice(&i.to_be_bytes());
            let (key, _) = FlowKey::new(&src, 1, &[9; 16], 2, 6);
            if t.is_full() {
                let v = t.eviction_victim().unwrap();
                t.remove(v);
                t.stats.evicted += 1;
            }
            let idx = t.insert(Flow {
                key,
                last_ns: i as u64,
                ..Flow::default()
            });
            assert_eq!(t.get(&key), Some(idx));
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.stats.evicted, 9000);
    }
}
