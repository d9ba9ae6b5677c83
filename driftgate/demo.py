"""`driftgate demo`: a whole GitOps loop on this machine, narrated.

Creates a throwaway world (a Git repository with an Ansible playbook, a
"host" folder on localhost, a driftgate.yaml), starts a local Prefect server
on SQLite, and runs the real CLI step by step: plan, sync, a hand edit on the
host, plan (the drift), sync (corrected); a bad commit deployed, then rolled
back (and unpinned once fixed in Git); then a Kubernetes environment
(plan, sync, a hand edit in the cluster corrected, then a signed approval);
then history and the record's verification. Each step runs the real
CLI (the same typer app as the console script, in this process: a process per
step would import Prefect again each time), printed as a person would type it.
Called by the CLI's `demo` command (`make demo`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import yaml
from rich.console import Console
from rich.panel import Panel

from driftgate.demo_repo import (
    KUBE_MANIFESTS,
    DemoWorld,
    add_kubernetes_environment,
    commit_change,
    create_demo_world,
    require_signed_approvals,
)
from driftgate.runlog import current_user

console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)
ENVIRONMENT = "demo"
KUBE_ENVIRONMENT = "shop"
KUBE_NAMESPACE = "driftgate-demo-shop"
CHECKOUT = Path(__file__).resolve().parent.parent  # tests/kubeapi lives here in a checkout
NO_KUBERNETES = (
    "the Kubernetes steps need a cluster (a kubeconfig whose current context answers) or a driftgate "
    "checkout, whose tests/kubeapi holds the Kubernetes API double the demo starts; this installation has "
    "neither. Run `make demo` in a clone of the driftgate repository, or point KUBECONFIG at a cluster."
)


def run_demo(workdir: Path, *, port: int = 4200) -> int:
    """Run the demo in ``workdir`` (recreated); returns the exit code. Sets this
    process's environment for its steps (they run here, see `_driftgate`)."""
    started = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    world = create_demo_world(workdir / "world", environment=ENVIRONMENT)
    prefect_home = workdir / "prefect"
    port = _free_port(port)
    # Before any step: Prefect reads its settings once, when the first sync imports it.
    os.environ.update({
        "DRIFTGATE_HOME": str(workdir / "home"),
        "DRIFTGATE_CONFIG": str(world.config),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "COLUMNS": "120",
    })  # fmt: skip
    console.print(
        Panel.fit(
            "[bold]driftgate demo[/]: Git is the truth for a host; driftgate makes the host match it.\n"
            f"Git repository: {world.repo}   (playbook ansible/site.yml, vars ansible/vars.yml)\n"
            f"The \"host\":     {world.host_root}   (localhost, managed by Ansible)\n"
            f"Config:         {world.config}",
        )
    )
    with _prefect_server(port, workdir / "prefect-server.log") as wait_for_server:
        _say("1. What would a sync change? The host is empty, so: everything.")
        _driftgate("plan", ENVIRONMENT, expect=2)

        _say("2. Sync: the reconcile flow runs fetch → render → diff → gate → apply → record in Prefect.")
        wait_for_server()
        _driftgate("sync", ENVIRONMENT, expect=0)
        _show_file(world)

        _say("3. Someone edits the host by hand (a config line), behind Git's back.")
        world.config_line.write_text("max_connections = 5\n")
        _show_file(world)

        _say("4. plan detects exactly that drift:")
        _driftgate("plan", ENVIRONMENT, expect=2)

        _say("5. sync corrects it:")
        _driftgate("sync", ENVIRONMENT, expect=0)
        _show_file(world)

        _rollback_steps(world)
        _kubernetes_steps(world, workdir)

        _say("11. The record: every run, with its commit, outcome and approval; its hash chain and signatures verified.")
        _driftgate("history", expect=0)
        _driftgate("audit", "verify", expect=0)
    elapsed = time.monotonic() - started
    console.print(
        Panel.fit(
            f"Done in {elapsed:.0f} s. The runs are in the Prefect UI too. To look at them:\n\n"
            "  [bold]make ui[/]   (a Prefect server on the demo's database, PREFECT_HOME=" f"{prefect_home})\n\n"
            "then open [bold]http://127.0.0.1:4200/runs[/] — each sync is a 'reconcile' flow run named after\n"
            f"its environment and commit ('sync {ENVIRONMENT}@…', 'sync {KUBE_ENVIRONMENT}@…'), with its tasks and the plan and record "
            "artifacts.\nStop the server with Ctrl-C.",
            title="next",
        )
    )
    return 0


