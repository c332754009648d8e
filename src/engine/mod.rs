//! The engine: decode → flow table → inspectors → policy → verdict, for one worker.
//!
//! Every mode (replay, live capture, NFQUEUE inline) feeds packets to [`Engine::process`] and
//! acts on the returned [`Verdict`]. A worker owns its engine: flow table, inspection pool and
//! counters are not shared, so the per-packet path takes no lock and allocates nothing. What is
//! shared is read-mostly: the configuration (swapped atomically on reload, checked once per
//! batch) and the table of addresses learned from DNS.

pub mod learned;

use crate::catalog::{Catalog, Confidence, ToolId};
use crate::decode::{self, frag, tcp_flags, DecodeError, L3Kind, Packet};
use crate::flow::reassembly::seq_ge;
use crate::flow::{flags, Flow, FlowKey, FlowState, FlowTable, Timeouts, NO_SLOT, NO_TOOL};
use crate::inspect::{self, AppProto, Ctx, Detection, InspectPool, Method, Outcome, SmallStr};
use crate::policy::{Action, Direction, Policy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The catalogue and policy in force.
pub struct Config {
    /// Catalogue.
    pub catalog: Arc<Catalog>,
    /// Policy.
    pub policy: Arc<Policy>,
}

/// Holds the current [`Config`]; `reload` swaps it atomically for all workers.
pub struct ConfigHandle {
    current: RwLock<Arc<Config>>,
    generation: AtomicU64,
}

impl ConfigHandle {
    /// A handle holding `cfg`.
    pub fn new(cfg: Config) -> Arc<Self> {
        Arc::new(ConfigHandle {
            current: RwLock::new(Arc::new(cfg)),
            generation: AtomicU64::new(0),
        })
    }
    /// The current configuration.
    pub fn get(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Replaces the configuration.
    pub fn set(&self, cfg: Config) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
        self.generation.fetch_add(1, Ordering::Release);
    }
    /// Changes on every `set`.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Engine limits.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Flows tracked per worker.
    pub max_flows: usize,
    /// Packets of a flow (both directions) inspected before it is decided on what was seen.
    pub inspect_packets: u8,
    /// Bytes reassembled per TCP direction.
    pub stream_cap: usize,
    /// Flows inspected at once per worker.
    pub max_inspecting: usize,
    /// QUIC handshakes decrypted at once per worker.
    pub max_quic: usize,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// IP fragment reassembly limits.
    pub frag: frag::FragLimits,
    /// Keep a record of each ended flow (for the audit report).
    pub record_flows: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_flows: 1 << 20,
            inspect_packets: 16,
            stream_cap: 4096,
            max_inspecting: 16384,
            max_quic: 1024,
            timeouts: Timeouts::default(),
            frag: frag::FragLimits::default(),
            record_flows: false,
        }
    }
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; the flow is still being inspected (an inline gateway keeps queueing it).
    Pass,
    /// Forward it; the flow is decided and passes (the kernel may bypass it from now on).
    PassDecided,
    /// Drop it: the flow is blocked.
    Block,
    /// Drop this packet only; the flow is still being inspected. The server would read from it
    /// what the engine cannot: stream bytes that differ from those already read at the same
    /// place (the earlier copy may never have reached the server: an insertion), bytes past the
    /// prefix with a hole before them, data on a SYN, urgent data.
    Drop,
}

impl Verdict {
    /// Whether the packet is not forwarded ([`Verdict::Block`] or [`Verdict::Drop`]).
    #[inline]
    pub fn drops(self) -> bool {
        matches!(self, Verdict::Block | Verdict::Drop)
    }
}

/// A flow decision worth reporting: one per flow with a catalogued tool.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// Time of the deciding packet.
    pub ts_ns: u64,
    /// Flow id.
    pub flow_id: u64,
    /// Client address and port.
    pub client: ([u8; 16], u16),
    /// Server address and port.
    pub server: ([u8; 16], u16),
    /// IP protocol.
    pub proto: u8,
    /// Direction.
    pub direction: Direction,
    /// Application protocol.
    pub app: AppProto,
    /// Block, alert or allow.
    pub action: Action,
    /// The tool.
    pub tool: ToolId,
    /// Method.
    pub method: Method,
    /// Confidence of the indicator.
    pub confidence: Confidence,
    /// Indicator index within the tool.
    pub indicator: u16,
    /// The allow rule (index in the policy), None = default.
    pub rule: Option<u16>,
    /// What was seen.
    pub evidence: SmallStr<128>,
    /// Host name seen (SNI, Host, DNS question).
    pub host: SmallStr<128>,
    /// JA4 of the ClientHello, if any.
    pub ja4: SmallStr<40>,
}

/// The record of an ended flow (for audit reports).
#[derive(Clone, Copy, Debug)]
pub struct FlowRecord {
    /// The flow.
    pub flow: Flow,
    /// Client address and port.
    pub client: ([u8; 16], u16),
    /// Server address and port.
    pub server: ([u8; 16], u16),
}

/// Per-tool counters (index = tool id; the last entry is "no tool").
#[derive(Clone, Copy, Debug, Default)]
pub struct ToolStats {
    /// Flows.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Flows blocked.
    pub blocked: u64,
    /// Flows allowed (alert or allow).
    pub allowed: u64,
    /// Packets dropped.
    pub dropped_packets: u64,
}

