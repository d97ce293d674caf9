"""Connection limits against hostile clients, on a real uvicorn with raw loopback sockets, on both HTTP parsers:
an oversized or unfinished request head gets 431 without stalling anyone else, too many header fields get 431,
a socket that never sends a head is closed, and connections beyond the cap get 503."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from mcp_platform.app import create_app
from mcp_platform.settings import Settings
from mcp_platform.transport.limits import server_options
from tests.support import TOKEN, free_port, make_settings, running_server, wait_until

pytestmark = pytest.mark.wire
PARSERS = pytest.mark.parametrize("parser", ["httptools", "h11"])
REPO = Path(__file__).parents[2]

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@contextmanager
def limited_server(settings: Settings, parser: str, *, capabilities: bool = False) -> Iterator[tuple[str, int]]:
    """The app (with its default capabilities if asked, else none) on a real uvicorn, configured as `mcp-platform
    serve` configures it; yields (host, port)."""
    app = create_app(settings, capabilities=None if capabilities else [])
    with running_server(app, **server_options(settings.http, parser)) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


def _connect(address: tuple[str, int], timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    return sock


def _read_head(sock: socket.socket) -> bytes:
    """The response head (or whatever came before the connection closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _status(head: bytes) -> int:
    assert head.startswith(b"HTTP/1."), head[:200]
    return int(head.split(b" ", 2)[1])


def _health(address: tuple[str, int]) -> int:
    with _connect(address) as sock:
        sock.sendall(HEALTH + b"Connection: close\r\n\r\n")
        return _status(_read_head(sock))


def _send_quietly(sock: socket.socket, data: bytes, chunk: int = 65536) -> None:
    """Send until done or until the server closes on us (it should, early)."""
    view = memoryview(data)
    try:
        for start in range(0, len(view), chunk):
            sock.sendall(view[start:start + chunk])
    except OSError:
        pass


def _settings(tmp_path: Path, **http: Any) -> Settings:
    return make_settings(tmp_path, http=http)


@PARSERS
def test_an_unfinished_8_mib_header_gets_431_quickly_and_others_are_served(tmp_path: Path, parser: str) -> None:
    with limited_server(_settings(tmp_path), parser) as address, _connect(address) as hostile:
        started = time.monotonic()
        # A head that never ends: one header value of 8 MiB with no line break after it.
        sender = threading.Thread(target=_send_quietly, args=(hostile, HEALTH + b"X-Big: " + b"a" * (8 << 20)))
        sender.start()
        head = _read_head(hostile)
        elapsed = time.monotonic() - started
        sender.join(10)
        assert _status(head) == 431
        assert elapsed < 5
        assert _health(address) == 200


@PARSERS
def test_a_finished_head_over_the_cap_gets_431(tmp_path: Path, parser: str) -> None:
    with limited_server(_settings(tmp_path, max_header_bytes=4096), parser) as address, _connect(address) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, HEALTH + b"X-Big: " + b"a" * 5000 + b"\r\n\r\n"))
        sender.start()
        assert _status(_read_head(sock)) == 431
        sender.join(10)
        # Just under the cap is fine.
        with _connect(address) as ok:
            ok.sendall(HEALTH + b"X-Big: " + b"a" * 3000 + b"\r\nConnection: close\r\n\r\n")
            assert _status(_read_head(ok)) == 200


@PARSERS
def test_too_many_header_fields_get_431(tmp_path: Path, parser: str) -> None:
    with limited_server(_settings(tmp_path), parser) as address:
        def fields(count: int) -> bytes:
            return b"".join(b"X-H%d: v\r\n" % i for i in range(count))

        with _connect(address) as sock:
            sock.sendall(HEALTH + fields(200) + b"\r\n")
            assert _status(_read_head(sock)) == 431
        with _connect(address) as sock:  # exactly the limit is fine: Host, 98 more and Connection
            sock.sendall(HEALTH + fields(98) + b"Connection: close\r\n\r\n")
            assert _status(_read_head(sock)) == 200


