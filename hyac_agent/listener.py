"""The agent's listening socket: bound before uvicorn starts, so that ``--port 0`` knows
its port (and the state file its URL) before the first request.

Every accepted connection must have ``TCP_NODELAY``. Uvicorn's own ``--port`` gets it
from asyncio, which sets it on accepted sockets only when the listener's protocol is
``IPPROTO_TCP`` (``socket.socket(AF_INET)`` says protocol 0). Without it Nagle's
algorithm holds back a response's last segment until the client's delayed ACK, about
40 ms per request on a keep-alive connection.
"""

from __future__ import annotations

import ipaddress
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


def local_url(host: str, sock: socket.socket) -> str:
    """The agent's URL for clients on this host (agent.json, ``hyac agent status``, the
    console's sign-in link): ``host`` as given, unless ``sock`` is bound to a wildcard.

    A wildcard says where to listen, not where to connect: ``[::]`` refuses a connection
    (Errno 99) on a host without IPv6, and ``0.0.0.0`` reaches this host on Linux only.
    A local client gets a loopback address the socket accepts on instead."""
    port = sock.getsockname()[1]
    address = connect_address(host, sock.getsockname()[0], v6only=(
        sock.family == socket.AF_INET6
        and sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) != 0))
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def connect_address(host: str, bound: str, v6only: bool) -> str:
    """Where a client on this host connects to a socket asked for ``host`` and bound to
    ``bound``: 127.0.0.1 for 0.0.0.0 and for a dual-stack ``::`` (``IPV6_V6ONLY`` off,
    Linux's default: it takes IPv4 too, as IPv4-mapped addresses), ``::1`` for an
    IPv6-only ``::``; any other address as it was given."""
    try:
        wildcard = ipaddress.ip_address(bound).is_unspecified
    except ValueError:  # not an address (getsockname gives one; for safety)
        wildcard = False
    if not wildcard:
        return host
    return "::1" if v6only else "127.0.0.1"
