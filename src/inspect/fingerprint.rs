//! Byte-level protocol fingerprints for remote monitoring and management (RMM) and
//! remote-desktop protocols, independent of the port in use.
//!
//! The engine calls [`match_any`] for each new payload of a still undecided flow (at most
//! the first ~8 payload packets per direction), after the TLS/HTTP/DNS parsers have had
//! their turn. Every matcher first checks one or two cheap leading bytes and returns at
//! once when they do not fit, so the common `NoMatch` case costs a handful of comparisons.
//!
//! # Rules every matcher follows
//! * Patterns are anchored at the start of the direction's stream (TCP) or of the
//!   datagram (UDP); nothing is searched for in the middle of arbitrary data, except the
//!   header block of an HTTP request/response that itself starts at the stream start.
//! * Short magic values are never trusted alone: each one is backed by a length field that
//!   must agree with the payload, a fixed total size, a well-known port, or a confirming
//!   second message (in this direction or in the peer direction). Each matcher explains
//!   its choice in a comment.
//! * No panics (all reads go through `get`, arithmetic is checked), no allocation, no
//!   `unsafe`, no regular expressions.
//!
//! # Sources
//! The byte patterns come from public sources, cited at each matcher:
//! * `shared/indicators/top-tools.md` (summary of the sources below);
//! * ET Open rules (`shared/indicators/et_open/*.rules`, sids given as `ET:<sid>`);
//! * ditekshen snort3 rules (`shared/indicators/ditekshen/snort3_rmm_excerpt.rules`);
//! * RFC 6143 (RFB), MS-RDPBCGR (X.224/RDP negotiation), MS-RDPEUDP (RDP over UDP);
//! * nDPI dissectors (`ntop/nDPI src/lib/protocols/{teamviewer,nomachine}.c`, LGPL-3,
//!   cited as facts only);
//! * the nDPI regression captures in `shared/corpus/remote-access/` (observations are
//!   marked "observed in corpus").
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// A protocol fingerprint that [`match_any`] can report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fingerprint {
    /// TeamViewer TCP framing (`17 24` / `11 30`).
    TeamviewerTcp,
    /// TeamViewer UDP framing (`17 24` at offset 11).
    TeamviewerUdp,
    /// TeamViewer HTTP fallback (`DynGate` user agent).
    TeamviewerDyngate,
    /// VNC / RFB protocol version banner.
    VncRfb,
    /// RDP X.224 connection request/confirm with RDP content.
    RdpX224,
    /// RDP over UDP (MS-RDPEUDP).
    RdpUdp,
    /// AnyDesk LAN discovery datagram.
    AnydeskDiscovery,
    /// ConnectWise ScreenConnect relay check-in.
    ScreenconnectRelay,
    /// Splashtop LAN (direct) connection messages.
    SplashtopLan,
    /// RustDesk rendezvous / LAN discovery messages.
    RustdeskRendezvous,
    /// RustDesk NAT-type test.
    RustdeskNatTest,
    /// Radmin session setup / authentication handshake.
    RadminHandshake,
    /// NetSupport Manager HTTP gateway traffic.
    NetsupportHttp,
    /// NoMachine NX banner (and NoMachine UDP media framing).
    NomachineBanner,
    /// Citrix ICA greeting.
    CitrixIca,
    /// Citrix Common Gateway Protocol greeting.
    CitrixCgp,
    /// SimpleHelp cleartext HTTP agent/server traffic.
    SimplehelpHttp,
    /// Ammyy Admin IP-check HTTP exchange.
    AmmyyHttp,
    /// SolarWinds Dameware Mini Remote Control session start.
    DamewareMrc,
}

impl Fingerprint {
    /// Every fingerprint, in declaration order.
    pub const ALL: [Fingerprint; 19] = [
        Fingerprint::TeamviewerTcp,
        Fingerprint::TeamviewerUdp,
        Fingerprint::TeamviewerDyngate,
        Fingerprint::VncRfb,
        Fingerprint::RdpX224,
        Fingerprint::RdpUdp,
        Fingerprint::AnydeskDiscovery,
        Fingerprint::ScreenconnectRelay,
        Fingerprint::SplashtopLan,
        Fingerprint::RustdeskRendezvous,
        Fingerprint::RustdeskNatTest,
        Fingerprint::RadminHandshake,
        Fingerprint::NetsupportHttp,
        Fingerprint::NomachineBanner,
        Fingerprint::CitrixIca,
        Fingerprint::CitrixCgp,
        Fingerprint::SimplehelpHttp,
        Fingerprint::AmmyyHttp,
        Fingerprint::DamewareMrc,
    ];

    /// Stable snake_case name (used in configuration, events and docs).
    pub fn name(self) -> &'static str {
        match self {
            Fingerprint::TeamviewerTcp => "teamviewer_tcp",
            Fingerprint::TeamviewerUdp => "teamviewer_udp",
            Fingerprint::TeamviewerDyngate => "teamviewer_dyngate",
            Fingerprint::VncRfb => "vnc_rfb",
            Fingerprint::RdpX224 => "rdp_x224",
            Fingerprint::RdpUdp => "rdp_udp",
            Fingerprint::AnydeskDiscovery => "anydesk_discovery",
            Fingerprint::ScreenconnectRelay => "screenconnect_relay",
            Fingerprint::SplashtopLan => "splashtop_lan",
            Fingerprint::RustdeskRendezvous => "rustdesk_rendezvous",
            Fingerprint::RustdeskNatTest => "rustdesk_nat_test",
            Fingerprint::RadminHandshake => "radmin_handshake",
            Fingerprint::NetsupportHttp => "netsupport_http",
            Fingerprint::NomachineBanner => "nomachine_banner",
            Fingerprint::CitrixIca => "citrix_ica",
            Fingerprint::CitrixCgp => "citrix_cgp",
            Fingerprint::SimplehelpHttp => "simplehelp_http",
            Fingerprint::AmmyyHttp => "ammyy_http",
            Fingerprint::DamewareMrc => "dameware_mrc",
        }
    }

    /// Inverse of [`Fingerprint::name`].
    pub fn from_name(s: &str) -> Option<Fingerprint> {
        Fingerprint::ALL.iter().copied().find(|f| f.name() == s)
    }

    /// Catalogue id of the tool this fingerprint identifies (e.g. `"teamviewer"`).
    pub fn tool(self) -> &'static str {
        match self {
            Fingerprint::TeamviewerTcp
            | Fingerprint::TeamviewerUdp
            | Fingerprint::TeamviewerDyngate => "teamviewer",
            Fingerprint::VncRfb => "vnc",
            Fingerprint::RdpX224 | Fingerprint::RdpUdp => "rdp",
            Fingerprint::AnydeskDiscovery => "anydesk",
            Fingerprint::ScreenconnectRelay => "screenconnect",
            Fingerprint::SplashtopLan => "splashtop",
            Fingerprint::RustdeskRendezvous | Fingerprint::RustdeskNatTest => "rustdesk",
            Fingerprint::RadminHandshake => "radmin",
            Fingerprint::NetsupportHttp => "netsupport",
            Fingerprint::NomachineBanner => "nomachine",
            Fingerprint::CitrixIca | Fingerprint::CitrixCgp => "citrix",
            Fingerprint::SimplehelpHttp => "simplehelp",
            Fingerprint::AmmyyHttp => "ammyy",
            Fingerprint::DamewareMrc => "dameware",
        }
    }

    /// One line: what the fingerprint matches.
    pub fn describe(self) -> &'static str {
        match self {
            Fingerprint::TeamviewerTcp => {
                "TCP stream framed as TeamViewer `17 24` (5-byte header, u16 LE length) or `11 30` (24-byte header, u32 LE length) frames with consistent lengths"
            }
            Fingerprint::TeamviewerUdp => {
                "UDP datagram with TeamViewer magic `17 24` at offset 11 and a u16 LE length at 14 equal to the datagram size minus 16"
            }
            Fingerprint::TeamviewerDyngate => {
                "HTTP request with User-Agent `Mozilla/4.0 (compatible; MSIE 6.0; DynGate)` (TeamViewer HTTP fallback)"
            }
            Fingerprint::VncRfb => {
                "RFB protocol version banner `RFB ddd.ddd\\n` (12 bytes) at the start of a TCP stream"
            }
            Fingerprint::RdpX224 => {
                "TPKT + X.224 Connection Request with `Cookie: mstshash=`/`msts=` or RDP_NEG_REQ, or Connection Confirm with RDP_NEG_RSP/FAILURE"
            }
            Fingerprint::RdpUdp => {
                "MS-RDPEUDP SYN / SYN+ACK datagram, or RDP-UDP ACK+DATA datagram carrying a TLS/DTLS record"
            }
            Fingerprint::AnydeskDiscovery => {
                "AnyDesk LAN discovery datagram `3e d1 01` with consistent hostname/user length fields"
            }
            Fingerprint::ScreenconnectRelay => {
                "ScreenConnect relay check-in: stream starts `87 15|1c|12 10 00` followed by 12 zero bytes"
            }
            Fingerprint::SplashtopLan => {
                "Splashtop LAN check-in `00 01 00 08 00 00 00 00 00 02 01 00` or session start/keep-alive `0x 00 34 12` to port 6784"
            }
            Fingerprint::RustdeskRendezvous => {
                "RustDesk rendezvous protobuf datagrams (RegisterPeer, RegisterPk, software-update query) and LAN discovery ping/pong"
            }
            Fingerprint::RustdeskNatTest => {
                "RustDesk NAT-type test message `14 a2 01 02 08 01` (6 bytes) on TCP"
            }
            Fingerprint::RadminHandshake => {
                "Radmin session setup `01 00 00 00 01 00 00 00 08 08`, its reply, or the authentication challenge/response"
            }
            Fingerprint::NetsupportHttp => {
                "HTTP POST with User-Agent `NetSupport Manager/`, `Server: NetSupport Gateway/` reply, or GET /location/loca.asp to geo.netsupportsoftware.com"
            }
            Fingerprint::NomachineBanner => {
                "NoMachine `NXSH-<version>\\n` / `NXD-<version>\\n` banner on TCP, or NoMachine UDP media framing"
            }
            Fingerprint::CitrixIca => "Citrix ICA greeting `7f 7f 49 43 41 00` (\"\\x7f\\x7fICA\\0\") at stream start",
            Fingerprint::CitrixCgp => "Citrix CGP greeting `1a 43 47 50 2f 30 31` (\"\\x1aCGP/01\") at stream start",
            Fingerprint::SimplehelpHttp => {
                "SimpleHelp cleartext HTTP: GET /machine-<13 digits>?ping=, POST /lossyproc?rand=, JWrapperDownloader update check, or `Server: SimpleHelp/SSuite`"
            }
            Fingerprint::AmmyyHttp => {
                "Ammyy Admin IP check: GET / with Host rl.ammyy.com, or the `Your IP=..., country = ..` reply"
            }
            Fingerprint::DamewareMrc => {
                "Dameware MRC session initiation: 40-byte message starting `30 11 00 00 ... 38 40 ... 04`"
            }
        }
    }
}

/// Transport protocol of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP: `data` is a reassembled stream prefix.
    Tcp,
    /// UDP: `data` is one datagram.
    Udp,
}

/// What a matcher sees for one call.
#[derive(Clone, Copy, Debug)]
pub struct FpInput<'a> {
    /// Transport protocol.
    pub l4: L4,
    /// These bytes were sent by the flow's client (the side that sent the first packet / SYN).
    pub from_client: bool,
    /// The client's port.
    pub client_port: u16,
    /// The server's port.
    pub server_port: u16,
    /// TCP: this direction's reassembled stream prefix from its first byte (grows as
    /// segments arrive, capped at ~4 KiB); UDP: one datagram.
    pub data: &'a [u8],
    /// TCP: the other direction's prefix so far (may be empty); UDP: the first datagram
    /// seen the other way, or empty.
    pub peer: &'a [u8],
    /// UDP: 0-based index of this datagram within its direction; TCP: 0.
    pub datagram_index: u32,
}

