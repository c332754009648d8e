//! Seeded synthetic gateway traffic generator.
//!
//! [`generate`] writes a classic pcap file (little-endian, microsecond
//! timestamps, `LINKTYPE_ETHERNET`) that looks like what a home or office
//! gateway sees: many short flows and a few long ones, TCP with proper
//! handshakes, advancing sequence numbers and FIN teardown, TLS 1.3
//! ClientHellos with SNI and ALPN, QUIC long-header Initials, DNS
//! query/response pairs, plain HTTP/1.1 requests, and a configurable share of
//! flows that look like remote monitoring and management (RMM) tools.
//!
//! The output depends only on the [`GenConfig`]: the same seed gives a
//! byte-identical file. Memory stays proportional to the number of flows that
//! are active at once, never to the number of packets written.
//!
//! Flow sizes are heavy-tailed (a capped Pareto law on the number of data
//! packets) and the per-flow budget adapts as flows start, so the file holds
//! exactly [`GenConfig::packets`] packets whenever that is at least twice the
//! number of flows. Timestamps advance at about one million packets per
//! second overall, with flows overlapping in time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, BufWriter, Write};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Seed of the pseudo-random generator; the same seed gives the same bytes.
    pub seed: u64,
    /// Total packets to write (exact when `packets >= 2 * flows`).
    pub packets: u64,
    /// Number of flows; concurrency emerges from how they interleave in time.
    pub flows: u64,
    /// Fraction of flows that are RMM flows, e.g. `0.05`.
    pub rmm_share: f64,
    /// Fraction of flows carried over IPv6, e.g. `0.2`.
    pub ipv6_share: f64,
    /// What RMM flows look like; [`default_rmm_samples`] gives a built-in list.
    pub rmm: Vec<RmmSample>,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            packets: 1_000_000,
            flows: 20_000,
            rmm_share: 0.05,
            ipv6_share: 0.2,
            rmm: default_rmm_samples(),
        }
    }
}

/// One way an RMM tool shows up on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmmSample {
    /// Tool name, for the ground truth (e.g. `"teamviewer"`).
    pub tool: String,
    /// What the flow carries.
    pub kind: SampleKind,
}

/// The observable that marks a generated RMM flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleKind {
    /// TLS over TCP 443 whose ClientHello carries this SNI.
    TlsSni(String),
    /// QUIC over UDP 443 whose Initial is for this server name.
    QuicSni(String),
    /// A DNS query (UDP 53) for this name, answered with an A record.
    DnsQuery(String),
    /// Plain HTTP/1.1 on TCP 80 with this `Host` header.
    HttpHost(String),
    /// A TCP session to this server port with tool-like payloads.
    TcpPort(u16),
    /// A UDP exchange with this server port.
    UdpPort(u16),
}

/// Optional behaviour of [`generate_with`]; [`generate`] uses the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenOptions {
    /// Make each QUIC flow's first packet a valid, encrypted QUIC v1 Initial
    /// (RFC 9001 keys from the destination connection id, AES-128-GCM and
    /// header protection) carrying a ClientHello with the flow's SNI, so that
    /// DPI engines can decrypt it. Off by default: the Initial then has a
    /// correct long header followed by random bytes.
    pub quic_encrypted_initial: bool,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Packets (pcap records) written.
    pub packets: u64,
    /// Frame bytes written (Ethernet frames, without pcap record headers).
    pub bytes: u64,
    /// Flows that produced at least one packet.
    pub flows: u64,
    /// Of those, flows built from an [`RmmSample`].
    pub rmm_flows: u64,
}

/// A built-in catalogue of RMM observables covering every [`SampleKind`].
pub fn default_rmm_samples() -> Vec<RmmSample> {
    use SampleKind::*;
    let s = |tool: &str, kind: SampleKind| RmmSample {
        tool: tool.to_string(),
        kind,
    };
    vec![
        s("teamviewer", TlsSni("relay.teamviewer.com".into())),
        s("teamviewer", DnsQuery("router1.teamviewer.com".into())),
        s("teamviewer", TcpPort(5938)),
        s("teamviewer", QuicSni("relay.teamviewer.com".into())),
        s("anydesk", DnsQuery("boot.net.anydesk.com".into())),
        s("anydesk", TlsSni("boot.net.anydesk.com".into())),
        s("anydesk", TcpPort(7070)),
        s("anydesk", HttpHost("download.anydesk.com".into())),
        s(
            "screenconnect",
            TlsSni("instance-x-relay.screenconnect.com".into()),
        ),
        s("atera", TlsSni("agent-api.atera.com".into())),
        s("splashtop", TlsSni("st-relay.splashtop.com".into())),
        s("logmein", TlsSni("secure.logmein.com".into())),
        s("ninjaone", TlsSni("app.ninjarmm.com".into())),
        s("rdp", TcpPort(3389)),
        s("vnc", TcpPort(5900)),
        s("radmin", TcpPort(4899)),
        s("rustdesk", TcpPort(21116)),
        s("rustdesk", UdpPort(21116)),
        s("rustdesk", DnsQuery("rs-ny.rustdesk.com".into())),
    ]
}

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

/// xoshiro256** seeded through SplitMix64: small, fast and reproducible.
#[derive(Clone)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    fn u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// Uniform in `[0, 1)`.
    fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Log-uniform in `[lo, hi]`.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.f64() * (hi.ln() - lo.ln())).exp()
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// FNV-1a, used to map names to stable server addresses.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ---------------------------------------------------------------------------
// Flow size law
// ---------------------------------------------------------------------------

/// Pareto tail index of the number of data packets per flow.
const PARETO_ALPHA: f64 = 1.3;

/// Mean of `min(X, cap)` for `X ~ Pareto(xm, PARETO_ALPHA)`.
fn capped_pareto_mean(xm: f64, cap: f64) -> f64 {
    if xm >= cap {
        return cap;
    }
    let a = PARETO_ALPHA;
    xm * a / (a - 1.0) - xm.powf(a) * cap.powf(1.0 - a) / (a - 1.0)
}

/// Scale `xm` whose capped mean is `target` (bisection; the mean grows with `xm`).
fn pareto_scale_for_mean(target: f64, cap: f64) -> f64 {
    if target <= 0.0 {
        return 0.0;
    }
    if target >= cap {
        return cap;
    }
    let (mut lo, mut hi) = (0.0f64, cap);
    for _ in 0..48 {
        let mid = 0.5 * (lo + hi);
        if capped_pareto_mean(mid, cap) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

const COMMON_SITES: &[&str] = &[
    "www.google.com",
    "www.youtube.com",
    "www.wikipedia.org",
    "www.amazon.com",
    "www.bbc.co.uk",
    "fonts.gstatic.com",
    "www.github.com",
    "api.github.com",
    "www.reddit.com",
    "www.netflix.com",
    "outlook.office365.com",
    "login.microsoftonline.com",
    "www.apple.com",
    "icloud.com",
    "www.linkedin.com",
    "cdn.jsdelivr.net",
    "update.googleapis.com",
    "www.instagram.com",
    "www.whatsapp.com",
    "ocsp.digicert.com",
    "www.cloudflare.com",
    "www.debian.org",
    "www.mozilla.org",
    "www.nytimes.com",
];

const TLDS: &[&str] = &["com", "net", "org", "io", "de"];

fn benign_name(rng: &mut Rng) -> String {
    if rng.chance(0.5) {
        COMMON_SITES[rng.below(COMMON_SITES.len() as u64) as usize].to_string()
    } else {
        let n = rng.below(100_000);
        let tld = TLDS[rng.below(TLDS.len() as u64) as usize];
        match rng.below(3) {
            0 => format!("www.example-{n}.{tld}"),
            1 => format!("cdn{}.example-{n}.{tld}", rng.below(10)),
            _ => format!("api.example-{n}.{tld}"),
        }
    }
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "curl/8.5.0",
    "Microsoft-CryptoAPI/10.0",
];

// ---------------------------------------------------------------------------
// Flow model
// ---------------------------------------------------------------------------

/// Application protocol of a flow; decides ports, payloads and packet budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tls,
    Http,
    Quic,
    Dns,
    TcpRaw,
    UdpRaw,
}

impl Proto {
    fn is_tcp(self) -> bool {
        matches!(self, Proto::Tls | Proto::Http | Proto::TcpRaw)
    }

    /// Packets every flow of this kind has besides its data phase.
    fn overhead(self) -> u64 {
        match self {
            // SYN, SYN-ACK, ACK, first request, first reply, FIN, FIN, ACK.
            Proto::Tls | Proto::Http | Proto::TcpRaw => 8,
            Proto::Quic | Proto::Dns => 2,
            Proto::UdpRaw => 1,
        }
    }

    fn has_data(self) -> bool {
        self != Proto::Dns
    }
}

/// Shape of a flow's data phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Client requests, server answers with bursts of full segments, client ACKs.
    Bulk,
    /// Small and medium packets both ways (remote desktop, SSH, games).
    Interactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    C2S,
    S2C,
}

