#!/usr/bin/env python3
"""Test helpers run inside the test namespaces (no third-party modules).

  probe.py connect HOST PORT [--send HEX [--segment]] [--wait S] [--then HEX]
      connects, optionally sends bytes, reads what comes back; then sends one more byte (or
      the bytes of --then) and reads again (so a flow that the gateway refuses in the kernel
      answers with a reset).
      Prints one line per step: "connect ok|refused|reset|timeout", "recv <hex>|reset|eof|timeout".
      --segment sends the bytes one per TCP segment, each once the previous one is acknowledged,
      and prints "sent N" (the bytes sent before the end or an error).
      --spoof-after K (IPv4) sends the first K bytes and, once they are acknowledged, forges from
      a raw socket a new start of the connection on the same ports: a SYN with a new sequence
      number (TTL 1: it dies at the gateway), then a SYN-ACK for it that claims to come from
      HOST:PORT (what a client host can send to make a gateway forget the bytes it has read);
      prints "spoofed", then sends the rest.
      --desync-after K (IPv4) likewise, but forges only its own side: an in-sequence RST with
      TTL 1 (it resets the gateway's conntrack entry and never reaches the server) and a SYN
      with a new sequence number; prints "desynced", then sends the rest.
      --acks-after K:N (IPv4) likewise, but sends N duplicate pure ACKs from a raw socket;
      prints "acked N", then sends the rest.
  probe.py banner PORT HEX [--bind ADDR]
      TCP server: on each connection sends the bytes, then echoes what it reads, until closed.
  probe.py https PORT CERT KEY DIR
      HTTPS file server (one thread per connection, so a half-open connection left by a blocked
      client does not stall the next one).
  probe.py sink PORT
      TCP server that reads and never answers.
  probe.py churn HOST PORT N
      N short connections one after another (connect, read the banner, close); prints the
      connections per second (for benches/gateway.sh).
  probe.py dns SERVER NAME
      one A query over UDP; prints each answered IPv4 address on a line, or "timeout".
  probe.py udpflood HOST PORT N RATE [SIZE]
      sends N datagrams numbered 0..N-1 (SIZE bytes, at least 4), each from a new socket (so a
      new flow, which the gateway queues to rmmguard), RATE per second; prints "sent N".
  probe.py udpsink PORT IDLE
      receives numbered datagrams until IDLE seconds pass without one (after the first);
      prints "received R distinct D", then "missing" and the first missing numbers.
"""
import socket
import struct
import sys
import threading


def classify(e):
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    return "error " + type(e).__name__


def unacked(s):
    # struct tcp_info: tcpi_unacked is the u32 at offset 24.
    return struct.unpack_from("I", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 24)[0]


def send_segments(s, data):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = 0
    try:
        for i in range(len(data)):
            s.send(data[i:i + 1])
            n += 1
            # The next byte would otherwise join this one in a later segment.
            wait_acked(s)
    finally:
        print("sent %d" % n, flush=True)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def default_gateway_link():
    """(interface, own MAC, gateway MAC) of the IPv4 default route, from /proc and /sys."""
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            c = line.split()
            if c[1] == "00000000":
                iface, gw = c[0], socket.inet_ntoa(struct.pack("=I", int(c[2], 16)))
                break
        else:
            raise OSError("no IPv4 default route")
    with open("/proc/net/arp") as f:
        for line in f.readlines()[1:]:
            c = line.split()
            if c[0] == gw and c[5] == iface:
                gw_mac = bytes.fromhex(c[3].replace(":", ""))
                break
        else:
            raise OSError("no ARP entry for the gateway " + gw)
    with open("/sys/class/net/%s/address" % iface) as f:
        own_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    return iface, own_mac, gw_mac


