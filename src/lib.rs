//! rmmguard: finds and blocks remote monitoring and management (RMM) tools at the network
//! perimeter.
//!
//! The pipeline runs one way, and the modules follow it:
//!
//! | stage | module |
//! |---|---|
//! | source: pcap file, live capture, NFQUEUE | [`source`] |
//! | decode: link layer, IPv4/IPv6, fragments, TCP/UDP | [`decode`] |
//! | flow table: bidirectional, bounded, per worker | [`flow`] |
//! | inspectors: ports, TLS, QUIC, DNS, HTTP, fingerprints | [`inspect`] |
//! | catalogue of tools and indicators | [`catalog`] |
//! | policy: block, alert, allow rules | [`policy`] |
//! | engine: ties the stages together and returns a verdict | [`engine`] |
//! | outputs: events, summaries, metrics, written captures | [`output`] |
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod catalog;
pub mod decode;
pub mod engine;
pub mod flow;
pub mod gen;
pub mod inspect;
pub mod output;
pub mod policy;
pub mod replay;
pub mod source;
