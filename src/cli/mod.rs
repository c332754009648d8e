//! Subcommands of the `rmmguard` binary that are more than a few lines.

pub mod catalog;
pub mod check;
pub mod progress;
