"""The one signature inspection and docstring parser behind `@tool`, `@prompt` and `@resource`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import pytest

import mcp_platform as mp
from mcp_platform import ToolContext
from mcp_platform.discovery import discover
from mcp_platform.errors import ConfigError
from mcp_platform.signatures import inspect_function, is_context, parse_docstring
from mcp_platform.tool_registry import Registry

QUALIFIED = Path(__file__).parent / "fixtures" / "qualified_tools"


class Opaque:
    """A type pydantic cannot validate."""


@pytest.mark.parametrize("annotation", [ToolContext, mp.ToolContext, Annotated[ToolContext, "why"], ToolContext | None,
                                        Optional[ToolContext], Annotated[ToolContext | None, "why"],  # noqa: UP045
                                        Annotated[ToolContext, "why"] | None])
def test_the_context_is_found_by_its_resolved_type(annotation: Any) -> None:
    assert is_context(annotation)


@pytest.mark.parametrize("annotation", [str, Any, ToolContext | int, list[ToolContext], "ToolContext",
                                        Annotated[str, ToolContext]])
def test_other_annotations_are_arguments(annotation: Any) -> None:
    assert not is_context(annotation)


def test_postponed_and_qualified_annotations_resolve_in_the_functions_module() -> None:
    def by_name(ctx: mp.ToolContext, count: int = 1) -> None: ...

    def optional(count: int, ctx: ToolContext | None = None) -> None: ...

    def untyped(ctx, count=1):  # type: ignore[no-untyped-def]
        ...

    assert inspect_function(by_name, "tool", "by_name").context == "ctx"
    assert inspect_function(optional, "tool", "optional").names == ("count",)
    # Only the type decides: an unannotated `ctx` is an argument like any other.
    assert inspect_function(untyped, "tool", "untyped").names == ("ctx", "count")


def test_the_three_decorators_read_the_fixture_module_alike() -> None:
    found = discover([QUALIFIED])
    assert found.failures == {}
    whoami = Registry().add(found.tools[0])
    assert whoami.input_schema == {"type": "object", "properties": {}, "additionalProperties": False}
    assert {p.name: p.signature.context for p in found.prompts} == {"annotated_briefing": "ctx", "briefing": "ctx",
                                                                    "sized_briefing": None}
    assert {r.name: r.signature.context for r in found.resources} == {"echo_text": None, "note": None,
                                                                      "order_lines": "ctx"}


def test_signatures_that_cannot_be_described_are_refused_with_the_reason() -> None:
    def two(a: ToolContext, b: ToolContext) -> None: ...

    def positional(a: int, /) -> None: ...

    def private(_a: int) -> None: ...

    def unresolved(a: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    def opaque(a: Opaque) -> None: ...

    cases: list[tuple[Callable[..., Any], str]] = [
        (two, "two parameters ask for the ToolContext"), (positional, "positional-only"),
        (private, "may not start with '_'"), (unresolved, "cannot resolve its type hints"),
        (opaque, "cannot be validated")]
    for fn, reason in cases:
        with pytest.raises(ConfigError, match=reason):
            inspect_function(fn, "prompt", "p")


def test_one_docstring_parser_for_every_decorator() -> None:
    doc = parse_docstring("""Summary line.

        More about it,
        over two lines.

        Arguments:
            path (str): Where to look,
                relative to the root.
            limit: At most this many.
            **extra: Ignored.

        Returns:
            limit: not an argument.
        """)
    assert doc.summary == "Summary line."
    assert doc.description == "Summary line.\n\nMore about it,\nover two lines."
    assert doc.arguments == {"path": "Where to look, relative to the root.", "limit": "At most this many.",
                             "**extra": "Ignored."}
    for heading in ("Args:", "Parameters:", "Keyword Args:"):
        assert parse_docstring(f"Do it.\n\n{heading}\n    x: The x.\n").arguments == {"x": "The x."}
    assert parse_docstring("Do it.\n\nArgs:\n    x:\n        The x, on its own line.").arguments == {
        "x": "The x, on its own line."}
    assert parse_docstring(None).description == "" and parse_docstring("").arguments == {}
