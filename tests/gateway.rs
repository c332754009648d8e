//! End-to-end tests of `rmmguard inline` and `rmmguard monitor` on a gateway: three network
//! namespaces (client <-> gateway <-> server over veth, `tests/netns/topo.sh`), the kernel rules
//! of `deploy/gateway-rules.sh`, real clients and servers (curl, openssl s_server, dnsmasq, and
//! the small Python probes of `tests/netns/probe.py`).
//!
//! Every command runs through `ip netns exec` in the test's own namespaces; the root namespace's
//! links and firewall are never touched. Each test's namespaces are named after the process id
//! and the test, so tests run side by side, and a guard tears everything down (processes,
//! rules, namespaces) even when the test fails.
//!
//! They need root. Without it they skip with a message, except under `CI=true`, where they fail.

mod common;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Calls `f` every `step_ms` until it returns `Ok`, and returns that; panics with its last `Err`
/// once `secs` seconds have passed.
fn poll<T>(secs: u64, step_ms: u64, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => assert!(t0.elapsed() < Duration::from_secs(secs), "{why}"),
        }
        std::thread::sleep(Duration::from_millis(step_ms));
    }
}

const CLIENT: &str = "10.201.1.2";
const SERVER: &str = "10.201.2.2";

/// Whether the privileged tests can run here; panics under CI when they cannot.
fn can_run() -> bool {
    let mut missing = Vec::new();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        missing.push("root".to_string());
    }
    for tool in [
        "ip", "nft", "iptables", "openssl", "curl", "dnsmasq", "python3", "ss",
    ] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "gateway tests need {} (scripts/deps.sh test installs the tools; run as root)",
        missing.join(", ")
    );
    if common::must_not_skip() {
        panic!("CI=true and {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

fn script(rel: &str) -> String {
    common::root().join(rel).to_string_lossy().into_owned()
}

/// One test's topology and everything started in it.
struct Gw {
    name: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    inline: Option<Child>,
    /// A command that `start_inline` runs rmmguard under (e.g. setpriv).
    inline_prefix: Vec<String>,
}

impl Gw {
    fn new(tag: &str) -> Option<Gw> {
        if !can_run() {
            return None;
        }
        let name = format!("r{}{}", std::process::id() % 1_000_000, tag);
        let out = Command::new(script("tests/netns/topo.sh"))
            .args(["up", &name])
            .output()
            .expect("run topo.sh");
        assert!(
            out.status.success(),
            "topo.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let g = Gw {
            name,
            dir: common::tempdir(),
            children: Vec::new(),
            inline: None,
            inline_prefix: Vec::new(),
        };
        // Certificate and the file the allowed clients download.
        let d = g.dir.path();
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=rmmguard-test",
            ])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem"))
            .output()
            .expect("openssl req");
        assert!(out.status.success(), "openssl req failed");
        let mut body = Vec::with_capacity(300_000);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push(x as u8);
        }
        std::fs::write(d.join("file.bin"), &body).unwrap();
        Some(g)
    }

    fn ns(&self, which: char) -> String {
        format!("{}-{which}", self.name)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn cmd(&self, which: char, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which)]).args(args);
        c.current_dir(self.dir.path());
        c
    }

    fn run(&self, which: char, args: &[&str]) -> Output {
        self.cmd(which, args).output().expect("ip netns exec")
    }

    fn spawn(&mut self, which: char, args: &[&str], log: &str) {
        let f = std::fs::File::create(self.path(log)).unwrap();
        let c = self
            .cmd(which, args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn");
        self.children.push(c);
    }

    /// Starts `probe.py banner` on `port` in the server namespace (sends the bytes `banner_hex`
    /// on each connection, then echoes) and waits until it listens.
    fn banner_server(&mut self, port: u16, banner_hex: &str) {
        let p = script("tests/netns/probe.py");
        let port_s = port.to_string();
        self.spawn(
            's',
            &["python3", &p, "banner", &port_s, banner_hex],
            &format!("banner-{port}.log"),
        );
        self.wait_listen('s', port, false);
    }

    /// Puts the queue rules up on queues 0-1 and starts rmmguard inline on them with
    /// [`OUTBOUND_POLICY`]; returns the policy file's path (to start rmmguard again).
    fn inline_outbound(&mut self) -> String {
        self.rules(&["up", "--queues", "0-1"]);
        let pol = self.policy(OUTBOUND_POLICY);
        self.start_inline(&["--policy", &pol]);
        pol
    }

    /// Waits until something listens on `port` in the server namespace.
    fn wait_listen(&self, which: char, port: u16, udp: bool) {
        let flag = if udp { "-Hlun" } else { "-Hltn" };
        let filter = format!("sport = :{port}");
        poll(20, 50, || {
            let o = self.run(which, &["ss", flag, &filter]);
            if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
                Err(format!(
                    "nothing listens on port {port} in {}",
                    self.ns(which)
                ))
            } else {
                Ok(())
            }
        })
    }

    fn rules(&self, args: &[&str]) {
        let mut a = vec![script("deploy/gateway-rules.sh")];
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        let o = self.run('g', &a);
        assert!(
            o.status.success(),
            "gateway-rules.sh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The HTTPS server on 443 (threaded, so a connection the gateway refused, which stays
    /// half-open on the server, does not stall the next one as it would `openssl s_server`).
    fn tls_server(&mut self) {
        let p = script("tests/netns/probe.py");
        let dir = self.dir.path().to_string_lossy().into_owned();
        self.spawn(
            's',
            &["python3", &p, "https", "443", "cert.pem", "key.pem", &dir],
            "https.log",
        );
        self.wait_listen('s', 443, false);
    }

    fn policy(&self, text: &str) -> String {
        let p = self.path("policy.toml");
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    /// Starts `rmmguard inline` on the gateway and waits until its queues are bound.
    fn start_inline(&mut self, extra: &[&str]) {
        let pid = self.path("rmmguard.pid");
        let _ = std::fs::remove_file(&pid);
        let bin = common::bin().to_string_lossy().into_owned();
        let events = self.path("events.json").to_string_lossy().into_owned();
        let pid_s = pid.to_string_lossy().into_owned();
        let mut args: Vec<&str> = self.inline_prefix.iter().map(String::as_str).collect();
        args.extend([
            bin.as_str(),
            "inline",
            "--queues",
            "0-1",
            "--events",
            &events,
            "--pid-file",
            &pid_s,
        ]);
        args.extend_from_slice(extra);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("rmmguard.log"))
            .unwrap();
        let mut child = self
            .cmd('g', &args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn rmmguard");
        poll(30, 20, || {
            if pid.exists() {
                return Ok(());
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("rmmguard inline exited with {st}: {}", self.log());
            }
            Err(format!("rmmguard inline did not start: {}", self.log()))
        });
        self.inline = Some(child);
    }

    fn inline_pid(&self) -> u32 {
        self.inline.as_ref().expect("inline running").id()
    }

    fn kill9_inline(&mut self) {
        if let Some(mut c) = self.inline.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("rmmguard.log")).unwrap_or_default()
    }

    /// curl from the client to `https://HOST/file.bin`, HOST resolved to the server.
    fn curl(&self, host: &str) -> Output {
        let resolve = format!("{host}:443:{SERVER}");
        let url = format!("https://{host}/file.bin");
        let out = self.path(&format!("{host}.out"));
        let _ = std::fs::remove_file(&out);
        self.run(
            'c',
            &[
                "curl",
                "-sS",
                "-k",
                "--max-time",
                "5",
                "--resolve",
                &resolve,
                "-o",
                &out.to_string_lossy(),
                &url,
            ],
        )
    }

    fn assert_download_exact(&self, host: &str) {
        let o = self.curl(host);
        assert!(
            o.status.success(),
            "curl {host} failed: {} (rmmguard log: {})",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        let got = std::fs::read(self.path(&format!("{host}.out"))).unwrap();
        let want = std::fs::read(self.path("file.bin")).unwrap();
        assert!(got == want, "{host}: the downloaded bytes differ");
    }

    fn assert_curl_reset(&self, host: &str) {
        let o = self.curl(host);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success(),
            "curl {host} succeeded through the gateway"
        );
        assert!(
            err.contains("reset by peer"),
            "curl {host}: expected a connection reset, got: {err}"
        );
    }

    /// Waits for an event for `tool` with `action`, and returns it.
    fn wait_event(&self, tool: &str, action: &str) -> serde_json::Value {
        poll(10, 50, || {
            let text = std::fs::read_to_string(self.path("events.json")).unwrap_or_default();
            common::events(&text)
                .into_iter()
                .find(|e| e["rmm"]["tool"] == tool && e["alert"]["action"] == action)
                .ok_or_else(|| format!("no '{action}' event for {tool}; events: {text}"))
        })
    }

    fn probe(&self, args: &[&str]) -> String {
        let p = script("tests/netns/probe.py");
        let mut a = vec!["python3", p.as_str()];
        a.extend_from_slice(args);
        let o = self.run('c', &a);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The metrics exposition of the rmmguard started with `--metrics 127.0.0.1:9977` (served
    /// on the gateway namespace's loopback).
    fn metrics_text(&self) -> String {
        let url = "http://127.0.0.1:9977/metrics";
        let o = self.run('g', &["curl", "-sS", "--max-time", "5", url]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `iptables -t security -L -v -n -x` on the gateway: every chain of the table that holds
    /// rmmguard's queue rules.
    fn counters(&self) -> String {
        self.listing("security", None)
    }

    /// `iptables -t TABLE -L [CHAIN] -v -n -x` on the gateway.
    fn listing(&self, table: &str, chain: Option<&str>) -> String {
        let mut a = vec!["iptables", "-t", table, "-L"];
        a.extend(chain);
        a.extend(["-v", "-n", "-x"]);
        String::from_utf8_lossy(&self.run('g', &a).stdout).into_owned()
    }

    /// The packets counted by rmmguard's IPv4 rules whose line contains `pat`, added up.
    fn counter(&self, pat: &str) -> u64 {
        packets(&self.counters(), pat)
    }

    /// Waits (up to 3 s) until no TCP connection on local port `port` is established in `which`.
    fn assert_no_established(&self, which: char, port: u16) {
        let filter = format!("sport = :{port}");
        poll(3, 100, || {
            let o = self.run(which, &["ss", "-Htn", "state", "established", &filter]);
            let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if text.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "connections still established on port {port} in {}: {text}",
                    self.ns(which)
                ))
            }
        })
    }

    fn ruleset(&self) -> String {
        let mut s = String::new();
        for c in ["iptables-save", "ip6tables-save"] {
            let o = self.run('g', &[c]);
            s += &String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
        }
        s += &String::from_utf8_lossy(&self.run('g', &["nft", "list", "ruleset"]).stdout);
        s
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.kill9_inline();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns('g'),
                &script("deploy/gateway-rules.sh"),
                "down",
            ])
            .output();
        let _ = Command::new(script("tests/netns/topo.sh"))
            .args(["down", &self.name])
            .output();
        // The namespaces are gone.
        if let Ok(o) = Command::new("ip").args(["netns", "list"]).output() {
            let l = String::from_utf8_lossy(&o.stdout);
            if l.lines().any(|x| x.starts_with(&format!("{}-", self.name)))
                && !std::thread::panicking()
            {
                panic!("namespaces of {} left behind: {l}", self.name);
            }
        }
    }
}

