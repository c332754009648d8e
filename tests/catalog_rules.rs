//! Curation rules of the catalogue (issue 3), checked on the files in `port-lists/tools/`:
//! size, the shared-infrastructure guard, sources, no port-only 80/443, known-bad upstream
//! values dropped, overlaps rejected by the loader, and the 35 tools of top-tools.md covered.

mod common;

use std::collections::{BTreeMap, BTreeSet};

struct Ind {
    kind: String,
    value: String,
    how: String,
    proto: String,
    port: String,
    sources: Vec<String>,
}

struct Tool {
    id: String,
    inds: Vec<Ind>,
}

fn s(v: &toml::Value, k: &str) -> String {
    v.get(k)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string()
}

fn tools() -> Vec<Tool> {
    common::catalog_files()
        .iter()
        .map(|(_, v)| {
            let inds = v
                .get("indicator")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|i| Ind {
                    kind: s(i, "kind"),
                    value: s(i, "value"),
                    how: s(i, "match"),
                    proto: s(i, "proto"),
                    port: s(i, "port"),
                    sources: i
                        .get("sources")
                        .and_then(|x| x.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            Tool {
                id: s(v, "id"),
                inds,
            }
        })
        .collect()
}

/// `name` equals `suffix` or is under it (whole labels).
fn under(name: &str, suffix: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let s = suffix.trim_end_matches('.').to_ascii_lowercase();
    n == s || n.ends_with(&format!(".{s}"))
}

fn port_range(spec: &str) -> (u16, u16) {
    let mut it = spec.split('-').map(|x| x.trim().parse::<u16>().unwrap());
    let lo = it.next().unwrap();
    (lo, it.next().unwrap_or(lo))
}

#[test]
fn at_least_250_tools_with_unique_ids() {
    let t = tools();
    assert!(t.len() >= 250, "{} tools", t.len());
    let ids: BTreeSet<&str> = t.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), t.len(), "duplicate ids");
}

