"""Rate limits: token buckets per principal, per principal and tool, and per client IP for failed logins.

A bucket holds up to `burst` tokens and refills at `rate_per_s`; a request takes one and is refused when none is
left. Buckets live behind `RateLimitStore` (stores/: memory, or Redis for several instances), which sees only numbers
and keys, so the policy stays in `RateLimiter`. The limiter reads its limits from the current settings, which a
config reload may change (`update()`).

The HTTP layer and dispatch use the `check_*` methods (shaped like the `Hooks` callbacks): they raise
`RateLimited` and count each refusal in the metrics. `hit*` and `peek*` only decide.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field

from mcp_platform.capabilities import Capability, Started
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.errors import RateLimited, ToolError
from mcp_platform.hooks import Hooks
from mcp_platform.registry import tool
from mcp_platform.settings import RateLimitSettings, Settings
from mcp_platform.stores.base import RateLimitStore
from mcp_platform.stores.memory import MemoryRateLimitStore

__all__ = ["CAPABILITY", "Budget", "BudgetReport", "RateDecision", "RateLimiter", "RateLimits", "check_rate_limit",
           "rate_limit_config"]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """What a limiter decided. The HTTP layer turns a refusal into 429 with `Retry-After: ceil(retry_after_s)`."""

    allowed: bool
    limit: int
    """The bucket size: requests allowed at once."""
    remaining: int
    """Whole requests left now."""
    retry_after_s: float
    """0 when allowed; otherwise seconds until one request is allowed again."""
    reset_after_s: float
    """Seconds until the whole budget is back."""


_UNLIMITED = RateDecision(allowed=True, limit=0, remaining=0, retry_after_s=0.0, reset_after_s=0.0)
"""No limit applies (disabled, or a tool without its own limit): `limit` 0, so send no RateLimit headers."""


@dataclass(frozen=True, slots=True)
class _Limit:
    rate_per_s: float
    burst: int


class RateLimiter:
    """The rate-limit policy over a `RateLimitStore`. Every time comes from `clock`."""

    def __init__(self, limits: RateLimitSettings, store: RateLimitStore, *, failed_auth_per_minute: int = 30,
                 clock: Callable[[], float] = time.monotonic,
                 on_reject: Callable[[], None] | None = None) -> None:
        self._store = store
        self._clock = clock
        self._on_reject = on_reject
        self._configure(limits, failed_auth_per_minute)

    @classmethod
    def from_settings(cls, settings: Settings, store: RateLimitStore, **kwargs: Any) -> RateLimiter:
        return cls(settings.rate_limit, store, failed_auth_per_minute=settings.auth.failed_auth_per_minute, **kwargs)

    def update(self, settings: Settings) -> None:
        """Adopt reloaded limits; buckets keep their levels (capped by a smaller burst at the next refill)."""
        self._configure(settings.rate_limit, settings.auth.failed_auth_per_minute)

    def _configure(self, limits: RateLimitSettings, failed_auth_per_minute: int) -> None:
        self.limits = limits
        self._principal = _Limit(limits.per_minute / 60.0, limits.burst)
        # A per-tool limit is calls per minute; its burst is that many calls, but never more than the global burst.
        self._per_tool = {name: _Limit(per_minute / 60.0, max(1, min(limits.burst, math.ceil(per_minute))))
                          for name, per_minute in limits.per_tool.items()}
        self._failed_auth_per_minute = failed_auth_per_minute
        self._failed_auth = _Limit(failed_auth_per_minute / 60.0, failed_auth_per_minute)

    async def _take(self, key: str, limit: _Limit) -> RateDecision:
        now = self._clock()
        allowed, tokens, retry_after = await self._store.take(key, limit.rate_per_s, limit.burst, 1.0, now)
        return RateDecision(allowed=allowed, limit=limit.burst, remaining=math.floor(tokens),
                            retry_after_s=retry_after, reset_after_s=(limit.burst - tokens) / limit.rate_per_s)

    async def _peek(self, key: str, limit: _Limit) -> RateDecision:
        now = self._clock()
        tokens, full_at = await self._store.peek(key, limit.rate_per_s, limit.burst, now)
        retry_after = 0.0 if tokens >= 1.0 else (1.0 - tokens) / limit.rate_per_s
        return RateDecision(allowed=tokens >= 1.0, limit=limit.burst, remaining=math.floor(tokens),
                            retry_after_s=retry_after, reset_after_s=max(0.0, full_at - now))

    async def hit(self, principal_name: str) -> RateDecision:
        """Spend one request of `principal_name`'s budget."""
        if not self.limits.enabled:
            return _UNLIMITED
        return await self._take(f"principal:{principal_name}", self._principal)

    async def hit_tool(self, principal_name: str, tool_name: str) -> RateDecision:
        """Spend one call of a tool that has a `per_tool` limit (always allowed for other tools)."""
        limit = self._per_tool.get(tool_name)
        if not self.limits.enabled or limit is None:
            return _UNLIMITED
        return await self._take(f"tool:{tool_name}:principal:{principal_name}", limit)

    async def hit_failed_auth(self, ip: str) -> RateDecision:
        """Count one failed authentication from `ip`. Applies even when rate limiting is disabled: it guards
        against token guessing, not load."""
        return await self._take(f"ip:{ip}", self._failed_auth)

    async def peek(self, principal_name: str) -> RateDecision:
        """`principal_name`'s budget now, spending nothing."""
        if not self.limits.enabled:
            return _UNLIMITED
        return await self._peek(f"principal:{principal_name}", self._principal)

    async def peek_tool(self, principal_name: str, tool_name: str) -> RateDecision:
        limit = self._per_tool.get(tool_name)
        if not self.limits.enabled or limit is None:
            return _UNLIMITED
        return await self._peek(f"tool:{tool_name}:principal:{principal_name}", limit)

    async def peek_failed_auth(self, ip: str) -> RateDecision:
        return await self._peek(f"ip:{ip}", self._failed_auth)

    # The hook-shaped entry points: each refuses with `RateLimited` (HTTP 429) and counts the refusal.

    def _refuse(self, decision: RateDecision, what: str) -> None:
        if decision.allowed:
            return
        if self._on_reject is not None:
            self._on_reject()
        raise RateLimited(decision.retry_after_s, what)

    async def check_request(self, principal_name: str) -> None:
        """Spend one request of the principal's budget, or raise `RateLimited`."""
        if self.limits.enabled:  # every request passes here: when nothing is limited, decide nothing
            self._refuse(await self.hit(principal_name), "requests with this token")

    async def check_tool_call(self, principal_name: str, tool_name: str) -> None:
        """Spend one call of a tool with a `per_tool` limit, or raise `RateLimited`."""
        if self.limits.enabled and tool_name in self._per_tool:
            self._refuse(await self.hit_tool(principal_name, tool_name), f"calls of tool {tool_name}")

    async def check_auth_allowed(self, ip: str) -> None:
        """After a token failed (a valid one is never gated): raise `RateLimited` if `ip` has used up its failed
        authentications, so the answer is 429 rather than 401."""
        self._refuse(await self.peek_failed_auth(ip), "failed authentications from this address")

    async def note_auth_failure(self, ip: str) -> None:
        """Count a failed authentication from `ip` (the answer is still 401; the next attempt may get 429)."""
        await self.hit_failed_auth(ip)

    def tools_limited(self) -> list[str]:
        return sorted(self._per_tool)

    def describe(self) -> dict[str, Any]:
        """The limits in force, JSON-able."""
        return {
            "enabled": self.limits.enabled,
            "per_principal": {"per_minute": self.limits.per_minute, "burst": self._principal.burst},
            "per_ip_failed_auth": {"per_minute": self._failed_auth_per_minute, "burst": self._failed_auth.burst},
            "per_tool": [{"tool": name, "per_minute": self.limits.per_tool[name], "burst": self._per_tool[name].burst}
                         for name in self.tools_limited()],
        }


