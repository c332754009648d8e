//! Live capture from an interface or mirror port (libpcap), and TCP reset injection for
//! `rmmguard monitor --reset`.
//!
//! Resets are sent through raw IP sockets, so the kernel routes them: the host must be able to
//! reach both ends of the flow (a gateway or a host on the same segments). The sequence numbers
//! come from the packet seen:
//! - towards the receiver of that packet, as if from its sender: `seq` = the sender's sequence
//!   number plus the segment's length (what the receiver expects next);
//! - towards the sender, as if from the receiver: `seq` = the acknowledgement number the sender
//!   just sent (what it expects next); for a bare SYN, a RST|ACK acknowledging it.

use crate::decode::{tcp_flags, Packet, IPPROTO_TCP};

/// An open live capture.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    /// The capture's link type (pcap LINKTYPE_* value).
    pub linktype: u16,
}

/// One captured frame.
pub struct Frame<'a> {
    /// Capture time (ns since the epoch).
    pub ts_ns: u64,
    /// The bytes captured.
    pub data: &'a [u8],
}

impl LiveCapture {
    /// Opens `iface` (promiscuous, immediate delivery, `snaplen` bytes per packet).
    pub fn open(iface: &str, snaplen: i32, promisc: bool) -> Result<LiveCapture, String> {
        let cap = pcap::Capture::from_device(iface)
            .and_then(|c| {
                c.promisc(promisc)
                    .snaplen(snaplen)
                    .immediate_mode(true)
                    .timeout(200)
                    .buffer_size(16 << 20)
                    .open()
            })
            .map_err(|e| format!("cannot capture on '{iface}': {e}"))?;
        let lt = cap.get_datalink().0;
        let linktype =
            u16::try_from(lt).map_err(|_| format!("'{iface}': unsupported link type {lt}"))?;
        Ok(LiveCapture { cap, linktype })
    }

