"""Nanning Customs' business checks (pure): a decoded document -> ACCEPTED / HELD / REJECTED + reasons.

Rules (issue 5, deliverable 3):

- BIZ-1 an IDA/EDA goods line whose national HS code has no Chinese tariff code (no ``cn_code`` in the
  record and no entry in the CN crosswalk) -> HELD ``HS_NOT_IN_CROSSWALK``;
- BIZ-2 a TIR/TOR naming a linked declaration the endpoint has not received -> REJECTED
  ``LINKED_DECLARATION_UNKNOWN``;
- BIZ-3 the linked declarations' gross weight above the manifest's declared gross weight -> HELD
  ``GROSS_WEIGHT_EXCEEDS_MANIFEST``. Applied when the manifest record carries ``gross_weight_kg``
  (VehicleManifest v1 has no such field, so the rule is inert for v1 manifests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["DECLARATION_TYPES", "MANIFEST_TYPES", "BusinessDecision", "KnownDeclaration", "decide"]

DECLARATION_TYPES = frozenset({"IDA", "EDA"})
MANIFEST_TYPES = frozenset({"TIR", "TOR"})


@dataclass(frozen=True, slots=True)
class KnownDeclaration:
    business_key: str
    gross_weight_kg: Decimal | None


@dataclass(frozen=True, slots=True)
class BusinessDecision:
    status: str  # ACCEPTED | HELD | REJECTED
    reasons: tuple[tuple[str, str], ...] = ()

    def as_reasons(self) -> list[dict[str, str]]:
        return [{"code": c, "text": t} for c, t in self.reasons]


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def decide(
    document_type: str,
    record: Mapping[str, Any],
    *,
    lookup: Callable[[str], KnownDeclaration | None],
    crosswalk: Callable[[str], str | None] | None = None,
) -> BusinessDecision:
    """The business decision for one document. ``lookup`` finds declarations received earlier."""
    if document_type in DECLARATION_TYPES:
        missing = []
        for line in record.get("goods") or ():
            hs = str(line.get("hs_national") or "")
            cn = line.get("cn_code") or (crosswalk(hs) if crosswalk is not None else None)
            if not cn:  # BIZ-1
                missing.append(f"line {line.get('line_number')}: HS {hs} has no CN tariff code")
        if missing:
            return BusinessDecision("HELD", tuple(("HS_NOT_IN_CROSSWALK", m) for m in missing[:10]))
        return BusinessDecision("ACCEPTED")
    if document_type in MANIFEST_TYPES:
        linked = [str(k) for k in record.get("linked_declarations") or ()]
        found = {k: lookup(k) for k in linked}
        unknown = [k for k, v in found.items() if v is None]
        if unknown:  # BIZ-2
            return BusinessDecision("REJECTED", tuple(
                ("LINKED_DECLARATION_UNKNOWN", f"declaration {k} was not received") for k in unknown[:10]))
        manifest_kg = _decimal(record.get("gross_weight_kg"))
        if manifest_kg is not None:  # BIZ-3
            total = sum((_decimal(v.gross_weight_kg) or Decimal(0) for v in found.values() if v is not None),
                        Decimal(0))
            if total > manifest_kg:
                return BusinessDecision("HELD", (("GROSS_WEIGHT_EXCEEDS_MANIFEST",
                                                  f"linked declarations {total} kg > manifest {manifest_kg} kg"),))
        return BusinessDecision("ACCEPTED")
    return BusinessDecision("REJECTED", (("DOCUMENT_TYPE_UNKNOWN", f"document type {document_type!r}"),))
