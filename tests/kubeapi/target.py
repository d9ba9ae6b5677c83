"""Choose what the tests talk to: a real cluster when one is configured, else the double.

``DRIFTGATE_TEST_KUBECONFIG=/path/to/kubeconfig`` makes :func:`kube_target` hand out
that kubeconfig (kind, k3s, any cluster), so the same tests run against the real API.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

from .server import KubeAPIDouble

ENV_VAR = "DRIFTGATE_TEST_KUBECONFIG"


@dataclass(frozen=True)
class KubeTarget:
    """Where the Kubernetes API under test lives.

    ``double`` is the running :class:`KubeAPIDouble`, or ``None`` for a real cluster
    (tests that need fault injection or request counting should skip then).
    """

    kubeconfig_path: str
    double: KubeAPIDouble | None

    @property
    def is_double(self) -> bool:
        return self.double is not None

    @property
    def url(self) -> str | None:
        return self.double.url if self.double else None

    def api_client(self):  # -> kubernetes.client.ApiClient
        from kubernetes import config
        return config.new_client_from_config(config_file=self.kubeconfig_path)


@contextlib.contextmanager
def kube_target(**double_options: Any) -> Iterator[KubeTarget]:
    """Yield a :class:`KubeTarget`: the real cluster named by ``$DRIFTGATE_TEST_KUBECONFIG``,
    or a freshly started double (``double_options`` go to :class:`KubeAPIDouble`)."""
    path = os.environ.get(ENV_VAR)
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{ENV_VAR}={path} does not exist")
        yield KubeTarget(kubeconfig_path=path, double=None)
        return
    with KubeAPIDouble(**double_options) as api:
        yield KubeTarget(kubeconfig_path=api.kubeconfig_path, double=api)
