"""The realistic generator (issue 15 item 4): real HS 2022 codes weighted to Lang Son's trade, SPS and
licence items on fruit exports (missing or wrong on a small share), and amendments that release holds.
The CN rule set is the oracle: each valid EDA is decided exactly as ``Sample.expected_holds`` says."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from xborder_gateway._cli import main
from xborder_gateway.documents import translate_xml
from xborder_gateway.exchange import CnRuleSet, KnownDeclaration, ReleaseAction, decide_release
from xborder_gateway.exchange._rules_cn import DEFAULT_LICENCE_REQUIRED_HS6, FRESH_FRUIT_HS6_PREFIXES
from xborder_gateway.mapping import hs_nomenclature
from xborder_gateway.samples import _generate as gen_module
from xborder_gateway.samples import generate, generate_mix

RULES = CnRuleSet()


def _none(_key: str) -> KnownDeclaration | None:
    return None


def test_the_generator_uses_the_rule_sets_licence_list() -> None:
    assert gen_module._LICENCE_HS6 == DEFAULT_LICENCE_REQUIRED_HS6
    assert RULES.config.sps_registry == gen_module._SPS_REGISTRY


def test_fruit_exports_carry_sps_items_and_a_small_share_is_held_as_predicted() -> None:
    samples = list(generate("EDA", 250, seed=21))
    fruit = 0
    with_items = 0
    held = 0
    for sample in samples:
        doc = translate_xml(sample.xml)
        record = doc.values
        decision = RULES.decide("EDA", record, lookup=_none)
        assert tuple(c for c, _t in decision.reasons) == sample.expected_holds, sample.name
        assert decision.status == ("HELD" if sample.expected_holds else "ACCEPTED")
        lines = [g for g in record["goods"] if g["hs6"].startswith(FRESH_FRUIT_HS6_PREFIXES)]
        if lines:
            fruit += 1
            with_items += all(g["planting_area_code"] and g["packing_house_code"] for g in lines) and bool(
                record["phytosanitary_certificate"])
        held += bool(sample.expected_holds)
    assert fruit > 120
    assert with_items / fruit > 0.8             # present on most fruit exports
    assert 0.03 <= held / len(samples) <= 0.25  # missing or wrong on a small share
    reasons = Counter(c for s in samples for c in s.expected_holds)
    assert {"SPS_PUC_NOT_REGISTERED", "SPS_PHC_NOT_REGISTERED", "SPS_CERTIFICATE_MISSING"} <= set(reasons)


def test_codes_are_real_hs2022_subheadings_weighted_to_the_trade() -> None:
    subheadings = hs_nomenclature()
    # exports by declaration (a fruit export is one line, a general-goods one several)
    exports = Counter(translate_xml(s.xml).record.goods[0].hs6[:2]  # type: ignore[union-attr]
                      for s in generate("EDA", 150, seed=22))
    imports = Counter(g.hs6[:2] for s in generate("IDA", 80, seed=23)
                      for g in translate_xml(s.xml).record.goods)  # type: ignore[union-attr]
    for counter in (exports, imports):
        assert all(len(ch) == 2 for ch in counter)
    # fruit and vegetables out ...
    assert (exports["08"] + exports["07"]) / sum(exports.values()) > 0.6
    # ... machinery, electronics, textiles and materials in
    industrial = sum(n for ch, n in imports.items() if ch in {"84", "85", "52", "54", "55", "60", "61", "39",
                                                              "28", "72", "73", "31", "87", "94"})
    assert industrial / sum(imports.values()) > 0.6
    assert imports["84"] > 0
    assert imports["85"] > 0
    for kind, seed in (("EDA", 24), ("IDA", 25)):
        for sample in generate(kind, 20, seed=seed):
            rec = translate_xml(sample.xml).record
            assert all(g.hs6 in subheadings for g in rec.goods)  # type: ignore[union-attr]


def test_durian_leads_the_fruit_exports() -> None:
    hs = Counter(g.hs_national for s in generate("EDA", 200, seed=26)
                 for g in translate_xml(s.xml).record.goods)  # type: ignore[union-attr]
    fruit = {k: v for k, v in hs.items() if k.startswith("08") and k != "08013200"}
    assert max(fruit, key=fruit.__getitem__) == "08106000"


def test_amendments_release_the_holds_they_follow() -> None:
    samples = list(generate_mix(800, seed=27, amendments=True))
    assert len(samples) == 800
    originals = {s.business_key: s for s in samples if not s.amendment and s.kind == "EDA"}
    amendments = [s for s in samples if s.amendment]
    assert len(amendments) >= 5
    position = {id(s): i for i, s in enumerate(samples)}
    for amendment in amendments:
        original = originals[amendment.business_key]
        assert original.expected_holds
        assert original.amended_by is not None
        assert original.amended_by.xml == amendment.xml
        assert position[id(amendment)] > position[id(original)]
        assert amendment.xml != original.xml  # different bytes: an amendment, not a duplicate (ADR 0401)
        before = RULES.decide("EDA", translate_xml(original.xml).values, lookup=_none)
        assert before.status == "HELD"
        release = decide_release(before, original.business_key, translate_xml(amendment.xml).values,
                                 rules=RULES, lookup=_none)
        assert release.action is ReleaseAction.RELEASE, (amendment.name, release)
        assert set(release.resolved) == set(original.expected_holds)


def test_without_amendments_the_mix_is_as_before_and_generation_is_deterministic() -> None:
    plain = list(generate_mix(300, seed=28))
    assert not any(s.amendment for s in plain)
    assert len({s.business_key for s in plain}) == len(plain)
    again = [s.xml for s in generate_mix(300, seed=28, amendments=True)]
    assert again == [s.xml for s in generate_mix(300, seed=28, amendments=True)]


def test_cli_writes_amendments_beside_their_originals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mix"
    assert main(["--home", str(tmp_path / "h"), "samples", "generate", "--kind", "MIX", "--count", "400",
                 "--seed", "27", "--out", str(out), "--amendments"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 400
    amended = [n for n in names if n.endswith(".amendment.xml")]
    assert amended
    for name in amended:
        assert name.replace(".amendment", "") in names
    assert "wrote 400" in capsys.readouterr().err


def test_the_new_eda_items_map_to_the_declaration_v3_fields() -> None:
    from lxml import etree

    from xborder_gateway.documents import DocumentRejectedError

    sample = next(s for s in generate("EDA", 40, seed=29)
                  if b"<SPC>" in s.xml and b"<PHY>" in s.xml and b"<PUC>" in s.xml)
    root = etree.fromstring(sample.xml)
    ns = {"v": root.nsmap[None]}
    doc = translate_xml(sample.xml)
    assert doc.schema_version == 4  # v3's items, in the newest version
    line = root.xpath("v:Goods/v:Line[v:SPC]", namespaces=ns)[0]
    n = int(line.xpath("count(preceding-sibling::v:Line)", namespaces=ns)) + 1
    goods = doc.values["goods"][n - 1]
    assert goods["species_code"] == line.findtext("v:SPC", namespaces=ns)
    assert goods["planting_area_code"] == line.findtext("v:PUC", namespaces=ns)
    assert goods["packing_house_code"] == line.findtext("v:PHC", namespaces=ns)
    assert doc.values["phytosanitary_certificate"] == root.findtext("v:PHY", namespaces=ns)
    # the XSD (v2) checks the shape of a code; registration is the receiver's check
    line.find("v:PUC", namespaces=ns).text = "vn dur 12"
    with pytest.raises(DocumentRejectedError) as err:
        translate_xml(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    assert err.value.code == "XSD_PATTERN"
