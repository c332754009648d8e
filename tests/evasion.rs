//! Evasion cases (issue 4): each test writes a capture with the tests' own packet builder
//! (`tests/support/`), runs `rmmguard analyze` over it, and checks the tool and the method of the
//! events, or that a decoy raised nothing while a control flow in the same capture did.

mod common;
mod support;

use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;
use support::{fl, Hello, Pcap, Rr, Tcp};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CLIENT: &str = "192.168.10.20";
const CLIENT6: &str = "2001:db8:10::20";

/// Writes the capture and analyzes it.
fn analyze(p: &Pcap, extra: &[&str]) -> Vec<Value> {
    let dir = common::tempdir();
    let path = dir.path().join("case.pcap");
    p.save(&path);
    common::analyze_events(&path, extra)
}

/// Analyzes the capture with `--write-passed`: the bytes of the capture of what the gateway
/// would forward, and the JSON summary.
fn analyze_passed(p: &Pcap) -> (Vec<u8>, Value) {
    analyze_passed_with(p, None)
}

/// [`analyze_passed`] under the policy `policy` (TOML text), if given.
fn analyze_passed_with(p: &Pcap, policy: Option<&str>) -> (Vec<u8>, Value) {
    let dir = common::tempdir();
    let (cap, passed) = (dir.path().join("in.pcap"), dir.path().join("passed.pcap"));
    let pol = dir.path().join("policy.toml");
    p.save(&cap);
    let mut args = vec![
        "analyze",
        "--format",
        "json",
        "--write-passed",
        passed.to_str().unwrap(),
    ];
    if let Some(text) = policy {
        std::fs::write(&pol, text).unwrap();
        args.extend(["--policy", pol.to_str().unwrap()]);
    }
    args.push(cap.to_str().unwrap());
    let out = common::run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = serde_json::from_slice(&out.stdout).unwrap();
    (std::fs::read(&passed).unwrap(), summary)
}

/// Whether `needle` occurs in `hay`.
fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The one event of the flow to `server`, which must be `tool` by `method`.
fn expect(events: &[Value], server: (IpAddr, u16), tool: &str, method: &str) -> Value {
    let evs = support::events_to(events, server);
    assert_eq!(
        evs.len(),
        1,
        "expected one event for {server:?}, got {evs:#?}\nall events: {events:#?}"
    );
    assert_eq!(
        support::tool_method(evs[0]),
        (tool.to_string(), method.to_string()),
        "wrong attribution for {server:?}: {:#}",
        evs[0]
    );
    evs[0].clone()
}

/// No event for the flow to `server`.
fn expect_none(events: &[Value], server: (IpAddr, u16)) {
    let evs = support::events_to(events, server);
    assert!(evs.is_empty(), "decoy {server:?} was flagged: {evs:#?}");
}

fn tv_hello(sni: &str) -> Vec<u8> {
    support::client_hello(&Hello {
        sni: Some(sni),
        alpn: &["h2", "http/1.1"],
        pq: true,
        ..Hello::default()
    })
}

/// One ClientHello (SNI relay.teamviewer.com, with a post-quantum key share: ~1.5 KB) per
/// connection, sent by `send`.
fn split_case(send: impl Fn(&mut Tcp, &mut Pcap, &[u8])) {
    let hello = tv_hello("relay.teamviewer.com");
    assert!(hello.len() > 1400, "{}", hello.len());
    let mut p = Pcap::new();
    let server = (ip("203.0.113.10"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40001), server);
    c.handshake(&mut p);
    send(&mut c, &mut p, &hello);
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), server, "teamviewer", "tls_sni");
    assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
    assert_eq!(ev["app_proto"], "tls");
}

#[test]
fn client_hello_in_1_byte_segments() {
    split_case(|c, p, h| c.client_send_split_acked(p, h, 1));
}

#[test]
fn client_hello_in_7_byte_segments() {
    split_case(|c, p, h| c.client_send_split_acked(p, h, 7));
}

#[test]
fn client_hello_in_3_segments() {
    split_case(|c, p, h| c.client_send_split(p, h, h.len().div_ceil(3)));
}

#[test]
fn client_hello_split_across_tls_records() {
    // The handshake message itself spread over 5 TLS records, each in its own segment.
    let msg = support::client_hello_msg(&Hello {
        sni: Some("relay.teamviewer.com"),
        pq: true,
        ..Hello::default()
    });
    let recs = support::records(0x16, &msg, msg.len().div_ceil(5));
    split_case(move |c, p, _| {
        let mut off = 0;
        while off < recs.len() {
            let len = u16::from_be_bytes([recs[off + 3], recs[off + 4]]) as usize + 5;
            c.client_send(p, &recs[off..off + len]);
            off += len;
        }
    });
}

#[test]
fn client_hello_3_segments_out_of_order() {
    split_case(|c, p, h| {
        let n = h.len().div_ceil(3);
        for i in [2, 0, 1] {
            let end = ((i + 1) * n).min(h.len());
            c.client_at(p, i * n, &h[i * n..end]);
        }
    });
}

#[test]
fn client_hello_7_byte_segments_reversed() {
    split_case(|c, p, h| {
        let chunks: Vec<(usize, &[u8])> =
            h.chunks(7).enumerate().map(|(i, d)| (i * 7, d)).collect();
        for (off, d) in chunks.into_iter().rev() {
            c.client_at(p, off, d);
            c.server_ack(p);
        }
    });
}

#[test]
fn client_hello_1_byte_segments_reversed() {
    split_case(|c, p, h| {
        for off in (0..h.len()).rev() {
            c.client_at(p, off, &h[off..off + 1]);
        }
    });
}

