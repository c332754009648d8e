//! Fuzz targets for rmmguard.
//!
//! Each target is a plain function taking the fuzzer's bytes, so the same code runs under
//! libFuzzer (`cargo fuzz run NAME`, one thin file per target in `fuzz_targets/`) and under the
//! stable-Rust driver (`src/bin/stable_driver.rs`). A target panics only on a real bug: either
//! the code under test panicked, or an invariant checked here (a memory cap, agreement with a
//! simple reference model) does not hold.

use rmmguard::catalog::{self, Catalog};
use rmmguard::decode::{self, frag, Packet};
use rmmguard::engine::{self, learned::Learned, Config, ConfigHandle, Engine};
use rmmguard::flow::reassembly::StreamPrefix;
use rmmguard::inspect::fingerprint::{self, FpInput, L4};
use rmmguard::inspect::{dns, http, ja4, quic, tls};
use rmmguard::policy::Policy;
use rmmguard::source::pcapfile::PcapReader;
use std::sync::{Arc, OnceLock};

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of the `cargo fuzz` targets and of the corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("pcap", pcap),
    ("decode", decode),
    ("tcp_reassembly", tcp_reassembly),
    ("frag_reassembly", frag_reassembly),
    ("tls_client_hello", tls_client_hello),
    ("tls_server", tls_server),
    ("quic_datagrams", quic_datagrams),
    ("quic_initial", quic_initial),
    ("dns", dns),
    ("http", http),
    ("fingerprint", fingerprint),
    ("policy", policy),
    ("catalog", catalog),
    ("engine", engine),
];

/// Link types the decoder knows; a fuzz input picks one with its first byte.
pub const LINKS: [u16; 9] = [
    decode::LINKTYPE_ETHERNET as u16,
    decode::LINKTYPE_RAW as u16,
    decode::LINKTYPE_NULL as u16,
    decode::LINKTYPE_LOOP as u16,
    decode::LINKTYPE_LINUX_SLL as u16,
    decode::LINKTYPE_LINUX_SLL2 as u16,
    decode::LINKTYPE_IPV4 as u16,
    decode::LINKTYPE_IPV6 as u16,
    decode::LINKTYPE_RAW_ALT as u16,
];

/// Index of `link` in [`LINKS`] (for writing seeds).
pub fn link_index(link: u16) -> u8 {
    LINKS.iter().position(|&l| l == link).unwrap_or(0) as u8
}

/// Splits `data` into length-prefixed chunks: `[len u16 BE][bytes]...` (the last chunk may be
/// short). The framing used by the multi-packet targets and their seeds.
pub fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < 2 {
            return None;
        }
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let n = n.min(body.len());
        let (c, r) = body.split_at(n);
        rest = r;
        Some(c)
    })
}

/// Appends one chunk in the framing read by [`chunks`].
pub fn put_chunk(out: &mut Vec<u8>, c: &[u8]) {
    let n = c.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&c[..n]);
}

fn embedded_catalog() -> &'static Arc<Catalog> {
    static CAT: OnceLock<Arc<Catalog>> = OnceLock::new();
    CAT.get_or_init(|| Arc::new(Catalog::embedded().expect("embedded catalogue")))
}

/// The pcap/pcapng reader, and the decoder on every record it returns.
pub fn pcap(data: &[u8]) {
    let Ok(mut r) = PcapReader::new(data) else {
        return;
    };
    let mut p = Packet::default();
    let mut n = 0u64;
    while let Ok(Some(rec)) = r.next() {
        n += 1;
        assert!(rec.data.len() <= rmmguard::source::pcapfile::MAX_RECORD as usize);
        let _ = decode::decode(rec.link, rec.data, &mut p);
        let _ = p.payload(rec.data);
        assert!(r.position() <= data.len());
    }
    assert!(r.stats().records == n);
    // After the end (or an error) the reader stays finished.
    assert!(matches!(r.next(), Ok(None)));
}

