"""`log.format = "json"`: one JSON object per stderr line, with the request's id, principal, method, tool and W3C
trace id, and one record per finished tool call with its outcome and duration. In both formats no token, secret or
argument value is ever written."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.logcontext import JsonFormatter, trace_id
from mcp_platform.redact import RedactingFormatter, secret_values
from mcp_platform.settings import Settings
from tests.support import (
    FIXTURE_TOOLS,
    MODERN_HEADERS,
    asgi_client,
    free_port,
    make_settings,
    modern_headers,
    modern_request,
    wait_served,
)

TOKEN = "plain-env-token-9f8e7d6c5b4a"  # not in mcpp_ form, so the token pattern alone would miss it
SECRET_KEY = "k" * 8 + "-signing-secret-0123456789abcdef"
ARGUMENT = "argument-value-3c2b1a0f9e8d"  # what a client sent a tool: never in the log
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
META_TRACE = "0af7651916cd43dd8448eb211c80319c"


def _call(text: str, msg_id: int, **meta: Any) -> dict[str, Any]:
    request = modern_request("tools/call", {"name": "echo", "arguments": {"text": text}}, msg_id=msg_id)
    request["params"]["_meta"] |= meta
    return request


@contextmanager
def _serve(tmp_path: Path, log_format: str) -> Iterator[tuple[httpx2.Client, Path]]:
    """`mcp-platform serve` in `log_format` with the tool-call log on, stderr written to a file (a pipe nobody
    reads can fill and stall the server); yields a client and that file, complete once the block is left."""
    port, stderr_path = free_port(), tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    env |= {"MCP_PLATFORM_TOKEN": TOKEN, "MCP_PLATFORM_SECRET_KEY": SECRET_KEY,
            "MCP_PLATFORM_LOG__FORMAT": log_format, "MCP_PLATFORM_LOG__TOOL_CALLS": "true"}
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                                    "--tools-dir", str(FIXTURE_TOOLS), "--log-level", "debug"],
                                   cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_served(process, base, log=stderr_path)
        with httpx2.Client(base_url=base, timeout=10) as http:
            yield http, stderr_path
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def _records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # every line, uvicorn's and tracebacks included
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


@pytest.mark.wire
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_serve_writes_no_token_secret_or_argument_value_in_either_format(tmp_path: Path, log_format: str) -> None:
    with _serve(tmp_path, log_format) as (http, stderr):
        reply = http.post("/mcp", json=_call(ARGUMENT, 7), headers=modern_headers("tools/call", "echo", TOKEN))
        assert reply.status_code == 200 and ARGUMENT in reply.text  # the tool saw it ...
        http.post(f"/mcp?token={TOKEN}", json=_call(ARGUMENT, 8), headers=modern_headers("tools/call", "echo", TOKEN))
        http.post("/mcp", json=_call(ARGUMENT, 9), headers=modern_headers("tools/call", "echo", f"{TOKEN}x"))
        http.get(f"/mcp/{TOKEN}", headers={"authorization": f"Bearer {SECRET_KEY}"})
    err = stderr.read_text()
    assert "tool call echo by env-token: ok" in err, err  # ... and the call was logged ...
    for secret in (TOKEN, SECRET_KEY, ARGUMENT):
        assert secret not in err, err  # ... with none of the values
    if log_format == "json":
        _records(err)
    else:
        assert not err.lstrip().startswith("{"), err  # text stays the default's look


@pytest.mark.wire
def test_json_records_carry_the_request_and_the_tool_call_fields(tmp_path: Path) -> None:
    with _serve(tmp_path, "json") as (http, stderr):
        headers = modern_headers("tools/call", "echo", TOKEN) | {"traceparent": TRACEPARENT}
        assert http.post("/mcp", json=_call("a", 41), headers=headers).status_code == 200
        meta_traced = _call("b", 42, traceparent=f"00-{META_TRACE}-00f067aa0ba902b7-01")
        assert http.post("/mcp", json=meta_traced, headers=modern_headers("tools/call", "echo", TOKEN)).status_code \
            == 200
        assert http.post("/mcp", json=_call("c", 43), headers=modern_headers("tools/call", "echo", TOKEN)) \
            .status_code == 200
    records = _records(stderr.read_text())
    calls = {r["request_id"]: r for r in records if r["logger"] == "mcp_platform.calls"}
    assert set(calls) == {41, 42, 43}, records
    first = calls[41]
    assert first["level"] == "info" and first["time"].endswith("Z")
    assert {k: first[k] for k in ("tool", "principal", "method", "outcome", "trace_id")} == {
        "tool": "echo", "principal": "env-token", "method": "tools/call", "outcome": "ok", "trace_id": TRACE}
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert calls[42]["trace_id"] == META_TRACE  # `params._meta.traceparent`
    assert "trace_id" not in calls[43]  # no traceparent: no field
    assert "text" not in json.dumps(calls)  # the arguments' names are not written either
    assert any(r["logger"].startswith("uvicorn") and "request_id" not in r for r in records)  # outside a request


def test_records_written_inside_a_tool_carry_the_request(tmp_path: Path) -> None:
    """The context reaches a record a tool writes, from the worker thread a sync tool runs in."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "noisy.py").write_text(
        "import logging\n"
        "from mcp_platform import tool\n\n\n"
        "@tool(read_only=True)\n"
        "def noisy(text: str) -> str:\n"
        "    \"\"\"Log a line (not the text).\"\"\"\n"
        "    logging.getLogger('tools.noisy').warning('working')\n"
        "    return text\n")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secrets=[TOKEN]))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        async def scenario() -> None:
            app = create_app(make_settings(tmp_path, log={"format": "json"}, tools={"dirs": [tools]}))
            async with asgi_client(app) as client:
                async def call() -> None:
                    request = modern_request("tools/call", {"name": "noisy", "arguments": {"text": ARGUMENT}},
                                             msg_id="r-1")
                    reply = await client.post("/mcp", json=request, headers=MODERN_HEADERS | {
                        "mcp-method": "tools/call", "mcp-name": "noisy", "traceparent": TRACEPARENT})
                    assert reply.status_code == 200, reply.text

                # A task of its own, as uvicorn gives each request (the ASGI test transport runs the app inline).
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(call)
                logging.getLogger("after").warning("outside")

        anyio.run(scenario)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    records = _records(stream.getvalue())
    mine = [r for r in records if r.get("request_id") == "r-1"]
    assert {r["logger"] for r in mine} >= {"tools.noisy", "mcp_platform.calls"}, records
    assert all(r["trace_id"] == TRACE and r["principal"] == "env-token" and r["tool"] == "noisy" for r in mine)
    assert ARGUMENT not in stream.getvalue()
    assert "request_id" not in next(r for r in records if r["logger"] == "after")


