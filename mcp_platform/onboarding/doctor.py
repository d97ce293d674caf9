"""`mcp-platform doctor URL`: probe a deployment the way clients do, and say what to fix.

The checks follow a client's first minute: connect (reachable, TLS, Host), the browser guard (Origin), auth (401
with `WWW-Authenticate: Bearer`; in bearer mode no OAuth discovery answers, or clients start an OAuth flow; with
OAuth on, the metadata chain a client follows to sign in, `doctor_oauth.py`),
both protocol eras (`initialize`, `server/discover`), streaming through whatever sits in between (a progress event
must arrive well before the result), and what the tool list costs a client. Each finding is one line: PASS, WARN
or FAIL, what was seen, and for the others the fix. Only a FAIL makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2

from mcp_platform.onboarding.doctor_oauth import check_oauth
from mcp_platform.protocol.eras import HANDSHAKE_VERSIONS, MODERN_VERSIONS

__all__ = ["Finding", "diagnose", "run_doctor"]

Status = Literal["PASS", "WARN", "FAIL"]

_ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
_CLIENT_INFO = {"name": "mcp-platform-doctor", "version": "1"}
_INIT = {"jsonrpc": "2.0", "id": "doctor-init", "method": "initialize",
         "params": {"protocolVersion": HANDSHAKE_VERSIONS[-1], "capabilities": {}, "clientInfo": _CLIENT_INFO}}
_MAX_TOOLS_SOME_CLIENTS = 40  # Cursor used only the first 40 tools for a long time
_MAX_TOOLS = 100
_MAX_LIST_BYTES = 100_000
_STREAM_DELAY_MS = 200  # audit_assets: five steps, so about one second from first progress to result


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    check: str
    message: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status}  {self.check:<10} {self.message}"
        return f"{line}  fix: {self.fix}" if self.fix else line


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _sse_messages(text: str) -> list[dict[str, Any]]:
    messages = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                continue
            if isinstance(decoded, dict):
                messages.append(decoded)
    return messages


def _reply(response: httpx2.Response, msg_id: str) -> dict[str, Any] | None:
    """The JSON-RPC reply to `msg_id`, whether the server answered in JSON or SSE."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return next((m for m in _sse_messages(response.text) if m.get("id") == msg_id), None)
    try:
        decoded = response.json()
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _error_text(reply: dict[str, Any] | None, response: httpx2.Response) -> str:
    error = reply.get("error") if reply else None
    if isinstance(error, dict):
        return f"{error.get('code')} {str(error.get('message'))[:160]}"
    return f"HTTP {response.status_code} {response.text[:160]!r}"


