"""Prune: deleting what driftgate created for an environment and Git no longer has.

The one source of what may be pruned is the cluster itself: the objects
labelled ``app.kubernetes.io/managed-by=driftgate`` and
``driftgate.io/environment=ENV``, looked for among the kinds of Git's objects
and the kinds in the environment's inventory, the ConfigMap
``driftgate-inventory-ENV`` in the target namespace (the kinds the last apply
wrote, and the namespaces it wrote each namespaced kind in: a kind whose last
object left Git is still looked at, in those namespaces only). Nothing on the
machine running driftgate takes part.

`read_inventory()` and `prunes()` are called by `plan` (the deletes it
lists); `prune_one()` and `write_inventory()` by `apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftgate.config import Environment
from driftgate.kube.access import target_of
from driftgate.kubeclient import Cluster, KubeError
from driftgate.kubediff import mask_secrets, normalize, object_diff
from driftgate.manifests import ENVIRONMENT_LABEL, MANAGED_BY
from driftgate.models import Action, Change, Manifest, TaskResult, object_display
from driftgate.secrets import Masker

INVENTORY_LABEL = "driftgate.io/inventory"


def inventory_name(env: Environment) -> str:
    return f"driftgate-inventory-{env.name}"


@dataclass(frozen=True)
class Inventory:
    """What the last apply wrote: its kinds, and for each namespaced kind the
    namespaces it wrote in (a kind missing from ``namespaces``, as in an
    inventory from before they were kept, may have objects in any namespace)."""

    kinds: frozenset[tuple[str, str]] = frozenset()
    namespaces: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)


def read_inventory(env: Environment, cluster: Cluster) -> Inventory:
    """The environment's inventory (empty with prune off): pruning must look at
    its kinds even when Git no longer has any object of them. Kept in the cluster (a ConfigMap)."""
    if not target_of(env).prune:
        return Inventory()
    configmaps = cluster.resource("v1", "ConfigMap")
    assert configmaps is not None
    data = (cluster.get(configmaps, target_of(env).namespace, inventory_name(env)) or {}).get("data") or {}
    kinds = frozenset((k[0], k[1]) for k in json.loads(data.get("kinds", "[]")))
    namespaces: dict[tuple[str, str], set[str]] = {}
    if "namespaces" in data:  # written by this version: every namespaced kind of the apply is listed
        for api_version, kind, *where in json.loads(data["namespaces"]):
            namespaces.setdefault((api_version, kind), set()).update(where)
    return Inventory(kinds, {k: frozenset(v) for k, v in namespaces.items()})


def write_inventory(env: Environment, cluster: Cluster, manifests: list[Manifest], unpruned: list[Change]) -> None:
    """Record the kinds of this apply's objects and the namespaces of the
    namespaced ones, for the next plan's `read_inventory()`; ``unpruned``, the
    deletes that failed, stay in it so the next plan looks for them again."""
    configmaps = cluster.resource("v1", "ConfigMap")
    assert configmaps is not None
    where = [(m.api_version, m.kind, m.namespace) for m in manifests] + [(c.api_version, c.kind, c.namespace) for c in unpruned]
    kinds = sorted({(api_version, kind) for api_version, kind, _ in where})
    namespaces = [
        [api_version, kind, *sorted({ns for a, k, ns in where if (a, k) == (api_version, kind)})]
        for api_version, kind in kinds
        if all(ns for a, k, ns in where if (a, k) == (api_version, kind))  # namespaced: every object has one
    ]
    inventory = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": inventory_name(env), "namespace": target_of(env).namespace,
                     "labels": {MANAGED_BY: "driftgate", INVENTORY_LABEL: env.name}},
        "data": {"kinds": json.dumps(kinds), "namespaces": json.dumps(namespaces)},
    }  # fmt: skip
    cluster.apply(configmaps, inventory, dry_run=False, force=True)


def prunes(env: Environment, owned: list[dict[str, Any]], manifests: list[Manifest]) -> list[Change]:
    """A risky delete for each live object labelled for this environment
    (``owned``) that is not among the desired ``manifests``."""
    if not target_of(env).prune:
        return []
    wanted = {m.identity for m in manifests}
    changes = []
    for obj in sorted(owned, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        meta = obj["metadata"]
        identity = (obj["apiVersion"].rpartition("/")[0], obj["kind"], meta.get("namespace", ""), meta["name"])
        if identity in wanted:
            continue
        display = object_display(obj["kind"], meta.get("namespace", ""), meta["name"], api_version=obj["apiVersion"])
        _, before = mask_secrets({"kind": obj["kind"]}, normalize(obj))  # every key of a pruned Secret: removed
        changes.append(
            Change(
                action=Action.DELETE, target=display, name=meta["name"], kind=obj["kind"],
                namespace=meta.get("namespace", ""), api_version=obj["apiVersion"], risky=True, rules=("prune",),
                diff=object_diff({}, before, label=display).replace("+{}", ""),
            )
        )  # fmt: skip
    return changes


def prune_one(cluster: Cluster, change: Change, env: Environment, masker: Masker) -> TaskResult:
    """Delete one object driftgate created. A refusal is this object's failed
    result; any other `KubeError` is raised for `apply` to stop at."""
    resource = cluster.resource(change.api_version, change.kind)
    if resource is None:
        return TaskResult(host=change.target, task="prune", status="ok", message="kind no longer served")
    live = cluster.get(resource, change.namespace, change.name)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    if live is None:
        return TaskResult(host=change.target, task="prune", status="ok", message="already gone")
    if labels.get(MANAGED_BY) != "driftgate" or labels.get(ENVIRONMENT_LABEL) != env.name:
        # Never delete what driftgate did not create (labels changed since the plan).
        return TaskResult(host=change.target, task="prune", status="skipped", message="not driftgate's")
    try:
        cluster.delete(resource, change.namespace, change.name)
    except KubeError as exc:
        if not exc.refusal:
            raise
        return TaskResult(host=change.target, task="prune", status="failed", message=masker(str(exc)))
    return TaskResult(host=change.target, task="prune", status="changed")
