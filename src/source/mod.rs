//! Packet sources: capture files (pcap, pcapng), live interfaces (libpcap) and NFQUEUE.

pub mod live;
pub mod nfqueue;
pub mod pcapfile;
