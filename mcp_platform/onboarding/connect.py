"""`mcp-platform connect CLIENT`: the configuration each client documents, printed or merged into its file.

Remote clients reach `/mcp` over HTTP with `Authorization: Bearer <token>`, where the token is a reference to an
environment variable in the client's own syntax (Claude Code and Gemini CLI `${VAR}`, Cursor and Windsurf
`${env:VAR}`, VS Code a password prompt `${input:ID}`, Codex CLI the variable's name in `bearer_token_env_var`), so
no file holds a secret unless `--token-literal` says so. Claude Desktop launches `mcp-platform stdio` as a local
command, which needs no token at all.

With `--auth oauth` (the default when the config's `auth.mode` is OAuth only) a remote client gets the URL and
nothing else: it discovers the identity provider from the server's 401 (RFC 9728) and signs the user in itself.

`--write` merges one entry into the client's file: other servers, other inputs and other top-level keys stay as
they were (Codex's TOML through tomlkit, comments included); a file that is not valid JSON (or TOML) is refused
and left untouched; the new file replaces the old one atomically (temp file, fsync, rename), through a symlink to
its target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mcp_platform.onboarding.toml_config import merge_toml, render_toml

__all__ = ["CLIENTS", "DEFAULT_NAME", "DEFAULT_TOKEN_ENV", "ClientConfig", "ConnectError", "client_config",
           "default_file", "local_command", "merge_document", "run_connect", "write_config"]

CLIENTS = ("claude-code", "cursor", "vscode", "windsurf", "claude-desktop", "codex", "gemini")
DEFAULT_NAME = "mcp-platform"
DEFAULT_TOKEN_ENV = "MCP_PLATFORM_TOKEN_VALUE"
"""Not `MCP_PLATFORM_TOKEN`: the server reads that one as an all-scopes token, and a client's shell is not the
place to grant one."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TITLES = {"claude-code": "Claude Code", "cursor": "Cursor", "vscode": "VS Code", "windsurf": "Windsurf",
           "claude-desktop": "Claude Desktop", "codex": "Codex CLI", "gemini": "Gemini CLI"}


Auth = Literal["token", "oauth"]
TOKEN_SOURCES = {
    "bearer": "the token printed at first start, or `mcp-platform token create`",
    "redis": "a token your platform wrote to Redis, or `mcp-platform token create --store redis`",
    "forward": "a token your auth service accepts",
}
"""Where a client's token comes from, by the first header-token verifier of `auth.mode`."""


class ConnectError(Exception):
    """A bad argument or an unusable config file; the message says what to do (exit status 2)."""


@dataclass(frozen=True)
class ClientConfig:
    """One client's configuration: the JSON document to merge, where it goes, and what to tell the user."""

    client: str
    document: dict[str, Any]
    default_file: Path
    notes: list[str] = field(default_factory=list)
    command: str | None = None
    """A shell command that does the same (`claude mcp add`, `codex mcp add`, `gemini mcp add`)."""
    toml: bool = False
    """The client's file is TOML (Codex), not JSON."""


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise ConnectError(f"--url must be an http:// or https:// URL with a host, not {url[:80]!r}")
    if parts.username is not None or parts.password is not None:
        raise ConnectError("--url must not carry credentials; the token goes in the environment variable named "
                           "by --token-env")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ConnectError("--url must not contain whitespace or control characters")
    return url


