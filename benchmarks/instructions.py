#!/usr/bin/env python
"""Instructions per tools/call, counted by `valgrind --tool=callgrind`: a figure that hardly moves with the
machine's load, so that a change of a few percent can be seen on a shared 2-core box.

The server is started as `servers.py` starts it (ours by its CLI with the shipped defaults plus a trivial tool
module and `[rate_limit] enabled = false`), on uvloop + httptools, under callgrind with instrumentation off. After
the cold-start `initialize` (and, in the handshake era, `notifications/initialized`) and a warm-up of 200 calls,
the script switches instrumentation on (`callgrind_control -i on`), makes `--calls` sequential calls on one
keep-alive connection, switches it off and dumps: everything the server process executed in that window (every
thread: the event loop, the audit writer, SQLite's thread), divided by the number of calls.

    python benchmarks/instructions.py [--calls 1000] [--server ours|ours-core|sdk-json|starlette]
                                      [--era modern|handshake] [--no-auth] [--code DIR] [--log-level LEVEL]
                                      [--tracing off|otlp|both] [--auth SETUP] [--redis-url URL]

`--code DIR` runs the server from another checkout (PYTHONPATH=DIR), to compare two commits with one venv.
`--tracing otlp` sets ours' `tracing.otlp_endpoint` to a loopback receiver that drops what it gets
(`otlp_sink.py`): every span is built, batched, encoded and posted, and those threads are counted too; `both`
counts tracing off and then on, side by side.
`--auth SETUP` runs ours with one of the settings of `auth_setups.py` (`bearer` by default; `oauth` RS256,
`oauth-hs256`, `redis`, `redis-nocache`, `forward`, `forward-nocache`) and sends its credential on every call;
the redis setups write their token to `--redis-url` (bench.py's database 13 by default) and delete it after.
`bench.py --instructions` runs this for ours (both eras, with bearer auth and with `--no-auth`), the SDK's
stateful JSON mode and its 2026-07-28 JSON mode, and the plain Starlette route, in one go.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.auth_setups import AUTH_CHOICES, AuthName, prepared  # noqa: E402
from benchmarks.otlp_sink import otlp_sink, tracing_settings  # noqa: E402
from benchmarks.servers import (  # noqa: E402
    HOST,
    PATH,
    TOKEN,
    CheckFailed,
    Era,
    ServerKind,
    call_body,
    call_headers,
    free_port,
    handshake,
    spawn,
)

WARMUP_CALLS = 200
REDIS_URL = "redis://127.0.0.1:6379/13"
"""bench.py's database: the redis setups write one key there and delete it afterwards."""
VALGRIND_STARTUP_TIMEOUT = 600.0


def _http(sock: socket.socket, request: bytes) -> tuple[bytes, bytes]:
    """One request on a keep-alive connection; the reply's head and body (by Content-Length)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        body += chunk
    return head, body


def raw_call(port: int, era: Era, auth: bool, session_id: str | None, token: str = TOKEN) -> bytes:
    body = call_body(era, 1)
    headers = call_headers(era, auth, session_id, token) | {"Host": f"{HOST}:{port}", "Content-Length": str(len(body))}
    return (f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() \
        + body


def _callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def count(kind: ServerKind, era: Era, auth: bool, calls: int, cpu: int | None = None,
          code: str | None = None, settings: Mapping[str, Any] | None = None, setup: AuthName = "bearer",
          redis_url: str | None = None) -> float:
    """Instructions the server executes per tools/call, over `calls` sequential calls after a warm-up.
    `settings`: extra TOML settings for ours (e.g. `{"log_level": "warning"}`). `setup`: ours' auth settings
    (`auth_setups.py`); `redis_url`: the database the redis setups write their token to."""
    if kind in ("sdk-sse",):
        raise ValueError("count JSON replies only: the SDK's SSE mode has no Content-Length to read by")
    auth = auth and kind in ("ours", "ours-core")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mcpp-instr-") as tmp, \
            prepared(setup if auth and kind == "ours" else "bearer", port, redis_url) as credential:
        workdir = Path(tmp)
        out = workdir / "callgrind.out"
        wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        env = credential.env | ({"PYTHONPATH": code} if code else {})
        server = spawn(kind, "uvloop", workdir / "server", cpu, auth=auth, wrapper=wrapper, settings=settings,
                       env_extra=env, timeout=VALGRIND_STARTUP_TIMEOUT, port=port, token=credential.token)
        try:
            session_id = handshake(server.port, auth, credential.token) if era == "handshake" else None
            call = raw_call(server.port, era, auth, session_id, credential.token)
            with socket.create_connection((HOST, server.port), timeout=120) as sock:
                for _ in range(WARMUP_CALLS):  # caches, lazy imports, the audit writer's first batches
                    head, body = _http(sock, call)
                    if not head.startswith(b"HTTP/1.1 200") or b'"result":3' not in body.replace(b" ", b""):
                        raise CheckFailed(f"{kind} under callgrind: {head[:200]!r} {body[:300]!r}")
                _callgrind("-i", "on", str(server.process.pid))
                for _ in range(calls):
                    _http(sock, call)
                _callgrind("-i", "off", str(server.process.pid))
                _callgrind("-d", str(server.process.pid))
        finally:
            server.stop()
        # Every dump: the one asked for, and the one at exit (which holds next to nothing: instrumentation is off).
        total = 0
        for dump in workdir.glob("callgrind.out*"):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):
                    total += int(line.split()[1])
        return total / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--server", choices=["ours", "ours-core", "sdk-json", "starlette"], default="ours")
    parser.add_argument("--era", choices=["modern", "handshake"], default="modern")
    parser.add_argument("--no-auth", action="store_true")
    parser.add_argument("--code", help="run the server from this checkout (PYTHONPATH)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="ours: `log_level` in its TOML file (the shipped default, info, logs every request)")
    parser.add_argument("--tracing", choices=["off", "otlp", "both"], default="off",
                        help="ours: export spans over OTLP/HTTP to a loopback receiver that drops them")
    parser.add_argument("--auth", choices=AUTH_CHOICES, default="bearer",
                        help="ours: the auth settings and credential (auth_setups.py; default bearer)")
    parser.add_argument("--redis-url", default=REDIS_URL, metavar="URL",
                        help=f"the redis setups' token database (default {REDIS_URL})")
    args = parser.parse_args()
    if args.auth != "bearer" and (args.no_auth or args.server != "ours"):
        parser.error("--auth applies to --server ours with auth on")
    settings: dict[str, Any] = {"log_level": args.log_level} if args.log_level else {}
    auth = args.auth if args.server.startswith("ours") and not args.no_auth else "no auth"
    for traced in {"off": [False], "otlp": [True], "both": [False, True]}[args.tracing]:
        with otlp_sink() as sink:
            extra = settings | tracing_settings(sink) if traced else settings
            per_call = count(args.server, args.era, not args.no_auth, args.calls, code=args.code,
                             settings=extra or None, setup=args.auth, redis_url=args.redis_url)
        label = f", tracing on ({sink.exports} exports)" if traced else ""
        print(f"{per_call / 1000:.1f}k instructions per call ({args.server}, {args.era}, {auth}, {args.calls} calls"
              f"{label})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
