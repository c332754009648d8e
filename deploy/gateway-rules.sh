#!/usr/bin/env bash
# Adds or removes rmmguard's kernel rules in the CURRENT network namespace.
#
#   gateway-rules.sh up   [--queues 0-3] [--fail-closed] [--budget N|none] [--tcp-budget N|none]
#                         [--tcp-queue payload|all] [--hooks forward[,input,output]]
#                         [--drop] [--no-anti-spoof] [--backend auto|nft|iptables]
#   gateway-rules.sh down
#   gateway-rules.sh print [up's options]   prints what `up` would install, changes nothing
#   gateway-rules.sh status
#   gateway-rules.sh fail-mode       prints fail-open or fail-closed (or down)
#
# What `up` installs (see docs/deploy.md, "Deploy on a gateway"). rmmguard only ever adds
# refusals: what it passes still meets every rule of the gateway's own firewall (an ACCEPT of
# rmmguard's, or of its queue, ends only rmmguard's own chain);
# - decided flows are carried by the kernel: conntrack mark 1 = pass, 2 = reject (TCP reset /
#   ICMP port unreachable), 3 = drop (rmmguard owns the two low bits of the marks);
# - a packet that rmmguard answered with a mark (repeat verdict) has its mark saved to the
#   conntrack mark, then is accepted, rejected or dropped;
# - addresses learned from DNS for blocked tools (sets rmm_learned4 / rmm_learned6, filled by
#   rmmguard, per-element timeouts) are refused for new flows;
# - a packet of an undecided flow (conntrack mark 0, or invalid) whose source address does not
#   route back through the interface it came in on is dropped (strict reverse-path check, nft
#   `fib`, before the queue), so that a host cannot forge packets of the far side of its own flow
#   (a SYN-ACK that restarts the flow in rmmguard's eyes, then the rest of a ClientHello read as
#   a stream joined midway). Decided flows skip the check. --no-anti-spoof leaves it out, for a
#   gateway whose routes are asymmetric (replies that come back through another interface);
# - TCP packets that conntrack cannot place (invalid: out of its window, or against its state
#   machine) are dropped, pure ACKs excepted: they have no conntrack mark or packet count for the
#   queue rules to go by, and a client can make its own segments invalid on purpose (a reset
#   that dies at the gateway, then a new SYN) to send them unread;
# - only flows still undecided (conntrack mark 0) are queued to rmmguard, TCP and UDP (other
#   protocols carry nothing it reads), with no packet budget by default: the engine decides
#   every UDP flow within 16 datagrams, and every TCP flow after at most 4096 bytes each way and
#   a few packets more (one whose client sent conflicting bytes excepted). A packet budget needs
#   conntrack to count the packets of every connection (an accounting extension that every
#   packet of every flow then updates), and a TCP one is one a client can use up with pure ACKs,
#   which conntrack counts and the rules do not queue, before it sends its ClientHello.
#   --budget N (UDP) and --tcp-budget N (TCP) set one anyway (both directions, counted by
#   conntrack);
# - of an undecided TCP flow, with --tcp-queue payload (the default), every packet is queued
#   except the client's pure ACKs: ACK set, SYN, FIN, RST and URG clear, and no payload byte.
#   They carry nothing to inspect. (The server's are queued: they tell the engine which client
#   bytes the server took.) "No payload" is checked exactly: IP total length == IP header + TCP header length
#   (IPv4 without options and not a fragment; IPv6 whose next header is TCP; everything else is
#   queued). --tcp-queue all queues
#   every packet. With the default --queue-bypass the kernel accepts queued packets when no
#   rmmguard is bound (fail-open); --fail-closed drops them instead.
#
# Backends: the native nftables `queue` statement when the kernel has it (CONFIG_NFT_QUEUE),
# otherwise iptables-nft's NFQUEUE target for the queue rules (chain RMMGUARD in the security
# table, jumped to from the end of its hook chains; see ipt_up); everything else always lives in
# the nftables table `inet rmmguard`.
# `down` removes exactly what `up` added, whichever backend was used, and nothing else.
set -euo pipefail

