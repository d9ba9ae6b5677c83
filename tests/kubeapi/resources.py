"""The resource types the double serves: built-in kinds plus those added by CRDs.

A :class:`ResourceType` carries what discovery publishes (plural, kind, namespaced,
verbs, short names) and what the server's behaviour depends on (whether writes bump
``metadata.generation``, whether ``status`` is a subresource). :class:`Registry` is
looked up by the server for every request and by :mod:`tests.kubeapi.discovery`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource (``group``/``version``/``plural``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(VERBS)
    # Writes to anything but metadata/status bump metadata.generation.
    has_generation: bool = False
    # PUT/PATCH/apply of the main resource ignore .status (it has its own subresource).
    status_subresource: bool = False
    scale_subresource: bool = False
    custom: bool = False
    # For custom resources: the CRD's openAPIV3Schema of this version (used for list types).
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: objects are stored once per group+plural, whatever the version."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """``deployments.apps`` as used in error messages (``configmaps`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _b(group, version, plural, kind, *, ns=True, short=(), cat=(), gen=False, status=False,
       scale=False, verbs=None) -> ResourceType:
    return ResourceType(group, version, plural, kind, ns, tuple(short), tuple(cat),
                        tuple(verbs or VERBS), gen, status, scale)


_ALL = ("all",)
BUILTINS: list[ResourceType] = [
    _b("", "v1", "namespaces", "Namespace", ns=False, short=["ns"], status=True,
       verbs=["create", "delete", "get", "list", "patch", "update", "watch"]),
    _b("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    _b("", "v1", "secrets", "Secret"),
    _b("", "v1", "services", "Service", short=["svc"], cat=_ALL, status=True,
       verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
    _b("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"], status=True),
    _b("", "v1", "pods", "Pod", short=["po"], cat=_ALL, status=True),
    _b("", "v1", "events", "Event", short=["ev"]),
    _b("apps", "v1", "deployments", "Deployment", short=["deploy"], cat=_ALL, gen=True,
       status=True, scale=True),
    _b("apps", "v1", "statefulsets", "StatefulSet", short=["sts"], cat=_ALL, gen=True,
       status=True, scale=True),
    _b("apps", "v1", "daemonsets", "DaemonSet", short=["ds"], cat=_ALL, gen=True, status=True),
    _b("batch", "v1", "jobs", "Job", cat=_ALL, gen=True, status=True),
    _b("batch", "v1", "cronjobs", "CronJob", short=["cj"], cat=_ALL, gen=True, status=True),
    _b("networking.k8s.io", "v1", "ingresses", "Ingress", short=["ing"], gen=True, status=True),
    _b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=["netpol"], gen=True),
    _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"], gen=True,
       status=True),
    _b("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
       short=["hpa"], cat=_ALL, status=True),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", ns=False),
    _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", ns=False),
    _b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
       ns=False, short=["crd", "crds"], gen=True, status=True),
]

# Preferred version of each group, in the order /apis lists them.
GROUP_ORDER = ["apps", "batch", "networking.k8s.io", "policy", "autoscaling",
               "rbac.authorization.k8s.io", "apiextensions.k8s.io"]


class Registry:
    """Thread-safe lookup of served resource types; CRDs add and remove entries."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._types: list[ResourceType] = list(BUILTINS)
        self._crd_types: dict[str, list[ResourceType]] = {}

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types) + [t for ts in self._crd_types.values() for t in ts]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.all():
            if t.group == group and t.version == version and t.plural == plural:
                return t
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for t in self.all():
            if t.api_version == api_version and t.kind == kind:
                return t
        return None

    def group_versions(self, group: str) -> list[str]:
        """Versions served for ``group``, preferred (first registered) first."""
        seen: list[str] = []
        for t in self.all():
            if t.group == group and t.version not in seen:
                seen.append(t.version)
        return seen

    def groups(self) -> list[str]:
        """Non-core groups, built-ins first in a stable order, then CRD groups."""
        found = []
        for t in self.all():
            if t.group and t.group not in found:
                found.append(t.group)
        return sorted(found, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER
                                            else len(GROUP_ORDER), g))

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.all() if t.group == group and t.version == version]

    def types_for_key(self, key: tuple[str, str]) -> list[ResourceType]:
        return [t for t in self.all() if t.key == key]

    # -- CRDs ------------------------------------------------------------------------
    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Serve the custom resources of ``crd`` (every ``served`` version)."""
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        types = []
        for v in spec.get("versions", []):
            if not v.get("served", True):
                continue
            sub = v.get("subresources") or {}
            types.append(ResourceType(
                group=spec["group"], version=v["name"], plural=names["plural"],
                kind=names["kind"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", []) or []),
                categories=tuple(names.get("categories", []) or []),
                has_generation=True, status_subresource="status" in sub,
                scale_subresource="scale" in sub, custom=True,
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            ))
        with self._lock:
            self._crd_types[crd["metadata"]["name"]] = types
        return types

    def unregister_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            return self._crd_types.pop(name, [])

    def reset(self) -> None:
        with self._lock:
            self._crd_types.clear()