def check_names(name: str, token_env: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConnectError(f"--name must be 1-64 characters of letters, digits, '_', '.', '-', starting with a letter "
                           f"or digit, not {name[:80]!r}")
    if not _ENV_NAME.fullmatch(token_env):
        raise ConnectError(f"--token-env must be an environment variable name (letters, digits, '_'), not "
                           f"{token_env[:80]!r}")


def default_file(client: str, *, project: Path, home: Path, platform: str = sys.platform) -> Path:
    """Where each client reads its servers: project files where the client has them, else the user's."""
    if client == "claude-code":
        return project / ".mcp.json"
    if client == "cursor":
        return project / ".cursor" / "mcp.json"
    if client == "vscode":
        return project / ".vscode" / "mcp.json"
    if client == "windsurf":
        return home / ".codeium" / "windsurf" / "mcp_config.json"
    if client == "codex":
        return Path(os.environ.get("CODEX_HOME") or home / ".codex") / "config.toml"
    if client == "gemini":
        return project / ".gemini" / "settings.json"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    if platform == "win32":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / "Claude" / "claude_desktop_config.json"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "Claude" / "claude_desktop_config.json"


def local_command() -> tuple[str, list[str]]:
    """The absolute command that starts this installation: desktop apps launch servers with a minimal PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "mcp-platform" and argv0.is_file():
        return str(argv0.absolute()), []
    found = shutil.which("mcp-platform")
    if found:
        return str(Path(found).absolute()), []
    return sys.executable, ["-m", "mcp_platform"]


def client_config(client: str, *, url: str, name: str = DEFAULT_NAME, token_env: str = DEFAULT_TOKEN_ENV,
                  token: str | None = None, project: Path, home: Path, config_file: Path | None = None,
                  command: tuple[str, list[str]] | None = None, platform: str = sys.platform,
                  auth: Auth = "token", token_source: str = TOKEN_SOURCES["bearer"]) -> ClientConfig:
    """The configuration `client` documents for this server. `token` (only with --token-literal) is written as it
    is; otherwise the token is an environment-variable reference in the client's own syntax. `auth="oauth"`: the
    URL only (the client signs in through the identity provider). `token_source` says where a token comes from."""
    if client not in CLIENTS:
        raise ConnectError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")
    check_names(name, token_env)
    target = default_file(client, project=project, home=home, platform=platform)
    if client == "claude-desktop":
        program, prefix = command or local_command()
        args = [*prefix, "stdio", "--directory", str(project)]
        if config_file is not None:
            args += ["--config", str(config_file.absolute())]
        return ClientConfig(client, {"mcpServers": {name: {"command": program, "args": args}}}, target, notes=[
            f"Claude Desktop starts `mcp-platform stdio` itself, in {project}; stdio needs no token.",
            "Restart Claude Desktop (quit it fully) after changing its config."])
    check_url(url)
    if auth == "oauth":
        return _oauth(client, url, name, target)
    if client == "codex":
        return _codex(url, name, token_env, token, target, token_source)
    env_ref = {"claude-code": f"${{{token_env}}}", "cursor": f"${{env:{token_env}}}",
               "windsurf": f"${{env:{token_env}}}", "vscode": f"${{input:{name}-token}}",
               "gemini": f"${{{token_env}}}"}[client]
    bearer = f"Bearer {token if token is not None else env_ref}"
    headers = {"Authorization": bearer}
    export = f"export {token_env}=...   # {token_source}"
    if client == "claude-code":
        line = (f"claude mcp add --transport http {shlex.quote(name)} {shlex.quote(url)} "
                f"--header \"Authorization: Bearer ${{{token_env}}}\"")
        return ClientConfig(client, {"mcpServers": {name: {"type": "http", "url": url, "headers": headers}}}, target,
                            notes=[export, f"Claude Code expands ${{{token_env}}} in .mcp.json when it starts."],
                            command=line)
    if client == "cursor":
        return ClientConfig(client, {"mcpServers": {name: {"url": url, "headers": headers}}}, target, notes=[
            export, f"Cursor reads {token_env} from the environment it was started in; ~/.cursor/mcp.json (--file) "
                    "makes the server available in every project."])
    if client == "windsurf":
        return ClientConfig(client, {"mcpServers": {name: {"serverUrl": url, "headers": headers}}}, target, notes=[
            export, "Windsurf expands ${env:...} in mcp_config.json; refresh the MCP panel afterwards."])
    if client == "gemini":
        # The shape `gemini mcp add --transport http` writes (0.61): url, type, headers.
        line = (f"gemini mcp add --transport http {shlex.quote(name)} {shlex.quote(url)} "
                f"--header 'Authorization: Bearer ${{{token_env}}}'")
        return ClientConfig(client, {"mcpServers": {name: {"url": url, "type": "http", "headers": headers}}},
                            target, command=line, notes=[
            export, f"Gemini CLI expands ${{{token_env}}} in settings.json when it starts, and connects only in "
                    "folders you trust (it asks the first time it starts in the project).",
            "~/.gemini/settings.json (--file, or `gemini mcp add --scope user`) makes the server available in "
            "every project."])
    document: dict[str, Any] = {"servers": {name: {"type": "http", "url": url, "headers": headers}}}
    if token is None:
        document = {"inputs": [{"type": "promptString", "id": f"{name}-token",
                                "description": f"{name} bearer token", "password": True}], **document}
    return ClientConfig(client, document, target, notes=[
        "VS Code asks for the token the first time it starts the server and keeps it in its secret storage."])


def _codex(url: str, name: str, token_env: str, token: str | None, target: Path, token_source: str) -> ClientConfig:
    """Codex CLI reads the bearer token from the variable named by `bearer_token_env_var`; a literal token goes
    in `http_headers`."""
    entry: dict[str, Any] = {"url": url}
    if token is None:
        entry["bearer_token_env_var"] = token_env
    else:
        entry["http_headers"] = {"Authorization": f"Bearer {token}"}
    line = f"codex mcp add {shlex.quote(name)} --url {shlex.quote(url)} --bearer-token-env-var {token_env}"
    return ClientConfig("codex", {"mcp_servers": {name: entry}}, target, command=line, toml=True, notes=[
        f"export {token_env}=...   # {token_source}; in the shell Codex starts from: it reads the token there",
        "`codex mcp list` shows the server; $CODEX_HOME moves the file."])


def _oauth(client: str, url: str, name: str, target: Path) -> ClientConfig:
    """OAuth: the URL is all a client needs; what differs is where the user clicks to sign in."""
    quoted = f"{shlex.quote(name)} {shlex.quote(url)}"
    if client == "codex":
        return ClientConfig(client, {"mcp_servers": {name: {"url": url}}}, target, toml=True,
                            command=f"codex mcp add {shlex.quote(name)} --url {shlex.quote(url)}",
                            notes=[f"then `codex mcp login {name}` opens your identity provider's sign-in."])
    document: dict[str, Any]
    command = None
    if client == "claude-code":
        document = {"mcpServers": {name: {"type": "http", "url": url}}}
        command = f"claude mcp add --transport http {quoted}"
        note = "then run /mcp in Claude Code and choose Authenticate: your identity provider's sign-in opens."
    elif client == "gemini":
        document = {"mcpServers": {name: {"url": url, "type": "http"}}}
        command = f"gemini mcp add --transport http {quoted}"
        note = f"Gemini CLI finds the sign-in from the server's 401; run `/mcp auth {name}` if it does not ask."
    elif client == "cursor":
        document = {"mcpServers": {name: {"url": url}}}
        note = "Cursor shows the server as needing login in its MCP settings: click it to sign in."
    elif client == "windsurf":
        document = {"mcpServers": {name: {"serverUrl": url}}}
        note = "Windsurf opens your identity provider's sign-in when it first connects."
    else:
        document = {"servers": {name: {"type": "http", "url": url}}}
        note = "VS Code asks you to sign in (and allow it to register itself) the first time it starts the server."
    return ClientConfig(client, document, target, command=command, notes=[
        note, "The client registers itself with your identity provider (dynamic client registration) or uses the "
              "client id you configured there; no token goes in any file."])


def merge_document(text: str, fragment: dict[str, Any], source: str) -> tuple[dict[str, Any], bool]:
    """`fragment` merged into the JSON `text` of an existing file: object sections gain (or replace) entries by
    key, list sections (VS Code `inputs`) by `id`; everything else is kept. Returns the document and whether an
    entry was replaced. Refuses text that is not a JSON object, or a section of the wrong type."""
    document: Any = {}
    if text.strip():
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ConnectError(f"{source} is not valid JSON ({exc}); it was left untouched. Fix it (comments are "
                               "not JSON), or write to another file with --file.") from None
    if not isinstance(document, dict):
        raise ConnectError(f"{source} does not hold a JSON object; it was left untouched")
    replaced = False
    for key, value in fragment.items():
        current = document.get(key)
        if isinstance(value, dict):
            if current is None:
                current = document[key] = {}
            if not isinstance(current, dict):
                raise ConnectError(f"{source}: {key!r} is not an object; it was left untouched")
            replaced |= any(name in current for name in value)
            current.update(value)
        elif isinstance(value, list):
            if current is None:
                current = document[key] = []
            if not isinstance(current, list):
                raise ConnectError(f"{source}: {key!r} is not a list; it was left untouched")
            ids = {item.get("id") for item in value if isinstance(item, dict)}
            current[:] = [item for item in current if not (isinstance(item, dict) and item.get("id") in ids)]
            current.extend(value)
    return document, replaced


def write_config(path: Path, fragment: dict[str, Any], *, private: bool = False, toml: bool = False) -> bool:
    """Merge `fragment` into the JSON (or `toml`) file at `path` (created with its folders if missing) and replace
    it atomically. `private` files (they hold a token) are made readable by their owner only. Returns whether an
    existing entry was replaced."""
    if path.is_symlink():
        path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectError(f"cannot read {path} ({exc}); it was left untouched") from None
    if toml:
        try:
            content, replaced = merge_toml(text, fragment, str(path))
        except ValueError as exc:
            raise ConnectError(str(exc)) from None
    else:
        document, replaced = merge_document(text, fragment, str(path))
        content = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    if private:
        mode &= 0o600
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return replaced


def _default_url(config: str | None) -> str:
    from mcp_platform.settings import load_settings

    http = load_settings(config).http
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{http.port}{http.path}"


def run_connect(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ConnectError as exc:
        print(f"mcp-platform connect: {exc}", file=sys.stderr)
        return 2


def _auth_of(config: str | None, chosen: str | None) -> tuple[Auth, str]:
    """The client auth `connect` writes: `--auth`, else what the config's `auth.mode` lets a client use."""
    from mcp_platform.settings import load_settings

    modes = load_settings(config).auth.mode
    source = next((TOKEN_SOURCES[mode] for mode in modes if mode in TOKEN_SOURCES), TOKEN_SOURCES["bearer"])
    if chosen is not None:
        return ("oauth" if chosen == "oauth" else "token"), source
    return ("oauth" if modes == ["oauth"] else "token"), source


def _run(args: argparse.Namespace) -> int:
    client: str = args.client
    token = None
    auth, source = _auth_of(args.config, getattr(args, "auth", None))
    if args.token_literal:
        if client == "claude-desktop":
            raise ConnectError("claude-desktop runs the server locally over stdio and needs no token")
        if auth == "oauth":
            raise ConnectError("--token-literal and --auth oauth exclude each other: with OAuth no file holds a token")
        if not args.write:
            raise ConnectError("--token-literal only works with --write: the token is written to the file, never "
                               "printed")
        token = os.environ.get(args.token_env)
        if not token:
            raise ConnectError(f"--token-literal reads the token from ${args.token_env}, which is not set")
    # Claude Desktop launches the server itself over stdio: no URL.
    url = "" if client == "claude-desktop" else check_url(args.url) if args.url else _default_url(args.config)
    config = client_config(client, url=url, name=args.name, token_env=args.token_env, token=token,
                           project=Path.cwd(), home=Path.home(),
                           config_file=Path(args.config) if args.config else None, auth=auth, token_source=source)
    path = Path(args.file) if args.file else config.default_file
    title = _TITLES[client]
    if args.write:
        replaced = write_config(path, config.document, private=token is not None, toml=config.toml)
        print(f"{'updated' if replaced else 'added'} {args.name!r} in {path}")
        for note in config.notes:
            print(f"# {note}")
        return 0
    if args.json:
        print(json.dumps(config.document, indent=2))
        return 0
    if config.command is not None:
        intro = "add the server (the client signs you in itself):" if auth == "oauth" else _COMMAND_INTROS[client]
        print(f"# {title}: {intro.format(var=args.token_env)}")
        print(config.command)
        where = "share it with the project in" if path.is_relative_to(Path.cwd()) else "merge it into"
        print(f"\n# ...or {where} {path} (`mcp-platform connect {client} --write`):")
    else:
        print(f"# {title}: {path} (`mcp-platform connect {client} --write` merges this entry into it)")
    print(render_toml(config.document).rstrip("\n") if config.toml else json.dumps(config.document, indent=2))
    for note in config.notes:
        print(f"# {note}")
    return 0


_COMMAND_INTROS = {
    "claude-code": "add the server for yourself (your shell expands ${var} now, and Claude Code keeps the value in "
                   "~/.claude.json):",
    "codex": "add the server with Codex's own command (it stores the variable's name, never the token):",
    "gemini": "add the server with Gemini's own command (the single quotes keep ${{{var}}} a reference that Gemini "
              "expands when it starts):",
}
