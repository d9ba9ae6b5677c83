"""Merging objects: apply configurations, JSON merge patch, strategic merge patch, JSON patch.

* :func:`apply_merge` — how server-side apply folds an apply configuration into the
  live object (maps merge, associative lists merge by key, sets union, atomic lists
  are replaced). Removal of fields the manager stopped applying happens afterwards,
  in :mod:`tests.kubeapi.managed`.
* :func:`json_merge_patch` — RFC 7386 (``application/merge-patch+json``).
* :func:`strategic_merge_patch` — ``application/strategic-merge-patch+json`` as kubectl
  sends it: lists with a merge key merge by that key, ``$patch: delete|replace``,
  ``$retainKeys``, ``$deleteFromPrimitiveList/…`` and ``$setElementOrder/…`` directives.
* :func:`json_patch` — RFC 6902 (``application/json-patch+json``).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError
from .fieldpath import Path, Schema, item_key, value_key


def apply_merge(live: Any, config: Any, schema: Schema, path: Path = ()) -> Any:
    """Merge an apply configuration into ``live`` (both left untouched)."""
    if isinstance(config, dict) and isinstance(live, dict) and \
            (not path or schema.map_type(path, config) != "atomic"):
        out = copy.deepcopy(live)
        for k, v in config.items():
            if v is None:
                out.pop(k, None)
                continue
            out[k] = apply_merge(live.get(k), v, schema, path + (("f", k),))
        return out
    if isinstance(config, list) and isinstance(live, list):
        lt, keys = schema.list_type(path, config or live)
        if lt == "map":
            out = copy.deepcopy(live)
            index = {item_key(i, keys): n for n, i in enumerate(out)}
            for item in config:
                k = item_key(item, keys)
                if k in index:
                    out[index[k]] = apply_merge(out[index[k]], item, schema,
                                                path + (("k", k),))
                else:
                    index[k] = len(out)
                    out.append(copy.deepcopy(item))
            return out
        if lt == "set":
            out = copy.deepcopy(live)
            present = {value_key(v) for v in out}
            out += [copy.deepcopy(v) for v in config if value_key(v) not in present]
            return out
    return copy.deepcopy(config)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = json_merge_patch(out.get(k), v)
    return out


# Strategic merge patch keys (patchMergeKey) of lists in the built-in types.
def _smp_key(path: Path, items: list[Any], schema: Schema) -> str | None:
    lt, keys = schema.list_type(path, items)
    if lt == "map" and keys:
        return keys[0]
    return None


def strategic_merge_patch(target: Any, patch: Any, schema: Schema, path: Path = ()) -> Any:
    """Apply a strategic merge patch (the subset kubectl uses) to ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in copy.deepcopy(patch).items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        sub = path + (("f", k),)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge_patch(out.get(k), v, schema, sub)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _smp_list(out.get(k), v, schema, sub)
        else:
            out[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(live: Any, patch: list[Any], schema: Schema, path: Path) -> list[Any]:
    live = live if isinstance(live, list) else []
    name = path[-1][1]
    if name in ("finalizers",):  # patchStrategy=merge on a list of scalars
        return live + [v for v in patch if v not in live]
    key = _smp_key(path, patch or live, schema)
    if key is None:
        return [x for x in copy.deepcopy(patch) if not (isinstance(x, dict) and "$patch" in x)]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [i for i in copy.deepcopy(patch) if not (isinstance(i, dict) and "$patch" in i)]
    out = copy.deepcopy(live)
    for item in patch:
        if not isinstance(item, dict):
            continue
        idx = next((n for n, cur in enumerate(out)
                    if isinstance(cur, dict) and cur.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({k: v for k, v in copy.deepcopy(item).items() if k != "$patch"})
        else:
            out[idx] = strategic_merge_patch(out[idx], item, schema, path + (("k", str(idx)),))
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError("BadRequest", f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch; failures are 422 like the real server's."""
    doc = copy.deepcopy(target)

    def parent_of(parts: list[str]) -> tuple[Any, str]:
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]

    def get(parts: list[str]) -> Any:
        cur = doc
        for p in parts:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def add(parts: list[str], value: Any) -> None:
        nonlocal doc
        if not parts:
            doc = value
            return
        parent, last = parent_of(parts)
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), value)
        else:
            parent[last] = value

    def remove(parts: list[str]) -> Any:
        parent, last = parent_of(parts)
        return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)

    try:
        for op in ops:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "add":
                add(parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(parts)
            elif kind == "replace":
                get(parts)
                remove(parts) if parts else None
                add(parts, copy.deepcopy(op["value"]))
            elif kind == "move":
                value = remove(_pointer(op["from"]))
                add(parts, value)
            elif kind == "copy":
                add(parts, copy.deepcopy(get(_pointer(op["from"]))))
            elif kind == "test":
                if get(parts) != op["value"]:
                    raise ApiError("Invalid", f"the server rejected our request due to an error "
                                   f"in our request: test failed at {op['path']}", code=422)
            else:
                raise ApiError("BadRequest", f"unknown JSON patch operation {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError("Invalid", f"the server rejected our request due to an error in our "
                       f"request: {exc!r}", code=422) from exc
    return doc