/// The packet decoder: the first byte picks the link type.
pub fn decode(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[sel as usize % LINKS.len()];
    let mut p = Packet::default();
    if decode::decode(link, frame, &mut p).is_ok() {
        let pl = p.payload(frame);
        assert!(pl.len() <= frame.len());
        if p.kind == decode::L3Kind::Transport {
            assert_eq!(
                pl.len(),
                p.payload_len as usize,
                "payload outside the frame"
            );
        }
    }
}

/// TCP prefix reassembly (`StreamPrefix`), checked against a simple reference model.
///
/// Input: `[cap u8][start u32]` then segments `[offset i16][len u8][bytes]`; the segment's
/// sequence number is start + offset (so it may fall before the start, wrap, overlap).
pub fn tcp_reassembly(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let cap = 64 * (1 + data[0] as usize % 64);
    let start = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    let mut s = StreamPrefix::new(cap);
    s.set_start(start);
    let mut model: Vec<Option<u8>> = vec![None; cap];
    let mut rest = &data[5..];
    while rest.len() >= 3 {
        let off = i16::from_be_bytes([rest[0], rest[1]]) as i64 * 4;
        let len = (rest[2] as usize).min(rest.len() - 3);
        let seg = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let seq = (start as i64 + off) as u32;
        s.add(seq, seg);
        for (j, &b) in seg.iter().enumerate() {
            let at = off + j as i64;
            if at >= 0 && (at as usize) < cap && model[at as usize].is_none() {
                model[at as usize] = Some(b);
            }
        }
        let want: Vec<u8> = model.iter().map_while(|b| *b).collect();
        assert_eq!(s.data(), &want[..], "prefix differs from the model");
        assert!(s.data().len() <= s.cap());
        assert_eq!(s.full(), want.len() == cap);
    }
}

/// IP fragment reassembly: fragments of a few datagrams, interleaved; the memory cap must hold.
///
/// Input: records `[sel u8][offset u16][len u8][bytes]`; `sel` picks the datagram (one of 8
/// ids, v4 or v6, two protocols) and the more-fragments flag.
pub fn frag_reassembly(data: &[u8]) {
    let lim = frag::FragLimits {
        max_datagrams: 4,
        max_fragments: 8,
        max_bytes: 4096,
        timeout_ns: 1_000_000,
    };
    let mut r = frag::Reassembler::new(lim);
    let src = [1u8; 16];
    let dst = [2u8; 16];
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() >= 4 {
        let sel = rest[0];
        let offset = u16::from_be_bytes([rest[1], rest[2]]);
        let len = (rest[3] as usize * 8).min(rest.len() - 4);
        let body = &rest[4..4 + len];
        rest = &rest[4 + len..];
        now += (sel as u64 >> 6) * 400_000;
        let id = (sel & 7) as u32;
        let v6 = sel & 8 != 0;
        let proto = if sel & 16 != 0 { 6 } else { 17 };
        let more = sel & 32 != 0;
        if let Some(d) = r.add(now, &src, &dst, proto, v6, id, offset, more, body) {
            assert!(d.len() <= 65535);
        }
        r.expire(now);
        assert!(
            r.bytes_held() <= lim.max_bytes,
            "{} bytes held",
            r.bytes_held()
        );
        assert!(r.in_flight() <= lim.max_datagrams);
    }
}

fn use_hello(h: &tls::ClientHello<'_>, transport: u8) {
    let mut out = [0u8; 40];
    let n = ja4::ja4(h, transport, &mut out);
    assert!(n <= out.len());
    assert!(out[..n].is_ascii());
    let _ = h.max_version();
    for _ in h.alpn_iter() {}
    for _ in h.ext_iter() {}
    for _ in h.cipher_iter() {}
}

