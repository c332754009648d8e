//! Inspectors: what a flow's first packets say about the application behind it.
//!
//! Each inspector is a dissector for one protocol (in the manner of nDPI's per-protocol
//! dissectors): TLS ClientHello and server certificate ([`tls`]), QUIC Initial ([`quic`]), DNS
//! ([`dns`]), HTTP/1.x ([`http`]), and byte-level fingerprints that hold on any port
//! ([`fingerprint`]). Ports and addresses are looked up once when a flow starts.
//!
//! Only flows that are still undecided reach this module, and only for their first packets (the
//! inspection budget). The state needed for inspection (stream reassembly buffers, the QUIC
//! crypto stream) lives in a bounded pool of [`InspectState`] slots, allocated once and reused.

pub mod dns;
pub mod fingerprint;
pub mod http;
pub mod ja4;
pub mod quic;
pub mod tls;

use crate::catalog::matcher::Hit;
use crate::flow::reassembly::StreamPrefix;

/// How a tool was recognised. The numbering is stable (it is stored in flows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Method {
    /// A catalogued port.
    Port = 0,
    /// TLS server name.
    TlsSni = 1,
    /// TLS ALPN.
    TlsAlpn = 2,
    /// TLS server certificate.
    TlsCert = 3,
    /// QUIC server name.
    QuicSni = 4,
    /// DNS question (or CNAME chain).
    DnsQuery = 5,
    /// An address learned from a DNS answer for a catalogued name.
    DnsLearnedIp = 6,
    /// HTTP Host.
    HttpHost = 7,
    /// HTTP User-Agent.
    HttpUserAgent = 8,
    /// HTTP request URI.
    HttpUri = 9,
    /// A protocol fingerprint.
    Fingerprint = 10,
    /// A catalogued address block.
    Ip = 11,
    /// A JA4 TLS client fingerprint.
    Ja4 = 12,
}

impl Method {
    /// All methods, by number.
    pub const ALL: [Method; 13] = [
        Method::Port,
        Method::TlsSni,
        Method::TlsAlpn,
        Method::TlsCert,
        Method::QuicSni,
        Method::DnsQuery,
        Method::DnsLearnedIp,
        Method::HttpHost,
        Method::HttpUserAgent,
        Method::HttpUri,
        Method::Fingerprint,
        Method::Ip,
        Method::Ja4,
    ];
    /// Event spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Port => "port",
            Method::TlsSni => "tls_sni",
            Method::TlsAlpn => "tls_alpn",
            Method::TlsCert => "tls_cert",
            Method::QuicSni => "quic_sni",
            Method::DnsQuery => "dns_query",
            Method::DnsLearnedIp => "dns_learned_ip",
            Method::HttpHost => "http_host",
            Method::HttpUserAgent => "http_user_agent",
            Method::HttpUri => "http_uri",
            Method::Fingerprint => "fingerprint",
            Method::Ip => "ip",
            Method::Ja4 => "ja4",
        }
    }
    /// From the stored number.
    pub fn from_u8(v: u8) -> Method {
        Method::ALL.get(v as usize).copied().unwrap_or(Method::Port)
    }
}

/// The application protocol seen in a flow (for events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum AppProto {
    /// Not identified.
    #[default]
    Unknown = 0,
    /// TLS.
    Tls = 1,
    /// QUIC.
    Quic = 2,
    /// DNS.
    Dns = 3,
    /// HTTP/1.x.
    Http = 4,
    /// A protocol recognised by a fingerprint.
    Other = 5,
}

impl AppProto {
    /// Event spelling (`app_proto`), as Suricata names them.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProto::Unknown => "failed",
            AppProto::Tls => "tls",
            AppProto::Quic => "quic",
            AppProto::Dns => "dns",
            AppProto::Http => "http",
            AppProto::Other => "other",
        }
    }
}

/// A small inline string (no allocation).
#[derive(Clone, Copy)]
pub struct SmallStr<const N: usize> {
    buf: [u8; N],
    len: u8,
}

