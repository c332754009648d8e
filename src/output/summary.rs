//! The run summary: a table per tool (text) or one JSON object.

use crate::catalog::Catalog;
use crate::engine::Stats;
use crate::source::pcapfile::ReaderStats;
use serde::Serialize;

/// Per-tool line of the summary.
#[derive(Serialize, Debug, Clone)]
pub struct ToolLine {
    /// Tool id.
    pub tool: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Flows.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Flows blocked.
    pub blocked: u64,
    /// Flows allowed (alerted or allowed by a rule).
    pub allowed: u64,
}

/// The whole summary.
#[derive(Serialize, Debug, Clone)]
pub struct Summary {
    /// Captures read.
    pub captures: Vec<String>,
    /// Events that could not be written (a full disk): filtering went on regardless.
    pub events_lost: u64,
    /// Catalogue version and tool count.
    pub catalog_version: String,
    /// Tools in the catalogue.
    pub catalog_tools: usize,
    /// Policy file and version.
    pub policy: String,
    /// Policy version.
    pub policy_version: String,
    /// Packets read.
    pub packets: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Packets that would pass.
    pub packets_passed: u64,
    /// Packets that would be dropped.
    pub packets_blocked: u64,
    /// Flows seen.
    pub flows: u64,
    /// Flows with a catalogued tool.
    pub rmm_flows: u64,
    /// Of those, blocked.
    pub blocked_flows: u64,
    /// Of those, allowed.
    pub allowed_flows: u64,
    /// Flows evicted from a full table.
    pub flows_evicted: u64,
    /// Undecodable packets by kind.
    pub malformed: std::collections::BTreeMap<String, u64>,
    /// Truncated last records.
    pub truncated_records: u64,
    /// Per-tool lines, most flows first.
    pub tools: Vec<ToolLine>,
}

impl Summary {
    /// Builds the summary from the engine's counters.
    pub fn build(
        captures: &[String],
        catalog: &Catalog,
        policy: &crate::policy::Policy,
        stats: &Stats,
        reader: &ReaderStats,
    ) -> Summary {
        let mut tools: Vec<ToolLine> = stats
            .tools
            .iter()
            .enumerate()
            .filter(|(i, t)| *i < catalog.tools.len() && t.flows > 0)
            .map(|(i, t)| {
                let tool = &catalog.tools[i];
                ToolLine {
                    tool: tool.id.clone(),
                    name: tool.name.clone(),
                    category: tool.category.as_str().to_string(),
                    flows: t.flows,
                    packets: t.packets,
                    bytes: t.bytes,
                    blocked: t.blocked,
                    allowed: t.allowed,
                }
            })
            .collect();
        tools.sort_by(|a, b| b.flows.cmp(&a.flows).then(a.tool.cmp(&b.tool)));
        let malformed = crate::decode::DecodeError::ALL
            .iter()
            .map(|e| (e.name().to_string(), stats.malformed[*e as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        Summary {
            captures: captures.to_vec(),
            catalog_version: catalog.version.clone(),
            catalog_tools: catalog.tools.len(),
            policy: policy.origin.clone(),
            policy_version: policy.version.clone(),
            packets: stats.packets,
            bytes: stats.bytes,
            packets_passed: stats.passed,
            packets_blocked: stats.dropped,
            flows: stats.flows_ended,
            rmm_flows: tools.iter().map(|t| t.flows).sum(),
            blocked_flows: tools.iter().map(|t| t.blocked).sum(),
            allowed_flows: tools.iter().map(|t| t.allowed).sum(),
            flows_evicted: stats.flows_evicted,
            malformed,
            truncated_records: reader.truncated_records,
            events_lost: 0,
            tools,
        }
    }

    /// The text table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{} packets, {} flows read from {}\n",
            self.packets,
            self.flows,
            self.captures.join(", ")
        ));
        s.push_str(&format!(
            "catalogue {} ({} tools), policy {} ({})\n\n",
            self.catalog_version, self.catalog_tools, self.policy, self.policy_version
        ));
        if self.tools.is_empty() {
            s.push_str("No remote-access tool found.\n");
        } else {
            let w = self
                .tools
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            s.push_str(&format!(
                "{:<w$}  {:<15} {:>7} {:>9} {:>12} {:>8} {:>8}\n",
                "TOOL", "CATEGORY", "FLOWS", "PACKETS", "BYTES", "BLOCKED", "ALLOWED"
            ));
            for t in &self.tools {
                s.push_str(&format!(
                    "{:<w$}  {:<15} {:>7} {:>9} {:>12} {:>8} {:>8}\n",
                    t.name, t.category, t.flows, t.packets, t.bytes, t.blocked, t.allowed
                ));
            }
        }
        s.push_str(&format!(
            "\n{} RMM flows: {} would be blocked, {} allowed. {} packets would pass, {} would be dropped.\n",
            self.rmm_flows, self.blocked_flows, self.allowed_flows, self.packets_passed, self.packets_blocked
        ));
        if !self.malformed.is_empty() {
            let m: Vec<String> = self
                .malformed
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("malformed packets (passed): {}\n", m.join(", ")));
        }
        if self.events_lost > 0 {
            s.push_str(&format!(
                "warning: {} event(s) could not be written (disk full?); the analysis is complete\n",
                self.events_lost
            ));
        }
        if self.truncated_records > 0 {
            s.push_str(&format!(
                "warning: {} truncated record(s) at the end of a capture were skipped\n",
                self.truncated_records
            ));
        }
        if self.flows_evicted > 0 {
            s.push_str(&format!(
                "flows evicted from a full table: {}\n",
                self.flows_evicted
            ));
        }
        s
    }
}