TABLE=rmmguard
CHAIN=RMMGUARD
TCHAIN=RMMGUARD_TCP
# The chain of decided flows' marks, in earlier versions (`down` still removes it).
OLD_CTCHAIN=RMMGUARD_CT
# The iptables-nft table of the queue rules (see ipt_up).
IPT_TABLE=security
MCHAIN=RMMGUARD_MARK
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in -h|--help) sed -n '2,10p' "$0"; exit 0 ;; esac
queues=0
fail_closed=0
budget=none
tcp_budget=none
tcp_queue=payload
hooks=forward
backend=auto
block=reject
anti_spoof=1

die() { echo "gateway-rules.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --queues) queues=${2:?--queues needs a value}; shift 2 ;;
    --fail-closed) fail_closed=1; shift ;;
    --budget) budget=${2:?--budget needs a value}; shift 2 ;;
    --tcp-budget) tcp_budget=${2:?--tcp-budget needs a value}; shift 2 ;;
    --tcp-queue) tcp_queue=${2:?--tcp-queue needs a value}; shift 2 ;;
    --hooks) hooks=${2:?--hooks needs a value}; shift 2 ;;
    --backend) backend=${2:?--backend needs a value}; shift 2 ;;
    --drop) block=drop; shift ;;
    --no-anti-spoof) anti_spoof=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option '$1'" ;;
  esac
done

[ "$budget" = none ] || { [[ "$budget" =~ ^[0-9]+$ ]] && [ "$budget" -ge 1 ] \
  && [ "$budget" -le 1000000 ]; } || die "bad --budget '$budget' (none, or 1 to 1000000 packets)"
[ "$tcp_budget" = none ] || { [[ "$tcp_budget" =~ ^[0-9]+$ ]] && [ "$tcp_budget" -ge 1 ] \
  && [ "$tcp_budget" -le 1000000 ]; } || die "bad --tcp-budget '$tcp_budget' (none, or 1 to 1000000 packets)"
if [ "$cmd" = up ] && [ "$tcp_budget" != none ]; then
  echo "gateway-rules.sh: warning: with --tcp-budget $tcp_budget, a client can use the budget up" \
    "with pure ACKs (conntrack counts them; they are not queued) and then send its first bytes" \
    "unread; the default, none, leaves no such gap" >&2
fi
case "$tcp_queue" in
  payload|all) ;;
  *) die "bad --tcp-queue '$tcp_queue' (payload, all)" ;;
esac
case "$backend" in
  auto|nft|iptables) ;;
  *) die "bad --backend '$backend' (auto, nft, iptables)" ;;
esac
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

# `--backend auto`: the native one where the kernel has the queue statement.
resolve_backend() {
  if [ "$backend" = auto ]; then
    if native_queue; then backend=nft; else backend=iptables; fi
  fi
}

queue_nft() {
  local q
  # A range without `fanout` spreads flows by a hash of the addresses, so that every packet of a
  # flow meets the same worker; `fanout` would spread them by CPU and split flows.
  if [ "$qlo" = "$qhi" ]; then q="queue num $qlo"; else q="queue num $qlo-$qhi"; fi
  [ "$fail_closed" = 1 ] || q="$q bypass"
  echo "$q"
}

queue_ipt() {
  local q
  if [ "$qlo" = "$qhi" ]; then q=(--queue-num "$qlo"); else q=(--queue-balance "$qlo:$qhi"); fi
  [ "$fail_closed" = 1 ] || q+=(--queue-bypass)
  echo "${q[@]}"
}