impl<const N: usize> Default for SmallStr<N> {
    fn default() -> Self {
        SmallStr {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> std::fmt::Debug for SmallStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl<const N: usize> SmallStr<N> {
    /// Copies at most N (and at most 255) bytes of `b`.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut s = SmallStr::default();
        s.set(b);
        s
    }
    /// Replaces the content.
    pub fn set(&mut self, b: &[u8]) {
        let n = b.len().min(N).min(255);
        self.buf[..n].copy_from_slice(&b[..n]);
        self.len = n as u8;
    }
    /// Appends, truncating at the capacity.
    pub fn push(&mut self, b: &[u8]) {
        let at = self.len as usize;
        let n = b.len().min(N.min(255) - at);
        self.buf[at..at + n].copy_from_slice(&b[..n]);
        self.len += n as u8;
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Clears.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// A detection: which catalogue indicator matched, how, and the evidence.
#[derive(Clone, Copy, Debug)]
pub struct Detection {
    /// The catalogue hit.
    pub hit: Hit,
    /// The method.
    pub method: Method,
    /// What was seen (an SNI, an ALPN id, a banner, ...).
    pub evidence: SmallStr<128>,
}

/// Per-direction parser progress bits.
mod done {
    pub const TLS: u8 = 0x01;
    pub const HTTP: u8 = 0x02;
    pub const DNS: u8 = 0x04;
    pub const FP: u8 = 0x08;
    pub const ALL_TCP: u8 = TLS | HTTP | DNS | FP;
}

/// The small per-flow facts the inspectors update (everything but the buffers).
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// Parsers finished, per direction: [client, server].
    pub done: [u8; 2],
    /// The payload was identified as an application that is not catalogued (this contradicts a
    /// weak port or address candidate).
    pub other_app: bool,
    /// A TLS/QUIC ClientHello without a readable name (no SNI, or ECH).
    pub unnamed: bool,
    /// Some payload was seen.
    pub payload: bool,
    /// A DNS response was seen.
    pub dns_answered: bool,
    /// The last DNS questions asked on this flow: (id, name hash).
    pub dns_queries: [(u16, u64); 4],
    /// Where the next question goes in `dns_queries`.
    pub dns_next: usize,
    /// QUIC Initials that failed to decrypt; after [`QUIC_MAX_FAILURES`] the flow is not tried
    /// again (key derivation costs microseconds).
    pub quic_failures: u8,
    /// The client's ClientHello was read without a detection; its stream is now searched for
    /// a client Certificate (TLS 1.2 and earlier mutual authentication).
    pub client_cert_pending: bool,
    /// UDP datagrams seen per direction.
    pub datagrams: [u32; 2],
    /// The readable host name (SNI, HTTP Host, DNS question).
    pub host: SmallStr<128>,
    /// JA4 of the ClientHello.
    pub ja4: SmallStr<40>,
    /// Application protocol.
    pub app: AppProto,
}

/// Undecryptable QUIC Initials after which a flow is no longer tried as QUIC.
pub const QUIC_MAX_FAILURES: u8 = 4;

/// How much of the first UDP datagram each way is kept for the fingerprints.
pub const FIRST_DGRAM_CAP: usize = 512;

/// Inspection state of one undecided flow.
pub struct InspectState {
    /// Reassembled prefixes: [client→server, server→client] (TCP).
    pub streams: [StreamPrefix; 2],
    /// The first UDP datagram each way, up to [`FIRST_DGRAM_CAP`] bytes (peer context for
    /// fingerprints). Allocated with the slot, reused.
    pub first_dgram: [Vec<u8>; 2],
    /// Facts.
    pub facts: Facts,
    /// QUIC crypto-stream state (pool index), when the flow is QUIC.
    pub quic: Option<u32>,
    /// The highest acknowledgement number the server sent (TCP).
    pub server_ack: Option<u32>,
    /// The client sent bytes that differ from those already read at the same place.
    pub conflict: bool,
    /// A detection that lets the flow pass, held until the server has acknowledged the client
    /// bytes it was read from (TCP; the engine decides the flow then).
    pub pending: Option<Detection>,
    /// The flow this slot belongs to.
    pub flow: u32,
    /// When the slot was taken (for eviction under pressure).
    pub since_ns: u64,
}

impl InspectState {
    fn new(stream_cap: usize) -> Self {
        InspectState {
            streams: [StreamPrefix::new(stream_cap), StreamPrefix::new(stream_cap)],
            first_dgram: [
                Vec::with_capacity(FIRST_DGRAM_CAP),
                Vec::with_capacity(FIRST_DGRAM_CAP),
            ],
            facts: Facts::default(),
            quic: None,
            server_ack: None,
            conflict: false,
            pending: None,
            flow: 0,
            since_ns: 0,
        }
    }

    fn reset(&mut self) {
        self.streams[0].reset();
        self.streams[1].reset();
        self.first_dgram[0].clear();
        self.first_dgram[1].clear();
        self.facts = Facts::default();
        self.quic = None;
        self.server_ack = None;
        self.conflict = false;
        self.pending = None;
    }

    /// Bytes held by the slot's buffers.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.streams[0].cap() + self.streams[1].cap()) * 9 / 8
            + 2 * FIRST_DGRAM_CAP
    }
}

/// A bounded pool of inspection slots, allocated on first use and then reused.
pub struct InspectPool {
    slots: Vec<InspectState>,
    used: Vec<bool>,
    /// Generation of each slot, bumped on every acquire.
    gen: Vec<u32>,
    /// Slots in the order they were taken: (slot, generation). Entries of released slots are
    /// skipped lazily, so finding the oldest inspection is amortised O(1).
    order: std::collections::VecDeque<(u32, u32)>,
    free: Vec<u32>,
    in_use: usize,
    max: usize,
    stream_cap: usize,
    quic: Vec<quic::QuicScratch>,
    quic_free: Vec<u32>,
    quic_max: usize,
    /// The slot each QUIC scratch belongs to (for taking it back when all are in use).
    quic_owner: Vec<u32>,
    /// Round-robin hand over the QUIC scratches for taking one back.
    quic_hand: usize,
    /// A scratch buffer for joining TLS handshake fragments (one per worker).
    pub hs: tls::HandshakeScratch,
}

impl InspectPool {
    /// A pool of at most `max` slots with `stream_cap` bytes per direction, and at most `quic_max`
    /// concurrent QUIC handshakes.
    pub fn new(max: usize, stream_cap: usize, quic_max: usize) -> Self {
        InspectPool {
            slots: Vec::new(),
            used: Vec::new(),
            gen: Vec::new(),
            order: std::collections::VecDeque::new(),
            free: Vec::new(),
            in_use: 0,
            max: max.max(1),
            stream_cap,
            quic: Vec::new(),
            quic_free: Vec::new(),
            quic_max,
            quic_owner: Vec::new(),
            quic_hand: 0,
            hs: tls::HandshakeScratch::new(),
        }
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Bytes held by all slots ever allocated.
    pub fn memory_bytes(&self) -> usize {
        self.slots.iter().map(|s| s.memory_bytes()).sum::<usize>()
            + self.quic.len() * std::mem::size_of::<quic::QuicScratch>()
    }

    /// Takes a slot for `flow`; None when the pool is exhausted (the caller evicts).
    pub fn acquire(&mut self, flow: u32, now_ns: u64) -> Option<u32> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < self.max => {
                self.slots.push(InspectState::new(self.stream_cap));
                self.used.push(false);
                self.gen.push(0);
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let s = &mut self.slots[idx as usize];
        s.reset();
        s.flow = flow;
        s.since_ns = now_ns;
        self.used[idx as usize] = true;
        self.in_use += 1;
        let g = self.gen[idx as usize].wrapping_add(1);
        self.gen[idx as usize] = g;
        self.order.push_back((idx, g));
        if self.order.len() > 2 * self.max + 64 {
            // Drop the entries of released slots (amortised: at most once per `max` acquires).
            let (used, gen) = (&self.used, &self.gen);
            self.order
                .retain(|&(s, g)| used[s as usize] && gen[s as usize] == g);
        }
        Some(idx)
    }

    /// The oldest slot in use (the eviction candidate when the pool is exhausted): (slot, flow).
    pub fn oldest(&mut self) -> Option<(u32, u32)> {
        while let Some(&(slot, g)) = self.order.front() {
            if self.used[slot as usize] && self.gen[slot as usize] == g {
                return Some((slot, self.slots[slot as usize].flow));
            }
            self.order.pop_front();
        }
        None
    }

    /// Returns a slot.
    pub fn release(&mut self, idx: u32) {
        if !self.used[idx as usize] {
            return;
        }
        if let Some(q) = self.slots[idx as usize].quic.take() {
            self.quic_free.push(q);
        }
        self.used[idx as usize] = false;
        self.free.push(idx);
        self.in_use -= 1;
    }

    /// A slot and the worker's handshake scratch.
    #[inline]
    pub fn get(&mut self, idx: u32) -> (&mut InspectState, &mut tls::HandshakeScratch) {
        (&mut self.slots[idx as usize], &mut self.hs)
    }

    /// Gives back slot `idx`'s QUIC scratch (after an Initial that did not decrypt).
    pub fn release_quic(&mut self, idx: u32) {
        if let Some(q) = self.slots[idx as usize].quic.take() {
            self.quic_free.push(q);
        }
    }

    /// The QUIC scratch of slot `idx` (taken on first use), with the slot's facts.
    pub fn quic_for(&mut self, idx: u32) -> Option<(&mut quic::QuicScratch, &mut InspectState)> {
        let q = match self.slots[idx as usize].quic {
            Some(q) => q,
            None => {
                let q = match self.quic_free.pop() {
                    Some(q) => q,
                    None if self.quic.len() < self.quic_max => {
                        self.quic.push(quic::QuicScratch::new());
                        self.quic_owner.push(idx);
                        (self.quic.len() - 1) as u32
                    }
                    None if self.quic.is_empty() => return None,
                    None => {
                        // All in use: take one back from another flow, round robin, so that a
                        // flood of half-finished handshakes cannot switch QUIC inspection off.
                        self.quic_hand = (self.quic_hand + 1) % self.quic.len();
                        let q = self.quic_hand as u32;
                        let owner = self.quic_owner[q as usize] as usize;
                        if self.slots.get(owner).and_then(|s| s.quic) == Some(q) {
                            self.slots[owner].quic = None;
                        }
                        q
                    }
                };
                self.quic[q as usize].clear();
                self.quic_owner[q as usize] = idx;
                self.slots[idx as usize].quic = Some(q);
                q
            }
        };
        Some((&mut self.quic[q as usize], &mut self.slots[idx as usize]))
    }
}

/// What the inspectors concluded from the payload so far.
pub enum Outcome {
    /// Nothing decisive yet.
    Continue,
    /// A catalogued tool.
    Detected(Detection),
}

fn evidence(b: &[u8]) -> SmallStr<128> {
    SmallStr::from_bytes(b)
}

/// Is this port pair DNS (unicast, multicast or LLMNR)?
#[inline]
pub fn is_dns_port(a: u16, b: u16) -> bool {
    matches!(a, 53 | 5353 | 5355) || matches!(b, 53 | 5353 | 5355)
}

/// Context for one inspection call.
pub struct Ctx<'a> {
    /// Compiled catalogue.
    pub m: &'a crate::catalog::matcher::Matcher,
    /// TCP or UDP.
    pub tcp: bool,
    /// Direction of this packet: 0 = from the client, 1 = from the server.
    pub dir: usize,
    /// Client port.
    pub client_port: u16,
    /// Server port.
    pub server_port: u16,
}

/// A DNS answer that teaches an address: (address, ttl seconds, hit).
pub type Learn = ([u8; 16], u32, Hit);

fn detected(hit: Hit, method: Method, ev: &[u8]) -> Outcome {
    Outcome::Detected(Detection {
        hit,
        method,
        evidence: evidence(ev),
    })
}

/// Matches a parsed ClientHello (TLS or QUIC) against the catalogue.
pub fn client_hello(
    ctx: &Ctx<'_>,
    f: &mut Facts,
    ch: &tls::ClientHello<'_>,
    quic: bool,
) -> Outcome {
    f.app = if quic { AppProto::Quic } else { AppProto::Tls };
    // JA4 sorts and hashes the hello: computed only when it can matter (a detection's event, a
    // catalogue with JA4 indicators, or a hello without a readable name, which is likely to be
    // decided later by certificate or learned address).
    let set_ja4 = |f: &mut Facts| {
        let mut j = [0u8; 40];
        let n = ja4::ja4(ch, if quic { b'q' } else { b't' }, &mut j).min(40);
        f.ja4.set(&j[..n]);
    };
    if let Some(sni) = ch.sni {
        f.host.set(sni);
        if let Some(hit) = ctx.m.domain(sni) {
            set_ja4(f);
            let m = if quic {
                Method::QuicSni
            } else {
                Method::TlsSni
            };
            return detected(hit, m, sni);
        }
    }
    for id in ch.alpn_iter() {
        if let Some(hit) = ctx.m.alpn(id) {
            set_ja4(f);
            return detected(hit, Method::TlsAlpn, id);
        }
    }
    let unnamed = ch.sni.is_none() || ch.has_ech;
    if unnamed || ctx.m.has_ja4() {
        set_ja4(f);
        if let Some(hit) = ctx.m.ja4(f.ja4.as_bytes()) {
            let ev = f.ja4;
            return detected(hit, Method::Ja4, ev.as_bytes());
        }
    }
    if unnamed {
        f.unnamed = true;
    } else {
        // A readable, uncatalogued server name: some other service.
        f.other_app = true;
    }
    Outcome::Continue
}

fn tls_client(
    ctx: &Ctx<'_>,
    f: &mut Facts,
    hs: &mut tls::HandshakeScratch,
    data: &[u8],
    full: bool,
) -> Option<Outcome> {
    if f.client_cert_pending {
        return tls_client_cert(ctx, f, hs, data, full);
    }
    match tls::parse_client_hello_stream(data, hs) {
        tls::Parse::NeedMore if !full => Some(Outcome::Continue),
        tls::Parse::Done(ch) => {
            f.done[0] |= done::ALL_TCP;
            let o = client_hello(ctx, f, &ch, false);
            if matches!(o, Outcome::Continue) && !f.other_app && ch.legacy_version <= 0x0303 {
                // Nothing named the tool: the client may still show its certificate in its
                // second flight (TLS <= 1.2), so its stream stays under inspection.
                f.done[0] &= !done::TLS;
                f.client_cert_pending = true;
            }
            Some(o)
        }
        _ => {
            f.done[0] |= done::TLS;
            None
        }
    }
}

/// The client's Certificate (mutual authentication, TLS <= 1.2), after its ClientHello.
fn tls_client_cert(
    ctx: &Ctx<'_>,
    f: &mut Facts,
    hs: &mut tls::HandshakeScratch,
    data: &[u8],
    full: bool,
) -> Option<Outcome> {
    let names = match tls::parse_client_certificate(data, hs) {
        tls::Parse::NeedMore if !full => return Some(Outcome::Continue),
        tls::Parse::Done(Some(n)) => n,
        _ => {
            f.done[0] |= done::TLS;
            f.client_cert_pending = false;
            return None;
        }
    };
    f.done[0] |= done::TLS;
    f.client_cert_pending = false;
    cert_outcome(ctx, Some(names.subject), Some(names.issuer))
}

/// Matches certificate names against the `tls_cert` indicators; the evidence is the name that
/// matched, rendered.
fn cert_outcome(ctx: &Ctx<'_>, subject: Option<&[u8]>, issuer: Option<&[u8]>) -> Option<Outcome> {
    let hit = ctx.m.cert(subject, issuer, tls::name_contains)?;
    let which = match subject {
        Some(s) if ctx.m.cert(Some(s), None, tls::name_contains).is_some() => Some(s),
        _ => issuer,
    };
    let mut out = [0u8; 128];
    let n = which.map_or(0, |d| tls::render_name(d, &mut out)).min(128);
    Some(detected(hit, Method::TlsCert, &out[..n]))
}

fn tls_server(
    ctx: &Ctx<'_>,
    f: &mut Facts,
    hs: &mut tls::HandshakeScratch,
    data: &[u8],
    full: bool,
) -> Option<Outcome> {
    let si = match tls::parse_server_stream(data, hs) {
        tls::Parse::NeedMore if !full => return Some(Outcome::Continue),
        tls::Parse::Done(si) => si,
        _ => {
            f.done[1] |= done::TLS;
            return None;
        }
    };
    f.done[1] |= done::ALL_TCP;
    f.app = AppProto::Tls;
    if si.version > 0x0303 && f.client_cert_pending {
        // TLS 1.3: the client's certificate, if any, is encrypted.
        f.client_cert_pending = false;
        f.done[0] |= done::TLS;
    }
    if let Some(alpn) = si.alpn {
        if let Some(hit) = ctx.m.alpn(alpn) {
            return Some(detected(hit, Method::TlsAlpn, alpn));
        }
    }
    cert_outcome(ctx, si.cert_subject, si.cert_issuer)
}

fn http_client(ctx: &Ctx<'_>, f: &mut Facts, data: &[u8], full: bool) -> Option<Outcome> {
    let req = match http::parse_request(data, full) {
        http::Parse::NeedMore => return Some(Outcome::Continue),
        http::Parse::NotHttp => {
            f.done[0] |= done::HTTP;
            return None;
        }
        http::Parse::Done(r) => r,
    };
    f.done[0] |= done::HTTP | done::TLS | done::DNS;
    f.app = AppProto::Http;
    if let Some(ua) = req.user_agent {
        if let Some(hit) = ctx.m.user_agent(ua) {
            return Some(detected(hit, Method::HttpUserAgent, ua));
        }
    }
    if let Some(host) = req.host {
        f.host.set(host);
        if let Some(hit) = ctx.m.domain(host) {
            return Some(detected(hit, Method::HttpHost, host));
        }
    }
    if let Some(hit) = ctx.m.uri(req.uri) {
        return Some(detected(hit, Method::HttpUri, req.uri));
    }
    // A plain request to an uncatalogued host. Fingerprints (TeamViewer's DynGate, NetSupport's
    // POST) still get their turn.
    if req.host.is_some() {
        f.other_app = true;
    }
    None
}

/// Inspects one DNS message. Queries match on the question; responses on the question and the
/// CNAME chain, and teach the answered addresses through `learn`.
pub fn dns_message(
    ctx: &Ctx<'_>,
    f: &mut Facts,
    msg: &[u8],
    learn: &mut dyn FnMut(Learn),
) -> Option<Outcome> {
    let h = dns::header(msg).ok()?;
    let mut name = [0u8; dns::MAX_NAME];
    let (n, _qtype, after_q) = dns::question(msg, &mut name).ok()?;
    f.app = AppProto::Dns;
    f.host.set(&name[..n]);
    let qhash = name_hash(&name[..n]);
    let mut det = ctx
        .m
        .domain(&name[..n])
        .map(|hit| (hit, evidence(&name[..n])));
    if !h.response {
        // Remember the question, so that only an answer to it teaches addresses.
        f.dns_queries[f.dns_next % f.dns_queries.len()] = (h.id, qhash);
        f.dns_next = f.dns_next.wrapping_add(1);
    } else {
        f.dns_answered = true;
        // An answer teaches addresses only if it answers a question seen on this flow (same id,
        // same name): a spoofed or unsolicited response teaches nothing.
        let asked = f
            .dns_queries
            .iter()
            .any(|&(id, q)| q != 0 && id == h.id && q == qhash);
        if h.rcode == 0 {
            // The names on the CNAME chain from the question: only records owned by those
            // names count, whatever else the answer section holds.
            let mut chain = [0u64; 8];
            chain[0] = qhash;
            let mut len = 1usize;
            for _ in 0..chain.len() {
                let before = len;
                let _ = dns::answers(msg, after_q, h.ancount, 32, |owner, _, rd| {
                    if let dns::Rdata::Cname(off) = rd {
                        let mut t = [0u8; dns::MAX_NAME];
                        let Ok((l, _)) = dns::read_name(msg, off, &mut t) else {
                            return;
                        };
                        let th = name_hash(&t[..l]);
                        if chain[..len].contains(&name_hash(owner))
                            && !chain[..len].contains(&th)
                            && len < chain.len()
                        {
                            chain[len] = th;
                            len += 1;
                            if det.is_none() {
                                if let Some(hit) = ctx.m.domain(&t[..l]) {
                                    let mut ev = evidence(&name[..n]);
                                    ev.push(b" -> ");
                                    ev.push(&t[..l]);
                                    det = Some((hit, ev));
                                }
                            }
                        }
                    }
                });
                if len == before {
                    break;
                }
            }
            if let (Some((hit, _)), true) = (det, asked) {
                let _ = dns::answers(msg, after_q, h.ancount, 32, |owner, ttl, rd| {
                    if !chain[..len].contains(&name_hash(owner)) {
                        return;
                    }
                    match rd {
                        dns::Rdata::A(a) => learn((crate::decode::v4_mapped(a), ttl, hit)),
                        dns::Rdata::Aaaa(a) => learn((a, ttl, hit)),
                        _ => {}
                    }
                });
            }
        }
    }
    Some(match det {
        Some((hit, evidence)) => Outcome::Detected(Detection {
            hit,
            method: Method::DnsQuery,
            evidence,
        }),
        None => {
            if h.response {
                f.other_app = true;
            }
            Outcome::Continue
        }
    })
}

/// FNV-1a of a (lower-cased) name; 0 is kept for "none".
fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= b.to_ascii_lowercase() as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

fn fp(ctx: &Ctx<'_>, f: &mut Facts, data: &[u8], peer: &[u8], dgram: u32) -> Option<Outcome> {
    let input = fingerprint::FpInput {
        l4: if ctx.tcp {
            fingerprint::L4::Tcp
        } else {
            fingerprint::L4::Udp
        },
        from_client: ctx.dir == 0,
        client_port: ctx.client_port,
        server_port: ctx.server_port,
        data,
        peer,
        datagram_index: dgram,
    };
    let mut ev = [0u8; 64];
    let mut ev_len = 0usize;
    match fingerprint::match_any(&input, &mut ev, &mut ev_len) {
        fingerprint::FpResult::Match(fpr) => {
            let hit = ctx.m.fingerprint(fpr)?;
            if f.app == AppProto::Unknown {
                f.app = AppProto::Other;
            }
            let mut e = SmallStr::<128>::from_bytes(fpr.name().as_bytes());
            if ev_len > 0 {
                e.push(b": ");
                e.push(&ev[..ev_len.min(64)]);
            }
            Some(Outcome::Detected(Detection {
                hit,
                method: Method::Fingerprint,
                evidence: e,
            }))
        }
        fingerprint::FpResult::NeedMore => Some(Outcome::Continue),
        fingerprint::FpResult::NoMatch => {
            if ctx.tcp {
                f.done[ctx.dir] |= done::FP;
            }
            None
        }
    }
}

/// Whether a TCP direction's parsers have all concluded.
pub fn tcp_dir_done(f: &Facts, dir: usize) -> bool {
    f.done[dir] & done::ALL_TCP == done::ALL_TCP
}

/// Runs the TCP inspectors on the (grown) prefix of direction `ctx.dir`.
pub fn inspect_tcp(
    ctx: &Ctx<'_>,
    st: &mut InspectState,
    hs: &mut tls::HandshakeScratch,
    learn: &mut dyn FnMut(Learn),
) -> Outcome {
    let InspectState { streams, facts, .. } = st;
    let dir = ctx.dir;
    let full = streams[dir].full() || streams[dir].overflow;
    let this = streams[dir].data();
    let other = streams[1 - dir].data();
    if this.is_empty() {
        return Outcome::Continue;
    }
    facts.payload = true;
    // A parser that needs more bytes does not stop the others; a detection does.
    let step = |r: Option<Outcome>| -> Option<Outcome> {
        match r {
            Some(Outcome::Continue) => None,
            other => other,
        }
    };
    if dir == 0 {
        if facts.done[0] & done::TLS == 0 {
            if let Some(o) = step(tls_client(ctx, facts, hs, this, full)) {
                return o;
            }
        }
        if facts.done[0] & done::HTTP == 0 {
            if let Some(o) = step(http_client(ctx, facts, this, full)) {
                return o;
            }
        }
    } else {
        if facts.done[1] & done::TLS == 0 {
            if let Some(o) = step(tls_server(ctx, facts, hs, this, full)) {
                return o;
            }
        }
        if facts.done[1] & done::HTTP == 0 {
            match http::response_server(this) {
                http::Parse::NeedMore if !full => {}
                http::Parse::Done(_) => {
                    facts.done[1] |= done::HTTP;
                    if facts.app == AppProto::Unknown {
                        facts.app = AppProto::Http;
                    }
                }
                _ => facts.done[1] |= done::HTTP,
            }
        }
    }
    if facts.done[dir] & done::DNS == 0 {
        if is_dns_port(ctx.client_port, ctx.server_port) {
            // DNS over TCP: a two-byte length, then the message.
            if this.len() >= 2 {
                let len = u16::from_be_bytes([this[0], this[1]]) as usize;
                if let Some(msg) = this.get(2..2 + len) {
                    facts.done[dir] |= done::DNS;
                    if let Some(o) = step(dns_message(ctx, facts, msg, learn)) {
                        return o;
                    }
                } else if full {
                    facts.done[dir] |= done::DNS;
                }
            }
        } else {
            facts.done[dir] |= done::DNS;
        }
    }
    if facts.done[dir] & done::FP == 0 {
        if let Some(o) = step(fp(ctx, facts, this, other, 0)) {
            return o;
        }
    }
    Outcome::Continue
}

/// Runs the UDP inspectors on one datagram.
pub fn inspect_udp(
    ctx: &Ctx<'_>,
    pool: &mut InspectPool,
    slot: u32,
    payload: &[u8],
    learn: &mut dyn FnMut(Learn),
) -> Outcome {
    let dir = ctx.dir;
    let dgram;
    {
        let st = &mut pool.slots[slot as usize];
        dgram = st.facts.datagrams[dir];
        st.facts.datagrams[dir] = dgram.saturating_add(1);
        if payload.is_empty() {
            return Outcome::Continue;
        }
        st.facts.payload = true;
        if dgram == 0 {
            let n = payload.len().min(FIRST_DGRAM_CAP);
            st.first_dgram[dir].extend_from_slice(&payload[..n]);
        }
        if is_dns_port(ctx.client_port, ctx.server_port) {
            if let Some(o) = dns_message(ctx, &mut st.facts, payload, learn) {
                return o;
            }
        }
    }
    let quic_tried = pool.slots[slot as usize].facts.quic_failures >= QUIC_MAX_FAILURES;
    if dir == 0 && !quic_tried && quic::quic_version(payload).is_some() {
        if let Some((q, st)) = pool.quic_for(slot) {
            match quic::feed_client_datagram(payload, q) {
                quic::QuicStatus::ClientHello => {
                    if let Some(ch) = q.client_hello() {
                        return client_hello(ctx, &mut st.facts, &ch, true);
                    }
                }
                quic::QuicStatus::NeedMore => {
                    st.facts.app = AppProto::Quic;
                    return Outcome::Continue;
                }
                // An Initial that does not decrypt: a decoy, or not QUIC we can read. One decoy
                // must not switch inspection off, so the flow is retried a few times.
                _ => {
                    st.facts.quic_failures = st.facts.quic_failures.saturating_add(1);
                    pool.release_quic(slot);
                }
            }
        }
    }
    let st = &mut pool.slots[slot as usize];
    let InspectState {
        first_dgram, facts, ..
    } = st;
    let peer = first_dgram[1 - dir].as_slice();
    match fp(ctx, facts, payload, peer, dgram) {
        Some(o) => o,
        None => Outcome::Continue,
    }
}
