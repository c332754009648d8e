//! `rmmguard audit`: the inventory per internal host, in every format, and the HTML report
//! rendered by a real browser (Debian's headless Chromium).

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const POLICY: &str = r#"
[[allow]]
name = "helpdesk-anydesk"
tool = "anydesk"
sources = ["192.168.1.187/32"]
"#;

fn remote_access() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(common::corpus().join("remote-access"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    v.sort();
    v
}

fn audit(extra: &[&str], caps: &[String]) -> std::process::Output {
    let mut args = vec!["audit"];
    args.extend_from_slice(extra);
    args.extend(caps.iter().map(|s| s.as_str()));
    common::run(&args)
}

/// Flows, actions and evidence of one (host, tool) in the events.
type Seen = (u64, BTreeSet<String>, BTreeSet<String>);

fn ip(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

#[test]
fn audit_agrees_with_the_events() {
    let dir = common::tempdir();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.display().to_string();
    let caps = remote_access();
    let out = audit(&["--policy", &policy, "--format", "json"], &caps);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("audit JSON");
    let rows = report["rows"].as_array().unwrap();

    // What the events say: (internal host, tool) -> (flows, actions, evidence).
    let mut want: BTreeMap<(String, String), Seen> = BTreeMap::new();
    for c in &caps {
        for e in common::analyze_events(Path::new(c), &["--policy", &policy]) {
            let tool = e["rmm"]["tool"].as_str().unwrap().to_string();
            let dir = e["direction"].as_str().unwrap();
            let dns = e["rmm"]["method"] == "dns_query";
            let mut hosts = Vec::new();
            match dir {
                "outbound" | "external" => hosts.push(ip(&e["src_ip"])),
                "inbound" if !dns => hosts.push(ip(&e["dest_ip"])),
                "internal" => {
                    hosts.push(ip(&e["src_ip"]));
                    if !dns {
                        hosts.push(ip(&e["dest_ip"]));
                    }
                }
                _ => {}
            }
            for h in hosts {
                let w = want.entry((h, tool.clone())).or_default();
                w.0 += 1;
                w.1.insert(e["alert"]["action"].as_str().unwrap().to_string());
                w.2.insert(e["rmm"]["evidence"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(!want.is_empty());
    let got: BTreeMap<(String, String), &Value> = rows
        .iter()
        .map(|r| ((ip(&r["host"]), ip(&r["tool"])), r))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "audit rows and events disagree on (host, tool)"
    );
    for (k, (flows, actions, evidence)) in &want {
        let r = got[k];
        assert_eq!(r["flows"].as_u64(), Some(*flows), "{k:?}");
        let blocked = actions.contains("blocked");
        let passed = actions.contains("allowed");
        let verdict = r["verdict"].as_str().unwrap();
        match (blocked, passed) {
            (true, false) => assert_eq!(verdict, "blocked", "{k:?}"),
            (true, true) => assert_eq!(verdict, "partly blocked", "{k:?}"),
            _ => assert!(verdict.starts_with("allowed"), "{k:?}: {verdict}"),
        }
        for ev in evidence {
            assert!(
                r["evidence"].as_array().unwrap().iter().any(|x| x == ev),
                "{k:?}: evidence {ev} missing"
            );
        }
        assert!(r["first_ns"].as_u64() <= r["last_ns"].as_u64());
        assert!(r["bytes"].as_u64().unwrap() > 0);
    }
    // The helpdesk PC's AnyDesk lookups are allowed by its rule; another host's AnyDesk is not.
    let helpdesk = got[&("192.168.1.187".to_string(), "anydesk".to_string())];
    assert!(helpdesk["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "helpdesk-anydesk"));
    assert_eq!(
        got[&("192.168.149.129".to_string(), "anydesk".to_string())]["verdict"],
        "blocked"
    );
    assert!(report["hosts"].as_u64().unwrap() > 5);

    // The table and the CSV hold the same rows.
    let table = audit(&["--policy", &policy], &caps);
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    for (host, tool) in want.keys() {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(host.as_str()) && l.contains(tool.as_str())),
            "table lacks {host} {tool}:\n{table}"
        );
    }
    let csv = audit(&["--policy", &policy, "--format", "csv"], &caps);
    assert!(csv.status.success());
    let csv = String::from_utf8_lossy(&csv.stdout);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("host,home,tool,"));
    assert_eq!(lines.count(), rows.len());
}

#[test]
fn audit_of_benign_traffic_finds_no_tool() {
    let dir = common::corpus().join("benign");
    let caps: Vec<String> = ["443-curl.pcap", "chrome.pcap", "firefox.pcap"]
        .iter()
        .map(|c| dir.join(c).display().to_string())
        .collect();
    let out = audit(&["--format", "json"], &caps);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["flows"].as_u64().unwrap() > 0);
    assert_eq!(report["rows"].as_array().unwrap().len(), 0);
    let out = audit(&[], &caps);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No remote-access tool seen."));
}

#[test]
fn audit_bad_input_is_a_one_line_error() {
    let dir = common::tempdir();
    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();
    let missing = dir.path().join("missing.pcap");
    for f in [&garbage, &missing] {
        let out = common::run(&["audit", f.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(f.to_str().unwrap()) && !err.contains("panicked"),
            "{err}"
        );
    }
    let cap = common::corpus().join("remote-access/rdp.pcap");
    let out = common::run(&[
        "audit",
        "--html",
        "/nonexistent-dir/report.html",
        cap.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent-dir/report.html"), "{err}");
}

fn chromium() -> Option<&'static str> {
    for c in ["chromium", "chromium-browser"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {c}"))
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c);
        }
    }
    assert!(
        !common::must_not_skip(),
        "chromium is not installed (scripts/deps.sh test installs it), and CI=true"
    );
    eprintln!("SKIPPED: chromium is not installed (run scripts/deps.sh test)");
    None
}

/// Counts `needle` in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let dir = common::tempdir();
    let html = dir.path().join("audit.html");
    let caps = remote_access();
    let out = audit(
        &["--format", "json", "--html", html.to_str().unwrap()],
        &caps,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing is fetched.
    for remote in ["http://", "https://", "src=", "<link"] {
        let n = page.matches(remote).count();
        let allowed = if remote == "http://" { 1 } else { 0 }; // the SVG namespace
        assert!(n <= allowed, "the page refers to {remote}");
    }

    let profile = dir.path().join("profile");
    let shot = dir.path().join("shot.png");
    let url = format!("file://{}", html.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1000",
    ];
    let run = |extra: &[&str]| {
        let o = Command::new(browser)
            .args(base)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(
            o.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let dom = String::from_utf8_lossy(&run(&["--dump-dom"]).stdout).into_owned();
    assert!(
        dom.contains("<table id=\"inventory\""),
        "no table in the rendered DOM"
    );
    assert_eq!(count(&dom, "<tr class=\"row\""), rows.len());
    for r in rows {
        assert!(
            dom.contains(&format!("data-host=\"{}\"", r["host"].as_str().unwrap())),
            "row for {} missing",
            r["host"]
        );
    }
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "no chart in the rendered DOM"
    );
    // One bar segment per (bucket, tool) with flows; their flows add up to the tool flows.
    let mut bar_flows = 0u64;
    for seg in dom.split("<rect class=\"bar\"").skip(1) {
        let v = seg
            .split("data-flows=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<u64>().ok())
            .expect("bar without data-flows");
        bar_flows += v;
    }
    assert_eq!(bar_flows, report["tool_flows"].as_u64().unwrap());
    let tools: BTreeSet<&str> = rows.iter().map(|r| r["tool"].as_str().unwrap()).collect();
    assert_eq!(count(&dom, "<g class=\"legend\""), tools.len());
    assert!(dom.contains(&format!("<span id=\"n-hosts\">{}</span>", report["hosts"])));

    run(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}
