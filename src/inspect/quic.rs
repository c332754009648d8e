//! QUIC client Initial decryption: recover the TLS ClientHello sent by a QUIC client.
//!
//! Supports QUIC v1 (RFC 9000/9001), QUIC v2 (RFC 9369) and draft-29. Initial
//! packets are protected with keys derived from the client's first Destination
//! Connection ID, so a passive observer can remove the protection (RFC 9001
//! section 5.2). The CRYPTO stream is reassembled by offset in a bounded buffer
//! (out-of-order, several Initial packets, several coalesced packets per datagram)
//! and the ClientHello is handed to [`tls::parse_client_hello_body`].
//!
//! Nothing here panics on any input, allocates, or uses global state: keys are
//! derived per packet from the DCID with `ring`.

use ring::aead::{self, quic as hp};
use ring::hkdf;

use super::tls::{self, ClientHello};

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// draft-ietf-quic-transport-29.
pub const VERSION_DRAFT_29: u32 = 0xff00_001d;

/// Capacity of the CRYPTO stream reassembly buffer (the largest ClientHello we handle).
pub const CRYPTO_CAP: usize = 16 * 1024;
/// Largest single QUIC packet we decrypt (header + protected payload).
pub const PACKET_CAP: usize = 16 * 1024;

const AEAD_TAG_LEN: usize = 16;
const SAMPLE_LEN: usize = 16;
const MAX_CID_LEN: usize = 20;

/// Per-version constants: salt, HKDF labels and the Initial packet type bits.
struct VersionParams {
    salt: [u8; 20],
    key_label: &'static [u8],
    iv_label: &'static [u8],
    hp_label: &'static [u8],
    /// Long-header packet type value of Initial packets.
    initial_type: u8,
    /// Long-header packet type value of Retry packets (no Length field).
    retry_type: u8,
}

const V1_PARAMS: VersionParams = VersionParams {
    // RFC 9001 section 5.2
    salt: [
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c,
        0xad, 0xcc, 0xbb, 0x7f, 0x0a,
    ],
    key_label: b"quic key",
    iv_label: b"quic iv",
    hp_label: b"quic hp",
    initial_type: 0b00,
    retry_type: 0b11,
};

const V2_PARAMS: VersionParams = VersionParams {
    // RFC 9369 section 3.3.1
    salt: [
        0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d,
        0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
    ],
    key_label: b"quicv2 key",
    iv_label: b"quicv2 iv",
    hp_label: b"quicv2 hp",
    initial_type: 0b01,
    retry_type: 0b00,
};

const DRAFT29_PARAMS: VersionParams = VersionParams {
    // draft-ietf-quic-tls-29 section 5.2
    salt: [
        0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11,
        0xe0, 0x43, 0x90, 0xa8, 0x99,
    ],
    key_label: b"quic key",
    iv_label: b"quic iv",
    hp_label: b"quic hp",
    initial_type: 0b00,
    retry_type: 0b11,
};

fn params(version: u32) -> Option<&'static VersionParams> {
    match version {
        VERSION_1 => Some(&V1_PARAMS),
        VERSION_2 => Some(&V2_PARAMS),
        VERSION_DRAFT_29 => Some(&DRAFT29_PARAMS),
        _ => None,
    }
}

/// Bounds-checked reader with QUIC variable-length integers.
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

    fn varint(&mut self) -> Option<u64> {
        let first = self.u8()?;
        let extra = (1usize << (first >> 6)) - 1;
        let mut v = u64::from(first & 0x3f);
        for &b in self.take(extra)? {
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    }

    /// A varint used as a length within this buffer.
    fn len_varint(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }
}

/// The invariant part of a long header plus the version parameters.
struct LongHeader<'a> {
    version: u32,
    params: &'static VersionParams,
    packet_type: u8,
    dcid: &'a [u8],
    /// Offset just after the SCID.
    after_cids: usize,
}

/// Parse a long header of a supported version at the start of `pkt`.
fn long_header(pkt: &[u8]) -> Option<LongHeader<'_>> {
    let mut r = Reader::new(pkt);
    let first = r.u8()?;
    if first & 0x80 == 0 {
        return None;
    }
    let v = r.take(4)?;
    let version = u32::from_be_bytes([*v.first()?, *v.get(1)?, *v.get(2)?, *v.get(3)?]);
    let params = params(version)?;
    let dcid_len = r.u8()? as usize;
    if dcid_len > MAX_CID_LEN {
        return None;
    }
    let dcid = r.take(dcid_len)?;
    let scid_len = r.u8()? as usize;
    if scid_len > MAX_CID_LEN {
        return None;
    }
    r.take(scid_len)?;
    Some(LongHeader {
        version,
        params,
        packet_type: (first >> 4) & 0b11,
        dcid,
        after_cids: r.pos,
    })
}

/// `Some(version)` if `udp_payload` starts with a long-header Initial packet of a
/// version we can decrypt (v1, v2 or draft-29).
pub fn quic_version(udp_payload: &[u8]) -> Option<u32> {
    let h = long_header(udp_payload)?;
    (h.packet_type == h.params.initial_type).then_some(h.version)
}

/// Outcome of feeding a client datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicStatus {
    /// The datagram does not start with a long-header packet of a supported version
    /// (short header, unknown version, gQUIC, garbage). The scratch is untouched.
    NotQuic,
    /// QUIC, but the ClientHello is not complete yet: feed the next client datagram.
    NeedMore,
    /// QUIC Initial packets that fail to decrypt, or a CRYPTO stream that is not a
    /// valid ClientHello (or exceeds [`CRYPTO_CAP`]).
    Invalid,
    /// The ClientHello is complete: call [`QuicScratch::client_hello`].
    ClientHello,
}

/// Per-flow state: CRYPTO stream reassembly buffer and coverage, and the
/// decryption buffer. Own one per QUIC flow (client side) and reuse it.
pub struct QuicScratch {
    crypto: [u8; CRYPTO_CAP],
    have: [u64; CRYPTO_CAP / 64],
    plain: [u8; PACKET_CAP],
    dcid: [u8; MAX_CID_LEN],
    dcid_len: usize,
    has_dcid: bool,
    largest_pn: Option<u64>,
    hello_len: Option<usize>,
}

impl QuicScratch {
    /// New, empty state.
    pub const fn new() -> Self {
        QuicScratch {
            crypto: [0; CRYPTO_CAP],
            have: [0; CRYPTO_CAP / 64],
            plain: [0; PACKET_CAP],
            dcid: [0; MAX_CID_LEN],
            dcid_len: 0,
            has_dcid: false,
            largest_pn: None,
            hello_len: None,
        }
    }

    /// Reset for reuse on another flow.
    pub fn clear(&mut self) {
        self.have = [0; CRYPTO_CAP / 64];
        self.dcid_len = 0;
        self.has_dcid = false;
        self.largest_pn = None;
        self.hello_len = None;
    }

