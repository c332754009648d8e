//! `rmmguard audit`: the inventory of remote-access tools per internal host (CISA AA23-025A).

use crate::CommonArgs;
use rmmguard::engine::{self, learned::Learned, ConfigHandle};
use rmmguard::output::audit::Report;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// Output formats of `rmmguard audit`.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum AuditFormat {
    /// A text table.
    Table,
    /// One JSON object.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Options of `rmmguard audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Output format (on standard output).
    #[arg(long, value_enum, default_value = "table")]
    format: AuditFormat,
    /// Also write a self-contained HTML report (table and chart of tool use over time) here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Flows tracked at once.
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: usize,
    /// Capture files.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
}

/// Runs the audit.
pub fn run(a: AuditArgs) -> Result<u8, String> {
    let cfg = crate::load_config(&a.common)?;
    let catalog = cfg.catalog.clone();
    let policy = cfg.policy.clone();
    let handle = ConfigHandle::new(cfg);
    let learned = Arc::new(Learned::new(1 << 16));
    let mut sink = rmmguard::replay::Collect::default();
    let opts = rmmguard::replay::Options {
        engine: engine::Options {
            max_flows: a.max_flows.max(1),
            record_flows: true,
            ..engine::Options::default()
        },
        workers: 1,
        progress: super::progress::bar(std::io::stderr().is_terminal()),
        ..rmmguard::replay::Options::default()
    };
    tracing::info!(captures = a.captures.len(), "audit: replaying");
    let out = rmmguard::replay::run(&a.captures, handle, learned, &mut sink, opts)
        .map_err(|e| e.to_string())?;
    tracing::info!(
        flows = out.records.len(),
        events = sink.events.len(),
        "audit: replay done"
    );
    let names: Vec<String> = a.captures.iter().map(|p| p.display().to_string()).collect();
    let report = Report::build(
        &names,
        &catalog,
        &policy,
        &out.records,
        &sink.events,
        out.stats.packets,
    );
    if let Some(path) = &a.html {
        std::fs::write(path, report.to_html(&catalog))
            .map_err(|e| format!("{}: cannot write the HTML report: {e}", path.display()))?;
        tracing::info!(file = %path.display(), "audit: HTML report written");
    }
    let text = match a.format {
        AuditFormat::Table => report.to_table(),
        AuditFormat::Csv => report.to_csv(),
        AuditFormat::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
        }
    };
    print!("{text}");
    if out.reader.truncated_records > 0 {
        eprintln!(
            "rmmguard: warning: {} truncated record(s) at the end of a capture",
            out.reader.truncated_records
        );
    }
    Ok(0)
}