/// The TLS ClientHello parser (from a stream prefix, and the bare handshake body) and JA4.
pub fn tls_client_hello(data: &[u8]) {
    let mut scratch = Box::new(tls::HandshakeScratch::new());
    if let tls::Parse::Done(h) = tls::parse_client_hello_stream(data, &mut scratch) {
        use_hello(&h, b't');
    }
    if let Ok(h) = tls::parse_client_hello_body(data) {
        use_hello(&h, b'q');
    }
}

/// The TLS server-flight parser (ServerHello, certificate names) and the name helpers.
pub fn tls_server(data: &[u8]) {
    let mut scratch = Box::new(tls::HandshakeScratch::new());
    if let tls::Parse::Done(info) = tls::parse_server_stream(data, &mut scratch) {
        let mut out = [0u8; 256];
        for name in [info.cert_subject, info.cert_issuer].into_iter().flatten() {
            let n = tls::render_name(name, &mut out);
            assert!(n <= out.len());
            let _ = tls::name_contains(name, b"teamviewer");
        }
    }
    // The name walkers on arbitrary DER too.
    let mut out = [0u8; 64];
    let n = tls::render_name(data, &mut out);
    assert!(n <= out.len());
    let _ = tls::name_contains(data, b"a");
}

/// QUIC client datagrams as sent (length-prefixed chunks): header parsing, Initial decryption
/// attempts, CRYPTO reassembly.
pub fn quic_datagrams(data: &[u8]) {
    let mut scratch = Box::new(quic::QuicScratch::new());
    for d in chunks(data) {
        let _ = quic::quic_version(d);
        if quic::feed_client_datagram(d, &mut scratch) == quic::QuicStatus::ClientHello {
            if let Some(h) = scratch.client_hello() {
                use_hello(&h, b'q');
            }
            break;
        }
    }
}

struct Len(usize);
impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand_label(prk: &ring::hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let full = [b"tls13 ".as_slice(), label].concat();
    let len = (out.len() as u16).to_be_bytes();
    let info: [&[u8]; 4] = [&len, &[full.len() as u8], &full, &[0]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("hkdf");
}

/// QUIC v1 Initial salt (RFC 9001, section 5.2).
const V1_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// Builds a client Initial packet (QUIC v1) carrying `frames` as its plaintext payload, padded to
/// a 1200-byte datagram and protected as RFC 9001 says.
pub fn encrypt_initial(dcid: &[u8], pn: u32, pn_len: usize, frames: &[u8]) -> Vec<u8> {
    use ring::aead;
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &V1_SALT);
    let initial = salt.extract(dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, b"client in", &mut client);
    let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, &client);
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    expand_label(&prk, b"quic key", &mut key);
    expand_label(&prk, b"quic iv", &mut iv);
    expand_label(&prk, b"quic hp", &mut hp);

    let pn_len = pn_len.clamp(1, 4);
    let mut payload = frames.to_vec();
    // Header is about 1 + 4 + 1 + dcid + 1 + 1 + 2 + pn_len bytes; pad to 1200 in all.
    let hdr_guess = 11 + dcid.len() + pn_len;
    let min = 1200usize.saturating_sub(hdr_guess + 16).max(20);
    if payload.len() < min {
        payload.resize(min, 0);
    }
    let length = pn_len + payload.len() + 16;
    let mut pkt = vec![0xc0 | (pn_len as u8 - 1)];
    pkt.extend_from_slice(&1u32.to_be_bytes());
    pkt.push(dcid.len() as u8);
    pkt.extend_from_slice(dcid);
    pkt.push(0); // no source connection id
    pkt.push(0); // no token
    pkt.extend_from_slice(&(0x4000 | (length as u16 & 0x3fff)).to_be_bytes());
    let pn_off = pkt.len();
    pkt.extend_from_slice(&pn.to_be_bytes()[4 - pn_len..]);
    let mut nonce = iv;
    for (i, b) in (pn as u64).to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= b;
    }
    let sealer = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &key).unwrap());
    let tag = sealer
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&pkt[..]),
            &mut payload,
        )
        .expect("seal");
    pkt.extend_from_slice(&payload);
    pkt.extend_from_slice(tag.as_ref());
    let hpk = aead::quic::HeaderProtectionKey::new(&aead::quic::AES_128, &hp).unwrap();
    let sample = &pkt[pn_off + 4..pn_off + 20];
    let mask = hpk.new_mask(sample).unwrap();
    pkt[0] ^= mask[0] & 0x0f;
    for i in 0..pn_len {
        pkt[pn_off + i] ^= mask[1 + i];
    }
    pkt
}