    /// The reassembled ClientHello, once [`feed_client_datagram`] returned
    /// [`QuicStatus::ClientHello`].
    pub fn client_hello(&self) -> Option<ClientHello<'_>> {
        let n = self.hello_len?;
        let body = self.crypto.get(4..n.checked_add(4)?)?;
        tls::parse_client_hello_body(body).ok()
    }

    /// The original Destination Connection ID the Initial keys were derived from.
    pub fn original_dcid(&self) -> Option<&[u8]> {
        if self.has_dcid {
            self.dcid.get(..self.dcid_len)
        } else {
            None
        }
    }

    fn set_dcid(&mut self, dcid: &[u8]) {
        let n = dcid.len().min(MAX_CID_LEN);
        if let (Some(dst), Some(src)) = (self.dcid.get_mut(..n), dcid.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.dcid_len = n;
        self.has_dcid = true;
    }

    /// Length of the contiguous CRYPTO data starting at offset 0.
    fn contiguous(&self) -> usize {
        let mut n = 0;
        for w in &self.have {
            if *w == u64::MAX {
                n += 64;
            } else {
                n += w.trailing_ones() as usize;
                break;
            }
        }
        n
    }
}

impl Default for QuicScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for QuicScratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuicScratch")
            .field("contiguous", &self.contiguous())
            .field("dcid", &self.original_dcid())
            .field("hello_len", &self.hello_len)
            .finish()
    }
}

/// Client Initial packet protection keys.
struct InitialKeys {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    hp: hp::HeaderProtectionKey,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), ()> {
    let len = u16::try_from(out.len()).map_err(|_| ())?.to_be_bytes();
    let label_len = [u8::try_from(label.len() + 6).map_err(|_| ())?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    let okm = prk.expand(&info, Len(out.len())).map_err(|_| ())?;
    okm.fill(out).map_err(|_| ())
}

/// Derive the client Initial keys for `dcid`.
fn client_initial_keys(p: &VersionParams, dcid: &[u8]) -> Result<InitialKeys, ()> {
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &p.salt).extract(dcid);
    let mut secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut secret)?;
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
    let mut key = [0u8; 16];
    let mut iv = [0u8; 12];
    let mut hpk = [0u8; 16];
    expand_label(&prk, p.key_label, &mut key)?;
    expand_label(&prk, p.iv_label, &mut iv)?;
    expand_label(&prk, p.hp_label, &mut hpk)?;
    let key = aead::UnboundKey::new(&aead::AES_128_GCM, &key).map_err(|_| ())?;
    let hp = hp::HeaderProtectionKey::new(&hp::AES_128, &hpk).map_err(|_| ())?;
    Ok(InitialKeys {
        key: aead::LessSafeKey::new(key),
        iv,
        hp,
    })
}

/// Reconstruct a full packet number (RFC 9000 appendix A.3).
fn decode_pn(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let bits = (pn_len.clamp(1, 4) * 8) as u32;
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62).saturating_sub(win) {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// Remove header and packet protection of the Initial packet `pkt` (exactly one
/// packet) into `plain`. Returns `(plaintext range in plain, packet number)`.
fn unprotect(
    keys: &InitialKeys,
    pkt: &[u8],
    pn_offset: usize,
    largest_pn: Option<u64>,
    plain: &mut [u8; PACKET_CAP],
) -> Result<(usize, usize, u64), ()> {
    let sample_start = pn_offset.checked_add(4).ok_or(())?;
    let sample = pkt.get(sample_start..sample_start + SAMPLE_LEN).ok_or(())?;
    let [m0, m1, m2, m3, m4] = keys.hp.new_mask(sample).map_err(|_| ())?;
    let pn_mask = [m1, m2, m3, m4];
    let buf = plain.get_mut(..pkt.len()).ok_or(())?;
    buf.copy_from_slice(pkt);
    let first = buf.first_mut().ok_or(())?;
    *first ^= m0 & 0x0f;
    let first = *first;
    if first & 0x0c != 0 {
        // Reserved bits must be zero after removing protection (checked again
        // implicitly by the AEAD, since the header is authenticated).
        return Err(());
    }
    let pn_len = usize::from(first & 0x03) + 1;
    let pn_end = pn_offset + pn_len;
    let mut truncated = 0u64;
    for (i, b) in buf
        .get_mut(pn_offset..pn_end)
        .ok_or(())?
        .iter_mut()
        .enumerate()
    {
        *b ^= pn_mask.get(i).copied().unwrap_or(0);
        truncated = (truncated << 8) | u64::from(*b);
    }
    let pn = decode_pn(largest_pn, truncated, pn_len);
    let mut nonce = keys.iv;
    for (n, p) in nonce.iter_mut().skip(4).zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    if buf.len() < pn_end + AEAD_TAG_LEN {
        return Err(());
    }
    let (header, payload) = buf.split_at_mut(pn_end);
    let out = keys
        .key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&*header),
            payload,
        )
        .map_err(|_| ())?;
    Ok((pn_end, pn_end + out.len(), pn))
}

/// Walk the frames of a decrypted Initial payload and store CRYPTO data.
fn process_frames(
    payload: &[u8],
    crypto: &mut [u8; CRYPTO_CAP],
    have: &mut [u64; CRYPTO_CAP / 64],
) -> Result<(), ()> {
    let mut r = Reader::new(payload);
    while r.remaining() > 0 {
        match r.varint().ok_or(())? {
            0x00 | 0x01 => {} // PADDING, PING
            ty @ (0x02 | 0x03) => {
                // ACK: largest, delay, range count, first range, ranges, [ECN counts]
                r.varint().ok_or(())?;
                r.varint().ok_or(())?;
                let count = r.varint().ok_or(())?;
                r.varint().ok_or(())?;
                let mut i = 0u64;
                while i < count {
                    r.varint().ok_or(())?;
                    r.varint().ok_or(())?;
                    i += 1;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        r.varint().ok_or(())?;
                    }
                }
            }
            0x06 => {
                let offset = r.varint().ok_or(())?;
                let len = r.len_varint().ok_or(())?;
                let data = r.take(len).ok_or(())?;
                insert(crypto, have, offset, data);
            }
            0x1c => {
                // CONNECTION_CLOSE (transport): error code, frame type, reason
                r.varint().ok_or(())?;
                r.varint().ok_or(())?;
                let n = r.len_varint().ok_or(())?;
                r.take(n).ok_or(())?;
            }
            _ => return Err(()), // not allowed in Initial packets
        }
    }
    Ok(())
}

