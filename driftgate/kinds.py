"""Kubernetes kinds told apart by group and kind, never by the bare kind name.

A custom resource may reuse a built-in kind's name: Azure Service Operator's
``Namespace`` (group ``servicebus.azure.com``) is a namespaced custom
resource, not the cluster-scoped core ``Namespace``. Everything that decides
by kind — scope at render, waves and health in `driftgate.kube`, the
``kind:`` risk rules and user rules in `driftgate.policy`, ignore rules in
`driftgate.kubediff`, Secret handling — asks this module with the object's
apiVersion, so a look-alike never gets a built-in's treatment.

Kind patterns in driftgate.yaml (``approval.risk.kinds``, ``approval.rules[].kind``,
``target.ignore[].kind``) are ``Kind`` for a built-in kind (in its own group:
``ClusterRole`` means rbac.authorization.k8s.io's), ``Kind.group`` for any
other (``Namespace.servicebus.azure.com``; globs in either part), or a glob
without a group (``*``, ``Deploy*``), which matches that kind in every group.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

# Built-in kinds by name -> their API group ("" is the core group). A bare kind
# in driftgate.yaml means this group; an object of that name in another group
# is a custom resource and is treated as one.
BUILTIN_GROUP: dict[str, str] = {
    **dict.fromkeys(
        ("Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "PodTemplate",
         "PersistentVolume", "PersistentVolumeClaim", "Endpoints", "Event", "LimitRange",
         "ResourceQuota", "ReplicationController", "Node", "Binding", "ComponentStatus"),
        "",
    ),
    **dict.fromkeys(("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision"), "apps"),
    **dict.fromkeys(("Job", "CronJob"), "batch"),
    **dict.fromkeys(("Ingress", "IngressClass", "NetworkPolicy"), "networking.k8s.io"),
    "PodDisruptionBudget": "policy",
    "HorizontalPodAutoscaler": "autoscaling",
    **dict.fromkeys(("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"), "rbac.authorization.k8s.io"),
    "CustomResourceDefinition": "apiextensions.k8s.io",
    **dict.fromkeys(("StorageClass", "CSIDriver", "CSINode", "VolumeAttachment", "CSIStorageCapacity"), "storage.k8s.io"),
    "PriorityClass": "scheduling.k8s.io",
    "RuntimeClass": "node.k8s.io",
    "APIService": "apiregistration.k8s.io",
    **dict.fromkeys(
        ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
         "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"),
        "admissionregistration.k8s.io",
    ),
    "Lease": "coordination.k8s.io",
    "EndpointSlice": "discovery.k8s.io",
    "CertificateSigningRequest": "certificates.k8s.io",
    **dict.fromkeys(("FlowSchema", "PriorityLevelConfiguration"), "flowcontrol.apiserver.k8s.io"),
}  # fmt: skip

# Built-in kinds that live outside namespaces. Custom resources declare their
# scope in their CRD; at plan time discovery has the last word for every kind.
CLUSTER_SCOPED_BUILTINS = frozenset(
    {
        "Namespace", "Node", "PersistentVolume", "ComponentStatus", "ClusterRole", "ClusterRoleBinding",
        "CustomResourceDefinition", "StorageClass", "CSIDriver", "CSINode", "VolumeAttachment",
        "PriorityClass", "IngressClass", "RuntimeClass", "APIService", "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
        "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration",
    }
)  # fmt: skip

_GLOB = frozenset("*?[")


def group_of(api_version: str) -> str:
    """'apps/v1' -> 'apps'; 'v1' -> '' (the core group)."""
    return api_version.rpartition("/")[0]


def builtin(api_version: str, kind: str) -> str:
    """``kind`` when the object is that built-in kind (right name *and* group), else ''."""
    return kind if kind in BUILTIN_GROUP and BUILTIN_GROUP[kind] == group_of(api_version) else ""


def is_builtin(api_version: str, kind: str, name: str) -> bool:
    """Whether the object is the built-in kind ``name`` (e.g. the core Secret)."""
    return builtin(api_version, kind) == name


def display_kind(api_version: str, kind: str) -> str:
    """How a kind is shown to people: bare for built-ins and for custom kinds
    whose name no built-in uses; ``Kind.group`` for a look-alike of a built-in."""
    group = group_of(api_version)
    if kind in BUILTIN_GROUP and BUILTIN_GROUP[kind] != group:
        return f"{kind}.{group}" if group else kind
    return kind


def kind_matches(pattern: str, api_version: str, kind: str) -> bool:
    """Whether an object of ``api_version``/``kind`` matches a kind pattern (see the module doc)."""
    kind_pattern, dot, group_pattern = pattern.partition(".")
    if dot:
        return fnmatchcase(kind, kind_pattern) and fnmatchcase(group_of(api_version), group_pattern)
    if _GLOB & set(kind_pattern):
        return fnmatchcase(kind, kind_pattern)
    return builtin(api_version, kind) == kind_pattern


def pattern_problem(pattern: str) -> str | None:
    """Why a kind pattern from driftgate.yaml cannot be used, or None. A bare
    name that is no built-in kind would match nothing: say how to write it."""
    kind_pattern, dot, _ = pattern.partition(".")
    if dot or _GLOB & set(kind_pattern) or kind_pattern in BUILTIN_GROUP:
        return None
    return (
        f"{pattern!r} is not a built-in Kubernetes kind: write a custom kind with its API group, "
        f"e.g. {pattern}.example.com (kinds are told apart by group and kind)"
    )