def _rollback_steps(world: DemoWorld) -> None:
    """Steps 6-7: a bad commit deployed, then rolled back (and the environment pinned until the fix)."""
    _say("6. A bad commit reaches Git: no connections allowed. Ansible applies it happily; the app is down.")
    commit_change(world.repo, "ansible/vars.yml", yaml.safe_dump({"max_connections": 0}), "tune: no connections (oops)")
    _driftgate("sync", ENVIRONMENT, expect=0)
    _show_file(world)

    _say("7. Roll back to the last commit that applied and ended healthy. A rollback always waits for approval\n"
         "   (approved in advance here with --yes, recorded); the environment stays pinned there, whatever Git's\n"
         "   head says, until the fix is in Git and someone unpins it.")
    _driftgate("rollback", ENVIRONMENT, "--yes", "--reason", "max_connections 0 took the app down", expect=0)
    _show_file(world)
    commit_change(world.repo, "ansible/vars.yml", yaml.safe_dump({"max_connections": 100}), "tune: back to 100")
    _driftgate("unpin", ENVIRONMENT, "--reason", "fixed in Git", expect=0)


def _kubernetes_steps(world: DemoWorld, workdir: Path) -> None:
    """Steps 8-10: a Kubernetes environment, through a cluster that answers or the API double."""
    with _kubernetes_cluster(workdir) as (kubeconfig, description):
        if description is None:
            _say(f"8-10. Skipped: {NO_KUBERNETES}")
            return
        _say(f"8. Containers too: environment '{KUBE_ENVIRONMENT}' is a Kubernetes namespace, reconciled through {description}.")
        add_kubernetes_environment(
            world, kubeconfig=kubeconfig, environment=KUBE_ENVIRONMENT, namespace=KUBE_NAMESPACE,
            force_conflicts=True,  # Git wins over hand edits in the cluster
        )
        _driftgate("plan", KUBE_ENVIRONMENT, expect=2)
        _say("   Creating a Namespace and a Secret counts as risky: approve in advance with --yes (recorded).")
        _driftgate("sync", KUBE_ENVIRONMENT, "--yes", expect=0)

        _say("9. Someone edits the ConfigMap in the cluster by hand; the next sync puts Git's value back.")
        _edit_configmap(kubeconfig)
        _driftgate("sync", KUBE_ENVIRONMENT, "--yes", expect=0)

        _say("10. Approvals proven by signature: who may approve is a file in Git, changed by an SSH-signed commit;\n"
             "   every sync of 'shop' now needs an approval signed with a listed key (ssh-keygen -Y sign).")
        greeting = KUBE_MANIFESTS["k8s/config.yaml"].replace("hello from git", "hello from a signed commit")
        key = require_signed_approvals(
            world, environment=KUBE_ENVIRONMENT, approver=current_user(),
            change=("k8s/config.yaml", greeting.replace("NAMESPACE", KUBE_NAMESPACE)),
        )  # fmt: skip
        _driftgate("sync", KUBE_ENVIRONMENT, "--yes", "--key", str(key), expect=0)


