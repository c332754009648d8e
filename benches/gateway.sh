#!/usr/bin/env bash
# Throughput of the namespace gateway with and without `rmmguard inline` (not a test).
#
#   benches/gateway.sh [REPS] [-- RULES-OPTIONS...]
#       (as root; default 5 repetitions of each measurement, at most 20; options after `--` go
#       to `gateway-rules.sh up`, e.g. `-- --budget 16`)
#
# Topology: tests/netns/topo.sh (client <-> gateway <-> server over veth). Two measurements, each
# on the bare gateway (no rules, no rmmguard) and with `gateway-rules.sh up --queues 0-1` and
# `rmmguard inline --queues 0-1`:
# - bulk: iperf3 TCP, 5 s, one allowed flow (bits/s at the receiver);
# - churn: 2000 short TCP connections one after another (connect, read a 5-byte banner, close),
#   connections/s. Churn (and bulk, for the first) also runs on two setups in between, which split the cost: a stateful
#   bare gateway (conntrack on, one `ct state` rule: what any NAT or stateful firewall costs),
#   and rmmguard's rules with no rmmguard bound (the queue rules' bypass accepts). For each
#   churn setup the machine's busy CPU time per connection is printed too (from /proc/stat,
#   user + system + irq + softirq, all CPUs): on a small machine, where client, server and
#   gateway share the CPUs, that is what sets the rate.
# Each repetition measures bare, then inline (rules up, rmmguard started, then both taken down
# again), so that a change in the machine's background load hits both sides alike.
# Prints the medians and the ratios inline/bare. Targets: bulk >= 95 %, churn >= 80 %.
#
# Environment: RMMGUARD (the binary), RULES (the rules script, to compare versions of it), and
# BENCH_RT=1, which runs the churn client, its servers and rmmguard under SCHED_FIFO (chrt -f 50),
# bare and inline alike: on a small machine shared with other work (builds, tests), the churn
# rate otherwise follows the background load more than the gateway (2 vCPUs here: bare runs
# from 400 to 4000 connections/s). Bulk (iperf3) always runs at normal priority.
#
# Every churn run talks to its own server port. The client closes first, so each connection
# leaves a TIME_WAIT socket for 60 s; against a single server port, the 2000 x 2 x REPS
# connections of one run of this script fill the client's ephemeral port range with TIME_WAIT
# sockets for the same 4-tuple, and connect() then scans thousands of ports per call: the rate
# collapses to a few hundred connections/s on the bare gateway as much as inline (and ends in
# EADDRNOTAVAIL). A fresh server port gives fresh 4-tuples, so every run starts alike.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-5}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
rules_opts=("$@")
[[ "$reps" =~ ^[0-9]+$ ]] && [ "$reps" -ge 1 ] && [ "$reps" -le 20 ] \
  || { echo "bad REPS '$reps' (1 to 20)" >&2; exit 2; }
bin=${RMMGUARD:-$root/target/release/rmmguard}
# The rules script (RULES=... to compare another version of it).
rules=${RULES:-$root/deploy/gateway-rules.sh}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set RMMGUARD)" >&2; exit 2; }
rt=()
[ "${BENCH_RT:-0}" = 1 ] && rt=(chrt -f 50)
for t in iperf3 python3 ip nft iptables; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/deps.sh test)" >&2; exit 2; }
done
name=bg$$
topo=$root/tests/netns/topo.sh
probe=$root/tests/netns/probe.py
work=$(mktemp -d)
pids=()
inline_pid=
# Server ports of the churn runs: 7000 + 4 * rep + 0 (bare), 1 (stateful), 2 (rules, no
# reader), 3 (inline); none is catalogued.
port0=7000
cleanup() {
  [ -n "$inline_pid" ] && kill "$inline_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns exec "$name-g" "$rules" down >/dev/null 2>&1 || true
  "$topo" down "$name" || true
  rm -rf "$work"
}
trap cleanup EXIT
"$topo" up "$name"
ip netns exec "$name-s" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
for i in $(seq 0 $((4 * reps - 1))); do
  ip netns exec "$name-s" "${rt[@]}" python3 "$probe" banner $((port0 + i)) 68656c6c6f >/dev/null 2>&1 &
  pids+=($!)
done
for i in $(seq 0 $((4 * reps - 1))); do
  until ip netns exec "$name-s" ss -Hltn "sport = :$((port0 + i))" | grep -q .; do sleep 0.1; done
done
until ip netns exec "$name-s" ss -Hltn 'sport = :5201' | grep -q .; do sleep 0.1; done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

bulk_once() {
  ip netns exec "$name-c" iperf3 -c 10.201.2.2 -p 5201 -t 5 -J \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
}
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)
cpu_file=$work/cpu
churn_once() { # $1 = server port; prints conn/s, appends CPU µs per connection to $cpu_file
  local b0 b1 r
  b0=$(busy)
  r=$(ip netns exec "$name-c" "${rt[@]}" python3 "$probe" churn 10.201.2.2 "$1" 2000)
  b1=$(busy)
  echo "$(( (b1 - b0) * 1000000 / hz / 2000 ))" >>"$cpu_file"
  echo "$r"
}

