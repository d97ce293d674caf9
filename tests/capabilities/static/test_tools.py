"""Static files tools and resources: paging, cursors, chunked reads, encodings, search and progress."""

from __future__ import annotations

import base64
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_core import to_json

from mcp_platform.capabilities.static import (
    CAPABILITY,
    StaticResourceProvider,
    list_static_files,
    read_static_file,
    search_static_files,
)
from mcp_platform.capabilities.static.backend import StaticFiles
from mcp_platform.context import Backends, ToolContext
from mcp_platform.errors import InvalidParams
from mcp_platform.results import ToolResult
from mcp_platform.settings import StaticSettings
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import call, context, host, principal, start_capability, text
from tests.support import make_settings

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                    "f0bf1e0007830282cd3a2c690000000049454e44ae426082")
MIXED = "ascii é 東京 😀 end\n".encode() * 3


def build_tree(root: Path) -> Path:
    for folder in ("css", "js", "docs/guides", "img", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("<h1>Widget shop</h1>\n")
    (root / "css" / "site.css").write_text("body {}\n.widget { color: blue; }\n")
    (root / "css" / "print.css").write_text("@media print {}\n")
    (root / "js" / "app.js").write_text("// widgets\nconsole.log('WIDGET');\n")
    (root / "docs" / "readme.md").write_text("# Readme\n\nNothing here.\nA widget line.\n")
    (root / "docs" / "guides" / "one.md").write_text("one\n")
    (root / "docs" / "guides" / "two.md").write_text("two widget\n")
    (root / "img" / "logo.png").write_bytes(PNG)
    (root / "data" / "blob.bin").write_bytes(b"\x00\x01widget\x02")
    (root / "data" / "latin1.txt").write_bytes("caf\xe9 widget".encode("latin-1"))
    (root / "mixed.txt").write_bytes(MIXED)
    (root / ".env").write_text("widget=secret\n")
    return root


async def start(root: Path, **settings: Any) -> Backends:
    async with AsyncExitStack() as stack:
        static = {"root": root, **settings.pop("static", {})}
        # Beside the root, so the settings' files are not listed (a root in the repository brings its own folder).
        folder: Path = settings.pop("settings_folder", None) or root.with_name(f"{root.name}-settings")
        folder.mkdir(exist_ok=True)
        core = await start_capability(CAPABILITY, stack, make_settings(folder, static=static, **settings))
    return core.backends


@pytest.fixture
async def backends(tmp_path: Path) -> Backends:
    return await start(build_tree(tmp_path))


async def list_all(backends: Backends, **arguments: Any) -> list[str]:
    """Every path of a listing, following cursors page by page."""
    paths: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        result = await call(list_static_files, {**arguments, "cursor": cursor}, context(backends))
        assert not result.is_error, text(result)
        paths.extend(entry["path"] for entry in result.structured["entries"])
        cursor = result.structured["next_cursor"]
        if cursor is None:
            return paths
    raise AssertionError("the cursor chain did not end")


@pytest.mark.anyio
async def test_every_tool_declares_output_schema_and_read_only_annotations() -> None:
    registry = Registry()
    for tool in registry.add_all(CAPABILITY.tools):
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        annotations = tool.definition["annotations"]
        assert annotations["readOnlyHint"] is True and annotations["openWorldHint"] is False
        assert tool.definition["title"] and tool.spec.scope == "read"
    assert sorted(t.name for t in registry.all()) == ["list_static_files", "read_static_file", "search_static_files"]


@pytest.mark.anyio
async def test_start_adds_backend_and_resource_provider(backends: Backends) -> None:
    assert isinstance(backends.get(StaticFiles), StaticFiles)
    assert backends.get(StaticResourceProvider).files is backends.get(StaticFiles)


@pytest.mark.anyio
async def test_list_root_is_sorted_without_hidden_entries(backends: Backends) -> None:
    result = await call(list_static_files, {}, context(backends))
    entries = result.structured["entries"]
    assert [e["path"] for e in entries] == ["css", "data", "docs", "img", "index.html", "js", "mixed.txt"]
    html = entries[4]
    assert html["is_dir"] is False and html["size"] == 21 and html["mime_type"] == "text/html"
    assert entries[0]["is_dir"] is True and entries[0]["size"] is None
    assert html["modified"].endswith("Z") and datetime.fromisoformat(html["modified"]).utcoffset() is not None


@pytest.mark.anyio
async def test_small_pages_return_every_entry_exactly_once(backends: Backends) -> None:
    everything = await list_all(backends, recursive=True, limit=1000)
    assert len(everything) == 17 and len(set(everything)) == 17
    for limit in (1, 2, 3, 7):
        assert await list_all(backends, recursive=True, limit=limit) == everything
    assert everything.index("docs/guides/two.md") < everything.index("docs/readme.md")


@pytest.mark.anyio
async def test_pattern_matches_names_in_subfolders(backends: Backends) -> None:
    assert await list_all(backends, recursive=True, pattern="*.css") == ["css/print.css", "css/site.css"]
    assert await list_all(backends, path="docs/", pattern="*.md") == ["docs/readme.md"]
    result = await call(list_static_files, {"pattern": "css/*.css"}, context(backends))
    assert result.is_error and "file names only" in text(result)


@pytest.mark.anyio
async def test_listing_a_file_says_to_read_it(backends: Backends) -> None:
    result = await call(list_static_files, {"path": "index.html"}, context(backends))
    assert result.is_error and "read_static_file" in text(result)


@pytest.mark.anyio
@pytest.mark.parametrize("cursor_of", ["tampered", "garbage", "other_listing", "other_server", "empty", "huge"])
async def test_forged_cursors_are_refused(tmp_path: Path, backends: Backends, cursor_of: str) -> None:
    first = await call(list_static_files, {"recursive": True, "limit": 2}, context(backends))
    cursor = first.structured["next_cursor"]
    payload, mac = cursor.split(".")
    forged = {
        "tampered": payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac,
        "garbage": "not-a-cursor",
        "other_listing": cursor,
        "other_server": (await call(list_static_files, {"recursive": True, "limit": 2},
                                    context(await start(tmp_path)))).structured["next_cursor"],
        "empty": "",
        "huge": "a" * 10_000,
    }[cursor_of]
    arguments = {"recursive": cursor_of != "other_listing", "limit": 2, "cursor": forged}
    result = await call(list_static_files, arguments, context(backends))
    assert result.is_error, text(result)


@pytest.mark.anyio
async def test_instances_sharing_secret_key_accept_each_others_cursors(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    arguments = {"recursive": True, "limit": 2}
    first = await call(list_static_files, arguments, context(await start(root, secret_key="k" * 32)))
    cursor = first.structured["next_cursor"]
    results = [await call(list_static_files, {**arguments, "cursor": cursor}, context(await start(root, **settings)))
               for settings in ({"secret_key": "k" * 32}, {"secret_key": "other-key-" * 4}, {})]
    everything = await list_all(await start(root), recursive=True)
    assert [entry["path"] for entry in results[0].structured["entries"]] == everything[2:4]
    assert all(r.is_error and "not one this server issued" in text(r) for r in results[1:])


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [
    {"limit": 0}, {"limit": 1001}, {"limit": -1}, {"limit": "many"}, {"recursive": "yes please"},
    {"pattern": ""}, {"pattern": "x" * 201}, {"path": None}, {"path": 42}, {"unknown": 1},
])
async def test_list_rejects_bad_arguments(backends: Backends, arguments: dict[str, Any]) -> None:
    assert (await call(list_static_files, arguments, context(backends))).is_error


@pytest.mark.anyio
async def test_scan_stops_at_the_entry_cap_and_says_so(tmp_path: Path) -> None:
    files = StaticFiles(StaticSettings.model_validate({"root": build_tree(tmp_path)}), max_scan_entries=5)
    listing = await files.list_files("", recursive=True, limit=100)
    assert len(listing.entries) == 5 and listing.note and "stopped after 5" in listing.note


def chunk_bytes(result: ToolResult) -> bytes:
    data = result.structured
    return data["content"].encode() if data["encoding"] == "text" else base64.b64decode(data["content"])


@pytest.mark.anyio
@pytest.mark.parametrize("max_bytes", [1, 2, 3, 4, 5, 7, 64])
async def test_offset_chain_reconstructs_file_exactly(backends: Backends, max_bytes: int) -> None:
    got, offset, calls = b"", 0, 0
    while offset is not None:
        result = await call(read_static_file, {"path": "mixed.txt", "offset": offset, "max_bytes": max_bytes},
                            context(backends))
        assert not result.is_error, text(result)
        data = result.structured
        assert data["offset"] == offset and data["size"] == len(MIXED) and data["length"] <= max_bytes
        assert data["truncated"] is (data["next_offset"] is not None)
        got += chunk_bytes(result)
        offset, calls = data["next_offset"], calls + 1
        assert calls <= len(MIXED)
    assert got == MIXED


@pytest.mark.anyio
async def test_text_chunks_stop_before_a_split_character(backends: Backends) -> None:
    start = MIXED.index("東".encode())
    result = await call(read_static_file, {"path": "mixed.txt", "offset": 0, "max_bytes": start + 2},
                        context(backends))
    data = result.structured
    assert data["encoding"] == "text" and data["content"] == "ascii é " and data["next_offset"] == start


@pytest.mark.anyio
@pytest.mark.parametrize("offset", [len(MIXED), len(MIXED) + 1, 10**12])
async def test_offset_at_or_past_the_end_is_empty(backends: Backends, offset: int) -> None:
    data = (await call(read_static_file, {"path": "mixed.txt", "offset": offset}, context(backends))).structured
    assert data["content"] == "" and data["truncated"] is False and data["next_offset"] is None


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [
    {"path": "mixed.txt", "offset": -1}, {"path": "mixed.txt", "max_bytes": 0}, {"path": "mixed.txt", "max_bytes": -5},
    {"path": "mixed.txt", "offset": "1"*3 + "x"}, {}, {"path": "css"}, {"path": ""}, {"path": "missing.txt"},
    {"path": ["mixed.txt"]},
])
async def test_read_rejects_bad_arguments(backends: Backends, arguments: dict[str, Any]) -> None:
    assert (await call(read_static_file, arguments, context(backends))).is_error


