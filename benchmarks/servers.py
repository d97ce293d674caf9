#!/usr/bin/env python
"""The servers the benchmarks measure, how they are started, and how a client talks to them.

Ours is started the way a user starts it: `python -m mcp_platform serve --port P --tools-dir DIR` in a work folder
holding `mcp-platform.toml` (`[rate_limit] enabled = false`, otherwise the shipped defaults: every built-in
capability, the audit log, metrics), with `MCP_PLATFORM_TOKEN` set (bearer auth) or `--no-auth`. The CLI leaves
uvicorn's loop and HTTP protocol on "auto" (uvloop + httptools when installed); for asyncio + h11 it is started
through `cli_on_stack.py`, which runs the same CLI with only those two uvicorn arguments fixed.

The others (the official SDK, the plain Starlette route, and our "core only" app without built-in capabilities)
are started as `python benchmarks/servers.py --serve KIND --port P --stack STACK --workdir DIR`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ServerKind = Literal["ours", "ours-core", "sdk-sse", "sdk-json", "starlette"]
Era = Literal["handshake", "modern"]
Stack = Literal["uvloop", "asyncio"]

STACKS: dict[Stack, tuple[str, str]] = {"uvloop": ("uvloop", "httptools"), "asyncio": ("asyncio", "h11")}
"""Stack name -> (uvicorn `loop`, uvicorn `http`)."""
STACK_LABELS: dict[str, str] = {"uvloop": "uvloop+httptools", "asyncio": "asyncio+h11"}

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PATH = "/mcp"
TOKEN = "bench-token-0123456789abcdef0123456789"
HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 10.0

TOOL_MODULE = '''\
from mcp_platform import tool


@tool(read_only=True, title="Add")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(read_only=True, title="Echo")
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text
'''

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1.0"},
}


class CheckFailed(Exception):
    """A server did not start or did not answer as it should."""


# -- the work folder ----------------------------------------------------------------------------------------------


def toml_text(settings: Mapping[str, Any]) -> str:
    """A TOML document for flat settings: top-level scalars, then one level of tables of scalars."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a valid TOML basic string
        raise TypeError(f"cannot write {v!r} as a TOML value")

    lines = [f"{k} = {value(v)}" for k, v in settings.items() if not isinstance(v, Mapping)]
    for name, table in settings.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"] + [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def merge_settings(base: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` updated by `extra`, a table in `extra` updating the same table in `base`."""
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, v in (extra or {}).items():
        merged[key] = {**merged[key], **v} if isinstance(v, Mapping) and isinstance(merged.get(key), dict) else v
    return merged


def write_workdir(workdir: Path, settings: Mapping[str, Any] | None = None) -> None:
    """The tool module and `mcp-platform.toml` (rate limiting off, plus `settings`) in `workdir`."""
    (workdir / "tools").mkdir(parents=True, exist_ok=True)
    (workdir / "tools" / "bench_tools.py").write_text(TOOL_MODULE)
    config = merge_settings({"rate_limit": {"enabled": False}}, settings)
    (workdir / "mcp-platform.toml").write_text(toml_text(config))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# -- the server subprocess ----------------------------------------------------------------------------------------


def command(kind: ServerKind, stack: Stack, port: int, workdir: Path, auth: bool) -> list[str]:
    if kind == "ours":
        if stack == "uvloop":  # exactly what a user runs: uvicorn's "auto" picks uvloop + httptools
            argv = [sys.executable, "-m", "mcp_platform"]
        else:
            argv = [sys.executable, str(HERE / "cli_on_stack.py"), *STACKS[stack]]
        argv += ["serve", "--port", str(port), "--tools-dir", str(workdir / "tools")]
        return argv if auth else [*argv, "--no-auth"]
    return [sys.executable, str(HERE / "servers.py"), "--serve", kind, "--port", str(port), "--stack", stack,
            "--workdir", str(workdir)]


def _build_core(workdir: Path) -> Any:
    """Our app without built-in capabilities (no audit log, no metrics, no static files, no ORM): the core only."""
    from mcp_platform import create_app, load_settings

    settings = load_settings(workdir / "mcp-platform.toml", token=TOKEN, tools={"dirs": [str(workdir / "tools")]})
    return create_app(settings, capabilities=[], freeze_gc=True)


def _build_sdk(json_response: bool) -> Any:
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer("bench")

    @mcp.tool()
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return mcp.streamable_http_app(json_response=json_response)


