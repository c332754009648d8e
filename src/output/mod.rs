//! Outputs: EVE-style JSON events and run summaries.

pub mod events;
pub mod summary;
