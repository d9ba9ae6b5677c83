"""diff, apply, prune and health for Kubernetes targets.

`plan()`: one LIST per kind, then for each desired object a server-side apply
dry-run (field manager ``driftgate``) compared with the live object, so
fields the server defaults are never reported as changes. Comparisons are
cached by (desired object, live resourceVersion): an unchanged environment
costs its LISTs only. With ``prune`` on, objects carrying driftgate's labels
for this environment that left Git become deletes.

`apply()`: the plan's creates and updates by wave (Namespaces and CRDs first,
then RBAC, config, workloads; ``driftgate.io/wave`` overrides), waiting for
CRDs to be established; then prunes; then waits for health until the
environment's timeout. Results are per object.

Called through `driftgate.targets`; only `driftgate.kubeclient` talks to the API.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from driftgate import home
from driftgate.config import Environment, KubernetesTarget
from driftgate.errors import PermanentError
from driftgate.kinds import builtin, group_of, is_builtin
from driftgate.kubeclient import Cluster, KubeError, Resource, as_driftgate_error, connect
from driftgate.kubediff import (
    apply_ignore_rules,
    changed_paths,
    mask_secrets,
    matching_rules,
    normalize,
    object_diff,
    stable_hash,
)
from driftgate.manifests import (
    ENVIRONMENT_LABEL,
    LAST_APPLIED,
    MANAGED_BY,
    WAVE_ANNOTATION,
    load_manifests,
    plain_text_secrets,
)
from driftgate.models import (
    Action,
    ApplyResult,
    Bundle,
    Change,
    HostResult,
    Manifest,
    Plan,
    Stage,
    TaskResult,
    object_display,
)
from driftgate.secrets import Masker

log = logging.getLogger(__name__)

INVENTORY_LABEL = "driftgate.io/inventory"


@dataclass(frozen=True)
class KubeAccess:
    """A cluster's kubeconfig from a KubernetesCluster block."""

    kubeconfig: dict[str, Any]
    context: str | None = None


def cluster_for(env: Environment, access: KubeAccess | None) -> Cluster:
    target = _target(env)
    timeout = target.request_timeout.total_seconds()
    if access is not None:
        return connect(kubeconfig_data=access.kubeconfig, context=access.context or target.context, request_timeout=timeout)
    return connect(kubeconfig=target.kubeconfig, context=target.context, request_timeout=timeout)


def _target(env: Environment) -> KubernetesTarget:
    assert isinstance(env.target, KubernetesTarget)
    return env.target


# ---------------------------------------------------------------- plan


def plan(env: Environment, bundle: Bundle, cluster: Cluster, *, masker: Masker | None = None,
         identities: tuple[str, ...] = ()) -> Plan:
    masker = masker or Masker()
    where = f"environment {env.name!r}"
    manifests = load_manifests(bundle, env=env, identities=identities)
    try:
        live = _LiveState.read(env, cluster, manifests)
        manifests = in_served_scope(env, manifests, live.resources)
        live.new_namespaces = {
            m.name for m in manifests if is_builtin(m.api_version, m.kind, "Namespace") and m.identity not in live.objects
        }
        cache = _ComparisonCache(env)
        changes, rejected = [], []
        for manifest in in_apply_order(manifests):
            try:
                if change := _compare(env, cluster, manifest, live, cache, masker):
                    changes.append(change)
            except _Rejected as exc:
                rejected.append(str(exc))
        changes += _prunes(env, live, manifests)
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
        self.owned: list[dict[str, Any]] = []  # live objects labelled for this environment
        self.crd_kinds: set[tuple[str, str]] = set()
        self.new_namespaces: set[str] = set()  # created by this plan

    @classmethod
    def read(cls, env: Environment, cluster: Cluster, manifests: list[Manifest]) -> "_LiveState":
        state = cls()
        state.crd_kinds = {_crd_kind(m.object) for m in manifests if is_builtin(m.api_version, m.kind, "CustomResourceDefinition")}
        kinds = {(m.api_version, m.kind) for m in manifests} | _inventory_kinds(env, cluster)
        for api_version, kind in sorted(kinds):
            resource = cluster.resource(api_version, kind)
            state.resources[(api_version, kind)] = resource
            if resource is None:
                if (api_version, kind) in state.crd_kinds or (api_version, kind) not in {(m.api_version, m.kind) for m in manifests}:
                    continue  # its CRD is created by this plan (or it is only in the inventory)
                first = next(m for m in manifests if (m.api_version, m.kind) == (api_version, kind))
                raise PermanentError(
                    f"environment {env.name!r}: {first.display} from {first.source}: the cluster does not "
                    f"serve {kind} in {api_version} (a missing CRD or a wrong apiVersion)",
                    stage=Stage.DIFF,
                )
            for obj in cluster.list(resource):
                obj["apiVersion"], obj["kind"] = api_version, kind  # list items carry neither
                meta = obj.get("metadata", {})
                group = api_version.rpartition("/")[0]
                state.objects[(group, kind, meta.get("namespace", ""), meta["name"])] = obj
                labels = meta.get("labels") or {}
                if labels.get(MANAGED_BY) == "driftgate" and labels.get(ENVIRONMENT_LABEL) == env.name:
                    state.owned.append(obj)
        return state


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
                obj["metadata"]["namespace"] = _target(env).namespace
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


