"""Canonical JSON and its SHA-256: the one spelling every hash in driftgate is taken over.

Sorted keys and no spaces, so that equal values give equal text whoever wrote
them. Used by the plan hash an approval is for (`driftgate.models.Plan`), the
record's row and change hashes (`driftgate.audit`), the checkpoints that sign
the chain's head (`driftgate.checkpoints`), the Kubernetes diff cache
(`driftgate.kubediff`) and the render cache key (`driftgate.render`: a key
that changes costs one render, nothing else).

A hash already stored or signed must keep its value, so each caller keeps the
spelling it was made with: ``ascii`` (``ensure_ascii``) and ``default`` (how
values JSON has no type for are written).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

COMPACT = (",", ":")


def canonical_json(
    value: Any,
    *,
    ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """``value`` as JSON with sorted keys, compact."""
    return json.dumps(value, sort_keys=True, separators=COMPACT, ensure_ascii=ascii, default=default)


def sha256_hex(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8), as 64 hex digits."""
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_hash(
    value: Any,
    *,
    ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """The SHA-256 of ``value``'s canonical JSON."""
    return sha256_hex(canonical_json(value, ascii=ascii, default=default))
