"""Licence plates and container numbers: normalisation and OCR-tolerant matching (pure functions).

A plate is normalised to its *canonical form*: Unicode NFKC (full-width letters and digits become ASCII),
upper case, separators removed (space, ``-``, ``.``, ``·`` and similar), a Chinese province abbreviation
kept as its Han character (the ASCII transliterations our generator and some readers use, ``GUI`` for 桂,
become the character). ``12C-345.67`` -> ``12C34567``, ``29H1-234.56`` -> ``29H123456``,
``桂A·12345`` -> ``桂A12345``. Normalisation never *corrects* a character: ``12C-345.6O`` stays
``12C3456O`` and can only match ``12C34560`` fuzzily (GATE-2: a fuzzy match never gives GREEN).

Matching scores a read against a declared plate with a weighted edit distance: a substitution inside
one OCR confusion class (0/O/D/Q, 8/B, 1/I/L, 5/S, 2/Z, 6/G) costs :data:`CONFUSION_COST`, a missing or
extra character :data:`GAP_COST`, anything else is not a match. Score = 1 - cost; 1.0 only for the
identical canonical form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from xborder_gateway.errors import IntakeError

__all__ = [
    "CONFUSION_COST",
    "GAP_COST",
    "MAX_FUZZY_COST",
    "PlateError",
    "PlateIndex",
    "PlateMatch",
    "container_check_digit",
    "container_valid",
    "match_cost",
    "normalise_container",
    "normalise_plate",
    "plate_kind",
    "skeleton",
]

MAX_PLATE_CHARS: Final = 35  # VNACCS LPN, and the read's bound before any work (GATE-1)
CONFUSION_COST: Final = 0.15
GAP_COST: Final = 0.35  # two gaps (= one unrelated substitution) exceed MAX_FUZZY_COST
MAX_FUZZY_COST: Final = 0.6

_CONFUSIONS: Final = ("0ODQ", "8B", "1IL", "5S", "2Z", "6G")
_CLASS: Final = {c: group[0] for group in _CONFUSIONS for c in group}

#: Province abbreviations of Chinese plates (GA 36), with the ASCII forms readers emit for the ones used
#: at the Guangxi border (Guangxi, Yunnan, Guangdong); the others appear only as Han characters.
PROVINCES: Final = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领")
_TRANSLIT: Final = {"GUI": "桂", "YUN": "云", "YUE": "粤"}
_SEPARATORS: Final = re.compile(r"[\s\-._·•・‧∙/]+")
_ALLOWED: Final = re.compile(r"^[A-Z0-9" + "".join(sorted(PROVINCES)) + r"]+$")
_VN: Final = re.compile(r"^[0-9]{2}[A-Z]{1,2}[0-9]?[0-9]{4,5}$")
_CN: Final = re.compile(r"^[" + "".join(sorted(PROVINCES)) + r"][A-Z][A-Z0-9]{5,6}$")
_TRANSLIT_RE: Final = re.compile(r"^(GUI|YUN|YUE)(?=[A-Z][A-Z0-9]{5,6}$)")


class PlateError(IntakeError):
    """A plate read that cannot be a plate (empty, too long, characters no plate has)."""

    default_code = "GATE_PLATE_INVALID"


def normalise_plate(read: str) -> str:
    """The canonical form of a plate as read; raises :class:`PlateError` if it cannot be a plate."""
    if len(read) > MAX_PLATE_CHARS * 2:  # GATE-1: bound the input before normalising it
        raise PlateError(f"plate read of {len(read)} characters", code="GATE_PLATE_TOO_LONG")
    text = unicodedata.normalize("NFKC", read).upper()
    text = _SEPARATORS.sub("", text)
    text = _TRANSLIT_RE.sub(lambda m: _TRANSLIT[m.group(1)], text)
    if not text:
        raise PlateError("no plate was read", code="GATE_PLATE_EMPTY")
    if len(text) > MAX_PLATE_CHARS:
        raise PlateError(f"plate of {len(text)} characters (limit {MAX_PLATE_CHARS})", code="GATE_PLATE_TOO_LONG")
    if not _ALLOWED.match(text):
        raise PlateError("plate holds characters no plate has", code="GATE_PLATE_CHARACTERS")
    return text


def plate_kind(canonical: str) -> str:
    """``VN``, ``CN`` or ``OTHER`` (a foreign or trailer plate) by the canonical form's shape."""
    if _VN.match(canonical):
        return "VN"
    if _CN.match(canonical):
        return "CN"
    return "OTHER"


