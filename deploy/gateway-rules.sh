#!/usr/bin/env bash
# Adds or removes rmmguard's kernel rules in the CURRENT network namespace.
#
#   gateway-rules.sh up   [--queues 0-3] [--fail-closed] [--budget N] [--hooks forward[,input,output]]
#                         [--drop] [--backend auto|nft|iptables]
#   gateway-rules.sh down
#   gateway-rules.sh status
#
# What `up` installs (see docs/deploy.md, "Deploy on a gateway"):
# - decided flows are carried by the kernel: conntrack mark 1 = accept, 2 = reject (TCP reset /
#   ICMP port unreachable), 3 = drop (rmmguard owns the two low bits of the marks);
# - a packet that rmmguard answered with a mark (repeat verdict) has its mark saved to the
#   conntrack mark, then is accepted, rejected or dropped;
# - addresses learned from DNS for blocked tools (sets rmm_learned4 / rmm_learned6, filled by
#   rmmguard, per-element timeouts) are refused for new flows;
# - only flows still undecided (conntrack mark 0) and within the budget of N packets (both
#   directions) are queued to rmmguard. With the default --queue-bypass the kernel accepts
#   queued packets when no rmmguard is bound (fail-open); --fail-closed drops them instead.
#
# Backends: the native nftables `queue` statement when the kernel has it (CONFIG_NFT_QUEUE),
# otherwise iptables-nft (chain RMMGUARD, jumped to from the hooks) for the queue and mark rules;
# the learned-address sets always live in the nftables table `inet rmmguard`.
# `down` removes exactly what `up` added, whichever backend was used, and nothing else.
set -euo pipefail

TABLE=rmmguard
CHAIN=RMMGUARD
cmd=${1:-}
[ $# -gt 0 ] && shift
queues=0
fail_closed=0
budget=32
hooks=forward
backend=auto
block=reject

die() { echo "gateway-rules.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --queues) queues=${2:?--queues needs a value}; shift 2 ;;
    --fail-closed) fail_closed=1; shift ;;
    --budget) budget=${2:?--budget needs a value}; shift 2 ;;
    --hooks) hooks=${2:?--hooks needs a value}; shift 2 ;;
    --backend) backend=${2:?--backend needs a value}; shift 2 ;;
    --drop) block=drop; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown option '$1'" ;;
  esac
done

[[ "$budget" =~ ^[0-9]+$ ]] && [ "$budget" -ge 1 ] && [ "$budget" -le 1000000 ] \
  || die "bad --budget '$budget' (1 to 1000000 packets)"
if [[ "$queues" =~ ^([0-9]+)-([0-9]+)$ ]]; then
  qlo=${BASH_REMATCH[1]}; qhi=${BASH_REMATCH[2]}
elif [[ "$queues" =~ ^[0-9]+$ ]]; then
  qlo=$queues; qhi=$queues
else
  die "bad --queues '$queues' (a number or a range like 0-3)"
fi
[ "$qlo" -le "$qhi" ] && [ "$qhi" -le 65535 ] || die "bad --queues '$queues'"
hook_chains=()
IFS=, read -r -a hl <<<"$hooks"
for h in "${hl[@]}"; do
  case "$h" in
    forward) hook_chains+=(FORWARD) ;;
    input) hook_chains+=(INPUT) ;;
    output) hook_chains+=(OUTPUT) ;;
    *) die "bad hook '$h' (forward, input, output)" ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is needed (apt-get install $2)"; }

# Whether the kernel runs the native nftables queue statement.
native_queue() {
  local probe=rmmguard_probe_$$
  nft add table inet "$probe" 2>/dev/null || return 1
  local ok=1
  if nft add chain inet "$probe" c 2>/dev/null && nft add rule inet "$probe" c queue num 0 bypass 2>/dev/null; then
    ok=0
  fi
  nft delete table inet "$probe" 2>/dev/null || true
  return $ok
}

queue_nft() {
  local q
  if [ "$qlo" = "$qhi" ]; then q="queue num $qlo"; else q="queue num $qlo-$qhi fanout"; fi
  [ "$fail_closed" = 1 ] || q="$q bypass"
  echo "$q"
}

