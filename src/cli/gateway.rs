//! `rmmguard inline` (NFQUEUE on a gateway), `rmmguard monitor` (passive, live interface) and
//! `rmmguard reload` (SIGHUP to a running one).
//!
//! ## Threads and signals (inline)
//! The main thread opens every queue, the event output and the pid file, blocks SIGHUP, SIGTERM
//! and SIGINT, drops its privileges, and only then starts one worker per queue (capabilities are
//! per thread, so every worker inherits the reduced set). It then waits for signals:
//! - SIGHUP: reload the policy and catalogue (validated first; on error the old ones stay), and
//!   reopen the events file (for logrotate);
//! - SIGTERM / SIGINT: stop; each worker sets its queue's length to 0 (later packets meet the
//!   full-queue rule at once: accepted with fail-open), answers every packet still queued, then
//!   unbinds, so that packets arriving later meet the rule's `--queue-bypass`. The kernel drops
//!   what is still queued for a socket when it is unbound or closed; this order leaves nothing
//!   queued, so a restart loses no packet;
//! - under systemd (`$NOTIFY_SOCKET`), the queue sockets are handed to its file-descriptor store
//!   and taken back after a restart, even after a crash or `kill -9`: the queues stay bound and
//!   packets wait in them for the next process (see `systemd.rs`);
//! - every second, a wake-up signal (SIGUSR1, handled without SA_RESTART) interrupts each
//!   worker's blocking receive so it publishes its metrics and flushes its events even when idle.

use super::systemd;
use crate::CommonArgs;
use rmmguard::decode::{self, Packet, LINKTYPE_RAW};
use rmmguard::engine::{self, learned::Learned, ConfigHandle, Engine, Verdict};
use rmmguard::output::metrics::{Hub, WorkerSnapshot};
use rmmguard::replay::{EventSink, JsonLines};
use rmmguard::source::live::{build_reset_for_dropped, build_resets, Injector, LiveCapture};
use rmmguard::source::nfqueue::{
    answer, fail_open_since, parse_queues, Answer, KernelStatsFile, NfQueue, QueueOptions,
    QueuedPacket,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `rmmguard inline`.
#[derive(clap::Args)]
pub struct InlineArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// NFQUEUE numbers to read, one worker thread each (e.g. 0-3, or 0,2).
    #[arg(long, default_value = "0", value_name = "LIST")]
    queues: String,
    #[command(flatten)]
    out: ServiceOutput,
    /// Drop packets when a queue is full (default: the policy's `fail_open`, which defaults to
    /// true). Pair it with `gateway-rules.sh up --fail-closed`.
    #[arg(long)]
    fail_closed: bool,
    /// After opening the queues, switch to this user (keeping CAP_NET_ADMIN only).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Packets the kernel holds per queue. Set far above what the socket buffer holds, so that
    /// the buffer fills first: the kernel then counts every packet it turns away, and
    /// rmmguard_fail_open_packets_total is exact.
    #[arg(long, default_value_t = 65536)]
    queue_len: u32,
    /// Receive buffer of each queue's socket, in bytes: the backlog of packets waiting for
    /// rmmguard (the kernel doubles it for its bookkeeping).
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    queue_buffer: usize,
    /// Flows tracked per worker.
    #[arg(long, default_value_t = 1 << 18)]
    max_flows: usize,
    /// Do not copy addresses learned from DNS for blocked tools into the kernel sets
    /// (`inet rmmguard` rmm_learned4 / rmm_learned6, made by `gateway-rules.sh up`).
    #[arg(long)]
    no_learned_set: bool,
}

/// What `inline` and `monitor` write and serve while they run.
#[derive(clap::Args)]
pub struct ServiceOutput {
    /// Write one JSON event per flow decision here ('-' = standard output). Reopened on SIGHUP.
    #[arg(long, value_name = "FILE")]
    events: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9977).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Write the process id here at start.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

/// Options of `rmmguard monitor`.
#[derive(clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Interface or mirror port to capture on.
    #[arg(long, value_name = "IF")]
    iface: String,
    /// Inject TCP resets to both ends of blocked TCP flows (raw IP sockets: the host must route
    /// to both ends).
    #[arg(long)]
    reset: bool,
    #[command(flatten)]
    out: ServiceOutput,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// After opening the capture, switch to this user (keeping CAP_NET_RAW only).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Flows tracked.
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: usize,
}

