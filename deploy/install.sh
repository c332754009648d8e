#!/usr/bin/env bash
# Installs rmmguard as a systemd service on a Debian gateway (run as root from the source tree,
# after `cargo build --release`). See docs/deploy.md, "Deploy on a gateway".
#   deploy/install.sh [--no-start]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 2; }
bin=${RMMGUARD_BIN:-$root/target/release/rmmguard}
[ -x "$bin" ] || { echo "install.sh: build first: cargo build --release" >&2; exit 2; }
for t in nft iptables; do
  command -v "$t" >/dev/null || { echo "install.sh: missing $t (apt-get install nftables iptables)" >&2; exit 2; }
done
install -D -m 0755 "$bin" /usr/local/bin/rmmguard
install -D -m 0755 "$root/deploy/gateway-rules.sh" /usr/local/lib/rmmguard/gateway-rules.sh
for u in rmmguard.service rmmguard-rules.service rmmguard-failed.service rmmguard-stopped.service; do
  install -D -m 0644 "$root/deploy/$u" "/etc/systemd/system/$u"
done
install -D -m 0644 "$root/docs/deploy.md" /usr/local/share/doc/rmmguard/deploy.md
getent group rmmguard >/dev/null || groupadd --system rmmguard
getent passwd rmmguard >/dev/null || useradd --system --gid rmmguard --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin rmmguard
install -d -m 0750 -g rmmguard /etc/rmmguard
if [ ! -e /etc/rmmguard/policy.toml ]; then
  cat > /etc/rmmguard/policy.toml <<'POL'
# rmmguard policy (see README.md, "Policy"). Check it with: rmmguard check --policy THIS_FILE
# home_networks = ["192.168.0.0/16"]
# [[allow]]
# name = "our-msp"
# tool = "screenconnect"
# hosts = ["ourmsp.screenconnect.com"]
POL
  chmod 0640 /etc/rmmguard/policy.toml; chgrp rmmguard /etc/rmmguard/policy.toml
fi
[ -e /etc/default/rmmguard ] || cat > /etc/default/rmmguard <<'DEF'
# Queues (one worker thread each; at most one per CPU is useful).
RMMGUARD_QUEUES=0-3
# Extra options for gateway-rules.sh up (e.g. --fail-closed, --hooks forward,input, --drop,
# --no-anti-spoof on a gateway with asymmetric routes: docs/deploy.md, "Crafted packets").
RMMGUARD_RULES_OPTS=
# Extra options for rmmguard inline (e.g. --fail-closed, --metrics 127.0.0.1:9977).
RMMGUARD_OPTS=
DEF
sysctl -qw net.ipv4.ip_forward=1
/usr/local/bin/rmmguard check --policy /etc/rmmguard/policy.toml >/dev/null
# systemd as the init system (sd_booted(3)'s test); elsewhere (a container, a chroot) the unit
# is installed for later and nothing is started.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "${1:-}" != --no-start ]; then
    systemctl enable --now rmmguard.service
    systemctl --no-pager status rmmguard.service | head -5
  fi
else
  echo "install.sh: systemd is not running here: the unit is installed but not started" >&2
fi
echo "install.sh: installed; policy in /etc/rmmguard/policy.toml, events in /var/log/rmmguard/"
