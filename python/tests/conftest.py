"""Fixtures: a real `slipway server` on an ephemeral loopback port, per backend."""

import pytest

from harness import Server, postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def server(request):
    db = postgres_url() if request.param == "postgres" else None
    s = Server(db=db)
    yield s
    s.stop()


@pytest.fixture
def sqlite_server():
    s = Server()
    yield s
    s.stop()