/// Two hellos of the same length differing only in the server name.
fn conflicting_pair() -> (Vec<u8>, Vec<u8>, std::ops::Range<usize>) {
    let real = tv_hello("relay.teamviewer.com");
    let fake = tv_hello("relay.fakeviewer.com");
    assert_eq!(real.len(), fake.len());
    let diff: Vec<usize> = (0..real.len()).filter(|&i| real[i] != fake[i]).collect();
    let span = diff[0]..diff[diff.len() - 1] + 1;
    assert!(span.len() <= 20, "{span:?}");
    (real, fake, span)
}

/// Overlapping retransmissions with conflicting bytes: the first arrival of each byte wins
/// (the first-write policy of the reassembler).
#[test]
fn overlapping_retransmission_first_arrival_wins() {
    let (real, fake, span) = conflicting_pair();
    let cut = span.end + 10;
    let mut p = Pcap::new();
    // Connection 1: the real name arrives first (bytes 0..cut); then a "retransmission" of the
    // whole hello carries the fake name over the same bytes, plus the rest. The real name stays.
    let s1 = (ip("203.0.113.11"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40011), s1);
    c.handshake(&mut p);
    c.client_at(&mut p, 0, &real[..cut]);
    c.client_at(&mut p, 0, &fake);
    c.close(&mut p);
    // Connection 2: the fake name first, then the real one retransmitted over it: the fake name
    // stays, so the flow is not attributed (the SNI read is relay.fakeviewer.com).
    let s2 = (ip("203.0.113.12"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40012), s2);
    c.handshake(&mut p);
    c.client_at(&mut p, 0, &fake[..cut]);
    c.client_at(&mut p, 0, &real);
    c.close(&mut p);
    // Connection 3: the tail first, then an overlapping segment that covers the tail again
    // with garbage and brings the head: the tail's first bytes win, the hello parses.
    let s3 = (ip("203.0.113.13"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40013), s3);
    c.handshake(&mut p);
    let mid = real.len() / 2;
    c.client_at(&mut p, mid, &real[mid..]);
    let mut head = real[..mid].to_vec();
    head.extend(std::iter::repeat_n(0xee, 200));
    c.client_at(&mut p, 0, &head);
    c.close(&mut p);
    let events = analyze(&p, &[]);
    let ev = expect(&events, s1, "teamviewer", "tls_sni");
    assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
    expect_none(&events, s2);
    expect(&events, s3, "teamviewer", "tls_sni");
}

fn fragment_case(client: IpAddr, server: IpAddr, order_rev: bool) {
    let hello = tv_hello("relay.teamviewer.com");
    let mut p = Pcap::new();
    let s = (server, 443);
    let mut c = Tcp::new((client, 40021), s);
    c.handshake(&mut p);
    let seg = c.seg(true, c.c_next, support::fl::ACK | support::fl::PSH, &hello);
    let n = (hello.len() + 20).div_ceil(256);
    let order: Vec<usize> = if order_rev {
        (0..n).rev().collect()
    } else {
        Vec::new()
    };
    p.tcp_fragmented(&seg, 256, &order);
    c.c_next = c.c_next.wrapping_add(hello.len() as u32);
    c.close(&mut p);
    expect(&analyze(&p, &[]), s, "teamviewer", "tls_sni");
}

#[test]
fn client_hello_in_ipv4_fragments() {
    fragment_case(ip(CLIENT), ip("203.0.113.21"), false);
}

#[test]
fn client_hello_in_ipv4_fragments_reversed() {
    fragment_case(ip(CLIENT), ip("203.0.113.22"), true);
}

#[test]
fn client_hello_in_ipv6_fragments() {
    fragment_case(ip(CLIENT6), ip("2001:db8:99::21"), false);
}

#[test]
fn client_hello_in_ipv6_fragments_reversed() {
    fragment_case(ip(CLIENT6), ip("2001:db8:99::22"), true);
}

#[test]
fn sni_mixed_case_trailing_dot() {
    let mut p = Pcap::new();
    let s = (ip("203.0.113.30"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40030), s);
    c.handshake(&mut p);
    c.client_send(
        &mut p,
        &support::client_hello(&Hello {
            sni: Some("ReLaY.TeamViewer.COM."),
            ..Hello::default()
        }),
    );
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "teamviewer", "tls_sni");
    // The evidence is the name as sent.
    assert_eq!(ev["rmm"]["evidence"], "ReLaY.TeamViewer.COM.");
}

#[test]
fn dns_over_tcp() {
    let mut p = Pcap::new();
    let s = (ip("192.0.2.53"), 53);
    let mut c = Tcp::new((ip(CLIENT), 40040), s);
    c.handshake(&mut p);
    let q = support::dns_query(0x4242, "relay.teamviewer.com");
    // The length prefix and the message in separate segments.
    let framed = support::dns_tcp(&q);
    c.client_send(&mut p, &framed[..2]);
    c.client_send(&mut p, &framed[2..]);
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "teamviewer", "dns_query");
    assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
}

#[test]
fn cname_chain_to_catalogued_name_then_learned_address() {
    let mut p = Pcap::new();
    let dns = (ip("192.0.2.53"), 53);
    let client = (ip(CLIENT), 50053);
    p.udp(client, dns, &support::dns_query(7, "support.example.org"));
    p.udp(
        dns,
        client,
        &support::dns_response(
            7,
            "support.example.org",
            &[
                Rr::Cname("support.example.org", "relay.teamviewer.com"),
                Rr::A("relay.teamviewer.com", [198, 51, 100, 20]),
            ],
        ),
    );
    // A later TLS connection to the answered address, without SNI.
    let s = (ip("198.51.100.20"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40050), s);
    c.handshake(&mut p);
    c.client_send(&mut p, &support::client_hello(&Hello::default()));
    c.close(&mut p);
    let events = analyze(&p, &[]);
    let ev = expect(&events, dns, "teamviewer", "dns_query");
    assert_eq!(
        ev["rmm"]["evidence"],
        "support.example.org -> relay.teamviewer.com"
    );
    let ev = expect(&events, s, "teamviewer", "dns_learned_ip");
    assert_eq!(ev["rmm"]["evidence"], "198.51.100.20");
}

