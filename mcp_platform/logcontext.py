"""The request a log record was written for, and the JSON log format that reports it.

The protocol edge binds each request it builds (`bind`): its id, method, principal, tool and W3C trace id. A
`ContextVar` carries that to every record written while the request is handled -- in the dispatcher, a tool, a
store, a thread a tool runs in -- without any of them passing it along. `JsonFormatter` writes one JSON object per
line with those fields, after the same masking the text format gets (`redact.RedactingFormatter`): no token,
secret or query string reaches either format, and no argument value is ever put in a record.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp_platform.redact import REDACTED, RedactingFormatter, redact_log_text

__all__ = ["EXTRA_FIELDS", "JsonFormatter", "RequestLog", "bind", "clear", "current", "trace_id"]


@dataclass(frozen=True, slots=True)
class RequestLog:
    """What a log record says of the request it was written for."""

    request_id: str | int | None
    method: str
    principal: str
    tool: str | None = None
    trace_id: str | None = None


_current: ContextVar[RequestLog | None] = ContextVar("mcp_platform_request_log", default=None)

# version 00 (the only one defined) or a later one, which W3C asks parsers to read the same way; an all-zero
# trace id is invalid.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32

EXTRA_FIELDS = ("tool", "principal", "outcome", "duration_ms", "request_id")
"""Fields a record may carry itself (`logger.info(..., extra={...})`); they win over the bound request's."""


def trace_id(traceparent: object) -> str | None:
    """The trace id of a W3C `traceparent` value, or None when it is absent or malformed."""
    if not isinstance(traceparent, str):
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None or match["trace"] == _ZERO_TRACE or traceparent.startswith("ff"):
        return None
    return match["trace"]


def bind(request_id: str | int | None, method: str, principal: str, params: Mapping[str, Any],
         headers: Mapping[str, str] | None = None) -> None:
    """Make this request the one that records written from now on in this task (and the tasks and threads it
    starts) belong to. The trace id comes from `params._meta.traceparent`, else the `traceparent` header."""
    meta = params.get("_meta")
    trace = trace_id(meta.get("traceparent")) if isinstance(meta, Mapping) else None
    if trace is None and headers is not None:
        trace = trace_id(headers.get("traceparent"))
    name = params.get("name") if method == "tools/call" else None
    _current.set(RequestLog(request_id, method, principal, name if isinstance(name, str) else None, trace))


def clear() -> None:
    """Records written from now on in this task belong to no request (a reader that spawned the request's task)."""
    _current.set(None)


def current() -> RequestLog | None:
    return _current.get()


class JsonFormatter(RedactingFormatter):
    """One JSON object per record: time, level, logger, message (with any traceback), the bound request's fields,
    and a record's own `EXTRA_FIELDS` (the tool-call record's outcome and duration). Every string is masked as the
    text format masks it, then the whole line once more."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, *, secrets: Sequence[str] = ()) -> None:
        super().__init__("%(message)s", datefmt, secrets=secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": super().format(record),  # masked, query string of an access-log line dropped
        }
        bound = _current.get()
        if bound is not None:
            entry |= {"request_id": bound.request_id, "principal": bound.principal, "method": bound.method}
            if bound.tool is not None:
                entry["tool"] = bound.tool
            if bound.trace_id is not None:
                entry["trace_id"] = bound.trace_id
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        for key, value in entry.items():
            if isinstance(value, str) and key != "message":
                entry[key] = redact_log_text(value, self.secrets)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        # Each value was masked before encoding, so the line is valid JSON; this pass catches a configured secret
        # in a form only encoding produced. Only whole secrets: the URL patterns would run past a closing quote.
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line
