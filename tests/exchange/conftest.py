"""Fixtures of the exchange tests: a home with both authorities' keys and mutual trust."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.envelope import LocalAuthority, TrustStore, export_bundle, import_bundle, init_authority

PASSPHRASE = b"exchange-tests-passphrase"


@dataclass
class Home:
    path: Path
    settings: Settings
    passphrase_file: Path
    vn: LocalAuthority
    vn_trust: TrustStore
    cn: LocalAuthority
    cn_trust: TrustStore


def make_home(path: Path, **overrides: object) -> Home:
    pf = path / "passphrase"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    pf.write_bytes(PASSPHRASE + b"\n")
    pf.chmod(0o600)
    # the one passphrase source of the home: envelope keys and the audit checkpoint key (issue 9 item 5)
    settings = load_settings(home=path, key_passphrase_file=pf, **overrides)
    for authority in ("VN", "CN"):
        init_authority(settings, authority, PASSPHRASE)
    import_bundle(settings, "VN", export_bundle(settings, "CN"))
    import_bundle(settings, "CN", export_bundle(settings, "VN"))
    return Home(path, settings, pf, LocalAuthority.load(settings, "VN", PASSPHRASE), TrustStore.load(settings, "VN"),
                LocalAuthority.load(settings, "CN", PASSPHRASE), TrustStore.load(settings, "CN"))


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home")


@pytest.fixture
def direction() -> str:
    """The exchange direction of a harness scenario (tests parametrize it with ``harness.DIRECTIONS``)."""
    return "VN-CN"