/// A DNS answer for boot.net.anydesk.com, then flows to the answered addresses that show no
/// name: a ClientHello without SNI, a raw TCP flow, an ECH ClientHello whose outer SNI is a
/// public name, and the same over IPv6 (AAAA).
#[test]
fn dns_learned_address_without_a_name() {
    let mut p = Pcap::new();
    let dns = (ip("192.0.2.53"), 53);
    let client = (ip(CLIENT), 50054);
    p.udp(client, dns, &support::dns_query(8, "boot.net.anydesk.com"));
    let v6: std::net::Ipv6Addr = "2001:db8:77::77".parse().unwrap();
    p.udp(
        dns,
        client,
        &support::dns_response(
            8,
            "boot.net.anydesk.com",
            &[
                Rr::A("boot.net.anydesk.com", [198, 51, 100, 77]),
                Rr::Aaaa("boot.net.anydesk.com", v6.octets()),
            ],
        ),
    );
    // No SNI.
    let s1 = (ip("198.51.100.77"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40061), s1);
    c.handshake(&mut p);
    c.client_send(&mut p, &support::client_hello(&Hello::default()));
    c.close(&mut p);
    // Raw TCP on another port.
    let s2 = (ip("198.51.100.77"), 9999);
    let mut c = Tcp::new((ip(CLIENT), 40062), s2);
    c.handshake(&mut p);
    c.client_send(&mut p, &[0x5a, 0x01, 0x99, 0x42, 0x00, 0x10, 0x77, 0x31]);
    c.server_send(&mut p, &[0x5a, 0x02, 0x00]);
    c.close(&mut p);
    // ECH: the outer SNI is the ECH provider's public name.
    let s3 = (ip("198.51.100.77"), 8443);
    let mut c = Tcp::new((ip(CLIENT), 40063), s3);
    c.handshake(&mut p);
    c.client_send(
        &mut p,
        &support::client_hello(&Hello {
            sni: Some("public.ech-provider.example"),
            alpn: &["h2"],
            ech: true,
            ..Hello::default()
        }),
    );
    c.close(&mut p);
    // IPv6, no SNI.
    let s4 = (IpAddr::V6(v6), 443);
    let mut c = Tcp::new((ip(CLIENT6), 40064), s4);
    c.handshake(&mut p);
    c.client_send(&mut p, &support::client_hello(&Hello::default()));
    c.close(&mut p);
    // Control: the same ECH hello to an address nobody answered is not attributed.
    let s5 = (ip("198.51.100.78"), 8443);
    let mut c = Tcp::new((ip(CLIENT), 40065), s5);
    c.handshake(&mut p);
    c.client_send(
        &mut p,
        &support::client_hello(&Hello {
            sni: Some("public.ech-provider.example"),
            ech: true,
            ..Hello::default()
        }),
    );
    c.close(&mut p);
    let events = analyze(&p, &[]);
    expect(&events, dns, "anydesk", "dns_query");
    for s in [s1, s2, s3, s4] {
        let ev = expect(&events, s, "anydesk", "dns_learned_ip");
        assert_eq!(ev["rmm"]["evidence"], s.0.to_string());
    }
    expect_none(&events, s5);
}

#[test]
fn vnc_on_443() {
    let mut p = Pcap::new();
    let s = (ip("203.0.113.50"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40070), s);
    c.handshake(&mut p);
    c.server_send(&mut p, b"RFB 003.008\n");
    c.client_send(&mut p, b"RFB 003.008\n");
    c.server_send(&mut p, &[1, 2]);
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "vnc", "fingerprint");
    assert!(
        ev["rmm"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with("vnc_rfb"),
        "{ev}"
    );
}

fn x224_connection_request(cookie: &str) -> Vec<u8> {
    let mut x = vec![0xe0, 0, 0, 0, 0, 0];
    x.extend_from_slice(format!("Cookie: mstshash={cookie}\r\n").as_bytes());
    // RDP_NEG_REQ: type 1, flags 0, length 8, requested protocols TLS | CredSSP.
    x.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00]);
    let mut t = vec![0x03, 0x00];
    t.extend_from_slice(&((x.len() + 5) as u16).to_be_bytes());
    t.push(x.len() as u8); // LI: the X.224 header length without itself
    t.extend_from_slice(&x);
    t
}

#[test]
fn rdp_on_8080() {
    let mut p = Pcap::new();
    let s = (ip("203.0.113.60"), 8080);
    let mut c = Tcp::new((ip(CLIENT), 40080), s);
    c.handshake(&mut p);
    c.client_send(&mut p, &x224_connection_request("administrator"));
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "rdp", "fingerprint");
    assert!(
        ev["rmm"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with("rdp_x224"),
        "{ev}"
    );
}

