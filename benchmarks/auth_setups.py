"""The `--auth` settings the benchmarks run our server with: what each one sets, and the credential it sends.

Each setup is the shipped CLI with the shipped defaults plus environment variables only (as an operator would set
them in a container), and the client sends one credential on every call:

- `bearer`: `MCP_PLATFORM_TOKEN` (what every other row of ours does);
- `oauth` / `oauth-hs256`: `auth.mode = bearer,oauth` with a static RSA-2048 `public_key` (RS256, what identity
  providers sign with) or an `hs256_secret`; one JWT minted here with `iss`, `aud` = the server's URL, `exp` in an
  hour. The verifier remembers a verified token for up to 60 s, so a run measures that steady state;
  `oauth_verify.py` times the first verification of fresh tokens;
- `redis` / `redis-nocache`: `auth.mode = bearer,redis`, one token written in the README's layout to the bench's
  Redis database; `cache_seconds` 5 (the default: the steady state is the local answer cache) or 0 (one Redis
  lookup per call: what a miss costs);
- `forward` / `forward-nocache`: `auth.mode = bearer,forward` against `auth_service.py` (Starlette on uvicorn on
  a loopback port the OS picks, a subprocess of the benchmark) answering 200 with `X-Auth-Request-User`;
  `cache_seconds` 5 or 0 (one request to the service per call).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

AuthName = Literal["bearer", "oauth", "oauth-hs256", "redis", "redis-nocache", "forward", "forward-nocache"]
AUTH_CHOICES: tuple[AuthName, ...] = ("bearer", "oauth", "oauth-hs256", "redis", "redis-nocache", "forward",
                                      "forward-nocache")
HERE = Path(__file__).resolve().parent
ISSUER = "https://issuer.bench.invalid/"
HS256_SECRET = "bench-hs256-secret-0123456789abcdef0123"
"""Throwaway: signs only tokens for a loopback benchmark server."""
REDIS_TOKEN = "mcpp_bench-redis-token-0123456789abcdef"
FORWARD_TOKEN = "bench-forward-token-0123456789abcdef"
KEY_PREFIX = "mcp-platform:token:"
SERVICE_START_SECONDS = 30.0


@dataclass(frozen=True)
class PreparedAuth:
    """What the server gets (environment variables) and what the client sends (`token`)."""

    name: AuthName
    env: dict[str, str]
    token: str


def server_url(port: int) -> str:
    """Our server's URL as the client reaches it: the `resource` the JWT's `aud` must name."""
    return f"http://127.0.0.1:{port}/mcp"


def rsa_key_pair() -> tuple[Any, str]:
    """A fresh RSA-2048 private key and its public key as PEM (`auth.oauth.public_key`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def mint_jwt(signing_key: Any, alg: str, resource: str, *, subject: str = "bench", lifetime: float = 3600.0) -> str:
    """One access token as an identity provider issues it, for `resource`, with every scope."""
    import jwt

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": resource, "sub": subject, "scope": "read write admin", "iat": now,
              "exp": now + int(lifetime)}
    return jwt.encode(claims, signing_key, algorithm=alg)


def oauth_env(resource: str, public_key: str | None) -> dict[str, str]:
    """`bearer,oauth` with a static public key (RS256), or the HS256 secret when `public_key` is None."""
    env = {"MCP_PLATFORM_AUTH__MODE": "bearer,oauth", "MCP_PLATFORM_AUTH__OAUTH__ISSUER": ISSUER,
           "MCP_PLATFORM_AUTH__OAUTH__RESOURCE": resource}
    if public_key is None:
        env["MCP_PLATFORM_AUTH__OAUTH__HS256_SECRET"] = HS256_SECRET
    else:
        env["MCP_PLATFORM_AUTH__OAUTH__PUBLIC_KEY"] = public_key
    return env


def redis_entry(token: str) -> tuple[str, str]:
    """The key and JSON value of README "Tokens your platform keeps in Redis" for `token` (never expiring)."""
    key = KEY_PREFIX + hashlib.sha256(token.encode()).hexdigest()
    return key, json.dumps({"name": "bench-redis", "scopes": ["read", "write", "admin"], "expires_at": None})


def redis_env(redis_url: str, cache_seconds: float) -> dict[str, str]:
    return {"MCP_PLATFORM_AUTH__MODE": "bearer,redis", "MCP_PLATFORM_AUTH__REDIS__URL": redis_url,
            "MCP_PLATFORM_AUTH__REDIS__CACHE_SECONDS": f"{cache_seconds:g}"}


def forward_env(service_url: str, cache_seconds: float) -> dict[str, str]:
    return {"MCP_PLATFORM_AUTH__MODE": "bearer,forward", "MCP_PLATFORM_AUTH__FORWARD__URL": service_url,
            "MCP_PLATFORM_AUTH__FORWARD__CACHE_SECONDS": f"{cache_seconds:g}"}


@contextlib.contextmanager
def auth_service() -> Iterator[str]:
    """`auth_service.py` in a subprocess; its URL (it binds loopback port 0 and prints the port it got)."""
    process = subprocess.Popen([sys.executable, str(HERE / "auth_service.py")], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the child prints its port once it listens, or exits
        if not line.strip().isdigit():
            raise RuntimeError(f"the auth service did not start (exit status {process.poll()})")
        yield f"http://127.0.0.1:{int(line)}/auth"
    finally:
        process.terminate()
        try:
            process.wait(timeout=SERVICE_START_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _cache_seconds(name: AuthName) -> float:
    return 0.0 if name.endswith("-nocache") else 5.0


@contextlib.contextmanager
def prepared(name: AuthName, port: int, redis_url: str | None) -> Iterator[PreparedAuth]:
    """The setup `name` for a server on `port`, with what it needs running (the auth service, the Redis entry)
    until the block ends. `redis_url`: the bench's Redis database, needed by the redis setups."""
    from benchmarks.servers import TOKEN

    if name == "bearer":
        yield PreparedAuth(name, {}, TOKEN)
    elif name in ("oauth", "oauth-hs256"):
        resource = server_url(port)
        if name == "oauth":
            private, public = rsa_key_pair()
            yield PreparedAuth(name, oauth_env(resource, public), mint_jwt(private, "RS256", resource))
        else:
            yield PreparedAuth(name, oauth_env(resource, None), mint_jwt(HS256_SECRET, "HS256", resource))
    elif name in ("redis", "redis-nocache"):
        if redis_url is None:
            raise ValueError(f"--auth {name} needs a Redis database (--redis-url)")
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        key, value = redis_entry(REDIS_TOKEN)
        try:
            try:
                client.set(key, value)
            except redis.RedisError as exc:
                raise RuntimeError(f"--auth {name}: cannot write the token to Redis: {type(exc).__name__}") from None
            yield PreparedAuth(name, redis_env(redis_url, _cache_seconds(name)), REDIS_TOKEN)
        finally:
            with contextlib.suppress(redis.RedisError):
                client.delete(key)
            client.close()
    else:
        with auth_service() as url:
            yield PreparedAuth(name, forward_env(url, _cache_seconds(name)), FORWARD_TOKEN)
