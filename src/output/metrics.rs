//! Metrics published by the workers and served to Prometheus.
//!
//! The hot path never touches this module: each worker keeps plain counters in its
//! [`Stats`](crate::engine::Stats) and, about once a second, copies them into its slot here
//! ([`Hub::publish`], one uncontended lock per worker per second). A scrape sums the slots and
//! renders the text exposition format (0.0.4); label values (tool ids, methods, directions) are
//! looked up only then, never on the packet path.
//!
//! [`serve`] runs a small HTTP/1.1 server on a tokio current-thread runtime in its own thread:
//! `/metrics` and `/` only, request headers capped at [`MAX_HEADER_BYTES`], slow clients cut off
//! after [`CLIENT_TIMEOUT`], at most [`MAX_CONNECTIONS`] connections at once, one request per
//! connection.

use crate::decode::DecodeError;
use crate::engine::learned::Learned;
use crate::engine::{ConfigHandle, Event, Stats, LATENCY_BUCKETS_NS};
use crate::inspect::Method;
use crate::policy::{Action, Direction};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

impl WorkerSnapshot {
    /// The state of `engine` now.
    pub fn of(engine: &crate::engine::Engine) -> Self {
        WorkerSnapshot {
            stats: engine.stats.clone(),
            active_flows: engine.active_flows() as u64,
            inspecting: engine.inspecting() as u64,
            memory_bytes: engine.memory_bytes() as u64,
        }
    }
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

/// Internal hosts tracked for the "top hosts" metric.
pub const HOSTS_TRACKED: usize = 1024;
/// Internal hosts exported (the label cardinality cap).
pub const HOSTS_EXPORTED: usize = 20;

#[derive(Clone, Copy, Default)]
struct HostCount {
    blocked: u64,
    alerted: u64,
}

/// Internal hosts with blocked or alerted flows: a bounded table fed from events (once per
/// decided flow, off the packet path). When full, the host with the fewest flows makes room.
#[derive(Default)]
struct HostTable {
    map: HashMap<IpAddr, HostCount, ahash::RandomState>,
}

impl HostTable {
    fn note(&mut self, host: IpAddr, action: Action) {
        if !self.map.contains_key(&host) && self.map.len() >= HOSTS_TRACKED {
            let victim = self
                .map
                .iter()
                .min_by_key(|(_, c)| c.blocked + c.alerted)
                .map(|(h, _)| *h);
            if let Some(v) = victim {
                self.map.remove(&v);
            }
        }
        let c = self.map.entry(host).or_default();
        match action {
            Action::Block => c.blocked += 1,
            Action::Alert => c.alerted += 1,
            Action::Allow => {}
        }
    }

    fn top(&self, n: usize) -> Vec<(IpAddr, HostCount)> {
        let mut v: Vec<(IpAddr, HostCount)> = self.map.iter().map(|(h, c)| (*h, *c)).collect();
        v.sort_by(|a, b| {
            (b.1.blocked + b.1.alerted)
                .cmp(&(a.1.blocked + a.1.alerted))
                .then(a.0.cmp(&b.0))
        });
        v.truncate(n);
        v
    }
}

/// A counter written by one worker and read by others, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounter(pub AtomicU64);

/// One worker's queue socket, as last sampled by that worker, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct QueueSocket {
    /// The queue number.
    pub queue: AtomicU64,
    /// Bytes of queued packets waiting unread in the socket.
    pub backlog: AtomicU64,
    /// The socket's receive buffer size, in bytes (0: not sampled yet).
    pub buffer: AtomicU64,
}

/// Shared between the workers (which publish) and the metrics server (which reads).
pub struct Hub {
    workers: Vec<Mutex<WorkerSnapshot>>,
    /// Packets the kernel dropped because a queue was full (inline mode).
    pub queue_drops: AtomicU64,
    /// Packets passed by fail-open (queue full or engine unavailable).
    pub fail_open: AtomicU64,
    /// Packets queued for rmmguard and not answered yet, all queues (inline mode).
    pub queue_waiting: AtomicU64,
    /// Packets each worker received from its queue (inline mode), for the fail-open count.
    /// Each worker adds to its own counter on every packet: one cache line each, so that two
    /// workers never write the same line.
    pub queue_received: Vec<WorkerCounter>,
    /// Packets each worker's queue gave an id but never delivered (see
    /// `NfQueue::skipped`): the fail-open count when the kernel's counters cannot be read.
    pub queue_skipped: Vec<WorkerCounter>,
    /// Each worker's queue socket (inline mode; sampled by the worker about once a second).
    pub queue_sockets: Vec<QueueSocket>,
    /// Events lost to output errors (a full disk).
    pub events_lost: AtomicU64,
    /// Version and reload state.
    pub config: Mutex<ConfigInfo>,
    hosts: Mutex<HostTable>,
}