@pytest.mark.parametrize("formatter", [RedactingFormatter, JsonFormatter])
def test_both_formatters_mask_configured_secrets_everywhere_in_a_record(tmp_path: Path, formatter: Any) -> None:
    settings = Settings(token=TOKEN, secret_key=SECRET_KEY, state={"url": "postgresql+asyncpg://app:pa55word@db/x"},
                        static={"root": tmp_path})
    fmt = formatter("%(name)s %(message)s", secrets=secret_values(settings))
    try:
        raise RuntimeError(f"could not use {SECRET_KEY}")
    except RuntimeError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, 'token %s, password "%s", %s', (
            TOKEN, "pa55word", "Bearer abcdefgh12345678 mcpp_abcdefgh12345678 http://u:pw@h/?key=v"), sys.exc_info())
    record.principal = TOKEN  # even a field is masked
    text = fmt.format(record)
    assert "could not use" in text and "RuntimeError" in text
    for secret in (TOKEN, SECRET_KEY, "pa55word", "abcdefgh12345678", ":pw@", "key=v"):
        assert secret not in text, text
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/mcp?access_token=xyz-unknown-form", "1.1", 401), None)
    assert "access_token" not in fmt.format(access)
    if formatter is JsonFormatter:
        assert json.loads(text)["principal"] == "**********"
        assert json.loads(fmt.format(access))["message"] == '127.0.0.1:5 - "GET /mcp HTTP/1.1" 401'


def test_a_trace_id_is_read_only_from_a_valid_traceparent() -> None:
    assert trace_id(TRACEPARENT) == TRACE
    for bad in (None, 7, "", "00-xyz", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"ff-{TRACE}-00f067aa0ba902b7-01",
                f"00-{TRACE.upper()}-00f067aa0ba902b7-01", f"00-{TRACE}-00f067aa0ba902b7"):
        assert trace_id(bad) is None, bad