queue_ipt() {
  local q
  if [ "$qlo" = "$qhi" ]; then q=(--queue-num "$qlo"); else q=(--queue-balance "$qlo:$qhi"); fi
  [ "$fail_closed" = 1 ] || q+=(--queue-bypass)
  echo "${q[@]}"
}

# The nftables table. With the native backend it holds every rule; otherwise only the learned
# sets and the rules that refuse new flows to them.
nft_table() {
  local native=$1 refuse4 refuse6 prio
  if [ "$block" = drop ]; then
    refuse4="drop"; refuse6="drop"
  else
    refuse4="reject"; refuse6="reject"
  fi
  echo "table inet $TABLE {"
  echo "  set rmm_learned4 { type ipv4_addr; flags timeout; size 65536; }"
  echo "  set rmm_learned6 { type ipv6_addr; flags timeout; size 65536; }"
  for h in "${hl[@]}"; do
    # Before iptables' filter chains (priority 0).
    prio=-5
    echo "  chain $h {"
    echo "    type filter hook $h priority $prio; policy accept;"
    if [ "$native" = 1 ]; then
      echo "    ct mark & 3 == 1 accept"
      echo "    ct mark & 3 == 2 meta l4proto tcp reject with tcp reset"
      echo "    ct mark & 3 == 2 reject"
      echo "    ct mark & 3 == 3 drop"
    fi
    if [ "$block" = reject ]; then
      echo "    ct mark & 3 == 0 ip daddr @rmm_learned4 meta l4proto tcp reject with tcp reset"
      echo "    ct mark & 3 == 0 ip6 daddr @rmm_learned6 meta l4proto tcp reject with tcp reset"
    fi
    echo "    ct mark & 3 == 0 ip daddr @rmm_learned4 $refuse4"
    echo "    ct mark & 3 == 0 ip6 daddr @rmm_learned6 $refuse6"
    if [ "$native" = 1 ]; then
      echo "    meta mark & 3 == 1 ct mark set ct mark | 1 accept"
      echo "    meta mark & 3 == 2 ct mark set ct mark | 2 meta l4proto tcp reject with tcp reset"
      echo "    meta mark & 3 == 2 reject"
      echo "    meta mark & 3 == 3 ct mark set ct mark | 3 drop"
      echo "    ct mark & 3 == 0 ct packets < $budget $(queue_nft)"
    fi
    echo "  }"
  done
  echo "}"
}

ipt_up() {
  local t=$1 unreach=$2 q
  read -r -a q <<<"$(queue_ipt)"
  $t -w -N "$CHAIN"
  $t -w -A "$CHAIN" -m connmark --mark 1/3 -j ACCEPT
  $t -w -A "$CHAIN" -m connmark --mark 2/3 -p tcp -j REJECT --reject-with tcp-reset
  $t -w -A "$CHAIN" -m connmark --mark 2/3 -j REJECT --reject-with "$unreach"
  $t -w -A "$CHAIN" -m connmark --mark 3/3 -j DROP
  $t -w -A "$CHAIN" -m mark --mark 1/3 -j CONNMARK --save-mark --nfmask 3 --ctmask 3
  $t -w -A "$CHAIN" -m mark --mark 1/3 -j ACCEPT
  $t -w -A "$CHAIN" -m mark --mark 2/3 -j CONNMARK --save-mark --nfmask 3 --ctmask 3
  $t -w -A "$CHAIN" -m mark --mark 2/3 -p tcp -j REJECT --reject-with tcp-reset
  $t -w -A "$CHAIN" -m mark --mark 2/3 -j REJECT --reject-with "$unreach"
  $t -w -A "$CHAIN" -m mark --mark 3/3 -j CONNMARK --save-mark --nfmask 3 --ctmask 3
  $t -w -A "$CHAIN" -m mark --mark 3/3 -j DROP
  $t -w -A "$CHAIN" -m connmark --mark 0/3 -m connbytes --connbytes "0:$budget" \
    --connbytes-dir both --connbytes-mode packets -j NFQUEUE "${q[@]}"
  for c in "${hook_chains[@]}"; do
    $t -w -I "$c" 1 -j "$CHAIN"
  done
}

