"""The mapping engine: a YAML mapping compiled once into a tree of nodes, applied to validated XML.

Mapping errors (unknown target field, type mismatch, bad XPath, unknown transform or code list, an
unmapped required field) are found when the mapping is loaded and name the mapping file and line.

Data-rule errors (check digits, dates, minor units, …) are collected while a document is mapped, not
raised at the first one: ``apply`` raises one DocumentRejectedError listing every failure in document
order, at most ``max_errors`` (then a last ``TOO_MANY_ERRORS`` reason and the check stops).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from pathlib import Path
from typing import Any

from lxml import etree

from xborder_gateway.avro import schema_info
from xborder_gateway.errors import GatewayError, MappingError
from xborder_gateway.intake import DEFAULT_LIMITS, TOO_MANY_ERRORS, DocumentRejectedError, Reason, element_path
from xborder_gateway.mapping._paths import Getter, compile_path
from xborder_gateway.mapping._target import TargetType, target_of
from xborder_gateway.mapping._transforms import (
    CompiledTransform,
    DataRuleViolation,
    EvalContext,
    compile_transform,
)
from xborder_gateway.mapping._transforms import _to_decimal as to_decimal
from xborder_gateway.mapping._yaml import LineDict, load_yaml

__all__ = ["CompiledMapping", "MappingDefinitionError", "compile_mapping", "load_mapping"]


class MappingDefinitionError(MappingError):
    """A mapping file is wrong (found when it is loaded); the message starts with ``FILE:LINE:``."""

    default_code = "MAPPING_DEFINITION"


class _DefinitionProblem(Exception):  # noqa: N818 - internal, converted to MappingDefinitionError
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


_TOP_KEYS = {"document_type", "description", "root", "xsd", "schema", "schema_version", "namespaces",
             "fields", "outputs"}
_FIELD_KEYS = {"xpath", "const", "transform", "default", "many", "join", "fields", "each", "at", "any",
               "aggregate", "of", "position", "doc"}
_OUTPUT_TYPES: dict[str, TargetType] = {
    "business_key": TargetType(kind="string"),
    "perishable": TargetType(kind="boolean", nullable=True),
    "gross_weight_kg": TargetType(kind="decimal", precision=15, scale=3, nullable=True),
    "linked_declarations": TargetType(kind="array", items=TargetType(kind="string")),
}
_KIND_OK: dict[str, set[str]] = {
    "string": {"string", "enum"},
    "decimal": {"decimal"},
    "int": {"int", "long"},
    "bool": {"boolean"},
    "timestamp": {"timestamp"},
}


class _TooManyErrors(Exception):  # noqa: N818 - internal signal: stop checking, report what was found
    pass


class _Ctx:
    __slots__ = ("eval", "max_errors", "problems", "root", "source")

    def __init__(self, root: etree._Element, source: str, max_errors: int = DEFAULT_LIMITS.max_errors) -> None:
        self.root = root
        self.source = source
        self.eval = EvalContext(root, root)
        self.max_errors = max_errors
        self.problems: list[tuple[etree._Element, str, str]] = []
        """Data-rule failures so far: (element, code, message), in mapping order."""

    def problem(self, at: etree._Element, code: str, message: str) -> None:
        """Note a data-rule failure at ``at`` and go on; past ``max_errors`` the check stops."""
        if len(self.problems) >= self.max_errors:
            raise _TooManyErrors
        self.problems.append((at, code, message))

    def rejection(self, *, truncated: bool = False) -> DocumentRejectedError:
        """Every failure noted, in document order (mapping order among failures of one element)."""
        order = {el: i for i, el in enumerate(self.root.iter())}
        seen: set[tuple[int, str, str]] = set()
        reasons: list[tuple[int, Reason]] = []
        for at, code, message in self.problems:
            position = order.get(at, len(order))
            if (position, code, message) in seen:  # one element read by two fields: report it once
                continue
            seen.add((position, code, message))
            reasons.append((position, Reason(code=code, message=message, line=at.sourceline, column=None,
                                             xpath=element_path(at))))
        reasons.sort(key=lambda pair: pair[0])  # stable
        result = [r for _p, r in reasons]
        if truncated:
            result.append(Reason(TOO_MANY_ERRORS, f"more than {self.max_errors} data-rule error(s): the rest "
                                 "of the document was not checked"))
        return DocumentRejectedError(result, source=self.source)


Index = dict[str, etree._Element]

_FAILED: Any = object()
"""What a value node's conversion yields after a data-rule failure was noted (the field becomes null)."""


