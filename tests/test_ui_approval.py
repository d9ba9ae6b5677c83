"""The approval gate through the real Prefect UI: a real `prefect server start`
on loopback, a `driftgate sync` that pauses, and Debian's chromium driven
headless by Playwright (never a downloaded browser). The reviewer opens the
run page, finds the plan artifacts and the resume form, approves from the
browser, and the run completes with the approver in the record.

A second test approves with an SSH signature made from the command the form
shows. Set DRIFTGATE_UPDATE_SCREENSHOTS=1 to refresh the README's screenshots in docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftgate.demo_repo import DemoWorld
from tests.conftest import DRIFTGATE, ROOT, edit_config, invoke_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What headless chromium needs on these machines (no sandbox as root, nothing phoning home).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The run page's graph is WebGL, which chromium draws in software here (no GPU): the
# browser took 67 CPU-s in these two tests with it, 21 without, and no test reads it.
# It is drawn only for the README's screenshots.
if not os.environ.get("DRIFTGATE_UPDATE_SCREENSHOTS"):
    CHROMIUM_ARGS.append("--disable-3d-apis")
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it when run as root)"
)


def wait_for_paused_run(api: str, sync: subprocess.Popen[str]) -> dict[str, Any]:
    """Poll the API until the sync's flow run is paused."""
    body = {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert sync.poll() is None, f"sync ended before pausing: {sync.communicate()}"
        runs = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=5).json()
        if runs:
            return runs[0]
        time.sleep(0.3)
    pytest.fail("the sync did not pause within 120 s")


def choose(page: Any, dialog: Any, label: str, option: str) -> None:
    """Pick ``option`` in the form's select called ``label`` (Prefect's own select widget)."""
    field = dialog.locator(".schema-form-property", has=page.locator(".schema-form-property__label", has_text=label))
    field.locator("button.p-select-button__control").last.click()
    page.keyboard.press("ArrowDown")  # opens the options list in headless chromium too
    page.get_by_role("option", name=option, exact=True).click()


def open_form(page: Any, *fields: str, texts: tuple[str, ...] = ("Approve plan",)) -> Any:
    """Click Resume and return the dialog once driftgate's form is in it.

    Prefect first shows its default resume dialog and swaps in the run's own
    form when it has loaded the schema: wait for driftgate's own fields and for
    its own ``texts`` (the description driftgate writes, which no default dialog
    has), not for any dialog or Submit button (reading the default dialog made
    the old wait flaky)."""
    page.get_by_role("button", name="Resume").click()
    dialog = page.locator("[role=dialog]")
    for label in fields:
        dialog.locator(".schema-form-property__label", has_text=label).first.wait_for()
    for text in texts:
        dialog.get_by_text(text).first.wait_for()
    dialog.get_by_role("button", name="Submit").wait_for()
    return dialog


def form_field(page: Any, dialog: Any, label: str) -> Any:
    return dialog.locator(".schema-form-property", has=page.locator(".schema-form-property__label", has_text=label))