@pytest.mark.anyio
async def test_read_is_capped_by_max_read_bytes(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path), static={"max_read_bytes": 10})
    data = (await call(read_static_file, {"path": "index.html", "max_bytes": 10**9}, context(backends))).structured
    assert data["length"] == 10 and data["truncated"] is True and data["next_offset"] == 10


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "mime", "raw"), [
    ("img/logo.png", "image/png", PNG),
    ("data/blob.bin", "application/octet-stream", b"\x00\x01widget\x02"),
    ("data/latin1.txt", "text/plain", "caf\xe9 widget".encode("latin-1")),
])
async def test_binary_comes_back_as_base64_with_its_mime_type(backends: Backends, path: str, mime: str,
                                                               raw: bytes) -> None:
    data = (await call(read_static_file, {"path": path}, context(backends))).structured
    assert data["encoding"] == "base64" and data["mime_type"] == mime
    assert base64.b64decode(data["content"]) == raw and data["truncated"] is False


def progress_context(backends: Backends, sent: list[tuple[str, dict[str, Any]]]) -> ToolContext:
    async def notify(method: str, params: dict[str, Any]) -> None:
        sent.append((method, params))

    return ToolContext(principal=principal(), tool_name="search_static_files", request_id=7,
                       protocol_version="2025-11-25", core=host(backends), notify=notify, progress_token="tok")


