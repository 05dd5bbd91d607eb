"""Plain values that cross the transport boundary (no aiokafka types leak out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Incoming", "Outgoing", "header"]

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        return header(self.headers, name)

    def header_str(self, name: str) -> str | None:
        raw = header(self.headers, name)
        return None if raw is None else raw.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default=())

    def header(self, name: str) -> bytes | None:
        return header(self.headers, name)

    @staticmethod
    def make_headers(values: Mapping[str, str | bytes | int | None]) -> Headers:
        out: list[tuple[str, bytes]] = []
        for name, value in values.items():
            if value is None:
                continue
            out.append((name, value if isinstance(value, bytes) else str(value).encode("utf-8")))
        return tuple(out)


def header(headers: Headers, name: str) -> bytes | None:
    """The last value of header ``name``, or None."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found