ipt_down() {
  local t=$1
  command -v "$t" >/dev/null 2>&1 || return 0
  for c in FORWARD INPUT OUTPUT; do
    while $t -w -C "$c" -j "$CHAIN" 2>/dev/null; do
      $t -w -D "$c" -j "$CHAIN"
    done
  done
  if $t -w -L "$CHAIN" -n >/dev/null 2>&1; then
    $t -w -F "$CHAIN"
    $t -w -X "$CHAIN"
  fi
}

is_up() {
  nft list table inet "$TABLE" >/dev/null 2>&1 && return 0
  command -v iptables >/dev/null 2>&1 && iptables -w -L "$CHAIN" -n >/dev/null 2>&1 && return 0
  return 1
}

# Deletes the iptables-nft chains and tables that `up` created, if nothing was put in them since.
drop_created() {
  # (Outputs are captured before matching: `nft ... | grep -q` can fail under pipefail when grep
  # exits first.)
  local fam=$1 c text
  for c in FORWARD INPUT OUTPUT; do
    nft list set inet "$TABLE" "created_${fam}_${c,,}" >/dev/null 2>&1 || continue
    text=$(nft list chain "$fam" filter "$c" 2>/dev/null) || continue
    if [[ "$text" == *"policy accept;"* ]] \
      && [ "$(grep -cvE '^\s*(table|chain|type|\})' <<<"$text")" -eq 0 ]; then
      nft delete chain "$fam" filter "$c"
    fi
  done
  if nft list set inet "$TABLE" "created_${fam}_table" >/dev/null 2>&1; then
    text=$(nft list table "$fam" filter 2>/dev/null) || return 0
    if ! grep -qE '^\s*(chain|set|map) ' <<<"$text"; then
      nft delete table "$fam" filter
    fi
  fi
}

down() {
  ipt_down iptables
  ipt_down ip6tables
  if nft list table inet "$TABLE" >/dev/null 2>&1; then
    drop_created ip
    drop_created ip6
    nft delete table inet "$TABLE"
  fi
}

case "$cmd" in
  up)
    need nft nftables
    modprobe -q nfnetlink_queue 2>/dev/null || true
    modprobe -q xt_NFQUEUE 2>/dev/null || true
    is_up && die "rules are already up in this namespace (run 'down' first)"
    case "$backend" in
      auto) if native_queue; then backend=nft; else backend=iptables; fi ;;
      nft) native_queue || die "this kernel has no nftables queue statement (CONFIG_NFT_QUEUE); use --backend iptables" ;;
      iptables) ;;
      *) die "bad --backend '$backend' (auto, nft, iptables)" ;;
    esac
    # On any failure, take back what was added so far.
    trap 'down >/dev/null 2>&1 || true; echo "gateway-rules.sh: up failed; nothing left installed" >&2' ERR
    if [ "$backend" = nft ]; then
      nft_table 1 | nft -f -
    else
      need iptables iptables
      # iptables-nft creates the tables "ip filter" / "ip6 filter" and their builtin chains when
      # they are missing: note which (empty marker sets in our table) so that `down` removes
      # them again, and the ruleset is back to what it was.
      created=()
      for fam in ip ip6; do
        if ! nft list table "$fam" filter >/dev/null 2>&1; then
          created+=("created_${fam}_table")
        fi
        for c in "${hook_chains[@]}"; do
          nft list chain "$fam" filter "$c" >/dev/null 2>&1 || created+=("created_${fam}_${c,,}")
        done
      done
      nft_table 0 | nft -f -
      for m in "${created[@]}"; do
        nft add set inet "$TABLE" "$m" "{ type ipv4_addr; }"
      done
      ipt_up iptables icmp-port-unreachable
      if command -v ip6tables >/dev/null 2>&1; then
        ipt_up ip6tables icmp6-port-unreachable
      fi
    fi
    trap - ERR
    mode=fail-open; [ "$fail_closed" = 1 ] && mode=fail-closed
    echo "gateway-rules.sh: up ($backend backend, queues $qlo-$qhi, budget $budget packets, $mode)"
    ;;
  down)
    down
    echo "gateway-rules.sh: down"
    ;;
  status)
    if is_up; then echo "up"; else echo "down"; exit 1; fi
    ;;
  *)
    die "usage: gateway-rules.sh up|down|status [options] (see --help)"
    ;;
esac
