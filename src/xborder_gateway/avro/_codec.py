"""Schema registry (the files under ``schemas/avro``) and the single-object encoding codec."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from xborder_gateway.avro._resources import data_dir
from xborder_gateway.avro._writer import FastWriter, compile_writer
from xborder_gateway.errors import MappingError

__all__ = [
    "MAGIC",
    "AvroFrameError",
    "Decoded",
    "SchemaInfo",
    "decode",
    "encode",
    "fingerprint",
    "known_schemas",
    "schema_info",
]

MAGIC = b"\xc3\x01"
"""The two marker bytes of Avro single-object encoding."""

_HEADER_LEN = len(MAGIC) + 8
_FILE_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class AvroFrameError(MappingError):
    """An Avro frame or record could not be encoded or decoded.

    Codes: ``AVRO_BAD_MAGIC``, ``AVRO_TRUNCATED``, ``AVRO_UNKNOWN_FINGERPRINT``, ``AVRO_BODY_INVALID``,
    ``AVRO_TRAILING_BYTES``, ``AVRO_UNKNOWN_SCHEMA``, ``AVRO_RECORD_INVALID``, ``AVRO_SCHEMA_INVALID``.
    """

    default_code = "AVRO_BODY_INVALID"


@dataclass(frozen=True)
class SchemaInfo:
    """One agreed schema file: ``schemas/avro/<name>.v<version>.avsc``."""

    name: str
    """Short record name, e.g. ``Receipt``."""
    full_name: str
    """Namespace-qualified name, e.g. ``int.xborder.v1.Receipt``."""
    version: int
    fingerprint: bytes
    """8 bytes, little-endian CRC-64-AVRO of :attr:`canonical_form` (as in the frame)."""
    canonical_form: str
    """Parsing Canonical Form (Avro specification)."""
    path: Path
    raw: Mapping[str, Any] = field(repr=False)
    """The schema as written in the file (with docs)."""
    parsed: Any = field(repr=False)
    """The schema parsed by fastavro (what the codec uses)."""


@dataclass(frozen=True)
class Decoded:
    """A decoded frame: which schema wrote it and the record (read with the reader schema if one was asked)."""

    schema_name: str
    version: int
    """Version of the writer schema (the one named by the frame's fingerprint)."""
    fingerprint: bytes
    record: dict[str, Any]
    reader_version: int | None = None
    """The version the record was resolved to, when ``decode(..., reader_version=...)`` was used."""


@dataclass(frozen=True)
class _Registry:
    by_fingerprint: dict[bytes, SchemaInfo]
    by_name: dict[str, dict[int, SchemaInfo]]


def _schema_error(message: str, path: Path) -> AvroFrameError:
    return AvroFrameError(f"{path}: {message}", code="AVRO_SCHEMA_INVALID",
                          hint="fix the schema file under schemas/avro/ (see docs/documents.md)")


def _load_one(path: Path) -> SchemaInfo:
    match = _FILE_RE.match(path.name)
    if match is None:
        raise _schema_error("file name must be <Name>.v<N>.avsc", path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(raw, named_schemas={})
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise _schema_error(f"not a valid Avro schema: {exc}", path) from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise _schema_error("top-level type must be a record", path)
    if not isinstance(parsed, dict):
        raise _schema_error("top-level type must be a record", path)
    full_name = str(parsed["name"])
    short = full_name.rsplit(".", 1)[-1]
    if short != match["name"]:
        raise _schema_error(f"record name {short!r} does not match the file name", path)
    canonical = to_parsing_canonical_form(raw)
    fp = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))  # little-endian, as framed
    return SchemaInfo(name=short, full_name=full_name, version=int(match["version"]), fingerprint=fp,
                      canonical_form=canonical, path=path, raw=raw, parsed=parsed)


@cache
def _registry() -> _Registry:
    folder = data_dir("schemas") / "avro"
    by_fp: dict[bytes, SchemaInfo] = {}
    by_name: dict[str, dict[int, SchemaInfo]] = {}
    for path in sorted(folder.glob("*.avsc")):
        info = _load_one(path)
        clash = by_fp.get(info.fingerprint)
        if clash is not None:
            raise _schema_error(f"same canonical form (fingerprint) as {clash.path.name}; a new version must "
                                "change the record, not only docs", path)
        by_fp[info.fingerprint] = info
        by_name.setdefault(info.name, {})[info.version] = info
    for name, versions in by_name.items():
        expected = list(range(1, len(versions) + 1))
        if sorted(versions) != expected:
            raise _schema_error(f"versions of {name} must be consecutive from 1, found {sorted(versions)}", folder)
    return _Registry(by_fingerprint=by_fp, by_name=by_name)


def known_schemas() -> tuple[SchemaInfo, ...]:
    """Every agreed schema, ordered by name then version."""
    reg = _registry()
    return tuple(reg.by_name[n][v] for n in sorted(reg.by_name) for v in sorted(reg.by_name[n]))


def schema_info(schema_name: str, version: int | None = None) -> SchemaInfo:
    """The schema ``schema_name`` (short or full name) at ``version`` (default: the newest)."""
    reg = _registry()
    versions = reg.by_name.get(schema_name.rsplit(".", 1)[-1])
    if not versions:
        raise AvroFrameError(f"unknown schema {schema_name!r}", code="AVRO_UNKNOWN_SCHEMA",
                             hint=f"known schemas: {', '.join(sorted(reg.by_name))}")
    if version is None:
        return versions[max(versions)]
    info = versions.get(version)
    if info is None:
        raise AvroFrameError(f"schema {schema_name!r} has no version {version}", code="AVRO_UNKNOWN_SCHEMA",
                             hint=f"known versions: {sorted(versions)}")
    return info


