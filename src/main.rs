//! The `rmmguard` command line.

use clap::{Parser, Subcommand, ValueEnum};
use rmmguard::catalog::Catalog;
use rmmguard::engine::{self, learned::Learned, Config, ConfigHandle};
use rmmguard::policy::Policy;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod cli;

/// Finds and blocks remote monitoring and management (RMM) tools at the network perimeter.
#[derive(Parser)]
#[command(name = "rmmguard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// The catalogue and policy options every engine command takes.
#[derive(clap::Args, Clone)]
pub struct CommonArgs {
    /// Policy file (TOML). Without it, every catalogued tool is blocked in both directions
    /// (detections of low confidence only alerted on).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Catalogue folder (default: the catalogue built into the binary, from port-lists/).
    #[arg(long, value_name = "DIR")]
    pub catalog: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Classify the flows of captures and report what the gateway would block.
    Analyze {
        #[command(flatten)]
        common: CommonArgs,
        /// Write one JSON event per flow decision here ('-' = standard output).
        #[arg(long, value_name = "FILE")]
        events: Option<String>,
        /// Write a pcap of the packets the gateway would have forwarded.
        #[arg(long, value_name = "FILE")]
        write_passed: Option<PathBuf>,
        /// Summary format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Exit with status 3 when something would be blocked.
        #[arg(long)]
        fail_on_block: bool,
        /// Worker threads (flows are spread by a symmetric hash).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Flows tracked per worker.
        #[arg(long, default_value_t = 1 << 20)]
        max_flows: usize,
        /// Only read the packets, classify nothing (measures the read floor for benchmarks).
        #[arg(long)]
        read_only: bool,
        /// Serve Prometheus metrics on this address while replaying (e.g. 127.0.0.1:9977).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// With --metrics: keep serving this many seconds after the replay ends.
        #[arg(long, value_name = "SECS", default_value_t = 0, requires = "metrics")]
        metrics_linger: u64,
        /// Capture files (pcap or pcapng).
        #[arg(required = true, value_name = "CAPTURE")]
        captures: Vec<PathBuf>,
    },
    /// Inspect the catalogue.
    Catalog {
        /// Catalogue folder (default: built in).
        #[arg(long, value_name = "DIR", global = true)]
        catalog: Option<PathBuf>,
        #[command(subcommand)]
        cmd: cli::catalog::CatalogCmd,
    },
    /// Validate a policy against the catalogue and say what it means.
    Check {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Inventory of remote-access tools per internal host (the advisory's audit).
    Audit(cli::audit::AuditArgs),
    /// Enforce inline on a Linux gateway through NFQUEUE.
    Inline(cli::gateway::InlineArgs),
    /// Watch a live interface or mirror port (passive; optional TCP resets).
    Monitor(cli::gateway::MonitorArgs),
    /// Tell a running rmmguard to reload its policy and catalogue (SIGHUP).
    Reload(cli::gateway::ReloadArgs),
    /// Write a seeded, realistic gateway traffic mix as a pcap (for benchmarks).
    Gen(cli::gen::GenArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !matches!(cli.cmd, Cmd::Inline(_) | Cmd::Monitor(_)) {
        // A report piped into `head` should end quietly, as other command-line tools do, not
        // panic on a broken pipe. The long-running modes keep ignoring SIGPIPE: a closed events
        // pipe must not stop a gateway.
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("rmmguard: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Loads the catalogue and the policy.
pub fn load_config(common: &CommonArgs) -> Result<Config, String> {
    let catalog = load_catalog(common.catalog.as_ref())?;
    let policy = match &common.policy {
        Some(p) => Policy::load(p, &catalog).map_err(|e| e.to_string())?,
        None => Policy::builtin(&catalog),
    };
    Ok(Config {
        catalog: Arc::new(catalog),
        policy: Arc::new(policy),
    })
}

/// Loads the catalogue from a folder or the built-in copy.
pub fn load_catalog(dir: Option<&PathBuf>) -> Result<Catalog, String> {
    match dir {
        Some(d) => Catalog::load_dir(d).map_err(|e| e.to_string()),
        None => Catalog::embedded().map_err(|e| e.to_string()),
    }
}

fn run(cli: Cli) -> Result<u8, String> {
    match cli.cmd {
        Cmd::Analyze {
            common,
            events,
            write_passed,
            format,
            fail_on_block,
            workers,
            max_flows,
            read_only,
            metrics,
            metrics_linger,
            captures,
        } => {
            let cfg = load_config(&common)?;
            let catalog = cfg.catalog.clone();
            let policy = cfg.policy.clone();
            let handle = ConfigHandle::new(cfg);
            let learned = Arc::new(Learned::new(1 << 16));
            let hub = metrics.map(|_| Arc::new(rmmguard::output::metrics::Hub::new(workers)));
            let server = match (metrics, &hub) {
                (Some(addr), Some(h)) => Some(rmmguard::output::metrics::serve(
                    addr,
                    h.clone(),
                    handle.clone(),
                    Some(learned.clone()),
                )?),
                _ => None,
            };
            let mut sink: Box<dyn rmmguard::replay::EventSink> = match events.as_deref() {
                None => Box::new(rmmguard::replay::JsonLines::new(std::io::sink())),
                Some("-") => Box::new(rmmguard::replay::JsonLines::new(std::io::BufWriter::new(
                    std::io::stdout(),
                ))),
                Some(path) => {
                    let f = std::fs::File::create(path)
                        .map_err(|e| format!("{path}: cannot create events file: {e}"))?;
                    Box::new(rmmguard::replay::JsonLines::new(std::io::BufWriter::new(f)))
                }
            };
            let progress = cli::progress::bar(std::io::stderr().is_terminal());
            let opts = rmmguard::replay::Options {
                engine: engine::Options {
                    max_flows,
                    ..engine::Options::default()
                },
                workers,
                write_passed,
                read_only,
                progress,
                metrics: hub.clone(),
            };
            let out = match &hub {
                Some(h) => {
                    let mut tee = rmmguard::output::metrics::HubSink {
                        hub: h.clone(),
                        inner: sink.as_mut(),
                    };
                    rmmguard::replay::run(&captures, handle, learned, &mut tee, opts)
                }
                None => rmmguard::replay::run(&captures, handle, learned, sink.as_mut(), opts),
            }
            .map_err(|e| e.to_string())?;
            let events_lost = sink.lost();
            drop(sink);
            let names: Vec<String> = captures.iter().map(|p| p.display().to_string()).collect();
            let mut summary = rmmguard::output::summary::Summary::build(
                &names,
                &catalog,
                &policy,
                &out.stats,
                &out.reader,
            );
            summary.events_lost = events_lost;
            // With events on standard output, the summary goes to standard error.
            let text = match format {
                Format::Text => summary.to_text(),
                Format::Json => {
                    serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n"
                }
            };
            if events.as_deref() == Some("-") {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            if out.reader.truncated_records > 0 {
                eprintln!(
                    "rmmguard: warning: {} truncated record(s) at the end of a capture",
                    out.reader.truncated_records
                );
            }
            if let Some(srv) = server {
                let _ = std::io::Write::flush(&mut std::io::stdout());
                std::thread::sleep(std::time::Duration::from_secs(metrics_linger));
                srv.stop();
            }
            Ok(if fail_on_block && summary.blocked_flows > 0 {
                3
            } else {
                0
            })
        }
        Cmd::Catalog { catalog, cmd } => {
            let cat = load_catalog(catalog.as_ref())?;
            cli::catalog::run(&cat, cmd)
        }
        Cmd::Check { common } => {
            let cfg = load_config(&common)?;
            print!("{}", cli::check::explain(&cfg.catalog, &cfg.policy));
            Ok(0)
        }
        Cmd::Audit(a) => cli::audit::run(a),
        Cmd::Inline(a) => cli::gateway::inline(a),
        Cmd::Monitor(a) => cli::gateway::monitor(a),
        Cmd::Reload(a) => cli::gateway::reload(a),
        Cmd::Gen(a) => cli::gen::run(a),
    }
}
