//! The files in deploy/ name only metrics rmmguard really exports.

mod common;

use rmmguard::engine::{self, learned::Learned, Config, ConfigHandle};
use rmmguard::output::metrics::{render, Hub};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The metric names (with the histogram's `_bucket`, `_sum` and `_count`) of a real exposition,
/// after replaying the remote-access corpus through the engine with a hub attached.
fn exported_names() -> BTreeSet<String> {
    let catalog = rmmguard::catalog::Catalog::embedded().expect("catalogue");
    let policy = rmmguard::policy::Policy::builtin(&catalog);
    let handle = ConfigHandle::new(Config {
        catalog: Arc::new(catalog),
        policy: Arc::new(policy),
    });
    let learned = Arc::new(Learned::new(1024));
    let hub = Arc::new(Hub::new(1));
    let captures: Vec<_> = std::fs::read_dir(common::corpus().join("remote-access"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut sink = rmmguard::replay::Collect::default();
    let mut tee = rmmguard::output::metrics::HubSink {
        hub: hub.clone(),
        inner: &mut sink,
    };
    let opts = rmmguard::replay::Options {
        engine: engine::Options::default(),
        metrics: Some(hub.clone()),
        ..Default::default()
    };
    rmmguard::replay::run(&captures, handle.clone(), learned.clone(), &mut tee, opts)
        .expect("replay");
    let text = render(&hub, &handle, Some(&learned));
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_string();
            if it.next() == Some("histogram") {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
            names.insert(name);
        } else if !line.starts_with('#') && !line.is_empty() {
            // Every sample belongs to a declared family.
            let n: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                names.contains(&n),
                "sample {line} comes before its # TYPE line"
            );
        }
    }
    // The replay found tools, so the labelled families have samples too.
    assert!(
        text.contains("rmmguard_flows_total{tool=\"anydesk\""),
        "{text}"
    );
    assert!(
        text.contains("rmmguard_top_host_flows_total{host="),
        "{text}"
    );
    names
}

/// Every `rmmguard_*` identifier in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("rmmguard_") {
        let tail = &rest[i..];
        let n: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &tail[n.len()..];
        out.insert(n);
    }
    out
}

#[test]
fn grafana_dashboard_queries_name_exported_metrics() {
    let names = exported_names();
    let path = common::root().join("deploy/grafana/rmmguard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard JSON");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    let mut queries = 0;
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        assert!(
            p["gridPos"]["w"].as_u64().is_some(),
            "panel without gridPos"
        );
        titles.push(p["title"].as_str().unwrap().to_lowercase());
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let refs = referenced(expr);
            assert!(!refs.is_empty(), "query names no rmmguard metric: {expr}");
            for r in refs {
                assert!(
                    names.contains(&r),
                    "panel '{}' queries {r}, which rmmguard does not export",
                    p["title"]
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 15, "only {queries} queries");
    // The panels the issue asks for.
    for want in [
        "blocks by tool",
        "top internal hosts",
        "verdicts",
        "latency",
        "flow table",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no panel about {want}: {titles:?}"
        );
    }
    // The instance variable queries an exported metric too.
    let templ = dash["templating"].to_string();
    for r in referenced(&templ) {
        assert!(names.contains(&r), "templating queries {r}");
    }
}

