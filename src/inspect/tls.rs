//! TLS over TCP: ClientHello, ServerHello and server certificate parsing.
//!
//! These parsers run on attacker-controlled bytes at the gateway. They never
//! panic, never allocate (callers pass a reusable [`HandshakeScratch`] per
//! flow), and every buffer has a fixed capacity.
//!
//! The stream parsers take the *prefix* of one direction of a TCP stream
//! (starting at the first byte of the stream). When they answer
//! [`Parse::NeedMore`], the caller keeps buffering and calls again later with
//! the longer prefix; the parse is restarted from scratch each time, so the
//! functions are idempotent.

/// Capacity of [`HandshakeScratch`]: the largest handshake flight we join.
pub const SCRATCH_CAP: usize = 16 * 1024;

/// Maximum TLS plaintext record length (2^14, RFC 8446 section 5.1).
pub const MAX_RECORD_LEN: usize = 16 * 1024;

/// Extension type: server_name (RFC 6066).
pub const EXT_SERVER_NAME: u16 = 0x0000;
/// Extension type: signature_algorithms (RFC 8446).
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
/// Extension type: application_layer_protocol_negotiation (RFC 7301).
pub const EXT_ALPN: u16 = 0x0010;
/// Extension type: supported_versions (RFC 8446).
pub const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
/// Extension type: encrypted_client_hello (draft-ietf-tls-esni).
pub const EXT_ECH: u16 = 0xfe0d;

const CT_HANDSHAKE: u8 = 0x16;
const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;

/// Whether `v` is a GREASE value (RFC 8701): `0x?a?a` with equal bytes.
pub fn is_grease(v: u16) -> bool {
    (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Result of parsing a stream prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<T> {
    /// The prefix is a plausible but incomplete TLS handshake: call again with more bytes.
    NeedMore,
    /// The bytes are not TLS (first byte not 0x16 or record version not 0x03 0x0?).
    NotTls,
    /// The bytes look like TLS but are malformed (or exceed the fixed caps).
    Invalid,
    /// Parsed successfully.
    Done(T),
}

/// Parsed view of a ClientHello (all slices borrow from the input or the scratch buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version` field of the ClientHello body.
    pub legacy_version: u16,
    /// Raw cipher_suites vector body (2 bytes per suite, GREASE included).
    pub ciphers: &'a [u8],
    /// Raw extensions block body (type/length/data triples, GREASE included).
    pub extensions: &'a [u8],
    /// First host_name in server_name, as sent (not lower-cased, trailing dot kept).
    pub sni: Option<&'a [u8]>,
    /// Raw ProtocolNameList body (sequence of u8-length-prefixed names).
    pub alpn: Option<&'a [u8]>,
    /// Raw supported_versions list body (2 bytes per version).
    pub supported_versions: Option<&'a [u8]>,
    /// Raw signature_algorithms list body (2 bytes per scheme).
    pub sig_algs: Option<&'a [u8]>,
    /// encrypted_client_hello (0xfe0d) present.
    pub has_ech: bool,
}

/// Iterator over the protocol names of an ALPN ProtocolNameList body.
#[derive(Debug, Clone)]
pub struct AlpnIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AlpnIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.rest);
        let name = r.vec8();
        match name {
            Some(n) => {
                self.rest = r.rest();
                Some(n)
            }
            None => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Iterator over big-endian u16 values of a byte list (an odd trailing byte is ignored).
#[derive(Debug, Clone)]
pub struct U16Iter<'a> {
    rest: &'a [u8],
}

impl Iterator for U16Iter<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        match self.rest {
            [a, b, rest @ ..] => {
                self.rest = rest;
                Some(u16::from_be_bytes([*a, *b]))
            }
            _ => None,
        }
    }
}

/// Iterate the big-endian u16 values of `list` (cipher suites, versions, signature schemes).
pub fn u16_iter(list: &[u8]) -> U16Iter<'_> {
    U16Iter { rest: list }
}

/// Iterator over `(type, data)` pairs of a raw extensions block body.
#[derive(Debug, Clone)]
pub struct ExtIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let mut r = Reader::new(self.rest);
        let ty = r.u16();
        let data = r.vec16();
        match (ty, data) {
            (Some(t), Some(d)) => {
                self.rest = r.rest();
                Some((t, d))
            }
            _ => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Iterate the `(type, data)` pairs of a raw extensions block body.
pub fn ext_iter(extensions: &[u8]) -> ExtIter<'_> {
    ExtIter { rest: extensions }
}

impl<'a> ClientHello<'a> {
    /// Iterate the offered ALPN protocol names (empty when there is no ALPN extension).
    pub fn alpn_iter(&self) -> AlpnIter<'a> {
        AlpnIter {
            rest: self.alpn.unwrap_or(&[]),
        }
    }

    /// Highest non-GREASE value in supported_versions, else `legacy_version`.
    pub fn max_version(&self) -> u16 {
        let mut best: Option<u16> = None;
        if let Some(list) = self.supported_versions {
            for v in u16_iter(list) {
                if !is_grease(v) && best.is_none_or(|b| v > b) {
                    best = Some(v);
                }
            }
        }
        best.unwrap_or(self.legacy_version)
    }

    /// Iterate the `(type, data)` pairs of the extensions block.
    pub fn ext_iter(&self) -> ExtIter<'a> {
        ext_iter(self.extensions)
    }

    /// Iterate the offered cipher suites (GREASE included).
    pub fn cipher_iter(&self) -> U16Iter<'a> {
        u16_iter(self.ciphers)
    }
}

/// Fixed-capacity buffer (16 KiB) used to join handshake fragments spread over
/// several TLS records. Own one per flow direction and reuse it.
pub struct HandshakeScratch {
    buf: [u8; SCRATCH_CAP],
    len: usize,
}

impl HandshakeScratch {
    /// A new, empty scratch buffer.
    pub const fn new() -> Self {
        HandshakeScratch {
            buf: [0; SCRATCH_CAP],
            len: 0,
        }
    }

    /// Forget the contents (does not zero the memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Append as much of `data` as fits; returns the number of bytes appended.
    fn push(&mut self, data: &[u8]) -> usize {
        let room = SCRATCH_CAP.saturating_sub(self.len);
        let n = data.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), data.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
            n
        } else {
            0
        }
    }

    fn is_full(&self) -> bool {
        self.len >= SCRATCH_CAP
    }

    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Default for HandshakeScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for HandshakeScratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeScratch")
            .field("len", &self.len)
            .finish()
    }
}

/// Bounds-checked big-endian reader over a byte slice.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|s| s.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        match self.take(2)? {
            [a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }

    fn u24(&mut self) -> Option<usize> {
        match self.take(3)? {
            [a, b, c] => Some(((*a as usize) << 16) | ((*b as usize) << 8) | (*c as usize)),
            _ => None,
        }
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

/// Header of a TLS record as far as it is present in `b` (fewer than 5 bytes allowed).
enum RecHdr {
    /// Fewer than 5 bytes, but what is there is plausible.
    Partial,
    /// The bytes cannot start a TLS record.
    Bad,
    /// Content type and fragment length.
    Ok(u8, usize),
}

fn record_header(b: &[u8]) -> RecHdr {
    if let Some(&v) = b.get(1) {
        if v != 0x03 {
            return RecHdr::Bad;
        }
    }
    if let Some(&v) = b.get(2) {
        if v & 0xf0 != 0 {
            return RecHdr::Bad;
        }
    }
    match b {
        [ct, _, _, h, l, ..] => {
            let len = u16::from_be_bytes([*h, *l]) as usize;
            if len == 0 || len > MAX_RECORD_LEN {
                RecHdr::Bad
            } else {
                RecHdr::Ok(*ct, len)
            }
        }
        _ => RecHdr::Partial,
    }
}

/// Quick classification of the first bytes of a stream: `Some(NotTls)` or
/// `Some(NeedMore)` if the caller should return right away.
fn classify_start<T>(stream: &[u8]) -> Option<Parse<T>> {
    match stream.first() {
        None => return Some(Parse::NeedMore),
        Some(&b) if b != CT_HANDSHAKE => return Some(Parse::NotTls),
        Some(_) => {}
    }
    if let Some(&v) = stream.get(1) {
        if v != 0x03 {
            return Some(Parse::NotTls);
        }
    }
    if let Some(&v) = stream.get(2) {
        if v & 0xf0 != 0 {
            return Some(Parse::NotTls);
        }
    }
    if stream.len() < 5 {
        return Some(Parse::NeedMore);
    }
    None
}

/// Parse the ClientHello from the client->server TCP stream prefix (bytes from the
/// first byte of the stream).
///
/// Handles a handshake message split across several TLS records (records may be
/// split across TCP segments: the caller just passes the longer prefix again later),
/// using `scratch` (cap 16 KiB) to join record fragments. When the whole message is
/// inside the first record no copy is made.
pub fn parse_client_hello_stream<'a>(
    stream: &'a [u8],
    scratch: &'a mut HandshakeScratch,
) -> Parse<ClientHello<'a>> {
    if let Some(p) = classify_start(stream) {
        return p;
    }
    let first_len = match record_header(stream) {
        RecHdr::Ok(_, len) => len,
        _ => return Parse::Invalid,
    };
    let first_end = 5 + first_len;
    let frag = stream.get(5..first_end.min(stream.len())).unwrap_or(&[]);
    match frag.first() {
        None => return Parse::NeedMore,
        Some(&t) if t != HS_CLIENT_HELLO => return Parse::Invalid,
        Some(_) => {}
    }
    // Fast path: the whole message is inside the first record.
    let mut r = Reader::new(frag);
    let _ = r.u8();
    if let Some(msg_len) = r.u24() {
        if msg_len.saturating_add(4) > SCRATCH_CAP {
            return Parse::Invalid;
        }
        if msg_len + 4 <= first_len {
            return match r.take(msg_len) {
                Some(body) => finish(parse_client_hello_body(body)),
                None => Parse::NeedMore,
            };
        }
    }
    // Slow path: join the fragments of consecutive handshake records.
    scratch.clear();
    let mut pos = 0usize;
    let mut need: Option<usize> = None;
    loop {
        let rest = stream.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        let len = match record_header(rest) {
            RecHdr::Partial => break,
            RecHdr::Bad => return Parse::Invalid,
            RecHdr::Ok(CT_HANDSHAKE, len) => len,
            RecHdr::Ok(..) => return Parse::Invalid,
        };
        let body_end = len.saturating_add(5);
        let body = rest.get(5..body_end.min(rest.len())).unwrap_or(&[]);
        let want = need.unwrap_or(SCRATCH_CAP).saturating_sub(scratch.len);
        scratch.push(body.get(..want.min(body.len())).unwrap_or(&[]));
        if need.is_none() {
            let mut hr = Reader::new(scratch.as_slice());
            if let (Some(t), Some(l)) = (hr.u8(), hr.u24()) {
                if t != HS_CLIENT_HELLO || l.saturating_add(4) > SCRATCH_CAP {
                    return Parse::Invalid;
                }
                need = Some(l + 4);
                scratch.len = scratch.len.min(l + 4);
            }
        }
        if need.is_some_and(|n| scratch.len >= n) || body.len() < len {
            break;
        }
        pos = pos.saturating_add(body_end);
    }
    let scratch: &'a HandshakeScratch = scratch;
    match need {
        Some(n) if scratch.len >= n => finish(parse_client_hello_body(
            scratch.buf.get(4..n).unwrap_or(&[]),
        )),
        _ => Parse::NeedMore,
    }
}

