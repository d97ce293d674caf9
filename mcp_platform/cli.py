"""The `mcp-platform` command: serve, stdio, token, tools, init, connect, doctor, bundle, llms, version."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp_platform.errors import ConfigError
from mcp_platform.redact import secret_values
from mcp_platform.settings import Settings, load_settings

__all__ = ["main"]

def configure_logging(level: str, secrets: Sequence[str] = (), log_format: str = "text") -> dict[str, Any]:
    """Log to stderr, as text lines or JSON objects (`log_format`), through a formatter that masks every secret
    (`secrets`: the configured ones) and drops the query string of every logged request."""
    from mcp_platform.logcontext import JsonFormatter
    from mcp_platform.redact import RedactingFormatter

    formatter = JsonFormatter if log_format == "json" else RedactingFormatter
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"()": formatter, "fmt": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                 "secrets": list(secrets)}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"uvicorn": {"handlers": [], "propagate": True},
                    "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
                    # One INFO line per request to a JWKS or a forward-auth service would drown the server's own.
                    "httpx2": {"handlers": [], "propagate": True, "level": "WARNING"}},
    }
    logging.config.dictConfig(config)
    return config


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), **_overrides(args))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line values, as settings overrides (they outrank the file and the environment)."""
    overrides: dict[str, Any] = {}
    http: dict[str, Any] = {}
    if getattr(args, "host", None):
        http["host"] = args.host
    if getattr(args, "port", None) is not None:
        http["port"] = args.port
    if http:
        overrides["http"] = http
    if getattr(args, "tools_dir", None):
        overrides["tools"] = {"dirs": [Path(d) for d in args.tools_dir]}
    if getattr(args, "no_auth", False):
        overrides["auth"] = {"mode": "none"}
    if getattr(args, "read_only", False):
        overrides.setdefault("tools", {})["read_only"] = True
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    return overrides


async def _first_token(settings: Settings) -> str | None:
    """On the very first start in bearer mode with no token anywhere, make one (shown once)."""
    if "bearer" not in settings.auth.mode or settings.token is not None:
        return None
    from mcp_platform.auth import TokenStore
    from mcp_platform.stores.sql import StateDB

    db = StateDB(settings.state.url)
    try:
        await db.start()
        store = TokenStore(db)
        if await store.list():
            return None
        return await store.create("default", ["admin"])
    finally:
        await db.close()


def _print_first_token(token: str, settings: Settings) -> None:
    import json

    from mcp_platform.onboarding.connect import DEFAULT_TOKEN_ENV, client_config

    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::", "") else settings.http.host
    url = f"http://{host}:{settings.http.port}{settings.http.path}"
    # The same entry `mcp-platform connect cursor` prints: the token stays in the environment, not in the file.
    cursor = client_config("cursor", url=url, project=Path.cwd(), home=Path.home()).document
    print(f"""
mcp-platform created an admin token. It is shown this once; only its hash is stored.

    {token}

Keep it in an environment variable (the Cursor entry below reads it from there):
    export {DEFAULT_TOKEN_ENV}={token}

Claude Code:
    claude mcp add --transport http mcp-platform {url} --header "Authorization: Bearer {token}"

Cursor (~/.cursor/mcp.json, or `mcp-platform connect cursor --write`):
    {json.dumps(cursor)}

More tokens: mcp-platform token create --name NAME --scopes read[,write,admin]
""", flush=True)


