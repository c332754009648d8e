//! NFQUEUE: packets the kernel's firewall hands to user space for a verdict (inline mode).
//!
//! A small netlink layer of our own (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_QUEUE`). The
//! `nfq` crate was used first; it was replaced because inline mode needs what it lacks:
//! - **batch verdicts** (`NFQNL_MSG_VERDICT_BATCH`): after a restart that took over a socket
//!   whose previous owner died, every packet that owner had read but not answered is released at
//!   once;
//! - **packets that arrive while a configuration reply is awaited are kept**, not discarded: a
//!   packet read and dropped on the floor is never answered, and the kernel holds it until the
//!   queue is destroyed, then drops it. Stopping relies on this (see [`NfQueue::quiesce`]);
//! - **taking over an open socket** ([`NfQueue::adopt`]), as kept by systemd's file-descriptor
//!   store across a crash: the queue stays bound, so packets wait in it instead of being lost;
//! - no allocation per packet: one receive buffer, reused.
//!
//! ## The marks
//! rmmguard owns the two low bits of the packet mark ([`MARK_MASK`]); the other bits are left as
//! they were. The ruleset (`deploy/gateway-rules.sh`) saves them to the conntrack mark, so the
//! kernel carries the rest of a decided flow by itself:
//! - [`MARK_ALLOW`]: the flow is decided and passes; later packets bypass the queue;
//! - [`MARK_REJECT`]: the flow is blocked, refused with a TCP reset or ICMP port unreachable;
//! - [`MARK_DROP`]: the flow is blocked, silently dropped.
//!
//! A decided packet gets the `repeat` verdict with its mark, so it re-enters the chain, skips the
//! queue rule (its mark is no longer 0) and meets the rule that saves the mark and acts on it.
//!
//! ## Wire format (linux/netfilter/nfnetlink_queue.h)
//! Every message is a netlink header, a `nfgenmsg` (family, version 0, the queue number in
//! network order) and attributes. Attribute payloads are in network byte order; netlink's own
//! headers are in host order.
#![allow(unsafe_code)]

use crate::engine::Verdict;
use crate::policy::BlockMode;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The bits of the packet and conntrack marks that rmmguard uses.
pub const MARK_MASK: u32 = 0x3;
/// Decided, passes.
pub const MARK_ALLOW: u32 = 1;
/// Blocked, refused (TCP reset / ICMP port unreachable).
pub const MARK_REJECT: u32 = 2;
/// Blocked, silently dropped.
pub const MARK_DROP: u32 = 3;

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 0x2;
const NLA_TYPE_MASK: u16 = 0x3fff;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_NO_ENOBUFS: libc::c_int = 5;
// linux/netfilter/nfnetlink.h, nfnetlink_queue.h
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_PACKET: u8 = 2;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_CFG_F_GSO: u32 = 4;
// linux/netfilter.h
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_REPEAT: u32 = 4;

/// Settings of a bound queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    /// Accept packets when the queue is full instead of dropping them.
    pub fail_open: bool,
    /// Bytes of each packet copied to user space.
    pub copy_range: u16,
    /// Packets the kernel holds for this queue before it applies the full-queue rule.
    pub max_len: u32,
    /// Receive buffer of the queue's socket, bytes (the kernel doubles it for its bookkeeping).
    /// Packets wait here for rmmguard; when it is full the kernel applies the full-queue rule.
    pub socket_buffer: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            fail_open: true,
            copy_range: u16::MAX,
            max_len: 65536,
            socket_buffer: 8 << 20,
        }
    }
}

/// What to answer for one packet: a netfilter verdict and, when decided, the mark to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Repeat (decided: the ruleset acts on the mark) or accept (undecided).
    pub repeat: bool,
    /// The rmmguard mark bits, 0 = none.
    pub mark: u32,
    /// Drop this packet (and only it: no mark, the flow is still undecided).
    pub drop: bool,
}

/// The answer for an engine verdict.
pub fn answer(v: Verdict, mode: BlockMode) -> Answer {
    match v {
        Verdict::Pass => Answer {
            repeat: false,
            mark: 0,
            drop: false,
        },
        Verdict::PassDecided => Answer {
            repeat: true,
            mark: MARK_ALLOW,
            drop: false,
        },
        Verdict::Block => Answer {
            repeat: true,
            mark: match mode {
                BlockMode::Reject => MARK_REJECT,
                BlockMode::Drop => MARK_DROP,
            },
            drop: false,
        },
        Verdict::Drop => Answer {
            repeat: false,
            mark: 0,
            drop: true,
        },
    }
}