@pytest.mark.anyio
async def test_search_finds_lines_case_insensitively_with_line_numbers(backends: Backends) -> None:
    result = await call(search_static_files, {"query": "WiDgEt"}, context(backends))
    found = [(m["path"], m["line_number"], m["line"]) for m in result.structured["matches"]]
    assert found == [
        ("css/site.css", 2, ".widget { color: blue; }"),
        ("data/latin1.txt", 1, "caf\ufffd widget"),
        ("docs/guides/two.md", 1, "two widget"),
        ("docs/readme.md", 4, "A widget line."),
        ("index.html", 1, "<h1>Widget shop</h1>"),
        ("js/app.js", 1, "// widgets"),
        ("js/app.js", 2, "console.log('WIDGET');"),
    ]
    assert result.structured["truncated"] is False
    assert result.structured["files_skipped"] == 2  # the PNG and the file with NUL bytes


@pytest.mark.anyio
async def test_search_reports_increasing_progress_up_to_the_total(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"f{i:02}.txt").write_text(f"line\nneedle {i}\n")
    backends = await start(tmp_path)
    sent: list[tuple[str, dict[str, Any]]] = []
    result = await call(search_static_files, {"query": "NEEDLE", "limit": 500}, progress_context(backends, sent))
    assert len(result.structured["matches"]) == 40
    assert all(m["line_number"] == 2 for m in result.structured["matches"])
    progress = [params for method, params in sent if method == "notifications/progress"]
    assert len(progress) >= 3 and all(p["progressToken"] == "tok" and p["total"] == 40 for p in progress)
    values = [p["progress"] for p in progress]
    assert values == sorted(set(values)) and values[-1] == 40


