//! `rmmguard gen`: a seeded, realistic gateway traffic mix for benchmarks.

use std::io::Write;
use std::path::PathBuf;

/// Options of `rmmguard gen`.
#[derive(clap::Args)]
pub struct GenArgs {
    /// Seed: the same seed gives the same file, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Packets to write.
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Flows (default: packets / 50).
    #[arg(long)]
    flows: Option<u64>,
    /// Share of flows that are RMM flows.
    #[arg(long, default_value_t = 0.05)]
    rmm_share: f64,
    /// Share of flows over IPv6.
    #[arg(long, default_value_t = 0.2)]
    ipv6_share: f64,
    /// Encrypt QUIC Initials for real (RFC 9001), so that QUIC SNI inspection is exercised.
    #[arg(long)]
    quic_encrypted: bool,
    /// Output pcap.
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

/// Writes the capture.
pub fn run(a: GenArgs) -> Result<u8, String> {
    let cfg = rmmguard::gen::GenConfig {
        seed: a.seed,
        packets: a.packets,
        flows: a.flows.unwrap_or((a.packets / 50).max(1)),
        rmm_share: a.rmm_share,
        ipv6_share: a.ipv6_share,
        rmm: rmmguard::gen::default_rmm_samples(),
    };
    let f = std::fs::File::create(&a.out)
        .map_err(|e| format!("{}: cannot create: {e}", a.out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let opts = rmmguard::gen::GenOptions {
        quic_encrypted_initial: a.quic_encrypted,
    };
    let st = rmmguard::gen::generate_with(&cfg, &opts, &mut w)
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
    w.flush().map_err(|e| format!("{}: {e}", a.out.display()))?;
    eprintln!(
        "wrote {}: {} packets, {} bytes, {} flows ({} RMM)",
        a.out.display(),
        st.packets,
        st.bytes,
        st.flows,
        st.rmm_flows
    );
    Ok(0)
}
