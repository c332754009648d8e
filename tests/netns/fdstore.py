#!/usr/bin/env python3
"""A stand-in for systemd's file-descriptor store, for tests (no third-party modules).

  fdstore.py -- COMMAND [ARGS...]

Runs COMMAND with NOTIFY_SOCKET set to an abstract datagram socket of its own and keeps every
descriptor the command sends with FDSTORE=1 (under its FDNAME), as systemd does with
FileDescriptorStoreMax=. Each restart passes the stored descriptors back from 3 on, with
LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, as systemd does (sd_listen_fds(3)).

Commands, one per line on standard input:
  kill9    SIGKILL the command, then start it again with the stored descriptors
  term     SIGTERM the command, wait for it, then start it again
  stop     SIGTERM the command, wait for it, close the stored descriptors and exit
Prints "ready PID" each time the command sends READY=1, "exited STATUS" when it ends, and
"stored NAME" for each descriptor stored.
"""
import fcntl
import os
import select
import signal
import socket
import sys


def main():
    if "--" not in sys.argv:
        sys.exit("usage: fdstore.py -- COMMAND [ARGS...]")
    cmd = sys.argv[sys.argv.index("--") + 1:]
    name = "fdstore-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    store = {}

    def spawn():
        names = sorted(store)
        pid = os.fork()
        if pid == 0:
            # The command dies with this harness (PR_SET_PDEATHSIG = 1), as a service does with
            # its manager's cgroup; a test that fails leaves nothing running.
            import ctypes
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
            # Out of the way first (numbers >= 100), then to 3, 4, ... (dup2 clears
            # close-on-exec on the copy).
            tmp = [fcntl.fcntl(store[n], fcntl.F_DUPFD, 100) for n in names]
            for i, t in enumerate(tmp):
                os.dup2(t, 3 + i)
            # Nothing else is passed on (the originals and the copies above).
            os.closerange(3 + len(names), 4096)
            env = dict(os.environ, NOTIFY_SOCKET="@" + name)
            if names:
                env.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(names)),
                           LISTEN_FDNAMES=":".join(names))
            os.execvpe(cmd[0], cmd, env)
        return pid

    def out(line):
        print(line, flush=True)

    child = spawn()
    stopping = False
    while True:
        r, _, _ = select.select([sock, sys.stdin], [], [], 0.2)
        if sock in r:
            msg, fds, _, _ = socket.recv_fds(sock, 4096, 16)
            fields = dict(l.split("=", 1) for l in msg.decode().splitlines() if "=" in l)
            if fields.get("FDSTORE") == "1":
                fdname = fields.get("FDNAME", "stored")
                for fd in fds:
                    old = store.get(fdname)
                    store[fdname] = fd
                    if old is not None and old != fd:
                        os.close(old)
                    out("stored " + fdname)
            else:
                for fd in fds:
                    os.close(fd)
            if fields.get("FDSTOREREMOVE") == "1":
                old = store.pop(fields.get("FDNAME", "stored"), None)
                if old is not None:
                    os.close(old)
                    out("removed " + fields.get("FDNAME", "stored"))
            if fields.get("READY") == "1":
                out("ready %d" % child)
        if sys.stdin in r:
            line = sys.stdin.readline().strip()
            if line in ("kill9", "term", "stop"):
                os.kill(child, signal.SIGKILL if line == "kill9" else signal.SIGTERM)
                _, st = os.waitpid(child, 0)
                out("exited %d" % st)
                if line == "stop" or not line:
                    stopping = True
                else:
                    child = spawn()
            elif line == "":
                # Standard input closed: stop.
                os.kill(child, signal.SIGTERM)
                os.waitpid(child, 0)
                stopping = True
        if stopping:
            for fd in store.values():
                os.close(fd)
            return
        done, st = os.waitpid(child, os.WNOHANG)
        if done:
            out("exited %d" % st)
            for fd in store.values():
                os.close(fd)
            return


if __name__ == "__main__":
    main()
