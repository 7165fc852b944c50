"""Fuzz fixtures: one real gunicorn over TLS for the module, with the server tests' kit."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import GunicornServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fuzz" in str(item.path):
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    ca = trustme.CA()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    server = GunicornServer(tmp_path_factory.mktemp("fuzz-server"), ca, context).start()
    yield server
    assert server.stop() == 0, server.log()
