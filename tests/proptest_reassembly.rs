//! Property tests for TCP reassembly: any segmentation and reordering of a byte stream (with
//! duplicates and consistent overlaps) gives the same reassembled prefix, the same ClientHello
//! parse, and end to end the same `analyze` detection as the unsplit stream; and per-flow memory
//! stays at its cap whatever the sequence numbers say.

mod common;
mod support;

use proptest::prelude::*;
use rmmguard::catalog::Catalog;
use rmmguard::decode::{self, L3Kind, Packet};
use rmmguard::engine::{learned::Learned, Config, ConfigHandle, Engine, Options};
use rmmguard::flow::reassembly::StreamPrefix;
use rmmguard::inspect::{ja4, tls};
use rmmguard::policy::Policy;
use rmmguard::source::pcapfile::{PcapReader, PcapWriter};
use std::sync::{Arc, OnceLock};

/// A segmentation of `len` bytes: cut points, then an order, then duplicates (each repeating a
/// segment, possibly widened to overlap its neighbours with the same bytes).
#[derive(Debug, Clone)]
struct Plan {
    segs: Vec<(usize, usize)>,
}

fn plan(len: usize) -> impl Strategy<Value = Plan> {
    let cuts = proptest::collection::vec(0..len.max(1), 0..24);
    let dups =
        proptest::collection::vec((any::<prop::sample::Index>(), 0usize..40, 0usize..40), 0..8);
    (cuts, dups, any::<u64>()).prop_map(move |(mut cuts, dups, shuffle)| {
        cuts.push(0);
        cuts.push(len);
        cuts.sort_unstable();
        cuts.dedup();
        let mut segs: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
        for (i, before, after) in dups {
            if segs.is_empty() {
                break;
            }
            let (s, e) = segs[i.index(segs.len())];
            segs.push((s.saturating_sub(before), (e + after).min(len)));
        }
        // Fisher-Yates with a splitmix stream seeded by the strategy.
        let mut x = shuffle;
        for i in (1..segs.len()).rev() {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            segs.swap(i, (z % (i as u64 + 1)) as usize);
        }
        Plan { segs }
    })
}

fn reassemble(stream: &[u8], isn: u32, cap: usize, p: &Plan) -> StreamPrefix {
    let mut s = StreamPrefix::new(cap);
    s.set_start(isn);
    for &(a, b) in &p.segs {
        s.add(isn.wrapping_add(a as u32), &stream[a..b]);
        assert!(s.data().len() <= s.cap());
        assert_eq!(
            s.data(),
            &stream[..s.data().len()],
            "prefix is not the stream's"
        );
    }
    s
}

/// ClientHellos that fit in one TCP segment, from the capture corpus.
fn corpus_hellos() -> &'static Vec<Vec<u8>> {
    static H: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    H.get_or_init(|| {
        let mut out = Vec::new();
        for f in [
            "benign/443-curl.pcap",
            "benign/chrome.pcap",
            "benign/firefox.pcap",
            "remote-access/anydesk.pcapng",
            "remote-access/rdp_over_tls.pcap",
        ] {
            let buf = std::fs::read(common::corpus().join(f)).unwrap();
            let mut r = PcapReader::new(&buf).unwrap();
            let mut p = Packet::default();
            while let Ok(Some(rec)) = r.next() {
                if decode::decode(rec.link, rec.data, &mut p).is_err()
                    || p.kind != L3Kind::Transport
                    || p.proto != decode::IPPROTO_TCP
                {
                    continue;
                }
                let pl = p.payload(rec.data);
                if pl.len() > 9 && pl[0] == 0x16 && pl[1] == 3 && pl[5] == 1 {
                    let rec_len = u16::from_be_bytes([pl[3], pl[4]]) as usize;
                    if rec_len + 5 <= pl.len() && out.len() < 40 {
                        out.push(pl[..rec_len + 5].to_vec());
                    }
                }
            }
        }
        assert!(
            out.len() >= 5,
            "too few ClientHellos in the corpus: {}",
            out.len()
        );
        out
    })
}

