//! Capture formats and link types (issue 2): every variant reads, and a flow inside it is found.
//! And `--write-passed`: the written capture reads back in tcpdump and holds no packet of a
//! blocked flow from its deciding packet on.

mod common;
mod support;

use etherparse::PacketBuilder;
use std::path::Path;

#[derive(Clone, Copy)]
enum Ip {
    V4,
    V6,
}

/// An IP packet (no link header): TCP from the client (or the server when `reply`).
fn ip_tcp(ip: Ip, sport: u16, dport: u16, seq: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
    let b = match ip {
        Ip::V4 => PacketBuilder::ipv4([192, 168, 1, 10], [203, 0, 113, 5], 64),
        Ip::V6 => PacketBuilder::ipv6(
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
            64,
        ),
    };
    let mut t = b.tcp(sport, dport, seq, 65535);
    for f in flags.chars() {
        t = match f {
            'S' => t.syn(),
            'A' => t.ack(1),
            'P' => t.psh(),
            'F' => t.fin(),
            _ => t,
        };
    }
    let mut out = Vec::new();
    t.write(&mut out, payload).unwrap();
    out
}

/// The packets of two flows: a TLS flow to relay.teamviewer.com and a SYN to port 5938.
fn flows(ip: Ip) -> Vec<Vec<u8>> {
    vec![
        ip_tcp(ip, 40000, 443, 100, "S", &[]),
        ip_tcp(
            ip,
            40000,
            443,
            101,
            "AP",
            &support::sni_hello("relay.teamviewer.com"),
        ),
        ip_tcp(ip, 40001, 5938, 500, "S", &[]),
    ]
}

fn ethertype(ip: Ip) -> [u8; 2] {
    match ip {
        Ip::V4 => [0x08, 0x00],
        Ip::V6 => [0x86, 0xdd],
    }
}

/// Wraps an IP packet in a link-layer header.
fn frame(link: u32, ip: Ip, pkt: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    match link {
        // Ethernet with an 802.1ad outer tag and an 802.1Q inner tag.
        1 => {
            f.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
            f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8]);
            f.extend_from_slice(&ethertype(ip));
        }
        // BSD loopback: address family in host (little-endian here) byte order.
        0 => f.extend_from_slice(
            &(match ip {
                Ip::V4 => 2u32,
                Ip::V6 => 30,
            })
            .to_le_bytes(),
        ),
        // OpenBSD loopback: address family in network byte order.
        108 => f.extend_from_slice(
            &(match ip {
                Ip::V4 => 2u32,
                Ip::V6 => 24,
            })
            .to_be_bytes(),
        ),
        // Linux cooked v1: packet type, ARPHRD, address length, address (8), protocol.
        113 => {
            f.extend_from_slice(&[0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
            f.extend_from_slice(&ethertype(ip));
        }
        // Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address.
        276 => {
            f.extend_from_slice(&ethertype(ip));
            f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
        }
        // Raw IP.
        101 | 228 | 229 => {}
        _ => unreachable!(),
    }
    f.extend_from_slice(pkt);
    f
}