_TAG = attrgetter("tag")


def _index(element: etree._Element) -> Index:
    """First child element per tag: one pass over the children serves every single-step path.

    Built from the children in reverse order, so the first child of a tag is the one that stays (a C-level
    ``dict(zip(...))`` instead of a Python loop; a comment's "tag" is the ``Comment`` factory, never a
    path's)."""
    children = element[::-1]
    return dict(zip(map(_TAG, children), children, strict=True))


class _Node:
    name: str
    line: int

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        raise NotImplementedError


def _coerce_decimal(value: Decimal, target: TargetType) -> Decimal:
    """Canonical form: exactly the schema's scale (exact: a value that would need rounding is refused)."""
    return _decimal_coercer(target)(value)


def _decimal_coercer(target: TargetType) -> Callable[[Decimal], Decimal]:
    """:func:`_coerce_decimal` for one target, its quantum and bounds looked up once (at load time)."""
    quantum, precision, scale = target.quantum, target.precision, target.scale
    integer_digits = precision - scale

    def coerce(value: Decimal) -> Decimal:
        try:
            quantized = value.quantize(quantum)
        except InvalidOperation:  # more digits than the decimal context holds
            raise DataRuleViolation("DECIMAL_PRECISION", f"{value} does not fit decimal({precision},{scale})") from None
        if quantized != value:
            raise DataRuleViolation("DECIMAL_SCALE", f"{value} has more than {scale} decimals")
        if quantized and quantized.adjusted() >= integer_digits:
            raise DataRuleViolation("DECIMAL_PRECISION", f"{value} does not fit decimal({precision},{scale})")
        return quantized
    return coerce


def _coerce(value: Any, target: TargetType, where: str) -> Any:
    """Fit a transform's output to the target type; data faults raise DataRuleViolation."""
    if target.kind == "decimal" and isinstance(value, Decimal):
        return _coerce_decimal(value, target)
    if target.kind == "enum" and value not in target.symbols:
        raise MappingError(f"{where}: {value!r} is not a symbol of {target.name}", code="MAPPING_ENUM",
                           hint="fix the mapping's code list so it yields only the enum's symbols")
    if target.kind in ("int", "long") and isinstance(value, int):
        limit = 2**31 if target.kind == "int" else 2**63
        if not -limit <= value < limit:
            raise DataRuleViolation("INTEGER_RANGE", f"{value} is out of range for {target.kind}")
    return value


Converter = Callable[[str, EvalContext], Any]


def _converter(transforms: list[CompiledTransform], target: TargetType, where: str) -> Converter:
    """One callable per field: its transforms, then the fit to the target type (fused where common)."""
    fns = [t.fn for t in transforms]
    coerce = target.kind in ("decimal", "enum", "int", "long")
    if len(fns) == 1 and not coerce:
        return fns[0]
    if len(fns) == 1 and target.kind == "decimal":
        only, coerce_decimal = fns[0], _decimal_coercer(target)
        if transforms[0].name == "decimal":  # the plain decimal transform, fused: one call per value
            def plain_decimal_field(text: str, _ev: EvalContext) -> Any:
                return coerce_decimal(to_decimal(text))
            return plain_decimal_field

        def decimal_field(text: str, ev: EvalContext) -> Any:
            value = only(text, ev)
            return None if value is None else coerce_decimal(value)
        return decimal_field

    def chain(text: str, ev: EvalContext) -> Any:
        value: Any = text
        for fn in fns:
            if value is None:
                return None
            value = fn(value, ev)
        return value if value is None or not coerce else _coerce(value, target, where)
    return chain


