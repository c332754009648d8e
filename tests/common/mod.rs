//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `rmmguard` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rmmguard"))
}

/// Runs `rmmguard` with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run rmmguard")
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled capture corpus.
pub fn corpus() -> PathBuf {
    root().join("tests/data/corpus")
}

/// Parses EVE JSON lines.
pub fn events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l}: {e}")))
        .collect()
}

/// Runs `analyze --events -` over one capture and returns the events.
pub fn analyze_events(capture: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let cap = capture.to_str().unwrap();
    let mut args = vec!["analyze", "--events", "-"];
    args.extend_from_slice(extra);
    args.push(cap);
    let out = run(&args);
    assert!(
        out.status.success(),
        "analyze {cap} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    events(&String::from_utf8_lossy(&out.stdout))
}

/// Whether the test may skip a privileged check: under CI it must not.
pub fn must_not_skip() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// An Ethernet/IPv4/TCP frame between 192.168.1.10:51000 (the client) and 203.0.113.7:443.
pub fn tcp_frame(
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    from_client: bool,
    payload: &[u8],
) -> Vec<u8> {
    let (c, s) = ([192, 168, 1, 10], [203, 0, 113, 7]);
    let (src, dst, sp, dp) = if from_client {
        (c, s, 51000, 443)
    } else {
        (s, c, 443, 51000)
    };
    let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 64240);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if !payload.is_empty() {
        b = b.psh();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build a TCP frame");
    out
}

/// Every catalogue file in `port-lists/tools/`, sorted, parsed as plain TOML.
pub fn catalog_files() -> Vec<(PathBuf, toml::Value)> {
    let dir = root().join("port-lists/tools");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v: toml::Value = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}