#[test]
fn alert_rules_name_exported_metrics() {
    let names = exported_names();
    let text = std::fs::read_to_string(common::root().join("deploy/prometheus/rules.yml")).unwrap();
    let refs = referenced(&text);
    for r in &refs {
        assert!(
            names.contains(r),
            "rules.yml uses {r}, which rmmguard does not export"
        );
    }
    for want in [
        "rmmguard_flows_total",
        "rmmguard_unauthorised_flows_total",
        "rmmguard_fail_open_packets_total",
        "rmmguard_queue_dropped_packets_total",
        "rmmguard_config_last_reload_success",
    ] {
        assert!(refs.contains(want), "no rule uses {want}");
    }
    let scrape =
        std::fs::read_to_string(common::root().join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(
        scrape.contains("127.0.0.1:9977"),
        "scrape target is not the default address"
    );
    assert!(scrape.contains("rules.yml"));
}

/// The systemd units, checked by systemd's own `systemd-analyze verify` (the version Debian
/// ships): every key known, every command present, no warning. The install paths are pointed at
/// this tree, since nothing is installed here.
#[test]
fn systemd_units_verify_cleanly() {
    let have = std::process::Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        let msg = "systemd-analyze is missing (scripts/deps.sh test installs systemd)";
        if common::must_not_skip() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return;
    }
    let root = common::root();
    let read = |u: &str| std::fs::read_to_string(root.join("deploy").join(u)).unwrap();
    let unit = read("rmmguard.service");
    for key in [
        "Type=notify",
        "FileDescriptorStoreMax=",
        "Requires=rmmguard-rules.service",
        "OnFailure=rmmguard-failed.service",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=rmmguard",
    ] {
        assert!(unit.contains(key), "rmmguard.service lacks {key}");
    }
    // A restart of rmmguard must not take the rules down (the kernel would drop the queued
    // packets). systemd propagates a restart through StopPropagatedFrom= and PartOf= as a
    // try-restart, so neither may be used; rmmguard-stopped.service (OnSuccess=) stops the rules
    // unit only when rmmguard is inactive with no job under way (run under systemd in
    // tests/gateway.rs).
    let rules = read("rmmguard-rules.service");
    for key in ["StopPropagatedFrom=", "PartOf=", "BindsTo="] {
        assert!(!rules.contains(key), "{key} would propagate restarts");
    }
    assert!(unit.contains("OnSuccess=rmmguard-stopped.service"));
    assert!(
        !unit.contains("ExecStopPost="),
        "a stop command does not run on every stop"
    );
    let stopped = read("rmmguard-stopped.service");
    for part in [
        "is-active rmmguard.service)\" = inactive",
        "list-jobs --no-legend --plain rmmguard.service",
        "--job-mode=fail stop rmmguard-rules.service",
    ] {
        assert!(
            stopped.contains(part),
            "rmmguard-stopped.service lacks {part}"
        );
    }
    let dir = common::tempdir();
    let mut paths = Vec::new();
    for u in [
        "rmmguard.service",
        "rmmguard-rules.service",
        "rmmguard-failed.service",
        "rmmguard-stopped.service",
    ] {
        let local = read(u)
            .replace("/usr/local/bin/rmmguard", &common::bin().to_string_lossy())
            .replace(
                "/usr/local/lib/rmmguard/gateway-rules.sh",
                &root.join("deploy/gateway-rules.sh").to_string_lossy(),
            );
        let path = dir.path().join(u);
        std::fs::write(&path, local).unwrap();
        paths.push(path);
    }
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "systemd-analyze verify failed: {err}");
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned: {err}"
    );
}

/// A bad option to `gateway-rules.sh up` is one line naming the option and its value, exit
/// status 2, before the script touches any rule (so no root and no namespace are needed).
#[test]
fn gateway_rules_refuse_bad_options_with_one_line() {
    let script = common::root().join("deploy/gateway-rules.sh");
    for (args, expect) in [
        (&["--tcp-budget", "abc"][..], "bad --tcp-budget 'abc'"),
        (&["--tcp-budget", "0"][..], "bad --tcp-budget '0'"),
        (&["--budget", "x"][..], "bad --budget 'x'"),
        (&["--queues", "3-1"][..], "bad --queues '3-1'"),
        (&["--tcp-queue", "bogus"][..], "bad --tcp-queue 'bogus'"),
        (&["--hooks", "bogus"][..], "bad hook 'bogus'"),
        (&["--backend", "bogus"][..], "bad --backend 'bogus'"),
        (&["--frobnicate"][..], "unknown option '--frobnicate'"),
    ] {
        let out = std::process::Command::new(&script)
            .arg("up")
            .args(args)
            .output()
            .expect("run gateway-rules.sh");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
