//! DNS message parsing (RFC 1035): the question name of queries, and the answer records (A, AAAA,
//! CNAME) of responses. Names are decoded into a caller-provided buffer. Compression pointers are
//! followed only backwards and at most [`MAX_JUMPS`] times, so a pointer loop is rejected.

/// Maximum compression pointers followed while reading one name.
pub const MAX_JUMPS: usize = 16;

/// Maximum length of a decoded name (RFC 1035: 255 octets on the wire).
pub const MAX_NAME: usize = 255;

/// Errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The message is cut short.
    Truncated,
    /// A compression pointer loops or points forward.
    PointerLoop,
    /// A label or name is too long, or a reserved label type is used.
    BadName,
    /// Not a DNS message we understand.
    NotDns,
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message id.
    pub id: u16,
    /// QR bit.
    pub response: bool,
    /// Opcode.
    pub opcode: u8,
    /// Response code.
    pub rcode: u8,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
}

/// Reads the header; rejects messages that are implausible as DNS.
pub fn header(msg: &[u8]) -> Result<Header, DnsError> {
    let h = msg.get(..12).ok_or(DnsError::Truncated)?;
    let flags = u16::from_be_bytes([h[2], h[3]]);
    let hd = Header {
        id: u16::from_be_bytes([h[0], h[1]]),
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        qdcount: u16::from_be_bytes([h[4], h[5]]),
        ancount: u16::from_be_bytes([h[6], h[7]]),
    };
    // Standard queries carry exactly one question in practice; anything else is not inspected.
    if hd.opcode > 5 || hd.qdcount != 1 {
        return Err(DnsError::NotDns);
    }
    Ok(hd)
}