inline_up() {
  ip netns exec "$name-g" "$rules" up --queues 0-1 "${rules_opts[@]}" >/dev/null
  rm -f "$work/pid"
  ip netns exec "$name-g" "${rt[@]}" "$bin" inline --queues 0-1 --pid-file "$work/pid" 2>>"$work/rmmguard.log" &
  inline_pid=$!
  until [ -e "$work/pid" ]; do sleep 0.05; done
}
inline_down() {
  # Counters of the last repetition (printed at the end).
  ip netns exec "$name-g" iptables -L -v -n -x >"$work/counters"
  kill "$inline_pid"
  wait "$inline_pid" || true
  inline_pid=
  ip netns exec "$name-g" "$rules" down >/dev/null
}

bare_bulk=() bare_churn=() in_bulk=() in_churn=() ct_churn=() nr_churn=() ct_bulk=()
cpu_bare=() cpu_ct=() cpu_nr=() cpu_in=()
last_cpu() { tail -n 1 "$cpu_file"; }
for r in $(seq 0 $((reps - 1))); do
  bare_churn+=("$(churn_once $((port0 + 4 * r)))"); cpu_bare+=("$(last_cpu)")
  bare_bulk+=("$(bulk_once)")
  ip netns exec "$name-g" iptables -w -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED,NEW -j ACCEPT
  ct_churn+=("$(churn_once $((port0 + 4 * r + 1)))"); cpu_ct+=("$(last_cpu)")
  ct_bulk+=("$(bulk_once)")
  ip netns exec "$name-g" iptables -w -D FORWARD -m conntrack --ctstate ESTABLISHED,RELATED,NEW -j ACCEPT
  ip netns exec "$name-g" "$rules" up --queues 0-1 "${rules_opts[@]}" >/dev/null
  nr_churn+=("$(churn_once $((port0 + 4 * r + 2)))"); cpu_nr+=("$(last_cpu)")
  ip netns exec "$name-g" "$rules" down >/dev/null
  inline_up
  in_churn+=("$(churn_once $((port0 + 4 * r + 3)))"); cpu_in+=("$(last_cpu)")
  in_bulk+=("$(bulk_once)")
  inline_down
done
echo "bare bulk_bps: ${bare_bulk[*]}" >&2
echo "stateful bulk_bps: ${ct_bulk[*]}" >&2
echo "inline bulk_bps: ${in_bulk[*]}" >&2
echo "churn_cps bare: ${bare_churn[*]}; stateful: ${ct_churn[*]}; rules, no reader: ${nr_churn[*]}; inline: ${in_churn[*]}" >&2
echo "cpu_us_per_conn bare: ${cpu_bare[*]}; stateful: ${cpu_ct[*]}; rules, no reader: ${cpu_nr[*]}; inline: ${cpu_in[*]}" >&2
med() { printf '%s\n' "$@" | median; }
b0=$(med "${bare_bulk[@]}"); b1=$(med "${in_bulk[@]}"); bc=$(med "${ct_bulk[@]}")
c0=$(med "${bare_churn[@]}"); c1=$(med "${in_churn[@]}")
cc=$(med "${ct_churn[@]}"); cn=$(med "${nr_churn[@]}")
u0=$(med "${cpu_bare[@]}"); uc=$(med "${cpu_ct[@]}"); un=$(med "${cpu_nr[@]}"); u1=$(med "${cpu_in[@]}")
queued=$(awk '/NFQUEUE/ {s += $1} END {print s + 0}' "$work/counters")
bypassed=$(awk '/connmark match  0x1\/0x3/ {print $1; exit}' "$work/counters")
awk -v b0="$b0" -v b1="$b1" -v bc="$bc" -v c0="$c0" -v c1="$c1" -v cc="$cc" -v cn="$cn" \
  -v u0="$u0" -v uc="$uc" -v un="$un" -v u1="$u1" -v q="$queued" -v k="${bypassed:-0}" -v r="$reps" 'BEGIN {
  printf "bulk  (iperf3 -t 5, median of %d): bare %.2f Gbit/s, inline %.2f Gbit/s, ratio %.1f %% (target >= 95 %%)\n", r, b0/1e9, b1/1e9, 100*b1/b0
  printf "bulk on the stateful bare gateway (conntrack, 1 rule): %.2f Gbit/s, %.1f %% of bare; inline is %.1f %% of it\n", bc/1e9, 100*bc/b0, 100*b1/bc
  printf "churn (2000 short connections, median of %d): bare %.0f conn/s, inline %.0f conn/s, ratio %.1f %% (target >= 80 %%)\n", r, c0, c1, 100*c1/c0
  printf "churn, where the cost goes (conn/s, %% of bare, busy CPU us per connection):\n"
  printf "  bare gateway                   %6.0f  100.0 %%  %4.0f us\n", c0, u0
  printf "  stateful (conntrack, 1 rule)   %6.0f  %5.1f %%  %4.0f us\n", cc, 100*cc/c0, uc
  printf "  rmmguard rules, no reader      %6.0f  %5.1f %%  %4.0f us\n", cn, 100*cn/c0, un
  printf "  rmmguard inline                %6.0f  %5.1f %%  %4.0f us\n", c1, 100*c1/c0, u1
  printf "last repetition: packets queued to rmmguard %d (%.1f per churn connection); packets carried by the kernel bypass (ct mark 1) %d\n", q, q/2000, k
}'