fn finish<T>(r: Result<T, ()>) -> Parse<T> {
    match r {
        Ok(v) => Parse::Done(v),
        Err(()) => Parse::Invalid,
    }
}

/// Parse a ClientHello handshake message body (after the 4-byte handshake header).
/// Used for TLS over TCP and for QUIC CRYPTO streams.
#[allow(clippy::result_unit_err)]
pub fn parse_client_hello_body(body: &[u8]) -> Result<ClientHello<'_>, ()> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16().ok_or(())?;
    r.take(32).ok_or(())?;
    let sid = r.vec8().ok_or(())?;
    if sid.len() > 32 {
        return Err(());
    }
    let ciphers = r.vec16().ok_or(())?;
    if ciphers.is_empty() || ciphers.len() % 2 != 0 {
        return Err(());
    }
    let compression = r.vec8().ok_or(())?;
    if compression.is_empty() {
        return Err(());
    }
    let mut hello = ClientHello {
        legacy_version,
        ciphers,
        extensions: &[],
        sni: None,
        alpn: None,
        supported_versions: None,
        sig_algs: None,
        has_ech: false,
    };
    if r.remaining() == 0 {
        return Ok(hello);
    }
    let exts = r.vec16().ok_or(())?;
    if r.remaining() != 0 {
        return Err(());
    }
    hello.extensions = exts;
    let mut er = Reader::new(exts);
    while er.remaining() > 0 {
        let ty = er.u16().ok_or(())?;
        let data = er.vec16().ok_or(())?;
        match ty {
            EXT_SERVER_NAME if hello.sni.is_none() => hello.sni = parse_sni(data)?,
            EXT_ALPN if hello.alpn.is_none() => hello.alpn = Some(parse_alpn_list(data)?),
            EXT_SUPPORTED_VERSIONS if hello.supported_versions.is_none() => {
                let mut d = Reader::new(data);
                let list = d.vec8().ok_or(())?;
                if d.remaining() != 0 || list.len() % 2 != 0 {
                    return Err(());
                }
                hello.supported_versions = Some(list);
            }
            EXT_SIGNATURE_ALGORITHMS if hello.sig_algs.is_none() => {
                let mut d = Reader::new(data);
                let list = d.vec16().ok_or(())?;
                if d.remaining() != 0 || list.len() % 2 != 0 {
                    return Err(());
                }
                hello.sig_algs = Some(list);
            }
            EXT_ECH => hello.has_ech = true,
            _ => {}
        }
    }
    Ok(hello)
}

/// First host_name of a ServerNameList (validated); `Ok(None)` if there is none.
fn parse_sni(data: &[u8]) -> Result<Option<&[u8]>, ()> {
    if data.is_empty() {
        // Allowed in a ServerHello / EncryptedExtensions; tolerate here.
        return Ok(None);
    }
    let mut d = Reader::new(data);
    let list = d.vec16().ok_or(())?;
    if d.remaining() != 0 {
        return Err(());
    }
    let mut l = Reader::new(list);
    let mut first = None;
    while l.remaining() > 0 {
        let name_type = l.u8().ok_or(())?;
        let name = l.vec16().ok_or(())?;
        if name_type == 0 && first.is_none() {
            if name.is_empty() {
                return Err(());
            }
            first = Some(name);
        }
    }
    Ok(first)
}

/// Validate an ALPN extension body and return the ProtocolNameList body.
fn parse_alpn_list(data: &[u8]) -> Result<&[u8], ()> {
    let mut d = Reader::new(data);
    let list = d.vec16().ok_or(())?;
    if d.remaining() != 0 || list.is_empty() {
        return Err(());
    }
    let mut l = Reader::new(list);
    while l.remaining() > 0 {
        let name = l.vec8().ok_or(())?;
        if name.is_empty() {
            return Err(());
        }
    }
    Ok(list)
}

/// What the server side of a TLS handshake revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo<'a> {
    /// Negotiated version: supported_versions selection if present, else ServerHello legacy_version.
    pub version: u16,
    /// The selected ALPN protocol name (without its length prefix).
    pub alpn: Option<&'a [u8]>,
    /// Raw DER `Name` (full TLV, tag 0x30) of the first certificate's subject (TLS <= 1.2 only).
    pub cert_subject: Option<&'a [u8]>,
    /// Raw DER `Name` (full TLV, tag 0x30) of the first certificate's issuer (TLS <= 1.2 only).
    pub cert_issuer: Option<&'a [u8]>,
}

/// From the server->client stream prefix: the ServerHello (selected version incl. the
/// supported_versions extension, selected ALPN) and, when the version is TLS <= 1.2,
/// the first certificate's raw DER subject and issuer Name.
///
/// Handshake records are joined in `scratch` (cap 16 KiB). Only the beginning of the
/// first certificate is needed, so long chains do not have to fit. For TLS 1.3 (whose
/// certificate is encrypted) the result is `Done` right after the ServerHello. If the
/// certificate cannot be found or parsed, `Done` is returned with the certificate
/// fields `None`.
pub fn parse_server_stream<'a>(
    stream: &'a [u8],
    scratch: &'a mut HandshakeScratch,
) -> Parse<ServerInfo<'a>> {
    if let Some(p) = classify_start(stream) {
        return p;
    }
    scratch.clear();
    let mut pos = 0usize;
    let mut more = true;
    loop {
        let rest = stream.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        let len = match record_header(rest) {
            RecHdr::Partial => break,
            RecHdr::Ok(CT_HANDSHAKE, len) => len,
            // A non-handshake record (ChangeCipherSpec, alert, application data)
            // ends the plaintext handshake flight.
            RecHdr::Ok(..) => {
                more = false;
                break;
            }
            RecHdr::Bad if pos == 0 => return Parse::Invalid,
            RecHdr::Bad => {
                more = false;
                break;
            }
        };
        let body_end = len.saturating_add(5);
        let body = rest.get(5..body_end.min(rest.len())).unwrap_or(&[]);
        scratch.push(body);
        if scratch.is_full() {
            more = false;
            break;
        }
        if body.len() < len {
            break;
        }
        pos = pos.saturating_add(body_end);
    }
    let scratch: &'a HandshakeScratch = scratch;
    parse_server_flight(scratch.as_slice(), more)
}

fn parse_server_flight(hs: &[u8], more: bool) -> Parse<ServerInfo<'_>> {
    let short = if more {
        Parse::NeedMore
    } else {
        Parse::Invalid
    };
    let mut r = Reader::new(hs);
    match r.u8() {
        None => return short,
        Some(HS_SERVER_HELLO) => {}
        Some(_) => return Parse::Invalid,
    }
    let Some(len) = r.u24() else { return short };
    if len.saturating_add(4) > SCRATCH_CAP {
        return Parse::Invalid;
    }
    let Some(body) = r.take(len) else {
        return short;
    };
    let Ok((version, alpn)) = parse_server_hello_body(body) else {
        return Parse::Invalid;
    };
    let mut info = ServerInfo {
        version,
        alpn,
        cert_subject: None,
        cert_issuer: None,
    };
    if !(0x0300..=0x0303).contains(&version) {
        // TLS 1.3 (or unknown): the certificate is encrypted.
        return Parse::Done(info);
    }
    let not_yet = if more {
        Parse::NeedMore
    } else {
        Parse::Done(info)
    };
    match r.u8() {
        None => return not_yet,
        Some(HS_CERTIFICATE) => {}
        Some(_) => return Parse::Done(info),
    }
    let Some(msg_len) = r.u24() else {
        return not_yet;
    };
    let Some(list_len) = r.u24() else {
        return not_yet;
    };
    let Some(cert_len) = r.u24() else {
        if list_len == 0 || msg_len < 6 {
            return Parse::Done(info);
        }
        return not_yet;
    };
    if list_len.saturating_add(3) > msg_len || cert_len.saturating_add(3) > list_len {
        return Parse::Done(info);
    }
    let avail = r.rest();
    let complete = avail.len() >= cert_len;
    let der = avail.get(..cert_len.min(avail.len())).unwrap_or(&[]);
    match first_cert_names(der) {
        Ok((issuer, subject)) => {
            info.cert_issuer = Some(issuer);
            info.cert_subject = Some(subject);
            Parse::Done(info)
        }
        Err(DerErr::Incomplete) if !complete && more => Parse::NeedMore,
        Err(_) => Parse::Done(info),
    }
}

