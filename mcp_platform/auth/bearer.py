"""The `bearer` verifier: named, scoped tokens kept only as SHA-256 hashes, verified in constant time.

Tokens are 256-bit random strings, so a plain SHA-256 is enough to store them (a slow password hash protects
guessable secrets; these are not). `MCP_PLATFORM_TOKEN` adds one unnamed token with every scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, String, Table, delete, insert, select

from mcp_platform.auth.chain import Presented
from mcp_platform.auth_types import SCOPES, Principal, expand_scopes
from mcp_platform.errors import StoreUnavailable
from mcp_platform.stores.sql import STATE_METADATA, StateDB, reachable

__all__ = ["BearerVerifier", "TokenInfo", "TokenStore", "bearer_token", "check_new_token", "generate_token",
           "hash_token"]

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "mcpp_"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_REFRESH_INTERVAL = 1.0
_MAX_AGE = 5.0
_REFRESH_TIMEOUT = 2.0

tokens_table = Table(
    "auth_tokens", STATE_METADATA,
    Column("name", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)


def check_new_token(name: str, scopes: list[str]) -> None:
    """`ValueError` naming the problem unless `name` and `scopes` make a token `mcp-platform token create` may make
    (the state database's and Redis's alike)."""
    if not _NAME.fullmatch(name):
        raise ValueError("token name must be 1-64 characters of A-Z a-z 0-9 _ . -")
    if not scopes:
        raise ValueError(f"give at least one scope: {', '.join(SCOPES)}")
    expand_scopes(scopes)  # validates the names


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


MAX_CREDENTIAL = 16384
"""Longer is no credential of any verifier's (a JWT with many claims is a few kB); the head cap bounds it anyway."""


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer ...` header, or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > MAX_CREDENTIAL:
        return None
    return credential


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    scopes: tuple[str, ...]
    created_at: float


class TokenStore:
    """Named tokens in the state database. Only hashes are stored; a token is shown once, when created."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    async def create(self, name: str, scopes: list[str]) -> str:
        check_new_token(name, scopes)
        token = generate_token()
        async with self._db.engine.begin() as conn:
            if (await conn.execute(select(tokens_table.c.name).where(tokens_table.c.name == name))).first():
                raise ValueError(f"a token named {name!r} already exists; revoke it first")
            await conn.execute(insert(tokens_table).values(
                name=name, token_hash=hash_token(token), scopes=",".join(sorted(set(scopes))), created_at=time.time()))
        return token

    async def list(self) -> list[TokenInfo]:
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(select(tokens_table).order_by(tokens_table.c.name))).all()
        return [TokenInfo(row.name, tuple(row.scopes.split(",")), row.created_at) for row in rows]

    async def revoke(self, name: str) -> bool:
        async with self._db.engine.begin() as conn:
            result = await conn.execute(delete(tokens_table).where(tokens_table.c.name == name))
        return bool(result.rowcount)

    async def hashes(self) -> dict[str, Principal]:
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(select(tokens_table))).all()
        return {row.token_hash: Principal(row.name, expand_scopes(row.scopes.split(","))) for row in rows}


class BearerVerifier:
    """Checks a presented token against the env token and the store's hashes, without early exits on a match,
    so timing says nothing about which token (or how much of one) was right. The CLI may create or revoke tokens
    while the server runs: a new token works within a second, a revoked one stops within five (`keep_fresh`, a
    background task, reloads the hashes; a request never waits on the database for a token it knows)."""

    name = "bearer"

    def __init__(self, store: TokenStore | None, env_token: str | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._env_hash = hash_token(env_token) if env_token else None
        self._env_principal = Principal("env-token", expand_scopes(SCOPES))
        self._known: dict[str, Principal] = {}
        self._loaded_at = float("-inf")
        self._loaded_once = False
        self._reloading: asyncio.Task[None] | None = None
        self._clock = clock

    async def refresh(self) -> None:
        # Stamp first, so requests arriving during the query do not all start one of their own.
        self._loaded_at = self._clock()
        if self._store is None:
            return
        try:
            async with reachable("state database"):
                self._known = await self._store.hashes()
        except StoreUnavailable as exc:
            if not self._loaded_once:
                raise
            # Keep serving the tokens we know; new or revoked ones are seen once the database is back.
            logger.warning("cannot refresh tokens (%s); using the %d known ones", exc, len(self._known))
        self._loaded_once = True

    async def verify(self, token: str, request: Presented | None = None) -> Principal | None:
        """The token's principal, or None: not one of ours (the next verifier in `auth.mode` may know it)."""
        presented = hash_token(token)
        found = self._match(presented)
        if (found is None and self._store is not None and token.startswith(TOKEN_PREFIX)
                and self._clock() - self._loaded_at >= _REFRESH_INTERVAL):
            # It may be a token the CLI just created (they all start `mcpp_`; a JWT or another verifier's token
            # never costs a reload): look once, but a slow database must not hold the request.
            await self._bounded_refresh()
            found = self._match(presented)
        return found

    async def _bounded_refresh(self) -> None:
        """Reload, waiting at most `_REFRESH_TIMEOUT`. The reload itself is never cancelled: cancelling a query
        mid-flight can leave the database driver's connection half-closed, so a slow one finishes in the
        background (one at a time) while requests go on with the tokens already known."""
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self.refresh())
        done, _ = await asyncio.wait({self._reloading}, timeout=_REFRESH_TIMEOUT)
        if not done:
            logger.warning("reloading tokens takes over %g s; using the %d known ones", _REFRESH_TIMEOUT,
                           len(self._known))
            return
        if (problem := self._reloading.exception()) is not None:
            logger.warning("reloading tokens failed: %s", problem)

    async def keep_fresh(self, stop: asyncio.Event, interval: float = _MAX_AGE) -> None:
        """Reload the hashes every `interval` seconds until `stop` is set (revocations take effect). The app's
        lifespan sets `stop` and awaits this, rather than cancelling it in the middle of a query."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                await self._bounded_refresh()
        if self._reloading is not None:
            await asyncio.wait({self._reloading}, timeout=_REFRESH_TIMEOUT)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.name, "named_tokens": len(self._known), "env_token": self._env_hash is not None}

    def _match(self, presented: str) -> Principal | None:
        found: Principal | None = None
        if self._env_hash is not None and hmac.compare_digest(presented, self._env_hash):
            found = self._env_principal
        for token_hash, principal in self._known.items():
            if hmac.compare_digest(presented, token_hash):
                found = principal
        return found
