//! Packet sources: capture files (pcap, pcapng), and in later stages live interfaces and NFQUEUE.

pub mod pcapfile;
