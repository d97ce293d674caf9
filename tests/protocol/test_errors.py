"""`errors.to_wire`: every refusal as the era's wire error, and a back-pressure refusal during tools/call
preflight answered as 503 with Retry-After (HTTP, both eras) and the same JSON-RPC error on stdio."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_platform.app import create_app
from mcp_platform.errors import (
    InsufficientScope,
    InvalidParams,
    MethodNotAllowed,
    RateLimited,
    ResourceNotFound,
    StoreUnavailable,
    Unauthorized,
    to_wire,
)
from mcp_platform.transport.stdio import StdioConnection
from tests.support import JSON_HEADERS, asgi_client, make_settings, modern_headers, modern_request, open_session

pytestmark = pytest.mark.anyio


def test_an_unknown_exception_is_a_logged_internal_error_without_details(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="mcp_platform.errors"):
        reply = to_wire(RuntimeError("secret /etc/db-password"), modern=True, msg_id=3)
    body = json.loads(reply.body)
    assert reply.status == 200 and body == {"jsonrpc": "2.0", "id": 3, "error": {
        "code": -32603, "message": "Internal error; see the server log"}}
    assert b"secret" not in reply.body and "secret" in caplog.text


@pytest.mark.parametrize(("exc", "status", "code", "headers"), [
    (RateLimited(2.2, "requests with this token"), 429, -32029, {b"retry-after": b"3"}),
    (InsufficientScope("admin", "tool x"), 403, -32003, {b"www-authenticate": b'Bearer error="insufficient_scope", '
                                                         b'scope="admin", error_description="tool x needs the '
                                                         b"'admin' scope\""}),
    (StoreUnavailable("redis", "connection refused"), 503, -32603, {b"retry-after": b"5"}),
    (StoreUnavailable("audit log", "queue full", retry_after=1), 503, -32603, {b"retry-after": b"1"}),
    (Unauthorized(credentials_sent=False), 401, -32001, {b"www-authenticate": b'Bearer realm="mcp-platform"'}),
])
def test_refusals_carry_their_status_code_and_headers(exc: Exception, status: int, code: int,
                                                      headers: dict[bytes, bytes]) -> None:
    for modern in (False, True):
        reply = to_wire(exc, modern=modern, msg_id="r")
        assert reply.status == status and dict(reply.headers) == headers
        body = json.loads(reply.body)
        assert body["id"] == "r" and body["error"]["code"] == code


def test_the_era_decides_a_protocol_error_s_status() -> None:
    assert to_wire(InvalidParams("x"), modern=True).status == 400
    assert to_wire(InvalidParams("x"), modern=False).status == 400  # the message itself was not acceptable
    assert to_wire(InvalidParams("x"), modern=False, dispatched=True).status == 200  # a method's error
    missing = to_wire(ResourceNotFound("gone", {"uri": "x:///"}), modern=True, dispatched=True)
    assert json.loads(missing.body)["error"]["code"] == -32602
    assert json.loads(to_wire(ResourceNotFound("gone"), modern=False).body)["error"]["code"] == -32002
    allowed = to_wire(MethodNotAllowed("POST"), modern=True)
    assert (allowed.status, allowed.body, allowed.headers) == (405, b"", [(b"allow", b"POST")])


class Backpressure(StoreUnavailable):
    """Shaped like the audit log's refusal when its queue is full."""

    def __init__(self) -> None:
        super().__init__("audit log", "too many calls are waiting to be recorded", retry_after=2)


async def _refuse(principal: str, tool: str) -> None:
    raise Backpressure


async def test_store_unavailable_in_preflight_is_503_with_retry_after_in_every_transport(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), capabilities=[])
    async with asgi_client(app) as client:
        state = app.state.mcp
        state.hooks.before_tool_call.append(_refuse)
        arguments = {"name": "add", "arguments": {"a": 1, "b": 2}}
        modern = await client.post("/mcp", headers=modern_headers("tools/call", name="add"),
                                   json=modern_request("tools/call", arguments, msg_id=41))
        session = await open_session(client)
        handshake = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session}, json={
            "jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": arguments})

        written: list[dict[str, Any]] = []

        async def write(data: bytes) -> None:
            written.append(json.loads(data))

        async def lines() -> Any:
            yield json.dumps(modern_request("tools/call", arguments, msg_id=43)).encode()

        connection = StdioConnection(state.dispatcher, write, max_message_bytes=4096, notifier=state.core.notifier)
        with anyio.fail_after(10):
            await connection.serve(lines())
    for response, msg_id in ((modern, 41), (handshake, 42)):
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
        assert response.json()["id"] == msg_id and response.json()["error"]["code"] == -32603
        assert "audit log is unavailable" in response.json()["error"]["message"]
    assert written == [{"jsonrpc": "2.0", "id": 43, "error": modern.json()["error"]}]