def raw_tcp(src, sport, dst, dport, seq, ack, flags, ttl=64, count=1):
    """Sends a forged IPv4 TCP segment without payload (count times), as an Ethernet frame to the default
    gateway (so that it crosses the gateway even when it claims to come from elsewhere or is
    addressed to this host)."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    csum = checksum(s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, ttl, socket.IPPROTO_TCP, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    iface, own_mac, gw_mac = default_gateway_link()
    r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        r.bind((iface, 0))
        for _ in range(count):
            r.send(gw_mac + own_mac + b"\x08\x00" + ip + tcp)
    finally:
        r.close()


def spoof_reconnect(s, host, port):
    """Makes the connection look restarted on the same ports: a SYN with a new sequence number
    from this side, with a TTL of 1 so that it dies at the gateway (the server never answers it),
    then at once a SYN-ACK for it that claims to come from the server. Conntrack on the gateway
    takes the pair for a new start of the connection, and so would an engine that read it."""
    import os

    me, my_port = s.getsockname()[:2]
    isn, server_isn = struct.unpack("!II", os.urandom(8))
    raw_tcp(me, my_port, host, port, isn, 0, 0x02, ttl=1)
    raw_tcp(host, port, me, my_port, server_isn, (isn + 1) & 0xFFFFFFFF, 0x12)


def next_seqs(s):
    """(snd_nxt, rcv_nxt) of a connected TCP socket, from TCP_REPAIR (needs CAP_NET_ADMIN), once
    whatever the server sent first has arrived."""
    import time

    time.sleep(0.05)
    TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
    TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        snd = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        rcv = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    finally:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    return snd, rcv


def desync(s, host, port):
    """Resets the gateway's view of this connection without ending it: an in-sequence RST with a
    TTL of 1 (conntrack on the gateway sees it and closes its entry; it dies there), then a SYN
    with a new sequence number, which the server answers with a challenge ACK (RFC 5961) while
    conntrack starts a new entry from it. The connection's own next segments then fit neither
    (conntrack: invalid)."""
    import os

    snd, rcv = next_seqs(s)
    me, my_port = s.getsockname()[:2]
    raw_tcp(me, my_port, host, port, snd, rcv, 0x14, ttl=1)
    isn = struct.unpack("!I", os.urandom(4))[0]
    raw_tcp(me, my_port, host, port, isn, 0, 0x02)


def ack_flood(s, host, port, n):
    """Sends n duplicate pure ACKs on this connection, in sequence (valid for conntrack, which
    counts them; a gateway that only queues segments with payload lets them through)."""
    snd, rcv = next_seqs(s)
    me, my_port = s.getsockname()[:2]
    raw_tcp(me, my_port, host, port, snd, rcv, 0x10, count=n)


def wait_acked(s):
    import time

    end = time.monotonic() + 3
    while unacked(s) and time.monotonic() < end:
        time.sleep(0.0002)


def connect(host, port, send, wait, segment=False, trick=None, then=b"\n"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(wait)
    try:
        s.connect((host, port))
        print("connect ok", flush=True)
    except OSError as e:
        print("connect " + classify(e), flush=True)
        return
    try:
        if send and trick is not None:
            # The first k bytes, acknowledged; the trick, which says what it did; the rest.
            k, play = trick
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(send[:k])
            wait_acked(s)
            print(play(s, host, port), flush=True)
            s.sendall(send[k:])
        elif send and segment:
            send_segments(s, send)
        elif send:
            s.sendall(send)
        for i in range(2):
            try:
                d = s.recv(4096)
                print("recv " + d.hex() if d else "recv eof", flush=True)
                if not d:
                    return
            except OSError as e:
                print("recv " + classify(e), flush=True)
                if not isinstance(e, (socket.timeout, TimeoutError)):
                    return
            # After the first answer, `--then` (else a newline); a newline after the second.
            s.sendall(then if i == 0 else b"\n")
    except OSError as e:
        print("send " + classify(e), flush=True)
    finally:
        s.close()


def banner(port, data, bind, sink=False):
    fam = socket.AF_INET6 if ":" in bind else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(64)
    print("listening", flush=True)

    def serve(c):
        try:
            if sink:
                # Acknowledges each segment at once (no delayed ACK), for `connect --segment`.
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                while c.recv(4096):
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                return
            c.sendall(data)
            while True:
                d = c.recv(4096)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def https(port, cert, key, root):
    import functools
    import http.server
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), handler)
    srv.daemon_threads = True

    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print("listening", flush=True)
    srv.serve_forever()


def churn(host, port, n):
    import time

    t0 = time.monotonic()
    ok = 0
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        try:
            if s.recv(64):
                ok += 1
        finally:
            s.close()
    dt = time.monotonic() - t0
    print("%.1f" % (ok / dt))


def dns(server, name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    try:
        r, _ = s.recvfrom(4096)
    except OSError:
        print("timeout")
        return
    an = struct.unpack(">H", r[6:8])[0]
    i = 12
    while r[i] != 0:
        i += r[i] + 1
    i += 5
    for _ in range(an):
        if r[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while r[i] != 0:
                i += r[i] + 1
            i += 1
        typ, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        if typ == 1 and rdlen == 4:
            print(socket.inet_ntoa(r[i:i + 4]))
        i += rdlen


def udpflood(host, port, n, rate, size=4):
    import time

    pad = b"\0" * max(0, size - 4)
    t0 = time.monotonic()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(struct.pack(">I", i) + pad, (host, port))
        s.close()
        # Paced against the start, so a slow step does not lower the rate.
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    print("sent %d" % n, flush=True)


def udpsink(port, idle):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", port))
    print("listening", flush=True)
    seen = set()
    count = 0
    s.settimeout(None)
    while True:
        try:
            b, _ = s.recvfrom(65536)
        except socket.timeout:
            break
        s.settimeout(idle)
        count += 1
        if len(b) >= 4:
            seen.add(struct.unpack(">I", b[:4])[0])
    top = max(seen) + 1 if seen else 0
    missing = [i for i in range(top) if i not in seen]
    print("received %d distinct %d" % (count, len(seen)))
    # Runs of missing numbers, as FIRST-LAST (at most 50 runs).
    runs = []
    for i in missing:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    print(
        "missing "
        + " ".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in runs[:50]),
        flush=True,
    )


def main(a):
    if a[0] == "connect":
        send = b""
        wait = 3.0
        if "--send" in a:
            send = bytes.fromhex(a[a.index("--send") + 1])
        if "--wait" in a:
            wait = float(a[a.index("--wait") + 1])
        trick = None
        if "--spoof-after" in a:
            trick = (int(a[a.index("--spoof-after") + 1]),
                     lambda s, h, p: spoof_reconnect(s, h, p) or "spoofed")
        if "--desync-after" in a:
            trick = (int(a[a.index("--desync-after") + 1]),
                     lambda s, h, p: desync(s, h, p) or "desynced")
        if "--acks-after" in a:
            k, n = (int(x) for x in a[a.index("--acks-after") + 1].split(":"))
            trick = (k, lambda s, h, p: ack_flood(s, h, p, n) or "acked %d" % n)
        then = b"\n"
        if "--then" in a:
            then = bytes.fromhex(a[a.index("--then") + 1])
        connect(a[1], int(a[2]), send, wait, "--segment" in a, trick, then)
    elif a[0] == "banner":
        bind = a[a.index("--bind") + 1] if "--bind" in a else "0.0.0.0"
        banner(int(a[1]), bytes.fromhex(a[2]), bind)
    elif a[0] == "https":
        https(int(a[1]), a[2], a[3], a[4])
    elif a[0] == "sink":
        banner(int(a[1]), b"", "0.0.0.0", sink=True)
    elif a[0] == "churn":
        churn(a[1], int(a[2]), int(a[3]))
    elif a[0] == "dns":
        dns(a[1], a[2])
    elif a[0] == "udpflood":
        udpflood(a[1], int(a[2]), int(a[3]), float(a[4]), int(a[5]) if len(a) > 5 else 4)
    elif a[0] == "udpsink":
        udpsink(int(a[1]), float(a[2]))
    else:
        sys.exit("probe.py: unknown command")


if __name__ == "__main__":
    main(sys.argv[1:])