/// Store CRYPTO data at `offset`; bytes already received are kept (first copy wins),
/// bytes beyond [`CRYPTO_CAP`] are dropped.
fn insert(
    crypto: &mut [u8; CRYPTO_CAP],
    have: &mut [u64; CRYPTO_CAP / 64],
    offset: u64,
    data: &[u8],
) {
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    for (i, &b) in data.iter().enumerate() {
        let Some(pos) = start.checked_add(i).filter(|p| *p < CRYPTO_CAP) else {
            break;
        };
        if let (Some(word), Some(slot)) = (have.get_mut(pos / 64), crypto.get_mut(pos)) {
            let bit = 1u64 << (pos % 64);
            if *word & bit == 0 {
                *slot = b;
                *word |= bit;
            }
        }
    }
}

/// Decrypt one Initial packet and absorb its CRYPTO frames.
fn absorb_initial(
    h: &LongHeader<'_>,
    pkt: &[u8],
    pn_offset: usize,
    s: &mut QuicScratch,
) -> Result<(), ()> {
    if pkt.len() > PACKET_CAP {
        return Err(());
    }
    // Keys come from the client's first DCID; later Initials may carry a server-chosen
    // DCID but are still protected with the original keys. A packet that only opens
    // with its own (different) DCID is a new connection attempt: start over.
    let mut same_conn = false;
    let mut opened = None;
    if s.has_dcid {
        let orig = s.dcid;
        let orig = orig.get(..s.dcid_len).unwrap_or(&[]);
        if let Ok(keys) = client_initial_keys(h.params, orig) {
            if let Ok(r) = unprotect(&keys, pkt, pn_offset, s.largest_pn, &mut s.plain) {
                same_conn = true;
                opened = Some(r);
            }
        }
    }
    if opened.is_none() && (!s.has_dcid || s.original_dcid() != Some(h.dcid)) {
        let keys = client_initial_keys(h.params, h.dcid)?;
        opened = Some(unprotect(&keys, pkt, pn_offset, None, &mut s.plain)?);
    }
    let (start, end, pn) = opened.ok_or(())?;
    if !same_conn {
        s.clear();
        s.set_dcid(h.dcid);
    }
    s.largest_pn = Some(s.largest_pn.map_or(pn, |l| l.max(pn)));
    let QuicScratch {
        plain,
        crypto,
        have,
        ..
    } = s;
    let payload = plain.get(start..end).ok_or(())?;
    process_frames(payload, crypto, have)
}

