//! NFQUEUE: packets the kernel's firewall hands to user space for a verdict (inline mode).
//!
//! A thin layer over the `nfq` crate. It opens one netlink socket per queue, binds it with the
//! settings inline mode needs (fail-open when the queue is full, GSO super-packets, whole packets
//! copied), and maps an engine [`Verdict`] to a netfilter verdict and packet mark.
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

use crate::engine::Verdict;
use crate::policy::BlockMode;

/// The bits of the packet and conntrack marks that rmmguard uses.
pub const MARK_MASK: u32 = 0x3;
/// Decided, passes.
pub const MARK_ALLOW: u32 = 1;
/// Blocked, refused (TCP reset / ICMP port unreachable).
pub const MARK_REJECT: u32 = 2;
/// Blocked, silently dropped.
pub const MARK_DROP: u32 = 3;

/// Settings of a bound queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    /// Accept packets when the queue is full instead of dropping them.
    pub fail_open: bool,
    /// Bytes of each packet copied to user space.
    pub copy_range: u16,
    /// Packets the kernel holds for this queue before it applies the full-queue rule.
    pub max_len: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            fail_open: true,
            copy_range: u16::MAX,
            max_len: 4096,
        }
    }
}

/// One bound NFQUEUE queue.
pub struct NfQueue {
    q: nfq::Queue,
    num: u16,
}

/// What to answer for one packet: a netfilter verdict and, when decided, the mark to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Repeat (decided: the ruleset acts on the mark) or accept (undecided).
    pub repeat: bool,
    /// The rmmguard mark bits, 0 = none.
    pub mark: u32,
}

/// The answer for an engine verdict.
pub fn answer(v: Verdict, mode: BlockMode) -> Answer {
    match v {
        Verdict::Pass => Answer {
            repeat: false,
            mark: 0,
        },
        Verdict::PassDecided => Answer {
            repeat: true,
            mark: MARK_ALLOW,
        },
        Verdict::Block => Answer {
            repeat: true,
            mark: match mode {
                BlockMode::Reject => MARK_REJECT,
                BlockMode::Drop => MARK_DROP,
            },
        },
    }
}

/// A one-line error naming the queue.
fn qerr(num: u16, what: &str, e: std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) => " (needs CAP_NET_ADMIN: run as root or with that capability)",
        Some(libc::EBUSY) => " (another process is bound to this queue)",
        _ => "",
    };
    format!("NFQUEUE {num}: {what}: {e}{hint}")
}

impl NfQueue {
    /// Opens and binds queue `num`.
    pub fn open(num: u16, o: QueueOptions) -> Result<NfQueue, String> {
        let mut q = nfq::Queue::open().map_err(|e| qerr(num, "cannot open netlink socket", e))?;
        q.bind(num).map_err(|e| qerr(num, "cannot bind", e))?;
        q.set_copy_range(num, o.copy_range)
            .map_err(|e| qerr(num, "cannot set the copy range", e))?;
        q.set_fail_open(num, o.fail_open)
            .map_err(|e| qerr(num, "cannot set fail-open", e))?;
        q.set_recv_gso(num, true)
            .map_err(|e| qerr(num, "cannot accept GSO packets", e))?;
        q.set_queue_max_len(num, o.max_len)
            .map_err(|e| qerr(num, "cannot set the queue length", e))?;
        Ok(NfQueue { q, num })
    }

    /// The queue number.
    pub fn num(&self) -> u16 {
        self.num
    }

    /// Waits for the next packet. `Err` with `EINTR` when a signal interrupted the wait.
    pub fn recv(&mut self) -> std::io::Result<nfq::Message> {
        self.q.recv()
    }

    /// Whether a packet is ready now (non-blocking receive).
    pub fn set_nonblocking(&mut self, on: bool) {
        self.q.set_nonblocking(on);
    }

    /// Answers one packet.
    pub fn verdict(&mut self, mut msg: nfq::Message, a: Answer) -> std::io::Result<()> {
        if a.repeat {
            let m = (msg.get_nfmark() & !MARK_MASK) | (a.mark & MARK_MASK);
            msg.set_nfmark(m);
            msg.set_verdict(nfq::Verdict::Repeat);
        } else {
            msg.set_verdict(nfq::Verdict::Accept);
        }
        self.q.verdict(msg)
    }

    /// Accepts a packet unchanged (used while stopping).
    pub fn accept(&mut self, mut msg: nfq::Message) -> std::io::Result<()> {
        msg.set_verdict(nfq::Verdict::Accept);
        self.q.verdict(msg)
    }

    /// Unbinds the queue; packets queued later meet the rule's bypass setting.
    pub fn unbind(&mut self) -> Result<(), String> {
        self.q
            .unbind(self.num)
            .map_err(|e| qerr(self.num, "cannot unbind", e))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
                mark: MARK_ALLOW
            }
        );
        assert_eq!(answer(Verdict::Block, BlockMode::Reject).mark, MARK_REJECT);
        assert_eq!(answer(Verdict::Block, BlockMode::Drop).mark, MARK_DROP);
    }
}