/// Engine counters, kept per worker and added up for reports and metrics.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Packets in.
    pub packets: u64,
    /// Bytes in (captured length).
    pub bytes: u64,
    /// Packets forwarded.
    pub passed: u64,
    /// Bytes forwarded.
    pub passed_bytes: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// Undecodable packets by kind.
    pub malformed: [u64; DecodeError::COUNT],
    /// Packets that are not IP.
    pub not_ip: u64,
    /// IP packets that are neither TCP nor UDP.
    pub other_ip: u64,
    /// Flows created, expired, evicted.
    pub flows_created: u64,
    /// Flows ended.
    pub flows_ended: u64,
    /// Flows evicted for room.
    pub flows_evicted: u64,
    /// Flows whose inspection was cut short because the inspection pool was full.
    pub inspect_evicted: u64,
    /// Client segments dropped while their flow was undecided because the engine could not
    /// read what the server would: bytes other than those already read at the same place,
    /// bytes past the prefix with a hole before them, data on a SYN, urgent data (see
    /// [`Verdict::Drop`]).
    pub stream_conflicts: u64,
    /// Fragments seen / datagrams reassembled / dropped.
    pub frag: frag::FragStats,
    /// Decisions per (method, direction, action) for tools: index via [`Stats::decision_index`].
    pub decisions: Vec<u64>,
    /// Per-tool counters.
    pub tools: Vec<ToolStats>,
    /// Packets that reached the inspectors.
    pub inspected_packets: u64,
    /// Inspection time histogram buckets (ns upper bounds in [`LATENCY_BUCKETS_NS`]), plus sum.
    pub latency: [u64; LATENCY_BUCKETS_NS.len() + 1],
    /// Sum of inspection time (ns).
    pub latency_sum_ns: u64,
    /// Decisions per tool: key [`Stats::tool_decision_key`], flows. Updated once per decided
    /// flow (never per packet); bounded by tools x methods x directions x actions.
    pub tool_decisions: std::collections::BTreeMap<u32, u64>,
}

/// Upper bounds (ns) of the inspection-latency histogram buckets.
pub const LATENCY_BUCKETS_NS: [u64; 10] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

impl Stats {
    /// Index into `decisions`.
    pub fn decision_index(method: Method, dir: Direction, action: Action) -> usize {
        let d = Direction::ALL.iter().position(|x| *x == dir).unwrap_or(0);
        let a = match action {
            Action::Block => 0,
            Action::Alert => 1,
            Action::Allow => 2,
        };
        ((method as usize) * 4 + d) * 3 + a
    }

    /// Key into `tool_decisions`: the tool, whether the tool has allow rules in the policy but
    /// none matched this flow (`restricted`: an authorised tool used outside its allowed sources),
    /// and [`Stats::decision_index`].
    pub fn tool_decision_key(tool: ToolId, restricted: bool, decision: usize) -> u32 {
        ((tool as u32) << 16) | ((restricted as u32) << 15) | (decision as u32 & 0x7fff)
    }

    /// Splits a `tool_decisions` key into (tool, restricted, decision index).
    pub fn split_tool_decision_key(k: u32) -> (ToolId, bool, usize) {
        ((k >> 16) as ToolId, k & 0x8000 != 0, (k & 0x7fff) as usize)
    }

    /// Adds another worker's counters.
    pub fn add(&mut self, o: &Stats) {
        for (k, v) in &o.tool_decisions {
            *self.tool_decisions.entry(*k).or_insert(0) += v;
        }
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.passed += o.passed;
        self.passed_bytes += o.passed_bytes;
        self.dropped += o.dropped;
        self.dropped_bytes += o.dropped_bytes;
        for (a, b) in self.malformed.iter_mut().zip(o.malformed) {
            *a += b;
        }
        self.not_ip += o.not_ip;
        self.other_ip += o.other_ip;
        self.flows_created += o.flows_created;
        self.flows_ended += o.flows_ended;
        self.flows_evicted += o.flows_evicted;
        self.inspect_evicted += o.inspect_evicted;
        self.stream_conflicts += o.stream_conflicts;
        self.frag.fragments += o.frag.fragments;
        self.frag.reassembled += o.frag.reassembled;
        self.frag.dropped += o.frag.dropped;
        if self.decisions.len() < o.decisions.len() {
            self.decisions.resize(o.decisions.len(), 0);
        }
        for (a, b) in self.decisions.iter_mut().zip(&o.decisions) {
            *a += b;
        }
        if self.tools.len() < o.tools.len() {
            self.tools.resize(o.tools.len(), ToolStats::default());
        }
        for (a, b) in self.tools.iter_mut().zip(&o.tools) {
            a.flows += b.flows;
            a.packets += b.packets;
            a.bytes += b.bytes;
            a.blocked += b.blocked;
            a.allowed += b.allowed;
            a.dropped_packets += b.dropped_packets;
        }
        self.inspected_packets += o.inspected_packets;
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a += b;
        }
        self.latency_sum_ns += o.latency_sum_ns;
    }

    /// Malformed packets, all kinds.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// One worker's engine.
pub struct Engine {
    handle: Arc<ConfigHandle>,
    cfg: Arc<Config>,
    generation: u64,
    learned: Arc<learned::Learned>,
    table: FlowTable,
    pool: InspectPool,
    frag: frag::Reassembler,
    frag_buf: Vec<u8>,
    opts: Options,
    next_id: u64,
    since_check: u32,
    grown_bytes: usize,
    time_inspection: bool,
    /// Counters.
    pub stats: Stats,
    /// Decisions to report (drained by the caller).
    pub events: Vec<Event>,
    /// Ended flows (when `record_flows` is on; drained by the caller).
    pub records: Vec<FlowRecord>,
}

const TOOL_NONE_INDEX: usize = u16::MAX as usize;

/// The largest TLS ClientHello (record header included) a client buffer grows to.
const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// Bytes of client buffers grown beyond the usual cap, per worker.
const MAX_GROWN_BYTES: usize = 32 << 20;

/// The size a TLS stream announces for its first handshake message, record headers included
/// (one record header per 16 KiB of message), if `data` starts like a TLS handshake.
fn announced_tls_handshake(data: &[u8]) -> Option<usize> {
    if data.len() < 9 || data[0] != 0x16 || data[1] != 3 || data[5] != 1 {
        return None;
    }
    let msg = ((data[6] as usize) << 16) | ((data[7] as usize) << 8) | data[8] as usize;
    Some(msg + 4 + 5 * (msg / 16384 + 1))
}

/// The weak candidate of a flow (a catalogued port, a learned address), as a detection, if it
/// has one.
fn candidate(f: &Flow) -> Option<Detection> {
    if f.candidate_conf == 0 {
        return None;
    }
    let conf = match f.candidate_conf {
        1 => Confidence::Low,
        2 => Confidence::Medium,
        _ => Confidence::High,
    };
    let method = inspect::Method::from_u8(f.candidate_method);
    let (server, sp) = if f.client_is_a() {
        (f.key.b, f.key.b_port)
    } else {
        (f.key.a, f.key.a_port)
    };
    let proto = if f.key.proto == decode::IPPROTO_TCP {
        crate::catalog::Proto::Tcp
    } else {
        crate::catalog::Proto::Udp
    };
    Some(Detection {
        hit: crate::catalog::matcher::Hit {
            tool: f.candidate_tool,
            indicator: f.rule,
            confidence: conf,
        },
        method,
        evidence: format_port(proto, sp, method, &server),
    })
}