/// What the inspectors take from a ClientHello: SNI, ALPN, versions and the JA4.
fn summary(h: &tls::ClientHello<'_>) -> (Option<Vec<u8>>, Option<Vec<u8>>, u16, String) {
    let mut out = [0u8; 40];
    let n = ja4::ja4(h, b't', &mut out);
    (
        h.sni.map(<[u8]>::to_vec),
        h.alpn.map(<[u8]>::to_vec),
        h.max_version(),
        String::from_utf8_lossy(&out[..n]).into_owned(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_segmentation_gives_the_same_prefix(
        (stream, p) in proptest::collection::vec(any::<u8>(), 1..3000)
            .prop_flat_map(|s| { let n = s.len(); (Just(s), plan(n)) }),
        isn in any::<u32>(),
        cap in 1usize..4200,
    ) {
        // The cut points cover [0, len), so the prefix is the stream up to the cap.
        let s = reassemble(&stream, isn, cap, &p);
        let want = stream.len().min(s.cap());
        prop_assert_eq!(s.data(), &stream[..want]);
        prop_assert_eq!(s.full(), want == s.cap());
    }

    #[test]
    fn any_segmentation_gives_the_same_client_hello(
        which in any::<prop::sample::Index>(),
        isn in any::<u32>(),
        p in (1usize..2000).prop_flat_map(plan),
    ) {
        let hellos = corpus_hellos();
        let hello = &hellos[which.index(hellos.len())];
        let len = hello.len();
        let mut scratch = Box::new(tls::HandshakeScratch::new());
        let want = match tls::parse_client_hello_stream(hello, &mut scratch) {
            tls::Parse::Done(h) => summary(&h),
            other => panic!("corpus ClientHello does not parse: {other:?}"),
        };
        // Rescale the plan onto this message, then append a final segment so that it is whole.
        let mut segs: Vec<(usize, usize)> = p.segs.iter()
            .map(|&(a, b)| (a * len / 2000, b * len / 2000))
            .filter(|(a, b)| a < b)
            .collect();
        segs.push((0, len));
        let mut s = StreamPrefix::new(4096);
        s.set_start(isn);
        for &(a, b) in &segs {
            s.add(isn.wrapping_add(a as u32), &hello[a..b]);
            let mut sc = Box::new(tls::HandshakeScratch::new());
            // Part of a valid hello is never called invalid, and a complete parse agrees.
            match tls::parse_client_hello_stream(s.data(), &mut sc) {
                tls::Parse::Done(h) => prop_assert_eq!(summary(&h), want.clone()),
                tls::Parse::NeedMore => prop_assert!(s.data().len() < len),
                other => prop_assert!(false, "prefix of {} bytes parsed as {:?}", s.data().len(), other),
            }
        }
        prop_assert_eq!(s.data(), &hello[..]);
    }

    #[test]
    fn stream_memory_never_exceeds_its_cap(
        cap in 1usize..5000,
        isn in any::<u32>(),
        segs in proptest::collection::vec((any::<u32>(), 0usize..3000), 0..64),
    ) {
        let mut s = StreamPrefix::new(cap);
        let fixed = s.cap();
        prop_assert!(fixed >= cap && fixed < cap + 64);
        s.set_start(isn);
        let junk = vec![0xa5u8; 3000];
        for (seq, n) in segs {
            s.add(seq, &junk[..n]);
            prop_assert_eq!(s.cap(), fixed);
            prop_assert!(s.data().len() <= fixed);
        }
    }
}

fn engine() -> Engine {
    static CAT: OnceLock<Arc<Catalog>> = OnceLock::new();
    let cat = CAT
        .get_or_init(|| Arc::new(Catalog::embedded().unwrap()))
        .clone();
    let policy = Arc::new(Policy::builtin(&cat));
    let h = ConfigHandle::new(Config {
        catalog: cat,
        policy,
    });
    let opts = Options {
        max_flows: 1024,
        max_inspecting: 64,
        max_quic: 4,
        ..Options::default()
    };
    Engine::new(h, Arc::new(Learned::new(1024)), opts, 0)
}

use common::tcp_frame as tcp;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// One TCP flow, arbitrary segments (any sequence numbers, sizes, far jumps): the engine's
    /// memory after the flow is set up does not grow, whatever arrives.
    #[test]
    fn per_flow_memory_is_capped_in_the_engine(
        segs in proptest::collection::vec((any::<u32>(), 1usize..1400), 1..48),
    ) {
        let mut e = engine();
        let isn = 1000u32;
        let mut ts = 1_000_000_000u64;
        e.process(ts, 1, &tcp(isn, None, true, true, &[]));
        e.process(ts, 1, &tcp(9000, Some(isn + 1), true, false, &[]));
        // A first data byte that is not TLS keeps the flow under inspection for the matchers.
        e.process(ts, 1, &tcp(isn + 1, Some(9001), false, true, &[0x00]));
        let base = e.memory_bytes();
        let junk = vec![0x41u8; 1400];
        for (seq, n) in segs {
            ts += 1000;
            e.process(ts, 1, &tcp(seq, Some(9001), false, true, &junk[..n]));
            prop_assert!(e.memory_bytes() <= base, "{} > {}", e.memory_bytes(), base);
        }
    }
}

/// Writes a pcap of a handshake and the ClientHello cut as `segs` (in that order).
fn write_pcap(path: &std::path::Path, hello: &[u8], segs: &[(usize, usize)]) {
    let isn = 0xfffff000u32; // close to wrapping, on purpose
    let sisn = 77u32;
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap(), 1).unwrap();
    let mut ts = 1_600_000_000_000_000_000u64;
    let mut put = |f: Vec<u8>| {
        ts += 1_000_000;
        w.write(ts, &f, f.len() as u32).unwrap();
    };
    put(tcp(isn, None, true, true, &[]));
    put(tcp(sisn, Some(isn.wrapping_add(1)), true, false, &[]));
    put(tcp(isn.wrapping_add(1), Some(sisn + 1), false, true, &[]));
    for &(a, b) in segs {
        put(tcp(
            isn.wrapping_add(1 + a as u32),
            Some(sisn + 1),
            false,
            true,
            &hello[a..b],
        ));
    }
    w.into_inner().unwrap();
}

