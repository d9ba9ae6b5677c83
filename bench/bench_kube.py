#!/usr/bin/env python
"""Benchmark: driftgate's Kubernetes target at 1,000 objects, against the API double.

Run on demand from the repository root (not a pytest test):

    .venv/bin/python bench/bench_kube.py            # ~1-2 minutes on 2 cores
    .venv/bin/python bench/bench_kube.py --json out.json

What it does, in one process after imports (DRIFTGATE_HOME in a temp dir):

* builds a real Git repository with 1,010 objects: 10 Namespaces, and in each
  25 apps of ConfigMap + Secret + Deployment + Service (one file per app);
* starts two API doubles (`tests.kubeapi.KubeAPIDouble`, ready_delay 0): one
  for driftgate, one for the baseline, so both see identical clusters;
* phases, each for driftgate (fetch -> render -> plan [-> apply], through
  `driftgate.git` / `driftgate.targets`, as the CLI runs them) and for the
  BASELINE (the raw `kubernetes` client making only the unavoidable requests:
  one LIST per kind, one server-side-apply dry-run per changed object, and for
  the first sync the applies):
    1. first sync (plan + apply + wait for the Deployments)
    2. no-op plan, comparison cache warm (median of several runs)
    3. plan after a commit that changes 10 objects
* per phase: wall time, requests from the double's log (total, LIST,
  dry-run PATCH, other) and tracemalloc's peak (from a separate, traced
  repetition of the same phase from the same state, so tracing does not
  slow the timed run);
* the CLI's wall time for `driftgate plan ENV` (the console script, a
  subprocess; median of several runs), no-op case.

Exit status 1 when a target fails:
  no-op plan <= 1.5x the baseline and < 3 s; the 10-change plan <= 10 dry-runs.

By default each double runs in a child process (`--double process`), so the
measured process holds only the client: tracemalloc's peak and the wall time
are the client's, not the simulated API server's (which shares the GIL and the
heap when it runs in a thread). `--double thread` runs them in-process instead.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import cProfile
import hashlib
import io
import json
import multiprocessing as mp
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAMESPACES = 10
APPS_PER_NAMESPACE = 25  # x 4 kinds x 10 namespaces = 1,000 objects (+ 10 Namespaces)
ENV_NAME = "bench"
FIELD_MANAGER = "driftgate"
MANAGED_BY = "app.kubernetes.io/managed-by"
ENVIRONMENT_LABEL = "driftgate.io/environment"
# (namespace index, app index, kind) changed by the "10 changes" commit
CHANGED = [
    (0, 3, "ConfigMap"), (1, 7, "ConfigMap"), (2, 11, "ConfigMap"), (3, 15, "ConfigMap"),
    (4, 19, "Deployment"), (5, 23, "Deployment"), (6, 2, "Deployment"),
    (7, 6, "Secret"), (8, 10, "Secret"),
    (9, 14, "Service"),
]  # fmt: skip

TARGET_RATIO = 1.5
TARGET_SECONDS = 3.0
TARGET_DRY_RUNS = 10


# ---------------------------------------------------------------- the Git repository


def ns_name(n: int) -> str:
    return f"bench-{n:02d}"


def app_documents(n: int, i: int, changed: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    ns, app = ns_name(n), f"app-{i:02d}"
    labels = {"app": app, "tier": "web" if i % 2 else "worker"}
    config = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{app}-config", "namespace": ns},
        "data": {"LOG_LEVEL": "debug" if "ConfigMap" in changed else "info", "WORKERS": str(2 + i % 4),
                 "FEATURE_FLAGS": "search,checkout,recommendations",
                 "app.properties": "\n".join(f"setting.{k}=value-{k}" for k in range(8)) + "\n"},
    }  # fmt: skip
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{app}-secret", "namespace": ns},
        "type": "Opaque",
        "data": {"password": base64.b64encode(f"{app}-{ns}-{'v2' if 'Secret' in changed else 'v1'}".encode()).decode(),
                 "api-key": base64.b64encode(hashlib.sha256(f"{ns}/{app}".encode()).hexdigest().encode()).decode()},
    }  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "app", "image": f"registry.example.com/{app}:{'1.4.1' if 'Deployment' in changed else '1.4.0'}",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "envFrom": [{"configMapRef": {"name": f"{app}-config"}}],
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": f"{app}-secret", "key": "password"}}}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                }]},
            },
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns, "labels": labels},
        "spec": {"selector": {"app": app},
                 "ports": [{"name": "http", "port": 8081 if "Service" in changed else 80, "targetPort": "http"}]},
    }  # fmt: skip
    return [config, secret, deployment, service]


def write_app(repo: Path, n: int, i: int, changed: frozenset[str] = frozenset()) -> str:
    import yaml

    path = f"k8s/{ns_name(n)}/app-{i:02d}.yaml"
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(yaml.safe_dump_all(app_documents(n, i, changed), sort_keys=False))
    return path


def create_repo(root: Path) -> Path:
    import git
    import yaml

    repo_dir = root / "repo"
    repo_dir.mkdir(parents=True)
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Bench")
        cfg.set_value("user", "email", "bench@example.com")
        cfg.set_value("commit", "gpgsign", "false")
    paths = []
    for n in range(NAMESPACES):
        path = f"k8s/{ns_name(n)}/namespace.yaml"
        (repo_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / path).write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": ns_name(n)}}))
        paths.append(path)
        paths += [write_app(repo_dir, n, i) for i in range(APPS_PER_NAMESPACE)]
    repo.index.add(paths)
    repo.index.commit("bench: 10 namespaces x 25 apps (ConfigMap, Secret, Deployment, Service)")
    return repo_dir


def commit_ten_changes(repo_dir: Path) -> str:
    import git

    repo = git.Repo(repo_dir)
    paths = [write_app(repo_dir, n, i, frozenset({kind})) for n, i, kind in CHANGED]
    repo.index.add(paths)
    return repo.index.commit("bench: change 10 objects").hexsha


def write_config(root: Path, repo_dir: Path, kubeconfig: str) -> Path:
    import yaml

    config = {"environments": {ENV_NAME: {
        "source": {"repo": str(repo_dir), "ref": "main", "path": "k8s"},
        "render": {"kind": "plain"},
        "target": {"kind": "kubernetes", "kubeconfig": kubeconfig, "namespace": ns_name(0), "prune": True,
                   "health_timeout": "120s"},
        "approval": {"mode": "risky", "timeout": "10m"},
    }}}  # fmt: skip
    path = root / "driftgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------- the API doubles


def _serve_double(conn: Any, kubeconfig_path: str, ready_delay: float) -> None:
    """Child process: a KubeAPIDouble answering method calls sent over a pipe."""
    from tests.kubeapi import KubeAPIDouble

    with KubeAPIDouble(ready_delay=ready_delay, job_delay=ready_delay, kubeconfig_path=kubeconfig_path) as api:
        conn.send(api.url)
        while True:
            name, args, kwargs = conn.recv()
            if name == "stop":
                conn.send(("ok", None))
                return
            try:
                value = getattr(api, name)
                conn.send(("ok", value(*args, **kwargs) if callable(value) else value))
            except Exception as exc:  # noqa: BLE001
                conn.send(("error", repr(exc)))


class Double:
    """A KubeAPIDouble in a thread (this process) or in a child process; the same calls either way."""

    def __init__(self, mode: str, kubeconfig_path: str, ready_delay: float) -> None:
        self.mode, self.kubeconfig_path = mode, kubeconfig_path
        if mode == "thread":
            from tests.kubeapi import KubeAPIDouble

            self._api = KubeAPIDouble(ready_delay=ready_delay, job_delay=ready_delay, kubeconfig_path=kubeconfig_path)
            self._api.start()
            self.url = self._api.url
        else:
            ctx = mp.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve_double, args=(child, kubeconfig_path, ready_delay), daemon=True)
            self._proc.start()
            if not self._conn.poll(60):
                raise RuntimeError("the API double did not start")
            self.url = self._conn.recv()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "thread":
            value = getattr(self._api, name)
            return value(*args, **kwargs) if callable(value) else value
        self._conn.send((name, args, kwargs))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"double.{name}: {value}")
        return value

    def reset_requests(self) -> None:
        self.call("reset_requests")

    def reset(self) -> None:
        self.call("reset")

    def counts(self) -> "Counts":
        requests = self.call("requests")
        kinds = Counter()
        for r in requests:
            if not r.resource:
                kinds["discovery"] += 1
            elif r.verb == "list":
                kinds["list"] += 1
            elif r.method == "PATCH" and r.dry_run:
                kinds["dry-run patch"] += 1
            elif r.verb == "apply":
                kinds["apply"] += 1
            elif r.verb == "get":
                kinds["get"] += 1
            else:
                kinds[f"{r.method} {r.verb}"] += 1
        return Counts(total=len(requests), lists=self.call("count_lists"),
                      dry_runs=self.call("count_dry_run_patches"), detail=dict(kinds))

    def stop(self) -> None:
        if self.mode == "thread":
            self._api.stop()
        else:
            with contextlib.suppress(Exception):
                self.call("stop")
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()


@dataclass
class Counts:
    total: int = 0
    lists: int = 0
    dry_runs: int = 0
    detail: dict[str, int] = field(default_factory=dict)

    @property
    def other(self) -> int:
        return self.total - self.lists - self.dry_runs

    def other_text(self) -> str:
        rest = {k: v for k, v in sorted(self.detail.items()) if k not in ("list", "dry-run patch")}
        return ", ".join(f"{v} {k}" for k, v in rest.items()) or "-"


# ---------------------------------------------------------------- driftgate (the engine)


class Driftgate:
    """fetch -> render -> plan [-> apply], as `driftgate plan` / the sync flow call the engine."""

    def __init__(self, config_path: Path) -> None:
        from driftgate.config import load_config

        self.config_path = config_path
        self.env = load_config(config_path).environment(ENV_NAME)
        self.split: dict[str, float] = {}

    def _stages(self) -> tuple[Any, Any, Any]:
        from driftgate import git, targets
        from driftgate.access import local_access
        from driftgate.config import load_config

        t0 = time.perf_counter()
        env = load_config(self.config_path).environment(ENV_NAME)
        access = local_access(env)
        checkout = git.fetch(env.source, environment=env.name)
        t1 = time.perf_counter()
        bundle = targets.render(env, checkout, access=access)
        t2 = time.perf_counter()
        self.split = {"fetch": t1 - t0, "render": t2 - t1}
        return env, bundle, access

    def plan(self) -> Any:
        from driftgate import targets

        env, bundle, access = self._stages()
        t0 = time.perf_counter()
        result = targets.plan(env, bundle, access)
        self.split["plan"] = time.perf_counter() - t0
        return result

    def sync(self) -> Any:
        from driftgate import targets

        env, bundle, access = self._stages()
        t0 = time.perf_counter()
        plan = targets.plan(env, bundle, access)
        t1 = time.perf_counter()
        result = targets.apply(env, bundle, access, plan)
        self.split.update({"plan": t1 - t0, "apply+health": time.perf_counter() - t1})
        if not result.succeeded:
            failed = [h.host for h in result.hosts if h.failed][:5]
            raise RuntimeError(f"driftgate's first sync failed: {failed}")
        return plan


# ---------------------------------------------------------------- the baseline (raw client)


KIND_ORDER = {"Namespace": 0, "ConfigMap": 1, "Secret": 1, "Deployment": 2, "Service": 2}
_SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp")


class Baseline:
    """The fewest requests a plan can make with the official client: one LIST per
    kind, one server-side-apply dry-run per object whose (desired, live
    resourceVersion) pair it has not compared before; the first sync applies.
    Desired state is read from the repository's working tree (libyaml)."""

    def __init__(self, repo_dir: Path, kubeconfig: str) -> None:
        from kubernetes import client, config

        self.repo_dir = repo_dir
        self.api_client = config.new_client_from_config(config_file=kubeconfig)
        core, apps = client.CoreV1Api(self.api_client), client.AppsV1Api(self.api_client)
        self.kinds: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
            "Namespace": (core.list_namespace, lambda name, ns, body, **kw: core.patch_namespace(name, body, **kw)),
            "ConfigMap": (core.list_config_map_for_all_namespaces, core.patch_namespaced_config_map),
            "Secret": (core.list_secret_for_all_namespaces, core.patch_namespaced_secret),
            "Deployment": (apps.list_deployment_for_all_namespaces, apps.patch_namespaced_deployment),
            "Service": (core.list_service_for_all_namespaces, core.patch_namespaced_service),
        }  # type: ignore[assignment]
        self.cache: dict[tuple[str, str, str], tuple[str, str, bool]] = {}  # identity -> (hash, rv, changed)
        self.split: dict[str, float] = {}

    def desired(self) -> list[dict[str, Any]]:
        import yaml

        objects = []
        for path in sorted((self.repo_dir / "k8s").rglob("*.yaml")):
            for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
                if doc:
                    labels = doc["metadata"].setdefault("labels", {})
                    labels.update({MANAGED_BY: "driftgate", ENVIRONMENT_LABEL: ENV_NAME})
                    objects.append(doc)
        return sorted(objects, key=lambda o: KIND_ORDER[o["kind"]])

    def live(self, kinds: set[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
        found = {}
        for kind in sorted(kinds):
            body = json.loads(self.kinds[kind][0](_preload_content=False).data)
            api_version = "apps/v1" if kind == "Deployment" else "v1"
            for item in body["items"]:
                item.update(apiVersion=api_version, kind=kind)  # list items carry neither
                meta = item["metadata"]
                found[(kind, meta.get("namespace", ""), meta["name"])] = item
        return found

    def _apply(self, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        meta = obj["metadata"]
        extra = {"dry_run": "All"} if dry_run else {}
        response = self.kinds[obj["kind"]][1](
            meta["name"], meta.get("namespace", ""), obj, field_manager=FIELD_MANAGER, force=False,
            _content_type="application/apply-patch+yaml", _preload_content=False, **extra,
        )
        return json.loads(response.data)

    def plan(self) -> list[tuple[str, str, str]]:
        t0 = time.perf_counter()
        desired = self.desired()
        t1 = time.perf_counter()
        live = self.live({o["kind"] for o in desired})
        t2 = time.perf_counter()
        changed = []
        for obj in desired:
            meta = obj["metadata"]
            identity = (obj["kind"], meta.get("namespace", ""), meta["name"])
            current = live.get(identity)
            digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
            rv = (current or {}).get("metadata", {}).get("resourceVersion", "-")
            known = self.cache.get(identity)
            if known is None or known[:2] != (digest, rv):
                differs = current is None or _normalized(self._apply(obj, dry_run=True)) != _normalized(current)
                known = (digest, rv, differs)
                self.cache[identity] = known
            if known[2]:
                changed.append(identity)
        self.split = {"read desired": t1 - t0, "lists": t2 - t1, "compare": time.perf_counter() - t2}
        return changed

    def sync(self) -> None:
        t0 = time.perf_counter()
        desired = self.desired()
        self.live({o["kind"] for o in desired})
        t1 = time.perf_counter()
        for obj in desired:  # Namespaces first (sorted by KIND_ORDER)
            self._apply(obj, dry_run=False)
        t2 = time.perf_counter()
        wait_rolled_out(self.api_client, 120)
        self.split = {"read+lists": t1 - t0, "applies": t2 - t1, "health": time.perf_counter() - t2}


def _normalized(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    for key in _SERVER_METADATA:
        out["metadata"].pop(key, None)
    return out


def _deployments(api_client: Any) -> dict[str, Any]:
    from kubernetes import client

    return json.loads(client.AppsV1Api(api_client).list_deployment_for_all_namespaces(_preload_content=False).data)


def _rolled_out(d: dict[str, Any]) -> bool:
    status, spec = d.get("status") or {}, d.get("spec") or {}
    return (status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
            and (status.get("availableReplicas") or 0) >= spec.get("replicas", 1)
            and (status.get("updatedReplicas") or 0) >= spec.get("replicas", 1))  # fmt: skip


def wait_rolled_out(api_client: Any, timeout: float) -> None:
    """One LIST per poll until every Deployment is available."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_rolled_out(d) for d in _deployments(api_client)["items"]):
            return
        time.sleep(0.1)
    raise RuntimeError("Deployments did not roll out")


def settle(api_client: Any, timeout: float = 60) -> None:
    """Wait until every Deployment is available and nothing is written any more
    (the list resourceVersion is the cluster's: unchanged for 1 s = quiet)."""
    from kubernetes import client

    wait_rolled_out(api_client, timeout)
    core = client.CoreV1Api(api_client)
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rv = json.loads(core.list_namespace(limit=1, _preload_content=False).data)["metadata"]["resourceVersion"]
        if rv != last:
            last, since = rv, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return
        time.sleep(0.2)
    raise RuntimeError("the cluster did not settle")


# ---------------------------------------------------------------- measuring


@dataclass
class Measure:
    seconds: float
    counts: Counts
    peak_mb: float = 0.0
    split: dict[str, float] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)
    note: str = ""


def timed(double: Double, fn: Callable[[], Any]) -> tuple[float, Counts, Any]:
    double.reset_requests()
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    return seconds, double.counts(), value


def traced_peak(fn: Callable[[], Any]) -> float:
    """tracemalloc's peak over fn(), in MiB above what was allocated when it started."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - start) / 2**20


@contextlib.contextmanager
def snapshot_home(home: Path):
    """Copy DRIFTGATE_HOME aside; `restore()` puts it back (the comparison cache, renders)."""
    saved = home.parent / (home.name + ".saved")
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(home, saved, symlinks=True)

    def restore() -> None:
        shutil.rmtree(home)
        shutil.copytree(saved, home, symlinks=True)

    try:
        yield restore
    finally:
        shutil.rmtree(saved, ignore_errors=True)


def profile(fn: Callable[[], Any], limit: int = 25) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def cli_runs(config: Path, home: Path, runs: int) -> tuple[list[float], int]:
    exe = ROOT / ".venv" / "bin" / "driftgate"
    env = {**os.environ, "DRIFTGATE_HOME": str(home)}
    times, code = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), "plan", ENV_NAME, "--config", str(config)], env=env,
                              capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - t0)
        code = proc.returncode
        if code not in (0, 2):
            raise RuntimeError(f"driftgate plan failed ({code}): {proc.stderr[-2000:]}")
    return times, code


# ---------------------------------------------------------------- the run


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--double", choices=("process", "thread"), default="process",
                        help="where the API doubles run (default: child processes)")
    parser.add_argument("--ready-delay", type=float, default=0.0, help="the doubles' simulated rollout time")
    parser.add_argument("--noop-runs", type=int, default=5, help="timed no-op plans (median)")
    parser.add_argument("--cli-runs", type=int, default=5, help="`driftgate plan` subprocess runs (median)")
    parser.add_argument("--no-memory", action="store_true", help="skip the traced repetitions")
    parser.add_argument("--profile", action="store_true", help="cProfile one no-op and the 10-change plan")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="driftgate-bench-"))
    home = tmp / "home"
    os.environ["DRIFTGATE_HOME"] = str(home)
    doubles: list[Double] = []
    try:
        return run(args, tmp, home, doubles)
    finally:
        for d in doubles:
            d.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def run(args: argparse.Namespace, tmp: Path, home: Path, doubles: list[Double]) -> int:
    t_start = time.perf_counter()
    # Imports first: measured phases run after them.
    import kubernetes.client  # noqa: F401

    from driftgate import kube, targets  # noqa: F401

    log(f"starting two API doubles ({args.double}, ready_delay={args.ready_delay})")
    dg_double = Double(args.double, str(tmp / "kubeconfig-driftgate"), args.ready_delay)
    doubles.append(dg_double)
    base_double = Double(args.double, str(tmp / "kubeconfig-baseline"), args.ready_delay)
    doubles.append(base_double)
    repo_dir = create_repo(tmp)
    config = write_config(tmp, repo_dir, dg_double.kubeconfig_path)
    dg = Driftgate(config)
    base = Baseline(repo_dir, base_double.kubeconfig_path)
    dg_probe = Baseline(repo_dir, dg_double.kubeconfig_path).api_client  # settle/health checks only
    results: dict[str, dict[str, Measure]] = {}

    # 1. first sync -------------------------------------------------------------
    log("first sync: driftgate (fetch, render, plan, apply, health)")
    home.mkdir(parents=True, exist_ok=True)
    with snapshot_home(home) as restore_home:
        seconds, counts, plan = timed(dg_double, dg.sync)
        objects = len(plan.changes)
        dg_first = Measure(seconds, counts, split=dict(dg.split))
        log("first sync: baseline (LIST per kind, one apply per object, wait for Deployments)")
        seconds, counts, _ = timed(base_double, base.sync)
        base_first = Measure(seconds, counts, split=dict(base.split))
        if not args.no_memory:
            log("first sync again, traced (fresh clusters)")
            dg_double.reset()
            base_double.reset()
            restore_home()
            dg_first.peak_mb = traced_peak(dg.sync)
            base.cache.clear()
            base_first.peak_mb = traced_peak(base.sync)
    results["first sync"] = {"driftgate": dg_first, "baseline": base_first}

    # 2. no-op plan -------------------------------------------------------------
    log("settling: waiting until the simulated controller has finished writing status")
    settle(dg_probe)
    settle(base.api_client)
    warm_notes = []
    for name, double, fn in (("driftgate", dg_double, dg.plan), ("baseline", base_double, base.plan)):
        for attempt in range(1, 5):
            _, counts, _ = timed(double, fn)
            warm_notes.append(f"{name} warm-up plan {attempt}: {counts.dry_runs} dry-runs")
            if counts.dry_runs == 0:
                break
        else:
            warm_notes.append(f"{name}: plans still make dry-runs after 4 warm-ups")
    for note in warm_notes:
        log(note)

    log(f"no-op plan: {args.noop_runs} timed runs each, interleaved (both see the same machine load)")
    sides = {"driftgate": (dg_double, dg.plan, dg), "baseline": (base_double, base.plan, base)}
    runs: dict[str, list[float]] = {name: [] for name in sides}
    splits: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    last: dict[str, Counts] = {}
    for _ in range(args.noop_runs):
        for name, (double, fn, splitter) in sides.items():
            seconds, last[name], value = timed(double, fn)
            runs[name].append(seconds)
            splits[name].append(dict(splitter.split))
            changes = len(value.changes) if name == "driftgate" else len(value)
            if changes:
                raise RuntimeError(f"{name}: the no-op plan has {changes} changes")
    noop: dict[str, Measure] = {}
    for name, (double, fn, _) in sides.items():
        split = {k: statistics.median(s[k] for s in splits[name]) for k in splits[name][0]}
        noop[name] = Measure(statistics.median(runs[name]), last[name], split=split, runs=runs[name])
        if not args.no_memory:
            noop[name].peak_mb = traced_peak(fn)
    results["no-op plan"] = noop

    profiles = {}
    if args.profile:
        profiles["no-op plan"] = profile(dg.plan)

    # CLI (no-op) ---------------------------------------------------------------
    log(f"CLI: `driftgate plan {ENV_NAME}` x {args.cli_runs} (subprocess, no-op)")
    cli_times, cli_code = cli_runs(config, home, args.cli_runs - 1)
    dg_double.reset_requests()
    cli_times += cli_runs(config, home, 1)[0]  # the last run's requests are counted
    cli_counts = dg_double.counts()

    # 3. ten changed objects ----------------------------------------------------
    log("committing a change to 10 objects")
    commit_ten_changes(repo_dir)
    ten: dict[str, Measure] = {}
    with snapshot_home(home) as restore_home:
        saved_cache = dict(base.cache)
        seconds, counts, plan = timed(dg_double, dg.plan)
        ten["driftgate"] = Measure(seconds, counts, split=dict(dg.split),
                                   note=f"{len(plan.changes)} changes: {Counter(c.action.value for c in plan.changes)}")
        seconds, counts, changed = timed(base_double, base.plan)
        ten["baseline"] = Measure(seconds, counts, split=dict(base.split), note=f"{len(changed)} changes")
        if not args.no_memory:
            restore_home()
            ten["driftgate"].peak_mb = traced_peak(dg.plan)
            base.cache = dict(saved_cache)
            ten["baseline"].peak_mb = traced_peak(base.plan)
        if args.profile:
            restore_home()
            profiles["10-change plan"] = profile(dg.plan)
    results["10-change plan"] = ten

    # report ----------------------------------------------------------------------
    print()
    print(f"driftgate Kubernetes benchmark: {objects} objects, {NAMESPACES} namespaces, "
          f"double in a {args.double}, ready_delay={args.ready_delay}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}")
    header = f"{'phase':<16}{'who':<11}{'wall s':>8}{'requests':>10}{'LIST':>6}{'dry-run':>9}{'other':>7}{'peak MiB':>10}  other requests / split"
    print(header)
    print("-" * len(header))
    for phase, pair in results.items():
        for who in ("driftgate", "baseline"):
            m = pair[who]
            split = ", ".join(f"{k} {v:.2f}" for k, v in m.split.items())
            peak = f"{m.peak_mb:10.1f}" if not args.no_memory else f"{'-':>10}"
            print(f"{phase:<16}{who:<11}{m.seconds:8.2f}{m.counts.total:10d}{m.counts.lists:6d}"
                  f"{m.counts.dry_runs:9d}{m.counts.other:7d}{peak}  {m.counts.other_text()} | {split}")
        d, b = pair["driftgate"], pair["baseline"]
        ratio_mem = f"{d.peak_mb / b.peak_mb:10.2f}" if not args.no_memory and b.peak_mb else f"{'-':>10}"
        print(f"{phase:<16}{'ratio':<11}{d.seconds / b.seconds:8.2f}{d.counts.total / max(b.counts.total, 1):10.2f}"
              f"{'':6}{'':9}{'':7}{ratio_mem}")
    print(f"no-op plan runs (s): driftgate {', '.join(f'{t:.2f}' for t in noop['driftgate'].runs)}; "
          f"baseline {', '.join(f'{t:.2f}' for t in noop['baseline'].runs)}")
    print(f"10-change plan: driftgate {ten['driftgate'].note}; baseline {ten['baseline'].note}")
    cli_median = statistics.median(cli_times)
    print(f"CLI `driftgate plan {ENV_NAME}` (no-op, subprocess): median {cli_median:.2f} s over {len(cli_times)} runs "
          f"({', '.join(f'{t:.2f}' for t in cli_times)}); exit {cli_code}; requests {cli_counts.total} "
          f"({cli_counts.lists} LIST, {cli_counts.dry_runs} dry-run, {cli_counts.other_text()})")

    noop_ratio = noop["driftgate"].seconds / noop["baseline"].seconds
    checks = [
        (f"no-op plan within {TARGET_RATIO}x the baseline", noop_ratio <= TARGET_RATIO,
         f"{noop['driftgate'].seconds:.2f} s / {noop['baseline'].seconds:.2f} s = {noop_ratio:.2f}x"),
        (f"no-op plan under {TARGET_SECONDS:.0f} s", noop["driftgate"].seconds < TARGET_SECONDS,
         f"{noop['driftgate'].seconds:.2f} s"),
        (f"10-change plan makes <= {TARGET_DRY_RUNS} dry-runs", ten["driftgate"].counts.dry_runs <= TARGET_DRY_RUNS,
         f"{ten['driftgate'].counts.dry_runs} dry-run PATCHes"),
    ]
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(f"(total benchmark time {time.perf_counter() - t_start:.0f} s)")
    for phase, text in profiles.items():
        print(f"\n--- cProfile: driftgate {phase} (cumulative) ---\n{text}")

    if args.json:
        args.json.write_text(json.dumps({
            "objects": objects, "double": args.double, "cores": os.cpu_count(),
            "phases": {p: {w: {"seconds": m.seconds, "requests": m.counts.total, "lists": m.counts.lists,
                               "dry_runs": m.counts.dry_runs, "other": m.counts.detail, "peak_mib": m.peak_mb,
                               "split": m.split, "runs": m.runs, "note": m.note} for w, m in pair.items()}
                       for p, pair in results.items()},
            "cli_plan_seconds": cli_times, "warm_up": warm_notes,
            "targets": [{"target": n, "pass": ok, "detail": d} for n, ok, d in checks],
        }, indent=2))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
