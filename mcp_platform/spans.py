"""Child spans of a request's server span: database statements and Redis commands through the OpenTelemetry
instrumentation packages (the `otel` extra brings them), and static-file reads, which no package covers.

Everything here is decided when a client is built: an engine or a Redis client made while nothing is traced is
never instrumented, so with tracing off a statement or a command runs exactly as without this module (no wrapper,
no event listener). Instrumenting one client at a time, with the provider `tracing` uses, rather than the packages'
`instrument()`: that one patches `create_engine` and the Redis classes for the whole process, for good.

Only work done for a traced request gets a span: the audit writer's batches, the event store's polling and the
capabilities' start-up would otherwise each open a trace of their own, many a second, that nobody asked for.

PostgreSQL is reached only through SQLAlchemy (asyncpg is its driver), so the SQLAlchemy spans are the PostgreSQL
spans; instrumenting asyncpg too would wrap each statement in a second span. Statements are recorded as SQLAlchemy
sends them, with bound parameters as placeholders, and Redis commands by name with `?` for every argument, so no
argument value reaches a span through them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mcp_platform import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["FILE_PATH", "FILE_SIZE", "file_read", "instrument_engine", "instrument_redis", "static_read"]

logger = logging.getLogger(__name__)

FILE_PATH = "file.path"
"""A static read's path, relative to the static root: an argument, so only with `tracing.record_arguments`."""
FILE_SIZE = "file.size"


def instrument_engine(engine: Any) -> None:
    """Trace the statements of a SQLAlchemy engine (async or sync) when requests are traced; else nothing."""
    providers = tracing.provider()
    if providers is None:
        return
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.instrumentation.sqlalchemy.version import __version__
    except ImportError:
        logger.info("database statements are not traced: pip install 'mcp-platform[otel]' for their spans")
        return
    if SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry:
        return  # `opentelemetry-instrument` did it for every engine: a second tracer would double each span
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import get_current_span

    class RequestEngineTracer(EngineTracer):
        """Spans for the statements a traced request runs; none for the rest (see the module's docstring)."""

        def _before_cur_exec(self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any,
                             executemany: bool) -> tuple[Any, Any]:
            if not get_current_span().is_recording():
                return statement, params
            return super()._before_cur_exec(  # type: ignore[no-untyped-call,no-any-return]  # untyped package
                conn, cursor, statement, params, context, executemany)

    tracer_provider, meter_provider = providers
    name = "opentelemetry.instrumentation.sqlalchemy"
    meter = (meter_provider or NoOpMeterProvider()).get_meter(name, __version__)
    usage = meter.create_up_down_counter("db.client.connections.usage", unit="connections",
                                         description="Connections of the pool, by state (idle, used)")
    RequestEngineTracer(  # type: ignore[no-untyped-call]
        tracer_provider.get_tracer(name, __version__), getattr(engine, "sync_engine", engine), usage)


def instrument_redis(client: Any) -> None:
    """Trace the commands (and pipelines, and scripts) of one Redis client when requests are traced."""
    providers = tracing.provider()
    if providers is None:
        return
    try:
        from opentelemetry.instrumentation.redis import RedisInstrumentor
    except ImportError:
        logger.info("Redis commands are not traced: pip install 'mcp-platform[otel]' for their spans")
        return
    if RedisInstrumentor().is_instrumented_by_opentelemetry:
        return  # every client is already traced (`opentelemetry-instrument`)
    RedisInstrumentor.instrument_client(client, tracer_provider=providers[0])
    for name in ("execute_command", "pipeline"):  # each now an instance attribute wrapping the class's method
        traced = getattr(client, name)
        setattr(client, name, _in_requests_only(traced, traced.__wrapped__))


def _in_requests_only(traced: Callable[..., Any], plain: Callable[..., Any]) -> Callable[..., Any]:
    from opentelemetry.trace import get_current_span

    def call(*args: Any, **kwargs: Any) -> Any:
        return (traced if get_current_span().is_recording() else plain)(*args, **kwargs)

    return call


@contextlib.contextmanager
def static_read() -> Iterator[Span]:
    """A `static.read` span around one read of the static root, made current; `file_read` says what was read.
    Callers ask `tracing.active()` first: with nothing traced there is no span to make."""
    providers = tracing.provider()
    assert providers is not None, "static_read() is for traced requests"
    from opentelemetry.trace import SpanKind, StatusCode

    tracer = providers[0].get_tracer("mcp_platform")
    # The exception's message names the path, so it is not recorded; its class says what went wrong.
    with tracer.start_as_current_span("static.read", kind=SpanKind.INTERNAL, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_attribute(tracing.ERROR_TYPE, type(exc).__name__)
            span.set_status(StatusCode.ERROR)
            raise


def file_read(span: Span, path: str, size: int) -> None:
    """What a `static.read` read: the file's size, and its path (relative to the root) only when the operator opted
    in to argument values, since the client chose it."""
    span.set_attribute(FILE_SIZE, size)
    if tracing.records_arguments():
        span.set_attribute(FILE_PATH, path)