/// A TeamViewer TCP frame: `17 24 <cmd> <u16 LE length> <body>`.
fn tv_frame(cmd: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x17, 0x24, cmd];
    f.extend_from_slice(&(body.len() as u16).to_le_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn teamviewer_magic_on_80() {
    let mut p = Pcap::new();
    let s = (ip("203.0.113.70"), 80);
    let mut c = Tcp::new((ip(CLIENT), 40090), s);
    c.handshake(&mut p);
    let mut first = tv_frame(0x0a, &[0u8; 32]);
    first.extend(tv_frame(0x28, &[0x80, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0x80]));
    c.client_send(&mut p, &first);
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "teamviewer", "fingerprint");
    assert!(
        ev["rmm"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with("teamviewer_tcp"),
        "{ev}"
    );
}

#[test]
fn netsupport_post_on_443() {
    let mut p = Pcap::new();
    let s = (ip("203.0.113.80"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40100), s);
    c.handshake(&mut p);
    let body = "CMD=POLL\nINFO=1\nACK=1\n";
    let req = format!(
        "POST http://203.0.113.80/fakeurl.htm HTTP/1.1\r\nUser-Agent: NetSupport Manager/1.3\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Host: 203.0.113.80:443\r\nConnection: Keep-Alive\r\n\r\n{body}",
        body.len()
    );
    c.client_send(&mut p, req.as_bytes());
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "netsupport", "http_user_agent");
    assert_eq!(ev["rmm"]["evidence"], "NetSupport Manager/1.3");
    assert_eq!(ev["app_proto"], "http");
}

// ---------------------------------------------------------------------------------------------
// QUIC, built by a real QUIC client (aioquic) in tests/quic_helper/
// ---------------------------------------------------------------------------------------------

/// The Python interpreter with aioquic (installed by `scripts/deps.sh test` into
/// target/quic-venv; RMMGUARD_QUIC_PYTHON overrides it).
fn quic_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RMMGUARD_QUIC_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = common::root().join("target/quic-venv/bin/python");
    let ok = p.exists()
        && std::process::Command::new(&p)
            .args(["-c", "import aioquic"])
            .output()
            .is_ok_and(|o| o.status.success());
    ok.then_some(p)
}

fn aioquic_initial(version: &str, sni: &str) -> Option<Vec<u8>> {
    let Some(py) = quic_python() else {
        assert!(
            !common::must_not_skip(),
            "aioquic is missing (run scripts/deps.sh test): the QUIC cases cannot run under CI"
        );
        eprintln!("SKIP: aioquic not installed (run scripts/deps.sh test); QUIC case skipped");
        return None;
    };
    let dir = common::tempdir();
    let out = dir.path().join("initial.bin");
    let st = std::process::Command::new(py)
        .arg(common::root().join("tests/quic_helper/initial.py"))
        .args([version, sni])
        .arg(&out)
        .status()
        .expect("run the QUIC helper");
    assert!(st.success(), "tests/quic_helper/initial.py failed");
    Some(std::fs::read(&out).unwrap())
}

fn quic_case(version: &str, first_byte_version: [u8; 4], server: &str) {
    let Some(dgram) = aioquic_initial(version, "relay.teamviewer.com") else {
        return;
    };
    assert_eq!(
        dgram[1..5],
        first_byte_version,
        "not a QUIC v{version} Initial"
    );
    assert!(dgram.len() >= 1200);
    let mut p = Pcap::new();
    let s = (ip(server), 443);
    p.udp((ip(CLIENT), 50443), s, &dgram);
    let ev = expect(&analyze(&p, &[]), s, "teamviewer", "quic_sni");
    assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
    assert_eq!(ev["app_proto"], "quic");
    assert!(
        ev["quic"]["ja4"].as_str().unwrap().starts_with("q13"),
        "{ev}"
    );
}

#[test]
fn quic_v1_initial_from_aioquic() {
    quic_case("1", [0, 0, 0, 1], "203.0.113.90");
}

#[test]
fn quic_v2_initial_from_aioquic() {
    quic_case("2", [0x6b, 0x33, 0x43, 0xcf], "203.0.113.91");
}

// ---------------------------------------------------------------------------------------------
// Decoys
// ---------------------------------------------------------------------------------------------

/// The first ClientHello of Chrome in the corpus (benign/chrome.pcap), reassembled.
fn chrome_hello() -> Vec<u8> {
    let data = std::fs::read(common::corpus().join("benign/chrome.pcap")).unwrap();
    let mut r = rmmguard::source::pcapfile::PcapReader::new(&data).unwrap();
    let mut stream: Vec<u8> = Vec::new();
    let mut client_port = None;
    while let Some(pkt) = r.next().unwrap() {
        let Ok(s) = etherparse::SlicedPacket::from_ethernet(pkt.data) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
            continue;
        };
        let pl = t.payload();
        if t.destination_port() != 443 || pl.is_empty() {
            continue;
        }
        match client_port {
            None if pl[0] == 0x16 => client_port = Some(t.source_port()),
            Some(cp) if cp == t.source_port() => {}
            _ => continue,
        }
        stream.extend_from_slice(pl);
        let need = 5 + u16::from_be_bytes([stream[3], stream[4]]) as usize;
        if stream.len() >= need {
            stream.truncate(need);
            return stream;
        }
    }
    panic!("no ClientHello in chrome.pcap");
}

