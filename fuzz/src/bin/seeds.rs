//! Writes seed corpora for every fuzz target from the capture corpus and the catalogue.
//!
//! Usage: `seeds [REPO_ROOT] [OUT_DIR]` (defaults: `..` and `corpus`, i.e. run from `fuzz/`).
//! Captures under `tests/data/corpus/` are split into whole files (pcap), single frames
//! (decode), frame sequences (engine), reassembled TCP stream prefixes per direction (TLS client
//! and server, HTTP, fingerprints, TCP reassembly as segments), UDP payloads (DNS, QUIC, UDP
//! fingerprints). Catalogue files and policy samples seed the loaders.

use rmmguard::decode::{self, L3Kind, Packet, IPPROTO_TCP, IPPROTO_UDP};
use rmmguard::flow::reassembly::StreamPrefix;
use rmmguard::flow::FlowKey;
use rmmguard::source::pcapfile::PcapReader;
use rmmguard_fuzz::{link_index, put_chunk};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

struct Out {
    root: PathBuf,
    count: HashMap<&'static str, usize>,
}

impl Out {
    fn put(&mut self, target: &'static str, data: &[u8]) {
        if data.is_empty() || data.len() > 1 << 20 {
            return;
        }
        // FNV-1a names the file, so the same seed is written once.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        let p = dir.join(format!("{h:016x}"));
        if !p.exists() {
            std::fs::write(&p, data).expect("write seed");
            *self.count.entry(target).or_default() += 1;
        }
    }
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut v: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    v.sort();
    for p in v {
        if p.is_dir() {
            captures(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            out.push(p);
        }
    }
}

struct Dir {
    stream: StreamPrefix,
    segs: Vec<(u32, Vec<u8>)>,
    ports: (u16, u16),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(args.get(1).map(String::as_str).unwrap_or(".."));
    let mut out = Out {
        root: PathBuf::from(args.get(2).map(String::as_str).unwrap_or("corpus")),
        count: HashMap::new(),
    };
    let mut files = Vec::new();
    captures(&root.join("tests/data/corpus"), &mut files);
    for path in &files {
        let buf = std::fs::read(path).expect("read capture");
        out.put("pcap", &buf[..buf.len().min(64 * 1024)]);
        let Ok(mut r) = PcapReader::new(&buf) else {
            continue;
        };
        let mut streams: HashMap<(FlowKey, bool), Dir> = HashMap::new();
        let mut engine_seed = Vec::new();
        let mut engine_link = None;
        let mut p = Packet::default();
        while let Ok(Some(rec)) = r.next() {
            let mut d = vec![link_index(rec.link)];
            d.extend_from_slice(rec.data);
            out.put("decode", &d);
            if engine_link.is_none() {
                engine_link = Some(rec.link);
                engine_seed.push(link_index(rec.link));
            }
            if engine_link == Some(rec.link) {
                put_chunk(&mut engine_seed, rec.data);
                if engine_seed.len() > 16 * 1024 {
                    out.put("engine", &engine_seed);
                    engine_seed.truncate(1);
                }
            }
            if decode::decode(rec.link, rec.data, &mut p).is_err() || p.kind != L3Kind::Transport {
                continue;
            }
            let pl = p.payload(rec.data);
            if p.proto == IPPROTO_UDP && !pl.is_empty() {
                if p.sport == 53 || p.dport == 53 || p.sport == 5353 || p.dport == 5353 {
                    out.put("dns", pl);
                }
                if rmmguard::inspect::quic::quic_version(pl).is_some() {
                    let mut q = Vec::new();
                    put_chunk(&mut q, pl);
                    out.put("quic_datagrams", &q);
                }
                let mut f = vec![1 | 2];
                f.extend_from_slice(&p.sport.to_be_bytes());
                f.extend_from_slice(&p.dport.to_be_bytes());
                f.extend_from_slice(&(pl.len() as u16).to_be_bytes());
                f.push(0);
                f.extend_from_slice(pl);
                out.put("fingerprint", &f);
            }
            if p.proto == IPPROTO_TCP {
                let (key, from_a) = FlowKey::new(&p.src, p.sport, &p.dst, p.dport, p.proto);
                let d = streams.entry((key, from_a)).or_insert_with(|| Dir {
                    stream: StreamPrefix::new(16 * 1024),
                    segs: Vec::new(),
                    ports: (p.sport, p.dport),
                });
                if p.tcp_flags & decode::tcp_flags::SYN != 0 {
                    d.stream.set_start(p.seq.wrapping_add(1));
                } else if !pl.is_empty() {
                    d.stream.add(p.seq, pl);
                    if d.segs.len() < 64 {
                        d.segs.push((p.seq, pl.to_vec()));
                    }
                }
            }
        }
        if engine_seed.len() > 1 {
            out.put("engine", &engine_seed);
        }
        let mut keys: Vec<_> = streams.keys().copied().collect();
        keys.sort_by_key(|(k, a)| (k.a, k.b, k.a_port, k.b_port, *a));
        for k in keys {
            let d = &streams[&k];
            let s = d.stream.data();
            if s.is_empty() {
                continue;
            }
            let head = &s[..s.len().min(8192)];
            if s[0] == 0x16 {
                out.put("tls_client_hello", head);
                out.put("tls_server", head);
            }
            if head.starts_with(b"HTTP/")
                || [&b"GET "[..], b"POST ", b"PUT ", b"HEAD ", b"CONNECT "]
                    .iter()
                    .any(|m| head.starts_with(m))
            {
                out.put("http", head);
            }
            for from_client in [true, false] {
                let mut f = vec![if from_client { 2 } else { 0 }];
                f.extend_from_slice(&d.ports.0.to_be_bytes());
                f.extend_from_slice(&d.ports.1.to_be_bytes());
                let n = head.len().min(4096);
                f.extend_from_slice(&(n as u16).to_be_bytes());
                f.push(0);
                f.extend_from_slice(&head[..n]);
                out.put("fingerprint", &f);
            }
            // TCP reassembly: the captured segments, relative to the first one.
            if let Some(&(base, _)) = d.segs.first() {
                let mut t = vec![63];
                t.extend_from_slice(&base.to_be_bytes());
                for (seq, data) in &d.segs {
                    let rel = seq.wrapping_sub(base) as i32 / 4;
                    let rel = rel.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                    for c in data.chunks(255) {
                        t.extend_from_slice(&rel.to_be_bytes());
                        t.push(c.len() as u8);
                        t.extend_from_slice(c);
                    }
                }
                out.put("tcp_reassembly", &t[..t.len().min(16 * 1024)]);
            }
        }
    }
    // Catalogue files seed the catalogue loader; policy examples seed the policy loader.
    let mut tools = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root.join("port-lists/tools")) {
        tools = rd.flatten().map(|e| e.path()).collect();
        tools.sort();
    }
    for t in tools.iter().take(64) {
        if let Ok(text) = std::fs::read(t) {
            out.put("catalog", &text);
        }
    }
    for pol in POLICIES {
        out.put("policy", pol.as_bytes());
    }
    // Fragment reassembly: a datagram in three fragments, in and out of order, and overlaps.
    let frag = |sel: u8, off: u16, n8: u8, fill: u8| {
        let mut v = vec![sel];
        v.extend_from_slice(&off.to_be_bytes());
        v.push(n8);
        v.extend(std::iter::repeat_n(fill, n8 as usize * 8));
        v
    };
    let a = [frag(32, 0, 2, 1), frag(32, 16, 2, 2), frag(0, 32, 1, 3)].concat();
    let b = [
        frag(32 | 8, 16, 2, 2),
        frag(8, 32, 1, 3),
        frag(32 | 8, 0, 3, 1),
    ]
    .concat();
    let c = [
        frag(33, 0, 4, 1),
        frag(34, 0, 4, 9),
        frag(1, 32, 1, 1),
        frag(2, 32, 1, 1),
    ]
    .concat();
    for s in [a, b, c] {
        out.put("frag_reassembly", &s);
    }
    // QUIC Initial plaintext: a CRYPTO frame carrying a ClientHello body taken from a TLS seed.
    let mut hellos = Vec::new();
    if let Ok(rd) = std::fs::read_dir(out.root.join("tls_client_hello")) {
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths.iter().take(8) {
            if let Ok(b) = std::fs::read(p) {
                if b.len() > 9 && b[5] == 1 {
                    let n = ((b[6] as usize) << 16 | (b[7] as usize) << 8 | b[8] as usize) + 4;
                    if let Some(msg) = b.get(5..5 + n) {
                        hellos.push(msg.to_vec());
                    }
                }
            }
        }
    }
    for h in hellos {
        let mut frames = vec![0x06, 0x00];
        let n = h.len() as u16;
        frames.extend_from_slice(&(0x4000 | n).to_be_bytes());
        frames.extend_from_slice(&h);
        if frames.len() < 1100 {
            let mut q = vec![0x80];
            put_chunk(&mut q, &frames);
            out.put("quic_initial", &q);
        }
        // Split in two CRYPTO frames across two packets.
        let half = h.len() / 2;
        let mut f1 = vec![0x06, 0x00];
        f1.extend_from_slice(&(0x4000 | half as u16).to_be_bytes());
        f1.extend_from_slice(&h[..half]);
        let mut f2 = vec![0x06];
        f2.extend_from_slice(&(0x4000 | half as u16).to_be_bytes());
        f2.extend_from_slice(&(0x4000 | (h.len() - half) as u16).to_be_bytes());
        f2.extend_from_slice(&h[half..]);
        let mut q = vec![0x81];
        put_chunk(&mut q, &f2);
        put_chunk(&mut q, &f1);
        out.put("quic_initial", &q);
    }
    let mut names: Vec<_> = out.count.iter().collect();
    names.sort();
    for (t, n) in names {
        println!("{t}: {n} new seeds");
    }
}

const POLICIES: &[&str] = &[
    "",
    "default_action = \"block\"\n",
    r#"home_networks = ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"]
default_action = "block"
block_mode = "reject"
fail_open = true
dns_query_action = "alert"
malformed = "pass"
learned_ip_max_ttl = 3600

[categories]
tunnel = "alert"
remote-desktop = "allow"

[tools]
rdp = "alert"
teamviewer = "block"

[[allow]]
name = "acme-support"
tool = "screenconnect"
hosts = ["acme.screenconnect.com"]
sources = ["10.8.0.0/24"]
destinations = []
direction = "outbound"

[[allow]]
name = "helpdesk"
tools = ["anydesk", "teamviewer"]
category = "rmm"
direction = "any"
"#,
    "block_mode = \"drop\"\nmalformed = \"drop\"\n[[allow]]\nname = \"x\"\ncategory = \"rmm\"\nsources = [\"::1/128\"]\n",
];
