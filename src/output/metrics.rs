//! Metrics published by the workers and served to Prometheus.
//!
//! The hot path never touches this module: each worker keeps plain counters in its
//! [`Stats`](crate::engine::Stats) and, about once a second, copies them into its slot here
//! ([`Hub::publish`], one uncontended lock per worker per second). A scrape sums the slots.

use crate::engine::Stats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A worker's published state.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    /// Its counters.
    pub stats: Stats,
    /// Flows in its table.
    pub active_flows: u64,
    /// Flows under inspection.
    pub inspecting: u64,
    /// Bytes held by its flow table and inspection state.
    pub memory_bytes: u64,
}

/// Configuration state for the version and reload metrics.
#[derive(Clone, Debug, Default)]
pub struct ConfigInfo {
    /// Catalogue version.
    pub catalog_version: String,
    /// Policy version.
    pub policy_version: String,
    /// Unix time (s) of the last reload attempt.
    pub last_reload_unix: f64,
    /// Whether it succeeded.
    pub last_reload_ok: bool,
}

/// Shared between the workers (which publish) and the metrics server (which reads).
pub struct Hub {
    workers: Vec<Mutex<WorkerSnapshot>>,
    /// Packets the kernel dropped because a queue was full (inline mode).
    pub queue_drops: AtomicU64,
    /// Packets passed by fail-open (queue full or engine unavailable).
    pub fail_open: AtomicU64,
    /// Events lost to output errors (a full disk).
    pub events_lost: AtomicU64,
    /// Version and reload state.
    pub config: Mutex<ConfigInfo>,
}

impl Hub {
    /// A hub for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Hub {
            workers: (0..workers.max(1)).map(|_| Mutex::new(WorkerSnapshot::default())).collect(),
            queue_drops: AtomicU64::new(0),
            fail_open: AtomicU64::new(0),
            events_lost: AtomicU64::new(0),
            config: Mutex::new(ConfigInfo::default()),
        }
    }

    /// Publishes worker `w`'s state.
    pub fn publish(&self, w: usize, snap: WorkerSnapshot) {
        if let Some(slot) = self.workers.get(w) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = snap;
        }
    }

    /// The sum over all workers.
    pub fn total(&self) -> WorkerSnapshot {
        let mut t = WorkerSnapshot::default();
        for w in &self.workers {
            let s = w.lock().unwrap_or_else(|e| e.into_inner());
            t.stats.add(&s.stats);
            t.active_flows += s.active_flows;
            t.inspecting += s.inspecting;
            t.memory_bytes += s.memory_bytes;
        }
        t
    }

    /// Records a reload attempt.
    pub fn reloaded(&self, catalog_version: &str, policy_version: &str, ok: bool) {
        let mut c = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            c.catalog_version = catalog_version.to_string();
            c.policy_version = policy_version.to_string();
        }
        c.last_reload_ok = ok;
        c.last_reload_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
