"""A frozen digest of every outcome of ``translate_xml`` (and of ``avro.encode`` on China's records) over a
fixed set of generated documents: the guard that makes the mapping engine and the Avro encoder safe to
optimise (issue 13 item 4). Each digest covers, for a translated document, the payload bytes, every output
(business key, perishable, linked declarations, gross weight), the fingerprint, the SHA-256 of the input
and the mapped values as Python sees them (``repr``: types, decimal exponents and time zones included);
for a refused document the error class, its code and every reason (code, message, line, column, XPath).

The fixture ``golden/translate-set.json`` was computed with the engine and encoder as they were before
the optimisation (commit 518437b). Regenerate it only for an intended change of output, never to make
an optimisation pass: ``python tests/documents/test_translate_golden_set.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xborder_gateway import avro
from xborder_gateway.documents import DocumentRejectedError, translate_xml
from xborder_gateway.errors import GatewayError
from xborder_gateway.samples import KINDS, generate, generate_cn_exports, generate_mix

FIXTURE = Path(__file__).parent / "golden" / "translate-set.json"


def _documents() -> Iterator[tuple[str, bytes]]:
    """Every document type, valid and invalid (every rule of every kind), amendments, and a mix with
    many invalid documents."""
    for i, s in enumerate(generate_mix(240, 11, invalid_ratio=0.25, amendments=True)):
        yield f"mix/{i}/{s.name}", s.xml
    for kind in KINDS:
        for i, s in enumerate(generate(kind, 40, 12)):
            yield f"{kind}/{i}/{s.name}", s.xml
        for i, s in enumerate(generate(kind, 30, 13, invalid=True)):
            yield f"{kind}-invalid/{i}/{s.name}", s.xml


def _digest_translation(raw: bytes, source: str) -> str:
    try:
        doc = translate_xml(raw, source=source)
    except DocumentRejectedError as exc:
        reasons = [[r.code, r.message, r.line, r.column, r.xpath] for r in exc.reasons]
        text = json.dumps(["rejected", type(exc).__name__, exc.code, exc.source, reasons], ensure_ascii=False)
    except GatewayError as exc:
        text = json.dumps(["error", type(exc).__name__, exc.code, str(exc)], ensure_ascii=False)
    else:
        text = json.dumps(["ok", doc.doc_type, doc.schema_name, doc.schema_version, doc.business_key,
                           doc.payload.hex(), doc.schema_fingerprint.hex(), doc.perishable,
                           list(doc.linked_declarations), repr(doc.gross_weight_kg), doc.raw_sha256.hex(),
                           repr(dict(doc.values))], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _cn_records() -> Iterator[tuple[str, str, dict[str, object]]]:
    for i, c in enumerate(generate_cn_exports(60, 14, mismatch_ratio=0.3)):
        yield f"cn/{i}/export", "CnExportDeclaration", c.export
        yield f"cn/{i}/manifest", "CnRoadManifest", c.manifest


def _digest_encoding(schema: str, record: dict[str, object]) -> str:
    try:
        text = "ok " + avro.encode(schema, record).hex()
    except GatewayError as exc:
        text = f"error {exc.code}"
    return hashlib.sha256(text.encode()).hexdigest()


def compute() -> dict[str, str]:
    result = {name: _digest_translation(raw, name) for name, raw in _documents()}
    result.update({name: _digest_encoding(schema, rec) for name, schema, rec in _cn_records()})
    return result


@pytest.fixture(scope="module")
def expected() -> dict[str, str]:
    loaded: dict[str, str] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return loaded


def test_the_set_covers_every_kind_outcome_and_rule(expected: dict[str, str]) -> None:
    """The fixture is not trivially small: every kind, valid and rejected, and the CN records."""
    names = list(expected)
    assert len(names) > 600
    for kind in KINDS:
        assert any(n.startswith(f"{kind}/") for n in names)
        assert any(n.startswith(f"{kind}-invalid/") for n in names)
    assert any(n.startswith("cn/") for n in names)
    assert len(set(expected.values())) == len(expected)  # every document has its own outcome


def test_every_outcome_is_byte_identical_to_the_frozen_one(expected: dict[str, str]) -> None:
    actual = compute()
    assert list(actual) == list(expected), "the generated set changed: the samples generator moved"
    differing = [name for name in expected if actual[name] != expected[name]]
    assert not differing, f"{len(differing)} outcome(s) differ, first: {differing[:5]}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/documents/test_translate_golden_set.py --write")
    FIXTURE.write_text(json.dumps(compute(), indent=0) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
