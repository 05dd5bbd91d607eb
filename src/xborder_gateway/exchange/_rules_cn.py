"""China's business rule set for declarations it receives (pure): decoded record + registries + config ->
ACCEPTED / HELD / REJECTED with reasons (issue 15 items 2-3). No I/O beyond loading code lists once.

Rules, applied to goods entering China (``EDA``: Viet Nam's export declarations; ``applies_to``):

- BIZ-1 (revised) classification: the agreed record carries ``hs6`` (the shared HS 2022 subheading) and
  ``hs_national`` (VN HS-8); China maps them to its own 10-digit code and **never holds goods for a missing
  CN extension** (``cn_code`` is a hint). Only an ``hs6`` that is not an HS 2022 subheading is refused
  (REJECTED ``HS_SUBHEADING_UNKNOWN``; the VN intake refuses it already, this is defence in depth), for
  every declaration type.
- SPS-1 fresh fruit (HS-6 in the fresh-fruit scope) is admitted only for a species on the dated list of
  fruits licensed for entry (``fruit_species.csv``). The species is the line's ``species_code`` or, without
  one, the species the national HS-8 names; an HS-6 with a single listed species (0810.60 durian) names it.
  Unlicensed or unknown species -> REJECTED ``SPS_PRODUCT_NOT_ADMITTED``; a species code whose HS-6 is not
  the line's -> HELD ``SPS_SPECIES_MISMATCH``; undeterminable (0810.90 "other" without a species code)
  -> HELD ``SPS_SPECIES_UNDETERMINED``.
- SPS-2 an admitted fruit line carries a PUC registered (ACTIVE) for that species -> else HELD
  ``SPS_PUC_NOT_REGISTERED``.
- SPS-3 ... and a PHC registered (ACTIVE) for that species -> else HELD ``SPS_PHC_NOT_REGISTERED``.
- SPS-4 a declaration with a fresh-fruit line carries a phytosanitary certificate number -> else HELD
  ``SPS_CERTIFICATE_MISSING``.
- LIC-1 a line whose HS-6 is on the configured licence-required list carries a licence number -> else
  HELD ``LICENCE_REQUIRED``.

REJECTED wins over HELD (its reasons are the rejecting ones); HELD lists every hold reason (at most
:data:`MAX_REASONS`). Vehicle declarations (TIR/TOR) are decided by :func:`_business.decide` (BIZ-2/3).
A HELD declaration is released by :func:`decide_release` when an amendment supplies what was missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from xborder_gateway.exchange._business import (
    DECLARATION_TYPES,
    MANIFEST_TYPES,
    BusinessDecision,
    KnownDeclaration,
)
from xborder_gateway.exchange._business import decide as _decide_manifest

__all__ = [
    "DEFAULT_FRUIT_LIST",
    "DEFAULT_LICENCE_REQUIRED_HS6",
    "DEFAULT_SPS_REGISTRY",
    "FRESH_FRUIT_HS6_PREFIXES",
    "CnRuleSet",
    "CnRulesConfig",
    "FruitList",
    "ReleaseAction",
    "ReleaseDecision",
    "SpsRegistry",
    "decide_release",
]

DEFAULT_SPS_REGISTRY = "cn_sps_registry_2026-11-30"
DEFAULT_FRUIT_LIST = "fruit_species"
# Goods China admits only under an import licence or a tariff-rate-quota certificate (a simulated
# selection from the TRQ goods: wheat, maize, rice, sugar, cotton, urea fertiliser). Setting
# XBG_CN_LICENCE_REQUIRED_HS6.
DEFAULT_LICENCE_REQUIRED_HS6 = frozenset({
    "100199", "100590", "100610", "100620", "100630", "100640", "170114", "170199", "520100", "310210"})
# Fresh fruit in HS 2022 chapter 08 (nuts 0801-0802, frozen 0811, provisionally preserved 0812 and dried
# 0813-0814 are outside the fresh-fruit protocols).
FRESH_FRUIT_HS6_PREFIXES = ("0803", "080430", "080440", "080450", "0805", "080610", "0807", "0808", "0809",
                            "0810")
MAX_REASONS = 10

SPS_PRODUCT_NOT_ADMITTED = "SPS_PRODUCT_NOT_ADMITTED"
SPS_SPECIES_MISMATCH = "SPS_SPECIES_MISMATCH"
SPS_SPECIES_UNDETERMINED = "SPS_SPECIES_UNDETERMINED"
SPS_PUC_NOT_REGISTERED = "SPS_PUC_NOT_REGISTERED"
SPS_PHC_NOT_REGISTERED = "SPS_PHC_NOT_REGISTERED"
SPS_CERTIFICATE_MISSING = "SPS_CERTIFICATE_MISSING"
LICENCE_REQUIRED = "LICENCE_REQUIRED"
HS_SUBHEADING_UNKNOWN = "HS_SUBHEADING_UNKNOWN"


# ---- reference data ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Species:
    code: str
    name: str
    hs6: str
    admitted: bool


@dataclass(frozen=True)
class FruitList:
    """The dated list of fruit species and whether China admits each (``fruit_species.csv``)."""

    version: str
    species: Mapping[str, Species]
    by_hs8: Mapping[str, str]
    by_hs6: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, str]]) -> FruitList:
        species: dict[str, Species] = {}
        by_hs8: dict[str, str] = {}
        by_hs6: dict[str, list[str]] = {}
        versions = set()
        for row in rows:
            s = Species(row["species"], row["name_en"], row["hs6"], row["gacc_admitted"] == "yes")
            species[s.code] = s
            by_hs6.setdefault(s.hs6, []).append(s.code)
            if row.get("hs8_vn"):
                if row["hs8_vn"] in by_hs8:
                    raise ValueError(f"fruit list: national code {row['hs8_vn']} names two species")
                by_hs8[row["hs8_vn"]] = s.code
            versions.add(row.get("list_version", ""))
        if len(versions) != 1:
            raise ValueError(f"fruit list: rows of several versions {sorted(versions)}")
        return cls(versions.pop(), species, by_hs8, {k: tuple(v) for k, v in by_hs6.items()})

    @classmethod
    def load(cls, name: str = DEFAULT_FRUIT_LIST) -> FruitList:
        from xborder_gateway.mapping import codelist
        return cls.from_rows(codelist(name).rows.values())


@dataclass(frozen=True, slots=True)
class Registration:
    code: str
    kind: str  # PUC | PHC
    species: frozenset[str]
    active: bool


@dataclass(frozen=True)
class SpsRegistry:
    """China's registry of approved planting areas (PUC) and pack-houses (PHC): a versioned code list."""

    version: str
    entries: Mapping[str, Registration]

    @classmethod
    def from_rows(cls, version: str, rows: Iterable[Mapping[str, str]]) -> SpsRegistry:
        entries = {}
        for row in rows:
            kind = row["kind"]
            if kind not in ("PUC", "PHC"):
                raise ValueError(f"SPS registry {version}: {row['code']} has kind {kind!r}")
            entries[row["code"]] = Registration(row["code"], kind, frozenset(row["species"].split(";")),
                                                row["status"] == "ACTIVE")
        return cls(version, entries)

    @classmethod
    def load(cls, name: str = DEFAULT_SPS_REGISTRY) -> SpsRegistry:
        from xborder_gateway.mapping import codelist
        return cls.from_rows(name.removeprefix("cn_sps_registry_"), codelist(name).rows.values())

    def check(self, kind: str, code: str | None, species: str) -> str | None:
        """None when ``code`` is an ACTIVE ``kind`` registration covering ``species``, else why not."""
        if not code:
            return f"no {kind} given"
        entry = self.entries.get(code)
        if entry is None or entry.kind != kind:
            return f"{kind} {code} is not in registry {self.version}"
        if not entry.active:
            return f"{kind} {code} is suspended (registry {self.version})"
        if species not in entry.species:
            return f"{kind} {code} is registered for {'/'.join(sorted(entry.species))}, not {species}"
        return None