impl Hub {
    /// A hub for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Hub {
            workers: (0..workers.max(1))
                .map(|_| Mutex::new(WorkerSnapshot::default()))
                .collect(),
            queue_drops: AtomicU64::new(0),
            fail_open: AtomicU64::new(0),
            queue_waiting: AtomicU64::new(0),
            queue_received: (0..workers.max(1))
                .map(|_| WorkerCounter::default())
                .collect(),
            queue_skipped: (0..workers.max(1))
                .map(|_| WorkerCounter::default())
                .collect(),
            queue_sockets: (0..workers.max(1))
                .map(|_| QueueSocket::default())
                .collect(),
            events_lost: AtomicU64::new(0),
            config: Mutex::new(ConfigInfo::default()),
            hosts: Mutex::new(HostTable::default()),
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

    /// Notes a decision for the top-internal-hosts metric (call it where events are written;
    /// once per decided flow, never per packet). Allowed flows and flows with no end in the home
    /// networks are not counted.
    pub fn note_event(&self, ev: &Event) {
        let host = match ev.direction {
            Direction::Outbound | Direction::Internal => ev.client.0,
            Direction::Inbound => ev.server.0,
            Direction::External => return,
        };
        if ev.action == Action::Allow {
            return;
        }
        let ip = crate::decode::to_ip(&host);
        self.hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(ip, ev.action);
    }
}

/// An event sink that notes every event in a [`Hub`] (top hosts) and passes it on.
pub struct HubSink<'a> {
    /// The hub.
    pub hub: Arc<Hub>,
    /// Where events go next.
    pub inner: &'a mut dyn crate::replay::EventSink,
}

impl crate::replay::EventSink for HubSink<'_> {
    fn event(&mut self, ev: &Event, cfg: &crate::engine::Config) {
        self.hub.note_event(ev);
        self.inner.event(ev, cfg);
    }
    fn flush(&mut self) {
        self.inner.flush();
    }
}

/// Writes the text exposition format.
struct Expo {
    out: String,
}

fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Expo {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Renders every metric in the text exposition format (version 0.0.4).
pub fn render(hub: &Hub, config: &ConfigHandle, learned: Option<&Learned>) -> String {
    let t = hub.total();
    let s = &t.stats;
    let cfg = config.get();
    let mut e = Expo {
        out: String::with_capacity(16 * 1024),
    };

    e.family(
        "rmmguard_packets_total",
        "counter",
        "Packets inspected, by verdict (pass = forwarded, drop = blocked).",
    );
    e.sample("rmmguard_packets_total", &[("verdict", "pass")], s.passed);
    e.sample("rmmguard_packets_total", &[("verdict", "drop")], s.dropped);
    e.family(
        "rmmguard_bytes_total",
        "counter",
        "Bytes inspected (captured length), by verdict.",
    );
    e.sample(
        "rmmguard_bytes_total",
        &[("verdict", "pass")],
        s.passed_bytes,
    );
    e.sample(
        "rmmguard_bytes_total",
        &[("verdict", "drop")],
        s.dropped_bytes,
    );

    // Flows by tool, method, direction and action; and the restricted subset.
    let mut by_tool: std::collections::BTreeMap<(u16, usize), u64> = Default::default();
    let mut restricted: std::collections::BTreeMap<(u16, usize), u64> = Default::default();
    for (k, v) in &s.tool_decisions {
        let (tool, r, di) = Stats::split_tool_decision_key(*k);
        *by_tool.entry((tool, di)).or_insert(0) += v;
        if r {
            *restricted.entry((tool, di % 3)).or_insert(0) += v;
        }
    }
    let ntools = cfg.catalog.tools.len();
    let tool_name = |t: u16| -> &str {
        if (t as usize) < ntools {
            cfg.catalog.tool(t).id.as_str()
        } else {
            "unknown"
        }
    };
    let actions = [Action::Block, Action::Alert, Action::Allow];
    e.family(
        "rmmguard_flows_total",
        "counter",
        "Flows of catalogued remote-access tools, by tool, detection method, direction and policy action.",
    );
    for ((tool, di), v) in &by_tool {
        let a = actions[di % 3];
        let d = Direction::ALL[(di / 3) % 4];
        let Some(m) = Method::ALL.get(di / 12) else {
            continue;
        };
        e.sample(
            "rmmguard_flows_total",
            &[
                ("tool", tool_name(*tool)),
                ("method", m.as_str()),
                ("direction", d.as_str()),
                ("action", a.as_str()),
            ],
            v,
        );
    }
    e.family(
        "rmmguard_unauthorised_flows_total",
        "counter",
        "Flows of a tool the policy authorises through allow rules that matched none of them (an authorised tool used outside its allowed sources), by tool and action.",
    );
    for ((tool, a), v) in &restricted {
        e.sample(
            "rmmguard_unauthorised_flows_total",
            &[("tool", tool_name(*tool)), ("action", actions[*a].as_str())],
            v,
        );
    }

    e.family(
        "rmmguard_top_host_flows_total",
        "counter",
        "Blocked or alerted tool flows of the internal hosts with the most of them (at most 20 hosts exported, 1024 tracked).",
    );
    let top = hub
        .hosts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .top(HOSTS_EXPORTED);
    for (h, c) in top {
        let hs = h.to_string();
        e.sample(
            "rmmguard_top_host_flows_total",
            &[("host", &hs), ("action", "block")],
            c.blocked,
        );
        e.sample(
            "rmmguard_top_host_flows_total",
            &[("host", &hs), ("action", "alert")],
            c.alerted,
        );
    }

    e.single(
        "rmmguard_flows_created_total",
        "counter",
        "Flows created in the flow tables.",
        s.flows_created,
    );
    e.single(
        "rmmguard_flows_ended_total",
        "counter",
        "Flows ended (closed, expired, evicted or flushed).",
        s.flows_ended,
    );
    e.single(
        "rmmguard_flows_active",
        "gauge",
        "Flows in the flow tables now.",
        t.active_flows,
    );
    e.single(
        "rmmguard_flows_inspecting",
        "gauge",
        "Flows under inspection now.",
        t.inspecting,
    );
    e.family(
        "rmmguard_flow_evictions_total",
        "counter",
        "Flows evicted early: table_full = the flow table had no room, inspection_full = the inspection pool had no room (decided on what was seen).",
    );
    e.sample(
        "rmmguard_flow_evictions_total",
        &[("reason", "table_full")],
        s.flows_evicted,
    );
    e.sample(
        "rmmguard_flow_evictions_total",
        &[("reason", "inspection_full")],
        s.inspect_evicted,
    );
    e.single(
        "rmmguard_state_memory_bytes",
        "gauge",
        "Bytes held by flow tables, inspection state and fragment reassembly.",
        t.memory_bytes,
    );

    e.family(
        "rmmguard_parse_errors_total",
        "counter",
        "Undecodable packets, by kind.",
    );
    for k in DecodeError::ALL {
        e.sample(
            "rmmguard_parse_errors_total",
            &[("kind", k.name())],
            s.malformed[k as usize],
        );
    }
    e.family(
        "rmmguard_packets_uninspected_total",
        "counter",
        "Packets passed without inspection: not_ip = not IP, other_ip = neither TCP nor UDP.",
    );
    e.sample(
        "rmmguard_packets_uninspected_total",
        &[("reason", "not_ip")],
        s.not_ip,
    );
    e.sample(
        "rmmguard_packets_uninspected_total",
        &[("reason", "other_ip")],
        s.other_ip,
    );
    e.single(
        "rmmguard_ip_fragments_total",
        "counter",
        "IP fragments seen.",
        s.frag.fragments,
    );
    e.family(
        "rmmguard_ip_datagrams_reassembled_total",
        "counter",
        "Fragmented IP datagrams, by outcome.",
    );
    e.sample(
        "rmmguard_ip_datagrams_reassembled_total",
        &[("outcome", "complete")],
        s.frag.reassembled,
    );
    e.sample(
        "rmmguard_ip_datagrams_reassembled_total",
        &[("outcome", "dropped")],
        s.frag.dropped,
    );

    e.single(
        "rmmguard_learned_addresses",
        "gauge",
        "Addresses learned from DNS answers for catalogued names, held now.",
        learned.map_or(0, |l| l.len()),
    );
    e.single(
        "rmmguard_learned_addresses_dropped_total",
        "counter",
        "Addresses not learned because the table was full.",
        learned.map_or(0, |l| l.dropped.load(Ordering::Relaxed)),
    );
    e.single(
        "rmmguard_queue_dropped_packets_total",
        "counter",
        "Packets the kernel dropped because an NFQUEUE queue was full (fail-closed).",
        hub.queue_drops.load(Ordering::Relaxed),
    );
    e.single(
        "rmmguard_fail_open_packets_total",
        "counter",
        "Packets passed uninspected by fail-open because a queue was full (inline mode).",
        hub.fail_open.load(Ordering::Relaxed),
    );
    e.single(
        "rmmguard_queue_waiting_packets",
        "gauge",
        "Packets queued for rmmguard and not answered yet, all queues (inline mode).",
        hub.queue_waiting.load(Ordering::Relaxed),
    );
    for (name, help, backlog) in [
        (
            "rmmguard_queue_backlog_bytes",
            "Bytes of queued packets waiting unread in a queue's socket (inline mode; sampled \
             each second).",
            true,
        ),
        (
            "rmmguard_queue_buffer_bytes",
            "Receive buffer of a queue's socket (inline mode): a queue whose backlog reaches it \
             passes (fail-open) or drops new packets.",
            false,
        ),
    ] {
        e.family(name, "gauge", help);
        for qs in hub
            .queue_sockets
            .iter()
            .filter(|q| q.buffer.load(Ordering::Relaxed) > 0)
        {
            let q = qs.queue.load(Ordering::Relaxed).to_string();
            let v = if backlog { &qs.backlog } else { &qs.buffer };
            e.sample(name, &[("queue", &q)], v.load(Ordering::Relaxed));
        }
    }
    e.single(
        "rmmguard_events_lost_total",
        "counter",
        "Events lost to output errors (for example a full disk).",
        hub.events_lost.load(Ordering::Relaxed),
    );

    e.single(
        "rmmguard_inspected_packets_total",
        "counter",
        "Packets that reached the inspectors.",
        s.inspected_packets,
    );
    e.single(
        "rmmguard_stream_conflicts_total",
        "counter",
        "Client segments of undecided flows dropped because the engine could not read what the \
         server would: bytes other than those already read at the same place (insertion), bytes \
         past the prefix with a hole before them, data on a SYN, urgent data.",
        s.stream_conflicts,
    );
    e.family(
        "rmmguard_inspection_duration_seconds",
        "histogram",
        "Time spent inspecting one packet.",
    );
    let mut cum = 0u64;
    for (i, ub) in LATENCY_BUCKETS_NS.iter().enumerate() {
        cum += s.latency[i];
        let le = format!("{}", *ub as f64 / 1e9);
        e.sample(
            "rmmguard_inspection_duration_seconds_bucket",
            &[("le", &le)],
            cum,
        );
    }
    cum += s.latency[LATENCY_BUCKETS_NS.len()];
    e.sample(
        "rmmguard_inspection_duration_seconds_bucket",
        &[("le", "+Inf")],
        cum,
    );
    e.sample(
        "rmmguard_inspection_duration_seconds_sum",
        &[],
        s.latency_sum_ns as f64 / 1e9,
    );
    e.sample("rmmguard_inspection_duration_seconds_count", &[], cum);

    let info = hub.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
    e.family(
        "rmmguard_config_info",
        "gauge",
        "The catalogue and policy in force (always 1; the versions are labels).",
    );
    e.sample(
        "rmmguard_config_info",
        &[
            ("catalog_version", &cfg.catalog.version),
            ("policy_version", &cfg.policy.version),
            ("policy", &cfg.policy.origin),
            ("tools", &ntools.to_string()),
        ],
        1,
    );
    e.single(
        "rmmguard_config_last_reload_timestamp_seconds",
        "gauge",
        "Unix time of the last load or reload attempt of the policy and catalogue.",
        info.last_reload_unix,
    );
    e.single(
        "rmmguard_config_last_reload_success",
        "gauge",
        "Whether the last load or reload attempt succeeded (1) or was rejected (0).",
        info.last_reload_ok as u8,
    );
    e.out
}

/// Request headers larger than this are refused (431).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// A client that has not sent its request, or not taken its response, by then is cut off.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// A running metrics server. Dropping it (or [`ServerHandle::stop`]) stops it.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `/metrics` on `addr` from a thread of its own. Fails at once (one line naming the
/// address) when the address cannot be bound, for example when the port is in use.
pub fn serve(
    addr: SocketAddr,
    hub: Arc<Hub>,
    config: Arc<ConfigHandle>,
    learned: Option<Arc<Learned>>,
) -> Result<ServerHandle, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    // The initial load counts as the first (successful) reload.
    let never = hub
        .config
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_reload_unix
        == 0.0;
    if never {
        let cfg = config.get();
        hub.reloaded(&cfg.catalog.version, &cfg.policy.version, true);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("metrics server on {local}: {e}");
                        return;
                    }
                };
                let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                let state = Arc::new((hub, config, learned));
                tokio::pin!(rx);
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        acc = listener.accept() => {
                            let Ok((sock, _peer)) = acc else {
                                // Out of descriptors and the like: back off briefly.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            };
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                drop(sock);
                                continue;
                            };
                            let state = state.clone();
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(
                                    CLIENT_TIMEOUT,
                                    handle(sock, &state.0, &state.1, state.2.as_deref()),
                                )
                                .await;
                                drop(permit);
                            });
                        }
                    }
                }
            });
        })
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    tracing::info!("serving metrics on http://{local}/metrics");
    Ok(ServerHandle {
        addr: local,
        stop: Some(tx),
        thread: Some(thread),
    })
}

