from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from mcp_platform.redact import REDACTED, diff_settings, redact_settings, redact_text, redact_value, settings_diff
from tests.support import make_settings

SECRETS = ("hunter2", "s3cr3t-token-value", "p@ss/w:rd", "qwerty-key", "dict-secret")


def _secretive() -> dict[str, object]:
    return {
        "token": SecretStr("s3cr3t-token-value"),
        "database": {"url": "postgresql+asyncpg://app:hunter2@db.internal:5432/app"},
        "state": {"url": "postgresql://svc:p@ss/w:rd@state.internal/state?sslmode=require"},
        "instructions": "Metrics live at redis://:qwerty-key@cache:6379/0 and docs at https://example.com/a",
        "flags": {"beta": {"default": True, "description": "see https://h/x?api_key=dict-secret&page=2"}},
    }


def test_redact_settings_hides_every_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **_secretive())
    dumped = redact_settings(settings)
    text = json.dumps(dumped)
    for secret in SECRETS:
        assert secret not in text
    assert dumped["token"] == REDACTED
    assert dumped["database"]["url"] == "postgresql+asyncpg://app:***@db.internal:5432/app"
    assert dumped["state"]["url"].startswith("postgresql://svc:***@")
    assert "redis://:***@cache:6379/0" in dumped["instructions"]
    assert "https://example.com/a" in dumped["instructions"]
    assert dumped["flags"]["beta"]["description"] == "see https://h/x?api_key=***&page=2"


def test_redact_settings_keeps_ordinary_values_and_is_json(tmp_path: Path) -> None:
    dumped = redact_settings(make_settings(tmp_path, token=None, static={"root": tmp_path}))
    assert dumped["token"] is None  # no token: saying so reveals nothing
    assert dumped["http"]["port"] == 8000
    assert dumped["static"]["root"] == str(tmp_path)
    assert dumped["auth"]["metrics_requires_token"] is True  # booleans cannot carry a secret
    assert json.loads(json.dumps(dumped)) == dumped


def test_secret_named_keys_are_masked_whole_at_any_depth() -> None:
    value = {"outer": [{"API_KEY": "abc123"}, {"client_secret": {"nested": "zzz"}}],
             "Password": 12345, "monkey_count": "visible?"}
    masked = redact_value(value)
    assert masked["outer"][0]["API_KEY"] == REDACTED
    assert masked["outer"][1]["client_secret"] == REDACTED
    assert masked["Password"] == REDACTED
    assert "abc123" not in json.dumps(masked) and "zzz" not in json.dumps(masked) and "12345" not in json.dumps(masked)


def test_redact_text_leaves_urls_without_credentials_alone() -> None:
    assert redact_text("sqlite+aiosqlite:///.mcp-platform/state.db") == "sqlite+aiosqlite:///.mcp-platform/state.db"
    assert redact_text("http://127.0.0.1:8000/mcp") == "http://127.0.0.1:8000/mcp"
    assert redact_text("postgresql://user@host/db") == "postgresql://user@host/db"
    assert redact_text("plain words: no url") == "plain words: no url"


def test_redact_text_masks_passwords_holding_at_signs() -> None:
    masked = redact_text("mysql://root:a@b@c@host/db and more")
    assert "a@b@c" not in masked and "b@c" not in masked
    assert masked == "mysql://root:***@host/db and more"


def test_settings_diff_reports_dotted_paths_sorted() -> None:
    old = {"a": 1, "http": {"port": 8000, "cors": {"allow_origins": []}}, "gone": "x"}
    new = {"a": 1, "http": {"port": 9000, "cors": {"allow_origins": ["https://a"]}}, "added": {"k": 2}}
    assert settings_diff(old, new) == [
        {"field": "added.k", "old": None, "new": 2},
        {"field": "gone", "old": "x", "new": None},
        {"field": "http.cors.allow_origins", "old": [], "new": ["https://a"]},
        {"field": "http.port", "old": 8000, "new": 9000},
    ]
    assert settings_diff(old, old) == []


def test_diff_settings_reports_a_changed_secret_without_its_values(tmp_path: Path) -> None:
    old = make_settings(tmp_path, token=SecretStr("old-token-1"),
                        database={"url": "postgresql://u:first-pw@h/db"})
    new = make_settings(tmp_path, token=SecretStr("new-token-2"),
                        database={"url": "postgresql://u:second-pw@h/db"}, http={"port": 9000})
    diff = diff_settings(old, new)
    text = json.dumps(diff)
    for secret in ("old-token-1", "new-token-2", "first-pw", "second-pw"):
        assert secret not in text
    assert {"field": "token", "old": REDACTED, "new": REDACTED} in diff
    assert {"field": "database.url", "old": REDACTED, "new": REDACTED} in diff
    assert {"field": "http.port", "old": 8000, "new": 9000} in diff
    assert diff_settings(old, old) == []


def test_diff_settings_does_not_name_keys_inside_a_secret(tmp_path: Path) -> None:
    old = make_settings(tmp_path, flags={"beta": {"default": False}})
    new = make_settings(tmp_path, flags={"beta": {"default": True}, "token_rotation": {"default": True}})
    fields = [change["field"] for change in diff_settings(old, new)]
    assert fields == ["flags.beta.default", "flags.token_rotation"]
