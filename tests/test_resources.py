"""@resource: template variables validated like tool arguments, the context found by the shared inspection, and
every bad value a clean invalid-params error naming the variable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_platform import ToolContext, resource
from mcp_platform.app import create_app
from mcp_platform.discovery import discover
from mcp_platform.errors import ConfigError
from mcp_platform.resources import Resources, spec_of_resource
from tests.support import JSON_HEADERS, asgi_client, make_settings, open_session

pytestmark = pytest.mark.anyio

QUALIFIED = Path(__file__).parent / "fixtures" / "qualified_tools"


@pytest.fixture
async def read(tmp_path: Path) -> AsyncIterator[Callable[[str], Any]]:
    """`resources/read` over a handshake session, returning the JSON-RPC reply."""
    app = create_app(make_settings(tmp_path, tools={"dirs": [QUALIFIED]}), capabilities=[])
    async with asgi_client(app) as client:
        session = await open_session(client)

        async def call(uri: str) -> dict[str, Any]:
            response = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session}, json={
                "jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": uri}})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        yield call


async def test_template_variables_arrive_typed_with_the_request_context(read: Callable[[str], Any]) -> None:
    reply = await read("qualified://orders/42/lines/open")
    contents = reply["result"]["contents"]
    assert contents[0]["mimeType"] == "application/json"
    assert json.loads(contents[0]["text"]) == {"order_id": 42, "status": "open", "caller": "env-token",
                                               "target": "resource:qualified://orders/42/lines/open"}


@pytest.mark.parametrize(("uri", "variable"), [
    ("qualified://orders/abc/lines/open", "order_id"),
    ("qualified://orders/0/lines/open", "order_id"),
    ("qualified://orders/-1/lines/open", "order_id"),
    ("qualified://orders/4.5/lines/open", "order_id"),
    ("qualified://orders/1000001/lines/open", "order_id"),
    ("qualified://orders/" + "9" * 4000 + "/lines/open", "order_id"),
    ("qualified://orders/%20/lines/open", "order_id"),
    ("qualified://orders/1/lines/closed", "status"),
    ("qualified://orders/1/lines/OPEN", "status"),
    ("qualified://orders/1/lines/open%00", "status"),
    ("qualified://orders/1/lines/%C3%B6pen", "status"),
    ("qualified://notes/..%2F..%2Fetc%2Fpasswd", "slug"),
    ("qualified://notes/..", "slug"),
    ("qualified://notes/%C3%A9t%C3%A9", "slug"),
    ("qualified://notes/" + "a" * 41, "slug"),
    ("qualified://notes/a%0Ab", "slug"),
])
async def test_a_bad_variable_is_invalid_params_naming_it(read: Callable[[str], Any], uri: str,
                                                          variable: str) -> None:
    error = (await read(uri))["error"]
    assert error["code"] == -32602
    assert error["message"].startswith("Invalid params: resource ")
    assert f"{variable}: " in error["message"]
    assert "Traceback" not in json.dumps(error) and len(error["message"]) < 300


@pytest.mark.parametrize(("uri", "text"), [
    ("qualified://echo/..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
    ("qualified://echo/%C3%A9t%C3%A9", "été"),
    ("qualified://echo/日本語", "日本語"),
    ("qualified://echo/%FF", "\ufffd"),
    ("qualified://echo/" + "x" * 4000, "x" * 4000),
])
async def test_an_unconstrained_str_variable_is_delivered_decoded_and_untouched(read: Callable[[str], Any],
                                                                              uri: str, text: str) -> None:
    # A variable is a string, not a path: what a function does with it is up to its type hint and its code.
    contents = (await read(uri))["result"]["contents"]
    assert json.loads(contents[0]["text"]) == {"text": text}


async def test_an_allowed_slug_and_an_unknown_uri(read: Callable[[str], Any]) -> None:
    assert (await read("qualified://notes/release-notes-2"))["result"]["contents"][0]["text"] == \
        "note release-notes-2"
    assert (await read("qualified://orders/1/lines"))["error"]["code"] == -32002


async def test_a_read_without_a_request_gives_the_context_parameter_none() -> None:
    resources = Resources()
    for spec in discover([QUALIFIED]).resources:
        resources.add(spec)
    contents = await resources.read("qualified://orders/7/lines/shipped")
    assert json.loads(contents[0]["text"])["caller"] is None


def test_template_variables_and_parameters_must_match() -> None:
    with pytest.raises(ConfigError, match="variables the function does not take: missing"):
        @resource("x://items/{missing}")
        def no_such(item: str) -> str:
            return ""
    with pytest.raises(ConfigError, match="parameters without a default must be variables of 'x://items': item"):
        @resource("x://items")
        def needs_item(item: str) -> str:
            return ""
    with pytest.raises(ConfigError, match="names a variable twice"):
        @resource("x://items/{a}/{a}")
        def twice(a: str) -> str:
            return ""
    with pytest.raises(ConfigError, match=r"\*args"):
        @resource("x://items/{a}")
        def splat(a: str, **rest: str) -> str:
            return ""

    @resource("x://items/{item}", description="An item")
    def optional_extra(ctx: ToolContext, item: str, page: int = 1) -> str:
        return f"{item} {page}"

    spec = spec_of_resource(optional_extra)
    assert spec is not None and spec.signature.context == "ctx" and spec.signature.names == ("item", "page")
