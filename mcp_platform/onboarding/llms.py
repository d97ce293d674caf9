"""`mcp-platform llms`: write `llms.txt` and `llms-full.txt` for the repository, or check they are current.

The text comes from mcp_platform/reference/llms.py, rendered from the registry the server would build: the built-in
capabilities plus the repository's `tools/`. `--check` fails when the committed files differ. A running server
serves both at `/llms.txt` and `/llms-full.txt` without a token (they are documentation, no secrets), rendered from
its own registry, so they describe exactly the tools it serves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mcp_platform.app import default_capabilities
from mcp_platform.discovery import discover
from mcp_platform.exposure import Exposure
from mcp_platform.reference.llms import render
from mcp_platform.tool_registry import Registry

__all__ = ["build_registry", "run_llms"]


def build_registry(root: Path, *, dirs: Sequence[Path] | None = None,
                   exposure: Exposure | None = None) -> tuple[Registry, dict[str, str]]:
    """The registry the server would build: built-in capabilities plus the tool folders (`root/tools` unless
    `dirs`), with `exposure` applied (default: everything exposed, which is what the generated reference shows).
    Returns load failures too. `mcp-platform tools` builds its table from the same."""
    registry = Registry()
    registry.expose(exposure or Exposure())
    for capability in default_capabilities():
        for fn in capability.tools:
            registry.add(fn, toolset=capability.name)
    found = discover([root / "tools"] if dirs is None else dirs)
    for spec in found.tools:
        registry.add(spec, discovered=True)
    return registry, dict(found.failures)


def run_llms(args: argparse.Namespace) -> int:
    root = Path(args.root)
    registry, failures = build_registry(root)
    if failures:
        for module, reason in sorted(failures.items()):
            print(f"mcp-platform llms: {module} failed to load: {reason}", file=sys.stderr)
        return 1
    stale = []
    for name, text in render(registry, root).items():
        path = root / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        print(f"mcp-platform llms: {', '.join(stale)} out of date; run `mcp-platform llms` and commit the result",
              file=sys.stderr)
        return 1
    if not stale:
        print("llms.txt and llms-full.txt are up to date")
    return 0