/// The (tool, method, host, action) of each event.
fn detections(path: &std::path::Path) -> Vec<(String, String, String, String)> {
    common::analyze_events(path, &[])
        .iter()
        .map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
            (
                s(&e["rmm"]["tool"]),
                s(&e["rmm"]["method"]),
                s(&e["rmm"]["evidence"]),
                s(&e["alert"]["action"]),
            )
        })
        .collect()
}

fn reference() -> &'static Vec<(String, String, String, String)> {
    static R: OnceLock<Vec<(String, String, String, String)>> = OnceLock::new();
    R.get_or_init(|| {
        let hello = support::sni_hello("relay.teamviewer.com");
        let d = common::tempdir();
        let p = d.path().join("whole.pcap");
        write_pcap(&p, &hello, &[(0, hello.len())]);
        let r = detections(&p);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, "teamviewer", "{r:?}");
        assert_eq!(r[0].3, "blocked", "{r:?}");
        r
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// End to end: a ClientHello for relay.teamviewer.com cut into arbitrary TCP segments,
    /// shuffled and partly duplicated, gives `analyze` the same detection as the whole one.
    #[test]
    fn shuffled_segments_give_the_same_detection(p in (1usize..600).prop_flat_map(plan)) {
        let want = reference();
        let hello = support::sni_hello("relay.teamviewer.com");
        let len = hello.len();
        let mut segs: Vec<(usize, usize)> = p.segs.iter()
            .map(|&(a, b)| (a * len / 600, b * len / 600))
            .filter(|(a, b)| a < b)
            .collect();
        // Every byte must arrive at least once: add whatever the plan left uncovered.
        let mut covered = vec![false; len];
        for &(a, b) in &segs { covered[a..b].iter_mut().for_each(|x| *x = true); }
        let mut i = 0;
        while i < len {
            if covered[i] { i += 1; continue; }
            let j = (i..len).find(|&j| covered[j]).unwrap_or(len);
            segs.push((i, j));
            i = j;
        }
        // Segments that bring no new byte use up the engine's inspection budget (16 packets
        // with the SYN and SYN-ACK); keep at most 8 of them, as a lossy path might retransmit.
        // More is an evasion, pinned in `tests/regressions.rs`.
        let mut seen = vec![false; len];
        let mut redundant = 0;
        segs.retain(|&(a, b)| {
            let new = seen[a..b].iter().any(|x| !*x);
            seen[a..b].iter_mut().for_each(|x| *x = true);
            if !new {
                redundant += 1;
            }
            new || redundant <= 8
        });
        let d = common::tempdir();
        let path = d.path().join("split.pcap");
        write_pcap(&path, &hello, &segs);
        prop_assert_eq!(&detections(&path), want, "segments {:?}", segs);
    }
}
