"""@prompt: arguments and context read by the shared signature inspection, arguments validated like a tool's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.discovery import discover
from mcp_platform.errors import InvalidParams
from mcp_platform.prompts import Prompts, PromptSpec
from tests.support import JSON_HEADERS, asgi_client, make_settings, open_session

pytestmark = pytest.mark.anyio

QUALIFIED = Path(__file__).parent / "fixtures" / "qualified_tools"


def _prompts() -> dict[str, PromptSpec]:
    found = discover([QUALIFIED])
    assert found.failures == {}
    return {spec.name: spec for spec in found.prompts}


def test_a_qualified_postponed_context_annotation_is_not_an_argument() -> None:
    # `ctx: mcp_platform.ToolContext` under `from __future__ import annotations` is the string
    # "mcp_platform.ToolContext" until resolved: compared as written, it became a required argument.
    prompts = _prompts()
    assert prompts["briefing"].arguments == ({"name": "topic", "required": True, "description": "What to brief on."},)
    assert prompts["briefing"].context_param == "ctx"
    assert prompts["annotated_briefing"].arguments == ({"name": "topic", "required": False},)
    assert prompts["annotated_briefing"].context_param == "ctx"


async def _rpc(client: httpx2.AsyncClient, session: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session},
                                 json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_prompt_with_a_qualified_context_gets_the_request_context(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, tools={"dirs": [QUALIFIED]}), capabilities=[])
    async with asgi_client(app) as client:
        session = await open_session(client)
        listed = (await _rpc(client, session, "prompts/list", {}))["result"]["prompts"]
        assert {p["name"]: p["arguments"] for p in listed}["briefing"] == [
            {"name": "topic", "required": True, "description": "What to brief on."}]
        got = await _rpc(client, session, "prompts/get", {"name": "briefing", "arguments": {"topic": "cats"}})
        assert got["result"]["messages"][0]["content"]["text"] == "env-token asks about cats"
        got = await _rpc(client, session, "prompts/get", {"name": "annotated_briefing", "arguments": {}})
        assert got["result"]["messages"][0]["content"]["text"] == "prompt:annotated_briefing: everything"
        refused = await _rpc(client, session, "prompts/get", {"name": "briefing", "arguments": {"ctx": "x",
                                                                                              "topic": "t"}})
        assert refused["error"]["code"] == -32602 and "unexpected argument 'ctx'" in refused["error"]["message"]
        called = await _rpc(client, session, "tools/call", {"name": "whoami", "arguments": {}})
        assert called["result"]["content"][0]["text"] == "env-token"


async def test_prompt_arguments_are_validated_against_their_hints() -> None:
    prompts = Prompts()
    prompts.add(_prompts()["sized_briefing"])
    rendered = await prompts.render("sized_briefing", {"count": "21", "tone": "long"})
    assert rendered["messages"][0]["content"]["text"] == "42 long"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"count": "many"}, "count: Input should be a valid integer"),
        ({"count": "1", "tone": "medium"}, "tone: Input should be 'short' or 'long'"),
        ({"count": "9" * 5000}, "count:"),
        ({}, "missing argument 'count'"),
        ({"count": "1", "extra": "x"}, "unexpected argument 'extra'"),
        ({"count": 1}, "argument values must be strings")]
    for arguments, problem in cases:
        with pytest.raises(InvalidParams) as caught:
            await prompts.render("sized_briefing", arguments)
        assert problem in caught.value.message
        assert len(caught.value.message) < 300  # names the argument; never echoes a huge value
