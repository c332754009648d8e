//! Outputs: EVE-style JSON events and run summaries.

pub mod audit;
pub mod events;
pub mod metrics;
pub mod summary;
