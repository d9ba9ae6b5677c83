"""pytest fixtures for the API double; enable with ``pytest_plugins = ["tests.kubeapi.fixtures"]``
in a conftest, or import the fixtures into a test module.

* ``kube_target_session`` — one :class:`~tests.kubeapi.target.KubeTarget` per session: the
  real cluster named by ``DRIFTGATE_TEST_KUBECONFIG``, else a double.
* ``kube_double`` — a fresh :class:`~tests.kubeapi.server.KubeAPIDouble` per test.
* ``kube_double_factory`` — call it (with ``KubeAPIDouble`` options) to start as many
  doubles as a test needs (e.g. two clusters); all are stopped at teardown.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .server import KubeAPIDouble
from .target import KubeTarget, kube_target


@pytest.fixture(scope="session")
def kube_target_session() -> Iterator[KubeTarget]:
    with kube_target() as target:
        yield target


@pytest.fixture
def kube_double_factory() -> Iterator[Callable[..., KubeAPIDouble]]:
    started: list[KubeAPIDouble] = []

    def make(**options: Any) -> KubeAPIDouble:
        api = KubeAPIDouble(**options).start()
        started.append(api)
        return api

    yield make
    for api in reversed(started):
        api.stop()


@pytest.fixture
def kube_double(kube_double_factory: Callable[..., KubeAPIDouble]) -> KubeAPIDouble:
    return kube_double_factory()
