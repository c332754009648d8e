//! Capture building for the integration tests: a small pcap writer, Ethernet/IPv4/IPv6/TCP/UDP
//! packets (through `etherparse`, or by hand for IP fragments), TCP conversations, and builders
//! for TLS ClientHellos and DNS messages. Everything is deterministic: the same calls write the
//! same bytes.
#![allow(dead_code)]

use etherparse::PacketBuilder;
use std::net::IpAddr;
use std::path::Path;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A pcap (LINKTYPE_ETHERNET, microsecond timestamps) built in memory.
pub struct Pcap {
    buf: Vec<u8>,
    ts_us: u64,
    ip_id: u16,
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

impl Pcap {
    /// An empty capture; the clock starts at 2024-01-01 00:00:00 UTC.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&65535u32.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes());
        Pcap {
            buf,
            ts_us: 1_704_067_200_000_000,
            ip_id: 0x1000,
        }
    }

    /// Appends one frame, 1 ms after the previous one.
    pub fn frame(&mut self, data: &[u8]) {
        self.ts_us += 1000;
        let (s, us) = (self.ts_us / 1_000_000, self.ts_us % 1_000_000);
        self.buf.extend_from_slice(&(s as u32).to_le_bytes());
        self.buf.extend_from_slice(&(us as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(data);
    }

    /// Lets `secs` seconds pass.
    pub fn sleep(&mut self, secs: u64) {
        self.ts_us += secs * 1_000_000;
    }

    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// Writes the capture to `path`.
    pub fn save(&self, path: &Path) {
        std::fs::write(path, &self.buf).expect("write capture");
    }

    /// The capture bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A UDP datagram (not fragmented).
    pub fn udp(&mut self, src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) {
        let mut out = Vec::with_capacity(payload.len() + 64);
        let eth = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC);
        match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth
                .ipv4(s.octets(), d.octets(), 64)
                .udp(src.1, dst.1)
                .write(&mut out, payload),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth
                .ipv6(s.octets(), d.octets(), 64)
                .udp(src.1, dst.1)
                .write(&mut out, payload),
            _ => panic!("mixed address families"),
        }
        .expect("build udp");
        self.frame(&out);
    }

    /// A TCP segment (not fragmented).
    pub fn tcp(&mut self, seg: &Segment<'_>) {
        let out = tcp_packet(seg, true);
        self.frame(&out);
    }

    /// A TCP segment sent as IP fragments of at most `frag_payload` bytes each (rounded down to
    /// a multiple of 8), in the order given by `order` (indices into the fragment list; all
    /// fragments when empty).
    pub fn tcp_fragmented(&mut self, seg: &Segment<'_>, frag_payload: usize, order: &[usize]) {
        let ip = tcp_packet(seg, false);
        let v6 = seg.src.0.is_ipv6();
        let hdr = if v6 { 40 } else { 20 };
        let l4 = &ip[hdr..];
        let step = (frag_payload / 8).max(1) * 8;
        let chunks: Vec<(usize, &[u8])> = l4
            .chunks(step)
            .enumerate()
            .map(|(i, c)| (i * step, c))
            .collect();
        let id = self.next_id();
        let n = chunks.len();
        let order: Vec<usize> = if order.is_empty() {
            (0..n).collect()
        } else {
            order.to_vec()
        };
        for i in order {
            let (off, data) = chunks[i];
            let more = i + 1 < n;
            let mut f = Vec::with_capacity(data.len() + 64);
            f.extend_from_slice(&SERVER_MAC);
            f.extend_from_slice(&CLIENT_MAC);
            if v6 {
                f.extend_from_slice(&[0x86, 0xdd]);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((data.len() + 8) as u16).to_be_bytes());
                f.push(44); // next header: fragment
                f.push(64);
                f.extend_from_slice(&ip_octets(seg.src.0));
                f.extend_from_slice(&ip_octets(seg.dst.0));
                f.push(6); // TCP
                f.push(0);
                let fo = ((off as u16) & !7) | more as u16;
                f.extend_from_slice(&fo.to_be_bytes());
                f.extend_from_slice(&(id as u32 | 0x5eed_0000).to_be_bytes());
            } else {
                f.extend_from_slice(&[0x08, 0x00]);
                let start = f.len();
                f.push(0x45);
                f.push(0);
                f.extend_from_slice(&((data.len() + 20) as u16).to_be_bytes());
                f.extend_from_slice(&id.to_be_bytes());
                let fo = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
                f.extend_from_slice(&fo.to_be_bytes());
                f.push(64);
                f.push(6);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ip_octets(seg.src.0));
                f.extend_from_slice(&ip_octets(seg.dst.0));
                let c = checksum(&f[start..start + 20]);
                f[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
            }
            f.extend_from_slice(data);
            self.frame(&f);
        }
    }
}

