//! The audit report (CISA AA23-025A's first network step): which remote-access tools each
//! internal host used, when, how much, on what evidence, and whether the policy allows it.
//!
//! Built from a replay with `record_flows` on (one [`FlowRecord`] per ended flow: times, bytes,
//! final state) and the decision events (method, evidence, allow rule), joined on the flow id.
//! Rendered as a text table, JSON, CSV, or a self-contained HTML page (inline CSS, JS and SVG; no
//! network) with a chart of tool use over time.
//!
//! Everything a packet carried (evidence, host names) is escaped for the output it goes to:
//! control characters are shown as `\xNN` in the table, HTML is entity-escaped, and CSV cells
//! that a spreadsheet would read as a formula are prefixed with `'`.

use crate::catalog::Catalog;
use crate::engine::{Event, FlowRecord};
use crate::flow::{FlowState, NO_TOOL};
use crate::policy::{Action, Direction, Policy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Distinct evidence strings kept per row.
pub const MAX_EVIDENCE: usize = 8;
/// Distinct peers kept per row.
pub const MAX_PEERS: usize = 8;
/// Time buckets of the chart.
pub const CHART_BUCKETS: usize = 48;

/// One internal host's use of one tool.
#[derive(Serialize, Debug, Clone)]
pub struct Row {
    /// The host (an address in the home networks; for flows with no end at home, the client).
    pub host: String,
    /// Whether `host` is in the policy's home networks.
    pub home: bool,
    /// Tool id.
    pub tool: String,
    /// Tool name.
    pub tool_name: String,
    /// Tool category.
    pub category: String,
    /// The host's role: client, server or both.
    pub role: String,
    /// First packet (UTC).
    pub first_seen: String,
    /// Last packet (UTC).
    pub last_seen: String,
    /// First packet, ns since the epoch.
    pub first_ns: u64,
    /// Last packet, ns since the epoch.
    pub last_ns: u64,
    /// Flows.
    pub flows: u64,
    /// Packets (both directions).
    pub packets: u64,
    /// Bytes (both directions).
    pub bytes: u64,
    /// Directions seen (outbound, inbound, internal, external).
    pub directions: Vec<String>,
    /// Peers (the other end), at most [`MAX_PEERS`].
    pub peers: Vec<String>,
    /// Detection methods.
    pub methods: Vec<String>,
    /// Evidence: what was seen (SNI, port, fingerprint, ...), at most [`MAX_EVIDENCE`].
    pub evidence: Vec<String>,
    /// Flows the policy blocks.
    pub blocked: u64,
    /// Flows the policy lets pass with an alert.
    pub alerted: u64,
    /// Flows an allow rule authorises.
    pub allowed: u64,
    /// The allow rules that matched.
    pub rules: Vec<String>,
    /// In words: allowed, allowed with an alert, blocked, partly blocked.
    pub verdict: String,
}

/// Flows per tool in one time bucket.
#[derive(Serialize, Debug, Clone)]
pub struct Bucket {
    /// Bucket start, ns since the epoch.
    pub start_ns: u64,
    /// Flows started in the bucket, by tool id.
    pub flows: BTreeMap<String, u64>,
}

/// The whole audit.
#[derive(Serialize, Debug, Clone)]
pub struct Report {
    /// Captures read.
    pub captures: Vec<String>,
    /// Catalogue version.
    pub catalog_version: String,
    /// Policy file.
    pub policy: String,
    /// Policy version.
    pub policy_version: String,
    /// Home networks.
    pub home_networks: Vec<String>,
    /// Packets read.
    pub packets: u64,
    /// Flows seen.
    pub flows: u64,
    /// Flows of catalogued tools.
    pub tool_flows: u64,
    /// Internal hosts with at least one tool.
    pub hosts: usize,
    /// Rows, by host then tool.
    pub rows: Vec<Row>,
    /// Tool use over time (flows started per bucket).
    pub timeline: Vec<Bucket>,
    /// Width of a bucket (ns).
    pub bucket_ns: u64,
}

#[derive(Default)]
struct Acc {
    first: u64,
    last: u64,
    flows: u64,
    packets: u64,
    bytes: u64,
    client: bool,
    server: bool,
    directions: BTreeSet<&'static str>,
    peers: BTreeSet<IpAddr>,
    methods: BTreeSet<&'static str>,
    evidence: BTreeSet<String>,
    blocked: u64,
    alerted: u64,
    allowed: u64,
    rules: BTreeSet<String>,
}

/// Shows packet-derived bytes safely: printable ASCII as is, anything else as `\xNN`.
pub fn printable(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

fn utc(ts_ns: u64) -> String {
    let t = super::events::timestamp(ts_ns);
    format!("{}Z", &t[..19])
}

impl Report {
    /// Builds the report from the ended flows and the decision events of a replay.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        captures: &[String],
        catalog: &Catalog,
        policy: &Policy,
        records: &[FlowRecord],
        events: &[Event],
        packets: u64,
    ) -> Report {
        let by_flow: HashMap<u64, &Event> = events.iter().map(|e| (e.flow_id, e)).collect();
        let mut acc: BTreeMap<(IpAddr, u16), Acc> = BTreeMap::new();
        let mut tool_flows = 0u64;
        let mut span: Option<(u64, u64)> = None;
        let mut starts: Vec<(u64, u16)> = Vec::new();
        for r in records {
            let f = &r.flow;
            if f.tool == NO_TOOL || f.tool as usize >= catalog.tools.len() {
                continue;
            }
            tool_flows += 1;
            let client = crate::decode::to_ip(&r.client.0);
            let server = crate::decode::to_ip(&r.server.0);
            let dir = policy.direction(&client, &server);
            let ev = by_flow.get(&f.id).copied();
            let action = match ev {
                Some(e) => e.action,
                None if f.state == FlowState::Blocked => Action::Block,
                None => Action::Alert,
            };
            // A DNS question names the tool the client is about to use; the resolver is not
            // using it.
            let dns = ev.is_some_and(|e| e.method == crate::inspect::Method::DnsQuery);
            let ends: Vec<(IpAddr, IpAddr, bool)> = match dir {
                Direction::Outbound | Direction::External => vec![(client, server, true)],
                Direction::Inbound if dns => Vec::new(),
                Direction::Inbound => vec![(server, client, false)],
                Direction::Internal if dns => vec![(client, server, true)],
                Direction::Internal => vec![(client, server, true), (server, client, false)],
            };
            span = Some(match span {
                None => (f.first_ns, f.last_ns),
                Some((a, b)) => (a.min(f.first_ns), b.max(f.last_ns)),
            });
            starts.push((f.first_ns, f.tool));
            for (host, peer, is_client) in ends {
                let a = acc.entry((host, f.tool)).or_insert_with(|| Acc {
                    first: u64::MAX,
                    ..Acc::default()
                });
                a.first = a.first.min(f.first_ns);
                a.last = a.last.max(f.last_ns);
                a.flows += 1;
                a.packets += (f.pkts[0] + f.pkts[1]) as u64;
                a.bytes += f.bytes[0] + f.bytes[1];
                if is_client {
                    a.client = true;
                } else {
                    a.server = true;
                }
                a.directions.insert(dir.as_str());
                if a.peers.len() < MAX_PEERS {
                    a.peers.insert(peer);
                }
                match action {
                    Action::Block => a.blocked += 1,
                    Action::Alert => a.alerted += 1,
                    Action::Allow => a.allowed += 1,
                }
                if let Some(e) = ev {
                    a.methods.insert(e.method.as_str());
                    if !e.evidence.is_empty() && a.evidence.len() < MAX_EVIDENCE {
                        a.evidence.insert(printable(e.evidence.as_bytes()));
                    }
                    if let Some(name) = e
                        .rule
                        .and_then(|i| policy.allow.get(i as usize))
                        .map(|r| r.name.clone())
                    {
                        a.rules.insert(name);
                    }
                }
            }
        }
        let mut hosts = BTreeSet::new();
        let rows: Vec<Row> = acc
            .into_iter()
            .map(|((host, tool), a)| {
                let t = catalog.tool(tool);
                let home = policy.is_home(&host);
                if home {
                    hosts.insert(host);
                }
                let verdict = if a.blocked == a.flows {
                    "blocked"
                } else if a.blocked > 0 {
                    "partly blocked"
                } else if a.alerted > 0 {
                    "allowed with an alert"
                } else {
                    "allowed"
                };
                Row {
                    host: host.to_string(),
                    home,
                    tool: t.id.clone(),
                    tool_name: t.name.clone(),
                    category: t.category.as_str().to_string(),
                    role: match (a.client, a.server) {
                        (true, true) => "client and server",
                        (true, false) => "client",
                        _ => "server",
                    }
                    .to_string(),
                    first_seen: utc(a.first),
                    last_seen: utc(a.last),
                    first_ns: a.first,
                    last_ns: a.last,
                    flows: a.flows,
                    packets: a.packets,
                    bytes: a.bytes,
                    directions: a.directions.iter().map(|s| s.to_string()).collect(),
                    peers: a.peers.iter().map(|p| p.to_string()).collect(),
                    methods: a.methods.iter().map(|s| s.to_string()).collect(),
                    evidence: a.evidence.into_iter().collect(),
                    blocked: a.blocked,
                    alerted: a.alerted,
                    allowed: a.allowed,
                    rules: a.rules.into_iter().collect(),
                    verdict: verdict.to_string(),
                }
            })
            .collect();
        let (timeline, bucket_ns) = timeline(catalog, span, &starts);
        Report {
            captures: captures.to_vec(),
            catalog_version: catalog.version.clone(),
            policy: policy.origin.clone(),
            policy_version: policy.version.clone(),
            home_networks: policy.home_networks.iter().map(|n| n.to_string()).collect(),
            packets,
            flows: records.len() as u64,
            tool_flows,
            hosts: hosts.len(),
            rows,
            timeline,
            bucket_ns,
        }
    }

    /// A text table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Audit of {} capture(s): {} packets, {} flows, {} with a remote-access tool, {} internal host(s).",
            self.captures.len(),
            self.packets,
            self.flows,
            self.tool_flows,
            self.hosts
        );
        let _ = writeln!(
            s,
            "Policy {} (version {}), catalogue {}; home networks {}.",
            self.policy,
            self.policy_version,
            self.catalog_version,
            self.home_networks.join(", ")
        );
        if self.rows.is_empty() {
            let _ = writeln!(s, "No remote-access tool seen.");
            return s;
        }
        let hosts: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                if r.home {
                    r.host.clone()
                } else {
                    format!("{} (not home)", r.host)
                }
            })
            .collect();
        let hw = hosts.iter().map(|h| h.len()).max().unwrap_or(4).max(4);
        let tw = self
            .rows
            .iter()
            .map(|r| r.tool.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            s,
            "{:<hw$} {:<tw$} {:<17} {:<20} {:<20} {:>6} {:>10}  {:<21} EVIDENCE",
            "HOST", "TOOL", "ROLE", "FIRST SEEN", "LAST SEEN", "FLOWS", "BYTES", "POLICY"
        );
        for (r, host) in self.rows.iter().zip(hosts) {
            let _ = writeln!(
                s,
                "{:<hw$} {:<tw$} {:<17} {:<20} {:<20} {:>6} {:>10}  {:<21} {}: {}",
                host,
                r.tool,
                r.role,
                r.first_seen,
                r.last_seen,
                r.flows,
                r.bytes,
                r.verdict,
                r.methods.join("+"),
                r.evidence.join(", ")
            );
        }
        s
    }

    /// CSV, one line per row, with a header.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "host,home,tool,tool_name,category,role,first_seen,last_seen,flows,packets,bytes,directions,peers,methods,evidence,blocked,alerted,allowed,rules,verdict\n",
        );
        for r in &self.rows {
            let cells = [
                r.host.clone(),
                r.home.to_string(),
                r.tool.clone(),
                r.tool_name.clone(),
                r.category.clone(),
                r.role.clone(),
                r.first_seen.clone(),
                r.last_seen.clone(),
                r.flows.to_string(),
                r.packets.to_string(),
                r.bytes.to_string(),
                r.directions.join(" "),
                r.peers.join(" "),
                r.methods.join(" "),
                r.evidence.join(" | "),
                r.blocked.to_string(),
                r.alerted.to_string(),
                r.allowed.to_string(),
                r.rules.join(" | "),
                r.verdict.clone(),
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            s.push_str(&line.join(","));
            s.push('\n');
        }
        s
    }

    /// A self-contained HTML page: summary, a chart of tool use over time (inline SVG) and the
    /// inventory table (sortable with a little inline script).
    pub fn to_html(&self, catalog: &Catalog) -> String {
        let mut h = String::with_capacity(32 * 1024);
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n");
        h.push_str("<title>rmmguard audit</title>\n<style>\n");
        h.push_str(CSS);
        h.push_str("</style></head><body>\n<h1>Remote-access tool audit</h1>\n");
        let _ = writeln!(
            h,
            "<p class=\"meta\">{} capture(s): {}. Policy <b>{}</b> (version {}), catalogue {}. Home networks: {}.</p>",
            self.captures.len(),
            esc(&self.captures.join(", ")),
            esc(&self.policy),
            esc(&self.policy_version),
            esc(&self.catalog_version),
            esc(&self.home_networks.join(", "))
        );
        let blocked_rows = self.rows.iter().filter(|r| r.blocked > 0).count();
        let _ = writeln!(
            h,
            "<div class=\"cards\"><div class=\"card\"><span id=\"n-hosts\">{}</span>internal hosts</div>\
<div class=\"card\"><span id=\"n-tools\">{}</span>tools</div>\
<div class=\"card\"><span id=\"n-flows\">{}</span>tool flows of {}</div>\
<div class=\"card\"><span id=\"n-blocked\">{}</span>host/tool pairs the policy blocks</div></div>",
            self.hosts,
            self.rows.iter().map(|r| &r.tool).collect::<BTreeSet<_>>().len(),
            self.tool_flows,
            self.flows,
            blocked_rows
        );
        h.push_str("<h2>Tool use over time</h2>\n");
        h.push_str(&self.chart_svg(catalog));
        h.push_str("<h2>Inventory by internal host</h2>\n");
        h.push_str("<table id=\"inventory\"><thead><tr>");
        for (i, c) in [
            "Host",
            "Tool",
            "Role",
            "First seen (UTC)",
            "Last seen (UTC)",
            "Flows",
            "Bytes",
            "Evidence",
            "Policy",
        ]
        .iter()
        .enumerate()
        {
            let _ = write!(h, "<th data-col=\"{i}\">{c}</th>");
        }
        h.push_str("</tr></thead><tbody>\n");
        for r in &self.rows {
            let cls = if r.blocked == r.flows {
                "block"
            } else if r.blocked > 0 {
                "partial"
            } else {
                "allow"
            };
            let rules = if r.rules.is_empty() {
                String::new()
            } else {
                format!(" <small>(rule {})</small>", esc(&r.rules.join(", ")))
            };
            let _ = writeln!(
                h,
                "<tr class=\"row\" data-host=\"{host}\" data-tool=\"{tool}\"><td>{host}{nh}</td><td>{name}<br><small>{cat}</small></td><td>{role}</td><td class=\"t\">{first}</td><td class=\"t\">{last}</td><td class=\"num\">{flows}</td><td class=\"num\" data-v=\"{bytes}\">{hb}</td><td><small>{methods}</small><br>{ev}</td><td class=\"{cls}\">{verdict}{rules}</td></tr>",
                host = esc(&r.host),
                nh = if r.home { "" } else { " <small>(not home)</small>" },
                tool = esc(&r.tool),
                name = esc(&r.tool_name),
                cat = esc(&r.category),
                role = esc(&r.role),
                first = esc(&r.first_seen),
                last = esc(&r.last_seen),
                flows = r.flows,
                bytes = r.bytes,
                hb = human_bytes(r.bytes),
                methods = esc(&r.methods.join(", ")),
                ev = esc(&r.evidence.join(", ")),
                verdict = esc(&r.verdict),
            );
        }
        h.push_str("</tbody></table>\n");
        h.push_str("<p class=\"meta\">Made by rmmguard audit. Internal flows are listed under both hosts. Evidence is what the packets carried, shown escaped.</p>\n");
        h.push_str("<script>\n");
        h.push_str(JS);
        h.push_str("</script>\n</body></html>\n");
        h
    }

    fn chart_svg(&self, catalog: &Catalog) -> String {
        let (w, hgt, left, top, bottom) = (1000.0f64, 300.0f64, 48.0f64, 12.0f64, 40.0f64);
        let legend_w = 250.0;
        let plot_w = w - left - legend_w - 10.0;
        let plot_h = hgt - top - bottom;
        let mut tools: BTreeMap<&str, u64> = BTreeMap::new();
        for b in &self.timeline {
            for (t, n) in &b.flows {
                *tools.entry(t.as_str()).or_insert(0) += n;
            }
        }
        let mut order: Vec<(&str, u64)> = tools.into_iter().collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let max = self
            .timeline
            .iter()
            .map(|b| b.flows.values().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1);
        // Four whole-number ticks.
        let tick = max.div_ceil(4);
        let max = tick * 4;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"Flows per tool over time\">"
        );
        // Axes and grid.
        for i in 0..=4 {
            let y = top + plot_h - plot_h * i as f64 / 4.0;
            let v = tick * i;
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
                left + plot_w,
                left - 6.0,
                y + 4.0
            );
        }
        let n = self.timeline.len().max(1);
        let bw = plot_w / n as f64;
        for (i, b) in self.timeline.iter().enumerate() {
            let x = left + bw * i as f64;
            let mut y = top + plot_h;
            for (ci, (tool, _)) in order.iter().enumerate() {
                let v = b.flows.get(*tool).copied().unwrap_or(0);
                if v == 0 {
                    continue;
                }
                let hh = plot_h * v as f64 / max as f64;
                y -= hh;
                let _ = writeln!(
                    s,
                    "<rect class=\"bar\" data-tool=\"{t}\" data-flows=\"{v}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{hh:.1}\" fill=\"{}\"><title>{t}: {v} flow(s) from {}</title></rect>",
                    x + 1.0,
                    (bw - 2.0).max(1.0),
                    color(ci),
                    esc(&utc(b.start_ns)),
                    t = esc(tool),
                );
            }
        }
        let _ = writeln!(
            s,
            "<line class=\"axisline\" x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
            top + plot_h,
            left + plot_w,
            top + plot_h
        );
        if let (Some(f), Some(l)) = (self.timeline.first(), self.timeline.last()) {
            let end = l.start_ns + self.bucket_ns;
            let _ = writeln!(
                s,
                "<text class=\"axis\" x=\"{left}\" y=\"{:.1}\">{}</text><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                top + plot_h + 18.0,
                esc(&utc(f.start_ns)),
                left + plot_w,
                top + plot_h + 18.0,
                esc(&utc(end))
            );
            let _ = writeln!(
                s,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">flows started per {}</text>",
                left + plot_w / 2.0,
                top + plot_h + 34.0,
                esc(&human_duration(self.bucket_ns))
            );
        }
        for (ci, (tool, total)) in order.iter().enumerate() {
            let y = top + 14.0 + 18.0 * ci as f64;
            let name = catalog
                .tool_id(tool)
                .map(|t| catalog.tool(t).name.clone())
                .unwrap_or_else(|| tool.to_string());
            let name = if name.chars().count() > 30 {
                name.chars().take(29).chain(std::iter::once('…')).collect()
            } else {
                name
            };
            let _ = writeln!(
                s,
                "<g class=\"legend\" data-tool=\"{t}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{} ({total})</text></g>",
                w - legend_w,
                y - 10.0,
                color(ci),
                w - legend_w + 18.0,
                y,
                esc(&name),
                t = esc(tool),
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn timeline(
    catalog: &Catalog,
    span: Option<(u64, u64)>,
    starts: &[(u64, u16)],
) -> (Vec<Bucket>, u64) {
    let Some((a, b)) = span else {
        return (Vec::new(), 0);
    };
    let width = ((b - a) / CHART_BUCKETS as u64 + 1).max(1_000_000_000);
    let n = ((b - a) / width + 1) as usize;
    let mut v: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start_ns: a + width * i as u64,
            flows: BTreeMap::new(),
        })
        .collect();
    for (t, tool) in starts {
        let i = (((t - a) / width) as usize).min(n - 1);
        *v[i]
            .flows
            .entry(catalog.tool(*tool).id.clone())
            .or_insert(0) += 1;
    }
    (v, width)
}