/// The QUIC Initial decryptor and frame parser: the input is the *plaintext* frames of up to
/// three client Initials, which the target encrypts so that they pass decryption and reach the
/// frame and CRYPTO-stream parsers.
///
/// Input: `[ctl u8]` then length-prefixed chunks, one per packet (at most 3).
pub fn quic_initial(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let dcid: &[u8] = if ctl & 0x80 != 0 {
        &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]
    } else {
        &[0x11; 20]
    };
    let mut scratch = Box::new(quic::QuicScratch::new());
    for (i, frames) in chunks(rest).take(3).enumerate() {
        let pn = (ctl as u32 & 0x0f) + i as u32;
        let pkt = encrypt_initial(dcid, pn, 1 + ((ctl >> 4) & 3) as usize, frames);
        if quic::feed_client_datagram(&pkt, &mut scratch) == quic::QuicStatus::ClientHello {
            let h = scratch.client_hello().expect("ClientHello said complete");
            use_hello(&h, b'q');
            assert_eq!(scratch.original_dcid(), Some(dcid));
            break;
        }
    }
}

/// The DNS parser: header, question, answers, and names at every offset.
pub fn dns(data: &[u8]) {
    let mut name = [0u8; dns::MAX_NAME];
    if let Ok(h) = dns::header(data) {
        if let Ok((n, _qt, after)) = dns::question(data, &mut name) {
            assert!(n <= dns::MAX_NAME);
            let _ = dns::answers(data, after, h.ancount, 64, |owner, _ttl, rd| {
                assert!(owner.len() <= dns::MAX_NAME);
                if let dns::Rdata::Cname(off) = rd {
                    let mut t = [0u8; dns::MAX_NAME];
                    let _ = dns::read_name(data, off, &mut t);
                }
            });
        }
    }
    for off in 0..data.len().min(64) {
        if let Ok((n, after)) = dns::read_name(data, off, &mut name) {
            assert!(n <= dns::MAX_NAME);
            assert!(after <= data.len());
        }
    }
}

/// The HTTP request and response header parsers.
pub fn http(data: &[u8]) {
    for complete in [false, true] {
        if let http::Parse::Done(r) = http::parse_request(data, complete) {
            assert!(!r.method.is_empty());
            let _ = (r.uri, r.host, r.user_agent);
        }
    }
    let _ = http::response_server(data);
}

/// Every fingerprint matcher through `match_any`, with the input's framing varied.
///
/// Input: `[flags u8][client port u16][server port u16][split u16][index u8]` then bytes; the
/// bytes before `split` are `data`, the rest `peer`.
pub fn fingerprint(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let flags = data[0];
    let cport = u16::from_be_bytes([data[1], data[2]]);
    let sport = u16::from_be_bytes([data[3], data[4]]);
    let split = u16::from_be_bytes([data[5], data[6]]) as usize;
    let body = &data[8..];
    let (d, peer) = body.split_at(split.min(body.len()));
    let input = FpInput {
        l4: if flags & 1 != 0 { L4::Udp } else { L4::Tcp },
        from_client: flags & 2 != 0,
        client_port: cport,
        server_port: sport,
        data: d,
        peer,
        datagram_index: data[7] as u32 % 8,
    };
    let mut ev = [0u8; 64];
    let mut ev_len = 0usize;
    let r = fingerprint::match_any(&input, &mut ev, &mut ev_len);
    assert!(ev_len <= ev.len());
    if !matches!(r, fingerprint::FpResult::Match(_)) {
        assert_eq!(ev_len, 0);
    }
    // Every prefix of a TCP stream must be handled too (the engine calls with growing prefixes).
    if input.l4 == L4::Tcp {
        for cut in [1, 2, 3, 5, 8, 13, 21, 34] {
            if cut < d.len() {
                let i = FpInput {
                    data: &d[..cut],
                    ..input
                };
                let _ = fingerprint::match_any(&i, &mut ev, &mut ev_len);
            }
        }
    }
}

