"""The stdio connection in-process, fed line by line: malformed input, era rules, concurrency, cancellation,
server-to-client requests and EOF. The dispatcher, registry and lifespan are the real ones."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_platform.app import create_app
from mcp_platform.stores.base import Notifier
from mcp_platform.transport.stdio import StdioConnection, _read_lines
from tests.support import make_settings, modern_meta

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                   "clientInfo": {"name": "tests", "version": "1"}}}


class Peer:
    """The client's end: lines in, decoded messages out."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.notifier: Notifier | None = None

    async def lines(self) -> AsyncIterator[bytes]:
        while (line := await self.inbox.get()) is not None:
            yield line

    async def write(self, data: bytes) -> None:
        assert data.endswith(b"\n") and data.count(b"\n") == 1  # one message per line
        self.outbox.put_nowait(json.loads(data))

    def send(self, message: dict[str, Any] | bytes) -> None:
        self.inbox.put_nowait(message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n")

    async def next(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            return await self.outbox.get()

    async def reply_to(self, msg_id: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The reply to `msg_id`, and every other message that came before it."""
        before = []
        while (message := await self.next()).get("id") != msg_id or "method" in message:
            before.append(message)
        return message, before

    async def initialize(self) -> None:
        self.send(INIT)
        assert "result" in await self.next()
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


@asynccontextmanager
async def connected(tmp_path: Path, max_bytes: int = 4096) -> AsyncIterator[Peer]:
    app = create_app(make_settings(tmp_path), capabilities=[])
    peer = Peer()
    async with app.router.lifespan_context(app):
        state = app.state.mcp
        peer.notifier = state.core.notifier
        connection = StdioConnection(state.endpoint.dispatcher, peer.write, max_message_bytes=max_bytes,
                                     notifier=peer.notifier)
        serving = asyncio.create_task(connection.serve(peer.lines()))
        try:
            yield peer
        finally:
            peer.inbox.put_nowait(None)
            with anyio.fail_after(10):
                await serving


def _call(msg_id: Any, name: str, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, **params}}


async def test_malformed_lines_get_errors_and_the_connection_goes_on(tmp_path: Path) -> None:
    hostile = [b"{not json\n", b"[1, 2]\n", b'"a string"\n', b'{"jsonrpc":"2.0","id":true,"method":"ping"}\n',
               b'{"jsonrpc":"1.0","id":1,"method":"ping"}\n', b'{"jsonrpc":"2.0","id":1,"method":""}\n',
               b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}\n', b"\xff\xfe\x00\n", b"x" * 5000 + b"\n",
               b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}\n', b"[]\n"]
    async with connected(tmp_path) as peer:
        for line in hostile:
            peer.send(line)
        peer.send(b"   \n")  # blank lines are ignored
        peer.send({"jsonrpc": "2.0", "id": "after", "method": "ping"})
        errors = [await peer.next() for _ in hostile]
        survivor = await peer.next()
    codes = [e["error"]["code"] for e in errors]
    assert codes == [-32700, -32600, -32600, -32600, -32600, -32600, -32602, -32700, -32600, -32600, -32600]
    assert all(e["id"] is None for e in errors[:4])
    assert errors[4]["id"] == errors[5]["id"] == 1  # a valid id is echoed even when the rest is wrong
    assert survivor == {"jsonrpc": "2.0", "id": "after", "result": {}}


async def test_requests_before_initialize_are_refused_except_ping(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        refused = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        pong = await peer.next()
    assert refused["error"]["code"] == -32600 and "initialize" in refused["error"]["message"]
    assert pong["result"] == {}


async def test_initialize_twice_and_enveloped_requests_on_a_handshake_connection_are_refused(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send({**INIT, "id": 1})
        again = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": modern_meta()}})
        enveloped = await peer.next()
    assert again["error"]["code"] == -32600 and "already initialized" in again["error"]["message"]
    assert enveloped["error"]["code"] == -32600 and "handshake" in enveloped["error"]["message"]


async def test_a_modern_connection_answers_discover_and_refuses_initialize(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": modern_meta()}})
        discovered = await peer.next()
        peer.send(INIT)
        initialize = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"_meta": modern_meta()}})
        ping = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}})
        bare = await peer.next()
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
        peer.send({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": meta}})
        half = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 5, "method": "tools/list",
                   "params": {"_meta": modern_meta(version="2099-01-01")}})
        future = await peer.next()
    assert "2026-07-28" in discovered["result"]["supportedVersions"]
    assert initialize["error"]["code"] == -32022 and initialize["error"]["data"]["supported"] == ["2026-07-28"]
    assert ping["error"]["code"] == -32601  # ping does not exist at 2026-07-28
    assert bare["error"]["code"] == -32602 and half["error"]["code"] == -32602  # envelope missing or incomplete
    assert future["error"]["code"] == -32022 and future["error"]["data"]["requested"] == "2099-01-01"


async def test_each_request_runs_on_its_own_so_a_fast_one_overtakes_a_slow_one(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send(_call("slow", "steps", {"count": 2, "delay": 0.3}))
        peer.send(_call("fast", "add", {"a": 1, "b": 2}))
        slow, before = await peer.reply_to("slow")
    fast = [m for m in before if m.get("id") == "fast"]
    assert fast and fast[0]["result"]["structuredContent"] == {"total": 3}
    assert slow["result"]["content"][0]["text"] == "did 2 steps"


async def test_progress_and_log_notifications_come_before_the_result(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send(_call(7, "steps", {"count": 2}, _meta={"progressToken": "tok"}))
        result, before = await peer.reply_to(7)
    methods = [m["method"] for m in before]
    assert methods.count("notifications/progress") == 2 and methods.count("notifications/message") == 2
    assert [m["params"]["progress"] for m in before if m["method"] == "notifications/progress"] == [1, 2]
    assert result["result"]["isError"] is False


async def test_notifications_cancelled_stops_the_call_and_no_result_is_sent(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send(_call(2, "steps", {"count": 100, "delay": 0.1}, _meta={"progressToken": "p"}))
        while (await peer.next()).get("method") != "notifications/progress":
            pass
        for hostile in (True, None, {"id": 2}, "2"):  # ids that name no running call change nothing
            peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": hostile}})
        peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}})
        peer.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
        _, before = await peer.reply_to(3)
        peer.send({"jsonrpc": "2.0", "id": 4, "method": "ping"})
        _, after = await peer.reply_to(4)
    assert all(m.get("id") != 2 for m in before + after)
    assert all(m.get("method") != "notifications/progress" for m in after)


async def test_a_request_id_in_use_is_refused(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send(_call(5, "steps", {"count": 2, "delay": 0.3}))
        peer.send(_call(5, "add", {"a": 1, "b": 1}))
        refused = await peer.next()
        done, _ = await peer.reply_to(5)
    assert refused["id"] == 5 and refused["error"]["code"] == -32600 and "in use" in refused["error"]["message"]
    assert done["result"]["content"][0]["text"] == "did 2 steps"


async def test_elicitation_goes_to_the_client_and_its_answer_comes_back(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send({"jsonrpc": "2.0", "id": 99, "result": {"action": "accept"}})  # answers nothing: ignored
        peer.send(_call(1, "greet_asked", {}))
        asked = await peer.next()
        assert asked["method"] == "elicitation/create" and isinstance(asked["id"], str)
        peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"name": "Lin"}}})
        answered, _ = await peer.reply_to(1)
        peer.send(_call(2, "greet_asked", {}))
        asked = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": asked["id"], "error": {"code": -1, "message": "user closed the dialog"}})
        refused, _ = await peer.reply_to(2)
    assert answered["result"]["content"][0]["text"] == "Hello, Lin! (rounds: 1)"
    assert refused["result"]["isError"] is True
    assert "user closed the dialog" in refused["result"]["content"][0]["text"]


async def test_eof_ends_the_connection_and_fails_questions_nobody_can_answer(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send(_call(1, "greet_asked", {}))
        assert (await peer.next())["method"] == "elicitation/create"
    # `connected` sent EOF and waited for the connection to end; the call still answered.
    result = peer.outbox.get_nowait()
    assert result["id"] == 1 and result["result"]["isError"] is True
    assert "closed the connection" in result["result"]["content"][0]["text"]


async def test_unknown_methods_and_bad_params_are_json_rpc_errors(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "no/such/method"})
        unknown = await peer.next()
        peer.send(_call(2, "no_such_tool", {}))
        no_tool = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": [1]}})
        bad_args = await peer.next()
        peer.send({"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel", "params": {"level": "loud"}})
        bad_level = await peer.next()
    assert unknown["error"]["code"] == -32601
    assert no_tool["error"]["code"] == -32602 and bad_args["error"]["code"] == -32602
    assert bad_level["error"]["code"] == -32602


async def test_log_level_set_by_the_client_filters_log_notifications(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "error"}})
        assert (await peer.next())["result"] == {}
        peer.send(_call(2, "steps", {"count": 2}))
        _, before = await peer.reply_to(2)
    assert before == []  # the info-level step logs are below "error"


async def test_list_changes_reach_an_initialized_client(tmp_path: Path) -> None:
    async with connected(tmp_path) as peer:
        await peer.initialize()
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        await peer.reply_to(1)  # the connection has processed `initialized` and is listening
        assert peer.notifier is not None
        await peer.notifier.publish({"kind": "tools"})
        changed = await peer.next()
    assert changed == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}}


def test_reading_lines_bounds_memory_and_skips_the_rest_of_an_overlong_line(tmp_path: Path) -> None:
    source = tmp_path / "stdin"
    source.write_bytes(b"short\n" + b"y" * 300_000 + b"\nnext\nlast without newline")
    fd = os.open(source, os.O_RDONLY)
    try:
        lines = list(_read_lines(fd, 100))
    finally:
        os.close(fd)
    assert lines[0] == b"short\n"
    assert lines[1] == b"y" * 101  # cut at the limit + 1, so the connection can refuse it
    assert lines[2:] == [b"next\n", b"last without newline"]
