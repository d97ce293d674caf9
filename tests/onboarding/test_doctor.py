"""`mcp-platform doctor` against real servers on loopback: healthy, and each misconfiguration it must name — a
wrong Origin allow-list, auth off, a Host allow-list, a buffering reverse proxy, a proxy that answers OAuth
discovery — plus the ways a probe can fail before it starts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_platform.app import create_app
from mcp_platform.cli import main
from mcp_platform.onboarding.doctor import Finding, diagnose
from tests.support import TOKEN, free_port, make_settings, running_server

REPO_TOOLS = Path(__file__).parents[2] / "tools"
HEALTHY = ["reachable", "tls", "host", "origin", "auth", "oauth", "initialize", "discover", "tools", "sse"]


def _app(tmp_path: Path, **overrides: object) -> Starlette:
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    shutil.copy(REPO_TOOLS / "status.py", tools / "status.py")  # audit_assets streams progress
    return create_app(make_settings(tmp_path, tools={"dirs": [tools]}, **overrides))


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def buffering_proxy(upstream: str, *, answer_oauth: bool = False) -> Starlette:
    """A reverse proxy that reads the whole upstream response before it answers, as nginx does with
    proxy_buffering on: an SSE stream reaches the client in one piece, at the end."""

    async def forward(request: Request) -> Response:
        if answer_oauth and request.url.path.startswith("/.well-known/oauth-authorization-server"):
            return JSONResponse({"issuer": "https://login.example"})
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        async with httpx2.AsyncClient(timeout=30) as client:
            upstream_response = await client.request(request.method, upstream + request.url.path, headers=headers,
                                                     content=await request.body())
        dropped = ("content-length", "transfer-encoding", "connection", "content-encoding")
        return Response(upstream_response.content, status_code=upstream_response.status_code,
                        headers={k: v for k, v in upstream_response.headers.items() if k not in dropped})

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])])


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(_app(tmp_path_factory.mktemp("healthy"))) as base:
        yield base


def test_doctor_reports_a_correct_server_healthy_and_exits_0(healthy: str, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCTOR_TEST_TOKEN", TOKEN)
    code = main(["doctor", f"{healthy}/mcp", "--token-env", "DOCTOR_TEST_TOKEN", "--origin", healthy])
    out = capsys.readouterr().out
    lines = out.splitlines()[1:-1]
    assert code == 0, out
    assert [line.split()[0] for line in lines] == ["PASS"] * len(HEALTHY)
    assert [line.split()[1] for line in lines] == HEALTHY
    assert TOKEN not in out
    assert "first progress after" in out


@pytest.mark.anyio
async def test_doctor_names_a_wrong_origin_allow_list(tmp_path: Path) -> None:
    app = _app(tmp_path, http={"allowed_origins": ["https://other.example"]})
    with running_server(app) as base:
        findings = _by_check(await diagnose(f"{base}/mcp", token=TOKEN, origin=base))
    assert findings["origin"].status == "FAIL"
    assert f'add "{base}" to http.allowed_origins' in findings["origin"].fix
    assert [f.check for f in findings.values() if f.status != "PASS"] == ["origin"]


@pytest.mark.anyio
async def test_a_refused_origin_the_user_did_not_ask_about_is_only_a_warning(tmp_path: Path) -> None:
    app = _app(tmp_path, http={"allowed_origins": ["https://other.example"]})
    with running_server(app) as base:
        findings = _by_check(await diagnose(f"{base}/mcp", token=TOKEN))
    assert findings["origin"].status == "WARN" and "browser" in findings["origin"].message


def test_doctor_fails_when_auth_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(_app(tmp_path, auth={"mode": "none"})) as base:
        code = main(["doctor", f"{base}/mcp"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  auth" in out and "auth is off" in out
    assert "PASS  sse" in out  # the other checks still ran, without a token


@pytest.mark.anyio
async def test_doctor_detects_a_buffering_proxy(healthy: str) -> None:
    with running_server(buffering_proxy(healthy)) as proxy:
        findings = _by_check(await diagnose(f"{proxy}/mcp", token=TOKEN))
    assert findings["sse"].status == "FAIL"
    assert "buffers the SSE stream" in findings["sse"].message and "proxy_buffering off" in findings["sse"].fix
    assert [f.check for f in findings.values() if f.status != "PASS"] == ["sse"]


@pytest.mark.anyio
async def test_doctor_fails_when_oauth_discovery_answers(healthy: str) -> None:
    with running_server(buffering_proxy(healthy, answer_oauth=True)) as proxy:
        findings = _by_check(await diagnose(f"{proxy}/mcp", token=TOKEN))
    assert findings["oauth"].status == "FAIL"
    assert "/.well-known/oauth-authorization-server -> 200" in findings["oauth"].message


@pytest.mark.anyio
async def test_doctor_names_a_host_the_server_refuses(tmp_path: Path) -> None:
    with running_server(_app(tmp_path, http={"allowed_hosts": ["mcp.example.com"]})) as base:
        findings = await diagnose(f"{base}/mcp", token=TOKEN)
    assert [(f.status, f.check) for f in findings] == [("PASS", "reachable"), ("PASS", "tls"), ("FAIL", "host")]
    assert "http.allowed_hosts" in findings[-1].fix


@pytest.mark.anyio
async def test_without_a_token_doctor_checks_what_it_can_and_warns(healthy: str) -> None:
    findings = await diagnose(f"{healthy}/mcp")
    assert [f.check for f in findings] == ["reachable", "tls", "host", "origin", "auth", "oauth", "token"]
    assert findings[-1].status == "WARN" and "--token-env" in findings[-1].fix


@pytest.mark.anyio
async def test_a_refused_token_is_a_failure(healthy: str) -> None:
    findings = _by_check(await diagnose(f"{healthy}/mcp", token="not-a-real-token-at-all"))
    assert findings["initialize"].status == "FAIL" and "refused" in findings["initialize"].message


@pytest.mark.anyio
async def test_a_wrong_path_and_a_closed_port_are_named(healthy: str) -> None:
    wrong_path = await diagnose(f"{healthy}/not-mcp", token=TOKEN)
    closed = await diagnose(f"http://127.0.0.1:{free_port()}/mcp", token=TOKEN)
    assert [(f.status, f.check) for f in wrong_path] == [("FAIL", "reachable")]
    assert "http.path" in wrong_path[0].fix
    assert [(f.status, f.check) for f in closed] == [("FAIL", "reachable")]
    assert "cannot connect" in closed[0].message


@pytest.mark.anyio
async def test_plain_http_to_a_remote_host_is_a_tls_warning(tmp_path: Path) -> None:
    app = _app(tmp_path, http={"allowed_hosts": ["mcp.example.com"]})
    async with app.router.lifespan_context(app):
        findings = _by_check(await diagnose("http://mcp.example.com/mcp", token=TOKEN,
                                            transport=httpx2.ASGITransport(app=app)))
    assert findings["tls"].status == "WARN" and "https://" in findings["tls"].fix


@pytest.mark.parametrize("url", ["ftp://example.com/mcp", "not a url", "http:///mcp",
                                 "https://user:secret@example.com/mcp"])
def test_doctor_refuses_unusable_urls(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", url]) == 2
    assert "secret" not in capsys.readouterr().err


def test_doctor_needs_the_named_token_variable(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DOCTOR_UNSET_TOKEN", raising=False)
    assert main(["doctor", "http://127.0.0.1:9/mcp", "--token-env", "DOCTOR_UNSET_TOKEN"]) == 2
    assert "DOCTOR_UNSET_TOKEN is not set" in capsys.readouterr().err