/// One queued packet, borrowed from the receive buffer.
#[derive(Debug)]
pub struct QueuedPacket<'a> {
    /// The kernel's packet id (answers name it).
    pub id: u32,
    /// The packet mark as it was when queued.
    pub mark: u32,
    /// The IP packet (from the IP header on).
    pub payload: &'a [u8],
}

/// A one-line error naming the queue.
fn qerr(num: u16, what: &str, e: io::Error) -> String {
    let hint = match e.raw_os_error() {
        // The kernel answers EPERM both without CAP_NET_ADMIN and when another socket holds the
        // queue; EBUSY when this socket already holds it.
        Some(libc::EPERM) => " (needs CAP_NET_ADMIN, or another process is bound to this queue)",
        Some(libc::EBUSY) => " (already bound by this socket)",
        _ => "",
    };
    format!("NFQUEUE {num}: {what}: {e}{hint}")
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink message for the queue subsystem into `out`.
struct Msg<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Msg<'a> {
    fn new(out: &'a mut Vec<u8>, kind: u16, flags: u16, seq: u32, queue: u16) -> Msg<'a> {
        out.clear();
        out.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        out.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        out.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        out.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]); // nfgenmsg: family, version 0
        out.extend_from_slice(&queue.to_be_bytes());
        Msg { out }
    }

    fn attr(self, kind: u16, data: &[u8]) -> Self {
        let len = 4 + data.len();
        self.out.extend_from_slice(&(len as u16).to_ne_bytes());
        self.out.extend_from_slice(&kind.to_ne_bytes());
        self.out.extend_from_slice(data);
        self.out.resize(align4(self.out.len()), 0);
        self
    }

    fn finish(self) {
        let len = self.out.len() as u32;
        self.out[..4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// The attributes of a message body (after netlink header and nfgenmsg): (type, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, data))
    })
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Parses a queued-packet message body. `None` when it lacks the packet header.
fn parse_packet(body: &[u8]) -> Option<QueuedPacket<'_>> {
    let mut id = None;
    let mut mark = 0;
    let mut payload: &[u8] = &[];
    for (kind, data) in attrs(body.get(4..)?) {
        match kind {
            NFQA_PACKET_HDR => id = be32(data),
            NFQA_MARK => mark = be32(data).unwrap_or(0),
            NFQA_PAYLOAD => payload = data,
            _ => {}
        }
    }
    Some(QueuedPacket {
        id: id?,
        mark,
        payload,
    })
}

/// One netlink message in a received buffer: (type, flags, seq, body after the netlink header).
fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes(b[8..12].try_into().ok()?);
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let body = &b[NLMSG_HDRLEN..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, seq, body))
    })
}

fn is_packet(kind: u16) -> bool {
    kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
}

/// One bound NFQUEUE queue.
pub struct NfQueue {
    fd: OwnedFd,
    num: u16,
    opts: QueueOptions,
    /// The receive buffer (one netlink datagram: a packet of up to `copy_range` bytes and its
    /// metadata).
    buf: Vec<u8>,
    /// Messages to send (verdicts, configuration).
    out: Vec<u8>,
    /// Packets that arrived while a configuration reply was awaited (message bodies), served
    /// before new ones.
    pending: VecDeque<Vec<u8>>,
    seq: u32,
    /// Taken over from a previous owner: the packets it read but never answered are released
    /// when the first packet arrives (every id before it).
    orphans: bool,
    /// The id the next packet should carry, once one was seen.
    next_id: Option<u32>,
    /// Packets that got an id but never reached this socket (see [`NfQueue::skipped`]).
    skipped: u64,
    /// Packets released that way.
    released: u64,
}

