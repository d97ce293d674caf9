"""Checks made on every request before auth: DNS-rebinding protection (Host, Origin) and media types.

Allow-list entries: `host` or `host:*` (any port), `host:port` (exact); origins as `scheme://host:port`,
`scheme://host:*`, or `*` to accept anything (an explicit operator choice, never a default).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_platform.settings import HttpSettings

__all__ = ["HostOriginGuard", "accepts", "is_json_content_type"]

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


def _split_host(value: str) -> tuple[str, str | None]:
    """`host[:port]` into lower-cased host and port; IPv6 literals keep their brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, None
        rest = value[end + 1:]
        return value[:end + 1], rest[1:] if rest.startswith(":") else None
    host, sep, port = value.rpartition(":")
    return (host, port) if sep and host else (value, None)


@dataclass(frozen=True, slots=True)
class _Pattern:
    host: str
    port: str | None  # None or "*": any port

    def matches(self, host: str, port: str | None) -> bool:
        return host == self.host and (self.port in (None, "*") or self.port == port)


def _patterns(entries: list[str]) -> tuple[_Pattern, ...]:
    return tuple(_Pattern(*_split_host(entry)) for entry in entries)


class HostOriginGuard:
    def __init__(self, http: HttpSettings) -> None:
        hosts = list(http.allowed_hosts)
        if not hosts:
            hosts = [f"{name}:*" for name in _LOOPBACK_NAMES]
            if http.host not in _WILDCARD_BINDS and http.host not in ("127.0.0.1", "localhost", "::1"):
                bind = f"[{http.host}]" if ":" in http.host else http.host
                hosts.append(f"{bind}:*")
        self.any_host = "*" in hosts
        self._hosts = _patterns([h for h in hosts if h != "*"])
        origins = list(http.allowed_origins) or [f"{scheme}://{name}:*" for scheme in ("http", "https")
                                                 for name in _LOOPBACK_NAMES]
        self.any_origin = "*" in origins
        self._origins: dict[str, tuple[_Pattern, ...]] = {}
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if sep:
                self._origins.setdefault(scheme.lower(), ())
                self._origins[scheme.lower()] += _patterns([rest.rstrip("/")])

    def host_ok(self, host: str | None) -> bool:
        if self.any_host:
            return True
        if not host:
            return False
        name, port = _split_host(host)
        return any(p.matches(name, port) for p in self._hosts)

    def origin_ok(self, origin: str | None) -> bool:
        """A missing Origin is a non-browser client: allowed. `null` and anything unlisted are refused."""
        if origin is None or self.any_origin:
            return True
        scheme, sep, rest = origin.strip().partition("://")
        if not sep or "/" in rest.rstrip("/"):
            return False
        name, port = _split_host(rest.rstrip("/"))
        if port is None:
            port = {"http": "80", "https": "443"}.get(scheme.lower())
        return any(p.matches(name, port) for p in self._origins.get(scheme.lower(), ()))


def accepts(accept: str | None, *, json: bool, sse: bool) -> bool:
    """Whether an Accept header admits every media type asked for (wildcards honoured, q=0 ignored)."""
    if accept is None:
        return False
    types = set()
    for part in accept.split(","):
        media, _, params = part.partition(";")
        if "q=0" in params.replace(" ", "") and not any(c in params for c in "123456789"):
            continue
        types.add(media.strip().lower())
    if "*/*" in types:
        return True
    if json and not ({"application/json", "application/*"} & types):
        return False
    return not (sse and not ({"text/event-stream", "text/*"} & types))


def is_json_content_type(value: str | None) -> bool:
    if value is None:
        return False
    return value.partition(";")[0].strip().lower() == "application/json"