class _ValueNode(_Node):
    def __init__(self, name: str, line: int, *, where: str, getters: list[Getter], join: str | None, many: bool,
                 transforms: list[CompiledTransform], default: Any, target: TargetType) -> None:
        self.name, self.line, self.where = name, line, where
        self.getters, self.join, self.many = getters, join, many
        self.transforms, self.default, self.target = transforms, default, target
        self.item_target = target.items if many and target.items is not None else target
        self.needs_coerce = self.item_target.kind in ("decimal", "enum", "int", "long")
        self.convert: Converter = _converter(transforms, self.item_target, where)
        # the most common field: text copied with surrounding whitespace removed (no transform call)
        self.strip_only = len(transforms) == 1 and transforms[0].name == "strip" and not self.needs_coerce
        self.child_tag = getters[0].child_tag if len(getters) == 1 and not many else None
        self.optional = default is None and target.nullable  # absent -> None, no call needed

    def locate(self, element: etree._Element, ctx: _Ctx) -> etree._Element:
        """The element a failure of this field is reported at: its (first) source, else the context."""
        found = self.getters[0].elements(element, ctx.root) if self.getters else []
        return found[0] if found else element

    def _convert(self, text: str, element: etree._Element, ctx: _Ctx, at: etree._Element | None = None) -> Any:
        """The converted value, or ``_FAILED`` after noting a data-rule failure in ``ctx``."""
        try:
            return self.convert(text, ctx.eval)
        except DataRuleViolation as exc:
            ctx.problem(at if at is not None else self.locate(element, ctx), exc.code, exc.message)
            return _FAILED

    def missing(self) -> Any:
        if self.default is not None:
            return self.default
        if not self.target.nullable:
            raise MappingError(f"{self.where}: required field {self.name!r} has no value in the document",
                               code="MAPPING_REQUIRED_MISSING",
                               hint="the XSD allows the source to be absent; give the mapping a default "
                               "or make the source mandatory")
        return None

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        if self.child_tag is not None:
            found = index.get(self.child_tag)
            text = found.text or None if found is not None else None
        elif self.many:
            getter = self.getters[0]
            if getter.simple:  # convert element by element, so a failure names the very element
                pairs = [(e.text, e) for e in getter.elements(element, ctx.root) if e.text]
                values = [self._convert(t, element, ctx, e) for t, e in pairs]
            else:
                values = [self._convert(t, element, ctx) for t in getter.texts(element, ctx.root)]
            return [v for v in values if v is not None and v is not _FAILED]
        elif self.join is not None:
            cache = ctx.eval.cache
            parts = [g.text_in(element, ctx.root, index, cache) for g in self.getters]
            text = self.join.join(p.strip() for p in parts if p and p.strip()) or None
        else:
            text = self.getters[0].text_in(element, ctx.root, index, ctx.eval.cache)
        value = self._convert(text, element, ctx) if text is not None else None
        if value is _FAILED:  # noted in ctx; the document is rejected when the mapping ends
            return None
        return self.missing() if value is None else value


class _ConstNode(_Node):
    def __init__(self, name: str, line: int, value: Any) -> None:
        self.name, self.line, self.value = name, line, value

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        return self.value


class _PositionNode(_Node):
    def __init__(self, name: str, line: int) -> None:
        self.name, self.line = name, line

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        return position


class _AnyNode(_Node):
    def __init__(self, name: str, line: int, parts: list[_Node]) -> None:
        self.name, self.line, self.parts = name, line, parts

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        return any(bool(p.evaluate(element, ctx, position, index)) for p in self.parts)


_AGGREGATES: dict[str, Callable[[list[Any]], Any]] = {
    "any": lambda xs: any(bool(x) for x in xs),
    "all": lambda xs: all(bool(x) for x in xs),
    "count": len,
    "sum": lambda xs: sum((x for x in xs if x is not None), Decimal(0)),
}


class _AggregateNode(_Node):
    """Computed from sibling fields already mapped: ``of: goods.perishable``."""

    def __init__(self, name: str, line: int, op: str, path: list[str]) -> None:
        self.name, self.line, self.op, self.path = name, line, op, path

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        raise AssertionError("aggregates are evaluated by their record")

    def compute(self, record: Mapping[str, Any]) -> Any:
        values: list[Any] = [record]
        for step in self.path:
            nxt: list[Any] = []
            for v in values:
                item = v.get(step) if isinstance(v, Mapping) else None
                if isinstance(item, list):
                    nxt.extend(item)
                elif item is not None:
                    nxt.append(item)
            values = nxt
        return _AGGREGATES[self.op](values)


