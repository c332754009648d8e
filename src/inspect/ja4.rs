//! JA4 TLS client fingerprint, following FoxIO's specification
//! (`technical_details/JA4.md` in the FoxIO-LLC/ja4 repository).
//!
//! `JA4 = a_b_c` where
//! * `a` = transport (`t`/`q`/`d`), TLS version (2 chars), `d`/`i` for SNI present or
//!   not, cipher count and extension count (2 digits each, GREASE ignored, capped at
//!   99), first and last character of the first ALPN value (`00` if none);
//! * `b` = first 12 hex chars of SHA-256 over the sorted, comma-joined 4-hex-digit
//!   cipher list (GREASE removed), or `000000000000` if empty;
//! * `c` = the same over the sorted extension list without GREASE, SNI (0000) and
//!   ALPN (0010), followed by `_` and the signature algorithms in original order (no
//!   `_` when there are none), or `000000000000` if the extension list is empty.
//!
//! No allocation: the lists are sorted in fixed stack arrays sized so that every
//! ClientHello accepted by the 16 KiB-bounded parsers fits exactly.

use ring::digest;

use super::tls::{self, ClientHello};

/// Length of a JA4 fingerprint (`t13d1516h2_8daaf6152771_e5627efa2ab1`).
pub const JA4_LEN: usize = 36;

/// Cipher suites kept for hashing (a 16 KiB ClientHello holds fewer than this).
const MAX_CIPHERS: usize = 8192;
/// Extensions kept for hashing (each takes at least 4 bytes of a 16 KiB ClientHello).
const MAX_EXTS: usize = 4096;

const ZERO_HASH: &[u8; 12] = b"000000000000";

/// JA4 of a ClientHello; `transport` is `b't'` for TCP, `b'q'` for QUIC (`b'd'` for
/// DTLS; another ASCII alphanumeric byte is written as given, anything else as `t`).
/// Writes the ASCII fingerprint like `t13d1516h2_8daaf6152771_e5627efa2ab1` into
/// `out` and returns its length ([`JA4_LEN`]). Does not allocate.
///
/// Lists longer than the internal caps (only possible for hellos bigger than 16 KiB)
/// are hashed truncated; counts are capped at 99 as the spec says.
pub fn ja4(hello: &ClientHello<'_>, transport: u8, out: &mut [u8; 40]) -> usize {
    let mut ciphers = [0u16; MAX_CIPHERS];
    let mut n_ciphers = 0usize;
    let mut cipher_count = 0usize;
    for c in hello.cipher_iter().filter(|c| !tls::is_grease(*c)) {
        cipher_count += 1;
        if let Some(slot) = ciphers.get_mut(n_ciphers) {
            *slot = c;
            n_ciphers += 1;
        }
    }
    let mut exts = [0u16; MAX_EXTS];
    let mut n_exts = 0usize;
    let mut ext_count = 0usize;
    let mut has_sni = false;
    for (t, _) in hello.ext_iter().filter(|(t, _)| !tls::is_grease(*t)) {
        ext_count += 1;
        match t {
            tls::EXT_SERVER_NAME => has_sni = true,
            tls::EXT_ALPN => {}
            _ => {
                if let Some(slot) = exts.get_mut(n_exts) {
                    *slot = t;
                    n_exts += 1;
                }
            }
        }
    }
    let ciphers = ciphers.get_mut(..n_ciphers).unwrap_or(&mut []);
    ciphers.sort_unstable();
    let exts = exts.get_mut(..n_exts).unwrap_or(&mut []);
    exts.sort_unstable();

    let t = if transport.is_ascii_alphanumeric() {
        transport
    } else {
        b't'
    };
    let [v0, v1] = version_chars(hello.max_version());
    let sni = if has_sni { b'd' } else { b'i' };
    let [c0, c1] = two_digits(cipher_count);
    let [e0, e1] = two_digits(ext_count);
    let [l0, l1] = alpn_chars(hello.alpn_iter().next());
    let a = [t, v0, v1, sni, c0, c1, e0, e1, l0, l1];

    let b = if ciphers.is_empty() {
        *ZERO_HASH
    } else {
        let mut ctx = digest::Context::new(&digest::SHA256);
        hash_list(&mut ctx, ciphers.iter().copied());
        truncated_hex(ctx)
    };
    let c = if exts.is_empty() {
        *ZERO_HASH
    } else {
        let mut ctx = digest::Context::new(&digest::SHA256);
        hash_list(&mut ctx, exts.iter().copied());
        let mut sigs = tls::u16_iter(hello.sig_algs.unwrap_or(&[]))
            .filter(|s| !tls::is_grease(*s))
            .peekable();
        if sigs.peek().is_some() {
            ctx.update(b"_");
            hash_list(&mut ctx, sigs);
        }
        truncated_hex(ctx)
    };

    let parts: [&[u8]; 5] = [&a, b"_", &b, b"_", &c];
    let mut n = 0usize;
    for part in parts {
        for &byte in part {
            if let Some(slot) = out.get_mut(n) {
                *slot = byte;
                n += 1;
            }
        }
    }
    n
}

