"""Plan: what applying the environment's manifests would change in its cluster.

`plan()` costs one LIST per kind and namespace (the kinds in Git and in the
prune inventory, read only where this environment's objects can be: see
`_LiveState.read`), then for each desired object a server-side apply dry-run (field
manager ``driftgate``) compared with the live object, so fields the server
defaults are never reported as changes. Comparisons are cached by (desired
object, live resourceVersion, rules) in driftgate/kube/cache.py: an unchanged
environment costs its LISTs only. With ``prune`` on, objects carrying
driftgate's labels for this environment that left Git become deletes
(driftgate/kube/prune.py). Changes come in apply order (driftgate/kube/waves.py).

Every request is one HTTP request (driftgate/kubeclient.py); a server failure
stops the plan as a `TransientError` or a `PermanentError` for the one retry
layer, driftgate/retry.py, to judge. Called through `driftgate.targets`.
"""

from __future__ import annotations

import base64
from typing import Any

from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.kinds import is_builtin
from driftgate.kube.access import target_of
from driftgate.kube.cache import ComparisonCache
from driftgate.kube.prune import Inventory, read_inventory, prunes
from driftgate.kube.waves import in_apply_order
from driftgate.kubeclient import Cluster, KubeError, Resource, as_driftgate_error
from driftgate.kubediff import (
    apply_ignore_rules,
    changed_paths,
    mask_secrets,
    matching_rules,
    normalize,
    object_diff,
    stable_hash,
)
from driftgate.manifests import ENVIRONMENT_LABEL, LAST_APPLIED, MANAGED_BY, load_manifests, plain_text_secrets
from driftgate.models import Action, Bundle, Change, Manifest, Plan, Stage
from driftgate.secrets import Masker


def plan(env: Environment, bundle: Bundle, cluster: Cluster, *, masker: Masker | None = None,
         identities: tuple[str, ...] = ()) -> Plan:
    """Desired (the bundle's manifests) against live: the creates, updates and
    prunes applying would make, in apply order, Secret values masked. Objects
    the server refuses are reported all at once as one `PermanentError`."""
    masker = masker or Masker()
    where = f"environment {env.name!r}"
    manifests = load_manifests(bundle, env=env, identities=identities)
    try:
        live = _LiveState.read(env, cluster, manifests)
        manifests = in_served_scope(env, manifests, live.resources)
        live.new_namespaces = {
            m.name for m in manifests if is_builtin(m.api_version, m.kind, "Namespace") and m.identity not in live.objects
        }
        cache = ComparisonCache(env)
        changes, rejected = [], []
        for manifest in in_apply_order(manifests):
            try:
                if change := _compare(env, cluster, manifest, live, cache, masker):
                    changes.append(change)
            except _Rejected as exc:
                rejected.append(str(exc))
        changes += prunes(env, live.owned(env), manifests)
        cache.save()
        if rejected:  # every refused object at once, so one fix round is enough
            raise PermanentError(
                f"{where}: the server rejects {len(rejected)} object(s):\n  " + "\n  ".join(rejected),
                stage=Stage.DIFF,
            )
    except KubeError as exc:
        raise as_driftgate_error(exc, where, Stage.DIFF) from None
    return Plan(environment=env.name, revision=bundle.commit, changes=tuple(changes), hosts=bundle.hosts,
                warnings=tuple(plain_text_secrets(manifests)))