/// The policy loader, against the embedded catalogue.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cat = embedded_catalog();
    match Policy::parse("fuzz.toml", text, cat) {
        Ok(p) => {
            let a = "10.1.2.3".parse().unwrap();
            let b = "8.8.8.8".parse().unwrap();
            let _ = p.direction(&a, &b);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("fuzz.toml"),
                "error does not name the file: {msg}"
            );
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
        }
    }
}

/// The catalogue loader: one tool file, then the catalogue and matcher built from it.
pub fn catalog(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match catalog::parse_tool("fuzz.toml", text) {
        Ok(t) => {
            for i in &t.indicators {
                let _ = (i.kind.describe(), i.kind.kind_name());
            }
            if let Ok(c) = Catalog::from_files([("fuzz.toml".to_string(), text.to_string())]) {
                let _ = c.matcher.domain(b"relay.teamviewer.com");
                let _ = c.matcher.port(catalog::Proto::Tcp, 443);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("fuzz.toml"),
                "error does not name the file: {msg}"
            );
        }
    }
}

fn small_engine() -> Engine {
    let cat = embedded_catalog().clone();
    let policy = Arc::new(Policy::builtin(&cat));
    let handle = ConfigHandle::new(Config {
        catalog: cat,
        policy,
    });
    let opts = engine::Options {
        max_flows: 64,
        max_inspecting: 16,
        max_quic: 2,
        frag: frag::FragLimits {
            max_datagrams: 8,
            max_fragments: 8,
            max_bytes: 16 * 1024,
            timeout_ns: 1_000_000_000,
        },
        ..engine::Options::default()
    };
    Engine::new(handle, Arc::new(Learned::new(64)), opts, 0)
}

/// The whole engine on arbitrary frames: `[link selector u8]` then length-prefixed frames.
pub fn engine(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[sel as usize % LINKS.len()];
    let mut e = small_engine();
    let mut ts = 1_000_000_000u64;
    for f in chunks(rest) {
        ts += 1_000_000;
        let _ = e.process(ts, link, f);
        assert!(e.active_flows() <= 64);
    }
    e.flush(ts);
    let s = &e.stats;
    assert_eq!(s.passed + s.dropped, s.packets);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_takes_empty_and_small_inputs() {
        for (_, f) in TARGETS {
            f(&[]);
            f(&[0]);
            f(&[0xff; 64]);
        }
    }

    #[test]
    fn quic_initial_harness_reaches_the_client_hello() {
        // A minimal ClientHello in one CRYPTO frame: the encrypted packet must decrypt and
        // parse, or the quic_initial target would only exercise the failure paths.
        let mut body = vec![3, 3];
        body.extend_from_slice(&[9; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let sni = b"relay.example.net";
        let mut ext = vec![0, 0, 0, sni.len() as u8 + 5, 0, sni.len() as u8 + 3, 0, 0];
        ext.push(sni.len() as u8);
        ext.extend_from_slice(sni);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![1, 0];
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&body);
        let mut frame = vec![0x06, 0x00, 0x40, msg.len() as u8];
        frame.extend_from_slice(&msg);
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let pkt = encrypt_initial(&dcid, 0, 2, &frame);
        let mut scratch = Box::new(quic::QuicScratch::new());
        assert_eq!(
            quic::feed_client_datagram(&pkt, &mut scratch),
            quic::QuicStatus::ClientHello
        );
        assert_eq!(scratch.client_hello().unwrap().sni, Some(&sni[..]));
    }
}
