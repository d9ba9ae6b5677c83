"""Field paths and field sets, the vocabulary of server-side apply.

A *path* is a tuple of elements, each one of::

    ("f", "name")                 a field of a map/struct          -> "f:name"
    ("k", '{"name":"nginx"}')     an item of an associative list   -> 'k:{"name":"nginx"}'
    ("v", '"finalizer.x"')        a value of a set-like list       -> 'v:"finalizer.x"'

A *field set* is a ``set`` of such paths. :func:`to_fields_v1` and
:func:`from_fields_v1` convert to and from the ``fieldsV1`` format stored in
``metadata.managedFields`` (``{"f:spec": {"f:replicas": {}}}``, with ``".": {}``
marking a node that is itself a member and also has members below it).

Which lists are associative (and by which keys), which are sets, and which maps
are "granular" rather than structs comes from :class:`Schema` — a small table
standing in for the OpenAPI ``x-kubernetes-list-type``/``patchMergeKey`` markers.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

Path = tuple[tuple[str, str], ...]
_MISSING = object()

# Associative lists of the built-in types: field name -> (keys, defaults for keys).
# Taken from the Kubernetes OpenAPI (x-kubernetes-list-map-keys / patchMergeKey).
_LIST_MAP_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
}
_KEY_DEFAULTS = {"protocol": "TCP"}
# Set-like lists (x-kubernetes-list-type: set / patchStrategy merge of scalars).
_SET_LISTS = {"finalizers"}
# Maps whose keys are data ("granular maps"), as opposed to structs with fixed fields.
_GRANULAR_MAPS = {"labels", "annotations", "data", "binaryData", "stringData", "nodeSelector",
                  "matchLabels", "limits", "requests", "capacity", "allocatable", "hard", "used"}
# Structs marked +structType=atomic / maps marked +mapType=atomic.
_ATOMIC_MAPS = {"selector"}  # metav1.LabelSelector (Service spec.selector is special-cased)


class Schema:
    """List/map typing for one resource type.

    ``builtin=True`` uses the table of Kubernetes' built-in types anywhere in the object;
    for custom resources only ``metadata`` follows it, and the CRD's openAPIV3Schema
    ``x-kubernetes-list-type``/``x-kubernetes-list-map-keys``/``x-kubernetes-map-type``
    markers are honoured; other lists are atomic, as the real server treats them.
    """

    def __init__(self, *, builtin: bool = True, openapi: dict[str, Any] | None = None):
        self.builtin = builtin
        self.openapi = openapi

    def _crd_node(self, path: Path) -> dict[str, Any] | None:
        node = self.openapi
        for kind, name in path:
            if node is None:
                return None
            if kind == "f":
                props = node.get("properties") or {}
                if name in props:
                    node = props[name]
                elif isinstance(node.get("additionalProperties"), dict):
                    node = node["additionalProperties"]
                else:
                    return None
            else:
                node = node.get("items")
        return node

    def _builtin_here(self, path: Path) -> bool:
        return self.builtin or (len(path) >= 1 and path[0] == ("f", "metadata"))

    def list_type(self, path: Path, items: list[Any]) -> tuple[str, tuple[str, ...]]:
        """``("map", keys)``, ``("set", ())`` or ``("atomic", ())`` for the list at ``path``."""
        name = path[-1][1] if path and path[-1][0] == "f" else ""
        if self._builtin_here(path):
            if name in _LIST_MAP_KEYS:
                return ("map", _LIST_MAP_KEYS[name])
            if name == "ports":
                if any(isinstance(i, dict) and "containerPort" in i for i in items):
                    return ("map", ("containerPort", "protocol"))
                if any(isinstance(i, dict) and "port" in i for i in items):
                    return ("map", ("port", "protocol"))
            if name in _SET_LISTS:
                return ("set", ())
            return ("atomic", ())
        node = self._crd_node(path) or {}
        lt = node.get("x-kubernetes-list-type")
        if lt == "map":
            return ("map", tuple(node.get("x-kubernetes-list-map-keys") or ()))
        if lt == "set":
            return ("set", ())
        return ("atomic", ())

    def map_type(self, path: Path, value: dict[str, Any]) -> str:
        """``"granular"`` (keys are data), ``"struct"`` or ``"atomic"`` for the map at ``path``."""
        name = path[-1][1] if path and path[-1][0] == "f" else ""
        if self._builtin_here(path):
            if name == "selector" and path[:2] == (("f", "spec"), ("f", "selector")) and \
                    not ({"matchLabels", "matchExpressions"} & set(value)):
                return "granular"  # Service.spec.selector is a map[string]string
            if name in _ATOMIC_MAPS:
                return "atomic"
            if name in _GRANULAR_MAPS:
                return "granular"
            return "struct"
        node = self._crd_node(path) or {}
        if node.get("x-kubernetes-map-type") == "atomic":
            return "atomic"
        if "additionalProperties" in node and "properties" not in node:
            return "granular"
        return "struct"


def item_key(item: Any, keys: tuple[str, ...]) -> str:
    """The JSON used in ``k:{...}`` for an associative-list item (keys sorted, defaults filled)."""
    if not isinstance(item, dict):
        return json.dumps(item, separators=(",", ":"))
    data = {}
    for k in keys:
        if k in item:
            data[k] = item[k]
        elif k in _KEY_DEFAULTS:
            data[k] = _KEY_DEFAULTS[k]
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def value_key(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# Paths never owned by anyone (reset by the server before field management).
IGNORED_TOP = {"apiVersion", "kind"}
IGNORED_METADATA = {"name", "namespace", "uid", "resourceVersion", "generation",
                    "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp",
                    "deletionGracePeriodSeconds"}


def field_set(obj: dict[str, Any], schema: Schema, *, granular_nodes: bool = False,
              skip_status: bool = False) -> set[Path]:
    """The set of paths present in ``obj``.

    With ``granular_nodes=False`` (how an *apply* configuration is turned into an
    ownership set) only leaves, list items and empty/atomic maps are members. With
    ``granular_nodes=True`` (used to diff objects for *update* operations) data maps
    such as ``labels`` are members too, which is why ``".": {}`` shows up under
    ``f:labels`` for update managers on a real server.
    """
    out: set[Path] = set()

    def walk(path: Path, value: Any) -> None:
        if isinstance(value, dict):
            mt = schema.map_type(path, value)
            if not value or mt == "atomic":
                out.add(path)
                return
            if granular_nodes and mt == "granular":
                out.add(path)
            for k, v in value.items():
                walk(path + (("f", k),), v)
        elif isinstance(value, list):
            lt, keys = schema.list_type(path, value)
            if lt == "atomic" or not value:
                out.add(path)
            elif lt == "set":
                for v in value:
                    out.add(path + (("v", value_key(v)),))
            else:
                for item in value:
                    ip = path + (("k", item_key(item, keys)),)
                    out.add(ip)
                    if isinstance(item, dict):
                        for k, v in item.items():
                            walk(ip + (("f", k),), v)
        else:
            out.add(path)

    for key, value in obj.items():
        if key in IGNORED_TOP or (skip_status and key == "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in IGNORED_METADATA}
            for k, v in meta.items():
                walk((("f", "metadata"), ("f", k)), v)
            continue
        walk((("f", key),), value)
    return out


def get_at(obj: Any, path: Path, schema: Schema) -> Any:
    """The value at ``path`` in ``obj`` (``_MISSING`` when absent)."""
    cur = obj
    walked: Path = ()
    for kind, name in path:
        if kind == "f":
            if not isinstance(cur, dict) or name not in cur:
                return _MISSING
            cur = cur[name]
        else:
            if not isinstance(cur, list):
                return _MISSING
            cur = _find_item(cur, kind, name, walked, schema)
            if cur is _MISSING:
                return _MISSING
        walked = walked + ((kind, name),)
    return cur


def _find_item(items: list[Any], kind: str, name: str, path: Path, schema: Schema) -> Any:
    if kind == "v":
        for v in items:
            if value_key(v) == name:
                return v
        return _MISSING
    _, keys = schema.list_type(path, items)
    for item in items:
        if item_key(item, keys) == name:
            return item
    return _MISSING


def remove_at(obj: Any, path: Path, schema: Schema) -> bool:
    """Remove the field/item at ``path``; then drop maps and lists left empty by it."""
    if not path:
        return False
    parent = get_at(obj, path[:-1], schema)
    kind, name = path[-1]
    removed = False
    if kind == "f" and isinstance(parent, dict) and name in parent:
        del parent[name]
        removed = True
    elif kind in ("k", "v") and isinstance(parent, list):
        item = _find_item(parent, kind, name, path[:-1], schema)
        if item is not _MISSING:
            parent.remove(item)
            removed = True
    if removed and len(path) > 2 and parent in ({}, []) and path[-2][0] == "f":
        remove_at(obj, path[:-1], schema)
    return removed


def is_missing(value: Any) -> bool:
    return value is _MISSING


def has_prefix(path: Path, prefix: Path) -> bool:
    return path[: len(prefix)] == prefix


def _elem_str(el: tuple[str, str]) -> str:
    return f"{el[0]}:{el[1]}"


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a field set as ``fieldsV1``."""
    root: dict[str, Any] = {}
    members: set[Path] = set(paths)
    for path in sorted(members):
        node = root
        for el in path:
            node = node.setdefault(_elem_str(el), {})
    # A member that also has children carries ".": {}.
    for path in members:
        node = root
        for el in path:
            node = node[_elem_str(el)]
        if node and "." not in node:
            node["."] = {}
    return _sorted(root)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    # The real server writes "." first, then keys in sorted order.
    keys = sorted(node, key=lambda k: (k != ".", k))
    return {k: _sorted(node[k]) for k in keys}


def from_fields_v1(fields: dict[str, Any]) -> set[Path]:
    """Decode ``fieldsV1`` into a field set."""
    out: set[Path] = set()

    def walk(prefix: Path, node: dict[str, Any]) -> None:
        for key, child in node.items():
            if key == ".":
                out.add(prefix)
                continue
            kind, _, name = key.partition(":")
            path = prefix + ((kind, name),)
            if not child:
                out.add(path)
            else:
                walk(path, child)

    walk((), fields or {})
    return out


def path_string(path: Path) -> str:
    """Human form used in conflict messages: ``.spec.template.spec.containers[name="app"].image``."""
    out = ""
    for kind, name in path:
        if kind == "f":
            out += "." + name
        elif kind == "k":
            data = json.loads(name)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in data.items()) + "]"
        elif kind == "v":
            out += f"[={name}]"
        else:
            out += f"[{name}]"
    return out
