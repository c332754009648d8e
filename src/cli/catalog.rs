//! `rmmguard catalog list|show|match|stats`.

use clap::Subcommand;
use rmmguard::catalog::{Catalog, Category, IndicatorKind, Proto};
use std::collections::BTreeMap;

/// Catalogue subcommands.
#[derive(Subcommand)]
pub enum CatalogCmd {
    /// A table of id, name, category and indicator counts.
    List {
        /// Only this category (rmm, remote-desktop, tunnel).
        #[arg(long)]
        category: Option<String>,
    },
    /// Every indicator of a tool with its sources.
    Show {
        /// Tool id.
        id: String,
    },
    /// Which tool and indicator would match a host name, an address, or PORT/PROTO.
    Match {
        /// A host name, an IP address, or PORT/tcp, PORT/udp.
        what: String,
    },
    /// Counts by category and kind.
    Stats,
}

/// Runs a catalogue subcommand.
pub fn run(cat: &Catalog, cmd: CatalogCmd) -> Result<u8, String> {
    match cmd {
        CatalogCmd::List { category } => {
            let filter = match category.as_deref() {
                None => None,
                Some(c) => Some(Category::parse(c).ok_or_else(|| {
                    format!("unknown category '{c}' (rmm, remote-desktop, tunnel)")
                })?),
            };
            println!(
                "{:<32} {:<36} {:<15} {:>5} {:>5} {:>5}",
                "ID", "NAME", "CATEGORY", "DOMS", "PORTS", "OTHER"
            );
            for t in cat
                .tools
                .iter()
                .filter(|t| filter.is_none_or(|c| t.category == c))
            {
                let d = t
                    .indicators
                    .iter()
                    .filter(|i| matches!(i.kind, IndicatorKind::Domain { .. }))
                    .count();
                let p = t
                    .indicators
                    .iter()
                    .filter(|i| matches!(i.kind, IndicatorKind::Port { .. }))
                    .count();
                let o = t.indicators.len() - d - p;
                println!(
                    "{:<32} {:<36} {:<15} {:>5} {:>5} {:>5}",
                    t.id,
                    t.name,
                    t.category.as_str(),
                    d,
                    p,
                    o
                );
            }
            Ok(0)
        }
        CatalogCmd::Show { id } => {
            let tid = cat
                .tool_id(&id)
                .ok_or_else(|| format!("unknown tool '{id}' (see `rmmguard catalog list`)"))?;
            let t = cat.tool(tid);
            println!(
                "{} ({})\ncategory: {}\nvendor: {}\n",
                t.name,
                t.id,
                t.category.as_str(),
                t.vendor_url
            );
            for i in &t.indicators {
                println!(
                    "  {:<16} {:<48} {:<7} {}",
                    i.kind.kind_name(),
                    i.kind.describe(),
                    i.confidence.as_str(),
                    i.sources.join(", ")
                );
                if let Some(n) = &i.note {
                    println!("  {:<16} note: {}", "", n);
                }
            }
            Ok(0)
        }
        CatalogCmd::Match { what } => {
            let m = &cat.matcher;
            let hit = if let Some((port, proto)) = what.split_once('/') {
                let port: u16 = port.parse().map_err(|_| format!("bad port '{what}'"))?;
                let proto = match proto {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => return Err(format!("bad protocol in '{what}' (tcp or udp)")),
                };
                m.port(proto, port)
            } else if let Ok(ip) = what.parse::<std::net::IpAddr>() {
                m.ip(&ip)
            } else {
                m.domain(what.as_bytes())
            };
            match hit {
                Some(h) => {
                    let t = cat.tool(h.tool);
                    let i = &t.indicators[h.indicator as usize];
                    println!(
                        "{what}: {} ({}) by {} indicator {} [{}], sources: {}",
                        t.name,
                        t.id,
                        i.kind.kind_name(),
                        i.kind.describe(),
                        i.confidence.as_str(),
                        i.sources.join(", ")
                    );
                    if let Some(n) = &i.note {
                        println!("note: {n}");
                    }
                    Ok(0)
                }
                None => {
                    println!("{what}: no catalogued tool matches");
                    Ok(1)
                }
            }
        }
        CatalogCmd::Stats => {
            let mut by_cat: BTreeMap<&str, usize> = BTreeMap::new();
            let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
            for t in &cat.tools {
                *by_cat.entry(t.category.as_str()).or_default() += 1;
                for i in &t.indicators {
                    *by_kind.entry(i.kind.kind_name()).or_default() += 1;
                }
            }
            println!("catalogue {}: {} tools", cat.version, cat.tools.len());
            for (c, n) in by_cat {
                println!("  {c:<16} {n:>5} tools");
            }
            for (k, n) in by_kind {
                println!("  {k:<16} {n:>5} indicators");
            }
            Ok(0)
        }
    }
}
