#!/usr/bin/env bash
# Run by tests/netns/systemd_sandbox.sh as a unit of the sandbox's systemd (PID 1): installs
# rmmguard with deploy/install.sh and drives the installed units through systemd.
#
#   systemd_driver.sh TREE OUT
#
# Steps, each logged to OUT/log as "ok: ..." (or "FAIL: ..." and the end):
# 1. install.sh starts rmmguard.service (Type=notify: the start returns once rmmguard is
#    READY) and with it rmmguard-rules.service; rmmguard runs as user rmmguard with only
#    CAP_NET_ADMIN, and systemd holds its queue sockets in the descriptor store. Writes OUT/ready.
# 2. Waits for OUT/go (the caller has started a flood through the gateway), then kills rmmguard
#    with SIGKILL twice and restarts it once with `systemctl restart`; systemd restarts it after
#    each kill, and each new process takes the stored sockets over. Writes OUT/killed and waits for OUT/continue (the caller counts the
#    flood).
# 3. `systemctl stop rmmguard.service` takes the rules down too (rmmguard-stopped.service, from
#    OnSuccess=), also when it comes while systemd waits to restart rmmguard after a crash.
# 4. Failure for good: with a broken policy every restart fails; once the start limit is hit
#    the unit fails, rmmguard-failed.service runs and, the rules being fail-open, takes them down.
# 5. uninstall.sh --purge removes units, files and user. The driver's exit status (0, or 1
#    after a failure) ends the sandbox's systemd with the same status.
set -uo pipefail
tree=$1 out=$2
log() { echo "$*" >>"$out/log"; }
fail() {
  log "FAIL: $*"
  { echo "--- systemctl status"; systemctl --no-pager status rmmguard.service rmmguard-rules.service 2>&1; } >>"$out/log"
  touch "$out/done"
  exit 1
}
ok() { log "ok: $*"; }
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 50 ms.
wait_for() {
  local s=$1 what=$2 i
  shift 2
  for ((i = 0; i < s * 20; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "timed out after ${s}s waiting for $what"
}
prop() { systemctl show -p "$1" --value "${2:-rmmguard.service}"; }
rules() { /usr/local/lib/rmmguard/gateway-rules.sh status >/dev/null 2>&1; }
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
ok "systemd $(systemctl --version | awk 'NR == 1 {print $2}') is PID 1"
# rmmguard's standard error into OUT (a runtime drop-in: nothing of it is installed).
mkdir -p /run/systemd/system/rmmguard.service.d
printf '[Service]\nStandardError=append:%s/rmmguard.log\n' "$out" \
  >/run/systemd/system/rmmguard.service.d/log.conf

# 1. Install and start.
"$tree/deploy/install.sh" >>"$out/install.log" 2>&1 || fail "install.sh: $(tail -5 "$out/install.log")"
[ "$(systemctl is-active rmmguard.service)" = active ] || fail "rmmguard.service is not active"
[ "$(systemctl is-active rmmguard-rules.service)" = active ] || fail "rmmguard-rules.service is not active"
rules || fail "the rules are not up"
[ "$(systemctl is-enabled rmmguard.service)" = enabled ] || fail "rmmguard.service is not enabled"
pid=$(prop MainPID)
[ "$(stat -c %U "/proc/$pid")" = rmmguard ] || fail "rmmguard runs as $(stat -c %U "/proc/$pid")"
eff=$(awk '/^CapEff/ {print $2}' "/proc/$pid/status")
[ "$eff" = 0000000000001000 ] || fail "rmmguard's effective capabilities are $eff"
ok "install.sh started rmmguard.service (READY) and rmmguard-rules.service; rmmguard runs as rmmguard with CAP_NET_ADMIN only"
n=$(prop NFileDescriptorStore)
[ "$n" = 4 ] || fail "systemd holds $n descriptors, not the 4 queue sockets"
ok "systemd holds the 4 queue sockets in the descriptor store"
touch "$out/ready"

# 2. Two SIGKILLs and a systemctl restart while the caller's flood runs.
wait_for 60 "$out/go" test -e "$out/go"
restarted() {
  local p
  p=$(prop MainPID)
  [ "$p" != 0 ] && [ "$p" != "$old" ] && [ "$(systemctl is-active rmmguard.service)" = active ]
}
for k in 1 2; do
  sleep 0.5
  old=$(prop MainPID)
  systemctl kill -s KILL rmmguard.service
  wait_for 30 "restart $k" restarted
done
# (A manual restart sets NRestarts, the count of automatic ones, back to 0.)
[ "$(prop NRestarts)" = 2 ] || fail "NRestarts is $(prop NRestarts), not 2"
sleep 0.5
old=$(prop MainPID)
systemctl restart rmmguard.service
wait_for 30 "the manual restart" restarted
rules || fail "the rules went down with a restart"
[ "$(grep -c "NFQUEUE 0: took over the socket" "$out/rmmguard.log")" = 3 ] \
  || fail "not every new process took the stored sockets over: $(grep -c "took over the socket" "$out/rmmguard.log")"
ok "2 x SIGKILL and a systemctl restart: rmmguard came back each time, the rules stayed up, each new process took the stored sockets over"
touch "$out/killed"
wait_for 120 "$out/continue" test -e "$out/continue"

# stop_checked WHEN: stops rmmguard; the rules unit must stop with it and the rules be gone.
stop_checked() {
  systemctl stop rmmguard.service
  # (The stop reaches the rules unit as a job of its own, which may still run.)
  rules_stopped() { [ "$(systemctl is-active rmmguard-rules.service)" = inactive ]; }
  wait_for 30 "rmmguard-rules.service to stop" rules_stopped
  ! rules || fail "the rules are still up after a stop $1"
}
# start_again: starts rmmguard anew (the start limit's count reset); the rules must come back.
start_again() {
  systemctl reset-failed rmmguard.service 2>/dev/null
  systemctl start rmmguard.service || fail "start after the stop"
  rules || fail "the rules did not come back with the start"
}

# 3. Stop.
stop_checked "by hand"
ok "systemctl stop rmmguard.service: the rules unit stopped with it and the rules are gone"

# 3b. A stop while systemd waits to restart rmmguard after a crash (none of rmmguard's own stop
# commands run then).
start_again
systemctl kill -s KILL rmmguard.service
waiting() { [ "$(systemctl is-active rmmguard.service)" = activating ]; }
wait_for 5 "the restart wait" waiting
stop_checked "during the restart wait"
ok "systemctl stop in the restart wait after a crash: the rules went down too"

# 4. Failure for good.
start_again
cp /etc/rmmguard/policy.toml "$out/policy.saved"
echo 'no such key = [' >/etc/rmmguard/policy.toml
systemctl kill -s KILL rmmguard.service
failed() { [ "$(systemctl is-failed rmmguard.service)" = failed ]; }
wait_for 60 "the unit to fail" failed
gone() { ! rules; }
wait_for 30 "rmmguard-failed.service to take the rules down" gone
[ "$(prop Result rmmguard-failed.service)" = success ] || fail "rmmguard-failed.service: $(prop Result rmmguard-failed.service)"
ok "failure for good (broken policy): the unit failed after $(prop NRestarts) restarts, rmmguard-failed.service took the fail-open rules down"
cp "$out/policy.saved" /etc/rmmguard/policy.toml
systemctl reset-failed rmmguard.service

# 5. Uninstall.
"$tree/deploy/uninstall.sh" --purge >>"$out/install.log" 2>&1 || fail "uninstall.sh: $(tail -5 "$out/install.log")"
! rules || fail "rules left after uninstall"
[ "$(systemctl show -p LoadState --value rmmguard.service)" = not-found ] || fail "rmmguard.service still loaded"
! getent passwd rmmguard >/dev/null || fail "user rmmguard left"
ok "uninstall.sh --purge: units, rules and user gone"
touch "$out/passed" "$out/done"