def fingerprint(schema_name: str, version: int | None = None) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a schema, exactly as it appears in a frame."""
    return schema_info(schema_name, version).fingerprint


def encode(schema_name: str, record: Mapping[str, Any], version: int | None = None) -> bytes:
    """Encode ``record`` with the schema (newest version by default) in single-object encoding.

    Decimal fields take :class:`decimal.Decimal` (at most the schema's scale), timestamp-millis fields an
    aware :class:`datetime.datetime` or an int of milliseconds. A record that does not fit the schema
    (missing field without default, unknown field, wrong type) raises ``AVRO_RECORD_INVALID``.
    """
    info = schema_info(schema_name, version)
    writer = _writer_of(info)
    if writer is not None:
        try:
            return MAGIC + info.fingerprint + writer(record)
        except Exception:  # noqa: BLE001, S110 - the fast path declines this record: fastavro decides it
            pass
    return encode_with_fastavro(info, record)


_WRITERS: dict[bytes, FastWriter | None] = {}


def _writer_of(info: SchemaInfo) -> FastWriter | None:
    """The schema's generated writer (``_writer.py``), compiled on first use; None: fastavro writes it."""
    try:
        return _WRITERS[info.fingerprint]
    except KeyError:
        writer = _WRITERS[info.fingerprint] = compile_writer(info.parsed)
        return writer


def encode_with_fastavro(info: SchemaInfo, record: Mapping[str, Any]) -> bytes:
    """fastavro's generic writer: the reference the generated writer must equal, and its fallback."""
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(info.fingerprint)
    try:
        fastavro.schemaless_writer(buf, info.parsed, record, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, ArithmeticError) as exc:
        raise AvroFrameError(f"record does not fit {info.full_name} v{info.version}: {exc}",
                             code="AVRO_RECORD_INVALID",
                             hint="fix the record (field names, types, decimal scale) or the mapping") from exc
    return buf.getvalue()


def _frame_schema(data: bytes) -> SchemaInfo:
    if len(data) < _HEADER_LEN:
        raise AvroFrameError(f"frame truncated: {len(data)} bytes, the header alone has {_HEADER_LEN}",
                             code="AVRO_TRUNCATED", hint="the payload was cut; ask the sender to resend")
    fp = bytes(data[2:_HEADER_LEN])
    info = _registry().by_fingerprint.get(fp)
    if info is None:
        raise AvroFrameError(f"unknown schema fingerprint {fp.hex()}", code="AVRO_UNKNOWN_FINGERPRINT",
                             hint="the writer used a schema this side does not know; update schemas/avro")
    return info


def _decodes_when_padded(data: bytes, info: SchemaInfo) -> bool:
    """Diagnosis only (error path): a body that decodes once zeros are appended was cut, not corrupt."""
    buf = io.BytesIO(data + b"\x00" * 4096)
    buf.seek(_HEADER_LEN)
    try:
        fastavro.schemaless_reader(buf, info.parsed)
    except Exception:  # noqa: BLE001 - any failure means "not merely truncated"
        return False
    return True


def decode(data: bytes, reader_version: int | None = None) -> Decoded:
    """Decode a single-object frame; the schema is chosen by the frame's fingerprint.

    With ``reader_version``, the record is resolved (Avro schema resolution) to that version of the same
    record, e.g. an old reader reading a newer writer's message. Errors: ``AVRO_BAD_MAGIC``,
    ``AVRO_TRUNCATED``, ``AVRO_UNKNOWN_FINGERPRINT``, ``AVRO_BODY_INVALID``, ``AVRO_TRAILING_BYTES``.
    """
    data = bytes(data)
    if len(data) < 2 or data[:2] != MAGIC:
        if len(data) < 2 and MAGIC.startswith(data):
            raise AvroFrameError(f"frame truncated: {len(data)} bytes", code="AVRO_TRUNCATED",
                                 hint="the payload was cut; ask the sender to resend")
        raise AvroFrameError("not an Avro single-object frame (missing C3 01 marker)", code="AVRO_BAD_MAGIC",
                             hint="the payload must start with C3 01 (Avro single-object encoding)")
    info = _frame_schema(data)
    reader = schema_info(info.name, reader_version) if reader_version is not None else None
    buf = io.BytesIO(data)
    buf.seek(_HEADER_LEN)
    try:
        record = fastavro.schemaless_reader(buf, info.parsed, reader.parsed if reader is not None else None)
    except Exception as exc:  # fastavro raises many types on corrupt input; all are one fault
        code = "AVRO_TRUNCATED" if _decodes_when_padded(data, info) else "AVRO_BODY_INVALID"
        raise AvroFrameError(f"{info.full_name} v{info.version} body does not decode: {exc!r}", code=code,
                             hint="the payload was cut or corrupted, or not written with this schema; ask the "
                             "sender to resend") from exc
    if buf.tell() != len(data):
        raise AvroFrameError(f"{len(data) - buf.tell()} bytes after the {info.full_name} record",
                             code="AVRO_TRAILING_BYTES", hint="the payload must hold exactly one record")
    if not isinstance(record, dict):
        raise AvroFrameError("decoded body is not a record", code="AVRO_BODY_INVALID")
    return Decoded(schema_name=info.name, version=info.version, fingerprint=info.fingerprint, record=record,
                   reader_version=reader_version)