def skeleton(canonical: str) -> str:
    """Each character replaced by its confusion class's representative (0/O/D/Q -> 0, 8/B -> 8 …)."""
    return "".join(_CLASS.get(c, c) for c in canonical)


def match_cost(read: str, declared: str) -> float | None:
    """Weighted edit distance between two canonical plates, or None when above :data:`MAX_FUZZY_COST`."""
    if read == declared:
        return 0.0
    n, m = len(read), len(declared)
    if abs(n - m) * GAP_COST > MAX_FUZZY_COST:
        return None
    inf = float("inf")
    prev = [j * GAP_COST for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [i * GAP_COST] + [inf] * m
        a = read[i - 1]
        for j in range(1, m + 1):
            b = declared[j - 1]
            if a == b:
                sub = prev[j - 1]
            elif _CLASS.get(a, a) == _CLASS.get(b, b):
                sub = prev[j - 1] + CONFUSION_COST
            else:
                sub = inf
            cur[j] = min(sub, prev[j] + GAP_COST, cur[j - 1] + GAP_COST)
        prev = cur
    cost = round(prev[m], 6)
    return cost if cost <= MAX_FUZZY_COST else None


def _deletions(text: str) -> Iterator[str]:
    for i in range(len(text)):
        yield text[:i] + text[i + 1:]


@dataclass(frozen=True, slots=True)
class PlateMatch:
    plate: str
    cost: float

    @property
    def score(self) -> float:
        return round(1.0 - self.cost, 6)


class PlateIndex:
    """Canonical plates indexed for fuzzy lookup: by skeleton, and by skeleton minus one character, so a
    query touches only the plates within confusions plus at most one missing/extra character."""

    def __init__(self) -> None:
        self._exact: dict[str, int] = {}
        self._skel: dict[str, set[str]] = {}
        self._del: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._exact)

    def add(self, plate: str) -> None:
        count = self._exact.get(plate, 0)
        self._exact[plate] = count + 1
        if count:
            return
        sk = skeleton(plate)
        self._skel.setdefault(sk, set()).add(plate)
        for d in set(_deletions(sk)):
            self._del.setdefault(d, set()).add(plate)

    def remove(self, plate: str) -> None:
        count = self._exact.get(plate, 0)
        if count > 1:
            self._exact[plate] = count - 1
            return
        if not count:
            return
        del self._exact[plate]
        sk = skeleton(plate)
        self._skel.get(sk, set()).discard(plate)
        for d in set(_deletions(sk)):
            self._del.get(d, set()).discard(plate)

    def lookup(self, read: str) -> list[PlateMatch]:
        """Every indexed plate within :data:`MAX_FUZZY_COST` of ``read``, best first (exact first)."""
        sk = skeleton(read)
        candidates: set[str] = set(self._skel.get(sk, ()))
        candidates |= self._del.get(sk, set())  # the read misses one character
        for d in set(_deletions(sk)):  # the read has one extra character
            candidates |= self._skel.get(d, set())
        found = []
        for plate in candidates:
            cost = match_cost(read, plate)
            if cost is not None:
                found.append(PlateMatch(plate, cost))
        found.sort(key=lambda m: (m.cost, m.plate))
        return found

    def plates(self) -> Iterable[str]:
        return self._exact.keys()


# ---- containers (ISO 6346) ------------------------------------------------------------------------------
_ISO6346: Final = re.compile(r"^[A-Z]{3}[UJZ][0-9]{7}$")


def _letter_values() -> dict[str, int]:
    values: dict[str, int] = {str(d): d for d in range(10)}
    v = 10
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if v % 11 == 0:  # ISO 6346 skips multiples of 11 (11, 22, 33)
            v += 1
        values[c] = v
        v += 1
    return values


_VALUES: Final = _letter_values()


def container_check_digit(first_ten: str) -> int:
    """ISO 6346 check digit of owner code + category + serial (10 characters)."""
    return sum(_VALUES[c] << i for i, c in enumerate(first_ten)) % 11 % 10


def normalise_container(read: str) -> str:
    """Upper case, NFKC, separators removed (``MSCU 123456-7`` -> ``MSCU1234567``); bounded."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", read[:64]).upper())


def container_valid(number: str) -> bool:
    """True for a well-formed ISO 6346 number whose check digit is right (GATE-3)."""
    return bool(_ISO6346.match(number)) and container_check_digit(number[:10]) == int(number[10])
