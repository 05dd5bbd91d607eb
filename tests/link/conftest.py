"""The session's two sites (see harness.py): one fixture shared by every link test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import LOCAL_ONLY, PASSPHRASE, Site, TwoSites, _make_site, _ports, create_topics


def _start_site_broker(site: Site) -> None:
    from xborder_gateway.kafka_local import LocalKafka

    LocalKafka(site.settings).start(timeout=180)


@pytest.fixture(scope="session")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSites]:
    """Two sites on this machine, linked both ways (brokers + both MirrorMakers running)."""
    from xborder_gateway.envelope import export_bundle, import_bundle, init_authority
    from xborder_gateway.kafka_local import LocalKafka
    from xborder_gateway.link import LinkMirror, init_link_pki

    root = tmp_path_factory.mktemp("two-sites")
    ports = _ports()
    sites = TwoSites(_make_site(root, "VN", ports), _make_site(root, "CN", ports), root)
    for site in (sites.vn, sites.cn):
        init_authority(site.settings, site.name, PASSPHRASE)
        init_link_pki(site.settings, PASSPHRASE)
    # the bundle exchange the authorities already do, now carrying each link CA
    import_bundle(sites.cn.settings, "CN", export_bundle(sites.vn.settings, "VN"))
    import_bundle(sites.vn.settings, "VN", export_bundle(sites.cn.settings, "CN"))
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(_start_site_broker, (sites.vn, sites.cn)))
        for site, other in ((sites.vn, "CN"), (sites.cn, "VN")):
            s = site.settings
            asyncio.run(create_topics(site.bootstrap, s.link_topics(site.name, other) + LOCAL_ONLY[site.name]))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda site: LinkMirror(site.settings).start(timeout=240), (sites.vn, sites.cn)))
        yield sites
    finally:
        for site in (sites.vn, sites.cn):
            with contextlib.suppress(Exception):
                LinkMirror(site.settings).stop(timeout=20)
        for site in (sites.vn, sites.cn):
            with contextlib.suppress(Exception):
                LocalKafka(site.settings).stop(timeout=30)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """On failure, show the tail of both MirrorMakers' logs."""
    if call.excinfo is None or "two_sites" not in getattr(item, "fixturenames", ()):
        return
    sites = getattr(item, "funcargs", {}).get("two_sites")
    if isinstance(sites, TwoSites):
        for name in ("VN", "CN"):
            with contextlib.suppress(Exception):
                item.add_report_section("call", f"MirrorMaker {name}", sites.mirror(name).tail(40))