    /// The next frame; `Ok(None)` when the read timed out with nothing (about 200 ms).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                let ts_ns = (ts.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_usec as u64 * 1000);
                Ok(Some(Frame {
                    ts_ns,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => Ok(None),
            Err(e) => Err(format!("capture failed: {e}")),
        }
    }

    /// Packets received and dropped by the kernel's capture buffer.
    pub fn stats(&mut self) -> Option<(u32, u32)> {
        self.cap.stats().ok().map(|s| (s.received, s.dropped))
    }
}

fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    let mut it = b.chunks_exact(2);
    for c in &mut it {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [x] = it.remainder() {
        acc += (*x as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A RST segment from `src:sport` to `dst:dport` as a full IP packet (v4 or v6).
fn rst_packet(
    v6: bool,
    src: &[u8; 16],
    dst: &[u8; 16],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.unwrap_or(0).to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = tcp_flags::RST | if ack.is_some() { tcp_flags::ACK } else { 0 };
    let mut out = Vec::with_capacity(60);
    if v6 {
        let mut pseudo = sum16(0, src);
        pseudo = sum16(pseudo, dst);
        pseudo += 20 + IPPROTO_TCP as u32;
        let c = fold(sum16(pseudo, &tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&20u16.to_be_bytes());
        out.push(IPPROTO_TCP);
        out.push(64);
        out.extend_from_slice(src);
        out.extend_from_slice(dst);
    } else {
        let (s4, d4) = (&src[12..16], &dst[12..16]);
        let mut pseudo = sum16(0, s4);
        pseudo = sum16(pseudo, d4);
        pseudo += 20 + IPPROTO_TCP as u32;
        let c = fold(sum16(pseudo, &tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(s4);
        ip[16..20].copy_from_slice(d4);
        let c = fold(sum16(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&ip);
    }
    out.extend_from_slice(&tcp);
    out
}

/// The two resets for the flow of a decoded TCP packet: (to its receiver, to its sender).
/// `None` for a packet that is not TCP or is itself a reset.
pub fn build_resets(p: &Packet) -> Option<(Vec<u8>, Vec<u8>)> {
    if p.proto != IPPROTO_TCP || p.tcp_flags & tcp_flags::RST != 0 {
        return None;
    }
    let v6 = p.ip_version == 6;
    let fl = p.tcp_flags;
    let seg_len = p.payload_len as u32
        + (fl & tcp_flags::SYN != 0) as u32
        + (fl & tcp_flags::FIN != 0) as u32;
    let next = p.seq.wrapping_add(seg_len);
    let to_receiver = rst_packet(v6, &p.src, &p.dst, p.sport, p.dport, next, None);
    let to_sender = if fl & tcp_flags::ACK != 0 {
        rst_packet(v6, &p.dst, &p.src, p.dport, p.sport, p.ack, None)
    } else {
        rst_packet(v6, &p.dst, &p.src, p.dport, p.sport, 0, Some(next))
    };
    Some((to_receiver, to_sender))
}

/// Inline, for a TCP packet the gateway drops as blocked: the reset that tells its receiver the
/// connection is gone. The packet never arrives, so its sequence number is exactly what the
/// receiver expects next, and the receiver accepts the reset at once (RFC 5961 accepts a reset
/// without a challenge only at that number). The kernel's REJECT answers the sender.
/// `None` for a packet that is not TCP, is a reset, or opens the connection (SYN): then the
/// receiver has nothing to close.
pub fn build_reset_for_dropped(p: &Packet) -> Option<Vec<u8>> {
    if p.proto != IPPROTO_TCP || p.tcp_flags & (tcp_flags::RST | tcp_flags::SYN) != 0 {
        return None;
    }
    Some(rst_packet(
        p.ip_version == 6,
        &p.src,
        &p.dst,
        p.sport,
        p.dport,
        p.seq,
        None,
    ))
}

/// Raw IP sockets for injecting resets (needs CAP_NET_RAW when opened).
pub struct Injector {
    fd4: libc::c_int,
    fd6: libc::c_int,
    /// Resets sent.
    pub sent: u64,
    /// Resets that could not be sent.
    pub failed: u64,
}

// Raw sockets need libc calls: each block below says why it is sound.
#[allow(unsafe_code)]
impl Injector {
    /// Opens the raw sockets.
    pub fn open() -> Result<Injector, String> {
        // SAFETY: plain socket(2) calls; the descriptors are owned by the Injector and closed in
        // its Drop.
        let fd4 = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd4 < 0 {
            return Err(format!(
                "cannot open a raw IPv4 socket for resets: {} (needs CAP_NET_RAW)",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: as above.
        let fd6 = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        Ok(Injector {
            fd4,
            fd6,
            sent: 0,
            failed: 0,
        })
    }

    /// Sends one IP packet built by [`build_resets`].
    pub fn send(&mut self, pkt: &[u8]) {
        let ok = match pkt.first().map(|b| b >> 4) {
            Some(4) if pkt.len() >= 20 => {
                // SAFETY: sockaddr_in is plain old data; zeroed is a valid value.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes([pkt[16], pkt[17], pkt[18], pkt[19]]);
                // SAFETY: pkt and sa are valid for the lengths passed.
                unsafe {
                    libc::sendto(
                        self.fd4,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sa as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    ) >= 0
                }
            }
            Some(6) if pkt.len() >= 40 && self.fd6 >= 0 => {
                // SAFETY: sockaddr_in6 is plain old data; zeroed is a valid value.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr.copy_from_slice(&pkt[24..40]);
                // SAFETY: pkt and sa are valid for the lengths passed.
                unsafe {
                    libc::sendto(
                        self.fd6,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    ) >= 0
                }
            }
            _ => false,
        };
        if ok {
            self.sent += 1;
        } else {
            self.failed += 1;
        }
    }
}

#[allow(unsafe_code)]
impl Drop for Injector {
    fn drop(&mut self) {
        // SAFETY: the descriptors were opened by this Injector and are closed once.
        unsafe {
            libc::close(self.fd4);
            if self.fd6 >= 0 {
                libc::close(self.fd6);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, v4_mapped, LINKTYPE_RAW};

    fn verify_v4(pkt: &[u8]) -> etherparse::SlicedPacket<'_> {
        let s = etherparse::SlicedPacket::from_ip(pkt).expect("valid IP packet");
        // IPv4 header checksum sums to zero.
        assert_eq!(fold(sum16(0, &pkt[..20])), 0);
        // TCP checksum with the pseudo-header sums to zero.
        let mut ps = sum16(0, &pkt[12..20]);
        ps += 20 + 6;
        assert_eq!(fold(sum16(ps, &pkt[20..])), 0);
        s
    }

    #[test]
    fn resets_for_a_data_segment() {
        // 10.0.0.1:40000 -> 10.0.0.2:443, seq 1000, ack 5000, PSH|ACK, 3 bytes of payload.
        let mut ip = vec![
            0x45, 0, 0, 43, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[8..12].copy_from_slice(&5000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = tcp_flags::PSH | tcp_flags::ACK;
        ip.extend_from_slice(&tcp);
        ip.extend_from_slice(b"abc");
        let mut p = Packet::default();
        decode(LINKTYPE_RAW as u16, &ip, &mut p).unwrap();
        let (to_rx, to_tx) = build_resets(&p).unwrap();
        let s = verify_v4(&to_rx);
        match s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                assert!(t.rst() && !t.ack());
                assert_eq!(t.sequence_number(), 1003);
                assert_eq!((t.source_port(), t.destination_port()), (40000, 443));
            }
            _ => panic!("not TCP"),
        }
        let s = verify_v4(&to_tx);
        match s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                assert!(t.rst());
                assert_eq!(t.sequence_number(), 5000);
                assert_eq!((t.source_port(), t.destination_port()), (443, 40000));
            }
            _ => panic!("not TCP"),
        }
        assert_eq!(&to_tx[12..16], &[10, 0, 0, 2]);
        assert_eq!(&to_tx[16..20], &[10, 0, 0, 1]);
    }

    #[test]
    fn reset_for_a_syn_acknowledges_it() {
        let mut p = Packet {
            ip_version: 4,
            proto: IPPROTO_TCP,
            src: v4_mapped([10, 0, 0, 1]),
            dst: v4_mapped([10, 0, 0, 2]),
            sport: 1234,
            dport: 5938,
            seq: u32::MAX,
            tcp_flags: tcp_flags::SYN,
            ..Packet::default()
        };
        let (_, to_tx) = build_resets(&p).unwrap();
        let s = verify_v4(&to_tx);
        match s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                assert!(t.rst() && t.ack());
                assert_eq!(t.acknowledgment_number(), 0); // seq + 1 wraps
            }
            _ => panic!("not TCP"),
        }
        p.tcp_flags = tcp_flags::RST;
        assert!(build_resets(&p).is_none());
    }
}
