"""Fixtures of the connector tests: the exchange tests' home (both authorities' keys, mutual trust)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..exchange.conftest import Home, make_home  # noqa: TID252 - tests/ is no package on sys.path (import-mode=importlib)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home")
