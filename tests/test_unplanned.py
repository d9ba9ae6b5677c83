"""Tasks check mode cannot predict, through the gate and into the record: a
`shell` task is a `run` change that pauses a risky-mode sync; a change apply
made that the approved plan did not list is recorded as unplanned; results
are joined to their changes by where the task is defined, not by its name.
Real ansible-runner on localhost, the real reconcile flow on the session's
Prefect test server, the CLI in-process (CliRunner) or as the console script."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from driftgate import ansible
from driftgate.cli import app
from driftgate.config import load_config
from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.git import fetch
from driftgate.models import Outcome, RunPurpose
from driftgate.render import render_bundle
from driftgate.runlog import RunLog
from driftgate.store import Store
from tests.conftest import answer, approver, edit_config, invoke_cli

PLAY = """\
- name: one copy, one shell
  hosts: all
  gather_facts: false
  tasks:
{tasks}"""

COPY_AND_SHELL = """\
    - name: welcome page
      ansible.builtin.copy:
        dest: "{{ demo_root }}/index.html"
        content: "hello\\n"
    - name: mark the run
      ansible.builtin.shell: "echo ran > {{ demo_root }}/ran"
"""

# Check mode skips the shell, so `fetched is changed` is false there and the
# stamp is skipped by its condition: only apply finds out that it changes.
CHAINED = """\
    - name: fetch version
      ansible.builtin.shell: "echo 2 > {{ demo_root }}/version"
      register: fetched
    - name: stamp release
      ansible.builtin.copy:
        dest: "{{ demo_root }}/stamp"
        content: "released\\n"
      when: fetched is changed
"""


def playbook(world: DemoWorld, tasks: str, message: str) -> None:
    commit_change(world.repo, "ansible/site.yml", PLAY.format(tasks=tasks), message)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def record_of(world: DemoWorld) -> Any:
    return Store().history("demo", limit=1)[0]


@pytest.mark.usefixtures("prefect_api")
def test_a_shell_task_is_a_risky_run_and_the_sync_waits_for_the_approver(world: DemoWorld, prefect_api: str) -> None:
    playbook(world, COPY_AND_SHELL, "one copy, one shell")
    edit_config(world, approval={"mode": "risky", "timeout": "2m", "approvers": ["alice"]})

    planned = cli("plan", "demo", "--config", str(world.config), "-o", "json")
    assert planned.exit_code == 2, planned.output
    body = json.loads(planned.output)
    assert body["risky"] is True
    assert [(c["action"], c["name"], c["risky"], c["rules"]) for c in body["changes"]] == [
        ("create", "welcome page", False, []),
        ("run", "mark the run", True, ["module:shell"]),
    ]
    assert "what it does is unknown" in body["changes"][1]["note"]
    text = cli("plan", "demo", "--config", str(world.config))
    assert "effect unknown: check mode skipped this shell task" in text.output

    # `driftgate sync` without --yes, as a user runs it: it must pause until alice answers.
    with approver(answer("approve", "alice", "read the shell line")) as seen:
        synced = invoke_cli("sync", "demo", "--config", str(world.config), env={"PREFECT_API_URL": prefect_api})
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert len(seen) == 1 and seen[0].summary == "2 changes (1 create, 1 run), 1 risky: module:shell"
    assert (world.host_root / "ran").read_text() == "ran\n"
    record = record_of(world)
    assert record.outcome == Outcome.APPLIED and record.approval.approver == "alice"
    assert [(c.action, c.name, c.result, c.unplanned) for c in record.changes] == [
        ("create", "welcome page", "changed", False),
        ("run", "mark the run", "changed", False),
    ]
    assert record.reason == ""


@pytest.mark.usefixtures("prefect_api")
def test_a_change_the_plan_did_not_list_is_recorded_unplanned(world: DemoWorld) -> None:
    playbook(world, CHAINED, "stamp after fetching")
    edit_config(world, approval={"mode": "risky", "timeout": "2m"})

    synced = cli("sync", "demo", "--config", str(world.config), "--yes")
    assert synced.exit_code == 0, synced.output
    assert (world.host_root / "stamp").read_text() == "released\n"
    record = record_of(world)
    assert record.outcome == Outcome.APPLIED
    assert [(c.action, c.name, c.result, c.unplanned) for c in record.changes] == [
        ("run", "fetch version", "changed", False),
        ("create", "stamp release", "changed", True),
    ]
    assert "+released" in record.changes[1].diff  # what apply did, as apply's --diff showed it
    assert record.reason == "applied, with 1 unplanned change: localhost: stamp release"
    assert "stamp release (unplanned: not in the approved plan)" in synced.output
    assert "applied, with 1 unplanned change: localhost: stamp release" in synced.output

    shown = cli("show", str(record.id))
    assert shown.exit_code == 0, shown.output
    assert "stamp release (unplanned: apply made it, the approved plan did not list it)" in shown.output
    assert "applied, with 1 unplanned change" in shown.output
    as_json = json.loads(cli("show", str(record.id), "-o", "json").output)
    assert [c["unplanned"] for c in as_json["changes"]] == [False, True]
    assert cli("audit", "verify").exit_code == 0  # the marking is covered by the chain like any change


def test_results_join_their_own_task_not_one_of_the_same_name(world: DemoWorld) -> None:
    page = "    - name: page\n      ansible.builtin.copy: {{dest: \"{{{{ demo_root }}}}/{{{{ inventory_hostname }}}}/{0}\", content: \"{0}\\n\"}}\n"
    playbook(world, page.format("a") + page.format("b") + page.format("c") + "      changed_when: false\n", "three tasks named page")
    edit_config(world, target={"hosts": {"localhost": {"ansible_connection": "local"}, "other": {"ansible_connection": "local"}}})
    for host, present in (("localhost", "b"), ("other", "a")):
        (world.host_root / host).mkdir()
        (world.host_root / host / present).write_text(f"{present}\n")
    env = load_config(world.config).environment("demo")
    bundle = render_bundle(env, fetch(env.source, environment="demo"))
    run = RunLog("demo", purpose=RunPurpose.SYNC, trigger="test")
    run.plan = ansible.check(env, bundle)
    run.result = ansible.apply(env, bundle)
    changes = run.finish().changes
    # localhost lacks a, other lacks b. The third page writes c on both but says it
    # changes nothing: no change, and its "ok" must not become another page's result.
    assert sorted((c.target, c.name, c.result) for c in changes) == [("localhost", "page", "changed"), ("other", "page", "changed")]
    assert sorted((c.target, c.task_path, c.unplanned) for c in changes) == [
        ("localhost", "project/site.yml:5", False),
        ("other", "project/site.yml:7", False),
    ]
    assert (world.host_root / "other" / "c").exists()


def test_the_plan_artifact_says_a_runs_effect_is_unknown() -> None:
    from driftgate import report
    from driftgate.models import Action, Change, Plan

    shell = Change(action=Action.RUN, target="web1", name="mark the run", module="shell", risky=True,
                   rules=("module:shell",), note="check mode skipped this shell task: what it does is unknown")  # fmt: skip
    markdown = report.plan_markdown(Plan(environment="e", revision="c" * 40, changes=(shell,)))
    assert "**1 change (1 run), 1 risky: module:shell**" in markdown
    assert "| web1: mark the run | run | **yes** | module:shell |" in markdown
    assert "**web1: mark the run** (run)\n\n> **effect unknown:** check mode skipped this shell task" in markdown
