"""JSON-RPC 2.0 framing: parse a POST body into messages, and serialise replies (errors: `errors.to_wire`).

Parsing is strict because every field reaches dispatch: ids are strings (at most 256 characters) or signed 64-bit
integers (never null, bool or float), `params` is an object, `method` a non-empty string. Anything else is
`InvalidRequest` before any handler sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic_core import from_json, to_json

from mcp_platform.errors import InvalidParams, InvalidRequest, ParseError

__all__ = ["Message", "RequestId", "classify", "encode", "echoable_id", "parse_json", "result_bytes"]

RequestId = str | int

# A request id is echoed into every reply and kept in the in-flight table: keep it small. Integers beyond a signed
# 64-bit range are refused too: most clients could not even compare them (JSON numbers are doubles in JavaScript).
_MAX_ID_LENGTH = 256
_MAX_ID_INT = 2**63 - 1


@dataclass(slots=True)
class Message:
    kind: Literal["request", "notification", "response"]
    method: str
    id: RequestId | None
    params: dict[str, Any]
    raw: dict[str, Any]


def parse_json(body: bytes) -> Any:
    """Decode a body; malformed JSON, invalid UTF-8 and absurd nesting are all -32700."""
    if not body.strip():
        raise ParseError("Parse error: the request body is empty")
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        # pydantic-core's message says where the JSON broke, which helps whoever wrote the client.
        raise ParseError(f"Parse error: {str(exc)[:200]}") from None


def echoable_id(value: Any) -> bool:
    """Whether `value` is an id this server accepts, and so may echo: a string of at most 256 characters or a
    signed 64-bit integer. A refusal of any other id is answered with a null id, never a copy of it."""
    if isinstance(value, str):
        return len(value) <= _MAX_ID_LENGTH
    return isinstance(value, int) and not isinstance(value, bool) and -_MAX_ID_INT - 1 <= value <= _MAX_ID_INT


def _request_id(raw: dict[str, Any]) -> RequestId | None:
    if "id" not in raw:
        return None
    value = raw["id"]
    if isinstance(value, str):
        if len(value) > _MAX_ID_LENGTH:
            raise InvalidRequest(f"Invalid Request: id is longer than {_MAX_ID_LENGTH} characters")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not echoable_id(value):
            raise InvalidRequest("Invalid Request: an integer id must fit in a signed 64-bit integer")
        return value
    raise InvalidRequest("Invalid Request: id must be a string or an integer")


def classify(obj: Any) -> Message:
    """One decoded JSON-RPC object as a request, notification or (client-sent) response."""
    if not isinstance(obj, dict):
        raise InvalidRequest("Invalid Request: expected a JSON-RPC object")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest('Invalid Request: "jsonrpc" must be "2.0"')
    msg_id = _request_id(obj)
    if "method" not in obj:
        if msg_id is not None and ("result" in obj) != ("error" in obj):
            return Message("response", "", msg_id, {}, obj)
        raise InvalidRequest("Invalid Request: a message needs a method, or an id with a result or an error")
    method = obj["method"]
    if not isinstance(method, str) or not method or len(method) > 256:
        raise InvalidRequest("Invalid Request: method must be a non-empty string")
    params = obj.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidParams("Invalid params: params must be an object")
    return Message("request" if "id" in obj else "notification", method, msg_id, params, obj)


def encode(message: dict[str, Any]) -> bytes:
    return to_json(message)


def result_bytes(msg_id: RequestId, encoded_result: bytes) -> bytes:
    """A reply around a result the dispatcher already serialised, without decoding it again."""
    return b'{"jsonrpc":"2.0","id":%b,"result":%b}' % (to_json(msg_id), encoded_result)
