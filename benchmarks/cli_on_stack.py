#!/usr/bin/env python
"""Run the `mcp-platform` CLI unchanged, with uvicorn's event loop and HTTP protocol fixed.

    python benchmarks/cli_on_stack.py LOOP HTTP serve [serve's arguments]    # e.g. asyncio h11

`mcp-platform serve` calls `uvicorn.run(app, ...)` without `loop`, and with `http=` uvicorn's protocol class for
the installed parser (httptools when installed) plus the head limits. To measure our server on asyncio + h11
without editing it, this wraps `uvicorn.run` to add `loop=LOOP` and rebuild that class on the parser HTTP (the
class the CLI itself picks on a machine without httptools), then runs `mcp_platform.cli.main` as the console
script does: the same settings, logging, `create_app(..., freeze_gc=True)`, first-token step and every other
`uvicorn.run` argument.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from mcp_platform.cli import main
from mcp_platform.transport.limits import protocol_class

_run = uvicorn.run


def _run_on_stack(app: Any, **kwargs: Any) -> None:
    # The CLI passes its own protocol class (uvicorn's, plus the head limits) as `http`: keep the limits, on the
    # parser asked for, as the CLI itself does on a machine without httptools.
    limits = getattr(kwargs.get("http"), "limits", None)
    kwargs["http"] = sys.argv[2] if limits is None else protocol_class(limits, sys.argv[2])
    _run(app, **kwargs, loop=sys.argv[1])


if __name__ == "__main__":
    uvicorn.run = _run_on_stack
    sys.exit(main(sys.argv[3:]))
