"""``metadata.managedFields``: who owns which field, and server-side apply on top of it.

Called by the server for every write:

* :func:`server_side_apply` for ``PATCH`` with ``application/apply-patch+yaml`` —
  merges the configuration, detects conflicts with other managers (409 unless
  ``force``), removes fields this manager applied before and no longer applies
  (unless another manager owns them), and records an ``operation: Apply`` entry.
* :func:`record_update` for create / PUT / merge and strategic patches — diffs old
  against new and records an ``operation: Update`` entry for the changed fields,
  taking them away from other managers, as the real field manager does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .fieldpath import (Path, Schema, field_set, from_fields_v1, get_at, has_prefix,
                        is_missing, path_string, remove_at, to_fields_v1)
from .merge import apply_merge

# Apply configurations may not carry these; the server owns them.
_SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp",
                    "generation", "selfLink", "deletionTimestamp")


@dataclass
class Entry:
    """One ``managedFields`` item."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)
    subresource: str = ""

    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_dict(self) -> dict[str, Any]:
        out = {"manager": self.manager, "operation": self.operation,
               "apiVersion": self.api_version, "time": self.time,
               "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode(obj: dict[str, Any] | None) -> list[Entry]:
    """Entries of ``obj``'s ``metadata.managedFields``."""
    out = []
    for mf in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        out.append(Entry(mf.get("manager", ""), mf.get("operation", "Update"),
                         mf.get("apiVersion", ""), mf.get("time", ""),
                         from_fields_v1(mf.get("fieldsV1") or {}), mf.get("subresource", "")))
    return out


def encode(obj: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    """Store ``entries`` (the non-empty ones) into ``obj``'s metadata."""
    kept = [e.to_dict() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)
    return obj


def _strip(obj: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(obj or {})
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def _is_leaf(path: Path, value: Any, schema: Schema) -> bool:
    if path and path[-1][0] in ("k", "v"):
        return False
    if isinstance(value, dict) and value and schema.map_type(path, value) != "atomic":
        return False
    return True


def server_side_apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str,
                      force: bool, schema: Schema, api_version: str, now: str,
                      ignore_status: bool) -> dict[str, Any]:
    """Apply ``config`` as ``manager`` over ``live`` (``None`` = create); return the new object.

    Raises a 409 ``Conflict`` Status naming each conflicting field and manager unless
    ``force`` is set, in which case ownership moves to ``manager``.
    """
    config = copy.deepcopy(config)
    for k in _SERVER_METADATA:
        (config.get("metadata") or {}).pop(k, None)
    if ignore_status:
        config.pop("status", None)
    base = _strip(live)
    entries = decode(live)
    applied = field_set(config, schema, skip_status=ignore_status)
    me = next((e for e in entries if e.identity() == (manager, "Apply", "")), None)

    conflicts: list[tuple[Entry, Path]] = []
    for e in entries:
        if e is me:
            continue
        for p in sorted(applied & e.fields):
            cur, want = get_at(base, p, schema), get_at(config, p, schema)
            if not is_missing(cur) and _is_leaf(p, want, schema) and cur != want:
                conflicts.append((e, p))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e, p in conflicts:
        e.fields.discard(p)

    merged = apply_merge(base, config, schema)
    if me is not None:
        others = set().union(*(e.fields for e in entries if e is not me))
        # Parents first: removing a list item takes its (unowned) children with it.
        for p in sorted(me.fields - applied, key=len):
            if any(has_prefix(q, p) for q in others):
                continue
            remove_at(merged, p, schema)
    if me is None:
        me = Entry(manager, "Apply", api_version, now)
        entries.append(me)
    elif me.fields != applied or me.api_version != api_version:
        me.time = now
    me.fields, me.api_version = applied, api_version
    return encode(merged, entries)


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    """The 409 a real server answers for apply conflicts (message and ``causes``)."""
    causes = []
    by_manager: dict[str, list[str]] = {}
    for e, p in conflicts:
        who = f'"{e.manager}"' + (f" using {e.api_version}" if e.api_version else "")
        causes.append({"type": "FieldManagerConflict", "message": f"conflict with {who}",
                       "field": path_string(p)})
        by_manager.setdefault(who, []).append(path_string(p))
    n = len(conflicts)
    if n == 1:
        (who, paths), = by_manager.items()
        text = f"conflict with {who}: {paths[0]}"
    else:
        text = "\n".join(f"conflicts with {who}:\n" + "\n".join(f"- {p}" for p in paths)
                         for who, paths in by_manager.items())
    return ApiError("Conflict", f"Apply failed with {n} conflict{'s' if n > 1 else ''}: {text}",
                    details={"causes": causes})


def record_update(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str,
                  schema: Schema, api_version: str, now: str, ignore_status: bool,
                  subresource: str = "") -> dict[str, Any]:
    """Record an ``operation: Update`` by ``manager`` turning ``old`` into ``new``.

    ``new`` may carry ``managedFields`` itself: identical to ``old``'s (the usual
    GET-modify-PUT) means "no opinion"; an empty list resets ownership; anything else
    replaces the entries, as on a real server.
    """
    new = copy.deepcopy(new)
    sent = (new.get("metadata") or {}).get("managedFields")
    old_mf = ((old or {}).get("metadata") or {}).get("managedFields")
    if sent is not None and sent != old_mf:
        entries = decode(new)
    else:
        entries = decode(old)
    result = _strip(new)
    before, after = _strip(old), result
    if subresource == "status":
        before, after = {"status": before.get("status", {})}, {"status": after.get("status", {})}
        ignore = False
    else:
        ignore = ignore_status
    old_set = field_set(before, schema, granular_nodes=True, skip_status=ignore)
    new_set = field_set(after, schema, granular_nodes=True, skip_status=ignore)
    added, removed = new_set - old_set, old_set - new_set
    modified = set()
    for p in new_set & old_set:
        cur = get_at(after, p, schema)
        if _is_leaf(p, cur, schema) and get_at(before, p, schema) != cur:
            modified.add(p)
    changed = added | modified
    me = next((e for e in entries if e.identity() == (manager, "Update", subresource)), None)
    for e in entries:
        if e is not me:
            e.fields -= modified | removed
    if changed:
        if me is None:
            me = Entry(manager, "Update", api_version, now, subresource=subresource)
            entries.append(me)
        me.fields = (me.fields | changed) - removed
        me.time, me.api_version = now, api_version
    elif me is not None:
        me.fields -= removed
    return encode(result, entries)
