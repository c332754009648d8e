//! Bad input: every case runs the binary and expects one clear line on standard error that
//! names the file, a non-zero exit status, and no panic.

mod common;

use std::path::Path;
use std::process::Output;

/// A classic little-endian microsecond pcap header.
fn pcap_header(snaplen: u32, link: u32) -> Vec<u8> {
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&link.to_le_bytes());
    h
}

/// A pcap record header.
fn record(incl: u32, orig: u32) -> Vec<u8> {
    let mut r = vec![0; 8];
    r.extend_from_slice(&incl.to_le_bytes());
    r.extend_from_slice(&orig.to_le_bytes());
    r
}

fn no_panic(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
}

/// Asserts a failed run with exactly one error line naming `name` (and `want`, if given).
fn one_line_error(o: &Output, name: &str, want: &str) {
    no_panic(o);
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !o.status.success(),
        "exit status was success; stderr: {err}"
    );
    assert_eq!(o.status.code(), Some(2), "exit status; stderr: {err}");
    assert_eq!(lines.len(), 1, "not one line: {err:?}");
    assert!(lines[0].starts_with("rmmguard: "), "{err}");
    assert!(lines[0].contains(name), "error does not name {name}: {err}");
    assert!(
        lines[0].contains(want),
        "error does not say '{want}': {err}"
    );
}

fn analyze_file(dir: &Path, name: &str, bytes: &[u8]) -> (Output, String) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let ps = p.display().to_string();
    (common::run(&["analyze", &ps]), ps)
}

#[test]
fn zero_length_capture() {
    let d = common::tempdir();
    let (o, p) = analyze_file(d.path(), "empty.pcap", b"");
    one_line_error(&o, &p, "empty");
}

#[test]
fn garbage_capture() {
    let d = common::tempdir();
    // Deterministic junk that starts with no capture magic.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (o, p) = analyze_file(d.path(), "garbage.pcap", &junk);
    one_line_error(&o, &p, "not a pcap or pcapng");
}

#[test]
fn capture_truncated_in_the_file_header() {
    let d = common::tempdir();
    let h = pcap_header(65535, 1);
    let (o, p) = analyze_file(d.path(), "cut-header.pcap", &h[..13]);
    one_line_error(&o, &p, "too short");
}

#[test]
fn capture_truncated_mid_record_is_a_warning() {
    // A capture cut in the middle of its last record (a capture that was still being written):
    // every whole record is analysed, a warning says what was skipped, and the exit is 0.
    let src = common::corpus().join("benign/dns.pcap");
    let full = std::fs::read(&src).unwrap();
    let d = common::tempdir();
    let (o, p) = analyze_file(d.path(), "cut-record.pcap", &full[..full.len() - 7]);
    no_panic(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{p}: {err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("truncated")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].starts_with("rmmguard: warning: "), "{err}");
    // The records before the cut were read.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("truncated record"), "summary: {out}");
}

#[test]
fn absurd_snaplen() {
    let d = common::tempdir();
    let mut b = pcap_header(0xffff_fff0, 1);
    b.extend(record(4, 4));
    b.extend([0; 4]);
    let (o, p) = analyze_file(d.path(), "snaplen.pcap", &b);
    one_line_error(&o, &p, "snapshot length");
}

#[test]
fn absurd_record_length() {
    let d = common::tempdir();
    let mut b = pcap_header(65535, 1);
    b.extend(record(0x7fff_ffff, 0x7fff_ffff));
    b.extend([0; 64]);
    let (o, p) = analyze_file(d.path(), "reclen.pcap", &b);
    one_line_error(&o, &p, "captured length 2147483647");
}

#[test]
fn unknown_link_type() {
    let d = common::tempdir();
    // 147 is LINKTYPE_USER0: private, nothing we can decode.
    let (o, p) = analyze_file(d.path(), "link.pcap", &pcap_header(65535, 147));
    one_line_error(&o, &p, "link type 147");
}