/// Writes a classic pcap in the given byte order and timestamp resolution.
fn pcap(path: &Path, link: u32, big_endian: bool, nanos: bool, frames: &[Vec<u8>]) {
    let w32 = |v: &mut Vec<u8>, x: u32| {
        v.extend_from_slice(&if big_endian {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    let w16 = |v: &mut Vec<u8>, x: u16| {
        v.extend_from_slice(&if big_endian {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    let mut v = Vec::new();
    w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut v, 2);
    w16(&mut v, 4);
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 65535);
    w32(&mut v, link);
    for (i, f) in frames.iter().enumerate() {
        w32(&mut v, 1_700_000_000 + i as u32);
        w32(&mut v, if nanos { 123_456_789 } else { 123_456 });
        w32(&mut v, f.len() as u32);
        w32(&mut v, f.len() as u32);
        v.extend_from_slice(f);
    }
    std::fs::write(path, v).unwrap();
}

/// Writes a pcapng with one interface per entry of `links`; frame i goes to interface i % n.
fn pcapng(path: &Path, links: &[u32], frames: &[(usize, Vec<u8>)]) {
    let block = |v: &mut Vec<u8>, t: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&vec![0; pad]);
        v.extend_from_slice(&len.to_le_bytes());
    };
    let mut v = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut v, 0x0a0d_0d0a, &shb);
    for (i, &l) in links.iter().enumerate() {
        let mut idb = Vec::new();
        idb.extend_from_slice(&(l as u16).to_le_bytes());
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        // The second interface uses nanosecond timestamps (if_tsresol = 9).
        if i == 1 {
            idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        }
        block(&mut v, 1, &idb);
    }
    for (n, (iface, f)) in frames.iter().enumerate() {
        let mut epb = Vec::new();
        epb.extend_from_slice(&(*iface as u32).to_le_bytes());
        let ts: u64 = 1_700_000_000_000_000 + n as u64;
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        let pad = (4 - f.len() % 4) % 4;
        epb.extend_from_slice(&vec![0; pad]);
        block(&mut v, 6, &epb);
    }
    std::fs::write(path, v).unwrap();
}

/// Both flows must be attributed to TeamViewer: one by SNI, one by port.
fn assert_found(path: &Path, what: &str) {
    let ev = common::analyze_events(path, &[]);
    let mut got: Vec<(String, String)> = ev
        .iter()
        .map(|e| {
            (
                e["rmm"]["tool"].as_str().unwrap().to_string(),
                e["rmm"]["method"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("teamviewer".to_string(), "port".to_string()),
            ("teamviewer".to_string(), "tls_sni".to_string())
        ],
        "{what}"
    );
}

#[test]
fn every_link_type_and_pcap_variant_reads() {
    let dir = common::tempdir();
    for ip in [Ip::V4, Ip::V6] {
        for link in [1u32, 0, 108, 113, 276, 101] {
            for (be, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
                let frames: Vec<Vec<u8>> = flows(ip).iter().map(|p| frame(link, ip, p)).collect();
                // The file name says nothing: the content decides.
                let path = dir.path().join(format!("cap-{link}-{be}-{nanos}.bin"));
                pcap(&path, link, be, nanos, &frames);
                let v = match ip {
                    Ip::V4 => "IPv4",
                    Ip::V6 => "IPv6",
                };
                assert_found(
                    &path,
                    &format!("{v} link {link} big-endian {be} nanos {nanos}"),
                );
            }
        }
    }
    // Raw IPv4 and raw IPv6 link types.
    for (link, ip) in [(228u32, Ip::V4), (229, Ip::V6)] {
        let frames: Vec<Vec<u8>> = flows(ip).iter().map(|p| frame(link, ip, p)).collect();
        let path = dir.path().join(format!("raw-{link}.pcap"));
        pcap(&path, link, false, false, &frames);
        assert_found(&path, &format!("link {link}"));
    }
}

#[test]
fn pcapng_with_several_interfaces_and_link_types() {
    let dir = common::tempdir();
    // Interface 0 is Ethernet, 1 is Linux cooked v2 (nanosecond clock), 2 is raw IP. The TLS flow
    // arrives on Ethernet, the SYN to 5938 on the cooked interface, and an IPv6 copy of the TLS
    // flow (other ports) on raw IP.
    let links = [1u32, 276, 101];
    let v4 = flows(Ip::V4);
    let frames = vec![
        (0, frame(1, Ip::V4, &v4[0])),
        (0, frame(1, Ip::V4, &v4[1])),
        (1, frame(276, Ip::V4, &v4[2])),
    ];
    let path = dir.path().join("multi.pcapng");
    pcapng(&path, &links, &frames);
    assert_found(&path, "pcapng with three interfaces");
}

#[test]
fn write_passed_drops_blocked_flows_from_their_deciding_packet() {
    let dir = common::tempdir();
    let ip = Ip::V4;
    let hello = support::sni_hello("relay.teamviewer.com");
    let benign = support::sni_hello("www.example.com");
    let pkts = vec![
        // TLS flow: handshake packets pass, the ClientHello decides and is dropped, and so is
        // everything after it.
        ip_tcp(ip, 40000, 443, 100, "S", &[]),
        ip_tcp(ip, 40000, 443, 101, "A", &[]),
        ip_tcp(ip, 40000, 443, 101, "AP", &hello),
        ip_tcp(ip, 40000, 443, 101 + hello.len() as u32, "AP", b"after"),
        // Port flow: blocked at its SYN.
        ip_tcp(ip, 40001, 5938, 500, "S", &[]),
        ip_tcp(ip, 40001, 5938, 501, "AP", &[0x17, 0x24, 0x0a, 0x00]),
        // A benign flow passes whole.
        ip_tcp(ip, 40002, 443, 700, "S", &[]),
        ip_tcp(ip, 40002, 443, 701, "AP", &benign),
        ip_tcp(ip, 40002, 443, 701 + benign.len() as u32, "AP", b"data"),
    ];
    let frames: Vec<Vec<u8>> = pkts.iter().map(|p| frame(1, ip, p)).collect();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("passed.pcap");
    pcap(&input, 1, false, false, &frames);
    let out = common::run(&[
        "analyze",
        "--write-passed",
        output.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // tcpdump must read it back.
    let td = std::process::Command::new("tcpdump")
        .args(["-nn", "-r", output.to_str().unwrap()])
        .output();
    let td = match td {
        Ok(o) => o,
        Err(e) => {
            assert!(!common::must_not_skip(), "tcpdump is needed under CI: {e}");
            eprintln!("skipping the tcpdump read-back: {e}");
            return;
        }
    };
    assert!(
        td.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&td.stderr)
    );
    let text = String::from_utf8_lossy(&td.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "expected 2 + 0 + 3 packets to pass:\n{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(".40000 >")).count(),
        2,
        "{text}"
    );
    assert!(
        !text.contains(".5938"),
        "a packet of the blocked port flow passed:\n{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(".40002 >")).count(),
        3,
        "{text}"
    );
    // The same with several workers.
    let out2 = dir.path().join("passed2.pcap");
    let r = common::run(&[
        "analyze",
        "--workers",
        "2",
        "--write-passed",
        out2.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(r.status.success());
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&out2).unwrap()
    );
}

#[test]
fn fail_on_block_exit_status() {
    let dir = common::tempdir();
    let frames: Vec<Vec<u8>> = flows(Ip::V4).iter().map(|p| frame(1, Ip::V4, p)).collect();
    let path = dir.path().join("c.pcap");
    pcap(&path, 1, false, false, &frames);
    let p = path.to_str().unwrap();
    assert_eq!(common::run(&["analyze", p]).status.code(), Some(0));
    assert_eq!(
        common::run(&["analyze", "--fail-on-block", p])
            .status
            .code(),
        Some(3)
    );
    // Nothing blocked under an alert-only policy: exit 0 even with --fail-on-block.
    let pol = dir.path().join("alert.toml");
    std::fs::write(&pol, "default_action = \"alert\"\n").unwrap();
    let r = common::run(&[
        "analyze",
        "--fail-on-block",
        "--policy",
        pol.to_str().unwrap(),
        p,
    ]);
    assert_eq!(r.status.code(), Some(0));
    // The JSON summary carries the same figures.
    let r = common::run(&["analyze", "--format", "json", p]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["rmm_flows"], 2);
    assert_eq!(v["blocked_flows"], 2);
    assert_eq!(v["tools"][0]["tool"], "teamviewer");
}

#[test]
fn a_full_events_disk_loses_events_not_the_analysis() {
    // /dev/full refuses every write with ENOSPC, as a full disk does.
    if !Path::new("/dev/full").exists() {
        assert!(!common::must_not_skip(), "/dev/full is missing");
        eprintln!("skipping: no /dev/full");
        return;
    }
    let dir = common::tempdir();
    let frames: Vec<Vec<u8>> = flows(Ip::V4).iter().map(|p| frame(1, Ip::V4, p)).collect();
    let path = dir.path().join("c.pcap");
    pcap(&path, 1, false, false, &frames);
    let r = common::run(&[
        "analyze",
        "--events",
        "/dev/full",
        "--format",
        "json",
        path.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    // Both decisions were made and counted; both events were lost and counted.
    assert_eq!(v["blocked_flows"], 2);
    assert_eq!(v["events_lost"], 2);
    let r = common::run(&["analyze", "--events", "/dev/full", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&r.stdout).contains("2 event(s) could not be written"));
}