@pytest.mark.anyio
async def test_search_stops_at_limit_and_says_more_exist(backends: Backends) -> None:
    data = (await call(search_static_files, {"query": "widget", "limit": 2}, context(backends))).structured
    assert len(data["matches"]) == 2 and data["truncated"] is True


@pytest.mark.anyio
async def test_search_clips_long_lines_around_the_match(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("x" * 5000 + "NEEDLE" + "y" * 5000 + "\n")
    backends = await start(tmp_path)
    line = (await call(search_static_files, {"query": "needle"}, context(backends))).structured["matches"][0]["line"]
    assert "NEEDLE" in line and len(line) <= 302


@pytest.mark.anyio
async def test_search_skips_files_too_large_to_search(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"needle\n" + b"x" * (4 * 1024 * 1024))
    (tmp_path / "small.txt").write_text("needle\n")
    data = (await call(search_static_files, {"query": "needle"}, context(await start(tmp_path)))).structured
    assert [m["path"] for m in data["matches"]] == ["small.txt"] and data["files_skipped"] == 1


@pytest.mark.anyio
async def test_search_in_one_file_and_in_a_folder(backends: Backends) -> None:
    in_file = (await call(search_static_files, {"query": "widget", "path": "js/app.js"}, context(backends)))
    assert {m["path"] for m in in_file.structured["matches"]} == {"js/app.js"}
    in_folder = (await call(search_static_files, {"query": "widget", "path": "docs"}, context(backends)))
    assert [m["path"] for m in in_folder.structured["matches"]] == ["docs/guides/two.md", "docs/readme.md"]


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [
    {"query": ""}, {"query": "x" * 1001}, {"query": "a\nb"}, {"query": "a\rb"}, {"query": "x", "limit": 0},
    {"query": "x", "limit": 501}, {"query": None}, {"query": "x", "path": "../"}, {},
])
async def test_search_rejects_bad_arguments(backends: Backends, arguments: dict[str, Any]) -> None:
    assert (await call(search_static_files, arguments, context(backends))).is_error


@pytest.mark.anyio
async def test_search_can_be_cancelled_between_batches(tmp_path: Path) -> None:
    for i in range(100):
        (tmp_path / f"f{i:03}.txt").write_text("needle\n")
    files = StaticFiles(StaticSettings.model_validate({"root": tmp_path}))
    seen: list[int] = []
    with anyio.CancelScope() as scope:
        async def progress(done: int, total: int) -> None:
            seen.append(done)
            scope.cancel()

        await files.search_files("needle", "", 500, progress)
    assert scope.cancelled_caught and seen == [16]


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["css/site.css", "img/logo.png", "mixed.txt", "data/latin1.txt"])
async def test_resource_read_equals_tool_read(backends: Backends, path: str) -> None:
    provider = backends.get(StaticResourceProvider)
    (entry,) = await provider.read(f"static:///{path}")
    tool_result = await call(read_static_file, {"path": path}, context(backends))
    assert entry["mimeType"] == tool_result.structured["mime_type"]
    resource_bytes = entry["text"].encode() if "text" in entry else base64.b64decode(entry["blob"])
    on_disk = (Path(backends.get(StaticFiles).configured) / path).read_bytes()
    assert resource_bytes == chunk_bytes(tool_result) == on_disk


