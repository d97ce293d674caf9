"""The benchmark's pure helpers: the TOML it writes for our server, percentiles, and the target checks."""

import tomllib

from benchmarks.load import Load, percentile
from benchmarks.report import targets
from benchmarks.scenarios import Instructions, Row
from benchmarks.servers import merge_settings, toml_text


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
