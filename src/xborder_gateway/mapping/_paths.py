"""Source paths of a mapping: fast ElementPath lookups for simple paths, compiled XPath for the rest."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from lxml import etree

__all__ = ["Getter", "compile_path"]

_STEP = r"(?:\.\.|\.|[A-Za-z_][\w.-]*:[A-Za-z_][\w.-]*|[A-Za-z_][\w.-]*)"
_SIMPLE = re.compile(rf"^/?{_STEP}(?:/{_STEP})*$")


class Getter:
    """Finds the text (or the elements) a path names, relative to a context element."""

    def __init__(self, expr: str, namespaces: Mapping[str, str]) -> None:
        self.expr = expr
        self._ns = dict(namespaces)
        self._absolute = expr.startswith("/")
        self._simple = bool(_SIMPLE.match(expr))
        self.simple = self._simple
        """True for an ElementPath-style path (child steps, ``..``), False for a general XPath."""
        self._root_tag: str | None = None
        self._rest: str | None = None
        self._steps: list[str] = []
        self._local = threading.local()
        self.child_tag: str | None = None
        """Set when the path is one child step (``v:ICN``): the engine then reads a per-record index."""
        if self._simple:
            steps = [self._clark(s) for s in expr.lstrip("/").split("/")]
            if self._absolute:
                self._root_tag = steps[0]
                self._rest = "/".join(steps[1:]) or None
                self._steps = steps[1:]
            else:
                self._rest = "/".join(steps)
                self._steps = steps
                if len(steps) == 1 and steps[0] not in (".", ".."):
                    self.child_tag = steps[0]
        else:
            etree.XPath(expr, namespaces=self._ns)  # compile now: a bad expression fails at load time

    def _clark(self, step: str) -> str:
        if ":" in step:
            prefix, local = step.split(":", 1)
            if prefix not in self._ns:
                raise ValueError(f"namespace prefix {prefix!r} is not declared in 'namespaces'")
            return f"{{{self._ns[prefix]}}}{local}"
        return step

    def _xpath(self) -> etree.XPath:
        xp: etree.XPath | None = getattr(self._local, "xp", None)
        if xp is None:  # one compiled evaluator per thread
            xp = etree.XPath(self.expr, namespaces=self._ns, smart_strings=False)
            self._local.xp = xp
        return xp

    def _start(self, element: etree._Element, root: etree._Element) -> etree._Element | None:
        if self._absolute:
            return root if root.tag == self._root_tag else None
        return element

    def _walk(self, start: etree._Element) -> Iterator[etree._Element]:
        """Every match of the child steps below ``start``, in document order (C-level iterchildren)."""
        frontier: Iterable[etree._Element] = (start,)
        for step in self._steps:
            if step == ".":
                continue
            if step == "..":
                frontier = [p for p in (n.getparent() for n in frontier) if p is not None]
            else:
                frontier = [c for n in frontier for c in n.iterchildren(step)]
        return iter(frontier)

    def elements(self, element: etree._Element, root: etree._Element) -> list[etree._Element]:
        if self._simple:
            start = self._start(element, root)
            if start is None:
                return []
            return list(self._walk(start))
        result = self._xpath()(element)
        return [r for r in result if isinstance(r, etree._Element)] if isinstance(result, list) else []

    def text(self, element: etree._Element, root: etree._Element) -> str | None:
        """The text of the first match; None when nothing matches or the element is empty."""
        if self._simple:
            start = self._start(element, root)
            if start is None:
                return None
            first = next(self._walk(start), None)
            value = first.text if first is not None else None
            return value or None
        result: Any = self._xpath()(element)
        if isinstance(result, list):
            if not result:
                return None
            first = result[0]
            value = first.text if isinstance(first, etree._Element) else str(first)
            return value or None
        if isinstance(result, bool):
            return "1" if result else None
        return str(result) if result not in ("", None) else None

    def text_in(self, element: etree._Element, root: etree._Element, index: Mapping[Any, etree._Element] | None,
                cache: dict[Getter, str | None]) -> str | None:
        """:meth:`text`, read where it is cheaper: a one-step path from ``index`` (the first child of
        ``element`` per tag, as the engine builds it), an absolute ElementPath from ``cache`` (one document's
        values: such a path names the same element whatever the context, e.g. the invoice currency read by
        every goods line). ``index`` None: ``element`` is not indexed."""
        tag = self.child_tag
        if tag is not None and index is not None:
            found = index.get(tag)
            return (found.text or None) if found is not None else None
        if self._absolute and self._simple:
            try:
                return cache[self]
            except KeyError:
                value = cache[self] = self.text(element, root)
                return value
        return self.text(element, root)

    def texts(self, element: etree._Element, root: etree._Element) -> list[str]:
        """The text of every match (empty elements skipped)."""
        if self._simple:
            return [e.text for e in self.elements(element, root) if e.text]
        result: Any = self._xpath()(element)
        if not isinstance(result, list):
            return [str(result)] if result not in ("", None) else []
        out = []
        for r in result:
            value = r.text if isinstance(r, etree._Element) else str(r)
            if value:
                out.append(value)
        return out


def compile_path(expr: Any, namespaces: Mapping[str, str]) -> Getter:
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"a path must be a non-empty string, got {expr!r}")
    try:
        return Getter(expr.strip(), namespaces)
    except etree.XPathSyntaxError as exc:
        raise ValueError(f"invalid XPath {expr!r}: {exc}") from exc
