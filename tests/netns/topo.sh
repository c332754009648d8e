#!/usr/bin/env bash
# Three network namespaces for the gateway tests: client <-> gateway <-> server over veth pairs.
#
#   topo.sh up NAME      creates NAME-c (10.201.1.2), NAME-g (10.201.1.1 / 10.201.2.1, forwarding)
#                        and NAME-s (10.201.2.2); IPv6 fd00:201:1::/64 and fd00:201:2::/64 too
#   topo.sh down NAME    kills every process left in those namespaces and deletes them
#
# The veth pairs are created directly inside the namespaces, so nothing is added to the root
# namespace (whose firewall and links are never touched) and tests can run side by side.
set -euo pipefail
cmd=${1:?usage: topo.sh up|down NAME}
name=${2:?usage: topo.sh up|down NAME}
[[ "$name" =~ ^[a-z0-9]{1,12}$ ]] || { echo "topo.sh: bad name '$name'" >&2; exit 2; }
c=$name-c g=$name-g s=$name-s

down() {
  for ns in "$c" "$g" "$s"; do
    if [ -e "/run/netns/$ns" ]; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
}

case "$cmd" in
  up)
    trap down ERR
    for ns in "$c" "$g" "$s"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
    ip link add name eth0 netns "$c" type veth peer name cl0 netns "$g"
    ip link add name eth0 netns "$s" type veth peer name sv0 netns "$g"
    ip -n "$c" addr add 10.201.1.2/24 dev eth0
    ip -n "$g" addr add 10.201.1.1/24 dev cl0
    ip -n "$g" addr add 10.201.2.1/24 dev sv0
    ip -n "$s" addr add 10.201.2.2/24 dev eth0
    ip -n "$c" -6 addr add fd00:201:1::2/64 dev eth0 nodad
    ip -n "$g" -6 addr add fd00:201:1::1/64 dev cl0 nodad
    ip -n "$g" -6 addr add fd00:201:2::1/64 dev sv0 nodad
    ip -n "$s" -6 addr add fd00:201:2::2/64 dev eth0 nodad
    for l in "$c:eth0" "$g:cl0" "$g:sv0" "$s:eth0"; do ip -n "${l%%:*}" link set "${l#*:}" up; done
    ip -n "$c" route add default via 10.201.1.1
    ip -n "$s" route add default via 10.201.2.1
    ip -n "$c" -6 route add default via fd00:201:1::1
    ip -n "$s" -6 route add default via fd00:201:2::1
    ip netns exec "$g" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # No reverse-path filter of the kernel's own (a host may set one by default, and new
    # namespaces inherit it): the tests check rmmguard's rules, not the host's settings.
    for i in all default cl0 sv0; do
      ip netns exec "$g" sysctl -qw "net.ipv4.conf.$i.rp_filter=0"
    done
    trap - ERR
    ;;
  down) down ;;
  *) echo "topo.sh: usage: topo.sh up|down NAME" >&2; exit 2 ;;
esac