fn ip_octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// TCP flags for [`Segment`].
pub mod fl {
    pub const SYN: u8 = 0x02;
    pub const ACK: u8 = 0x10;
    pub const PSH: u8 = 0x08;
    pub const FIN: u8 = 0x01;
    pub const RST: u8 = 0x04;
    pub const URG: u8 = 0x20;
}

/// One TCP segment.
pub struct Segment<'a> {
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

fn tcp_packet(s: &Segment<'_>, with_eth: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.payload.len() + 80);
    macro_rules! finish {
        ($ip:expr) => {{
            let mut b = $ip.tcp(s.src.1, s.dst.1, s.seq, 64240);
            if s.flags & fl::SYN != 0 {
                b = b.syn();
            }
            if s.flags & fl::ACK != 0 {
                b = b.ack(s.ack);
            }
            if s.flags & fl::PSH != 0 {
                b = b.psh();
            }
            if s.flags & fl::FIN != 0 {
                b = b.fin();
            }
            if s.flags & fl::RST != 0 {
                b = b.rst();
            }
            if s.flags & fl::URG != 0 {
                // The urgent pointer on the segment's first byte.
                b = b.urg(1);
            }
            b.write(&mut out, s.payload).expect("build tcp");
        }};
    }
    match (s.src.0, s.dst.0, with_eth) {
        (IpAddr::V4(a), IpAddr::V4(b), true) => {
            finish!(PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC).ipv4(
                a.octets(),
                b.octets(),
                64
            ))
        }
        (IpAddr::V4(a), IpAddr::V4(b), false) => {
            finish!(PacketBuilder::ipv4(a.octets(), b.octets(), 64))
        }
        (IpAddr::V6(a), IpAddr::V6(b), true) => {
            finish!(PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC).ipv6(
                a.octets(),
                b.octets(),
                64
            ))
        }
        (IpAddr::V6(a), IpAddr::V6(b), false) => {
            finish!(PacketBuilder::ipv6(a.octets(), b.octets(), 64))
        }
        _ => panic!("mixed address families"),
    }
    out
}

/// A TCP connection being written into a capture: tracks both sequence numbers.
pub struct Tcp {
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    /// Initial sequence numbers (of the SYN and the SYN-ACK).
    pub c_isn: u32,
    pub s_isn: u32,
    /// Next sequence numbers.
    pub c_next: u32,
    pub s_next: u32,
}

impl Tcp {
    /// A connection from `client` to `server` (nothing written yet).
    pub fn new(client: (IpAddr, u16), server: (IpAddr, u16)) -> Self {
        let c_isn = 0x1000_0000u32.wrapping_add((client.1 as u32).wrapping_mul(7919));
        let s_isn = 0xf000_0000u32.wrapping_add((server.1 as u32).wrapping_mul(104_729));
        Tcp {
            client,
            server,
            c_isn,
            s_isn,
            c_next: c_isn.wrapping_add(1),
            s_next: s_isn.wrapping_add(1),
        }
    }

