"""The app factory. `create_app(settings)` returns a Starlette app whose lifespan owns every resource: the core
(state database, shared stores, registry, sessions), the discovered tools, the capabilities and the `/mcp` endpoint.

Start-up names no capability: it registers their tools and resources, starts each in order
(`start_capabilities`), and serves what they brought: backends for tools, health checks in `/readyz`, observers,
reload callbacks and `/metrics` text."""

from __future__ import annotations

import functools
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_platform.auth import Presented, bearer_token, start_verifiers
from mcp_platform.capabilities import Capability, Running, start_capabilities
from mcp_platform.config_reload import install_sighup
from mcp_platform.context import Clock
from mcp_platform.core import Core, HealthCheck, announce, open_core, run_in_background
from mcp_platform.discovery import ToolLoader
from mcp_platform.errors import ConfigError, McpPlatformError, Unauthorized
from mcp_platform.exposure import Exposure
from mcp_platform.hooks import Hooks
from mcp_platform.protocol.dispatch import Dispatcher
from mcp_platform.protocol.drain import Drain
from mcp_platform.protocol.request_state import RequestStateCodec
from mcp_platform.reference.llms import render
from mcp_platform.resources import ResourceSpec, spec_of_resource
from mcp_platform.settings import Settings
from mcp_platform.stores.base import SessionStore
from mcp_platform.tool_registry import Registry
from mcp_platform.transport.http import McpEndpoint

__all__ = ["AppState", "create_app", "default_capabilities"]

logger = logging.getLogger(__name__)


def default_capabilities() -> list[Capability]:
    """The built-in tool catalogue, in start order (also the order in which their observers run)."""
    from mcp_platform.capabilities import audit, calllog, config, flags, metrics, ratelimit, static
    from mcp_platform.capabilities.orm import tools as orm

    return [config.CAPABILITY, flags.CAPABILITY, metrics.CAPABILITY, ratelimit.CAPABILITY, audit.CAPABILITY,
            static.CAPABILITY, orm.CAPABILITY, calllog.CAPABILITY]


@dataclass
class AppState:
    """What the lifespan built; `app.state.mcp` while the app runs."""

    settings: Settings
    """The settings the app started with (the core's `settings` follow reloads)."""
    core: Core
    dispatcher: Dispatcher
    """The method table every transport dispatches to (HTTP through `endpoint`, stdio directly)."""
    endpoint: McpEndpoint
    running: Running
    """Health checks and `/metrics` text the capabilities brought."""
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        return self.core.registry

    @property
    def hooks(self) -> Hooks:
        return self.core.hooks


