"""The stdio transport: newline-delimited JSON-RPC on stdin/stdout, for clients that launch the server as a local
process (Claude Desktop, and any client configured with a command).

The same protocol edge and dispatcher as `/mcp` answer, with no HTTP auth: the caller is the local user who started
the process, so every request runs as `ANONYMOUS` (the MCP spec: a stdio server takes credentials from its
environment, not from the protocol). As in the official SDK, the first request fixes the connection's era:
`initialize` opens a handshake-era session (ping, logging/setLevel, server-to-client requests for elicitation and
sampling); a request carrying the 2026-07-28 `_meta` envelope opens a modern connection (`server/discover`, input
rounds; the header rung of the ladder is skipped, stdio has no headers). `notifications/cancelled` cancels a running
call in both eras, since stdio has no response stream to close. List changes reach a handshake-era client once it
has initialized, and a 2026-07-28 client through `subscriptions/listen` (which runs until cancelled).

Each request runs in its own task so a slow tool holds up nothing else; stdout gets one JSON message per line,
written under a lock, and a call's progress and log notifications go out before its result. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Literal

import anyio.to_thread
from pydantic_core import to_json

from mcp_platform import logcontext, tracing
from mcp_platform.auth_types import ANONYMOUS, Principal
from mcp_platform.errors import (
    InvalidRequest,
    McpPlatformError,
    ProtocolError,
    ToolError,
    UnsupportedProtocolVersion,
    to_wire,
)
from mcp_platform.protocol import jsonrpc
from mcp_platform.protocol.dispatch import Call, Dispatcher
from mcp_platform.protocol.edge import Facts, ProtocolEdge
from mcp_platform.protocol.eras import MODERN_VERSIONS, is_modern
from mcp_platform.stores.base import Notifier, SessionData

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["StdioConnection", "serve_stdio"]

logger = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]
"""Writes one encoded message, newline included, to the client."""

_SESSION_ID = "stdio"  # the connection is the session


class StdioConnection:
    """One client on one pair of pipes: reads messages, runs requests as tasks, writes replies."""

    def __init__(self, dispatcher: Dispatcher, write: Write, *, max_message_bytes: int,
                 principal: Principal = ANONYMOUS, notifier: Notifier | None = None) -> None:
        self._edge = ProtocolEdge(dispatcher, calls=self, notifier=notifier)
        self._changes: asyncio.Task[None] | None = None
        self._write_raw = write
        self._max = max_message_bytes
        self._principal = principal
        self._lock = asyncio.Lock()
        self._era: Literal["handshake", "modern"] | None = None
        self._session: SessionData | None = None
        self._inflight: dict[jsonrpc.RequestId, asyncio.Task[None]] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0
        self._closed = False

    async def serve(self, lines: AsyncIterator[bytes]) -> None:
        """Handle every line until EOF, then let running calls finish (their results can still be read)."""
        failure: str | None = None
        try:
            async for line in lines:
                await self.receive(line)
        except asyncio.CancelledError:
            for task in list(self._inflight.values()):
                task.cancel()
            raise
        except Exception as exc:  # the pipes broke: the session ends in error
            failure = type(exc).__name__
            raise
        finally:
            if self._session is not None:  # the connection is the session: it ends here
                tracing.session_ended(self._session.started_at, self._session.protocol_version, "pipe",
                                      error_type=failure)
            self._closed = True
            if self._changes is not None:
                self._changes.cancel()
            for waiting in self._replies.values():
                if not waiting.done():
                    waiting.set_exception(ToolError("The client closed the connection before answering."))
            if self._inflight:
                await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def receive(self, line: bytes) -> None:
        """One line from the client. Malformed input gets a JSON-RPC error and the connection goes on."""
        line = line.strip()
        if not line:
            return
        facts = Facts(self._principal)  # no headers: the ladder's header rungs are skipped
        try:
            if len(line) > self._max:
                raise InvalidRequest(f"Invalid Request: a message may be at most {self._max} bytes")
            message = self._edge.decode(line, facts)
            if isinstance(message, list):
                raise InvalidRequest("Invalid Request: JSON-RPC batches are not accepted")
            if message.kind == "request":
                await self._traced_request(message, facts) if tracing.active() else await self._request(message, facts)
            else:
                await self._edge.notification(message, _SESSION_ID, self._session)
        except McpPlatformError as exc:
            await self._send_error(facts.msg_id, exc)

    # -- requests ------------------------------------------------------------------------------------------------

    async def _traced_request(self, message: jsonrpc.Message, facts: Facts) -> None:
        """`_request` with a span for what never becomes a call: a refusal, or the `initialize` that opens the
        session (a call's own span is the edge's)."""
        started, opening = time.time_ns(), message.method == "initialize" and self._session is None
        try:
            await self._request(message, facts)
        except Exception as exc:
            self._edge.trace_refusal(message, facts, started, exc)
            raise
        if opening and self._session is not None:
            self._edge.trace_initialize(message, facts, started, self._session.protocol_version)

    async def _request(self, message: jsonrpc.Message, facts: Facts) -> None:
        assert message.id is not None
        if message.id in self._inflight:
            raise InvalidRequest(f"Invalid Request: id {message.id!r} is already in use by a running request")
        if message.method == "initialize":
            await self._initialize(message, facts)
            return
        enveloped = is_modern(None, message.raw)
        if self._era is None and enveloped:
            self._era = "modern"
        if self._era == "modern":
            call = self._edge.modern_call(message, facts)
        elif self._era == "handshake":
            if enveloped:
                raise InvalidRequest("Invalid Request: this connection began with initialize (handshake era); "
                                     "requests carrying the 2026-07-28 _meta envelope are not accepted on it")
            assert self._session is not None
            call = self._edge.handshake_call(message, facts, _SESSION_ID, self._session)
            call.server_request = self._server_request
        elif message.method == "ping":
            await self._write(jsonrpc.result_bytes(message.id, b"{}"))
            return
        else:
            raise InvalidRequest("Invalid Request: send initialize first, or a 2026-07-28 request with its "
                                 "_meta envelope")
        work = self._listen(call) if call.modern and call.method == "subscriptions/listen" else self._run(call)
        task = asyncio.create_task(work, name=f"mcp-stdio {call.method} {call.id!r}")
        logcontext.clear()  # the task took the request's log context; the reader's own records have none
        self._inflight[call.id] = task
        task.add_done_callback(functools.partial(self._forget, call.id))

    def _forget(self, key: jsonrpc.RequestId, task: asyncio.Task[None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _initialize(self, message: jsonrpc.Message, facts: Facts) -> None:
        if self._era == "modern":
            requested = message.params.get("protocolVersion")
            raise UnsupportedProtocolVersion(
                "Unsupported protocol version: this connection serves 2026-07-28; initialize is not accepted on it",
                {"supported": list(MODERN_VERSIONS), "requested": requested if isinstance(requested, str) else ""})
        if self._session is not None:
            raise InvalidRequest("Invalid Request: the session is already initialized")
        # Inline, not a task: requests on the following lines must already see the session.
        reply, self._session = self._edge.initialize(message, facts)
        self._era = "handshake"
        await self._write(reply)
        if self._edge.notifier is not None:
            self._changes = asyncio.create_task(self._forward_changes(self._session))

    async def _run(self, call: Call) -> None:
        call.notify = self._notify
        try:
            reply = await self._edge.answer(call)
        except asyncio.CancelledError:
            return  # cancelled by the client (or by shutdown): no reply, as the spec asks
        await self._write(reply.body)

    # -- change notifications -------------------------------------------------------------------------------------

    async def _forward_changes(self, session: SessionData) -> None:
        """Handshake era: list changes, and updates of the resources the client subscribed to."""
        async def subscriptions() -> list[str]:
            return session.subscriptions

        async for message in self._edge.session_changes(subscriptions):
            await self._write(message)

    async def _listen(self, call: Call) -> None:
        """2026-07-28 `subscriptions/listen`: an acknowledgement, then the granted kinds, until cancelled."""
        try:
            events = self._edge.listen(call)
        except ProtocolError as exc:
            await self._send_error(call.id, exc)
            return
        with contextlib.suppress(asyncio.CancelledError):
            async for message in events:
                await self._write(message)

    # -- the client's messages about running calls, and server-to-client requests ---------------------------------

    async def cancel(self, session_id: str, request_id: Any) -> None:
        """`notifications/cancelled`, in both eras: stdio has no response stream to close."""
        if (task := self._inflight.get(request_id)) is not None:
            task.cancel()

    async def reply(self, session_id: str, request_id: Any, result: Any, error: Any) -> None:
        """The client's answer to one of `_server_request`'s requests."""
        waiting = self._replies.get(str(request_id))
        if waiting is None or waiting.done():
            logger.debug("ignoring a response to unknown request %r", request_id)
            return
        if isinstance(result, dict):
            waiting.set_result(result)
        else:
            reason = error.get("message") if isinstance(error, dict) else None
            waiting.set_exception(ToolError(f"The client refused the request: {reason or 'no reason given'}"))

    async def _notify(self, method: str, params: dict[str, Any]) -> None:
        await self._write(to_json({"jsonrpc": "2.0", "method": method, "params": params}))

    async def _server_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Handshake era: ask the client (elicitation, sampling, roots) and wait for its response line."""
        if self._closed:
            raise ToolError("The client closed the connection; it cannot be asked for input.")
        self._next_request += 1
        request_id = f"srv-{self._next_request}"
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = waiting
        try:
            await self._write(to_json({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
            return await waiting
        except asyncio.CancelledError:
            await self._notify("notifications/cancelled", {"requestId": request_id, "reason": "the call was cancelled"})
            raise
        finally:
            self._replies.pop(request_id, None)

    # -- writing --------------------------------------------------------------------------------------------------

    async def _send_error(self, msg_id: jsonrpc.RequestId | None, exc: Exception) -> None:
        await self._write(to_wire(exc, modern=self._era == "modern", msg_id=msg_id).body)

    async def _write(self, message: bytes) -> None:
        async with self._lock:
            await self._write_raw(message + b"\n")


# -- the process's own pipes ------------------------------------------------------------------------------------------


def _read_lines(fd: int, max_bytes: int) -> Iterator[bytes]:
    """Lines from a raw descriptor. An overlong line is yielded cut at `max_bytes + 1` bytes (so the connection can
    refuse it) and the rest of it is dropped as it arrives, never held in memory."""
    buffer = bytearray()
    skipping = False
    while chunk := os.read(fd, 65536):
        scan_from = len(buffer)
        buffer += chunk
        while (end := buffer.find(b"\n", scan_from)) != -1:
            line = bytes(buffer[:end + 1])
            del buffer[:end + 1]
            scan_from = 0
            if skipping:
                skipping = False
                continue
            yield line
        if len(buffer) > max_bytes:
            if not skipping:
                yield bytes(buffer[:max_bytes + 1])
                skipping = True
            buffer.clear()
    if buffer and not skipping:
        yield bytes(buffer)


def _stdin_lines(fd: int, max_bytes: int) -> AsyncIterator[bytes]:
    """Lines read by a daemon thread: a blocking read works on pipes, files and terminals alike, and the thread
    keeps draining stdin even while a write to a slow client blocks."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in _read_lines(fd, max_bytes):
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except OSError as exc:
            logger.debug("stdin closed: %s", exc)
        except RuntimeError:  # the event loop is gone: the server is shutting down
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="mcp-platform stdin", daemon=True).start()

    async def lines() -> AsyncIterator[bytes]:
        while (line := await queue.get()) is not None:
            yield line

    return lines()


def _stdout_writer(stream: IO[bytes]) -> Write:
    broken = False

    def write(data: bytes) -> None:
        nonlocal broken
        if broken:
            return
        try:
            stream.write(data)
            stream.flush()
        except OSError as exc:  # the client went away; its EOF on stdin ends the loop
            broken = True
            logger.debug("stdout closed: %s", exc)

    async def send(data: bytes) -> None:
        # Not abandoned on cancel: a started write always completes, so frames never interleave.
        await anyio.to_thread.run_sync(write, data)

    return send


@contextlib.contextmanager
def _claim_stdio() -> Iterator[tuple[int, IO[bytes]]]:
    """The protocol keeps private copies of stdin and stdout; fd 1 is pointed at stderr and fd 0 at /dev/null, so a
    tool that prints or reads cannot corrupt the JSON-RPC stream."""
    sys.stdout.flush()
    try:
        wire_in, wire_out = os.dup(0), os.dup(1)
    except OSError:  # no real descriptors (an embedded interpreter): use them as they are
        yield 0, sys.stdout.buffer
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    writer = os.fdopen(wire_out, "wb")
    try:
        yield wire_in, writer
    finally:
        sys.stdout.flush()
        os.dup2(wire_out, 1)
        os.dup2(wire_in, 0)
        writer.close()
        # `wire_in` stays open: after a SIGTERM the reader thread may still be blocked on it.


async def serve_stdio(app: Starlette) -> None:
    """Run `app`'s lifespan (the same start-up as `serve`) and answer on this process's stdin/stdout until EOF.
    SIGTERM cancels running calls and shuts down cleanly."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, or not the main thread
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    async with app.router.lifespan_context(app):
        state = app.state.mcp
        max_bytes: int = state.settings.http.max_body_bytes
        with _claim_stdio() as (wire_in, wire_out):
            connection = StdioConnection(state.dispatcher, _stdout_writer(wire_out), max_message_bytes=max_bytes,
                                         notifier=state.core.notifier)
            logger.info("serving %d tools on stdio", len(state.registry))
            await connection.serve(_stdin_lines(wire_in, max_bytes))
