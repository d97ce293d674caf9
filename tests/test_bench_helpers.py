"""The benchmark's helpers: the TOML it writes for our server, percentiles, the target checks, and the `--auth`
setups (their settings, and their credentials against the real server)."""

import tomllib
from pathlib import Path

import pytest

from benchmarks.auth_setups import AuthName
from benchmarks.load import Load, percentile
from benchmarks.report import targets
from benchmarks.scenarios import Instructions, Row
from benchmarks.servers import merge_settings, toml_text
from tests.services import require_redis


def test_toml_text_is_read_back_as_written() -> None:
    settings = merge_settings({"rate_limit": {"enabled": False}},
                              {"secret_key": 'k"ey', "state": {"redis_url": "redis://127.0.0.1:6379/13"},
                               "rate_limit": {"burst": 5}})
    assert tomllib.loads(toml_text(settings)) == {"secret_key": 'k"ey',
                                                  "rate_limit": {"enabled": False, "burst": 5},
                                                  "state": {"redis_url": "redis://127.0.0.1:6379/13"}}


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 1001)]
    assert percentile(values, 50) == 500.0
    assert percentile(values, 99.9) == 999.0
    assert percentile(values, 100) == 1000.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def _row(scenario: str, server: str, stack: str, rps: float, *, shipped: bool = False,
         p50: float = 1.0, p99: float = 1.5, peak: float = 5.0, cold: float = 1000.0) -> Row:
    load = Load(16, requests=int(rps), seconds=1.0, rps=rps, p50_ms=p50, p99_ms=p99, max_ms=peak)
    return Row(scenario, server, "modern", stack, ok=True, shipped=shipped, loads=[load], idle_rss_kib=50 * 1024,
               cold_start_ms=cold)


def test_targets_compare_ours_with_the_route_and_the_sdk_in_the_same_run() -> None:
    rows = [_row("ours 2026-07-28", "ours", "uvloop", 700, shipped=True, p99=2.5, cold=900),
            _row("Starlette route", "starlette", "uvloop", 1000),
            _row("SDK stateful JSON", "sdk-json", "uvloop", 200, cold=1000)]
    counts = [Instructions("ours 2026-07-28", "ours", "modern", True, 100, per_call=400_000),
              Instructions("ours 2026-07-28 --no-auth", "ours", "modern", False, 100, per_call=360_000),
              Instructions("Starlette route", "starlette", "modern", False, 100, per_call=200_000)]
    found = {t.name: t.met for t in targets(rows, counts)}
    assert found["latency shape: ours 2026-07-28, uvloop+httptools, 16 conns"] is False  # p99 is 2.5x p50
    assert found["latency shape: ours 2026-07-28, uvloop+httptools, 64 conns"] is None
    assert found["ours 2026-07-28 / Starlette route, req/s at 16 conns, uvloop+httptools"] is True  # 0.7x
    assert found["ours 2026-07-28 / Starlette route, instructions per call"] is False  # 0.5x
    assert found["ours 2026-07-28 / SDK stateful JSON, req/s at 16 conns, uvloop+httptools"] is True  # 3.5x
    assert found["ours 2026-07-28 / SDK stateful JSON, instructions per call"] is None
    assert found["bearer auth cost over --no-auth, instructions per call"] is False  # 40k
    assert found["idle RSS: ours 2026-07-28, uvloop+httptools"] is True
    assert found["cold start, ours (median of shipped rows) vs the SDK (median), uvloop+httptools"] is True


def test_only_picks_rows_by_text_or_by_exact_label() -> None:
    from benchmarks.bench import _matches

    assert _matches("ours 2026-07-28 (tracing on)", ["tracing"])
    assert _matches("ours 2026-07-28", ["=OURS 2026-07-28"])
    assert not _matches("ours 2026-07-28 --no-auth", ["=ours 2026-07-28"])
    assert _matches("anything", None)


