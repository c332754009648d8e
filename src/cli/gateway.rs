//! `rmmguard inline`, `monitor` and `reload` (being written: issue 5).

use crate::CommonArgs;

/// Options of `rmmguard inline`.
#[derive(clap::Args)]
pub struct InlineArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of `rmmguard monitor`.
#[derive(clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of `rmmguard reload`.
#[derive(clap::Args)]
pub struct ReloadArgs {}

/// Runs inline.
pub fn inline(a: InlineArgs) -> Result<u8, String> {
    let _ = a.common;
    Err("inline is not built yet".into())
}

/// Runs the passive monitor.
pub fn monitor(a: MonitorArgs) -> Result<u8, String> {
    let _ = a.common;
    Err("monitor is not built yet".into())
}

/// Sends SIGHUP.
pub fn reload(_a: ReloadArgs) -> Result<u8, String> {
    Err("reload is not built yet".into())
}