def _build_starlette() -> Any:
    """A plain Starlette route that parses the JSON-RPC body, calls `add` and serialises the reply: what the same
    stack does when parsing, dispatching and serialising cost next to nothing, with no protocol checks at all."""
    from pydantic_core import from_json, to_json
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def add(a: int, b: int) -> int:
        return a + b

    async def endpoint(request: Request) -> Response:
        message = from_json(await request.body())
        value = await add(**message["params"]["arguments"])
        result = {"content": [{"type": "text", "text": str(value)}], "structuredContent": {"result": value},
                  "isError": False}
        return Response(to_json({"jsonrpc": "2.0", "id": message["id"], "result": result}),
                        media_type="application/json")

    return Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])


def serve(kind: ServerKind, port: int, stack: Stack, workdir: Path) -> None:
    """Child process for every server but ours: build the app, then serve it with uvicorn on `stack`."""
    import uvicorn

    if kind == "ours-core":
        app = _build_core(workdir)
    elif kind == "starlette":
        app = _build_starlette()
    else:
        app = _build_sdk(json_response=kind == "sdk-json")
    loop, http_protocol = STACKS[stack]
    uvicorn.run(app, host=HOST, port=port, loop=loop, http=http_protocol, log_level="warning",
                timeout_graceful_shutdown=5, server_header=False)


@dataclass
class Server:
    kind: ServerKind
    stack: Stack
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    cold_start_s: float = 0.0
    """From spawning the process to the first correct answer (`initialize`, or a call for the Starlette route)."""
    notes: list[str] = field(default_factory=list)

    def _status(self, key: str) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def rss_kib(self) -> int | None:
        return self._status("VmRSS")

    def peak_rss_kib(self) -> int | None:
        """VmHWM: the most resident memory the process has had so far."""
        return self._status("VmHWM")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of every thread of the process so far."""
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return None

    def loaded_stack(self) -> str:
        """The event loop and HTTP parser actually loaded in the server, from its memory map: uvloop and httptools
        are C extensions (their absence means asyncio and h11, the only alternatives uvicorn has)."""
        with contextlib.suppress(OSError):
            maps = Path(f"/proc/{self.process.pid}/maps").read_text()
            loop = "uvloop" if "/uvloop/" in maps else "asyncio"
            parser = "httptools" if "/httptools/" in maps else "h11"
            return f"{loop}+{parser}"
        return "?"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_errors(self) -> str:
        """"N ERROR lines in the server log (first: ...)", or "" when there are none."""
        with contextlib.suppress(OSError):
            found = [line for line in self.log.read_text(errors="replace").splitlines()
                     if re.match(r"^(\S+ \S+ )?ERROR\b", line)]
            if found:
                return f"{len(found)} ERROR lines in the server log (first: {found[0][:160]!r}; --keep keeps it)"
        return ""

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def spawn(kind: ServerKind, stack: Stack, workdir: Path, cpu: int | None, *, auth: bool = True,
          settings: Mapping[str, Any] | None = None, wrapper: Sequence[str] = (),
          env_extra: Mapping[str, str] | None = None, timeout: float = STARTUP_TIMEOUT,
          port: int | None = None, token: str = TOKEN) -> Server:
    """Start a server in a fresh `workdir`, pinned to `cpu`, and wait for its first correct answer (cold start).
    `wrapper`: a command to run it under (valgrind). `settings`: extra TOML settings for ours. `port`: one chosen
    beforehand (an `--auth` setup that must know the server's URL). `token`: the credential the probe sends."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_workdir(workdir, settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    if kind == "ours" and auth:
        env["MCP_PLATFORM_TOKEN"] = TOKEN
    env |= env_extra or {}
    port = port or free_port()
    argv = [*wrapper, *command(kind, stack, port, workdir, auth)]
    log = workdir / "server.log"

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, preexec_fn=pin)
    server = Server(kind, stack, process, port, log)
    deadline = started + timeout
    while True:
        try:
            first_answer(server, auth, token)
            server.cold_start_s = time.perf_counter() - started
            return server
        except (OSError, http.client.HTTPException) as exc:
            if process.poll() is not None or time.perf_counter() > deadline:
                server.stop()
                raise CheckFailed(f"{kind} server did not start ({type(exc).__name__}: {exc}):\n"
                                  f"{server.log_tail()}") from None
            time.sleep(0.01)