/// Lower-case hex digit of the low nibble of `n`.
fn hex_digit(n: u8) -> u8 {
    match n & 0x0f {
        d @ 0..=9 => b'0' + d,
        d => b'a' + (d - 10),
    }
}

/// Two-character TLS version code.
fn version_chars(v: u16) -> [u8; 2] {
    match v {
        0x0304 => *b"13",
        0x0303 => *b"12",
        0x0302 => *b"11",
        0x0301 => *b"10",
        0x0300 => *b"s3",
        0x0002 => *b"s2",
        0xfeff => *b"d1",
        0xfefd => *b"d2",
        0xfefc => *b"d3",
        _ => *b"00",
    }
}

/// Two decimal digits, capped at 99.
fn two_digits(n: usize) -> [u8; 2] {
    let n = n.min(99) as u8;
    [b'0' + n / 10, b'0' + n % 10]
}

/// First and last character of the first ALPN value (spec rules for empty values and
/// non-alphanumeric first/last bytes).
fn alpn_chars(first: Option<&[u8]>) -> [u8; 2] {
    let Some(v) = first else { return *b"00" };
    let (Some(&f), Some(&l)) = (v.first(), v.last()) else {
        return *b"00";
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        [f, l]
    } else {
        [hex_digit(f >> 4), hex_digit(l)]
    }
}

/// Feed `v1,v2,...` (4 lower-case hex digits each) into the hash.
fn hash_list(ctx: &mut digest::Context, items: impl Iterator<Item = u16>) {
    for (i, v) in items.enumerate() {
        if i > 0 {
            ctx.update(b",");
        }
        let [hi, lo] = v.to_be_bytes();
        ctx.update(&[
            hex_digit(hi >> 4),
            hex_digit(hi),
            hex_digit(lo >> 4),
            hex_digit(lo),
        ]);
    }
}

