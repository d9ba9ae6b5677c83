"""Take docs/paused-run-plan.png: a paused sync's plan in the Prefect UI.

    .venv/bin/python docs/screenshot_paused_plan.py     (about a minute; needs Debian's chromium)

What it shows is made for real, in a temporary directory: the demo's Git
repository with the Kubernetes "shop" environment, a `prefect server start`
on a free loopback port, the Kubernetes API double from tests/kubeapi, a
first sync (applied), then two commits (a rotated password with a new key in
a Secret, a new greeting in a ConfigMap) and a `driftgate sync shop` that
pauses for approval. Headless chromium (driven by playwright, as
tests/test_ui_approval.py does) opens the run's plan artifact, with the
commits since the last applied revision and the Secret's keys masked, and
saves the page. Run by hand when the plan's look changes; not a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from driftgate.demo import _free_port, _prefect_server  # noqa: E402
from driftgate.demo_repo import add_kubernetes_environment, commit_change, create_demo_world  # noqa: E402
from tests.conftest import edit_config  # noqa: E402
from tests.kubeapi import KubeAPIDouble  # noqa: E402
from tests.test_ui_approval import CHROMIUM, CHROMIUM_ARGS, wait_for_paused_run  # noqa: E402

OUTPUT = ROOT / "docs" / "paused-run-plan.png"
DRIFTGATE = Path(sys.executable).with_name("driftgate")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="driftgate-shot-") as tmp, KubeAPIDouble(ready_delay=0.05) as kube:
        work = Path(tmp)
        world = create_demo_world(work / "world")
        add_kubernetes_environment(world, kubeconfig=str(kube.kubeconfig_path), namespace="shop")
        port = _free_port(4200)
        env = {
            **os.environ, "DRIFTGATE_HOME": str(work / "home"), "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", "DRIFTGATE_USER": "bob",
        }  # fmt: skip
        with _prefect_server(env, port, work / "prefect-server.log") as wait_for_server:
            wait_for_server()
            run(env, "sync", "shop", "--config", str(world.config), "--yes")  # the last applied revision
            config = (world.repo / "k8s/config.yaml").read_text()
            rotated = config.replace("s3cret-from-git", "n3w-s3cret-value\n  token: t0ken-value")
            commit_change(world.repo, "k8s/config.yaml", rotated, "rotate the database password, add an API token")
            commit_change(world.repo, "k8s/config.yaml", rotated.replace("hello from git", "hello again"), "a friendlier greeting")
            edit_config(world, "shop", approval={"mode": "always", "timeout": "4h", "approvers": ["alice", "carol"]})
            sync = subprocess.Popen([str(DRIFTGATE), "sync", "shop", "--config", str(world.config)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
            try:
                run_id = wait_for_paused_run(env["PREFECT_API_URL"], sync)["id"]
                shoot(f"http://127.0.0.1:{port}", run_id)
            finally:
                sync.kill()
                sync.communicate()
    print(f"wrote {OUTPUT}")


def run(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([str(DRIFTGATE), *args], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"driftgate {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def shoot(base: str, run_id: str) -> None:
    """The run's plan artifact, opened from the run page as a reviewer would."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.set_default_timeout(30_000)
        page.goto(f"{base}/runs/flow-run/{run_id}")
        page.get_by_text("Artifacts", exact=True).click()
        page.get_by_text("plan-shop", exact=True).click()
        page.get_by_text("(last applied)").first.wait_for()
        page.get_by_text("*** (new)").first.wait_for()
        page.screenshot(path=str(OUTPUT), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