#[test]
fn no_suffix_on_shared_infrastructure() {
    let text = std::fs::read_to_string(common::root().join("port-lists/shared-infrastructure.txt"))
        .unwrap();
    let shared: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in [
        "amazonaws.com",
        "blob.core.windows.net",
        "servicebus.windows.net",
        "cloudfront.net",
        "azureedge.net",
        "googleapis.com",
        "pubnub.com",
    ] {
        assert!(shared.contains(&must), "{must} missing from the list");
    }
    let mut bad = Vec::new();
    let mut checked = 0;
    for t in tools() {
        for i in t.inds.iter().filter(|i| i.kind == "domain") {
            assert!(
                i.how == "suffix" || i.how == "exact",
                "{}: domain {} has match {:?}",
                t.id,
                i.value,
                i.how
            );
            if i.how != "suffix" {
                continue;
            }
            checked += 1;
            for s in &shared {
                if under(&i.value, s) {
                    bad.push(format!("{}: suffix {} is under {s}", t.id, i.value));
                }
            }
        }
    }
    assert!(checked > 500, "{checked} suffix domains");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_indicator_has_a_source() {
    let mut n = 0;
    for t in tools() {
        assert!(!t.inds.is_empty(), "{} has no indicator", t.id);
        for i in &t.inds {
            n += 1;
            assert!(
                !i.sources.is_empty() && i.sources.iter().all(|s| !s.trim().is_empty()),
                "{}: {} {} has no source",
                t.id,
                i.kind,
                i.value
            );
        }
    }
    assert!(n > 900, "{n} indicators");
}

#[test]
fn no_port_only_indicator_on_80_or_443() {
    for t in tools() {
        for i in t.inds.iter().filter(|i| i.kind == "port") {
            let (lo, hi) = port_range(&i.port);
            assert!(lo <= hi, "{}: bad range {}", t.id, i.port);
            for p in [80u16, 443] {
                assert!(
                    !(lo..=hi).contains(&p),
                    "{}: port indicator {}/{} covers {p}",
                    t.id,
                    i.proto,
                    i.port
                );
            }
        }
    }
}

#[test]
fn known_bad_upstream_values_are_absent() {
    for t in tools() {
        for i in &t.inds {
            let v = i.value.to_ascii_lowercase();
            assert_ne!(v, "downloads.io", "{}: downloads.io", t.id);
            assert_ne!(v, "checkip.zmazonaws.com", "{}", t.id);
            assert!(!v.contains("user_managed"), "{}: placeholder {v}", t.id);
            if t.id == "tactical-rmm" {
                assert!(
                    !under(&v, "tailscale.com"),
                    "tactical-rmm claims {v} (Tailscale's login server)"
                );
            }
        }
    }
    // The drops are documented.
    let dropped = std::fs::read_to_string(common::root().join("port-lists/DROPPED.md")).unwrap();
    for v in [
        "downloads.io",
        "checkip.zmazonaws.com",
        "user_managed",
        "login.tailscale.com",
    ] {
        assert!(dropped.contains(v), "DROPPED.md does not explain {v}");
    }
}

/// The shipped catalogue has no unexplained overlap (the loader would refuse it), and a crafted
/// catalogue where two tools claim the same domain, or the same port, without a note is
/// rejected with a message naming both tools; with a note it loads.
#[test]
fn overlaps_need_a_note() {
    let out = common::run(&["catalog", "stats"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tool = |id: &str, ind: &str| {
        format!(
            "id = \"{id}\"\nname = \"Tool {id}\"\ncategory = \"rmm\"\nvendor_url = \"https://{id}.example\"\n\n[[indicator]]\n{ind}confidence = \"high\"\nsources = [\"test\"]\n"
        )
    };
    let cases = [
        (
            "kind = \"domain\"\nvalue = \"shared-name.example\"\nmatch = \"suffix\"\n",
            "shared-name.example",
        ),
        (
            "kind = \"port\"\nproto = \"tcp\"\nport = \"47123\"\n",
            "47123",
        ),
    ];
    for (ind, what) in cases {
        let dir = common::tempdir();
        std::fs::write(dir.path().join("alpha-tool.toml"), tool("alpha-tool", ind)).unwrap();
        std::fs::write(dir.path().join("beta-tool.toml"), tool("beta-tool", ind)).unwrap();
        let d = dir.path().to_str().unwrap();
        let out = common::run(&["catalog", "list", "--catalog", d]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "overlap on {what} accepted");
        assert!(
            err.contains("alpha-tool") && err.contains("beta-tool") && err.contains(what),
            "message does not name both tools and {what}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "not a one-line error: {err}");
        // With a note explaining the overlap, it loads.
        let noted = tool("beta-tool", ind).replace(
            "sources = [\"test\"]\n",
            "sources = [\"test\"]\nnote = \"shared on purpose\"\n",
        );
        std::fs::write(dir.path().join("beta-tool.toml"), noted).unwrap();
        let out = common::run(&["catalog", "list", "--catalog", d]);
        assert!(
            out.status.success(),
            "noted overlap on {what} rejected: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The 35 tools of `top-tools.md` (referenced as `top-tools:<id>` sources). Where the table
/// gives a port other than 80/443, the tool has a port indicator; where it gives a protocol
/// fingerprint, a certificate, a User-Agent or a URI, the tool has a fingerprint or TLS/HTTP
/// indicator. Tools whose row gives neither (SNI/DNS only, or only 443) need only their
/// domains.
#[test]
fn top_tools_have_ports_and_content_indicators() {
    // From top-tools.md's "Ports" column (confirmed values besides 80/443). Not required:
    // level (its 3478/5349 are Twilio's generic STUN/TURN ports), supremo (5938 is
    // TeamViewer's; the table calls it an error), beyondtrust (8080 is generic).
    let need_port = [
        "screenconnect",
        "anydesk",
        "teamviewer",
        "splashtop",
        "netsupport",
        "rustdesk",
        "logmein",
        "goto-resolve",
        "kaseya-vsa",
        "ammyy-admin",
        "radmin",
        "remotepc",
        "vnc",
        "rdp",
        "chrome-remote-desktop",
        "tactical-rmm",
        "dameware",
        "remote-utilities",
    ];
    // From the "Protocol fingerprints" column. Not required: beyondtrust (a download file name,
    // not a flow indicator), goto-resolve (its ET rules were deleted), tactical-rmm (its
    // MeshCentral component is catalogued under meshcentral).
    let need_content = [
        "screenconnect",
        "anydesk",
        "teamviewer",
        "splashtop",
        "netsupport",
        "rustdesk",
        "meshcentral",
        "simplehelp",
        "logmein",
        "ammyy-admin",
        "radmin",
        "vnc",
        "rdp",
        "dameware",
        "datto-rmm",
        "syncro",
    ];
    let tools = tools();
    let mut top: BTreeMap<String, &Tool> = BTreeMap::new();
    for t in &tools {
        for i in &t.inds {
            for s in &i.sources {
                if let Some(id) = s.strip_prefix("top-tools:") {
                    assert_eq!(id, t.id, "{} cites top-tools:{id}", t.id);
                    top.insert(id.to_string(), t);
                }
            }
        }
    }
    assert_eq!(top.len(), 35, "top tools: {:?}", top.keys());
    let md = common::root().join("../shared/indicators/top-tools.md");
    if let Ok(text) = std::fs::read_to_string(&md) {
        let rows = text
            .lines()
            .filter(|l| {
                l.starts_with("| ")
                    && l[2..]
                        .split(' ')
                        .next()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        assert_eq!(rows, 35, "rows in {}", md.display());
    }
    let mut missing = Vec::new();
    for id in need_port {
        let t = top
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not a top tool"));
        if !t.inds.iter().any(|i| i.kind == "port") {
            missing.push(format!("{id}: no port indicator"));
        }
    }
    for id in need_content {
        let t = top
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not a top tool"));
        if !t.inds.iter().any(|i| {
            matches!(
                i.kind.as_str(),
                "fingerprint" | "tls_cert" | "tls_alpn" | "http_user_agent" | "http_uri" | "ja4"
            )
        }) {
            missing.push(format!("{id}: no fingerprint or TLS/HTTP indicator"));
        }
    }
    // Every product has a domain; the two protocol families (rdp, vnc: direct connections;
    // RealVNC's cloud names are catalogued under realvnc) have none.
    for t in top.values() {
        if !t.inds.iter().any(|i| i.kind == "domain") && !["rdp", "vnc"].contains(&t.id.as_str()) {
            missing.push(format!("{}: no domain", t.id));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
