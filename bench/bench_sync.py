"""What driftgate and Prefect add to an Ansible sync: `driftgate sync` against raw ansible-playbook.

    .venv/bin/python bench/bench_sync.py [--runs N]

The demo world (a real Git repository, a 3-task playbook for localhost, a
host folder) with `approval.mode: never`, and a real `prefect server start`
on a free loopback port with its own PREFECT_HOME (as a team's server would
be: the temporary server's start-up is not what is measured). Each round
empties the host folder, so every run has the same 3 changes, then runs, in
turn, each of:

- raw: `ansible-playbook --check --diff` then `ansible-playbook --diff`, the
  same playbook, inventory and variables: the floor;
- engine: driftgate's engine in a fresh process, no Prefect (fetch, render,
  check, apply, as the stages of a sync do; `python -c`);
- sync: `driftgate sync demo` against the server: the whole thing (the CLI's
  imports, the flow and task runs, the record, artifacts, the sync slot).

Wall and CPU (the process and its children; the Prefect server's own CPU is
not counted) per variant, median of N rounds, and what `sync` adds over raw.
Not a test: the figures go into the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from driftgate.demo_repo import DemoWorld, create_demo_world

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the tests' real `prefect server start`, on loopback

from tests.conftest import running_prefect_server  # noqa: E402

ENGINE = """
from driftgate import ansible, git, render
from driftgate.config import load_config
env = load_config({config!r}).environment("demo")
bundle = render.render_bundle(env, git.fetch(env.source, environment="demo"))
plan = ansible.check(env, bundle)
result = ansible.apply(env, bundle)
assert result.succeeded
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the command and everything it waited for) of one run."""
    cpu, wall = children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - wall, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="driftgate-bench-sync-"))
    (root / "prefect").mkdir()
    world = create_demo_world(root / "world")
    data = yaml.safe_load(world.config.read_text())
    data["environments"]["demo"]["approval"] = {"mode": "never"}
    world.config.write_text(yaml.safe_dump(data))
    with running_prefect_server(root / "prefect") as base:
        env = {**os.environ, "DRIFTGATE_HOME": str(root / "home"), "PREFECT_API_URL": f"{base}/api", "DO_NOT_TRACK": "1"}
        samples = measure(world, root, env, args.runs)
    report(samples, args.runs)
    shutil.rmtree(root, ignore_errors=True)


def measure(world: DemoWorld, root: Path, env: dict[str, str], runs: int) -> dict[str, list[tuple[float, float]]]:
    """``runs`` rounds of each variant, in turn; each round starts from an empty host folder."""
    inventory = root / "inventory"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    extra = ["-e", f"demo_root={world.host_root}", "-e", "environment_name=demo"]
    playbook = [str(BIN / "ansible-playbook"), "-i", str(inventory), "site.yml", "--diff", *extra]
    variants = {
        "raw ansible-playbook (check + apply)": lambda: _sum(
            timed([*playbook, "--check"], env, world.repo / "ansible"), timed(playbook, env, world.repo / "ansible")
        ),
        "driftgate engine, no Prefect": lambda: timed([sys.executable, "-c", ENGINE.format(config=str(world.config))], env),
        "driftgate sync": lambda: timed([str(BIN / "driftgate"), "sync", "demo", "--config", str(world.config)], env),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    variants["driftgate sync"]()  # the first sync registers the flow and the deployment-less run's objects
    for _ in range(runs):
        for name, run in variants.items():
            shutil.rmtree(world.host_root / "app", ignore_errors=True)  # the same 3 changes each time
            samples[name].append(run())
    return samples


def report(samples: dict[str, list[tuple[float, float]]], runs: int) -> None:
    print(f"{runs} rounds, median (load average at the end: {os.getloadavg()[0]:.1f})")
    print(f"{'variant':<40} {'wall s':>8} {'CPU s':>8}")
    medians = {name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for name, s in samples.items()}
    for name, (wall, cpu) in medians.items():
        print(f"{name:<40} {wall:8.2f} {cpu:8.2f}")
    raw, sync = medians["raw ansible-playbook (check + apply)"], medians["driftgate sync"]
    print(f"sync adds {sync[0] - raw[0]:.2f} s wall and {sync[1] - raw[1]:.2f} CPU-s over raw (target: at most 1.5 s wall)")


def _sum(*runs: tuple[float, float]) -> tuple[float, float]:
    return sum(w for w, _ in runs), sum(c for _, c in runs)


if __name__ == "__main__":
    main()