/// `(selected version, selected ALPN)` of a ServerHello body.
fn parse_server_hello_body(body: &[u8]) -> Result<(u16, Option<&[u8]>), ()> {
    let mut r = Reader::new(body);
    let legacy = r.u16().ok_or(())?;
    r.take(32).ok_or(())?;
    let sid = r.vec8().ok_or(())?;
    if sid.len() > 32 {
        return Err(());
    }
    r.u16().ok_or(())?; // cipher suite
    r.u8().ok_or(())?; // compression method
    let mut version = legacy;
    let mut alpn = None;
    if r.remaining() == 0 {
        return Ok((version, alpn));
    }
    let exts = r.vec16().ok_or(())?;
    if r.remaining() != 0 {
        return Err(());
    }
    let mut er = Reader::new(exts);
    while er.remaining() > 0 {
        let ty = er.u16().ok_or(())?;
        let data = er.vec16().ok_or(())?;
        match ty {
            EXT_SUPPORTED_VERSIONS => match data {
                [a, b] => version = u16::from_be_bytes([*a, *b]),
                _ => return Err(()),
            },
            EXT_ALPN => {
                let list = parse_alpn_list(data)?;
                let mut l = Reader::new(list);
                alpn = l.vec8();
                if l.remaining() != 0 {
                    return Err(());
                }
            }
            _ => {}
        }
    }
    Ok((version, alpn))
}

/// Raw DER subject and issuer `Name`s (full TLVs) of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertNames<'a> {
    /// Subject Name.
    pub subject: &'a [u8],
    /// Issuer Name.
    pub issuer: &'a [u8],
}

/// The client's own certificate, sent in TLS 1.2 and earlier when the server asks for one
/// (mutual authentication). From the client->server stream prefix: the ClientHello is skipped,
/// and when the client's next handshake message is a Certificate, the first certificate's
/// subject and issuer are returned.
///
/// `Done(None)` when the client's second flight shows no certificate (another handshake
/// message, a non-handshake record such as TLS 1.3's ChangeCipherSpec and encrypted records,
/// or an empty certificate list). Handshake records are joined in `scratch` (cap 16 KiB), so
/// the work is bounded whatever the input; only the beginning of the first certificate is
/// needed.
pub fn parse_client_certificate<'a>(
    stream: &'a [u8],
    scratch: &'a mut HandshakeScratch,
) -> Parse<Option<CertNames<'a>>> {
    if let Some(p) = classify_start(stream) {
        return p;
    }
    scratch.clear();
    let mut pos = 0usize;
    let mut more = true;
    loop {
        let rest = stream.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        let len = match record_header(rest) {
            RecHdr::Partial => break,
            RecHdr::Ok(CT_HANDSHAKE, len) => len,
            RecHdr::Bad if pos == 0 => return Parse::Invalid,
            // Anything else ends the plaintext handshake flight.
            RecHdr::Ok(..) | RecHdr::Bad => {
                more = false;
                break;
            }
        };
        let body_end = len.saturating_add(5);
        let body = rest.get(5..body_end.min(rest.len())).unwrap_or(&[]);
        scratch.push(body);
        if scratch.is_full() {
            more = false;
            break;
        }
        if body.len() < len {
            break;
        }
        pos = pos.saturating_add(body_end);
    }
    let short = |more: bool| {
        if more {
            Parse::NeedMore
        } else {
            Parse::Done(None)
        }
    };
    let scratch: &'a HandshakeScratch = scratch;
    let mut r = Reader::new(scratch.as_slice());
    match r.u8() {
        None => return short(more),
        Some(HS_CLIENT_HELLO) => {}
        Some(_) => return Parse::Invalid,
    }
    let Some(hello_len) = r.u24() else {
        return short(more);
    };
    if r.take(hello_len).is_none() {
        return short(more);
    }
    match r.u8() {
        None => return short(more),
        Some(HS_CERTIFICATE) => {}
        Some(_) => return Parse::Done(None),
    }
    let (Some(msg_len), Some(list_len)) = (r.u24(), r.u24()) else {
        return short(more);
    };
    if list_len == 0 {
        return Parse::Done(None);
    }
    let Some(cert_len) = r.u24() else {
        return short(more);
    };
    if list_len.saturating_add(3) > msg_len || cert_len.saturating_add(3) > list_len {
        return Parse::Done(None);
    }
    let avail = r.rest();
    let complete = avail.len() >= cert_len;
    let der = avail.get(..cert_len.min(avail.len())).unwrap_or(&[]);
    match first_cert_names(der) {
        Ok((issuer, subject)) => Parse::Done(Some(CertNames { subject, issuer })),
        Err(DerErr::Incomplete) if !complete && more => Parse::NeedMore,
        Err(_) => Parse::Done(None),
    }
}

// ---------------------------------------------------------------------------
// Minimal DER walking (certificates and X.501 Names)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DerErr {
    /// The buffer ends before the element does.
    Incomplete,
    /// The encoding is not valid DER (for our purposes).
    Malformed,
}

/// `(tag, header length, content length)` of the DER element at the start of `b`.
fn der_header(b: &[u8]) -> Result<(u8, usize, usize), DerErr> {
    let tag = *b.first().ok_or(DerErr::Incomplete)?;
    if tag & 0x1f == 0x1f {
        return Err(DerErr::Malformed);
    }
    let l0 = *b.get(1).ok_or(DerErr::Incomplete)?;
    if l0 < 0x80 {
        return Ok((tag, 2, l0 as usize));
    }
    let n = (l0 & 0x7f) as usize;
    if n == 0 || n > 4 {
        return Err(DerErr::Malformed);
    }
    let mut len = 0usize;
    for i in 0..n {
        let byte = *b.get(2 + i).ok_or(DerErr::Incomplete)?;
        len = (len << 8) | byte as usize;
    }
    Ok((tag, 2 + n, len))
}

/// `(tag, content, total length)` of the complete DER element at the start of `b`.
fn der_tlv(b: &[u8]) -> Result<(u8, &[u8], usize), DerErr> {
    let (tag, hl, cl) = der_header(b)?;
    let total = hl.checked_add(cl).ok_or(DerErr::Malformed)?;
    let content = b.get(hl..total).ok_or(DerErr::Incomplete)?;
    Ok((tag, content, total))
}

/// Step into a constructed element whose content may be truncated in `b`.
/// Returns the available part of the content and whether it is complete.
fn der_enter(b: &[u8], want_tag: u8) -> Result<(&[u8], bool), DerErr> {
    let (tag, hl, cl) = der_header(b)?;
    if tag != want_tag {
        return Err(DerErr::Malformed);
    }
    let end = hl.checked_add(cl).ok_or(DerErr::Malformed)?;
    let complete = b.len() >= end;
    let content = b.get(hl..end.min(b.len())).unwrap_or(&[]);
    Ok((content, complete))
}

/// Issuer and subject Name TLVs of a (possibly truncated) DER certificate.
fn first_cert_names(der: &[u8]) -> Result<(&[u8], &[u8]), DerErr> {
    let (cert, _) = der_enter(der, 0x30)?;
    let (tbs, tbs_complete) = der_enter(cert, 0x30)?;
    let fix = |e: DerErr| {
        if e == DerErr::Incomplete && tbs_complete {
            DerErr::Malformed
        } else {
            e
        }
    };
    let mut pos = 0usize;
    let mut next = |want: u8, optional: bool| -> Result<Option<&[u8]>, DerErr> {
        let rest = tbs.get(pos..).unwrap_or(&[]);
        let (tag, _, total) = der_tlv(rest).map_err(fix)?;
        if tag != want {
            return if optional {
                Ok(None)
            } else {
                Err(DerErr::Malformed)
            };
        }
        let el = rest.get(..total).ok_or(DerErr::Malformed)?;
        pos = pos.saturating_add(total);
        Ok(Some(el))
    };
    next(0xa0, true)?; // version
    next(0x02, false)?; // serialNumber
    next(0x30, false)?; // signature AlgorithmIdentifier
    let issuer = next(0x30, false)?.ok_or(DerErr::Malformed)?;
    next(0x30, false)?; // validity
    let subject = next(0x30, false)?.ok_or(DerErr::Malformed)?;
    Ok((issuer, subject))
}