class _Forward:
    """The `/mcp` route: hands the request to the endpoint the lifespan built (Starlette puts the app in scope).
    A class, not a function, so Starlette treats it as a raw ASGI app."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState | None = getattr(scope["app"].state, "mcp", None)
        if state is None:
            await PlainTextResponse("starting", status_code=503)(scope, receive, send)
            return
        await state.endpoint(scope, receive, send)


def create_app(settings: Settings, *, capabilities: Sequence[Capability] | None = None,
               sessions: SessionStore | None = None, overrides: Mapping[str, Any] | None = None,
               clock: Clock | None = None, freeze_gc: bool = False, drain: Drain | None = None) -> Starlette:
    """Build the ASGI app. Nothing is opened until its lifespan starts. `overrides` are the command-line values
    that outrank the config file; a reload applies them again. `clock` replaces the monotonic clock behind rate
    limits, metric windows and session expiry (tests move it instead of sleeping). `freeze_gc` moves everything
    alive after start-up out of the garbage collector's reach: the server process then never rescans its ~100k
    import-time objects, which otherwise stalls requests for tens of milliseconds (the CLI sets it; tests,
    which build many apps in one process, do not). `drain`, once begun, turns `/readyz` and every new session,
    call and stream away with 503 (the CLI begins it at SIGTERM)."""
    if settings.auth.off and not settings.is_loopback:
        raise ConfigError(f"auth.mode = 'none' is refused on {settings.http.host}: it is only allowed when the "
                          "server binds a loopback address (127.0.0.1, localhost, ::1)")
    caps = list(default_capabilities() if capabilities is None else capabilities)
    drain = drain or Drain()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.mcp = await _start(settings, caps, sessions, overrides or {}, clock or Clock(), stack,
                                         drain)
            if freeze_gc:
                gc.collect()
                gc.freeze()
            try:
                yield
            finally:
                app.state.mcp = None

    routes = [
        Route(settings.http.path, _Forward(), methods=None),
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
        Route("/llms.txt", _LlmsRoute("llms.txt")),  # public docs, generated from this server's registry
        Route("/llms-full.txt", _LlmsRoute("llms-full.txt")),
        Route("/.well-known/{rest:path}", _not_found),
    ]
    middleware = _protected_resource_metadata(settings)
    cors = settings.http.cors
    if cors.allow_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=cors.allow_origins,
                                     allow_methods=cors.allow_methods, allow_headers=cors.allow_headers,
                                     allow_credentials=cors.allow_credentials, max_age=cors.max_age,
                                     expose_headers=["Mcp-Session-Id", "WWW-Authenticate", "Retry-After"]))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.mcp = None
    app.state.drain = drain
    return app


def signing_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
        if len(key) < 32:
            raise ConfigError("secret_key must be at least 32 characters")
        return key
    return secrets.token_bytes(32)


async def _start(settings: Settings, caps: Sequence[Capability], sessions: SessionStore | None,
                 overrides: Mapping[str, Any], clock: Clock, stack: AsyncExitStack, drain: Drain) -> AppState:
    loader = ToolLoader(settings.tools.dirs, required=[d for d in settings.tools.dirs if str(d) != "tools"])
    discovered = loader.scan()
    core = await open_core(settings, stack, overrides=overrides, clock=clock, sessions=sessions,
                           discovered=discovered)
    registry, resources, prompts = core.registry, core.resources, core.prompts
    failures = dict(discovered.failures)
    own_resources = [_resource_spec(cap, fn) for cap in caps for fn in cap.resources]
    registry.expose(Exposure.of(settings.tools))
    for cap in caps:
        for fn in cap.tools:
            registry.add(fn, toolset=cap.name)
    for spec in discovered.tools:
        try:
            registry.add(spec, discovered=True)
        except ConfigError as exc:
            failures[spec.fn.__module__] = str(exc)
            logger.error("tool %s not loaded: %s", spec.name, exc)
    for resource_spec in [*own_resources, *discovered.resources]:
        resources.add(resource_spec)
    for prompt_spec in discovered.prompts:
        try:
            prompts.add(prompt_spec)
        except ConfigError as exc:
            failures[prompt_spec.fn.__module__] = str(exc)

    _warn_unmatched(registry)
    running = await start_capabilities(caps, core, stack)

    verifier, challenge = await start_verifiers(settings, core, stack)
    dispatcher = Dispatcher(core=core, state_codec=RequestStateCodec(signing_key(settings)), challenge=challenge)
    endpoint = McpEndpoint(settings=settings, dispatcher=dispatcher, sessions=core.sessions, verifier=verifier,
                           hooks=core.hooks, notifier=core.notifier, events=core.events, bus=core.bus,
                           drain=drain, challenge=challenge)
    run_in_background(endpoint.serve_bus(), stack)

    async def adopt(new: Settings) -> None:
        dispatcher.settings = new
        endpoint.apply(new)
        # Tool modules added, changed or removed since the last scan take effect now, and clients hear of it.
        # A changed tools.enabled/disabled/read_only shows or hides tools now, too.
        found = loader.scan()
        exposed = registry.expose(Exposure.of(new.tools))
        changed, problems = registry.sync_discovered(found.tools)
        _warn_unmatched(registry)
        if changed or exposed:
            await registry.changed()
        if prompts.replace(found.prompts):
            await announce(core.notifier, {"kind": "prompts"})
        if resources.replace([*own_resources, *found.resources]):
            await announce(core.notifier, {"kind": "resources"})
        failures.clear()
        failures.update(found.failures)
        failures.update(problems)

    core.config.on_reload.append(adopt)
    stack.callback(install_sighup(core.config))
    logger.info("serving %d tools, %d resources/templates, %d prompts%s", len(registry),
                len(resources.templates()), len(prompts.all()),
                f"; {len(failures)} tool module(s) failed to load" if failures else "")
    return AppState(settings, core, dispatcher, endpoint, running, failures)


def _warn_unmatched(registry: Registry) -> None:
    for entry in registry.unmatched_entries():
        logger.warning("tools.enabled/disabled entry %r matches no tool and no toolset", entry)


def _resource_spec(cap: Capability, fn: Any) -> ResourceSpec:
    spec = spec_of_resource(fn)
    if spec is None:
        raise ConfigError(f"capability {cap.name} lists {fn!r} as a resource, but it is not decorated with @resource")
    return spec


def _health_checks(state: AppState) -> dict[str, HealthCheck]:
    """The state database, the shared store when there is one, then what each capability reports."""
    checks: dict[str, HealthCheck] = {"state_db": state.core.state_db.health}
    if (client := state.core.redis) is not None:
        from mcp_platform.stores.redis import redis_health

        checks["redis"] = functools.partial(redis_health, client)
    return {**checks, **state.running.health}


class _LlmsRoute:
    """`/llms.txt` or `/llms-full.txt` from the running server's own registry, built once per tool set. Public: the
    files are documentation (tool names, arguments, setting defaults), never live values or secrets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cached: tuple[tuple[int, tuple[str, ...]], bytes] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState | None = getattr(scope["app"].state, "mcp", None)
        if state is None:
            await PlainTextResponse("starting", status_code=503)(scope, receive, send)
            return
        registry = state.registry
        key = (id(registry), tuple(t.name for t in registry.all()))
        if self._cached is None or self._cached[0] != key:
            self._cached = key, render(registry, Path.cwd())[self.name].encode()
        response = PlainTextResponse(self._cached[1], media_type="text/plain; charset=utf-8")
        await response(scope, receive, send)


