"""The order objects are applied in: by wave, Namespaces and CRDs first, then
RBAC, config, workloads, the rest; the ``driftgate.io/wave`` annotation
overrides a kind's wave. Used by `plan` (changes listed in apply order) and
`apply` (one wave after the other).
"""

from __future__ import annotations

from enum import IntEnum

from driftgate.errors import PermanentError
from driftgate.kinds import builtin
from driftgate.manifests import WAVE_ANNOTATION
from driftgate.models import Manifest, Stage


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
