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
# - churn: CHURN_N (default 3000) short TCP connections one after another (connect, read a
#   5-byte banner, close), connections/s.
#
# The two sides are measured in pairs, next to each other in time, and the ratio reported is the
# median of the per-pair ratios: on a small machine shared with other work the rate drifts by
# 20 % between runs a minute apart, which a ratio of two medians taken far apart does not cancel.
# Each repetition runs churn bare, inline, inline, bare (two pairs, A-B-B-A, so that a steady
# drift cancels too), then one bulk pair whose order alternates between repetitions.
# Churn (and bulk, for the first) also runs on two setups that split the cost: a stateful bare
# gateway (conntrack on, one `ct state` rule: what any NAT or stateful firewall costs), and
# rmmguard's rules with no rmmguard bound (the queue rules' bypass accepts). For each churn setup
# the machine's busy CPU time per connection is printed too (from /proc/stat, user + system +
# irq + softirq, all CPUs): on a small machine, where client, server and gateway share the CPUs,
# that is much of what sets the rate. Targets: bulk >= 95 %, churn >= 80 %.
#
# Environment: RMMGUARD (the binary), RULES (the rules script, to compare versions of it),
# CHURN_N, and BENCH_RT=1, which runs the churn client and its servers under SCHED_FIFO 50 and
# rmmguard under SCHED_FIFO 51, bare and inline alike: on a small machine shared with other work
# (builds, tests), the churn rate otherwise follows the background load more than the gateway.
# rmmguard goes one step above the endpoints because it stands in the forwarding path: in the
# bare gateway, forwarding runs in softirq context, which no task delays, while at equal
# priority a woken rmmguard waits for, or is sent away from, the client that just handed the
# kernel its packet (measured: 66-75 % of bare at equal priority, against 94 % with default
# scheduling on the same machine). On a real gateway the endpoints are other machines. Bulk
# (iperf3) always runs at normal priority.
#
# Every churn run talks to its own server port. The client closes first, so each connection
# leaves a TIME_WAIT socket for 60 s; against a single server port, the connections of one run
# of this script fill the client's ephemeral port range with TIME_WAIT sockets for the same
# 4-tuple, and connect() then scans thousands of ports per call: the rate collapses to a few
# hundred connections/s on the bare gateway as much as inline (and ends in EADDRNOTAVAIL). A
# fresh server port gives fresh 4-tuples, so every run starts alike.
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
rt=() rt_gw=()
[ "${BENCH_RT:-0}" = 1 ] && rt=(chrt -f 50) rt_gw=(chrt -f 51)
churn_n=${CHURN_N:-3000}
[[ "$churn_n" =~ ^[0-9]+$ ]] && [ "$churn_n" -ge 100 ] && [ "$churn_n" -le 20000 ] \
  || { echo "bad CHURN_N '$churn_n' (100 to 20000)" >&2; exit 2; }
for t in iperf3 python3 ip nft iptables; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/deps.sh test)" >&2; exit 2; }
done
name=bg$$
topo=$root/tests/netns/topo.sh
probe=$root/tests/netns/probe.py
work=$(mktemp -d)
pids=()
inline_pid=
# Server ports of the churn runs: 17000 + 6 * rep + 0 and 3 (bare), 1 and 2 (inline), 4
# (stateful), 5 (rules, no reader); none is catalogued (7000-7120 held 7070, AnyDesk's).
port0=17000
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
for i in $(seq 0 $((6 * reps - 1))); do
  ip netns exec "$name-s" "${rt[@]}" python3 "$probe" banner $((port0 + i)) 68656c6c6f >/dev/null 2>&1 &
  pids+=($!)
done
for i in $(seq 0 $((6 * reps - 1))); do
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
  r=$(ip netns exec "$name-c" "${rt[@]}" python3 "$probe" churn 10.201.2.2 "$1" "$churn_n")
  b1=$(busy)
  echo "$(( (b1 - b0) * 1000000 / hz / churn_n ))" >>"$cpu_file"
  echo "$r"
}

inline_up() {
  ip netns exec "$name-g" "$rules" up --queues 0-1 "${rules_opts[@]}" >/dev/null
  rm -f "$work/pid"
  ip netns exec "$name-g" "${rt_gw[@]}" "$bin" inline --queues 0-1 --pid-file "$work/pid" 2>>"$work/rmmguard.log" &
  inline_pid=$!
  local i
  for ((i = 0; i < 600; i++)); do
    [ -e "$work/pid" ] && return 0
    kill -0 "$inline_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "rmmguard inline did not start: $(tail -n 5 "$work/rmmguard.log")" >&2
  exit 1
}
inline_down() { # $1 = 1: keep the rule counters (of the last churn run, printed at the end)
  [ "${1:-0}" = 1 ] && ip netns exec "$name-g" iptables -t security -L -v -n -x >"$work/counters"
  kill "$inline_pid"
  wait "$inline_pid" || true
  inline_pid=
  ip netns exec "$name-g" "$rules" down >/dev/null
}