fn color(i: usize) -> &'static str {
    const C: [&str; 12] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac", "#1f77b4", "#8c564b",
    ];
    C[i % C.len()]
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn human_duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    if s >= 2 * 86_400 {
        format!("{} days", s / 86_400)
    } else if s >= 2 * 3600 {
        format!("{} hours", s / 3600)
    } else if s >= 120 {
        format!("{} minutes", s / 60)
    } else {
        format!("{} seconds", s.max(1))
    }
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A CSV cell: quoted when needed, and defused when a spreadsheet would read it as a formula.
pub fn csv_cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

const CSS: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 6px}h2{font-size:16px;margin:22px 0 8px}
.meta{color:#555;font-size:13px}
.cards{display:flex;gap:12px;margin:12px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 16px;font-size:13px;color:#555}
.card span{display:block;font-size:24px;color:#222;font-weight:bold}
svg{background:#fff;border:1px solid #ddd;border-radius:6px}
svg text{font-size:12px;fill:#333}.grid{stroke:#eee}.axisline{stroke:#999}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #ddd;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0;cursor:pointer;user-select:none}
td.num{text-align:right}td.t{white-space:nowrap}
td.block{color:#b00020;font-weight:bold}td.partial{color:#b36b00;font-weight:bold}td.allow{color:#2e7d32}
small{color:#666}
";

const JS: &str = "(function(){
var t=document.getElementById('inventory');if(!t)return;
var dir={};
t.querySelectorAll('th').forEach(function(th){th.addEventListener('click',function(){
var c=+th.dataset.col;dir[c]=!dir[c];var rows=[].slice.call(t.tBodies[0].rows);
rows.sort(function(a,b){var x=a.cells[c],y=b.cells[c];
var p=x.dataset.v||x.textContent,q=y.dataset.v||y.textContent;
var r=(isNaN(p)||isNaN(q))?p.localeCompare(q):(p-q);return dir[c]?r:-r;});
rows.forEach(function(r){t.tBodies[0].appendChild(r);});});});
})();
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
        assert_eq!(csv_cell("plain"), "plain");
    }

    #[test]
    fn packet_bytes_are_shown_escaped() {
        assert_eq!(printable(b"a\x1b[31m\\"), "a\\x1b[31m\\x5c");
        assert_eq!(esc("<script>&'\""), "&lt;script&gt;&amp;&#39;&quot;");
    }
}