class Limit(BaseModel):
    per_minute: float
    """Sustained rate."""
    burst: int
    """Requests allowed at once before the rate applies."""


class ToolLimit(Limit):
    tool: str


class RateLimits(BaseModel):
    enabled: bool
    """When false, principals and tools are not limited (failed logins per IP still are)."""
    per_principal: Limit
    """Requests to the MCP endpoint per token."""
    per_ip_failed_auth: Limit
    """Failed authentications per client IP."""
    per_tool: list[ToolLimit]
    """Extra limits on calls of single tools, per token."""


class Budget(BaseModel):
    key: str
    """The principal (or `ip:ADDRESS`) the budget belongs to."""
    limited: bool
    limit: int
    remaining: int
    """Whole requests that may be made now."""
    retry_after_s: float
    """0 if a request may be made now, else seconds until one may."""
    reset_after_s: float
    """Seconds until the full budget is back."""


class BudgetReport(Budget):
    per_tool: dict[str, Budget] = {}
    """Budgets of tools with their own limit."""


def _budget(key: str, limited: bool, decision: RateDecision) -> Budget:
    return Budget(key=key, limited=limited, limit=decision.limit, remaining=decision.remaining,
                  retry_after_s=round(decision.retry_after_s, 3), reset_after_s=round(decision.reset_after_s, 3))