class _LiveState:
    """What the cluster holds for the kinds this environment touches."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], Resource | None] = {}
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.crd_kinds: set[tuple[str, str]] = set()
        self.new_namespaces: set[str] = set()  # created by this plan

    def owned(self, env: Environment) -> list[dict[str, Any]]:
        """The live objects labelled for this environment (what prune may delete)."""
        return [
            obj for obj in self.objects.values()
            if (labels := obj["metadata"].get("labels") or {}).get(MANAGED_BY) == "driftgate"
            and labels.get(ENVIRONMENT_LABEL) == env.name
        ]  # fmt: skip

    @classmethod
    def read(cls, env: Environment, cluster: Cluster, manifests: list[Manifest]) -> "_LiveState":
        state = cls()
        state.crd_kinds = {crd_kind(m.object) for m in manifests if is_builtin(m.api_version, m.kind, "CustomResourceDefinition")}
        inventory = read_inventory(env, cluster)
        for api_version, kind in sorted({(m.api_version, m.kind) for m in manifests} | inventory.kinds):
            resource = cluster.resource(api_version, kind)
            state.resources[(api_version, kind)] = resource
            desired = [m for m in manifests if (m.api_version, m.kind) == (api_version, kind)]
            if resource is None:
                if (api_version, kind) in state.crd_kinds or not desired:
                    continue  # its CRD is created by this plan (or it is only in the inventory)
                raise PermanentError(
                    f"environment {env.name!r}: {desired[0].display} from {desired[0].source}: the cluster does not "
                    f"serve {kind} in {api_version} (a missing CRD or a wrong apiVersion)",
                    stage=Stage.DIFF,
                )
            for obj in _live_objects(env, cluster, resource, desired, inventory):
                obj["apiVersion"], obj["kind"] = api_version, kind  # list items carry neither
                meta = obj.setdefault("metadata", {})
                state.objects[(api_version.rpartition("/")[0], kind, meta.get("namespace", ""), meta["name"])] = obj
        return state


def _live_objects(env: Environment, cluster: Cluster, resource: Resource, desired: list[Manifest],
                  inventory: Inventory) -> list[dict[str, Any]]:
    """The live objects of one kind this environment's plan needs, read no wider
    than is exact, so a check costs what the environment costs, not the cluster:
    a namespaced kind is listed in the namespaces of its desired objects and,
    with prune, those the inventory says the last apply wrote it in; with prune,
    a kind the inventory keeps no namespaces for (none yet, or one from an older
    driftgate) is also listed across namespaces by this environment's label:
    prune looks for nothing else. Cluster-scoped kinds: see `_cluster_scoped`."""
    if not resource.namespaced:
        return _cluster_scoped(env, cluster, resource, desired)
    target = target_of(env)
    namespaces = {m.namespace or target.namespace for m in desired}
    found = []
    if target.prune:
        kept = inventory.namespaces.get((resource.api_version, resource.kind))
        if kept is None:  # no inventory names where: look for this environment's label anywhere
            found += cluster.list(resource, label_selector=f"{MANAGED_BY}=driftgate,{ENVIRONMENT_LABEL}={env.name}")
        namespaces |= kept or set()
    for namespace in sorted(namespaces):
        found += cluster.list(resource, namespace=namespace)
    return found


# Up to this many objects of a cluster-scoped kind are read by name; more, and the kind is listed whole.
BY_NAME = 5


def _cluster_scoped(env: Environment, cluster: Cluster, resource: Resource, desired: list[Manifest]) -> list[dict[str, Any]]:
    """The live objects of a cluster-scoped kind (Namespaces, ClusterRoles, CRDs) the
    plan needs: with prune, this environment's by its label (what prune looks at,
    and once applied, what Git wants too), then each desired one the label did not
    bring by name. A tenant's Namespace then costs one small LIST, not the fleet's
    every Namespace in each tenant's check. An environment with more than `BY_NAME`
    objects of the kind lists it whole: one request."""
    names = {m.name for m in desired}
    if len(names) > BY_NAME:
        return cluster.list(resource)
    found = cluster.list(resource, label_selector=f"{MANAGED_BY}=driftgate,{ENVIRONMENT_LABEL}={env.name}") if target_of(env).prune else []
    for name in sorted(names - {obj["metadata"]["name"] for obj in found}):
        # (kubeclient's list takes no field selector; the request is the same LIST with one)
        found += cluster.request("GET", resource.path(), query=[("fieldSelector", f"metadata.name={name}")]).get("items", [])
    return found


def in_served_scope(env: Environment, manifests: list[Manifest], resources: dict[tuple[str, str], Resource | None]) -> list[Manifest]:
    """The manifests with the scope the server serves each kind with: discovery
    (by apiVersion and kind) has the last word over render's guess, which knows
    only the built-ins and the CRDs in the same render. A cluster-scoped object
    loses its namespace (as kubectl and the API server do); a namespaced one
    without a namespace gets the environment's. Two objects that become one
    identity are an error naming both."""
    scoped, seen = [], {}
    for m in manifests:
        resource = resources.get((m.api_version, m.kind))
        if resource is not None and resource.namespaced != bool(m.namespace):
            obj = {**m.object, "metadata": dict(m.object["metadata"])}
            if resource.namespaced:
                obj["metadata"]["namespace"] = target_of(env).namespace
            else:
                obj["metadata"].pop("namespace", None)
            m = m.model_copy(update={"object": obj})
        if m.identity in seen:
            raise PermanentError(
                f"environment {env.name!r}: {m.display} is defined twice: in {seen[m.identity]} and in {m.source}",
                stage=Stage.DIFF,
            )
        seen[m.identity] = m.source
        scoped.append(m)
    return scoped


def crd_kind(crd: dict[str, Any]) -> tuple[str, str]:
    spec = crd.get("spec", {})
    versions = spec.get("versions") or [{}]
    return (f"{spec.get('group')}/{versions[0].get('name')}", spec.get("names", {}).get("kind", ""))


def _compare(env: Environment, cluster: Cluster, manifest: Manifest, live: _LiveState,
             cache: "ComparisonCache", masker: Masker) -> Change | None:
    target = target_of(env)
    resource = live.resources.get((manifest.api_version, manifest.kind))
    current = live.objects.get(manifest.identity)
    base = {
        "target": manifest.display, "name": manifest.name, "kind": manifest.kind,
        "namespace": manifest.namespace, "api_version": manifest.api_version,
    }  # fmt: skip
    pending_namespace = manifest.namespace and manifest.namespace in live.new_namespaces
    if resource is None or pending_namespace:
        # Its CRD or its namespace comes with this plan: nothing to dry-run against yet.
        desired, _ = mask_secrets(manifest.object, None)
        return Change(action=Action.CREATE, diff=masker(object_diff(desired, None, label=manifest.display)), **base)

    rules = matching_rules(target.ignore, manifest.api_version, manifest.kind, manifest.namespace, manifest.name)
    key = comparison_key(env, cache, manifest, current, rules)
    known = cache.get(key)
    if known is None:
        known = _dry_run_comparison(env, cluster, resource, manifest, current, rules, masker)
        cache.put(key, known)
    if known["action"] == "unchanged":
        return None
    return Change(action=Action(known["action"]), diff=known["diff"], paths=tuple(known.get("paths", ())), **base)


# What the comparison found for an object already as Git wants it.
UNCHANGED = {"action": "unchanged", "diff": "", "paths": []}


def comparison_key(env: Environment, cache: ComparisonCache, manifest: Manifest, live: dict[str, Any] | None,
                   rules: list | None = None) -> str:
    """The comparison cache's key: the desired object (as `_cache_view` may know
    it), the live resourceVersion and the settings that change a comparison.
    Called by `_compare` and by apply, which fills the cache from its responses."""
    target = target_of(env)
    if rules is None:
        rules = matching_rules(target.ignore, manifest.api_version, manifest.kind, manifest.namespace, manifest.name)
    version = (live or {}).get("metadata", {}).get("resourceVersion", "-")
    return f"{stable_hash(_cache_view(manifest, live))}:{version}:{cache.settings_key(rules, target.force_conflicts)}"


def _cache_view(manifest: Manifest, live: dict[str, Any] | None) -> dict[str, Any]:
    """The desired object as the comparison cache (on disk) may know it: a
    Secret's values become whether each equals the live value. The masked
    comparison depends on nothing more, and even a hash of a guessable value
    would let someone with the disk check their guesses."""
    obj = manifest.object
    if not is_builtin(manifest.api_version, manifest.kind, "Secret"):
        return obj
    live_data = (live or {}).get("data") or {}
    live_annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}

    def same(key: str, value: Any, encode: bool) -> bool:
        wanted = base64.b64encode(str(value).encode()).decode() if encode else value
        return live_data.get(key) == wanted

    view = {**obj, "data": {k: same(k, v, False) for k, v in (obj.get("data") or {}).items()},
            "stringData": {k: same(k, v, True) for k, v in (obj.get("stringData") or {}).items()}}
    annotations = obj["metadata"].get("annotations") or {}
    if LAST_APPLIED in annotations:
        same_annotation = live_annotations.get(LAST_APPLIED) == annotations[LAST_APPLIED]
        view["metadata"] = {**obj["metadata"], "annotations": {**annotations, LAST_APPLIED: same_annotation}}
    return view


def _dry_run_comparison(env: Environment, cluster: Cluster, resource: Resource, manifest: Manifest,
                        current: dict[str, Any] | None, rules: list, masker: Masker) -> dict[str, str]:
    """Ask the server what applying would produce, and compare that with live."""
    notice = ""
    try:
        try:
            predicted = cluster.apply(resource, manifest.object, dry_run=True, force=target_of(env).force_conflicts)
        except KubeError as exc:
            if exc.status != 409:
                raise
            # Someone else owns fields we set (a hand edit): show the diff anyway, with the conflict.
            fields = "; ".join(exc.conflicts()) or str(exc)
            notice = f"! conflict with another field manager: {fields}\n! (apply fails unless target.force_conflicts is set)\n"
            predicted = cluster.apply(resource, manifest.object, dry_run=True, force=True)
    except KubeError as exc:
        if not exc.refusal:  # the server failed, not this object: stop the plan
            raise
        raise _Rejected(f"{manifest.display} from {manifest.source} is rejected by the server: {masker(str(exc))}") from None
    desired = apply_ignore_rules(normalize(predicted), rules, current)
    before = apply_ignore_rules(normalize(current), rules, current) if current else None
    paths = changed_paths(desired, before)
    if before is not None and not paths:
        return dict(UNCHANGED)
    desired, before = mask_secrets(desired, before)
    action = "create" if current is None else "update"
    diff = masker(notice + object_diff(desired, before, label=manifest.display))
    return {"action": action, "diff": diff, "paths": paths}


class _Rejected(Exception):
    """The server refused one object (4xx): reported with the others, not retried."""