    /// The same connection with other initial sequence numbers (nothing written yet).
    pub fn with_isns(mut self, c_isn: u32, s_isn: u32) -> Self {
        (self.c_isn, self.s_isn) = (c_isn, s_isn);
        (self.c_next, self.s_next) = (c_isn.wrapping_add(1), s_isn.wrapping_add(1));
        self
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self, p: &mut Pcap) {
        p.tcp(&self.seg(true, self.c_isn, fl::SYN, b""));
        p.tcp(&self.seg(false, self.s_isn, fl::SYN | fl::ACK, b""));
        p.tcp(&self.seg(true, self.c_next, fl::ACK, b""));
    }

    /// Only a SYN (the server never answers).
    pub fn syn(&mut self, p: &mut Pcap) {
        p.tcp(&self.seg(true, self.c_isn, fl::SYN, b""));
    }

    /// A segment of this connection (`from_client` picks the direction).
    pub fn seg<'a>(
        &self,
        from_client: bool,
        seq: u32,
        flags: u8,
        payload: &'a [u8],
    ) -> Segment<'a> {
        let (src, dst, ack) = if from_client {
            (self.client, self.server, self.s_next)
        } else {
            (self.server, self.client, self.c_next)
        };
        Segment {
            src,
            dst,
            seq,
            ack,
            flags,
            payload,
        }
    }

    /// Client data in one segment.
    pub fn client_send(&mut self, p: &mut Pcap, data: &[u8]) {
        p.tcp(&self.seg(true, self.c_next, fl::ACK | fl::PSH, data));
        self.c_next = self.c_next.wrapping_add(data.len() as u32);
    }

    /// Server data in one segment.
    pub fn server_send(&mut self, p: &mut Pcap, data: &[u8]) {
        p.tcp(&self.seg(false, self.s_next, fl::ACK | fl::PSH, data));
        self.s_next = self.s_next.wrapping_add(data.len() as u32);
    }

    /// Client data at stream offset `off` (relative to the first data byte), without moving
    /// `c_next` (for out-of-order and overlapping segments).
    pub fn client_at(&self, p: &mut Pcap, off: usize, data: &[u8]) {
        let seq = self.c_isn.wrapping_add(1).wrapping_add(off as u32);
        p.tcp(&self.seg(true, seq, fl::ACK | fl::PSH, data));
    }

    /// Client data in segments of `size` bytes, in order.
    pub fn client_send_split(&mut self, p: &mut Pcap, data: &[u8], size: usize) {
        for c in data.chunks(size) {
            self.client_send(p, c);
        }
    }

    /// A pure ACK from the server (acknowledging what the client sent in order).
    pub fn server_ack(&self, p: &mut Pcap) {
        p.tcp(&self.seg(false, self.s_next, fl::ACK, b""));
    }

    /// Client data in segments of `size` bytes, each acknowledged by the server.
    pub fn client_send_split_acked(&mut self, p: &mut Pcap, data: &[u8], size: usize) {
        for c in data.chunks(size) {
            self.client_send(p, c);
            self.server_ack(p);
        }
    }

    /// FIN from both sides.
    pub fn close(&mut self, p: &mut Pcap) {
        p.tcp(&self.seg(true, self.c_next, fl::ACK | fl::FIN, b""));
        self.c_next = self.c_next.wrapping_add(1);
        p.tcp(&self.seg(false, self.s_next, fl::ACK | fl::FIN, b""));
        self.s_next = self.s_next.wrapping_add(1);
        p.tcp(&self.seg(true, self.c_next, fl::ACK, b""));
    }
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// What goes into a built ClientHello.
#[derive(Clone, Debug, Default)]
pub struct Hello<'a> {
    /// Server name (none: no SNI extension).
    pub sni: Option<&'a str>,
    /// ALPN protocol ids.
    pub alpn: &'a [&'a str],
    /// Add an encrypted_client_hello (0xfe0d) extension with a plausible outer payload.
    pub ech: bool,
    /// Add a post-quantum X25519MLKEM768 key share (1216 bytes) before the X25519 one.
    pub pq: bool,
    /// Seed for the random fields.
    pub seed: u8,
}