@tool(read_only=True, title="Rate limits")
async def rate_limit_config(ctx: ToolContext) -> RateLimits:
    """Show the rate limits in force: per token, per client IP for failed logins, and per tool."""
    return RateLimits.model_validate(ctx.backend(RateLimiter).describe())


@tool(read_only=True, title="Check a rate-limit budget", rate_limited=False)
async def check_rate_limit(
    ctx: ToolContext,
    key: Annotated[str | None, Field(min_length=1, max_length=256)] = None,
) -> BudgetReport:
    """Show how many requests a caller may still make and when the budget is full again, without spending any
    (calls to this tool are not charged either, so asking twice shows the same budget).

    Args:
        key: Whose budget: a principal (token) name, or `ip:ADDRESS` for failed logins from a client IP. Omit for
            your own. Anything but your own needs the admin scope.
    """
    limiter = ctx.backend(RateLimiter)
    own = ctx.principal.name
    name = own if key is None else key
    if name != own and not ctx.principal.allows("admin"):
        raise ToolError("Reading another principal's budget needs the admin scope; omit `key` to see your own.")
    if key is not None and key.startswith("ip:"):
        budget = _budget(key, True, await limiter.peek_failed_auth(key.removeprefix("ip:")))
        return BudgetReport(**budget.model_dump())
    budget = _budget(name, limiter.limits.enabled, await limiter.peek(name))
    per_tool = {tool_name: _budget(name, True, await limiter.peek_tool(name, tool_name))
                for tool_name in limiter.tools_limited()} if limiter.limits.enabled else {}
    return BudgetReport(**budget.model_dump(), per_tool=per_tool)


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    store: RateLimitStore = MemoryRateLimitStore()
    if core.redis is not None:  # instances share state: every instance spends from the same buckets
        from mcp_platform.stores.redis import RedisRateLimitStore

        store = RedisRateLimitStore(core.redis)
    limiter = RateLimiter.from_settings(core.settings, store, clock=core.clock.now,
                                        on_reject=core.hooks.note_rate_limited)
    observers = Hooks(before_request=[limiter.check_request], before_tool_call=[limiter.check_tool_call],
                      auth_gate=[limiter.check_auth_allowed], auth_failure=[limiter.note_auth_failure])

    async def adopt(new: Settings) -> None:
        limiter.update(new)

    return Started(backends=[limiter], observers=observers, on_reload=adopt)


CAPABILITY = Capability(name="ratelimit", tools=[rate_limit_config, check_rate_limit], start=_start)
