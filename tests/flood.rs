//! Flood tests: the engine's state stays bounded under floods of flows, fragments and slow
//! handshakes, real detections still happen in the middle of a flood, and the flow hash is
//! seeded so crafted 5-tuples cannot pile into one bucket.
//!
//! The engine is driven through the library (much faster than through a capture). Counts are
//! bounded: the big SYN flood runs 10M flows in an optimised build (`cargo test --release`, as
//! `scripts/test` and CI run it) and 500k in a debug build. Times are printed, never asserted.

mod support;

use rmmguard::catalog::Catalog;
use rmmguard::decode::{frag::FragLimits, LINKTYPE_RAW};
use rmmguard::engine::{learned::Learned, Config, ConfigHandle, Engine, Event, Options};
use rmmguard::flow::{FlowKey, FlowTable, Timeouts};
use rmmguard::policy::Policy;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Tests here measure the process's resident memory, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const RAW: u16 = LINKTYPE_RAW as u16;

fn catalog() -> &'static Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::embedded().unwrap()))
}

fn engine(opts: Options) -> Engine {
    let cat = catalog().clone();
    let policy = Arc::new(Policy::builtin(&cat));
    let h = ConfigHandle::new(Config {
        catalog: cat,
        policy,
    });
    let mut e = Engine::new(h, Arc::new(Learned::new(1 << 16)), opts, 0);
    e.set_time_inspection(false);
    e
}

/// The most memory the engine may hold with these options: the flow table (flows, index, free
/// list), the inspection pool (two stream prefixes and bookkeeping per slot), QUIC scratch and
/// fragment bytes. Generous per-item constants; what matters is that nothing scales with the
/// number of flows *offered*.
fn cap_bytes(o: &Options) -> usize {
    o.max_flows * 256
        + o.max_inspecting * (2 * o.stream_cap + 2048)
        + o.max_quic * 48 * 1024
        + o.frag.max_bytes
        + (1 << 20)
}