/// However its budget is counted, a flow is decided after this many packets (a ClientHello in
/// 1-byte segments, each acknowledged, takes about 3000).
const MAX_INSPECTED_PACKETS: u32 = 20_000;

impl Engine {
    /// An engine for worker `worker`.
    pub fn new(
        handle: Arc<ConfigHandle>,
        learned: Arc<learned::Learned>,
        opts: Options,
        worker: u16,
    ) -> Self {
        let cfg = handle.get();
        let ntools = cfg.catalog.tools.len();
        let generation = handle.generation();
        Engine {
            handle,
            cfg,
            generation,
            learned,
            table: FlowTable::new(opts.max_flows, opts.timeouts),
            pool: InspectPool::new(opts.max_inspecting, opts.stream_cap, opts.max_quic),
            frag: frag::Reassembler::new(opts.frag),
            frag_buf: Vec::with_capacity(2048),
            opts,
            next_id: ((worker as u64) << 48) | 1,
            since_check: 0,
            grown_bytes: 0,
            time_inspection: true,
            stats: Stats {
                decisions: vec![0; Method::ALL.len() * 4 * 3],
                tools: vec![ToolStats::default(); ntools + 1],
                ..Stats::default()
            },
            events: Vec::with_capacity(64),
            records: Vec::new(),
        }
    }

    /// Turns the inspection-latency histogram on or off (it reads the clock twice per inspected
    /// packet).
    pub fn set_time_inspection(&mut self, on: bool) {
        self.time_inspection = on;
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Flows tracked now.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Flows being inspected now.
    pub fn inspecting(&self) -> usize {
        self.pool.in_use()
    }

    /// Memory held by the flow table and inspection state (bytes).
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes() + self.pool.memory_bytes() + self.frag.bytes_held()
    }

    /// Bytes held by fragment reassembly.
    pub fn frag_bytes(&self) -> usize {
        self.frag.bytes_held()
    }

    fn tool_index(tool: u16) -> usize {
        if tool == NO_TOOL {
            TOOL_NONE_INDEX
        } else {
            tool as usize
        }
    }

    /// Picks up a new configuration if one was published (done every 1024 packets; an idle
    /// inline worker also calls it on its periodic wake-up).
    #[inline]
    pub fn check_reload(&mut self) {
        let g = self.handle.generation();
        if g != self.generation {
            self.generation = g;
            let old = std::mem::replace(&mut self.cfg, self.handle.get());
            if old.catalog.tag != self.cfg.catalog.tag {
                self.remap_tools(&old.catalog);
            }
        }
    }

    /// After a reload to another catalogue, tool indices held by flows and counters are
    /// translated by tool id (a tool that is gone becomes "no tool"), so that nothing indexes
    /// the new catalogue with an old number.
    fn remap_tools(&mut self, old: &Catalog) {
        let new = self.cfg.catalog.clone();
        let map: Vec<u16> = old
            .tools
            .iter()
            .map(|t| new.tool_id(&t.id).unwrap_or(NO_TOOL))
            .collect();
        let tr = |t: u16| -> u16 {
            if t == NO_TOOL {
                NO_TOOL
            } else {
                map.get(t as usize).copied().unwrap_or(NO_TOOL)
            }
        };
        for idx in self.table.indices() {
            let f = self.table.flow_mut(idx);
            f.tool = tr(f.tool);
            f.candidate_tool = tr(f.candidate_tool);
            if f.candidate_tool == NO_TOOL {
                f.candidate_conf = 0;
            }
        }
        let old_tools = std::mem::take(&mut self.stats.tools);
        self.stats.tools = vec![ToolStats::default(); new.tools.len() + 1];
        let none_slot = new.tools.len();
        for (i, t) in old_tools.iter().enumerate() {
            // The last entry of the old vector is "no tool".
            let j = if i + 1 == old_tools.len() {
                NO_TOOL
            } else {
                tr(i as u16)
            };
            let d = &mut self.stats.tools[if j == NO_TOOL { none_slot } else { j as usize }];
            d.flows += t.flows;
            d.packets += t.packets;
            d.bytes += t.bytes;
            d.blocked += t.blocked;
            d.allowed += t.allowed;
            d.dropped_packets += t.dropped_packets;
        }
        let old_dec = std::mem::take(&mut self.stats.tool_decisions);
        for (k, v) in old_dec {
            let (t, restricted, d) = Stats::split_tool_decision_key(k);
            let t = tr(t);
            if t != NO_TOOL {
                *self
                    .stats
                    .tool_decisions
                    .entry(Stats::tool_decision_key(t, restricted, d))
                    .or_insert(0) += v;
            }
        }
    }

    /// Processes one captured frame.
    #[inline]
    pub fn process(&mut self, ts_ns: u64, link: u16, frame: &[u8]) -> Verdict {
        self.since_check += 1;
        if self.since_check >= 1024 {
            self.since_check = 0;
            self.check_reload();
            self.frag.expire(ts_ns);
        }
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        let mut p = Packet::default();
        let v = match decode::decode(link, frame, &mut p) {
            Err(e) => {
                self.stats.malformed[e as usize] += 1;
                if self.cfg.policy.drop_malformed {
                    Verdict::Block
                } else {
                    Verdict::Pass
                }
            }
            Ok(()) => match p.kind {
                L3Kind::NotIp => {
                    self.stats.not_ip += 1;
                    Verdict::Pass
                }
                L3Kind::OtherIp => {
                    self.stats.other_ip += 1;
                    Verdict::Pass
                }
                L3Kind::Transport => self.transport(ts_ns, &p, frame, frame.len() as u32),
                L3Kind::Fragment => self.fragment(ts_ns, &mut p, frame),
            },
        };
        if v.drops() {
            self.stats.dropped += 1;
            self.stats.dropped_bytes += frame.len() as u64;
        } else {
            self.stats.passed += 1;
            self.stats.passed_bytes += frame.len() as u64;
        }
        v
    }

