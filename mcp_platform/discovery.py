"""Tool discovery: import every `*.py` in the tool folders and collect what they mark (`@tool`, `@resource`,
`@prompt`, exposed models). A module that fails to import is recorded with a precise reason; the rest still load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_platform.prompts import PromptSpec, spec_of_prompt
from mcp_platform.registry import ToolSpec, spec_of
from mcp_platform.resources import ResourceSpec, spec_of_resource

__all__ = ["Discovered", "ToolLoader", "discover"]

logger = logging.getLogger(__name__)


@dataclass
class Discovered:
    modules: list[ModuleType] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    """File (or folder) -> why it could not be loaded."""
    tools: list[ToolSpec] = field(default_factory=list)
    resources: list[ResourceSpec] = field(default_factory=list)
    prompts: list[PromptSpec] = field(default_factory=list)


def _module_name(path: Path) -> str:
    # Unique per folder, so two folders may both hold a `shop.py`.
    digest = hashlib.sha1(str(path.parent.resolve()).encode()).hexdigest()[:8]
    return f"mcp_platform_tools_{digest}.{path.stem}"


def _import(path: Path) -> ModuleType:
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a normal import would be: dataclasses and SQLAlchemy look modules up by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _describe(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    where = f" (line {frames[-1].lineno})" if frames else ""
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})"
    return f"{type(exc).__name__}{where}: {exc}"


def collect(objects: Iterable[Any], found: Discovered) -> None:
    for obj in objects:
        if (tool_spec := spec_of(obj)) is not None:
            found.tools.append(tool_spec)
        elif (resource_spec := spec_of_resource(obj)) is not None:
            found.resources.append(resource_spec)
        elif (prompt_spec := spec_of_prompt(obj)) is not None:
            found.prompts.append(prompt_spec)


class ToolLoader:
    """Imports the tool folders' modules and, on each later `scan()` (a config reload), imports only new or changed
    files and forgets deleted ones, so a reload can add, change or remove tools without a restart."""

    def __init__(self, folders: Iterable[Path], *, required: Iterable[Path] = ()) -> None:
        self._folders = [Path(f) for f in folders]
        self._required = {Path(p).resolve() for p in required}
        self._loaded: dict[Path, tuple[int, ModuleType]] = {}

    def scan(self) -> Discovered:
        found = Discovered()
        seen: set[Path] = set()
        for folder in self._folders:
            if not folder.is_dir():
                if folder.resolve() in self._required:
                    found.failures[str(folder)] = "tool folder does not exist"
                continue
            for path in sorted(folder.glob("*.py")):
                if path.name.startswith("_"):
                    continue
                seen.add(path)
                module = self._module(path, found)
                if module is None:
                    continue
                found.modules.append(module)
                # Only what the module defines itself, so an imported helper's tools are not registered twice.
                own = [v for v in vars(module).values() if getattr(v, "__module__", None) == module.__name__]
                collect(own, found)
        for gone in set(self._loaded) - seen:
            del self._loaded[gone]
        return found

    def _module(self, path: Path, found: Discovered) -> ModuleType | None:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as exc:
            found.failures[str(path)] = f"{type(exc).__name__}: {exc}"
            return None
        cached = self._loaded.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            module = _import(path)
        except Exception as exc:
            found.failures[str(path)] = _describe(exc, path)
            logger.error("could not load tool module %s: %s", path, found.failures[str(path)])
            self._loaded.pop(path, None)
            return None
        self._loaded[path] = (mtime, module)
        return module


def discover(folders: Iterable[Path], *, required: Iterable[Path] = ()) -> Discovered:
    """Import the modules of `folders` once. A folder in `required` that does not exist is a failure; others are
    skipped silently (the default `./tools` need not exist)."""
    return ToolLoader(folders, required=required).scan()