/// Options of `rmmguard reload`.
#[derive(clap::Args)]
pub struct ReloadArgs {
    /// The pid file the running rmmguard wrote.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "pid",
        required_unless_present = "pid"
    )]
    pid_file: Option<PathBuf>,
    /// The process id.
    #[arg(long, value_name = "PID")]
    pid: Option<i32>,
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Events output, shared by the workers (events are rare: one per flow of a catalogued tool).

struct EventOut {
    path: Option<String>,
    sink: Option<JsonLines<Box<dyn Write + Send>>>,
    lost_reported: u64,
}

fn open_events(path: &str) -> Result<Box<dyn Write + Send>, String> {
    if path == "-" {
        return Ok(Box::new(std::io::LineWriter::new(std::io::stdout())));
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open events file {path}: {e}"))?;
    Ok(Box::new(std::io::LineWriter::new(f)))
}

impl EventOut {
    fn open(path: Option<String>) -> Result<EventOut, String> {
        let sink = match &path {
            Some(p) => Some(JsonLines::new(open_events(p)?)),
            None => None,
        };
        Ok(EventOut {
            path,
            sink,
            lost_reported: 0,
        })
    }

    /// Reopens the file (after logrotate moved it); on error the old one is kept.
    fn reopen(&mut self) {
        let Some(p) = self.path.clone() else { return };
        if p == "-" {
            return;
        }
        match open_events(&p) {
            Ok(w) => {
                let (written, lost) = self.sink.as_ref().map_or((0, 0), |s| (s.written, s.lost));
                if let Some(s) = self.sink.as_mut() {
                    s.flush();
                }
                let mut s = JsonLines::new(w);
                s.written = written;
                s.lost = lost;
                self.sink = Some(s);
            }
            Err(e) => tracing::error!("{e}; still writing to the old file"),
        }
    }

    fn write(&mut self, evs: &[engine::Event], cfg: &engine::Config, hub: &Hub) {
        if let Some(s) = self.sink.as_mut() {
            for ev in evs {
                s.event(ev, cfg);
            }
            if s.lost > self.lost_reported {
                Hub::add(&hub.events_lost, s.lost - self.lost_reported);
                self.lost_reported = s.lost;
            }
        }
    }

    fn flush(&mut self) {
        if let Some(s) = self.sink.as_mut() {
            s.flush();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signals.

extern "C" fn wake_handler(_: libc::c_int) {}

fn signal_set(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Blocks HUP/TERM/INT in this thread (and the threads it starts later), and installs the
/// wake-up handler for SIGUSR1 without SA_RESTART so that it interrupts blocking receives.
fn setup_signals() -> libc::sigset_t {
    let set = signal_set(&[libc::SIGHUP, libc::SIGTERM, libc::SIGINT]);
    // SAFETY: valid sigset and sigaction structures; the handler is async-signal-safe (empty).
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = wake_handler as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    set
}

/// Waits up to `timeout` for one of the blocked signals; 0 = none.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> libc::c_int {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; a null siginfo pointer is allowed.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    r.max(0)
}

// ---------------------------------------------------------------------------------------------
// Privileges.

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

fn capget() -> Result<[CapData; 2], String> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as the v3 ABI requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) };
    if r != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    Ok(d)
}

/// Keeps only the capabilities in `keep` (those the process has), drops the rest from the
/// bounding set, switches to `user` if asked, and sets no_new_privs. Must run before any other
/// thread starts: capabilities are per thread.
fn drop_privileges(keep: &[u32], user: Option<&str>) -> Result<(), String> {
    let have = capget()?;
    let mut want = [0u32; 2];
    for &c in keep {
        let (i, bit) = ((c / 32) as usize, 1u32 << (c % 32));
        if have[i].permitted & bit != 0 {
            want[i] |= bit;
        }
    }
    if let Some(name) = user {
        let cname = std::ffi::CString::new(name).map_err(|_| format!("bad user name '{name}'"))?;
        // SAFETY: getpwnam returns a pointer into static storage or null; we copy what we need
        // before any other call that could overwrite it. Only the main thread runs now.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if pw.is_null() {
            return Err(format!("unknown user '{name}'"));
        }
        // SAFETY: pw is non-null and points to a valid passwd record.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        // SAFETY: plain system calls with valid arguments.
        let ok = unsafe {
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0
                && libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(gid) == 0
                && libc::setuid(uid) == 0
                && libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) == 0
        };
        if !ok {
            return Err(format!(
                "cannot switch to user '{name}': {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // Bounding set: needs CAP_SETPCAP, which a root process has; without it, skip.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40)
        .min(63);
    for c in 0..=last {
        if !keep.contains(&c) {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
        }
    }
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let d = [
        // Inheritable too, so that ambient capabilities given by systemd (`User=rmmguard`,
        // `AmbientCapabilities=`) survive for the `nft` helper that fills the learned sets.
        CapData {
            effective: want[0],
            permitted: want[0],
            inheritable: want[0],
        },
        CapData {
            effective: want[1],
            permitted: want[1],
            inheritable: want[1],
        },
    ];
    // SAFETY: header and a two-element data array, as the v3 ABI requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) };
    if r != 0 {
        return Err(format!(
            "cannot drop capabilities: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared state and helpers.

struct Shared {
    handle: Arc<ConfigHandle>,
    learned: Arc<Learned>,
    hub: Arc<Hub>,
    events: Mutex<EventOut>,
    stop: AtomicBool,
}

impl Shared {
    fn drain(&self, eng: &mut Engine) {
        if eng.events.is_empty() {
            return;
        }
        let cfg = eng.config().clone();
        let mut out = self.events.lock().unwrap_or_else(|e| e.into_inner());
        out.write(&eng.events, &cfg, &self.hub);
        eng.events.clear();
    }

    fn publish(&self, w: usize, eng: &Engine) {
        self.hub.publish(
            w,
            WorkerSnapshot {
                stats: eng.stats.clone(),
                active_flows: eng.active_flows() as u64,
                inspecting: eng.inspecting() as u64,
                memory_bytes: eng.memory_bytes() as u64,
            },
        );
    }
}

fn write_pid_file(p: &Option<PathBuf>) -> Result<(), String> {
    if let Some(p) = p {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Starts the Prometheus endpoint (its own thread; started after the signals are blocked and
/// the privileges dropped, so it inherits both).
fn start_metrics(
    addr: Option<SocketAddr>,
    hub: &Arc<Hub>,
    handle: &Arc<ConfigHandle>,
    learned: &Arc<Learned>,
) -> Result<Option<rmmguard::output::metrics::ServerHandle>, String> {
    let Some(addr) = addr else { return Ok(None) };
    rmmguard::output::metrics::serve(addr, hub.clone(), handle.clone(), Some(learned.clone()))
        .map(Some)
}

fn reload_config(common: &CommonArgs, shared: &Shared) {
    match crate::load_config(common) {
        Ok(cfg) => {
            let (cv, pv) = (cfg.catalog.version.clone(), cfg.policy.version.clone());
            shared.handle.set(cfg);
            shared.hub.reloaded(&cv, &pv, true);
            tracing::warn!("reloaded: catalogue {cv}, policy {pv}");
        }
        Err(e) => {
            shared.hub.reloaded("", "", false);
            tracing::error!("reload failed, keeping the running configuration: {e}");
        }
    }
    shared
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reopen();
}

// ---------------------------------------------------------------------------------------------
// The kernel's learned-address sets.

/// Whether every flow to an address learned for `tool` is blocked whatever its host name, so
/// that the kernel may refuse new flows to it: the tool's action is block and no allow rule
/// could apply to it.
fn kernel_may_block(cfg: &engine::Config, tool: u16) -> bool {
    use rmmguard::policy::Action;
    let p = &cfg.policy;
    if (tool as usize) >= cfg.catalog.tools.len() {
        return false;
    }
    let t = cfg.catalog.tool(tool);
    let action = p
        .tools
        .get(&tool)
        .or_else(|| p.categories.get(&t.category))
        .copied()
        .unwrap_or(p.default_action);
    action == Action::Block
        && !p.allow.iter().any(|r| {
            (r.tools.is_empty() || r.tools.contains(&tool))
                && (r.categories.is_empty() || r.categories.contains(&t.category))
        })
}

/// Copies learned addresses of blocked tools into the nftables sets, in batches (one `nft`
/// call per round), each with the time it has left to live. Runs until `stop`.
fn feed_learned_set(shared: Arc<Shared>) {
    let mut pushed: std::collections::HashMap<[u8; 16], u64> = Default::default();
    let mut failures = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let now = now_ns();
        pushed.retain(|_, exp| *exp > now);
        let cfg = shared.handle.get();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (addr, e) in shared.learned.snapshot(now) {
            if pushed.get(&addr).is_some_and(|x| *x >= e.expires_ns)
                || e.catalog != cfg.catalog.tag
                || !kernel_may_block(&cfg, e.tool)
            {
                continue;
            }
            let secs = (e.expires_ns.saturating_sub(now) / 1_000_000_000).max(1);
            let item = format!("{} timeout {secs}s", decode::to_ip(&addr));
            if matches!(decode::to_ip(&addr), std::net::IpAddr::V4(_)) {
                v4.push(item);
            } else {
                v6.push(item);
            }
            pushed.insert(addr, e.expires_ns);
            if v4.len() + v6.len() >= 200 {
                break;
            }
        }
        if v4.is_empty() && v6.is_empty() {
            continue;
        }
        let mut script = String::new();
        for (set, items) in [("rmm_learned4", &v4), ("rmm_learned6", &v6)] {
            if !items.is_empty() {
                script += &format!(
                    "add element inet rmmguard {set} {{ {} }}\n",
                    items.join(", ")
                );
            }
        }
        let ok = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(script.as_bytes())?;
                }
                c.wait_with_output()
            });
        match ok {
            Ok(o) if o.status.success() => failures = 0,
            other => {
                failures += 1;
                pushed.clear();
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::error!("cannot update the kernel's learned-address sets: {why}");
                if failures >= 3 {
                    tracing::error!(
                        "giving up on the kernel sets (is `gateway-rules.sh up` done?); flows \
                         to learned addresses are still blocked through the queue"
                    );
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// inline

fn is_eintr(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR)
}

/// The engine's answer for one queued packet. A TCP packet refused with a reset: the kernel's
/// REJECT answers its sender, and `inject` (when it could be opened) resets its receiver, which
/// would otherwise wait on a connection that is gone (for example the client of a blocked
/// server banner).
fn decide(eng: &mut Engine, inject: &mut Option<Injector>, p: &QueuedPacket<'_>) -> Answer {
    let v = eng.process(now_ns(), LINKTYPE_RAW as u16, p.payload);
    let mode = eng.config().policy.block_mode;
    if v == Verdict::Block && mode == rmmguard::policy::BlockMode::Reject {
        if let Some(inj) = inject.as_mut() {
            let mut pkt = Packet::default();
            if decode::decode(LINKTYPE_RAW as u16, p.payload, &mut pkt).is_ok() {
                if let Some(rst) = build_reset_for_dropped(&pkt) {
                    inj.send(&rst);
                }
            }
        }
    }
    answer(v, mode)
}

/// One queue's worker. `inject`: raw sockets for resets (see [`decide`]). `keep_bound`: a
/// service manager keeps the socket across restarts, so the queue stays bound when this process
/// stops (see `systemd.rs`).
fn worker(
    mut q: NfQueue,
    mut inject: Option<Injector>,
    w: usize,
    shared: Arc<Shared>,
    opts: engine::Options,
    keep_bound: bool,
) {
    let mut eng = Engine::new(
        shared.handle.clone(),
        shared.learned.clone(),
        opts,
        w as u16,
    );
    let mut last_pub = Instant::now();
    publish_socket_memory(&shared.hub, w, &q);
    let mut errors = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        // Counted before the answer, while the kernel still counts the packet as waiting: the
        // fail-open count (see QueueCounts) can then only be low for a moment, never high.
        let received = &shared.hub.queue_received[w].0;
        match q.serve(false, &mut |p| {
            received.fetch_add(1, Ordering::Relaxed);
            decide(&mut eng, &mut inject, p)
        }) {
            Ok(_) => {
                errors = 0;
                shared.drain(&mut eng);
                publish_skipped(&shared.hub, w, &q);
            }
            Err(e) if is_eintr(&e) => {}
            Err(e) => {
                errors += 1;
                if errors == 1 || errors.is_power_of_two() {
                    tracing::error!("NFQUEUE {}: receive failed ({errors} times): {e}", q.num());
                }
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    Hub::add(&shared.hub.queue_drops, 1);
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        if last_pub.elapsed() >= Duration::from_secs(1) {
            last_pub = Instant::now();
            eng.check_reload();
            shared.publish(w, &eng);
            publish_socket_memory(&shared.hub, w, &q);
            shared
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush();
        }
    }
    // Stopping: no new packet waits for this process (queue length 0: later ones meet the
    // full-queue rule, accepted with fail-open), and every packet already queued is answered.
    // Only then is the queue unbound, so the kernel has nothing of ours to drop; later packets
    // meet the rule's bypass setting. Under a service manager's descriptor store the queue stays
    // bound (at length 0) for the next process to take over.
    let received = &shared.hub.queue_received[w].0;
    let n = q.quiesce(&mut |p| {
        received.fetch_add(1, Ordering::Relaxed);
        decide(&mut eng, &mut inject, p)
    });
    publish_skipped(&shared.hub, w, &q);
    tracing::warn!(
        "NFQUEUE {}: answered {n} queued packets while stopping",
        q.num()
    );
    if !keep_bound {
        if let Err(e) = q.unbind() {
            tracing::warn!("{e}");
        }
    }
    eng.flush(now_ns());
    shared.drain(&mut eng);
    shared.publish(w, &eng);
}

/// Publishes the worker's queue socket backlog and buffer size (one system call; about once a
/// second, never per packet).
fn publish_socket_memory(hub: &Hub, w: usize, q: &NfQueue) {
    if let Ok((backlog, buffer)) = q.socket_memory() {
        let s = &hub.queue_sockets[w];
        s.queue.store(q.num() as u64, Ordering::Relaxed);
        s.backlog.store(backlog as u64, Ordering::Relaxed);
        s.buffer.store(buffer as u64, Ordering::Relaxed);
    }
}

/// Publishes worker `w`'s count of skipped packet ids (a store only when it changed: gaps are
/// rare, and the line is read by the main thread).
fn publish_skipped(hub: &Hub, w: usize, q: &NfQueue) {
    let c = &hub.queue_skipped[w].0;
    let n = q.skipped();
    if c.load(Ordering::Relaxed) != n {
        c.store(n, Ordering::Relaxed);
    }
}

/// The kernel's per-queue counters turned into rmmguard's metrics (see
/// [`rmmguard::source::nfqueue::fail_open_since`]).
struct QueueCounts {
    /// (queue, worker, id_sequence when rmmguard started on it)
    base: Vec<(u16, usize, Option<u32>)>,
    fail_open: u64,
}

impl QueueCounts {
    fn new(queues: &[u16], f: Option<&KernelStatsFile>) -> QueueCounts {
        let now = f.and_then(|f| f.read().ok()).unwrap_or_default();
        let base = queues
            .iter()
            .enumerate()
            .map(|(w, &q)| {
                // The packets already waiting (a queue taken over) are still to be received, or
                // released uninspected if the previous process had read them: both count from
                // the id before theirs.
                let id = now
                    .iter()
                    .find(|k| k.queue == q)
                    .map(|k| k.id_sequence.wrapping_sub(k.waiting));
                (q, w, id)
            })
            .collect();
        QueueCounts { base, fail_open: 0 }
    }

    fn update(&mut self, f: Option<&KernelStatsFile>, hub: &Hub, fail_open_mode: bool) {
        let Some(f) = f else {
            // Without the kernel's counters (a service run as its own user cannot read them):
            // the packets each queue numbered but never delivered, from the gaps in the ids.
            // They were accepted with fail-open and dropped without it. (Packets turned away
            // by the queue length limit get no id, and the waiting count is unknown.)
            let skipped: u64 = hub
                .queue_skipped
                .iter()
                .map(|c| c.0.load(Ordering::Relaxed))
                .sum();
            if fail_open_mode {
                hub.fail_open.store(skipped, Ordering::Relaxed);
            } else {
                hub.queue_drops.store(skipped, Ordering::Relaxed);
            }
            return;
        };
        // A failed reading of a file that opened keeps the last counts (switching counting
        // methods would make the counters go down).
        let Ok(now) = f.read() else {
            return;
        };
        let (mut drops, mut waiting, mut passed) = (0u64, 0u64, 0u64);
        for (q, w, base) in &mut self.base {
            let Some(k) = now.iter().find(|k| k.queue == *q) else {
                continue;
            };
            drops += k.dropped as u64 + k.user_dropped as u64;
            waiting += k.waiting as u64;
            let b = *base.get_or_insert(k.id_sequence);
            let received = hub
                .queue_received
                .get(*w)
                .map_or(0, |r| r.0.load(Ordering::Relaxed));
            if fail_open_mode {
                passed += fail_open_since(k, b, received);
            }
        }
        // A counter never goes down (a packet received between the kernel's reading and ours
        // makes one reading low).
        self.fail_open = self.fail_open.max(passed);
        hub.queue_drops.store(drops, Ordering::Relaxed);
        hub.queue_waiting.store(waiting, Ordering::Relaxed);
        hub.fail_open.store(self.fail_open, Ordering::Relaxed);
    }
}

/// Unbinds an inherited queue socket that is not used, asks the service manager to drop its copy,
/// and closes it.
fn forget_stored(fd: std::os::fd::OwnedFd, num: u16, name: &str) {
    NfQueue::release(fd, num);
    systemd::notify(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), &[]);
}

/// Runs inline.
pub fn inline(a: InlineArgs) -> Result<u8, String> {
    let queues = parse_queues(&a.queues)?;
    let cfg = crate::load_config(&a.common)?;
    let fail_open = cfg.policy.fail_open && !a.fail_closed;
    let (cv, pv) = (cfg.catalog.version.clone(), cfg.policy.version.clone());
    let handle = ConfigHandle::new(cfg);
    let events = EventOut::open(a.out.events.clone())?;
    let hub = Arc::new(Hub::new(queues.len()));
    hub.reloaded(&cv, &pv, true);
    let qo = QueueOptions {
        fail_open,
        copy_range: u16::MAX,
        max_len: a.queue_len.max(1),
        socket_buffer: a.queue_buffer,
    };
    // Sockets a service manager kept across a restart are taken over: their queues are still
    // bound, with packets waiting in them.
    let mut inherited: std::collections::HashMap<String, std::os::fd::OwnedFd> =
        systemd::take_listen_fds().into_iter().collect();
    let mut opened = Vec::with_capacity(queues.len());
    for &n in &queues {
        let name = format!("nfqueue-{n}");
        let q = match inherited.remove(&name) {
            Some(fd) => match NfQueue::adopt(fd, n, qo) {
                Ok(q) => {
                    tracing::warn!("NFQUEUE {n}: took over the socket kept by the service manager");
                    q
                }
                Err((e, fd)) => {
                    // The kept socket would hold the queue against the new one: unbind it and
                    // have the service manager forget it.
                    tracing::warn!("{e}; releasing it and opening a new one");
                    forget_stored(fd, n, &name);
                    NfQueue::open(n, qo)?
                }
            },
            None => NfQueue::open(n, qo)?,
        };
        opened.push(q);
    }
    // Sockets of queues no longer configured: unbound, forgotten and closed.
    for (name, fd) in inherited {
        match name
            .strip_prefix("nfqueue-")
            .and_then(|n| n.parse::<u16>().ok())
        {
            Some(n) => forget_stored(fd, n, &name),
            None => drop(fd),
        }
    }
    let keep_bound = systemd::enabled();
    for q in &opened {
        systemd::notify(&format!("FDSTORE=1\nFDNAME=nfqueue-{}", q.num()), &[q.fd()]);
    }
    // Raw sockets for the resets to the receivers of refused TCP packets, one pair per worker,
    // opened while CAP_NET_RAW is still held (it is not kept).
    let mut injectors: Vec<Option<Injector>> = Vec::with_capacity(opened.len());
    for _ in &opened {
        match Injector::open() {
            Ok(i) => injectors.push(Some(i)),
            Err(e) => {
                tracing::warn!("{e}: a refused TCP flow gets its reset on the sender's side only");
                injectors.push(None);
            }
        }
    }
    // The kernel's queue counters, readable by root only: opened now, read every second.
    let kstats = match KernelStatsFile::open() {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(
                "cannot open /proc/net/netfilter/nfnetlink_queue ({e}; only root may read \
                 it): fail-open passes and drops are counted from gaps in the packet ids, \
                 and rmmguard_queue_waiting_packets stays 0"
            );
            None
        }
    };
    let queue_nums: Vec<u16> = opened.iter().map(|q| q.num()).collect();
    write_pid_file(&a.out.pid_file)?;
    let sigset = setup_signals();
    drop_privileges(&[CAP_NET_ADMIN], a.user.as_deref())?;
    let learned = Arc::new(Learned::new(1 << 16));
    let _metrics = start_metrics(a.out.metrics, &hub, &handle, &learned)?;
    let shared = Arc::new(Shared {
        handle,
        learned,
        hub,
        events: Mutex::new(events),
        stop: AtomicBool::new(false),
    });
    let opts = engine::Options {
        max_flows: a.max_flows.max(1024),
        ..engine::Options::default()
    };
    let mut workers = Vec::new();
    for (w, (q, inj)) in opened.into_iter().zip(injectors).enumerate() {
        let sh = shared.clone();
        let t = std::thread::Builder::new()
            .name(format!("nfq-{}", q.num()))
            .spawn(move || worker(q, inj, w, sh, opts, keep_bound))
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        workers.push(t);
    }
    let feeder = if a.no_learned_set {
        None
    } else {
        let sh = shared.clone();
        Some(
            std::thread::Builder::new()
                .name("learned-set".into())
                .spawn(move || feed_learned_set(sh))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        )
    };
    tracing::warn!(
        "inline on NFQUEUE {} ({}), pid {}",
        a.queues,
        if fail_open {
            "fail-open"
        } else {
            "fail-closed"
        },
        std::process::id()
    );
    systemd::notify(
        &format!(
            "READY=1\nMAINPID={}\nSTATUS=inline on NFQUEUE {}",
            std::process::id(),
            a.queues
        ),
        &[],
    );
    let mut failed = false;
    let mut counts = QueueCounts::new(&queue_nums, kstats.as_ref());
    loop {
        counts.update(kstats.as_ref(), &shared.hub, fail_open);
        match wait_signal(&sigset, Duration::from_secs(1)) {
            libc::SIGHUP => reload_config(&a.common, &shared),
            libc::SIGTERM | libc::SIGINT => break,
            _ => {}
        }
        if workers.iter().any(|t| t.is_finished()) {
            tracing::error!("a worker stopped unexpectedly; stopping");
            failed = true;
            break;
        }
        wake(&workers);
    }
    systemd::notify("STOPPING=1", &[]);
    shared.stop.store(true, Ordering::Relaxed);
    while workers.iter().any(|t| !t.is_finished()) {
        wake(&workers);
        std::thread::sleep(Duration::from_millis(20));
    }
    for t in workers {
        if t.join().is_err() {
            failed = true;
        }
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
    shared
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .flush();
    if let Some(p) = &a.out.pid_file {
        let _ = std::fs::remove_file(p);
    }
    tracing::warn!("stopped");
    if failed {
        return Err("a worker failed".into());
    }
    Ok(0)
}

fn wake(workers: &[std::thread::JoinHandle<()>]) {
    use std::os::unix::thread::JoinHandleExt;
    for t in workers {
        if !t.is_finished() {
            // SAFETY: the thread has not been joined, so its pthread_t is valid.
            unsafe { libc::pthread_kill(t.as_pthread_t(), libc::SIGUSR1) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// monitor

/// Runs the passive monitor.
pub fn monitor(a: MonitorArgs) -> Result<u8, String> {
    let cfg = crate::load_config(&a.common)?;
    let (cv, pv) = (cfg.catalog.version.clone(), cfg.policy.version.clone());
    let handle = ConfigHandle::new(cfg);
    let mut cap = LiveCapture::open(&a.iface, 65535, !a.no_promisc)?;
    let mut inj = if a.reset {
        Some(Injector::open()?)
    } else {
        None
    };
    let events = EventOut::open(a.out.events.clone())?;
    write_pid_file(&a.out.pid_file)?;
    let sigset = setup_signals();
    drop_privileges(&[CAP_NET_RAW], a.user.as_deref())?;
    let hub = Arc::new(Hub::new(1));
    hub.reloaded(&cv, &pv, true);
    let learned = Arc::new(Learned::new(1 << 16));
    let _metrics = start_metrics(a.out.metrics, &hub, &handle, &learned)?;
    let shared = Shared {
        handle: handle.clone(),
        learned,
        hub,
        events: Mutex::new(events),
        stop: AtomicBool::new(false),
    };
    let opts = engine::Options {
        max_flows: a.max_flows.max(1024),
        ..engine::Options::default()
    };
    let mut eng = Engine::new(handle, shared.learned.clone(), opts, 0);
    let link = cap.linktype;
    let mut pkt = Packet::default();
    let mut last_check = Instant::now();
    let mut last_pub = Instant::now();
    // Resets: at most this many per second, whatever the traffic.
    let (mut bucket, bucket_max) = (2000u32, 2000u32);
    let mut bucket_at = Instant::now();
    let mut resets_skipped = 0u64;
    tracing::warn!("monitoring {} (pid {})", a.iface, std::process::id());
    loop {
        if let Some(f) = cap.next_frame()? {
            let v = eng.process(f.ts_ns, link, f.data);
            let reset = match inj.as_mut() {
                Some(inj) if v == Verdict::Block => decode::decode(link, f.data, &mut pkt)
                    .is_ok()
                    .then_some(inj),
                _ => None,
            };
            if let Some((inj, (to_rx, to_tx))) = reset.and_then(|i| Some((i, build_resets(&pkt)?)))
            {
                if bucket >= 2 {
                    bucket -= 2;
                    inj.send(&to_tx);
                    inj.send(&to_rx);
                } else {
                    resets_skipped += 1;
                }
            }
            shared.drain(&mut eng);
        }
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            match wait_signal(&sigset, Duration::ZERO) {
                libc::SIGHUP => reload_config(&a.common, &shared),
                libc::SIGTERM | libc::SIGINT => break,
                _ => {}
            }
        }
        if bucket_at.elapsed() >= Duration::from_secs(1) {
            bucket_at = Instant::now();
            bucket = bucket_max;
        }
        if last_pub.elapsed() >= Duration::from_secs(1) {
            last_pub = Instant::now();
            eng.check_reload();
            shared.publish(0, &eng);
            shared
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush();
        }
    }
    eng.flush(now_ns());
    shared.drain(&mut eng);
    shared
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .flush();
    let s = &eng.stats;
    let blocked: u64 = s.tools.iter().map(|t| t.blocked).sum();
    let alerted: u64 = s.tools.iter().map(|t| t.allowed).sum();
    let (rx, kdrop) = cap.stats().unwrap_or((0, 0));
    let (sent, failed) = inj.as_ref().map_or((0, 0), |i| (i.sent, i.failed));
    eprintln!(
        "rmmguard monitor: {} packets ({rx} captured, {kdrop} dropped by the kernel), {} flows, \
         {blocked} flows to block, {alerted} allowed or alerted, {sent} resets sent, \
         {failed} failed, {resets_skipped} rate-limited",
        s.packets, s.flows_created
    );
    if let Some(p) = &a.out.pid_file {
        let _ = std::fs::remove_file(p);
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// reload

/// Sends SIGHUP.
pub fn reload(a: ReloadArgs) -> Result<u8, String> {
    let pid = match (a.pid, &a.pid_file) {
        (Some(p), _) => p,
        (None, Some(f)) => {
            let t = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read pid file {}: {e}", f.display()))?;
            t.trim()
                .parse::<i32>()
                .map_err(|_| format!("{}: not a process id", f.display()))?
        }
        (None, None) => return Err("give --pid-file or --pid".into()),
    };
    if pid <= 1 {
        return Err(format!("refusing to signal process id {pid}"));
    }
    // SAFETY: kill(2) with a checked positive pid.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(format!(
            "cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(0)
}