    fn fragment(&mut self, ts_ns: u64, p: &mut Packet, frame: &[u8]) -> Verdict {
        let data = p.payload(frame);
        let complete = match self.frag.add(
            ts_ns,
            &p.src,
            &p.dst,
            p.proto,
            p.ip_version == 6,
            p.frag.id,
            p.frag.offset,
            p.frag.more,
            data,
        ) {
            Some(dgram) => {
                self.frag_buf.clear();
                self.frag_buf.extend_from_slice(dgram);
                true
            }
            None => false,
        };
        self.stats.frag = self.frag.stats;
        if !complete {
            return Verdict::Pass;
        }
        let buf = std::mem::take(&mut self.frag_buf);
        let v = match decode::transport(&buf, 0, buf.len(), p) {
            Ok(()) if p.kind == L3Kind::Transport => {
                self.transport(ts_ns, p, &buf, frame.len() as u32)
            }
            Ok(()) => {
                self.stats.other_ip += 1;
                Verdict::Pass
            }
            Err(e) => {
                self.stats.malformed[e as usize] += 1;
                Verdict::Pass
            }
        };
        self.frag_buf = buf;
        v
    }

    #[inline]
    fn transport(&mut self, ts_ns: u64, p: &Packet, frame: &[u8], wire_len: u32) -> Verdict {
        let (key, from_a) = FlowKey::new(&p.src, p.sport, &p.dst, p.dport, p.proto);
        let mut idx = match self.table.get(&key) {
            Some(i) => i,
            None => self.new_flow(ts_ns, key, from_a, p),
        };
        {
            let f = self.table.flow(idx);
            let reused = p.proto == decode::IPPROTO_TCP && reuses_tuple(f, from_a, p);
            if reused || self.table.is_expired(idx, ts_ns) {
                self.end_flow(idx, ts_ns);
                idx = self.new_flow(ts_ns, key, from_a, p);
            }
        }
        let f = self.table.flow_mut(idx);
        let dir = if from_a == f.client_is_a() { 0 } else { 1 };
        f.last_ns = ts_ns;
        f.pkts[dir] = f.pkts[dir].saturating_add(1);
        f.bytes[dir] += wire_len as u64;
        if p.proto == decode::IPPROTO_TCP {
            let fl = p.tcp_flags;
            if fl & tcp_flags::RST != 0 {
                // A reset never ends an inspection: a stray one (out of window, or one the
                // receiver answers with a challenge ACK, RFC 5961) must not let the flow be
                // decided on nothing. Nor does it end an undecided flow for expiry: a client
                // could send half a ClientHello, a stray reset, wait out the short timeout of
                // closed flows, and have the rest read as a flow joined midway. An undecided
                // flow that really ended waits for the idle timeout (the table is bounded).
                f.flags |= flags::RST;
                if f.state != FlowState::Undecided {
                    f.flags |= flags::CLOSED;
                }
            }
            if fl & tcp_flags::SYN != 0 && f.isn_known & (1 << dir) == 0 {
                f.isn[dir] = p.seq.wrapping_add(1);
                f.isn_known |= 1 << dir;
            }
            // A SYN-ACK also gives the client's start (its acknowledgement number), for a flow
            // whose SYN was not seen (a gateway that does not queue it, a capture that lost it).
            if fl & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK
                && dir == 1
                && f.isn_known & 1 == 0
            {
                f.isn[0] = p.ack;
                f.isn_known |= 1;
            }
            if fl & tcp_flags::FIN != 0 {
                f.flags |= if from_a { flags::FIN_A } else { flags::FIN_B };
                if f.flags & (flags::FIN_A | flags::FIN_B) == flags::FIN_A | flags::FIN_B {
                    f.flags |= flags::CLOSED;
                }
            }
        }
        let state = f.state;
        let learning = f.flags & flags::DNS_LEARN != 0;
        let v = match state {
            FlowState::Clean | FlowState::Passed if !learning => Verdict::PassDecided,
            FlowState::Blocked => {
                f.dropped += 1;
                Verdict::Block
            }
            _ => self.inspect(ts_ns, idx, dir, p, frame),
        };
        if let Some(exp) = self.table.sweep_step(ts_ns, 2) {
            if exp != idx {
                self.end_flow(exp, ts_ns);
            }
        }
        v
    }

