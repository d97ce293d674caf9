"""Merging one server entry into a TOML config file (Codex CLI's `~/.codex/config.toml`) without losing anything.

tomlkit keeps what a person wrote: comments, key order, other tables, sub-tables of other servers. The entry is
added under its section (`[mcp_servers.NAME]`) or replaces the entry of the same name whole, as the JSON merge
does; nothing else in the document is touched.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import InlineTable, Table

__all__ = ["merge_toml", "render_toml"]


def merge_toml(text: str, fragment: dict[str, dict[str, dict[str, Any]]], source: str) -> tuple[str, bool]:
    """`fragment` ({section: {name: entry}}) merged into the TOML `text`; returns the new text and whether an
    entry was replaced. Raises ValueError, saying the file was left untouched, for text that is not TOML or a
    section that is not a table."""
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ValueError(f"{source} is not valid TOML ({exc}); it was left untouched. Fix it, or write to another "
                         "file with --file.") from None
    replaced = False
    for key, entries in fragment.items():
        section = document.get(key)
        if section is None:
            # A super-table renders as `[mcp_servers.NAME]` headers only, the way Codex writes it.
            section = tomlkit.table(is_super_table=True)
            document.append(key, section)
        if not isinstance(section, Table | InlineTable):
            raise ValueError(f"{source}: {key!r} is not a table; it was left untouched")
        for name, entry in entries.items():
            item = _inline(entry) if isinstance(section, InlineTable) else _table(entry)
            if name in section:
                replaced = True
                section[name] = item
            else:
                section.append(name, item)
    return tomlkit.dumps(document).rstrip("\n") + "\n", replaced


def render_toml(fragment: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The fragment as it would appear in a new file."""
    return merge_toml("", fragment, "(new file)")[0]


def _table(entry: dict[str, Any]) -> Table:
    table = tomlkit.table()
    for key, value in entry.items():
        table.append(key, _inline(value) if isinstance(value, dict) else value)
    table.add(tomlkit.nl())  # a blank line before whatever table follows
    return table


def _inline(entry: dict[str, Any]) -> InlineTable:
    table = tomlkit.inline_table()
    for key, value in entry.items():
        table.append(key, _inline(value) if isinstance(value, dict) else value)
    return table
