//! Replay: runs the engine over capture files, as the gateway would have seen them.
//!
//! With one worker the engine runs in the reading thread. With several, the reading thread sends
//! each packet's position in the memory-mapped capture to the worker that owns its flow (chosen by
//! a symmetric hash of the address pair, so both directions and every IP fragment of a flow land
//! on the same worker), and each worker reads the bytes from the shared map: no copy, no lock.

use crate::engine::{self, ConfigHandle, Engine, Event, FlowRecord, Stats};
use crate::output::metrics::WorkerSnapshot;
use crate::source::pcapfile::{PcapError, PcapReader, PcapWriter, ReaderStats};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A one-line error naming the file.
#[derive(Debug)]
pub struct ReplayError {
    /// The file.
    pub file: String,
    /// What went wrong.
    pub msg: String,
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.msg)
    }
}

impl std::error::Error for ReplayError {}

/// Where decisions go.
pub trait EventSink: Send {
    /// One decision.
    fn event(&mut self, ev: &Event, cfg: &engine::Config);
    /// Flushes buffered output.
    fn flush(&mut self) {}
    /// Events that could not be written (a full disk, a closed pipe).
    fn lost(&self) -> u64 {
        0
    }
}

/// Writes EVE JSON lines.
pub struct JsonLines<W: Write + Send> {
    w: W,
    buf: Vec<u8>,
    /// Events written.
    pub written: u64,
    /// Events lost to write errors (a full disk): counted, never fatal.
    pub lost: u64,
}

impl<W: Write + Send> JsonLines<W> {
    /// A writer.
    pub fn new(w: W) -> Self {
        JsonLines {
            w,
            buf: Vec::with_capacity(1024),
            written: 0,
            lost: 0,
        }
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn event(&mut self, ev: &Event, cfg: &engine::Config) {
        self.buf.clear();
        crate::output::events::render(&mut self.buf, ev, &cfg.catalog, &cfg.policy);
        // Each event is flushed on its own (events are per flow decision, not per packet), so
        // that a full disk loses exactly the events it refuses, and they are counted.
        match self.w.write_all(&self.buf).and_then(|_| self.w.flush()) {
            Ok(()) => self.written += 1,
            Err(_) => self.lost += 1,
        }
    }
    fn flush(&mut self) {
        let _ = self.w.flush();
    }
    fn lost(&self) -> u64 {
        self.lost
    }
}

/// Collects events in memory (for audit reports and tests).
#[derive(Default)]
pub struct Collect {
    /// The events.
    pub events: Vec<Event>,
}

impl EventSink for Collect {
    fn event(&mut self, ev: &Event, _cfg: &engine::Config) {
        self.events.push(*ev);
    }
}

/// Replay settings.
pub struct Options {
    /// Engine limits.
    pub engine: engine::Options,
    /// Worker threads.
    pub workers: usize,
    /// Write the packets that would pass here.
    pub write_passed: Option<PathBuf>,
    /// Only read the packets (the read floor for benchmarks).
    pub read_only: bool,
    /// Called with (bytes read, bytes total) now and then.
    pub progress: Option<Box<dyn FnMut(u64, u64) + Send>>,
    /// Publish worker snapshots here every 65536 packets and at the end (for `--metrics`).
    pub metrics: Option<Arc<crate::output::metrics::Hub>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            engine: engine::Options::default(),
            workers: 1,
            write_passed: None,
            read_only: false,
            progress: None,
            metrics: None,
        }
    }
}

/// What a replay found.
pub struct Outcome {
    /// Engine counters, all workers.
    pub stats: Stats,
    /// Reader counters, all captures.
    pub reader: ReaderStats,
    /// Ended flows, when requested.
    pub records: Vec<FlowRecord>,
    /// Time of the last packet.
    pub last_ts_ns: u64,
}

/// A memory-mapped capture file.
pub struct Mapped {
    map: memmap2::Mmap,
}