/// Decodes the (possibly compressed) name at `off` into `out` as dotted text, lower-cased.
/// Returns (name length, offset just after the name in the original position).
pub fn read_name(
    msg: &[u8],
    off: usize,
    out: &mut [u8; MAX_NAME],
) -> Result<(usize, usize), DnsError> {
    let mut pos = off;
    let mut len = 0usize;
    let mut jumps = 0usize;
    let mut after: Option<usize> = None;
    // Pointers must point strictly before the position they were read at: this bounds the walk.
    let mut limit = off;
    loop {
        let l = *msg.get(pos).ok_or(DnsError::Truncated)? as usize;
        match l & 0xc0 {
            0x00 => {
                if l == 0 {
                    return Ok((len, after.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                let need = if len == 0 { l } else { l + 1 };
                if len + need > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                if len != 0 {
                    out[len] = b'.';
                    len += 1;
                }
                for &b in label {
                    out[len] = b.to_ascii_lowercase();
                    len += 1;
                }
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated)? as usize;
                let target = ((l & 0x3f) << 8) | lo;
                jumps += 1;
                if jumps > MAX_JUMPS || target >= limit.min(pos) {
                    return Err(DnsError::PointerLoop);
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(DnsError::BadName),
        }
    }
}

/// The first question: (name length in `out`, qtype, offset after the question).
pub fn question(msg: &[u8], out: &mut [u8; MAX_NAME]) -> Result<(usize, u16, usize), DnsError> {
    let (n, off) = read_name(msg, 12, out)?;
    let t = msg.get(off..off + 4).ok_or(DnsError::Truncated)?;
    Ok((n, u16::from_be_bytes([t[0], t[1]]), off + 4))
}

/// One answer record's useful part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rdata<'a> {
    /// An IPv4 address.
    A([u8; 4]),
    /// An IPv6 address.
    Aaaa([u8; 16]),
    /// A CNAME: the target's offset in the message (decode with [`read_name`]).
    Cname(usize),
    /// Anything else.
    Other(&'a [u8]),
}

/// Walks the answer section, calling `f(owner_name, ttl, rdata)` for each record. The owner name
/// is decoded into a scratch buffer for each call. At most `max` records are read.
pub fn answers<'a>(
    msg: &'a [u8],
    after_question: usize,
    ancount: u16,
    max: usize,
    mut f: impl FnMut(&[u8], u32, Rdata<'a>),
) -> Result<(), DnsError> {
    let mut pos = after_question;
    let mut name = [0u8; MAX_NAME];
    for _ in 0..(ancount as usize).min(max) {
        let (n, off) = read_name(msg, pos, &mut name)?;
        let h = msg.get(off..off + 10).ok_or(DnsError::Truncated)?;
        let rtype = u16::from_be_bytes([h[0], h[1]]);
        let ttl = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let rdlen = u16::from_be_bytes([h[8], h[9]]) as usize;
        let rd_off = off + 10;
        let rdata = msg.get(rd_off..rd_off + rdlen).ok_or(DnsError::Truncated)?;
        let rd = match (rtype, rdlen) {
            (1, 4) => Rdata::A([rdata[0], rdata[1], rdata[2], rdata[3]]),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                Rdata::Aaaa(a)
            }
            (5, _) => Rdata::Cname(rd_off),
            _ => Rdata::Other(rdata),
        };
        f(&name[..n], ttl, rd);
        pos = rd_off + rdlen;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a DNS message: one question, answers as (owner, type, ttl, rdata).
    pub fn build(
        id: u16,
        response: bool,
        q: &str,
        answers: &[(&str, u16, u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&(if response { 0x8180u16 } else { 0x0100 }).to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        let name = |m: &mut Vec<u8>, n: &str| {
            for l in n.trim_end_matches('.').split('.') {
                m.push(l.len() as u8);
                m.extend_from_slice(l.as_bytes());
            }
            m.push(0);
        };
        name(&mut m, q);
        m.extend_from_slice(&[0, 1, 0, 1]);
        for (owner, t, ttl, rd) in answers {
            if *owner == q {
                m.extend_from_slice(&[0xc0, 12]);
            } else {
                name(&mut m, owner);
            }
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            m.extend_from_slice(rd);
        }
        m
    }

    /// Wire form of a name (for CNAME rdata).
    pub fn wire(n: &str) -> Vec<u8> {
        let mut m = Vec::new();
        for l in n.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m
    }

    #[test]
    fn question_and_cname_chain() {
        let msg = build(
            7,
            true,
            "Support.Example.org",
            &[
                ("Support.Example.org", 5, 60, wire("relay.teamviewer.com")),
                ("relay.teamviewer.com", 1, 30, vec![198, 51, 100, 7]),
            ],
        );
        let h = header(&msg).unwrap();
        assert!(h.response);
        let mut out = [0u8; MAX_NAME];
        let (n, qt, off) = question(&msg, &mut out).unwrap();
        assert_eq!(&out[..n], b"support.example.org");
        assert_eq!(qt, 1);
        let mut seen = Vec::new();
        answers(&msg, off, h.ancount, 16, |name, ttl, rd| {
            let s = match rd {
                Rdata::Cname(o) => {
                    let mut t = [0u8; MAX_NAME];
                    let (l, _) = read_name(&msg, o, &mut t).unwrap();
                    String::from_utf8_lossy(&t[..l]).to_string()
                }
                Rdata::A(a) => format!("{a:?}"),
                _ => String::new(),
            };
            seen.push((String::from_utf8_lossy(name).to_string(), ttl, s));
        })
        .unwrap();
        assert_eq!(seen[0].2, "relay.teamviewer.com");
        assert_eq!(seen[1].0, "relay.teamviewer.com");
    }

    #[test]
    fn pointer_loop_rejected() {
        let mut msg = build(1, false, "a.b", &[]);
        // Replace the question name with a pointer to itself.
        msg.truncate(12);
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let mut out = [0u8; MAX_NAME];
        assert_eq!(question(&msg, &mut out).err(), Some(DnsError::PointerLoop));
        // Two pointers pointing at each other.
        let mut m2 = msg[..12].to_vec();
        m2.extend_from_slice(&[1, b'a', 0xc0, 16, 0xc0, 14]);
        assert!(read_name(&m2, 16, &mut out).is_err());
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u32 = 12345;
        let mut out = [0u8; MAX_NAME];
        for n in 0..50_000usize {
            let mut m = vec![0u8; n % 120];
            for b in m.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = (x % 7) as u8 * 37;
            }
            if let Ok(h) = header(&m) {
                if let Ok((_, _, off)) = question(&m, &mut out) {
                    let _ = answers(&m, off, h.ancount, 32, |_, _, _| {});
                }
            }
            let _ = read_name(&m, n % 40, &mut out);
        }
    }
}