# The nftables table. With the native backend it holds every rule; with iptables-nft, whose
# NFQUEUE target stands in for the missing `queue` statement, everything but the queue rules:
# the learned sets, the reverse-path check, the rules that act on conntrack marks, and (after
# the queue) the refusal of a packet that rmmguard answered with mark 2.
#
# Every packet of a decided flow crosses these chains, so they are ordered for it: it meets one
# rule in each. Nothing here asks conntrack to count packets (`ct packets`, `connbytes`) unless
# a budget was asked for: counting adds an accounting extension to every connection, whose
# counters every packet then updates (about 0.5 % of the CPU of a bulk transfer through the
# namespace gateway, measured with perf).
nft_table() {
  local native=$1 refuse4 refuse6
  if [ "$block" = drop ]; then
    refuse4="drop"; refuse6="drop"
  else
    refuse4="reject"; refuse6="reject"
  fi
  echo "table inet $TABLE {"
  echo "  set rmm_learned4 { type ipv4_addr; flags timeout; size 65536; }"
  echo "  set rmm_learned6 { type ipv6_addr; flags timeout; size 65536; }"
  if [ "$anti_spoof" = 1 ]; then
    # Strict reverse-path check for packets of flows rmmguard has not decided (conntrack mark 0,
    # or no conntrack entry: invalid), jumped to from the forward and input chains (a packet the
    # gateway sends has no input interface to check).
    echo "  chain anti_spoof {"
    echo "    fib saddr . iif oif missing counter drop"
    echo "  }"
  fi
  for h in "${hl[@]}"; do
    # Before the filter tables (priority 0) and before the queue.
    echo "  chain $h {"
    echo "    type filter hook $h priority -5; policy accept;"
    echo "    ct mark & 3 == 1 accept"
    echo "    ct mark & 3 == 2 meta l4proto tcp reject with tcp reset"
    echo "    ct mark & 3 == 2 reject"
    echo "    ct mark & 3 == 3 drop"
    if [ "$native" = 1 ]; then
      # A packet rmmguard answered with a mark (repeat verdict): save it, then act on it.
      echo "    meta mark & 3 == 1 ct mark set ct mark | 1 accept"
      echo "    meta mark & 3 == 2 ct mark set ct mark | 2 meta l4proto tcp reject with tcp reset"
      echo "    meta mark & 3 == 2 reject"
      echo "    meta mark & 3 == 3 ct mark set ct mark | 3 drop"
    fi
    if [ "$anti_spoof" = 1 ] && [ "$h" != output ]; then
      echo "    ct mark & 3 == 0 jump anti_spoof"
      echo "    ct state invalid jump anti_spoof"
    fi
    if [ "$block" = reject ]; then
      echo "    ct mark & 3 == 0 ip daddr @rmm_learned4 meta l4proto tcp reject with tcp reset"
      echo "    ct mark & 3 == 0 ip6 daddr @rmm_learned6 meta l4proto tcp reject with tcp reset"
    fi
    echo "    ct mark & 3 == 0 ip daddr @rmm_learned4 $refuse4"
    echo "    ct mark & 3 == 0 ip6 daddr @rmm_learned6 $refuse6"
    if [ "$native" = 1 ]; then
      # Undecided flows. Not tested on the conntrack mark again: a flow that another CPU has
      # just decided since the first rules read it is queued rather than passed unread, and
      # rmmguard answers for it. (Untracked and invalid UDP pass unread, as conntrack leaves
      # them; TCP: see its chain.)
      echo "    meta l4proto tcp goto tcp_$h"
      if [ "$budget" = none ]; then
        echo "    meta l4proto udp ct state new,established,related $(queue_nft)"
      else
        echo "    meta l4proto udp ct packets < $budget $(queue_nft)"
      fi
    fi
    echo "  }"
    if [ "$native" = 1 ]; then
      # Undecided TCP flows (see exempt_tests for the pure-ACK tests).
      echo "  chain tcp_$h {"
      if [ "$tcp_queue" != all ]; then
        # The server's side whole, its pure ACKs included (see ipt_up).
        if [ "$tcp_budget" = none ]; then
          echo "    ct direction reply $(queue_nft)"
        else
          echo "    ct direction reply ct packets < $tcp_budget $(queue_nft)"
        fi
        for d in 8 5 6 7 9 10 11 12 13 14 15; do
          echo "    meta length $((20 + 4 * d)) ip hdrlength 5 ip frag-off & 0x3fff == 0 tcp flags & (fin | syn | rst | ack | urg) == ack tcp doff $d return"
          echo "    meta length $((40 + 4 * d)) ip6 nexthdr tcp tcp flags & (fin | syn | rst | ack | urg) == ack tcp doff $d return"
        done
      fi
      echo "    ct state invalid counter drop"
      echo "    ct state untracked return"
      if [ "$tcp_budget" = none ]; then
        echo "    $(queue_nft)"
      else
        echo "    ct packets < $tcp_budget $(queue_nft)"
      fi
      echo "  }"
    else
      # After the queue (iptables-nft's security table, priority 150): the packet that rmmguard
      # refused with mark 2 (repeat verdict; RMMGUARD_MARK saved the mark to the conntrack mark
      # and let it through, as the security table cannot REJECT). Later packets of the flow were
      # refused at -5, so only that one gets here with conntrack mark 2. (A packet with no
      # conntrack entry fails all three rules.)
      echo "  chain ${h}_refuse {"
      echo "    type filter hook $h priority 160; policy accept;"
      echo "    ct mark & 3 != 2 accept"
      echo "    ct mark & 3 == 2 meta l4proto tcp reject with tcp reset"
      echo "    ct mark & 3 == 2 reject"
      echo "  }"
    fi
  done
  echo "}"
}