/// Feed one UDP datagram sent by the client. Does not allocate.
///
/// All coalesced long-header packets are walked: Initial packets are decrypted and
/// their CRYPTO frames reassembled; 0-RTT/Handshake packets are skipped; a short
/// header packet or trailing padding ends the datagram. Returns the state of the
/// flow after this datagram (see [`QuicStatus`]). Once the ClientHello is complete
/// further Initial datagrams keep returning `ClientHello`, unless they start a new
/// connection (a different original DCID), which resets the reassembly.
pub fn feed_client_datagram(udp_payload: &[u8], scratch: &mut QuicScratch) -> QuicStatus {
    if long_header(udp_payload).is_none() {
        return QuicStatus::NotQuic;
    }
    let mut off = 0usize;
    let mut opened = 0usize;
    let mut failed = 0usize;
    while let Some(pkt) = udp_payload.get(off..).filter(|p| !p.is_empty()) {
        let Some(h) = long_header(pkt) else {
            if off == 0 {
                return QuicStatus::NotQuic;
            }
            break;
        };
        if h.packet_type == h.params.retry_type {
            // Retry is server-only and has no Length field.
            if off == 0 {
                return QuicStatus::Invalid;
            }
            break;
        }
        let mut r = Reader::new(pkt);
        r.pos = h.after_cids;
        let is_initial = h.packet_type == h.params.initial_type;
        if is_initial {
            let Some(token_len) = r.len_varint() else {
                failed += 1;
                break;
            };
            if r.take(token_len).is_none() {
                failed += 1;
                break;
            }
        }
        let (Some(len), pn_offset) = (r.len_varint(), r.pos) else {
            failed += 1;
            break;
        };
        let Some(end) = pn_offset.checked_add(len).filter(|e| *e <= pkt.len()) else {
            failed += 1;
            break;
        };
        if is_initial {
            match pkt.get(..end) {
                Some(p) if absorb_initial(&h, p, pn_offset, scratch).is_ok() => opened += 1,
                _ => failed += 1,
            }
        }
        off = off.saturating_add(end);
    }

    // Is the ClientHello complete?
    let have = scratch.contiguous();
    if have >= 4 {
        let hdr = scratch.crypto.get(..4).unwrap_or(&[]);
        let msg_len = match hdr {
            [1, a, b, c] => (usize::from(*a) << 16) | (usize::from(*b) << 8) | usize::from(*c),
            _ => return QuicStatus::Invalid,
        };
        if msg_len + 4 > CRYPTO_CAP {
            return QuicStatus::Invalid;
        }
        if have >= msg_len + 4 {
            let body = scratch.crypto.get(4..4 + msg_len).unwrap_or(&[]);
            if tls::parse_client_hello_body(body).is_err() {
                return QuicStatus::Invalid;
            }
            scratch.hello_len = Some(msg_len);
            return QuicStatus::ClientHello;
        }
    }
    if opened == 0 && failed > 0 {
        QuicStatus::Invalid
    } else {
        QuicStatus::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::super::tls::testdata::{build_client_hello, hex, pq_hello, HelloSpec, XorShift};
    use super::*;

    const RFC_DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

    /// RFC 9001 appendix A.2: protected client Initial (QUIC v1, DCID 8394c8f03e515708).
    const RFC9001_CLIENT_INITIAL: &str = "\
        c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9bd8bab936b47d92ec356c\
        0bab7df5976d27cd449f63300099f3991c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c\
        8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df621230c83711b39343fa028cea7f7fb5ff89\
        eac2308249a02252155e2347b63d58c5457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208\
        4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec4e15daf8500a6ef69ec4e3feb6b1d98e\
        610ac8b7ec3faf6ad760b7bad1db4ba3485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db\
        059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c7b4378e846d29f37ed7b4ea9ec5d82e7\
        961b7f25a9323851f681d582363aa5f89937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556\
        be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c7468449a13d8e3b95811a198f3491de3e7\
        fe942b330407abf82a4ed7c1b311663ac69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00\
        f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632291d6a418211cc2962e20fe47feb3edf\
        330f2c603a9d48c0fcb5699dbfe5896425c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd\
        14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ffef132eef2fa09346aee33c28eb130ff2\
        8f5b766953334113211996d20011a198e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd\
        c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73203a4a13e96f5432ec0fd4a1ee65accd\
        d5e3904df54c1da510b0ff20dcc0c77fcb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e\
        fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03adea2e1fbc5aa463d08ca19896d2bf59a07\
        1b851e6c239052172f296bfb5e72404790a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2\
        162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f440591f355e12d439ff150aab7613499d\
        bd49adabc8676eef023b15b65bfc5ca06948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e\
        8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0be79e2fb8f5d5fbbe2e30ecadd220723\
        c8c0aea8078cdfcb3868263ff8f0940054da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab\
        760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9f96f3ca9ec1dde434da7d2d392b905dd\
        f3d1f9af93d1af5950bd493f5aa731b4056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064\
        7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241e221af44860018ab0856972e194cd934";
    /// RFC 9369 appendix A.2: the same ClientHello as a QUIC v2 client Initial.
    const RFC9369_CLIENT_INITIAL: &str = "\
        d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485dd04de806071bf03dceebfa162e75d6c\
        96058bdbfb127cdfcbf903388e99ad049f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d\
        250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a12834e3f249a78d395e0d18f4d766004\
        f1a2674802a747eaa901c3f10cda5500cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68\
        18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff3312ae50b187c1433c0f028edcc4c2838b\
        6a9bfc226ca4b4530e7a4ccee1bfa2a3d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd\
        6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520bcfb7966fc49b393f0061d974a2706df\
        8c4a9449f11d7f3d2dcbb90c6b877045636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f\
        ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c1216ccce2d0193f958bb3850a833f7ae43\
        2b65bc5a53975c155aa4bcb4f7b2c4e54df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4\
        fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b8017c25ca9052ca1079d8b78aebd4787\
        6d330a30f6a8c6d61dd1ab5589329de714d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9\
        9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91abfe43960977c87471cf9ad4074d30e1\
        0d6a7f03c63bd5d4317f68ff325ba3bd80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db\
        848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18d703dd84045a274ae8bfa73379661388\
        d6991fe39b0d93debb41700b41f90a15c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc\
        7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61f6b5b984d4d3dfa033c1bb7e4f0037fe\
        bf406d91c0dccf32acf423cfa1e7071010d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b\
        3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e06ebfde206bfb0fcbc0edc4ebec30966\
        1bdd908d532eb0c6adc38b7ca7331dce8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1\
        34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1e86215c2d54e6670e07383a27bbffb5a\
        ddf47d66aa85a0c6f9f32e59d85a44dd5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3\
        8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89d5974ee12e5cf7d5da4d6a31123041f3\
        3e61407e76cffcdcfd7e19ba58cf4b536f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19\
        9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96ba18b2faa745b6fe189cf772a9f84cbfc";
    /// RFC 9001 appendix A.2: unprotected payload start (CRYPTO frame with the ClientHello).
    const RFC9001_CRYPTO_FRAME: &str = "\
        060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c000004130113\
        02010000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d00170018001000070005\
        04616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce1\
        5d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c0002400100\
        3900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806\
        048000ffff";
    /// quic-29.pcap (nDPI corpus, LGPL-3.0 data): client datagrams 1-3 of 10.9.0.1:36588 -> 10.9.0.2:443.
    const DRAFT29_INITIAL_0: &str = "\
        c2ff00001d12f36e07bf0b7088ef28c71d488acaaff39ffc1143944eda18beb7e548b38d375bf3c2a3bc0044b743b590\
        a797856cfe3b435db160a5ce8ae47c38a73c65dfb3e7fc034e2681da0ca59a6a5f5e85969d6f66e1c7e8dbdb824eba94\
        7a841c0e536314a8ce65386ba7e42b7da0efcc5f933f699b755027e43545c9cdd31b0f7273a78d6a0ce2c6201462ba01\
        2c562fd43601e7872d9a4514085dfc0be2eb3f95d23f665cb374043900dd88dbe158a531faf9dec890f60ddbf539fdf5\
        de821122dc9e5d59f62f129a7364633f83d1021a1d3a9583ae7901ebabbc1ce17152fe10f4753c6a7965fd96ad711b4d\
        fe4cf3145cdfe58a185f06ed8b29c485fc910d8a7d3486b9694e678070e8780218f04a808e46730c166ba4910def45ca\
        760c5b674f71db8f2f9228bf0583ec9bc8308d2f99f8d303529e419dd4aa25a9fa2d876e881292d454361023073e27c8\
        01e46415f1ac6088dc1c42c726f7776e322e4398dc2c3435d46336f40ab0d0231d94267419950524fa0e058b5b5a407e\
        000af332fee5d5fa5d0bce4b13a91868d4aea72fe4c67e2ad0577d9e53a297873317b9e9e348665104f9cee50e20c7b9\
        ec6e1a93497b8cb3cf1609e33dcb89e7e6e1647831a84a2ee983e255e6915287084c45a4138ec555d2785dcb4dec2316\
        adbb6b55347288aa06e632a38a9443cbe1409d6a5663976c414e152adcb89e17625e973269acc23224c1973019949fbd\
        bd5cf2528da05594dd4f5026c900898e60b3620fb0ab836ac44e610f1e01565158ed59487d3f8b39765e33efa7b08389\
        698ec96925b68bed638bb8c6bf0bd9fa5eb10792539e2b2a9d44dd17c1919110224e0db91c1b291f0b56aeafcfa3896a\
        bf30d960cdc989a0a1e42f146ef2bd249c834fcbc41aee4b66ee2fc96fb30ac084cba1ed626f9397ecb4c011fd4d8ba1\
        c9b2bd9382ff32479b28091041e64fbc13701ec0569e618ae381647b8eea966d744c53c926e623bf7b365a4c69a1faad\
        005d2ab4692fa198c1e8133078330b07396345df8ca5ca602b1e91ecb30f8ece9d7c4a3247ffbee1f3193e66799ca87d\
        2f636898a9c982723f43b723923f3ee06ec3a53abfe4288f0a7efaf046ec583af7d5e39f95bb20daae4ad1c02a05bbee\
        496aeb70a116593f696dc85cb21f82178b3cf9e520e852689afebd2010590d10074d85a7dd51a571cc67b44a16ec7a71\
        31f21b4a732dd4fe9b7cd7872bd00302ed4b6936652a48e398afa06e3c9eb3b975086b74498c04e6e0c4d227998ce9fe\
        353da7f7a4c98e5eb7e37846b19186328b291155f3e83271ebc8ec72c9001912dfb6e9c02b859cadb9b4315c9951b7fa\
        f075dc92b0074a5e5937f81bc178c7c02ffa916fda88c36141d63c3616e825070ac1331b380795c0a175286ccb18a348\
        a80f1c448061d53d562c2a9e8b793c81dfc2edbc4a3605f361e246c3fb1c1802825ab71ed01f0617c5ce460bb5855bfa\
        33077fb2e068fe81bd83d52ad093fed868f81101e4658cc86de0b4d1191dd152c9cde739a7cb0e97b935a09d89c509c3\
        a96aba73c120ad5ad2bfcc74f02e3a84297f8b374e2bb1afc0611069490e3a42f402b8844441e8782149445b4ff3902a\
        c22749721f2d6cafbbba040f3746d492586228d7e74370a1ef68ba7f42bc0f1f30dceb9be8a064ed6b2612d1412228d1\
        0e0c1be6b563b6222e27217eea17a0cb6596eb17f789643b34c3235b131edb7d63e58b4c8033c14d56c501168acf1667\
        abf61903";
    const DRAFT29_INITIAL_1: &str = "\
        ceff00001d122e9a32ed45c9066ad4f9ac32c1d23c19e4801143944eda18beb7e548b38d375bf3c2a3bc3bb6907375db\
        299ac3b8c0116101cfa539946cdc0bd6f7aac1308a926fc779a44d62ce556742f27f3249c7fadc73d661f144e6516d42\
        1ecdb186e7df447c0ade7bdeec6b37b5979c509af3a83172264f5581ab8321bd19fabbc96e9a253642baa3b2e06ac02a\
        9814406d970c3d756f51f2ac2e24ac0f84882dc583f97bee5abdc187ab66f907e4cdaf9bea264fb9b9b70d5c12bb2b3f\
        5dda7dd20dc9dd79353f47d5af8fc3056ed71860e4a318574ff24af65e143d1215ca2e52fecfc708ff840f0ca5939345\
        e1a7e341a192147be91b3d6b7d68126d65bdfac30a62b786d0d2460434e23a4ceb9a836e3f066c2dc0a52ab4fc0c7933\
        f8e811f64e0794698205bc63852e44a8700f4cdd29f6d34865647e0bfa9488438dcd65876a3168ad86f2427d835222ba\
        c81a3e39062fab16b7a19a4613589fbbafacb74a2db216a28bb8586adf1090aae778bcb5e6674b730ecf67dc524d802b\
        b3d86be3ebe3d5ca8a52dc6a44f4e22c5e1d0af4488445f8c2c8951d342cd47e5594fc0ac49ab9efd2f2792faa163e0a\
        766bd9045899170f8e4b2dcd9dc0348ef1e9bc335acc2670f3fb58c9baafb72a29f04554890947c8983c60d43e6963bc\
        ca9393c2f34819829368fc5764cbcddf9c8b5ebbed7f885a55dcc7d06d7e902d6e5021963f605636343f4d51bc82b1bb\
        46c1c66e7667f117d7854e2a7527058e1277d53c20007d25627e3ebbd96724022ce6c4fd593524add65c4bfb0cdcb787\
        23a30a5a9c9c3fc0f6f239712d4731fdd320085dbb261dc1b026dcb6535d2fc8585b7f19af6538f7291ded66695ec180\
        0359f3b0d7ee2307e4404e15c861e72e35eb5f1471ac3e8ded00de2fb78ade45236720b95b9df8418158ae1d075ae65f\
        8ae930b779de16b734be0c8c31d50a4e669af7abf53f938955a6a427b2a8e7421cfdc72f58c74ff37f8d3dcb3eec7457\
        2b8c86d724733309261747bfe7b0e16f866c6019c8dc90069da27001b3cb9fb9c10ad5f5d49562b3be802c0fc4155ca8\
        c82323d5156c0074ff0dc716297b5daae41d9b920d89f36e380e7ae12545300d1c7287cace2700649882ee47d793a417\
        765d0c2eb21ae6406805cd09cb973f851aa2d63c4f15227822745035cf65fe5d9738f5d45dcec635fe34627085f607b4\
        dac791570e50800c73cedca6f2c43f198b947745201b076e9035a2c2a8ae246b67d0c7f4852a680f15e8d06c57cb944e\
        682abe623f7eace8717d67fecb68f57ac42907e95ba160ea44d18fa61dc7f5096e493ecbba2d2ffa7da8115f38f9fb1a\
        491a0844d95e3ffaa4baf0a95ec22b146b64ecd741d59f19766dfe43ca01d3cdb806c9db22a052e8f55231ae6e43b203\
        4f5f518a2db4d4ff478db20575677a7f89e4a1aed02c1cde4190a5e66938366c163e529e551272f15a2555eb3627be79\
        a32b797f8075f196d8ec0d774590dfc540e683dbef3d15d2e601adae3ec4101b04e5bfa336206c6063df09a8c72efbd7\
        b9927359382ce46205d9f64c956de92a890076193f26dc874bdfaf7d95e57717270b105cc21ffe5f926fa74398ebaeae\
        3761e2c7456c1ecc317eda3e084de5d5f44e98abf9850bfa0eba69a2311753f072c27d47cb13c1331e06e0b200792974\
        5f343d2e923fb27260bf7a050db3103175ba74a20beada102e644f99e5b63284e1b7882fc0a5e3f114503f8ba614777f\
        31900c55";
    const DRAFT29_INITIAL_2: &str = "\
        ccff00001d12b8e844a59dba1b56a9c136266fcc82bda97f1143944eda18beb7e548b38d375bf3c2a3bc3bb6907375db\
        299ac3b8c0116101cfa539946cdc0bd6f7aac1308a926fc779a44d62ce556742f27f3249c7fadc73d661f144e6516d42\
        1ecdb186e7df447c47caeb61ef0e3002584117349b0b93a3538e3fd48a3575f8673cb0444490dc96a818921b06096e67\
        e69ab8fbecf5ec098d727f1d06a581e3cc72df58ba0bcffb5cbc40744e8c4e4235ce74a3d2f3d91779b4f761c4e480b1\
        e42abcb4f36a80b946c82e272c58eaf4ebd11a68ae885d5322933d3e64d1a3c0a815d212a9c66219453765ab4d86ad01\
        ac61f0a9c362e531a93404cd8fe1cf5044f4c5799809ef3e3e9cc9d378124e5cc1d052e36fb8865fb49c27318816b290\
        d20c5b5cd5f7a5d90ca90cc1a34127b616dc98b2a2b465e8b66d6b11c530bc0576a1f8e9a7e7692ae50cd0ec1ef92eda\
        aad3c1903140e397b58a952edc83c99f1405aaa3ee9dba28f879efde0f4792c0db18e577ffcf1b4ba3741c4457f7e104\
        3d27fe8c5707ba0c51c9860dfe72dcc37c5a0d83ef2c4bbfee6f8dd043481f679f7f691277fe17018c4eae3b57cf35d1\
        cf465ac2c7679c0ba593eb41bcf1dc4d000750826d486f9a69e6ec5c70f8d3fcdcad06ac00e9720fafb2c57b5991f582\
        cfa0ca4ec3685d714d6287deadbf086c36082cf8dab9076262bfc5aa8e1bf3083dcec394aab4f33a82ef695d72a98e8b\
        192e44484024fa3af766f0777f3023994386171da4628e212f58cafc47103cce56d74f955770282b9dced7f4034ad31f\
        2801fcfc60ee131f46a9eb07d2a0ade6f3243aa9f960ad52edf62a150274190cf508cb975ab0530b60a98ad53e50197d\
        e44ea9254c3edeb2ce248055dcd47dba6837765ce066c91044870eefd1ab926b0be846a452559bd339b57e45d10d54d5\
        7e4cc650f6e817e20c5a30c12edaaad1a7759bf28462eec940c0763c850d0f464ec54fbcbabe291195e230a24c1bfbf0\
        2b4a9bf34fd29fcd762c40a129f305a922e8842da0402fcd0a75a9c1d7dff8f982349b9a2fbbefb1003ed843aac017f7\
        db4d0f95aed70fef2655c6e2912fc0c6883542ef43e1fa55506d4b8b7404438c910673dc1bbf63069452dbc713a9f556\
        e581fb8b5cf816aaa5d37f991aec84aa486b838d3a2294ef74f56f8803c52fa0d5932a6759a81cc05f3c7a364a313065\
        4a33abfde3a7b12976de0adec7705319a3bbe20b32f5ae7c2a779549ec3a8748bc30801063a10b7a3b693c3748413f3a\
        5f948884ff5ca4e426b8038c02aebc567f4412951ab8b0f419efe93ec8f4db4525e244fc6009aeab3da07ff9076254fe\
        fcfff103b41d455cb0d918dbcd83c36104555df86cf78b0f4e61eb09552488259890933158705e482d800e0f3e66f4c1\
        183a35c730a6e4fe7658a71368cd21293cc58585f0a6e31b785e4fe69479db30ab416204faa416e2cf2d02984f963c35\
        d89abaaa86a6c602f8fe64d693ce2acdf71110a1e960891cf6ac4826be47f44b9c7d71afaaa71eb569284e0f3594ef47\
        6b27b9c20cceb14ce1798f4b8754d4828d1644d5d552e4affc91a79881b9ba8bd39554707a73c9a2e212f829ab91352f\
        1706767b6406ff12c11dc27d2f857e60dfb7d60c20d75e93075fe78308dfbea95ae5ca2dbafec0596f9672434c406a12\
        d846035891f852ad1951b4c4346fea6a735d1a6f06f39734876765d1eabc927e2c5d84dcee58a1571ec3a5aa0826d619\
        e1ec0994";

    fn put_varint(v: &mut Vec<u8>, x: u64) {
        if x < 64 {
            v.push(x as u8);
        } else if x < 16384 {
            v.extend_from_slice(&((x as u16) | 0x4000).to_be_bytes());
        } else {
            v.extend_from_slice(&((x as u32) | 0x8000_0000).to_be_bytes());
        }
    }

    /// A CRYPTO frame carrying `data` at `offset`.
    fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06];
        put_varint(&mut f, offset);
        put_varint(&mut f, data.len() as u64);
        f.extend_from_slice(data);
        f
    }

    struct Initial<'a> {
        version: u32,
        key_dcid: &'a [u8],
        dcid: &'a [u8],
        scid: &'a [u8],
        token: &'a [u8],
        pn: u64,
        pn_len: usize,
        /// Plaintext frames; padded with PADDING up to `pad_to` bytes.
        frames: &'a [u8],
        pad_to: usize,
    }

    /// Build and protect a client Initial packet (test-only encryptor).
    fn encrypt_initial(p: &Initial<'_>) -> Vec<u8> {
        let params = params(p.version).unwrap();
        let keys = client_initial_keys(params, p.key_dcid).unwrap();
        let mut payload = p.frames.to_vec();
        if payload.len() < p.pad_to {
            payload.resize(p.pad_to, 0);
        }
        let mut pkt = vec![0xc0 | (params.initial_type << 4) | (p.pn_len as u8 - 1)];
        pkt.extend_from_slice(&p.version.to_be_bytes());
        pkt.push(p.dcid.len() as u8);
        pkt.extend_from_slice(p.dcid);
        pkt.push(p.scid.len() as u8);
        pkt.extend_from_slice(p.scid);
        put_varint(&mut pkt, p.token.len() as u64);
        pkt.extend_from_slice(p.token);
        let len = (p.pn_len + payload.len() + AEAD_TAG_LEN) as u64;
        // Always a 2-byte length, like the RFC samples.
        pkt.extend_from_slice(&((len as u16) | 0x4000).to_be_bytes());
        let pn_offset = pkt.len();
        pkt.extend_from_slice(&p.pn.to_be_bytes()[8 - p.pn_len..]);
        let mut nonce = keys.iv;
        for (n, b) in nonce.iter_mut().skip(4).zip(p.pn.to_be_bytes()) {
            *n ^= b;
        }
        let tag = keys
            .key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&pkt[..]),
                &mut payload,
            )
            .unwrap();
        pkt.extend_from_slice(&payload);
        pkt.extend_from_slice(tag.as_ref());
        let sample = &pkt[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN];
        let mask = keys.hp.new_mask(sample).unwrap();
        pkt[0] ^= mask[0] & 0x0f;
        for i in 0..p.pn_len {
            pkt[pn_offset + i] ^= mask[1 + i];
        }
        pkt
    }

    fn simple(version: u32, dcid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
        encrypt_initial(&Initial {
            version,
            key_dcid: dcid,
            dcid,
            scid: &[1, 2, 3, 4],
            token: &[],
            pn,
            pn_len: 2,
            frames,
            pad_to: 20,
        })
    }

    fn feed_all(dgrams: &[Vec<u8>]) -> (Vec<QuicStatus>, Box<QuicScratch>) {
        let mut s = Box::new(QuicScratch::new());
        let st = dgrams
            .iter()
            .map(|d| feed_client_datagram(d, &mut s))
            .collect();
        (st, s)
    }

    #[test]
    fn rfc9001_client_initial() {
        let pkt = hex(RFC9001_CLIENT_INITIAL);
        assert_eq!(quic_version(&pkt), Some(VERSION_1));
        let (st, s) = feed_all(std::slice::from_ref(&pkt));
        assert_eq!(st, vec![QuicStatus::ClientHello]);
        let h = s.client_hello().unwrap();
        assert_eq!(h.sni, Some(&b"example.com"[..]));
        // The RFC sample offers one ALPN protocol literally named "alpn".
        assert_eq!(h.alpn_iter().collect::<Vec<_>>(), vec![&b"alpn"[..]]);
        assert_eq!(h.max_version(), 0x0304);
        assert_eq!(s.original_dcid(), Some(&RFC_DCID[..]));
        // Our test encryptor reproduces the RFC packet byte for byte.
        let frames = hex(RFC9001_CRYPTO_FRAME);
        let rebuilt = encrypt_initial(&Initial {
            version: VERSION_1,
            key_dcid: &RFC_DCID,
            dcid: &RFC_DCID,
            scid: &[],
            token: &[],
            pn: 2,
            pn_len: 4,
            frames: &frames,
            pad_to: 1162,
        });
        assert_eq!(rebuilt, pkt);
    }

    #[test]
    fn rfc9369_v2_client_initial() {
        let pkt = hex(RFC9369_CLIENT_INITIAL);
        assert_eq!(quic_version(&pkt), Some(VERSION_2));
        let (st, s) = feed_all(std::slice::from_ref(&pkt));
        assert_eq!(st, vec![QuicStatus::ClientHello]);
        let h = s.client_hello().unwrap();
        assert_eq!(h.sni, Some(&b"example.com"[..]));
        let frames = hex(RFC9001_CRYPTO_FRAME);
        let rebuilt = encrypt_initial(&Initial {
            version: VERSION_2,
            key_dcid: &RFC_DCID,
            dcid: &RFC_DCID,
            scid: &[],
            token: &[],
            pn: 2,
            pn_len: 4,
            frames: &frames,
            pad_to: 1162,
        });
        assert_eq!(rebuilt, pkt);
        // A v1 packet relabelled as v2 must not decrypt.
        let mut v1 = hex(RFC9001_CLIENT_INITIAL);
        v1[1..5].copy_from_slice(&VERSION_2.to_be_bytes());
        v1[0] = (v1[0] & 0xcf) | 0x10;
        assert_eq!(feed_all(&[v1]).0, vec![QuicStatus::Invalid]);
    }

    #[test]
    fn draft29_corpus_initials() {
        let d: Vec<Vec<u8>> = [DRAFT29_INITIAL_0, DRAFT29_INITIAL_1, DRAFT29_INITIAL_2]
            .iter()
            .map(|h| hex(h))
            .collect();
        for p in &d {
            assert_eq!(quic_version(p), Some(VERSION_DRAFT_29));
        }
        let (st, s) = feed_all(&d[..1]);
        assert_eq!(st, vec![QuicStatus::ClientHello]);
        let h = s.client_hello().unwrap();
        assert_eq!(h.sni, Some(&b"localhost"[..]));
        assert_eq!(h.alpn_iter().collect::<Vec<_>>(), vec![&b"h3-29"[..]]);
        assert_eq!(h.max_version(), 0x0304);
        // This flow went through a Retry: datagram 2 resends the ClientHello with the
        // Retry token and the server-chosen DCID, from which the Initial keys are now
        // derived (RFC 9001 section 5.2); datagram 3 carries yet another DCID (the
        // server's SCID) but is still protected with the post-Retry keys.
        let retry_dcid = hex("2e9a32ed45c9066ad4f9ac32c1d23c19e480");
        let (st, s) = feed_all(&d);
        assert_eq!(st, vec![QuicStatus::ClientHello; 3]);
        assert_eq!(s.original_dcid(), Some(&retry_dcid[..]));
        let h = s.client_hello().unwrap();
        assert_eq!(h.sni, Some(&b"localhost"[..]));
        assert_eq!(h.alpn_iter().collect::<Vec<_>>(), vec![&b"h3-29"[..]]);
        // JA4 of the decrypted hello. nDPI prints q13d0512h3_... (it takes the first
        // two ALPN characters); the spec's first/last rule gives "h9" for "h3-29".
        let mut out = [0u8; 40];
        let n = super::super::ja4::ja4(&h, b'q', &mut out);
        assert_eq!(&out[..n], b"q13d0512h9_d55e91d5c3b2_cd318bf3b157");
        // The third datagram alone cannot be opened (its keys come from another DCID).
        let (st, _) = feed_all(&d[2..]);
        assert_eq!(st, vec![QuicStatus::Invalid]);
    }

    #[test]
    fn hello_split_across_initials() {
        let hello = pq_hello(b"split.example.org");
        assert!(hello.len() > 1500);
        let dcid = [9u8, 8, 7, 6, 5, 4, 3, 2];
        let mid = 1000;
        for version in [VERSION_1, VERSION_2, VERSION_DRAFT_29] {
            let mut f1 = crypto_frame(0, &hello[..mid]);
            f1.insert(0, 0x01); // PING first
            let mut f2 = vec![0x02, 0x00, 0x00, 0x00, 0x00]; // ACK
            f2.extend(crypto_frame(mid as u64, &hello[mid..]));
            let p1 = simple(version, &dcid, 0, &f1);
            let p2 = simple(version, &dcid, 1, &f2);
            // In order.
            let (st, s) = feed_all(&[p1.clone(), p2.clone()]);
            assert_eq!(st, vec![QuicStatus::NeedMore, QuicStatus::ClientHello]);
            assert_eq!(
                s.client_hello().unwrap().sni,
                Some(&b"split.example.org"[..])
            );
            // Out of order.
            let (st, s) = feed_all(&[p2.clone(), p1.clone()]);
            assert_eq!(st, vec![QuicStatus::NeedMore, QuicStatus::ClientHello]);
            assert!(s.client_hello().unwrap().has_ech);
            // Coalesced in one datagram, second packet first, plus a Handshake-type
            // packet and trailing zero padding.
            let mut dg = p2.clone();
            dg.extend_from_slice(&p1);
            let hs_type = if version == VERSION_2 { 0b11 } else { 0b10 };
            let mut hs = vec![0xc0 | (hs_type << 4)];
            hs.extend_from_slice(&version.to_be_bytes());
            hs.extend_from_slice(&[8, 9, 8, 7, 6, 5, 4, 3, 2, 0, 0x40, 20]);
            hs.extend_from_slice(&[0xee; 20]);
            dg.extend_from_slice(&hs);
            dg.extend_from_slice(&[0; 40]);
            let (st, _) = feed_all(&[dg]);
            assert_eq!(st, vec![QuicStatus::ClientHello]);
        }
    }

    #[test]
    fn overlapping_and_retransmitted_crypto() {
        let hello = build_client_hello(&HelloSpec {
            sni: Some(b"Mixed.Case.Example."),
            alpn: &[b"h3"],
            ciphers: &[0x1301, 0x1302],
            versions: &[0x0304],
            sig_algs: &[0x0403],
            key_shares: &[(0x001d, 32)],
            ech: false,
            extra: &[],
        });
        let dcid = [0x55u8; 12];
        // Three overlapping pieces, each sent twice; first copy wins.
        let a = simple(VERSION_1, &dcid, 0, &crypto_frame(0, &hello[..60]));
        let b = simple(VERSION_1, &dcid, 1, &crypto_frame(40, &hello[40..120]));
        let c = simple(VERSION_1, &dcid, 2, &crypto_frame(100, &hello[100..]));
        let mut evil = hello.clone();
        evil[50..60].copy_from_slice(b"XXXXXXXXXX");
        let evil_b = simple(VERSION_1, &dcid, 3, &crypto_frame(50, &evil[50..60]));
        let (st, s) = feed_all(&[c.clone(), a.clone(), evil_b, a, b, c]);
        assert_eq!(st[..4], [QuicStatus::NeedMore; 4]);
        assert_eq!(st[4], QuicStatus::ClientHello);
        assert_eq!(
            s.client_hello().unwrap().sni,
            Some(&b"Mixed.Case.Example."[..])
        );
    }

    #[test]
    fn new_dcid_restarts_reassembly() {
        let h1 = pq_hello(b"decoy.example");
        let h2 = pq_hello(b"real.example");
        let p1 = simple(VERSION_1, &[1; 8], 0, &crypto_frame(0, &h1));
        let p2 = simple(VERSION_1, &[2; 8], 0, &crypto_frame(0, &h2));
        let (st, s) = feed_all(&[p1, p2]);
        assert_eq!(st, vec![QuicStatus::ClientHello; 2]);
        assert_eq!(s.client_hello().unwrap().sni, Some(&b"real.example"[..]));
        assert_eq!(s.original_dcid(), Some(&[2u8; 8][..]));
    }

    #[test]
    fn not_quic() {
        let mut s = Box::new(QuicScratch::new());
        // Short header 1-RTT packet.
        let mut short = vec![0x43];
        short.extend_from_slice(&[0x11; 60]);
        // Unknown version, version negotiation, gQUIC (quic.pcap / http_ipv6.pcap headers).
        let mut unknown = hex(RFC9001_CLIENT_INITIAL);
        unknown[1..5].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        let mut vn = vec![0xc5, 0, 0, 0, 0, 4, 1, 2, 3, 4, 0];
        vn.extend_from_slice(&VERSION_1.to_be_bytes());
        let gquic_q025 = hex("0d43e5d418d29cfd0a5130323501726487c6eba5796e3f7d");
        let gquic_q030 = hex("0dbcbbebb5056d77ad513033300121e62f77b93512db6cf0");
        let q029_short = hex("4d");
        for d in [
            &short,
            &unknown,
            &vn,
            &gquic_q025,
            &gquic_q030,
            &q029_short,
            &vec![],
        ] {
            assert_eq!(quic_version(d), None);
            assert_eq!(feed_client_datagram(d, &mut s), QuicStatus::NotQuic);
        }
        // CID longer than 20 bytes.
        let mut long_cid = hex(RFC9001_CLIENT_INITIAL);
        long_cid[5] = 21;
        assert_eq!(quic_version(&long_cid), None);
        assert_eq!(feed_client_datagram(&long_cid, &mut s), QuicStatus::NotQuic);
        // A Handshake packet is QUIC but not an Initial.
        let mut hs = hex(RFC9001_CLIENT_INITIAL);
        hs[0] = 0xe0 | (hs[0] & 0x0f);
        assert_eq!(quic_version(&hs), None);
        assert_eq!(feed_client_datagram(&hs, &mut s), QuicStatus::NeedMore);
    }

    #[test]
    fn invalid_initials() {
        let good = hex(RFC9001_CLIENT_INITIAL);
        let mut s = Box::new(QuicScratch::new());
        // Tampered ciphertext.
        let mut bad = good.clone();
        bad[100] ^= 0xff;
        assert_eq!(feed_client_datagram(&bad, &mut s), QuicStatus::Invalid);
        // Truncated packet (Length runs past the datagram).
        for n in [20, 30, 600, 1199] {
            assert_eq!(
                feed_client_datagram(&good[..n], &mut s),
                QuicStatus::Invalid,
                "{n}"
            );
        }
        // Non-Initial frame type (STREAM) inside an Initial.
        let p = simple(VERSION_1, &[3; 8], 0, &[0x08, 0x00, 0x01, 0x41]);
        assert_eq!(feed_client_datagram(&p, &mut s), QuicStatus::Invalid);
        // CRYPTO stream that is not a ClientHello.
        s.clear();
        let p = simple(
            VERSION_1,
            &[4; 8],
            0,
            &crypto_frame(0, &[2, 0, 0, 4, 1, 2, 3, 4]),
        );
        assert_eq!(feed_client_datagram(&p, &mut s), QuicStatus::Invalid);
        // ClientHello longer than the reassembly cap.
        s.clear();
        let p = simple(
            VERSION_1,
            &[5; 8],
            0,
            &crypto_frame(0, &[1, 0, 0x40, 0x00, 3, 3]),
        );
        assert_eq!(feed_client_datagram(&p, &mut s), QuicStatus::Invalid);
        // Then a good flow still works after clear().
        s.clear();
        assert_eq!(feed_client_datagram(&good, &mut s), QuicStatus::ClientHello);
    }

    #[test]
    fn fuzz_no_panics() {
        let seeds: Vec<Vec<u8>> = [
            RFC9001_CLIENT_INITIAL,
            RFC9369_CLIENT_INITIAL,
            DRAFT29_INITIAL_0,
            DRAFT29_INITIAL_1,
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        let hello = pq_hello(b"fuzz.example");
        let built = simple(VERSION_1, &[7; 8], 0, &crypto_frame(0, &hello[..300]));
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut s = Box::new(QuicScratch::new());
        for i in 0..3000 {
            let input = match i % 3 {
                0 => {
                    let n = rng.below(1400);
                    let mut v = rng.bytes(n);
                    if v.len() > 6 {
                        v[0] |= 0x80;
                        let ver = [VERSION_1, VERSION_2, VERSION_DRAFT_29][rng.below(3)];
                        v[1..5].copy_from_slice(&ver.to_be_bytes());
                        v[5] = rng.below(22) as u8;
                    }
                    v
                }
                1 => {
                    let k = rng.below(seeds.len());
                    rng.mutate(&seeds[k])
                }
                _ => {
                    // Valid encryption of random frames: exercises the frame parser.
                    let n = rng.below(200);
                    let mut frames = rng.bytes(n);
                    if !frames.is_empty() {
                        frames[0] = [0x00, 0x01, 0x02, 0x03, 0x06, 0x1c][rng.below(6)];
                    }
                    let mut d = simple(VERSION_1, &[7; 8], 1 + rng.below(5) as u64, &frames);
                    if rng.below(2) == 0 {
                        d.extend_from_slice(&built);
                    }
                    d
                }
            };
            if rng.below(50) == 0 {
                s.clear();
            }
            let _ = quic_version(&input);
            let st = feed_client_datagram(&input, &mut s);
            if st == QuicStatus::ClientHello {
                assert!(s.client_hello().is_some());
            }
        }
    }

    #[test]
    fn varint_and_pn_decoding() {
        let mut r = Reader::new(&[0x25, 0x7b, 0xbd, 0x9d, 0x7f, 0x3e, 0x7d]);
        assert_eq!(r.varint(), Some(37));
        assert_eq!(r.varint(), Some(15293));
        assert_eq!(r.varint(), Some(494_878_333));
        assert_eq!(r.varint(), None);
        let mut r = Reader::new(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]);
        assert_eq!(r.varint(), Some(151_288_809_941_952_652));
        // RFC 9000 appendix A.3 example.
        assert_eq!(decode_pn(Some(0xa82f30ea), 0x9b32, 2), 0xa82f9b32);
        assert_eq!(decode_pn(None, 0, 1), 0);
        assert_eq!(decode_pn(Some(u64::MAX), 0xff, 1), u64::MAX);
    }
}
