"""bench/profile_stages.py (issue 13: "say exactly what bounds it, with the profile") charges every function's
own time to one stage: checked on a real cProfile of the real translate and audit paths."""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import pstats
import time
from pathlib import Path
from typing import Any

import pytest
from tests.bench_import import import_bench


@pytest.fixture(scope="module")
def stages_mod() -> Any:
    return import_bench("profile_stages")


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CPU-clock cProfile of translate_xml (its mapping engine is recursive) and audit events, run from an
    asyncio loop like a connector's, written where the bench's profiles go (``run-<process>-<pid>.prof``)."""
    from xborder_gateway.audit import EventType
    from xborder_gateway.connectors._common import event
    from xborder_gateway.documents import translate_xml
    from xborder_gateway.samples import generate_mix

    docs = [s.xml for s in generate_mix(30, 7, invalid_ratio=0.0)]
    digest = hashlib.sha256(b"x").digest()

    async def batch() -> None:
        for d in docs:
            translate_xml(d)
            await asyncio.sleep(0)
        for i in range(300):
            event("VN", "outbound", EventType.SEALED, message_id=f"m-{i}", business_key="305123456789",
                  raw_sha256=digest, kafka_topic="vn.declarations.raw", kafka_partition=0,
                  kafka_offset=i).canonical_bytes()

    def work() -> None:
        asyncio.run(batch())

    work()  # imports and caches outside the profile
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(work)
    path = tmp_path_factory.mktemp("prof") / "run-outbound-4242.prof"
    profiler.dump_stats(str(path))
    return path


def _stats(path: Path) -> dict[Any, Any]:
    return pstats.Stats(str(path)).stats  # type: ignore[attr-defined,no-any-return]


def test_every_second_is_charged_once(stages_mod: Any, profile: Path) -> None:
    stats = _stats(profile)
    seconds = stages_mod.attribute(stats)
    total = sum(v[2] for v in stats.values())
    assert total > 0
    assert sum(seconds.values()) == pytest.approx(total, rel=1e-6)  # nothing lost, nothing counted twice
    assert all(s >= 0 for s in seconds.values())
    assert seconds.get("asyncio loop", 0.0) > 0  # the loop's own functions: a stage that is also a fallback


def test_the_recursive_mapping_engine_is_charged_to_translate(stages_mod: Any, profile: Path) -> None:
    stats = _stats(profile)
    seconds = stages_mod.attribute(stats)
    apply = next(v for f, v in stats.items() if f[0].endswith("mapping/_engine.py") and f[2] == "apply")
    # the engine's nodes call each other: none of its time may fall out of its stage into "other"
    assert seconds["translate: mapping"] == pytest.approx(apply[3], rel=0.1)
    assert seconds.get("other", 0.0) < 0.05 * sum(seconds.values())
    for stage in ("translate: XSD", "translate: parse", "translate: Avro encode", "audit"):
        assert seconds.get(stage, 0.0) > 0, stage


def test_report_names_the_process_and_scales_to_unprofiled_cpu(stages_mod: Any, profile: Path) -> None:
    text = stages_mod.report([profile], {"outbound": 1000.0}, explain="audit")
    assert text.startswith("run-outbound-4242.prof:")
    assert "scaled to 1,000 µs per declaration" in text
    shares = [float(line.split("%")[0].split()[-1]) for line in text.splitlines()[1:] if "%" in line]
    assert sum(shares) == pytest.approx(100.0, abs=0.5)
    assert "canonical_bytes" in text  # --explain lists the functions that make up the audit stage


def test_main_refuses_an_empty_directory_and_a_bad_scale(stages_mod: Any, profile: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert stages_mod.main([str(tmp_path)]) == 2
    assert "XBG_PROFILE_DIR" in capsys.readouterr().err
    assert stages_mod.main([str(profile.parent), "--cpu-us", "outbound"]) == 2
    assert "NAME=US" in capsys.readouterr().err
    assert stages_mod.main([str(profile.parent), "--last", "1"]) == 0