#[test]
fn pcapng_bad_block_length() {
    let d = common::tempdir();
    // A section header block whose length is not a multiple of four.
    let mut b = vec![0x0a, 0x0d, 0x0d, 0x0a];
    b.extend_from_slice(&29u32.to_le_bytes());
    b.extend_from_slice(&[0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0]);
    b.extend_from_slice(&[0xff; 8]);
    b.extend_from_slice(&29u32.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    let (o, p) = analyze_file(d.path(), "block.pcapng", &b);
    one_line_error(&o, &p, "length 29");
}

#[test]
fn nonexistent_capture() {
    let d = common::tempdir();
    let p = d.path().join("nope.pcap").display().to_string();
    one_line_error(&common::run(&["analyze", &p]), &p, "No such file");
}

#[test]
fn unreadable_capture_a_directory() {
    let d = common::tempdir();
    let p = d.path().display().to_string();
    one_line_error(&common::run(&["analyze", &p]), &p, "not a regular file");
}

#[test]
fn unreadable_capture_under_a_file() {
    // Root can read a mode-000 file, but nobody can open a path whose parent is a file.
    let d = common::tempdir();
    let f = d.path().join("plain");
    std::fs::write(&f, b"x").unwrap();
    let p = f.join("cap.pcap").display().to_string();
    one_line_error(&common::run(&["analyze", &p]), &p, "cannot open");
}

fn policy_error(text: &str, line: usize, want: &str) {
    let d = common::tempdir();
    let p = d.path().join("policy.toml");
    std::fs::write(&p, text).unwrap();
    let ps = p.display().to_string();
    let name_line = format!("{ps}:{line}:");
    for args in [
        vec!["check", "--policy", &ps],
        vec!["analyze", "--policy", &ps, "/dev/null"],
    ] {
        one_line_error(&common::run(&args), &name_line, want);
    }
}

#[test]
fn policy_unknown_key() {
    policy_error(
        "default_action = \"block\"\n\nbock_mode = \"drop\"\n",
        3,
        "unknown field `bock_mode`",
    );
}

#[test]
fn policy_bad_cidr() {
    policy_error(
        "home_networks = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/33\",\n]\n",
        3,
        "bad CIDR '10.0.0.0/33'",
    );
}

#[test]
fn policy_unknown_tool() {
    policy_error(
        "[[allow]]\nname = \"x\"\ntool = \"no-such-tool\"\n",
        3,
        "unknown tool 'no-such-tool'",
    );
}

#[test]
fn policy_bad_action() {
    policy_error(
        "[tools]\nanydesk = \"block\"\nteamviewer = \"explode\"\n",
        3,
        "unknown action 'explode'",
    );
}

/// A value with an escaped newline (found by the policy fuzz target): quoted in the error, it
/// is escaped, so the error stays on one line.
#[test]
fn policy_value_with_a_newline_stays_one_line() {
    policy_error(
        "[[allow]]\nname = \"x\"\ntool = \"anydesk\"\ndirection = \"\\ny\"\n",
        4,
        "unknown direction '\\ny'",
    );
}

#[test]
fn policy_unreadable() {
    let d = common::tempdir();
    let p = d.path().display().to_string();
    one_line_error(
        &common::run(&["check", "--policy", &p]),
        &p,
        "cannot read policy",
    );
}

#[test]
fn catalogue_tool_copied_under_another_name() {
    // A catalogue folder holding the same tool twice: the copy's id does not match its file name.
    let d = common::tempdir();
    let tools = d.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    let src = common::root().join("port-lists/tools/anydesk.toml");
    std::fs::copy(&src, tools.join("anydesk.toml")).unwrap();
    std::fs::copy(&src, tools.join("anydesk-copy.toml")).unwrap();
    let dir = d.path().display().to_string();
    let o = common::run(&["check", "--catalog", &dir]);
    one_line_error(&o, "anydesk-copy.toml:1:", "tool id 'anydesk'");
}

#[test]
fn catalogue_duplicate_tool_id() {
    // Two files that define the same tool id (as from two folders): the second is rejected,
    // naming both files.
    let text =
        std::fs::read_to_string(common::root().join("port-lists/tools/anydesk.toml")).unwrap();
    let e = rmmguard::catalog::Catalog::from_files([
        ("a/anydesk.toml".to_string(), text.clone()),
        ("b/anydesk.toml".to_string(), text),
    ])
    .unwrap_err();
    let msg = e.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.starts_with("b/anydesk.toml:1: duplicate tool id 'anydesk'"),
        "{msg}"
    );
    assert!(msg.contains("a/anydesk.toml"), "{msg}");
}

#[test]
fn catalogue_folder_missing() {
    let d = common::tempdir();
    let p = d.path().join("none").display().to_string();
    one_line_error(
        &common::run(&["check", "--catalog", &p]),
        &p,
        "cannot read catalogue folder",
    );
}
