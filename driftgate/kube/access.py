"""The connection to an environment's cluster.

`cluster_for()` opens a `Cluster` (driftgate/kubeclient.py) from a
KubernetesCluster block's kubeconfig (`KubeAccess`) or from the target's own
``kubeconfig``/``context``, with the target's request timeout. Called by
`driftgate.targets` before `plan()` and `apply()`; `target_of()` is the
environment's Kubernetes target for the other modules of this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftgate.config import Environment, KubernetesTarget
from driftgate.kubeclient import Cluster, connect


@dataclass(frozen=True)
class KubeAccess:
    """A cluster's kubeconfig from a KubernetesCluster block."""

    kubeconfig: dict[str, Any]
    context: str | None = None


def cluster_for(env: Environment, access: KubeAccess | None) -> Cluster:
    target = target_of(env)
    timeout = target.request_timeout.total_seconds()
    if access is not None:
        return connect(kubeconfig_data=access.kubeconfig, context=access.context or target.context, request_timeout=timeout)
    return connect(kubeconfig=target.kubeconfig, context=target.context, request_timeout=timeout)


def target_of(env: Environment) -> KubernetesTarget:
    """The environment's target, which the callers know to be a Kubernetes one."""
    assert isinstance(env.target, KubernetesTarget)
    return env.target