@contextmanager
def _kubernetes_cluster(workdir: Path) -> Iterator[tuple[str | None, str | None]]:
    """The cluster of the current kubeconfig when one answers, else the API double
    from tests/kubeapi started standalone. Yields (kubeconfig path or None, description);
    the description is None when there is neither (an installation without the checkout)."""
    answer = _current_cluster()
    if answer:
        yield None, f"YOUR CLUSTER {answer} (current kubeconfig context)"
        return
    if not (CHECKOUT / "tests" / "kubeapi" / "__main__.py").is_file():
        yield None, None
        return
    kubeconfig = workdir / "kubeconfig"
    command = [sys.executable, "-m", "tests.kubeapi", "--port", "0", "--kubeconfig", str(kubeconfig)]
    double = subprocess.Popen(command, cwd=CHECKOUT, stdout=subprocess.PIPE, text=True)
    try:
        line = double.stdout.readline() if double.stdout else ""
        if not line.startswith("ready"):
            raise SystemExit(f"the Kubernetes API double did not start (is this a driftgate checkout?): {line}")
        url = line.split()[1]
        yield str(kubeconfig), (
            f"the Kubernetes API double at {url} (no cluster answered; the double speaks the real API, "
            "see tests/kubeapi)"
        )
    finally:
        double.terminate()
        double.wait(timeout=20)


def _current_cluster() -> str | None:
    """'context at server' if the current kubeconfig names a cluster that answers."""
    from kubernetes import client, config

    try:
        contexts, active = config.list_kube_config_contexts()
        api = config.new_client_from_config()
        client.VersionApi(api).get_code(_request_timeout=3)
    except Exception:  # no kubeconfig, no context, or nobody answers: use the double
        return None
    return f"{active['name']} at {api.configuration.host}"


def _edit_configmap(kubeconfig: str | None) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    client.CoreV1Api(api).patch_namespaced_config_map(
        "web-config", KUBE_NAMESPACE, {"data": {"greeting": "edited by hand"}}
    )
    console.print(f"[dim]  kubectl edit configmap web-config -n {KUBE_NAMESPACE}: greeting = edited by hand[/]")


def _say(text: str) -> None:
    console.print(f"\n[bold blue]{text}[/]")


def _driftgate(*args: str, expect: int) -> None:
    """`driftgate ARGS` as typed, run in this process (its environment set by `run_demo`)."""
    from driftgate.cli import app

    console.print(f"[bold]$ driftgate {' '.join(args)}[/]")
    try:
        app(list(args), prog_name="driftgate")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    if code != expect:
        console.print(f"[red]demo stopped: `driftgate {' '.join(args)}` exited {code}, expected {expect}[/]")
        raise SystemExit(1)
    console.print(f"[dim]  (exit code {code})[/]")


def _show_file(world: DemoWorld) -> None:
    text = world.config_line.read_text().strip() if world.config_line.exists() else "(missing)"
    console.print(f"[dim]  host file {world.config_line.relative_to(world.root)}:[/] {text}")


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


@contextmanager
def _prefect_server(port: int, log_path: Path) -> Iterator[callable]:
    """A local Prefect server (SQLite under PREFECT_HOME) for the demo's flow runs.

    It starts in the background while the first (read-only) plan runs; the
    caller waits for it only when a step needs it.
    """
    server_env = {**os.environ, "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
    server_env.pop("PREFECT_API_URL")
    prefect = Path(sys.executable).with_name("prefect")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(prefect), "server", "start"], env=server_env, stdout=log, stderr=log)
    health = f"http://127.0.0.1:{port}/api/health"

    def wait_for_server(timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the Prefect server stopped (exit {process.returncode}); see {log_path}")
            try:
                with urllib.request.urlopen(health, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"the Prefect server did not answer within {timeout:.0f} s; see {log_path}")

    try:
        yield wait_for_server
    finally:
        # The steps ran in this process: what Prefect queued for the server goes now,
        # else Prefect tries the stopped server at exit (for minutes, then an error).
        from driftgate.cli.prefect_env import send_what_is_left

        send_what_is_left()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