#[test]
fn decoys_do_not_match() {
    let mut p = Pcap::new();
    let mut decoys = Vec::new();
    for (i, sni) in [
        "teamviewer.com.example.org",
        "notanydesk.com",
        "anydesk.com.evil.test",
        "xteamviewer.com",
        "anydesk.co",
    ]
    .iter()
    .enumerate()
    {
        let s = (ip(&format!("203.0.113.{}", 100 + i)), 443);
        let mut c = Tcp::new((ip(CLIENT), 41000 + i as u16), s);
        c.handshake(&mut p);
        c.client_send_split(
            &mut p,
            &support::client_hello(&Hello {
                sni: Some(sni),
                alpn: &["h2"],
                ..Hello::default()
            }),
            100,
        );
        c.close(&mut p);
        decoys.push(s);
        // The same names asked over DNS.
        let d = (ip("192.0.2.53"), 53);
        let cl = (ip(CLIENT), 52000 + i as u16);
        p.udp(cl, d, &support::dns_query(100 + i as u16, sni));
    }
    // Chrome's real ClientHello (many extensions, GREASE, ECH GREASE), on 443 and on 5938-free
    // odd ports.
    let chrome = chrome_hello();
    assert!(chrome.len() > 500);
    for (i, port) in [443u16, 8443, 80].iter().enumerate() {
        let s = (ip(&format!("203.0.113.{}", 120 + i)), *port);
        let mut c = Tcp::new((ip(CLIENT), 42000 + i as u16), s);
        c.handshake(&mut p);
        c.client_send_split(&mut p, &chrome, 700);
        c.close(&mut p);
        decoys.push(s);
    }
    // An RFB banner inside HTTP bodies, both ways.
    let s = (ip("203.0.113.130"), 80);
    let mut c = Tcp::new((ip(CLIENT), 43000), s);
    c.handshake(&mut p);
    c.client_send(
        &mut p,
        b"POST /upload HTTP/1.1\r\nHost: files.example.net\r\nContent-Length: 12\r\n\r\nRFB 003.008\n",
    );
    c.server_send(
        &mut p,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nRFB 003.008\n",
    );
    c.close(&mut p);
    decoys.push(s);
    // Control in the same capture: the catalogued name is flagged.
    let ctl = (ip("203.0.113.140"), 443);
    let mut c = Tcp::new((ip(CLIENT), 44000), ctl);
    c.handshake(&mut p);
    c.client_send(&mut p, &tv_hello("relay.teamviewer.com"));
    c.close(&mut p);

    let events = analyze(&p, &[]);
    for s in &decoys {
        expect_none(&events, *s);
    }
    expect(&events, ctl, "teamviewer", "tls_sni");
    assert_eq!(events.len(), 1, "only the control flow: {events:#?}");
}

// ---------------------------------------------------------------------------------------------
// Client certificates (TLS 1.2 mutual authentication)
// ---------------------------------------------------------------------------------------------

/// The client payloads of one TCP flow of a corpus capture, in capture order.
fn corpus_client_payloads(capture: &str, client_port: u16) -> Vec<Vec<u8>> {
    let data = std::fs::read(common::corpus().join(capture)).unwrap();
    let mut r = rmmguard::source::pcapfile::PcapReader::new(&data).unwrap();
    let mut out = Vec::new();
    while let Some(pkt) = r.next().unwrap() {
        let Ok(s) = etherparse::SlicedPacket::from_ethernet(pkt.data) else {
            continue;
        };
        if let Some(etherparse::TransportSlice::Tcp(t)) = s.transport {
            if t.source_port() == client_port && !t.payload().is_empty() {
                out.push(t.payload().to_vec());
            }
        }
    }
    out
}

/// The corpus flow 59754 -> 192.168.1.181:7070 (labelled `unknown`): its client presents a
/// certificate `CN=AnyDesk Client`, which names the tool (before, only the low-confidence port
/// 7070 did). The same client bytes replayed to port 443, where no port hints at AnyDesk, are
/// attributed the same way.
#[test]
fn anydesk_client_certificate() {
    const CAP: &str = "remote-access/tls_client_certificate_with_missing_server_one.pcapng";
    let events = common::analyze_events(&common::corpus().join(CAP), &[]);
    let ev = expect(&events, (ip("192.168.1.181"), 7070), "anydesk", "tls_cert");
    assert_eq!(ev["rmm"]["evidence"], "CN=AnyDesk Client");
    assert_eq!(ev["rmm"]["confidence"], "high");

    let flights = corpus_client_payloads(CAP, 59754);
    assert_eq!(
        flights.len(),
        2,
        "ClientHello and the client's second flight"
    );
    let mut p = Pcap::new();
    let s = (ip("203.0.113.150"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40150), s);
    c.handshake(&mut p);
    c.client_send(&mut p, &flights[0]);
    // The second flight in 100-byte segments.
    c.client_send_split_acked(&mut p, &flights[1], 100);
    c.close(&mut p);
    let ev = expect(&analyze(&p, &[]), s, "anydesk", "tls_cert");
    assert_eq!(ev["rmm"]["evidence"], "CN=AnyDesk Client");
    // Without the second flight, nothing names the tool on 443.
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), 40151), s);
    c.handshake(&mut p);
    c.client_send(&mut p, &flights[0]);
    c.close(&mut p);
    expect_none(&analyze(&p, &[]), s);
}