# The tests that exempt a pure ACK (no payload) of an undecided TCP flow from the queue, one
# line per TCP header length (data offset 5 to 15 words; 8, with timestamps, first), for
# `iptables` ($1 = 4) or `ip6tables` ($1 = 6). A packet is exempt only when all of these hold,
# read from the packet:
# - its length (iptables-nft checks the skb length, which the IP layer trimmed to the IP total
#   length) is exactly the IP header plus 4 * d bytes: not one payload byte. Tested first: it is
#   the cheapest test and fails for most packets, so the u32 tests run only for candidates;
# - IPv4: header length 5 words (no options), not a fragment (MF clear, offset 0);
#   IPv6: next header TCP (no extension header);
# - TCP: data offset d; ACK set; SYN, FIN, RST and URG clear (an urgent pointer on an empty
#   segment still tells the server which byte to come is urgent, and the engine must see it). A SYN-ACK is queued even without
#   payload: it gives the engine the start of the server's byte stream. FINs and RSTs are queued
#   too: the engine must see a connection end, or a new one that reuses the ports and sequence
#   numbers would continue the old one's stream, whose bytes would then hide the new ones.
# A packet too short for the tests to read fails them, and is queued.
exempt_tests() {
  local fam=$1 d v
  for d in 8 5 6 7 9 10 11 12 13 14 15; do
    v=$(( (d << 12) | 0x10 ))
    if [ "$fam" = 4 ]; then
      echo "-m length --length $((20 + 4 * d)) -m u32 --u32 0>>24&0xF=5&&4&0x3FFF=0&&32>>16&0xF037=$v"
    else
      echo "-m length --length $((40 + 4 * d)) -m u32 --u32 4>>8&0xFF=6&&52>>16&0xF037=$v"
    fi
  done
}

