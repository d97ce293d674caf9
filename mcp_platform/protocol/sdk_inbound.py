"""The SDK's inbound-request rules (`mcp.shared.inbound`: the 2026-07-28 header ladder), without the `mcp` package.

`import mcp.shared.inbound` runs `mcp/__init__.py` first, and that imports the SDK's whole client and server
(httpx, OpenTelemetry, cryptography, the auth handlers): about 1.2 s of start-up and 25 MB of resident memory this
server never uses. The module itself needs only `mcp_types` and the standard library, so it is executed from its
own file under a private name. When the SDK is already imported (a test or a tool module uses it), its module is
used as is, so the process holds one copy.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["InboundLadderRejection", "classify_inbound_request", "find_duplicated_routing_header",
           "validate_mcp_param_headers", "x_mcp_header_map"]

_SDK_NAME = "mcp.shared.inbound"
_PRIVATE_NAME = "mcp_platform.protocol._sdk_inbound"


def _load() -> ModuleType:
    for name in (_SDK_NAME, _PRIVATE_NAME):
        if name in sys.modules:
            return sys.modules[name]
    package = importlib.util.find_spec("mcp")  # locates the package without running its __init__
    if package is None or not package.submodule_search_locations:
        raise ImportError("the MCP Python SDK (`mcp`) is not installed")
    path = Path(next(iter(package.submodule_search_locations))) / "shared" / "inbound.py"
    spec = importlib.util.spec_from_file_location(_PRIVATE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_NAME] = module  # dataclasses resolve their module through sys.modules while executing
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PRIVATE_NAME]
        raise
    return module


if TYPE_CHECKING:
    from mcp.shared.inbound import (
        InboundLadderRejection,
        classify_inbound_request,
        find_duplicated_routing_header,
        validate_mcp_param_headers,
        x_mcp_header_map,
    )
else:
    _module = _load()
    InboundLadderRejection = _module.InboundLadderRejection
    classify_inbound_request = _module.classify_inbound_request
    find_duplicated_routing_header = _module.find_duplicated_routing_header
    validate_mcp_param_headers = _module.validate_mcp_param_headers
    x_mcp_header_map = _module.x_mcp_header_map