@cache
def _hs2022() -> frozenset[str]:
    from xborder_gateway.mapping import hs_nomenclature
    return hs_nomenclature()


@dataclass(frozen=True)
class CnRulesConfig:
    licence_required_hs6: frozenset[str] = DEFAULT_LICENCE_REQUIRED_HS6
    sps_registry: str = DEFAULT_SPS_REGISTRY
    fruit_list: str = DEFAULT_FRUIT_LIST
    applies_to: frozenset[str] = field(default_factory=lambda: frozenset({"EDA"}))
    """Document types whose goods enter China (SPS-1..4, LIC-1 apply to them only)."""

    @classmethod
    def from_settings(cls, settings: Any) -> CnRulesConfig:
        """Reads ``cn_licence_required_hs6`` (comma-separated HS-6) and ``cn_sps_registry`` when present."""
        raw = getattr(settings, "cn_licence_required_hs6", None)
        codes = DEFAULT_LICENCE_REQUIRED_HS6 if raw is None else frozenset(
            c.strip() for c in str(raw).split(",") if c.strip())
        bad = sorted(c for c in codes if len(c) != 6 or not c.isdigit())
        if bad:
            raise ValueError(f"cn_licence_required_hs6: not six-digit HS codes: {', '.join(bad)}")
        return cls(licence_required_hs6=codes,
                   sps_registry=str(getattr(settings, "cn_sps_registry", None) or DEFAULT_SPS_REGISTRY))