class _RecordNode(_Node):
    def __init__(self, name: str, line: int, *, at: Getter | None, each: Getter | None,
                 fields: dict[str, _Node], target: TargetType) -> None:
        self.name, self.line, self.at, self.each, self.target = name, line, at, each, target
        self.plain = [(k, n) for k, n in fields.items() if not isinstance(n, _AggregateNode)]
        # single-child-step value fields are read straight from the per-record child index
        self.fast = [(k, n, n.child_tag) for k, n in self.plain if isinstance(n, _ValueNode) and n.child_tag]
        self.slow = [(k, n) for k, n in self.plain if not (isinstance(n, _ValueNode) and n.child_tag)]
        self.aggregates = [(k, n) for k, n in fields.items() if isinstance(n, _AggregateNode)]

    def _one(self, element: etree._Element, ctx: _Ctx, position: int) -> dict[str, Any]:
        ev = ctx.eval
        outer, outer_index = ev.element, ev.index
        index = _index(element)
        ev.element, ev.index = element, index
        record: dict[str, Any] = {}
        for key, node, tag in self.fast:
            found = index.get(tag)
            text = found.text if found is not None else None
            if not text:
                value = None
            elif node.strip_only:
                value = text.strip()
            else:
                try:  # free in 3.11 unless it raises
                    value = node.convert(text, ev)
                except DataRuleViolation as exc:
                    ctx.problem(found, exc.code, exc.message)
                    record[key] = None
                    continue
            record[key] = value if value is not None or node.optional else node.missing()
        for key, other in self.slow:
            record[key] = other.evaluate(element, ctx, position, index)
        for key, agg in self.aggregates:
            record[key] = agg.compute(record)
        ev.element, ev.index = outer, outer_index
        return record

    def evaluate(self, element: etree._Element, ctx: _Ctx, position: int, index: Index) -> Any:
        if self.each is not None:
            return [self._one(e, ctx, i) for i, e in enumerate(self.each.elements(element, ctx.root), start=1)]
        if self.at is not None:
            found = self.at.elements(element, ctx.root)
            if not found:
                if self.target.nullable:
                    return None
                raise MappingError(f"record {self.name!r}: nothing at {self.at.expr!r}",
                                   code="MAPPING_REQUIRED_MISSING")
            element = found[0]
        return self._one(element, ctx, position)


@dataclass(frozen=True)
class CompiledMapping:
    """A loaded, checked mapping: ``apply(root)`` turns a validated document into an Avro-ready record."""

    path: Path
    document_type: str
    root_namespace: str
    root_element: str
    xsd: str
    schema_name: str
    schema_version: int
    outputs: Mapping[str, str | _Node]
    """Values the gateway needs beside the record: a top-level field name, or a source spec."""
    _node: _RecordNode

    @property
    def root_tag(self) -> str:
        return f"{{{self.root_namespace}}}{self.root_element}"

    def apply(self, root: etree._Element, *, source: str = "<bytes>",
              max_errors: int = DEFAULT_LIMITS.max_errors) -> dict[str, Any]:
        """The record of a validated document.

        Raises DocumentRejectedError listing every data-rule failure in document order (at most
        ``max_errors``, then ``TOO_MANY_ERRORS``), or MappingError when the mapping itself cannot go on;
        a MappingError met after data-rule failures yields the rejection of those (as if checking had
        stopped there), so a sender's error found first is still reported as the sender's.
        """
        ctx = _Ctx(root=root, source=source, max_errors=max_errors)
        try:
            result = self._node.evaluate(root, ctx, 1, {})
        except _TooManyErrors:
            raise ctx.rejection(truncated=True) from None
        except GatewayError as exc:
            if ctx.problems:
                raise ctx.rejection() from exc
            raise
        except (ValueError, TypeError, ArithmeticError) as exc:  # a transform met data it cannot handle
            if ctx.problems:
                raise ctx.rejection() from exc
            raise MappingError(f"{self.path.name}: cannot map document: {exc}", code="MAPPING_FAILED") from exc
        if ctx.problems:
            raise ctx.rejection()
        if not isinstance(result, dict):  # pragma: no cover - the root node always yields a record
            raise MappingError(f"{self.path.name}: mapping did not yield a record", code="MAPPING_FAILED")
        return result

    def source_of(self, field_name: str) -> str | None:
        """The source path of a top-level field mapped from one path (None for other kinds)."""
        for key, node in self._node.plain:
            if key == field_name and isinstance(node, _ValueNode) and len(node.getters) == 1:
                return node.getters[0].expr
        return None

    def output_values(self, record: Mapping[str, Any], root: etree._Element, *,
                      source: str = "<bytes>") -> dict[str, Any]:
        """The ``outputs`` of the mapping for one document (e.g. business_key, perishable); data-rule
        failures of outputs with a source of their own are collected and raised like ``apply``'s."""
        if all(isinstance(spec, str) for spec in self.outputs.values()):  # fields of the record only
            return {name: record.get(spec) for name, spec in self.outputs.items()}  # type: ignore[arg-type]
        ctx = _Ctx(root=root, source=source)
        index = _index(root)
        ctx.eval.index = index
        try:
            values = {name: record.get(spec) if isinstance(spec, str) else spec.evaluate(root, ctx, 1, index)
                      for name, spec in self.outputs.items()}
        except _TooManyErrors:
            raise ctx.rejection(truncated=True) from None
        if ctx.problems:
            raise ctx.rejection()
        return values


