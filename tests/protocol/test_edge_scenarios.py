"""One table of protocol scenarios, run through both transports: the same messages must get the same JSON-RPC
reply from stdio (`StdioConnection`, in process) and from `/mcp` (in-process ASGI). The HTTP status is checked on
its own, since stdio has none. Both transports share the protocol edge, so a row that differs is a bug there."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp.shared.inbound import NAME_BEARING_METHODS

from mcp_platform.app import create_app
from mcp_platform.auth_types import ANONYMOUS, Principal, expand_scopes
from mcp_platform.transport.stdio import StdioConnection
from tests.support import JSON_HEADERS, TOKEN, asgi_client, create_token, make_settings, modern_meta, open_session

pytestmark = pytest.mark.anyio

Era = Literal["handshake", "modern"]
Message = dict[str, Any] | list[Any] | bytes
HANDSHAKE_VERSION = "2025-11-25"


@dataclass(frozen=True)
class Scenario:
    name: str
    era: Era
    message: Message
    """Sent after the era is set up (handshake: initialize; modern: nothing on HTTP, a first enveloped request on
    stdio, whose first request fixes the connection's era). Raw bytes are sent as they are."""
    status: int
    """The HTTP status; 202 means no reply at all (stdio then writes nothing)."""
    result: dict[str, Any] | None = None
    """A subset the reply's `result` must contain."""
    error: tuple[int, str] | None = None
    """The reply's error code and a fragment of its message."""
    data: dict[str, Any] | None = None
    """A subset of the error's `data`."""
    scopes: tuple[str, ...] | None = None
    """Run as a caller with only these scopes (HTTP: a token made for them; stdio: that principal)."""


def request(method: str, params: dict[str, Any] | None = None, *, era: Era = "handshake", msg_id: Any = 1,
            meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params = dict(params or {})
    if era == "modern":
        params["_meta"] = modern_meta() if meta is None else meta
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def call(name: str, arguments: Any, *, era: Era = "handshake") -> dict[str, Any]:
    return request("tools/call", {"name": name, "arguments": arguments}, era=era)


SCENARIOS = [
    Scenario("unknown method", "handshake", request("no/such/method"), 200,
             error=(-32601, "Method not found: no/such/method")),
    Scenario("unknown method at 2026-07-28", "modern", request("no/such/method", era="modern"), 404,
             error=(-32601, "Method not found")),
    Scenario("ping is removed at 2026-07-28", "modern", request("ping", era="modern"), 404,
             error=(-32601, "Method not found: ping")),
    Scenario("logging/setLevel is removed at 2026-07-28", "modern",
             request("logging/setLevel", {"level": "info"}, era="modern"), 404, error=(-32601, "logging/setLevel")),
    Scenario("envelope without client capabilities", "modern",
             request("tools/list", era="modern", meta={"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
             400, error=(-32602, "clientCapabilities")),
    Scenario("envelope with an unsupported version", "modern",
             request("tools/list", era="modern", meta=modern_meta(version="2099-01-01")), 400,
             error=(-32022, "nsupported"), data={"supported": ["2026-07-28"], "requested": "2099-01-01"}),
    Scenario("params that are not an object", "handshake",
             {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": [1, 2]}, 400,
             error=(-32602, "params must be an object")),
    Scenario("tool arguments that are not an object", "handshake", call("add", [1]), 200,
             error=(-32602, "'arguments' must be an object")),
    Scenario("bad log level", "handshake", request("logging/setLevel", {"level": "loud"}), 200,
             error=(-32602, "level must be one of")),
    Scenario("unknown tool", "handshake", call("no_such_tool", {}), 200, error=(-32602, "Unknown tool: no_such_tool")),
    Scenario("unknown tool at 2026-07-28", "modern", call("no_such_tool", {}, era="modern"), 400,
             error=(-32602, "Unknown tool")),
    Scenario("tools/call", "handshake", call("add", {"a": 1, "b": 2}), 200,
             result={"isError": False, "structuredContent": {"total": 3}}),
    Scenario("tools/call at 2026-07-28", "modern", call("add", {"a": 20, "b": 22}, era="modern"), 200,
             result={"structuredContent": {"total": 42}, "resultType": "complete"}),
    Scenario("a tool that fails is an isError result", "handshake", call("fail", {"message": "broken on purpose"}),
             200, result={"isError": True, "content": [{"type": "text", "text": "broken on purpose"}]}),
    Scenario("a tool that crashes is an isError result without the details", "handshake", call("crash", {}), 200,
             result={"isError": True, "content": [{"type": "text", "text": "Tool crash failed with an internal error; "
                                                   "the details are in the server log."}]}),
    Scenario("arguments that fail validation are an isError result", "handshake", call("add", {"a": "x"}), 200,
             result={"isError": True}),
    Scenario("insufficient scope", "handshake", call("admin_thing", {}), 403,
             error=(-32003, "Forbidden: tool admin_thing needs the 'admin' scope"), data={"requiredScope": "admin"},
             scopes=("read",)),
    Scenario("insufficient scope at 2026-07-28", "modern", call("write_thing", {"value": "v"}, era="modern"), 403,
             error=(-32003, "'write' scope"), data={"requiredScope": "write"}, scopes=("read",)),
    Scenario("a boolean id", "handshake", b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', 400,
             error=(-32600, "id must be a string or an integer")),
    Scenario("a fractional id", "handshake", b'{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', 400,
             error=(-32600, "id must be")),
    # An oversized id is refused with a null id: echoing it would turn a 3 MB request into a 3 MB error reply.
    Scenario("a 3 MB string id is refused without an echo", "handshake",
             b'{"jsonrpc":"2.0","id":"' + b"x" * 3_000_000 + b'","method":"tools/list"}', 400,
             error=(-32600, "id is longer than 256 characters")),
    Scenario("an integer id beyond 2**63 is refused without an echo", "handshake",
             b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % 2**63, 400,
             error=(-32600, "signed 64-bit integer")),
    Scenario("a negative integer id beyond -2**63 is refused", "handshake",
             b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % (-(2**63) - 1), 400,
             error=(-32600, "signed 64-bit integer")),
    Scenario("a 4000-digit integer id is refused without an echo", "handshake",
             b'{"jsonrpc":"2.0","id":' + b"9" * 4000 + b',"method":"tools/list"}', 400,
             error=(-32600, "signed 64-bit integer")),
    Scenario("a 3 MB string id at 2026-07-28 is refused without an echo", "modern",
             json.dumps(request("tools/list", era="modern", msg_id="z" * 3_000_000)).encode(), 400,
             error=(-32600, "id is longer than 256 characters")),
    Scenario("an integer id beyond 2**63 at 2026-07-28 is refused without an echo", "modern",
             json.dumps(request("tools/list", era="modern", msg_id=2**64)).encode(), 400,
             error=(-32600, "signed 64-bit integer")),
    Scenario("a number too long to parse is a parse error", "handshake",
             b'{"jsonrpc":"2.0","id":' + b"9" * 100_000 + b',"method":"tools/list"}', 400,
             error=(-32700, "Parse error")),
    Scenario("the largest 64-bit integer id is echoed", "handshake", request("ping", msg_id=2**63 - 1), 200,
             result={}),
    Scenario("a 256-character string id is echoed", "handshake", request("ping", msg_id="i" * 256), 200,
             result={}),
    Scenario("an oversized id on an otherwise invalid request is not echoed", "handshake",
             b'{"jsonrpc":"2.0","id":"' + b"y" * 300 + b'","method":"ping","params":[]}', 400,
             error=(-32600, "id is longer than 256 characters")),
    Scenario("not JSON", "handshake", b'{"jsonrpc": "2.0", "id": 1, "method": "tools/li', 400,
             error=(-32700, "Parse error")),
    Scenario("a batch", "modern", [request("tools/list", era="modern"), request("tools/list", era="modern", msg_id=2)],
             400, error=(-32600, "batches are not accepted")),
    Scenario("notifications/cancelled for no running call", "handshake",
             {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}, 202),
    Scenario("a response to no request of ours", "handshake", {"jsonrpc": "2.0", "id": 99, "result": {}}, 202),
    Scenario("ping", "handshake", request("ping"), 200, result={}),
    Scenario("server/discover", "modern", request("server/discover", era="modern"), 200,
             result={"capabilities": {"tools": {"listChanged": True}, "logging": {}, "completions": {},
                                      "resources": {"subscribe": True, "listChanged": True},
                                      "prompts": {"listChanged": True}}}),
    Scenario("unknown prompt", "modern", request("prompts/get", {"name": "nope", "arguments": {}}, era="modern"),
             400, error=(-32602, "nope")),
]


# -- the two transports ---------------------------------------------------------------------------------------------


class StdioPeer:
    """The client's end of a `StdioConnection`: lines in, decoded messages out."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def lines(self) -> AsyncIterator[bytes]:
        while (line := await self.inbox.get()) is not None:
            yield line

    async def write(self, data: bytes) -> None:
        self.outbox.put_nowait(json.loads(data))

    def send(self, message: Message) -> None:
        self.inbox.put_nowait(message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n")

    async def next(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            return await self.outbox.get()


async def via_stdio(app: Any, scenario: Scenario, principal: Principal) -> dict[str, Any] | None:
    state = app.state.mcp
    peer = StdioPeer()
    connection = StdioConnection(state.dispatcher, peer.write, max_message_bytes=8 * 1024 * 1024, principal=principal,
                                 notifier=state.core.notifier)
    serving = asyncio.create_task(connection.serve(peer.lines()))
    try:
        if scenario.era == "handshake":
            peer.send(request("initialize", {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
                                             "clientInfo": {"name": "tests", "version": "1"}}, msg_id="init"))
            assert "result" in await peer.next()
            peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        else:
            peer.send(request("server/discover", era="modern", msg_id="era"))
            assert "result" in await peer.next()
        peer.send(scenario.message)
        # A request after it: when it is the first reply, the scenario's message got none.
        peer.send(request("tools/list", era=scenario.era, msg_id="after"))
        reply = await peer.next()
        if reply.get("id") == "after":
            return None
        assert (await peer.next())["id"] == "after"
        return reply
    finally:
        peer.inbox.put_nowait(None)
        with anyio.fail_after(10):
            await serving


def _modern_headers(message: Message) -> dict[str, str]:
    """The routing headers a 2026-07-28 client mirrors from its message."""
    if not isinstance(message, dict):
        return {"mcp-protocol-version": "2026-07-28"}
    params = message.get("params", {})
    headers = {"mcp-method": message["method"],
               "mcp-protocol-version": params["_meta"].get("io.modelcontextprotocol/protocolVersion", "2026-07-28")}
    if (key := NAME_BEARING_METHODS.get(message["method"])) is not None:
        headers["mcp-name"] = str(params[key])
    return headers


async def via_http(client: httpx2.AsyncClient, scenario: Scenario) -> tuple[int, dict[str, Any] | None]:
    headers = dict(JSON_HEADERS)
    if scenario.era == "handshake":
        headers["mcp-session-id"] = await open_session(client, HANDSHAKE_VERSION)
        headers["mcp-protocol-version"] = HANDSHAKE_VERSION
    else:
        headers.update(_modern_headers(scenario.message))
    message = scenario.message
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    response = await client.post("/mcp", headers=headers, content=body)
    reply: dict[str, Any] | None = response.json() if response.content else None
    return response.status_code, reply


# -- the test -------------------------------------------------------------------------------------------------------


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_both_transports_give_the_same_reply(tmp_path: Path, scenario: Scenario) -> None:
    settings = make_settings(tmp_path)
    token, principal = TOKEN, ANONYMOUS
    if scenario.scopes is not None:
        token = await create_token(settings, "limited", list(scenario.scopes))
        principal = Principal("limited", expand_scopes(scenario.scopes))
    app = create_app(settings, capabilities=[])
    async with asgi_client(app, token=token) as client:
        status, http_reply = await via_http(client, scenario)
        stdio_reply = await via_stdio(app, scenario, principal)

    assert status == scenario.status, http_reply
    assert stdio_reply == http_reply
    if scenario.status == 202:
        assert http_reply is None
        return
    assert http_reply is not None
    sent_id = scenario.message.get("id") if isinstance(scenario.message, dict) else None
    assert http_reply["id"] == sent_id
    if scenario.result is not None:
        assert _contains(http_reply.get("result"), scenario.result), http_reply
    else:
        assert scenario.error is not None
        code, fragment = scenario.error
        error = http_reply["error"]
        assert error["code"] == code and fragment in error["message"], error
        if scenario.data is not None:
            assert _contains(error.get("data"), scenario.data), error