    fn new_flow(&mut self, ts_ns: u64, key: FlowKey, from_a: bool, p: &Packet) -> u32 {
        if self.table.is_full() {
            if let Some(v) = self.table.eviction_victim() {
                self.stats.flows_evicted += 1;
                self.table.stats.evicted += 1;
                self.end_flow(v, ts_ns);
            }
        }
        // Who is the client? The sender of a SYN; the receiver of a SYN-ACK; otherwise the sender,
        // unless it sends from a well-known port to an ephemeral one (we joined mid-flow).
        let syn = p.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK);
        let (sender_is_client, guessed) = if p.proto == decode::IPPROTO_TCP && syn == tcp_flags::SYN
        {
            (true, false)
        } else if p.proto == decode::IPPROTO_TCP && syn == tcp_flags::SYN | tcp_flags::ACK {
            (false, false)
        } else {
            (!(p.sport < 1024 && p.dport >= 1024), true)
        };
        let mut client_is_a = sender_is_client == from_a;
        let proto = if p.proto == decode::IPPROTO_TCP {
            crate::catalog::Proto::Tcp
        } else {
            crate::catalog::Proto::Udp
        };
        let m = &self.cfg.catalog.matcher;
        let (sp, cp) = if client_is_a {
            (key.b_port, key.a_port)
        } else {
            (key.a_port, key.b_port)
        };
        let mut cand = m.port(proto, sp).map(|h| (h, Method::Port));
        if cand.is_none() && guessed && proto == crate::catalog::Proto::Tcp {
            // Joined a TCP flow mid-way: the catalogued port may be on the side we took for the
            // client. Turn the flow round only when that looks like a service port talking to an
            // ephemeral one; a client's own ephemeral port that happens to be catalogued (DNS
            // from source port 3389) must not make it a server. UDP keeps its first sender.
            if let Some(h) = m.port(proto, cp) {
                if cp < 32768 && sp >= 32768 {
                    cand = Some((h, Method::Port));
                    client_is_a = !client_is_a;
                }
            }
        }
        let (server, client) = if client_is_a {
            (&key.b, &key.a)
        } else {
            (&key.a, &key.b)
        };
        if m.has_ips() {
            for a in [server, client] {
                if let Some(h) = m.ip(&decode::to_ip(a)) {
                    if cand.is_none_or(|(c, _)| h.confidence > c.confidence) {
                        cand = Some((h, Method::Ip));
                    }
                    break;
                }
            }
        }
        for a in [server, client] {
            if let Some(e) = self.learned.get_tagged(a, ts_ns, self.cfg.catalog.tag) {
                cand = Some((
                    crate::catalog::matcher::Hit {
                        tool: e.tool,
                        indicator: e.indicator,
                        confidence: Confidence::High,
                    },
                    Method::DnsLearnedIp,
                ));
                break;
            }
        }
        let mut fl = if client_is_a { flags::CLIENT_IS_A } else { 0 };
        if guessed {
            fl |= flags::GUESSED;
        }
        let flow = Flow {
            key,
            flags: fl,
            first_ns: ts_ns,
            last_ns: ts_ns,
            id: self.next_id,
            slot: NO_SLOT,
            tool: NO_TOOL,
            candidate_tool: cand.map_or(NO_TOOL, |(h, _)| h.tool),
            candidate_method: cand.map_or(0, |(_, m)| m as u8),
            candidate_conf: cand.map_or(0, |(h, _)| h.confidence as u8 + 1),
            rule: cand.map_or(0, |(h, _)| h.indicator),
            ..Flow::default()
        };
        self.next_id += 1;
        self.stats.flows_created += 1;
        let idx = self.table.insert(flow);
        // A distinctive port decides the flow at its first packet when the policy refuses it (an
        // inline gateway then refuses the SYN itself). When the policy would let it pass (an
        // allowed tool's port), what the flow carries is read first, as for weaker candidates:
        // another tool on the allowed tool's port is still caught.
        if let Some((h, Method::Port | Method::Ip)) = cand {
            if h.confidence == Confidence::High {
                if let Some(d) = candidate(self.table.flow(idx)) {
                    if self.action_for(idx, &d, None).0 == Action::Block {
                        self.decide(ts_ns, idx, Some(d), None);
                    }
                }
            }
        }
        idx
    }

    fn inspect(&mut self, ts_ns: u64, idx: u32, dir: usize, p: &Packet, frame: &[u8]) -> Verdict {
        self.stats.inspected_packets += 1;
        // The latency histogram samples one inspected packet in 16: reading the clock costs more
        // than many of the inspections it would measure.
        let t0 = if self.time_inspection && self.stats.inspected_packets % 16 == 1 {
            Some(std::time::Instant::now())
        } else {
            None
        };
        let tcp = p.proto == decode::IPPROTO_TCP;
        // Bytes carried by a SYN or a reset are not stream data. A server delivers a SYN's data
        // only with a valid Fast Open cookie, and a reset's never (it answers one in its window
        // with a challenge ACK, RFC 5961): a client could put a harmless ClientHello there,
        // have it read first (the first copy of a byte wins), and send the real one after.
        let carried = p.payload(frame);
        let payload = if tcp && p.tcp_flags & (tcp_flags::SYN | tcp_flags::RST) != 0 {
            &[][..]
        } else {
            carried
        };
        // A client SYN that carries data (Fast Open) is dropped while the flow is undecided: a
        // server with a valid cookie would take bytes the engine does not read. The client sends
        // its SYN again without them, and the data after the handshake.
        let mut unreadable = tcp
            && p.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
            && !carried.is_empty();
        // Urgent data, likewise: the server's application never reads the urgent byte in line
        // (no TLS library sets SO_OOBINLINE), the engine would, and a client could point the
        // urgent pointer at a byte it adds to its ClientHello to break the engine's parse.
        // No protocol rmmguard inspects uses it at the start of a connection.
        unreadable |= tcp && dir == 0 && p.tcp_flags & tcp_flags::URG != 0;
        let (client_port, server_port) = {
            let f = self.table.flow(idx);
            if f.client_is_a() {
                (f.key.a_port, f.key.b_port)
            } else {
                (f.key.b_port, f.key.a_port)
            }
        };
        let f = self.table.flow_mut(idx);
        // UDP datagrams use up the packet budget; TCP segments only as described below.
        if !tcp {
            f.inspected = f.inspected.saturating_add(1);
        }
        let mut inspected = f.inspected;
        let mut slot = f.slot;
        // A bare SYN takes no inspection slot: its sequence number is kept in the flow.
        let needs_slot = !payload.is_empty();
        if slot == NO_SLOT && needs_slot {
            slot = match self.pool.acquire(idx, ts_ns) {
                Some(s) => s,
                None => {
                    // Pool exhausted: take the oldest inspection's slot. That flow stays
                    // undecided (it is not waved through): its next payload is inspected afresh.
                    if let Some((old_slot, old_flow)) = self.pool.oldest() {
                        self.stats.inspect_evicted += 1;
                        self.pool.release(old_slot);
                        self.table.flow_mut(old_flow).slot = NO_SLOT;
                    }
                    match self.pool.acquire(idx, ts_ns) {
                        Some(s) => s,
                        None => NO_SLOT,
                    }
                }
            };
            self.table.flow_mut(idx).slot = slot;
        }
        let mut outcome = Outcome::Continue;
        if slot != NO_SLOT {
            let cfg = self.cfg.clone();
            let ctx = Ctx {
                m: &cfg.catalog.matcher,
                tcp,
                dir,
                client_port,
                server_port,
            };
            let learned = &self.learned;
            let max_ttl = cfg.policy.learned_ip_max_ttl;
            let policy = &cfg.policy;
            let mut learn = |(addr, ttl, hit): inspect::Learn| {
                // Never learn the home networks or special-purpose addresses: a DNS answer
                // must not be able to get the gateway to refuse traffic to them.
                let ip = decode::to_ip(&addr);
                if !policy.is_home(&ip) && !special_address(&ip) {
                    learned.learn_tagged(
                        addr,
                        hit.tool,
                        hit.indicator,
                        ttl,
                        max_ttl,
                        ts_ns,
                        cfg.catalog.tag,
                    );
                }
            };
            if tcp {
                let (isn, known) = {
                    let f = self.table.flow(idx);
                    (f.isn, f.isn_known)
                };
                let (st, hs) = self.pool.get(slot);
                for (d, (stream, start)) in st.streams.iter_mut().zip(isn).enumerate() {
                    if known & (1 << d) != 0 {
                        stream.set_start(start);
                    }
                }
                if dir == 1 && p.tcp_flags & tcp_flags::ACK != 0 {
                    st.server_ack = Some(match st.server_ack {
                        Some(a) if !seq_ge(p.ack, a) => a,
                        _ => p.ack,
                    });
                }
                let stored = st.streams[dir].stored;
                let conflicts = st.streams[dir].conflicts;
                // A ClientHello that announces more bytes than the prefix holds (padding, big
                // key shares, an SNI placed last) gets a larger client buffer, up to
                // MAX_CLIENT_HELLO, within a per-worker memory budget.
                if dir == 0 {
                    let want = announced_tls_handshake(st.streams[0].data())
                        .or_else(|| {
                            (!st.streams[0].started() || st.streams[0].data().is_empty())
                                .then(|| announced_tls_handshake(payload))
                                .flatten()
                        })
                        .unwrap_or(0)
                        .min(MAX_CLIENT_HELLO);
                    if want > st.streams[0].cap() && self.grown_bytes < MAX_GROWN_BYTES {
                        self.grown_bytes += st.streams[0].grow(want);
                    }
                }
                if st.streams[dir].add(p.seq, payload) {
                    outcome = inspect::inspect_tcp(&ctx, st, hs, &mut learn);
                }
                // Client bytes that differ from those already read at the same place: one of
                // the two copies never reached the server (a TTL that runs out past the gateway,
                // a timestamp the server's PAWS check refuses) or the client is playing games.
                // The engine keeps what it read, so the new copy is dropped (the server must not
                // read what the engine did not), and the flow is never decided to pass on what
                // it holds. (Unless the server has acknowledged those bytes already: it drops
                // the copy itself, as with a keep-alive probe's garbage byte.)
                if dir == 0 && st.streams[0].conflicts != conflicts {
                    let end = p.seq.wrapping_add(payload.len() as u32);
                    let held = st.server_ack.is_some_and(|a| seq_ge(a, end));
                    if !held {
                        st.conflict = true;
                        unreadable = true;
                    }
                }
                // Client bytes past what the prefix keeps, while there is still a hole before
                // them: the engine cannot read them, and the prefix might still grow over their
                // place, so the server must not get them yet (the client sends them again).
                if dir == 0
                    && !payload.is_empty()
                    && !st.streams[0].full()
                    && st.streams[0].reaches_past_cap(p.seq, payload.len())
                {
                    unreadable = true;
                }
                // Only payload that arrives once this direction's prefix is full uses up the
                // packet budget. Segments with new bytes, retransmissions and old segments
                // (keep-alives), SYN retransmissions and bare ACKs are free: an attacker cannot
                // exhaust the budget before the ClientHello is complete. The prefix cap bounds
                // the new bytes, and the kernel's queue budget bounds the rest.
                let full = st.streams[dir].full();
                if st.streams[dir].stored == stored && !payload.is_empty() && full {
                    let f = self.table.flow_mut(idx);
                    f.inspected = f.inspected.saturating_add(1);
                    inspected = f.inspected;
                }
            } else {
                outcome = inspect::inspect_udp(&ctx, &mut self.pool, slot, payload, &mut learn);
            }
        }
        if let Some(t0) = t0 {
            let ns = t0.elapsed().as_nanos() as u64;
            let b = LATENCY_BUCKETS_NS
                .iter()
                .position(|&u| ns <= u)
                .unwrap_or(LATENCY_BUCKETS_NS.len());
            self.stats.latency[b] += 1;
            self.stats.latency_sum_ns += ns;
        }
        let f = *self.table.flow(idx);
        let facts = if slot != NO_SLOT {
            Some(self.pool.get(slot).0.facts)
        } else {
            None
        };
        // Whether the server acknowledged every client byte read (none read counts as yes), and
        // whether the client ever sent conflicting bytes.
        let (acked, conflicted) = if slot != NO_SLOT && tcp {
            let st = &self.pool.get(slot).0;
            let acked = match (st.streams[0].next_seq(), st.server_ack) {
                (None, _) => true,
                (Some(next), Some(ack)) => seq_ge(ack, next),
                (Some(_), None) => false,
            };
            (acked, st.conflict)
        } else {
            (true, false)
        };
        match outcome {
            Outcome::Detected(d) => {
                if f.state == FlowState::Undecided {
                    // A detection that lets the flow pass (an allowed tool, an alert) waits, as
                    // a pass on what the bytes say does (below), until the server has
                    // acknowledged the client bytes read: a client could otherwise send a
                    // ClientHello that names an allowed tool where only the gateway sees it (a
                    // TTL that runs out past it), have the flow waved through, then send the
                    // real one. A detection that blocks is applied at once.
                    let passes = || self.action_for(idx, &d, facts.as_ref()).0 != Action::Block;
                    if tcp && slot != NO_SLOT && (!acked || conflicted) && passes() {
                        self.pool.get(slot).0.pending = Some(d);
                    } else {
                        self.decide(ts_ns, idx, Some(d), facts.as_ref());
                    }
                }
            }
            Outcome::Continue => {
                if f.state == FlowState::Undecided {
                    let both_done = facts.is_some_and(|fa| {
                        tcp && inspect::tcp_dir_done(&fa, 0) && inspect::tcp_dir_done(&fa, 1)
                    });
                    let contradicted = facts.is_some_and(|fa| fa.other_app);
                    let unnamed = facts.is_some_and(|fa| fa.unnamed);
                    let fin_both =
                        f.flags & (flags::FIN_A | flags::FIN_B) == flags::FIN_A | flags::FIN_B;
                    let dns_answered = is_dns(&f) && facts.is_some_and(|fa| fa.dns_answered);
                    let too_long = f.pkts[0].saturating_add(f.pkts[1]) >= MAX_INSPECTED_PACKETS;
                    // What the bytes say (an uncatalogued name, both parsers done) decides a
                    // TCP flow only once the server has acknowledged them: bytes that never
                    // reach it must not get the flow waved through before the real ones arrive
                    // (which then conflict, see `conflict` above). The end of the inspection
                    // budget waits likewise, since a client alone can bring it about (a decoy
                    // padded to fill the prefix, then copies of it, all past the gateway only).
                    // The gateway rules queue the server's pure ACKs of undecided flows for
                    // this; a server that never acknowledges keeps the flow queued, passing.
                    let read = both_done
                        || (contradicted && f.candidate_conf == 0 && !is_dns(&f))
                        || (unnamed && f.candidate_method == Method::DnsLearnedIp as u8);
                    let ended = inspected >= self.opts.inspect_packets
                        || fin_both
                        || dns_answered
                        || too_long;
                    // A detection held back until the server acknowledges (see above), and only
                    // then: the end of the budget does not decide it, since a client alone can
                    // bring that about (the same decoy again and again, past the gateway only).
                    // A server that never acknowledges keeps the flow queued, still passing.
                    let pending = slot != NO_SLOT && self.pool.get(slot).0.pending.is_some();
                    // Otherwise only a pass waits: a flow decided for a tool the policy refuses
                    // is refused at once. A weak candidate the policy lets pass, such as a
                    // catalogued port of an allowed tool, waits like any other pass.
                    let go = if pending {
                        acked
                    } else {
                        (read || ended) && (acked || !self.would_pass(idx, facts.as_ref()))
                    };
                    if !conflicted && go {
                        self.finalize(ts_ns, idx);
                    }
                }
            }
        }
        // DNS flows stay under inspection until the answer was read, so that its addresses are
        // learned; after that, or at the end of the budget, the flow leaves user space.
        let f = self.table.flow_mut(idx);
        if f.flags & flags::DNS_LEARN != 0
            && (facts.is_some_and(|fa| fa.dns_answered) || inspected >= self.opts.inspect_packets)
        {
            f.flags &= !flags::DNS_LEARN;
        }
        let state = f.state;
        let learning = f.flags & flags::DNS_LEARN != 0;
        if state != FlowState::Undecided && !learning && f.slot != NO_SLOT {
            let s = f.slot;
            f.slot = NO_SLOT;
            self.pool.release(s);
        }
        let f = self.table.flow_mut(idx);
        match state {
            FlowState::Blocked => {
                f.dropped += 1;
                Verdict::Block
            }
            FlowState::Undecided if unreadable => {
                f.dropped += 1;
                self.stats.stream_conflicts += 1;
                Verdict::Drop
            }
            FlowState::Undecided => Verdict::Pass,
            _ if learning => Verdict::Pass,
            _ => Verdict::PassDecided,
        }
    }

    /// Decides an undecided flow on what was seen: a weak candidate that nothing contradicted,
    /// or clean.
    fn finalize(&mut self, ts_ns: u64, idx: u32) {
        let f = *self.table.flow(idx);
        if f.state != FlowState::Undecided {
            return;
        }
        let facts = (f.slot != NO_SLOT).then(|| self.pool.get(f.slot).0.facts);
        // A detection held back until the server acknowledged its bytes, unless the client
        // sent conflicting ones since.
        if f.slot != NO_SLOT {
            let st = &self.pool.get(f.slot).0;
            if let Some(d) = st.pending.filter(|_| !st.conflict) {
                self.decide(ts_ns, idx, Some(d), facts.as_ref());
                return;
            }
        }
        let contradicted = facts.is_some_and(|fa| fa.other_app);
        let det = if contradicted { None } else { candidate(&f) };
        self.decide(ts_ns, idx, det, facts.as_ref());
    }

    /// Whether deciding flow `idx` now on what was seen would let it pass: nothing named it, what
    /// the bytes say contradicts its candidate, or the policy does not block its candidate.
    fn would_pass(&self, idx: u32, facts: Option<&inspect::Facts>) -> bool {
        let f = self.table.flow(idx);
        if facts.is_some_and(|fa| fa.other_app) {
            return true;
        }
        match candidate(f) {
            None => true,
            Some(c) => self.action_for(idx, &c, facts).0 != Action::Block,
        }
    }

    /// What the policy does with detection `d` on flow `idx`: the action, the allow rule that
    /// gave it (if one did), and the flow's direction.
    fn action_for(
        &self,
        idx: u32,
        d: &Detection,
        facts: Option<&inspect::Facts>,
    ) -> (Action, Option<usize>, Direction) {
        let cfg = &self.cfg;
        let f = self.table.flow(idx);
        let (client, server) = if f.client_is_a() {
            (f.key.a, f.key.b)
        } else {
            (f.key.b, f.key.a)
        };
        let cip = decode::to_ip(&client);
        let sip = decode::to_ip(&server);
        let dir = cfg.policy.direction(&cip, &sip);
        let host = facts.map(|fa| fa.host).unwrap_or_default();
        let (mut action, rule) = cfg.policy.decide(
            &cfg.catalog,
            d.hit.tool,
            dir,
            &cip,
            &sip,
            (!host.is_empty()).then(|| host.as_bytes()),
        );
        if d.method == Method::DnsQuery && rule.is_none() {
            if let Some(a) = cfg.policy.dns_query_action {
                action = a;
            }
        }
        // A weak indicator alone alerts rather than blocks (policy `min_block_confidence`).
        if action == Action::Block && d.hit.confidence < cfg.policy.min_block_confidence {
            action = Action::Alert;
        }
        (action, rule, dir)
    }

    /// Records the decision for a flow, applies the policy, and queues the event.
    fn decide(
        &mut self,
        ts_ns: u64,
        idx: u32,
        det: Option<Detection>,
        facts: Option<&inspect::Facts>,
    ) {
        let cfg = self.cfg.clone();
        let Some(d) = det else {
            let f = self.table.flow_mut(idx);
            f.state = FlowState::Clean;
            f.tool = NO_TOOL;
            return;
        };
        let (action, rule, dir) = self.action_for(idx, &d, facts);
        let host = facts.map(|fa| fa.host).unwrap_or_default();
        let f = self.table.flow_mut(idx);
        let (client, cport, server, sport) = if f.client_is_a() {
            (f.key.a, f.key.a_port, f.key.b, f.key.b_port)
        } else {
            (f.key.b, f.key.b_port, f.key.a, f.key.a_port)
        };
        let dns = is_dns(f);
        f.tool = d.hit.tool;
        f.method = d.method as u8;
        f.rule = rule.map_or(0, |r| r as u16 + 1);
        f.state = if action == Action::Block {
            FlowState::Blocked
        } else {
            FlowState::Passed
        };
        if dns && action != Action::Block && facts.is_none_or(|fa| !fa.dns_answered) {
            f.flags |= flags::DNS_LEARN;
        }
        let flow_id = f.id;
        let proto = f.key.proto;
        let di = Stats::decision_index(d.method, dir, action);
        self.stats.decisions[di] += 1;
        let restricted = rule.is_none() && {
            let category = cfg.catalog.tool(d.hit.tool).category;
            cfg.policy.allow.iter().any(|r| {
                (r.tools.is_empty() || r.tools.contains(&d.hit.tool))
                    && (r.categories.is_empty() || r.categories.contains(&category))
            })
        };
        *self
            .stats
            .tool_decisions
            .entry(Stats::tool_decision_key(d.hit.tool, restricted, di))
            .or_insert(0) += 1;
        self.events.push(Event {
            ts_ns,
            flow_id,
            client: (client, cport),
            server: (server, sport),
            proto,
            direction: dir,
            app: facts.map(|fa| fa.app).unwrap_or_default(),
            action,
            tool: d.hit.tool,
            method: d.method,
            confidence: d.hit.confidence,
            indicator: d.hit.indicator,
            rule: rule.map(|r| r as u16),
            evidence: d.evidence,
            host,
            ja4: facts.map(|fa| fa.ja4).unwrap_or_default(),
        });
    }

    /// Ends a flow: decides it if it was still undecided, adds it to the per-tool totals, frees it.
    fn end_flow(&mut self, idx: u32, ts_ns: u64) {
        self.finalize(ts_ns, idx);
        let f = self.table.remove(idx);
        if f.slot != NO_SLOT {
            self.pool.release(f.slot);
        }
        self.stats.flows_ended += 1;
        let last = self.stats.tools.len() - 1;
        let t = &mut self.stats.tools[Self::tool_index(f.tool).min(last)];
        t.flows += 1;
        t.packets += (f.pkts[0] + f.pkts[1]) as u64;
        t.bytes += f.bytes[0] + f.bytes[1];
        t.dropped_packets += f.dropped as u64;
        match f.state {
            FlowState::Blocked => t.blocked += 1,
            FlowState::Passed => t.allowed += 1,
            _ => {}
        }
        if self.opts.record_flows {
            let (client, cport, server, sport) = if f.client_is_a() {
                (f.key.a, f.key.a_port, f.key.b, f.key.b_port)
            } else {
                (f.key.b, f.key.b_port, f.key.a, f.key.a_port)
            };
            self.records.push(FlowRecord {
                flow: f,
                client: (client, cport),
                server: (server, sport),
            });
        }
    }

    /// Ends every flow (at the end of a capture).
    pub fn flush(&mut self, ts_ns: u64) {
        for idx in self.table.indices() {
            self.end_flow(idx, ts_ns);
        }
    }
}