# ---- compilation ----------------------------------------------------------------------------------
def _check_output_kind(kind: str, target: TargetType, name: str, line: int) -> None:
    if target.kind not in _KIND_OK.get(kind, set()):
        raise _DefinitionProblem(f"field {name!r}: the mapping yields {kind} but the schema wants "
                                 f"{target.describe()}", line)


@dataclass(frozen=True)
class _FieldCtx:
    name: str
    spec: LineDict
    target: TargetType
    ns: Mapping[str, str]
    line: int
    where: str

    def problem(self, message: str, line: int | None = None) -> _DefinitionProblem:
        return _DefinitionProblem(f"field {self.name!r}: {message}", line or self.line)


def _compile_field(name: str, spec: Any, target: TargetType, ns: Mapping[str, str], line: int, *,
                   where: str) -> _Node:
    if isinstance(spec, str):  # shorthand: a bare path
        shorthand = LineDict(xpath=spec)
        shorthand.line, shorthand.key_lines = line, {}
        spec = shorthand
    if not isinstance(spec, LineDict):
        raise _DefinitionProblem(f"field {name!r}: expected a path or a mapping, got {spec!r}", line)
    unknown = set(spec) - _FIELD_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise _DefinitionProblem(f"field {name!r}: unknown key(s) {', '.join(sorted(unknown))}", spec.line_of(first))
    kinds = [k for k in ("xpath", "const", "fields", "any", "aggregate", "position") if k in spec]
    if len(kinds) != 1:
        raise _DefinitionProblem(f"field {name!r}: give exactly one of xpath, const, fields (with each/at), any, "
                                 f"aggregate, position (found {kinds or 'none'})", spec.line)
    fc = _FieldCtx(name, spec, target, ns, spec.line, where)
    return _COMPILERS[kinds[0]](fc)


def _compile_const(fc: _FieldCtx) -> _Node:
    value, target = fc.spec["const"], fc.target
    if target.kind == "enum" and value not in target.symbols:
        raise fc.problem(f"{value!r} is not a symbol of {target.name}")
    ok = {"string": str, "enum": str, "boolean": bool, "int": int, "long": int}.get(target.kind)
    if value is None and not target.nullable:
        raise fc.problem("null constant for a non-null field")
    if value is not None and (ok is None or not isinstance(value, ok)):
        raise fc.problem(f"constant {value!r} does not fit {target.describe()}")
    return _ConstNode(fc.name, fc.line, value)


def _compile_position(fc: _FieldCtx) -> _Node:
    if fc.target.kind not in ("int", "long"):
        raise fc.problem(f"position yields int, schema wants {fc.target.describe()}")
    return _PositionNode(fc.name, fc.line)


def _compile_any(fc: _FieldCtx) -> _Node:
    if fc.target.kind != "boolean":
        raise fc.problem(f"any yields boolean, schema wants {fc.target.describe()}")
    parts = fc.spec["any"]
    if not isinstance(parts, list) or not parts:
        raise fc.problem("any needs a list of boolean sources")
    bool_target = TargetType(kind="boolean", nullable=True)
    return _AnyNode(fc.name, fc.line, [_compile_field(fc.name, p, bool_target, fc.ns, fc.line, where=fc.where)
                                       for p in parts])


def _compile_aggregate(fc: _FieldCtx) -> _Node:
    op, of = fc.spec["aggregate"], fc.spec.get("of")
    if op not in _AGGREGATES:
        raise fc.problem(f"aggregate must be one of {', '.join(_AGGREGATES)}")
    if not isinstance(of, str) or not of:
        raise fc.problem("aggregate needs 'of: field.subfield'")
    out = {"any": "boolean", "all": "boolean", "count": "long", "sum": "decimal"}[op]
    if fc.target.kind != out and not (out == "long" and fc.target.kind == "int"):
        raise fc.problem(f"aggregate {op} yields {out}, schema wants {fc.target.describe()}")
    return _AggregateNode(fc.name, fc.line, op, of.split("."))


