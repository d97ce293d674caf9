"""Who is calling: the principal and its scopes. Kept apart from `auth/` so tool code imports nothing of HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ANONYMOUS", "SCOPES", "Challenge", "Principal", "Scope", "expand_scopes"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")

# Scopes form a hierarchy (the MCP authorization spec asks servers to honour one): admin can do what write can,
# write what read can.
_IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}


def expand_scopes(scopes: set[str] | frozenset[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    """The scopes `scopes` grant, hierarchy included. Unknown names raise `ValueError` naming the valid ones."""
    granted: set[str] = set()
    for scope in scopes:
        if scope not in _IMPLIED:
            raise ValueError(f"unknown scope {scope!r}; valid scopes are {', '.join(SCOPES)}")
        granted |= _IMPLIED[scope]
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `name` is the token's name (never the token); `scopes` are already expanded."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Principal(name="anonymous", scopes=frozenset(SCOPES))
"""The caller when auth is off (loopback only): it may do everything, as the operator asked."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a 401 or 403 tells the client to do next. With OAuth on: where the protected-resource metadata is
    (RFC 9728 `resource_metadata`) and the identity provider's name for each of our scopes, so a client asks for
    `mcp:write` rather than `write` when it steps up. Bearer only: nothing beyond `Bearer realm=...`."""

    resource_metadata: str | None = None
    scope_names: Mapping[str, str] = field(default_factory=dict)
    """Our scope -> the scope a client should request for it."""
    login_scopes: tuple[str, ...] = ()
    """The scopes a 401 asks for (empty: none named)."""

    def scope_for(self, scope: str) -> str:
        return self.scope_names.get(scope, scope)
