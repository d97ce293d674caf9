"""A loopback OTLP/HTTP receiver that takes every export and keeps only a count: what the tracing-on rows export
to, so that they pay for the whole path (spans built, batched, encoded as protobuf and posted) but not for a
collector's own work."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OtlpSink", "otlp_sink", "tracing_settings"]


class OtlpSink:
    def __init__(self, url: str) -> None:
        self.url = url
        """The traces URL, for `tracing.otlp_endpoint` (metrics go to `/v1/metrics` beside it)."""
        self.exports = 0


@contextlib.contextmanager
def otlp_sink() -> Iterator[OtlpSink]:
    """A receiver on a free loopback port, for the block's duration."""
    sink: OtlpSink

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            sink.exports += 1
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink = OtlpSink(f"http://127.0.0.1:{server.server_address[1]}/v1/traces")
    thread = threading.Thread(target=server.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def tracing_settings(sink: OtlpSink) -> dict[str, Any]:
    """Ours' TOML settings that export every span and metric to `sink`."""
    return {"tracing": {"otlp_endpoint": sink.url}}