fn vm_rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A raw IPv4 + TCP packet (no link header; checksums are not checked by the decoder).
fn tcp4(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// Sends a TLS session to relay.teamviewer.com from `client`: SYN, SYN-ACK, ACK, ClientHello
/// with `between` calls of `flood` between the packets.
fn teamviewer_session(
    e: &mut Engine,
    ts: &mut u64,
    client: [u8; 4],
    mut between: impl FnMut(&mut Engine, &mut u64),
) {
    let server = [198, 51, 100, 20];
    let hello = support::sni_hello("relay.teamviewer.com");
    let pkts = [
        tcp4(client, server, 40000, 443, 1000, SYN, &[]),
        tcp4(server, client, 443, 40000, 5000, SYN | ACK, &[]),
        tcp4(client, server, 40000, 443, 1001, ACK, &[]),
        tcp4(client, server, 40000, 443, 1001, PSH_ACK, &hello),
    ];
    for p in pkts {
        *ts += 100;
        e.process(*ts, RAW, &p);
        between(e, ts);
    }
}

fn is_teamviewer(ev: &Event, client: [u8; 4]) -> bool {
    let tv = catalog().tool_id("teamviewer").unwrap();
    ev.tool == tv && ev.client.0[12..] == client && ev.client.1 == 40000
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A SYN from a random address and port to a random address and port, written into `p`.
fn random_syn(rng: &mut Rng, p: &mut [u8]) {
    let r = rng.next();
    p[12..16].copy_from_slice(&(r as u32).to_be_bytes());
    p[16..20].copy_from_slice(&((r >> 32) as u32).to_be_bytes());
    let q = rng.next();
    p[20..22].copy_from_slice(&(q as u16).to_be_bytes());
    p[22..24].copy_from_slice(&((q >> 16) as u16).to_be_bytes());
    p[24..28].copy_from_slice(&((q >> 32) as u32).to_be_bytes());
}

#[test]
fn syn_flood_of_distinct_flows_stays_under_the_cap() {
    let _g = serial();
    let n: u64 = if cfg!(debug_assertions) {
        500_000
    } else {
        10_000_000
    };
    // A SYN takes an inspection slot, and when the pool is full the engine scans it for the
    // oldest inspection (O(max_inspecting) per new flow): with 4096 slots 10M SYNs took 13
    // minutes, so the pool is kept small here. Memory is what this test is about.
    let opts = Options {
        max_flows: 65_536,
        max_inspecting: 256,
        ..Options::default()
    };
    let cap = cap_bytes(&opts);
    let rss0 = vm_rss();
    let mut e = engine(opts);
    let mut rng = Rng(0x5eed);
    let mut syn = tcp4([0; 4], [0; 4], 0, 0, 0, SYN, &[]);
    let mut ts = 1_000_000_000u64;
    let mut max_mem = 0usize;
    let mut found = false;
    let t0 = Instant::now();
    let mut i = 0u64;
    while i < n {
        if i == n / 2 {
            // A real RMM session in the middle of the flood, with flood packets in between.
            let client = [192, 168, 7, 7];
            teamviewer_session(&mut e, &mut ts, client, |e, ts| {
                for _ in 0..1000 {
                    random_syn(&mut rng, &mut syn);
                    *ts += 100;
                    e.process(*ts, RAW, &syn);
                }
            });
            i += 4000;
            found = e.events.iter().any(|ev| is_teamviewer(ev, client));
        }
        random_syn(&mut rng, &mut syn);
        ts += 100;
        e.process(ts, RAW, &syn);
        i += 1;
        if i % 65_536 == 0 {
            max_mem = max_mem.max(e.memory_bytes());
            assert!(e.active_flows() <= opts.max_flows);
            // Random ports hit catalogued ones now and then: drain those events.
            if !found {
                found = e
                    .events
                    .iter()
                    .any(|ev| is_teamviewer(ev, [192, 168, 7, 7]));
            }
            e.events.clear();
        }
    }
    found = found
        || e.events
            .iter()
            .any(|ev| is_teamviewer(ev, [192, 168, 7, 7]));
    let secs = t0.elapsed().as_secs_f64();
    let rss = vm_rss().saturating_sub(rss0);
    let s = &e.stats;
    println!(
        "syn flood: {n} packets in {secs:.2} s ({:.0} packets/s); flows created {}, evicted {}, active {}; \
         engine memory max {} KiB (cap {} KiB); RSS growth {} KiB",
        n as f64 / secs,
        s.flows_created,
        s.flows_evicted,
        e.active_flows(),
        max_mem / 1024,
        cap / 1024,
        rss / 1024
    );
    assert!(
        found,
        "the TeamViewer session in the middle of the flood was not detected"
    );
    assert!(max_mem <= cap, "engine memory {max_mem} over the cap {cap}");
    assert!(
        rss <= cap + (32 << 20),
        "resident memory grew by {rss} bytes (cap {cap})"
    );
    assert_eq!(e.active_flows(), opts.max_flows);
    // Every flow past the cap evicted one.
    assert!(s.flows_evicted >= s.flows_created - opts.max_flows as u64 - s.flows_ended);
    assert!(
        s.flows_evicted > n / 2,
        "evictions were not counted: {}",
        s.flows_evicted
    );
}

/// An IPv4 fragment (first fragment, more-fragments set) of a UDP datagram that never completes.
fn fragment(id: u16, src: [u8; 4], len: usize) -> Vec<u8> {
    let total = 20 + len;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x20, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&[203, 0, 113, 1]);
    p.extend(std::iter::repeat_n(0xab, len));
    p
}

#[test]
fn fragment_flood_that_never_completes_stays_capped() {
    let _g = serial();
    let limits = FragLimits {
        max_datagrams: 512,
        max_fragments: 16,
        max_bytes: 1 << 20,
        timeout_ns: 30_000_000_000,
    };
    let opts = Options {
        frag: limits,
        max_flows: 4096,
        max_inspecting: 256,
        ..Options::default()
    };
    let mut e = engine(opts);
    let n = 300_000u32;
    let mut ts = 1_000_000_000u64;
    let mut max_held = 0usize;
    let t0 = Instant::now();
    for i in 0..n {
        ts += 1000;
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        e.process(ts, RAW, &fragment(i as u16, src, 1400));
        max_held = max_held.max(e.frag_bytes());
        assert!(
            e.frag_bytes() <= limits.max_bytes,
            "{} bytes held",
            e.frag_bytes()
        );
    }
    let s = e.stats.frag;
    println!(
        "fragment flood: {n} first fragments in {:.2} s; held at most {} KiB (cap {} KiB); \
         dropped {} datagrams, reassembled {}",
        t0.elapsed().as_secs_f64(),
        max_held / 1024,
        limits.max_bytes / 1024,
        s.dropped,
        s.reassembled
    );
    assert_eq!(s.fragments, n as u64);
    assert_eq!(s.reassembled, 0);
    assert!(s.dropped >= (n as usize - limits.max_datagrams) as u64);
    // Afterwards a fragmented datagram still reassembles.
    let client = [192, 168, 9, 9];
    let mut udp = [0u8; 8 + 64];
    udp[0..2].copy_from_slice(&5353u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(72u16).to_be_bytes());
    let mk = |off: u16, more: bool, data: &[u8]| {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(&0x4242u16.to_be_bytes());
        let fo = (off / 8) | if more { 0x2000 } else { 0 };
        p.extend_from_slice(&fo.to_be_bytes());
        p.extend_from_slice(&[64, 17, 0, 0]);
        p.extend_from_slice(&client);
        p.extend_from_slice(&[203, 0, 113, 2]);
        p.extend_from_slice(data);
        p
    };
    e.process(ts + 1, RAW, &mk(0, true, &udp[..40]));
    e.process(ts + 2, RAW, &mk(40, false, &udp[40..]));
    assert_eq!(
        e.stats.frag.reassembled, 1,
        "a real fragmented datagram after the flood"
    );
}

#[test]
fn slow_client_hellos_one_byte_per_packet_stay_capped() {
    let _g = serial();
    let flows: u32 = if cfg!(debug_assertions) {
        20_000
    } else {
        100_000
    };
    let opts = Options {
        max_flows: 1 << 17,
        max_inspecting: 4096,
        ..Options::default()
    };
    let cap = cap_bytes(&opts);
    let rss0 = vm_rss();
    let mut e = engine(opts);
    let hello = support::sni_hello("www.example.org");
    let server = [198, 51, 100, 80];
    let addr = |i: u32| [100, 64 | ((i >> 16) as u8 & 0x3f), (i >> 8) as u8, i as u8];
    let mut ts = 1_000_000_000u64;
    let t0 = Instant::now();
    for i in 0..flows {
        ts += 100;
        e.process(ts, RAW, &tcp4(addr(i), server, 30000, 443, 100, SYN, &[]));
    }
    let mut max_mem = 0usize;
    let bytes = 40usize;
    for b in 0..bytes {
        for i in 0..flows {
            ts += 100;
            let seq = 101 + b as u32;
            e.process(
                ts,
                RAW,
                &tcp4(addr(i), server, 30000, 443, seq, PSH_ACK, &hello[b..b + 1]),
            );
        }
        max_mem = max_mem.max(e.memory_bytes());
        assert!(e.inspecting() <= opts.max_inspecting);
    }
    let secs = t0.elapsed().as_secs_f64();
    let rss = vm_rss().saturating_sub(rss0);
    println!(
        "slow ClientHellos: {flows} flows x {bytes} one-byte segments in {secs:.2} s; engine memory max {} KiB \
         (cap {} KiB); inspections cut short {}; RSS growth {} KiB",
        max_mem / 1024,
        cap / 1024,
        e.stats.inspect_evicted,
        rss / 1024
    );
    assert!(max_mem <= cap, "engine memory {max_mem} over the cap {cap}");
    assert!(
        rss <= cap + (32 << 20),
        "resident memory grew by {rss} bytes (cap {cap})"
    );
    assert!(
        e.stats.inspect_evicted > 0,
        "more flows than inspection slots must be cut short"
    );
    // A real ClientHello afterwards is still inspected and detected.
    let client = [192, 168, 5, 5];
    e.events.clear();
    teamviewer_session(&mut e, &mut ts, client, |_, _| {});
    assert!(
        e.events.iter().any(|ev| is_teamviewer(ev, client)),
        "a real ClientHello after the slow flood was not detected: {:?}",
        e.events
    );
}

#[test]
fn flow_hash_is_seeded_per_table() {
    let _g = serial();
    let a = FlowTable::new(1024, Timeouts::default());
    let b = FlowTable::new(1024, Timeouts::default());
    let mk = |i: u32| {
        let mut src = [0u8; 16];
        src[10] = 0xff;
        src[11] = 0xff;
        src[12..].copy_from_slice(&i.to_be_bytes());
        FlowKey::new(&src, 443, &[0x20; 16], 1234, 6).0
    };
    let k = mk(1);
    assert_eq!(a.hash_of(&k), a.hash_of(&k), "a table's hash is stable");
    // Two tables in one process hash the same keys differently.
    let differ = (0..64)
        .filter(|&i| a.hash_of(&mk(i)) != b.hash_of(&mk(i)))
        .count();
    assert_eq!(differ, 64, "two tables share a hash seed");

    // Keys crafted to collide in one bucket (low 12 bits) under a fixed, unseeded hash...
    let fixed = ahash::RandomState::with_seeds(0, 0, 0, 0);
    let mut crafted = Vec::new();
    let mut i = 0u32;
    while crafted.len() < 64 {
        let key = mk(i);
        if fixed.hash_one(key) & 0xfff == 0 {
            crafted.push(key);
        }
        i += 1;
    }
    // ...spread over the seeded table's buckets.
    for t in [&a, &b] {
        let mut buckets: Vec<u64> = crafted.iter().map(|k| t.hash_of(k) & 0xfff).collect();
        buckets.sort_unstable();
        buckets.dedup();
        println!(
            "crafted keys: 64 in 1 bucket unseeded, {} buckets seeded",
            buckets.len()
        );
        assert!(
            buckets.len() >= 48,
            "crafted keys still collide: {} buckets",
            buckets.len()
        );
    }
    // And the engine's table takes them all, each findable.
    let mut t = FlowTable::new(1024, Timeouts::default());
    for k in &crafted {
        t.insert(rmmguard::flow::Flow {
            key: *k,
            ..Default::default()
        });
    }
    assert!(crafted.iter().all(|k| t.get(k).is_some()));
}
