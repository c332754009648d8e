#!/usr/bin/env bash
# Installs the Debian packages rmmguard and its test suite need, when they are missing.
# Usage: scripts/deps.sh [build|test]
set -euo pipefail
want=(libpcap-dev pkg-config)
if [ "${1:-build}" = test ]; then
  want+=(tcpdump iproute2 nftables iptables dnsmasq-base iperf3 openssl curl libcap2-bin python3 python3-yaml prometheus chromium python3-venv systemd)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "rmmguard: missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "rmmguard: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-build}" = test ]; then
  # The QUIC evasion tests (tests/evasion.rs) build their Initial packets with a real QUIC
  # client, aioquic, run from tests/quic_helper/ out of this virtual environment.
  venv="$(cd "$(dirname "$0")/.." && pwd)/target/quic-venv"
  if ! "$venv/bin/python" -c "import aioquic" >/dev/null 2>&1; then
    echo "rmmguard: installing aioquic into target/quic-venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "aioquic==1.2.0"
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "rmmguard: cargo (Rust 1.85 or later) is needed; install it with rustup" >&2
  exit 1
fi