def _crd_kind(crd: dict[str, Any]) -> tuple[str, str]:
    spec = crd.get("spec", {})
    versions = spec.get("versions") or [{}]
    return (f"{spec.get('group')}/{versions[0].get('name')}", spec.get("names", {}).get("kind", ""))


def _compare(env: Environment, cluster: Cluster, manifest: Manifest, live: _LiveState,
             cache: "_ComparisonCache", masker: Masker) -> Change | None:
    target = _target(env)
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
    settings = cache.settings_key(rules, target.force_conflicts)
    key = f"{stable_hash(_cache_view(manifest, current))}:{(current or {}).get('metadata', {}).get('resourceVersion', '-')}:{settings}"
    known = cache.get(key)
    if known is None:
        known = _dry_run_comparison(env, cluster, resource, manifest, current, rules, masker)
        cache.put(key, known)
    if known["action"] == "unchanged":
        return None
    return Change(action=Action(known["action"]), diff=known["diff"], paths=tuple(known.get("paths", ())), **base)


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
            predicted = cluster.apply(resource, manifest.object, dry_run=True, force=_target(env).force_conflicts)
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
        return {"action": "unchanged", "diff": "", "paths": []}
    desired, before = mask_secrets(desired, before)
    action = "create" if current is None else "update"
    diff = masker(notice + object_diff(desired, before, label=manifest.display))
    return {"action": action, "diff": diff, "paths": paths}


class _Rejected(Exception):
    """The server refused one object (4xx): reported with the others, not retried."""


def _prunes(env: Environment, live: _LiveState, manifests: list[Manifest]) -> list[Change]:
    if not _target(env).prune:
        return []
    wanted = {m.identity for m in manifests}
    changes = []
    for obj in sorted(live.owned, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        meta = obj["metadata"]
        identity = (obj["apiVersion"].rpartition("/")[0], obj["kind"], meta.get("namespace", ""), meta["name"])
        if identity in wanted:
            continue
        display = object_display(obj["kind"], meta.get("namespace", ""), meta["name"], api_version=obj["apiVersion"])
        before, _ = mask_secrets(normalize(obj), None)
        changes.append(
            Change(
                action=Action.DELETE, target=display, name=meta["name"], kind=obj["kind"],
                namespace=meta.get("namespace", ""), api_version=obj["apiVersion"], risky=True, rules=("prune",),
                diff=object_diff({}, before, label=display).replace("+{}", ""),
            )
        )  # fmt: skip
    return changes


class _ComparisonCache:
    """(desired hash, live resourceVersion, rules) -> comparison; masked, so safe on disk."""

    def __init__(self, env: Environment) -> None:
        self.path = home.subdir("kube-cache") / f"{stable_hash({'env': env.name})[:16]}.json"
        try:
            self.entries: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.used: dict[str, dict[str, str]] = {}
        self._settings: dict[tuple[int, ...], str] = {}

    def settings_key(self, rules: list, force: bool) -> str:
        """What besides the objects changes a comparison; hashed once per distinct rule set."""
        ids = (*map(id, rules), force)
        if ids not in self._settings:
            self._settings[ids] = stable_hash({"r": [r.model_dump() for r in rules], "f": force})[:16]
        return self._settings[ids]

    def get(self, key: str) -> dict[str, str] | None:
        found = self.entries.get(key)
        if found is not None:
            self.used[key] = found
        return found

    def put(self, key: str, value: dict[str, str]) -> None:
        self.used[key] = value

    def save(self) -> None:
        # Keep only what this plan used: the file stays the size of the environment.
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.used))
        tmp.replace(self.path)