class _Doctor:
    def __init__(self, url: str, *, token: str | None, origin: str | None, http: httpx2.AsyncClient,
                 clock: Callable[[], float]) -> None:
        self.url = url
        self.parts = urlsplit(url)
        self.token = token
        self.origin = origin
        self.http = http
        self.clock = clock
        self.findings: list[Finding] = []

    def add(self, status: Status, check: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(status, check, message, fix))

    def headers(self, extra: dict[str, str] | None = None, *, auth: bool = True) -> dict[str, str]:
        headers = {**_ACCEPT, **(extra or {})}
        if auth and self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    async def run(self) -> list[Finding]:
        first = await self.reachable()
        if first is None:
            return self.findings
        self.tls()
        if first.status_code == 421:
            self.add("FAIL", "host", f"the server refuses Host {self.parts.netloc} (421)",
                     f'add "{self.parts.hostname}:*" to http.allowed_hosts')
            return self.findings
        self.add("PASS", "host", f"Host {self.parts.netloc} accepted")
        await self.origin_check()
        bearer = self.auth(first)
        if bearer:
            challenge = first.headers.get("www-authenticate", "")
            if "resource_metadata=" in challenge:
                await check_oauth(self.http, self.url, challenge, self.add)
            else:
                await self.oauth()
            if not self.token:
                self.add("WARN", "token", "no token given: initialize, server/discover, streaming and the tool list "
                                          "were not checked", "pass --token-env NAME (or set MCP_PLATFORM_TOKEN_VALUE)")
                return self.findings
        session = await self.initialize()
        await self.discover()
        if session is not None:
            tools = await self.tool_budget(session)
            await self.streaming(session, tools)
            if "mcp-session-id" in session:
                await self.http.delete(self.url, headers=self.headers(session))
        return self.findings

    async def reachable(self) -> httpx2.Response | None:
        started = self.clock()
        try:
            response = await self.http.post(self.url, json=_INIT, headers=self.headers(auth=False))
        except httpx2.TimeoutException:
            self.add("FAIL", "reachable", f"no answer from {self.parts.netloc} in time",
                     "check that the server runs and that nothing in between drops the connection")
            return None
        except httpx2.HTTPError as exc:
            text = str(exc)
            if "CERTIFICATE" in text.upper():
                self.add("FAIL", "tls", f"the TLS certificate was refused: {text[:160]}",
                         "serve a certificate from a CA clients trust (SSL_CERT_FILE points Python at a private CA)")
            else:
                self.add("FAIL", "reachable",
                         f"cannot connect to {self.parts.netloc}: {type(exc).__name__} {text[:160]}",
                         "start the server (mcp-platform serve), check the host and port, and any firewall")
            return None
        elapsed = (self.clock() - started) * 1000
        status = response.status_code
        if 300 <= status < 400:
            self.add("FAIL", "reachable", f"HTTP {status} redirect to {response.headers.get('location', '?')}",
                     "use the final URL: clients do not follow redirects with a POST and drop Authorization")
            return None
        if status in (404, 405):
            self.add("FAIL", "reachable", f"HTTP {status} at {self.parts.path or '/'}: no MCP endpoint there",
                     "use the endpoint path (http.path, /mcp by default)")
            return None
        self.add("PASS", "reachable", f"HTTP {status} in {elapsed:.0f} ms")
        return response

    def tls(self) -> None:
        host = self.parts.hostname or ""
        if self.parts.scheme == "https":
            self.add("PASS", "tls", "HTTPS, certificate accepted")
        elif _is_loopback(host):
            self.add("PASS", "tls", "plain HTTP on a loopback address: fine on this machine")
        else:
            self.add("WARN", "tls", f"plain HTTP to {host}: the bearer token crosses the network unencrypted",
                     "terminate TLS in front of the server (reverse proxy or load balancer) and use https://")

    async def origin_check(self) -> None:
        origin = self.origin or f"{self.parts.scheme}://{self.parts.netloc}"
        # Without a token: the Origin guard answers before auth, and no session is opened by mistake.
        response = await self.http.post(self.url, json=_INIT, headers=self.headers({"origin": origin}, auth=False))
        if response.status_code == 403 and "origin" in response.text.lower():
            who = "" if self.origin else " (only browser-based clients send one)"
            self.add("FAIL" if self.origin else "WARN", "origin", f"Origin {origin} is refused (403){who}",
                     f'add "{origin}" to http.allowed_origins')
            return
        if response.status_code == 200 and (session := response.headers.get("mcp-session-id")):
            await self.http.delete(self.url, headers=self.headers({"mcp-session-id": session}, auth=False))
        self.add("PASS", "origin", f"Origin {origin} accepted")

    def auth(self, first: httpx2.Response) -> bool:
        status = first.status_code
        challenge = first.headers.get("www-authenticate", "")
        if status == 401 and challenge.lower().startswith("bearer"):
            self.add("PASS", "auth", "401 with WWW-Authenticate: Bearer when no token is sent")
            return True
        if status == 401:
            self.add("FAIL", "auth", f"401 without a Bearer challenge (WWW-Authenticate: {challenge[:60]!r})",
                     "let the WWW-Authenticate header through: clients read it to know a bearer token is expected")
            return True
        if status == 200:
            self.add("FAIL", "auth", "initialize succeeded without a token: auth is off, anyone who can reach the "
                                     "server can call every tool",
                     'run with auth.mode = "bearer" (the default) and tokens from `mcp-platform token create`')
            return False
        self.add("WARN", "auth", f"HTTP {status} without a token, where 401 was expected",
                 "check what answers in front of the server")
        return False

    async def oauth(self) -> None:
        path = self.parts.path.rstrip("/")
        wells = dict.fromkeys(["/.well-known/oauth-protected-resource", f"/.well-known/oauth-protected-resource{path}",
                               "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"])
        base = f"{self.parts.scheme}://{self.parts.netloc}"
        answered = []
        for well in wells:
            response = await self.http.get(base + well, headers={"accept": "application/json"})
            if response.status_code != 404:
                answered.append(f"{well} -> {response.status_code}")
        if answered:
            self.add("FAIL", "oauth", "OAuth discovery answers: " + ", ".join(answered),
                     "in bearer mode these paths must answer 404, or clients start an OAuth flow this server does "
                     "not run: stop the proxy from serving or redirecting /.well-known/")
        else:
            self.add("PASS", "oauth", "404 on OAuth discovery, so clients send the bearer token instead")

    async def initialize(self) -> dict[str, str] | None:
        response = await self.http.post(self.url, json=_INIT, headers=self.headers())
        reply = _reply(response, "doctor-init")
        result = reply.get("result") if reply else None
        if response.status_code == 401:
            self.add("FAIL", "initialize", "the token was refused (401)",
                     "check the token (`mcp-platform token list` names them) and the variable --token-env names")
            return None
        if response.status_code != 200 or not isinstance(result, dict):
            self.add("FAIL", "initialize", f"initialize failed: {_error_text(reply, response)}",
                     "clients on the handshake era (most of them today) cannot connect; see the server log")
            return None
        version = str(result.get("protocolVersion"))
        session = {"mcp-protocol-version": version}
        if session_id := response.headers.get("mcp-session-id"):
            session["mcp-session-id"] = session_id
        await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                             headers=self.headers(session))
        self.add("PASS", "initialize", f"handshake era works (protocol {version})")
        return session

    async def discover(self) -> None:
        modern = MODERN_VERSIONS[-1]
        body = {"jsonrpc": "2.0", "id": "doctor-discover", "method": "server/discover", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": modern, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": _CLIENT_INFO}}}
        headers = self.headers({"mcp-protocol-version": modern, "mcp-method": "server/discover"})
        response = await self.http.post(self.url, json=body, headers=headers)
        reply = _reply(response, "doctor-discover")
        result = reply.get("result") if reply else None
        if response.status_code == 200 and isinstance(result, dict) and modern in result.get("supportedVersions", []):
            self.add("PASS", "discover", f"{modern} works (server/discover)")
        else:
            self.add("FAIL", "discover", f"server/discover failed: {_error_text(reply, response)}",
                     f"clients that open with {modern} fall back to initialize; check that a proxy passes the "
                     "MCP-Protocol-Version, Mcp-Method and Mcp-Name headers")

    async def tool_budget(self, session: dict[str, str]) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: Any = None
        for page in range(50):
            params = {"cursor": cursor} if cursor else {}
            response = await self.http.post(self.url, headers=self.headers(session), json={
                "jsonrpc": "2.0", "id": f"doctor-tools-{page}", "method": "tools/list", "params": params})
            reply = _reply(response, f"doctor-tools-{page}")
            result = reply.get("result") if reply else None
            if not isinstance(result, dict):
                self.add("FAIL", "tools", f"tools/list failed: {_error_text(reply, response)}", "see the server log")
                return tools
            tools += [t for t in result.get("tools", []) if isinstance(t, dict)]
            if not (cursor := result.get("nextCursor")):
                break
        size = len(json.dumps(tools, separators=(",", ":")).encode())
        count = len(tools)
        trim = "serve fewer tools: --read-only, or fewer modules in tools.dirs"
        if count > _MAX_TOOLS:
            self.add("WARN", "tools", f"{count} tools: more than several clients handle well (about 100)", trim)
        elif count > _MAX_TOOLS_SOME_CLIENTS:
            self.add("WARN", "tools", f"{count} tools: some clients (Cursor, historically) use only the first "
                                      f"{_MAX_TOOLS_SOME_CLIENTS}", trim)
        if size > _MAX_LIST_BYTES:
            self.add("WARN", "tools", f"tools/list is {size / 1000:.0f} KB of JSON, paid for in every conversation's "
                                      "context", "shorten descriptions and argument schemas")
        if count <= _MAX_TOOLS_SOME_CLIENTS and size <= _MAX_LIST_BYTES:
            self.add("PASS", "tools", f"{count} tools, {size / 1000:.1f} KB of definitions (as this token sees them)")
        return tools

    async def streaming(self, session: dict[str, str], tools: list[dict[str, Any]]) -> None:
        by_name = {t.get("name"): t for t in tools}
        probe = by_name.get("audit_assets")
        arguments: dict[str, Any] = {}
        if probe is not None and "delay_ms" in probe.get("inputSchema", {}).get("properties", {}):
            arguments = {"delay_ms": _STREAM_DELAY_MS}
        else:  # any read-only tool that says it reports progress and needs no arguments
            probe = next((t for t in tools if "progress" in str(t.get("description", "")).lower()
                          and t.get("annotations", {}).get("readOnlyHint") is True
                          and not t.get("inputSchema", {}).get("required")), None)
        if probe is None:
            self.add("WARN", "sse", "cannot check streaming: no read-only tool here reports progress",
                     "run `mcp-platform init` in the server's folder for the example tools (audit_assets), or "
                     "serve a read-only tool that reports progress, to make this check possible")
            return
        body = {"jsonrpc": "2.0", "id": "doctor-sse", "method": "tools/call",
                "params": {"name": probe["name"], "arguments": arguments, "_meta": {"progressToken": "doctor"}}}
        started = self.clock()
        first: float | None = None
        total: float | None = None
        async with self.http.stream("POST", self.url, json=body, headers=self.headers(session)) as response:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                await response.aread()
                self.add("WARN", "sse", f"{probe['name']} answered without streaming (HTTP {response.status_code})",
                         "cannot tell whether a proxy buffers streams")
                return
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk.replace("\r\n", "\n")
                events, _, buffer = buffer.rpartition("\n\n")
                for message in _sse_messages(events):
                    if message.get("method") == "notifications/progress" and first is None:
                        first = self.clock() - started
                    elif message.get("id") == "doctor-sse":
                        total = self.clock() - started
                if total is not None:
                    break
        self._judge_stream(probe["name"], first, total)

    def _judge_stream(self, name: str, first: float | None, total: float | None) -> None:
        if total is None:
            self.add("FAIL", "sse", f"the {name} stream ended without a result",
                     "a proxy may cut long responses: raise its read timeout")
        elif first is None:
            self.add("WARN", "sse", f"{name} sent no progress events", "cannot tell whether a proxy buffers streams")
        elif total < 0.2:
            self.add("WARN", "sse", f"{name} finished in {total * 1000:.0f} ms, too fast to tell buffering apart")
        elif first <= total / 2:
            self.add("PASS", "sse", f"first progress after {first * 1000:.0f} ms, result after {total * 1000:.0f} ms: "
                                    "streams are not buffered")
        else:
            self.add("FAIL", "sse", f"progress arrived only with the result ({first * 1000:.0f} of "
                                    f"{total * 1000:.0f} ms): something in between buffers the SSE stream",
                     "turn response buffering off for this path (nginx: proxy_buffering off, or honour "
                     "X-Accel-Buffering: no) and do not compress text/event-stream")


