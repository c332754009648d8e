"""Writes the first datagram of a real QUIC client connection (aioquic), for rmmguard's tests.

Usage: initial.py VERSION SNI OUT [ALPN...]
VERSION is 1 or 2 (RFC 9000 / RFC 9369). The datagram carries the client's Initial packet(s),
encrypted with the keys derived from its destination connection ID, as a real client sends it.
"""

import sys

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicProtocolVersion

VERSIONS = {"1": QuicProtocolVersion.VERSION_1, "2": QuicProtocolVersion.VERSION_2}


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[1] not in VERSIONS:
        print("usage: initial.py 1|2 SNI OUT [ALPN...]", file=sys.stderr)
        return 2
    version, sni, out = VERSIONS[sys.argv[1]], sys.argv[2], sys.argv[3]
    alpn = sys.argv[4:] or ["h3"]
    config = QuicConfiguration(
        is_client=True,
        server_name=sni,
        alpn_protocols=alpn,
        supported_versions=[version],
    )
    conn = QuicConnection(configuration=config)
    now = 1.0
    conn.connect(("127.0.0.1", 443), now=now)
    datagrams = conn.datagrams_to_send(now=now)
    if not datagrams:
        print("initial.py: aioquic produced no datagram", file=sys.stderr)
        return 1
    data, _addr = datagrams[0]
    with open(out, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