def test_the_otlp_sink_takes_exports_and_the_tracing_rows_point_ours_at_it() -> None:
    import httpx2

    from benchmarks.otlp_sink import otlp_sink, tracing_settings
    from benchmarks.scenarios import INSTRUCTION_SCENARIOS, SCENARIOS

    with otlp_sink() as sink:
        reply = httpx2.post(sink.url, content=b"\x0a\x00", headers={"content-type": "application/x-protobuf"})
        assert reply.status_code == 200 and sink.exports == 1
        written = tomllib.loads(toml_text(merge_settings({"rate_limit": {"enabled": False}}, tracing_settings(sink))))
    assert written["tracing"] == {"otlp_endpoint": sink.url} and written["rate_limit"] == {"enabled": False}
    traced = [s for s in (*SCENARIOS, *INSTRUCTION_SCENARIOS) if s.tracing]
    assert len(traced) == 2 and not any(s.shipped for s in traced)


def test_each_auth_setup_sets_its_mode_and_the_settings_read_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.auth_setups import AUTH_CHOICES, forward_env, oauth_env, redis_env, rsa_key_pair, server_url
    from mcp_platform.settings import load_settings

    assert set(AUTH_CHOICES) == {"bearer", "oauth", "oauth-hs256", "redis", "redis-nocache", "forward",
                                 "forward-nocache"}
    config = tmp_path / "mcp-platform.toml"
    config.write_text("")
    _, public = rsa_key_pair()
    for env, mode in ((oauth_env(server_url(8123), public), "oauth"), (oauth_env(server_url(8123), None), "oauth"),
                      (redis_env("redis://127.0.0.1:6379/9", 0), "redis"),
                      (forward_env("http://127.0.0.1:9/auth", 5), "forward")):
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            auth = load_settings(config).auth
        assert auth.mode == ["bearer", mode]
        if mode == "oauth":
            assert auth.oauth.resource == "http://127.0.0.1:8123/mcp" and auth.oauth.key_source is not None


@pytest.mark.parametrize("argv", [["--auth", "none"], ["--auth", ""], ["--auth", "oauth;rm"]])
def test_bench_refuses_an_unknown_auth_setup(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.bench import _parser

    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("tokens", ["5", "100001", "ten"])
def test_oauth_verify_refuses_a_token_count_out_of_bounds(tokens: str) -> None:
    from benchmarks.oauth_verify import main

    with pytest.raises(SystemExit) as exited:
        main(["--tokens", tokens])
    assert exited.value.code == 2


@pytest.mark.parametrize("setup", ["oauth", "oauth-hs256", "redis-nocache", "forward-nocache"])
def test_the_auth_setups_credential_is_admitted_by_the_real_server_and_a_wrong_one_is_not(
        tmp_path: Path, setup: AuthName) -> None:
    from benchmarks.auth_setups import prepared
    from benchmarks.servers import CheckFailed, call_body, call_headers, check_call, free_port, post, spawn

    redis_url = require_redis() if setup.startswith("redis") else None
    port = free_port()
    with prepared(setup, port, redis_url) as credential:
        server = spawn("ours", "uvloop", tmp_path / "server", None, env_extra=credential.env, port=port,
                       token=credential.token)
        try:
            check_call(server.port, "modern", True, None, credential.token)
            if setup.startswith("oauth"):  # a token of the same issuer for another server's URL
                from benchmarks.auth_setups import HS256_SECRET, mint_jwt, server_url

                other = mint_jwt(HS256_SECRET, "HS256", server_url(port + 1))
                reply = post(server.port, call_headers("modern", True, None, other), call_body("modern", 1))
                assert reply.status == 401
            elif setup.startswith("redis"):
                with pytest.raises(CheckFailed, match="HTTP 401"):
                    check_call(server.port, "modern", True, None, credential.token + "x")
        finally:
            server.stop()


def test_oauth_verify_times_first_and_remembered_verifications() -> None:
    from benchmarks.oauth_verify import measure

    found = measure("HS256", 10)
    assert 0 < found["remembered_median_us"] < found["first_median_us"]