/// A ClientHello record whose SNI comes last, after `pad` bytes of a padding extension.
fn padded_hello(sni: &str, pad: usize) -> Vec<u8> {
    let ext = |out: &mut Vec<u8>, t: u16, body: &[u8]| {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    };
    let mut exts = Vec::new();
    ext(&mut exts, 0x0015, &vec![0u8; pad]);
    let name = sni.as_bytes();
    let mut sn = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sn.push(0);
    sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sn.extend_from_slice(name);
    ext(&mut exts, 0x0000, &sn);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
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

#[test]
fn client_hello_larger_than_the_usual_prefix_with_the_sni_last() {
    // 6 and 9 KB of padding before the server name: more than the 4 KiB a stream gets by default.
    for pad in [6000usize, 9000] {
        let hello = padded_hello("relay.teamviewer.com", pad);
        assert!(hello.len() > 4096 && hello.len() > pad);
        let mut p = Pcap::new();
        let server = (ip("203.0.113.10"), 443);
        let mut c = Tcp::new((ip(CLIENT), 40001), server);
        c.handshake(&mut p);
        c.client_send_split(&mut p, &hello, 1448);
        c.close(&mut p);
        let ev = expect(&analyze(&p, &[]), server, "teamviewer", "tls_sni");
        assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
    }
}

/// What a client alone can send between the two halves of its ClientHello, hoping the engine
/// forgets the first half.
#[derive(Clone, Copy, Debug)]
enum Interlude {
    /// A SYN on the same ports with another initial sequence number (a server in the connection
    /// answers it with a challenge ACK, RFC 5961, and the connection goes on).
    Syn,
    /// A stray reset (one the server drops), then that SYN.
    RstSyn,
    /// A stray reset, then silence past the short timeout of closed flows.
    RstWait,
    /// A stray reset, then the server's SYN-ACK again (retransmitted: the client held back its
    /// handshake ACK).
    RstSynAckAgain,
}

#[test]
fn nothing_a_client_sends_mid_client_hello_restarts_the_stream() {
    for what in [
        Interlude::Syn,
        Interlude::RstSyn,
        Interlude::RstWait,
        Interlude::RstSynAckAgain,
    ] {
        eprintln!("case {what:?}");
        split_case(|c, p, h| {
            let half = h.len() / 2;
            c.client_send(p, &h[..half]);
            c.server_ack(p);
            if !matches!(what, Interlude::Syn) {
                p.tcp(&c.seg(true, c.c_next.wrapping_add(0x2000_0000), fl::RST, b""));
            }
            match what {
                Interlude::Syn | Interlude::RstSyn => {
                    p.tcp(&c.seg(true, c.c_isn.wrapping_add(0x4000_0000), fl::SYN, b""));
                    c.server_ack(p);
                }
                Interlude::RstWait => p.sleep(8),
                Interlude::RstSynAckAgain => {
                    p.tcp(&c.seg(false, c.s_isn, fl::SYN | fl::ACK, b""));
                }
            }
            c.client_send(p, &h[half..]);
        });
    }
}

/// Bytes carried by a SYN or a reset are not stream data: a server delivers a SYN's only with a
/// valid Fast Open cookie, and a reset's never. A client that puts a ClientHello for an
/// ordinary name there, to have it read first (the first copy of a byte wins), and then sends
/// the real one at the same place in the stream, is still seen for what it is.
#[test]
fn a_decoy_in_a_syn_or_a_reset_is_not_read_as_the_stream() {
    let decoy = tv_hello("www.example.com");
    for (port, in_syn) in [(40104u16, true), (40105, false)] {
        eprintln!("decoy in the {}", if in_syn { "SYN" } else { "reset" });
        let mut p = Pcap::new();
        let server = (ip("203.0.113.44"), 443);
        let mut c = Tcp::new((ip(CLIENT), port), server);
        if in_syn {
            // The decoy where Fast Open data would be: from the first data byte on.
            p.tcp(&c.seg(true, c.c_isn, fl::SYN, &decoy));
            p.tcp(&c.seg(false, c.s_isn, fl::SYN | fl::ACK, b""));
            p.tcp(&c.seg(true, c.c_next, fl::ACK, b""));
        } else {
            c.handshake(&mut p);
            p.tcp(&c.seg(true, c.c_next, fl::RST | fl::ACK, &decoy));
        }
        c.client_send(&mut p, &tv_hello("relay.teamviewer.com"));
        c.server_ack(&mut p);
        let ev = expect(&analyze(&p, &[]), server, "teamviewer", "tls_sni");
        assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
    }
}

/// Insertion: bytes that pass the gateway but never reach the server (a TTL that runs out past
/// the gateway, a timestamp the server's PAWS check refuses), then the real bytes at the same
/// place. Here the client's host sends a whole ClientHello for an ordinary name that way, then
/// the real one for relay.teamviewer.com, which the server acknowledges. The engine read the
/// decoy first and, before, decided the flow to pass on it at once: the real ClientHello went
/// through. Now the decoy's ordinary name waits for the server's acknowledgement, which never
/// covers it, and the real copy, which conflicts with what was read, is dropped (nothing the
/// engine did not read reaches the server), and counted.
#[test]
fn an_inserted_decoy_does_not_let_the_real_client_hello_through() {
    let real = tv_hello("relay.teamviewer.com");
    let p = decoy_then_real(40106, &tv_hello("images12.example.org"), &real);
    let (passed, summary) = analyze_passed(&p);
    assert_only_the_decoy_passed(
        &passed,
        &summary,
        b"images12.example.org",
        b"relay.teamviewer.com",
    );
}

/// The decoy's name was forwarded, the real one's was not: that one segment, and only it, was
/// dropped.
fn assert_only_the_decoy_passed(passed: &[u8], summary: &Value, decoy: &[u8], real: &[u8]) {
    assert!(has(passed, decoy), "the decoy itself is forwarded");
    assert!(
        !has(passed, real),
        "the real ClientHello would have reached the server"
    );
    assert_eq!(summary["packets_blocked"], 1, "{summary}");
}

/// The same, with the end of the engine's inspection budget brought about first: the decoy, then
/// filler to the end of the 4 KiB prefix and 20 copies of its last bytes, all where only the
/// gateway sees them. The budget's end decided the flow to pass at once; it now waits for the
/// server's acknowledgement too (the rules queue the server's pure ACKs of undecided flows).
#[test]
fn an_inserted_decoy_that_spends_the_inspection_budget_does_not_let_the_real_one_through() {
    let real = tv_hello("relay.teamviewer.com");
    let p = budget_spending_decoy_then((ip(CLIENT), 40112), (ip("203.0.113.48"), 443), &real);
    let (passed, summary) = analyze_passed(&p);
    assert!(
        !has(&passed, b"relay.teamviewer.com"),
        "the real ClientHello would have reached the server: {summary}"
    );
    assert_eq!(summary["packets_blocked"], 1, "{summary}");
}

/// A connection from `client` to `server` whose client sends, where only the gateway sees them, a
/// decoy ClientHello for an ordinary name, filler to past the end of the 4 KiB prefix and 20
/// copies of the filler's last bytes (the end of the inspection budget); then `real` at the
/// decoy's place.
fn budget_spending_decoy_then(client: (IpAddr, u16), server: (IpAddr, u16), real: &[u8]) -> Pcap {
    let decoy = tv_hello("images12.example.org");
    let filler = vec![0x17u8; 4096 - decoy.len() + 100];
    let mut p = Pcap::new();
    let mut c = Tcp::new(client, server);
    c.handshake(&mut p);
    c.client_at(&mut p, 0, &decoy);
    c.client_at(&mut p, decoy.len(), &filler);
    for _ in 0..20 {
        c.client_at(&mut p, decoy.len() + filler.len() - 50, &filler[..50]);
    }
    c.client_send(&mut p, real);
    p
}

/// A port decides a flow at its first packet only when the policy refuses the tool it names.
/// Where the policy allows the tool (AnyDesk, whose port 6568 is distinctive), the flow was
/// waved through at its SYN, and a ClientHello for a blocked tool sent on that port went
/// through unread; now what the flow carries is read first. A decoy sent where only the
/// gateway sees it, padded out to spend the inspection budget, does not get it waved through
/// either: the port's pass waits for the server's acknowledgement like any other.
#[test]
fn another_tool_on_an_allowed_tools_port_is_still_read() {
    let policy = format!(
        "home_networks = [\"{CLIENT}/32\"]\n\n[[allow]]\nname = \"anydesk\"\ntool = \"anydesk\"\n"
    );
    let server = (ip("203.0.113.49"), 6568);
    let real = tv_hello("relay.teamviewer.com");
    // In the open.
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), 40113), server);
    c.handshake(&mut p);
    c.client_send(&mut p, &real);
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert!(!has(&passed, b"relay.teamviewer.com"), "{summary}");
    assert_eq!(summary["blocked_flows"], 1, "{summary}");
    // Behind a decoy that spends the budget.
    let p = budget_spending_decoy_then((ip(CLIENT), 40114), server, &real);
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert!(!has(&passed, b"relay.teamviewer.com"), "{summary}");
    assert_eq!(summary["allowed_flows"], 0, "{summary}");
    // The allowed tool itself still passes, named by its port.
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), 40115), server);
    c.handshake(&mut p);
    c.client_send(&mut p, b"\x00\x01anydesk-ish");
    c.server_send(&mut p, b"\x00\x02ok");
    c.client_send(&mut p, b"\x00\x03more");
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert!(has(&passed, b"\x00\x03more"), "{summary}");
    assert_eq!(summary["allowed_flows"], 1, "{summary}");
    assert_eq!(summary["blocked_flows"], 0, "{summary}");
}