def _hint_examples(settings: Settings) -> None:
    """A folder with no config and no tools serves only the built-in tools: say how to get the examples."""
    from mcp_platform.onboarding.init import EXAMPLE_HINT, looks_empty

    if looks_empty(settings.config_file, list(settings.tools.dirs)):
        logging.getLogger("mcp_platform").warning(
            "no mcp-platform.toml and no tools/ folder in %s: serving the built-in tools only; %s", Path.cwd(),
            EXAMPLE_HINT)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mcp_platform import tracing
    from mcp_platform.app import create_app
    from mcp_platform.protocol.drain import Drain
    from mcp_platform.transport.limits import server_options
    from mcp_platform.transport.shutdown import FINAL_GRACE, DrainingServer

    settings = _settings(args)
    log_config = configure_logging(settings.log_level, secret_values(settings), settings.log.format)
    tracing.configure(settings)
    drain = Drain()
    app = create_app(settings, overrides=_overrides(args), freeze_gc=True, drain=drain)
    if settings.auth.off:
        logging.getLogger("mcp_platform").warning(
            "AUTH IS OFF: anyone who can reach %s:%s can call every tool. Use only for local development.",
            settings.http.host, settings.http.port)
    token = asyncio.run(_first_token(settings))
    if token is not None:
        _print_first_token(token, settings)
    _hint_examples(settings)
    # SIGTERM drains first (transport/shutdown.py): uvicorn's own graceful timeout only covers what is left after.
    config = uvicorn.Config(app, host=settings.http.host, port=settings.http.port, log_config=log_config,
                            log_level=settings.log_level, access_log=settings.http.access_log,
                            timeout_graceful_shutdown=FINAL_GRACE, server_header=False,
                            **server_options(settings.http))
    # The spans still batched go out before the process does.
    DrainingServer(config, drain, settings.http.drain_seconds, after_shutdown=tracing.shutdown).run()
    return 0


def _token(args: argparse.Namespace) -> int:
    from mcp_platform.auth import TokenStore
    from mcp_platform.stores.sql import StateDB

    settings = load_settings(args.config)
    if args.store == "redis":
        return _redis_token(args, settings)
    if getattr(args, "expires_in", None) is not None:
        print("error: --expires-in needs --store redis (state tokens last until revoked)", file=sys.stderr)
        return 2

    async def run() -> int:
        db = StateDB(settings.state.url)
        try:
            await db.start()
            store = TokenStore(db)
            if args.token_command == "create":
                scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
                token = await store.create(args.name, scopes)
                print(token)
                print(f"token {args.name!r} created with scopes {', '.join(scopes)}; it is shown only this once",
                      file=sys.stderr)
            elif args.token_command == "list":
                for info in await store.list():
                    print(f"{info.name}\t{','.join(info.scopes)}")
            elif not await store.revoke(args.name):
                print(f"no token named {args.name!r}", file=sys.stderr)
                return 1
            else:
                print(f"token {args.name!r} revoked", file=sys.stderr)
            return 0
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            await db.close()

    return asyncio.run(run())


def _redis_token(args: argparse.Namespace, settings: Settings) -> int:
    """`token ... --store redis`: the tokens the `redis` verifier reads (`auth.redis`), kept by name."""
    import time

    from redis.exceptions import RedisError

    from mcp_platform.auth.redis_admin import RedisTokenStore, parse_duration
    from mcp_platform.auth.redis_tokens import SERVICE, open_client
    from mcp_platform.stores.redis_client import UNREACHABLE, unreachable_reason

    async def run() -> int:
        client, location = open_client(settings)
        store = RedisTokenStore(client, settings.auth.redis.key_prefix)
        try:
            if args.token_command == "create":
                scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
                expires_in = None if args.expires_in is None else parse_duration(args.expires_in)
                token = await store.create(args.name, scopes, expires_in)
                print(token)
                until = "never expires" if expires_in is None else f"expires at {_utc(time.time() + expires_in)}"
                print(f"token {args.name!r} created in Redis ({location}) with scopes {', '.join(scopes)}; it "
                      f"{until} and is shown only this once", file=sys.stderr)
            elif args.token_command == "list":
                for info in await store.list():
                    expiry = "never" if info.expires_at is None else _utc(info.expires_at)
                    print(f"{info.name}\t{','.join(info.scopes) or '-'}\t{expiry}\t{info.state}")
            elif not await store.revoke(args.name):
                print(f"no token named {args.name!r} in Redis ({location})", file=sys.stderr)
                return 1
            else:
                print(f"token {args.name!r} revoked", file=sys.stderr)
            return 0
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except UNREACHABLE as exc:
            print(f"error: {SERVICE} at {location} is unavailable: {unreachable_reason(exc)}", file=sys.stderr)
            return 1
        except RedisError as exc:  # a refused command (ACL, a key of the wrong type): its text names no secret
            print(f"error: {SERVICE} at {location} refused the command: {exc}", file=sys.stderr)
            return 1
        finally:
            await client.aclose()

    return asyncio.run(run())