impl NfQueue {
    fn socket() -> io::Result<OwnedFd> {
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid; nl_pid 0 lets the kernel pick the port id.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `sa` is a valid sockaddr_nl of the length given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    fn setsockopt(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> bool {
        // SAFETY: `v` is a c_int that outlives the call, and its size is passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            ) == 0
        }
    }

    fn getsockopt(fd: BorrowedFd<'_>, opt: libc::c_int) -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &mut v as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        (r == 0).then_some(v)
    }

    fn new(fd: OwnedFd, num: u16, opts: QueueOptions) -> NfQueue {
        // A queue that is not read fast enough gets the full-queue rule (fail-open or not), never
        // ENOBUFS on this socket; and a large buffer absorbs bursts.
        Self::setsockopt(&fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
        let size = opts.socket_buffer.clamp(64 << 10, 1 << 30) as libc::c_int;
        if !Self::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size) {
            Self::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        NfQueue {
            fd,
            num,
            opts,
            buf: vec![0; opts.copy_range as usize + 8192],
            out: Vec::with_capacity(128),
            pending: VecDeque::new(),
            seq: 0,
            orphans: false,
            next_id: None,
            skipped: 0,
            released: 0,
        }
    }

    /// Opens a netlink socket and binds queue `num` with `o`. The bind and every setting go in
    /// one message, which the kernel applies together: a queue bound without its copy mode
    /// would refuse (and so drop) the packets that meet it meanwhile.
    pub fn open(num: u16, o: QueueOptions) -> Result<NfQueue, String> {
        let fd = Self::socket().map_err(|e| qerr(num, "cannot open netlink socket", e))?;
        let mut q = Self::new(fd, num, o);
        match q.configure(true) {
            Ok(()) => Ok(q),
            // Only after a resend whose first try was applied but whose reply was lost: this
            // socket holds the queue; apply the settings alone.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => q
                .configure(false)
                .map(|()| q)
                .map_err(|e| qerr(num, "cannot configure", e)),
            Err(e) => Err(qerr(num, "cannot bind", e)),
        }
    }

    /// Takes over a socket kept open across a restart (systemd's file-descriptor store). The
    /// queue may still be bound to it, with packets waiting: they are served; those the previous
    /// owner read but never answered are released when the first packet arrives, accepted when
    /// `o.fail_open` and dropped otherwise. A socket whose queue was unbound is bound again.
    /// On error the socket is given back, so that the caller can release it.
    pub fn adopt(fd: OwnedFd, num: u16, o: QueueOptions) -> Result<NfQueue, (String, OwnedFd)> {
        let netlink = Self::getsockopt(fd.as_fd(), libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
            && Self::getsockopt(fd.as_fd(), libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER);
        if !netlink {
            let e = format!("NFQUEUE {num}: the inherited descriptor is not a netfilter socket");
            return Err((e, fd));
        }
        let mut q = Self::new(fd, num, o);
        let r = match q.configure(true) {
            Ok(()) => Ok(()),
            // Still bound to this socket: take it over, apply the settings alone.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                q.orphans = true;
                q.configure(false)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => Ok(q),
            Err(e) => Err((qerr(num, "cannot take the queue over", e), q.fd)),
        }
    }

    /// Unbinds queue `num` through `fd`, a socket inherited but not used, so that closing it
    /// leaves no queue bound to a socket nobody reads. Best effort.
    pub fn release(fd: OwnedFd, num: u16) {
        let mut q = Self::new(fd, num, QueueOptions::default());
        let _ = q.config_cmd(NFQNL_CFG_CMD_UNBIND);
    }

    /// Sends the settings (after the bind command when `bind`) in one message.
    fn configure(&mut self, bind: bool) -> io::Result<()> {
        // struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } (packed)
        let mut p = [0u8; 5];
        p[..4].copy_from_slice(&(self.opts.copy_range as u32).to_be_bytes());
        p[4] = NFQNL_COPY_PACKET;
        let mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
        let flags = NFQA_CFG_F_GSO
            | if self.opts.fail_open {
                NFQA_CFG_F_FAIL_OPEN
            } else {
                0
            };
        let len = self.opts.max_len;
        self.config(|m| {
            // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }
            let m = if bind {
                m.attr(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])
            } else {
                m
            };
            m.attr(NFQA_CFG_PARAMS, &p)
                .attr(NFQA_CFG_QUEUE_MAXLEN, &len.to_be_bytes())
                .attr(NFQA_CFG_FLAGS, &flags.to_be_bytes())
                .attr(NFQA_CFG_MASK, &mask.to_be_bytes())
        })
    }

    /// The queue number.
    pub fn num(&self) -> u16 {
        self.num
    }

    /// The socket (to hand to systemd's file-descriptor store).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes of queued packets waiting unread in this queue's socket, and the size of its
    /// receive buffer (see [`socket_memory`]).
    pub fn socket_memory(&self) -> io::Result<(u32, u32)> {
        socket_memory(self.fd.as_fd())
    }

    /// Packets released after a takeover (see [`NfQueue::adopt`]).
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Packets the kernel gave an id but never delivered to this socket, counted from the gaps
    /// between the ids received since this process started on the queue: the kernel numbers
    /// the packets it queues for one socket one by one, and a packet that finds the socket's
    /// buffer full keeps its id and is accepted (fail-open) or dropped. Needs no access to
    /// `/proc/net/netfilter/nfnetlink_queue`, which only root may read. A gap shows once the
    /// next packet arrives.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn count_id(&mut self, id: u32) {
        if let Some(want) = self.next_id {
            // Ids wrap around; a packet older than the one expected (not seen from the kernel)
            // would give a huge difference, which is not a gap.
            let gap = id.wrapping_sub(want);
            if gap < 1 << 31 {
                self.skipped += gap as u64;
            }
        }
        self.next_id = Some(id.wrapping_add(1));
    }

    fn send(&mut self) -> io::Result<()> {
        loop {
            // SAFETY: `out` is an initialised buffer of the length given. The socket has no
            // destination set, so the message goes to the kernel (port id 0).
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    self.out.as_ptr() as *const libc::c_void,
                    self.out.len(),
                    0,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// Receives one datagram into `buf`; its length.
    fn recv_raw(&mut self, nonblocking: bool) -> io::Result<usize> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `buf` is valid for writes of its length.
        let r = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                flags,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Sends a configuration message and waits for its acknowledgement. Packets that arrive
    /// meanwhile are kept for [`NfQueue::serve`] (at most the queue's length: the kernel holds
    /// no more for this socket). The kernel drops a reply that finds the receive buffer full, so
    /// the wait is bounded: after 250 ms without the reply the message is sent again (every
    /// setting is idempotent; a resent bind answers EBUSY, which the callers read as "bound"),
    /// up to 20 times.
    fn config(&mut self, build: impl Fn(Msg<'_>) -> Msg<'_>) -> io::Result<()> {
        let num = self.num;
        for _ in 0..20 {
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            build(Msg::new(
                &mut self.out,
                NFQNL_MSG_CONFIG,
                NLM_F_ACK,
                seq,
                num,
            ))
            .finish();
            self.send()?;
            let deadline = Instant::now() + Duration::from_millis(250);
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !self.wait_readable(left)? {
                    break;
                }
                let n = match self.recv_raw(true) {
                    Ok(n) => n,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                let mut result = None;
                for (kind, mseq, body) in messages(&self.buf[..n]) {
                    if kind == NLMSG_ERROR && mseq == seq {
                        let errno = body
                            .get(..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
                            .unwrap_or(0);
                        result = Some(errno);
                    } else if is_packet(kind) {
                        self.pending.push_back(body.to_vec());
                    }
                }
                match result {
                    Some(0) => return Ok(()),
                    Some(e) => return Err(io::Error::from_raw_os_error(e.abs())),
                    None => {}
                }
            }
        }
        Err(io::Error::from_raw_os_error(libc::ETIMEDOUT))
    }

    /// Waits until the socket is readable or `t` passes; whether it is (or a signal came).
    fn wait_readable(&self, t: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = t.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: one valid pollfd, for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(true)
            } else {
                Err(e)
            };
        }
        Ok(r > 0)
    }

    fn config_cmd(&mut self, cmd: u8) -> io::Result<()> {
        // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }
        self.config(|m| m.attr(NFQA_CFG_CMD, &[cmd, 0, 0, 0]))
    }

    /// Sets how many packets the kernel holds for this queue. 0 stops queueing: later packets
    /// meet the full-queue rule at once (accepted with fail-open), and none waits for this
    /// process.
    pub fn set_max_len(&mut self, len: u32) -> io::Result<()> {
        self.config(|m| m.attr(NFQA_CFG_QUEUE_MAXLEN, &len.to_be_bytes()))
    }

    fn send_verdict(&mut self, kind: u16, id: u32, verdict: u32, mark: Option<u32>) {
        let num = self.num;
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&verdict.to_be_bytes());
        hdr[4..].copy_from_slice(&id.to_be_bytes());
        let m = Msg::new(&mut self.out, kind, 0, 0, num).attr(NFQA_VERDICT_HDR, &hdr);
        match mark {
            Some(mk) => m.attr(NFQA_MARK, &mk.to_be_bytes()).finish(),
            None => m.finish(),
        }
        if let Err(e) = self.send() {
            tracing::error!("NFQUEUE {num}: verdict for packet {id} failed: {e}");
        }
    }

    fn answer_packet(&mut self, p: &QueuedPacket<'_>, a: Answer) {
        if a.drop {
            self.send_verdict(NFQNL_MSG_VERDICT, p.id, NF_DROP, None);
        } else if a.repeat {
            let mark = (p.mark & !MARK_MASK) | (a.mark & MARK_MASK);
            self.send_verdict(NFQNL_MSG_VERDICT, p.id, NF_REPEAT, Some(mark));
        } else {
            self.send_verdict(NFQNL_MSG_VERDICT, p.id, NF_ACCEPT, None);
        }
    }

    fn release_orphans(&mut self, first_id: u32) {
        self.orphans = false;
        // Every id before first_id still held for this queue was read by the previous owner
        // (ids grow by one per queued packet, and this process reads them in order). The kernel
        // compares ids with wrap-around, so first_id - 1 is right even after the ids wrapped;
        // with nothing held the kernel answers ENOENT, which is ignored.
        let last = first_id.wrapping_sub(1);
        let v = if self.opts.fail_open {
            NF_ACCEPT
        } else {
            NF_DROP
        };
        self.send_verdict(NFQNL_MSG_VERDICT_BATCH, last, v, None);
        self.released += 1;
        tracing::warn!(
            "NFQUEUE {}: took over from a previous process; released its unanswered packets \
             (ids up to {last}) with {}",
            self.num,
            if v == NF_ACCEPT { "accept" } else { "drop" }
        );
    }

    /// Receives what is queued and answers each packet with `f`'s answer. Blocks for the first
    /// datagram unless `nonblocking`. Returns the number of packets answered; `Err` with
    /// `EINTR` when a signal interrupted the wait, `EAGAIN` when nonblocking and nothing waits.
    pub fn serve(
        &mut self,
        nonblocking: bool,
        f: &mut dyn FnMut(&QueuedPacket<'_>) -> Answer,
    ) -> io::Result<usize> {
        if let Some(body) = self.pending.pop_front() {
            return Ok(self.handle(&body, f));
        }
        let n = self.recv_raw(nonblocking)?;
        // The buffer is moved out while its packets are answered (answers use `out`).
        let buf = std::mem::take(&mut self.buf);
        let mut done = 0;
        for (kind, _, body) in messages(&buf[..n]) {
            if is_packet(kind) {
                done += self.handle(body, f);
            }
        }
        self.buf = buf;
        Ok(done)
    }

    /// Answers the packet of one packet message `body` with `f`'s answer; 1 if there was one.
    fn handle(&mut self, body: &[u8], f: &mut dyn FnMut(&QueuedPacket<'_>) -> Answer) -> usize {
        let Some(p) = parse_packet(body) else {
            return 0;
        };
        if self.orphans {
            self.release_orphans(p.id);
        }
        self.count_id(p.id);
        let a = f(&p);
        self.answer_packet(&p, a);
        1
    }

    /// Stops new packets from waiting for this process and answers every packet already queued
    /// with `f`: sets the queue length to 0 (so later packets meet the full-queue rule at once:
    /// accepted with fail-open), then reads until nothing is left. Nothing is then held for
    /// this socket, so closing or unbinding it drops nothing. Returns the packets answered.
    pub fn quiesce(&mut self, f: &mut dyn FnMut(&QueuedPacket<'_>) -> Answer) -> usize {
        if let Err(e) = self.set_max_len(0) {
            tracing::warn!(
                "NFQUEUE {}: cannot set the queue length to 0: {e}",
                self.num
            );
        }
        let mut total = 0;
        loop {
            match self.serve(true, f) {
                Ok(n) => total += n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => break,
            }
        }
        total
    }

    /// Unbinds the queue; packets queued later meet the rule's bypass setting. Packets still
    /// held for this socket are dropped by the kernel: call [`NfQueue::quiesce`] first.
    pub fn unbind(&mut self) -> Result<(), String> {
        let num = self.num;
        self.config_cmd(NFQNL_CFG_CMD_UNBIND)
            .map_err(|e| qerr(num, "cannot unbind", e))
    }
}

/// The kernel's counters for one queue (a line of `/proc/net/netfilter/nfnetlink_queue`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelQueueStats {
    /// Queue number.
    pub queue: u16,
    /// Packets handed to the socket and not answered yet.
    pub waiting: u32,
    /// Packets dropped because the queue length limit was reached (without fail-open).
    pub dropped: u32,
    /// Packets that could not be handed to the socket (its buffer full) and were dropped
    /// (without fail-open).
    pub user_dropped: u32,
    /// The last packet id given out: one per packet that passed the length limit, whether or
    /// not the socket then took it.
    pub id_sequence: u32,
}

/// Parses `/proc/net/netfilter/nfnetlink_queue` (`queue portid waiting copy_mode copy_range
/// dropped user_dropped id_sequence 1` per line). Lines that do not parse are skipped.
pub fn parse_kernel_stats(text: &str) -> Vec<KernelQueueStats> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(KernelQueueStats {
                queue: f[0].parse().ok()?,
                waiting: f[2].parse().ok()?,
                dropped: f[5].parse().ok()?,
                user_dropped: f[6].parse().ok()?,
                id_sequence: f[7].parse().ok()?,
            })
        })
        .collect()
}

/// `/proc/net/netfilter/nfnetlink_queue`, opened once (it is readable by root only) and read
/// again from the start on each [`KernelStatsFile::read`], after privileges are dropped.
pub struct KernelStatsFile {
    file: std::fs::File,
}

impl KernelStatsFile {
    /// Opens the file of the current network namespace.
    pub fn open() -> io::Result<KernelStatsFile> {
        Ok(KernelStatsFile {
            file: std::fs::File::open("/proc/net/netfilter/nfnetlink_queue")?,
        })
    }