/// The next packet a flow will send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Syn,
    SynAck,
    HsAck,
    /// First client payload: ClientHello, GET, DNS query, QUIC Initial, ...
    Hello,
    /// First server payload.
    HelloReply,
    /// Client data of this payload length.
    Request(u16),
    /// Server data of this payload length.
    Segment(u16),
    /// Pure ACK (TCP) or a small ACK-only packet (QUIC) in this direction.
    Ack(Dir),
    /// FIN|ACK in this direction.
    Fin(Dir),
    LastAck,
    Done,
}

impl Step {
    fn dir(self) -> Dir {
        match self {
            Step::SynAck | Step::HelloReply | Step::Segment(_) => Dir::S2C,
            Step::Ack(d) | Step::Fin(d) => d,
            _ => Dir::C2S,
        }
    }
}

struct Flow {
    id: u64,
    rng: Rng,
    proto: Proto,
    profile: Profile,
    /// SNI, Host or query name (empty for raw flows).
    name: String,
    v6: bool,
    c_ip: [u8; 16],
    s_ip: [u8; 16],
    c_port: u16,
    s_port: u16,
    c_mac: [u8; 6],
    /// Next sequence number each side sends.
    c_seq: u32,
    s_seq: u32,
    c_ipid: u16,
    s_ipid: u16,
    flow_label: u32,
    quic_pn: [u32; 2],
    cid: [u8; 8],
    step: Step,
    data_left: u64,
    burst_left: u32,
    since_ack: u32,
    next_ts: u64,
    gap_ns: u64,
    rtt_ns: u64,
    /// DNS transaction id.
    dns_id: u16,
}

/// Fixed addresses of the gateway side.
const GW_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
const RESOLVER_V4: [u8; 4] = [192, 0, 2, 53];
const RESOLVER_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
];
/// Start of the capture: 2023-11-14T22:13:20Z.
const EPOCH_NS: u64 = 1_700_000_000 * 1_000_000_000;
/// Number of client hosts behind the gateway.
const CLIENT_HOSTS: u64 = 4096;

/// Stable server address for a name or service key.
fn server_addr(key: &[u8], v6: bool) -> [u8; 16] {
    let h = fnv1a(key);
    let mut a = [0u8; 16];
    if v6 {
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[4..12].copy_from_slice(&h.to_be_bytes());
        a[15] = (h as u8) | 1;
    } else {
        // 198.18.0.0/15, avoiding .0 and .255 hosts.
        a[0] = 198;
        a[1] = 18 + ((h >> 16) & 1) as u8;
        a[2] = (h >> 8) as u8;
        a[3] = 1 + (h % 254) as u8;
    }
    a
}

fn client_addr(host: u64, v6: bool) -> [u8; 16] {
    let mut a = [0u8; 16];
    if v6 {
        a[..8].copy_from_slice(&[0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0x00, 0x01]);
        a[8..].copy_from_slice(&(0x0200_0000_0000_0000u64 | (host + 1)).to_be_bytes());
    } else {
        a[0] = 10;
        a[1] = 0;
        a[2] = (host >> 8) as u8;
        a[3] = 1 + (host & 0xff) as u8 % 254;
    }
    a
}

/// Benign TCP services that carry no RMM ports.
const BENIGN_TCP_PORTS: &[u16] = &[22, 25, 587, 993, 1883, 5222, 8080];
/// Benign UDP services (NTP, syslog, games).
const BENIGN_UDP_PORTS: &[u16] = &[123, 514, 27015];

impl Flow {
    fn max_tcp_payload(&self) -> u16 {
        if self.v6 {
            1440
        } else {
            1460
        }
    }

    fn max_udp_payload(&self) -> u16 {
        if self.v6 {
            1452
        } else {
            1472
        }
    }

    /// Advances the state machine after the current step has been sent.
    fn advance(&mut self) {
        self.step = match self.step {
            Step::Syn => Step::SynAck,
            Step::SynAck => Step::HsAck,
            Step::HsAck => Step::Hello,
            Step::Hello => match self.proto {
                Proto::UdpRaw => self.data_step(),
                _ => Step::HelloReply,
            },
            Step::HelloReply => self.data_step(),
            Step::Request(_) | Step::Segment(_) | Step::Ack(_) => self.data_step(),
            Step::Fin(Dir::C2S) => Step::Fin(Dir::S2C),
            Step::Fin(Dir::S2C) => Step::LastAck,
            Step::LastAck | Step::Done => Step::Done,
        };
    }

    fn end_step(&self) -> Step {
        if self.proto.is_tcp() {
            Step::Fin(Dir::C2S)
        } else {
            Step::Done
        }
    }

    /// Chooses the next data-phase packet, or the teardown when none is left.
    fn data_step(&mut self) -> Step {
        if self.data_left == 0 {
            return self.end_step();
        }
        self.data_left -= 1;
        let tcp = self.proto.is_tcp();
        let max = if tcp {
            self.max_tcp_payload()
        } else {
            self.max_udp_payload() - 30
        };
        match self.profile {
            Profile::Bulk => {
                if self.burst_left > 0 {
                    let ack_every = 1 + (self.id % 2) as u32;
                    if self.since_ack >= ack_every {
                        self.since_ack = 0;
                        return Step::Ack(Dir::C2S);
                    }
                    self.burst_left -= 1;
                    self.since_ack += 1;
                    let len = if self.burst_left == 0 {
                        self.rng.range(40, u64::from(max)) as u16
                    } else {
                        max
                    };
                    Step::Segment(len)
                } else {
                    self.burst_left = 1 + self.rng.below(12) as u32;
                    self.since_ack = 0;
                    Step::Request(self.rng.range(30, 700) as u16)
                }
            }
            Profile::Interactive => {
                let r = self.rng.f64();
                let len = if r < 0.55 {
                    self.rng.range(20, 160)
                } else if r < 0.9 {
                    self.rng.range(160, 900)
                } else {
                    u64::from(max)
                } as u16;
                if tcp && self.rng.chance(0.2) {
                    let d = if self.rng.chance(0.5) {
                        Dir::C2S
                    } else {
                        Dir::S2C
                    };
                    return Step::Ack(d);
                }
                if self.rng.chance(0.45) {
                    Step::Request(len)
                } else {
                    Step::Segment(len)
                }
            }
        }
    }

    /// Delay before the current step, given the direction of the previous one.
    fn gap_before(&mut self, prev: Step) -> u64 {
        let next = self.step;
        let jitter = |rng: &mut Rng, base: u64| base / 2 + rng.below(base.max(1));
        match (prev.dir(), next.dir()) {
            (Dir::C2S, Dir::S2C) => match next {
                Step::SynAck | Step::HelloReply => jitter(&mut self.rng, self.rtt_ns),
                Step::Segment(_) if matches!(prev, Step::Request(_)) => {
                    jitter(&mut self.rng, self.rtt_ns)
                }
                _ => jitter(&mut self.rng, self.gap_ns),
            },
            (Dir::S2C, Dir::C2S) => match next {
                Step::Request(_) if self.profile == Profile::Bulk => {
                    // Think time between requests.
                    jitter(&mut self.rng, self.rtt_ns * 2)
                }
                _ => jitter(&mut self.rng, (self.gap_ns / 4).max(20_000)),
            },
            _ => jitter(&mut self.rng, self.gap_ns),
        }
    }
}

// ---------------------------------------------------------------------------
// Packet building
// ---------------------------------------------------------------------------

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

/// Where the headers of the packet being built sit in the buffer.
struct Layout {
    ip: usize,
    l4: usize,
    tcp: bool,
}

/// Reusable buffers and random payload pool.
struct Builder {
    buf: Vec<u8>,
    pool: Vec<u8>,
    rng: Rng,
    /// Encrypt client QUIC Initials (see [`GenOptions::quic_encrypted_initial`]).
    quic_crypto: bool,
    /// Scratch space for QUIC Initial plaintext.
    scratch: Vec<u8>,
}

const POOL_LEN: usize = 1 << 16;