def save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    if os.environ.get("DRIFTGATE_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / name)
    return shot


@contextmanager
def paused_sync_page(world: DemoWorld, prefect_server: str, *, height: int) -> Iterator[tuple[Any, dict[str, Any], Any]]:
    """`driftgate sync demo` by bob in its own process, paused for approval, with its
    run page open in headless chromium: yields (page, the paused run, the sync process)."""
    from playwright.sync_api import sync_playwright

    api = f"{prefect_server}/api"
    sync = subprocess.Popen(
        [str(DRIFTGATE), "sync", "demo", "--config", str(world.config)],
        env={**os.environ, "PREFECT_API_URL": api, "DRIFTGATE_USER": "bob"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        run = wait_for_paused_run(api, sync)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.set_default_timeout(30_000)
            page.goto(f"{prefect_server}/runs/flow-run/{run['id']}")
            yield page, run, sync
            browser.close()
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.communicate()


def test_approve_a_paused_sync_in_the_prefect_ui(world: DemoWorld, prefect_server: str, tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' brings playwright")
    api = f"{prefect_server}/api"
    edit_config(world, approval={"mode": "always", "timeout": "10m", "approvers": ["alice", "bob"], "forbid_self_approval": True})
    with paused_sync_page(world, prefect_server, height=1000) as (page, run, sync):
        # The plan is on the run page before anyone decides: both artifacts.
        page.get_by_text("Artifacts", exact=True).click()
        page.get_by_text("plan-table-demo", exact=True).wait_for()
        page.get_by_text("driftgate plan", exact=True).wait_for()
        save_screenshot(page, tmp_path, "approval-paused-run.png")
        page.get_by_text("plan-demo", exact=True).click()
        page.get_by_text("+max_connections = 100").wait_for()  # the diff, in the markdown artifact
        page.go_back()

        # The resume form: the plan, what deciding means, the three fields with their help.
        dialog = open_form(page, "Decision", "Approver", "Reason")
        text = dialog.inner_text()
        assert f"Approve plan {run_plan_hash(api, run['id'])[:16]} for demo?" in text
        assert "Requested by bob" in text and "approve applies exactly this plan" in text
        assert "may decide: alice" in text and "+max_connections = 100" in text
        assert "apply exactly the plan shown above" in text and "one of alice" in text
        assert "kept in the record" in text
        save_screenshot(page, tmp_path, "approval-form.png")

        choose(page, dialog, "Decision", "approve")
        choose(page, dialog, "Approver", "alice")
        form_field(page, dialog, "Reason").locator("textarea").fill("reviewed in the Prefect UI")
        dialog.get_by_role("button", name="Submit").click()

        out, err = sync.communicate(timeout=120)
        assert sync.returncode == 0, out + err
        page.reload()
        page.get_by_text("Completed", exact=True).first.wait_for()
    assert "applied: demo" in out and "approval: approve by alice: reviewed in the Prefect UI" in out
    record = json.loads(invoke_cli("history", "demo", "--output", "json").stdout)[0]
    assert record["flow_run_id"] == run["id"] and record["requested_by"] == "bob"
    assert record["approval"]["approver"] == "alice" and record["approval"]["plan_hash"] == record["plan_hash"]
    assert world.config_line.read_text() == "max_connections = 100\n"


def run_plan_hash(api: str, run_id: str) -> str:
    """The plan hash the paused run published for `driftgate approvals`."""
    inputs = httpx.post(f"{api}/flow_runs/{run_id}/input/filter", json={"prefix": "driftgate-"}, timeout=5).json()
    return json.loads(inputs[0]["value"])["plan_hash"]


def test_signed_approval_in_the_prefect_ui(world: DemoWorld, prefect_server: str, tmp_path: Path) -> None:
    """The form shows the statement and the one command that signs it; the
    command, run as shown (with the test's key), prints the signature that
    is pasted; the run applies and the record keeps the signature."""
    pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' brings playwright")
    from tests.conftest import make_ssh_key

    api = f"{prefect_server}/api"
    alice = make_ssh_key(tmp_path / "keys", "alice")
    block = f"ui-approvers-{tmp_path.name[-8:]}".lower().replace("_", "-")
    save_block = "from driftgate.blocks import ApprovalSigners; import sys; ApprovalSigners(allowed_signers=sys.argv[1]).save(sys.argv[2], overwrite=True)"
    subprocess.run([sys.executable, "-c", save_block, alice.signer_line("alice", 'namespaces="driftgate-approval"'), block],
                   env={**os.environ, "PREFECT_API_URL": api}, check=True, timeout=120)  # fmt: skip
    edit_config(world, approval={"mode": "always", "timeout": "10m", "approvers": ["alice", "bob"], "forbid_self_approval": True,
                                 "require_signature": True, "allowed_signers_block": block})  # fmt: skip
    with paused_sync_page(world, prefect_server, height=1500) as (page, run, sync):
        dialog = open_form(page, "Decision", "Approver", "Signature", texts=("Approve plan", "Sign your answer", "ssh-keygen -Y sign"))
        text = dialog.inner_text()
        assert "Sign your answer" in text and "driftgate approval v1" in text
        assert f"flow run: {run['id']}" in text and f"plan: {run_plan_hash(api, run['id'])}" in text
        assert "approver: alice" in text and "ssh-keygen -Y sign -n driftgate-approval" in text
        code = dialog.locator("code", has_text="ssh-keygen -Y sign").first
        command = code.inner_text().strip()
        code.scroll_into_view_if_needed()  # the statement and the command, above the fields
        save_screenshot(page, tmp_path, "approval-signed-form.png")

        # The approver runs the command shown, with their own key, and pastes what it prints.
        assert command.endswith("approve alice | ssh-keygen -Y sign -n driftgate-approval -f ~/.ssh/id_ed25519")
        mine = command.replace("-f ~/.ssh/id_ed25519", f"-f {alice.path}")
        signature = subprocess.run(["bash", "-c", mine], capture_output=True, text=True, check=True, timeout=30).stdout
        assert signature.startswith("-----BEGIN SSH SIGNATURE-----")
        choose(page, dialog, "Decision", "approve")
        choose(page, dialog, "Approver", "alice")
        form_field(page, dialog, "Signature").locator("textarea, input").first.fill(signature)
        form_field(page, dialog, "Reason").locator("textarea, input").first.fill("signed in the Prefect UI")
        dialog.get_by_role("button", name="Submit").click()

        out, err = sync.communicate(timeout=180)
        assert sync.returncode == 0, out + err
    assert "applied: demo" in out and "approval: approve by alice: signed in the Prefect UI" in out
    record = json.loads(invoke_cli("history", "demo", "--output", "json").stdout)[0]
    evidence = record["approval"]["signature"]
    assert evidence["principal"] == "alice" and f"flow run: {run['id']}" in evidence["statement"]
    assert world.config_line.read_text() == "max_connections = 100\n"
