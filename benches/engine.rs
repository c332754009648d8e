//! Criterion benchmarks of the engine and of each inspector.
//!
//! Run with `cargo bench --bench engine` (add `-- --quick` for a short run, or a filter such as
//! `-- fast_path`). Figures and commands are recorded in BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etherparse::PacketBuilder;
use rmmguard::catalog::Catalog;
use rmmguard::engine::{learned::Learned, Config, ConfigHandle, Engine, Options, Verdict};
use rmmguard::policy::Policy;
use std::sync::Arc;

fn handle() -> Arc<ConfigHandle> {
    let catalog = Catalog::embedded().expect("catalogue");
    let policy = Policy::builtin(&catalog);
    ConfigHandle::new(Config {
        catalog: Arc::new(catalog),
        policy: Arc::new(policy),
    })
}

fn engine(max_flows: usize) -> Engine {
    let mut e = Engine::new(
        handle(),
        Arc::new(Learned::new(1 << 16)),
        Options {
            max_flows,
            ..Options::default()
        },
        0,
    );
    e.set_time_inspection(false);
    e
}

/// A TLS 1.2-style ClientHello record with `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    // ALPN h2
    ext.extend_from_slice(&[0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]).ipv4(src, dst, 64);
    let b = if syn {
        b.tcp(sport, dport, seq, 64240).syn()
    } else {
        b.tcp(sport, dport, seq, 64240).ack(1).psh()
    };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build");
    out
}

fn client(i: u32) -> ([u8; 4], u16) {
    (
        [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
        10000 + (i % 50000) as u16,
    )
}

/// Decides `n` flows (clean TLS to an uncatalogued name) and returns one small data packet per flow.
fn decided_flows(e: &mut Engine, n: u32) -> Vec<Vec<u8>> {
    let server = [198, 18, 0, 1];
    let hello = client_hello("www.example.com");
    let mut data = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (c, port) = client(i);
        e.process(1, 1, &tcp(c, port, server, 443, 100, true, &[]));
        let v = e.process(2, 1, &tcp(c, port, server, 443, 101, false, &hello));
        assert_eq!(v, Verdict::PassDecided, "flow {i} should be decided");
        data.push(tcp(
            c,
            port,
            server,
            443,
            101 + hello.len() as u32,
            false,
            &[0u8; 6],
        ));
    }
    data
}

fn fast_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("fast_path");
    for &n in &[1_000u32, 100_000, 1_000_000] {
        let mut e = engine(n as usize * 2);
        let pkts = decided_flows(&mut e, n);
        // Visit the flows in a scattered order, as interleaved traffic would.
        let order: Vec<usize> = (0..pkts.len()).map(|i| (i * 7919) % pkts.len()).collect();
        let per_iter = 10_000usize.min(pkts.len());
        let mut at = 0usize;
        g.throughput(Throughput::Elements(per_iter as u64));
        g.bench_function(format!("decided_flows_{n}"), |b| {
            b.iter(|| {
                for _ in 0..per_iter {
                    let p = &pkts[order[at]];
                    at += 1;
                    if at == order.len() {
                        at = 0;
                    }
                    black_box(e.process(3, 1, black_box(p)));
                }
            })
        });
    }
    g.finish();
}

fn new_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_flows");
    let server = [198, 18, 0, 1];
    let benign = client_hello("www.example.com");
    let rmm = client_hello("relay.teamviewer.com");
    for (name, hello) in [("tls_benign", &benign), ("tls_rmm", &rmm)] {
        let mut e = engine(1 << 20);
        let mut i = 0u32;
        g.throughput(Throughput::Elements(2));
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i = i.wrapping_add(1);
                    let (c, port) = client(i);
                    (
                        tcp(c, port, server, 443, 100, true, &[]),
                        tcp(c, port, server, 443, 101, false, hello),
                    )
                },
                |(syn, ch)| {
                    black_box(e.process(1, 1, &syn));
                    black_box(e.process(2, 1, &ch))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn inspectors(c: &mut Criterion) {
    use rmmguard::inspect::{dns, fingerprint, quic, tls};
    let catalog = Catalog::embedded().expect("catalogue");
    let mut g = c.benchmark_group("inspector");
    let hello = client_hello("relay.teamviewer.com");
    let mut hs = tls::HandshakeScratch::new();
    g.bench_function("tls_client_hello_sni", |b| {
        b.iter(
            || match tls::parse_client_hello_stream(black_box(&hello), &mut hs) {
                tls::Parse::Done(ch) => ch.sni.map(|s| s.len()),
                _ => None,
            },
        )
    });
    // A QUIC draft-29 Initial from the corpus.
    let initial = first_udp_payload("tests/data/corpus/benign/quic-29.pcap", |p| {
        quic::quic_version(p).is_some()
    });
    let mut qs = quic::QuicScratch::new();
    g.bench_function("quic_initial_decrypt", |b| {
        b.iter(|| {
            qs.clear();
            matches!(
                quic::feed_client_datagram(black_box(&initial), &mut qs),
                quic::QuicStatus::ClientHello
            )
        })
    });
    let query = first_udp_payload("tests/data/corpus/remote-access/anydesk.pcapng", |p| {
        p.len() > 12
    });
    g.bench_function("dns_query_and_match", |b| {
        b.iter(|| {
            let mut name = [0u8; dns::MAX_NAME];
            let (n, _, _) = dns::question(black_box(&query), &mut name).ok()?;
            catalog.matcher.domain(&name[..n])
        })
    });
    let samples: [(&str, &[u8]); 3] = [
        ("fingerprint_rfb", b"RFB 003.008\n"),
        (
            "fingerprint_miss_tls_appdata",
            &[0x17, 3, 3, 0, 32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        ),
        (
            "fingerprint_miss_http",
            b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
        ),
    ];
    for (name, data) in samples {
        g.bench_function(name, |b| {
            b.iter(|| {
                let input = fingerprint::FpInput {
                    l4: fingerprint::L4::Tcp,
                    from_client: false,
                    client_port: 50000,
                    server_port: 443,
                    data: black_box(data),
                    peer: &[],
                    datagram_index: 0,
                };
                let mut ev = [0u8; 64];
                let mut n = 0;
                matches!(
                    fingerprint::match_any(&input, &mut ev, &mut n),
                    fingerprint::FpResult::Match(_)
                )
            })
        });
    }
    for (name, host) in [
        ("domain_match_hit", "instance-1234-relay.screenconnect.com"),
        ("domain_match_miss", "www.some-benign-site.example.com"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| catalog.matcher.domain(black_box(host.as_bytes())))
        });
    }
    g.finish();
}

fn first_udp_payload(path: &str, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("corpus capture");
    let mut r = rmmguard::source::pcapfile::PcapReader::new(&bytes).expect("capture");
    let mut p = rmmguard::decode::Packet::default();
    while let Ok(Some(pk)) = r.next() {
        if rmmguard::decode::decode(pk.link, pk.data, &mut p).is_ok() && p.proto == 17 {
            let pl = p.payload(pk.data);
            if want(pl) {
                return pl.to_vec();
            }
        }
    }
    panic!("no matching UDP payload in {path}");
}

fn catalogue_load(c: &mut Criterion) {
    c.bench_function("catalogue_load", |b| {
        b.iter(|| Catalog::embedded().expect("catalogue").tools.len())
    });
}

criterion_group!(benches, fast_path, new_flows, inspectors, catalogue_load);
criterion_main!(benches);
