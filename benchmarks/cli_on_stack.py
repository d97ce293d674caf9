#!/usr/bin/env python
"""Run the `mcp-platform` CLI unchanged, with uvicorn's event loop and HTTP parser fixed.

    python benchmarks/cli_on_stack.py LOOP HTTP serve [serve's arguments]    # e.g. asyncio h11

`mcp-platform serve` calls `uvicorn.run(app, ...)` without `loop`, and with the `http=` protocol class that
`transport.limits.server_options` builds on the installed parser (httptools when installed) plus the head limits.
To measure our server on asyncio + h11 without editing it, this wraps `uvicorn.run` to add `loop=LOOP`, and
`server_options` to build its class on the parser HTTP (the class the CLI itself uses on a machine without
httptools, so httptools is never imported), then runs `mcp_platform.cli.main` as the console script does: the same
settings, logging, `create_app(..., freeze_gc=True)`, first-token step and every other `uvicorn.run` argument.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from mcp_platform.cli import main
from mcp_platform.settings import HttpSettings
from mcp_platform.transport import limits

_run = uvicorn.run
_server_options = limits.server_options


def _run_on_stack(app: Any, **kwargs: Any) -> None:
    _run(app, **kwargs, loop=sys.argv[1])


def _options_on_parser(http: HttpSettings, parser: str = "auto") -> dict[str, Any]:
    return _server_options(http, sys.argv[2])


if __name__ == "__main__":
    uvicorn.run = _run_on_stack
    limits.server_options = _options_on_parser  # cli._serve imports it when it runs, so it finds this one
    sys.exit(main(sys.argv[3:]))
