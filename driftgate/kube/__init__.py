"""The Kubernetes target: plan, apply, prune and health for one environment's cluster.

One module per job:

- `access`: `cluster_for()`, the connection to the environment's cluster;
- `planning`: `plan()`, desired against live by server-side apply dry-runs,
  with the comparison `cache`;
- `waves`: the order of application (Namespaces and CRDs first);
- `applying`: `apply()`, the plan's changes in waves, then prunes, then health;
- `prune`: what may be deleted, from the in-cluster inventory;
- `health`: when an applied workload is ready.

(No module is named after a function it holds, which would hide it behind
the function: `driftgate.kube.plan` is the function.) `driftgate.targets`
calls `cluster_for()`, `plan()` and `apply()`; only
driftgate/kubeclient.py talks to the API server.
"""

from driftgate.kube.access import KubeAccess, cluster_for
from driftgate.kube.applying import apply
from driftgate.kube.health import Health, health_of
from driftgate.kube.planning import in_served_scope, plan
from driftgate.kube.prune import INVENTORY_LABEL
from driftgate.kube.waves import Wave, in_apply_order, wave_of

__all__ = [
    "INVENTORY_LABEL", "Health", "KubeAccess", "Wave", "apply", "cluster_for", "health_of",
    "in_apply_order", "in_served_scope", "plan", "wave_of",
]  # fmt: skip
