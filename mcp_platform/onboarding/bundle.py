"""`mcp-platform bundle`: an MCP Bundle (`.mcpb`, manifest 0.3) that Claude Desktop installs in one click.

The bundle is a zip of `manifest.json`, a launcher `server/main.py` and, in `server/lib/`, this package with every
distribution it depends on, copied from the environment that runs the command (no network, no pip). Claude Desktop
asks the user for a project folder when installing it, then runs `python3 server/main.py --directory <folder>`,
which serves `mcp-platform stdio` there: the folder's mcp-platform.toml, tools/ and static/ apply, and state stays
in its .mcp-platform/.

Compiled dependencies (pydantic-core, SQLAlchemy's and asyncpg's extensions) are built for one platform and one
Python minor version, so a bundle runs where it was built; its manifest says which (`compatibility`), and a release
builds one bundle per platform.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as platform_module
import re
import sys
import tempfile
import zipfile
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

__all__ = ["LAUNCHER", "build_bundle", "bundle_files", "bundle_manifest", "dependency_closure", "run_bundle"]

PROJECT = "mcp-platform"
LAUNCHER = '''"""The bundle's entry point: `mcp-platform stdio` on the libraries in lib/."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))

from mcp_platform.cli import main  # noqa: E402

sys.exit(main(["stdio", *sys.argv[1:]]))
'''
_PLATFORMS = {"darwin": "darwin", "win32": "win32", "linux": "linux"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
# Only the `extra` part of a requirement's marker is read: whatever else it says (python_version, sys_platform)
# was already decided when the environment was installed, and a dependency it excluded is simply not there.
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(root: str = PROJECT) -> list[Distribution]:
    """`root` and every installed distribution it requires, extras included where a requirement names them
    (`uvicorn[standard]`), but not `root`'s own optional extras (dev tools)."""
    found: dict[str, Distribution] = {}
    done: set[tuple[str, str]] = set()
    pending = [(root, "")]
    while pending:
        name, extra = pending.pop()
        key = _canonical(name)
        if (key, extra) in done:
            continue
        done.add((key, extra))
        try:
            dist = found.get(key) or distribution(name)
        except PackageNotFoundError:  # excluded by its marker on this platform, so never installed
            continue
        found[key] = dist
        for line in dist.requires or []:
            requirement, _, marker = line.partition(";")
            gates = _EXTRA.findall(marker)
            # The "" pass takes the unconditional requirements; an extra's pass only the ones that extra adds.
            if not (extra in gates if gates else not extra):
                continue
            match = _REQUIREMENT.match(requirement)
            if match:
                pending.append((match.group(1), ""))
                pending.extend((match.group(1), e.strip()) for e in (match.group(2) or "").split(",") if e.strip())
    return sorted(found.values(), key=lambda d: _canonical(d.metadata["Name"]))


def _skipped(parts: tuple[str, ...]) -> bool:
    name = parts[-1]
    return ("__pycache__" in parts or name.endswith((".pyc", ".pth")) or name.startswith("__editable__")
            or name in ("direct_url.json", "INSTALLER"))


def bundle_files(dists: list[Distribution]) -> dict[str, Path]:
    """Archive name under `server/lib/` -> file, for every distribution's installed files (console scripts,
    byte code, editable-install hooks and local paths left out) and this package's source."""
    files: dict[str, Path] = {}
    for dist in dists:
        base = Path(str(dist.locate_file("")))
        for entry in dist.files or []:
            parts = entry.parts
            if ".." in parts or _skipped(parts):
                continue
            path = base.joinpath(*parts)
            if path.is_file():
                files["/".join(parts)] = path
    # An editable install lists only a hook in its RECORD; the package itself is wherever its source is.
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package.parent)
        if path.is_file() and not _skipped(relative.parts):
            files[relative.as_posix()] = path
    return files


def bundle_manifest(*, version: str, description: str, author: str, platform: str = sys.platform,
                    python: tuple[int, int] = sys.version_info[:2]) -> dict[str, Any]:
    """The manifest (MCPB 0.3) of a bundle built on `platform` with Python `python`."""
    major, minor = python
    return {
        "manifest_version": "0.3",
        "name": PROJECT,
        "display_name": "mcp-platform",
        "version": version,
        "description": description,
        "author": {"name": author},
        "license": "MIT",
        "keywords": ["mcp", "configuration", "feature-flags", "metrics", "database"],
        "server": {
            "type": "python",
            "entry_point": "server/main.py",
            "mcp_config": {
                # Desktop apps start servers with a minimal PATH: `python3` is the name macOS and Linux have.
                "command": "python" if platform == "win32" else "python3",
                "args": ["${__dirname}/server/main.py", "--directory", "${user_config.project_directory}"],
                "env": {"PYTHONPATH": "${__dirname}/server/lib"},
            },
        },
        # The tools come from the project folder's tools/ and the capabilities its config turns on.
        "tools_generated": True,
        "prompts_generated": True,
        "user_config": {
            "project_directory": {
                "type": "directory",
                "title": "Project folder",
                "description": "The folder with your mcp-platform.toml and tools/ (an empty folder serves the "
                               "built-in tools). State is kept in its .mcp-platform/ folder.",
                "required": True,
            },
        },
        "compatibility": {
            "platforms": [_PLATFORMS.get(platform, platform)],
            "runtimes": {"python": f">={major}.{minor} <{major}.{minor + 1}"},
        },
    }


def build_bundle(output: Path) -> tuple[Path, dict[str, Any]]:
    """Write the bundle to `output` (atomically: a failed build leaves no partial file). Returns the path and
    the manifest."""
    dist = distribution(PROJECT)
    meta = dist.metadata
    author = meta["Author"] or meta["Author-email"] or "mcp-platform contributors"  # None when not declared
    manifest = bundle_manifest(version=dist.version, description=meta["Summary"], author=author)
    files = bundle_files(dependency_closure())
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
            archive.writestr("server/main.py", LAUNCHER)
            for name in sorted(files):
                archive.write(files[name], f"server/lib/{name}")
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return output, manifest


def default_output(version: str) -> Path:
    return Path("dist") / f"{PROJECT}-{version}-{sys.platform}-{platform_module.machine().lower()}.mcpb"


def run_bundle(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else default_output(distribution(PROJECT).version)
    if output.is_dir():
        print(f"mcp-platform bundle: --output {output} is a directory; name the .mcpb file", file=sys.stderr)
        return 2
    path, manifest = build_bundle(output)
    compatibility = manifest["compatibility"]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): MCPB {manifest['manifest_version']}, "
          f"{manifest['name']} {manifest['version']} for {', '.join(compatibility['platforms'])} with Python "
          f"{compatibility['runtimes']['python']}")
    print("# Open it with Claude Desktop (double-click, or Settings > Extensions) and pick the project folder.")
    return 0
