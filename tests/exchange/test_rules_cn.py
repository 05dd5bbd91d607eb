"""China's rule set (issue 15 items 2-3): BIZ-1 never holds for a missing CN extension; SPS-1..4 and
LIC-1 hold or reject for the reasons GACC applies; a hold is released by an amendment (REL-1..4).

Every rule has a positive case (the rule fires) and a negative one (the same record with the item
supplied passes), so inverting or deleting a rule's line fails a test here."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest

from xborder_gateway.exchange import (
    CnRulesConfig,
    CnRuleSet,
    FruitList,
    KnownDeclaration,
    ReleaseAction,
    SpsRegistry,
    decide_release,
)
from xborder_gateway.exchange._business import BusinessDecision
from xborder_gateway.mapping import codelist

RULES = CnRuleSet()
REGISTRY = codelist("cn_sps_registry_2026-11-30")


def _none(_key: str) -> KnownDeclaration | None:
    return None


def _registered(kind: str, species: str, *, active: bool = True, seed: int = 0) -> str:
    codes = sorted(k for k, r in REGISTRY.rows.items()
                   if r["kind"] == kind and species in r["species"].split(";")
                   and (r["status"] == "ACTIVE") == active)
    return random.Random(seed).choice(codes)


def _line(hs8: str, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"line_number": n, "hs_national": hs8, "hs6": hs8[:6], "cn_code": None, "description": "x",
            **extra}


def _fruit_line(hs8: str, species: str, n: int = 1, *, seed: int = 0, **extra: Any) -> dict[str, Any]:
    return _line(hs8, n, planting_area_code=_registered("PUC", species, seed=seed),
                 packing_house_code=_registered("PHC", species, seed=seed), **extra)


def _eda(*lines: dict[str, Any], cert: str | None = "VN-PPD-2026/123456") -> dict[str, Any]:
    return {"document_type": "EDA", "declaration_number": "300000000001", "goods": list(lines),
            "phytosanitary_certificate": cert}


def _decide(record: dict[str, Any], doc_type: str = "EDA") -> BusinessDecision:
    return RULES.decide(doc_type, record, lookup=_none)


def _codes(decision: BusinessDecision) -> list[str]:
    return [c for c, _t in decision.reasons]


# ---- reference data -----------------------------------------------------------------------------------
def test_the_registry_is_versioned_with_hundreds_of_codes_in_the_documented_formats() -> None:
    registry = SpsRegistry.load()
    assert registry.version == "2026-11-30"
    kinds = [e.kind for e in registry.entries.values()]
    assert kinds.count("PUC") >= 400
    assert kinds.count("PHC") >= 100
    assert all(r["source"].startswith("simulated") for r in REGISTRY.rows.values())
    for code, entry in registry.entries.items():
        pattern = r"VN-[A-Z]{3}-[0-9]{4}" if entry.kind == "PUC" else r"VN-PH-[0-9]{4}"
        assert re.fullmatch(pattern, code), code
    assert any(not e.active for e in registry.entries.values())  # suspended codes exist


def test_the_fruit_list_names_the_eleven_licensed_fruits() -> None:
    fruits = FruitList.load()
    admitted = {s.name for s in fruits.species.values() if s.admitted}
    assert admitted == {"durian", "dragon fruit", "watermelon", "lychee", "longan", "banana", "mango",
                        "jackfruit", "rambutan", "mangosteen", "passion fruit"}
    assert fruits.version == "2026-12-01"
    # 0810.90 holds licensed and unlicensed fruit: HS-6 alone cannot decide
    here = {fruits.species[c].admitted for c in fruits.by_hs6["081090"]}
    assert here == {True, False}


# ---- BIZ-1 (revised) ---------------------------------------------------------------------------------
def test_biz1_a_missing_cn_extension_never_holds_goods() -> None:
    # machinery without any CN code: accepted (the CN side maps hs6 + hs_national itself)
    assert _decide(_eda(_line("84295200"), _line("87089999", 2), cert=None)).status == "ACCEPTED"
    assert _decide(_eda(_line("85171300"), cert=None), doc_type="IDA").status == "ACCEPTED"


def test_biz1_an_hs6_outside_hs2022_is_rejected_for_any_declaration() -> None:
    for doc_type in ("EDA", "IDA"):
        decision = _decide(_eda(_line("85171200"), cert=None), doc_type=doc_type)
        assert decision.status == "REJECTED"
        assert _codes(decision) == ["HS_SUBHEADING_UNKNOWN"]


def test_manifests_are_decided_by_biz2_and_biz3() -> None:
    decision = RULES.decide("TIR", {"linked_declarations": ["300000000001"]}, lookup=_none)
    assert _codes(decision) == ["LINKED_DECLARATION_UNKNOWN"]
    known = KnownDeclaration("300000000001", None)
    assert RULES.decide("TIR", {"linked_declarations": ["300000000001"]},
                        lookup=lambda _k: known).status == "ACCEPTED"
    assert _codes(RULES.decide("CMR", {}, lookup=_none)) == ["DOCUMENT_TYPE_UNKNOWN"]


# ---- SPS-1 admission ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("hs8", "species"), [
    ("08106000", "DUR"), ("08109092", "DRF"), ("08071100", "WML"), ("08109020", "LYC"), ("08109010", "LGN"),
    ("08039090", "BAN"), ("08045020", "MAN"), ("08109050", "JCK"), ("08109030", "RMB"), ("08045030", "MGT"),
])
def test_sps1_each_licensed_fruit_is_admitted_by_its_national_code(hs8: str, species: str) -> None:
    assert _decide(_eda(_fruit_line(hs8, species))).status == "ACCEPTED"


def test_sps1_passion_fruit_is_admitted_by_its_species_code() -> None:
    assert _decide(_eda(_fruit_line("08109099", "PSF", species_code="PSF"))).status == "ACCEPTED"


@pytest.mark.parametrize(("hs8", "species_code"), [
    ("08044000", None),      # avocado by its national code
    ("08045010", None),      # guava (0804.50 also holds mango and mangosteen)
    ("08109099", "SAP"),     # sapodilla under "other fresh fruit", named by its species code
    ("08109099", "XYZ"),     # a species code that is on no list
    ("08081000", None),      # apples: no fresh fruit of 0808.10 is admitted from this list
])
def test_sps1_an_unlicensed_fruit_is_rejected(hs8: str, species_code: str | None) -> None:
    line = _line(hs8, planting_area_code="VN-DUR-0001", packing_house_code="VN-PH-0001",
                 species_code=species_code)
    decision = _decide(_eda(line))
    assert decision.status == "REJECTED"
    assert _codes(decision) == ["SPS_PRODUCT_NOT_ADMITTED"]


def test_sps1_other_fresh_fruit_without_a_species_code_is_held_until_named() -> None:
    line = _fruit_line("08109099", "PSF")
    decision = _decide(_eda(line))
    assert (decision.status, _codes(decision)) == ("HELD", ["SPS_SPECIES_UNDETERMINED"])
    line["species_code"] = "PSF"
    assert _decide(_eda(line)).status == "ACCEPTED"


def test_sps1_a_species_code_that_contradicts_the_classification_is_held() -> None:
    # avocado declared as "dragon fruit" under 0804.40: the species code cannot launder the HS code
    decision = _decide(_eda(_fruit_line("08044000", "DRF", species_code="DRF")))
    assert (decision.status, _codes(decision)) == ("HELD", ["SPS_SPECIES_MISMATCH"])


def test_sps_rules_do_not_apply_to_goods_leaving_china() -> None:
    # an IDA (Viet Nam's import) is not entering China: no SPS or licence hold
    record = _eda(_line("08081000"), _line("10063099", 2), cert=None)
    assert _decide(record, doc_type="IDA").status == "ACCEPTED"


# ---- SPS-2 / SPS-3 registrations ----------------------------------------------------------------------
@pytest.mark.parametrize(("field", "code"), [("planting_area_code", "SPS_PUC_NOT_REGISTERED"),
                                             ("packing_house_code", "SPS_PHC_NOT_REGISTERED")])
@pytest.mark.parametrize("how", ["missing", "unknown", "suspended", "other species", "other kind"])
def test_sps2_sps3_missing_or_unregistered_codes_hold(field: str, code: str, how: str) -> None:
    kind = "PUC" if field == "planting_area_code" else "PHC"
    line = _fruit_line("08106000", "DUR")
    assert _decide(_eda(line)).status == "ACCEPTED"  # the negative case: registered codes pass
    bad = {
        "missing": None,
        "unknown": "VN-DUR-99999" if kind == "PUC" else "VN-PH-99999",
        "suspended": _registered(kind, "DUR", active=False),
        "other species": (_registered("PUC", "DRF") if kind == "PUC" else
                          sorted(k for k, r in REGISTRY.rows.items() if r["kind"] == "PHC"
                                 and "DUR" not in r["species"].split(";") and r["status"] == "ACTIVE")[0]),
        "other kind": line["packing_house_code"] if kind == "PUC" else line["planting_area_code"],
    }[how]
    line[field] = bad
    decision = _decide(_eda(line))
    assert (decision.status, _codes(decision)) == ("HELD", [code])


# ---- SPS-4 certificate --------------------------------------------------------------------------------
def test_sps4_fruit_without_a_phytosanitary_certificate_is_held() -> None:
    decision = _decide(_eda(_fruit_line("08109092", "DRF"), cert=None))
    assert (decision.status, _codes(decision)) == ("HELD", ["SPS_CERTIFICATE_MISSING"])
    assert _decide(_eda(_fruit_line("08109092", "DRF"), cert="123/KDTV-2026")).status == "ACCEPTED"
    # no certificate is needed without fresh fruit (cashew nuts, chapter 08 but not fresh fruit)
    assert _decide(_eda(_line("08013200"), cert=None)).status == "ACCEPTED"


# ---- LIC-1 licence ------------------------------------------------------------------------------------
def test_lic1_licence_required_goods_without_a_licence_are_held() -> None:
    decision = _decide(_eda(_line("10063099"), cert=None))
    assert (decision.status, _codes(decision)) == ("HELD", ["LICENCE_REQUIRED"])
    assert _decide(_eda(_line("10063099", licence_number="TRQ-2026-0042"), cert=None)).status == "ACCEPTED"
    assert _decide(_eda(_line("40012220"), cert=None)).status == "ACCEPTED"  # rubber: no licence


def test_lic1_the_list_is_configured() -> None:
    class S:
        cn_licence_required_hs6 = "400122, 940360"
    rules = CnRuleSet(CnRulesConfig.from_settings(S()))
    assert _codes(rules.decide("EDA", _eda(_line("40012220"), cert=None), lookup=_none)) == ["LICENCE_REQUIRED"]
    assert rules.decide("EDA", _eda(_line("10063099"), cert=None), lookup=_none).status == "ACCEPTED"

    class Bad:
        cn_licence_required_hs6 = "1006"
    with pytest.raises(ValueError, match="six-digit"):
        CnRulesConfig.from_settings(Bad())


# ---- combination ---------------------------------------------------------------------------------------
def test_rejection_wins_over_holds_and_holds_are_all_listed() -> None:
    held = _eda(_line("08106000", 1), _line("10063099", 2), cert=None)
    decision = _decide(held)
    assert decision.status == "HELD"
    assert _codes(decision) == ["SPS_PUC_NOT_REGISTERED", "SPS_PHC_NOT_REGISTERED", "LICENCE_REQUIRED",
                                "SPS_CERTIFICATE_MISSING"]
    held["goods"].append(_line("08044000", 3))
    decision = _decide(held)
    assert (decision.status, _codes(decision)) == ("REJECTED", ["SPS_PRODUCT_NOT_ADMITTED"])


def test_seeded_random_declarations_decide_as_their_construction_says() -> None:
    """Seeded cases: each valid fruit line is broken in one way (or not) and the decision names it."""
    rng = random.Random(15)
    fruits = [("08106000", "DUR"), ("08109092", "DRF"), ("08109050", "JCK"), ("08071100", "WML")]
    expected_by_break = {None: ("ACCEPTED", []), "puc": ("HELD", ["SPS_PUC_NOT_REGISTERED"]),
                         "phc": ("HELD", ["SPS_PHC_NOT_REGISTERED"]), "cert": ("HELD", ["SPS_CERTIFICATE_MISSING"]),
                         "species": ("REJECTED", ["SPS_PRODUCT_NOT_ADMITTED"])}
    for i in range(200):
        hs8, species = rng.choice(fruits)
        brk = rng.choice(list(expected_by_break))
        line = _fruit_line(hs8, species, seed=i)
        cert: str | None = f"{i}/KDTV"
        if brk == "puc":
            line["planting_area_code"] = f"VN-{species}-{rng.randint(10000, 99999)}"
        elif brk == "phc":
            line["packing_house_code"] = None
        elif brk == "cert":
            cert = None
        elif brk == "species":
            line = _line("08109099", species_code=rng.choice(["SAP", "STA", "CUS"]),
                         planting_area_code=line["planting_area_code"], packing_house_code=line["packing_house_code"])
        decision = _decide(_eda(line, cert=cert))
        assert (decision.status, _codes(decision)) == expected_by_break[brk], (i, brk)


# ---- release by amendment ------------------------------------------------------------------------------
def _held() -> tuple[dict[str, Any], BusinessDecision]:
    record = _eda(_fruit_line("08106000", "DUR"), cert=None)
    record["goods"][0]["packing_house_code"] = None
    decision = _decide(record)
    assert _codes(decision) == ["SPS_PHC_NOT_REGISTERED", "SPS_CERTIFICATE_MISSING"]
    return record, decision


def test_rel_an_amendment_supplying_the_missing_items_releases_the_hold() -> None:
    record, previous = _held()
    amendment = copy.deepcopy(record)
    amendment["goods"][0]["packing_house_code"] = _registered("PHC", "DUR")
    amendment["phytosanitary_certificate"] = "777/KDTV-2026"
    release = decide_release(previous, "300000000001", amendment, rules=RULES, lookup=_none)
    assert release.action is ReleaseAction.RELEASE
    assert release.decision is not None
    assert release.decision.status == "ACCEPTED"
    assert release.resolved == ("SPS_CERTIFICATE_MISSING", "SPS_PHC_NOT_REGISTERED")


def test_rel_a_partial_amendment_keeps_the_hold_with_what_remains() -> None:
    record, previous = _held()
    amendment = copy.deepcopy(record)
    amendment["phytosanitary_certificate"] = "777/KDTV-2026"
    release = decide_release(previous, "300000000001", amendment, rules=RULES, lookup=_none)
    assert release.action is ReleaseAction.STILL_HELD
    assert release.decision is not None
    assert _codes(release.decision) == ["SPS_PHC_NOT_REGISTERED"]
    assert release.resolved == ("SPS_CERTIFICATE_MISSING",)


def test_rel4_an_amendment_that_fixes_one_thing_and_breaks_another_does_not_release() -> None:
    record, previous = _held()
    amendment = copy.deepcopy(record)
    amendment["goods"][0]["packing_house_code"] = _registered("PHC", "DUR")
    amendment["phytosanitary_certificate"] = "777/KDTV-2026"
    amendment["goods"].append(_line("08044000", 2))  # avocado added
    release = decide_release(previous, "300000000001", amendment, rules=RULES, lookup=_none)
    assert release.action is ReleaseAction.REJECT
    assert release.decision is not None
    assert _codes(release.decision) == ["SPS_PRODUCT_NOT_ADMITTED"]


def test_rel1_to_rel3_no_change_when_not_held_other_declaration_or_stale() -> None:
    record, previous = _held()
    fixed = copy.deepcopy(record)
    fixed["goods"][0]["packing_house_code"] = _registered("PHC", "DUR")
    fixed["phytosanitary_certificate"] = "777/KDTV-2026"
    accepted = BusinessDecision("ACCEPTED")
    assert decide_release(accepted, "300000000001", fixed, rules=RULES, lookup=_none).action is ReleaseAction.NO_CHANGE
    rejected = BusinessDecision("REJECTED", (("SPS_PRODUCT_NOT_ADMITTED", "x"),))
    assert decide_release(rejected, "300000000001", fixed, rules=RULES, lookup=_none).action is ReleaseAction.NO_CHANGE
    other = decide_release(previous, "300000000002", fixed, rules=RULES, lookup=_none)
    assert other.action is ReleaseAction.NO_CHANGE
    assert other.decision is None
    stale = decide_release(previous, "300000000001", fixed, rules=RULES, lookup=_none,
                           previous_version=3, amendment_version=2)
    assert stale.action is ReleaseAction.NO_CHANGE
    newer = decide_release(previous, "300000000001", fixed, rules=RULES, lookup=_none,
                           previous_version=3, amendment_version=4)
    assert newer.action is ReleaseAction.RELEASE


def test_the_default_setting_is_the_default_list() -> None:
    from xborder_gateway.config import Settings
    from xborder_gateway.exchange._rules_cn import DEFAULT_LICENCE_REQUIRED_HS6, DEFAULT_SPS_REGISTRY

    config = CnRulesConfig.from_settings(Settings())
    assert config.licence_required_hs6 == DEFAULT_LICENCE_REQUIRED_HS6
    assert config.sps_registry == DEFAULT_SPS_REGISTRY


def test_the_committed_registry_is_what_its_script_builds() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "scripts" / "build_sps_registry.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_reasons_are_bounded_and_odd_values_never_crash_the_rules() -> None:
    many = _eda(*[_line("08106000", n) for n in range(1, 51)], cert=None)
    decision = _decide(many)
    assert decision.status == "HELD"
    assert len(decision.reasons) == 10  # MAX_REASONS: the business response stays small
    assert _decide({"declaration_number": "1", "goods": None}).status == "ACCEPTED"
    odd = _line("08109099", species_code="dur ", planting_area_code="", packing_house_code="\u0000")
    assert _codes(_decide(_eda(odd))) == ["SPS_PRODUCT_NOT_ADMITTED"]
    assert _codes(_decide(_eda({"line_number": 1, "hs6": None, "hs_national": None}))) == ["HS_SUBHEADING_UNKNOWN"]
