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
# of / whose upper layer is a tmpfs, with fresh /run, /tmp, /proc and a read-only /sys; systemd
# runs in PID and cgroup namespaces of its own, below a cgroup made for it. Nothing it or the
# install writes outlives it: the cgroups and the empty mount points are removed at the end. Only the units the driver needs are enabled (every .wants
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
# systemd gets a cgroup of its own below ours, as the root of a cgroup namespace: it builds its
# slices there, and they go with it. (Without the namespace it would build them at the root of
# the host's cgroup2 hierarchy, and leave them behind.)
# (`ip netns exec` mounts a sysfs of its own over /sys, which hides the host's cgroup mounts:
# the hierarchy is mounted again here, in this mount namespace.)
cg2=$work/cgroup
mkdir -p "$cg2"
mount -t cgroup2 cgroup2 "$cg2"
sub=$cg2$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
sub=${sub%/}/rmmguard-test.$$
mkdir "$sub"
echo $$ >"$sub/cgroup.procs"
cleanup() {
  # The cgroups empty once the last process of the PID namespace is gone, which takes a moment.
  echo $$ >"$(dirname "$sub")/cgroup.procs" 2>/dev/null || true
  for _ in $(seq 1 100); do
    find "$sub" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$sub" ] || break
    sleep 0.1
  done
  # The mounts go with this mount namespace; the directories under them, empty on the host, are
  # removed one by one (rmdir: never anything with content).
  umount -R -l "$r" "$work/low" "$work/up" "$cg2" 2>/dev/null || true
  rmdir "$work/root" "$work/low" "$work/up" "$cg2" "$work" 2>/dev/null || true
}
trap cleanup EXIT
# systemd is PID 1 of its own PID namespace (chroot execs it in place), and dies with it:
# --kill-child, and timeout's SIGKILL (a SIGTERM only makes PID 1 systemd re-execute itself).
set +e
timeout -k 10 300 unshare --cgroup --pid --fork --kill-child --mount-proc="$r/proc" \
  /bin/sh -c 'mount -t cgroup2 cgroup2 "$1/sys/fs/cgroup" && exec chroot "$1" /usr/bin/env \
    container=rmmguard-test "$2" --system --unit=rmmguard-test.target --log-target=console \
    --log-level=notice' sh "$r" "$sd" >"$out/systemd.log" 2>&1
rc=$?
set -e
echo "systemd exited with $rc"
exit "$rc"
