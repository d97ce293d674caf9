"""Tools that ask the client for input: server-to-client requests (handshake era) and input rounds with signed
request state (2026-07-28), through the official client, which answers both with the same callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest

from mcp_platform.app import create_app
from tests.support import asgi_client, make_settings, mcp_client, modern_headers, modern_meta, running_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(make_settings(tmp_path_factory.mktemp("ask")), capabilities=[])
    with running_server(app) as base:
        yield base + "/mcp"


async def _accept_name(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert params.message == "What is your name?"
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def _decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


async def _sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="forty-two"),
                                     model="test-model", stop_reason="endTurn")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_elicitation_round_trip(url: str, mode: str) -> None:
    async with mcp_client(url, mode, elicitation_callback=_accept_name) as client:
        result = await client.call_tool("greet_asked", {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Hello, Ada!")
    # 2026: the call ran twice (ask, then answer) and the state survived the round trip; handshake: once.
    assert text.endswith("(rounds: 2)" if mode != "legacy" else "(rounds: 1)")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_declined_elicitation_is_a_tool_error(url: str, mode: str) -> None:
    async with mcp_client(url, mode, elicitation_callback=_decline) as client:
        result = await client.call_tool("greet_asked", {})
    assert result.is_error is True


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sampling_round_trip(url: str, mode: str) -> None:
    async with mcp_client(url, mode, sampling_callback=_sample) as client:
        result = await client.call_tool("ask_model", {"question": "meaning of life?"})
    assert result.content[0].text == "model: forty-two"  # type: ignore[union-attr]


async def test_missing_client_capability_is_32021(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), capabilities=[])
    async with asgi_client(app) as client:
        response = await client.post("/mcp", headers=modern_headers("tools/call", name="ask_model"), json={
            "jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "ask_model", "arguments": {"question": "q"}, "_meta": modern_meta()}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32021 and error["data"] == {"requiredCapabilities": {"sampling": {}}}
    assert response.json()["id"] == 5


async def _round(client: httpx2.AsyncClient, msg_id: int, **retry: Any) -> httpx2.Response:
    """One `tools/call greet_asked` from a client that declares elicitation; `retry` adds the round's
    `requestState` and `inputResponses`."""
    meta = modern_meta()
    meta["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {}}
    return await client.post("/mcp", headers=modern_headers("tools/call", name="greet_asked"), json={
        "jsonrpc": "2.0", "id": msg_id, "method": "tools/call",
        "params": {"name": "greet_asked", "arguments": {}, "_meta": meta, **retry}})


async def _first_round(client: httpx2.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await _round(client, 1)).json()["result"]
    assert result["resultType"] == "input_required"
    assert result["inputRequests"]["user_name"]["method"] == "elicitation/create"
    return result


# The second: a changed signature (swapping the last two characters for "AA" would change nothing 1 time in 4096).
@pytest.mark.parametrize("tamper", [lambda s: s + "-TAMPERED", lambda s: s[:-2] + ("AA" if s[-2:] != "AA" else "BB"),
                                    lambda s: "x.y",
                                    lambda s: 12345, lambda s: "", lambda s: "a" * 40000])
async def test_tampered_request_state_is_refused(tmp_path: Path, tamper: Any) -> None:
    app = create_app(make_settings(tmp_path), capabilities=[])
    async with asgi_client(app) as client:
        first = await _first_round(client)
        response = await _round(client, 2, requestState=tamper(first["requestState"]),
                                inputResponses={"user_name": {"action": "accept", "content": {"name": "Eve"}}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602


@pytest.mark.parametrize("answer", [12345, None, "accept", {"action": "maybe"}, [1, 2]])
async def test_malformed_answers_ask_again(tmp_path: Path, answer: Any) -> None:
    app = create_app(make_settings(tmp_path), capabilities=[])
    async with asgi_client(app) as client:
        first = await _first_round(client)
        response = await _round(client, 2, requestState=first["requestState"], inputResponses={"user_name": answer})
    assert response.json()["result"]["resultType"] == "input_required"
