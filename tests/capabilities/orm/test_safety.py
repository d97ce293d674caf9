"""No SQL text is ever built from what a caller sends: checked on the source, and on the compiled statements."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import ClauseElement

import mcp_platform.capabilities.orm as orm_package
from mcp_platform.capabilities.orm.catalog import Catalog
from mcp_platform.capabilities.orm.filters import OrderKey, compile_where
from mcp_platform.capabilities.orm.pagination import after_key, order_clauses, sort_keys
from tests.capabilities.orm.test_filters import INJECTIONS
from tools import shop

PACKAGE = Path(orm_package.__file__).parent
RAW_SQL_CALLS = {"text", "literal_column", "TextClause", "exec_driver_sql", "execute", "executescript"}
DIALECT_URLS = ("postgresql+asyncpg://", "sqlite+aiosqlite://")
SOURCES = sorted(PACKAGE.glob("*.py")) + [Path(shop.__file__)]


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_source_builds_no_sql_text(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy"):
            imported = {alias.name for alias in node.names}
            assert not imported & {"text", "literal_column", "TextClause"}, f"{path.name}:{node.lineno}"
        if isinstance(node, ast.Call) and _name(node.func) in RAW_SQL_CALLS:
            name = _name(node.func)
            assert name not in ("text", "literal_column", "TextClause", "executescript"), f"{path.name}:{node.lineno}"
            # execute() and exec_driver_sql() take SQLAlchemy constructs, or a fixed string written right there.
            for argument in node.args[:1]:
                is_literal = isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                is_fixed_choice = isinstance(argument, ast.IfExp) and all(
                    isinstance(branch, ast.Constant) for branch in (argument.body, argument.orelse))
                if isinstance(argument, ast.JoinedStr | ast.BinOp) or (
                        name == "exec_driver_sql" and not (is_literal or is_fixed_choice)):
                    pytest.fail(f"{path.name}:{node.lineno}: SQL given to {name}() is not a fixed string")
        if isinstance(node, ast.JoinedStr):
            rendered = ast.unparse(node).upper()
            assert not any(word in rendered for word in ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM")), (
                f"{path.name}:{node.lineno}: f-string that looks like SQL")


def test_grep_finds_no_text_call() -> None:
    for path in SOURCES:
        code = path.read_text()
        assert not re.search(r"(?<!\w)text\(|sqlalchemy\.text\b", code), path.name


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    from mcp_platform.capabilities.orm import collect_models

    return Catalog(collect_models([shop]))


def _compiled(clause: ClauseElement, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    compiled = clause.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


@pytest.mark.parametrize("url", DIALECT_URLS, ids=["postgresql", "sqlite"])
@pytest.mark.parametrize("value", INJECTIONS)
def test_filter_values_become_bound_parameters(catalog: Catalog, url: str, value: str) -> None:
    dialect = make_url(url).get_dialect()()
    view = catalog.get("Customer")
    where = {"or": [{"name": value}, {"email": {"like": value}}, {"city": {"in": [value]}},
                    {"not": {"name": {"ne": value}}}]}
    condition = compile_where(view, where)
    assert condition is not None
    sql, params = _compiled(condition, dialect)
    assert "'" not in sql and '"' not in sql  # no string literal was inlined
    assert value not in sql or len(value) == 1  # (a lone % or _ also occurs in the placeholders)
    assert list(params.values()).count(value) == 3 and [value] in params.values()


@pytest.mark.parametrize("url", DIALECT_URLS, ids=["postgresql", "sqlite"])
def test_keyset_predicate_binds_the_cursor_values(catalog: Catalog, url: str) -> None:
    dialect = make_url(url).get_dialect()()
    view = catalog.get("Customer")
    keys = sort_keys(view, [OrderKey(view.fields["city"], True), OrderKey(view.fields["name"], False)])
    marker = "'; DROP TABLE customers; --"
    sql, params = _compiled(after_key(keys, ["Oslo", marker, 3]), dialect)
    assert marker not in sql and marker in params.values()
    ordering = ", ".join(str(clause.compile(dialect=dialect)) for clause in order_clauses(keys))
    assert ordering.count("CASE WHEN") == 1 and "IS NULL" in ordering  # only city is nullable
