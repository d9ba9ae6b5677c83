"""The one path syntax of driftgate.yaml (driftgate.jsonpath): ignore rules and
risk rules read ``/spec/replicas``, ``spec.replicas`` and ``$.spec.replicas`` alike."""

from __future__ import annotations

import pytest

from driftgate.jsonpath import split_path
from driftgate.kubediff import apply_ignore_rules
from driftgate.models import Action, Change
from driftgate.policy import touches_path
from driftgate.targets.kubernetes import IgnoreRule


@pytest.mark.parametrize(
    "path, keys",
    [
        ("/spec/replicas", ["spec", "replicas"]),
        ("spec.replicas", ["spec", "replicas"]),
        (".spec.replicas", ["spec", "replicas"]),
        ("$.spec.replicas", ["spec", "replicas"]),
        ("$.spec.containers[0].image", ["spec", "containers", "0", "image"]),
        ("spec.containers[*].image", ["spec", "containers", "*", "image"]),
        ("/spec/containers/0/image", ["spec", "containers", "0", "image"]),
        # JSON Pointer escapes: a key holding '/' (annotations) or '~'
        ("/metadata/annotations/example.com~1owner", ["metadata", "annotations", "example.com/owner"]),
        ("/data/a~0b", ["data", "a~b"]),
        (" /spec/replicas ", ["spec", "replicas"]),
        ("/", []),
    ],
)
def test_path_syntax(path: str, keys: list[str]) -> None:
    assert split_path(path) == keys


def test_ignore_rules_and_risk_rules_read_the_same_paths() -> None:
    obj = {"spec": {"replicas": 3, "containers": [{"image": "a"}]}, "metadata": {"annotations": {"example.com/owner": "x"}}}
    for path in ("$.spec.replicas", "/spec/replicas", ".spec.replicas", "spec.replicas"):
        assert "replicas" not in apply_ignore_rules(obj, [IgnoreRule(json_paths=[path])], None)["spec"]
        change = Change(action=Action.UPDATE, target="Deployment/web/api", name="api", paths=("spec.replicas",))
        assert touches_path(change, path), path
    kept = apply_ignore_rules(obj, [IgnoreRule(json_paths=["/metadata/annotations/example.com~1owner"])], None)
    assert kept["metadata"]["annotations"] == {}
    assert apply_ignore_rules(obj, [IgnoreRule(json_paths=["$.spec.containers[0].image"])], None)["spec"]["containers"] == [{}]
    assert apply_ignore_rules(obj, [IgnoreRule(json_paths=["/"])], None) == obj  # never the whole object