# The iptables-nft part: the queue rules, in the `security` table (its chains hook in at
# priority 150, after the filter tables at 0). An ACCEPT there, and the queue's own (a packet
# rmmguard passed, or the bypass while no rmmguard reads the queue), ends only the security
# table's chain: the packet still meets every rule of the gateway's own firewall in `filter`
# and elsewhere. (In `filter`, beside those rules, it would skip the rest of their chain: a
# flow rmmguard passed would skip the firewall.) The jump is appended to the hook's chain, after
# any rule of the site's own there.
ipt_up() {
  local t=$1 fam=$2 q tests
  read -r -a q <<<"$(queue_ipt)"
  for c in "$CHAIN" "$TCHAIN" "$MCHAIN"; do
    $t -w -t "$IPT_TABLE" -N "$c"
  done
  # Ordered for the common cases: a packet of an allowed flow meets one rule (conntrack marks 2
  # and 3 were refused before), a packet of an undecided flow three before its protocol's queue
  # rules. (Every rule here is an xtables match run through nft_compat, which costs far more
  # than a native nftables expression.) RETURN, not ACCEPT: the hook's chain goes on.
  $t -w -t "$IPT_TABLE" -A "$CHAIN" -m connmark --mark 1/3 -j RETURN
  # Packets rmmguard answered with a mark (repeat verdict): save it, then act on it (mark 2 is
  # refused after this table, in the nftables chain <hook>_refuse).
  $t -w -t "$IPT_TABLE" -A "$CHAIN" -m mark ! --mark 0/3 -g "$MCHAIN"
  $t -w -t "$IPT_TABLE" -A "$MCHAIN" -j CONNMARK --save-mark --nfmask 3 --ctmask 3
  $t -w -t "$IPT_TABLE" -A "$MCHAIN" -m mark --mark 3/3 -j DROP
  # Undecided TCP flows: goto, so that a RETURN in $TCHAIN (an exempt pure ACK) goes back to
  # the hook's chain, past the queue rule below.
  $t -w -t "$IPT_TABLE" -A "$CHAIN" -p tcp -g "$TCHAIN"
  # Undecided UDP flows (a packet conntrack could not place, invalid, or one of a site's
  # `notrack` rules, passes unread, as before). Not tested on the mark: a flow that another CPU
  # has just blocked since this packet passed the chain at -5 is queued rather than passed, and
  # rmmguard refuses it. Other protocols carry nothing rmmguard reads.
  if [ "$budget" = none ]; then
    $t -w -t "$IPT_TABLE" -A "$CHAIN" -p udp -m conntrack ! --ctstate INVALID,UNTRACKED \
      -j NFQUEUE "${q[@]}"
  else
    $t -w -t "$IPT_TABLE" -A "$CHAIN" -p udp -m connbytes --connbytes "0:$budget" \
      --connbytes-dir both --connbytes-mode packets -j NFQUEUE "${q[@]}"
  fi
  # TCP: the queue rule's budget, if one was asked for.
  local tb=()
  [ "$tcp_budget" = none ] || tb=(-m connbytes --connbytes "0:$tcp_budget" \
    --connbytes-dir both --connbytes-mode packets)
  if [ "$tcp_queue" != all ]; then
    # Every packet of the server's side, its pure ACKs included: they tell the engine which of
    # the client's bytes the server really took, and a flow is passed on what the client sent
    # only once the server has (bytes that end past the gateway, a TTL that runs out, must not
    # get a flow waved through; see docs/security.md).
    $t -w -t "$IPT_TABLE" -A "$TCHAIN" -m conntrack --ctdir REPLY "${tb[@]}" -j NFQUEUE "${q[@]}"
    while read -r -a tests; do
      $t -w -t "$IPT_TABLE" -A "$TCHAIN" -p tcp "${tests[@]}" -j RETURN
    done < <(exempt_tests "$fam")
  fi
  # TCP packets conntrack could not place (invalid: out of its window, or against its state
  # machine) carry no mark and no packet count for the rules to go by, and a client can make
  # its own segments invalid on purpose (a reset that dies at the gateway and closes conntrack's
  # entry, then a SYN that starts another) to send the rest of a ClientHello unread. Queueing
  # them would not do either: the server discards most invalid segments (bad checksum, no ACK
  # flag, an ACK beyond what it sent), so the engine would read bytes the server never takes.
  # They are dropped, pure ACKs excepted (above).
  $t -w -t "$IPT_TABLE" -A "$TCHAIN" -m conntrack --ctstate INVALID -j DROP
  # Untracked (a `notrack` rule of the site's own): left alone, as conntrack is.
  $t -w -t "$IPT_TABLE" -A "$TCHAIN" -m conntrack --ctstate UNTRACKED -j RETURN
  $t -w -t "$IPT_TABLE" -A "$TCHAIN" "${tb[@]}" -j NFQUEUE "${q[@]}"
  for c in "${hook_chains[@]}"; do
    $t -w -t "$IPT_TABLE" -A "$c" -j "$CHAIN"
  done
}

