#!/usr/bin/env python
"""Run the `mcp-platform` CLI unchanged, with uvicorn's event loop and HTTP protocol fixed.

    python benchmarks/cli_on_stack.py LOOP HTTP serve [serve's arguments]    # e.g. asyncio h11

`mcp-platform serve` calls `uvicorn.run(app, ...)` without `loop` or `http`, so uvicorn picks uvloop and httptools
whenever they are installed. To measure our server on asyncio + h11 without editing it, this wraps `uvicorn.run`
to add `loop=LOOP, http=HTTP` and then runs `mcp_platform.cli.main` as the console script does: the same settings,
logging, `create_app(..., freeze_gc=True)`, first-token step and every other `uvicorn.run` argument.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from mcp_platform.cli import main

_run = uvicorn.run


def _run_on_stack(app: Any, **kwargs: Any) -> None:
    _run(app, **kwargs, loop=sys.argv[1], http=sys.argv[2])


if __name__ == "__main__":
    uvicorn.run = _run_on_stack
    sys.exit(main(sys.argv[3:]))