def _state(request: Request) -> AppState | None:
    state: AppState | None = getattr(request.app.state, "mcp", None)
    return state


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """Each backing service, checked now: 200 when all answer, 503 naming what is down; 503 while draining."""
    state = _state(request)
    if state is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    if state.endpoint.drain.started:  # before any check: a load balancer must stop sending new work at once
        return JSONResponse({"status": "draining"}, status_code=503)
    checks: dict[str, str] = {}
    for name, check in _health_checks(state).items():
        problem = await check()
        checks[name] = "ok" if problem is None else problem
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ok else "unavailable", "checks": checks, "tools": len(state.registry),
            "tool_module_failures": state.failures}
    return JSONResponse(body, status_code=200 if ok else 503)


async def _metrics(request: Request) -> Response:
    state = _state(request)
    if state is None:
        return PlainTextResponse("starting", status_code=503)
    if not state.running.metrics:
        return PlainTextResponse("metrics are not enabled", status_code=404)
    verifier = state.endpoint.verifier
    if state.settings.auth.metrics_requires_token and verifier is not None:
        token = bearer_token(request.headers.get("authorization"))
        try:
            presented = Presented(request.scope, request.headers, state.endpoint.hooks)
            principal = await verifier.verify(token, presented) if token else None
        except Unauthorized:
            principal = None
        except McpPlatformError as exc:  # a forward-auth service forbade it (403) or could not decide (503)
            return PlainTextResponse(exc.wire_message, status_code=exc.http_status or 503,
                                     headers={k.decode(): v.decode() for k, v in exc.wire_headers()})
        if principal is None:
            return PlainTextResponse("a bearer token is required", status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="mcp-platform"'})
    parts = [render_metrics() for render_metrics in state.running.metrics]
    return Response(b"".join(body for body, _ in parts), media_type=parts[0][1])


def _protected_resource_metadata(settings: Settings) -> list[Middleware]:
    """RFC 9728 metadata, only when `oauth` is on (bearer only: the well-known paths stay 404)."""
    if "oauth" not in settings.auth.mode:
        return []
    from mcp_platform.protected_resource import resolve

    resource = resolve(settings)
    return [Middleware(_Metadata, paths=frozenset(resource.metadata_paths(settings.http.path)),
                       body=bytes(JSONResponse(resource.document()).body))]


class _Metadata:
    """Serves the protected-resource document ahead of the CORS middleware: it is public and open to every origin
    (browser-based clients read it before they have a token, with a preflight when they send MCP headers),
    whatever `http.cors` allows for `/mcp`."""

    _CORS = {"access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD, OPTIONS",
             "access-control-allow-headers": "*", "access-control-max-age": "86400"}

    def __init__(self, app: ASGIApp, *, paths: frozenset[str], body: bytes) -> None:
        self.app = app
        self.paths = paths
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        response: Response
        if scope["method"] in ("GET", "HEAD"):
            response = Response(self.body, media_type="application/json",
                                headers={**self._CORS, "cache-control": "public, max-age=3600"})
        elif scope["method"] == "OPTIONS":
            response = Response(status_code=204, headers=self._CORS)
        else:
            response = Response(status_code=405, headers={"allow": "GET, HEAD, OPTIONS"})
        await response(scope, receive, send)


async def _not_found(request: Request) -> Response:
    # Bearer mode: answering 404 here keeps clients from diverting into an OAuth flow this server does not run.
    return JSONResponse({"error": "not_found"}, status_code=404)