@pytest.mark.anyio
async def test_resource_uris_are_percent_encoded_and_read_back(tmp_path: Path) -> None:
    (tmp_path / "sp ace é#1.txt").write_text("odd name\n")
    provider = (await start(tmp_path)).get(StaticResourceProvider)
    entries, _ = await provider.list_page(None, 10)
    assert entries == [{"uri": "static:///sp%20ace%20%C3%A9%231.txt", "name": "sp ace é#1.txt", "size": 9,
                        "mimeType": "text/plain"}]
    assert (await provider.read(entries[0]["uri"]))[0]["text"] == "odd name\n"


@pytest.mark.anyio
async def test_resource_list_pages_cover_every_file_once(backends: Backends) -> None:
    provider = backends.get(StaticResourceProvider)
    everything, _ = await provider.list_page(None, 1000)
    uris: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await provider.list_page(cursor, 3)
        uris.extend(entry["uri"] for entry in page)
        if cursor is None:
            break
    assert uris == [entry["uri"] for entry in everything] and len(uris) == 11
    assert "static:///.env" not in uris


@pytest.mark.anyio
@pytest.mark.parametrize("cursor", ["nope", "", "a.b", "x" * 5000])
async def test_resource_list_refuses_bad_cursor(backends: Backends, cursor: str) -> None:
    with pytest.raises(InvalidParams):
        await backends.get(StaticResourceProvider).list_page(cursor, 10)


@pytest.mark.anyio
async def test_resource_list_refuses_a_tool_listing_cursor(backends: Backends) -> None:
    listing = await call(list_static_files, {"recursive": True, "limit": 1}, context(backends))
    with pytest.raises(InvalidParams):
        await backends.get(StaticResourceProvider).list_page(listing.structured["next_cursor"], 10)


@pytest.mark.anyio
async def test_resource_larger_than_the_cap_points_to_the_tool(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path), static={"max_read_bytes": 10})
    with pytest.raises(InvalidParams) as caught:
        await backends.get(StaticResourceProvider).read("static:///index.html")
    assert "read_static_file" in caught.value.message


@pytest.mark.anyio
async def test_resource_template_and_scheme(backends: Backends) -> None:
    provider = backends.get(StaticResourceProvider)
    (template,) = provider.templates()
    assert template["uriTemplate"] == "static:///{+path}" and template["name"] and template["title"]
    assert provider.handles("static:///index.html") and not provider.handles("file:///etc/passwd")


@pytest.mark.anyio
async def test_default_read_of_a_large_file_fits_the_result_cap(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text('"quoted" \\ text\n' * 8000)
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 400)
    backends = await start(tmp_path, tools={"max_result_bytes": 20_000})
    for path in ("big.txt", "big.bin"):
        result = await call(read_static_file, {"path": path}, context(backends))
        assert result.structured["truncated"] is True and result.structured["length"] > 1000
        assert len(to_json(result.to_wire())) <= 20_000


@pytest.mark.anyio
async def test_example_static_folder_demonstrates_the_tools(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "static"
    backends = await start(root, settings_folder=tmp_path)  # nothing is written into the repository
    paths = await list_all(backends, recursive=True)
    assert {"index.html", "css/site.css", "js/app.js", "docs/getting-started.md", "data/products.csv",
            "img/logo.png"} <= set(paths)
    assert not any(part.startswith(".") for path in paths for part in path.split("/"))
    assert (root / ".env.example").is_file()
    logo = (await call(read_static_file, {"path": "img/logo.png"}, context(backends))).structured
    assert logo["mime_type"] == "image/png" and base64.b64decode(logo["content"]).startswith(b"\x89PNG\r\n\x1a\n")
    found = (await call(search_static_files, {"query": "widget"}, context(backends))).structured["matches"]
    assert any(m["path"] == "data/products.csv" for m in found)
