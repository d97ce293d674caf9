#!/usr/bin/env python
"""Instructions per tools/call, counted by `valgrind --tool=callgrind`: a figure that does not move with the
machine's load, so that a change of a few percent can be seen on a shared 2-core box.

Our server is started by its CLI (`python -m mcp_platform serve`) with its shipped defaults (every built-in
capability, the audit log, metrics, bearer auth) plus a trivial `add` tool and `[rate_limit] enabled = false`,
under callgrind with instrumentation off. After a warm-up the script switches instrumentation on
(`callgrind_control -i on`), makes `--calls` sequential calls on one keep-alive connection, switches it off and
dumps: everything the server process executed in that window, divided by the number of calls.

    python benchmarks/instructions.py [--calls 1000] [--era modern|handshake] [--no-auth] [--code DIR]
                                      [--profile FILE]

`--code DIR` runs the server from another checkout (PYTHONPATH=DIR), to compare two commits with one venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "instructions-bench-token-0123456789"
TOOL = '''\
from mcp_platform import tool


@tool(read_only=True, title="Add")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b
'''
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http(sock: socket.socket, request: bytes) -> tuple[bytes, bytes]:
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
        body += sock.recv(65536)
    return head, body


def _request(port: int, method: str, params: dict[str, object], *, auth: bool, era: str,
             session: str | None = None, msg_id: int = 1) -> bytes:
    if era == "modern":
        params = {**params, "_meta": META}
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode()
    lines = ["POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
             "Accept: application/json, text/event-stream", f"Content-Length: {len(body)}"]
    if auth:
        lines.append(f"Authorization: Bearer {TOKEN}")
    if era == "modern":
        lines += ["MCP-Protocol-Version: 2026-07-28", f"Mcp-Method: {method}"]
        if method == "tools/call":
            lines.append(f"Mcp-Name: {params['name']}")
    else:
        lines.append("MCP-Protocol-Version: 2025-11-25")
        if session is not None:
            lines.append(f"Mcp-Session-Id: {session}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def count(calls: int, era: str, auth: bool, code: str | None, keep: Path | None = None) -> float:
    with tempfile.TemporaryDirectory(prefix="mcpp-instr-") as tmp:
        work = Path(tmp)
        (work / "tools").mkdir()
        (work / "tools" / "bench.py").write_text(TOOL)
        (work / "mcp-platform.toml").write_text("[rate_limit]\nenabled = false\n")
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
        env["MCP_PLATFORM_TOKEN"] = TOKEN
        if code is not None:
            env["PYTHONPATH"] = code
        out = work / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                sys.executable, "-m", "mcp_platform", "serve", "--port", str(port), "--tools-dir",
                str(work / "tools")]
        if not auth:
            argv.append("--no-auth")
        with (work / "server.log").open("w") as log:
            server = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((work / "server.log").read_text()) from None
                    time.sleep(0.5)
            with sock:
                session = None
                if era == "handshake":
                    init: dict[str, object] = {"protocolVersion": "2025-11-25", "capabilities": {},
                            "clientInfo": {"name": "bench", "version": "1"}}
                    head, _ = _http(sock, _request(port, "initialize", init, auth=auth, era=era))
                    match = re.search(rb"(?i)mcp-session-id:\s*(\S+)", head)
                    assert match, head
                    session = match.group(1).decode()
                call = _request(port, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, auth=auth,
                                era=era, session=session)
                for _ in range(200):  # warm-up: caches, lazy imports, the audit writer's first batches
                    head, body = _http(sock, call)
                    assert head.startswith(b"HTTP/1.1 200") and b'"result":3' in body.replace(b" ", b""), body
                subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True,
                               capture_output=True)
                for _ in range(calls):
                    _http(sock, call)
                subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True,
                               capture_output=True)
                subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
        finally:
            server.terminate()
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        # Every dump: the one asked for, and the one at exit (which holds next to nothing: instrumentation is off).
        total = 0
        for dump in work.glob("callgrind.out*"):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):
                    total += int(line.split()[1])
            if keep is not None and dump.name != "callgrind.out":
                shutil.copyfile(dump, keep)
        return total / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--era", choices=["modern", "handshake"], default="modern")
    parser.add_argument("--no-auth", action="store_true")
    parser.add_argument("--code", help="run the server from this checkout (PYTHONPATH)")
    parser.add_argument("--profile", type=Path, help="keep the measured callgrind dump here (callgrind_annotate it)")
    args = parser.parse_args()
    per_call = count(args.calls, args.era, not args.no_auth, args.code, args.profile)
    print(f"{per_call / 1000:.1f}k instructions per call ({args.era}, {'no auth' if args.no_auth else 'bearer'}, "
          f"{args.calls} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
