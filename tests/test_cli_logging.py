"""What `mcp-platform serve` writes to its log never holds a secret: not a token in a URL's query string (whatever
its form), not a configured token, secret key or database password, wherever it appears in a log line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from mcp_platform.redact import RedactingFormatter, secret_values
from mcp_platform.settings import Settings
from tests.support import free_port, wait_served

REPO = Path(__file__).parents[1]
TOKEN = "plain-env-token-9f8e7d6c5b4a"  # not in mcpp_ form, so the token pattern alone would miss it
SECRET_KEY = "k" * 8 + "-signing-secret-0123456789abcdef"


def _serve_and_request(tmp_path: Path, env_extra: dict[str, str], paths: list[str]) -> str:
    """`mcp-platform serve` at `--log-level info`; GET each of `paths`, then stop it: what it wrote to stderr."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    env |= {"MCP_PLATFORM_TOKEN": TOKEN, "MCP_PLATFORM_SECRET_KEY": SECRET_KEY} | env_extra
    process = subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                                "--tools-dir", str(REPO / "tools"), "--log-level", "info"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_served(process, base)
        with httpx2.Client(base_url=base, timeout=10) as http:
            for path in paths:
                if path.startswith("POST "):
                    http.post(path[5:], json={}, headers={"accept": "application/json"})
                else:
                    http.get(path)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    return err


@pytest.mark.wire
def test_the_access_log_holds_no_query_string_and_no_configured_secret(tmp_path: Path) -> None:
    err = _serve_and_request(tmp_path, {"MCP_PLATFORM_HTTP__ACCESS_LOG": "true"}, [
        f"/mcp?access_token={TOKEN}",
        f"POST /mcp?token={TOKEN}&session=abc",
        f"/healthz?key={SECRET_KEY}",
        f"/mcp/{TOKEN}",  # in the path itself: masked as a configured secret
    ])
    assert '"GET /mcp HTTP/1.1" ' in err, err  # the requests were logged ...
    assert TOKEN not in err and SECRET_KEY not in err  # ... without the secrets
    assert "access_token" not in err and "session=abc" not in err  # no query string at all


@pytest.mark.wire
def test_requests_are_not_access_logged_by_default_even_at_info(tmp_path: Path) -> None:
    err = _serve_and_request(tmp_path, {}, ["/mcp", "POST /mcp", "/healthz"])
    assert "Uvicorn running on" in err, err  # the log is on at info ...
    assert "HTTP/1.1" not in err, err  # ... but no line per request (`http.access_log` is off)


def test_the_formatter_masks_configured_secrets_everywhere_in_a_record(tmp_path: Path) -> None:
    settings = Settings(token=TOKEN, secret_key=SECRET_KEY, state={"url": "postgresql+asyncpg://app:pa55word@db/x"},
                        static={"root": tmp_path})
    secrets = secret_values(settings)
    assert {TOKEN, SECRET_KEY, "pa55word"} <= set(secrets)
    formatter = RedactingFormatter("%(name)s %(message)s", secrets=secrets)
    try:
        raise RuntimeError(f"could not use {SECRET_KEY}")
    except RuntimeError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "token %s, password %s, %s", (
            TOKEN, "pa55word", "Bearer abcdefgh12345678 mcpp_abcdefgh12345678"), sys.exc_info())
    text = formatter.format(record)
    assert "could not use" in text and "RuntimeError" in text
    for secret in (TOKEN, SECRET_KEY, "pa55word", "abcdefgh12345678"):
        assert secret not in text, text
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/mcp?access_token=xyz-unknown-form", "1.1", 401), None)
    assert formatter.format(access) == 'uvicorn.access 127.0.0.1:5 - "GET /mcp HTTP/1.1" 401'
    assert access.args[2] == "/mcp?access_token=xyz-unknown-form"  # type: ignore[index]  # other handlers unaffected
