"""Bearer tokens: hashed storage, scopes and their hierarchy, 401/403 on the wire, revocation, the CLI."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import anyio
import pytest

from mcp_platform.app import create_app
from mcp_platform.auth import BearerVerifier, Presented, TokenStore, bearer_token, chained, hash_token
from mcp_platform.auth_types import Principal, expand_scopes
from mcp_platform.cli import main
from mcp_platform.errors import ConfigError, CredentialUnverifiable, StoreUnavailable, Unauthorized
from mcp_platform.settings import load_settings
from mcp_platform.stores.sql import StateDB
from tests.support import (
    TestClock,
    asgi_client,
    create_token,
    eventually,
    make_settings,
    modern_headers,
    modern_request,
)

pytestmark = pytest.mark.anyio


async def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    db = StateDB(f"sqlite+aiosqlite:///{tmp_path}/state.db")
    await db.start()
    try:
        token = await TokenStore(db).create("ci", ["read"])
    finally:
        await db.close()
    raw = (tmp_path / "state.db").read_bytes()
    assert token.encode() not in raw
    rows = sqlite3.connect(tmp_path / "state.db").execute("select token_hash from auth_tokens").fetchall()
    assert rows == [(hash_token(token),)]


@pytest.mark.parametrize(("name", "scopes"), [("", ["read"]), ("bad name", ["read"]), ("x" * 65, ["read"]),
                                              ("ok", []), ("ok", ["root"]), ("ok'; drop table x;--", ["read"])])
async def test_token_create_refuses_bad_input(tmp_path: Path, name: str, scopes: list[str]) -> None:
    db = StateDB(f"sqlite+aiosqlite:///{tmp_path}/state.db")
    await db.start()
    try:
        with pytest.raises(ValueError):
            await TokenStore(db).create(name, scopes)
    finally:
        await db.close()


async def test_verifier_picks_up_new_and_revoked_tokens(tmp_path: Path) -> None:
    db = StateDB(f"sqlite+aiosqlite:///{tmp_path}/state.db")
    await db.start()
    clock = TestClock(0.0)
    try:
        store = TokenStore(db)
        verifier = BearerVerifier(store, env_token=None, clock=clock)
        await verifier.refresh()
        token = await store.create("late", ["write"])
        assert await verifier.verify(token) is None  # refreshed less than a second ago
        clock.advance(1.5)
        principal = await verifier.verify(token)
        assert principal is not None and principal.name == "late"
        assert principal.scopes == frozenset({"read", "write"})
        await store.revoke("late")
        assert await verifier.verify(token) is not None  # a known token never waits on the database
        stop = asyncio.Event()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(verifier.keep_fresh, stop, 0.01)  # the app's background reload, sped up
                async def revoked() -> bool:
                    return await verifier.verify(token) is None

                await eventually(revoked, what="the revocation")
                stop.set()  # as the app's lifespan stops it: never cancelled mid-query
    finally:
        await db.close()


def test_scope_hierarchy() -> None:
    assert expand_scopes(["admin"]) == {"read", "write", "admin"}
    assert expand_scopes(["write"]) == {"read", "write"}
    with pytest.raises(ValueError, match="valid scopes"):
        expand_scopes(["superuser"])


@pytest.mark.parametrize(("header", "expected"), [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None),
                                                  ("Bearer", None), (None, None), ("Bearer " + "a" * 600, "a" * 600),
                                                  ("Bearer " + "a" * 16385, None)])
def test_bearer_token_parsing(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


async def test_read_token_sees_only_read_tools_and_gets_403_for_others(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    reader = await create_token(settings, "reader", ["read"])
    app = create_app(settings, capabilities=[])
    async with asgi_client(app, token=reader) as client:
        listed = await client.post("/mcp", headers=modern_headers("tools/list", token=reader),
                                   json=modern_request("tools/list"))
        names = {t["name"] for t in listed.json()["result"]["tools"]}
        assert "add" in names and "write_thing" not in names and "admin_thing" not in names
        for tool in ("write_thing", "admin_thing"):
            response = await client.post("/mcp", headers=modern_headers("tools/call", name=tool, token=reader),
                                         json=modern_request("tools/call", {"name": tool,
                                                                            "arguments": {"value": "x"}}))
            assert response.status_code == 403
            challenge = response.headers["www-authenticate"]
            assert 'error="insufficient_scope"' in challenge and "scope=" in challenge
            assert reader not in response.text


def test_cli_token_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_PLATFORM_STATE__URL", f"sqlite+aiosqlite:///{tmp_path}/state.db")
    assert main(["token", "create", "--name", "deploy", "--scopes", "read,write"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("mcpp_") and len(token) > 40
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "deploy\tread,write" in listing and token not in listing
    assert main(["token", "create", "--name", "deploy"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["token", "revoke", "deploy"]) == 0
    assert main(["token", "revoke", "deploy"]) == 1


def test_no_auth_is_refused_off_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err


@pytest.mark.parametrize(("given", "expected"), [
    ("bearer", ["bearer"]), ("none", ["none"]), ("bearer,oauth", ["bearer", "oauth"]),
    (" bearer , redis ", ["bearer", "redis"]), (["forward"], ["forward"]),
])
def test_auth_mode_takes_one_name_a_list_or_comma_separated_names(given: object, expected: list[str]) -> None:
    forward = {"url": "http://127.0.0.1:9/auth"}  # forward needs its service
    assert load_settings(auth={"mode": given, "forward": forward}).auth.mode == expected


def test_auth_mode_from_the_environment_is_a_plain_name_or_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_PLATFORM_AUTH__MODE", "bearer,oauth")
    assert load_settings().auth.mode == ["bearer", "oauth"]
    monkeypatch.setenv("MCP_PLATFORM_AUTH__MODE", "none")
    assert load_settings().auth.off


@pytest.mark.parametrize(("given", "problem"), [
    ("", "at least one verifier"), ([], "at least one verifier"), ("bearer,bearer", "once"),
    ("none,bearer", "cannot be combined"), ("password", "auth.mode"), ([3], "auth.mode"), ("x" * 10_000, "auth.mode"),
])
def test_auth_mode_refuses_hostile_lists_naming_the_problem(given: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(auth={"mode": given})


class _Known:
    """A verifier of the test's own: claims the tokens it was given, rejects `bad-...` ones, passes the rest."""

    def __init__(self, name: str, tokens: dict[str, str]) -> None:
        self.name = name
        self.tokens = tokens
        self.asked: list[str] = []

    async def verify(self, token: str, request: Presented) -> Principal | None:
        self.asked.append(token)
        if token.startswith(f"bad-{self.name}"):
            raise Unauthorized(credentials_sent=True, description=f"{self.name} says expired")
        return Principal(self.tokens[token], frozenset({"read"})) if token in self.tokens else None

    def describe(self) -> dict[str, object]:
        return {"mode": self.name}


