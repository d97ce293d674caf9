"""`mcp-platform init [DIR]`: a working start for someone who installed the package with pip.

A checkout has the example project at its top level (`mcp-platform.toml`, `tools/`, `static/`), so `make run` serves
it; a wheel has only the package. The same files ship inside the package as `mcp_platform/examples/` (a test keeps
the two copies identical), and `init` copies them into a folder: the example config, the example tools
(`site_status`, `audit_assets`, the shop's models, seed data and `top_customers`/`cancel_order`) and the static
files. It never overwrites: if any of the files already exists, it writes nothing and names them.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["EXAMPLE_HINT", "example_files", "init_project", "looks_empty", "run_init"]

EXAMPLE_HINT = ("`mcp-platform init` writes the example config, tools (site_status, the shop) and static files "
                "into this folder")
"""What to tell someone whose folder has no config and no tools (the serve banner and the static tools say it)."""

_SKIP = {"__pycache__", ".DS_Store"}


def example_files() -> dict[str, Traversable]:
    """The packaged examples by relative path (`tools/shop.py`, `static/css/site.css`, ...), sorted."""
    found: dict[str, Traversable] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.name in _SKIP or child.name.endswith(".pyc"):
                continue
            path = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, path + "/")
            else:
                found[path] = child

    walk(files("mcp_platform") / "examples", "")
    return dict(sorted(found.items()))


def init_project(target: Path) -> list[Path]:
    """Copy the examples into `target` (created if missing) and return the files written. Raises
    `FileExistsError` naming every file that is already there; nothing is written then."""
    examples = example_files()
    existing = [target / rel for rel in examples if (target / rel).exists() or (target / rel).is_symlink()]
    if existing:
        raise FileExistsError(", ".join(str(path) for path in existing))
    written = []
    for rel, source in examples.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as out:  # "x": never replace a file that appeared meanwhile
            out.write(source.read_bytes())
        written.append(path)
    return written


def looks_empty(settings_config: Path | None, tool_dirs: list[Path]) -> bool:
    """Whether a server would start with no config file and no tool folder: only the built-in tools."""
    return settings_config is None and not any(folder.is_dir() for folder in tool_dirs)


def run_init(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    try:
        written = init_project(target)
    except FileExistsError as exc:
        print(f"mcp-platform init: not overwriting existing files, nothing written: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    where = "" if target.resolve() == Path.cwd().resolve() else f"cd {target} && "
    print(f"\nNext: {where}mcp-platform serve   (the example config, tools and static files are in place; the "
          "shop's data is seeded into .mcp-platform/app.db at the first start)")
    return 0