/// Result of [`match_any`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpResult {
    /// A fingerprint matched.
    Match(Fingerprint),
    /// Some matcher needs more bytes of this direction (TCP) or a confirming datagram
    /// (UDP) before it can decide.
    NeedMore,
    /// No fingerprint matches (the common case).
    NoMatch,
}

/// Size at which the engine stops growing a TCP stream prefix. A prefix this long cannot
/// grow any more, so a matcher must decide instead of asking for more.
const TCP_PREFIX_CAP: usize = 4096;

/// Run every matcher; `Match` if one matches, `NeedMore` if some matcher needs more bytes
/// of this direction to decide, else `NoMatch`.
///
/// Evidence for the event: a short printable description of what matched (e.g.
/// `"RFB 003.008"`) is written to `evidence`, and its length to `evidence_len`
/// (0 unless the result is `Match`).
pub fn match_any(
    input: &FpInput<'_>,
    evidence: &mut [u8; 64],
    evidence_len: &mut usize,
) -> FpResult {
    *evidence_len = 0;
    if input.data.is_empty() {
        return FpResult::NoMatch;
    }
    let matchers: &[Matcher] = match input.l4 {
        L4::Tcp => &TCP_MATCHERS,
        L4::Udp => &UDP_MATCHERS,
    };
    let mut need_more = false;
    for m in matchers {
        let mut ev = Evidence {
            buf: &mut *evidence,
            len: 0,
        };
        match m(input, &mut ev) {
            V::Hit(fp) => {
                *evidence_len = ev.len;
                return FpResult::Match(fp);
            }
            V::More => need_more = true,
            V::No => {}
        }
    }
    if need_more {
        FpResult::NeedMore
    } else {
        FpResult::NoMatch
    }
}

// ---------------------------------------------------------------------------------------
// Internal plumbing
// ---------------------------------------------------------------------------------------

/// Internal verdict of one matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    Hit(Fingerprint),
    More,
    No,
}

type Matcher = fn(&FpInput<'_>, &mut Evidence<'_>) -> V;

/// TCP matchers. Order only matters for cost: each rejects on its first bytes.
const TCP_MATCHERS: [Matcher; 12] = [
    m_teamviewer_tcp,
    m_rfb,
    m_rdp_x224,
    m_citrix,
    m_nomachine_tcp,
    m_radmin,
    m_screenconnect,
    m_splashtop,
    m_rustdesk_nat,
    m_dameware,
    m_http,
    m_never,
];

/// UDP matchers.
const UDP_MATCHERS: [Matcher; 5] = [
    m_teamviewer_udp,
    m_rdp_udp,
    m_anydesk_discovery,
    m_rustdesk_udp,
    m_nomachine_udp,
];

/// Placeholder that never matches (keeps the table a fixed-size array).
fn m_never(_: &FpInput<'_>, _: &mut Evidence<'_>) -> V {
    V::No
}

/// Bounded, printable evidence writer.
struct Evidence<'a> {
    buf: &'a mut [u8; 64],
    len: usize,
}

impl Evidence<'_> {
    /// Append one byte, replacing non-printable bytes by `.`; silently truncates at 64.
    fn byte(&mut self, b: u8) {
        let b = if (0x20..0x7f).contains(&b) { b } else { b'.' };
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len = self.len.saturating_add(1);
        }
    }
    /// Append bytes (made printable).
    fn bytes(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            self.byte(b);
        }
        self
    }
    /// Append a string.
    fn s(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    /// Append bytes as lowercase hex separated by spaces.
    fn hex(&mut self, s: &[u8]) -> &mut Self {
        const H: &[u8; 16] = b"0123456789abcdef";
        for (i, &b) in s.iter().enumerate() {
            if i > 0 {
                self.byte(b' ');
            }
            self.byte(H.get(usize::from(b >> 4)).copied().unwrap_or(b'?'));
            self.byte(H.get(usize::from(b & 15)).copied().unwrap_or(b'?'));
        }
        self
    }
    /// Append an unsigned decimal number.
    fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut n = 0usize;
        loop {
            if let Some(slot) = tmp.get_mut(n) {
                // `v % 10` < 10, the cast cannot truncate.
                *slot = b'0'.saturating_add((v % 10) as u8);
            }
            n = n.saturating_add(1);
            v /= 10;
            if v == 0 || n >= tmp.len() {
                break;
            }
        }
        while n > 0 {
            n = n.saturating_sub(1);
            if let Some(&d) = tmp.get(n) {
                self.byte(d);
            }
        }
        self
    }
}

/// Byte at `i`.
#[inline]
fn at(d: &[u8], i: usize) -> Option<u8> {
    d.get(i).copied()
}

/// Big-endian u16 at `i`.
#[inline]
fn be16(d: &[u8], i: usize) -> Option<u16> {
    let b = d.get(i..i.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Little-endian u16 at `i`.
#[inline]
fn le16(d: &[u8], i: usize) -> Option<u16> {
    be16(d, i).map(u16::swap_bytes)
}

/// Big-endian u32 at `i`.
#[inline]
fn be32(d: &[u8], i: usize) -> Option<u32> {
    let b = d.get(i..i.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// Little-endian u32 at `i`.
#[inline]
fn le32(d: &[u8], i: usize) -> Option<u32> {
    be32(d, i).map(u32::swap_bytes)
}

/// `d.get(a..b)` with an offset/length pair.
#[inline]
fn sub(d: &[u8], start: usize, len: usize) -> Option<&[u8]> {
    d.get(start..start.checked_add(len)?)
}

/// How `data` relates to a fixed pattern anchored at offset 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prefix {
    /// `data` starts with the whole pattern.
    Full,
    /// `data` is shorter than the pattern and equal to its beginning.
    Partial,
    /// `data` differs from the pattern.
    Mismatch,
}

fn prefix(data: &[u8], pat: &[u8]) -> Prefix {
    if data.starts_with(pat) {
        Prefix::Full
    } else if data.len() < pat.len() && pat.starts_with(data) {
        Prefix::Partial
    } else {
        Prefix::Mismatch
    }
}

/// Whether the engine may still deliver more bytes of this direction.
#[inline]
fn can_grow(inp: &FpInput<'_>) -> bool {
    inp.l4 == L4::Tcp && inp.data.len() < TCP_PREFIX_CAP
}

/// `More` if more bytes can come, else `No`.
#[inline]
fn more_or_no(inp: &FpInput<'_>) -> V {
    if can_grow(inp) {
        V::More
    } else {
        V::No
    }
}

/// Either endpoint uses `port`.
#[inline]
fn either_port(inp: &FpInput<'_>, port: u16) -> bool {
    inp.client_port == port || inp.server_port == port
}

/// First index of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// ASCII case-insensitive `starts_with`.
fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}

// ---------------------------------------------------------------------------------------
// TeamViewer
// ---------------------------------------------------------------------------------------

/// Longest TeamViewer frame accepted when walking a chain of frames.
const TV_MAX_FRAME: usize = 1 << 20;

/// Result of walking TeamViewer frames from the start of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TvChain {
    /// Number of complete frames, each followed by another frame header or the end.
    complete: u32,
    /// The data ends inside a frame.
    partial: bool,
}

/// Walk TeamViewer frames: `17 24 <cmd> <u16 LE len>` + len bytes, or
/// `11 30 <cmd> <flags> <u32 LE len> <16 more header bytes>` + len bytes.
///
/// The magics come from nDPI-TV (top-tools row 3); the length fields were worked out on
/// `teamviewer.pcap` (observed in corpus: the client frames of 37, 29+37 and 1838 bytes and
/// the server frames of 48, 147 and 2696 bytes chain exactly). Returns `None` when the
/// data is not (or stops being) a chain of such frames.
fn tv_chain(d: &[u8]) -> Option<TvChain> {
    let mut off = 0usize;
    let mut complete = 0u32;
    loop {
        let rest = d.get(off..)?;
        if rest.is_empty() || complete >= 16 {
            return Some(TvChain {
                complete,
                partial: false,
            });
        }
        let partial = TvChain {
            complete,
            partial: true,
        };
        let frame_len = match (at(rest, 0), at(rest, 1)) {
            (Some(0x17), None) | (Some(0x11), None) => return Some(partial),
            (Some(0x17), Some(0x24)) => match le16(rest, 3) {
                Some(len) => usize::from(len).checked_add(5)?,
                None => return Some(partial),
            },
            (Some(0x11), Some(0x30)) => match le32(rest, 4) {
                Some(len) => {
                    let len = usize::try_from(len).ok()?;
                    if len > TV_MAX_FRAME {
                        return None;
                    }
                    len.checked_add(24)?
                }
                None => return Some(partial),
            },
            _ => return None,
        };
        if frame_len > rest.len() {
            return Some(partial);
        }
        complete = complete.saturating_add(1);
        off = off.checked_add(frame_len)?;
    }
}

/// TeamViewer over TCP (any port).
///
/// Source: nDPI-TV (top-tools row 3): the TCP payload starts `17 24`, a later one may start
/// `11 30`; keep-alive `17 24 1b 00 00` to 5938 (ET:2008794/2008795).
///
/// Why it is safe: a 2-byte magic alone is too short, so the length fields must chain:
/// * two or more complete frames in this direction, each starting with a magic exactly
///   where the previous length says; or
/// * one complete frame and either port 5938 or a peer stream that is itself a valid
///   TeamViewer frame (the `11 30` server reply in the corpus).
///
/// TLS can never be confused with it: a TLS record header is `<type> 03 <minor>` (the
/// version major byte is always 3), so TLS application data starts `17 03`, never `17 24`,
/// and no TLS content type is `0x11`.
fn m_teamviewer_tcp(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if !matches!(at(d, 0), Some(0x17) | Some(0x11)) {
        return V::No;
    }
    let Some(chain) = tv_chain(d) else {
        return V::No;
    };
    let magic = sub(d, 0, 2).unwrap_or(&[]);
    let hit = |ev: &mut Evidence<'_>, why: &str| {
        ev.s("TeamViewer ").hex(magic).s(" framing, ").s(why);
        V::Hit(Fingerprint::TeamviewerTcp)
    };
    if chain.complete >= 2 {
        return hit(ev, "2+ frames");
    }
    if chain.complete == 1 {
        if either_port(inp, 5938) {
            return hit(ev, "port 5938");
        }
        if tv_chain(inp.peer).is_some_and(|p| p.complete >= 1) {
            return hit(ev, "peer framed too");
        }
    }
    more_or_no(inp)
}

/// TeamViewer over UDP (any port).
///
/// Source: nDPI-TV (top-tools row 3): bytes 11-12 of the datagram are `17 24`. Observed
/// in corpus (`teamviewer.pcap`, UDP 36037, 38 datagrams): byte 13 is a command and the
/// u16 LE at 14 is always the datagram length minus 16.
///
/// Why it is safe: magic + exact length field; a lone datagram still needs port 5938 or a
/// peer datagram with the same structure (nDPI likewise waits for several packets unless
/// the port is 5938). Without confirmation the verdict is `NeedMore` (a reply may come).
fn m_teamviewer_udp(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    if !tv_udp_shape(inp.data) {
        return V::No;
    }
    let how = if either_port(inp, 5938) {
        "port 5938"
    } else if tv_udp_shape(inp.peer) {
        "both directions"
    } else {
        return V::More;
    };
    ev.s("TeamViewer UDP 17 24 @11, cmd 0x")
        .hex(sub(inp.data, 13, 1).unwrap_or(&[]))
        .s(", ")
        .s(how);
    V::Hit(Fingerprint::TeamviewerUdp)
}

/// Structural check of one TeamViewer UDP datagram.
fn tv_udp_shape(d: &[u8]) -> bool {
    sub(d, 11, 2) == Some(&[0x17, 0x24][..])
        && le16(d, 14)
            .and_then(|l| usize::from(l).checked_add(16))
            .is_some_and(|total| total == d.len())
}

