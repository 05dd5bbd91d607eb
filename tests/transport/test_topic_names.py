"""Per-direction and per-site topic names (issue 10 item 1): what crosses the border is ``xb.<from>-<to>.*``,
what never leaves a site carries its prefix, and a role creates only its own site's topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from xborder_gateway.config import Settings
from xborder_gateway.errors import ConfigError
from xborder_gateway.transport import role_topics


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for name in list(os.environ):
        if name.startswith("XBG_"):
            monkeypatch.delenv(name)
    return Settings(home=tmp_path)


def test_direction_topics_follow_from_and_to(settings: Settings) -> None:
    vn_cn, cn_vn = settings.direction_topics("VN", "CN"), settings.direction_topics("cn", "vn")
    assert (vn_cn.exchange, vn_cn.priority, vn_cn.receipts) == (
        "xb.vn-cn.exchange", "xb.vn-cn.exchange.priority", "xb.cn-vn.receipts")
    assert (cn_vn.exchange, cn_vn.priority, cn_vn.receipts) == (
        "xb.cn-vn.exchange", "xb.cn-vn.exchange.priority", "xb.vn-cn.receipts")
    # today's fields keep meaning VN -> CN
    assert (settings.topic_exchange, settings.topic_exchange_priority, settings.topic_receipts) == (
        vn_cn.exchange, vn_cn.priority, vn_cn.receipts)
    with pytest.raises(ConfigError):
        settings.direction_topics("VN", "VN")


def test_site_topics_carry_the_site_prefix(settings: Settings) -> None:
    assert settings.site_topics("VN").all() == ("vn.declarations.raw", "vn.declarations.rejected",
                                                "vn.declarations.status", "vn.exchange.dead-letter")
    assert settings.site_topics("CN").all() == ("cn.declarations.raw", "cn.declarations.rejected",
                                                "cn.declarations.status", "cn.exchange.dead-letter")
    assert settings.topic_dead_letter == "vn.exchange.dead-letter"  # moved from xb.vn-cn.dead-letter (CHANGELOG)
    with pytest.raises(ConfigError):
        settings.site_topics("XX")


def test_no_site_topic_is_in_any_allow_list_nor_under_xb(settings: Settings) -> None:
    site = set(settings.site_topics("VN").all()) | set(settings.site_topics("CN").all())
    allowed = set(settings.link_topics("VN", "CN")) | set(settings.link_topics("CN", "VN"))
    assert not site & allowed
    assert not any(t.startswith("xb.") for t in site)  # a link replicating xb.* can never carry them
    for sender in ("VN", "CN"):
        d = settings.direction_topics(sender, "CN" if sender == "VN" else "VN")
        assert {d.exchange, d.priority} <= set(settings.link_topics(sender, "CN" if sender == "VN" else "VN"))
        assert d.receipts in settings.link_topics("CN" if sender == "VN" else "VN", sender)


def test_role_views(settings: Settings) -> None:
    assert settings.for_role("VN", "VN") is settings  # today's VN sender roles see today's names
    cn_out = settings.for_role("CN", "CN")
    assert (cn_out.topic_intake, cn_out.topic_rejected, cn_out.topic_status, cn_out.topic_dead_letter) == \
        settings.site_topics("CN").all()
    assert (cn_out.topic_exchange, cn_out.topic_receipts) == ("xb.cn-vn.exchange", "xb.vn-cn.receipts")
    vn_in = settings.for_role("VN", "CN")
    assert (vn_in.topic_exchange, vn_in.topic_exchange_priority, vn_in.topic_receipts) == (
        "xb.cn-vn.exchange", "xb.cn-vn.exchange.priority", "xb.vn-cn.receipts")
    # a view answers the direction / site questions from the settings it was made from
    assert cn_out.direction_topics("VN", "CN") == settings.direction_topics("VN", "CN")
    assert cn_out.site_topics("VN") == settings.site_topics("VN")


@pytest.mark.parametrize("role", ["outbound", "receipts", "inbound"])
@pytest.mark.parametrize("authority", ["VN", "CN"])
def test_a_role_creates_only_its_sites_topics(settings: Settings, role: str, authority: str) -> None:
    other = "CN" if authority == "VN" else "VN"
    names = set(role_topics(settings, role, authority))
    assert not names & set(settings.site_topics(other).all()), "never a topic of the other site"
    assert all(n.startswith((authority.lower() + ".", "xb.")) for n in names)
    if role == "outbound":
        assert settings.site_topics(authority).intake in names
        assert settings.direction_topics(authority, other).exchange in names
    if role == "receipts":
        assert settings.site_topics(authority).dead_letter in names
        assert settings.direction_topics(authority, other).receipts in names
    if role == "inbound":
        assert names == {*vars(settings.direction_topics(other, authority)).values()}