    /// The counters of every queue bound in this network namespace now.
    pub fn read(&self) -> io::Result<Vec<KernelQueueStats>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 64 << 10];
        let mut len = 0;
        while len < buf.len() {
            let n = self.file.read_at(&mut buf[len..], len as u64)?;
            if n == 0 {
                break;
            }
            len += n;
        }
        Ok(parse_kernel_stats(&String::from_utf8_lossy(&buf[..len])))
    }
}

/// Packets that fail-open let through uninspected on one queue, from the kernel's counters: every
/// packet that got an id but was neither received by rmmguard nor is still waiting for it was
/// accepted by fail-open when the socket's buffer was full. `base_id` is `id_sequence` when
/// rmmguard started on the queue; `received` the packets it has received since. (The kernel
/// counts no packet turned away by the queue length limit, which is why the limit is set far
/// above what the socket's buffer holds: the buffer fills first, and every excess packet shows
/// here.)
pub fn fail_open_since(k: &KernelQueueStats, base_id: u32, received: u64) -> u64 {
    let given = k.id_sequence.wrapping_sub(base_id) as u64;
    given.saturating_sub(received + k.waiting as u64)
}

/// Parses a queue list: `0-3`, `2`, `0,2,5-6`. At most 64 queues.
pub fn parse_queues(s: &str) -> Result<Vec<u16>, String> {
    let bad = || format!("bad queue list '{s}' (examples: 0, 0-3, 0,2,4-5)");
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
        for q in a..=b {
            if out.len() >= 64 {
                return Err(format!("too many queues in '{s}' (at most 64)"));
            }
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// A socket's receive queue, in bytes as the kernel charges them (`SO_MEMINFO`: the
/// `rmem_alloc` and `rcvbuf` fields), and its receive buffer size. For a queue socket, the
/// first is the backlog of packets rmmguard has not read yet: when it reaches the second, the
/// kernel stops handing packets to the socket and passes them uninspected (fail-open) or drops
/// them. Needs no privilege, unlike the kernel's per-queue counters.
pub fn socket_memory(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // Room for more fields than any kernel has (SK_MEMINFO_VARS is 9 on Linux 6.x); the
    // kernel copies as many as fit.
    let mut m = [0u32; 16];
    let mut len = std::mem::size_of_val(&m) as libc::socklen_t;
    // SAFETY: `m` is writable for `len` bytes and `len` is a valid pointer; the kernel writes
    // at most `len` bytes and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            m.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < 2 * std::mem::size_of::<u32>() {
        return Err(io::Error::other("SO_MEMINFO returned too little"));
    }
    Ok((
        m[libc::SK_MEMINFO_RMEM_ALLOC as usize],
        m[libc::SK_MEMINFO_RCVBUF as usize],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_memory_counts_unread_bytes() {
        use std::net::UdpSocket;
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (empty, buf) = socket_memory(rx.as_fd()).unwrap();
        assert_eq!(empty, 0);
        assert!(buf > 0);
        for _ in 0..3 {
            tx.send_to(&[7u8; 1000], rx.local_addr().unwrap()).unwrap();
        }
        // Each datagram is charged with its buffer's true size: at least its bytes.
        let (held, buf2) = socket_memory(rx.as_fd()).unwrap();
        assert!(held >= 3000, "{held}");
        assert!(held <= buf2, "{held} > {buf2}");
        let mut b = [0u8; 2000];
        for _ in 0..3 {
            rx.recv(&mut b).unwrap();
        }
        assert_eq!(socket_memory(rx.as_fd()).unwrap().0, 0);
    }

    #[test]
    fn queue_lists() {
        assert_eq!(parse_queues("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_queues("7").unwrap(), vec![7]);
        assert_eq!(parse_queues("0,2,4-5").unwrap(), vec![0, 2, 4, 5]);
        assert!(parse_queues("3-1").is_err());
        assert!(parse_queues("x").is_err());
        assert!(parse_queues("").is_err());
        assert!(parse_queues("0-65535").is_err());
    }

    #[test]
    fn verdict_marks() {
        let a = answer(Verdict::Pass, BlockMode::Reject);
        assert!(!a.repeat);
        assert_eq!(a.mark, 0);
        assert_eq!(
            answer(Verdict::PassDecided, BlockMode::Drop),
            Answer {
                repeat: true,
                mark: MARK_ALLOW,
                drop: false,
            }
        );
        assert_eq!(answer(Verdict::Block, BlockMode::Reject).mark, MARK_REJECT);
        assert_eq!(answer(Verdict::Block, BlockMode::Drop).mark, MARK_DROP);
        // One packet dropped, no mark: the flow stays undecided and queued.
        let d = answer(Verdict::Drop, BlockMode::Reject);
        assert!(d.drop && !d.repeat && d.mark == 0);
    }

    /// A packet message as the kernel sends it: header, nfgenmsg, packet header, mark, payload.
    fn packet_msg(id: u32, mark: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut hdr = [0u8; 7];
        hdr[..4].copy_from_slice(&id.to_be_bytes());
        hdr[4..6].copy_from_slice(&0x0800u16.to_be_bytes());
        hdr[6] = 2;
        Msg::new(&mut out, NFQNL_MSG_PACKET, 0, 0, 3)
            .attr(NFQA_PACKET_HDR, &hdr)
            .attr(NFQA_MARK, &mark.to_be_bytes())
            .attr(NFQA_PAYLOAD, payload)
            .finish();
        out
    }

    #[test]
    fn skipped_ids_are_counted_from_gaps() {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut q = NfQueue::new(a.into(), 0, QueueOptions::default());
        for id in [5u32, 6, 7] {
            q.count_id(id);
        }
        assert_eq!(
            q.skipped(),
            0,
            "the first id and consecutive ones are no gap"
        );
        q.count_id(10);
        assert_eq!(q.skipped(), 2);
        // Across the wrap of the ids (a jump of 2^31 or more reads as an older id: no gap).
        q.count_id(u32::MAX - 1);
        let before = q.skipped();
        q.count_id(1);
        assert_eq!(q.skipped(), before + 2, "ids u32::MAX and 0 were skipped");
        // An id older than the one expected is no gap.
        q.count_id(0);
        assert_eq!(q.skipped(), before + 2);
    }

    #[test]
    fn kernel_stats_parse_and_fail_open_count() {
        let text = "    0  31337     2 2 65535     0     0     1210  1\n\
                    3  31338     0 2 65535     4     5   4294967295  1\nbad line\n";
        let v = parse_kernel_stats(text);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            KernelQueueStats {
                queue: 0,
                waiting: 2,
                dropped: 0,
                user_dropped: 0,
                id_sequence: 1210
            }
        );
        assert_eq!((v[1].queue, v[1].dropped, v[1].user_dropped), (3, 4, 5));
        // Started at id 1000; 200 received and 2 waiting of the 210 given: 8 passed by fail-open.
        assert_eq!(fail_open_since(&v[0], 1000, 200), 8);
        // Never negative (a packet received between the two readings).
        assert_eq!(fail_open_since(&v[0], 1000, 215), 0);
        // Ids wrap.
        let w = KernelQueueStats {
            id_sequence: 5,
            ..v[0]
        };
        assert_eq!(fail_open_since(&w, u32::MAX - 4, 3), 5);
    }

    #[test]
    fn packet_messages_parse() {
        let mut b = packet_msg(7, 0x100, b"\x45abcde");
        b.extend(packet_msg(8, 0, b"\x60"));
        let got: Vec<_> = messages(&b)
            .filter(|m| is_packet(m.0))
            .filter_map(|(_, _, body)| parse_packet(body).map(|p| (p.id, p.mark, p.payload)))
            .collect();
        assert_eq!(
            got,
            vec![(7, 0x100, &b"\x45abcde"[..]), (8, 0, &b"\x60"[..])]
        );
    }

    #[test]
    fn malformed_messages_stop_cleanly() {
        let b = packet_msg(9, 1, b"\x45xyz");
        // Every truncation parses to at most the whole packet, never past the buffer.
        for cut in 0..b.len() {
            for (_, _, body) in messages(&b[..cut]) {
                let _ = parse_packet(body);
            }
        }
        // An attribute whose length runs past the message.
        let mut bad = b.clone();
        bad[NLMSG_HDRLEN + 4] = 0xff;
        for (_, _, body) in messages(&bad) {
            let p = parse_packet(body);
            assert!(p.is_none(), "an attribute past the end was read");
        }
        // Without a packet header there is no packet (no id to answer).
        let mut out = Vec::new();
        Msg::new(&mut out, NFQNL_MSG_PACKET, 0, 0, 0)
            .attr(NFQA_PAYLOAD, b"\x45")
            .finish();
        assert!(messages(&out).all(|(_, _, body)| parse_packet(body).is_none()));
    }

    /// Random buffers and random mutations of real messages: the parsers never panic, never
    /// loop, and every payload they return lies inside the buffer.
    #[test]
    fn random_and_mutated_messages_parse_safely() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut base = packet_msg(41, 7, &[0x45; 60]);
        base.extend(packet_msg(42, 0, b"\x60abc"));
        for round in 0..20_000 {
            let mut b = if round % 2 == 0 {
                base.clone()
            } else {
                (0..(next() % 200) as usize).map(|_| next() as u8).collect()
            };
            for _ in 0..(next() % 6) {
                if !b.is_empty() {
                    let i = (next() % b.len() as u64) as usize;
                    b[i] = next() as u8;
                }
            }
            if next() % 4 == 0 {
                let keep = (next() % (b.len() as u64 + 1)) as usize;
                b.truncate(keep);
            }
            let range = b.as_ptr_range();
            let mut msgs = 0;
            for (_, _, body) in messages(&b) {
                msgs += 1;
                assert!(
                    msgs <= b.len() / NLMSG_HDRLEN,
                    "more messages than the buffer holds"
                );
                if let Some(p) = parse_packet(body) {
                    let pr = p.payload.as_ptr_range();
                    assert!(
                        p.payload.is_empty() || (pr.start >= range.start && pr.end <= range.end)
                    );
                }
            }
            let _ = parse_kernel_stats(&String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn config_and_verdict_messages_are_well_formed() {
        let mut out = Vec::new();
        Msg::new(&mut out, NFQNL_MSG_CONFIG, NLM_F_ACK, 5, 0x0102)
            .attr(NFQA_CFG_PARAMS, &[0, 0, 0xff, 0xff, NFQNL_COPY_PACKET])
            .finish();
        assert_eq!(out.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(out[..4].try_into().unwrap()) as usize,
            out.len()
        );
        assert_eq!(u16::from_ne_bytes([out[4], out[5]]), (3 << 8) | 2);
        assert_eq!(
            u16::from_ne_bytes([out[6], out[7]]),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(&out[18..20], &[1, 2], "queue number in network order");
        // The 5-byte params attribute: length 9, padded to 12.
        assert_eq!(u16::from_ne_bytes([out[20], out[21]]), 9);
        assert_eq!(out.len(), 16 + 4 + 12);
    }
}
