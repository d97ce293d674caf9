"""The README's Authentication section: every TOML example in it loads as valid settings and is complete for the
modes it turns on, so a user who copies one gets a server that starts (not a config error at the first request)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcp_platform.protected_resource import resolve
from mcp_platform.settings import load_settings

README = Path(__file__).parents[2] / "README.md"
_TABLES = {"[auth.oauth]": "oauth", "[auth.redis]": "redis", "[auth.forward]": "forward"}


def _section() -> str:
    return README.read_text().split("\n## Authentication\n", 1)[1].split("\n## ", 1)[0]


def _examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", _section(), flags=re.DOTALL)


def test_the_section_has_an_example_for_each_mode() -> None:
    examples = "".join(_examples())
    assert len(_examples()) >= 6
    for table in _TABLES:
        assert table in examples
    assert "### Forward auth" in _section() and "### Several at once" in _section()


@pytest.mark.parametrize("number", range(len(_examples())))
def test_each_toml_example_is_valid_and_complete(tmp_path: Path, number: int) -> None:
    block = _examples()[number]
    shown = {mode for table, mode in _TABLES.items() if table in block}  # a mode-only block shows just the list
    if "[auth]" not in block:  # a table shown on its own: the mode it configures, alone
        block = f"[auth]\nmode = {json.dumps(sorted(shown))}\n" + block
    config = tmp_path / "mcp-platform.toml"
    config.write_text(block)
    settings = load_settings(config)
    auth = settings.auth
    assert auth.mode and not auth.off and shown <= set(auth.mode), "a table for a mode the example does not turn on"
    if "oauth" in shown:
        resource = resolve(settings)  # issuer, one key source and the public resource URL: all set
        assert resource.resource.startswith("https://") and resource.issuer.startswith("https://")
    if "redis" in shown:
        assert (auth.redis.url or settings.state.redis_url or "").startswith("redis://")
    if "forward" in shown:
        assert auth.forward.url is not None and auth.forward.url.startswith("http://")
