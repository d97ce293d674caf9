from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.authorization_server import AuthorizationServer, authorization_server
from tests.auth.forward_service import AuthService, auth_service


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthorizationServer]:
    """The identity provider of one test module: oidc-provider on loopback (state shared by the module's tests;
    each test registers its own client)."""
    with authorization_server(tmp_path_factory.mktemp("idp")) as server:
        yield server


@pytest.fixture
def service() -> Iterator[AuthService]:
    """The well-behaved forward-auth service of one test, on a real uvicorn (`tests/auth/forward_service.py`)."""
    with auth_service() as running:
        yield running