# Removes the iptables-nft rules and chains, from the security table, and from the filter table
# where earlier versions put them.
ipt_down() {
  local t=$1 tab c
  command -v "$t" >/dev/null 2>&1 || return 0
  for tab in "$IPT_TABLE" filter; do
    for c in FORWARD INPUT OUTPUT; do
      while $t -w -t "$tab" -C "$c" -j "$CHAIN" 2>/dev/null; do
        $t -w -t "$tab" -D "$c" -j "$CHAIN"
      done
    done
    for c in "$CHAIN" "$TCHAIN" "$OLD_CTCHAIN" "$MCHAIN"; do
      if $t -w -t "$tab" -L "$c" -n >/dev/null 2>&1; then
        $t -w -t "$tab" -F "$c"
      fi
    done
    for c in "$CHAIN" "$TCHAIN" "$OLD_CTCHAIN" "$MCHAIN"; do
      if $t -w -t "$tab" -L "$c" -n >/dev/null 2>&1; then
        $t -w -t "$tab" -X "$c"
      fi
    done
  done
}

is_up() {
  nft list table inet "$TABLE" >/dev/null 2>&1 && return 0
  command -v iptables >/dev/null 2>&1 || return 1
  iptables -w -t "$IPT_TABLE" -L "$CHAIN" -n >/dev/null 2>&1 && return 0
  iptables -w -t filter -L "$CHAIN" -n >/dev/null 2>&1 && return 0
  return 1
}

# Deletes the iptables-nft chains and tables that `up` created, if nothing was put in them since:
# those that the empty marker sets `created_<table>_<family>_...` in our table name (and, for
# rules that earlier versions put up, `created_<family>_...`: the filter table).
drop_created() {
  # (Outputs are captured before matching: `nft ... | grep -q` can fail under pipefail when grep
  # exits first.)
  local fam=$1 tab=$2 pre=$3 c text
  for c in FORWARD INPUT OUTPUT; do
    nft list set inet "$TABLE" "${pre}_${c,,}" >/dev/null 2>&1 || continue
    text=$(nft list chain "$fam" "$tab" "$c" 2>/dev/null) || continue
    if [[ "$text" == *"policy accept;"* ]] \
      && [ "$(grep -cvE '^\s*(table|chain|type|\})' <<<"$text")" -eq 0 ]; then
      nft delete chain "$fam" "$tab" "$c"
    fi
  done
  if nft list set inet "$TABLE" "${pre}_table" >/dev/null 2>&1; then
    text=$(nft list table "$fam" "$tab" 2>/dev/null) || return 0
    if ! grep -qE '^\s*(chain|set|map) ' <<<"$text"; then
      nft delete table "$fam" "$tab"
    fi
  fi
}

down() {
  ipt_down iptables
  ipt_down ip6tables
  if nft list table inet "$TABLE" >/dev/null 2>&1; then
    for fam in ip ip6; do
      drop_created "$fam" "$IPT_TABLE" "created_${IPT_TABLE}_${fam}"
      drop_created "$fam" filter "created_${fam}"
    done
    # Conntrack's packet accounting, if `up` turned it on (a budget) and it was off before.
    if nft list set inet "$TABLE" acct_was_off >/dev/null 2>&1; then
      sysctl -qw net.netfilter.nf_conntrack_acct=0 2>/dev/null || true
    fi
    nft delete table inet "$TABLE"
  fi
}

