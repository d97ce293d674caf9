"""Settings: file, environment and overrides, in that order of strength; precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_platform.errors import ConfigError
from mcp_platform.settings import load_settings


def test_precedence_file_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('name = "from-file"\n[http]\nport = 9001\nhost = "127.0.0.1"\n')
    monkeypatch.setenv("MCP_PLATFORM_HTTP__PORT", "9002")
    settings = load_settings(config)
    assert (settings.name, settings.http.port) == ("from-file", 9002)
    assert load_settings(config, http={"port": 9003}).http.port == 9003
    assert settings.config_file == config


@pytest.mark.parametrize(("text", "field"), [("[http]\nport = 'abc'\n", "http.port"),
                                             ("[http]\nport = 70000\n", "http.port"),
                                             ("unknown_key = 1\n", "unknown_key"),
                                             ("[auth]\nmode = 'open'\n", "auth.mode"),
                                             ("[flags.'bad name']\ndefault = true\n", "flags"),
                                             ("[http]\ntrusted_proxies = ['proxy.local']\n", "http.trusted_proxies")])
def test_invalid_values_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_settings(config)


def test_malformed_toml_and_missing_explicit_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[http\nport = 1")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_settings(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    settings = load_settings(config, token="super-secret-value")
    assert "super-secret-value" not in repr(settings)