# ---------------------------------------------------------------- inventory


def _inventory_name(env: Environment) -> str:
    return f"driftgate-inventory-{env.name}"


def _inventory_kinds(env: Environment, cluster: Cluster) -> set[tuple[str, str]]:
    """Kinds driftgate applied last time: pruning must look at them even when
    Git no longer has any object of that kind. Kept in the cluster (a ConfigMap)."""
    if not _target(env).prune:
        return set()
    configmaps = cluster.resource("v1", "ConfigMap")
    assert configmaps is not None
    found = cluster.get(configmaps, _target(env).namespace, _inventory_name(env))
    kinds = json.loads(((found or {}).get("data") or {}).get("kinds", "[]"))
    return {(k[0], k[1]) for k in kinds}


def _write_inventory(env: Environment, cluster: Cluster, manifests: list[Manifest]) -> None:
    configmaps = cluster.resource("v1", "ConfigMap")
    assert configmaps is not None
    kinds = sorted({(m.api_version, m.kind) for m in manifests})
    inventory = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": _inventory_name(env), "namespace": _target(env).namespace,
                     "labels": {MANAGED_BY: "driftgate", INVENTORY_LABEL: env.name}},
        "data": {"kinds": json.dumps(kinds)},
    }  # fmt: skip
    cluster.apply(configmaps, inventory, dry_run=False, force=True)


# ---------------------------------------------------------------- apply


class Wave(IntEnum):
    NAMESPACES_AND_CRDS = 0
    CLUSTER_RBAC = 1
    CONFIG = 2
    WORKLOADS = 3
    REST = 4


_DEFAULT_WAVE = {
    "Namespace": Wave.NAMESPACES_AND_CRDS, "CustomResourceDefinition": Wave.NAMESPACES_AND_CRDS,
    "ClusterRole": Wave.CLUSTER_RBAC, "ClusterRoleBinding": Wave.CLUSTER_RBAC,
    "Role": Wave.CLUSTER_RBAC, "RoleBinding": Wave.CLUSTER_RBAC,
    "ConfigMap": Wave.CONFIG, "Secret": Wave.CONFIG, "ServiceAccount": Wave.CONFIG,
    "PersistentVolumeClaim": Wave.CONFIG, "StorageClass": Wave.CONFIG,
    "Deployment": Wave.WORKLOADS, "StatefulSet": Wave.WORKLOADS, "DaemonSet": Wave.WORKLOADS,
    "Job": Wave.WORKLOADS, "CronJob": Wave.WORKLOADS, "Service": Wave.WORKLOADS,
}  # fmt: skip


def wave_of(manifest: Manifest) -> int:
    """The order of application: the annotation wins, else by kind."""
    annotation = (manifest.object["metadata"].get("annotations") or {}).get(WAVE_ANNOTATION)
    if annotation is not None:
        try:
            return int(annotation)
        except ValueError:
            raise PermanentError(
                f"{manifest.display} from {manifest.source}: {WAVE_ANNOTATION} must be an integer, not {annotation!r}",
                stage=Stage.APPLY,
            ) from None
    return int(_DEFAULT_WAVE.get(builtin(manifest.api_version, manifest.kind), Wave.REST))


def in_apply_order(manifests: list[Manifest]) -> list[Manifest]:
    """By wave; within a wave Namespaces and CRDs first, then by kind's default wave and name."""
    return sorted(manifests, key=lambda m: (wave_of(m), int(_DEFAULT_WAVE.get(builtin(m.api_version, m.kind), Wave.REST)), m.display))