/// First 12 lower-case hex characters of the digest.
fn truncated_hex(ctx: digest::Context) -> [u8; 12] {
    let d = ctx.finish();
    let mut out = [0u8; 12];
    for (pair, byte) in out.chunks_mut(2).zip(d.as_ref()) {
        if let [hi, lo] = pair {
            *hi = hex_digit(byte >> 4);
            *lo = hex_digit(*byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tls::testdata::*;
    use super::super::tls::{parse_client_hello_body, parse_client_hello_stream};
    use super::super::tls::{HandshakeScratch, Parse};
    use super::*;

    fn fp(hello: &ClientHello<'_>, t: u8) -> String {
        let mut out = [0u8; 40];
        let n = ja4(hello, t, &mut out);
        assert_eq!(n, JA4_LEN);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    fn fp_stream(hexstr: &str) -> String {
        let s = hex(hexstr);
        let mut sc = Box::new(HandshakeScratch::new());
        match parse_client_hello_stream(&s, &mut sc) {
            Parse::Done(h) => fp(&h, b't'),
            other => panic!("{other:?}"),
        }
    }

    fn hash_str(s: &str) -> String {
        let d = digest::digest(&digest::SHA256, s.as_bytes());
        d.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The ClientHello of the spec's worked example (GREASE added, which must be ignored).
    fn spec_hello(sig_algs: &[u16]) -> Vec<u8> {
        let sig: Vec<u8> = {
            let mut d = ((sig_algs.len() * 2) as u16).to_be_bytes().to_vec();
            for s in sig_algs {
                d.extend(s.to_be_bytes());
            }
            d
        };
        let sni = [0, 9, 0, 0, 6, b'a', b'.', b't', b'e', b's', b't'];
        let alpn = [
            0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
        ];
        let sv = [4, 0x03, 0x04, 0x03, 0x03];
        let empty: &[u8] = &[];
        let extra: Vec<(u16, &[u8])> = vec![
            (0x2a2a, empty),
            (0x001b, &[2, 0, 2]),
            (0x0000, &sni),
            (0x0033, &[0, 0]),
            (0x0010, &alpn),
            (0x4469, empty),
            (0x0017, empty),
            (0x002d, &[1, 1]),
            (0x000d, &sig),
            (0x0005, &[1, 0, 0, 0, 0]),
            (0x0023, empty),
            (0x0012, empty),
            (0x002b, &sv),
            (0xff01, &[0]),
            (0x000b, &[1, 0]),
            (0x000a, &[0, 2, 0, 0x1d]),
            (0x0015, &[0; 8]),
            (0xfafa, &[0]),
        ];
        build_client_hello(&HelloSpec {
            sni: None,
            alpn: &[],
            ciphers: &[
                0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            versions: &[],
            sig_algs: &[],
            key_shares: &[],
            ech: false,
            extra: &extra,
        })
    }

    #[test]
    fn spec_published_hashes() {
        assert_eq!(
            hash_str("002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"),
            "8daaf6152771"
        );
        assert_eq!(
            hash_str(
                "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
            ),
            "e5627efa2ab1"
        );
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let msg = spec_hello(&sigs);
        let h = parse_client_hello_body(&msg[4..]).unwrap();
        assert_eq!(fp(&h, b't'), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        // No signature algorithms: the string ends without '_' (spec: 6d807ffa2a79).
        let msg = spec_hello(&[]);
        let h = parse_client_hello_body(&msg[4..]).unwrap();
        assert_eq!(fp(&h, b't'), "t13d1516h2_8daaf6152771_6d807ffa2a79");
        assert_eq!(fp(&h, b'q')[..1], *"q");
    }

    #[test]
    fn corpus_client_hellos() {
        assert_eq!(fp_stream(CURL_CH), "t12d6707h2_2955a3196ffa_c83f907a73d3");
        assert_eq!(
            fp_stream(CHROME_CH_64410),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
        assert_eq!(
            fp_stream(CHROME_CH_64409),
            "t13d1516h2_8daaf6152771_9b887d9acb53"
        );
        assert_eq!(
            fp_stream(FIREFOX_CH_51600),
            "t13d1813h2_e8a523a41297_84e5d5db657c"
        );
        assert_eq!(
            fp_stream(FIREFOX_CH_51577),
            "t13d1814h2_e8a523a41297_d267a5f792d4"
        );
        // nDPI prints t12d6406an_...: it uses the first two ALPN characters and marks
        // 'd' although this hello has no server_name extension. The spec gives
        // 'i' and the first/last characters "ax" (checked with an independent
        // Python implementation of the spec); the hashes agree with nDPI.
        assert_eq!(
            fp_stream(ANYDESK_CH),
            "t12i6406ax_9197985d2161_a1e935682795"
        );
    }

    #[test]
    fn alpn_rules() {
        assert_eq!(alpn_chars(None), *b"00");
        assert_eq!(alpn_chars(Some(b"")), *b"00");
        assert_eq!(alpn_chars(Some(b"h2")), *b"h2");
        assert_eq!(alpn_chars(Some(b"http/1.1")), *b"h1");
        assert_eq!(alpn_chars(Some(b"h")), *b"hh");
        assert_eq!(alpn_chars(Some(b"anydesk/6.2.0/linux")), *b"ax");
        // Spec examples for non-alphanumeric first/last bytes.
        assert_eq!(alpn_chars(Some(&[0xab])), *b"ab");
        assert_eq!(alpn_chars(Some(&[0xab, 0xcd])), *b"ad");
        assert_eq!(alpn_chars(Some(&[0x30, 0xab])), *b"3b");
        assert_eq!(alpn_chars(Some(&[0x30, 0x31, 0xab, 0xcd])), *b"3d");
        assert_eq!(alpn_chars(Some(&[0x30, 0xab, 0xcd, 0x31])), *b"01");
    }

    #[test]
    fn counts_versions_and_empty_lists() {
        let many: Vec<u16> = (1..=120).collect();
        let msg = build_client_hello(&HelloSpec {
            sni: None,
            alpn: &[],
            ciphers: &many,
            versions: &[],
            sig_algs: &[],
            key_shares: &[],
            ech: false,
            extra: &[],
        });
        let h = parse_client_hello_body(&msg[4..]).unwrap();
        let f = fp(&h, b't');
        // no SNI, 99 ciphers (capped), 0 extensions, no ALPN, empty extension hash
        assert!(f.starts_with("t12i990000_"), "{f}");
        assert!(f.ends_with("_000000000000"), "{f}");
        // GREASE-only ciphers and legacy versions.
        for (legacy, code) in [
            (0x0301u16, "10"),
            (0x0300, "s3"),
            (0x0002, "s2"),
            (0x0305, "00"),
            (0xfefd, "d2"),
        ] {
            let mut msg = build_client_hello(&HelloSpec {
                sni: Some(b"x"),
                alpn: &[b"\xff\x00"],
                ciphers: &[0x5a5a],
                versions: &[],
                sig_algs: &[],
                key_shares: &[],
                ech: false,
                extra: &[],
            });
            msg[4..6].copy_from_slice(&legacy.to_be_bytes());
            let h = parse_client_hello_body(&msg[4..]).unwrap();
            let f = fp(&h, b'd');
            assert_eq!(f, format!("d{code}d0002f0_000000000000_000000000000"));
        }
        // Non-alphanumeric transport byte.
        let h = parse_client_hello_body(&msg[4..]).unwrap();
        assert_eq!(&fp(&h, 0)[..1], "t");
    }

    #[test]
    fn fuzz_no_panics() {
        let seeds: Vec<Vec<u8>> = [CURL_CH, CHROME_CH_64410, FIREFOX_CH_51600, ANYDESK_CH]
            .iter()
            .map(|h| hex(h)[9..].to_vec())
            .chain([pq_hello(b"f.example")[4..].to_vec()])
            .collect();
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        let mut out = [0u8; 40];
        let mut parsed = 0;
        for _ in 0..4000 {
            let k = rng.below(seeds.len());
            let m = rng.mutate(&seeds[k]);
            if let Ok(h) = parse_client_hello_body(&m) {
                parsed += 1;
                let n = ja4(&h, b"tqd"[rng.below(3)], &mut out);
                assert_eq!(n, JA4_LEN);
                assert!(out[..n].iter().all(|b| b.is_ascii_graphic()));
            }
        }
        assert!(parsed > 100);
    }
}