case "$cmd" in
  up)
    need nft nftables
    modprobe -q nfnetlink_queue 2>/dev/null || true
    modprobe -q xt_NFQUEUE 2>/dev/null || true
    is_up && die "rules are already up in this namespace (run 'down' first)"
    resolve_backend
    if [ "$backend" = nft ] && ! native_queue; then
      die "this kernel has no nftables queue statement (CONFIG_NFT_QUEUE); use --backend iptables"
    fi
    # A packet budget turns on conntrack's packet accounting for the namespace, and removing the
    # rule does not turn it off: note whether it was off, so that `down` turns it off again.
    acct_before=$(sysctl -n net.netfilter.nf_conntrack_acct 2>/dev/null || echo 0)
    # On any failure, take back what was added so far.
    trap 'down >/dev/null 2>&1 || true; echo "gateway-rules.sh: up failed; nothing left installed" >&2' ERR
    if [ "$backend" = nft ]; then
      nft_table 1 | nft -f -
    else
      need iptables iptables
      # iptables-nft creates the tables "ip security" / "ip6 security" and their builtin chains when
      # they are missing: note which (empty marker sets in our table) so that `down` removes
      # them again, and the ruleset is back to what it was.
      created=()
      for fam in ip ip6; do
        if ! nft list table "$fam" "$IPT_TABLE" >/dev/null 2>&1; then
          created+=("created_${IPT_TABLE}_${fam}_table")
        fi
        for c in "${hook_chains[@]}"; do
          nft list chain "$fam" "$IPT_TABLE" "$c" >/dev/null 2>&1 \
            || created+=("created_${IPT_TABLE}_${fam}_${c,,}")
        done
      done
      nft_table 0 | nft -f -
      for m in "${created[@]}"; do
        nft add set inet "$TABLE" "$m" "{ type ipv4_addr; }"
      done
      ipt_up iptables 4
      if command -v ip6tables >/dev/null 2>&1; then
        ipt_up ip6tables 6
      fi
    fi
    if [ "$acct_before" = 0 ] && { [ "$budget" != none ] || [ "$tcp_budget" != none ]; }; then
      nft add set inet "$TABLE" acct_was_off "{ type ipv4_addr; }"
    fi
    trap - ERR
    mode=fail-open; [ "$fail_closed" = 1 ] && mode=fail-closed
    spoof="anti-spoof on"; [ "$anti_spoof" = 1 ] || spoof="anti-spoof off"
    echo "gateway-rules.sh: up ($backend backend, queues $qlo-$qhi, UDP budget $budget, TCP" \
      "budget $tcp_budget, TCP queue $tcp_queue, $mode, $spoof)"
    ;;
  down)
    down
    echo "gateway-rules.sh: down"
    ;;
  print)
    # What `up` would install with these options, changing nothing: the nftables table, then,
    # with the iptables backend, the iptables commands.
    resolve_backend
    if [ "$backend" = nft ]; then
      nft_table 1
    else
      nft_table 0
      ipt_up "echo iptables" 4
      ipt_up "echo ip6tables" 6
    fi
    ;;
  status)
    if is_up; then echo "up"; else echo "down"; exit 1; fi
    ;;
  fail-mode)
    # fail-open (the queue rules carry the bypass), fail-closed, or down (exit 1).
    is_up || { echo "down"; exit 1; }
    # (Captured first: `... | grep -q` fails under pipefail when grep exits early.)
    rules=$({ iptables-save 2>/dev/null; nft list table inet "$TABLE" 2>/dev/null; } || true)
    if grep -qE -- '--queue-bypass|queue .*bypass' <<<"$rules"; then
      echo "fail-open"
    else
      echo "fail-closed"
    fi
    ;;
  *)
    die "usage: gateway-rules.sh up|down|print|status|fail-mode [options] (see --help)"
    ;;
esac