def apply(env: Environment, bundle: Bundle, cluster: Cluster, plan: Plan, *, masker: Masker | None = None,
          identities: tuple[str, ...] = ()) -> ApplyResult:
    """Apply the plan's changes in waves, prune, then wait for health.

    An object the server refuses (a conflict, an invalid field) fails alone and
    stops later waves. A server that fails (a 5xx, a 429, a timeout, no
    connection) stops the whole apply at that request: nothing after it is
    sent, and apply is never retried (a new run re-plans), so a failing server
    costs one request here, not one per object."""
    masker = masker or Masker()
    target = _target(env)
    manifests = load_manifests(bundle, env=env, identities=identities)
    manifests = in_served_scope(env, manifests, {(m.api_version, m.kind): cluster.resource(m.api_version, m.kind) for m in manifests})
    to_apply = {(group_of(c.api_version), c.kind, c.namespace, c.name) for c in plan.changes if c.action != Action.DELETE}
    results: dict[str, list[TaskResult]] = defaultdict(list)
    applied: list[tuple[Manifest, Resource]] = []
    stopped = ""  # why later objects are not applied
    server_failed = False  # then polling it for health until health_timeout would tell nothing
    by_wave: dict[int, list[Manifest]] = defaultdict(list)
    for m in in_apply_order(manifests):
        if m.identity in to_apply:
            by_wave[wave_of(m)].append(m)
    for wave in sorted(by_wave):
        for m in by_wave[wave]:
            if stopped:
                results[m.display].append(TaskResult(host=m.display, task="apply", status="skipped",
                                                     message=f"not applied: {stopped}"))
                continue
            try:
                result, resource = _apply_one(env, cluster, m, masker)
            except KubeError as exc:  # the server failed, not this object
                result, resource = TaskResult(host=m.display, task="apply", status="failed", message=masker(str(exc))), None
                stopped, server_failed = f"the API server failed at {m.display}", True
            results[m.display].append(result)
            if resource is not None:
                applied.append((m, resource))
        if not stopped and any(results[m.display][-1].status == "failed" for m in by_wave[wave]):
            stopped = "an earlier wave failed"
        if not stopped:
            try:
                _wait_for_crds(env, cluster, [m for m in by_wave[wave] if is_builtin(m.api_version, m.kind, "CustomResourceDefinition")])
            except KubeError as exc:
                stopped, server_failed = f"the API server failed while waiting for CRDs: {masker(str(exc))}", True

    if not stopped:
        for change in plan.changes:
            if change.action == Action.DELETE and not stopped:
                try:
                    results[change.target].append(_prune_one(cluster, change, env, masker))
                except KubeError as exc:
                    results[change.target].append(TaskResult(host=change.target, task="prune", status="failed",
                                                             message=masker(str(exc))))
                    stopped, server_failed = "the API server failed", True
        if target.prune and not stopped:
            try:
                _write_inventory(env, cluster, manifests)
            except KubeError as exc:
                log.warning("environment %s: could not write the prune inventory: %s", env.name, exc)
    if server_failed:
        for m, _resource in applied:
            if builtin(m.api_version, m.kind) in _HEALTH_CHECKED:
                results[m.display].append(TaskResult(host=m.display, task="health", status="skipped",
                                                     message="not checked: the API server failed"))
    else:
        for display, health in _wait_for_health(env, cluster, applied).items():
            results[display].append(health)
    return ApplyResult(hosts=tuple(_host_result(display, tasks) for display, tasks in results.items()))


def _apply_one(env: Environment, cluster: Cluster, m: Manifest, masker: Masker) -> tuple[TaskResult, Resource | None]:
    """Apply one object. A refusal is this object's failed result; any other
    `KubeError` (the server failed) is raised for `apply` to stop at."""
    resource = cluster.resource(m.api_version, m.kind) or cluster.resource(m.api_version, m.kind, refresh=True)
    if resource is None:
        return TaskResult(host=m.display, task="apply", status="failed",
                          message=f"the cluster does not serve {m.kind} in {m.api_version}"), None
    try:
        cluster.apply(resource, m.object, dry_run=False, force=_target(env).force_conflicts)
    except KubeError as exc:
        if not exc.refusal:
            raise
        if exc.status == 409:
            message = "conflict with another field manager: " + ("; ".join(exc.conflicts()) or str(exc))
            message += " (set target.force_conflicts to take these fields)"
        else:
            message = str(exc)
        return TaskResult(host=m.display, task="apply", status="failed", message=masker(message)), None
    return TaskResult(host=m.display, task="apply", status="changed"), resource


def _prune_one(cluster: Cluster, change: Change, env: Environment, masker: Masker) -> TaskResult:
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