def _compile_fields(fc: _FieldCtx) -> _Node:
    target, spec = fc.target, fc.spec
    record_target = target.items if target.kind == "array" else target
    if record_target is None or record_target.kind != "record":
        raise fc.problem(f"'fields' maps a record, schema wants {target.describe()}")
    if target.kind == "array" and "each" not in spec:
        raise fc.problem("an array of records needs 'each: PATH'")
    if target.kind != "array" and "each" in spec:
        raise fc.problem(f"'each' yields an array, schema wants {target.describe()}")
    try:
        each = compile_path(spec["each"], fc.ns) if "each" in spec else None
        at = compile_path(spec["at"], fc.ns) if "at" in spec else None
    except ValueError as exc:
        raise fc.problem(str(exc)) from exc
    fields = _compile_record(spec["fields"], record_target, fc.ns, spec.line_of("fields"), fc.where)
    return _RecordNode(fc.name, fc.line, at=at, each=each, fields=fields, target=target)


def _compile_transforms(fc: _FieldCtx, item_target: TargetType) -> list[CompiledTransform]:
    raw = fc.spec.get("transform", [])
    if not isinstance(raw, list):
        raw = [raw]
    line = fc.spec.line_of("transform")
    transforms: list[CompiledTransform] = []
    kind_now = "string"
    for t in raw or ["strip"]:
        try:
            compiled = compile_transform(t, fc.ns, kind_now)
        except (ValueError, KeyError, MappingError) as exc:
            raise fc.problem(str(exc), line) from exc
        transforms.append(compiled)
        kind_now = compiled.out_kind
    _check_output_kind(kind_now, item_target, fc.name, line)
    values = transforms[-1].codelist_values
    if item_target.kind == "enum" and values is not None:
        stray = sorted(values - set(item_target.symbols))
        if stray:
            raise fc.problem(f"code list yields {stray}, not symbols of {item_target.name}", line)
    return transforms


def _compile_xpath(fc: _FieldCtx) -> _Node:
    target, spec = fc.target, fc.spec
    many = bool(spec.get("many", False))
    if many and target.kind != "array":
        raise fc.problem(f"'many' yields an array, schema wants {target.describe()}")
    if not many and target.kind == "array":
        raise fc.problem(f"schema wants {target.describe()}; add 'many: true'")
    item_target = target.items if many and target.items is not None else target
    sources = spec["xpath"] if isinstance(spec["xpath"], list) else [spec["xpath"]]
    join = spec.get("join")
    if len(sources) > 1 and join is None:
        raise fc.problem("several paths need 'join: SEPARATOR'")
    if many and len(sources) > 1:
        raise fc.problem("'many' takes one path")
    try:
        getters = [compile_path(s, fc.ns) for s in sources]
    except ValueError as exc:
        raise fc.problem(str(exc), spec.line_of("xpath")) from exc
    transforms = _compile_transforms(fc, item_target)
    default = spec.get("default")
    if default is not None:
        if item_target.kind == "decimal":
            default = Decimal(str(default))
        elif item_target.kind == "timestamp":
            raise fc.problem("timestamps take no default")
    return _ValueNode(fc.name, fc.line, where=f"{fc.where}:{fc.line}", getters=getters,
                      join=join if len(sources) > 1 else None, many=many, transforms=transforms, default=default,
                      target=target)


_COMPILERS: dict[str, Callable[[_FieldCtx], _Node]] = {
    "const": _compile_const,
    "position": _compile_position,
    "any": _compile_any,
    "aggregate": _compile_aggregate,
    "fields": _compile_fields,
    "xpath": _compile_xpath,
}


def _compile_record(spec: Any, target: TargetType, ns: Mapping[str, str], line: int,
                    where: str) -> dict[str, _Node]:
    if not isinstance(spec, LineDict):
        raise _DefinitionProblem("'fields' must be a mapping of target field -> source", line)
    nodes: dict[str, _Node] = {}
    for key, value in spec.items():
        field_target = target.fields.get(key)
        if field_target is None:
            raise _DefinitionProblem(f"unknown target field {key!r} (record {target.name} has: "
                                     f"{', '.join(target.fields)})", spec.line_of(key))
        nodes[key] = _compile_field(key, value, field_target, ns, spec.line_of(key), where=where)
    for key, field_target in target.fields.items():
        if key not in nodes and not field_target.has_default:
            raise _DefinitionProblem(f"target field {key!r} of {target.name} is required (no default) but not mapped",
                                     line)
    for key, node in nodes.items():
        if isinstance(node, _AggregateNode) and node.path[0] not in nodes:
            raise _DefinitionProblem(f"field {key!r}: aggregate over unmapped field {node.path[0]!r}", node.line)
    return nodes


