//! Regression tests: inputs that once crashed or misled rmmguard (found by fuzzing and property
//! tests), kept so that they never come back.

mod common;

use rmmguard::source::pcapfile::PcapWriter;

/// A TLS 1.3 ClientHello record for `sni`. Its exact bytes are pinned: the regression inputs
/// below cut this 412-byte record at fixed offsets (proptest found them with this builder).
fn client_hello(sni: &str) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, t: u16, body: &[u8]) {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut exts = Vec::new();
    let name = sni.as_bytes();
    let mut sn = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sn.push(0);
    sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sn.extend_from_slice(name);
    ext(&mut exts, 0x0000, &sn);
    ext(&mut exts, 0x000a, &[0, 4, 0, 0x1d, 0, 0x17]);
    ext(&mut exts, 0x000d, &[0, 6, 4, 3, 8, 4, 4, 1]);
    ext(&mut exts, 0x0010, b"\x00\x0c\x02h2\x08http/1.1");
    ext(&mut exts, 0x002b, &[4, 3, 4, 3, 3]);
    let mut ks = vec![0, 36, 0, 0x1d, 0, 32];
    ks.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    ext(&mut exts, 0x0033, &ks);
    ext(&mut exts, 0x0015, &[0; 200]);
    let mut body = vec![3, 3];
    body.extend((0..32u8).map(|i| i ^ 0x5a));
    body.push(32);
    body.extend((0..32u8).map(|i| i.wrapping_mul(11)));
    body.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

use common::tcp_frame as tcp;

fn hello_pcap(path: &std::path::Path, hello: &[u8], segs: &[(usize, usize)]) {
    let isn = 0xfffff000u32;
    let sisn = 77u32;
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap(), 1).unwrap();
    let mut ts = 1_600_000_000_000_000_000u64;
    let mut put = |f: Vec<u8>| {
        ts += 1_000_000;
        w.write(ts, &f, f.len() as u32).unwrap();
    };
    put(tcp(isn, None, true, true, &[]));
    put(tcp(sisn, Some(isn.wrapping_add(1)), true, false, &[]));
    put(tcp(isn.wrapping_add(1), Some(sisn + 1), false, true, &[]));
    for &(a, b) in segs {
        put(tcp(
            isn.wrapping_add(1 + a as u32),
            Some(sisn + 1),
            false,
            true,
            &hello[a..b],
        ));
    }
    w.into_inner().unwrap();
}

/// Found by `proptest_reassembly::shuffled_segments_give_the_same_detection`: a ClientHello
/// for relay.teamviewer.com in 28 shuffled, overlapping segments was not detected.
#[test]
fn shuffled_overlapping_client_hello_segments() {
    let hello = client_hello("relay.teamviewer.com");
    assert_eq!(hello.len(), 412);
    let segs = [
        (49, 52),
        (76, 92),
        (105, 153),
        (159, 207),
        (65, 76),
        (52, 65),
        (61, 105),
        (74, 111),
        (196, 207),
        (106, 118),
        (98, 105),
        (133, 146),
        (161, 196),
        (0, 3),
        (105, 106),
        (132, 165),
        (228, 238),
        (207, 228),
        (133, 144),
        (144, 148),
        (118, 133),
        (159, 161),
        (80, 159),
        (3, 4),
        (92, 98),
        (4, 49),
        (148, 159),
        (238, 412),
    ];
    let d = common::tempdir();
    let p = d.path().join("split.pcap");
    hello_pcap(&p, &hello, &segs);
    let ev = common::analyze_events(&p, &[]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["rmm"]["tool"], "teamviewer");
    assert_eq!(ev[0]["rmm"]["evidence"], "relay.teamviewer.com");
}

/// The same evasion, plainly: the first byte of the ClientHello, then 14 retransmissions of it
/// (no new bytes), then the rest. Retransmissions use up the 16-packet inspection budget (with
/// the SYN and SYN-ACK), so the flow is decided before the ClientHello is complete.
#[test]
fn retransmitted_bytes_do_not_exhaust_the_inspection_budget() {
    let hello = client_hello("relay.teamviewer.com");
    let mut segs = vec![(0, 1); 15];
    segs.push((1, hello.len()));
    let d = common::tempdir();
    let p = d.path().join("retrans.pcap");
    hello_pcap(&p, &hello, &segs);
    let ev = common::analyze_events(&p, &[]);
    assert_eq!(
        ev.len(),
        1,
        "ClientHello after 14 retransmissions not detected: {ev:?}"
    );
    assert_eq!(ev[0]["rmm"]["tool"], "teamviewer");
}
