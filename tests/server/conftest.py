"""Fixtures for the server tests: a session trustme CA and real gunicorns over TLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from serverkit import GunicornServer


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, client_context: ssl.SSLContext
) -> Iterator[GunicornServer]:
    """One shared server for tests that leave it as they found it."""
    started = GunicornServer(tmp_path_factory.mktemp("server"), ca, client_context).start()
    yield started
    assert started.stop() == 0


@pytest.fixture
def own_server(tmp_path: Path, ca: trustme.CA, client_context: ssl.SSLContext) -> Iterator[GunicornServer]:
    """A server for one test that stops, reloads or rotates it; started by the test."""
    created = GunicornServer(tmp_path, ca, client_context)
    yield created
    if created.process is not None:
        created.stop()
