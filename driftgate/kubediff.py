"""Comparing a desired object (as the server would make it) with the live one.

Pure functions, after gitops-engine's `Diff(config, live)`: `normalize()`
drops what the server owns (status, managedFields, resourceVersion, uid, ...),
`apply_ignore_rules()` removes fields the environment chose to ignore (JSON
paths, or every field a given field manager owns), `mask_secrets()` replaces
Secret values so a diff shows *that* a key changed, never its value, and
`object_diff()` says whether they differ (deepdiff) and renders a unified
diff. Called by `driftgate.kube`.
"""

from __future__ import annotations

import base64
import copy
import difflib
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import yaml
from deepdiff import DeepDiff

from driftgate.hashing import canonical_hash
from driftgate.jsonpath import split_path
from driftgate.kinds import kind_matches

if TYPE_CHECKING:
    from driftgate.targets.kubernetes import IgnoreRule

_SERVER_METADATA = (
    "managedFields", "resourceVersion", "uid", "generation", "creationTimestamp",
    "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
)  # fmt: skip
_SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",  # may hold Secret data in clear
    "deployment.kubernetes.io/revision",
)
MASK = "***"
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: ~5x faster for big plans


def normalize(obj: dict[str, Any]) -> dict[str, Any]:
    """Only what a person declares: no status, no server bookkeeping."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    metadata = out.get("metadata", {})
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations") or {}
    for key in _SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        metadata.pop("annotations", None)
    return out


def matching_rules(rules: list[IgnoreRule], api_version: str, kind: str, namespace: str, name: str) -> list[IgnoreRule]:
    """The ignore rules for one object (kind by group and kind: see `driftgate.kinds`)."""
    return [
        r for r in rules
        if kind_matches(r.kind, api_version, kind) and fnmatchcase(namespace, r.namespace) and fnmatchcase(name, r.name)
    ]  # fmt: skip


def apply_ignore_rules(obj: dict[str, Any], rules: list[IgnoreRule], live: dict[str, Any] | None) -> dict[str, Any]:
    """Drop ignored JSON paths and fields owned by ignored managers (read from live managedFields)."""
    out = copy.deepcopy(obj)
    for rule in rules:
        for path in rule.json_paths:
            _remove(out, split_path(path))
        if rule.managers and live:
            for entry in live.get("metadata", {}).get("managedFields") or []:
                if entry.get("manager") in rule.managers:
                    for path in _fields_v1_paths(entry.get("fieldsV1") or {}):
                        _remove(out, path)
    return out


def mask_secrets(desired: dict[str, Any], live: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Secret values replaced by markers, key by key, so a reviewer sees what
    changes and never a value: ``*** (new)`` for a key live does not have,
    ``*** (changed)``, ``***`` for an equal value, and ``*** (removed)`` on the
    live side for a key that goes. ``stringData`` keys (which the server folds
    into ``data``) count as ``data`` keys."""
    if desired.get("kind") != "Secret":
        return desired, live
    desired, live = copy.deepcopy(desired), copy.deepcopy(live)
    old = (live or {}).get("data") or {}
    new = {**(desired.get("data") or {}), **{k: _b64(v) for k, v in (desired.get("stringData") or {}).items()}}
    desired.pop("stringData", None)
    if new or "data" in desired:
        desired["data"] = {key: _key_marker(key, value, old) for key, value in new.items()}
    if live:
        live.pop("stringData", None)
        if old:
            live["data"] = {key: MASK if key in new else f"{MASK} (removed)" for key in old}
    return desired, live


def _key_marker(key: str, value: Any, old: dict[str, Any]) -> str:
    if key not in old:
        return f"{MASK} (new)"
    return MASK if old[key] == value else f"{MASK} (changed)"


def _b64(value: Any) -> str:
    return base64.b64encode(str(value).encode()).decode()


def changed_paths(desired: dict[str, Any], live: dict[str, Any] | None) -> list[str]:
    """The fields that differ, as dotted paths (``spec.replicas``, ``data.greeting``); empty if equal."""
    if live is None:
        return []
    paths = DeepDiff(live, desired, ignore_order=False).affected_paths
    return sorted({".".join(str(p) for p in _path_parts(path)) for path in paths})


def _path_parts(path: str) -> list[str]:
    """deepdiff's root['spec']['replicas'] / root[0] -> ['spec', 'replicas'] / ['0']."""
    import re

    return [m.group(1) or m.group(2) for m in re.finditer(r"\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]", path)]


def object_diff(desired: dict[str, Any], live: dict[str, Any] | None, *, label: str) -> str:
    """A unified diff of the YAML of both sides (live first)."""
    before = yaml.dump(live, Dumper=_DUMPER, sort_keys=True) if live else ""
    after = yaml.dump(desired, Dumper=_DUMPER, sort_keys=True)
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=f"live {label}", tofile=f"desired {label}", lineterm=""
    )
    return "\n".join(lines)


def stable_hash(obj: dict[str, Any]) -> str:
    return canonical_hash(obj)


def _remove(obj: Any, path: list[str]) -> None:
    if not path:  # "/" names the whole object: an ignore rule never drops all of it
        return
    for key in path[:-1]:
        if isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        elif isinstance(obj, dict) and key in obj:
            obj = obj[key]
        else:
            return
    if isinstance(obj, dict):
        obj.pop(path[-1], None)


def _fields_v1_paths(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Leaf paths of plain fields in a managedFields fieldsV1 tree (list items by key are skipped)."""
    paths = []
    for key, sub in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        children = {k: v for k, v in (sub or {}).items() if k != "."}
        if children:
            paths += _fields_v1_paths(children, path)
        else:
            paths.append(list(path))
    return paths
