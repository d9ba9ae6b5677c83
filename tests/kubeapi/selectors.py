"""Label and field selectors, as accepted by ``?labelSelector=`` and ``?fieldSelector=``.

Label selector grammar (the real one): comma-separated requirements, each
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``,
``key in (a,b)`` or ``key notin (a,b)``. Field selectors support
``metadata.name`` and ``metadata.namespace`` with ``=``, ``==`` and ``!=``
(plus ``status.phase``/``spec.nodeName`` style paths for convenience).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Predicate:
    """Return a predicate over an object's ``metadata.labels``; 400 on bad syntax."""
    if not text:
        return lambda obj: True
    reqs: list[Predicate] = []
    for raw in _split_requirements(text):
        if m := _SET_RE.match(raw):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                reqs.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                reqs.append(lambda labels, k=key, vs=values: k not in labels or labels[k] not in vs)
        elif m := _EQ_RE.match(raw):
            key, op, value = m.groups()
            if op == "!=":
                reqs.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                reqs.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif m := _EXISTS_RE.match(raw):
            neg, key = m.groups()
            if neg:
                reqs.append(lambda labels, k=key: k not in labels)
            else:
                reqs.append(lambda labels, k=key: k in labels)
        else:
            raise bad_request(f'unable to parse requirement: found \'{raw.strip()}\', '
                              f'expected: in, notin, =, ==, !=, gt, lt')

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


SUPPORTED_FIELDS = {"metadata.name", "metadata.namespace"}
# Fields some kinds also accept on a real server (kept permissive here).
EXTRA_FIELDS = {"status.phase", "spec.nodeName", "type", "involvedObject.name"}


def parse_field_selector(text: str | None, kind: str = "") -> Predicate:
    """Return a predicate for ``metadata.name=x,metadata.namespace!=y``; 400 when unsupported."""
    if not text:
        return lambda obj: True
    reqs: list[Predicate] = []
    for raw in _split_requirements(text):
        m = _EQ_RE.match(raw)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        path, op, value = m.groups()
        if path not in SUPPORTED_FIELDS | EXTRA_FIELDS:
            raise bad_request(f'field label not supported: {path}')
        if op == "!=":
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(r(obj) for r in reqs)