fn push16(b: &mut Vec<u8>, v: usize) {
    b.extend_from_slice(&(v as u16).to_be_bytes());
}

fn ext(b: &mut Vec<u8>, ty: u16, body: &[u8]) {
    b.extend_from_slice(&ty.to_be_bytes());
    push16(b, body.len());
    b.extend_from_slice(body);
}

fn bytes_seeded(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9u32 ^ seed as u32;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A TLS 1.3-capable ClientHello handshake message (type 1, with its 4-byte header), as a
/// current OpenSSL/BoringSSL client writes it.
pub fn client_hello_msg(h: &Hello<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x03, 0x03]);
    body.extend_from_slice(&bytes_seeded(32, h.seed));
    body.push(32);
    body.extend_from_slice(&bytes_seeded(32, h.seed.wrapping_add(1)));
    let ciphers: [u16; 9] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
    ];
    push16(&mut body, ciphers.len() * 2);
    for c in ciphers {
        body.extend_from_slice(&c.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    if let Some(sni) = h.sni {
        let mut e = Vec::new();
        push16(&mut e, sni.len() + 3);
        e.push(0);
        push16(&mut e, sni.len());
        e.extend_from_slice(sni.as_bytes());
        ext(&mut exts, 0x0000, &e);
    }
    ext(&mut exts, 0x0017, &[]); // extended_master_secret
    ext(&mut exts, 0xff01, &[0]); // renegotiation_info
    ext(
        &mut exts,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    ext(&mut exts, 0x000b, &[1, 0]);
    ext(&mut exts, 0x0023, &[]); // session_ticket
    if !h.alpn.is_empty() {
        let mut list = Vec::new();
        for a in h.alpn {
            list.push(a.len() as u8);
            list.extend_from_slice(a.as_bytes());
        }
        let mut e = Vec::new();
        push16(&mut e, list.len());
        e.extend_from_slice(&list);
        ext(&mut exts, 0x0010, &e);
    }
    ext(
        &mut exts,
        0x000d,
        &[0, 8, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03],
    );
    let mut ks = Vec::new();
    if h.pq {
        ks.extend_from_slice(&0x11ecu16.to_be_bytes());
        push16(&mut ks, 1216);
        ks.extend_from_slice(&bytes_seeded(1216, h.seed.wrapping_add(2)));
    }
    ks.extend_from_slice(&0x001du16.to_be_bytes());
    push16(&mut ks, 32);
    ks.extend_from_slice(&bytes_seeded(32, h.seed.wrapping_add(3)));
    let mut e = Vec::new();
    push16(&mut e, ks.len());
    e.extend_from_slice(&ks);
    ext(&mut exts, 0x0033, &e);
    ext(&mut exts, 0x002d, &[1, 1]); // psk_key_exchange_modes
    ext(&mut exts, 0x002b, &[4, 0x03, 0x04, 0x03, 0x03]); // supported_versions
    if h.ech {
        // ECHClientHello (outer): type 0, cipher suite, config id, enc, payload.
        let mut e = vec![0, 0x00, 0x01, 0x00, 0x01, 0x42];
        push16(&mut e, 32);
        e.extend_from_slice(&bytes_seeded(32, h.seed.wrapping_add(4)));
        push16(&mut e, 208);
        e.extend_from_slice(&bytes_seeded(208, h.seed.wrapping_add(5)));
        ext(&mut exts, 0xfe0d, &e);
    }
    push16(&mut body, exts.len());
    body.extend_from_slice(&exts);
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    msg
}

/// Wraps handshake bytes into TLS records of at most `max_frag` bytes each.
pub fn records(ct: u8, hs: &[u8], max_frag: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in hs.chunks(max_frag) {
        out.extend_from_slice(&[ct, 0x03, 0x01]);
        push16(&mut out, c.len());
        out.extend_from_slice(c);
    }
    out
}

/// A ClientHello in a single TLS record.
pub fn client_hello(h: &Hello<'_>) -> Vec<u8> {
    records(0x16, &client_hello_msg(h), 16384)
}

// ---------------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------------

/// A DNS answer record for [`dns_response`].
pub enum Rr<'a> {
    /// `owner CNAME target`.
    Cname(&'a str, &'a str),
    /// `owner A addr`.
    A(&'a str, [u8; 4]),
    /// `owner AAAA addr`.
    Aaaa(&'a str, [u8; 16]),
}

fn dns_name(b: &mut Vec<u8>, name: &str) {
    for l in name.trim_end_matches('.').split('.') {
        b.push(l.len() as u8);
        b.extend_from_slice(l.as_bytes());
    }
    b.push(0);
}

/// A standard query for `name` (type A).
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns_name(&mut b, name);
    b.extend_from_slice(&[0, 1, 0, 1]);
    b
}

/// A response to [`dns_query`] with the answers `rrs` (TTL 300). Owner names equal to the
/// question use a compression pointer to it.
pub fn dns_response(id: u16, qname: &str, rrs: &[Rr<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0x81, 0x80, 0, 1]);
    push16(&mut b, rrs.len());
    b.extend_from_slice(&[0, 0, 0, 0]);
    dns_name(&mut b, qname);
    b.extend_from_slice(&[0, 1, 0, 1]);
    for rr in rrs {
        let (owner, ty, rdata) = match rr {
            Rr::Cname(o, t) => {
                let mut r = Vec::new();
                dns_name(&mut r, t);
                (*o, 5u16, r)
            }
            Rr::A(o, a) => (*o, 1, a.to_vec()),
            Rr::Aaaa(o, a) => (*o, 28, a.to_vec()),
        };
        if owner.trim_end_matches('.') == qname.trim_end_matches('.') {
            b.extend_from_slice(&[0xc0, 12]);
        } else {
            dns_name(&mut b, owner);
        }
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&[0, 1]);
        b.extend_from_slice(&300u32.to_be_bytes());
        push16(&mut b, rdata.len());
        b.extend_from_slice(&rdata);
    }
    b
}

