"""An installed driftgate has no tests/ tree: the demo's Kubernetes steps say
plainly what they need instead of failing on `python -m tests.kubeapi`."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftgate import demo


def test_the_demo_says_its_kubernetes_steps_need_a_cluster_or_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "CHECKOUT", tmp_path / "site-packages")  # as when installed from a wheel
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))  # and no cluster answers
    with demo._kubernetes_cluster(tmp_path) as (kubeconfig, description):
        assert (kubeconfig, description) == (None, None)
    demo._kubernetes_steps(None, tmp_path)  # type: ignore[arg-type]  # returns before it needs the world
    out = " ".join(capsys.readouterr().out.split())
    assert "8-10. Skipped: the Kubernetes steps need a cluster" in out
    assert "make demo` in a clone of the driftgate repository" in out
    assert not (tmp_path / "kubeconfig").exists()  # no API double was started


def test_in_a_checkout_the_demo_starts_the_api_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    with demo._kubernetes_cluster(tmp_path) as (kubeconfig, description):
        assert kubeconfig == str(tmp_path / "kubeconfig") and Path(kubeconfig).is_file()
        assert description is not None and "API double" in description
