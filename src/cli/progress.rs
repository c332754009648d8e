//! A progress bar for long replays: bytes read of the total, on standard error, only on a terminal.

use std::io::Write;
use std::time::Instant;

/// A progress callback, or None when standard error is not a terminal.
pub fn bar(tty: bool) -> Option<Box<dyn FnMut(u64, u64) + Send>> {
    if !tty {
        return None;
    }
    let start = Instant::now();
    let mut last = 0u64;
    Some(Box::new(move |done: u64, total: u64| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if pct == last && done != total {
            return;
        }
        last = pct;
        let width = 40usize;
        let fill = (pct as usize * width) / 100;
        let secs = start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            done as f64 / secs / 1e6
        } else {
            0.0
        };
        let mut e = std::io::stderr();
        let _ = write!(
            e,
            "\r[{}{}] {pct:>3}% {:.1}/{:.1} MB {rate:.0} MB/s",
            "#".repeat(fill),
            " ".repeat(width - fill),
            done as f64 / 1e6,
            total as f64 / 1e6
        );
        if done >= total {
            let _ = writeln!(e);
        }
        let _ = e.flush();
    }))
}
