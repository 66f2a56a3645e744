"""Fixtures: one secured mesh per module (helpers: testkit.security)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.security import Mesh, secured_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """One secured mesh for the module."""
    # The per-user limit has its own test; here it must not get in the way.
    with secured_mesh(tmp_path_factory.mktemp("mesh"), {"rate_limit": "10000/minute"}) as m:
        yield m