/// A connection from client port `port` to 203.0.113.45:443 whose client sends `decoy` where
/// only the gateway sees it, then `real` at the same place (of the same length), which the
/// server acknowledges with a ServerHello; then the client's next record.
fn decoy_then_real(port: u16, decoy: &[u8], real: &[u8]) -> Pcap {
    assert_eq!(real.len(), decoy.len());
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), port), (ip("203.0.113.45"), 443));
    c.handshake(&mut p);
    c.client_at(&mut p, 0, decoy);
    c.client_send(&mut p, real);
    c.server_send(&mut p, &[0x16, 3, 3, 0, 4, 2, 0, 0, 0]);
    c.client_send(&mut p, &[0x14, 3, 3, 0, 1, 1]);
    p
}

/// The same with a decoy that names a tool the policy allows (a ScreenConnect tenant): the
/// detection of it decided the flow to pass at once, and the real ClientHello, for a blocked
/// tool, went through. A detection that passes now waits for the server's acknowledgement too.
#[test]
fn an_inserted_decoy_naming_an_allowed_tool_does_not_let_the_real_one_through() {
    let policy = format!(
        "home_networks = [\"{CLIENT}/32\"]\n\n[[allow]]\nname = \"acme-tenant\"\n\
         tool = \"screenconnect\"\nhosts = [\"acme.screenconnect.com\"]\n"
    );
    let real = tv_hello("router1.teamviewer.com");
    let decoy = tv_hello("acme.screenconnect.com");
    let p = decoy_then_real(40108, &decoy, &real);
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert_only_the_decoy_passed(
        &passed,
        &summary,
        b"acme.screenconnect.com",
        b"router1.teamviewer.com",
    );
    assert_eq!(summary["allowed_flows"], 0, "{summary}");
    // Nor does the decoy's first byte sent again 20000 times (the end of the engine's budget for
    // a flow, which the client alone can bring about): the held detection waits for the server.
    let server = (ip("203.0.113.47"), 443);
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), 40111), server);
    c.handshake(&mut p);
    c.client_at(&mut p, 0, &decoy);
    for _ in 0..20_000 {
        c.client_at(&mut p, 0, &decoy[..1]);
    }
    c.client_send(&mut p, &real);
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert!(!has(&passed, b"router1.teamviewer.com"), "{summary}");
    assert_eq!(summary["allowed_flows"], 0, "{summary}");
    // Sent in the open, the allowed tenant still passes, and is named.
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), 40109), server);
    c.handshake(&mut p);
    c.client_send(&mut p, &decoy);
    c.server_send(&mut p, &[0x16, 3, 3, 0, 4, 2, 0, 0, 0]);
    c.client_send(&mut p, &[0x14, 3, 3, 0, 1, 1]);
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert!(has(&passed, &[0x14, 3, 3, 0, 1, 1]), "{summary}");
    assert_eq!(summary["packets_blocked"], 0, "{summary}");
    assert_eq!(summary["allowed_flows"], 1, "{summary}");
    // And the real one, in the open, is blocked.
    let mut p = Pcap::new();
    let mut c = Tcp::new((ip(CLIENT), 40110), server);
    c.handshake(&mut p);
    c.client_send(&mut p, &real);
    let (passed, summary) = analyze_passed_with(&p, Some(&policy));
    assert!(!has(&passed, b"router1.teamviewer.com"), "{summary}");
    assert_eq!(summary["blocked_flows"], 1, "{summary}");
}

