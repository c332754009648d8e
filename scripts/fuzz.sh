#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each and prints the executions and
# crashes per target. Uses cargo fuzz (libFuzzer, coverage-guided; needs a nightly toolchain and
# `cargo install cargo-fuzz`); without nightly it falls back to the stable-Rust driver, which is
# not coverage-guided (see docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Seeds come from the capture corpus (tests/data/corpus) and the catalogue, written to
# fuzz/corpus/TARGET by the `seeds` helper; crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
all=(pcap decode tcp_reassembly frag_reassembly tls_client_hello tls_server quic_datagrams
  quic_initial dns http fingerprint policy catalog engine)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cargo build --quiet --release --no-default-features --bin seeds --bin stable_driver
target/release/seeds .. corpus >/dev/null

if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
  mode=libfuzzer
  cargo +nightly fuzz build -O >/dev/null
else
  mode=stable
  echo "fuzz.sh: no nightly toolchain or cargo-fuzz: using the stable driver (not coverage-guided)" >&2
fi

printf '%-18s %-10s %14s %8s %8s\n' target fuzzer executions crashes corpus
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="artifacts/$t.log"
  if [ "$mode" = libfuzzer ]; then
    # -rss_limit_mb catches unbounded growth; a crash stops the run for that target.
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
      >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  else
    target/release/stable_driver "$secs" "$t" >"$log" 2>&1 || true
    execs=$(sed -n 's/.*execs=\([0-9]*\).*/\1/p' "$log" | tail -1)
  fi
  after=$(find "artifacts/$t" -type f | wc -l)
  crashes=$((after - before))
  [ "$crashes" -eq 0 ] || status=1
  printf '%-18s %-10s %14s %8s %8s\n' "$t" "$mode" "${execs:-?}" "$crashes" \
    "$(find "corpus/$t" -type f | wc -l)"
done
exit $status