bare_bulk=() in_bulk=() ct_bulk=() bulk_ratio=()
bare_churn=() in_churn=() ct_churn=() nr_churn=() churn_ratio=()
cpu_bare=() cpu_ct=() cpu_nr=() cpu_in=()
last_cpu() { tail -n 1 "$cpu_file"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", a / b}'; }
for r in $(seq 0 $((reps - 1))); do
  p=$((port0 + 6 * r))
  # Churn, paired and in A-B-B-A order: bare, inline, inline, bare. Each inline run is compared
  # with the bare run next to it, so that a drift of the machine's load between runs cancels.
  c0=$(churn_once "$p"); cpu_bare+=("$(last_cpu)")
  inline_up
  c1=$(churn_once $((p + 1))); cpu_in+=("$(last_cpu)")
  c2=$(churn_once $((p + 2))); cpu_in+=("$(last_cpu)")
  inline_down 1
  c3=$(churn_once $((p + 3))); cpu_bare+=("$(last_cpu)")
  bare_churn+=("$c0" "$c3"); in_churn+=("$c1" "$c2")
  churn_ratio+=("$(ratio "$c1" "$c0")" "$(ratio "$c2" "$c3")")
  # Bulk, paired; the order alternates between repetitions.
  if [ $((r % 2)) = 0 ]; then
    b0=$(bulk_once); inline_up; b1=$(bulk_once); inline_down
  else
    inline_up; b1=$(bulk_once); inline_down; b0=$(bulk_once)
  fi
  bare_bulk+=("$b0"); in_bulk+=("$b1"); bulk_ratio+=("$(ratio "$b1" "$b0")")
  # The two setups that split the cost (not paired; for the breakdown only).
  ip netns exec "$name-g" iptables -w -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED,NEW -j ACCEPT
  ct_churn+=("$(churn_once $((p + 4)))"); cpu_ct+=("$(last_cpu)")
  ct_bulk+=("$(bulk_once)")
  ip netns exec "$name-g" iptables -w -D FORWARD -m conntrack --ctstate ESTABLISHED,RELATED,NEW -j ACCEPT
  ip netns exec "$name-g" "$rules" up --queues 0-1 "${rules_opts[@]}" >/dev/null
  nr_churn+=("$(churn_once $((p + 5)))"); cpu_nr+=("$(last_cpu)")
  ip netns exec "$name-g" "$rules" down >/dev/null
done
echo "bare bulk_bps: ${bare_bulk[*]}" >&2
echo "inline bulk_bps: ${in_bulk[*]}" >&2
echo "stateful bulk_bps: ${ct_bulk[*]}" >&2
echo "bulk inline/bare, per pair: ${bulk_ratio[*]}" >&2
echo "churn_cps bare: ${bare_churn[*]}; inline: ${in_churn[*]}; stateful: ${ct_churn[*]}; rules, no reader: ${nr_churn[*]}" >&2
echo "churn inline/bare, per pair: ${churn_ratio[*]}" >&2
echo "cpu_us_per_conn bare: ${cpu_bare[*]}; inline: ${cpu_in[*]}; stateful: ${cpu_ct[*]}; rules, no reader: ${cpu_nr[*]}" >&2
med() { printf '%s\n' "$@" | median; }
b0=$(med "${bare_bulk[@]}"); b1=$(med "${in_bulk[@]}"); bc=$(med "${ct_bulk[@]}"); br=$(med "${bulk_ratio[@]}")
c0=$(med "${bare_churn[@]}"); c1=$(med "${in_churn[@]}"); cr=$(med "${churn_ratio[@]}")
cc=$(med "${ct_churn[@]}"); cn=$(med "${nr_churn[@]}")
u0=$(med "${cpu_bare[@]}"); uc=$(med "${cpu_ct[@]}"); un=$(med "${cpu_nr[@]}"); u1=$(med "${cpu_in[@]}")
queued=$(awk '/NFQUEUE/ {s += $1} END {print s + 0}' "$work/counters")
bypassed=$(awk '/connmark match  0x1\/0x3/ {print $1; exit}' "$work/counters")
if [ "${BENCH_RT:-0}" = 1 ]; then
  mode="BENCH_RT=1: endpoints SCHED_FIFO 50, rmmguard SCHED_FIFO 51"
else
  mode="default scheduling"
fi
awk -v b0="$b0" -v b1="$b1" -v bc="$bc" -v br="$br" -v c0="$c0" -v c1="$c1" -v cr="$cr" \
  -v cc="$cc" -v cn="$cn" -v u0="$u0" -v uc="$uc" -v un="$un" -v u1="$u1" -v q="$queued" \
  -v k="${bypassed:-0}" -v ipt="$(grep -c 'Chain RMMGUARD' "$work/counters" || true)" -v r="$reps" -v mode="$mode" -v n="$churn_n" 'BEGIN {
  printf "%d repetitions, %s\n", r, mode
  printf "bulk  (iperf3 -t 5, %d pairs): bare %.2f Gbit/s, inline %.2f Gbit/s (medians); inline/bare median of pairs %.1f %% (target >= 95 %%)\n", r, b0/1e9, b1/1e9, 100*br
  printf "bulk on the stateful bare gateway (conntrack, 1 rule): %.2f Gbit/s, %.1f %% of bare\n", bc/1e9, 100*bc/b0
  printf "churn (%d short connections a run, %d pairs): bare %.0f conn/s, inline %.0f conn/s (medians); inline/bare median of pairs %.1f %% (target >= 80 %%)\n", n, 2*r, c0, c1, 100*cr
  printf "churn, where the cost goes (conn/s, %% of bare, busy CPU us per connection; medians):\n"
  printf "  bare gateway                   %6.0f  100.0 %%  %4.0f us\n", c0, u0
  printf "  stateful (conntrack, 1 rule)   %6.0f  %5.1f %%  %4.0f us\n", cc, 100*cc/c0, uc
  printf "  rmmguard rules, no reader      %6.0f  %5.1f %%  %4.0f us\n", cn, 100*cn/c0, un
  printf "  rmmguard inline                %6.0f  %5.1f %%  %4.0f us\n", c1, 100*c1/c0, u1
  if (ipt) printf "last churn pair: packets queued to rmmguard %d (%.1f per connection); packets carried by the kernel bypass (ct mark 1) %d\n", q, q/(2*n), k
  else print "last churn pair: packets queued and bypassed not counted (native nftables backend: its rules carry no counters)"
}'
