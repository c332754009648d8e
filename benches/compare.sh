#!/usr/bin/env bash
# Compare rmmguard with its peers (nDPI's ndpiReader, Suricata 7 with the ET
# remote-access rules) and with a bare libpcap read, on one pcap capture.
#
# usage: benches/compare.sh [--packets N] [--flows N] [--seed S] [--runs R]
#                           [--capture FILE] [--out BENCHMARKS.md]
#                           [--rmmguard BIN] [--no-build] [--no-install]
#
#   --packets N     packets in the generated capture (default 1000000)
#   --flows N       flows in the generated capture (default packets/50)
#   --seed S        generator seed (default 1)
#   --runs R        timed runs per tool; the median is reported (default 3)
#   --capture FILE  use this capture instead of generating one
#   --out FILE      markdown file whose compare section is replaced (default BENCHMARKS.md)
#   --rmmguard BIN  rmmguard binary (default target/release/rmmguard)
#   --no-build      do not run `cargo build --release`
#   --no-install    do not install missing peers (fail instead)
#
# Every tool is timed as a whole process with /usr/bin/time (wall, user, sys,
# max RSS). Runs are interleaved (all tools once, then all again, ...) so that
# machine noise hits every tool alike. Peers are installed when missing
# (Debian, as root, non-interactively): ndpiReader from libndpi-bin, Suricata 7
# from <codename>-backports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PACKETS=1000000
FLOWS=""
SEED=1
RUNS=3
CAPTURE=""
OUT="BENCHMARKS.md"
BIN="target/release/rmmguard"
BUILD=1
INSTALL=1
RULES="${RULES:-$ROOT/../shared/indicators/et_open/emerging-remote-access-2026-and-2024.rules}"

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "compare.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --packets) PACKETS="$2"; shift 2 ;;
    --flows) FLOWS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --capture) CAPTURE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --rmmguard) BIN="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ -n "$FLOWS" ]] || FLOWS=$(( PACKETS / 50 > 0 ? PACKETS / 50 : 1 ))
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ -f "$RULES" ]] || die "ET remote-access rules not found: $RULES (set RULES=...)"

# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  [[ "$INSTALL" == 1 ]] || die "missing $*; rerun without --no-install or install it"
  [[ "$(id -u)" == 0 ]] || die "missing $*; installing needs root"
  if [[ "$APT_UPDATED" == 0 ]]; then apt-get update -q >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