/// Call `f(oid, value_tag, value, first_in_rdn)` for every AttributeTypeAndValue of a
/// DER Name TLV, in encoded order. Stops early when `f` returns false.
/// Returns `Err(())` if the Name is malformed (attributes before the error were visited).
fn walk_name(der_name: &[u8], mut f: impl FnMut(&[u8], u8, &[u8], bool) -> bool) -> Result<(), ()> {
    let (tag, rdns, _) = der_tlv(der_name).map_err(|_| ())?;
    if tag != 0x30 {
        return Err(());
    }
    let mut p = 0usize;
    while let Some(rest) = rdns.get(p..).filter(|r| !r.is_empty()) {
        let (tag, set, total) = der_tlv(rest).map_err(|_| ())?;
        if tag != 0x31 {
            return Err(());
        }
        p = p.saturating_add(total);
        let mut q = 0usize;
        let mut first = true;
        while let Some(srest) = set.get(q..).filter(|r| !r.is_empty()) {
            let (tag, atv, total) = der_tlv(srest).map_err(|_| ())?;
            if tag != 0x30 {
                return Err(());
            }
            q = q.saturating_add(total);
            let (otag, oid, olen) = der_tlv(atv).map_err(|_| ())?;
            if otag != 0x06 {
                return Err(());
            }
            let (vtag, value, _) = der_tlv(atv.get(olen..).unwrap_or(&[])).map_err(|_| ())?;
            if !f(oid, vtag, value, first) {
                return Ok(());
            }
            first = false;
        }
    }
    Ok(())
}

/// Whether the raw DER Name (full TLV) contains `needle` as a substring of one of
/// its attribute values (exact bytes, case-sensitive), e.g. `b"AnyNet Relay"`.
/// An empty needle never matches.
pub fn name_contains(der_name: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return false;
    }
    let mut found = false;
    let _ = walk_name(der_name, |_, _, value, _| {
        found = value.windows(needle.len()).any(|w| w == needle);
        !found
    });
    found
}

/// Short names of common attribute types (OID content bytes).
const ATTR_NAMES: &[(&[u8], &[u8])] = &[
    (&[0x55, 0x04, 0x03], b"CN"),
    (&[0x55, 0x04, 0x06], b"C"),
    (&[0x55, 0x04, 0x07], b"L"),
    (&[0x55, 0x04, 0x08], b"ST"),
    (&[0x55, 0x04, 0x0a], b"O"),
    (&[0x55, 0x04, 0x0b], b"OU"),
    (&[0x55, 0x04, 0x05], b"serialNumber"),
    (&[0x55, 0x04, 0x09], b"street"),
    (&[0x55, 0x04, 0x0c], b"title"),
    (&[0x55, 0x04, 0x04], b"SN"),
    (&[0x55, 0x04, 0x2a], b"GN"),
    (&[0x55, 0x04, 0x11], b"postalCode"),
    (&[0x55, 0x04, 0x61], b"organizationIdentifier"),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        b"emailAddress",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        b"DC",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        b"UID",
    ),
];

/// Bounded writer: whole tokens only, stops at the first token that does not fit.
struct Out<'o> {
    buf: &'o mut [u8],
    len: usize,
    full: bool,
}

impl Out<'_> {
    fn put(&mut self, s: &[u8]) {
        if self.full {
            return;
        }
        let end = match self.len.checked_add(s.len()) {
            Some(e) if e <= self.buf.len() => e,
            _ => {
                self.full = true;
                return;
            }
        };
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(s);
            self.len = end;
        }
    }

    fn put_hex_escape(&mut self, prefix: &[u8], v: u32, digits: usize) {
        let mut tmp = [0u8; 8];
        let mut n = 0;
        for &c in prefix.iter().take(2) {
            if let Some(t) = tmp.get_mut(n) {
                *t = c;
                n += 1;
            }
        }
        for i in (0..digits.min(4)).rev() {
            if let Some(t) = tmp.get_mut(n) {
                *t = hex_digit((v >> (4 * i)) as u8);
                n += 1;
            }
        }
        self.put(tmp.get(..n).unwrap_or(&[]));
    }

    fn put_dec(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            if let Some(t) = tmp.get_mut(i) {
                *t = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.put(tmp.get(i..).unwrap_or(&[]));
    }
}

/// Lower-case hex digit of the low nibble of `n`.
fn hex_digit(n: u8) -> u8 {
    match n & 0x0f {
        d @ 0..=9 => b'0' + d,
        d => b'a' + (d - 10),
    }
}

/// Write an OID in dotted-decimal form.
fn render_oid(oid: &[u8], out: &mut Out<'_>) {
    let mut first = true;
    let mut v: u64 = 0;
    for &b in oid {
        if v > (u64::MAX >> 8) {
            out.put(b"?");
            return;
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if first {
            let (a, rest) = match v {
                0..=39 => (0, v),
                40..=79 => (1, v - 40),
                _ => (2, v - 80),
            };
            out.put_dec(a);
            out.put(b".");
            out.put_dec(rest);
            first = false;
        } else {
            out.put(b".");
            out.put_dec(v);
        }
        v = 0;
    }
}

fn render_value(tag: u8, value: &[u8], out: &mut Out<'_>) {
    if tag == 0x1e {
        // BMPString: UCS-2 big-endian.
        for unit in value.chunks(2) {
            let u = match unit {
                [a, b] => u16::from_be_bytes([*a, *b]),
                _ => break,
            };
            if (0x20..0x7f).contains(&u) && u != u16::from(b'\\') {
                out.put(&[u as u8]);
            } else {
                out.put_hex_escape(b"\\u", u32::from(u), 4);
            }
        }
        return;
    }
    for &b in value {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.put(&[b]);
        } else {
            out.put_hex_escape(b"\\x", u32::from(b), 2);
        }
    }
}

