"""Start the verifiers `auth.mode` names, in its order, each with what it needs from the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from mcp_platform.auth.bearer import BearerVerifier, TokenStore
from mcp_platform.auth.chain import TokenVerifier, chained
from mcp_platform.auth_types import Challenge
from mcp_platform.core import Core, run_until_shutdown
from mcp_platform.settings import Settings

__all__ = ["start_verifiers"]

Starter = Callable[[Settings, Core, AsyncExitStack], Awaitable[TokenVerifier]]


async def _bearer(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    env_token = settings.token.get_secret_value() if settings.token else None
    verifier = BearerVerifier(TokenStore(core.state_db), env_token)
    await verifier.refresh()
    run_until_shutdown(verifier.keep_fresh, stack)
    return verifier


async def _oauth(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    from mcp_platform.auth import oauth

    return await oauth.start(settings, core, stack)


async def _redis(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    from mcp_platform.auth import redis_tokens

    return await redis_tokens.start(settings, core, stack)


async def _forward(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    from mcp_platform.auth import forward

    return await forward.start(settings, core, stack)


_STARTERS: dict[str, Starter] = {"bearer": _bearer, "oauth": _oauth, "redis": _redis, "forward": _forward}


async def start_verifiers(settings: Settings, core: Core,
                          stack: AsyncExitStack) -> tuple[TokenVerifier | None, Challenge]:
    """The endpoint's verifier (None when auth is off) and what its 401 and 403 answers tell a client."""
    if settings.auth.off:
        return None, Challenge()
    verifiers = [await _STARTERS[mode](settings, core, stack) for mode in settings.auth.mode]
    challenge = Challenge()
    if "oauth" in settings.auth.mode:
        from mcp_platform.auth import oauth

        challenge = oauth.challenge(settings)
    return chained(verifiers), challenge
