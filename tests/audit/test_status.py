"""Issue 12 item 5: the checkpoint status of both logs with cosignatures and lag (``/v1/status``).

The lag computation table-driven (equal size, nothing cosigned, clock skew, a cosigned checkpoint beyond the
log), the thresholds' colours, and ``/v1/status`` over two homes: our log from our store, the counterpart's
from the counterpart's ``audit serve`` with the token it issued (STATUS-1), an unreachable counterpart named
with its reason, a malformed answer refused.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.audit.http import AuditApi, TokenStore
from xborder_gateway.audit.status import Lag, _checked_counterpart, build_status, checkpoint_lag, lag_level
from xborder_gateway.errors import TransportError

from .test_trace import DECL, two_sites

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("size", "cosigned", "oldest", "expect"), [
    pytest.param(10, 10, None, Lag(0, 0.0, 0.0), id="equal size: no lag"),
    pytest.param(0, None, None, Lag(0, 0.0, 0.0), id="empty log"),
    pytest.param(10, 7, NOW - timedelta(seconds=42), Lag(3, 42.0, 0.0), id="three entries waiting 42 s"),
    pytest.param(10, None, NOW - timedelta(seconds=5), Lag(10, 5.0, 0.0), id="no cosignature: the whole log"),
    pytest.param(10, 0, NOW - timedelta(seconds=5), Lag(10, 5.0, 0.0), id="cosigned at size 0"),
    pytest.param(10, 7, NOW + timedelta(seconds=30), Lag(3, 0.0, 30.0), id="clock skew: entry ahead, lag 0, skew"),
    pytest.param(2**63 - 1, 1, datetime(1, 1, 1, tzinfo=UTC), Lag(2**63 - 2, (NOW - datetime(1, 1, 1, tzinfo=UTC))
                 .total_seconds(), 0.0), id="sizes near 2^63 and an entry from year 1"),
    pytest.param(5, 4, datetime(9999, 12, 31, 23, 59, tzinfo=UTC), Lag(1, 0.0, (datetime(
        9999, 12, 31, 23, 59, tzinfo=UTC) - NOW).total_seconds()), id="an entry stamped in year 9999"),
])
def test_checkpoint_lag(size: int, cosigned: int | None, oldest: datetime | None, expect: Lag) -> None:
    assert checkpoint_lag(size, cosigned, oldest, NOW) == expect


@pytest.mark.parametrize(("size", "cosigned", "oldest"), [
    pytest.param(5, 6, NOW, id="cosigned checkpoint beyond the log (deleted tail, VER-2)"),
    pytest.param(5, -1, NOW, id="negative cosigned size"),
    pytest.param(5, 3, None, id="lag without the time of the oldest uncovered entry"),
])
def test_checkpoint_lag_refuses_impossible_figures(size: int, cosigned: int, oldest: datetime | None) -> None:
    with pytest.raises(ValueError, match=r"beyond|time of the oldest"):
        checkpoint_lag(size, cosigned, oldest, NOW)


@pytest.mark.parametrize(("has_cp", "cosigned", "lag", "level"), [
    pytest.param(True, True, Lag(0, 0.0, 0.0), "ok", id="cosigned, no lag: green"),
    pytest.param(True, True, Lag(100, 900.0, 0.0), "ok", id="cosigned, lag exactly at both limits: green"),
    pytest.param(True, True, Lag(101, 1.0, 0.0), "bad", id="cosigned, one entry too many: red"),
    pytest.param(True, True, Lag(1, 900.001, 0.0), "bad", id="cosigned, waited too long: red"),
    pytest.param(True, False, Lag(5, 1.0, 0.0), "warn", id="not cosigned yet, within the lag: amber"),
    pytest.param(True, False, Lag(500, 1.0, 0.0), "bad", id="not cosigned, beyond the lag: red"),
    pytest.param(False, False, Lag(0, 0.0, 0.0), "bad", id="no checkpoint at all: red"),
    pytest.param(True, False, Lag(5, 0.0, 3600.0), "warn", id="clock skew does not turn a lag red"),
])
def test_lag_level(has_cp: bool, cosigned: bool, lag: Lag, level: str) -> None:
    assert lag_level(has_checkpoint=has_cp, cosigned=cosigned, lag=lag, max_lag_entries=100,
                     max_lag_seconds=900.0) == level


def _status(api: AuditApi, token: str, target: str = "/v1/status") -> tuple[int, Any]:
    r = api.handle("GET", target, f"Bearer {token}")
    return r.status, json.loads(r.body)


def test_status_shows_both_logs_cosigned_the_counterpart_from_its_server(tmp_path: Path) -> None:
    with two_sites(tmp_path) as s:
        tokens = TokenStore(s.vn.settings.home / "audit" / "api-tokens.json")
        token = tokens.add("auditor")
        api = AuditApi(s.vn.log, tokens, s.vn.settings)
        code, body = _status(api, token)
        assert code == 200, body
        assert body["format"] == "xborder-status/1"
        assert body["site"] == "VN"
        vn, cn = body["logs"]
        assert (vn["authority"], vn["source"], cn["authority"], cn["source"]) == ("VN", "self", "CN", "api")
        for log, store in ((vn, s.vn.log), (cn, s.cn.log)):
            assert log["problem"] is None
            assert log["size"] == store.size()
            # every entry is in a cosigned checkpoint (the fixture witnessed both logs): equal sizes, no lag
            assert log["cosigned"]["size"] == log["size"] == log["latest"]["size"]
            assert (log["lag_entries"], log["lag_seconds"], log["level"]) == (0, 0.0, "ok")
            assert "\n— " in log["cosigned"]["note"]  # the cosignature line travels with the note, verbatim
        # new entries after the cosigned checkpoint: lag in entries and in seconds since the oldest of them
        s.vn.log.append([s.vn.log.get(0).event.model_copy(update={"time": datetime.now(UTC) - timedelta(seconds=60)})])
        _, body = _status(api, token)
        vn = body["logs"][0]
        assert vn["lag_entries"] == 1
        assert 59 <= vn["lag_seconds"] < 600
        assert vn["level"] == "ok"


def test_status_not_cosigned_yet_is_amber_and_beyond_the_lag_red(tmp_path: Path) -> None:
    with two_sites(tmp_path) as s:
        event = s.vn.log.get(0).event.model_copy(update={"time": datetime.now(UTC), "business_key": DECL})
        s.vn.log.append([event] * 3)
        s.vn.log.checkpoint_now()  # a newer checkpoint nobody has cosigned yet
        ok = build_status(s.vn.log, s.vn.settings, scope="local")["logs"][0]
        assert ok["latest"]["size"] == ok["size"] > ok["cosigned"]["size"]
        assert (ok["lag_entries"], ok["level"]) == (3, "ok")  # an older cosigned checkpoint, within the lag
        tight = s.vn.settings.model_copy(update={"audit_console_max_lag_entries": 2})
        red = build_status(s.vn.log, tight, scope="local")
        assert red["max_lag_entries"] == 2
        assert red["logs"][0]["level"] == "bad"


def test_status_names_an_unreachable_counterpart(tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"  # bound, never listening: connection refused
        with two_sites(tmp_path) as s:
            settings = s.vn.settings.model_copy(update={"audit_counterpart_url": dead})
            body = build_status(s.vn.log, settings)
    own, cn = body["logs"]
    assert own["problem"] is None
    assert cn["authority"] == "CN"
    assert cn["level"] == "bad"
    assert cn["problem"].startswith("STATUS_COUNTERPART_UNREACHABLE: cannot reach")
    assert cn["size"] is None


def test_status_without_counterpart_configuration_says_so(tmp_path: Path) -> None:
    with two_sites(tmp_path) as s:
        settings = s.vn.settings.model_copy(update={"audit_counterpart_url": None, "home": tmp_path / "lone"})
        body = build_status(s.vn.log, settings)
    assert body["logs"][1]["problem"].startswith("STATUS_COUNTERPART_NOT_CONFIGURED")
    assert body["logs"][1]["level"] == "bad"


def test_counterpart_token_reads_local_status_only(tmp_path: Path) -> None:
    """STATUS-1: the counterpart's token reads /v1/status?scope=local (as well as trace parts), nothing more."""
    with two_sites(tmp_path) as s:
        tokens = TokenStore(s.cn.settings.home / "audit" / "api-tokens.json")
        api = AuditApi(s.cn.log, tokens, s.cn.settings)
        code, body = _status(api, s.vn_token, "/v1/status?scope=local")
        assert code == 200
        assert [log["authority"] for log in body["logs"]] == ["CN"]
        for target in ("/v1/status", "/v1/status?scope=both", "/v1/checkpoint", "/v1/tree"):
            assert _status(api, s.vn_token, target)[0] == 403, target
        assert _status(api, s.cn_auditor_token, "/v1/status?scope=sideways")[0] == 400