/// Render a DER Name (full TLV) as `C=DE, O=philandro Software GmbH, CN=AnyNet Relay`
/// (attributes in encoded order, multi-valued RDNs joined with `+`) into `out`.
///
/// Returns the number of bytes written. The output is always printable ASCII: other
/// bytes are escaped as `\xNN` (BMPString units as `\uNNNN`, and `\` itself as `\x5c`).
/// Unknown attribute types are written as dotted OIDs. Output stops at the last
/// whole token that fits; a malformed Name renders the attributes before the error.
pub fn render_name(der_name: &[u8], out: &mut [u8]) -> usize {
    let mut w = Out {
        buf: out,
        len: 0,
        full: false,
    };
    let mut any = false;
    let _ = walk_name(der_name, |oid, tag, value, first_in_rdn| {
        if any {
            w.put(if first_in_rdn { b", " } else { b"+" });
        }
        any = true;
        match ATTR_NAMES.iter().find(|(o, _)| *o == oid) {
            Some((_, name)) => w.put(name),
            None => render_oid(oid, &mut w),
        }
        w.put(b"=");
        render_value(tag, value, &mut w);
        !w.full
    });
    w.len
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Test vectors shared by the TLS, QUIC and JA4 tests.

    /// Decode a hex string (test helper).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    /// Tiny deterministic PRNG for the fuzz-ish tests.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }

        pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }

        /// Random mutation of `v`: byte flips, truncation, insertion, length-ish bytes.
        pub(crate) fn mutate(&mut self, v: &[u8]) -> Vec<u8> {
            let mut m = v.to_vec();
            let edits = 1 + self.below(4);
            for _ in 0..edits {
                match self.below(5) {
                    0 if !m.is_empty() => {
                        let i = self.below(m.len());
                        m[i] ^= 1 << self.below(8);
                    }
                    1 if !m.is_empty() => {
                        let i = self.below(m.len());
                        m[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][self.below(5)];
                    }
                    2 => {
                        let n = self.below(m.len() + 1);
                        m.truncate(n);
                    }
                    3 => {
                        let i = self.below(m.len() + 1);
                        let k = 1 + self.below(8);
                        let ins = self.bytes(k);
                        m.splice(i..i, ins);
                    }
                    _ if !m.is_empty() => {
                        let i = self.below(m.len());
                        m[i] = self.next() as u8;
                    }
                    _ => {}
                }
            }
            m
        }
    }

    /// Options for [`build_client_hello`].
    pub(crate) struct HelloSpec<'s> {
        pub sni: Option<&'s [u8]>,
        pub alpn: &'s [&'s [u8]],
        pub ciphers: &'s [u16],
        pub versions: &'s [u16],
        pub sig_algs: &'s [u16],
        /// (group, key length) pairs for key_share.
        pub key_shares: &'s [(u16, usize)],
        pub ech: bool,
        /// Extra raw extensions (type, data) placed first.
        pub extra: &'s [(u16, &'s [u8])],
    }

    fn put16(v: &mut Vec<u8>, x: usize) {
        v.extend_from_slice(&(x as u16).to_be_bytes());
    }

    fn ext(v: &mut Vec<u8>, ty: u16, data: &[u8]) {
        put16(v, ty as usize);
        put16(v, data.len());
        v.extend_from_slice(data);
    }

    /// Build a ClientHello handshake message (with the 4-byte header).
    pub(crate) fn build_client_hello(s: &HelloSpec<'_>) -> Vec<u8> {
        let mut exts = Vec::new();
        for (t, d) in s.extra {
            ext(&mut exts, *t, d);
        }
        if let Some(sni) = s.sni {
            let mut d = Vec::new();
            put16(&mut d, sni.len() + 3);
            d.push(0);
            put16(&mut d, sni.len());
            d.extend_from_slice(sni);
            ext(&mut exts, 0x0000, &d);
        }
        if !s.alpn.is_empty() {
            let mut l = Vec::new();
            for a in s.alpn {
                l.push(a.len() as u8);
                l.extend_from_slice(a);
            }
            let mut d = Vec::new();
            put16(&mut d, l.len());
            d.extend_from_slice(&l);
            ext(&mut exts, 0x0010, &d);
        }
        if !s.versions.is_empty() {
            let mut d = vec![(s.versions.len() * 2) as u8];
            for v in s.versions {
                d.extend_from_slice(&v.to_be_bytes());
            }
            ext(&mut exts, 0x002b, &d);
        }
        if !s.sig_algs.is_empty() {
            let mut d = Vec::new();
            put16(&mut d, s.sig_algs.len() * 2);
            for v in s.sig_algs {
                d.extend_from_slice(&v.to_be_bytes());
            }
            ext(&mut exts, 0x000d, &d);
        }
        if !s.key_shares.is_empty() {
            let mut l = Vec::new();
            for (g, n) in s.key_shares {
                put16(&mut l, *g as usize);
                put16(&mut l, *n);
                l.extend((0..*n).map(|i| (i * 7 + 3) as u8));
            }
            let mut d = Vec::new();
            put16(&mut d, l.len());
            d.extend_from_slice(&l);
            ext(&mut exts, 0x0033, &d);
        }
        if s.ech {
            // outer ECH: HPKE suite, config id, 32-byte enc, 176-byte payload
            let mut d = vec![0, 0, 1, 0, 1, 0x42, 0, 32];
            d.extend([0x5a; 32]);
            d.extend([0, 176]);
            d.extend([0xa5; 176]);
            ext(&mut exts, 0xfe0d, &d);
        }
        let mut body = vec![0x03, 0x03];
        body.extend((0..32).map(|i| i as u8));
        body.push(32);
        body.extend((0..32).map(|i| 0xa0 ^ i as u8));
        put16(&mut body, s.ciphers.len() * 2);
        for c in s.ciphers {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        put16(&mut body, exts.len());
        body.extend_from_slice(&exts);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    /// Wrap a handshake byte string in TLS records of at most `max` bytes each.
    pub(crate) fn records(hs: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in hs.chunks(max) {
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            put16(&mut out, chunk.len());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A post-quantum-sized hello: GREASE, X25519MLKEM768 (0x11ec, 1216 bytes), ECH.
    pub(crate) fn pq_hello(sni: &[u8]) -> Vec<u8> {
        build_client_hello(&HelloSpec {
            sni: Some(sni),
            alpn: &[b"h2", b"http/1.1"],
            ciphers: &[
                0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            versions: &[0x3a3a, 0x0304, 0x0303],
            sig_algs: &[
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            key_shares: &[(0x4a4a, 1), (0x11ec, 1216), (0x001d, 32)],
            ech: true,
            extra: &[(0x0a0a, &[]), (0x0017, &[]), (0xff01, &[0])],
        })
    }

    // Excerpts from the nDPI capture corpus (LGPL-3.0 data): TLS records as sent.

    /// 443-curl.pcap: curl ClientHello (one record). nDPI: SNI www.ntop.org, JA4 t12d6707h2_2955a3196ffa_c83f907a73d3.
    pub(crate) const CURL_CH: &str = "\
        1603010200010001fc03033e3841edcc20f6d0e5f7167ab7ee91a800c8ef70c2d624c7c7943a24026d9fbc000086cc14\
        cc13cc15c030c02cc028c024c014c00a00a3009f006b006a00390038ff8500c400c3008800870081c032c02ec02ac026\
        c00fc005009d003d003500c00084c02fc02bc027c023c013c00900a2009e006700400033003200be00bd00450044c031\
        c02dc029c025c00ec004009c003c002f00ba0041c012c00800160013c00dc003000a00ff0100014d00000011000f0000\
        0c7777772e6e746f702e6f7267000b000403000102000a003a0038000e000d0019001c000b000c001b00180009000a00\
        1a00160017000800060007001400150004000500120013000100020003000f00100011000d00260024060106020603ef\
        ef050105020503040104020403eeeeeded030103020303020102020203337400000010000e000c02683208687474702f\
        312e31001500ae0000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000";
    /// chrome.pcap port 64410: Chrome ClientHello. nDPI JA4 t13d1516h2_8daaf6152771_e5627efa2ab1.
    pub(crate) const CHROME_CH_64410: &str = "\
        1603010200010001fc030302a4ce1aa7a17131cbae9b8934ac53b1e872842ec53be197b0026f4d3451eb1c20e5e6660a\
        e4dc8a2e147ee9c60511aeb68552a5ed1b555d6815057ebda104877200202a2a130313011302cca9cca8c02bc02fc02c\
        c030c013c014009c009d002f0035010001931a1a000000000013001100000e7777772e6969742e636e722e6974001700\
        00ff01000100000a000a0008dada001d00170018000b00020100002300000010000e000c02683208687474702f312e31\
        000500050100000000000d0012001004030804040105030805050108060601001200000033002b0029dada000100001d\
        0020d57431035906ab724b0f8942d710f72f8004c3fc89cf7479b2164b14f63d2b2e002d00020101002b000b0a1a1a03\
        04030303020301001b0003020002446900050003026832aaaa000100001500c500000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000";
    /// chrome.pcap port 64409: Chrome ClientHello. nDPI JA4 t13d1516h2_8daaf6152771_9b887d9acb53.
    pub(crate) const CHROME_CH_64409: &str = "\
        16030102760100027203031b38d4ca4a86d608284b6a80a6b6f0b1f7fa5c8244daab3adb92eb49c8f2e28a201ab10a86\
        567c1742c38ea398d167a4184f508aeee0f95dd291049ef251dd56d500200a0a130313011302cca9cca8c02bc02fc02c\
        c030c013c014009c009d002f0035010002096a6a000000000013001100000e7777772e6969742e636e722e6974001700\
        00ff01000100000a000a0008caca001d00170018000b00020100002300000010000e000c02683208687474702f312e31\
        000500050100000000000d0012001004030804040105030805050108060601001200000033002b0029caca000100001d\
        00208c0784abe6464e800374b542d5a274e09f93628f70ec2c3968d831afc454b751002d00020101002b000b0a0a0a03\
        04030303020301001b00030200024469000500030268325a5a0001000029013b01060100332a7372a0335ac04064835c\
        831fb280258b13492e8b8b20b4cd6e2fabf3a765e32a3eea145d5c54466267c0cd7c086734e2865a60ea01ece3bc09b0\
        841af4963f829084cbd4f658f8a204f7650477cdd52256daeb8b3069e7ad5097a6ddbe8389566bfac1babf99cedb8c39\
        16ae63368a0262079afe4482c8080a270f735c026417e00b6e0d949d83704eb76ff143cf6162bffc5671b38ee8b4049c\
        18c6044bde45fd475d271e34bf72cbff6313a9f5855903dc882f1d5e1de9566307d0580445238ae710c982ec92c01c69\
        5d8c901212df6a3c8abae935c74169aaaa87549f67a06b0ec8e1a468b5d556c5524461ffa4426f60e18d6aa71c61ba3c\
        199588ed4f3f4b73003130b5b7ba6a068a7237e6cd477afee988e0a88f2ef7d6ff0d79129931479678b69f8ef5b8362b\
        f7a8329ca687ab6e1889a1";
    /// firefox.pcap port 51600: Firefox ClientHello. nDPI JA4 t13d1813h2_e8a523a41297_84e5d5db657c.
    pub(crate) const FIREFOX_CH_51600: &str = "\
        16030102a30100029f0303226fbb04c151c93fc35a7c374470c46efb606d5bcd24227581003e0aaf0850a6207ceba6aa\
        6bbc85c487e15d94d8480c7a75d5429d6a8eb025a6a6e4ee9da5f59b0024130113031302c02bc02fcca9cca8c02cc030\
        c00ac009c013c014009c009d002f0035000a0100023200000013001100000e7777772e6969742e636e722e6974001700\
        00ff01000100000a000e000c001d00170018001901000101000b000201000010000e000c02683208687474702f312e31\
        0005000501000000000033006b0069001d0020ccbe177bfe45c25d4240e1720c71bfeab42cfa2aff699d58bcf80db854\
        954d0900170041048772409c1dd3091a56a3f781bd32ba6abcdfcb418e069b3b8dff1e7d5eeff0746ace56bca73bbabd\
        79a066c713b8f2ef225815d26088d920efd8010b6b59fd2e002b00050403040303000d00180016040305030603080408\
        05080604010501060102030201002d00020101001c000240010029013b01060100332a7372a0335ac04064835c831fb2\
        80aeef6631444c50d5f8ae0e4d4da1ee23209fa0641ed187e76ea64386ea05fbf57072c78b2a2d5d352db7bbf75c9f8f\
        bdedde20b51474231301fea9a51ff9bf50efb44121284518bd72c376944b23951894128939e26f1441cc542323d7f550\
        bb7aea0e31035af53de7302d0b39f7453b321ad2b02c6d0b24111570ac59e08441523aa2496bf2dfe0e2958a569db5db\
        ff61aba8acd2545c4831c0393e2cecd679d23e47cd819c45fc6f00aea10465df4f0526de8c31bda7d69924b3aa6612ca\
        61b9a84ac91cd5bccef4317a1ecd75fe024a5c7d284ba9f142bdbc365b495f7115e86174ab530d1671dbfe634ed0058d\
        7325339921003130bb0c5be288c0074b228ef5425f9480b1adfac18928e7f90e751bff73cdedef8a7f44fe1df2a00f3e\
        2e60399bc99e51ec";
    /// firefox.pcap port 51577: Firefox ClientHello. nDPI JA4 t13d1814h2_e8a523a41297_d267a5f792d4.
    pub(crate) const FIREFOX_CH_51577: &str = "\
        1603010200010001fc03032d7c0d430bece9c9cbfd15d98d3140b96ec26e5a7517caea742105a6143526bb2087031053\
        5e4a33fcc7c4d9b23f70b069d7990761d6edb7a115363be1f52a500b0024130113031302c02bc02fcca9cca8c02cc030\
        c00ac009c013c014009c009d002f0035000a0100018f00000013001100000e7777772e6969742e636e722e6974001700\
        00ff01000100000a000e000c001d00170018001901000101000b00020100002300000010000e000c0268320868747470\
        2f312e310005000501000000000033006b0069001d00201da93a0074c22fc3110383f83e0910e44cc3d736fc8292f196\
        644d541cd7ea750017004104692ac0b01d5df430f5aec67a7ec4c19b06dd4236b0c37b2c33078a2c38edbe6f3d2077b3\
        89b1ff762e91b57aa364e90e511c698097be19a6a6d5cb686aea78f1002b00050403040303000d001800160403050306\
        0308040805080604010501060102030201002d00020101001c0002400100150094000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000";
    /// anydesk.pcapng port 48260: AnyDesk ClientHello (ALPN anydesk/6.2.0/linux). nDPI JA4 t12d6406an_9197985d2161_a1e935682795.
    pub(crate) const ANYDESK_CH: &str = "\
        160301011c010001180303dece7ed3573fd0ffc0677c9206100d254c53e244be707530b41435d1ed53613b000080c030\
        c02cc028c024c014c00a00a500a300a1009f006b006a006900680039003800370036c032c02ec02ac026c00fc005009d\
        003d0035c02fc02bc027c023c013c00900a400a200a0009e00670040003f003e0033003200310030c031c02dc029c025\
        c00ec004009c003c002fc012c008001600130010000dc00dc003000a00ff0100006f000b000403000102000a001c001a\
        00170019001c001b0018001a0016000e000d000b000c0009000a00230000000d0020001e060106020603050105020503\
        040104020403030103020303020102020203000f00010100100016001413616e796465736b2f362e322e302f6c696e75\
        78";
    /// anydesk.pcapng port 48260, server side: ServerHello + Certificate records (TLS 1.2, AnyNet Relay).
    pub(crate) const ANYDESK_SRV: &str = "\
        16030300570200005303036320bf754919f276075a4f136bc70ab67a2ff20374216084444f574e47524401203b6c4f3b\
        78f1b098ce4d0443fd8ac1fd2f3d24efc6e34aacf815422c73da5736c02c00000bff01000100000b0002010016030308\
        b70b0008b30008b00003433082033f30820127020900f188307674532493300d06092a864886f70d01010b0500304831\
        17301506035504030c0e416e794e657420526f6f742043413120301e060355040a0c177068696c616e64726f20536f66\
        747761726520476d6248310b3009060355040613024445301e170d3138313131383032313432335a170d323831313135\
        3032313432335a3046310b30090603550406130244453120301e060355040a0c177068696c616e64726f20536f667477\
        61726520476d62483115301306035504030c0c416e794e65742052656c61793059301306072a8648ce3d020106082a86\
        48ce3d0301070342000448a64aae378d715de32d035a65f6efe949ec20f5b058270ff8982fabf34f9afcf0ef5f867f0c\
        fdefbe619662e764a14d0a6865972945d2e6ab8e75c552fcacbf300d06092a864886f70d01010b050003820201006691\
        3248c24303858e60a98d57b03d3eb632e21a7d1482e19d0efb44160753c70c76f61a52792d66d4153872d6fa728e1d7d\
        2f5c0f0b125685a63c3edb59ad4245b281403ad847c5aa295ce7030349a05b493f9632cbfb57f072f0032aa05c69c0ef\
        52f2376bd4b50a26e6e820b94b8bbb63de6f656a9f5dd7c1979b2d304e9a8185b41c92a6edd87af9df9d03b3909c78a9\
        c8ba0e3cacec14db7d51b39706b9f67760abfe5983af8e975629c7db7e7179d1c7f7dab6c8f7af8f24e01b00df16d119\
        0fd15a9d47017c2753804f5ee69e6a6c24fea7e4807c8e58b0d4124df02b9bbadea82229fffca42be6d485d37bcf1f6e\
        bb10955c0cc3263953c8ec7c34e278cedb4c0de6707c97aff8e1a1615a2eaa83711744a09dfc4c11fcb45cfa76c17119\
        a324903b4fa9cfc00f1d1672b2ec05cda96fcbda4373347c7a5c960dc7bfd9be0190b7385bbc8985e2dbe77f54528abe\
        dda97855cedd3eb29352e50f3816cebb35cee19f59a1df9e0d1c346f54094009e2ca654d14424c3da3ab81f2f34dc19a\
        fdd290d5d8b05e120a2cc356c4dedb4392c1adf1e1fcfbc3ef885a7106245cb747616fe4ba487a788b23bd5f6e116d5d\
        fb63c9b1581595a326d24cb6a7e4393ce7e359b62b5f2e8e70ed782cff55cec4fc6668a73a4457f249b539bb45042c26\
        d37c7ddc5adfce4990cf141d43df47af8f55f57c49039da30122ac8aad91000567308205633082034ba0030201020209\
        0087fb0d0cb7b18be8300d06092a864886f70d010105050030483117301506035504030c0e416e794e657420526f6f74\
        2043413120301e060355040a0c177068696c616e64726f20536f66747761726520476d6248310b300906035504061302\
        4445301e170d3134303431313032333735355a170d3234303430383032333735355a30483117301506035504030c0e41\
        6e794e657420526f6f742043413120301e060355040a0c177068696c616e64726f20536f66747761726520476d624831\
        0b300906035504061302444530820222300d06092a864886f70d01010105000382020f003082020a0282020100b41541\
        0dda1ad35a20fef9dfbf0a8cf1a4adefd45496e7e282b70d00eaf137e2d78ca1163ba0680838aa6ddb26bea6699336a8\
        8e1e70dcac811ee2dd168334b51570f58acd9dee5d807c5a78a207a4aee6f8d631fa5c7bbbe05aeb512f97bff6fb3327\
        90b3d8e4e0cd683b6a876ca60de7d8bd61df566b2ae11c2bf59fbf85dd8c5b061e717fba4aa640b07717ea2c3f5b9414\
        852ead1161ab88f601bbb3476be28118f18e39e6d87b0c638683ac708475272d353d7b7ba8ceb2487908382d82267e93\
        4b32766685a7fdcaf10a2fc7620f6a40fe1a6b581c53e463c175839aab780449831fe723709fa3bf68d1332f4cde5e86\
        987d617d0134f59ce9cb416bae502b67d5d9f202fc5fa35234b9dc67effa73c59440eab58af798ece89bbb866c6f3637\
        8a808c9f84f6ca4a7622728d527d85754d55efadaff3e51623005be8b6ed7e9f2e804beed55fdc65e989dcdba64304bb\
        cefda94c2f1933aae6712086fe458b97e6c81d4f70bac7c0c3f3a6f2dac2a41bdd894eec1cda7b248faa42f914328368\
        63c826bcec13b30d0be2b608c6c6067ea3166f15d21b16523c1f2291251715cc4282da3ba839c72a50cad94ca08c9533\
        750370b8dfa0c9b2b28b1b38837932c312da339642f49111aac62631bcea438a305465c5439e503bfa91930e9d3b234a\
        3d43c1c6229b68af2ffc0180521805220ebd6ae42ec9d6ecc58ff313b30203010001a350304e301d0603551d0e041604\
        141965790680c6deb2aa589957b2365ced01628d47301f0603551d230418301680141965790680c6deb2aa589957b236\
        5ced01628d47300c0603551d13040530030101ff300d06092a864886f70d01010505000382020100b3aa4717a4afd260\
        3415ad25d58e285ec1aab18d30569b4776f2e02054063df123c2efbba1f29fe3ab0c06bf545e0c1a35566de1934bc599\
        5f90867e528394a0a04736f2fcf2c24d70c9c96e345ca70f04fdeb165e8abe863ba00c737fa3f55f3d2bc5410c670ae3\
        482bca62f6a99a1ec9e444bc17f9db5c45980969ecc863ef85294e71edf999ac49208a90bc598ef1f3a5999912e3a77b\
        e56834ab535aadf144caba7fc2a6739210ea8cb1c6c9d5e45e2b0f1e4a93f96d4c0685906551d389cc2ea26bb5e4f0ea\
        3735a97dc0cb87123272932151811da30cca96f881f492a0aff71924f3e6cdea1129c9f1291db22b181ab4a3c058c470\
        3978a788d77432c280628358e3b43e25b8562c60775225aa6132d1978d77243424c5dbf2dd61c8ed63570ec270e51f52\
        dd6c6f38b2daed9da72f87fab370e5644df9c302d546da1fcbf05820fc4496f0cab69b39e6cf27d02c9974d4cade4788\
        eddff79c3bac8a62d27590d90081d3f8c2478e9abd876dcee59a7f2876a477c63fb9bf4df1cbdf0f2c73feb460e3265e\
        83f2ae365694e9a79da13dca5d6e3d5da86ff2a58ff39e688527ece9678534160d4534148e070c7b255154f33fa12aef\
        9a179e51de1664fbdde1c894098c39bb7773d466bb492b5cfa2b578b66adf7a8703b8f9e0971de122eed02104cd5671e\
        72ff3a3e346d92603d445ef42160ee6c2e3a731ac3266af4";
    /// chrome.pcap port 64410, server side: TLS 1.3 ServerHello record.
    pub(crate) const CHROME_SRV_64410: &str = "\
        160303007a0200007603037f6a8f5fa21bae3b80f06f3632c66e31822298616687a8002df76ffbffe8260f20e5e6660a\
        e4dc8a2e147ee9c60511aeb68552a5ed1b555d6815057ebda1048772130200002e002b0002030400330024001d0020cd\
        65b06d9fcfc14063f8b96b93b8e042a240931f49eebfc2d5db420ec9054b30140303000101";
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;

    fn alpns<'a>(h: &ClientHello<'a>) -> Vec<&'a [u8]> {
        h.alpn_iter().collect()
    }

    /// Every strict prefix must be NeedMore, the full stream Done.
    fn check_prefixes(stream: &[u8], step: usize) {
        let mut scratch = Box::new(HandshakeScratch::new());
        let mut n = 0;
        while n < stream.len() {
            let p = parse_client_hello_stream(&stream[..n], &mut scratch);
            assert_eq!(p, Parse::NeedMore, "prefix {n} of {}", stream.len());
            n += step;
        }
        assert!(matches!(
            parse_client_hello_stream(stream, &mut scratch),
            Parse::Done(_)
        ));
    }

    #[test]
    fn curl_client_hello() {
        let s = hex(CURL_CH);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(h) = parse_client_hello_stream(&s, &mut sc) else {
            panic!("curl hello not parsed")
        };
        assert_eq!(h.sni, Some(&b"www.ntop.org"[..]));
        assert_eq!(alpns(&h), vec![&b"h2"[..], b"http/1.1"]);
        assert_eq!(h.legacy_version, 0x0303);
        assert_eq!(h.supported_versions, None);
        assert_eq!(h.max_version(), 0x0303);
        assert_eq!(h.ciphers.len() / 2, 67);
        assert!(!h.has_ech);
        assert!(h.sig_algs.is_some());
        check_prefixes(&s, 1);
    }

    #[test]
    fn chrome_and_firefox_client_hellos() {
        for v in [
            CHROME_CH_64410,
            CHROME_CH_64409,
            FIREFOX_CH_51600,
            FIREFOX_CH_51577,
        ] {
            let s = hex(v);
            let mut sc = Box::new(HandshakeScratch::new());
            let Parse::Done(h) = parse_client_hello_stream(&s, &mut sc) else {
                panic!("browser hello not parsed")
            };
            assert_eq!(h.sni, Some(&b"www.iit.cnr.it"[..]));
            assert_eq!(alpns(&h), vec![&b"h2"[..], b"http/1.1"]);
            assert_eq!(h.max_version(), 0x0304);
            assert_eq!(h.legacy_version, 0x0303);
            check_prefixes(&s, 7);
        }
        // Chrome sends a GREASE version first; it must be skipped by max_version.
        let s = hex(CHROME_CH_64410);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(h) = parse_client_hello_stream(&s, &mut sc) else {
            panic!()
        };
        let first = u16_iter(h.supported_versions.unwrap()).next().unwrap();
        assert!(is_grease(first));
        assert!(is_grease(h.cipher_iter().next().unwrap()));
    }

    #[test]
    fn anydesk_client_hello() {
        let s = hex(ANYDESK_CH);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(h) = parse_client_hello_stream(&s, &mut sc) else {
            panic!("anydesk hello not parsed")
        };
        assert_eq!(alpns(&h), vec![&b"anydesk/6.2.0/linux"[..]]);
        assert_eq!(h.max_version(), 0x0303);
        assert_eq!(h.ciphers.len() / 2, 64);
        check_prefixes(&s, 1);
    }

    #[test]
    fn message_spread_over_records() {
        let msg = pq_hello(b"relay.example.net");
        assert!(msg.len() > 1500);
        let Ok(single) = parse_client_hello_body(&msg[4..]) else {
            panic!()
        };
        for max in [1000, 700, 600] {
            let mut stream = records(&msg, max);
            let nrec = msg.len().div_ceil(max);
            assert!((2..=3).contains(&nrec));
            check_prefixes(&stream, 1);
            // Trailing records after the hello (e.g. a ChangeCipherSpec) are ignored.
            stream.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
            let mut scratch = Box::new(HandshakeScratch::new());
            let Parse::Done(h) = parse_client_hello_stream(&stream, &mut scratch) else {
                panic!("multi-record hello not parsed")
            };
            assert_eq!(h, single);
            assert_eq!(h.sni, Some(&b"relay.example.net"[..]));
        }
        // A 4-byte first record holding just the handshake header.
        let mut stream = records(&msg[..4], 4);
        stream.extend(records(&msg[4..], 16384));
        check_prefixes(&stream, 3);
    }

    #[test]
    fn post_quantum_sized_hello() {
        let msg = pq_hello(b"pq.example.com");
        let stream = records(&msg, 16384);
        assert!(stream.len() > 1500);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(h) = parse_client_hello_stream(&stream, &mut sc) else {
            panic!()
        };
        assert_eq!(h.max_version(), 0x0304);
        assert!(h.has_ech);
        let ks = h.ext_iter().find(|(t, _)| *t == 0x0033).unwrap().1;
        // client_shares: GREASE(1) + X25519MLKEM768(1216) + X25519(32)
        assert_eq!(ks.len(), 2 + (4 + 1) + (4 + 1216) + (4 + 32));
        assert_eq!(&ks[2 + 5..2 + 5 + 4], &[0x11, 0xec, 0x04, 0xc0]);
        check_prefixes(&stream, 7);
    }

    #[test]
    fn sni_returned_as_sent() {
        let msg = build_client_hello(&HelloSpec {
            sni: Some(b"WwW.ExAmPle.COM."),
            alpn: &[],
            ciphers: &[0x1301],
            versions: &[],
            sig_algs: &[],
            key_shares: &[],
            ech: false,
            extra: &[],
        });
        let stream = records(&msg, 16384);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(h) = parse_client_hello_stream(&stream, &mut sc) else {
            panic!()
        };
        assert_eq!(h.sni, Some(&b"WwW.ExAmPle.COM."[..]));
        assert_eq!(h.alpn, None);
        assert_eq!(h.alpn_iter().count(), 0);
        assert_eq!(h.max_version(), 0x0303);
        assert!(!h.has_ech);
    }

    #[test]
    fn ech_flag() {
        let msg = pq_hello(b"public.example");
        let h = parse_client_hello_body(&msg[4..]).unwrap();
        assert!(h.has_ech);
        let s = hex(FIREFOX_CH_51600);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(h) = parse_client_hello_stream(&s, &mut sc) else {
            panic!()
        };
        assert!(!h.has_ech);
    }

    #[test]
    fn not_tls_and_need_more() {
        let mut sc = Box::new(HandshakeScratch::new());
        assert_eq!(parse_client_hello_stream(b"", &mut sc), Parse::NeedMore);
        assert_eq!(parse_client_hello_stream(&[0x16], &mut sc), Parse::NeedMore);
        assert_eq!(
            parse_client_hello_stream(&[0x16, 3], &mut sc),
            Parse::NeedMore
        );
        assert_eq!(
            parse_client_hello_stream(&[0x16, 3, 1, 2], &mut sc),
            Parse::NeedMore
        );
        for junk in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x04, 0x01, 0x00, 0x10],
            &[0x16, 0x03, 0x10, 0x00, 0x10],
            &[0x17, 0x03, 0x03, 0x00, 0x10],
            &[0x80, 0x2e, 0x01, 0x03, 0x01],
            &[0x16, 0x02],
        ] {
            assert_eq!(parse_client_hello_stream(junk, &mut sc), Parse::NotTls);
            assert_eq!(parse_server_stream(junk, &mut sc), Parse::NotTls);
        }
    }

    #[test]
    fn invalid_streams() {
        let mut sc = Box::new(HandshakeScratch::new());
        // zero-length record
        assert_eq!(
            parse_client_hello_stream(&[0x16, 3, 1, 0, 0], &mut sc),
            Parse::Invalid
        );
        // oversized record
        assert_eq!(
            parse_client_hello_stream(&[0x16, 3, 1, 0x40, 1, 1], &mut sc),
            Parse::Invalid
        );
        // not a ClientHello
        assert_eq!(
            parse_client_hello_stream(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0], &mut sc),
            Parse::Invalid
        );
        // handshake message longer than the scratch cap
        assert_eq!(
            parse_client_hello_stream(&[0x16, 3, 1, 0, 4, 1, 1, 0, 0], &mut sc),
            Parse::Invalid
        );
        // interleaved non-handshake record
        let msg = pq_hello(b"a.example");
        let mut s = records(&msg[..100], 100);
        s.extend_from_slice(&[0x15, 3, 3, 0, 2, 2, 40]);
        assert_eq!(parse_client_hello_stream(&s, &mut sc), Parse::Invalid);
        // truncated body inside a complete record
        let mut bad = msg.clone();
        let l = bad.len() - 4 - 10;
        bad.truncate(bad.len() - 10);
        bad[1..4].copy_from_slice(&(l as u32).to_be_bytes()[1..]);
        assert_eq!(
            parse_client_hello_stream(&records(&bad, 16384), &mut sc),
            Parse::Invalid
        );
        // garbage body
        assert_eq!(parse_client_hello_body(&[3, 3, 0]), Err(()));
        assert_eq!(parse_client_hello_body(&[]), Err(()));
    }

    #[test]
    fn server_anydesk_certificate() {
        let s = hex(ANYDESK_SRV);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(info) = parse_server_stream(&s, &mut sc) else {
            panic!("anydesk server flight not parsed")
        };
        assert_eq!(info.version, 0x0303);
        let subject = info.cert_subject.expect("subject");
        let issuer = info.cert_issuer.expect("issuer");
        assert!(name_contains(subject, b"AnyNet Relay"));
        assert!(name_contains(subject, b"philandro Software GmbH"));
        assert!(!name_contains(subject, b"AnyNet Root CA"));
        assert!(name_contains(issuer, b"AnyNet Root CA"));
        assert!(!name_contains(subject, b""));
        let mut out = [0u8; 256];
        let n = render_name(subject, &mut out);
        assert_eq!(
            &out[..n],
            b"C=DE, O=philandro Software GmbH, CN=AnyNet Relay"
        );
        let n = render_name(issuer, &mut out);
        assert_eq!(
            &out[..n],
            b"CN=AnyNet Root CA, O=philandro Software GmbH, C=DE"
        );
        // Bounded output: whole tokens only, always a prefix of the full rendering.
        let full = b"C=DE, O=philandro Software GmbH, CN=AnyNet Relay";
        for cap in 0..full.len() {
            let mut small = vec![0u8; cap];
            let n = render_name(subject, &mut small);
            assert!(n <= cap);
            assert_eq!(&small[..n], &full[..n]);
        }
        // Every strict prefix: NeedMore (or Done with the cert once it is all there).
        for n in 0..s.len() {
            match parse_server_stream(&s[..n], &mut sc) {
                Parse::NeedMore => {}
                Parse::Done(i) => assert!(i.cert_subject.is_some(), "done early at {n}"),
                other => panic!("prefix {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn client_certificate_after_hello() {
        // The Certificate message of the AnyDesk server flight, sent by the client instead.
        let srv = hex(ANYDESK_SRV);
        let mut joined = Vec::new();
        let mut pos = 0;
        while pos + 5 <= srv.len() && srv[pos] == 0x16 {
            let len = u16::from_be_bytes([srv[pos + 3], srv[pos + 4]]) as usize;
            joined.extend_from_slice(&srv[pos + 5..(pos + 5 + len).min(srv.len())]);
            pos += 5 + len;
        }
        let sh_len = u32::from_be_bytes([0, joined[1], joined[2], joined[3]]) as usize;
        let cert_msg = &joined[4 + sh_len..];
        assert_eq!(cert_msg[0], HS_CERTIFICATE);
        let cl = u32::from_be_bytes([0, cert_msg[1], cert_msg[2], cert_msg[3]]) as usize;
        let cert_msg = &cert_msg[..4 + cl];
        let hello = hex(ANYDESK_CH);
        let mut sc = Box::new(HandshakeScratch::new());
        assert!(matches!(
            parse_client_certificate(&hello, &mut sc),
            Parse::NeedMore
        ));
        let mut s = hello.clone();
        s.extend(records(cert_msg, 1000));
        s.extend([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
        let Parse::Done(Some(names)) = parse_client_certificate(&s, &mut sc) else {
            panic!("client certificate not found")
        };
        assert!(name_contains(names.subject, b"AnyNet Relay"));
        assert!(name_contains(names.issuer, b"AnyNet Root CA"));
        // Every prefix: NeedMore, or Done with the certificate.
        for n in 0..s.len() {
            match parse_client_certificate(&s[..n], &mut sc) {
                Parse::NeedMore => {}
                Parse::Done(Some(_)) => assert!(n > hello.len()),
                other => panic!("prefix {n}: {other:?}"),
            }
        }
        // No certificate: a ChangeCipherSpec record (TLS 1.3 middlebox compatibility), or a
        // ClientKeyExchange, right after the hello.
        let mut ccs = hello.clone();
        ccs.extend([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
        assert!(matches!(
            parse_client_certificate(&ccs, &mut sc),
            Parse::Done(None)
        ));
        let mut cke = hello.clone();
        cke.extend(records(&[16, 0, 0, 2, 1, 0], 100));
        assert!(matches!(
            parse_client_certificate(&cke, &mut sc),
            Parse::Done(None)
        ));
        assert!(matches!(
            parse_client_certificate(b"GET / HTTP/1.1\r\n", &mut sc),
            Parse::NotTls
        ));
    }

    #[test]
    fn server_tls13_hello() {
        let s = hex(CHROME_SRV_64410);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(info) = parse_server_stream(&s, &mut sc) else {
            panic!()
        };
        assert_eq!(info.version, 0x0304);
        assert_eq!(info.cert_subject, None);
        assert_eq!(parse_server_stream(&s[..50], &mut sc), Parse::NeedMore);
    }

    #[test]
    fn server_hello_split_and_alpn() {
        // ServerHello (TLS 1.2, ALPN h2) split over two records, then ServerHelloDone.
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend([0xc0, 0x2f, 0]);
        let exts = [0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02, b'h', b'2'];
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![2, 0, 0, body.len() as u8];
        hs.extend(&body);
        hs.extend([14, 0, 0, 0]);
        let stream = records(&hs, 30);
        let mut sc = Box::new(HandshakeScratch::new());
        let Parse::Done(info) = parse_server_stream(&stream, &mut sc) else {
            panic!()
        };
        let mut sc2 = Box::new(HandshakeScratch::new());
        let mut first_done = None;
        for n in 0..stream.len() {
            match parse_server_stream(&stream[..n], &mut sc2) {
                Parse::NeedMore => assert!(first_done.is_none()),
                // Done as soon as the message after the ServerHello is known not to be a Certificate.
                Parse::Done(i) => {
                    assert_eq!(i.alpn, Some(&b"h2"[..]));
                    first_done.get_or_insert(n);
                }
                p => panic!("prefix {n}: {p:?}"),
            }
        }
        assert_eq!(first_done, Some(5 + 30 + 5 + 53 - 30 + 1));
        assert_eq!(info.version, 0x0303);
        assert_eq!(info.alpn, Some(&b"h2"[..]));
        assert_eq!(info.cert_subject, None);
    }

    #[test]
    fn render_unknown_oid_and_escapes() {
        // Name { SET { SEQ { OID 1.2.3.4, UTF8String "a\x01b\\" } } }
        let atv = [
            0x06, 0x03, 0x2a, 0x03, 0x04, 0x0c, 0x04, b'a', 0x01, b'b', b'\\',
        ];
        let mut set = vec![0x30, atv.len() as u8];
        set.extend(atv);
        let mut rdn = vec![0x31, set.len() as u8];
        rdn.extend(&set);
        let mut name = vec![0x30, rdn.len() as u8];
        name.extend(&rdn);
        let mut out = [0u8; 64];
        let n = render_name(&name, &mut out);
        assert_eq!(&out[..n], b"1.2.3.4=a\\x01b\\x5c");
        assert!(name_contains(&name, b"a\x01b"));
        assert_eq!(render_name(&[0x30, 0x05, 0x31], &mut out), 0);
        assert!(!name_contains(&[], b"x"));
    }

    #[test]
    fn fuzz_no_panics() {
        let seeds: Vec<Vec<u8>> = [
            CURL_CH,
            CHROME_CH_64410,
            CHROME_CH_64409,
            FIREFOX_CH_51600,
            FIREFOX_CH_51577,
            ANYDESK_CH,
            ANYDESK_SRV,
            CHROME_SRV_64410,
        ]
        .iter()
        .map(|h| hex(h))
        .chain([records(&pq_hello(b"x.example"), 500)])
        .collect();
        let subject = {
            let s = hex(ANYDESK_SRV);
            let mut sc = Box::new(HandshakeScratch::new());
            match parse_server_stream(&s, &mut sc) {
                Parse::Done(i) => i.cert_subject.unwrap().to_vec(),
                _ => panic!(),
            }
        };
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut sc = Box::new(HandshakeScratch::new());
        let mut out = [0u8; 96];
        for i in 0..6000 {
            let input = match i % 4 {
                0 => {
                    let n = rng.below(64);
                    let mut v = rng.bytes(n);
                    if !v.is_empty() && rng.below(2) == 0 {
                        v[0] = 0x16;
                        if v.len() > 2 {
                            v[1] = 3;
                            v[2] = rng.below(5) as u8;
                        }
                    }
                    v
                }
                1 => {
                    let s = &seeds[rng.below(seeds.len())];
                    s[..rng.below(s.len() + 1)].to_vec()
                }
                2 => rng.mutate(&subject),
                _ => {
                    let k = rng.below(seeds.len());
                    rng.mutate(&seeds[k])
                }
            };
            let _ = parse_client_hello_stream(&input, &mut sc);
            let _ = parse_server_stream(&input, &mut sc);
            let body = input.get(9..).unwrap_or(&[]);
            if let Ok(h) = parse_client_hello_body(body) {
                let _ = h.max_version();
                let _ = h.alpn_iter().count();
                let _ = h.ext_iter().count();
            }
            let _ = name_contains(&input, b"AnyNet");
            let cap = rng.below(out.len());
            let n = render_name(&input, &mut out[..cap]);
            assert!(n <= cap);
            assert!(out[..n].iter().all(|b| (0x20..0x7f).contains(b)));
        }
    }
}
