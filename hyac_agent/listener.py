"""The agent's listening socket: bound before uvicorn starts, so that ``--port 0`` knows
its port (and the state file its URL) before the first request.

Every accepted connection must have ``TCP_NODELAY``. Uvicorn's own ``--port`` gets it
from asyncio, which sets it on accepted sockets only when the listener's protocol is
``IPPROTO_TCP`` (``socket.socket(AF_INET)`` says protocol 0). Without it Nagle's
algorithm holds back a response's last segment until the client's delayed ACK, about
40 ms per request on a keep-alive connection.
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv6 when the host has a colon; port 0
    picks a free one), not yet listening: uvicorn's server calls ``listen``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP: asyncio's transport then sets TCP_NODELAY on each accepted socket.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Linux also copies it from the listener to every accepted socket, whatever
        # the event loop does (uvloop sets it itself, the default loop as above).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