const OUTBOUND_POLICY: &str = r#"
home_networks = ["10.201.1.0/24", "fd00:201:1::/64"]

[[allow]]
name = "acme-tenant"
tool = "screenconnect"
hosts = ["acme.screenconnect.com"]
"#;

/// The packets counted by the rules of an `iptables -L -v -x` listing whose line contains `pat`,
/// added up.
fn packets(listing: &str, pat: &str) -> u64 {
    listing
        .lines()
        .filter(|l| l.contains(pat))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn rules_up_down_restores_the_ruleset() {
    let Some(g) = Gw::new("ru") else { return };
    // Something of the operator's own, which must survive.
    assert!(g
        .run(
            'g',
            &["iptables", "-A", "INPUT", "-s", "192.0.2.9", "-j", "DROP"]
        )
        .status
        .success());
    let before = g.ruleset();
    let acct = || {
        let o = g.run('g', &["sysctl", "-n", "net.netfilter.nf_conntrack_acct"]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    for args in [
        &["up", "--queues", "0-3"][..],
        &[
            "up",
            "--queues",
            "2",
            "--fail-closed",
            "--hooks",
            "forward,input,output",
        ][..],
        &["up", "--drop", "--budget", "8"][..],
        &["up", "--tcp-queue", "all", "--tcp-budget", "20000"][..],
    ] {
        g.rules(args);
        let up = g.ruleset();
        assert!(up.contains("NFQUEUE"), "no queue rule after {args:?}: {up}");
        // Without a packet budget nothing asks conntrack to count packets: no accounting
        // extension on every connection, for every packet to update. (A budget turns it on for
        // the namespace; `down` turns it off again.)
        let budget = args.iter().any(|a| a.ends_with("budget"));
        assert_eq!(acct(), if budget { "1" } else { "0" }, "{args:?}");
        // The exemptions of empty segments (RETURN in RMMGUARD_TCP), unless every TCP packet is
        // queued.
        assert_eq!(
            up.contains("-A RMMGUARD_TCP -p tcp -m length"),
            !args.contains(&"all"),
            "{args:?}: {up}"
        );
        assert!(up.contains("rmm_learned4"));
        assert_eq!(
            up.contains("--queue-bypass"),
            !args.contains(&"--fail-closed")
        );
        let mode = g.run('g', &[&script("deploy/gateway-rules.sh"), "fail-mode"]);
        let want = if args.contains(&"--fail-closed") {
            "fail-closed"
        } else {
            "fail-open"
        };
        assert_eq!(
            String::from_utf8_lossy(&mode.stdout).trim(),
            want,
            "{args:?}"
        );
        // A second `up` is refused rather than stacking rules.
        let again = g.run('g', &[&script("deploy/gateway-rules.sh"), "up"]);
        assert!(!again.status.success());
        g.rules(&["down"]);
        assert_eq!(
            g.ruleset(),
            before,
            "down after {args:?} left a different ruleset"
        );
        // And conntrack's accounting is off again.
        assert_eq!(acct(), "0", "after down, {args:?}");
    }
}

/// rmmguard only ever adds refusals: the gateway's own firewall keeps the last word over every
/// packet rmmguard passes, whether rmmguard read it (queued), decided its flow (carried by the
/// kernel), or was not there to read it (fail-open). The queue rules live in iptables' security
/// table, where an ACCEPT, the queue's own included, ends only that table's chain; beside the
/// site's rules in the filter table, such a packet skipped the rest of the site's chain.
#[test]
fn the_gateways_own_firewall_keeps_the_last_word() {
    let Some(mut g) = Gw::new("fw") else { return };
    g.banner_server(8080, "68656c6c6f");
    // An echo server that sends no banner first.
    g.banner_server(8081, "");
    // The site's firewall, there before rmmguard: no TCP to 8080, no UDP to 9999, and no TCP
    // segment of 1000 bytes or more to 8081.
    let site_rules: [&[&str]; 3] = [
        &["-p", "tcp", "--dport", "8080"],
        &["-p", "udp", "--dport", "9999"],
        &[
            "-p",
            "tcp",
            "--dport",
            "8081",
            "-m",
            "length",
            "--length",
            "1000:65535",
        ],
    ];
    for r in site_rules {
        let mut args = vec!["iptables", "-A", "FORWARD"];
        args.extend(r);
        args.extend(["-j", "DROP"]);
        assert!(g.run('g', &args).status.success(), "{args:?}");
    }
    // The packets the site's rule whose line contains `pat` dropped.
    let site = |g: &Gw, pat: &str| -> u64 {
        let listing = g.listing("filter", Some("FORWARD"));
        assert!(
            listing.contains(pat),
            "no site rule with '{pat}': {listing}"
        );
        packets(&listing, pat)
    };
    g.inline_outbound();
    let big = "78".repeat(1200);
    for round in ["rmmguard inline", "rmmguard killed (fail-open)"] {
        // A flow the site allows passes. Its first bytes come back (the packet that carries them
        // also decides the flow: the server acknowledged what rmmguard read); the next segment,
        // which the site drops by its length, does not.
        let before = site(&g, "length 1000:65535");
        let o = g.probe(&[
            "connect", SERVER, "8081", "--send", "6869", "--then", &big, "--wait", "2",
        ]);
        assert!(
            o.starts_with("connect ok\nrecv 6869\nrecv timeout"),
            "{round}: the site's length rule did not hold on port 8081: {o}"
        );
        assert!(site(&g, "length 1000:65535") > before, "{round}: {o}");
        if round == "rmmguard inline" {
            // The segment was dropped after rmmguard had decided the flow (the kernel carried
            // it, past rmmguard's queue).
            let ct = g.run('g', &["cat", "/proc/net/nf_conntrack"]);
            let ct = String::from_utf8_lossy(&ct.stdout).into_owned();
            assert!(
                ct.lines()
                    .any(|l| l.contains("dport=8081 ") && l.contains(" mark=1 ")),
                "the flow to 8081 was not decided: {ct}"
            );
        }
        // A flow the site drops does not get through.
        let before = site(&g, "dpt:8080");
        let o = g.probe(&["connect", SERVER, "8080", "--wait", "2"]);
        assert!(
            o.starts_with("connect timeout"),
            "{round}: the site's rule for port 8080 was skipped: {o}"
        );
        assert!(site(&g, "dpt:8080") > before, "{round}");
        // Twenty datagrams, each from its own socket (a new flow, queued while rmmguard runs),
        // all dropped by the site's rule.
        let before = site(&g, "dpt:9999");
        let o = g.probe(&["udpflood", SERVER, "9999", "20", "1000"]);
        assert!(o.contains("sent 20"), "{o}");
        assert_eq!(site(&g, "dpt:9999") - before, 20, "{round}");
        g.kill9_inline();
    }
    // While it ran, packets went through its queue.
    assert!(g.counter("NFQUEUE") > 0, "{}", g.counters());
}

/// The native nftables backend, for kernels with the nftables `queue` statement (this one may
/// lack it: then the check loads the rules with each queue statement made an `accept`, and the
/// rest as they are). For each kind of options, the table `print --backend nft` writes loads in
/// the kernel (`nft -c`), and deploy/nftables.conf is that table for queues 0-3, comments and
/// blank lines aside.
#[test]
fn the_native_nftables_rules_load_and_deploy_nftables_conf_matches_them() {
    let Some(g) = Gw::new("nv") else { return };
    let rules = script("deploy/gateway-rules.sh");
    let check = |text: &str| -> Output {
        let path = g.path("check.nft");
        std::fs::write(&path, text).unwrap();
        g.run('g', &["nft", "-c", "-f", path.to_str().unwrap()])
    };
    let has_queue = check("table inet rmmguard_probe {\n chain c {\n  queue num 0 bypass\n }\n}\n")
        .status
        .success();
    let print = |opts: &[&str]| -> String {
        let mut a = vec![rules.as_str(), "print", "--backend", "nft"];
        a.extend(opts);
        let o = g.run('g', &a);
        assert!(
            o.status.success(),
            "print {opts:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for opts in [
        &["--queues", "0-3"][..],
        &["--drop", "--fail-closed"][..],
        &["--hooks", "forward,input,output"][..],
        &[
            "--no-anti-spoof",
            "--budget",
            "8",
            "--tcp-budget",
            "100",
            "--tcp-queue",
            "all",
        ][..],
    ] {
        let mut text = print(opts);
        assert!(
            text.contains("queue num"),
            "{opts:?}: no queue rule: {text}"
        );
        if !has_queue {
            text = text
                .lines()
                .map(|l| match l.find("queue num") {
                    Some(i) => format!("{}accept", &l[..i]),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        let o = check(&text);
        assert!(
            o.status.success(),
            "{opts:?}: the kernel refused the native rules: {}\n{text}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let norm = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };
    let conf = std::fs::read_to_string(script("deploy/nftables.conf")).unwrap();
    assert_eq!(
        norm(&conf),
        norm(&print(&["--queues", "0-3"])),
        "deploy/nftables.conf differs from `gateway-rules.sh print --backend nft --queues 0-3`"
    );
}

#[test]
fn blocked_tls_sni_is_reset_and_allowed_traffic_passes_byte_for_byte() {
    let Some(mut g) = Gw::new("tl") else { return };
    g.tls_server();
    g.rules(&["up", "--queues", "0-1"]);
    let pol = g.policy(OUTBOUND_POLICY);
    g.start_inline(&["--policy", &pol, "--metrics", "127.0.0.1:9977"]);
    g.assert_curl_reset("relay.teamviewer.com");
    let e = g.wait_event("teamviewer", "blocked");
    assert_eq!(e["tls"]["sni"], "relay.teamviewer.com");
    // The server side is reset too: no connection from the client stays open on it, waiting for
    // a ClientHello that never comes.
    g.assert_no_established('s', 443);
    // The workers publish their counters (about once a second) to the metrics endpoint, which
    // listens on the gateway namespace's loopback.
    poll(10, 200, || {
        let body = g.metrics_text();
        let packets: f64 = body
            .lines()
            .filter(|l| l.starts_with("rmmguard_packets_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if packets > 0.0 {
            Ok(())
        } else {
            Err(format!("metrics: {body}"))
        }
    });
    assert_eq!(e["src_ip"], CLIENT);
    g.assert_download_exact("www.example.test");
    g.assert_download_exact("acme.screenconnect.com");
    let e = g.wait_event("screenconnect", "allowed");
    assert_eq!(e["rmm"]["policy"], "acme-tenant");
    // Another tenant of the same tool is not covered by the allow rule.
    g.assert_curl_reset("evil.screenconnect.com");
    // The allowed flows were carried by the kernel after the first packets: the queue saw far
    // fewer packets than the 300 kB transfers took.
    let queued = g.counter("NFQUEUE");
    let bypassed = g.counter("connmark match  0x1/0x3");
    assert!(
        bypassed > queued,
        "kernel bypass not used: {}",
        g.counters()
    );
}

#[test]
fn inline_keeps_only_cap_net_admin() {
    let Some(mut g) = Gw::new("cp") else { return };
    g.rules(&["up", "--queues", "0-1"]);
    g.start_inline(&[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", g.inline_pid())).unwrap();
    // `ip netns exec` execs rmmguard in place, so the child's pid is rmmguard's.
    assert!(status.contains("rmmguard"), "{status}");
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_string())
            .unwrap()
    };
    assert_eq!(field("CapEff:"), "0000000000001000", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000001000");
    assert_eq!(field("CapBnd:"), "0000000000001000");
    // Every thread, not only the main one.
    for t in std::fs::read_dir(format!("/proc/{}/task", g.inline_pid())).unwrap() {
        let s = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        assert!(s.contains("CapEff:\t0000000000001000"), "{s}");
    }
}

#[test]
fn dns_learned_address_without_sni_is_refused() {
    let Some(mut g) = Gw::new("dn") else { return };
    g.tls_server();
    g.spawn(
        's',
        &[
            "dnsmasq",
            "-k",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=10.201.2.2",
            "--user=root",
            "--pid-file",
            "--address=/boot.net.anydesk.com/10.201.2.2",
        ],
        "dnsmasq.log",
    );
    g.wait_listen('s', 53, true);
    g.inline_outbound();
    let answer = g.probe(&["dns", SERVER, "boot.net.anydesk.com"]);
    assert_eq!(answer.trim(), SERVER, "DNS answer through the gateway");
    // TLS to the bare address: no SNI, so only the learned address tells what it is.
    // curl over TLS to the answered address itself, with no name.
    let curl_bare = || {
        g.run(
            'c',
            &[
                "curl",
                "-sS",
                "-k",
                "--max-time",
                "5",
                "https://10.201.2.2/file.bin",
                "-o",
                "/dev/null",
            ],
        )
    };
    let o = curl_bare();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "TLS to the learned address passed");
    assert!(
        err.contains("reset by peer") || o.status.code() == Some(7),
        "expected a refusal, got: {err}"
    );
    // Refused either by rmmguard through the queue (an event) or already by the kernel's
    // learned-address set, which rmmguard fills in batches: check the set holds it in the end.
    poll(10, 100, || {
        let o = g.run(
            'g',
            &["nft", "list", "set", "inet", "rmmguard", "rmm_learned4"],
        );
        if String::from_utf8_lossy(&o.stdout).contains(SERVER) {
            Ok(())
        } else {
            Err(format!(
                "the learned address never reached the kernel set: {}",
                g.log()
            ))
        }
    });
    let o = curl_bare();
    let err = String::from_utf8_lossy(&o.stderr);
    // curl's exit status 7: the connection was refused (a reset answered the SYN).
    assert_eq!(
        o.status.code(),
        Some(7),
        "the kernel set did not refuse: {err}"
    );
    let text = std::fs::read_to_string(g.path("events.json")).unwrap_or_default();
    for e in common::events(&text) {
        if e["alert"]["action"] == "blocked" {
            assert_eq!(e["rmm"]["method"], "dns_learned_ip", "{e}");
        }
    }
}

#[test]
fn vnc_banner_on_443_is_blocked() {
    let Some(mut g) = Gw::new("vn") else { return };
    g.banner_server(443, &hex(b"RFB 003.008\n"));
    g.inline_outbound();
    let out = g.probe(&["connect", SERVER, "443", "--wait", "2"]);
    assert!(out.starts_with("connect ok"), "{out}");
    assert!(
        !out.contains(&hex(b"RFB")),
        "the VNC banner crossed the gateway: {out}"
    );
    // The server sent the refused packet, so the kernel's REJECT resets the server; the client,
    // which only waits, is reset by rmmguard at once (not after a timeout, nor only when it
    // next sends).
    assert_eq!(
        out.lines().nth(1),
        Some("recv reset"),
        "the waiting client was not reset at once: {out}"
    );
    g.wait_event("vnc", "blocked");
}

#[test]
fn connection_to_port_5938_is_refused() {
    let Some(mut g) = Gw::new("tv") else { return };
    g.banner_server(5938, &hex(b"hello"));
    // Without rmmguard the server answers.
    let out = g.probe(&["connect", SERVER, "5938"]);
    assert!(out.contains(&hex(b"hello")), "{out}");
    g.inline_outbound();
    let out = g.probe(&["connect", SERVER, "5938"]);
    assert!(out.starts_with("connect refused"), "{out}");
    let e = g.wait_event("teamviewer", "blocked");
    assert_eq!(e["rmm"]["method"], "port");
}

#[test]
fn inbound_rdp_to_a_home_server_is_blocked() {
    let Some(mut g) = Gw::new("rd") else { return };
    // X.224 connection confirm as the answer.
    g.banner_server(3389, "0300000b06d00000123400");
    g.rules(&["up", "--queues", "0-1"]);
    let pol = g.policy("home_networks = [\"10.201.2.0/24\"]\n");
    g.start_inline(&["--policy", &pol]);
    // TPKT + X.224 connection request with an RDP negotiation request.
    let cr = "030000130ee000000000000100080003000000";
    let out = g.probe(&["connect", SERVER, "3389", "--send", cr]);
    assert!(
        !out.contains("0300000b06d0"),
        "the RDP server answered: {out}"
    );
    assert!(out.contains("refused") || out.contains("reset"), "{out}");
    let e = g.wait_event("rdp", "blocked");
    assert_eq!(e["direction"], "inbound");
}

/// With the default `--tcp-queue payload`, the pure ACKs of undecided TCP flows stay in the
/// kernel, but every segment that carries a payload byte is queued, however small and however
/// many: a ClientHello sent one byte per segment is read whole and refused. And the engine does
/// not need the pure ACKs: short connections still end (FIN both ways) and are decided.
#[test]
fn pure_acks_stay_in_the_kernel_but_1_byte_segments_are_all_read() {
    let Some(mut g) = Gw::new("sg") else { return };
    let p = script("tests/netns/probe.py");
    g.spawn('s', &["python3", &p, "sink", "443"], "sink.log");
    g.banner_server(7000, "68656c6c6f");
    g.wait_listen('s', 443, false);
    g.inline_outbound();

    // Short connections (connect, read the banner, close): every one is decided when it ends
    // (conntrack mark 1 = allowed), though the kernel kept their pure ACKs.
    let o = g.run('c', &["python3", &p, "churn", SERVER, "7000", "20"]);
    assert!(
        o.status.success(),
        "churn failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = g.run('g', &["cat", "/proc/net/nf_conntrack"]);
    let ct = String::from_utf8_lossy(&o.stdout).into_owned();
    let flows: Vec<&str> = ct.lines().filter(|l| l.contains("dport=7000 ")).collect();
    assert_eq!(flows.len(), 20, "conntrack: {ct}");
    assert!(
        flows.iter().all(|l| l.contains(" mark=1 ")),
        "a short flow was left undecided: {ct}"
    );
    // (The exemptions are the RETURN lines with a u32 test.)
    let exempt = g.counter("u32 ");
    assert!(
        exempt > 0,
        "no pure ACK stayed in the kernel: {}",
        g.counters()
    );
    // The server's side of an undecided flow is queued whole, its pure ACKs included (they
    // tell the engine which client bytes the server took).
    let server_side = g.counter("ctdir REPLY");
    assert!(
        server_side > 0,
        "the server's packets were not queued: {}",
        g.counters()
    );

    // A ClientHello for a blocked tool, one byte per segment (far more packets than the old
    // 32-packet budget).
    let hello = support::client_hello(&support::Hello {
        sni: Some("relay.teamviewer.com"),
        ..support::Hello::default()
    });
    let queued_before = g.counter("NFQUEUE");
    let out = g.probe(&[
        "connect",
        SERVER,
        "443",
        "--send",
        &hex(&hello),
        "--segment",
    ]);
    let sent: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("sent ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'sent' line: {out}"));
    assert!(out.contains("reset"), "the flow was not refused: {out}");
    let e = g.wait_event("teamviewer", "blocked");
    assert_eq!(e["tls"]["sni"], "relay.teamviewer.com");
    // The SNI lies well inside the ClientHello, so it took many 1-byte segments to reach it,
    // and each of them went through the queue.
    assert!(sent > 100, "only {sent} bytes sent before the reset: {out}");
    let queued = g.counter("NFQUEUE") - queued_before;
    assert!(
        queued >= sent as u64,
        "{sent} one-byte segments but {queued} packets queued: {}",
        g.counters()
    );
}

/// Starts a gateway with rmmguard inline and a banner server on 443, then connects to it with a
/// ClientHello for relay.teamviewer.com and `probe.py connect ... TRICK ARG`: after 40 bytes the
/// client plays a trick from raw sockets, then sends the rest. Whatever the trick, the server
/// must never get the rest of the ClientHello. Returns the gateway (for its counters) and what
/// the client saw (None: the namespaces cannot be made here).
fn trick_mid_client_hello(tag: &str, trick: &str, arg: &str, done: &str) -> Option<(Gw, String)> {
    let mut g = Gw::new(tag)?;
    g.banner_server(443, "68656c6c6f");
    g.inline_outbound();
    let hello = support::client_hello(&support::Hello {
        sni: Some("relay.teamviewer.com"),
        ..support::Hello::default()
    });
    let out = g.probe(&[
        "connect",
        SERVER,
        "443",
        "--send",
        &hex(&hello),
        trick,
        arg,
        "--wait",
        "1",
    ]);
    assert!(out.contains(done), "no trick played: {out}");
    // The server echoes what it reads: the first 40 bytes, and nothing after them.
    assert!(
        !out.contains(&hex(&hello[40..60])),
        "the server got the rest of the ClientHello: {out}"
    );
    Some((g, out))
}

/// The flow was read whole and refused: the client got a reset and the event names the SNI.
fn assert_refused_by_sni(g: &Gw, out: &str) {
    assert!(out.contains("reset"), "the flow was not refused: {out}");
    let e = g.wait_event("teamviewer", "blocked");
    assert_eq!(e["tls"]["sni"], "relay.teamviewer.com");
}

/// A client host that forges its server's packets cannot make rmmguard forget the start of a
/// ClientHello. After the first 40 bytes it sends a SYN with a new sequence number on its
/// connection's ports (TTL 1: it dies at the gateway) and at once a SYN-ACK for it that claims
/// to come from the server (the gateway would route it straight back to the client): in the
/// engine's eyes the connection restarted, and the rest of the ClientHello would read as a
/// stream joined midway. With the rules of before, the ClientHello reached the server whole and
/// this test fails. The reverse-path check drops the forged SYN-ACK, which came in on the
/// client's side with the server's address, and counts it. Conntrack, which runs before that
/// check, may have taken the pair for a new start of the connection (it re-syncs on a SYN-ACK
/// that answers a SYN it ignored, depending on the random sequence numbers); the client's next
/// segments are then invalid to it and dropped, and the connection stalls. Otherwise the engine
/// reads the whole ClientHello and refuses the flow. Either way nothing more reaches the server.
#[test]
fn a_client_forging_its_servers_packets_gets_nothing_through() {
    let Some((g, out)) = trick_mid_client_hello("sp", "--spoof-after", "40", "spoofed") else {
        return;
    };
    if out.contains("reset") {
        assert_refused_by_sni(&g, &out);
    } else {
        assert!(out.contains("recv timeout"), "{out}");
        let invalid = g.counter("ctstate INVALID");
        assert!(
            invalid >= 1,
            "stalled, but not by the invalid rule: {}",
            g.counters()
        );
    }
    let o = g.run(
        'g',
        &["nft", "list", "chain", "inet", "rmmguard", "anti_spoof"],
    );
    let chain = String::from_utf8_lossy(&o.stdout).into_owned();
    let dropped: u64 = chain
        .lines()
        .filter(|l| l.contains("fib saddr . iif oif missing"))
        .filter_map(|l| {
            l.split("packets ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(dropped >= 1, "no forged packet dropped: {chain}");
}

/// A client can also blind conntrack without forging anything of its server's: after 40 bytes
/// of a ClientHello it sends an in-sequence RST that dies at the gateway (TTL 1; conntrack
/// closes its entry) and a SYN with a new sequence number (the server answers it with a
/// challenge ACK; conntrack starts a new entry from it). Its next segments then fit no entry:
/// conntrack calls them invalid, and they carry no mark and no packet count for the queue rules
/// to go by. With the rules of before they passed unqueued, the ClientHello reached the server
/// whole and this test fails. Invalid TCP segments are now dropped (and counted): the rest of
/// the ClientHello never leaves the gateway, and the connection stalls.
#[test]
fn a_client_desynchronising_conntrack_gets_nothing_through() {
    let Some((g, out)) = trick_mid_client_hello("dy", "--desync-after", "40", "desynced") else {
        return;
    };
    assert!(!out.contains("recv eof"), "{out}");
    let dropped = g.counter("ctstate INVALID");
    assert!(
        dropped >= 1,
        "no invalid segment was dropped: {}",
        g.counters()
    );
}

/// Conntrack counts the pure ACKs that the rules let through unqueued. With a packet budget for
/// TCP (20000 before), a client spent it with that many duplicate ACKs after 40 bytes of its
/// ClientHello, and the rest passed unread (this test fails with the rules of before). Undecided
/// TCP flows now have no packet budget: the engine decides each one within its own limits.
#[test]
fn a_client_spending_a_packet_budget_is_still_refused() {
    let Some((g, out)) = trick_mid_client_hello("ab", "--acks-after", "40:20100", "acked 20100")
    else {
        return;
    };
    assert_refused_by_sni(&g, &out);
}

#[test]
fn kill9_fail_open_passes_new_flows_and_restart_resumes_blocking() {
    let Some(mut g) = Gw::new("fo") else { return };
    g.tls_server();
    let pol = g.inline_outbound();
    g.assert_curl_reset("relay.teamviewer.com");
    g.kill9_inline();
    // No reader: the queue rule's bypass accepts, so new flows pass.
    g.assert_download_exact("www.example.test");
    let o = g.curl("relay.teamviewer.com");
    assert!(o.status.success(), "fail-open did not pass the flow");
    // Restarted, it blocks again.
    g.start_inline(&["--policy", &pol]);
    g.assert_curl_reset("relay.teamviewer.com");
    g.assert_download_exact("www.example.test");
}

#[test]
fn kill9_fail_closed_stops_new_flows_and_restart_resumes() {
    let Some(mut g) = Gw::new("fc") else { return };
    g.tls_server();
    g.rules(&["up", "--queues", "0-1", "--fail-closed"]);
    let pol = g.policy(&format!("fail_open = false\n{OUTBOUND_POLICY}"));
    g.start_inline(&["--policy", &pol, "--fail-closed"]);
    g.assert_download_exact("www.example.test");
    g.kill9_inline();
    let o = g.curl("www.example.test");
    assert!(
        !o.status.success(),
        "fail-closed passed a new flow with rmmguard down"
    );
    g.start_inline(&["--policy", &pol, "--fail-closed"]);
    g.assert_download_exact("www.example.test");
    g.assert_curl_reset("relay.teamviewer.com");
}

/// Datagrams of the restart tests: each from a new socket, so each is the first packet of a new
/// flow and goes through the queue.
const FLOOD: usize = 6000;
const FLOOD_RATE: &str = "2000";

impl Gw {
    /// Starts the numbered-datagram sink on the server (port 9999) and the flood from the
    /// client (FLOOD datagrams at FLOOD_RATE); returns once both run.
    fn start_flood(&mut self) -> Child {
        self.start_flood_of(FLOOD, FLOOD_RATE, 4)
    }

    fn start_flood_of(&mut self, n: usize, rate: &str, size: usize) -> Child {
        let p = script("tests/netns/probe.py");
        self.spawn('s', &["python3", &p, "udpsink", "9999", "3"], "udpsink.log");
        self.wait_listen('s', 9999, true);
        let (n, size) = (n.to_string(), size.to_string());
        self.cmd(
            'c',
            &["python3", &p, "udpflood", SERVER, "9999", &n, rate, &size],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn udpflood")
    }

    /// Waits for the flood and the sink, and asserts every datagram arrived.
    fn assert_flood_complete(&mut self, flood: Child) {
        self.assert_flood_complete_of(flood, FLOOD);
    }

    fn assert_flood_complete_of(&mut self, mut flood: Child, n: usize) {
        let st = flood.wait().unwrap();
        assert!(st.success(), "udpflood failed");
        let text = poll(20, 100, || {
            let t = std::fs::read_to_string(self.path("udpsink.log")).unwrap_or_default();
            if t.contains("missing") {
                Ok(t)
            } else {
                Err(format!("udpsink did not finish: {t}"))
            }
        });
        let want = format!("received {n} distinct {n}");
        assert!(
            text.contains(&want),
            "datagrams were lost across the restarts: {text} (rmmguard log: {})",
            self.log()
        );
        // They went through the queue (not around it).
        let queued = self.counter("NFQUEUE");
        assert!(
            queued as usize >= n / 2,
            "only {queued} packets were queued: {}",
            self.counters()
        );
    }
}

#[test]
fn restart_under_fail_open_loses_no_queued_packet() {
    let Some(mut g) = Gw::new("rs") else { return };
    let pol = g.inline_outbound();
    let flood = g.start_flood();
    // Three restarts while about 2000 new flows a second cross the gateway: SIGTERM, wait for
    // the exit, start again.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = g.inline.take().expect("inline running");
        let pid = c.id().to_string();
        let k = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(k.success());
        let st = c.wait().unwrap();
        assert!(
            st.success(),
            "rmmguard inline exited with {st}: {}",
            g.log()
        );
        g.start_inline(&["--policy", &pol]);
    }
    g.assert_flood_complete(flood);
    assert!(
        g.log().contains("while stopping"),
        "no stop drained its queue: {}",
        g.log()
    );
}

#[test]
fn kill9_under_a_descriptor_store_loses_no_queued_packet() {
    use std::io::{BufRead, BufReader, Write};
    let Some(mut g) = Gw::new("fs") else { return };
    g.rules(&["up", "--queues", "0-1"]);
    let pol = g.policy(OUTBOUND_POLICY);
    let bin = common::bin().to_string_lossy().into_owned();
    let events = g.path("events.json").to_string_lossy().into_owned();
    let store = script("tests/netns/fdstore.py");
    let log = std::fs::File::create(g.path("rmmguard.log")).unwrap();
    let mut harness = g
        .cmd(
            'g',
            &[
                "python3", &store, "--", &bin, "inline", "--queues", "0-1", "--policy", &pol,
                "--events", &events,
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn fdstore.py");
    let mut stdin = harness.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = harness.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str, g: &Gw| -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => {
                    let hit = l.starts_with(what);
                    seen.push(l);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("no '{what}' from fdstore.py: {seen:?}; log: {}", g.log()),
            }
        }
    };
    let first = wait_for("ready", &g);
    assert!(
        first
            .iter()
            .filter(|l| l.starts_with("stored nfqueue-"))
            .count()
            == 2,
        "both queue sockets should be stored: {first:?}"
    );
    // The harness (and with it rmmguard) is stopped by the guard if the test fails.
    g.children.push(harness);
    g.banner_server(5938, &hex(b"hello"));
    let flood = g.start_flood();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        writeln!(stdin, "kill9").unwrap();
        stdin.flush().unwrap();
        wait_for("exited", &g);
        wait_for("ready", &g);
    }
    g.assert_flood_complete(flood);
    assert!(
        g.log().contains("took over the socket"),
        "the restarted process did not take the stored sockets over: {}",
        g.log()
    );
    // Blocking still works after the takeovers.
    let o = g.probe(&["connect", SERVER, "5938"]);
    assert!(
        o.starts_with("connect refused"),
        "port 5938 after the restarts: {o}"
    );
    writeln!(stdin, "stop").unwrap();
    drop(stdin);
    let st = g.children.last_mut().unwrap().wait().unwrap();
    assert!(st.success(), "fdstore.py: {st}");
}

/// The installed units under a real systemd (252, PID 1 of a sandbox: tests/netns/systemd_sandbox.sh
/// and systemd_driver.sh): install.sh starts them; while 6000 new UDP flows cross the gateway,
/// each queued, rmmguard is killed twice with SIGKILL and restarted once with `systemctl
/// restart`, and every datagram must arrive; then a stop takes the rules down, a failure for
/// good hands them to rmmguard-failed.service, and uninstall.sh removes everything.
/// (The unit first took its rules down with StopPropagatedFrom=, which systemd also propagates
/// on restarts: this test lost 120 of the 6000 datagrams then.)
#[test]
fn units_under_real_systemd_lose_no_queued_packet_across_crashes() {
    let Some(mut g) = Gw::new("sd") else { return };
    if !std::path::Path::new("/lib/systemd/systemd").exists() {
        let msg = "no /lib/systemd/systemd (scripts/deps.sh test installs systemd)";
        assert!(!common::must_not_skip(), "{msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let tree = common::root().to_string_lossy().into_owned();
    let out = g.path("systemd");
    std::fs::create_dir_all(&out).unwrap();
    let out_s = out.to_string_lossy().into_owned();
    let sandbox = g
        .cmd(
            'g',
            &[
                "unshare",
                "--mount",
                "--propagation",
                "private",
                &script("tests/netns/systemd_sandbox.sh"),
                &tree,
                &out_s,
            ],
        )
        .env("RMMGUARD_BIN", common::bin())
        .stdout(std::fs::File::create(g.path("sandbox.log")).unwrap())
        .stderr(std::fs::File::create(g.path("sandbox.err")).unwrap())
        .spawn()
        .expect("run systemd_sandbox.sh");
    // The sandbox (and with it systemd and rmmguard) is stopped by the guard if the test fails.
    let sandbox_idx = g.children.len();
    g.children.push(sandbox);
    let report = |out: &std::path::Path| {
        let mut r = String::new();
        for f in [
            "log",
            "driver.log",
            "install.log",
            "rmmguard.log",
            "systemd.log",
        ] {
            let t = std::fs::read_to_string(out.join(f)).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(30).collect();
            r += &format!("\n--- {f}:\n");
            for l in tail.into_iter().rev() {
                r += l;
                r += "\n";
            }
        }
        r
    };
    let wait_file = |name: &str, secs: u64| {
        poll(secs, 50, || {
            if out.join(name).exists() {
                return Ok(());
            }
            assert!(
                !out.join("done").exists() || name == "done",
                "the driver stopped before '{name}': {}",
                report(&out)
            );
            Err(format!("no '{name}' within {secs} s: {}", report(&out)))
        })
    };
    wait_file("ready", 120);
    let flood = g.start_flood();
    std::fs::write(out.join("go"), b"").unwrap();
    wait_file("killed", 120);
    g.assert_flood_complete(flood);
    // Blocking still works after the restarts.
    let o = g.probe(&["connect", SERVER, "5938"]);
    assert!(
        o.starts_with("connect refused"),
        "port 5938 after the restarts: {o}"
    );
    std::fs::write(out.join("continue"), b"").unwrap();
    wait_file("done", 180);
    let st = g.children[sandbox_idx].wait().unwrap();
    let log = std::fs::read_to_string(out.join("log")).unwrap_or_default();
    assert!(
        st.success() && out.join("passed").exists(),
        "the driver failed ({st}): {}",
        report(&out)
    );
    for step in [
        "is PID 1",
        "rmmguard runs as rmmguard with CAP_NET_ADMIN only",
        "descriptor store",
        "each new process took the stored sockets over",
        "the rules unit stopped with it",
        "in the restart wait after a crash: the rules went down too",
        "rmmguard-failed.service took the fail-open rules down",
        "units, rules and user gone",
    ] {
        assert!(log.contains(step), "missing step '{step}': {log}");
    }
}

/// deploy/install.sh, the installed units' own commands (the rules unit's ExecStart, rmmguard's
/// ExecStart as its User with only its AmbientCapabilities, the rules unit's ExecStop), then
/// deploy/uninstall.sh --purge, in the gateway
/// namespace and a mount namespace whose /etc, /usr/local and /var/log are overlays: nothing
/// outside is touched, and every write is seen (tests/netns/install_sandbox.sh).
#[test]
fn install_run_and_uninstall_leave_nothing_behind() {
    let Some(g) = Gw::new("in") else { return };
    let tree = common::root().to_string_lossy().into_owned();
    let o = g
        .cmd(
            'g',
            &[
                "unshare",
                "--mount",
                "--propagation",
                "private",
                &script("tests/netns/install_sandbox.sh"),
                &tree,
            ],
        )
        .env("RMMGUARD_BIN", common::bin())
        .output()
        .expect("run install_sandbox.sh");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "install_sandbox.sh failed: {out}{err}");
    for step in [
        "install.sh installed the files",
        "runs as rmmguard with CAP_NET_ADMIN only",
        "ExecStop removed every rule",
        "uninstall.sh --purge removed the rules, the files and the user",
        "nothing left behind",
    ] {
        assert!(out.contains(step), "missing step '{step}': {out}{err}");
    }
}

/// A queue that overflows under fail-open passes the excess uninspected, loses nothing, and
/// says so: rmmguard is stopped (SIGSTOP) with a small queue buffer while new flows keep coming;
/// every datagram arrives, and rmmguard_fail_open_packets_total counts the ones the kernel let
/// through (from the kernel's own queue counters).
#[test]
fn queue_overflow_under_fail_open_passes_and_is_counted() {
    queue_overflow_case(false);
}

/// The same as a user of its own with only CAP_NET_ADMIN and CAP_NET_RAW, as the shipped unit
/// runs it: the kernel's queue counters (readable by root only) are out of reach, and the
/// fail-open passes are counted from the gaps in the packet ids.
#[test]
fn queue_overflow_counted_without_the_kernel_counters() {
    queue_overflow_case(true);
}

fn queue_overflow_case(unprivileged: bool) {
    let Some(mut g) = Gw::new(if unprivileged { "ou" } else { "ov" }) else {
        return;
    };
    g.rules(&["up", "--queues", "0-1"]);
    let pol = g.policy(OUTBOUND_POLICY);
    if unprivileged {
        // Its files live in the test's directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(g.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&pol, std::fs::Permissions::from_mode(0o644)).unwrap();
        g.inline_prefix = [
            "setpriv",
            "--reuid",
            "nobody",
            "--regid",
            "nogroup",
            "--clear-groups",
            "--inh-caps",
            "-all,+net_admin,+net_raw",
            "--ambient-caps",
            "+net_admin,+net_raw",
            "--",
        ]
        .map(String::from)
        .to_vec();
    }
    g.start_inline(&[
        "--policy",
        &pol,
        "--metrics",
        "127.0.0.1:9977",
        "--queue-buffer",
        "262144",
    ]);
    let pid = g.inline_pid().to_string();
    let stop = Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stop.success());
    const N: usize = 2000;
    let flood = g.start_flood_of(N, "4000", 1200);
    let st = Command::new("sh")
        .args(["-c", &format!("sleep 1.5; kill -CONT {pid}")])
        .status()
        .unwrap();
    assert!(st.success());
    g.assert_flood_complete_of(flood, N);
    if unprivileged {
        // A gap in the ids shows when the next packet of the queue arrives: one more flow
        // between the same two hosts (so on the same queue).
        let o = g.probe(&["connect", SERVER, "5938"]);
        assert!(o.starts_with("connect refused"), "port 5938: {o}");
    }
    let metric = |name: &str| -> f64 {
        g.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    let t0 = Instant::now();
    let mut passed = metric("rmmguard_fail_open_packets_total ");
    while passed < (N / 2) as f64 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        passed = metric("rmmguard_fail_open_packets_total ");
    }
    // The buffer (512 KiB once the kernel doubles it) holds a few hundred of these packets;
    // the rest of the 2000 were passed by fail-open.
    assert!(
        passed >= (N / 2) as f64 && passed <= N as f64,
        "rmmguard_fail_open_packets_total is {passed} for {N} packets against a stopped reader"
    );
    assert_eq!(metric("rmmguard_queue_dropped_packets_total "), 0.0);
    assert_eq!(metric("rmmguard_queue_waiting_packets "), 0.0);
    // Each queue's socket, as its worker samples it (each second): the buffer asked for (the
    // kernel doubles it), and the backlog, which drains to 0 now that the flood is read.
    // Readable without privilege.
    for q in ["0", "1"] {
        let buffer = metric(&format!("rmmguard_queue_buffer_bytes{{queue=\"{q}\"}} "));
        assert!(buffer >= 262144.0, "queue {q}: buffer {buffer}");
        poll(5, 200, || {
            let backlog = metric(&format!("rmmguard_queue_backlog_bytes{{queue=\"{q}\"}} "));
            if backlog == 0.0 {
                Ok(())
            } else {
                Err(format!("queue {q}: backlog {backlog} of {buffer}"))
            }
        });
    }
    if unprivileged {
        assert!(
            g.log().contains("counted from gaps in the packet ids"),
            "rmmguard could read the kernel's counters as nobody: {}",
            g.log()
        );
    }
}

#[test]
fn reload_applies_a_valid_policy_and_keeps_the_old_one_on_error() {
    let Some(mut g) = Gw::new("rl") else { return };
    g.tls_server();
    let pol = g.inline_outbound();
    g.assert_curl_reset("relay.teamviewer.com");
    let pid_file = g.path("rmmguard.pid").to_string_lossy().into_owned();
    let reload = || {
        let o = common::run(&["reload", "--pid-file", &pid_file]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // A broken policy: the reload fails, and the running one stays.
    std::fs::write(&pol, "default_action = \"explode\"\n").unwrap();
    reload();
    poll(10, 50, || {
        let log = g.log();
        if log.contains("reload failed") {
            Ok(())
        } else {
            Err(log)
        }
    });
    g.assert_curl_reset("relay.teamviewer.com");
    // A valid one that allows TeamViewer: new flows pass.
    std::fs::write(
        &pol,
        format!("{OUTBOUND_POLICY}\n[[allow]]\nname = \"tv\"\ntool = \"teamviewer\"\n"),
    )
    .unwrap();
    reload();
    poll(15, 200, || {
        if g.curl("relay.teamviewer.com").status.success() {
            Ok(())
        } else {
            Err(format!("the reloaded policy was not applied: {}", g.log()))
        }
    });
}

#[test]
fn monitor_alerts_and_resets_a_blocked_flow() {
    let Some(mut g) = Gw::new("mo") else { return };
    let p = script("tests/netns/probe.py");
    // A server that reads and never answers, so only an injected reset ends the handshake.
    g.spawn('s', &["python3", &p, "sink", "443"], "sink.log");
    g.wait_listen('s', 443, false);
    let bin = common::bin().to_string_lossy().into_owned();
    let events = g.path("events.json").to_string_lossy().into_owned();
    let pid = g.path("monitor.pid");
    let pid_s = pid.to_string_lossy().into_owned();
    let pol = g.policy(OUTBOUND_POLICY);
    g.spawn(
        'g',
        &[
            &bin,
            "monitor",
            "--iface",
            "cl0",
            "--reset",
            "--events",
            &events,
            "--pid-file",
            &pid_s,
            "--policy",
            &pol,
        ],
        "rmmguard.log",
    );
    poll(20, 20, || {
        if pid.exists() {
            Ok(())
        } else {
            Err(format!("monitor did not start: {}", g.log()))
        }
    });
    let pid_n = std::fs::read_to_string(&pid).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid_n.trim())).unwrap();
    assert!(status.contains("CapEff:\t0000000000002000"), "{status}");
    g.assert_curl_reset("relay.teamviewer.com");
    g.wait_event("teamviewer", "blocked");
}

#[test]
fn reload_without_a_process_is_a_one_line_error() {
    let dir = common::tempdir();
    let missing = dir.path().join("none.pid");
    let o = common::run(&["reload", "--pid-file", &missing.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("rmmguard: cannot read pid file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
    let bad = dir.path().join("bad.pid");
    std::fs::write(&bad, "1\n").unwrap();
    let o = common::run(&["reload", "--pid-file", &bad.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing"));
}
