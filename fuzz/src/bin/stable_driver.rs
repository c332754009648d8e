//! A fuzz driver for stable Rust, for machines without a nightly toolchain.
//!
//! It is *not* coverage-guided: it runs every seed of a target's corpus, then mutates seeds at
//! random (bit flips, byte sets, inserts, deletes, splices, truncation, interesting integers)
//! until the time is up. It finds shallow bugs quickly; `cargo fuzz` (libFuzzer) is the real
//! fuzzer. A panic is caught, the input saved under `artifacts/TARGET/`, and counted.
//!
//! Usage: `stable_driver [--corpus DIR] [--artifacts DIR] SECONDS [TARGET...]`
//!        `stable_driver --replay TARGET FILE...`

use rmmguard_fuzz::TARGETS;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut v = if seeds.is_empty() {
        Vec::new()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let b = rng.next() as u8;
                v.splice(i..i, std::iter::repeat_n(b, n));
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                v.drain(i..i + n);
            }
            4 if !seeds.is_empty() => {
                let o = &seeds[rng.below(seeds.len())];
                if !o.is_empty() {
                    let a = rng.below(o.len());
                    let b = a + rng.below(o.len() - a) + 1;
                    let i = rng.below(len + 1);
                    v.splice(i..i, o[a..b].iter().copied());
                }
            }
            5 if len > 0 => v.truncate(rng.below(len)),
            6 if len >= 2 => {
                let i = rng.below(len - 1);
                let vals = [0u16, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff];
                let x = vals[rng.below(vals.len())].to_be_bytes();
                v[i] = x[0];
                v[i + 1] = x[1];
            }
            7 if len >= 4 => {
                let i = rng.below(len - 3);
                let vals = [0u32, 0xffff_ffff, 0x7fff_ffff, 0x8000_0000, 0x0004_0000];
                v[i..i + 4].copy_from_slice(&vals[rng.below(vals.len())].to_be_bytes());
            }
            _ => {
                let n = rng.below(32);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v.truncate(max_len);
    v
}

fn load(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn run_one(f: fn(&[u8]), data: &[u8]) -> bool {
    std::panic::catch_unwind(|| f(data)).is_ok()
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut corpus = PathBuf::from("corpus");
    let mut artifacts = PathBuf::from("artifacts");
    if args.first().map(String::as_str) == Some("--replay") {
        let name = args.get(1).expect("--replay TARGET FILE...");
        let f = TARGETS
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("unknown target {name}"))
            .1;
        for p in &args[2..] {
            let data = std::fs::read(p).expect("read input");
            f(&data);
            println!("{p}: ok");
        }
        return;
    }
    while args.len() >= 2 && args[0].starts_with("--") {
        let v = PathBuf::from(args.remove(1));
        match args.remove(0).as_str() {
            "--corpus" => corpus = v,
            "--artifacts" => artifacts = v,
            o => panic!("unknown option {o}"),
        }
    }
    let secs: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .expect("usage: stable_driver SECONDS [TARGET...]");
    let wanted: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    // Quiet panics: they are counted and saved, not printed each time.
    std::panic::set_hook(Box::new(|_| {}));
    let mut total_crashes = 0;
    for (name, f) in TARGETS {
        if !wanted.is_empty() && !wanted.contains(name) {
            continue;
        }
        let seeds = load(&corpus.join(name));
        let max_len = seeds.iter().map(Vec::len).max().unwrap_or(0).max(4096);
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut rng = Rng((0x9e37_79b9_7f4a_7c15 ^ clock ^ std::process::id() as u64) | 1);
        let (mut execs, mut crashes) = (0u64, 0u64);
        let save = |data: &[u8]| {
            let dir = artifacts.join(name);
            let _ = std::fs::create_dir_all(&dir);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in data {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
            let _ = std::fs::write(dir.join(format!("crash-{h:016x}")), data);
        };
        let start = Instant::now();
        for s in &seeds {
            execs += 1;
            if !run_one(*f, s) {
                crashes += 1;
                save(s);
            }
        }
        let deadline = start + Duration::from_secs(secs);
        while Instant::now() < deadline {
            for _ in 0..64 {
                let input = mutate(&mut rng, &seeds, max_len);
                execs += 1;
                if !run_one(*f, &input) {
                    crashes += 1;
                    save(&input);
                }
            }
        }
        println!(
            "{name}: seeds={} execs={execs} crashes={crashes} secs={:.0}",
            seeds.len(),
            start.elapsed().as_secs_f64()
        );
        total_crashes += crashes;
    }
    if total_crashes > 0 {
        std::process::exit(1);
    }
}