# ---- the rule set -------------------------------------------------------------------------------------
def is_fresh_fruit(hs6: str) -> bool:
    return hs6.startswith(FRESH_FRUIT_HS6_PREFIXES)


class CnRuleSet:
    """China's rules as one object: ``decide()`` has the shape of :func:`_business.decide` minus the
    crosswalk, so the inbound connector can call ``rules.decide(doc_type, record, lookup=...)``."""

    def __init__(self, config: CnRulesConfig | None = None, *, registry: SpsRegistry | None = None,
                 fruits: FruitList | None = None, nomenclature: frozenset[str] | None = None) -> None:
        self.config = config or CnRulesConfig()
        self.registry = registry or SpsRegistry.load(self.config.sps_registry)
        self.fruits = fruits or FruitList.load(self.config.fruit_list)
        self.nomenclature = nomenclature if nomenclature is not None else _hs2022()

    authority = "CN"

    def remembers(self, document_type: str) -> bool:
        """Declarations are stored for the manifests that link them (BIZ-2/BIZ-3)."""
        return document_type in DECLARATION_TYPES

    def batch_order(self, document_type: str | None) -> int:
        """Declarations before the manifests of the same batch that link them."""
        return 1 if (document_type or "") in MANIFEST_TYPES else 0

    def decide(self, document_type: str, record: Mapping[str, Any], *,
               lookup: Callable[[str], KnownDeclaration | None]) -> BusinessDecision:
        if document_type in MANIFEST_TYPES:
            return _decide_manifest(document_type, record, lookup=lookup)  # BIZ-2, BIZ-3
        if document_type not in DECLARATION_TYPES:
            return BusinessDecision("REJECTED", (("DOCUMENT_TYPE_UNKNOWN", f"document type {document_type!r}"),))
        rejects: list[tuple[str, str]] = []
        holds: list[tuple[str, str]] = []
        entering = document_type in self.config.applies_to
        any_fruit = False
        for line in record.get("goods") or ():
            n = line.get("line_number")
            hs6 = str(line.get("hs6") or "")
            # BIZ-1 (revised): classify from hs6 + hs_national; cn_code is never a reason to stop
            if hs6 not in self.nomenclature:
                rejects.append((HS_SUBHEADING_UNKNOWN, f"line {n}: {hs6 or '(none)'} is not an HS 2022 subheading"))
                continue
            if not entering:
                continue
            if is_fresh_fruit(hs6):
                any_fruit = True
                self._fresh_fruit(line, rejects, holds)
            # LIC-1: licence-required goods carry a licence number
            if hs6 in self.config.licence_required_hs6 and not line.get("licence_number"):
                holds.append((LICENCE_REQUIRED, f"line {n}: HS {hs6} needs an import licence or quota "
                                                "certificate number"))
        # SPS-4: fresh fruit travels with a phytosanitary certificate
        if any_fruit and not record.get("phytosanitary_certificate"):
            holds.append((SPS_CERTIFICATE_MISSING, "fresh fruit without a phytosanitary certificate number"))
        if rejects:
            return BusinessDecision("REJECTED", tuple(rejects[:MAX_REASONS]))
        if holds:
            return BusinessDecision("HELD", tuple(holds[:MAX_REASONS]))
        return BusinessDecision("ACCEPTED")

    def _fresh_fruit(self, line: Mapping[str, Any], rejects: list[tuple[str, str]],
                     holds: list[tuple[str, str]]) -> None:
        n, hs6, hs8 = line.get("line_number"), str(line.get("hs6") or ""), str(line.get("hs_national") or "")
        fruits = self.fruits
        declared = line.get("species_code")
        listed_here = fruits.by_hs6.get(hs6, ())
        if declared:
            species = fruits.species.get(str(declared))
            if species is None:  # SPS-1: a species not on the list is not admitted
                rejects.append((SPS_PRODUCT_NOT_ADMITTED,
                                f"line {n}: species {declared} is not on fruit list {fruits.version}"))
                return
            if species.hs6 != hs6:  # SPS-1: the code must agree with the classification
                holds.append((SPS_SPECIES_MISMATCH, f"line {n}: species {species.code} ({species.name}) is "
                                                    f"classified in {species.hs6}, the line in {hs6}"))
                return
        elif hs8 in fruits.by_hs8:
            species = fruits.species[fruits.by_hs8[hs8]]
        elif len(listed_here) == 1:
            species = fruits.species[listed_here[0]]
        elif not any(fruits.species[c].admitted for c in listed_here):
            # SPS-1: no fruit of this subheading is admitted, whatever the species
            rejects.append((SPS_PRODUCT_NOT_ADMITTED,
                            f"line {n}: no fresh fruit of HS {hs6} is admitted (fruit list {fruits.version})"))
            return
        else:
            holds.append((SPS_SPECIES_UNDETERMINED, f"line {n}: HS {hs8} does not name the fruit; give its "
                                                    "species code (SPC)"))
            return
        if not species.admitted:  # SPS-1
            rejects.append((SPS_PRODUCT_NOT_ADMITTED, f"line {n}: {species.name} ({species.code}) is not "
                                                      f"admitted for entry (fruit list {fruits.version})"))
            return
        why = self.registry.check("PUC", line.get("planting_area_code"), species.code)
        if why:  # SPS-2
            holds.append((SPS_PUC_NOT_REGISTERED, f"line {n}: {why}"))
        why = self.registry.check("PHC", line.get("packing_house_code"), species.code)
        if why:  # SPS-3
            holds.append((SPS_PHC_NOT_REGISTERED, f"line {n}: {why}"))


