#!/usr/bin/env bash
# Throughput of the namespace gateway with and without `rmmguard inline` (not a test).
#
#   benches/gateway.sh [REPS]        (as root; default 5 repetitions of each measurement)
#
# Topology: tests/netns/topo.sh (client <-> gateway <-> server over veth). Two measurements, each
# first on the bare gateway (no rules, no rmmguard), then with `gateway-rules.sh up --queues 0-1`
# and `rmmguard inline --queues 0-1`:
# - bulk: iperf3 TCP, 5 s, one allowed flow (bits/s at the receiver);
# - churn: 2000 short TCP connections one after another (connect, read a 5-byte banner, close),
#   connections/s.
# Prints the medians and the ratios inline/bare. Targets: bulk >= 95 %, churn >= 80 %.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-5}
bin=${RMMGUARD:-$root/target/release/rmmguard}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set RMMGUARD)" >&2; exit 2; }
for t in iperf3 python3 ip nft iptables; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/deps.sh test)" >&2; exit 2; }
done
name=bg$$
topo=$root/tests/netns/topo.sh
probe=$root/tests/netns/probe.py
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns exec "$name-g" "$root/deploy/gateway-rules.sh" down >/dev/null 2>&1 || true
  "$topo" down "$name" || true
  rm -rf "$work"
}
trap cleanup EXIT
"$topo" up "$name"
ip netns exec "$name-s" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$name-s" python3 "$probe" banner 7000 68656c6c6f >/dev/null 2>&1 & pids+=($!)
until ip netns exec "$name-s" ss -Hltn 'sport = :7000' | grep -q .; do sleep 0.1; done
until ip netns exec "$name-s" ss -Hltn 'sport = :5201' | grep -q .; do sleep 0.1; done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

measure() { # $1 = label
  local bulk=() churn=()
  for _ in $(seq "$reps"); do
    bulk+=("$(ip netns exec "$name-c" iperf3 -c 10.201.2.2 -p 5201 -t 5 -J \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')")
    churn+=("$(ip netns exec "$name-c" python3 "$probe" churn 10.201.2.2 7000 2000)")
  done
  echo "$1 bulk_bps: ${bulk[*]}" >&2
  echo "$1 churn_cps: ${churn[*]}" >&2
  printf '%s\n' "${bulk[@]}" | median > "$work/$1.bulk"
  printf '%s\n' "${churn[@]}" | median > "$work/$1.churn"
}

measure bare
ip netns exec "$name-g" "$root/deploy/gateway-rules.sh" up --queues 0-1 >/dev/null
ip netns exec "$name-g" "$bin" inline --queues 0-1 --pid-file "$work/pid" 2>"$work/rmmguard.log" & pids+=($!)
until [ -e "$work/pid" ]; do sleep 0.05; done
measure inline
queued=$(ip netns exec "$name-g" iptables -L RMMGUARD -v -n -x | awk '/NFQUEUE/ {print $1}')
bypassed=$(ip netns exec "$name-g" iptables -L RMMGUARD -v -n -x | awk '/connmark match  0x1\/0x3/ {print $1; exit}')

b0=$(cat "$work/bare.bulk"); b1=$(cat "$work/inline.bulk")
c0=$(cat "$work/bare.churn"); c1=$(cat "$work/inline.churn")
awk -v b0="$b0" -v b1="$b1" -v c0="$c0" -v c1="$c1" -v q="$queued" -v k="$bypassed" -v r="$reps" 'BEGIN {
  printf "bulk  (iperf3 -t 5, median of %d): bare %.2f Gbit/s, inline %.2f Gbit/s, ratio %.1f %% (target >= 95 %%)\n", r, b0/1e9, b1/1e9, 100*b1/b0
  printf "churn (2000 short connections, median of %d): bare %.0f conn/s, inline %.0f conn/s, ratio %.1f %% (target >= 80 %%)\n", r, c0, c1, 100*c1/c0
  printf "packets queued to rmmguard: %d; packets carried by the kernel bypass (ct mark 1): %d\n", q, k
}'