impl Builder {
    fn new(rng: &mut Rng) -> Self {
        let mut pool = vec![0u8; POOL_LEN + 2048];
        rng.fill(&mut pool);
        Self {
            buf: Vec::with_capacity(2048),
            pool,
            rng: Rng::new(rng.u64()),
            quic_crypto: false,
            scratch: Vec::with_capacity(2048),
        }
    }

    /// Random-looking bytes (a slice of the pool at a random offset).
    fn random_bytes(&mut self, len: usize) {
        let len = len.min(2048);
        let off = self.rng.below(POOL_LEN as u64) as usize;
        self.buf.extend_from_slice(&self.pool[off..off + len]);
    }

    /// Starts a packet: pcap record header, Ethernet, IP and L4 headers with
    /// length and checksum fields left for [`Builder::finish`].
    fn begin(&mut self, f: &mut Flow, dir: Dir, tcp: Option<(u8, &[u8])>) -> Layout {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&[0u8; 16]);
        let (src_mac, dst_mac) = match dir {
            Dir::C2S => (f.c_mac, GW_MAC),
            Dir::S2C => (GW_MAC, f.c_mac),
        };
        b.extend_from_slice(&dst_mac);
        b.extend_from_slice(&src_mac);
        let (src, dst, sport, dport) = match dir {
            Dir::C2S => (f.c_ip, f.s_ip, f.c_port, f.s_port),
            Dir::S2C => (f.s_ip, f.c_ip, f.s_port, f.c_port),
        };
        let proto = if tcp.is_some() { 6u8 } else { 17u8 };
        let ttl = if dir == Dir::C2S { 64 } else { 52 };
        let ip = b.len() + 2;
        if f.v6 {
            b.extend_from_slice(&[0x86, 0xdd]);
            let fl = f.flow_label & 0x000f_ffff;
            b.extend_from_slice(&(0x6000_0000u32 | fl).to_be_bytes());
            b.extend_from_slice(&[0, 0, proto, ttl]);
            b.extend_from_slice(&src);
            b.extend_from_slice(&dst);
        } else {
            b.extend_from_slice(&[0x08, 0x00]);
            let id = match dir {
                Dir::C2S => {
                    f.c_ipid = f.c_ipid.wrapping_add(1);
                    f.c_ipid
                }
                Dir::S2C => {
                    f.s_ipid = f.s_ipid.wrapping_add(1);
                    f.s_ipid
                }
            };
            b.extend_from_slice(&[0x45, 0, 0, 0]);
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&[0x40, 0x00, ttl, proto, 0, 0]);
            b.extend_from_slice(&src[..4]);
            b.extend_from_slice(&dst[..4]);
        }
        let l4 = b.len();
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        if let Some((flags, opts)) = tcp {
            let (seq, ack) = match dir {
                Dir::C2S => (f.c_seq, f.s_seq),
                Dir::S2C => (f.s_seq, f.c_seq),
            };
            let ack = if flags & TCP_ACK != 0 { ack } else { 0 };
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(&ack.to_be_bytes());
            let doff = ((20 + opts.len()) / 4) as u8;
            let win: u16 = if flags & TCP_SYN != 0 { 64240 } else { 502 };
            b.extend_from_slice(&[doff << 4, flags]);
            b.extend_from_slice(&win.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
            b.extend_from_slice(opts);
        } else {
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        Layout {
            ip,
            l4,
            tcp: tcp.is_some(),
        }
    }

    /// Fills in lengths and checksums and the pcap record header; returns the
    /// frame length.
    fn finish(&mut self, lay: &Layout, v6: bool, ts_ns: u64) -> u32 {
        let b = &mut self.buf;
        let l4_len = b.len() - lay.l4;
        if v6 {
            b[lay.ip + 4..lay.ip + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            let total = (b.len() - lay.ip) as u16;
            b[lay.ip + 2..lay.ip + 4].copy_from_slice(&total.to_be_bytes());
            let c = fold(sum_be(&b[lay.ip..lay.ip + 20]));
            b[lay.ip + 10..lay.ip + 12].copy_from_slice(&(!c).to_be_bytes());
        }
        if !lay.tcp {
            b[lay.l4 + 4..lay.l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        // Pseudo-header sum.
        let proto: u64 = if lay.tcp { 6 } else { 17 };
        let mut sum = proto + l4_len as u64;
        sum += if v6 {
            sum_be(&b[lay.ip + 8..lay.ip + 40])
        } else {
            sum_be(&b[lay.ip + 12..lay.ip + 20])
        };
        sum += sum_be(&b[lay.l4..]);
        let mut c = !fold(sum);
        if !lay.tcp && c == 0 {
            c = 0xffff;
        }
        let off = if lay.tcp { 16 } else { 6 };
        b[lay.l4 + off..lay.l4 + off + 2].copy_from_slice(&c.to_be_bytes());
        // Ethernet minimum frame (60 bytes without FCS): pad with zeros.
        if b.len() < 16 + 60 {
            b.resize(16 + 60, 0);
        }
        let frame = (b.len() - 16) as u32;
        let secs = (ts_ns / 1_000_000_000) as u32;
        let usecs = ((ts_ns / 1000) % 1_000_000) as u32;
        b[0..4].copy_from_slice(&secs.to_le_bytes());
        b[4..8].copy_from_slice(&usecs.to_le_bytes());
        b[8..12].copy_from_slice(&frame.to_le_bytes());
        b[12..16].copy_from_slice(&frame.to_le_bytes());
        frame
    }
}

/// Ones' complement sum of big-endian 16-bit words (odd tail padded with 0).
fn sum_be(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Appends a big-endian u16 placeholder and returns its position.
fn len16(b: &mut Vec<u8>) -> usize {
    b.extend_from_slice(&[0, 0]);
    b.len() - 2
}

/// Writes the byte count from `at + 2` to the end into the u16 at `at`.
fn patch16(b: &mut [u8], at: usize) {
    let n = (b.len() - at - 2) as u16;
    b[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

/// Appends a big-endian u24 placeholder and returns its position.
fn len24(b: &mut Vec<u8>) -> usize {
    b.extend_from_slice(&[0, 0, 0]);
    b.len() - 3
}

fn patch24(b: &mut [u8], at: usize) {
    let n = (b.len() - at - 3) as u32;
    b[at..at + 3].copy_from_slice(&n.to_be_bytes()[1..]);
}

/// Appends a TLS 1.3 ClientHello handshake message (no record header).
///
/// With `quic`, the hello is the one carried in a QUIC Initial: TLS 1.3
/// suites only, ALPN `h3`, QUIC transport parameters and no padding extension.
fn client_hello_msg(b: &mut Vec<u8>, rng: &mut Rng, sni: &str, quic: bool) {
    b.push(0x01);
    let hs = len24(b);
    b.extend_from_slice(&[0x03, 0x03]);
    let mut r = [0u8; 32];
    rng.fill(&mut r);
    b.extend_from_slice(&r);
    b.push(32);
    rng.fill(&mut r);
    b.extend_from_slice(&r);
    const SUITES: &[u16] = &[
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let suites = if quic { &SUITES[..3] } else { SUITES };
    b.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b.extend_from_slice(&[0x01, 0x00]);
    let exts = len16(b);
    // server_name
    b.extend_from_slice(&[0x00, 0x00]);
    let e = len16(b);
    let l = len16(b);
    b.push(0);
    b.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    b.extend_from_slice(sni.as_bytes());
    patch16(b, l);
    patch16(b, e);
    // extended_master_secret, renegotiation_info
    b.extend_from_slice(&[0x00, 0x17, 0x00, 0x00, 0xff, 0x01, 0x00, 0x01, 0x00]);
    // supported_groups: x25519, secp256r1, secp384r1
    b.extend_from_slice(&[
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18,
    ]);
    // ec_point_formats, session_ticket
    b.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, 0x00, 0x23, 0x00, 0x00]);
    if quic {
        // ALPN: h3; quic_transport_parameters: max_idle_timeout,
        // initial_max_data 15 MiB, initial_source_connection_id (empty).
        b.extend_from_slice(&[0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02]);
        b.extend_from_slice(b"h3");
        b.extend_from_slice(&[0x00, 0x39, 0x00, 0x0c]);
        b.extend_from_slice(&[0x01, 0x02, 0x75, 0x30, 0x04, 0x04, 0x80, 0xf0, 0x00, 0x00]);
        b.extend_from_slice(&[0x0f, 0x00]);
    } else {
        // ALPN: h2, http/1.1
        b.extend_from_slice(&[0x00, 0x10, 0x00, 0x0e, 0x00, 0x0c, 0x02]);
        b.extend_from_slice(b"h2");
        b.push(8);
        b.extend_from_slice(b"http/1.1");
    }
    // status_request
    b.extend_from_slice(&[0x00, 0x05, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00]);
    // signature_algorithms
    const SIGS: &[u16] = &[
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    b.extend_from_slice(&[0x00, 0x0d]);
    b.extend_from_slice(&((SIGS.len() * 2 + 2) as u16).to_be_bytes());
    b.extend_from_slice(&((SIGS.len() * 2) as u16).to_be_bytes());
    for s in SIGS {
        b.extend_from_slice(&s.to_be_bytes());
    }
    // signed_certificate_timestamp
    b.extend_from_slice(&[0x00, 0x12, 0x00, 0x00]);
    // key_share: x25519
    b.extend_from_slice(&[0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    rng.fill(&mut r);
    b.extend_from_slice(&r);
    // psk_key_exchange_modes, supported_versions (1.3, 1.2)
    b.extend_from_slice(&[0x00, 0x2d, 0x00, 0x02, 0x01, 0x01]);
    b.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    // padding to a 512-byte handshake message, as browsers do
    let so_far = b.len() - hs + 1;
    if !quic && so_far + 4 < 512 {
        let pad = 512 - so_far - 4;
        b.extend_from_slice(&[0x00, 0x15]);
        b.extend_from_slice(&(pad as u16).to_be_bytes());
        b.resize(b.len() + pad, 0);
    }
    patch16(b, exts);
    patch24(b, hs);
}

/// Appends a TLS record header of the given type and returns the length slot.
fn record(b: &mut Vec<u8>, ty: u8, legacy_minor: u8) -> usize {
    b.extend_from_slice(&[ty, 0x03, legacy_minor]);
    len16(b)
}

/// Appends a ServerHello flight: ServerHello, ChangeCipherSpec and an
/// encrypted-looking record, about `total` bytes.
fn server_flight(bld: &mut Builder, total: usize) {
    let start = bld.buf.len();
    let b = &mut bld.buf;
    let rec = record(b, 0x16, 0x03);
    b.push(0x02);
    let hs = len24(b);
    b.extend_from_slice(&[0x03, 0x03]);
    let mut r = [0u8; 32];
    bld.rng.fill(&mut r);
    b.extend_from_slice(&r);
    b.push(32);
    bld.rng.fill(&mut r);
    b.extend_from_slice(&r);
    b.extend_from_slice(&[0x13, 0x01, 0x00]);
    let exts = len16(b);
    b.extend_from_slice(&[0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
    b.extend_from_slice(&[0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    bld.rng.fill(&mut r);
    b.extend_from_slice(&r);
    patch16(b, exts);
    patch24(b, hs);
    patch16(b, rec);
    b.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    app_record(bld, total.saturating_sub(bld.buf.len() - start).max(32));
}

/// Appends an application-data record (`17 03 03 len ...`) of `total` bytes.
fn app_record(bld: &mut Builder, total: usize) {
    let total = total.max(6);
    bld.buf.extend_from_slice(&[0x17, 0x03, 0x03]);
    bld.buf
        .extend_from_slice(&((total - 5) as u16).to_be_bytes());
    bld.random_bytes(total - 5);
}

fn dns_name(b: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        b.push(l.len() as u8);
        b.extend_from_slice(l);
    }
    b.push(0);
}

/// Appends a QUIC v1 long-header packet (Initial) of `total` bytes with a
/// random-looking protected payload.
fn quic_long(bld: &mut Builder, dcid: &[u8], scid: &[u8], pn: u32, total: usize) {
    let b = &mut bld.buf;
    let start = b.len();
    b.push(0xc3);
    b.extend_from_slice(&1u32.to_be_bytes());
    b.push(dcid.len() as u8);
    b.extend_from_slice(dcid);
    b.push(scid.len() as u8);
    b.extend_from_slice(scid);
    b.push(0x00); // token length
    let hdr = b.len() - start + 2;
    let rest = total.saturating_sub(hdr).max(24);
    b.extend_from_slice(&(0x4000u16 | rest as u16).to_be_bytes());
    b.extend_from_slice(&pn.to_be_bytes());
    bld.random_bytes(rest - 4);
}

/// QUIC v1 initial salt (RFC 9001, section 5.2).
const QUIC_V1_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// Output length for `ring::hkdf` expansion.
struct OkmLen(usize);

impl ring::hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// TLS 1.3 HKDF-Expand-Label with an empty context.
fn hkdf_expand_label(prk: &ring::hkdf::Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = (out.len() as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, OkmLen(out.len())).ok()?.fill(out).ok()
}

/// Client Initial packet protection keys: (key, iv, hp) for `dcid`.
fn quic_client_keys(dcid: &[u8]) -> Option<([u8; 16], [u8; 12], [u8; 16])> {
    use ring::hkdf::{Prk, Salt, HKDF_SHA256};
    let initial = Salt::new(HKDF_SHA256, &QUIC_V1_SALT).extract(dcid);
    let mut secret = [0u8; 32];
    hkdf_expand_label(&initial, b"client in", &mut secret)?;
    let prk = Prk::new_less_safe(HKDF_SHA256, &secret);
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    hkdf_expand_label(&prk, b"quic key", &mut key)?;
    hkdf_expand_label(&prk, b"quic iv", &mut iv)?;
    hkdf_expand_label(&prk, b"quic hp", &mut hp)?;
    Some((key, iv, hp))
}

/// Appends a protected QUIC v1 client Initial of `total` bytes whose CRYPTO
/// frame holds a ClientHello for the flow's name. Returns `false` (and
/// appends nothing) if the crypto library refuses, so the caller can fall
/// back to an unprotected-looking packet.
fn quic_initial_sealed(
    bld: &mut Builder,
    rng: &mut Rng,
    cid: &[u8; 8],
    name: &str,
    pn: u32,
    total: usize,
) -> bool {
    use ring::aead::{self, quic, Aad, LessSafeKey, Nonce, UnboundKey};
    let Some((key, iv, hp)) = quic_client_keys(cid) else {
        return false;
    };
    let start = bld.buf.len();
    // Header: long, fixed bit, Initial, 4-byte packet number.
    let mut hdr = vec![0xc3, 0, 0, 0, 1, cid.len() as u8];
    hdr.extend_from_slice(cid);
    hdr.extend_from_slice(&[0, 0]); // empty SCID, no token
    let len_at = hdr.len();
    hdr.extend_from_slice(&[0, 0]);
    let pn_at = hdr.len();
    hdr.extend_from_slice(&pn.to_be_bytes());
    let body = total.saturating_sub(hdr.len()).max(64);
    let plain_len = body - 4 - 16;
    hdr[len_at..len_at + 2].copy_from_slice(&(0x4000u16 | (body as u16)).to_be_bytes());
    // Plaintext: CRYPTO frame with the ClientHello, then PADDING.
    let p = &mut bld.scratch;
    p.clear();
    p.push(0x06);
    p.push(0x00);
    let clen = len16(p);
    client_hello_msg(p, rng, name, true);
    let n = (p.len() - clen - 2) as u16;
    p[clen..clen + 2].copy_from_slice(&(0x4000 | n).to_be_bytes());
    if p.len() > plain_len {
        return false;
    }
    p.resize(plain_len, 0);
    let mut nonce = iv;
    for (d, s) in nonce[8..].iter_mut().zip(pn.to_be_bytes()) {
        *d ^= s;
    }
    let Ok(unbound) = UnboundKey::new(&aead::AES_128_GCM, &key) else {
        return false;
    };
    let sealing = LessSafeKey::new(unbound);
    let nonce = Nonce::assume_unique_for_key(nonce);
    let Ok(tag) = sealing.seal_in_place_separate_tag(nonce, Aad::from(&hdr[..]), p) else {
        return false;
    };
    p.extend_from_slice(tag.as_ref());
    // Header protection: sample 16 bytes starting 4 bytes after the packet
    // number field, i.e. at the start of the ciphertext for a 4-byte number.
    let Ok(hpk) = quic::HeaderProtectionKey::new(&quic::AES_128, &hp) else {
        return false;
    };
    let Ok(mask) = hpk.new_mask(&p[..16]) else {
        return false;
    };
    hdr[0] ^= mask[0] & 0x0f;
    for (d, m) in hdr[pn_at..pn_at + 4].iter_mut().zip(&mask[1..5]) {
        *d ^= m;
    }
    bld.buf.extend_from_slice(&hdr);
    bld.buf.extend_from_slice(p);
    // The length field counts the packet number, the payload and the tag; `hdr` holds the
    // packet number already.
    debug_assert_eq!(bld.buf.len() - start, hdr.len() + body - 4);
    true
}

/// Appends a QUIC short-header packet of `total` bytes.
fn quic_short(bld: &mut Builder, dcid: &[u8], total: usize) {
    let first = 0x40 | (bld.rng.below(64) as u8);
    bld.buf.push(first);
    bld.buf.extend_from_slice(dcid);
    bld.random_bytes(total.saturating_sub(1 + dcid.len()).max(20));
}

/// Appends the first client payload of a raw TCP/UDP flow to `port`.
fn raw_hello(bld: &mut Builder, port: u16) {
    let b = &mut bld.buf;
    match port {
        3389 => {
            // TPKT + X.224 Connection Request with an mstshash cookie.
            let cookie = b"Cookie: mstshash=user\r\n";
            let len = 4 + 7 + cookie.len() + 8;
            b.extend_from_slice(&[0x03, 0x00]);
            b.extend_from_slice(&(len as u16).to_be_bytes());
            b.extend_from_slice(&[(len - 5) as u8, 0xe0, 0, 0, 0, 0, 0]);
            b.extend_from_slice(cookie);
            b.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x0b, 0x00, 0x00, 0x00]);
        }
        5900 => b.extend_from_slice(b"RFB 003.008\n"),
        22 => b.extend_from_slice(b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"),
        5938 => {
            b.extend_from_slice(&[0x17, 0x24, 0x0a, 0x20]);
            bld.random_bytes(24);
        }
        25 | 587 => b.extend_from_slice(b"EHLO mail.example-1.com\r\n"),
        _ => {
            let n = bld.rng.range(24, 120) as usize;
            bld.random_bytes(n);
        }
    }
}

fn raw_reply(bld: &mut Builder, port: u16) {
    let b = &mut bld.buf;
    match port {
        3389 => b.extend_from_slice(&[
            0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0x1f, 0x08, 0, 0x02, 0,
            0, 0,
        ]),
        5900 => b.extend_from_slice(b"RFB 003.008\n"),
        22 => b.extend_from_slice(b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"),
        5938 => {
            b.extend_from_slice(&[0x17, 0x24, 0x0b, 0x30]);
            bld.random_bytes(40);
        }
        25 | 587 => b.extend_from_slice(b"250-mx.example-2.com Hello\r\n250 STARTTLS\r\n"),
        _ => {
            let n = bld.rng.range(24, 400) as usize;
            bld.random_bytes(n);
        }
    }
}

const SYN_OPTS: [u8; 20] = [
    0x02, 0x04, 0x05, 0xb4, // MSS 1460
    0x04, 0x02, // SACK permitted
    0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0,    // timestamps
    0x01, // NOP
    0x03, 0x03, 0x07, // window scale 7
];

/// Builds the flow's current step into `bld.buf`; returns the frame length.
fn build(bld: &mut Builder, f: &mut Flow) -> u32 {
    let step = f.step;
    let dir = step.dir();
    let lay = if f.proto.is_tcp() {
        let (flags, opts): (u8, &[u8]) = match step {
            Step::Syn => (TCP_SYN, &SYN_OPTS),
            Step::SynAck => (TCP_SYN | TCP_ACK, &SYN_OPTS),
            Step::Fin(_) => (TCP_FIN | TCP_ACK, &[]),
            Step::HsAck | Step::Ack(_) | Step::LastAck => (TCP_ACK, &[]),
            _ => (TCP_PSH | TCP_ACK, &[]),
        };
        bld.begin(f, dir, Some((flags, opts)))
    } else {
        bld.begin(f, dir, None)
    };
    let payload_start = bld.buf.len();
    let mss = f.max_tcp_payload() as usize;
    let udp_max = f.max_udp_payload() as usize;
    match (f.proto, step) {
        (Proto::Tls, Step::Hello) => {
            let rec = record(&mut bld.buf, 0x16, 0x01);
            client_hello_msg(&mut bld.buf, &mut f.rng, &f.name, false);
            patch16(&mut bld.buf, rec);
        }
        (Proto::Tls, Step::HelloReply) => {
            let total = f.rng.range(900, mss as u64) as usize;
            server_flight(bld, total);
        }
        (Proto::Tls, Step::Request(n)) | (Proto::Tls, Step::Segment(n)) => {
            app_record(bld, usize::from(n))
        }
        (Proto::Http, Step::Hello) | (Proto::Http, Step::Request(_)) => {
            let ua = USER_AGENTS[f.rng.below(USER_AGENTS.len() as u64) as usize];
            let path = f.rng.below(1_000_000);
            let req = format!(
                "GET /assets/{path:x}.js HTTP/1.1\r\nHost: {}\r\nUser-Agent: {ua}\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n",
                f.name
            );
            bld.buf.extend_from_slice(req.as_bytes());
        }
        (Proto::Http, Step::HelloReply) => {
            let body = f.rng.range(200, 1200) as usize;
            let head = format!(
                "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                body + f.data_left as usize * mss
            );
            bld.buf.extend_from_slice(head.as_bytes());
            bld.random_bytes(body.min(mss - head.len()));
        }
        (Proto::Dns, Step::Hello) | (Proto::Dns, Step::HelloReply) => {
            let b = &mut bld.buf;
            b.extend_from_slice(&f.dns_id.to_be_bytes());
            let reply = step == Step::HelloReply;
            b.extend_from_slice(if reply { &[0x81, 0x80] } else { &[0x01, 0x00] });
            b.extend_from_slice(&[0, 1, 0, u8::from(reply), 0, 0, 0, 0]);
            dns_name(b, &f.name);
            b.extend_from_slice(&[0, 1, 0, 1]);
            if reply {
                let a = server_addr(f.name.as_bytes(), false);
                let ttl = 60 + (f.dns_id as u32 % 3540);
                b.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
                b.extend_from_slice(&ttl.to_be_bytes());
                b.extend_from_slice(&[0, 4]);
                b.extend_from_slice(&a[..4]);
            }
        }
        (Proto::Quic, Step::Hello) => {
            let total = 1250.min(udp_max);
            let pn = f.quic_pn[0];
            let sealed =
                bld.quic_crypto && quic_initial_sealed(bld, &mut f.rng, &f.cid, &f.name, pn, total);
            if !sealed {
                quic_long(bld, &f.cid, &[], pn, total);
            }
        }
        (Proto::Quic, Step::HelloReply) => {
            let total = f.rng.range(1200, udp_max as u64) as usize;
            let mut scid = f.cid;
            scid.reverse();
            let pn = f.quic_pn[1];
            quic_long(bld, &[], &scid, pn, total);
        }
        (Proto::Quic, Step::Request(n)) => {
            let mut dcid = f.cid;
            dcid.reverse();
            quic_short(bld, &dcid, usize::from(n) + 20);
        }
        (Proto::Quic, Step::Segment(n)) => quic_short(bld, &[], usize::from(n) + 20),
        (Proto::Quic, Step::Ack(_)) => {
            let mut dcid = f.cid;
            dcid.reverse();
            quic_short(bld, &dcid, 40);
        }
        (Proto::TcpRaw, Step::Hello) | (Proto::UdpRaw, Step::Hello) => raw_hello(bld, f.s_port),
        (Proto::TcpRaw, Step::HelloReply) | (Proto::UdpRaw, Step::HelloReply) => {
            raw_reply(bld, f.s_port)
        }
        (Proto::TcpRaw, Step::Request(n))
        | (Proto::TcpRaw, Step::Segment(n))
        | (Proto::UdpRaw, Step::Request(n))
        | (Proto::UdpRaw, Step::Segment(n)) => bld.random_bytes(usize::from(n)),
        (Proto::Http, Step::Segment(n)) => bld.random_bytes(usize::from(n)),
        (Proto::UdpRaw, Step::Ack(_)) => bld.random_bytes(16),
        _ => {}
    }
    // Keep every frame within 1514 bytes.
    let limit = 16 + 1514;
    if bld.buf.len() > limit {
        bld.buf.truncate(limit);
    }
    let payload = (bld.buf.len() - payload_start) as u32;
    if f.proto.is_tcp() {
        let adv = payload + u32::from(matches!(step, Step::Syn | Step::SynAck | Step::Fin(_)));
        match dir {
            Dir::C2S => f.c_seq = f.c_seq.wrapping_add(adv),
            Dir::S2C => f.s_seq = f.s_seq.wrapping_add(adv),
        }
    } else if f.proto == Proto::Quic {
        let i = usize::from(dir == Dir::S2C);
        f.quic_pn[i] = f.quic_pn[i].wrapping_add(1);
    }
    let ts = EPOCH_NS + f.next_ts;
    bld.finish(&lay, f.v6, ts)
}

// ---------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------

/// Picks the protocol and identity of a new flow.
struct FlowPlan {
    proto: Proto,
    name: String,
    port: u16,
    rmm: bool,
}

fn plan_flow(rng: &mut Rng, cfg: &GenConfig) -> FlowPlan {
    if !cfg.rmm.is_empty() && rng.chance(cfg.rmm_share) {
        let s = &cfg.rmm[rng.below(cfg.rmm.len() as u64) as usize];
        let (proto, name, port) = match &s.kind {
            SampleKind::TlsSni(n) => (Proto::Tls, n.clone(), 443),
            SampleKind::QuicSni(n) => (Proto::Quic, n.clone(), 443),
            SampleKind::DnsQuery(n) => (Proto::Dns, n.clone(), 53),
            SampleKind::HttpHost(n) => (Proto::Http, n.clone(), 80),
            SampleKind::TcpPort(p) => (Proto::TcpRaw, String::new(), *p),
            SampleKind::UdpPort(p) => (Proto::UdpRaw, String::new(), *p),
        };
        return FlowPlan {
            proto,
            name,
            port,
            rmm: true,
        };
    }
    let r = rng.f64();
    let (proto, port) = if r < 0.38 {
        (Proto::Dns, 53)
    } else if r < 0.76 {
        (Proto::Tls, 443)
    } else if r < 0.86 {
        (Proto::Quic, 443)
    } else if r < 0.92 {
        (Proto::Http, 80)
    } else if r < 0.97 {
        let p = BENIGN_TCP_PORTS[rng.below(BENIGN_TCP_PORTS.len() as u64) as usize];
        (Proto::TcpRaw, p)
    } else {
        let p = BENIGN_UDP_PORTS[rng.below(BENIGN_UDP_PORTS.len() as u64) as usize];
        (Proto::UdpRaw, p)
    };
    let name = match proto {
        Proto::TcpRaw | Proto::UdpRaw => String::new(),
        _ => benign_name(rng),
    };
    FlowPlan {
        proto,
        name,
        port,
        rmm: false,
    }
}

/// Mean overhead packets per flow of the benign mix (used to size data phases).
const MEAN_OVERHEAD: f64 = 0.38 * 2.0 + 0.38 * 8.0 + 0.10 * 2.0 + 0.06 * 8.0 + 0.05 * 8.0 + 0.03;

struct Scheduler<'a> {
    cfg: &'a GenConfig,
    rng: Rng,
    flows: u64,
    started: u64,
    committed: u64,
    next_start: u64,
    mean_interarrival: f64,
    horizon: u64,
    cap: f64,
}

impl Scheduler<'_> {
    /// Creates the next flow, sized from what is left of the packet budget.
    fn start_flow(&mut self) -> Option<(Flow, bool)> {
        let remaining = self.cfg.packets.saturating_sub(self.committed);
        let flows_left = self.flows - self.started;
        if flows_left == 0 || remaining == 0 {
            return None;
        }
        let id = self.started;
        let mut rng = Rng::new(self.cfg.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let mut plan = plan_flow(&mut rng, self.cfg);
        let reserve = 2 * (flows_left - 1);
        let avail = remaining.saturating_sub(reserve).max(1);
        let last = flows_left == 1;
        if last && !plan.proto.has_data() && avail > 2 {
            plan = FlowPlan {
                proto: Proto::Tls,
                name: benign_name(&mut rng),
                port: 443,
                rmm: false,
            };
        }
        if plan.proto.overhead() > avail {
            plan = if avail >= 2 && !last {
                FlowPlan {
                    proto: Proto::Dns,
                    name: benign_name(&mut rng),
                    port: 53,
                    rmm: false,
                }
            } else {
                FlowPlan {
                    proto: Proto::UdpRaw,
                    name: String::new(),
                    port: 123,
                    rmm: false,
                }
            };
        }
        let overhead = plan.proto.overhead();
        let max_data = avail - overhead;
        let data = if !plan.proto.has_data() {
            0
        } else if last {
            max_data
        } else {
            let per_flow = remaining as f64 / flows_left as f64;
            let xm = pareto_scale_for_mean(per_flow - MEAN_OVERHEAD, self.cap);
            let u = 1.0 - rng.f64();
            let x = (xm / u.powf(1.0 / PARETO_ALPHA)).min(self.cap);
            (x as u64).min(max_data)
        };
        self.committed += overhead + data;
        self.started += 1;

        let v6 = rng.chance(self.cfg.ipv6_share);
        let host = rng.below(CLIENT_HOSTS);
        let c_ip = client_addr(host, v6);
        let s_ip = match plan.proto {
            Proto::Dns => {
                let mut a = [0u8; 16];
                if v6 {
                    a = RESOLVER_V6;
                } else {
                    a[..4].copy_from_slice(&RESOLVER_V4);
                }
                a
            }
            Proto::TcpRaw | Proto::UdpRaw if plan.rmm => server_addr(
                &[b"rmm-port".as_slice(), &plan.port.to_be_bytes()].concat(),
                v6,
            ),
            Proto::TcpRaw | Proto::UdpRaw => server_addr(&rng.u64().to_le_bytes(), v6),
            _ => server_addr(plan.name.as_bytes(), v6),
        };
        let mut c_mac = [0x02, 0x42, 0, 0, 0, 0];
        c_mac[2..].copy_from_slice(&(host as u32).to_be_bytes());
        let profile = match plan.proto {
            Proto::TcpRaw | Proto::UdpRaw => Profile::Interactive,
            Proto::Tls if plan.rmm => Profile::Interactive,
            _ if rng.chance(0.3) => Profile::Interactive,
            _ => Profile::Bulk,
        };
        let (glo, ghi) = match profile {
            Profile::Bulk => (5e3, 300e3),
            Profile::Interactive => (200e3, 20e6),
        };
        let mut gap = rng.log_uniform(glo, ghi);
        let mut rtt = rng.log_uniform(1e6, 80e6);
        let start = self.next_start;
        let window = self.horizon.saturating_sub(start).max(1_000_000) as f64;
        let est = 3.0 * rtt + data as f64 * (gap + rtt / 3.0);
        if est > window {
            let k = window / est;
            gap *= k;
            rtt *= k;
        }
        let mut cid = [0u8; 8];
        rng.fill(&mut cid);
        let flow = Flow {
            id,
            proto: plan.proto,
            profile,
            name: plan.name,
            v6,
            c_ip,
            s_ip,
            c_port: rng.range(32768, 60999) as u16,
            s_port: plan.port,
            c_mac,
            c_seq: rng.u32(),
            s_seq: rng.u32(),
            c_ipid: rng.below(65536) as u16,
            s_ipid: rng.below(65536) as u16,
            flow_label: rng.u32(),
            quic_pn: [0, 0],
            cid,
            step: if plan.proto.is_tcp() {
                Step::Syn
            } else {
                Step::Hello
            },
            data_left: data,
            burst_left: 0,
            since_ack: 0,
            next_ts: start,
            gap_ns: (gap as u64).max(1_000),
            rtt_ns: (rtt as u64).max(2_000),
            dns_id: rng.below(65536) as u16,
            rng,
        };
        // Next arrival: exponential inter-arrival times.
        let u = 1.0 - self.rng.f64();
        self.next_start += (-u.ln() * self.mean_interarrival) as u64;
        Some((flow, plan.rmm))
    }
}

/// Writes the pcap global header.
fn write_global_header(w: &mut dyn Write) -> io::Result<()> {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&65535u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    w.write_all(&h)
}

/// Write a classic pcap (little-endian, microsecond, LINKTYPE_ETHERNET) to `w`.
///
/// Streaming: memory stays proportional to the number of concurrently active
/// flows. The file holds exactly `cfg.packets` packets and `cfg.flows` flows
/// when `cfg.packets >= 2 * cfg.flows`; with fewer packets, the flow count is
/// lowered to `cfg.packets / 2` (at least one). Timestamps start at
/// 2023-11-14T22:13:20Z and advance at about one million packets per second.
pub fn generate(cfg: &GenConfig, w: &mut dyn Write) -> io::Result<GenStats> {
    generate_with(cfg, &GenOptions::default(), w)
}

/// [`generate`] with [`GenOptions`].
pub fn generate_with(
    cfg: &GenConfig,
    opts: &GenOptions,
    w: &mut dyn Write,
) -> io::Result<GenStats> {
    let mut out = BufWriter::with_capacity(1 << 20, w);
    write_global_header(&mut out)?;
    let mut stats = GenStats::default();
    if cfg.packets == 0 || cfg.flows == 0 {
        out.flush()?;
        return Ok(stats);
    }
    let flows = cfg.flows.min((cfg.packets / 2).max(1));
    let mut rng = Rng::new(cfg.seed);
    let mut bld = Builder::new(&mut rng);
    bld.quic_crypto = opts.quic_encrypted_initial;
    // One microsecond per packet on average: about 1 Mpps.
    let horizon = cfg.packets.saturating_mul(1_000);
    let mut sched = Scheduler {
        cfg,
        rng: Rng::new(rng.u64()),
        flows,
        started: 0,
        committed: 0,
        next_start: 0,
        mean_interarrival: 0.9 * horizon as f64 / flows as f64,
        horizon,
        cap: (cfg.packets as f64 / 10.0).clamp(64.0, 1_000_000.0),
    };
    let mut slots: Vec<Option<Flow>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    loop {
        let next_event = heap.peek().map(|Reverse((ts, _, _))| *ts);
        let start_now = sched.started < flows
            && sched.committed < cfg.packets
            && match next_event {
                None => true,
                Some(ts) => sched.next_start <= ts,
            };
        if start_now {
            if let Some((flow, rmm)) = sched.start_flow() {
                stats.flows += 1;
                stats.rmm_flows += u64::from(rmm);
                let key = (flow.next_ts, flow.id);
                let slot = match free.pop() {
                    Some(i) => {
                        slots[i] = Some(flow);
                        i
                    }
                    None => {
                        slots.push(Some(flow));
                        slots.len() - 1
                    }
                };
                heap.push(Reverse((key.0, key.1, slot)));
                continue;
            }
        }
        let Some(Reverse((_, _, slot))) = heap.pop() else {
            break;
        };
        let Some(f) = slots.get_mut(slot).and_then(Option::as_mut) else {
            continue;
        };
        let frame = build(&mut bld, f);
        out.write_all(&bld.buf)?;
        stats.packets += 1;
        stats.bytes += u64::from(frame);
        let prev = f.step;
        f.advance();
        if f.step == Step::Done {
            slots[slot] = None;
            free.push(slot);
        } else {
            let gap = f.gap_before(prev);
            f.next_ts += gap;
            heap.push(Reverse((f.next_ts, f.id, slot)));
        }
        if stats.packets >= cfg.packets {
            break;
        }
    }
    out.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// One decoded packet of a written capture.
    struct Pkt {
        ts_us: u64,
        frame: Vec<u8>,
    }

    /// Minimal classic-pcap reader for the tests.
    fn read_pcap(data: &[u8]) -> Vec<Pkt> {
        assert_eq!(&data[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes([data[20], data[21], data[22], data[23]]),
            1
        );
        let mut out = Vec::new();
        let mut off = 24;
        while off + 16 <= data.len() {
            let u = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            let (sec, usec, incl, orig) = (u(off), u(off + 4), u(off + 8), u(off + 12));
            assert_eq!(incl, orig);
            assert!(usec < 1_000_000);
            let start = off + 16;
            let end = start + incl as usize;
            assert!(end <= data.len(), "truncated record");
            out.push(Pkt {
                ts_us: u64::from(sec) * 1_000_000 + u64::from(usec),
                frame: data[start..end].to_vec(),
            });
            off = end;
        }
        assert_eq!(off, data.len());
        out
    }

    /// Canonical flow key (sorted endpoints) and a few header facts.
    struct Parsed {
        key: (Vec<u8>, u16, Vec<u8>, u16, u8),
        src: Vec<u8>,
        dst: Vec<u8>,
        v6: bool,
        proto: u8,
        tcp_flags: u8,
        payload: Vec<u8>,
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        checksum_ok: bool,
    }

    fn parse(frame: &[u8]) -> Parsed {
        let et = u16::from_be_bytes([frame[12], frame[13]]);
        let ip = &frame[14..];
        let (v6, proto, src, dst, l4, pseudo) = if et == 0x86dd {
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            assert!(plen + 40 <= ip.len());
            assert!(ip[40 + plen..].iter().all(|&b| b == 0), "padding");
            let l4 = &ip[40..40 + plen];
            let pseudo = sum_be(&ip[8..40]) + u64::from(ip[6]) + l4.len() as u64;
            (
                true,
                ip[6],
                ip[8..24].to_vec(),
                ip[24..40].to_vec(),
                l4,
                pseudo,
            )
        } else {
            assert_eq!(et, 0x0800);
            assert_eq!(fold(sum_be(&ip[..20])), 0xffff, "ipv4 header checksum");
            let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert!(tot <= ip.len());
            assert!(ip[tot..].iter().all(|&b| b == 0), "padding");
            let l4 = &ip[20..tot];
            let pseudo = sum_be(&ip[12..20]) + u64::from(ip[9]) + l4.len() as u64;
            (
                false,
                ip[9],
                ip[12..16].to_vec(),
                ip[16..20].to_vec(),
                l4,
                pseudo,
            )
        };
        let checksum_ok = fold(pseudo + sum_be(l4)) == 0xffff;
        let sp = u16::from_be_bytes([l4[0], l4[1]]);
        let dp = u16::from_be_bytes([l4[2], l4[3]]);
        let (hl, flags, seq, ack) = if proto == 6 {
            let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
            let ack = u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]);
            (usize::from(l4[12] >> 4) * 4, l4[13], seq, ack)
        } else {
            assert_eq!(usize::from(u16::from_be_bytes([l4[4], l4[5]])), l4.len());
            (8, 0, 0, 0)
        };
        let a = (src.clone(), sp);
        let b = (dst.clone(), dp);

        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Parsed {
            key: (lo.0, lo.1, hi.0, hi.1, proto),
            src,
            dst,
            v6,
            proto,
            tcp_flags: flags,
            payload: l4[hl..].to_vec(),
            src_port: sp,
            dst_port: dp,
            seq,
            ack,
            checksum_ok,
        }
    }

    fn run(cfg: &GenConfig) -> (Vec<u8>, GenStats) {
        let mut buf = Vec::new();
        let stats = generate(cfg, &mut buf).expect("generate");
        (buf, stats)
    }

    fn cfg(seed: u64, packets: u64, flows: u64) -> GenConfig {
        GenConfig {
            seed,
            packets,
            flows,
            rmm_share: 0.1,
            ipv6_share: 0.25,
            rmm: default_rmm_samples(),
        }
    }

    /// Extracts the SNI of a TLS ClientHello record, if any.
    fn sni_of(p: &[u8]) -> Option<String> {
        let u8_at = |i: usize| p.get(i).copied().map(usize::from);
        let u16_at = |i: usize| Some(u8_at(i)? << 8 | u8_at(i + 1)?);
        if p.first() != Some(&0x16) || p.get(5) != Some(&0x01) {
            return None;
        }
        let mut i = 9 + 2 + 32;
        i += 1 + u8_at(i)?;
        i += 2 + u16_at(i)?;
        i += 1 + u8_at(i)?;
        let end = i + 2 + u16_at(i)?;
        i += 2;
        while i + 4 <= end {
            let (ty, len) = (u16_at(i)?, u16_at(i + 2)?);
            if ty == 0 {
                let n = u16_at(i + 7)?;
                let name = p.get(i + 9..i + 9 + n)?;
                return Some(String::from_utf8_lossy(name).into_owned());
            }
            i += 4 + len;
        }
        None
    }

    #[test]
    fn same_seed_same_bytes() {
        let c = cfg(7, 50_000, 1_000);
        let (a, sa) = run(&c);
        let (b, sb) = run(&c);
        assert_eq!(sa, sb);
        assert_eq!(fnv1a(&a), fnv1a(&b));
        assert_eq!(a, b);
        let (d, _) = run(&cfg(8, 50_000, 1_000));
        assert_ne!(fnv1a(&a), fnv1a(&d));
    }

    #[test]
    fn counts_shares_and_sizes() {
        let c = cfg(3, 200_000, 4_000);
        let (data, stats) = run(&c);
        let pkts = read_pcap(&data);
        assert_eq!(pkts.len() as u64, stats.packets);
        assert_eq!(stats.packets, c.packets);
        assert_eq!(stats.flows, c.flows);
        let mut flows: HashMap<_, bool> = HashMap::new();
        let mut bytes = 0u64;
        let mut last_ts = 0;
        for p in &pkts {
            assert!(p.ts_us >= last_ts, "timestamps go back");
            last_ts = p.ts_us;
            assert!(
                (60..=1514).contains(&p.frame.len()),
                "size {}",
                p.frame.len()
            );
            bytes += p.frame.len() as u64;
            let q = parse(&p.frame);
            assert!(q.checksum_ok, "l4 checksum");
            flows.entry(q.key).or_insert(q.v6);
        }
        assert_eq!(bytes, stats.bytes);
        // Distinct 5-tuples: ports may rarely collide, so allow a little slack.
        let n = flows.len() as f64;
        assert!(
            (n - c.flows as f64).abs() / (c.flows as f64) < 0.01,
            "flows {n}"
        );
        let v6 = flows.values().filter(|v| **v).count() as f64 / n;
        assert!((v6 - c.ipv6_share).abs() < 0.03, "ipv6 share {v6}");
        let rmm = stats.rmm_flows as f64 / stats.flows as f64;
        assert!((rmm - c.rmm_share).abs() < 0.02, "rmm share {rmm}");
        let avg = bytes as f64 / pkts.len() as f64;
        assert!((350.0..=800.0).contains(&avg), "average size {avg}");
        // Duration near 1 Mpps.
        let secs = (last_ts - pkts[0].ts_us) as f64 / 1e6;
        assert!(secs > 0.05 && secs < 2.0, "duration {secs}");
    }

    #[test]
    fn tcp_handshake_and_sequence_numbers() {
        let (data, _) = run(&cfg(11, 30_000, 600));
        // Per directed (src port, dst port) the next expected seq.
        type DirKey = (Vec<u8>, Vec<u8>, u16, u16);
        let mut next_seq: HashMap<DirKey, u32> = HashMap::new();
        let mut syns = 0;
        let mut fins = 0;
        for p in read_pcap(&data) {
            let q = parse(&p.frame);
            if q.proto != 6 {
                continue;
            }
            let dirkey = (q.src.clone(), q.dst.clone(), q.src_port, q.dst_port);
            let rev = (q.dst.clone(), q.src.clone(), q.dst_port, q.src_port);
            let adv = q.payload.len() as u32 + u32::from(q.tcp_flags & (TCP_SYN | TCP_FIN) != 0);
            if q.tcp_flags & TCP_SYN != 0 {
                syns += u32::from(q.tcp_flags == TCP_SYN);
                assert!(!next_seq.contains_key(&dirkey), "5-tuple reused");
            } else {
                let exp = next_seq.get(&dirkey).copied().expect("packet before SYN");
                assert_eq!(q.seq, exp, "sequence gap");
                if let Some(r) = next_seq.get(&rev) {
                    assert_eq!(q.ack, *r, "ack is not the peer's next seq");
                }
            }
            if q.tcp_flags & TCP_FIN != 0 {
                fins += 1;
            }
            if q.tcp_flags & TCP_ACK != 0 && q.tcp_flags & TCP_SYN == 0 {
                assert!(next_seq.contains_key(&rev), "ack before the peer spoke");
            }
            next_seq.insert(dirkey, q.seq.wrapping_add(adv));
        }
        assert!(syns > 100);
        // Every flow closes with a FIN from each side, except flows cut at the end.
        assert!(fins + 40 >= 2 * syns, "{fins} fins for {syns} syns");
    }

    #[test]
    fn payloads_look_right() {
        let c = GenConfig {
            rmm_share: 0.5,
            ..cfg(5, 60_000, 2_000)
        };
        let (data, _) = run(&c);
        let mut snis = HashSet::new();
        let (mut quic, mut dns, mut http) = (0, 0, 0);
        for p in read_pcap(&data) {
            let q = parse(&p.frame);
            if let Some(s) = sni_of(&q.payload) {
                assert!(q.payload.windows(2).any(|w| w == b"h2"));
                snis.insert(s);
            }
            if q.proto == 17 && q.dst_port == 443 && q.payload[0] & 0xc0 == 0xc0 {
                assert_eq!(&q.payload[1..5], &[0, 0, 0, 1]);
                assert!(q.payload.len() >= 1200);
                quic += 1;
            }
            if q.proto == 17 && q.src_port == 53 {
                assert_eq!(u16::from_be_bytes([q.payload[6], q.payload[7]]), 1);
                dns += 1;
            }
            if q.payload.starts_with(b"GET ") {
                let text = String::from_utf8_lossy(&q.payload);
                assert!(text.contains("\r\nHost: ") && text.contains("\r\nUser-Agent: "));
                http += 1;
            }
        }
        assert!(snis.contains("relay.teamviewer.com"));
        assert!(snis.iter().any(|s| s.contains("example-")));
        assert!(quic > 10 && dns > 100 && http > 10, "{quic} {dns} {http}");
    }

    #[test]
    fn edge_cases_do_not_panic() {
        for (p, f) in [(0, 10), (1, 1), (3, 10), (10, 0), (17, 5), (1000, 1)] {
            let (data, stats) = run(&GenConfig {
                rmm: Vec::new(),
                ..cfg(1, p, f)
            });
            assert_eq!(read_pcap(&data).len() as u64, stats.packets);
            if f > 0 && p > 0 {
                assert_eq!(stats.packets, p);
            }
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn quic_keys_match_rfc9001_appendix_a() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let (key, iv, hp) = quic_client_keys(&dcid).expect("keys");
        assert_eq!(hex(&key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex(&iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex(&hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    /// Removes header protection and decrypts a client Initial with a
    /// 8-byte DCID, empty SCID and no token; returns the plaintext.
    fn open_initial(pkt: &[u8]) -> Option<Vec<u8>> {
        use ring::aead::{self, quic, Aad, LessSafeKey, Nonce, UnboundKey};
        let dcid = pkt.get(6..14)?;
        let (key, iv, hp) = quic_client_keys(dcid)?;
        let len = usize::from(u16::from_be_bytes([*pkt.get(16)?, *pkt.get(17)?]) & 0x3fff);
        let pn_at = 18;
        let hpk = quic::HeaderProtectionKey::new(&quic::AES_128, &hp).ok()?;
        let mask = hpk.new_mask(pkt.get(pn_at + 4..pn_at + 20)?).ok()?;
        let mut hdr = pkt[..pn_at].to_vec();
        hdr[0] ^= mask[0] & 0x0f;
        let pn_len = usize::from(hdr[0] & 0x03) + 1;
        let mut pn = 0u32;
        for i in 0..pn_len {
            let b = pkt[pn_at + i] ^ mask[1 + i];
            hdr.push(b);
            pn = pn << 8 | u32::from(b);
        }
        let mut nonce = iv;
        for (d, s) in nonce[8..].iter_mut().zip(pn.to_be_bytes()) {
            *d ^= s;
        }
        let k = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &key).ok()?);
        let mut ct = pkt.get(pn_at + pn_len..pn_at + len)?.to_vec();
        let plain = k
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&hdr[..]),
                &mut ct,
            )
            .ok()?;
        Some(plain.to_vec())
    }

    #[test]
    fn encrypted_quic_initial_decrypts_to_client_hello() {
        let c = GenConfig {
            rmm_share: 0.5,
            ..cfg(9, 40_000, 1_500)
        };
        let mut data = Vec::new();
        let opts = GenOptions {
            quic_encrypted_initial: true,
        };
        generate_with(&c, &opts, &mut data).expect("generate");
        let mut names = HashSet::new();
        for p in read_pcap(&data) {
            let q = parse(&p.frame);
            if q.proto == 17 && q.dst_port == 443 && q.payload[0] & 0xc0 == 0xc0 {
                assert!(q.payload.len() >= 1200);
                let plain = open_initial(&q.payload).expect("decrypts");
                assert_eq!(plain[0], 0x06, "CRYPTO frame first");
                // Wrap the handshake message in a record header for sni_of.
                let n = usize::from(u16::from_be_bytes([plain[2], plain[3]]) & 0x3fff);
                let mut rec = vec![0x16, 0x03, 0x01];
                rec.extend_from_slice(&(n as u16).to_be_bytes());
                rec.extend_from_slice(&plain[4..4 + n]);
                names.insert(sni_of(&rec).expect("sni"));
            }
        }
        assert!(names.contains("relay.teamviewer.com"), "{names:?}");
        assert!(names.len() > 5);
    }

    #[test]
    fn pareto_scale_matches_target() {
        for target in [0.5, 5.0, 50.0, 500.0] {
            let xm = pareto_scale_for_mean(target, 10_000.0);
            let m = capped_pareto_mean(xm, 10_000.0);
            assert!((m - target).abs() / target < 1e-6);
        }
    }
}