# ---- release of a hold by an amendment ------------------------------------------------------------------
class ReleaseAction(StrEnum):
    RELEASE = "RELEASE"          # the amendment supplies everything: a new business response ACCEPTED
    STILL_HELD = "STILL_HELD"    # still held (a new response HELD with the remaining reasons)
    REJECT = "REJECT"            # the amendment makes it inadmissible: a new response REJECTED
    NO_CHANGE = "NO_CHANGE"      # nothing to send: not held, another declaration, or a stale version


@dataclass(frozen=True, slots=True)
class ReleaseDecision:
    action: ReleaseAction
    decision: BusinessDecision | None
    """The new business response to send; None for NO_CHANGE."""
    resolved: tuple[str, ...] = ()
    """Codes of the previous hold reasons the amendment cleared."""
    note: str = ""


def decide_release(previous: BusinessDecision, previous_key: str, amendment: Mapping[str, Any], *,
                   rules: CnRuleSet, lookup: Callable[[str], KnownDeclaration | None],
                   document_type: str = "EDA", previous_version: int | None = None,
                   amendment_version: int | None = None) -> ReleaseDecision:
    """Given the stored outcome of a declaration and an amendment of it, what to answer (pure).

    REL-1 only a HELD declaration is released; an accepted or rejected one is not re-decided here.
    REL-2 the amendment must be of the same declaration (same declaration number).
    REL-3 with versions, only a newer version counts (an amendment that overtook a later one is stale).
    REL-4 the amendment is judged in full by the same rules: it releases only if it is ACCEPTED as a whole,
    so an amendment that fixes one hold and breaks something else does not release.
    """
    if previous.status != "HELD":  # REL-1
        return ReleaseDecision(ReleaseAction.NO_CHANGE, None, note=f"declaration is {previous.status}, not HELD")
    key = str(amendment.get("declaration_number") or "")
    if key != previous_key:  # REL-2
        return ReleaseDecision(ReleaseAction.NO_CHANGE, None,
                               note=f"amendment is of declaration {key or '(none)'}, not {previous_key}")
    if previous_version is not None and amendment_version is not None and amendment_version <= previous_version:
        return ReleaseDecision(ReleaseAction.NO_CHANGE, None,  # REL-3
                               note=f"amendment version {amendment_version} is not newer than {previous_version}")
    new = rules.decide(document_type, amendment, lookup=lookup)  # REL-4
    before = {code for code, _t in previous.reasons}
    after = {code for code, _t in new.reasons} if new.status == "HELD" else set()
    resolved = tuple(sorted(before - after))
    if new.status == "ACCEPTED":
        return ReleaseDecision(ReleaseAction.RELEASE, new, resolved, note="hold released by amendment")
    if new.status == "REJECTED":
        return ReleaseDecision(ReleaseAction.REJECT, new, resolved, note="amendment is not admissible")
    return ReleaseDecision(ReleaseAction.STILL_HELD, new, resolved, note="still held")