def _wait_for_crds(env: Environment, cluster: Cluster, crds: list[Manifest]) -> None:
    """Custom resources of a CRD can be applied only once it is Established."""
    if not crds:
        return
    resource = cluster.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    deadline = time.monotonic() + _target(env).health_timeout.total_seconds()
    for crd in crds:
        while time.monotonic() < deadline:
            live = cluster.get(resource, "", crd.name) if resource else None
            conditions = ((live or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                break
            time.sleep(0.2)
        api_version, kind = _crd_kind(crd.object)
        cluster.resource(api_version, kind, refresh=True)


# ---------------------------------------------------------------- health


class Health(IntEnum):
    """Ordered: the worst of several is the max."""

    HEALTHY = 0
    PROGRESSING = 1
    DEGRADED = 2
    MISSING = 3


def health_of(obj: dict[str, Any] | None) -> tuple[Health, str]:
    """One small check per kind, after Argo CD's health assessment."""
    if obj is None:
        return Health.MISSING, "not found"
    # By group and kind: a custom resource named Deployment is no Deployment.
    kind = builtin(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    if kind in ("Deployment", "StatefulSet"):
        replicas = spec.get("replicas", 1)
        if generation is not None and status.get("observedGeneration", 0) < generation:
            return Health.PROGRESSING, "waiting for the controller"
        for c in status.get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                return Health.DEGRADED, c.get("message", "progress deadline exceeded")
        ready = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas", 0) or 0
        updated = status.get("updatedReplicas", 0) or 0
        if ready >= replicas and updated >= replicas:
            return Health.HEALTHY, f"{ready}/{replicas} ready"
        return Health.PROGRESSING, f"{ready}/{replicas} ready, {updated} updated"
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        if generation is not None and status.get("observedGeneration", 0) < generation:
            return Health.PROGRESSING, "waiting for the controller"
        return (Health.HEALTHY if ready >= desired else Health.PROGRESSING), f"{ready}/{desired} ready"
    if kind == "Job":
        for c in status.get("conditions") or []:
            if c.get("type") == "Failed" and c.get("status") == "True":
                return Health.DEGRADED, c.get("message") or "job failed"
            if c.get("type") == "Complete" and c.get("status") == "True":
                return Health.HEALTHY, "complete"
        return Health.PROGRESSING, "running"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase", "Pending")
        return (Health.HEALTHY if phase == "Bound" else Health.PROGRESSING), phase
    return Health.HEALTHY, ""


_HEALTH_CHECKED = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "PersistentVolumeClaim"})


def _wait_for_health(env: Environment, cluster: Cluster, applied: list[tuple[Manifest, Resource]]) -> dict[str, TaskResult]:
    """Poll the applied workloads until healthy or the environment's timeout:
    one LIST per kind per round (by this environment's label), not a GET per object."""
    pending = {m.display: (m, r) for m, r in applied if builtin(m.api_version, m.kind) in _HEALTH_CHECKED}
    results: dict[str, TaskResult] = {}
    deadline = time.monotonic() + _target(env).health_timeout.total_seconds()
    last: dict[str, tuple[Health, str]] = {}
    selector = f"{MANAGED_BY}=driftgate,{ENVIRONMENT_LABEL}={env.name}"
    while pending:
        live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for resource in {r for _, r in pending.values()}:
            try:
                for obj in cluster.list(resource, label_selector=selector):
                    meta = obj.get("metadata", {})
                    obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind  # list items carry neither
                    live[(resource.api_version, resource.kind, meta.get("namespace", ""), meta["name"])] = obj
            except KubeError as exc:
                log.info("health check of %s: %s", resource.kind, exc)
        for display, (m, _resource) in list(pending.items()):
            state = last[display] = health_of(live.get((m.api_version, m.kind, m.namespace, m.name)))
            if state[0] in (Health.HEALTHY, Health.DEGRADED):
                status = "ok" if state[0] == Health.HEALTHY else "failed"
                results[display] = TaskResult(host=display, task="health", status=status,
                                              message=f"{state[0].name.lower()}: {state[1]}")
                del pending[display]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    for display in pending:
        health, detail = last.get(display, (Health.MISSING, "never seen"))
        results[display] = TaskResult(
            host=display, task="health", status="failed",
            message=f"{health.name.lower()} after {_target(env).health_timeout}: {detail}",
        )  # fmt: skip
    return results


def _host_result(display: str, tasks: list[TaskResult]) -> HostResult:
    return HostResult(
        host=display,
        ok=sum(t.status == "ok" for t in tasks),
        changed=sum(t.status == "changed" for t in tasks),
        failed=sum(t.status == "failed" for t in tasks),
        skipped=sum(t.status == "skipped" for t in tasks),
        tasks=tuple(tasks),
    )
