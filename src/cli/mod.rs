//! Subcommands of the `rmmguard` binary that are more than a few lines.

pub mod audit;
pub mod catalog;
pub mod check;
pub mod gateway;
pub mod gen;
pub mod progress;
pub mod systemd;