/// What the engine cannot read must not reach the server while a flow is undecided: data on a
/// client's SYN (Fast Open: a server with a cookie would take it), and client bytes past what
/// the stream prefix keeps while there is still a hole before them (the prefix may yet grow over
/// their place, for a large ClientHello: a client could send the real tail first, then a decoy
/// head that announces it), and urgent data (the server's application never reads the urgent
/// byte in line; the engine would). Each such segment is dropped; the client sends it again,
/// and once the hole is filled the same bytes pass.
#[test]
fn segments_the_engine_cannot_read_are_held_back() {
    let mut p = Pcap::new();
    let server = (ip("203.0.113.46"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40107), server);
    p.tcp(&c.seg(true, c.c_isn, fl::SYN, b"SYNDATA-tfo"));
    c.handshake(&mut p);
    // 200 bytes at offset 5000 (past the 4 KiB prefix), with nothing before them yet.
    c.client_at(&mut p, 5000, &[b'T'; 200]);
    // Then the stream from its start (an HTTP request whose body runs past the prefix), and the
    // tail again.
    let mut body =
        b"POST /up HTTP/1.1\r\nHost: files.example.org\r\nContent-Length: 5200\r\n\r\n".to_vec();
    body.resize(5000, b'x');
    c.client_send_split(&mut p, &body, 1000);
    c.client_at(&mut p, 5000, &[b'U'; 200]);
    let urgent = c.c_isn.wrapping_add(1 + 5200);
    p.tcp(&c.seg(true, urgent, fl::ACK | fl::URG | fl::PSH, b"URGENT!"));
    let (passed, summary) = analyze_passed(&p);
    assert!(
        !has(&passed, b"SYNDATA-tfo"),
        "the SYN's data was forwarded"
    );
    assert!(
        !has(&passed, &[b'T'; 200]),
        "bytes past the prefix, before its hole was filled"
    );
    assert!(
        has(&passed, &[b'U'; 200]),
        "the same place once the prefix is whole"
    );
    assert!(!has(&passed, b"URGENT!"), "urgent data was forwarded");
    assert_eq!(summary["packets_blocked"], 3, "{summary}");
}

#[test]
fn a_syn_ack_before_the_syn_does_not_swap_the_roles_for_good() {
    // The client's host first sends a SYN-ACK on the ports it then connects from: a flow that
    // starts with a SYN-ACK takes its receiver for the client, so the real client looks like
    // the server until its SYN puts the roles right.
    let mut p = Pcap::new();
    let server = (ip("203.0.113.42"), 443);
    let mut c = Tcp::new((ip(CLIENT), 40102), server);
    p.tcp(&c.seg(true, 0x7777_0000, fl::SYN | fl::ACK, b""));
    c.handshake(&mut p);
    c.client_send(&mut p, &tv_hello("relay.teamviewer.com"));
    expect(&analyze(&p, &[]), server, "teamviewer", "tls_sni");
}

/// A first connection that sends an ordinary ClientHello and stays open (never closed, so its
/// flow is still in the table), then `second`, a new connection from the same client port with
/// other initial sequence numbers, which must be seen as TeamViewer.
fn port_reuse_case(second: impl Fn(&mut Tcp, &mut Pcap)) {
    let mut p = Pcap::new();
    let server = (ip("203.0.113.40"), 443);
    let client = (ip(CLIENT), 40100);
    let mut first = Tcp::new(client, server);
    first.handshake(&mut p);
    first.client_send(&mut p, &support::sni_hello("www.example.com"));
    first.server_send(&mut p, &[0x16, 3, 3, 0, 4, 2, 0, 0, 0]);
    let mut c = Tcp::new(client, server).with_isns(
        first.c_isn.wrapping_add(0x3000_0000),
        first.s_isn.wrapping_add(0x5000_0000),
    );
    second(&mut c, &mut p);
    c.client_send(&mut p, &tv_hello("relay.teamviewer.com"));
    let ev = expect(&analyze(&p, &[]), server, "teamviewer", "tls_sni");
    assert_eq!(ev["rmm"]["evidence"], "relay.teamviewer.com");
}

#[test]
fn source_port_reuse_is_a_new_connection() {
    port_reuse_case(|c, p| c.handshake(p));
}

#[test]
fn source_port_reuse_seen_from_its_syn_ack() {
    // An inline gateway whose conntrack entry of the old connection still carries its verdict
    // passes the new SYN without queueing it: the SYN-ACK is the first packet rmmguard sees.
    port_reuse_case(|c, p| {
        p.tcp(&c.seg(false, c.s_isn, fl::SYN | fl::ACK, b""));
        p.tcp(&c.seg(true, c.c_next, fl::ACK, b""));
    });
}

#[test]
fn source_port_reuse_in_a_capture_of_the_client_side() {
    // Only the client's packets were captured: its SYN is the only sign of the new connection.
    let mut p = Pcap::new();
    let server = (ip("203.0.113.41"), 443);
    let client = (ip(CLIENT), 40101);
    let mut first = Tcp::new(client, server);
    first.syn(&mut p);
    first.client_send(&mut p, &support::sni_hello("www.example.com"));
    let mut c =
        Tcp::new(client, server).with_isns(first.c_isn.wrapping_add(0x3000_0000), first.s_isn);
    c.syn(&mut p);
    c.client_send(&mut p, &tv_hello("relay.teamviewer.com"));
    expect(&analyze(&p, &[]), server, "teamviewer", "tls_sni");
}
