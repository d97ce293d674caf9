"""The stdio transport: newline-delimited JSON-RPC on stdin/stdout, for clients that launch the server as a local
process (Claude Desktop, and any client configured with a command).

The same `Dispatcher` as `/mcp` answers, with no HTTP auth: the caller is the local user who started the process,
so every request runs as `ANONYMOUS` (the MCP spec: a stdio server takes credentials from its environment, not
from the protocol). As in the official SDK, the first request fixes the connection's era: `initialize` opens a
handshake-era session (ping, logging/setLevel, server-to-client requests for elicitation and sampling); a request
carrying the 2026-07-28 `_meta` envelope opens a modern connection (`server/discover`, input rounds; the header
rung of the ladder is skipped, stdio has no headers). `notifications/cancelled` cancels a running call in both
eras, since stdio has no response stream to close. List changes reach a handshake-era client once it has
initialized, and a 2026-07-28 client through `subscriptions/listen` (which runs until cancelled).

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Literal

import anyio.to_thread
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp_types import LOG_LEVEL_META_KEY
from pydantic_core import to_json

from mcp_platform.auth_types import ANONYMOUS, Principal
from mcp_platform.errors import (
    HEADER_MISMATCH,
    UNSUPPORTED_PROTOCOL_VERSION,
    HeaderMismatch,
    InvalidParams,
    InvalidRequest,
    ProtocolError,
    ToolError,
    UnsupportedProtocolVersion,
    to_wire,
)
from mcp_platform.protocol import jsonrpc
from mcp_platform.protocol.dispatch import Call, Dispatcher
from mcp_platform.protocol.eras import MODERN_VERSIONS, is_modern
from mcp_platform.protocol.sessions import SessionData
from mcp_platform.stores.base import Notifier
from mcp_platform.transport.streams import LIST_CHANGED, SUBSCRIPTION_ID_KEY, listen_filter

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["StdioConnection", "serve_stdio"]

logger = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]
"""Writes one encoded message, newline included, to the client."""


def _ladder_error(rejection: InboundLadderRejection) -> ProtocolError:
    kinds: dict[int, type[ProtocolError]] = {HEADER_MISMATCH: HeaderMismatch,
                                             UNSUPPORTED_PROTOCOL_VERSION: UnsupportedProtocolVersion}
    return kinds.get(rejection.code, InvalidParams)(rejection.message, rejection.data)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


class StdioConnection:
    """One client on one pair of pipes: reads messages, runs requests as tasks, writes replies."""

    def __init__(self, dispatcher: Dispatcher, write: Write, *, max_message_bytes: int,
                 principal: Principal = ANONYMOUS, notifier: Notifier | None = None) -> None:
        self._dispatcher = dispatcher
        self._notifier = notifier
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
        try:
            async for line in lines:
                await self.receive(line)
        except asyncio.CancelledError:
            for task in list(self._inflight.values()):
                task.cancel()
            raise
        finally:
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
        if len(line) > self._max:
            await self._send_error(None, InvalidRequest(f"Invalid Request: a message may be at most {self._max} "
                                                        "bytes"))
            return
        try:
            decoded = jsonrpc.parse_json(line)
        except ProtocolError as exc:
            await self._send_error(None, exc)
            return
        if isinstance(decoded, list):
            await self._send_error(None, InvalidRequest("Invalid Request: JSON-RPC batches are not accepted"))
            return
        try:
            message = jsonrpc.classify(decoded)
        except ProtocolError as exc:
            msg_id = decoded.get("id") if isinstance(decoded, dict) else None
            await self._send_error(msg_id if _valid_id(msg_id) else None, exc)
            return
        if message.kind == "response":
            self._route_reply(message)
        elif message.kind == "notification":
            self._notification(message)
        else:
            await self._request(message)

    # -- requests ------------------------------------------------------------------------------------------------

    async def _request(self, message: jsonrpc.Message) -> None:
        assert message.id is not None
        if message.id in self._inflight:
            await self._send_error(message.id, InvalidRequest(f"Invalid Request: id {message.id!r} is already in "
                                                              "use by a running request"))
            return
        if message.method == "initialize":
            await self._initialize(message)
            return
        enveloped = is_modern(None, message.raw)
        if self._era is None and enveloped:
            self._era = "modern"
        try:
            if self._era == "modern":
                call = self._modern_call(message)
            elif self._era == "handshake":
                if enveloped:
                    raise InvalidRequest("Invalid Request: this connection began with initialize (handshake era); "
                                         "requests carrying the 2026-07-28 _meta envelope are not accepted on it")
                call = self._handshake_call(message)
            elif message.method == "ping":
                await self._send_result(message.id, b"{}")
                return
            else:
                raise InvalidRequest("Invalid Request: send initialize first, or a 2026-07-28 request with its "
                                     "_meta envelope")
        except ProtocolError as exc:
            await self._send_error(message.id, exc)
            return
        work = self._listen(call) if call.modern and call.method == "subscriptions/listen" else self._run(call)
        task = asyncio.create_task(work, name=f"mcp-stdio {call.method} {call.id!r}")
        self._inflight[call.id] = task
        task.add_done_callback(functools.partial(self._forget, call.id))

    def _forget(self, key: jsonrpc.RequestId, task: asyncio.Task[None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _initialize(self, message: jsonrpc.Message) -> None:
        assert message.id is not None
        if self._era == "modern":
            requested = message.params.get("protocolVersion")
            await self._send_error(message.id, UnsupportedProtocolVersion(
                "Unsupported protocol version: this connection serves 2026-07-28; initialize is not accepted on it",
                {"supported": list(MODERN_VERSIONS), "requested": requested if isinstance(requested, str) else ""}))
            return
        if self._session is not None:
            await self._send_error(message.id, InvalidRequest("Invalid Request: the session is already initialized"))
            return
        # Inline, not a task: requests on the following lines must already see the session.
        result, self._session = self._dispatcher.initialize(message.params, self._principal)
        self._era = "handshake"
        await self._send_result(message.id, to_json(result))
        if self._notifier is not None:
            self._changes = asyncio.create_task(self._forward_changes(self._notifier, self._session))

    def _handshake_call(self, message: jsonrpc.Message) -> Call:
        session = self._session
        assert session is not None and message.id is not None
        call = Call(message.id, message.method, message.params, self._principal, False, session.protocol_version,
                    session.client_capabilities, log_level=session.log_level or "info", session_id="stdio",
                    session=session)
        call.server_request = self._server_request
        return call

    def _modern_call(self, message: jsonrpc.Message) -> Call:
        assert message.id is not None
        verdict = classify_inbound_request(message.raw, headers=None, supported_modern_versions=MODERN_VERSIONS)
        if isinstance(verdict, InboundLadderRejection):
            raise _ladder_error(verdict)
        capabilities = verdict.client_capabilities
        if not isinstance(capabilities, dict):
            raise InvalidParams("Invalid params: io.modelcontextprotocol/clientCapabilities must be an object")
        level = message.params["_meta"].get(LOG_LEVEL_META_KEY)
        return Call(message.id, message.method, message.params, self._principal, True, verdict.protocol_version,
                    capabilities, log_level=level if isinstance(level, str) else None)

    async def _run(self, call: Call) -> None:
        call.notify = self._notify
        dispatcher = self._dispatcher
        try:
            if call.method == "tools/call":
                prepared = await dispatcher.preflight_tool(call)
                body = dispatcher.finish(call, await dispatcher.run_tool(call, prepared))
            else:
                body = await dispatcher.handle(call)
        except asyncio.CancelledError:
            return  # cancelled by the client (or by shutdown): no reply, as the spec asks
        except Exception as exc:
            await self._send_error(call.id, exc)
            return
        await self._send_result(call.id, body)

    # -- change notifications -------------------------------------------------------------------------------------

    async def _forward_changes(self, notifier: Notifier, session: SessionData) -> None:
        """Handshake era: list changes, and updates of the resources the client subscribed to."""
        async for event in notifier.subscribe():
            kind = event.get("kind")
            if kind in LIST_CHANGED:
                await self._notify(LIST_CHANGED[kind], {})
            elif kind == "resource" and event.get("uri") in session.subscriptions:
                await self._notify("notifications/resources/updated", {"uri": event["uri"]})

    async def _listen(self, call: Call) -> None:
        """2026-07-28 `subscriptions/listen`: an acknowledgement, then the granted kinds, until cancelled."""
        try:
            granted = listen_filter(call.params)
        except ProtocolError as exc:
            await self._send_error(call.id, exc)
            return
        meta = {SUBSCRIPTION_ID_KEY: call.id}
        await self._notify("notifications/subscriptions/acknowledged", {"notifications": granted, "_meta": meta})
        if self._notifier is None:
            return
        kinds = {kind for key, kind in (("toolsListChanged", "tools"), ("promptsListChanged", "prompts"),
                                        ("resourcesListChanged", "resources")) if granted.get(key)}
        uris = set(granted.get("resourceSubscriptions", ()))
        with contextlib.suppress(asyncio.CancelledError):
            async for event in self._notifier.subscribe():
                kind = event.get("kind")
                if kind in kinds:
                    await self._notify(LIST_CHANGED[kind], {"_meta": meta})
                elif kind == "resource" and event.get("uri") in uris:
                    await self._notify("notifications/resources/updated", {"uri": event["uri"], "_meta": meta})

    # -- notifications and server-to-client requests --------------------------------------------------------------

    def _notification(self, message: jsonrpc.Message) -> None:
        if message.method == "notifications/cancelled":
            request_id = message.params.get("requestId")
            if (isinstance(request_id, str | int) and not isinstance(request_id, bool)
                    and (task := self._inflight.get(request_id)) is not None):
                task.cancel()
        elif message.method == "notifications/initialized" and self._session is not None:
            self._session.initialized = True
        # Anything else (roots/list_changed, the client's own progress) needs no action here.

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

    def _route_reply(self, message: jsonrpc.Message) -> None:
        waiting = self._replies.get(str(message.id))
        if waiting is None or waiting.done():
            logger.debug("ignoring a response to unknown request %r", message.id)
            return
        result, error = message.raw.get("result"), message.raw.get("error")
        if isinstance(result, dict):
            waiting.set_result(result)
        else:
            reason = error.get("message") if isinstance(error, dict) else None
            waiting.set_exception(ToolError(f"The client refused the request: {reason or 'no reason given'}"))

    # -- writing --------------------------------------------------------------------------------------------------

    async def _send_result(self, msg_id: jsonrpc.RequestId, result: bytes) -> None:
        await self._write(jsonrpc.result_bytes(msg_id, result))

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
            connection = StdioConnection(state.endpoint.dispatcher, _stdout_writer(wire_out),
                                         max_message_bytes=max_bytes, notifier=state.backends.find(Notifier))
            logger.info("serving %d tools on stdio", len(state.registry))
            await connection.serve(_stdin_lines(wire_in, max_bytes))
