#!/usr/bin/env bash
# Boots a real systemd as PID 1 of a sandbox and has it run tests/netns/systemd_driver.sh, which
# installs rmmguard with deploy/install.sh and drives the installed units through systemd itself:
# start, kill -9 under the descriptor store, stop, failure for good, uninstall.
#
#   ip netns exec NS unshare --mount --propagation private tests/netns/systemd_sandbox.sh TREE OUT
#
# TREE is the source tree (with RMMGUARD_BIN, or TREE/target/release/rmmguard, built); OUT an
# empty directory where the driver writes its log and the files it and the caller wait for
# (see systemd_driver.sh). Run it only like that: in a network namespace of its own (the rules
# and rmmguard touch only it) and a mount namespace of its own. The sandbox's root is an overlay
# of / whose upper layer is a tmpfs, with fresh /run, /tmp, /proc, a read-only /sys and a cgroup2
# hierarchy of its own, and systemd runs in a PID namespace of its own: nothing it or the
# install writes outlives it. Only the units the driver needs are enabled (every .wants
# directory is removed in the overlay), so systemd starts nothing of the host's.
# Exits with systemd's exit status: 0 when the driver passed.
set -euo pipefail
tree=${1:?usage: systemd_sandbox.sh TREE OUT}
out=${2:?usage: systemd_sandbox.sh TREE OUT}
tree=$(cd "$tree" && pwd)
out=$(cd "$out" && pwd)
[ "$(id -u)" = 0 ] || { echo "systemd_sandbox.sh: needs root" >&2; exit 2; }
sd=/lib/systemd/systemd
[ -x "$sd" ] || { echo "systemd_sandbox.sh: no $sd (apt-get install systemd)" >&2; exit 2; }
work=$(mktemp -d /tmp/rmmguard-systemd.XXXXXX)
mkdir -p "$work/low" "$work/up" "$work/root"
mount -t tmpfs tmpfs "$work/up"
mkdir -p "$work/up/u" "$work/up/w"
mount --bind / "$work/low"
mount -t overlay overlay -o "lowerdir=$work/low,upperdir=$work/up/u,workdir=$work/up/w" "$work/root"
r=$work/root
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
# The tree and OUT may live on other file systems than /: bind them in at the same paths.
for d in "$tree" "$out"; do
  mkdir -p "$r$d"
  mount --bind "$d" "$r$d"
done
bin=${RMMGUARD_BIN:-$tree/target/release/rmmguard}
bin=$(readlink -f "$bin")
if [ ! -e "$r$bin" ]; then
  mkdir -p "$(dirname "$r$bin")"; touch "$r$bin"; mount --bind "$bin" "$r$bin"
fi
mount --rbind /sys "$r/sys"
mount --make-rslave "$r/sys"
mount -t tmpfs tmpfs "$r/sys/fs/cgroup"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -o remount,bind,ro "$r/sys"
mount --rbind /dev "$r/dev"
mount --make-rslave "$r/dev"
# No unit of the host's is pulled in.
find "$r/etc/systemd/system" "$r/lib/systemd/system" -maxdepth 1 \( -name '*.wants' -o -name '*.requires' \) \
  -exec rm -rf {} +
cat >"$r/etc/systemd/system/rmmguard-test.target" <<T
[Unit]
Description=rmmguard systemd test
Wants=rmmguard-test.service
T
cat >"$r/etc/systemd/system/rmmguard-test.service" <<T
[Unit]
Description=rmmguard systemd test driver
# The driver's exit status becomes systemd's, which then ends the sandbox.
SuccessAction=exit
SuccessActionExitStatus=0
FailureAction=exit
FailureActionExitStatus=1
[Service]
Type=exec
Environment=RMMGUARD_BIN=$bin
ExecStart=/bin/bash $tree/tests/netns/systemd_driver.sh $tree $out
StandardOutput=append:$out/driver.log
StandardError=append:$out/driver.log
T
# systemd is PID 1 of its own PID namespace (chroot execs it in place).
set +e
timeout 300 unshare --pid --fork --mount-proc="$r/proc" chroot "$r" /usr/bin/env container=rmmguard-test \
  "$sd" --system --unit=rmmguard-test.target --log-target=console --log-level=notice \
  >"$out/systemd.log" 2>&1
rc=$?
set -e
echo "systemd exited with $rc"
exit "$rc"