/// A DNS message framed for TCP (two-byte length).
pub fn dns_tcp(msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(msg.len() + 2);
    push16(&mut b, msg.len());
    b.extend_from_slice(msg);
    b
}

// ---------------------------------------------------------------------------------------------
// Reading events
// ---------------------------------------------------------------------------------------------

/// The events of the flow whose server is `server` (address, port).
pub fn events_to(events: &[serde_json::Value], server: (IpAddr, u16)) -> Vec<&serde_json::Value> {
    let ip = server.0.to_string();
    events
        .iter()
        .filter(|e| {
            (e["dest_ip"].as_str() == Some(ip.as_str())
                && e["dest_port"].as_u64() == Some(server.1 as u64))
                || (e["src_ip"].as_str() == Some(ip.as_str())
                    && e["src_port"].as_u64() == Some(server.1 as u64))
        })
        .collect()
}

/// (tool, method) of an event.
pub fn tool_method(e: &serde_json::Value) -> (String, String) {
    (
        e["rmm"]["tool"].as_str().unwrap_or("").to_string(),
        e["rmm"]["method"].as_str().unwrap_or("").to_string(),
    )
}

/// A TLS ClientHello record for `sni` with ALPN h2 and http/1.1: the plain case most tests need.
pub fn sni_hello(sni: &str) -> Vec<u8> {
    client_hello(&Hello {
        sni: Some(sni),
        alpn: &["h2", "http/1.1"],
        ech: false,
        pq: false,
        seed: 0,
    })
}