def _utc(seconds: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tools(args: argparse.Namespace) -> int:
    """The tools the configuration exposes, as the server would build them; `--all` adds the hidden ones, why."""
    from mcp_platform.exposure import Exposure
    from mcp_platform.onboarding.llms import build_registry

    settings = _settings(args)
    registry, failures = build_registry(Path.cwd(), dirs=settings.tools.dirs, exposure=Exposure.of(settings.tools))
    listed = [(t, "") for t in registry.all()] + (registry.hidden() if args.all else [])
    rows = [(t.name, registry.toolset(t.name) or "", t.spec.scope, "".join([
        "R" if t.spec.read_only else "-", "D" if t.spec.destructive else "-", "I" if t.spec.idempotent else "-",
        "O" if t.spec.open_world else "-"]), f"HIDDEN: {why}" if why else t.spec.description.splitlines()[0][:70])
        for t, why in listed]
    width = max([4, *(len(r[0]) for r in rows)])
    sets = max([7, *(len(r[1]) for r in rows)])
    print(f"{'tool':<{width}}  {'toolset':<{sets}}  scope  hints  description")
    for name, toolset, scope, hints, description in rows:
        print(f"{name:<{width}}  {toolset:<{sets}}  {scope:<5}  {hints}   {description}")
    hidden = len(registry.hidden())
    print(f"\n{len(registry)} exposed" + (f", {hidden} hidden" + ("" if args.all else " (--all lists them)")
                                         if hidden else ""))
    print("hints: R read-only, D destructive, I idempotent, O open-world")
    for entry in registry.unmatched_entries():
        print(f"warning: tools.enabled/disabled entry {entry!r} matches no tool and no toolset", file=sys.stderr)
    for path, reason in failures.items():
        print(f"failed to load {path}: {reason}", file=sys.stderr)
    return 1 if failures else 0


def _stdio(args: argparse.Namespace) -> int:
    import contextlib
    import os

    from mcp_platform import tracing
    from mcp_platform.app import create_app
    from mcp_platform.transport.stdio import serve_stdio

    if args.directory:
        # First, so the config file, `tools/`, `static/` and relative state URLs resolve where the project is.
        if not Path(args.directory).is_dir():
            print(f"mcp-platform: --directory {args.directory} is not a directory", file=sys.stderr)
            return 2
        os.chdir(args.directory)
    settings = _settings(args)
    # stderr only: stdout carries the protocol
    configure_logging(settings.log_level, secret_values(settings), settings.log.format)
    tracing.configure(settings)
    _hint_examples(settings)
    app = create_app(settings, overrides=_overrides(args))
    try:
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM: calls were cancelled, the lifespan closed
            asyncio.run(serve_stdio(app))
    finally:
        tracing.shutdown()
    return 0


def _connect(args: argparse.Namespace) -> int:
    from mcp_platform.onboarding.connect import run_connect

    return run_connect(args)


def _doctor(args: argparse.Namespace) -> int:
    from mcp_platform.onboarding.doctor import run_doctor

    return run_doctor(args)


def _llms(args: argparse.Namespace) -> int:
    from mcp_platform.onboarding.llms import run_llms

    return run_llms(args)


def _init(args: argparse.Namespace) -> int:
    from mcp_platform.onboarding.init import run_init

    return run_init(args)


def _bundle(args: argparse.Namespace) -> int:
    from mcp_platform.onboarding.bundle import run_bundle

    return run_bundle(args)


def _add_onboarding_commands(sub: Any) -> None:
    from mcp_platform.onboarding.connect import CLIENTS, DEFAULT_NAME, DEFAULT_TOKEN_ENV

    stdio = sub.add_parser("stdio", help="serve the same tools over stdio, for clients that launch a command")
    stdio.add_argument("--config", help="TOML config file (default ./mcp-platform.toml if present)")
    stdio.add_argument("--tools-dir", action="append", help="folder of tool modules (repeatable; default ./tools)")
    stdio.add_argument("--directory", help="project folder to run in (config, tools/ and state resolve there)")
    stdio.add_argument("--read-only", action="store_true", help="remove every tool that is not read-only")
    stdio.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    stdio.set_defaults(func=_stdio)

    connect = sub.add_parser("connect", help="print (or --write) the configuration a client needs")
    connect.add_argument("client", choices=CLIENTS)
    connect.add_argument("--url", help="the server's MCP URL (default: from the config, http://127.0.0.1:8000/mcp)")
    connect.add_argument("--token-env", default=DEFAULT_TOKEN_ENV,
                         help=f"environment variable holding the token (default {DEFAULT_TOKEN_ENV})")
    connect.add_argument("--name", default=DEFAULT_NAME, help=f"server name in the client (default {DEFAULT_NAME})")
    connect.add_argument("--write", action="store_true", help="merge the entry into the client's config file")
    connect.add_argument("--file", help="config file to write instead of the client's default")
    connect.add_argument("--token-literal", action="store_true",
                         help="with --write: store the token itself (read from --token-env) instead of a reference")
    connect.add_argument("--json", action="store_true", help="print only the JSON document")
    connect.add_argument("--auth", choices=["token", "oauth"],
                         help="how the client authenticates: a bearer token from an environment variable, or OAuth "
                              "sign-in through the identity provider (URL only). Default: oauth when the config's "
                              "auth.mode is [\"oauth\"], else token")
    connect.add_argument("--config", help="TOML config file the default URL is read from")
    connect.set_defaults(func=_connect)

    doctor = sub.add_parser("doctor", help="probe a deployment the way clients do and say what to fix")
    doctor.add_argument("url", help="the MCP URL, e.g. https://mcp.example.com/mcp")
    token = doctor.add_mutually_exclusive_group()
    token.add_argument("--token", help="bearer token (prefer --token-env: arguments show up in process lists)")
    token.add_argument("--token-env", help=f"environment variable holding the token (default {DEFAULT_TOKEN_ENV})")
    doctor.add_argument("--origin", help="check that this Origin is accepted (browser-based clients send one)")
    doctor.add_argument("--timeout", type=float, default=15.0, help="seconds per probe (default 15)")
    doctor.set_defaults(func=_doctor)

    init = sub.add_parser("init", help="write the example config, tools and static files into a folder")
    init.add_argument("directory", nargs="?", default=".", help="the folder (default: the current one)")
    init.set_defaults(func=_init)

    bundle = sub.add_parser("bundle", help="build an MCP Bundle (.mcpb) that Claude Desktop installs in one click")
    bundle.add_argument("--output", help="the .mcpb file to write (default dist/mcp-platform-VERSION-OS-ARCH.mcpb)")
    bundle.set_defaults(func=_bundle)

    llms = sub.add_parser("llms", help="generate llms.txt and llms-full.txt from the live registry")
    llms.add_argument("--check", action="store_true", help="exit 1 if the committed files are out of date")
    llms.add_argument("--root", default=".", help="repository root to write to and read tools/ from (default .)")
    llms.set_defaults(func=_llms)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server over Streamable HTTP")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--config", help="TOML config file (default ./mcp-platform.toml if present)")
    serve.add_argument("--tools-dir", action="append", help="folder of tool modules (repeatable; default ./tools)")
    serve.add_argument("--no-auth", action="store_true", help="turn auth off (only allowed on loopback)")
    serve.add_argument("--read-only", action="store_true", help="remove every tool that is not read-only")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="manage bearer tokens")
    token.add_argument("--config", help="TOML config file")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", choices=["state", "redis"], default="state",
                       help="state: the server's named tokens (auth.mode bearer; default); redis: the tokens "
                            "auth.mode redis reads from auth.redis")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once", parents=[store])
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", default="read", help="comma-separated: read, write, admin (default read)")
    create.add_argument("--expires-in", help="--store redis: lifetime such as 3600, 90m, 12h or 30d (default never)")
    token_sub.add_parser("list", help="list token names and scopes (never the tokens)", parents=[store])
    revoke = token_sub.add_parser("revoke", help="revoke a token by name", parents=[store])
    revoke.add_argument("name")
    token.set_defaults(func=_token)

    tools = sub.add_parser("tools", help="list the tools this server would serve")
    tools.add_argument("--config")
    tools.add_argument("--tools-dir", action="append")
    tools.add_argument("--read-only", action="store_true", help="as `serve --read-only`: only read-only tools")
    tools.add_argument("--all", action="store_true", help="also list the hidden tools, and why each is hidden")
    tools.set_defaults(func=_tools)

    _add_onboarding_commands(sub)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _args: print(_version()) or 0)
    return parser


def _version() -> str:
    from mcp_platform.protocol.dispatch import server_version

    return server_version()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"mcp-platform: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