suricata_major() { suricata -V 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p'; }

ensure_peers() {
  command -v /usr/bin/time >/dev/null || apt_install time
  command -v cc >/dev/null || apt_install gcc libc6-dev
  [[ -f /usr/include/pcap.h || -f /usr/include/pcap/pcap.h ]] || apt_install libpcap-dev
  command -v ndpiReader >/dev/null || apt_install libndpi-bin
  if ! command -v suricata >/dev/null || [[ "$(suricata_major)" != 7 ]]; then
    [[ "$INSTALL" == 1 ]] || die "Suricata 7 missing"
    [[ "$(id -u)" == 0 ]] || die "Suricata 7 missing; installing needs root"
    local codename src
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    src=/etc/apt/sources.list.d/debian.sources
    if [[ -f "$src" ]]; then
      # Add <codename>-backports to the main archive's Suites: line, once.
      if ! grep -q "^Suites:.*\b${codename}-backports\b" "$src"; then
        sed -i "/^Suites:.*\b${codename}-updates\b/ s/\$/ ${codename}-backports/" "$src"
      fi
    elif ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian ${codename}-backports main" \
        > /etc/apt/sources.list.d/backports.list
    fi
    APT_UPDATED=0
    apt_install -t "${codename}-backports" suricata
    [[ "$(suricata_major)" == 7 ]] || die "Suricata 7 install failed ($(suricata -V 2>&1))"
  fi
}
ensure_peers

TMP="$(mktemp -d -t rmmguard-compare.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

# Bare libpcap read: loop pcap_next_ex and count packets.
cat > "$TMP/pcapcount.c" <<'EOF'
#include <pcap/pcap.h>
#include <stdio.h>
int main(int argc, char **argv) {
  char err[PCAP_ERRBUF_SIZE]; struct pcap_pkthdr *h; const u_char *d;
  unsigned long long n = 0, bytes = 0; int r;
  pcap_t *p = argc > 1 ? pcap_open_offline(argv[1], err) : NULL;
  if (!p) { fprintf(stderr, "pcapcount: %s\n", argc > 1 ? err : "usage: pcapcount FILE"); return 1; }
  while ((r = pcap_next_ex(p, &h, &d)) == 1) { n++; bytes += h->caplen; }
  printf("packets=%llu bytes=%llu\n", n, bytes);
  pcap_close(p);
  return r == PCAP_ERROR_BREAK ? 0 : 1;
}
EOF
cc -O2 -o "$TMP/pcapcount" "$TMP/pcapcount.c" -lpcap

# --------------------------------------------------------------------------
# rmmguard and the capture
# --------------------------------------------------------------------------
if [[ "$BUILD" == 1 ]]; then
  note "cargo build --release"
  cargo build --release >&2
fi
HAVE_ANALYZE=0
HAVE_READONLY=0
if [[ -x "$BIN" ]] && "$BIN" analyze --help >/dev/null 2>&1; then
  HAVE_ANALYZE=1
  "$BIN" analyze --help 2>&1 | grep -q -- '--read-only' && HAVE_READONLY=1
else
  note "SKIP rmmguard analyze: $BIN is missing or has no 'analyze' subcommand"
fi
[[ "$HAVE_ANALYZE" == 1 && "$HAVE_READONLY" == 0 ]] &&
  note "SKIP rmmguard analyze --read-only: the flag does not exist yet"

GENERATED=0
if [[ -z "$CAPTURE" ]]; then
  [[ -x "$BIN" ]] && "$BIN" gen --help >/dev/null 2>&1 ||
    die "$BIN has no 'gen' subcommand; pass --capture FILE"
  mkdir -p target/compare
  CAPTURE="target/compare/gen-s${SEED}-p${PACKETS}-f${FLOWS}.pcap"
  GEN_CMD="$BIN gen --seed $SEED --packets $PACKETS --flows $FLOWS --out $CAPTURE"
  note "$GEN_CMD"
  $GEN_CMD >&2
  GENERATED=1
fi
[[ -f "$CAPTURE" ]] || die "capture not found: $CAPTURE"
CAP_BYTES=$(stat -c %s "$CAPTURE")
CAP_PACKETS=$("$TMP/pcapcount" "$CAPTURE" | sed -n 's/^packets=\([0-9]*\).*/\1/p')
[[ -n "$CAP_PACKETS" && "$CAP_PACKETS" -gt 0 ]] || die "could not count packets in $CAPTURE"
note "capture $CAPTURE: $CAP_PACKETS packets, $CAP_BYTES bytes"

# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------
HOME_NET='[10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fd00::/8]'
SURI_LOG="$TMP/suricata-log"
declare -a NAMES=() CMDS=()
add() { NAMES+=("$1"); CMDS+=("$2"); }
if [[ "$HAVE_ANALYZE" == 1 ]]; then
  add "rmmguard analyze" "$BIN analyze --format json $CAPTURE"
  add "rmmguard analyze --workers 2" "$BIN analyze --workers 2 --format json $CAPTURE"
fi
add "ndpiReader" "ndpiReader -i $CAPTURE -q"
add "suricata (autofp, default)" \
  "suricata -r $CAPTURE -S $RULES -l $SURI_LOG --set vars.address-groups.HOME_NET=$HOME_NET"
add "suricata (single)" \
  "suricata -r $CAPTURE -S $RULES -l $SURI_LOG --runmode single --set vars.address-groups.HOME_NET=$HOME_NET"
if [[ "$HAVE_READONLY" == 1 ]]; then
  add "rmmguard --read-only" "$BIN analyze --read-only $CAPTURE"
fi
add "libpcap read (pcap_next_ex)" "$TMP/pcapcount $CAPTURE"

# Warm the page cache so that no tool pays the first disk read alone.
cat "$CAPTURE" > /dev/null

set -f # the command lines are split on blanks, never globbed (HOME_NET has brackets)
for (( r = 1; r <= RUNS; r++ )); do
  for i in "${!NAMES[@]}"; do
    rm -rf "$SURI_LOG"; mkdir -p "$SURI_LOG"
    note "run $r/$RUNS: ${NAMES[$i]}"
    # shellcheck disable=SC2086 # the command lines are split on purpose
    if ! /usr/bin/time -f '%e %U %S %M' -o "$TMP/time.$i.$r" \
        ${CMDS[$i]} > "$TMP/out.$i.$r" 2>&1; then
      tail -5 "$TMP/out.$i.$r" >&2
      die "${NAMES[$i]} failed"
    fi
  done
done
set +f

# Packet counts each tool reports (from the last run, plus an untimed verbose
# ndpiReader run, since -q prints nothing).
tool_packets() {
  local i="$1" f="$TMP/out.$1.$RUNS"
  case "${NAMES[$i]}" in
    ndpiReader)
      ndpiReader -i "$CAPTURE" 2>&1 | sed -n 's/.*IP packets: *\([0-9]*\).*/\1/p' | head -1 ;;
    suricata*) sed -n 's/.*pcap: read [0-9]* files\{0,1\}, \([0-9]*\) packets.*/\1/p' "$f" | head -1 ;;
    libpcap*) sed -n 's/^packets=\([0-9]*\).*/\1/p' "$f" ;;
    rmmguard*) grep -oE '"?packets"?[": =]+[0-9]+' "$f" | head -1 | grep -oE '[0-9]+$' || true ;;
  esac
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }

declare -a WALL=() CPU=() RSS=() PKTS=()
for i in "${!NAMES[@]}"; do
  WALL[$i]=$(for (( r = 1; r <= RUNS; r++ )); do awk '{print $1}' "$TMP/time.$i.$r"; done | median)
  CPU[$i]=$(for (( r = 1; r <= RUNS; r++ )); do awk '{printf "%.2f\n", $2+$3}' "$TMP/time.$i.$r"; done | median)
  RSS[$i]=$(for (( r = 1; r <= RUNS; r++ )); do awk '{print $4}' "$TMP/time.$i.$r"; done | sort -n | tail -1)
  PKTS[$i]=$(tool_packets "$i")
done
BASE=""
[[ "$HAVE_ANALYZE" == 1 ]] && BASE="${WALL[0]}"

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
SECTION="$TMP/section.md"
{
  echo "<!-- compare:begin -->"
  echo "## Comparison with peers"
  echo
  echo "Generated by \`benches/compare.sh\` on $(date -u +%Y-%m-%dT%H:%MZ)." \
    "Whole-process times, median of $RUNS interleaved runs; CPU = user + sys;" \
    "RSS = the largest of the runs; packets/s = capture packets / median wall."
  echo
  echo "| tool | median wall s | median CPU s | max RSS MiB | packets/s | wall vs rmmguard | packets seen |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for i in "${!NAMES[@]}"; do
    pps=$(awk -v p="$CAP_PACKETS" -v w="${WALL[$i]}" 'BEGIN {if (w > 0) printf "%.0f", p / w; else print "n/a"}')
    rss=$(awk -v k="${RSS[$i]}" 'BEGIN {printf "%.1f", k / 1024}')
    if [[ -n "$BASE" ]]; then
      ratio=$(awk -v w="${WALL[$i]}" -v b="$BASE" 'BEGIN {if (b > 0) printf "%.2fx", w / b; else print "n/a"}')
    else
      ratio="n/a"
    fi
    echo "| ${NAMES[$i]} | ${WALL[$i]} | ${CPU[$i]} | $rss | $pps | $ratio | ${PKTS[$i]:-?} |"
  done
  [[ "$HAVE_ANALYZE" == 1 ]] || echo "| rmmguard analyze | skipped: \`$BIN\` has no \`analyze\` | | | | | |"
  [[ "$HAVE_READONLY" == 1 ]] || echo "| rmmguard --read-only | skipped: no \`analyze --read-only\` | | | | | |"
  echo
  echo "**Machine:** $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)."
  echo
  echo "**Versions:** $(rustc -V 2>/dev/null || echo 'rustc n/a');" \
    "ndpiReader $(ndpiReader -h 2>&1 | sed -n 's/.*nDPI \([0-9][0-9.]*\).*/\1/p' | head -1)" \
    "(libndpi-bin $(dpkg-query -W -f '${Version}' libndpi-bin 2>/dev/null || echo '?'));" \
    "$(suricata -V 2>&1 | head -1) (package $(dpkg-query -W -f '${Version}' suricata 2>/dev/null || echo '?'));" \
    "libpcap $(dpkg-query -W -f '${Version}' libpcap0.8 2>/dev/null || echo '?')."
  echo
  if [[ "$GENERATED" == 1 ]]; then
    echo "**Capture:** \`$CAPTURE\`, $CAP_PACKETS packets, $FLOWS flows, $CAP_BYTES bytes," \
      "seed $SEED (\`$GEN_CMD\`)."
  else
    echo "**Capture:** \`$CAPTURE\` (given), $CAP_PACKETS packets, $CAP_BYTES bytes."
  fi
  echo
  echo "Suricata runs the default \`suricata.yaml\` with only the ET remote-access rules" \
    "(\`-S\`, $(grep -c '^alert' "$RULES") enabled rules), EVE and other logs into a fresh" \
    "temporary directory, HOME_NET widened to include \`fd00::/8\` so that IPv6 clients count as home." \
    "ndpiReader runs with \`-q\` (its packet count is taken from one extra untimed run without \`-q\`)."
  echo
  echo "Commands (\`/usr/bin/time -f '%e %U %S %M'\` around each):"
  echo
  echo '```'
  for i in "${!NAMES[@]}"; do
    echo "${CMDS[$i]//$TMP/\$TMP}"
  done
  echo '```'
  echo "<!-- compare:end -->"
} > "$SECTION"

cat "$SECTION"

if [[ -f "$OUT" ]] && grep -q '<!-- compare:begin -->' "$OUT" && grep -q '<!-- compare:end -->' "$OUT"; then
  awk -v sec="$SECTION" '
    /<!-- compare:begin -->/ { while ((getline l < sec) > 0) print l; skip = 1; next }
    /<!-- compare:end -->/ { skip = 0; next }
    !skip { print }
  ' "$OUT" > "$TMP/out.md"
  cat "$TMP/out.md" > "$OUT"
elif [[ -f "$OUT" ]]; then
  { echo; cat "$SECTION"; } >> "$OUT"
else
  { echo "# Benchmarks"; echo; cat "$SECTION"; } > "$OUT"
fi
note "wrote $OUT"
