"""Realistic sample documents: ``generate(kind, count, seed)`` and ``generate_mix(count, seed)``.

Distributions follow ../shared/DOMAIN.md: goods lines median ≈ 6 with ~3 % at the 50-line cap, fruit
exports mostly one line (durian 0810.60, dragon fruit 0810.90 …), Vietnamese names and addresses with
diacritics, tax codes with correct check digits, ISO 6346 container numbers with check digits, truck
plates, drivers, and TIR documents that link the goods declarations of the same run.
``invalid=True`` documents each break one rule of :data:`INVALID_RULES` (with the code expected).
``generate_cn_exports(count, seed)``: China's export declarations and road manifests of the same trucks as
``generate("IDA", count, seed)``, with optional seeded mismatches (:data:`MISMATCH_KINDS`).
"""

from __future__ import annotations

from xborder_gateway.samples._cn import MISMATCH_KINDS, CnConsignment, generate_cn_exports
from xborder_gateway.samples._generate import INVALID_RULES, KINDS, Sample, generate, generate_mix

__all__ = ["INVALID_RULES", "KINDS", "MISMATCH_KINDS", "CnConsignment", "Sample", "generate", "generate_cn_exports",
           "generate_mix"]
