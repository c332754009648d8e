//! The whole corpus against labels.csv: every tool-labelled flow gets its tool, and no `none`
//! flow is flagged. Prints the recall per tool.

mod common;

use std::collections::{BTreeMap, HashMap};

#[derive(Debug)]
struct Label {
    capture: String,
    proto: String,
    a: (String, u16),
    b: (String, u16),
    expected: String,
}

fn labels() -> Vec<Label> {
    let text = std::fs::read_to_string(common::corpus().join("labels.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            Label {
                capture: c[0].into(),
                proto: c[1].into(),
                a: (c[2].into(), c[3].parse().unwrap()),
                b: (c[4].into(), c[5].parse().unwrap()),
                expected: c[7].into(),
            }
        })
        .collect()
}

fn capture_path(name: &str) -> std::path::PathBuf {
    for d in ["remote-access", "benign"] {
        let p = common::corpus().join(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("capture {name} not in the corpus");
}

#[test]
fn corpus_matches_labels() {
    let labels = labels();
    let mut by_capture: BTreeMap<&str, Vec<&Label>> = BTreeMap::new();
    for l in &labels {
        by_capture.entry(&l.capture).or_default().push(l);
    }
    let mut recall: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut false_positives = 0;
    let mut unknown_found = Vec::new();
    for (cap, ls) in by_capture {
        let events = common::analyze_events(&capture_path(cap), &[]);
        // (proto, endpoint set) -> tool
        let mut found: HashMap<(String, [(String, u16); 2]), String> = HashMap::new();
        for e in &events {
            let mut ends = [
                (
                    e["src_ip"].as_str().unwrap().to_string(),
                    e["src_port"].as_u64().unwrap() as u16,
                ),
                (
                    e["dest_ip"].as_str().unwrap().to_string(),
                    e["dest_port"].as_u64().unwrap() as u16,
                ),
            ];
            ends.sort();
            found.insert(
                (e["proto"].as_str().unwrap().to_string(), ends),
                e["rmm"]["tool"].as_str().unwrap().to_string(),
            );
        }
        for l in ls {
            let mut ends = [l.a.clone(), l.b.clone()];
            ends.sort();
            let got = found.get(&(l.proto.clone(), ends));
            match l.expected.as_str() {
                "none" => {
                    if let Some(t) = got {
                        false_positives += 1;
                        failures.push(format!("{cap} {l:?}: flagged as {t}, expected none"));
                    }
                }
                "unknown" => {
                    if let Some(t) = got {
                        unknown_found.push(format!(
                            "{cap} {}:{} <-> {}:{} -> {t}",
                            l.a.0, l.a.1, l.b.0, l.b.1
                        ));
                    }
                }
                tool => {
                    let r = recall.entry(tool.to_string()).or_default();
                    r.1 += 1;
                    if got.map(String::as_str) == Some(tool) {
                        r.0 += 1;
                    } else {
                        failures.push(format!("{cap} {l:?}: got {got:?}, expected {tool}"));
                    }
                }
            }
        }
    }
    println!("recall per tool:");
    for (t, (hit, all)) in &recall {
        println!(
            "  {t:<12} {hit}/{all} ({:.0}%)",
            100.0 * *hit as f64 / *all as f64
        );
    }
    println!("false positives on `none` flows: {false_positives}");
    println!("`unknown` flows attributed: {unknown_found:?}");
    assert!(
        failures.is_empty(),
        "corpus mismatches:\n{}",
        failures.join("\n")
    );
}
