//! `rmmguard audit` (being written: issue 6).

use crate::CommonArgs;
use std::path::PathBuf;

/// Options of `rmmguard audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Capture files.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
}

/// Runs the audit.
pub fn run(a: AuditArgs) -> Result<u8, String> {
    let _ = (a.common, a.captures);
    Err("audit is not built yet".into())
}
