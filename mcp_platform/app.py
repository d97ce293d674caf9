"""The app factory. `create_app(settings)` returns a Starlette app whose lifespan owns every resource: the state
database, discovered tools, capability backends, sessions and the `/mcp` endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mcp_platform.auth import BearerVerifier, TokenStore
from mcp_platform.capabilities import Capability
from mcp_platform.context import Backends, Clock
from mcp_platform.discovery import Discovered, ToolLoader
from mcp_platform.errors import ConfigError, StoreUnavailable
from mcp_platform.hooks import Hooks
from mcp_platform.onboarding.llms import LlmsRoute
from mcp_platform.prompts import Prompts
from mcp_platform.protocol.dispatch import Dispatcher
from mcp_platform.protocol.request_state import RequestStateCodec
from mcp_platform.protocol.sessions import MemorySessionStore, SessionStore
from mcp_platform.registry import Registry
from mcp_platform.resources import Resources
from mcp_platform.settings import Settings
from mcp_platform.stores.base import EventStore, Notifier
from mcp_platform.stores.memory import MemoryEventStore, MemoryNotifier
from mcp_platform.stores.sql import StateDB
from mcp_platform.transport.http import McpEndpoint

__all__ = ["AppState", "create_app", "default_capabilities"]

logger = logging.getLogger(__name__)


def default_capabilities() -> list[Capability]:
    """The built-in tool catalogue, in start order."""
    from mcp_platform.capabilities import audit, config, flags, metrics, ratelimit, static_files
    from mcp_platform.capabilities.orm import tools as orm

    return [config.CAPABILITY, flags.CAPABILITY, metrics.CAPABILITY, ratelimit.CAPABILITY, audit.CAPABILITY,
            static_files.CAPABILITY, orm.CAPABILITY]


@dataclass
class AppState:
    """What the lifespan built; `app.state.mcp` while the app runs."""

    settings: Settings
    registry: Registry
    backends: Backends
    hooks: Hooks
    discovered: Discovered
    sessions: SessionStore
    endpoint: McpEndpoint
    dispatcher: Dispatcher
    notifier: Notifier
    failures: dict[str, str] = field(default_factory=dict)
    health_probes: list[tuple[str, Any]] = field(default_factory=list)
    """Extra (name, object with `async health() -> str | None`) pairs /readyz checks, e.g. Redis."""


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
               clock: Clock | None = None, freeze_gc: bool = False) -> Starlette:
    """Build the ASGI app. Nothing is opened until its lifespan starts. `overrides` are the command-line values
    that outrank the config file; a reload applies them again. `clock` replaces the monotonic clock behind rate
    limits, metric windows and session expiry (tests move it instead of sleeping). `freeze_gc` moves everything
    alive after start-up out of the garbage collector's reach: the server process then never rescans its ~100k
    import-time objects, which otherwise stalls requests for tens of milliseconds (the CLI sets it; tests,
    which build many apps in one process, do not)."""
    if settings.auth.mode == "none" and not settings.is_loopback:
        raise ConfigError(f"auth.mode = 'none' is refused on {settings.http.host}: it is only allowed when the "
                          "server binds a loopback address (127.0.0.1, localhost, ::1)")
    caps = list(default_capabilities() if capabilities is None else capabilities)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.mcp = await _start(settings, caps, sessions, overrides or {}, clock or Clock(), stack)
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
        Route("/llms.txt", LlmsRoute("llms.txt")),  # public docs, generated from this server's registry
        Route("/llms-full.txt", LlmsRoute("llms-full.txt")),
        Route("/.well-known/{rest:path}", _not_found),
    ]
    middleware = []
    cors = settings.http.cors
    if cors.allow_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=cors.allow_origins,
                                     allow_methods=cors.allow_methods, allow_headers=cors.allow_headers,
                                     allow_credentials=cors.allow_credentials, max_age=cors.max_age,
                                     expose_headers=["Mcp-Session-Id", "WWW-Authenticate", "Retry-After"]))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.mcp = None
    return app


def signing_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
        if len(key) < 32:
            raise ConfigError("secret_key must be at least 32 characters")
        return key
    return secrets.token_bytes(32)


async def _start(settings: Settings, caps: Sequence[Capability], sessions: SessionStore | None,
                 overrides: Mapping[str, Any], clock: Clock, stack: AsyncExitStack) -> AppState:
    from mcp_platform.capabilities.config import ConfigManager, install_sighup
    from mcp_platform.capabilities.orm import ExposedModels, SeedHooks, collect_models, collect_seeds

    backends, hooks = Backends(), Hooks()
    backends.add(clock)
    backends.add(hooks)
    backends.add(settings, Settings)
    manager = ConfigManager(settings, overrides=overrides)
    backends.add(manager)
    state_db = StateDB(settings.state.url)
    await state_db.start()
    stack.push_async_callback(state_db.close)
    backends.add(state_db)

    loader = ToolLoader(settings.tools.dirs, required=[d for d in settings.tools.dirs if str(d) != "tools"])
    discovered = loader.scan()
    backends.add(discovered)
    shared = await _shared_stores(settings, clock, stack)
    notifier, events, bus = shared.notifier, shared.events, shared.bus
    backends.add(notifier, Notifier)
    backends.add(events, EventStore)
    if shared.rate_limits is not None:
        from mcp_platform.capabilities.ratelimit import RateLimitStore

        backends.add(shared.rate_limits, RateLimitStore)
    registry, resources, prompts = Registry(), Resources(), Prompts()
    failures = dict(discovered.failures)
    for cap in caps:
        for fn in cap.tools:
            registry.add(fn)
    for spec in discovered.tools:
        try:
            registry.add(spec, discovered=True)
        except ConfigError as exc:
            failures[spec.fn.__module__] = str(exc)
            logger.error("tool %s not loaded: %s", spec.name, exc)
    for resource_spec in discovered.resources:
        resources.add(resource_spec)
    for prompt_spec in discovered.prompts:
        try:
            prompts.add(prompt_spec)
        except ConfigError as exc:
            failures[prompt_spec.fn.__module__] = str(exc)
    backends.add(registry)
    backends.add(resources)
    backends.add(prompts)
    backends.add(ExposedModels(collect_models(discovered.modules)))
    backends.add(SeedHooks(collect_seeds(discovered.modules)))

    for cap in caps:
        await cap.start(settings, backends, stack)
    _wire_changes(registry, backends, notifier, bus, stack)
    from mcp_platform.capabilities.static_files import StaticResourceProvider

    if (static_provider := backends.find(StaticResourceProvider)) is not None:
        resources.add_provider(static_provider)
    if settings.tools.read_only:
        for tool in registry.all():
            if not tool.spec.read_only:
                registry.remove(tool.name)

    verifier = None
    if settings.auth.mode == "bearer":
        env_token = settings.token.get_secret_value() if settings.token else None
        verifier = BearerVerifier(TokenStore(state_db), env_token)
        await verifier.refresh()
        _until_shutdown(verifier.keep_fresh, stack)
    session_store = sessions if sessions is not None else shared.sessions if shared.sessions is not None else \
        MemorySessionStore(ttl_seconds=settings.sessions.ttl_seconds, max_sessions=settings.sessions.max_sessions,
                           clock=clock.now)
    from mcp_platform.capabilities.metrics import Metrics

    if (metrics := backends.find(Metrics)) is not None and isinstance(session_store, MemorySessionStore):
        metrics.set_sessions_provider(session_store.size)
    dispatcher = Dispatcher(settings=settings, registry=registry, resources=resources, prompts=prompts,
                            backends=backends, hooks=hooks, state_codec=RequestStateCodec(signing_key(settings)))
    endpoint = McpEndpoint(settings=settings, dispatcher=dispatcher, sessions=session_store, verifier=verifier,
                           hooks=hooks, notifier=notifier, events=events, bus=bus)
    _background(endpoint.serve_bus(), stack)

    async def adopt(new: Settings) -> None:
        dispatcher.settings = new
        endpoint.apply(new)
        # Tool modules added, changed or removed since the last scan take effect now, and clients hear of it.
        found = loader.scan()
        changed, problems = registry.sync_discovered(found.tools)
        if changed:
            await registry.changed()
        if prompts.replace(found.prompts):
            await _tell(notifier, {"kind": "prompts"})
        if resources.replace(found.resources):
            await _tell(notifier, {"kind": "resources"})
        failures.clear()
        failures.update(found.failures)
        failures.update(problems)

    manager.on_reload.append(adopt)
    stack.callback(install_sighup(manager))
    logger.info("serving %d tools, %d resources/templates, %d prompts%s", len(registry),
                len(resources.templates()), len(prompts.all()),
                f"; {len(failures)} tool module(s) failed to load" if failures else "")
    return AppState(settings, registry, backends, hooks, discovered, session_store, endpoint, dispatcher, notifier,
                    failures, shared.probes)


@dataclass
class _Shared:
    """Where state that instances may share lives: Redis when `state.redis_url` is set, else this process."""

    notifier: Notifier
    events: EventStore
    bus: Notifier
    """Internal events between instances (flag reloads, cancellations, client replies); never sent to clients."""
    sessions: SessionStore | None = None
    rate_limits: Any = None
    probes: list[tuple[str, Any]] = field(default_factory=list)


class _RedisProbe:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def health(self) -> str | None:
        from mcp_platform.stores.redis import redis_health

        problem: str | None = await redis_health(self._client)
        return problem


async def _shared_stores(settings: Settings, clock: Clock, stack: AsyncExitStack) -> _Shared:
    if settings.state.redis_url is None:
        return _Shared(MemoryNotifier(), MemoryEventStore(clock=clock.now), MemoryNotifier())
    from mcp_platform.stores.redis import (
        DEFAULT_PREFIX,
        RedisEventStore,
        RedisNotifier,
        RedisRateLimitStore,
        RedisSessionStore,
        connect,
    )

    client = connect(settings.state.redis_url)
    stack.push_async_callback(client.aclose)
    notifier = RedisNotifier(client)
    bus = RedisNotifier(client, channel=f"{DEFAULT_PREFIX}internal")
    for started in (notifier, bus):
        await started.start()
        stack.push_async_callback(started.close)
    sessions = RedisSessionStore(client, ttl_seconds=settings.sessions.ttl_seconds,
                                 max_sessions=settings.sessions.max_sessions)
    return _Shared(notifier, RedisEventStore(client), bus, sessions, RedisRateLimitStore(client),
                   [("redis", _RedisProbe(client))])


def _until_shutdown(loop_fn: Any, stack: AsyncExitStack) -> None:
    """Run `loop_fn(stop)` in the background; at shutdown set `stop` and wait for it to return, so work such as a
    database query is never cut off halfway."""
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(loop_fn(stop))

    async def halt() -> None:
        stop.set()
        await task

    stack.push_async_callback(halt)


async def _tell(notifier: Notifier, event: dict[str, Any]) -> None:
    """Publish a change hint after the change itself was stored: if Redis is down the hint is lost (and logged),
    but the change stands; clients refetch on their next list anyway."""
    try:
        await notifier.publish(event)
    except StoreUnavailable as exc:
        logger.warning("could not announce %s: %s", event.get("kind"), exc)


def _background(work: Any, stack: AsyncExitStack) -> None:
    """Run `work` until shutdown cancels it: only for loops that hold no query open (they wait on queues)."""
    task = asyncio.get_running_loop().create_task(work)
    stack.callback(task.cancel)


def _wire_changes(registry: Registry, backends: Backends, notifier: Notifier, bus: Notifier,
                  stack: AsyncExitStack) -> None:
    """Tool-list changes reach every listener; flag-gated tools appear and disappear with their flag, on every
    instance (the one that flipped it tells the others to reload their copy)."""
    from mcp_platform.capabilities.flags import FlagStore

    async def tools_changed() -> None:
        await _tell(notifier, {"kind": "tools"})

    registry.on_change.append(tools_changed)
    flags = backends.find(FlagStore)
    if flags is None:
        return
    registry.flag_reader = flags.is_on

    async def flag_flipped(name: str, enabled: bool) -> None:
        await _tell(bus, {"kind": "flag", "name": name})
        if name in registry.gating_flags():
            await registry.changed()

    flags.on_change.append(flag_flipped)

    async def reload_flags(stop: asyncio.Event) -> None:
        # Stops only between events, so a reload is never cut off halfway through its query.
        events = bus.subscribe()
        stopping = asyncio.ensure_future(stop.wait())
        upcoming: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                upcoming = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({upcoming, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return
                if upcoming.result().get("kind") == "flag":
                    try:
                        await flags.load()
                    except Exception:  # the state database may be down; the next flag event retries
                        logger.warning("could not reload feature flags after a change elsewhere", exc_info=True)
        finally:
            stopping.cancel()
            if upcoming is not None and not upcoming.done():
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upcoming  # the generator must have stopped before it can be closed
            await events.aclose()  # type: ignore[attr-defined]

    _until_shutdown(reload_flags, stack)


def _state(request: Request) -> AppState | None:
    state: AppState | None = getattr(request.app.state, "mcp", None)
    return state


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """Each backing service, checked now: 200 when all answer, 503 naming what is down."""
    state = _state(request)
    if state is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    from mcp_platform.capabilities.orm import OrmBackend

    checks: dict[str, str] = {}
    probes: list[tuple[str, Any]] = [("state_db", state.backends.get(StateDB))]
    if (orm := state.backends.find(OrmBackend)) is not None:
        probes.append(("database", orm))
    probes.extend((name, probe) for name, probe in state.health_probes)
    for name, probe in probes:
        problem = await probe.health()
        checks[name] = "ok" if problem is None else problem
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ok else "unavailable", "checks": checks, "tools": len(state.registry),
            "tool_module_failures": state.failures}
    return JSONResponse(body, status_code=200 if ok else 503)


async def _metrics(request: Request) -> Response:
    state = _state(request)
    if state is None:
        return PlainTextResponse("starting", status_code=503)
    from mcp_platform.capabilities.metrics import Metrics

    metrics = state.backends.find(Metrics)
    if metrics is None:
        return PlainTextResponse("metrics are not enabled", status_code=404)
    if state.settings.auth.metrics_requires_token and state.settings.auth.mode == "bearer":
        from mcp_platform.auth import bearer_token

        token = bearer_token(request.headers.get("authorization"))
        verifier = state.endpoint.verifier
        if token is None or verifier is None or await verifier.verify(token) is None:
            return PlainTextResponse("a bearer token is required", status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="mcp-platform"'})
    body, content_type = metrics.render_prometheus()
    return Response(body, media_type=content_type)


async def _not_found(request: Request) -> Response:
    # Bearer mode: answering 404 here keeps clients from diverting into an OAuth flow this server does not run.
    return JSONResponse({"error": "not_found"}, status_code=404)