impl Mapped {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> Result<Mapped, ReplayError> {
        let err = |msg: String| ReplayError {
            file: path.display().to_string(),
            msg,
        };
        let file = std::fs::File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| err(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        if meta.len() == 0 {
            return Err(err(PcapError::Empty.to_string()));
        }
        // SAFETY: the map is read-only and private to this process. If another process truncates
        // the file while it is mapped, reads past the new end fault (SIGBUS); this is the same
        // contract ripgrep and other tools accept for mapped inputs, and replay reads files that
        // are not being written. Mapping avoids copying every packet (see BENCHMARKS.md).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
            .map_err(|e| err(format!("cannot map: {e}")))?;
        // Replay reads the file once, front to back.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mapped { map })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

fn reader_err(path: &Path, e: PcapError) -> ReplayError {
    ReplayError {
        file: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Runs the replay over `captures`.
pub fn run(
    captures: &[PathBuf],
    handle: Arc<ConfigHandle>,
    learned: Arc<engine::learned::Learned>,
    sink: &mut dyn EventSink,
    mut opts: Options,
) -> Result<Outcome, ReplayError> {
    let maps: Vec<Mapped> = captures
        .iter()
        .map(|p| Mapped::open(p))
        .collect::<Result<_, _>>()?;
    // Validate headers up front so a bad file fails before any work.
    for (m, p) in maps.iter().zip(captures) {
        PcapReader::new(m.bytes()).map_err(|e| reader_err(p, e))?;
    }
    let total: u64 = maps.iter().map(|m| m.bytes().len() as u64).sum();
    let workers = opts.workers.max(1);
    if opts.read_only {
        return read_only(captures, &maps, &mut opts, total);
    }
    if workers == 1 {
        single(captures, &maps, handle, learned, sink, &mut opts, total)
    } else {
        multi(
            captures, &maps, handle, learned, sink, &mut opts, total, workers,
        )
    }
}

fn read_only(
    captures: &[PathBuf],
    maps: &[Mapped],
    opts: &mut Options,
    total: u64,
) -> Result<Outcome, ReplayError> {
    let mut stats = Stats::default();
    let mut rs = ReaderStats::default();
    let mut last = 0;
    let mut done_bytes = 0u64;
    for (m, path) in maps.iter().zip(captures) {
        let mut r = PcapReader::new(m.bytes()).map_err(|e| reader_err(path, e))?;
        while let Some(p) = r.next().map_err(|e| reader_err(path, e))? {
            stats.packets += 1;
            stats.bytes += p.data.len() as u64;
            last = p.ts_ns;
        }
        add_reader(&mut rs, r.stats());
        done_bytes += m.bytes().len() as u64;
        if let Some(cb) = opts.progress.as_mut() {
            cb(done_bytes, total);
        }
    }
    Ok(Outcome {
        stats,
        reader: rs,
        records: Vec::new(),
        last_ts_ns: last,
    })
}

fn add_reader(a: &mut ReaderStats, b: ReaderStats) {
    a.records += b.records;
    a.truncated_records += b.truncated_records;
    a.skipped_blocks += b.skipped_blocks;
}

struct PassedWriter {
    path: PathBuf,
    w: Option<PcapWriter<std::io::BufWriter<std::fs::File>>>,
    link: Option<u16>,
}

impl PassedWriter {
    fn write(&mut self, link: u16, ts: u64, data: &[u8], orig: u32) -> Result<(), ReplayError> {
        let err = |msg: String| ReplayError {
            file: self.path.display().to_string(),
            msg,
        };
        if self.w.is_none() {
            let f = std::fs::File::create(&self.path)
                .map_err(|e| err(format!("cannot create: {e}")))?;
            self.w = Some(
                PcapWriter::new(std::io::BufWriter::with_capacity(1 << 20, f), link)
                    .map_err(|e| err(format!("cannot write: {e}")))?,
            );
            self.link = Some(link);
        }
        if self.link != Some(link) {
            return Err(err(format!(
                "the captures mix link types {} and {}: write the passed packets of each capture separately",
                self.link.unwrap_or(0),
                link
            )));
        }
        if let Some(w) = self.w.as_mut() {
            w.write(ts, data, orig)
                .map_err(|e| err(format!("cannot write: {e}")))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ReplayError> {
        let path = self.path.display().to_string();
        match self.w {
            Some(w) => w.into_inner().map(|_| ()).map_err(|e| ReplayError {
                file: path,
                msg: format!("cannot write: {e}"),
            }),
            None => {
                // No packet at all: still leave a valid (empty, Ethernet) capture.
                let f = std::fs::File::create(&self.path).map_err(|e| ReplayError {
                    file: path.clone(),
                    msg: format!("cannot create: {e}"),
                })?;
                PcapWriter::new(f, 1)
                    .and_then(|w| w.into_inner().map(|_| ()))
                    .map_err(|e| ReplayError {
                        file: path,
                        msg: format!("cannot write: {e}"),
                    })
            }
        }
    }
}

fn drain(engine: &mut Engine, sink: &mut dyn EventSink) {
    if !engine.events.is_empty() {
        let cfg = engine.config().clone();
        for ev in engine.events.drain(..) {
            sink.event(&ev, &cfg);
        }
    }
}

fn single(
    captures: &[PathBuf],
    maps: &[Mapped],
    handle: Arc<ConfigHandle>,
    learned: Arc<engine::learned::Learned>,
    sink: &mut dyn EventSink,
    opts: &mut Options,
    total: u64,
) -> Result<Outcome, ReplayError> {
    let mut eng = Engine::new(handle, learned, opts.engine, 0);
    let mut rs = ReaderStats::default();
    let mut passed = opts.write_passed.as_ref().map(|p| PassedWriter {
        path: p.clone(),
        w: None,
        link: None,
    });
    let mut last = 0u64;
    let mut done_bytes = 0u64;
    let mut records = Vec::new();
    for (m, path) in maps.iter().zip(captures) {
        let mut r = PcapReader::new(m.bytes()).map_err(|e| reader_err(path, e))?;
        let mut n = 0u32;
        while let Some(p) = r.next().map_err(|e| reader_err(path, e))? {
            let v = eng.process(p.ts_ns, p.link, p.data);
            last = last.max(p.ts_ns);
            if let Some(pw) = passed.as_mut() {
                if !v.drops() {
                    pw.write(p.link, p.ts_ns, p.data, p.orig_len)?;
                }
            }
            drain(&mut eng, sink);
            n += 1;
            if n == 1 << 16 {
                n = 0;
                if let Some(cb) = opts.progress.as_mut() {
                    cb(done_bytes + r.position() as u64, total);
                }
                records.append(&mut eng.records);
                if let Some(hub) = &opts.metrics {
                    hub.publish(0, WorkerSnapshot::of(&eng));
                }
            }
        }
        add_reader(&mut rs, r.stats());
        done_bytes += m.bytes().len() as u64;
    }
    eng.flush(last);
    drain(&mut eng, sink);
    sink.flush();
    records.append(&mut eng.records);
    if let Some(hub) = &opts.metrics {
        hub.publish(0, WorkerSnapshot::of(&eng));
    }
    if let Some(pw) = passed {
        pw.finish()?;
    }
    if let Some(cb) = opts.progress.as_mut() {
        cb(total, total);
    }
    Ok(Outcome {
        stats: eng.stats.clone(),
        reader: rs,
        records,
        last_ts_ns: last,
    })
}

/// A packet handed to a worker: where it lies in which capture.
#[derive(Clone, Copy)]
struct PacketRef {
    ts_ns: u64,
    seq: u64,
    file: u32,
    link: u16,
    start: usize,
    len: u32,
}

const BATCH: usize = 512;

/// What each worker hands back: counters, dropped packet numbers, flow records.
type WorkerResult = (Stats, Vec<u64>, Vec<FlowRecord>);

struct SharedSink<'a> {
    sink: Mutex<&'a mut dyn EventSink>,
}

#[allow(clippy::too_many_arguments)]
fn multi(
    captures: &[PathBuf],
    maps: &[Mapped],
    handle: Arc<ConfigHandle>,
    learned: Arc<engine::learned::Learned>,
    sink: &mut dyn EventSink,
    opts: &mut Options,
    total: u64,
    workers: usize,
) -> Result<Outcome, ReplayError> {
    let want_drops = opts.write_passed.is_some();
    let shared = SharedSink {
        sink: Mutex::new(sink),
    };
    let hasher = ahash::RandomState::new();
    let mut rs = ReaderStats::default();
    let mut last = 0u64;
    let eng_opts = opts.engine;
    let hub = opts.metrics.clone();
    let result = std::thread::scope(|scope| -> Result<(Vec<WorkerResult>, u64), ReplayError> {
        let mut txs = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        let (ret_tx, ret_rx) = mpsc::channel::<Vec<PacketRef>>();
        for w in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Vec<PacketRef>>(64);
            txs.push(tx);
            let handle = handle.clone();
            let learned = learned.clone();
            let ret_tx = ret_tx.clone();
            let shared = &shared;
            let hub = hub.clone();
            handles.push(scope.spawn(move || {
                let mut eng = Engine::new(handle, learned, eng_opts, w as u16);
                let mut drops = Vec::new();
                let mut pending: Vec<Event> = Vec::new();
                let mut last = 0;
                let mut records = Vec::new();
                let mut since_publish = 0usize;
                while let Ok(mut batch) = rx.recv() {
                    since_publish += batch.len();
                    for pr in &batch {
                        let data =
                            &maps[pr.file as usize].bytes()[pr.start..pr.start + pr.len as usize];
                        if eng.process(pr.ts_ns, pr.link, data).drops() && want_drops {
                            drops.push(pr.seq);
                        }
                        last = pr.ts_ns;
                    }
                    if !eng.events.is_empty() {
                        pending.append(&mut eng.events);
                        if pending.len() >= 64 {
                            flush_events(shared, &mut pending, &eng);
                        }
                    }
                    records.append(&mut eng.records);
                    if since_publish >= 1 << 16 {
                        since_publish = 0;
                        if let Some(h) = &hub {
                            h.publish(w, WorkerSnapshot::of(&eng));
                        }
                    }
                    batch.clear();
                    let _ = ret_tx.send(batch);
                }
                eng.flush(last);
                pending.append(&mut eng.events);
                flush_events(shared, &mut pending, &eng);
                records.append(&mut eng.records);
                if let Some(h) = &hub {
                    h.publish(w, WorkerSnapshot::of(&eng));
                }
                (eng.stats.clone(), drops, records)
            }));
        }
        drop(ret_tx);
        let mut batches: Vec<Vec<PacketRef>> =
            (0..workers).map(|_| Vec::with_capacity(BATCH)).collect();
        let mut pkt = crate::decode::Packet::default();
        let mut seq = 0u64;
        let mut done_bytes = 0u64;
        for (fi, (m, path)) in maps.iter().zip(captures).enumerate() {
            let base = m.bytes().as_ptr() as usize;
            let mut r = PcapReader::new(m.bytes()).map_err(|e| reader_err(path, e))?;
            while let Some(p) = r.next().map_err(|e| reader_err(path, e))? {
                // The worker is chosen from the address pair (symmetric, and the same for every
                // fragment of a datagram).
                let w = if crate::decode::decode(p.link, p.data, &mut pkt).is_ok()
                    && pkt.ip_version != 0
                {
                    let (a, b) = if pkt.src <= pkt.dst {
                        (pkt.src, pkt.dst)
                    } else {
                        (pkt.dst, pkt.src)
                    };
                    (hasher.hash_one((a, b)) % workers as u64) as usize
                } else {
                    0
                };
                last = last.max(p.ts_ns);
                batches[w].push(PacketRef {
                    ts_ns: p.ts_ns,
                    seq,
                    file: fi as u32,
                    link: p.link,
                    start: p.data.as_ptr() as usize - base,
                    len: p.data.len() as u32,
                });
                seq += 1;
                if batches[w].len() >= BATCH {
                    let fresh = ret_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    let full = std::mem::replace(&mut batches[w], fresh);
                    if txs[w].send(full).is_err() {
                        break;
                    }
                }
                if seq % (1 << 16) == 0 {
                    if let Some(cb) = opts.progress.as_mut() {
                        cb(done_bytes + r.position() as u64, total);
                    }
                }
            }
            add_reader(&mut rs, r.stats());
            done_bytes += m.bytes().len() as u64;
        }
        for (w, b) in batches.into_iter().enumerate() {
            if !b.is_empty() {
                let _ = txs[w].send(b);
            }
        }
        drop(txs);
        let mut out = Vec::new();
        for h in handles {
            out.push(h.join().map_err(|_| ReplayError {
                file: "worker".into(),
                msg: "a worker thread panicked".into(),
            })?);
        }
        Ok((out, seq))
    })?;
    let (per_worker, _count) = result;
    let mut stats = Stats::default();
    let mut drops = Vec::new();
    let mut records = Vec::new();
    for (s, d, mut r) in per_worker {
        stats.add(&s);
        drops.extend(d);
        records.append(&mut r);
    }
    if let Ok(s) = shared.sink.into_inner() {
        s.flush();
    }
    if let Some(path) = &opts.write_passed {
        drops.sort_unstable();
        let mut pw = PassedWriter {
            path: path.clone(),
            w: None,
            link: None,
        };
        let mut seq = 0u64;
        let mut di = 0usize;
        for (m, p) in maps.iter().zip(captures) {
            let mut r = PcapReader::new(m.bytes()).map_err(|e| reader_err(p, e))?;
            while let Some(pk) = r.next().map_err(|e| reader_err(p, e))? {
                if di < drops.len() && drops[di] == seq {
                    di += 1;
                } else {
                    pw.write(pk.link, pk.ts_ns, pk.data, pk.orig_len)?;
                }
                seq += 1;
            }
        }
        pw.finish()?;
    }
    if let Some(cb) = opts.progress.as_mut() {
        cb(total, total);
    }
    Ok(Outcome {
        stats,
        reader: rs,
        records,
        last_ts_ns: last,
    })
}

fn flush_events(shared: &SharedSink<'_>, pending: &mut Vec<Event>, eng: &Engine) {
    if pending.is_empty() {
        return;
    }
    let cfg = eng.config().clone();
    if let Ok(mut s) = shared.sink.lock() {
        for ev in pending.iter() {
            s.event(ev, &cfg);
        }
    }
    pending.clear();
}
