//! The catalogue end to end (issue 3): for a deterministic sample of the tools in
//! `port-lists/tools/`, a capture with a ClientHello carrying one of the tool's domains as SNI, a
//! DNS query for it, and a SYN to one of its TCP ports; `analyze` must attribute each flow to
//! the tool that `rmmguard catalog match` names for that indicator (a more specific suffix of
//! another tool wins, and the catalogue's own matcher says which). Shared infrastructure is not
//! flagged.

mod common;
mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use support::{Hello, Pcap, Tcp};

struct Tool {
    id: String,
    domain: Option<(String, String)>,
    tcp_port: Option<u16>,
}

fn load_tools() -> Vec<Tool> {
    common::catalog_files()
        .iter()
        .map(|(_, v)| {
            let inds = v
                .get("indicator")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default();
            let domain = inds.iter().find_map(|i| {
                (i["kind"].as_str() == Some("domain")).then(|| {
                    (
                        i["value"].as_str().unwrap().to_string(),
                        i.get("match")
                            .and_then(|m| m.as_str())
                            .unwrap_or("suffix")
                            .to_string(),
                    )
                })
            });
            let tcp_port = inds.iter().find_map(|i| {
                if i["kind"].as_str() != Some("port") || i["proto"].as_str() != Some("tcp") {
                    return None;
                }
                let spec = i["port"].as_str()?;
                spec.split('-').next()?.trim().parse::<u16>().ok()
            });
            Tool {
                id: v["id"].as_str().unwrap().to_string(),
                domain,
                tcp_port,
            }
        })
        .collect()
}

