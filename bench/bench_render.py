#!/usr/bin/env python
"""Benchmark: plan after a commit in a 10,000-object Kubernetes environment of a monorepo.

    .venv/bin/python bench/bench_render.py [--objects N] [--rounds R] [--double thread]

A repository with one directory per tenant: ``tenants/a`` holds the measured
environment (N ConfigMaps, one file each, ``render.kind: plain``), ``tenants/b``
another tenant's few files. After a first sync into the API double
(`tests.kubeapi.KubeAPIDouble`, in a child process by default, as bench_kube.py
runs it) and a no-op plan that warms the comparison cache, each round makes
commits and plans after each one, as `driftgate plan` runs the engine (fetch →
render → plan, in this process):

* **elsewhere**: a commit to ``tenants/b`` only; the bundle is kept (the render
  cache is keyed by the tree of the environment's path);
* **one file**: a commit changing one ConfigMap under ``tenants/a``: a new tree,
  rendered, each unchanged file's documents from this process's memory
  (`driftgate.parsedfiles`), as a long-lived process (a fleet, a worker) has them;
* **one file, nothing parsed**: the same with that memory emptied first, as the
  CLI's `driftgate plan` starts: every file read and parsed;
* **any commit, before**: a commit to ``tenants/b`` with ``renders/`` and that
  memory emptied: what any new commit cost when the cache was keyed by commit.

The "one file" plans make one dry-run (the changed object) and are applied
afterwards, not timed, so that the next case starts in sync.

Per case: the median over the rounds of wall time, and of its fetch, render and
plan parts. Not a test: figures go into README.md and bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import git
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_kube import Double  # noqa: E402  (the API double in a child process)

ENV_NAME = "tenant-a"
CASES = ("elsewhere", "one file", "one file, nothing parsed", "any commit, before")
NAMESPACE = "tenant-a"


def configmap(i: int, value: str = "1") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05d}\ndata:\n  key: '{value}'\n"


def create_repo(root: Path, objects: int) -> Path:
    repo_dir = root / "repo"
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Bench").set_value("user", "email", "bench@example.com")
        config.set_value("commit", "gpgsign", "false")
    (repo_dir / "tenants/a").mkdir(parents=True)
    (repo_dir / "tenants/b").mkdir(parents=True)
    (repo_dir / "tenants/a/namespace.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n")
    for i in range(objects - 1):
        (repo_dir / f"tenants/a/cm-{i:05d}.yaml").write_text(configmap(i))
    (repo_dir / "tenants/b/cm.yaml").write_text(configmap(0))
    repo.git.add(A=True)
    repo.git.commit("-q", "-m", "two tenants")
    return repo_dir


def commit(repo_dir: Path, path: str, text: str, message: str) -> str:
    (repo_dir / path).write_text(text)
    repo = git.Repo(repo_dir)
    repo.git.add(path)
    repo.git.commit("-q", "-m", message)
    return repo.head.commit.hexsha


def write_config(root: Path, repo_dir: Path, kubeconfig: str) -> Path:
    config = root / "driftgate.yaml"
    config.write_text(yaml.safe_dump({"environments": {ENV_NAME: {
        "source": {"repo": str(repo_dir), "ref": "main", "path": "tenants/a"},
        "render": {"kind": "plain"},
        "target": {"kind": "kubernetes", "kubeconfig": kubeconfig, "namespace": NAMESPACE},
        "approval": {"mode": "never"},
    }}}))  # fmt: skip
    return config


def plan_once(config: Path, *, apply: bool = False) -> tuple[Any, dict[str, float]]:
    """fetch → render → plan (→ apply, not timed), as `driftgate plan` and a sync
    call the engine; the time of each stage."""
    from driftgate import git as driftgate_git
    from driftgate import targets
    from driftgate.access import local_access
    from driftgate.config import load_config

    t0 = time.perf_counter()
    env = load_config(config).environment(ENV_NAME)
    access = local_access(env)
    checkout = driftgate_git.fetch(env.source, environment=env.name)
    t1 = time.perf_counter()
    bundle = targets.render(env, checkout, access=access)
    t2 = time.perf_counter()
    plan = targets.plan(env, bundle, access)
    t3 = time.perf_counter()
    assert plan.revision == checkout.commit, "a plan must name the commit it planned"
    if apply and not targets.apply(env, bundle, access, plan).succeeded:
        raise RuntimeError("the first sync failed")
    return plan, {"wall": t3 - t0, "fetch": t1 - t0, "render": t2 - t1, "plan": t3 - t2, "kept": float(bundle.cached)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--double", choices=("process", "thread"), default="process")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="driftgate-bench-render-"))
    os.environ["DRIFTGATE_HOME"] = str(tmp / "home")
    double = Double(args.double, str(tmp / "kubeconfig"), ready_delay=0)
    try:
        return run(args, tmp, double)
    finally:
        double.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, double: Double) -> int:
    repo_dir = create_repo(tmp, args.objects)
    config = write_config(tmp, repo_dir, double.kubeconfig_path)
    print(f"{args.objects} objects in tenants/a; first sync …", flush=True)
    started = time.perf_counter()
    plan_once(config, apply=True)
    print(f"  {time.perf_counter() - started:.1f} s; warming the comparison cache …", flush=True)
    for _ in range(2):
        plan_once(config)

    from driftgate.parsedfiles import PARSED

    renders = Path(os.environ["DRIFTGATE_HOME"]) / "renders"
    cases: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    for n in range(args.rounds):
        commit(repo_dir, "tenants/b/cm.yaml", configmap(0, f"b{n}"), f"tenant b, round {n}")
        plan, split = plan_once(config)
        assert split["kept"] and plan.in_sync, "a commit elsewhere keeps the bundle and changes nothing"
        cases["elsewhere"].append(split)

        commit(repo_dir, f"tenants/a/cm-{2 * n:05d}.yaml", configmap(2 * n, f"a{n}"), f"tenant a, round {n}")
        plan, split = plan_once(config, apply=True)  # applied after it is timed: the next case starts in sync
        assert not split["kept"] and len(plan.changes) == 1, plan.changes
        cases["one file"].append(split)

        commit(repo_dir, f"tenants/a/cm-{2 * n + 1:05d}.yaml", configmap(2 * n + 1, f"a{n}"), f"tenant a again, round {n}")
        PARSED.clear()
        plan, split = plan_once(config, apply=True)
        assert not split["kept"] and len(plan.changes) == 1, plan.changes
        cases["one file, nothing parsed"].append(split)

        commit(repo_dir, "tenants/b/cm.yaml", configmap(0, f"b{n}-again"), f"tenant b again, round {n}")
        shutil.rmtree(renders)
        PARSED.clear()
        plan, split = plan_once(config)
        assert not split["kept"] and plan.in_sync
        cases["any commit, before"].append(split)
        print(f"  round {n + 1}/{args.rounds} done", flush=True)

    print(f"\nplan after a commit, {args.objects} objects, median of {args.rounds} (seconds)")
    print(f"{'case':<28} {'wall':>7} {'fetch':>7} {'render':>7} {'plan':>7}")
    for name, splits in cases.items():
        median = {k: statistics.median(s[k] for s in splits) for k in ("wall", "fetch", "render", "plan")}
        print(f"{name:<28} {median['wall']:7.2f} {median['fetch']:7.2f} {median['render']:7.2f} {median['plan']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