// ---------------------------------------------------------------------------------------
// VNC
// ---------------------------------------------------------------------------------------

/// VNC: RFB ProtocolVersion message (RFC 6143 §7.1.1): exactly 12 bytes
/// `"RFB " ddd "." ddd "\n"` sent first by the server and echoed by the client.
///
/// Why it is safe: only at the very start of a stream (an RFB-like string inside an HTTP
/// body is never at offset 0 of the stream), and all 12 bytes are checked (digits, dot,
/// newline). Versions seen: 003.003/007/008, Apple 003.889 (top-tools row 22), RealVNC
/// 004.001 (observed in corpus, `vnc.pcap` on port 6900).
fn m_rfb(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if at(d, 0) != Some(b'R') {
        return V::No;
    }
    // Template: 'd' = ASCII digit, anything else literal.
    const TEMPLATE: &[u8; 12] = b"RFB ddd.ddd\n";
    for (i, &t) in TEMPLATE.iter().enumerate() {
        let Some(b) = at(d, i) else {
            return more_or_no(inp);
        };
        let ok = if t == b'd' {
            b.is_ascii_digit()
        } else {
            b == t
        };
        if !ok {
            return V::No;
        }
    }
    ev.bytes(sub(d, 0, 11).unwrap_or(&[]));
    V::Hit(Fingerprint::VncRfb)
}

// ---------------------------------------------------------------------------------------
// RDP over TCP
// ---------------------------------------------------------------------------------------

/// RDP: TPKT (`03 00 <u16 BE len>`) + X.224 Connection Request (`0xE0`) or Confirm
/// (`0xD0`), MS-RDPBCGR §2.2.1.1 / §2.2.1.2; ET:2027192, 2027412/2027413, 2012709,
/// 2001329/2001330.
///
/// Why it is safe: the TPKT length must equal the X.224 length indicator + 5 and the
/// whole TPKT must be present; the X.224 part must then carry RDP-specific content:
/// `Cookie: mstshash=` / `Cookie: msts=` (routing token) or an RDP_NEG_REQ
/// (`01 <flags> 08 00 <u32 protocols>`) for a request, RDP_NEG_RSP/RDP_NEG_FAILURE
/// (`02|03 <flags> 08 00 ...`) for a confirm. A bare CR/CC (no RDP content; other ISO
/// transport users such as S7comm send TSAP parameters instead) only counts on port 3389.
fn m_rdp_x224(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if at(d, 0) != Some(0x03) {
        return V::No;
    }
    if d.len() < 6 {
        return match prefix(d, &[0x03, 0x00]) {
            Prefix::Mismatch => V::No,
            _ => more_or_no(inp),
        };
    }
    if at(d, 1) != Some(0x00) {
        return V::No;
    }
    let tpkt_len = usize::from(be16(d, 2).unwrap_or(0));
    let li = usize::from(at(d, 4).unwrap_or(0));
    let code = at(d, 5).unwrap_or(0);
    // A CR/CC has a fixed part of 6 bytes after LI; cap the size at something sane.
    if !(11..=1024).contains(&tpkt_len) || li.checked_add(5) != Some(tpkt_len) {
        return V::No;
    }
    let is_cr = code == 0xE0;
    let is_cc = code == 0xD0;
    if !is_cr && !is_cc {
        return V::No;
    }
    if d.len() < tpkt_len {
        return more_or_no(inp);
    }
    // Fixed part: DST-REF (2), SRC-REF (2), class option (1). Class 0 for RDP.
    if at(d, 10) != Some(0) {
        return V::No;
    }
    let var = d.get(11..tpkt_len).unwrap_or(&[]);
    if is_cr {
        // A CR's DST-REF is always 0 (X.224).
        if be16(d, 6) != Some(0) {
            return V::No;
        }
        rdp_cr_content(inp, var, ev)
    } else {
        rdp_cc_content(inp, var, ev)
    }
}

