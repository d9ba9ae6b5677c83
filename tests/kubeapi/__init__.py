"""A Kubernetes API double for driftgate's tests: the real REST API, on loopback.

Start one in-process::

    from tests.kubeapi import KubeAPIDouble
    with KubeAPIDouble() as api:
        kubeconfig = api.kubeconfig_path      # for kubectl / kubernetes.config
        api.inject_fault(method="PATCH", status=500, times=1)
        api.count(verb="list", resource="deployments")

or as a process: ``python -m tests.kubeapi --port 8001 --kubeconfig /tmp/kc``.
:func:`kube_target` returns a real cluster instead when ``DRIFTGATE_TEST_KUBECONFIG``
is set. Module map: ``server`` (HTTP, life cycle), ``cluster`` (API semantics),
``managed`` + ``fieldpath`` + ``merge`` (server-side apply), ``defaults``
(defaulting, validation), ``controller`` (simulated status), ``store``,
``discovery``, ``selectors``, ``faults``, ``errors``, ``resources``.
"""

from .controller import FAIL, NEVER_READY, READY_AFTER, ControllerSettings
from .errors import ApiError
from .faults import FaultRule, Request
from .server import KubeAPIDouble, kubeconfig_dict, write_kubeconfig
from .target import ENV_VAR, KubeTarget, kube_target

__all__ = ["KubeAPIDouble", "KubeTarget", "kube_target", "FaultRule", "Request", "ApiError",
           "ControllerSettings", "NEVER_READY", "READY_AFTER", "FAIL", "ENV_VAR",
           "kubeconfig_dict", "write_kubeconfig"]