def _compile_outputs(outputs: Mapping[str, Any], doc: LineDict, target: TargetType, ns: Mapping[str, str],
                     where: str) -> dict[str, str | _Node]:
    compiled_outputs: dict[str, str | _Node] = {}
    for out_name, out_spec in outputs.items():
        out_type = _OUTPUT_TYPES.get(out_name)
        line = outputs.line_of(out_name) if isinstance(outputs, LineDict) else doc.line_of("outputs")
        if out_type is None:
            raise _DefinitionProblem(f"unknown output {out_name!r} (known: {', '.join(_OUTPUT_TYPES)})", line)
        if isinstance(out_spec, str) and out_spec in target.fields:
            have = target.fields[out_spec]
            if (have.kind, have.items.kind if have.items else None) != \
                    (out_type.kind, out_type.items.kind if out_type.items else None):
                raise _DefinitionProblem(f"output {out_name!r} wants {out_type.describe()}, field "
                                         f"{out_spec!r} is {have.describe()}", line)
            compiled_outputs[out_name] = out_spec
        elif isinstance(out_spec, LineDict):
            compiled_outputs[out_name] = _compile_field(out_name, out_spec, out_type, ns, line, where=where)
        else:
            raise _DefinitionProblem(f"output {out_name!r} names unknown field {out_spec!r}", line)
    return compiled_outputs


def compile_mapping(text: str, path: Path) -> CompiledMapping:
    """Compile mapping ``text`` (the content of ``path``); raises MappingDefinitionError naming file:line."""
    where = str(path)
    try:
        doc = load_yaml(text)
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise MappingDefinitionError(f"{where}:{line}: not valid YAML: {exc}", hint="fix the YAML syntax") from exc
    try:
        if not isinstance(doc, LineDict):
            raise _DefinitionProblem("a mapping file is a YAML mapping", 1)
        unknown = set(doc) - _TOP_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise _DefinitionProblem(f"unknown top-level key {key!r}", doc.line_of(key))
        for key in ("document_type", "root", "xsd", "schema", "fields"):
            if key not in doc:
                raise _DefinitionProblem(f"missing top-level key {key!r}", doc.line)
        ns = doc.get("namespaces") or {}
        if not isinstance(ns, Mapping) or not all(isinstance(v, str) for v in ns.values()):
            raise _DefinitionProblem("'namespaces' maps prefixes to namespace URIs", doc.line_of("namespaces"))
        root = doc["root"]
        if not isinstance(root, Mapping) or not {"namespace", "element"} <= set(root):
            raise _DefinitionProblem("'root' needs 'namespace' and 'element'", doc.line_of("root"))
        version = doc.get("schema_version")
        try:
            info = schema_info(str(doc["schema"]), int(version) if version is not None else None)
        except GatewayError as exc:
            raise _DefinitionProblem(str(exc), doc.line_of("schema")) from exc
        target = target_of(info.raw)
        fields = _compile_record(doc["fields"], target, ns, doc.line_of("fields"), where)
        node = _RecordNode("<root>", doc.line, at=None, each=None, fields=fields, target=target)
        outputs = doc.get("outputs") or {}
        if not isinstance(outputs, Mapping):
            raise _DefinitionProblem("'outputs' maps names to top-level fields", doc.line_of("outputs"))
        compiled_outputs = _compile_outputs(outputs, doc, target, ns, where)
        return CompiledMapping(path=path, document_type=str(doc["document_type"]),
                               root_namespace=str(root["namespace"]), root_element=str(root["element"]),
                               xsd=str(doc["xsd"]), schema_name=info.name, schema_version=info.version,
                               outputs=compiled_outputs, _node=node)
    except _DefinitionProblem as exc:
        raise MappingDefinitionError(f"{where}:{exc.line}: {exc}",
                                     hint="fix the mapping file (docs/documents.md describes the language)") from exc


def load_mapping(path: Path) -> CompiledMapping:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingDefinitionError(f"{path}: cannot read mapping: {exc}") from exc
    return compile_mapping(text, path)


