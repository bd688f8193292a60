"""Every connection the agent accepts has TCP_NODELAY set, on IPv4, IPv6 and ``--port 0``.

Without it Nagle's algorithm holds back the end of each response until the client's
delayed ACK (~40 ms per keep-alive request). The option is read on the server's side of
the connection: from the socket asyncio accepted (the path uvicorn takes with the
agent's socket), and from the real agent process, whose accepted socket is copied into
the test with ``pidfd_getfd`` and asked directly.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_agent.listener import connect_address, listening_socket, local_url
from tests.conftest import RunningAgent, requires_bwrap, start_agent

SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (5.6+)


def ipv6_missing() -> str | None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        return f"no IPv6 loopback here ({exc.strerror})"
    return None


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(bool(ipv6_missing()),
                                                          reason=ipv6_missing() or "")),
]


def nodelay(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# the listening socket, served by asyncio as uvicorn serves it ---------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_asyncio_accepted_connection_has_nodelay(host: str) -> None:
    async def main() -> tuple[bool, int]:
        listener = listening_socket(host, 0)
        port = listener.getsockname()[1]
        accepted: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.set_result(transport.get_extra_info("socket"))

        # What uvicorn's Server.startup does with the sockets it is given.
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(host, port)
            server_side = await asyncio.wait_for(accepted, 10)
            result = nodelay(server_side)
            writer.close()
        return result, port

    set_on_accept, port = asyncio.run(main())
    assert port != 0  # port 0 picked a real port
    assert set_on_accept


@pytest.mark.parametrize("host", HOSTS)
def test_plain_accept_inherits_nodelay(host: str) -> None:
    """Whatever the event loop does, the kernel hands the option to each accepted socket."""
    with listening_socket(host, 0) as listener:
        listener.listen()
        assert nodelay(listener)
        with socket.create_connection(listener.getsockname()[:2]) as client:
            server_side, peer = listener.accept()
            with server_side:
                assert peer[:2] == client.getsockname()[:2]
                assert nodelay(server_side)


def test_a_taken_port_is_refused_and_closed() -> None:
    with listening_socket("127.0.0.1", 0) as first:
        first.listen()
        with pytest.raises(OSError) as caught:
            listening_socket("127.0.0.1", first.getsockname()[1])
    assert caught.value.errno == errno.EADDRINUSE


# the URL local clients are given -----------------------------------------------------------


@pytest.mark.parametrize(("host", "bound", "v6only", "expected"), [
    ("0.0.0.0", "0.0.0.0", False, "127.0.0.1"),
    ("::", "::", False, "127.0.0.1"),  # dual-stack: IPv4 reaches it on a host without IPv6
    ("::", "::", True, "::1"),  # IPv6 only: 127.0.0.1 would be refused
    ("0::0", "::", True, "::1"),
    ("127.0.0.1", "127.0.0.1", False, "127.0.0.1"),
    ("::1", "::1", True, "::1"),
    ("::1", "::1", False, "::1"),
    ("192.0.2.7", "192.0.2.7", False, "192.0.2.7"),
    ("localhost", "127.0.0.1", False, "localhost"),  # a name stays as the user wrote it
])
def test_a_wildcard_is_advertised_as_a_loopback_address(host: str, bound: str, v6only: bool,
                                                         expected: str) -> None:
    assert connect_address(host, bound, v6only) == expected


def wildcard_socket(host: str, v6only: bool | None) -> socket.socket:
    if v6only is None:
        return listening_socket(host, 0)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind((host, 0))
    return sock


@pytest.mark.parametrize(("host", "v6only", "loopback"), [
    pytest.param("0.0.0.0", None, "127.0.0.1", id="0.0.0.0"),
    pytest.param("::", None, "127.0.0.1", id="::"),  # listening_socket keeps the default
    pytest.param("::", False, "127.0.0.1", id="::-dual-stack"),
    pytest.param("::", True, "[::1]", id="::-ipv6-only"),
])
def test_the_url_of_a_wildcard_reaches_its_listener(host: str, v6only: bool | None,
                                                     loopback: str) -> None:
    """Read from the socket itself (``IPV6_V6ONLY`` decides), and connected to."""
    if "::1" in loopback and ipv6_missing():
        # The URL is still right ([::1]: an IPv6-only listener takes nothing else); only
        # the connection cannot be made here.
        with wildcard_socket(host, v6only) as sock:
            assert local_url(host, sock) == f"http://[::1]:{sock.getsockname()[1]}"
        pytest.skip(f"connecting to an IPv6-only listener NOT TESTED: {ipv6_missing()}")
    with wildcard_socket(host, v6only) as listener:
        listener.listen()
        port = listener.getsockname()[1]
        url = local_url(host, listener)
        assert url == f"http://{loopback}:{port}"
        address = url.rsplit(":", 1)[0].removeprefix("http://").strip("[]")
        with socket.create_connection((address, port), timeout=10) as client:
            server_side, peer = listener.accept()
            server_side.close()
            assert peer[1] == client.getsockname()[1]


# the real agent --------------------------------------------------------------------------


def pidfd_getfd(pid: int, fd: int) -> int:
    """A copy of another process's descriptor (needs ptrace rights over it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copied = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copied < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return int(copied)
    finally:
        os.close(pidfd)


def server_side_of(pid: int, client: socket.socket) -> socket.socket:
    """The socket in process ``pid`` whose peer is ``client``."""
    wanted = client.getsockname()[:2]
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                continue
        except FileNotFoundError:  # closed meanwhile
            continue
        copy = socket.socket(fileno=pidfd_getfd(pid, int(fd)))
        try:
            if copy.family in (socket.AF_INET, socket.AF_INET6) and copy.getpeername()[:2] == wanted:
                return copy
        except OSError:  # a listener or an unconnected socket has no peer
            pass
        copy.close()
    raise AssertionError(f"no socket in process {pid} is connected to {wanted}")


def health(client: socket.socket, host: str) -> bytes:
    """One keep-alive ``GET /v1/health`` on ``client``: the response's head."""
    client.sendall(f"GET /v1/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        assert chunk, "the agent closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    while len(body) < length:
        body += client.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" not in head.lower()
    return head


def keep_alive_request(agent: RunningAgent, host: str) -> socket.socket:
    """A connection on which the agent has answered one request and which stays open."""
    port = int(agent.url.rsplit(":", 1)[1])
    client = socket.create_connection((host, port), timeout=30)
    health(client, host)
    return client


@pytest.fixture
def agent_on(request: pytest.FixtureRequest, isolation: Path) -> Iterator[tuple[RunningAgent, str]]:
    host = request.param
    running = start_agent(isolation / "data", "--host", host, env={"HYAC_SANDBOX": "bwrap"})
    yield running, host
    running.kill()


@requires_bwrap
@pytest.mark.parametrize("agent_on", HOSTS, indirect=True)
def test_agent_connection_has_nodelay(agent_on: tuple[RunningAgent, str]) -> None:
    agent, host = agent_on
    assert agent.url.rsplit(":", 1)[1] != "0"  # started with --port 0
    with keep_alive_request(agent, host) as client:
        try:
            server_side = server_side_of(agent.process.pid, client)
        except PermissionError as exc:
            pytest.skip(f"cannot read another process's sockets here (pidfd_getfd: {exc})")
        with server_side:
            assert server_side.getsockname()[1] == client.getpeername()[1]
            assert nodelay(server_side)
        # The same connection still serves: nothing was taken from the agent.
        health(client, host)