def first_answer(server: Server, auth: bool, token: str = TOKEN) -> None:
    """The cold-start probe: `initialize` answered (the Starlette route knows no `initialize`: a tools/call)."""
    if server.kind == "starlette":
        check_call(server.port, "modern", False, None)
    else:
        initialize(server.port, auth, token)


# -- requests -----------------------------------------------------------------------------------------------------


def base_headers(auth: bool, token: str = TOKEN) -> dict[str, str]:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def call_headers(era: Era, auth: bool, session_id: str | None, token: str = TOKEN) -> dict[str, str]:
    headers = base_headers(auth, token)
    if era == "modern":
        headers.update({"MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/call", "Mcp-Name": "add"})
    else:
        headers["MCP-Protocol-Version"] = HANDSHAKE_VERSION
        if session_id is not None:
            headers["Mcp-Session-Id"] = session_id
    return headers


def call_body(era: Era, request_id: int) -> bytes:
    params: dict[str, Any] = {"name": "add", "arguments": {"a": 1, "b": 2}}
    if era == "modern":
        params["_meta"] = MODERN_META
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    return json.dumps(message, separators=(",", ":")).encode()


def split_body(era: Era) -> tuple[str, str]:
    """The call body around its id, so a load generator can give every request its own id (the SDK's stateful
    transport keys its response streams by request id, so concurrent requests must not share one)."""
    marker = 987654321
    prefix, _, suffix = call_body(era, marker).decode().partition(str(marker))
    return prefix, suffix


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def messages(self) -> list[Any]:
        """The JSON-RPC messages in the body: one JSON document, or the `data:` of each SSE event."""
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            found = []
            for event in self.body.decode().replace("\r\n", "\n").split("\n\n"):
                data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
                if data:
                    found.append(json.loads(data))
            return found
        return [json.loads(self.body)] if self.body.strip() else []


def post(port: int, headers: Mapping[str, str], body: bytes) -> Reply:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", PATH, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
              "params": {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
                         "clientInfo": {"name": "bench", "version": "1.0"}}}


def initialize(port: int, auth: bool, token: str = TOKEN) -> str:
    """`initialize`, which must answer 200 with the handshake version; the session id."""
    reply = post(port, base_headers(auth, token), json.dumps(INITIALIZE).encode())
    session_id = reply.headers.get("mcp-session-id")
    results = [m for m in reply.messages() if isinstance(m, dict) and m.get("id") == 0 and "result" in m]
    if reply.status != 200 or not session_id or not results:
        raise CheckFailed(f"initialize: HTTP {reply.status}, session {session_id!r}, body {reply.body[:300]!r}")
    negotiated = results[0]["result"].get("protocolVersion")
    if negotiated != HANDSHAKE_VERSION:
        raise CheckFailed(f"initialize negotiated {negotiated!r}, not {HANDSHAKE_VERSION}")
    return session_id


def handshake(port: int, auth: bool, token: str = TOKEN) -> str:
    """initialize + notifications/initialized; the session id to load with."""
    session_id = initialize(port, auth, token)
    headers = base_headers(auth, token) | {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE_VERSION}
    reply = post(port, headers, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode())
    if reply.status != 202:
        raise CheckFailed(f"notifications/initialized: HTTP {reply.status}, body {reply.body[:300]!r}")
    return session_id


def result_is_three(result: Any) -> bool:
    if not isinstance(result, dict) or result.get("isError"):
        return False
    if result.get("structuredContent") == {"result": 3}:
        return True
    content = result.get("content")
    return isinstance(content, list) and any(
        isinstance(c, dict) and c.get("type") == "text" and c.get("text") == "3" for c in content)


def check_call(port: int, era: Era, auth: bool, session_id: str | None, token: str = TOKEN) -> Reply:
    """One tools/call, which must answer HTTP 200 with a result of 3."""
    reply = post(port, call_headers(era, auth, session_id, token), call_body(era, 1))
    replies = [m for m in reply.messages() if isinstance(m, dict) and m.get("id") == 1]
    if reply.status != 200 or len(replies) != 1 or not result_is_three(replies[0].get("result")):
        raise CheckFailed(f"tools/call: HTTP {reply.status}, content-type {reply.headers.get('content-type')!r}, "
                          f"body {reply.body[:400]!r}")
    return reply


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", required=True, choices=("ours-core", "sdk-sse", "sdk-json", "starlette"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stack", choices=tuple(STACKS), default="uvloop")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.serve, args.port, args.stack, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
