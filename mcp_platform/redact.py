"""Redaction: settings as JSON with every secret masked, diffs between two such dumps, and log text with every
secret masked (`RedactingFormatter`, which also drops the query strings of logged requests).

Three kinds of secret are masked: `SecretStr`/`SecretBytes` values, the password (and secret-named query
parameters) of any URL found inside a string, and the value of any key whose name mentions a token, secret,
password or key. Masking errs on the side of hiding: a value under a suspicious key is hidden even when it is
harmless, except booleans and nulls, which cannot carry a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from mcp_platform.settings import Settings

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "RedactingFormatter", "diff_settings", "is_secret_key", "redact_log_text",
           "redact_settings", "redact_text", "redact_value", "secret_values", "settings_diff"]

REDACTED = "**********"
URL_PASSWORD_MASK = "***"

_SECRET_KEY = re.compile(r"token|secret|passw(or)?d|pwd|key|credential", re.IGNORECASE)
# scheme://user:password@ -- the password runs to the last '@' before whitespace, so a password that itself holds
# an unescaped '@' or '/' is still hidden whole (over-masking beats leaking).
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):(?P<password>[^\s]*)@")
_URL_SECRET_PARAM = re.compile(
    r"(?P<head>[?&;][^=&;#\s]*(?:token|secret|passw(?:or)?d|pwd|key|credential)[^=&;#\s]*=)(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)

_MISSING = object()
_LOG_TOKEN = re.compile(r"(mcpp_[A-Za-z0-9_-]{8,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,})")
MIN_SECRET_CHARS = 4
"""Configured secrets shorter than this are not masked in log text (they would mask ordinary words); URL
passwords of any length are still masked where they appear in a URL."""


def is_secret_key(name: str) -> bool:
    """Whether a value stored under `name` must be hidden."""
    return _SECRET_KEY.search(name) is not None


def redact_text(text: str) -> str:
    """`text` with URL passwords and secret-named URL query parameters masked; anything else unchanged."""
    if "://" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}:{URL_PASSWORD_MASK}@", text)
    return _URL_SECRET_PARAM.sub(lambda m: f"{m['head']}{URL_PASSWORD_MASK}", text)


def redact_value(value: Any, key: str | None = None) -> Any:
    """A JSON-able copy of `value` with every secret masked; `key` is the name `value` is stored under."""
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if key is not None and is_secret_key(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [redact_value(item) for item in items]
    if isinstance(value, str):
        return redact_text(value)
    jsonable = to_jsonable_python(value, fallback=str)
    # Paths, enums and the like become strings here, and a string can hold a URL.
    return redact_text(jsonable) if isinstance(jsonable, str) else jsonable


def redact_settings(settings: Settings) -> dict[str, Any]:
    """The settings as a JSON-able dict, every secret masked. Safe to log, return to a client, or diff."""
    dumped: dict[str, Any] = redact_value(settings.model_dump(mode="python"))
    return dumped


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What changed between two (redacted) dumps: `{"field": "dotted.path", "old": ..., "new": ...}` per changed
    leaf, sorted by field. Nested mappings are compared key by key, lists as whole values; a key present on one
    side only shows `None` on the other."""
    changes: list[dict[str, Any]] = []
    _diff_into(changes, "", old, new)
    changes.sort(key=lambda change: change["field"])
    return changes


def _diff_into(changes: list[dict[str, Any]], prefix: str, old: Any, new: Any) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for name in sorted({*map(str, old), *map(str, new)}):
            _diff_into(changes, f"{prefix}{name}.", old.get(name, _MISSING), new.get(name, _MISSING))
        return
    if old is _MISSING and isinstance(new, Mapping) and new:
        _diff_into(changes, prefix, {}, new)
        return
    if new is _MISSING and isinstance(old, Mapping) and old:
        _diff_into(changes, prefix, old, {})
        return
    if old != new:
        changes.append({
            "field": prefix.rstrip("."),
            "old": None if old is _MISSING else old,
            "new": None if new is _MISSING else new,
        })


def diff_settings(old: Settings, new: Settings) -> list[dict[str, Any]]:
    """The redacted diff between two settings objects, including secrets that changed: their entries show the
    mask on both sides, so an operator learns that a secret changed without learning either value."""
    old_red, new_red = redact_settings(old), redact_settings(new)
    changes = {change["field"]: change for change in settings_diff(old_red, new_red)}
    # The raw dumps are compared only to find which paths changed; their values never leave this function.
    for raw in settings_diff(_comparable(old.model_dump(mode="python")), _comparable(new.model_dump(mode="python"))):
        path = _masked_path(raw["field"])
        if path not in changes and not _covered(path, changes):
            changes[path] = {"field": path, "old": REDACTED, "new": REDACTED}
    return sorted(changes.values(), key=lambda change: change["field"])


def _comparable(value: Any) -> Any:
    """Secrets unwrapped so that equal secrets compare equal and different ones differ."""
    if isinstance(value, SecretStr | SecretBytes):
        return ("secret", value.get_secret_value())
    if isinstance(value, Mapping):
        return {str(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_comparable(item) for item in value]
    return value


def _masked_path(path: str) -> str:
    """`path` cut after its first secret-named part, so that not even the names inside a secret show."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if is_secret_key(part):
            return ".".join(parts[: i + 1])
    return path


def _covered(path: str, changes: Mapping[str, Any]) -> bool:
    """Whether a reported change already covers `path` (a secret-named parent masked as a whole)."""
    parts = path.split(".")
    return any(".".join(parts[:i]) in changes for i in range(1, len(parts)))


# -- logs --------------------------------------------------------------------------------------------------------


def secret_values(settings: Settings) -> list[str]:
    """Every secret value in `settings`: `SecretStr` values (token, secret_key) and the passwords and secret-named
    query parameters of URLs (database, state, Redis), longest first so that one holding another is masked whole."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, SecretBytes):
            found.add(value.get_secret_value().decode(errors="replace"))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)
        elif isinstance(value, str) and "://" in value:
            found.update(m["password"] for m in _URL_USERINFO.finditer(value))
            found.update(m["value"] for m in _URL_SECRET_PARAM.finditer(value))

    walk(settings.model_dump(mode="python"))
    return sorted((v for v in found if len(v) >= MIN_SECRET_CHARS), key=lambda v: (-len(v), v))


def redact_log_text(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every one of `secrets`, bearer and `mcpp_` tokens, URL passwords and secret-named query
    parameters masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _LOG_TOKEN.sub("[redacted token]", text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m['head']}:{URL_PASSWORD_MASK}@", text)
    if "=" in text:
        text = _URL_SECRET_PARAM.sub(lambda m: f"{m['head']}{URL_PASSWORD_MASK}", text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats a record, then masks every secret in the whole text (message, arguments, traceback). Request lines
    of the access log lose their query string first: clients put tokens there in forms no pattern knows."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, *, secrets: Sequence[str] = ()) -> None:
        super().__init__(fmt, datefmt)
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3 \
                and isinstance(args[2], str) and "?" in args[2]:
            # A copy: other handlers (and the record's later readers) see the record as it was.
            record = logging.makeLogRecord({**record.__dict__, "args": (*args[:2], args[2].partition("?")[0],
                                                                         *args[3:])})
        return redact_log_text(super().format(record), self.secrets)