@pytest.mark.anyio
async def test_a_chain_asks_in_order_and_stops_at_the_first_verifier_that_claims_the_token() -> None:
    first, second = _Known("first", {"a": "alice"}), _Known("second", {"a": "shadow", "b": "bob"})
    chain = chained([first, second])
    request = Presented({"method": "POST", "path": "/mcp", "client": ("10.0.0.7", 1234)}, {})
    assert (await chain.verify("a", request)) == Principal("alice", frozenset({"read"}))
    assert second.asked == []  # claimed by the first: never shown to the second (no passthrough)
    assert (await chain.verify("b", request)) == Principal("bob", frozenset({"read"}))
    assert await chain.verify("c", request) is None
    with pytest.raises(Unauthorized, match="Unauthorized"):
        await chain.verify("bad-first", request)
    assert second.asked == ["b", "c"]
    assert chain.describe() == {"verifiers": [{"mode": "first"}, {"mode": "second"}]}
    assert chained([first]) is first  # one verifier: no chain on the hot path
    assert (request.client, request.method, request.uri) == ("10.0.0.7", "POST", "/mcp")


def test_a_rejection_reason_and_the_oauth_hints_reach_the_challenge_header_quoted_safely() -> None:
    refused = Unauthorized(credentials_sent=True, description='kid "x"\r\nSet-Cookie: a=b \\ é')
    wire = refused.challenged(credentials_sent=True, resource_metadata="https://mcp.example.com/.well-known/"
                              "oauth-protected-resource/mcp", scope="mcp:read mcp:write").wire_headers()
    header = wire[0][1].decode()
    assert header.startswith('Bearer realm="mcp-platform", resource_metadata="https://mcp.example.com/')
    assert 'scope="mcp:read mcp:write"' in header and 'error="invalid_token"' in header
    assert "\r" not in header and "\n" not in header and 'kid ?x?' in header and "é" not in header
    assert Unauthorized(credentials_sent=False).wire_headers()[0][1] == b'Bearer realm="mcp-platform"'


class _Down:
    name = "down"

    async def verify(self, token: str, request: Presented) -> Principal | None:
        raise StoreUnavailable("the Redis token store is unavailable: connection refused")

    def describe(self) -> dict[str, object]:
        return {"mode": self.name}


@pytest.mark.anyio
async def test_a_verifier_that_cannot_decide_lets_later_ones_claim_and_otherwise_its_outage_is_the_answer() -> None:
    later = _Known("later", {"ci": "ci"})
    chain = chained([_Down(), later])
    request = Presented({}, {})
    assert await chain.verify("ci", request) == Principal("ci", frozenset({"read"}))
    with pytest.raises(StoreUnavailable, match="Redis token store"):  # 503, not a 401 for a maybe-valid token
        await chain.verify("unknown", request)
    with pytest.raises(Unauthorized):  # a later verifier that knows the token and rejects it decides
        await chain.verify("bad-later", request)


class _OwnButUnverifiable(_Down):
    async def verify(self, token: str, request: Presented) -> Principal | None:
        raise CredentialUnverifiable("the identity provider's JWKS (idp.example)", "connection refused")


@pytest.mark.anyio
async def test_a_credential_its_verifier_claims_but_cannot_check_goes_to_no_later_verifier() -> None:
    later = _Known("later", {"jwt": "someone"})
    with pytest.raises(CredentialUnverifiable, match="JWKS"):
        await chained([_OwnButUnverifiable(), later]).verify("jwt", Presented({}, {}))
    assert later.asked == []  # a JWT is never handed to, say, a forward-auth service while the JWKS is down


@pytest.mark.anyio
async def test_only_a_token_of_ours_that_is_not_known_yet_makes_the_bearer_verifier_reload(tmp_path: Path) -> None:
    db = StateDB(f"sqlite+aiosqlite:///{tmp_path}/state.db")
    await db.start()
    clock = TestClock(0.0)
    try:
        store = TokenStore(db)
        verifier = BearerVerifier(store, env_token=None, clock=clock)
        await verifier.refresh()
        token = await store.create("late", ["read"])
        clock.advance(1.5)
        # A JWT or another verifier's token (no `mcpp_` prefix) never costs a reload of the named tokens...
        assert await verifier.verify("eyJhbGciOiJSUzI1NiJ9.e30.sig") is None
        assert await verifier.verify("some-redis-or-gateway-token") is None
        assert verifier.describe()["named_tokens"] == 0
        # ...while an `mcpp_` one does, once a second at most.
        assert await verifier.verify(token) is not None
    finally:
        await db.close()