const INDEX: &str =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rmmguard</title></head>\
<body><h1>rmmguard</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

async fn handle(
    mut sock: tokio::net::TcpStream,
    hub: &Hub,
    config: &ConfigHandle,
    learned: Option<&Learned>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; MAX_HEADER_BYTES];
    let mut have = 0usize;
    let end = loop {
        if have == buf.len() {
            return respond(
                &mut sock,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request header too large\n",
                false,
            )
            .await;
        }
        let n = sock.read(&mut buf[have..]).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
    };
    let head = &buf[..end];
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return respond(
            &mut sock,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        )
        .await;
    };
    if !version.starts_with(b"HTTP/1.") {
        return respond(
            &mut sock,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        )
        .await;
    }
    let head_only = method == b"HEAD";
    if method != b"GET" && !head_only {
        return respond(
            &mut sock,
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            false,
        )
        .await;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match path {
        b"/metrics" => {
            let body = render(hub, config, learned);
            respond(
                &mut sock,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
            .await
        }
        b"/" => {
            respond(
                &mut sock,
                "200 OK",
                "text/html; charset=utf-8",
                INDEX.as_bytes(),
                head_only,
            )
            .await
        }
        _ => {
            respond(
                &mut sock,
                "404 Not Found",
                "text/plain",
                b"not found\n",
                head_only,
            )
            .await
        }
    }?;
    sock.shutdown().await
}

async fn respond(
    sock: &mut tokio::net::TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut v = out.into_bytes();
    if !head_only {
        v.extend_from_slice(body);
    }
    sock.write_all(&v).await?;
    sock.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table_is_bounded_and_ranks_by_flows() {
        let mut t = HostTable::default();
        for i in 0..(HOSTS_TRACKED as u32 + 500) {
            t.note(IpAddr::from(i.to_be_bytes()), Action::Block);
        }
        assert_eq!(t.map.len(), HOSTS_TRACKED);
        let busy = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..5 {
            t.note(busy, Action::Alert);
        }
        let top = t.top(HOSTS_EXPORTED);
        assert_eq!(top.len(), HOSTS_EXPORTED);
        assert_eq!(top[0].0, busy);
        assert_eq!(top[0].1.alerted, 5);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
