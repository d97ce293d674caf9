"""Watching the static root, so clients hear when files appear, disappear or change.

Polling (a stat walk every `static.watch_seconds`) rather than inotify: it works the same on every OS, in
containers and on network filesystems, and costs nothing while no client listens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread

from mcp_platform.capabilities.static.paths import URI_PREFIX
from mcp_platform.stores.base import Notifier

__all__ = ["StaticWatcher"]

logger = logging.getLogger(__name__)

_MAX_UPDATES_PER_SCAN = 100


class StaticWatcher:
    def __init__(self, root: Path, notifier: Notifier, *, interval: float, allow_hidden: bool,
                 listening: Callable[[], bool] = lambda: True, max_entries: int = 100_000) -> None:
        self._root = root
        self._notifier = notifier
        self._interval = interval
        self._allow_hidden = allow_hidden
        self._listening = listening
        self._max_entries = max_entries

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Relative path -> (mtime ns, size) of every servable file; symlinks are not followed."""
        seen: dict[str, tuple[int, int]] = {}
        if not self._root.is_dir():
            return seen
        for folder, dirs, files in os.walk(self._root, followlinks=False):
            if not self._allow_hidden:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith(".") and not self._allow_hidden:
                    continue
                path = Path(folder, name)
                try:
                    stat = path.lstat()
                except OSError:
                    continue
                seen[path.relative_to(self._root).as_posix()] = (stat.st_mtime_ns, stat.st_size)
                if len(seen) >= self._max_entries:
                    return seen
        return seen

    async def scan_once(self, previous: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """Compare with `previous`, publish what changed, and return the new snapshot."""
        current = await anyio.to_thread.run_sync(self.snapshot)
        if set(current) != set(previous):
            await self._notifier.publish({"kind": "resources"})
        changed = sorted(path for path, stamp in current.items() if path in previous and previous[path] != stamp)
        for path in changed[:_MAX_UPDATES_PER_SCAN]:
            await self._notifier.publish({"kind": "resource", "uri": URI_PREFIX + quote(path, safe="/")})
        return current

    async def run(self) -> None:
        previous = await anyio.to_thread.run_sync(self.snapshot)
        while True:
            await anyio.sleep(self._interval)
            if not self._listening():
                previous = {}  # rescan quietly once someone listens again
                continue
            try:
                previous = await self.scan_once(previous) if previous else \
                    await anyio.to_thread.run_sync(self.snapshot)
            except Exception:
                logger.exception("scanning the static root failed; will retry")
