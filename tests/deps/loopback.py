"""Loopback stand-ins for the tests of hostile dependencies: an HTTP server that serves a
package and counts what was asked of it, and a bare listener that counts connections."""

from __future__ import annotations

import platform
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hyac_agent.deps import archives


def skip_without_tar_filters(refusal: str) -> None:
    """Where the agent's Python has no tarfile extraction filters it refuses .tar.gz
    sdists (as it must): check that refusal, then skip what needs an unpacked sdist."""
    assert not archives.SAFE_TAR
    assert refusal == archives.tar_refusal(), refusal
    pytest.skip(f"sdist unpacking NOT TESTED: Python {platform.python_version()} has no "
                "tarfile extraction filters (3.10.12+, 3.11.4+), so the agent refuses "
                ".tar.gz sdists")


@contextmanager
def serving(body_for: Callable[[str], bytes]) -> Iterator[tuple[str, list[str]]]:
    """(base URL, paths requested so far) of a server answering each GET with body_for(path)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            requests.append(self.path)
            body = body_for(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def listening() -> Iterator[socket.socket]:
    """A non-blocking listener on the host's loopback, shown to accept before it is used."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        socket.create_connection(listener.getsockname(), timeout=5).close()
        # accept() sees it at once: the connection completed before connect() returned
        assert pending_connections(listener) == 1
        yield listener


def pending_connections(listener: socket.socket) -> int:
    """Connections made to ``listener`` since it was last asked (a hostile build's would count)."""
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1