/// Whether a SYN or SYN-ACK starts a new connection on the 5-tuple of flow `f` (a client
/// reusing its source port), so that the old flow must end and a new one begin.
///
/// A client's SYN with another initial sequence number is not proof on its own: a server in an
/// established connection answers such a SYN with a challenge ACK (RFC 5961) and the connection
/// goes on, so a client could send half a ClientHello, a SYN, then the rest, and have the engine
/// drop the first half. So once the server has answered on this flow, only its SYN-ACK decides,
/// and only by starting another server stream. (Not by following a reset, which the client can
/// send stray; nor by its acknowledgement number, which captures hold broken and which a
/// retransmitted SYN-ACK repeats.) Before the server ever answered (or in a capture of the
/// client's side only), the client's SYN decides: after the flow ended, with another start, or
/// after client packets without one. A bare SYN from the side taken for the server means the
/// roles were wrong (its peer spoke first, with a SYN-ACK): the flow starts again from it.
fn reuses_tuple(f: &Flow, from_a: bool, p: &Packet) -> bool {
    let from_client = from_a == f.client_is_a();
    match p.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) {
        tcp_flags::SYN if !from_client => true,
        tcp_flags::SYN if f.pkts[1] == 0 => {
            f.flags & flags::CLOSED != 0
                || if f.isn_known & 1 != 0 {
                    f.isn[0] != p.seq.wrapping_add(1)
                } else {
                    f.pkts[0] > 0
                }
        }
        x if x == tcp_flags::SYN | tcp_flags::ACK && !from_client => {
            if f.isn_known & 2 != 0 {
                f.isn[1] != p.seq.wrapping_add(1)
            } else {
                f.pkts[1] > 0
            }
        }
        _ => false,
    }
}

/// Addresses a DNS answer must never teach: unspecified, loopback, link-local, multicast,
/// broadcast and reserved. Private ranges are covered by the policy's home networks (the default
/// home networks include them), so that a site whose outside world is itself private can say so.
fn special_address(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            a.is_unspecified()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || o[0] == 0
                || o[0] >= 240
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            a.is_unspecified() || a.is_loopback() || a.is_multicast() || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

fn is_dns(f: &Flow) -> bool {
    inspect::is_dns_port(f.key.a_port, f.key.b_port)
}

/// The evidence of a port or address detection ("5938/tcp", "203.0.113.7"), without allocating.
fn format_port(
    proto: crate::catalog::Proto,
    port: u16,
    method: Method,
    server: &[u8; 16],
) -> SmallStr<128> {
    use std::io::Write as _;
    let mut buf = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = match method {
        Method::Ip | Method::DnsLearnedIp => write!(cur, "{}", decode::to_ip(server)),
        _ => write!(cur, "{}/{}", port, proto.as_str()),
    };
    let n = cur.position() as usize;
    SmallStr::from_bytes(&buf[..n])
}
