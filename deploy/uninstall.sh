#!/usr/bin/env bash
# Removes rmmguard and every kernel rule it added. Keeps /etc/rmmguard and /var/log/rmmguard
# unless --purge is given.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root" >&2; exit 2; }
if [ -d /run/systemd/system ] && systemctl list-unit-files rmmguard.service >/dev/null 2>&1; then
  systemctl disable --now rmmguard.service 2>/dev/null || true
  systemctl stop rmmguard-rules.service 2>/dev/null || true
fi
# Stopping the units removed the rules; remove them again in case they were never run.
if [ -x /usr/local/lib/rmmguard/gateway-rules.sh ]; then
  /usr/local/lib/rmmguard/gateway-rules.sh down
elif [ -x "$(dirname "$0")/gateway-rules.sh" ]; then
  "$(dirname "$0")/gateway-rules.sh" down
fi
rm -f /etc/systemd/system/rmmguard.service /etc/systemd/system/rmmguard-rules.service \
  /etc/systemd/system/rmmguard-failed.service /etc/systemd/system/rmmguard-stopped.service \
  /usr/local/bin/rmmguard
rm -rf /usr/local/lib/rmmguard /usr/local/share/doc/rmmguard
[ -d /run/systemd/system ] && systemctl daemon-reload 2>/dev/null || true
if [ "${1:-}" = --purge ]; then
  rm -rf /etc/rmmguard /var/log/rmmguard /etc/default/rmmguard
  getent passwd rmmguard >/dev/null && userdel rmmguard
  getent group rmmguard >/dev/null && groupdel rmmguard 2>/dev/null || true
fi
echo "uninstall.sh: removed"