@pytest.mark.parametrize("answer", [
    pytest.param([], id="not an object"),
    pytest.param({"logs": []}, id="no log"),
    pytest.param({"logs": [{"authority": "VN", "size": 1, "lag_entries": 0}]}, id="another authority's log"),
    pytest.param({"logs": [{"authority": "CN", "size": -1, "lag_entries": 0}]}, id="negative size"),
    pytest.param({"logs": [{"authority": "CN", "size": True, "lag_entries": 0}]}, id="boolean size"),
    pytest.param({"logs": [{"authority": "CN", "size": 3, "lag_entries": 0, "latest": {"size": 3}}]},
                 id="checkpoint without its note"),
    pytest.param({"logs": [{"authority": "CN", "size": 3, "lag_entries": 0}, {"authority": "CN"}]},
                 id="two logs"),
    pytest.param({"logs": [{"authority": "CN", "size": 3, "lag_entries": 0, "lag_seconds": "soon"}]},
                 id="lag seconds not a number"),
    pytest.param({"logs": [{"authority": "CN", "size": 3, "lag_entries": 0, "lag_seconds": -5}]},
                 id="negative lag seconds"),
    pytest.param({"logs": [{"authority": "CN", "size": 3, "lag_entries": 0, "clock_skew_seconds": 1e300}]},
                 id="absurd clock skew"),
])
def test_malformed_counterpart_status_is_refused(answer: object) -> None:
    with pytest.raises(TransportError) as err:
        _checked_counterpart(answer, "CN")
    assert err.value.code == "STATUS_COUNTERPART_MALFORMED"


def test_wellformed_counterpart_status_is_accepted() -> None:
    good = {"authority": "CN", "size": 3, "lag_entries": 1, "lag_seconds": 2.5, "clock_skew_seconds": 0,
            "latest": {"size": 3, "note": "x"}, "cosigned": None, "source": "self"}
    assert _checked_counterpart({"logs": [good]}, "CN")["source"] == "api"
