"""Placeholder until the `forward` verifier lands (issue 13): starting it is refused with a clear error."""

from __future__ import annotations

from contextlib import AsyncExitStack

from mcp_platform.auth.chain import TokenVerifier
from mcp_platform.core import Core
from mcp_platform.errors import ConfigError
from mcp_platform.settings import Settings


async def start(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    raise ConfigError("auth.mode 'forward' is not available in this build")
