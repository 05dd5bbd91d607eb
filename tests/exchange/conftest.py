"""Fixtures of the exchange tests: a home with both authorities' keys and mutual trust."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway import avro
from xborder_gateway.config import Settings, load_settings
from xborder_gateway.envelope import (
    LocalAuthority,
    TrustStore,
    export_bundle,
    import_bundle,
    init_authority,
    open_envelope,
    open_receipt,
)
from xborder_gateway.transport import Outgoing

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


def open_answers(outputs: Sequence[Outgoing], me: LocalAuthority, trust: TrustStore
                 ) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, message id, record) of each answer on the receipts topic, opened with the sender's keys as its
    tracker would: a Receipt's record, or a BusinessResponse's decoded payload."""
    out = []
    for o in outputs:
        kind = (o.header("xbg-kind") or b"").decode()
        if kind == "receipt":
            _opened, record = open_receipt(o.value, me=me, trust=trust, replay=None)
        else:
            opened = open_envelope(o.value, me=me, trust=trust, replay=None)
            record = dict(avro.decode(opened.payload).record)
        out.append((kind, str(record["message_id"]), record))
    return out
