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
