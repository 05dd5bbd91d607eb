#!/usr/bin/env python3
"""Build the SIMULATED CN-side registry of approved Vietnamese planting areas (PUC) and pack-houses (PHC).

GACC publishes the codes it has approved for each fruit protocol; no machine-readable copy is available
offline, so this registry is generated, deterministically, in a realistic shape (docs/exchange.md,
"Business rules (CN)"). Re-running the script reproduces the committed file byte for byte:

    .venv/bin/python scripts/build_sps_registry.py            # writes mappings/codelists/cn_sps_registry_2026-11-30.csv
    .venv/bin/python scripts/build_sps_registry.py --check    # exit 1 if the committed file differs

Formats (this project's, documented; real codes differ by province and protocol):
- PUC ``VN-<SPECIES>-<NNNN>`` (species = 3-letter code of fruit_species.csv), e.g. ``VN-DUR-0412``;
  a PUC is registered for exactly one species.
- PHC ``VN-PH-<NNNN>``, e.g. ``VN-PH-0137``; a pack-house is approved for one or more species
  (``species`` holds them separated by ``;``).
- ``status`` ACTIVE or SUSPENDED (GACC suspends codes after a detection; about 6 % here).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
from pathlib import Path

VERSION = "2026-11-30"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "mappings" / "codelists" / f"cn_sps_registry_{VERSION}.csv"

# species -> (number of planting areas, growing provinces)
PLANTING: dict[str, tuple[int, tuple[str, ...]]] = {
    "DUR": (140, ("Đắk Lắk", "Tiền Giang", "Đồng Nai", "Lâm Đồng", "Bến Tre", "Đắk Nông")),
    "DRF": (90, ("Bình Thuận", "Long An", "Tiền Giang")),
    "JCK": (40, ("Tiền Giang", "Hậu Giang", "Đồng Nai")),
    "LGN": (30, ("Hưng Yên", "Sơn La", "Vĩnh Long")),
    "LYC": (30, ("Bắc Giang", "Hải Dương")),
    "MAN": (40, ("Đồng Tháp", "Sơn La", "Khánh Hòa")),
    "BAN": (40, ("Đồng Nai", "Tây Ninh", "Lào Cai")),
    "WML": (25, ("Long An", "Quảng Ngãi", "Gia Lai")),
    "RMB": (20, ("Bến Tre", "Đồng Nai")),
    "MGT": (15, ("Bình Dương", "Bến Tre")),
    "PSF": (25, ("Gia Lai", "Sơn La", "Đắk Nông")),
}
PACK_HOUSES = 180
SUSPENDED_SHARE = 0.06


def build() -> str:
    rng = random.Random(f"cn-sps-registry-{VERSION}")  # noqa: S311 - simulated reference data
    start = dt.date(2019, 1, 1).toordinal()
    end = dt.date(2026, 11, 30).toordinal()
    rows: list[tuple[str, str, str, str, str, str]] = []
    for species, (count, provinces) in PLANTING.items():
        for serial in sorted(rng.sample(range(1, 10_000), count)):
            rows.append((f"VN-{species}-{serial:04d}", "PUC", species, rng.choice(provinces),
                         dt.date.fromordinal(rng.randint(start, end)).isoformat(),
                         "SUSPENDED" if rng.random() < SUSPENDED_SHARE else "ACTIVE"))
    all_provinces = sorted({p for _n, ps in PLANTING.values() for p in ps})
    species_codes = list(PLANTING)
    for serial in sorted(rng.sample(range(1, 10_000), PACK_HOUSES)):
        handled = sorted(rng.sample(species_codes, rng.choice([1, 1, 2, 3, 4])))
        rows.append((f"VN-PH-{serial:04d}", "PHC", ";".join(handled), rng.choice(all_provinces),
                     dt.date.fromordinal(rng.randint(start, end)).isoformat(),
                     "SUSPENDED" if rng.random() < SUSPENDED_SHARE else "ACTIVE"))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["code", "kind", "species", "province", "registered_on", "status", "source"])
    for row in sorted(rows):
        writer.writerow([*row, f"simulated {VERSION}"])
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the simulated CN SPS registry (PUC/PHC codes).")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs (no write)")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {text.count(chr(10)) - 1} codes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