@PARSERS
def test_a_connection_that_sends_no_head_is_closed_within_the_timeout(tmp_path: Path, parser: str) -> None:
    with limited_server(_settings(tmp_path, head_timeout_seconds=0.5), parser) as address:
        with _connect(address) as idle:
            started = time.monotonic()
            assert idle.recv(1) == b""  # closed by the server; the socket timeout (10 s) bounds the wait
            assert time.monotonic() - started < 5
        with _connect(address) as slow:  # a head dribbled out is cut off too
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert slow.recv(1) == b""
        assert _health(address) == 200


@PARSERS
def test_a_keep_alive_connection_gets_a_fresh_head_deadline(tmp_path: Path, parser: str) -> None:
    with limited_server(_settings(tmp_path, head_timeout_seconds=0.5), parser) as address, \
            _connect(address) as sock:
        sock.sendall(HEALTH + b"\r\n")
        head = _read_head(sock)
        assert _status(head) == 200
        # The second request starts its head, then stalls: it is closed by the head deadline, not kept forever.
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        rest = head.partition(b"\r\n\r\n")[2]
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        assert b"HTTP/1.1" not in rest


@PARSERS
def test_connections_beyond_the_cap_get_503(tmp_path: Path, parser: str) -> None:
    with limited_server(_settings(tmp_path, max_connections=2), parser) as address, ExitStack() as held:
        for _ in range(2):  # two keep-alive connections, each known to the server once it has answered them
            sock = held.enter_context(_connect(address))
            sock.sendall(HEALTH + b"\r\n")
            assert _status(_read_head(sock)) == 200
        with _connect(address) as third:
            third.sendall(HEALTH + b"\r\n")
            head = _read_head(third)
        assert _status(head) == 503
        assert b"connection: close" in head.lower()
        held.close()
        # Once the held connections are gone, new ones are served again.
        deadline = time.monotonic() + 10
        while _health(address) != 200:
            assert time.monotonic() < deadline, "the server kept refusing after connections closed"


def test_serve_applies_the_limits(tmp_path: Path) -> None:
    """`mcp-platform serve` itself runs with the limits, read from its settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    env |= {"MCP_PLATFORM_TOKEN": "serve-limits-token", "MCP_PLATFORM_HTTP__MAX_HEADERS": "5"}
    process = subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                                "--tools-dir", str(tmp_path)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def healthy() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return _health(("127.0.0.1", port)) == 200
            except OSError:
                return False

        wait_until(healthy, timeout=30, what="the server's start")
        with _connect(("127.0.0.1", port)) as sock:
            sock.sendall(HEALTH + b"".join(b"X-H%d: v\r\n" % i for i in range(5)) + b"\r\n")
            assert _status(_read_head(sock)) == 431
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def _trickle(sock: socket.socket, body: bytes, sent: list[int], stop: threading.Event) -> None:
    """Send `body` a byte at a time, 50 per second, until it is all sent, the server closes, or `stop` is set."""
    for byte in body:
        if stop.wait(0.02):  # the attack's pace, not a wait for the server
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        sent[0] += 1


@PARSERS
def test_a_body_that_trickles_in_gets_408_and_its_connection_closed(tmp_path: Path, parser: str) -> None:
    """A body sent a byte at a time cannot hold a request open: it is answered 408 once `body_timeout_seconds`
    ran out (not after the whole body), and the connection is closed."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'.ljust(250)  # 5 s at 50 B/s
    head = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() +
            b"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with limited_server(_settings(tmp_path, body_timeout_seconds=0.5), parser) as address, \
            _connect(address) as slow:
        slow.sendall(head)
        sent, stop = [0], threading.Event()
        trickler = threading.Thread(target=_trickle, args=(slow, body, sent, stop), daemon=True)
        trickler.start()
        try:
            reply = _read_head(slow)  # the socket timeout (10 s) bounds the wait
            assert _status(reply) == 408, reply
            assert sent[0] < len(body), "the server waited for the whole body"
            assert b"connection: close" in reply.lower()
            while slow.recv(65536):  # the rest of the reply, then the server's close
                pass
        finally:
            stop.set()
            trickler.join(10)
        assert _health(address) == 200  # and everyone else is served