/// Variable part of an X.224 CR: optional cookie/routing-token line, optional RDP_NEG_REQ
/// (+ optional RDP_NEG_CORRELATION_INFO, 36 bytes, when flag 0x08 is set).
fn rdp_cr_content(inp: &FpInput<'_>, var: &[u8], ev: &mut Evidence<'_>) -> V {
    let mut rest = var;
    let mut cookie: Option<&[u8]> = None;
    if starts_with_ci(rest, b"Cookie:") {
        let Some(eol) = find(rest, b"\r\n") else {
            return V::No;
        };
        let line = rest.get(..eol).unwrap_or(&[]);
        let value = line.get(7..).unwrap_or(&[]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if !(value.starts_with(b"mstshash=") || value.starts_with(b"msts=")) {
            return V::No;
        }
        cookie = Some(value);
        rest = rest.get(eol.saturating_add(2)..).unwrap_or(&[]);
    }
    let mut neg: Option<u32> = None;
    if !rest.is_empty() {
        // RDP_NEG_REQ: type 0x01, flags, length 0x0008 (LE), requestedProtocols (LE).
        let ok_hdr = at(rest, 0) == Some(0x01) && le16(rest, 2) == Some(8);
        let flags = at(rest, 1).unwrap_or(0xff);
        let protocols = le32(rest, 4).unwrap_or(u32::MAX);
        let expect = if flags & 0x08 != 0 { 8 + 36 } else { 8 };
        // Known protocol bits: SSL 1, HYBRID 2, RDSTLS 4, HYBRID_EX 8, RDSAAD 0x10.
        if !ok_hdr || rest.len() != expect || protocols & !0x3f != 0 {
            return V::No;
        }
        neg = Some(protocols);
    }
    if cookie.is_none() && neg.is_none() && inp.server_port != 3389 {
        return V::No;
    }
    ev.s("X.224 CR");
    if let Some(c) = cookie {
        ev.s(" ").bytes(c.get(..40).unwrap_or(c));
    }
    if let Some(p) = neg {
        ev.s(" RDP_NEG_REQ proto=").dec(u64::from(p));
    }
    if cookie.is_none() && neg.is_none() {
        ev.s(" (bare, port 3389)");
    }
    V::Hit(Fingerprint::RdpX224)
}

/// Variable part of an X.224 CC: RDP_NEG_RSP (type 2) or RDP_NEG_FAILURE (type 3).
fn rdp_cc_content(inp: &FpInput<'_>, var: &[u8], ev: &mut Evidence<'_>) -> V {
    if var.is_empty() {
        if either_port(inp, 3389) && !inp.from_client {
            ev.s("X.224 CC (bare, port 3389)");
            return V::Hit(Fingerprint::RdpX224);
        }
        return V::No;
    }
    let kind = at(var, 0);
    if var.len() != 8 || le16(var, 2) != Some(8) || !matches!(kind, Some(0x02) | Some(0x03)) {
        return V::No;
    }
    let val = le32(var, 4).unwrap_or(0);
    if kind == Some(0x02) {
        if val & !0x3f != 0 {
            return V::No;
        }
        ev.s("X.224 CC RDP_NEG_RSP proto=").dec(u64::from(val));
    } else {
        // Failure codes 1..=6 (MS-RDPBCGR 2.2.1.2.2).
        if !(1..=6).contains(&val) {
            return V::No;
        }
        ev.s("X.224 CC RDP_NEG_FAILURE code=").dec(u64::from(val));
    }
    V::Hit(Fingerprint::RdpX224)
}

// ---------------------------------------------------------------------------------------
// RDP over UDP (MS-RDPEUDP)
// ---------------------------------------------------------------------------------------

const RDPUDP_SYN: u16 = 0x0001;
const RDPUDP_ACK: u16 = 0x0004;
const RDPUDP_DATA: u16 = 0x0008;
const RDPUDP_FEC: u16 = 0x0010;
const RDPUDP_AOA: u16 = 0x0100;

/// MTU range required in SYN and SYN+ACK (MS-RDPEUDP 3.1.5.1.1).
fn rdpudp_mtu_ok(d: &[u8]) -> bool {
    let ok = |m: Option<u16>| m.is_some_and(|m| (1132..=1232).contains(&m));
    ok(be16(d, 12)) && ok(be16(d, 14))
}

/// RDP over UDP (MS-RDPEUDP), any port. Three shapes:
/// * SYN (§3.1.5.1.1): RDPUDP_FEC_HEADER with `snSourceAck = -1` (`ff ff ff ff`), the SYN
///   flag and no ACK, then RDPUDP_SYNDATA_PAYLOAD whose two MTUs MUST be 1132..=1232.
///   32 fixed bits + two narrow ranges make a chance hit negligible.
/// * SYN+ACK (§3.1.5.1.1 SYN+ACK): SYN|ACK flags, MTUs in range and `snSourceAck` equal to
///   the client's `snInitialSequenceNumber` from the peer SYN (required).
/// * ACK+DATA (§3.1.5.1.4) seen mid-flow (captures that start after the handshake):
///   ACK vector header (size ≤ 2048, padded to 4 bytes), optional ACK-of-ACKs header, a
///   source payload header whose `snCoded` equals `snSourceStart` (observed in corpus,
///   `rdp2.pcap`: both start at ISN+1 and advance together without FEC), then a TLS or DTLS
///   record header whose length fits in the datagram. The equal 32-bit pair plus a valid
///   record header is what makes this safe.
fn m_rdp_udp(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if d.len() < 16 {
        return V::No;
    }
    let Some(flags) = be16(d, 6) else {
        return V::No;
    };
    if flags & RDPUDP_SYN != 0 {
        if !rdpudp_mtu_ok(d) {
            return V::No;
        }
        if flags & RDPUDP_ACK == 0 {
            if be32(d, 0) != Some(u32::MAX) {
                return V::No;
            }
            ev.s("RDPEUDP SYN flags=0x")
                .hex(sub(d, 6, 2).unwrap_or(&[]))
                .s(" mtu=")
                .dec(u64::from(be16(d, 12).unwrap_or(0)));
            return V::Hit(Fingerprint::RdpUdp);
        }
        // SYN+ACK: confirm against the peer SYN.
        let peer = inp.peer;
        let peer_is_syn = be32(peer, 0) == Some(u32::MAX)
            && be16(peer, 6).is_some_and(|f| f & (RDPUDP_SYN | RDPUDP_ACK) == RDPUDP_SYN)
            && rdpudp_mtu_ok(peer);
        if peer_is_syn && be32(peer, 8).is_some() && be32(peer, 8) == be32(d, 0) {
            ev.s("RDPEUDP SYN+ACK acks peer ISN");
            return V::Hit(Fingerprint::RdpUdp);
        }
        return V::No;
    }
    if rdpudp_data_shape(d, flags) {
        ev.s("RDPEUDP ACK+DATA carrying ");
        ev.s(
            if at(
                d,
                rdpudp_payload_offset(d, flags)
                    .unwrap_or(0)
                    .saturating_add(1),
            ) == Some(0xfe)
            {
                "DTLS"
            } else {
                "TLS"
            },
        );
        return V::Hit(Fingerprint::RdpUdp);
    }
    V::No
}

/// Offset of the payload after the FEC header, ACK vector, optional ACK-of-ACKs and the
/// source payload header; `None` if the headers do not fit.
fn rdpudp_payload_offset(d: &[u8], flags: u16) -> Option<usize> {
    let vec_len = usize::from(be16(d, 8)?);
    if vec_len > 2048 {
        return None;
    }
    // uAckVectorSize (2) + elements, padded to a DWORD boundary (the header starts at 8).
    let raw = vec_len.checked_add(2)?;
    let padded = raw.checked_add(3)? & !3;
    let mut off = 8usize.checked_add(padded)?;
    if flags & RDPUDP_AOA != 0 {
        off = off.checked_add(4)?;
    }
    // RDPUDP_SOURCE_PAYLOAD_HEADER: snCoded, snSourceStart.
    let coded = be32(d, off)?;
    let start = be32(d, off.checked_add(4)?)?;
    if coded != start {
        return None;
    }
    off.checked_add(8)
}

/// Whether `d` is an RDP-UDP ACK+DATA datagram carrying a TLS or DTLS record.
fn rdpudp_data_shape(d: &[u8], flags: u16) -> bool {
    // ACK and DATA set, no SYN/FEC, no undefined high bits.
    if flags & (RDPUDP_ACK | RDPUDP_DATA) != (RDPUDP_ACK | RDPUDP_DATA)
        || flags & (RDPUDP_SYN | RDPUDP_FEC) != 0
        || flags & 0xE000 != 0
    {
        return false;
    }
    let Some(off) = rdpudp_payload_offset(d, flags) else {
        return false;
    };
    let Some(rec) = d.get(off..) else {
        return false;
    };
    if !matches!(at(rec, 0), Some(0x14..=0x17)) {
        return false;
    }
    let (hdr, len) = match (at(rec, 1), at(rec, 2)) {
        // TLS 1.0 .. 1.3 record header.
        (Some(0x03), Some(0x01..=0x04)) => (5usize, be16(rec, 3)),
        // DTLS 1.0 / 1.2 record header (13 bytes, length at 11).
        (Some(0xfe), Some(0xff)) | (Some(0xfe), Some(0xfd)) => (13usize, be16(rec, 11)),
        _ => return false,
    };
    match len {
        Some(l) if l > 0 => usize::from(l)
            .checked_add(hdr)
            .is_some_and(|need| need <= rec.len()),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Citrix
// ---------------------------------------------------------------------------------------

/// Citrix ICA greeting `7f 7f 49 43 41 00` ("\x7f\x7fICA\0"), sent by both sides at the
/// start of the stream (observed in corpus, `citrix.pcap` port 1494, both directions);
/// Citrix CGP (session reliability) greeting `1a 43 47 50 2f 30 31` ("\x1aCGP/01").
///
/// Why it is safe: 6 and 7 fixed bytes at offset 0 of the stream, starting with control
/// characters no text protocol uses.
fn m_citrix(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    const ICA: &[u8] = b"\x7f\x7fICA\x00";
    const CGP: &[u8] = b"\x1aCGP/01";
    let d = inp.data;
    let (pat, fp, what) = match at(d, 0) {
        Some(0x7f) => (ICA, Fingerprint::CitrixIca, "ICA greeting 7f 7f 'ICA' 00"),
        Some(0x1a) => (CGP, Fingerprint::CitrixCgp, "CGP greeting 1a 'CGP/01'"),
        _ => return V::No,
    };
    match prefix(d, pat) {
        Prefix::Full => {
            ev.s(what);
            V::Hit(fp)
        }
        Prefix::Partial => more_or_no(inp),
        Prefix::Mismatch => V::No,
    }
}

// ---------------------------------------------------------------------------------------
// NoMachine
// ---------------------------------------------------------------------------------------

/// NoMachine NX banner: client `NXSH-<version>\n`, server `NXD-<version>\n`, then TLS
/// (nDPI `nomachine.c`: payload 11..=14 bytes starting `NXSH-` or `NXD-`; observed in
/// corpus: `NXSH-8.10.1\n` and `NXD-8.10.1\n` on port 4000).
///
/// Why it is safe: the prefix must be followed by a version made only of digits and dots
/// (starting with a digit) and a newline within 24 bytes.
fn m_nomachine_tcp(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if at(d, 0) != Some(b'N') {
        return V::No;
    }
    let head: &[u8] = match (prefix(d, b"NXSH-"), prefix(d, b"NXD-")) {
        (Prefix::Full, _) => b"NXSH-",
        (_, Prefix::Full) => b"NXD-",
        (Prefix::Partial, _) | (_, Prefix::Partial) => return more_or_no(inp),
        _ => return V::No,
    };
    let rest = d.get(head.len()..).unwrap_or(&[]);
    for (i, &b) in rest.iter().enumerate() {
        if b == b'\n' {
            if i == 0 {
                return V::No;
            }
            ev.s("NoMachine banner ")
                .bytes(d.get(..head.len().saturating_add(i)).unwrap_or(&[]));
            return V::Hit(Fingerprint::NomachineBanner);
        }
        let ok = if i == 0 {
            b.is_ascii_digit()
        } else {
            b.is_ascii_digit() || b == b'.'
        };
        if !ok || i >= 20 {
            return V::No;
        }
    }
    more_or_no(inp)
}

/// NoMachine UDP media framing (reported as `nomachine_banner`, the only NoMachine
/// fingerprint): nDPI `nomachine.c`: length > 9, u16 LE at 2 == 1, u16 LE at 4 == datagram
/// length, u16 at 8 == 0 (observed in corpus: `01 00 01 00 0a 00 00 00 00 00` keep-alives
/// to UDP 4000).
///
/// Why it is safe: the checks are few for UDP, so they must also hold for the peer's first
/// datagram, or the flow must use NoMachine's default port 4000.
fn m_nomachine_udp(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    if !nx_udp_shape(inp.data) {
        return V::No;
    }
    let how = if either_port(inp, 4000) {
        "port 4000"
    } else if nx_udp_shape(inp.peer) {
        "both directions"
    } else {
        return V::More;
    };
    ev.s("NoMachine UDP header, ").s(how);
    V::Hit(Fingerprint::NomachineBanner)
}

fn nx_udp_shape(d: &[u8]) -> bool {
    d.len() > 9
        && le16(d, 2) == Some(1)
        && le16(d, 4).is_some_and(|l| usize::from(l) == d.len())
        && le16(d, 8) == Some(0)
}

// ---------------------------------------------------------------------------------------
// Radmin
// ---------------------------------------------------------------------------------------

/// Radmin handshake messages (ET:2003479-2003482, 2019101; top-tools row 19):
/// * session setup `01 00 00 00 01 00 00 00 08 08` (client, 10 bytes);
/// * setup reply starting `01 00 00 00 25 00 00 02 12 08 02 00 00 0a 00 00 00 00 00 00`;
/// * auth challenge `01 00 00 00 05 00 00 02 27 27 02 00 00 00`;
/// * auth response `01 00 00 00 05 00 00 00 27 27 00 00 00 00`.
///
/// Why it is safe: 10 to 20 fixed bytes at the stream start. They also obey Radmin's
/// framing (observed in corpus, `radmin3.pcapng`: `01`, u32 BE body length at 1, 4 more
/// header bytes, body; 10 = 9 + 1, 46 = 9 + 0x25, 14 = 9 + 5), which the matcher checks.
fn m_radmin(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    const SETUP: &[u8] = &[0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0x08];
    const SETUP_REPLY: &[u8] = &[
        0x01, 0, 0, 0, 0x25, 0, 0, 0x02, 0x12, 0x08, 0x02, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0,
    ];
    const AUTH_CHALLENGE: &[u8] = &[0x01, 0, 0, 0, 0x05, 0, 0, 0x02, 0x27, 0x27, 0x02, 0, 0, 0];
    const AUTH_RESPONSE: &[u8] = &[0x01, 0, 0, 0, 0x05, 0, 0, 0, 0x27, 0x27, 0, 0, 0, 0];
    let d = inp.data;
    if at(d, 0) != Some(0x01) {
        return V::No;
    }
    let pats: [(&[u8], &str); 4] = [
        (SETUP, "Radmin session setup"),
        (SETUP_REPLY, "Radmin session setup reply"),
        (AUTH_CHALLENGE, "Radmin auth challenge"),
        (AUTH_RESPONSE, "Radmin auth response"),
    ];
    let mut partial = false;
    for (pat, what) in pats {
        match prefix(d, pat) {
            Prefix::Full => {
                // Framing: 9-byte header + body length from bytes 1..5 must fit.
                let framed = be32(d, 1)
                    .and_then(|l| usize::try_from(l).ok())
                    .and_then(|l| l.checked_add(9))
                    .is_some_and(|total| total <= d.len());
                if framed {
                    ev.s(what);
                    return V::Hit(Fingerprint::RadminHandshake);
                }
                partial = true;
            }
            Prefix::Partial => partial = true,
            Prefix::Mismatch => {}
        }
    }
    if partial {
        more_or_no(inp)
    } else {
        V::No
    }
}

// ---------------------------------------------------------------------------------------
// ScreenConnect
// ---------------------------------------------------------------------------------------

/// ConnectWise ScreenConnect relay check-in (ET:2036627 M1, 2048051 M2, 2048143 M3;
/// top-tools row 1): the stream starts `87 15|1c|12 10 00` + 12 zero bytes.
///
/// Why it is safe: 16 fixed bytes at the stream start. For M3, as ET does, also: byte 23
/// is `01`, and one byte-length jump from offset 24 lands on another `01`; and the peer
/// has sent fewer than 5 bytes (ET `stream_size:server,<,5`).
fn m_screenconnect(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if at(d, 0) != Some(0x87) {
        return V::No;
    }
    let variant = match at(d, 1) {
        None => return more_or_no(inp),
        Some(0x15) => "M1",
        Some(0x1c) => "M2",
        Some(0x12) => "M3",
        Some(_) => return V::No,
    };
    let mut pat = [0u8; 16];
    pat[0] = 0x87;
    pat[1] = at(d, 1).unwrap_or(0);
    pat[2] = 0x10;
    match prefix(d, &pat) {
        Prefix::Partial => return more_or_no(inp),
        Prefix::Mismatch => return V::No,
        Prefix::Full => {}
    }
    if variant == "M3" {
        if inp.peer.len() >= 5 {
            return V::No;
        }
        let Some(n) = at(d, 24) else {
            return more_or_no(inp);
        };
        if at(d, 23) != Some(0x01) {
            return V::No;
        }
        let target = 25usize.saturating_add(usize::from(n));
        match at(d, target) {
            Some(0x01) => {}
            Some(_) => return V::No,
            None => return more_or_no(inp),
        }
    }
    ev.s("ScreenConnect check-in ")
        .s(variant)
        .s(" ")
        .hex(sub(d, 0, 4).unwrap_or(&[]));
    V::Hit(Fingerprint::ScreenconnectRelay)
}

// ---------------------------------------------------------------------------------------
// Splashtop
// ---------------------------------------------------------------------------------------

/// Splashtop LAN connections (ET:2014127-2014129; top-tools row 5):
/// * check-in to 6783: exactly 12 bytes `00 01 00 08 00 00 00 00 00 02 01 00`;
/// * session start `01 00 34 12` / keep-alive `00 00 34 12` to 6784: exactly 4 bytes.
///
/// Why it is safe: ET keys both on `dsize` (exact message size). The 12-byte check-in is
/// accepted on any port only as the whole first client message (`data.len() == 12`) or as
/// a prefix on ports 6783-6785; the 4-byte messages are too short for anything but port
/// 6784 plus the exact size.
fn m_splashtop(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    const CHECKIN: &[u8] = &[0, 0x01, 0, 0x08, 0, 0, 0, 0, 0, 0x02, 0x01, 0];
    let d = inp.data;
    if !inp.from_client || !matches!(at(d, 0), Some(0x00) | Some(0x01)) {
        return V::No;
    }
    let lan_port = (6783..=6785).contains(&inp.server_port);
    let mut partial = false;
    match prefix(d, CHECKIN) {
        Prefix::Full if d.len() == CHECKIN.len() || lan_port => {
            ev.s("Splashtop LAN check-in");
            return V::Hit(Fingerprint::SplashtopLan);
        }
        Prefix::Partial => partial = true,
        _ => {}
    }
    if inp.server_port == 6784 {
        for (pat, what) in [
            (
                &[0x01, 0x00, 0x34, 0x12],
                "Splashtop session start 01 00 34 12",
            ),
            (
                &[0x00, 0x00, 0x34, 0x12],
                "Splashtop keep-alive 00 00 34 12",
            ),
        ] {
            match prefix(d, pat) {
                Prefix::Full if d.len() == pat.len() => {
                    ev.s(what);
                    return V::Hit(Fingerprint::SplashtopLan);
                }
                Prefix::Partial => partial = true,
                _ => {}
            }
        }
    }
    if partial {
        more_or_no(inp)
    } else {
        V::No
    }
}

// ---------------------------------------------------------------------------------------
// RustDesk
// ---------------------------------------------------------------------------------------

/// RustDesk NAT-type test on TCP (ET:2044069, to 21115/21116): exactly the 6 bytes
/// `14 a2 01 02 08 01`. They are internally consistent: `0x14` is RustDesk's BytesCodec
/// 1-byte header (low 2 bits 0, length 0x14 >> 2 = 5), followed by the 5-byte protobuf
/// `a2 01 02 08 01` (field 20, length 2, `08 01`).
///
/// Why it is safe: on any port only as the whole first message (`data.len() == 6`, ET
/// `dsize:6`); on 21115/21116 a prefix suffices.
fn m_rustdesk_nat(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    const NAT: &[u8] = &[0x14, 0xa2, 0x01, 0x02, 0x08, 0x01];
    let d = inp.data;
    if at(d, 0) != Some(0x14) {
        return V::No;
    }
    match prefix(d, NAT) {
        Prefix::Full if d.len() == NAT.len() || matches!(inp.server_port, 21115 | 21116) => {
            ev.s("RustDesk NAT test 14 a2 01 02 08 01");
            V::Hit(Fingerprint::RustdeskNatTest)
        }
        Prefix::Partial => more_or_no(inp),
        _ => V::No,
    }
}

/// RustDesk UDP messages, all protobuf whose outer length must equal the datagram size:
/// * RegisterPeer (ET:2044070/2044071): `32 <len> 0a <n> <id> 10 <serial>`; ET fixes n = 9
///   and a 15-byte datagram; here the id may be 1..=32 printable bytes and the whole
///   message must be consumed exactly.
/// * RegisterPk (ET:2044073): `7a 53 0a 09 <9-byte id> 12 24 <36-byte UUID>` with `-` at
///   23/28/33/38, then `1a 20 <32-byte key>`: exactly 85 bytes.
/// * Software-update query (ET:2044072, to 21116): `8a 01 07 0a 05 <5 bytes>`, 10 bytes.
/// * LAN discovery ping (ET:2044075, to 21119): exactly `b2 01 06 0a 04 "ping"`.
/// * LAN discovery pong (ET:2044074, from 21119): `"pong"` at offset 5 after `0a 04`,
///   followed in order by the tags `1a 0a`, `22 03`, `2a 20`, `32 06`.
fn m_rustdesk_udp(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    let what = match at(d, 0) {
        Some(0x32) if rd_register_peer(d) => "RustDesk RegisterPeer",
        Some(0x7a) if rd_register_pk(d) => "RustDesk RegisterPk",
        Some(0x8a)
            if d.len() == 10
                && sub(d, 0, 5) == Some(&[0x8a, 0x01, 0x07, 0x0a, 0x05][..])
                && inp.server_port == 21116 =>
        {
            "RustDesk software-update query"
        }
        Some(0xb2) if d == b"\xb2\x01\x06\x0a\x04ping" => "RustDesk LAN discovery ping",
        _ if either_port(inp, 21119) && rd_pong(d) => "RustDesk LAN discovery pong",
        _ => return V::No,
    };
    ev.s(what);
    V::Hit(Fingerprint::RustdeskRendezvous)
}

/// RegisterPeer: `32 L 0a n <id:n> 10 <serial varint, 1 byte>` with `L + 2 == len`.
fn rd_register_peer(d: &[u8]) -> bool {
    let (Some(l), Some(0x0a), Some(n)) = (at(d, 1), at(d, 2), at(d, 3)) else {
        return false;
    };
    let (l, n) = (usize::from(l), usize::from(n));
    if l >= 0x80 || l.checked_add(2) != Some(d.len()) || !(1..=32).contains(&n) {
        return false;
    }
    let Some(id) = sub(d, 4, n) else {
        return false;
    };
    let tail = 4usize.saturating_add(n);
    id.iter().all(|b| b.is_ascii_graphic())
        && at(d, tail) == Some(0x10)
        && at(d, tail.saturating_add(1)).is_some_and(|s| s < 0x80)
        && tail.checked_add(2) == Some(d.len())
}

/// RegisterPk as in ET:2044073 (fixed layout, 85 bytes).
fn rd_register_pk(d: &[u8]) -> bool {
    d.len() == 85
        && sub(d, 0, 4) == Some(&[0x7a, 0x53, 0x0a, 0x09][..])
        && sub(d, 4, 9).is_some_and(|id| id.iter().all(|b| b.is_ascii_graphic()))
        && sub(d, 13, 2) == Some(&[0x12, 0x24][..])
        && sub(d, 15, 36).is_some_and(|u| {
            u.iter().enumerate().all(|(i, &b)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            })
        })
        && sub(d, 51, 2) == Some(&[0x1a, 0x20][..])
}

/// LAN discovery pong as in ET:2044074.
fn rd_pong(d: &[u8]) -> bool {
    if sub(d, 3, 6) != Some(&b"\x0a\x04pong"[..]) {
        return false;
    }
    let mut rest = d.get(9..).unwrap_or(&[]);
    for tag in [[0x1a, 0x0a], [0x22, 0x03], [0x2a, 0x20], [0x32, 0x06]] {
        match find(rest, &tag) {
            Some(i) => rest = rest.get(i.saturating_add(2)..).unwrap_or(&[]),
            None => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// AnyDesk
// ---------------------------------------------------------------------------------------

/// AnyDesk LAN discovery (UDP 50001-50003, RMML; ET:2030348 keys on `3e d1` at offset 0 and
/// a u32 BE length at 13). Layout per the public CVE-2020-13160 proof of concept (scryh,
/// walkthrough devel0pment.de/?p=1881): `3e d1 01`, u32 BE AnyDesk id, u32 BE 0, `02`,
/// OS byte, u32 BE hostname length + hostname, u32 BE user length + user, u32 BE 0, ...
///
/// Why it is safe: 3-byte magic, 4 zero bytes, a fixed `02`, and two length fields
/// (each ≤ 255) that must walk exactly through the datagram up to a following zero u32.
fn m_anydesk_discovery(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if at(d, 0) != Some(0x3e) || sub(d, 0, 3) != Some(&[0x3e, 0xd1, 0x01][..]) {
        return V::No;
    }
    if be32(d, 7) != Some(0) || at(d, 11) != Some(0x02) {
        return V::No;
    }
    let field = |off: usize| -> Option<(usize, &[u8])> {
        let n = usize::try_from(be32(d, off)?).ok()?;
        if n > 255 {
            return None;
        }
        let start = off.checked_add(4)?;
        Some((start.checked_add(n)?, sub(d, start, n)?))
    };
    let Some((after_host, host)) = field(13) else {
        return V::No;
    };
    let Some((after_user, _user)) = field(after_host) else {
        return V::No;
    };
    if be32(d, after_user) != Some(0) {
        return V::No;
    }
    ev.s("AnyDesk discovery host=")
        .bytes(host.get(..32).unwrap_or(host));
    V::Hit(Fingerprint::AnydeskDiscovery)
}

// ---------------------------------------------------------------------------------------
// Dameware
// ---------------------------------------------------------------------------------------

/// Dameware Mini Remote Control session initiation (ET:2068020 "M2", written for TCP 6129
/// and commented out in the ET file): a 40-byte message starting with the 36 bytes
/// `30 11 00×12 38 40 00×8 04 00×11` and ending `00 00 00`.
///
/// Why it is safe: 40 bytes with fixed non-zero bytes at 0, 1, 14, 15 and 24 and zeros
/// elsewhere; accepted only as the exact first message of the client (`data.len() == 40`,
/// ET `dsize:40`) or on port 6129. Confidence is lower than the others: ET's M1 (which M2
/// depends on through a flowbit) is not in the shared files and no capture was available.
fn m_dameware(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if at(d, 0) != Some(0x30) || !inp.from_client {
        return V::No;
    }
    let mut pat = [0u8; 40];
    pat[0] = 0x30;
    pat[1] = 0x11;
    pat[14] = 0x38;
    pat[15] = 0x40;
    pat[24] = 0x04;
    // Byte 36 is free in ET's rule; compare the 36-byte prefix and the 3-byte tail.
    let head_ok = |x: &[u8]| x.iter().zip(pat.iter()).take(36).all(|(a, b)| a == b);
    if d.len() < 40 {
        return if head_ok(d) { more_or_no(inp) } else { V::No };
    }
    let tail_ok = sub(d, 37, 3) == Some(&[0, 0, 0][..]);
    if head_ok(d) && tail_ok && (d.len() == 40 || inp.server_port == 6129) {
        ev.s("Dameware MRC session start 30 11 .. 38 40");
        return V::Hit(Fingerprint::DamewareMrc);
    }
    V::No
}

// ---------------------------------------------------------------------------------------
// Cleartext HTTP indicators (TeamViewer DynGate, NetSupport, SimpleHelp, Ammyy)
// ---------------------------------------------------------------------------------------

/// Longest HTTP head the matcher waits for before giving up.
const HTTP_MAX_HEAD: usize = 2048;

/// Value of header `name` (case-insensitive) among the complete `\r\n`-terminated lines
/// of `block`, leading blanks trimmed.
fn header_value<'a>(block: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = block;
    while let Some(eol) = find(rest, b"\r\n") {
        let line = rest.get(..eol)?;
        rest = rest.get(eol.checked_add(2)?..)?;
        if line.is_empty() {
            return None;
        }
        if starts_with_ci(line, name) && at(line, name.len()) == Some(b':') {
            let mut v = line.get(name.len().checked_add(1)?..)?;
            while let Some((&b, tail)) = v.split_first() {
                if b == b' ' || b == b'\t' {
                    v = tail;
                } else {
                    break;
                }
            }
            return Some(v);
        }
    }
    None
}

/// Cleartext HTTP indicators. The request/response must start at offset 0 of the stream
/// and only its header block (plus, for Ammyy, a short body) is examined.
///
/// * TeamViewer DynGate: User-Agent `Mozilla/4.0 (compatible; MSIE 6.0; DynGate)`
///   (ET:2009475, top-tools row 3).
/// * NetSupport: `POST` with User-Agent starting `NetSupport Manager/` (ditekshen 920266,
///   ET:2035892); reply header `Server: NetSupport Gateway/` (ditekshen 920268,
///   ET:2035895); `GET /location/loca.asp` with Host `geo.netsupportsoftware.com`
///   (ET:2034559).
/// * SimpleHelp: `GET /machine-<13 digits>?ping=<hex>` (ET:2067965), `POST
///   /lossyproc?rand=<d>.<10+ digits>.<10+ digits>` (ET:2067966), `GET ...-version.txt?time=`
///   with User-Agent exactly `JWrapperDownloader` (ET:2049863), reply `Server:
///   SimpleHelp/SSuite` (ET:2049805).
/// * Ammyy: `GET /` with Host exactly `rl.ammyy.com` (ET:2025149); reply body `Your IP=...,
///   country = XX` (ET:2025150).
///
/// Why it is safe: every indicator is a long, product-specific string in a specific place
/// (request line, a named header, or the body start).
fn m_http(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if !matches!(at(d, 0), Some(b'G') | Some(b'P') | Some(b'H') | Some(b'C')) {
        return V::No;
    }
    if d.starts_with(b"HTTP/1.") {
        return http_response(inp, ev);
    }
    let Some(sp) = d.iter().take(8).position(|&b| b == b' ') else {
        return if d.len() < 8 && d.iter().all(|b| b.is_ascii_uppercase()) {
            more_or_no(inp)
        } else {
            V::No
        };
    };
    let method = d.get(..sp).unwrap_or(&[]);
    if !matches!(
        method,
        b"GET" | b"POST" | b"HEAD" | b"PUT" | b"CONNECT" | b"OPTIONS"
    ) {
        return V::No;
    }
    let Some(eol) = find(d, b"\r\n") else {
        return if d.len() < HTTP_MAX_HEAD {
            more_or_no(inp)
        } else {
            V::No
        };
    };
    let line = d.get(..eol).unwrap_or(&[]);
    let uri_full = line.get(sp.saturating_add(1)..).unwrap_or(&[]);
    let uri = match find(uri_full, b" HTTP/") {
        Some(i) => uri_full.get(..i).unwrap_or(&[]),
        None => return V::No,
    };
    let head_end = find(d, b"\r\n\r\n");
    let block_end = head_end.map_or(d.len(), |e| e.saturating_add(4));
    let block = d.get(eol.saturating_add(2)..block_end).unwrap_or(&[]);
    let ua = header_value(block, b"User-Agent");
    let host = header_value(block, b"Host");

    if ua.is_some_and(|u| u.starts_with(b"Mozilla/4.0 (compatible; MSIE 6.0; DynGate)")) {
        ev.s("UA: Mozilla/4.0 (compatible; MSIE 6.0; DynGate)");
        return V::Hit(Fingerprint::TeamviewerDyngate);
    }
    if method == b"POST" {
        if let Some(u) = ua.filter(|u| u.starts_with(b"NetSupport Manager/")) {
            ev.s("POST UA: ").bytes(u.get(..40).unwrap_or(u));
            return V::Hit(Fingerprint::NetsupportHttp);
        }
    }
    if method == b"GET"
        && uri == b"/location/loca.asp"
        && host.is_some_and(|h| h.eq_ignore_ascii_case(b"geo.netsupportsoftware.com"))
    {
        ev.s("GET /location/loca.asp geo.netsupportsoftware.com");
        return V::Hit(Fingerprint::NetsupportHttp);
    }
    if let Some(what) = simplehelp_request(method, uri, ua) {
        ev.s(what);
        return V::Hit(Fingerprint::SimplehelpHttp);
    }
    if method == b"GET"
        && uri == b"/"
        && host.is_some_and(|h| h.eq_ignore_ascii_case(b"rl.ammyy.com"))
    {
        ev.s("GET / Host: rl.ammyy.com");
        return V::Hit(Fingerprint::AmmyyHttp);
    }
    if head_end.is_none() && d.len() < HTTP_MAX_HEAD {
        return more_or_no(inp);
    }
    V::No
}

/// SimpleHelp request-line indicators; returns the evidence text.
fn simplehelp_request(method: &[u8], uri: &[u8], ua: Option<&[u8]>) -> Option<&'static str> {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if method == b"GET" {
        if let Some(rest) = uri.strip_prefix(b"/machine-") {
            let ts = rest.get(..13)?;
            let q = rest.get(13..)?.strip_prefix(b"?ping=")?;
            if digits(ts) && q.len() >= 10 && q.iter().all(u8::is_ascii_hexdigit) {
                return Some("SimpleHelp GET /machine-<ts>?ping=");
            }
            return None;
        }
        if ua == Some(&b"JWrapperDownloader"[..]) && find(uri, b"-version.txt?time=").is_some() {
            return Some("SimpleHelp JWrapperDownloader version check");
        }
    }
    if method == b"POST" {
        let q = uri.strip_prefix(b"/lossyproc?rand=")?;
        // <digit> "." <10+ digits> "." <10+ digits>
        let mut parts = q.split(|&b| b == b'.');
        let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_none()
            && a.len() == 1
            && digits(a)
            && b.len() >= 10
            && digits(b)
            && c.len() >= 10
            && digits(c)
        {
            return Some("SimpleHelp POST /lossyproc?rand=");
        }
    }
    None
}

/// HTTP responses: `Server: NetSupport Gateway/`, `Server: SimpleHelp/SSuite`, and the
/// Ammyy IP-check body.
fn http_response(inp: &FpInput<'_>, ev: &mut Evidence<'_>) -> V {
    let d = inp.data;
    if inp.from_client {
        return V::No;
    }
    let Some(eol) = find(d, b"\r\n") else {
        return if d.len() < HTTP_MAX_HEAD {
            more_or_no(inp)
        } else {
            V::No
        };
    };
    let head_end = find(d, b"\r\n\r\n");
    let block_end = head_end.map_or(d.len(), |e| e.saturating_add(4));
    let block = d.get(eol.saturating_add(2)..block_end).unwrap_or(&[]);
    if let Some(server) = header_value(block, b"Server") {
        if server.starts_with(b"NetSupport Gateway/") {
            ev.s("Server: ").bytes(server.get(..40).unwrap_or(server));
            return V::Hit(Fingerprint::NetsupportHttp);
        }
        if server.starts_with(b"SimpleHelp/SSuite") {
            ev.s("Server: SimpleHelp/SSuite");
            return V::Hit(Fingerprint::SimplehelpHttp);
        }
    }
    let Some(he) = head_end else {
        return if d.len() < HTTP_MAX_HEAD {
            more_or_no(inp)
        } else {
            V::No
        };
    };
    // Ammyy IP-check reply: body starts "Your IP=" and ends ", country = " + at most 2
    // bytes (ET `isdataat:!3,relative`).
    // An empty body is not waited for: most replies are not Ammyy's, and the request side
    // (`GET /` to rl.ammyy.com) is matched on its own.
    let body = d.get(he.saturating_add(4)..).unwrap_or(&[]);
    if body.is_empty() {
        return V::No;
    }
    match prefix(body, b"Your IP=") {
        Prefix::Partial => return more_or_no(inp),
        Prefix::Mismatch => return V::No,
        Prefix::Full => {}
    }
    if body.len() > 64 {
        return V::No;
    }
    match find(body, b", country = ") {
        Some(i) if body.len().saturating_sub(i.saturating_add(12)) <= 2 => {
            ev.s("Ammyy IP check reply ").bytes(body);
            V::Hit(Fingerprint::AmmyyHttp)
        }
        Some(_) => V::No,
        None => more_or_no(inp),
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// Parse a hex string (whitespace ignored).
    fn hx(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[derive(Clone, Copy)]
    struct Case<'a> {
        l4: L4,
        from_client: bool,
        cport: u16,
        sport: u16,
        data: &'a [u8],
        peer: &'a [u8],
    }

    fn tcp<'a>(from_client: bool, cport: u16, sport: u16, data: &'a [u8]) -> Case<'a> {
        Case {
            l4: L4::Tcp,
            from_client,
            cport,
            sport,
            data,
            peer: &[],
        }
    }

    fn udp<'a>(from_client: bool, cport: u16, sport: u16, data: &'a [u8]) -> Case<'a> {
        Case {
            l4: L4::Udp,
            ..tcp(from_client, cport, sport, data)
        }
    }

    impl<'a> Case<'a> {
        fn peer(mut self, p: &'a [u8]) -> Self {
            self.peer = p;
            self
        }
        fn run(&self) -> (FpResult, String) {
            let inp = FpInput {
                l4: self.l4,
                from_client: self.from_client,
                client_port: self.cport,
                server_port: self.sport,
                data: self.data,
                peer: self.peer,
                datagram_index: 0,
            };
            let mut ev = [0u8; 64];
            let mut n = 0usize;
            let r = match_any(&inp, &mut ev, &mut n);
            assert!(n <= 64);
            let s = String::from_utf8(ev[..n].to_vec()).unwrap();
            assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b)), "{s:?}");
            (r, s)
        }
        /// Expect a match; also check that no truncated prefix matches another fingerprint.
        #[track_caller]
        fn hit(&self, fp: Fingerprint) -> String {
            let (r, ev) = self.run();
            assert_eq!(r, FpResult::Match(fp), "evidence {ev:?}");
            assert!(!ev.is_empty());
            for k in 0..self.data.len() {
                let c = Case {
                    data: &self.data[..k],
                    peer: self.peer,
                    ..*self
                };
                let (r, _) = c.run();
                if let FpResult::Match(other) = r {
                    assert_eq!(other, fp, "prefix {k} matched {other:?}");
                }
            }
            ev
        }
        #[track_caller]
        fn no(&self) {
            assert_eq!(self.run().0, FpResult::NoMatch);
        }
    }

    // ------------------------------------------------------------------ metadata

    #[test]
    fn names_roundtrip_and_are_unique() {
        for (i, f) in Fingerprint::ALL.iter().enumerate() {
            assert_eq!(Fingerprint::from_name(f.name()), Some(*f));
            assert!(!f.describe().is_empty() && !f.describe().contains('\n'));
            assert!(!f.tool().is_empty());
            for g in &Fingerprint::ALL[i + 1..] {
                assert_ne!(f.name(), g.name());
            }
        }
        assert_eq!(Fingerprint::from_name("nope"), None);
        assert_eq!(Fingerprint::VncRfb.name(), "vnc_rfb");
        assert_eq!(Fingerprint::RdpX224.name(), "rdp_x224");
    }

    // ------------------------------------------------------------------ TeamViewer

    /// teamviewer.pcap, 10.0.2.15:35732 -> 162.250.2.170:5938, first client payload.
    const TV_C1: &str =
        "17240a200000000000000000004800800001000000148000006fb78c804805532216142004";
    /// Second client payload (66 bytes = two frames).
    const TV_C2: &str = "1724281800008000007fffffff808000000000000000000000000000001724\
        3c20008c00008014800000078000000080000004000000078000000180ff0080000005";
    /// First server payload.
    const TV_S1: &str = "113036001800000001000000000000001b000000180000008c0067fc71b09880\
        d95938c589a6c18cc7919eea283d28cd";

    #[test]
    fn teamviewer_tcp_corpus_port_5938() {
        let c1 = hx(TV_C1);
        let ev = tcp(true, 35732, 5938, &c1).hit(Fingerprint::TeamviewerTcp);
        assert!(ev.contains("17 24"), "{ev}");
    }

    #[test]
    fn teamviewer_tcp_any_port_needs_second_frame_or_peer() {
        let c1 = hx(TV_C1);
        assert_eq!(tcp(true, 40000, 443, &c1).run().0, FpResult::NeedMore);
        let mut both = c1.clone();
        both.extend(hx(TV_C2));
        tcp(true, 40000, 443, &both).hit(Fingerprint::TeamviewerTcp);
        let s1 = hx(TV_S1);
        tcp(false, 40000, 443, &s1)
            .peer(&c1)
            .hit(Fingerprint::TeamviewerTcp);
    }

    #[test]
    fn teamviewer_keepalive_to_5938() {
        // ET:2008794: 5-byte keep-alive.
        tcp(true, 50000, 5938, &[0x17, 0x24, 0x1b, 0, 0]).hit(Fingerprint::TeamviewerTcp);
    }

    #[test]
    fn teamviewer_never_confused_with_tls_app_data() {
        // TLS application data record (17 03 03) of matching size, on port 5938 too.
        let mut d = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        d.extend([0xab; 32]);
        tcp(true, 50000, 5938, &d).no();
        tcp(false, 443, 50000, &d).no();
        // Broken chain: frame then garbage.
        let mut bad = hx(TV_C1);
        bad.extend([0x17, 0x03, 0x03, 0, 1, 0]);
        tcp(true, 40000, 443, &bad).no();
    }

    /// teamviewer.pcap UDP 34417 <-> 36037: the first datagram of each side (96 bytes).
    const TV_U_C: &str = "0000000000000000000003172447500005000000000000000000000039332e34\
        372e3232342e323431000000c58c000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000";
    const TV_U_S: &str = "0000000000000000000003172447500005000000000000000000000039332e34\
        372e3232342e323431000000c48c000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn teamviewer_udp_corpus() {
        let c = hx(TV_U_C);
        let s = hx(TV_U_S);
        assert_eq!(c.len(), 96);
        // Client first datagram alone, random port: wait for confirmation.
        assert_eq!(udp(true, 34417, 36037, &c).run().0, FpResult::NeedMore);
        // Server reply with the client's datagram as peer: match.
        udp(false, 34417, 36037, &s)
            .peer(&c)
            .hit(Fingerprint::TeamviewerUdp);
        // Port 5938 alone suffices.
        udp(true, 34417, 5938, &c).hit(Fingerprint::TeamviewerUdp);
        // Wrong length field: no.
        let mut bad = c.clone();
        bad.push(0);
        udp(false, 34417, 36037, &bad).peer(&c).no();
    }

    #[test]
    fn teamviewer_dyngate_http() {
        let req = b"GET /din.aspx?s=00000000&id=123&client=DynGate&p=10000001 HTTP/1.1\r\n\
            User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; DynGate)\r\nHost: master1.teamviewer.com\r\n\r\n";
        tcp(true, 50000, 80, req).hit(Fingerprint::TeamviewerDyngate);
        let post = b"POST /dout.aspx?s=1 HTTP/1.1\r\nuser-agent:   Mozilla/4.0 (compatible; MSIE 6.0; DynGate)\r\n\r\n";
        tcp(true, 50000, 8080, post).hit(Fingerprint::TeamviewerDyngate);
    }

    // ------------------------------------------------------------------ VNC

    #[test]
    fn vnc_rfb_corpus_and_versions() {
        // vnc.pcap, port 6900: both sides send "RFB 004.001\n".
        let ev = tcp(false, 59791, 6900, b"RFB 004.001\n").hit(Fingerprint::VncRfb);
        assert_eq!(ev, "RFB 004.001");
        tcp(true, 59791, 6900, b"RFB 004.001\n\r").hit(Fingerprint::VncRfb);
        tcp(false, 1, 5900, b"RFB 003.008\n").hit(Fingerprint::VncRfb);
        tcp(false, 1, 5900, b"RFB 003.889\n").hit(Fingerprint::VncRfb);
        assert_eq!(
            tcp(false, 1, 5900, b"RFB 003.0").run().0,
            FpResult::NeedMore
        );
        tcp(false, 1, 5900, b"RFB 003.008").no_after_cap();
        tcp(false, 1, 5900, b"RFB 3.8\n").no();
        tcp(false, 1, 5900, b"RFB 003.008\r").no();
        tcp(false, 1, 5900, b"RFBX").no();
    }

    impl Case<'_> {
        /// A truncated pattern that cannot grow (UDP) must not match.
        fn no_after_cap(&self) {
            let c = Case {
                l4: L4::Udp,
                ..*self
            };
            assert_ne!(c.run().0, FpResult::Match(Fingerprint::VncRfb));
        }
    }

    #[test]
    fn rfb_inside_http_body_does_not_match() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nRFB 003.008\n";
        tcp(false, 50000, 80, resp).no();
        let req = b"POST /x HTTP/1.1\r\nContent-Length: 12\r\n\r\nRFB 003.008\n";
        tcp(true, 50000, 80, req).no();
    }

    // ------------------------------------------------------------------ RDP

    #[test]
    fn rdp_x224_corpus() {
        // rdp3.pcap: cookie, no RDP_NEG_REQ.
        let cr =
            hx("0300002722e00000000000436f6f6b69653a206d737473686173683d41646d696e697374720d0a");
        let ev = tcp(true, 1685, 3389, &cr).hit(Fingerprint::RdpX224);
        assert!(ev.contains("mstshash=Administr"), "{ev}");
        // rdp.pcap: RDP_NEG_REQ only (protocols 0x0b), and the server's RDP_NEG_RSP.
        let cr2 = hx("030000130ee00000000000010008000b000000");
        tcp(true, 52494, 3389, &cr2).hit(Fingerprint::RdpX224);
        let cc = hx("030000130ed00000123400021f080008000000");
        tcp(false, 52494, 3389, &cc).hit(Fingerprint::RdpX224);
        // rdp_over_tls.pcap: cookie + RDP_NEG_REQ, here tunnelled on port 443.
        let cr3 = hx("0300002f2ae00000000000436f6f6b69653a206d737473686173683d574465706c6f7941640d0a0100080003000000");
        tcp(true, 35888, 443, &cr3).hit(Fingerprint::RdpX224);
        // Longer stream prefix (CR followed by a TLS ClientHello) still matches.
        let mut longer = cr2.clone();
        longer.extend(hx("16030100a8010000a40303"));
        tcp(true, 52494, 3389, &longer).hit(Fingerprint::RdpX224);
    }

    #[test]
    fn rdp_x224_rejects_non_rdp_cotp() {
        // S7comm COTP CR with TSAP parameters on port 102.
        let s7 = hx("0300001611e00000000100c0010ac1020100c2020102");
        tcp(true, 50000, 102, &s7).no();
        // Bare CR only on 3389.
        let bare = hx("0300000b06e00000000000");
        tcp(true, 50000, 102, &bare).no();
        tcp(true, 50000, 3389, &bare).hit(Fingerprint::RdpX224);
        // Inconsistent LI.
        let bad = hx("030000130fe00000000000010008000b000000");
        tcp(true, 50000, 3389, &bad).no();
    }

    /// rdp2.pcap, 192.168.122.181:54759 -> :3389, SYN (first 40 of 1232 bytes; the rest
    /// of the real datagram is zero padding except the SYNEX/correlation fields).
    const RDPUDP_SYN: &str =
        "ffffffff00401801bbff568704d004d0a69040c1df7948b78fa08c4d6363000000000000000000";
    /// Server SYN+ACK (first 20 bytes).
    const RDPUDP_SYNACK: &str = "bbff5687004010054d67796604d004d000010101";

    #[test]
    fn rdp_udp_syn_and_synack_corpus() {
        let mut syn = hx(RDPUDP_SYN);
        syn.resize(1232, 0);
        let ev = udp(true, 54759, 3389, &syn).hit(Fingerprint::RdpUdp);
        assert!(ev.contains("SYN"), "{ev}");
        // Any port.
        udp(true, 54759, 40000, &syn).hit(Fingerprint::RdpUdp);
        let mut synack = hx(RDPUDP_SYNACK);
        synack.resize(1232, 0);
        udp(false, 54759, 3389, &synack)
            .peer(&syn)
            .hit(Fingerprint::RdpUdp);
        // SYN+ACK without the peer SYN: not enough.
        udp(false, 54759, 3389, &synack).no();
        // SYN with an MTU out of range.
        let mut bad = syn.clone();
        bad[12] = 0x08;
        udp(true, 54759, 3389, &bad).no();
    }

    #[test]
    fn rdp_udp_midflow_data_corpus() {
        // rdp2.pcap, 10.8.37.100:51652 -> :3389 (capture starts after the handshake):
        // second client datagram, ACK+DATA carrying a TLS application-data record.
        let d = hx(
            "109760340400000c00010100e65f846ee65f846e1703030034000000000000000153a0b82bb6d6\
            253384e5c27e39f965aacced683a05ce0081809496dde8a70a733b3261561f53c636bc95f93b",
        );
        assert_eq!(d.len(), 77);
        udp(true, 51652, 3389, &d).hit(Fingerprint::RdpUdp);
        // Record length larger than the datagram: no.
        let mut cut = d.clone();
        cut.truncate(70);
        udp(true, 51652, 3389, &cut).no();
        // snCoded != snSourceStart: no.
        let mut skew = d.clone();
        skew[19] ^= 1;
        udp(true, 51652, 3389, &skew).no();
    }

    // ------------------------------------------------------------------ AnyDesk

    /// Build a discovery datagram per the CVE-2020-13160 PoC layout.
    fn anydesk_discovery(host: &[u8], user: &[u8]) -> Vec<u8> {
        let mut d = vec![0x3e, 0xd1, 0x01];
        d.extend(123_456_789u32.to_be_bytes());
        d.extend(0u32.to_be_bytes());
        d.extend([0x02, 0x02]);
        d.extend((host.len() as u32).to_be_bytes());
        d.extend(host);
        d.extend((user.len() as u32).to_be_bytes());
        d.extend(user);
        d.extend(0u32.to_be_bytes());
        d.extend(4u32.to_be_bytes());
        d.extend(b"ad1\0");
        d.push(0);
        d.extend(3u32.to_be_bytes());
        d.extend(b"abc");
        d.extend([0x02, 0xc3, 0x51]);
        d
    }

    #[test]
    fn anydesk_discovery_built() {
        let d = anydesk_discovery(b"WORKSTATION-7", b"alice");
        let ev = udp(true, 50001, 50001, &d).hit(Fingerprint::AnydeskDiscovery);
        assert!(ev.contains("WORKSTATION-7"), "{ev}");
        // Hostname length running past the datagram: no.
        let mut bad = d.clone();
        bad[16] = 0xf0;
        udp(true, 50001, 50001, &bad).no();
        // Not on TCP.
        tcp(true, 50001, 50001, &d).no();
    }

    // ------------------------------------------------------------------ ScreenConnect

    #[test]
    fn screenconnect_checkins_built() {
        for b1 in [0x15u8, 0x1c] {
            let mut d = vec![0x87, b1, 0x10, 0x00];
            d.extend([0u8; 12]);
            d.extend([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]);
            tcp(true, 50000, 443, &d).hit(Fingerprint::ScreenconnectRelay);
        }
        // M3: byte 23 = 01, length byte at 24 = 2, byte 27 = 01.
        let mut m3 = vec![0x87, 0x12, 0x10, 0x00];
        m3.extend([0u8; 12]);
        m3.extend([
            0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x01, 0x02, 0x41, 0x42, 0x01,
        ]);
        tcp(true, 50000, 8041, &m3).hit(Fingerprint::ScreenconnectRelay);
        let mut bad = m3.clone();
        bad[27] = 0x02;
        tcp(true, 50000, 8041, &bad).no();
        let mut nz = vec![0x87, 0x15, 0x10, 0x00];
        nz.extend([0u8; 11]);
        nz.push(1);
        tcp(true, 50000, 443, &nz).no();
    }

    // ------------------------------------------------------------------ Splashtop

    #[test]
    fn splashtop_built() {
        let checkin = [0, 1, 0, 8, 0, 0, 0, 0, 0, 2, 1, 0];
        tcp(true, 50000, 6783, &checkin).hit(Fingerprint::SplashtopLan);
        tcp(true, 50000, 443, &checkin).hit(Fingerprint::SplashtopLan);
        let mut longer = checkin.to_vec();
        longer.extend([9, 9]);
        tcp(true, 50000, 443, &longer).no();
        tcp(true, 50000, 6784, &[0x01, 0x00, 0x34, 0x12]).hit(Fingerprint::SplashtopLan);
        tcp(true, 50000, 6784, &[0x00, 0x00, 0x34, 0x12]).hit(Fingerprint::SplashtopLan);
        tcp(true, 50000, 443, &[0x01, 0x00, 0x34, 0x12]).no();
    }

    // ------------------------------------------------------------------ RustDesk

    #[test]
    fn rustdesk_nat_test_built() {
        let nat = [0x14, 0xa2, 0x01, 0x02, 0x08, 0x01];
        tcp(true, 50000, 21115, &nat).hit(Fingerprint::RustdeskNatTest);
        tcp(true, 50000, 443, &nat).hit(Fingerprint::RustdeskNatTest);
        let mut longer = nat.to_vec();
        longer.push(0);
        tcp(true, 50000, 443, &longer).no();
        tcp(true, 50000, 21116, &longer).hit(Fingerprint::RustdeskNatTest);
        udp(true, 50000, 21115, &nat).no();
    }

    #[test]
    fn rustdesk_udp_built() {
        // RegisterPeer id "123456789", serial 1 (ET:2044070).
        let mut rp = vec![0x32, 0x0d, 0x0a, 0x09];
        rp.extend(b"123456789");
        rp.extend([0x10, 0x01]);
        assert_eq!(rp.len(), 15);
        udp(true, 50000, 21116, &rp).hit(Fingerprint::RustdeskRendezvous);
        let mut bad = rp.clone();
        bad[1] = 0x0e;
        udp(true, 50000, 21116, &bad).no();
        // RegisterPk (ET:2044073).
        let mut pk = vec![0x7a, 0x53, 0x0a, 0x09];
        pk.extend(b"123456789");
        pk.extend([0x12, 0x24]);
        pk.extend(b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        pk.extend([0x1a, 0x20]);
        pk.extend([0x5a; 32]);
        assert_eq!(pk.len(), 85);
        udp(true, 50000, 21116, &pk).hit(Fingerprint::RustdeskRendezvous);
        // LAN discovery ping (ET:2044075).
        udp(true, 50000, 21119, b"\xb2\x01\x06\x0a\x04ping").hit(Fingerprint::RustdeskRendezvous);
        // Pong (ET:2044074).
        let mut pong = b"\xba\x01\x40\x0a\x04pong".to_vec();
        pong.extend([0x12, 0x02, b'i', b'd', 0x1a, 0x0a]);
        pong.extend(b"0123456789");
        pong.extend([0x22, 0x03]);
        pong.extend(b"abc");
        pong.extend([0x2a, 0x20]);
        pong.extend([0x11; 32]);
        pong.extend([0x32, 0x06]);
        pong.extend(b"Linux!");
        udp(false, 50000, 21119, &pong).hit(Fingerprint::RustdeskRendezvous);
        udp(false, 50000, 5353, &pong).no();
    }

    // ------------------------------------------------------------------ Radmin

    #[test]
    fn radmin_corpus() {
        // radmin3.pcapng 49736 -> 4899: setup and reply.
        let setup = hx("01000000010000000808");
        tcp(true, 49736, 4899, &setup).hit(Fingerprint::RadminHandshake);
        let reply = hx("010000002500000212080200000a0000000000000000000000000000000000000000000000000000000000000000");
        assert_eq!(reply.len(), 46);
        tcp(false, 49736, 4899, &reply).hit(Fingerprint::RadminHandshake);
        // 49739 -> 4899: auth challenge / response.
        let ch = hx("0100000005000002272702000000");
        tcp(true, 49739, 4899, &ch).hit(Fingerprint::RadminHandshake);
        let rs = hx("0100000005000000272700000000");
        tcp(false, 49739, 4899, &rs).hit(Fingerprint::RadminHandshake);
        // Any port.
        tcp(true, 49736, 443, &setup).hit(Fingerprint::RadminHandshake);
        // Truncated reply (framing says 46 bytes): wait.
        assert_eq!(
            tcp(false, 1, 4899, &reply[..30]).run().0,
            FpResult::NeedMore
        );
    }

    // ------------------------------------------------------------------ NetSupport

    #[test]
    fn netsupport_built() {
        let req = b"POST http://192.0.2.10/fakeurl.htm HTTP/1.1\r\nUser-Agent: NetSupport Manager/1.3\r\n\
            Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 22\r\nHost: 192.0.2.10\r\n\
            Connection: Keep-Alive\r\nCMD=POLL\nINFO=1\nACK=1\n";
        let ev = tcp(true, 50000, 443, req).hit(Fingerprint::NetsupportHttp);
        assert!(ev.contains("NetSupport Manager/1.3"), "{ev}");
        let resp = b"HTTP/1.1 200 OK\r\nServer: NetSupport Gateway/1.92\r\n\
            Content-Type: application/x-www-form-urlencoded\r\n\r\nCMD=ENCD\n";
        tcp(false, 50000, 443, resp).hit(Fingerprint::NetsupportHttp);
        let geo = b"GET /location/loca.asp HTTP/1.1\r\nHost: geo.netsupportsoftware.com\r\n\r\n";
        tcp(true, 50000, 80, geo).hit(Fingerprint::NetsupportHttp);
        // GET with that UA is not the check-in.
        let get = b"GET / HTTP/1.1\r\nUser-Agent: NetSupport Manager/1.3\r\n\r\n";
        tcp(true, 50000, 80, get).no();
    }

    // ------------------------------------------------------------------ NoMachine

    #[test]
    fn nomachine_corpus() {
        // nomachine.pcapng, 48084 -> 4000.
        tcp(true, 48084, 4000, b"NXSH-8.10.1\n").hit(Fingerprint::NomachineBanner);
        let ev = tcp(false, 48084, 4000, b"NXD-8.10.1\n").hit(Fingerprint::NomachineBanner);
        assert_eq!(ev, "NoMachine banner NXD-8.10.1");
        tcp(true, 48084, 443, b"NXSH-x\n").no();
        // UDP keep-alives 56019 -> 4000.
        let c = hx("010001000a0000000000");
        let s = hx("020001000a0000000000");
        udp(true, 56019, 4000, &c).hit(Fingerprint::NomachineBanner);
        assert_eq!(udp(true, 56019, 4001, &c).run().0, FpResult::NeedMore);
        udp(false, 56019, 4001, &s)
            .peer(&c)
            .hit(Fingerprint::NomachineBanner);
    }

    // ------------------------------------------------------------------ Citrix

    #[test]
    fn citrix_ica_corpus_and_cgp_built() {
        // citrix.pcap, 45225 -> 1494: both sides send 7f 7f 49 43 41 00.
        let ica = hx("7f7f49434100");
        tcp(true, 45225, 1494, &ica).hit(Fingerprint::CitrixIca);
        tcp(false, 45225, 1494, &ica).hit(Fingerprint::CitrixIca);
        assert_eq!(tcp(false, 1, 1494, &ica[..3]).run().0, FpResult::NeedMore);
        let mut cgp = b"\x1aCGP/01".to_vec();
        cgp.extend([0, 0, 0, 0x10]);
        tcp(true, 50000, 2598, &cgp).hit(Fingerprint::CitrixCgp);
        tcp(true, 50000, 2598, b"\x1aCGP/02").no();
    }

    // ------------------------------------------------------------------ SimpleHelp

    #[test]
    fn simplehelp_built() {
        let ping = b"GET /machine-1709251200123?ping=53475F5375697465 HTTP/1.1\r\nHost: x\r\n\r\n";
        tcp(true, 50000, 80, ping).hit(Fingerprint::SimplehelpHttp);
        let lossy =
            b"POST /lossyproc?rand=0.1234567890.9876543210 HTTP/1.1\r\nHost: x\r\n\r\nSG_abc";
        tcp(true, 50000, 80, lossy).hit(Fingerprint::SimplehelpHttp);
        let upd = b"GET /download/x-version.txt?time=1700000000 HTTP/1.1\r\nUser-Agent: JWrapperDownloader\r\n\r\n";
        tcp(true, 50000, 80, upd).hit(Fingerprint::SimplehelpHttp);
        let resp = b"HTTP/1.1 200 OK\r\nServer: SimpleHelp/SSuite\r\nContent-Length: 0\r\n\r\n";
        tcp(false, 50000, 80, resp).hit(Fingerprint::SimplehelpHttp);
        let not = b"GET /machine-17?ping=zz HTTP/1.1\r\n\r\n";
        tcp(true, 50000, 80, not).no();
    }

    // ------------------------------------------------------------------ Ammyy

    #[test]
    fn ammyy_built() {
        let req = b"GET / HTTP/1.1\r\nHost: rl.ammyy.com\r\nAccept: */*\r\n\r\n";
        tcp(true, 50000, 80, req).hit(Fingerprint::AmmyyHttp);
        let resp =
            b"HTTP/1.1 200 OK\r\nContent-Length: 34\r\n\r\nYour IP=203.0.113.7, country = DE";
        tcp(false, 50000, 80, resp).hit(Fingerprint::AmmyyHttp);
        let other = b"GET /x HTTP/1.1\r\nHost: rl.ammyy.com\r\n\r\n";
        tcp(true, 50000, 80, other).no();
    }

    // ------------------------------------------------------------------ Dameware

    #[test]
    fn dameware_built() {
        let mut d = [0u8; 40];
        d[0] = 0x30;
        d[1] = 0x11;
        d[14] = 0x38;
        d[15] = 0x40;
        d[24] = 0x04;
        tcp(true, 50000, 6129, &d).hit(Fingerprint::DamewareMrc);
        let mut longer = d.to_vec();
        longer.extend([1, 2, 3]);
        tcp(true, 50000, 443, &longer).no();
        tcp(true, 50000, 6129, &longer).hit(Fingerprint::DamewareMrc);
        let mut bad = d;
        bad[38] = 1;
        tcp(true, 50000, 6129, &bad).no();
    }

    // ------------------------------------------------------------------ benign traffic

    #[test]
    fn benign_first_payloads_do_not_match() {
        // TLS ClientHello record header + start of the handshake (chrome.pcap shape).
        let mut ch = hx("1603010200010001fc0303");
        ch.extend([0x5a; 64]);
        tcp(true, 64410, 443, &ch).no();
        // TLS application data.
        let mut app = hx("1703030040");
        app.extend([0x33; 64]);
        tcp(true, 50000, 443, &app).no();
        tcp(false, 50000, 443, &app).no();
        // HTTP GET (complete head) and a response.
        tcp(true, 42170, 80, b"GET / HTTP/1.1\r\nHost: www.google.it\r\nUser-Agent: curl/7.64.0\r\nAccept: */*\r\n\r\n").no();
        tcp(
            false,
            42170,
            80,
            b"HTTP/1.1 301 Moved Permanently\r\nServer: gws\r\nContent-Length: 0\r\n\r\n",
        )
        .no();
        // SSH banner.
        tcp(false, 58395, 22, b"SSH-2.0-OpenSSH_7.6p1 Ubuntu-4\r\n").no();
        tcp(true, 58395, 22, b"SSH-2.0-OpenSSH_7.6p1 Ubuntu-4\r\n").no();
        // DNS query (dns.pcap: AAAA www.example.com).
        let dns = hx("bc1f0100000100000000000003777777076578616d706c6503636f6d00001c0001");
        udp(true, 32795, 53, &dns).no();
        // QUIC Initial (long header, version 1), padded.
        let mut quic = hx("c30000000108a1b2c3d4e5f60718000044d0");
        quic.resize(1200, 0x11);
        udp(true, 57833, 443, &quic).no();
        // Telnet option negotiation.
        tcp(
            false,
            1550,
            23,
            &[0xff, 0xfd, 0x18, 0xff, 0xfd, 0x20, 0xff, 0xfd, 0x23],
        )
        .no();
    }

    // ------------------------------------------------------------------ robustness

    #[test]
    fn random_inputs_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Seeds that reach deep paths.
        let seeds: [&[u8]; 14] = [
            &[0x17, 0x24],
            &[0x11, 0x30],
            &[0x03, 0x00, 0x00],
            b"RFB 0",
            &[0xff, 0xff, 0xff, 0xff],
            &[0x3e, 0xd1, 0x01],
            &[0x87, 0x12, 0x10, 0x00],
            b"POST /lossyproc?rand=",
            b"HTTP/1.1 200 OK\r\n",
            b"NXSH-",
            &[0x32, 0x0d, 0x0a, 0x09],
            &[0x7a, 0x53, 0x0a, 0x09],
            &[0x01, 0, 0, 0],
            &[0x30, 0x11],
        ];
        let mut buf = [0u8; 600];
        let mut peer = [0u8; 64];
        for i in 0..60_000u32 {
            let len = (next() % 600) as usize;
            for b in buf.iter_mut().take(len) {
                *b = next() as u8;
            }
            if i % 2 == 0 {
                let s = seeds[(next() % seeds.len() as u64) as usize];
                let n = s.len().min(len);
                buf[..n].copy_from_slice(&s[..n]);
            }
            let plen = (next() % 64) as usize;
            for b in peer.iter_mut().take(plen) {
                *b = next() as u8;
            }
            let ports = [5938u16, 3389, 4000, 6129, 6783, 6784, 21116, 21119, 443, 80];
            let inp = FpInput {
                l4: if next() % 2 == 0 { L4::Tcp } else { L4::Udp },
                from_client: next() % 2 == 0,
                client_port: ports[(next() % 10) as usize],
                server_port: ports[(next() % 10) as usize],
                data: &buf[..len],
                peer: &peer[..plen],
                datagram_index: (next() % 8) as u32,
            };
            let mut ev = [0u8; 64];
            let mut n = 99usize;
            let _ = match_any(&inp, &mut ev, &mut n);
            assert!(n <= 64);
        }
    }
}