async def diagnose(url: str, *, token: str | None = None, origin: str | None = None, timeout: float = 15.0,
                   clock: Callable[[], float] = time.monotonic,
                   transport: httpx2.AsyncBaseTransport | None = None) -> list[Finding]:
    """Probe `url` and return the findings, in the order a client meets them."""
    async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport) as http:
        return await _Doctor(url, token=token, origin=origin, http=http, clock=clock).run()


def run_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from mcp_platform.onboarding.connect import DEFAULT_TOKEN_ENV

    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"mcp-platform doctor: the URL must be http:// or https:// with a host, not {args.url[:80]!r}",
              file=sys.stderr)
        return 2
    if parts.username is not None or parts.password is not None:
        print("mcp-platform doctor: the URL must not carry credentials; use --token-env", file=sys.stderr)
        return 2
    token = args.token
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"mcp-platform doctor: ${args.token_env} is not set", file=sys.stderr)
            return 2
    elif token is None:
        token = os.environ.get(DEFAULT_TOKEN_ENV) or None
    print(f"mcp-platform doctor {args.url}")
    findings = asyncio.run(diagnose(args.url, token=token, origin=args.origin, timeout=args.timeout))
    for finding in findings:
        print(finding.render())
    counts = {status: sum(f.status == status for f in findings) for status in ("PASS", "WARN", "FAIL")}
    print(f"{counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed")
    return 1 if counts["FAIL"] else 0
