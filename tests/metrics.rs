//! The metrics endpoint, scraped by a real Prometheus (Debian's `prometheus` package), checked by
//! `promtool`, and its HTTP server's routes and limits.

mod common;

use rmmguard::engine::{learned::Learned, Config, ConfigHandle};
use rmmguard::output::metrics::{self, Hub, MAX_CONNECTIONS};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether `tool` is installed; under CI its absence fails the test.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !common::must_not_skip(),
            "{tool} is not installed (scripts/deps.sh test installs it), and CI=true"
        );
        eprintln!("SKIPPED: {tool} is not installed (run scripts/deps.sh test)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps a child process we started when the test ends, however it ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A raw HTTP exchange: sends `request` as is, returns (status, headers, body).
fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    exchange(
        addr,
        // HTTP/1.0, so that Prometheus answers without chunked encoding.
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Polls `f` every 250 ms until it gives a value; fails after `limit` naming what it waited for.
/// (A bounded wait for a service to come up, not a timing assertion.)
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "gave up waiting {limit:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs an instant query against Prometheus; the result vector.
fn query(prom: SocketAddr, q: &str) -> Vec<Value> {
    let (status, _, body) =
        get(prom, &format!("/api/v1/query?query={}", urlencode(q))).expect("query Prometheus");
    assert_eq!(status, 200, "query {q}: {body}");
    let v: Value = serde_json::from_str(&body).expect("Prometheus JSON");
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The single value of a query that returns one sample, if it does.
fn scalar(prom: SocketAddr, q: &str) -> Option<f64> {
    let r = query(prom, q);
    r.first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

const POLICY: &str = r#"
# AnyDesk is authorised for the helpdesk PC only.
[[allow]]
name = "helpdesk-anydesk"
tool = "anydesk"
sources = ["192.168.1.187/32"]
"#;

fn captures() -> Vec<String> {
    ["anydesk.pcapng", "teamviewer.pcap", "rdp.pcap", "vnc.pcap"]
        .iter()
        .map(|c| {
            common::corpus()
                .join("remote-access")
                .join(c)
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn real_prometheus_scrapes_rmmguard() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    let dir = common::tempdir();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.display().to_string();
    let caps = captures();

    // What analyze itself reports, for the same captures and policy.
    let mut args = vec!["analyze", "--format", "json", "--policy", &policy];
    args.extend(caps.iter().map(|s| s.as_str()));
    let out = common::run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    let packets = summary["packets"].as_u64().unwrap();
    let tool = |id: &str| {
        summary["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in the summary"))
    };
    let anydesk_blocked = tool("anydesk")["blocked"].as_u64().unwrap();
    let teamviewer_blocked = tool("teamviewer")["blocked"].as_u64().unwrap();
    assert!(anydesk_blocked > 0 && teamviewer_blocked > 0);
    let mut unauthorised = 0u64;
    for c in &caps {
        for e in common::analyze_events(Path::new(c), &["--policy", &policy]) {
            if e["rmm"]["tool"] == "anydesk" && e["rmm"]["policy"] == "default" {
                unauthorised += 1;
            }
        }
    }
    assert!(
        unauthorised > 0,
        "the corpus has AnyDesk outside the helpdesk PC"
    );

    // Prometheus, configured from deploy/prometheus/prometheus.yml.
    let mport = free_port();
    let pport = free_port();
    let deploy = common::root().join("deploy/prometheus");
    let mut cfg = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
    for (from, to) in [
        ("127.0.0.1:9977", format!("127.0.0.1:{mport}")),
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_string(),
        ),
        (
            "- rules.yml",
            format!("- {}", deploy.join("rules.yml").display()),
        ),
    ] {
        assert!(cfg.contains(from), "prometheus.yml has no '{from}'");
        cfg = cfg.replace(from, &to);
    }
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Reap(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom: SocketAddr = format!("127.0.0.1:{pport}").parse().unwrap();
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let start = Instant::now();
    while !get(prom, "/-/ready").is_ok_and(|r| r.0 == 200) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Prometheus did not become ready: {}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // rmmguard replays the captures and keeps serving its metrics.
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let mut args: Vec<String> = vec![
        "analyze".into(),
        "--policy".into(),
        policy.clone(),
        "--metrics".into(),
        maddr.to_string(),
        "--metrics-linger".into(),
        "120".into(),
    ];
    args.extend(caps.iter().cloned());
    let _rmm = Reap(
        Command::new(common::bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rmmguard"),
    );

    // Our own scrape passes promtool's checks.
    let body = wait_for("rmmguard's /metrics", Duration::from_secs(60), || {
        get(maddr, "/metrics")
            .ok()
            .filter(|r| r.0 == 200)
            .map(|r| r.2)
    });
    let mut pt = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    pt.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let pto = pt.wait_with_output().unwrap();
    let lint = format!(
        "{}{}",
        String::from_utf8_lossy(&pto.stdout),
        String::from_utf8_lossy(&pto.stderr)
    );
    assert!(
        pto.status.success() && lint.trim().is_empty(),
        "promtool check metrics: {lint}"
    );

    // Prometheus has scraped the final counters.
    let limit = Duration::from_secs(90);
    wait_for("rmmguard series in Prometheus", limit, || {
        scalar(prom, "sum(rmmguard_packets_total)").filter(|v| *v > 0.0)
    });
    assert_eq!(
        scalar(prom, "sum(rmmguard_packets_total)"),
        Some(packets as f64)
    );
    assert_eq!(
        scalar(prom, "sum(rmmguard_bytes_total)"),
        summary["bytes"].as_f64()
    );
    assert_eq!(
        scalar(prom, r#"sum(rmmguard_packets_total{verdict="drop"})"#),
        summary["packets_blocked"].as_f64()
    );
    assert_eq!(
        scalar(
            prom,
            r#"sum(rmmguard_flows_total{tool="anydesk",action="block"})"#
        ),
        Some(anydesk_blocked as f64)
    );
    assert_eq!(
        scalar(
            prom,
            r#"sum(rmmguard_flows_total{tool="teamviewer",action="block"})"#
        ),
        Some(teamviewer_blocked as f64)
    );
    assert_eq!(
        scalar(
            prom,
            r#"sum(rmmguard_unauthorised_flows_total{tool="anydesk"})"#
        ),
        Some(unauthorised as f64)
    );
    // The allowed helpdesk flows are counted with action="allow", and are not unauthorised.
    assert!(scalar(
        prom,
        r#"sum(rmmguard_flows_total{tool="anydesk",action="allow"})"#
    )
    .is_some_and(|v| v > 0.0));
    let info = query(prom, "rmmguard_config_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(
        info[0]["metric"]["policy_version"],
        summary["policy_version"]
    );
    assert_eq!(
        info[0]["metric"]["catalog_version"],
        summary["catalog_version"]
    );
    assert_eq!(
        scalar(prom, "rmmguard_config_last_reload_success"),
        Some(1.0)
    );
    assert_eq!(scalar(prom, r#"up{job="rmmguard"}"#), Some(1.0));
    assert!(scalar(prom, "rmmguard_inspection_duration_seconds_count").is_some_and(|v| v > 0.0));
    assert!(!query(prom, "rmmguard_top_host_flows_total").is_empty());

    // The alert rules from deploy/ fire on what was blocked.
    let alerts = wait_for("the blocked and unauthorised alerts", limit, || {
        let (_, _, body) = get(prom, "/api/v1/alerts").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let list = v["data"]["alerts"].as_array()?.clone();
        let firing = |name: &str| {
            list.iter().any(|a| {
                a["labels"]["alertname"] == name
                    && a["labels"]["tool"] == "anydesk"
                    && a["state"] == "firing"
            })
        };
        (firing("RmmConnectionBlocked") && firing("RmmAuthorisedToolOutsideAllowedSources"))
            .then_some(list)
    });
    // Nothing failed open, overflowed or failed to reload.
    for quiet in [
        "RmmguardFailOpen",
        "RmmguardQueueDrops",
        "RmmguardReloadFailed",
    ] {
        assert!(
            !alerts.iter().any(|a| a["labels"]["alertname"] == quiet),
            "{quiet} fired: {alerts:?}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool() {
    if !have("promtool") {
        return;
    }
    let deploy = common::root().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules_test.yml"],
    ] {
        let o = Command::new("promtool")
            .args(&args)
            .current_dir(&deploy)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn hub_and_config() -> (Arc<Hub>, Arc<ConfigHandle>) {
    let catalog = rmmguard::catalog::Catalog::embedded().unwrap();
    let policy = rmmguard::policy::Policy::builtin(&catalog);
    (
        Arc::new(Hub::new(2)),
        ConfigHandle::new(Config {
            catalog: Arc::new(catalog),
            policy: Arc::new(policy),
        }),
    )
}

#[test]
fn endpoint_routes_and_refusals() {
    let (hub, cfg) = hub_and_config();
    let learned = Arc::new(Learned::new(16));
    let srv = metrics::serve(
        "127.0.0.1:0".parse().unwrap(),
        hub.clone(),
        cfg,
        Some(learned),
    )
    .expect("serve");
    let addr = srv.local_addr();

    let (st, head, body) = get(addr, "/metrics").unwrap();
    assert_eq!(st, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains("rmmguard_packets_total{verdict=\"pass\"} 0"),
        "{body}"
    );
    assert!(body.contains("rmmguard_config_last_reload_success 1"));

    // Counters published by a worker show up, summed over workers.
    let mut snap = metrics::WorkerSnapshot::default();
    snap.stats.passed = 5;
    snap.active_flows = 3;
    hub.publish(0, snap.clone());
    hub.publish(1, snap);
    Hub::add(&hub.fail_open, 7);
    let (_, _, body) = get(addr, "/metrics?x=1").unwrap();
    assert!(
        body.contains("rmmguard_packets_total{verdict=\"pass\"} 10"),
        "{body}"
    );
    assert!(body.contains("rmmguard_flows_active 6"));
    assert!(body.contains("rmmguard_fail_open_packets_total 7"));
    hub.reloaded("x", "y", false);
    let (_, _, body) = get(addr, "/metrics").unwrap();
    assert!(body.contains("rmmguard_config_last_reload_success 0"));

    let (st, _, body) = get(addr, "/").unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("href=\"/metrics\""));
    let (st, head, body) = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(st, 200);
    assert!(head.contains("Content-Length: ") && body.is_empty());
    assert_eq!(get(addr, "/nope").unwrap().0, 404);
    assert_eq!(get(addr, "/metrics/../etc/passwd").unwrap().0, 404);
    assert_eq!(
        exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .0,
        405
    );
    assert_eq!(exchange(addr, b"HELLO\r\n\r\n").unwrap().0, 400);
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 16 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    // The server answers 431 and closes after reading its 8 KiB cap; the rest of what we sent may
    // reset the connection before we read the answer, which is a refusal too.
    match exchange(addr, &big) {
        Ok((st, _, _)) => assert_eq!(st, 431),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }

    // Connections beyond the limit are closed at once; served again once others leave.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut extra = TcpStream::connect(addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut buf = Vec::new();
    let _ = extra.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "a connection over the limit was served"
    );
    drop(idle);
    wait_for("a free connection slot", Duration::from_secs(30), || {
        get(addr, "/metrics").ok().filter(|r| r.0 == 200)
    });

    srv.stop();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err(),
        "still listening after stop"
    );
}

#[test]
fn slow_clients_are_cut_off() {
    let (hub, cfg) = hub_and_config();
    let srv = metrics::serve("127.0.0.1:0".parse().unwrap(), hub, cfg, None).expect("serve");
    let mut s = TcpStream::connect(srv.local_addr()).unwrap();
    // Half a request, then silence: the server must close the connection by itself.
    s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    s.set_read_timeout(Some(metrics::CLIENT_TIMEOUT * 6))
        .unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "unexpected answer: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "the server kept a silent client: {e}"
        ),
    }
}

#[test]
fn metrics_port_in_use_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let cap = common::corpus().join("remote-access/rdp.pcap");
    let out = common::run(&["analyze", "--metrics", &addr, cap.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    assert!(!err.contains("panicked"));
    assert!(out.stdout.is_empty(), "it ran anyway");
    // And a bad address is a usage error, not a panic.
    let out = common::run(&[
        "analyze",
        "--metrics",
        "localhost:notaport",
        cap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
