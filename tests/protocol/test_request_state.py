"""Signed request state (2026-07-28 input rounds): bound to its target, its caller, its key and its age. The round
trip through a tool that asks the client is `tests/test_asking_the_client.py`."""

from __future__ import annotations

import pytest

from mcp_platform.errors import InvalidParams
from mcp_platform.protocol.request_state import RequestStateCodec
from tests.support import TestClock


def test_request_state_is_bound_to_target_caller_and_time() -> None:
    clock = TestClock()
    codec = RequestStateCodec(b"k" * 32, max_age=60, clock=clock)
    token = codec.encode(target="tool:a", principal="alice", answers={"x": 1}, state={"n": 2})
    assert codec.decode(token, target="tool:a", principal="alice") == ({"x": 1}, {"n": 2})
    for target, principal in [("tool:b", "alice"), ("tool:a", "bob")]:
        with pytest.raises(InvalidParams):
            codec.decode(token, target=target, principal=principal)
    other = RequestStateCodec(b"z" * 32, clock=clock)
    with pytest.raises(InvalidParams):
        other.decode(token, target="tool:a", principal="alice")
    clock.advance(61)
    with pytest.raises(InvalidParams):
        codec.decode(token, target="tool:a", principal="alice")
    with pytest.raises(ValueError):
        RequestStateCodec(b"short")