/// The tool id `catalog match` names for `what`, or None.
fn catalog_owner(what: &str) -> Option<String> {
    let out = common::run(&["catalog", "match", what]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        assert!(
            text.contains("no catalogued tool matches"),
            "catalog match {what}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    // "NAME: Tool Name (id) by ..."
    let by = text.find(") by ").expect("catalog match output");
    let open = text[..by].rfind('(').unwrap();
    Some(text[open + 1..by].to_string())
}

/// The host name used for a domain indicator: a subdomain for a suffix, the name itself for an
/// exact one.
fn host_for(value: &str, how: &str) -> String {
    match how {
        "exact" => value.to_string(),
        _ => format!("e2e-probe.{value}"),
    }
}

#[test]
fn catalogue_sample_end_to_end() {
    let tools = load_tools();
    assert!(tools.len() >= 250, "{} tools", tools.len());
    // Deterministic sample: every second tool (by id) that has a domain or a TCP port.
    let sample: Vec<&Tool> = tools
        .iter()
        .filter(|t| t.domain.is_some() || t.tcp_port.is_some())
        .step_by(2)
        .collect();
    assert!(sample.len() >= 50, "sample of {}", sample.len());

    let mut p = Pcap::new();
    let client: IpAddr = "192.168.20.5".parse().unwrap();
    let dns: (IpAddr, u16) = ("192.0.2.53".parse().unwrap(), 53);
    // (server, expected tool, expected method, what)
    let mut expected: Vec<((IpAddr, u16), String, &str, String)> = Vec::new();
    let mut n = 0u32;
    let next_server = |n: &mut u32, port: u16| -> (IpAddr, u16) {
        *n += 1;
        (
            format!("198.18.{}.{}", *n / 200, *n % 200 + 1)
                .parse()
                .unwrap(),
            port,
        )
    };
    let mut dns_port = 30000u16;
    let mut dns_expected: Vec<(u16, String, String)> = Vec::new();
    let mut skipped = Vec::new();
    for t in &sample {
        if let Some((value, how)) = &t.domain {
            let host = host_for(value, how);
            let Some(owner) = catalog_owner(&host) else {
                skipped.push(format!("{}: {host} has no owner", t.id));
                continue;
            };
            if owner != t.id {
                // Another tool claims a more specific name: the catalogue says which.
                eprintln!("{}: {host} belongs to {owner}", t.id);
            }
            let s = next_server(&mut n, 443);
            let mut c = Tcp::new((client, 20000 + n as u16), s);
            c.handshake(&mut p);
            c.client_send(
                &mut p,
                &support::client_hello(&Hello {
                    sni: Some(&host),
                    alpn: &["h2", "http/1.1"],
                    ..Hello::default()
                }),
            );
            c.close(&mut p);
            expected.push((s, owner.clone(), "tls_sni", host.clone()));
            dns_port += 1;
            p.udp(
                (client, dns_port),
                dns,
                &support::dns_query(dns_port, &host),
            );
            dns_expected.push((dns_port, owner, host));
        }
        if let Some(port) = t.tcp_port {
            let what = format!("{port}/tcp");
            let owner = catalog_owner(&what).expect("a catalogued port has an owner");
            let s = next_server(&mut n, port);
            let mut c = Tcp::new((client, 20000 + n as u16), s);
            c.syn(&mut p);
            expected.push((s, owner, "port", what));
        }
    }
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(expected.len() >= 50);

    let dir = common::tempdir();
    let path = dir.path().join("catalog.pcap");
    p.save(&path);
    let events = common::analyze_events(&path, &[]);
    let mut failures = Vec::new();
    let mut by_tool: BTreeMap<String, u32> = BTreeMap::new();
    for (s, tool, method, what) in &expected {
        let evs = support::events_to(&events, *s);
        let got: Vec<(String, String)> = evs.iter().map(|e| support::tool_method(e)).collect();
        if got != [(tool.clone(), method.to_string())] {
            failures.push(format!(
                "{what} to {s:?}: expected {tool} by {method}, got {got:?}"
            ));
        } else {
            *by_tool.entry(tool.clone()).or_default() += 1;
        }
    }
    for (port, tool, host) in &dns_expected {
        let evs: Vec<_> = events
            .iter()
            .filter(|e| e["src_port"].as_u64() == Some(*port as u64) && e["dest_port"] == 53)
            .collect();
        let got: Vec<(String, String)> = evs.iter().map(|e| support::tool_method(e)).collect();
        if got != [(tool.clone(), "dns_query".to_string())] {
            failures.push(format!("DNS {host}: expected {tool}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} flows misattributed:\n{}",
        failures.len(),
        expected.len() + dns_expected.len(),
        failures.join("\n")
    );
    assert!(
        by_tool.len() >= 50,
        "only {} tools attributed",
        by_tool.len()
    );
    println!(
        "{} tools sampled, {} flows, {} tools attributed",
        sample.len(),
        expected.len() + dns_expected.len(),
        by_tool.len()
    );
}

#[test]
fn shared_infrastructure_is_not_flagged() {
    let names = [
        "foo.blob.core.windows.net",
        "s3.amazonaws.com",
        "www.google.com",
        "d111111abcdef8.cloudfront.net",
        "storage.googleapis.com",
    ];
    let mut p = Pcap::new();
    let client: IpAddr = "192.168.20.6".parse().unwrap();
    let dns: (IpAddr, u16) = ("192.0.2.53".parse().unwrap(), 53);
    let mut servers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            catalog_owner(name),
            None,
            "{name} is claimed by the catalogue"
        );
        let s: (IpAddr, u16) = (format!("198.18.50.{}", i + 1).parse().unwrap(), 443);
        let mut c = Tcp::new((client, 21000 + i as u16), s);
        c.handshake(&mut p);
        c.client_send(
            &mut p,
            &support::client_hello(&Hello {
                sni: Some(name),
                ..Hello::default()
            }),
        );
        c.close(&mut p);
        servers.push(s);
        p.udp(
            (client, 31000 + i as u16),
            dns,
            &support::dns_query(i as u16, name),
        );
    }
    // Control: a catalogued name in the same capture is flagged.
    let ctl: (IpAddr, u16) = ("198.18.50.100".parse().unwrap(), 443);
    let mut c = Tcp::new((client, 21100), ctl);
    c.handshake(&mut p);
    c.client_send(
        &mut p,
        &support::client_hello(&Hello {
            sni: Some("boot.net.anydesk.com"),
            ..Hello::default()
        }),
    );
    c.close(&mut p);
    let dir = common::tempdir();
    let path = dir.path().join("shared.pcap");
    p.save(&path);
    let events = common::analyze_events(&path, &[]);
    for s in &servers {
        assert!(support::events_to(&events, *s).is_empty(), "{s:?} flagged");
    }
    assert!(events.iter().all(|e| e["dest_port"] != 53), "{events:#?}");
    let ctl_ev = support::events_to(&events, ctl);
    assert_eq!(ctl_ev.len(), 1);
    assert_eq!(
        support::tool_method(ctl_ev[0]),
        ("anydesk".to_string(), "tls_sni".to_string())
    );
}
