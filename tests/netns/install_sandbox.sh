#!/usr/bin/env bash
# Installs rmmguard with deploy/install.sh, runs the systemd units' commands the way systemd
# would (the rules unit's ExecStart as root, rmmguard's ExecStart as the unit's User with only
# its AmbientCapabilities, the rules unit's ExecStop as root), then removes everything with deploy/uninstall.sh --purge; checks each
# step and prints "ok: ..." lines. Exits non-zero at the first failure.
#
#   ip netns exec NS unshare --mount --propagation private tests/netns/install_sandbox.sh TREE
#
# Run it only like that: in a network namespace of its own (the rules touch only it) and a
# mount namespace of its own, where /etc, /usr/local and /var/log are overlays whose upper
# layers catch every write, and /run is a fresh tmpfs. Nothing outside is changed. At the end
# the upper layers must hold nothing new: what the install added, the uninstall removed.
set -euo pipefail
tree=${1:?usage: install_sandbox.sh TREE}
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root"
work=$(mktemp -d /tmp/rmmguard-install.XXXXXX)
for d in /etc /usr/local /var/log; do
  n=${d//\//_}
  mkdir -p "$work/$n/low" "$work/$n/up" "$work/$n/work"
  # The original stays visible at low/ (a bind mount made before the overlay covers $d).
  mount --bind "$d" "$work/$n/low"
  mount -t overlay overlay -o "lowerdir=$work/$n/low,upperdir=$work/$n/up,workdir=$work/$n/work" "$d"
done
mount -t tmpfs tmpfs /run
ok "sandbox: overlays on /etc, /usr/local, /var/log; tmpfs on /run"

ruleset() {
  { iptables-save; ip6tables-save; } | grep -v '^#' || true
  nft list ruleset
}
before=$(ruleset)

# 1. Install (systemd is not running in the sandbox: the unit is installed, not started).
"$tree/deploy/install.sh" --no-start
units=(rmmguard.service rmmguard-rules.service rmmguard-failed.service rmmguard-stopped.service)
for f in /usr/local/bin/rmmguard /usr/local/lib/rmmguard/gateway-rules.sh \
  "${units[@]/#//etc/systemd/system/}" /etc/rmmguard/policy.toml /etc/default/rmmguard; do
  [ -e "$f" ] || fail "install.sh did not install $f"
done
getent passwd rmmguard >/dev/null || fail "no rmmguard user"
ok "install.sh installed the files and the rmmguard user"
unit=/etc/systemd/system/rmmguard.service
runit=/etc/systemd/system/rmmguard-rules.service
if command -v systemd-analyze >/dev/null; then
  err=$(systemd-analyze verify "${units[@]/#//etc/systemd/system/}" 2>&1) \
    || fail "systemd-analyze verify: $err"
  [ -z "$err" ] || fail "systemd-analyze verify warned: $err"
  ok "systemd-analyze verify: the installed units are clean"
fi

# 2. The units' commands, read from the installed units (continuation lines joined), with their
# environment (the Environment= defaults, then /etc/default/rmmguard).
value() { # value() KEY [UNIT]: first value of KEY= in UNIT, continuation lines joined
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "${2:-$unit}" | sed -n "s/^$1=//p" | head -n 1
}
RMMGUARD_QUEUES=0-3 RMMGUARD_RULES_OPTS='' RMMGUARD_OPTS=''
# shellcheck disable=SC1091
. /etc/default/rmmguard
expand() { # systemd's ${VAR} and $VAR for the three variables the unit uses
  local s=$1
  for v in RMMGUARD_QUEUES RMMGUARD_RULES_OPTS RMMGUARD_OPTS; do
    s=${s//\$\{$v\}/${!v}}
    s=${s//\$$v/${!v}}
  done
  echo "$s"
}
user=$(value User)
caps=$(value AmbientCapabilities)
[ "$(value CapabilityBoundingSet)" = "$caps" ] || fail "bounding set and ambient set differ"
read -r -a pre <<<"$(expand "$(value ExecStart "$runit")")"
read -r -a start <<<"$(expand "$(value ExecStart)")"
read -r -a post <<<"$(expand "$(value ExecStop "$runit")")"
[ -z "$(value User "$runit")" ] || fail "the rules unit should run as root"
"${pre[@]}" >/dev/null
ok "rules unit ExecStart: ${pre[*]}"
# RuntimeDirectory= and LogsDirectory=, owned by the user.
install -d -o "$user" -g "$user" /run/rmmguard /var/log/rmmguard
# setpriv's form of the unit's capabilities: CAP_NET_ADMIN CAP_NET_RAW -> +net_admin,+net_raw.
cl=$(echo "$caps" | tr 'A-Z ' 'a-z,' | sed 's/cap_//g; s/^/+/; s/,/,+/g')
setpriv --reuid "$user" --regid "$user" --init-groups --no-new-privs \
  --inh-caps "-all,$cl" --ambient-caps "$cl" --bounding-set "-all,$cl" \
  -- "${start[@]}" 2>"$work/rmmguard.log" &
pid=$!
pidfile=/run/rmmguard/rmmguard.pid
for _ in $(seq 1 200); do
  [ -e "$pidfile" ] && break
  kill -0 "$pid" 2>/dev/null || fail "rmmguard exited at start: $(cat "$work/rmmguard.log")"
  sleep 0.05
done
[ -e "$pidfile" ] || fail "rmmguard did not start: $(cat "$work/rmmguard.log")"
[ "$(stat -c %U /proc/"$pid")" = "$user" ] || fail "rmmguard does not run as $user"
eff=$(awk '/^CapEff/ {print $2}' /proc/"$pid"/status)
[ "$eff" = 0000000000001000 ] || fail "rmmguard's effective capabilities are $eff, not CAP_NET_ADMIN alone"
ok "ExecStart: rmmguard inline runs as $user with CAP_NET_ADMIN only (CapEff $eff)"
kill -TERM "$pid"
wait "$pid" || fail "rmmguard exited with $? on SIGTERM: $(cat "$work/rmmguard.log")"
[ -e /var/log/rmmguard/events.json ] || fail "no events file"
"${post[@]}" >/dev/null
[ "$(ruleset)" = "$before" ] || fail "the rules unit's ExecStop left rules behind"
ok "SIGTERM: clean exit; the rules unit's ExecStop removed every rule"

# 3. The rules up again (as if their unit had never been stopped), then uninstall.
"${pre[@]}" >/dev/null
"$tree/deploy/uninstall.sh" --purge
[ "$(ruleset)" = "$before" ] || fail "uninstall.sh left rules behind"
for f in /usr/local/bin/rmmguard /usr/local/lib/rmmguard /etc/systemd/system/rmmguard.service \
  /etc/rmmguard /etc/default/rmmguard /var/log/rmmguard; do
  [ ! -e "$f" ] || fail "uninstall.sh --purge left $f"
done
! getent passwd rmmguard >/dev/null || fail "uninstall.sh --purge left the rmmguard user"
ok "uninstall.sh --purge removed the rules, the files and the user"

# 4. Nothing new is left in the upper layers: every file there is one that existed before with
# the same content (copied up by a change that was undone), except the shadow utilities' own
# backups (/etc/passwd- and the like, which useradd and userdel always write) and the login
# records useradd touches.
left=()
for d in /etc /usr/local /var/log; do
  n=${d//\//_}
  while IFS= read -r -d '' f; do
    rel=${f#"$work/$n/up"}
    case "$d$rel" in
      /etc/passwd- | /etc/group- | /etc/shadow- | /etc/gshadow- | /etc/subuid- | /etc/subgid-) continue ;;
      /var/log/lastlog | /var/log/faillog) continue ;;
    esac
    if [ -c "$f" ]; then
      left+=("$d$rel (deleted)")
    elif ! cmp -s "$f" "$work/$n/low$rel"; then
      left+=("$d$rel")
    fi
  done < <(find "$work/$n/up" -mindepth 1 \( -type f -o -type c -o -type l \) -print0)
done
[ "${#left[@]}" -eq 0 ] || fail "left behind or changed: ${left[*]}"
ok "nothing left behind in /etc, /usr/local or /var/log"
