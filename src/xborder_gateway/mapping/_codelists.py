"""Code lists: CSV tables under ``mappings/codelists/`` (first column is the key)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache

from xborder_gateway.avro._resources import data_dir
from xborder_gateway.errors import MappingError

__all__ = ["CodeList", "codelist"]


@dataclass(frozen=True)
class CodeList:
    name: str
    key: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, str]]

    def column(self, name: str) -> dict[str, str]:
        """``key -> value`` of one column (values '' are absent entries)."""
        return {k: row[name] for k, row in self.rows.items() if row.get(name)}


@cache
def codelist(name: str) -> CodeList:
    """Load ``mappings/codelists/<name>.csv`` once."""
    path = data_dir("mappings") / "codelists" / f"{name}.csv"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"code list {name!r} not found ({path})", code="CODELIST_MISSING",
                           hint="add the CSV under mappings/codelists/ or fix the name in the mapping") from exc
    reader = csv.DictReader(io.StringIO(text))
    columns = tuple(reader.fieldnames or ())
    if not columns:
        raise MappingError(f"code list {path} has no header", code="CODELIST_INVALID")
    rows: dict[str, dict[str, str]] = {}
    for number, row in enumerate(reader, start=2):
        key = (row.get(columns[0]) or "").strip()
        if not key:
            raise MappingError(f"{path}:{number}: empty key", code="CODELIST_INVALID")
        if key in rows:
            raise MappingError(f"{path}:{number}: duplicate key {key!r}", code="CODELIST_INVALID")
        rows[key] = {c: (row.get(c) or "").strip() for c in columns}
    return CodeList(name=name, key=columns[0], columns=columns, rows=rows)
