//! `rmmguard check`: what a policy means, in plain words.

use rmmguard::catalog::{Catalog, Category};
use rmmguard::policy::{Action, Policy};
use std::fmt::Write;

/// Explains the policy.
pub fn explain(catalog: &Catalog, policy: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Policy {} (version {}) is valid.",
        policy.origin, policy.version
    );
    let _ = writeln!(
        s,
        "Catalogue {} with {} tools.",
        catalog.version,
        catalog.tools.len()
    );
    let nets: Vec<String> = policy.home_networks.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(s, "Home networks: {}.", nets.join(", "));
    let verb = |a: Action| match a {
        Action::Block => "blocked",
        Action::Alert => "allowed with an alert",
        Action::Allow => "allowed",
    };
    let _ = writeln!(
        s,
        "By default, catalogued tools are {} in every direction.",
        verb(policy.default_action)
    );
    for c in Category::ALL {
        let n = catalog.tools.iter().filter(|t| t.category == c).count();
        let a = policy
            .categories
            .get(&c)
            .copied()
            .unwrap_or(policy.default_action);
        let _ = writeln!(s, "  {:<15} {:>4} tools: {}", c.as_str(), n, verb(a));
    }
    let _ = writeln!(
        s,
        "Only detections of {} confidence or more are blocked; weaker ones are alerted on.",
        policy.min_block_confidence.as_str()
    );
    for (t, a) in &policy.tools {
        let tool = catalog.tool(*t);
        let _ = writeln!(s, "  {} ({}): {}", tool.name, tool.id, verb(*a));
    }
    if policy.allow.is_empty() {
        let _ = writeln!(s, "No authorised uses (allow rules).");
    } else {
        let _ = writeln!(
            s,
            "Authorised uses (checked in order; the first that matches allows the flow):"
        );
        for r in &policy.allow {
            let mut what: Vec<String> = r
                .tools
                .iter()
                .map(|t| catalog.tool(*t).name.clone())
                .collect();
            what.extend(
                r.categories
                    .iter()
                    .map(|c| format!("any {} tool", c.as_str())),
            );
            let mut cond = Vec::new();
            if !r.hosts.is_empty() {
                cond.push(format!("to {}", r.hosts.join(" or ")));
            }
            if !r.sources.is_empty() {
                let v: Vec<String> = r.sources.iter().map(|n| n.to_string()).collect();
                cond.push(format!("from {}", v.join(" or ")));
            }
            if !r.destinations.is_empty() {
                let v: Vec<String> = r.destinations.iter().map(|n| n.to_string()).collect();
                cond.push(format!("to servers in {}", v.join(" or ")));
            }
            match r.direction {
                Some(d) => cond.push(format!("{} only", d.as_str())),
                None => cond.push("in any direction".into()),
            }
            let _ = writeln!(s, "  '{}': {} {}", r.name, what.join(", "), cond.join(", "));
        }
    }
    let _ = writeln!(
        s,
        "Blocked flows are {}. DNS lookups of catalogued names are {}. Undecodable packets are {}. If rmmguard is down, traffic {}.",
        match policy.block_mode {
            rmmguard::policy::BlockMode::Reject => "refused (TCP reset, ICMP port unreachable)",
            rmmguard::policy::BlockMode::Drop => "dropped silently",
        },
        match policy.dns_query_action {
            Some(a) => verb(a),
            None => "handled like the tool itself",
        },
        if policy.drop_malformed { "dropped" } else { "passed" },
        if policy.fail_open { "passes (fail-open)" } else { "is blocked (fail-closed)" }
    );
    s
}
