"""Approval gates: the risk policy (which rule made a plan risky), approver
lists and self-approval, approval bound to one plan (re-plan before apply,
ask again when it changed), timeout, invalid input, the plan artifacts, and
`driftgate approvals` / `driftgate approve` — through the engine, the Prefect
API (one test server per session) and the CLI. The flows run on the test-only
kind ``files``: the gate is the subject here, Ansible's is tests/test_ansible.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from driftgate import policy, report
from driftgate.config import Environment, parse_config
from driftgate.errors import ConfigError
from driftgate.kinds import BUILTIN_GROUP
from driftgate.models import Action, Bundle, Change, Outcome, Plan
from driftgate.store import Store, StoredRun
from driftgate.targets import ansible as ansible_target
from tests.conftest import answer, approver, artifacts_of, as_cli, edit_config, invoke_cli
from tests.filestarget import FilesWorld, world_on_files  # noqa: F401  (fixtures: world on the files kind)

# ---------------------------------------------------------------- the risk policy (engine only)


def env_of(*, kind: str = "kubernetes", production: bool = False, **approval: Any) -> Environment:
    target = {"kind": "kubernetes"} if kind == "kubernetes" else {"kind": "ansible", "hosts": {"h": {}}}
    raw = {"environments": {"e": {"source": {"repo": "/r"}, "target": target, "production": production, "approval": approval}}}
    return parse_config(raw, Path("/tmp/driftgate.yaml")).environment("e")


def obj(kind: str, name: str, *, namespace: str = "web", action: Action = Action.UPDATE, diff: str = "", paths: tuple[str, ...] = ()) -> Change:
    return Change(
        action=action, target=f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}", name=name,
        kind=kind, namespace=namespace, api_version=f"{BUILTIN_GROUP[kind]}/v1".lstrip("/"), diff=diff, paths=paths,
    )  # fmt: skip


def task(host: str, name: str, *, module: str = "ansible.builtin.copy", action: Action = Action.UPDATE) -> Change:
    return Change(action=action, target=host, name=name, module=module, diff="-a\n+b")


def rules_of(env: Environment, *changes: Change, bundle: Bundle | None = None) -> list[tuple[str, ...]]:
    plan = policy.assess(env, Plan(environment="e", revision="c0ffee", changes=changes), bundle=bundle)
    assert all(c.risky == bool(c.rules) for c in plan.changes)
    return [c.rules for c in plan.changes]


SCALE_TO_ZERO = "--- live Deployment/web/api\n+++ desired Deployment/web/api\n@@ -3 +3 @@\n spec:\n-  replicas: 3\n+  replicas: 0\n"


def test_default_rules_for_kubernetes_objects() -> None:
    env = env_of()
    assert rules_of(
        env,
        obj("ConfigMap", "settings"),
        obj("ConfigMap", "old", action=Action.DELETE),
        obj("Secret", "db"),
        obj("ClusterRoleBinding", "admins", namespace=""),
        obj("Namespace", "web", namespace="", action=Action.CREATE),
        obj("PersistentVolumeClaim", "data"),
        obj("Deployment", "api", diff=SCALE_TO_ZERO),
        obj("Deployment", "web", diff=SCALE_TO_ZERO.replace("+  replicas: 0", "+  replicas: 2")),
    ) == [
        (),
        ("prune",),
        ("kind:Secret",),
        ("kind:ClusterRoleBinding",),
        ("kind:Namespace",),
        ("kind:PersistentVolumeClaim",),
        ("scale-to-zero",),
        (),
    ]


def test_plan_wide_rules_mark_every_change_and_can_be_tuned_or_switched_off() -> None:
    many = [obj("ConfigMap", f"c{i}") for i in range(4)]
    assert rules_of(env_of(risk={"max_changes": 3}), *many) == [("max-changes:3",)] * 4
    assert rules_of(env_of(risk={"max_changes": 4}), *many) == [()] * 4
    assert rules_of(env_of(production=True), many[0]) == [("production",)]
    assert rules_of(env_of(production=True, risk={"production": False}), many[0]) == [()]

    off = env_of(risk={"deletes": False, "kinds": [], "scale_to_zero": False, "max_changes": None})
    assert rules_of(off, obj("Secret", "s", action=Action.DELETE), obj("Deployment", "api", diff=SCALE_TO_ZERO)) == [(), ()]
    assert rules_of(env_of(risk={"kinds": ["ConfigMap"]}), obj("ConfigMap", "a"), obj("Secret", "b")) == [("kind:ConfigMap",), ()]


def test_user_rules_by_kind_namespace_name_path_and_action() -> None:
    env = env_of(
        rules=[
            {"rule": "public-ingress", "kind": "Ingress", "name": "*-public"},
            {"rule": "kube-system", "namespace": "kube-*"},
            {"rule": "images", "kind": "Deployment", "path": "spec.template.spec.containers[*].image"},
            {"rule": "replicas", "path": "/spec/replicas", "action": "update"},
            {"rule": "creates-in-prod", "namespace": "prod", "action": ["create"]},
        ],
        risk={"scale_to_zero": False},
    )
    image_diff = " spec:\n   template:\n-        image: shop:1.0\n+        image: shop:1.1\n"
    assert rules_of(
        env,
        obj("Ingress", "shop-public"),
        obj("Ingress", "shop-internal"),
        obj("ConfigMap", "coredns", namespace="kube-system"),
        obj("Deployment", "api", paths=("spec.template.spec.containers.0.image",)),
        obj("Deployment", "api", paths=("metadata.labels",)),
        obj("Deployment", "api", diff=image_diff),  # no structured paths: the diff's changed lines
        obj("Deployment", "api", diff=SCALE_TO_ZERO),
        obj("Deployment", "api", action=Action.CREATE, diff=SCALE_TO_ZERO),
        obj("Service", "api", namespace="prod", action=Action.CREATE),
    ) == [
        ("rule:public-ingress",),
        (),
        ("rule:kube-system",),
        ("rule:images",),
        (),
        ("rule:images",),
        ("rule:replicas",),
        (),
        ("rule:creates-in-prod",),
    ]


def test_risk_rule_config_is_validated() -> None:
    with pytest.raises(ConfigError) as bad:
        env_of(rules=[{"rule": "everything"}, {"rule": "x", "kind": "A", "colour": "red"}], risk={"deletes": "maybe", "typo": 1})
    message = str(bad.value)
    assert "rule 'everything' matches every change" in message
    assert "approval.rules.1.colour: unknown key" in message
    assert "approval.risk.typo: unknown key" in message and "approval.risk.deletes" in message
    with pytest.raises(ConfigError, match="names must be unique"):
        env_of(rules=[{"rule": "a", "kind": "Service"}, {"rule": "a", "kind": "Secret"}])


PLAYBOOK = """\
- hosts: all
  tags: [web]
  tasks:
    - name: plain copy
      ansible.builtin.copy: {dest: /tmp/x, content: x}
    - name: restart app
      ansible.builtin.service: {name: app, state: restarted}
      tags: risky
    - block:
        - name: migrate schema
          ansible.builtin.copy: {dest: /tmp/y, content: y}
      tags: [db, risky]
    - name: more
      ansible.builtin.import_tasks: more.yml
      tags: risky
  roles:
    - {role: cache, tags: [risky]}
"""


def test_ansible_rules_tags_read_from_the_playbook_modules_and_hosts(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "more.yml").write_text("- name: imported task\n  ansible.builtin.copy: {dest: /tmp/z, content: z}\n")
    (tmp_path / "roles/cache/tasks").mkdir(parents=True)
    (tmp_path / "roles/cache/tasks/main.yml").write_text("- name: flush cache\n  ansible.builtin.command: flush\n")
    tags = ansible_target.task_tags(tmp_path, "site.yml")
    assert tags["plain copy"] == {"web"} and tags["restart app"] == {"web", "risky"}
    assert tags["migrate schema"] == {"web", "db", "risky"} and tags["imported task"] == {"web", "risky"}
    assert tags["flush cache"] == {"web", "risky"}
    assert ansible_target.task_tags(tmp_path, "missing.yml") == {}

    bundle = Bundle(commit="c0ffee", directory=tmp_path, playbook="site.yml", hosts=("h1",))
    env = env_of(kind="ansible", risky_tasks=["plain*"])
    assert rules_of(
        env,
        task("h1", "plain copy"),
        task("h1", "restart app"),
        task("h1", "flush cache", module="ansible.builtin.command"),
        task("h1", "gone", action=Action.DELETE),
        bundle=bundle,
    ) == [("task:plain*",), ("tag:risky",), ("module:command", "tag:risky"), ("delete",)]
    hosts = [task(f"h{i}", "plain copy") for i in range(3)]
    assert rules_of(env_of(kind="ansible", risk={"max_hosts": 2}), *hosts) == [("max-hosts:2",)] * 3
    assert rules_of(env_of(kind="ansible", risk={"ansible_tag": None, "unpredictable_modules": False}),
                    task("h1", "restart app"), task("h1", "x", module="shell"), bundle=bundle) == [(), ()]  # fmt: skip


def test_approvers_groups_and_self_approval() -> None:
    env = env_of(approvers=["alice", "ops"], groups={"ops": ["carol", "dave"]}, forbid_self_approval=True)
    assert env.approval.allowed_approvers() == {"alice", "carol", "dave"}
    assert policy.deciders(env.approval, requester="carol") == ["alice", "dave"]
    assert policy.approver_refusal("dave", env.approval, requester="carol") is None
    assert "is not an approver" in policy.approver_refusal("mallory", env.approval, requester="carol")
    assert "group ops (carol, dave)" in policy.approver_refusal("mallory", env.approval, requester="carol")
    assert "forbid_self_approval" in policy.approver_refusal("carol", env.approval, requester="carol")
    anyone = env_of()
    assert policy.deciders(anyone.approval, requester="x") is None
    assert policy.approver_refusal("x", anyone.approval, requester="x") is None


def test_plan_markdown_and_table_say_which_rule_and_mask_nothing_new() -> None:
    secret = obj("Secret", "db", diff="-  password: '*** (sha256 1a2b)'\n+  password: '*** (sha256 3c4d)'")
    plan = policy.assess(env_of(), Plan(environment="web-prod", revision="a" * 40, changes=(obj("ConfigMap", "c|x"), secret)))
    markdown = report.plan_markdown(plan)
    assert "**2 changes (2 update), 1 risky: kind:Secret**" in markdown
    assert "| Secret/web/db | update | **yes** | kind:Secret |" in markdown and "ConfigMap/web/c\\|x" in markdown
    assert "```diff\n-  password: '*** (sha256 1a2b)'" in markdown
    assert report.plan_table(plan)[1] == {
        "object or host": "Secret/web/db", "task or name": "db", "action": "update", "risky": "yes", "rules": "kind:Secret"
    }  # fmt: skip
    fenced = report.plan_markdown(Plan(environment="e", revision="b" * 40, changes=(task("h", "t").model_copy(update={"diff": "```\nx"}),)))
    assert "````diff\n```\nx\n````" in fenced


def test_the_approval_form_names_the_commits_and_the_deadline_as_a_clock_time() -> None:
    from datetime import datetime, timedelta, timezone

    from driftgate.models import CommitInfo, CommitRange

    story = CommitRange(since="c" * 40, until="d" * 40, more=23, commits=(
        CommitInfo(sha="d" * 40, author="Ann <ann@example.com>", subject="raise | the limit", signer="ann@example.com (SHA256:x)"),
        CommitInfo(sha="e" * 40, author="Bo <bo@example.com>", subject="fix a typo"),
    ))  # fmt: skip
    plan = Plan(environment="web", revision="d" * 40, changes=(task("h", "t"),), commits=story)
    text = report.approval_markdown(
        plan, requester="bob", deciders=["alice"], forbid_self_approval=False, timeout=timedelta(hours=1),
        deadline=datetime(2026, 12, 1, 13, 0, 0, 400000, tzinfo=timezone.utc),
    )  # fmt: skip
    assert "No decision within 1h (by 2026-12-01T13:00:00Z) counts as a rejection." in text
    assert "**25 commits since ccccccc (last applied):**" in text
    assert "- ddddddd raise \\| the limit — Ann <ann@example.com>, signed by ann@example.com (SHA256:x)\n" in text
    assert "- eeeeeee fix a typo — Bo <bo@example.com>\n- … and 23 more\n" in text
    assert plan.plan_hash == plan.model_copy(update={"commits": None}).plan_hash, "the story is not what is approved"


# ---------------------------------------------------------------- the gate, through the Prefect API



def sync(world: FilesWorld, *, requested_by: str | None = None, auto_approve: bool = False) -> tuple[Any, StoredRun]:
    """A sync as `driftgate sync [--yes]` by ``requested_by`` runs it."""
    from driftgate.flows.reconcile import reconcile

    with as_cli(requested_by, yes=auto_approve):
        state = reconcile(environment="demo", config=str(world.config), return_state=True)
    record = Store().history("demo", limit=1)[0]
    assert record.flow_run_id == str(state.state_details.flow_run_id)
    return state, record


@pytest.mark.usefixtures("prefect_api")
def test_approval_given_names_the_approver_and_binds_the_plan(world: FilesWorld) -> None:
    edit_config(world, approval={"mode": "always", "timeout": "2m", "approvers": ["alice", "ops"], "groups": {"ops": ["olga"]}})
    with approver(answer("approve", "olga", "reviewed the diff")) as seen:
        state, record = sync(world, requested_by="bob")
    assert state.is_completed(), state.message
    assert record.outcome == Outcome.APPLIED
    assert record.approval.decision == "approve" and record.approval.approver == "olga"
    assert record.approval.reason == "reviewed the diff"
    assert record.approval.plan_hash == record.plan_hash
    assert world.config_line.exists()
    # What `driftgate approvals` showed while it waited.
    paused = seen[0]
    assert paused.environment == "demo" and paused.commit == record.commit and paused.plan_hash == record.plan_hash
    assert paused.requester == "bob" and paused.summary == "3 changes (3 create)"
    assert paused.deciders == ["alice", "olga"] and paused.waiting_since is not None


@pytest.mark.usefixtures("prefect_api")
def test_approval_rejected(world: FilesWorld) -> None:
    edit_config(world, approval={"mode": "always", "timeout": "2m"})
    with approver(answer("reject", "alice", "not during the freeze")):
        state, record = sync(world)
    assert state.is_cancelled() and state.name == "Rejected"
    assert record.outcome == Outcome.REJECTED
    assert record.approval.approver == "alice" and record.approval.reason == "not during the freeze"
    assert record.hosts == [] and not world.config_line.exists()


@pytest.mark.usefixtures("prefect_api")
def test_approval_timeout_rejects(world: FilesWorld) -> None:
    edit_config(world, approval={"mode": "always", "timeout": "2s"})
    state, record = sync(world)
    assert state.is_cancelled() and "rejected (timed out): no decision within 2s" in state.message
    assert record.outcome == Outcome.REJECTED and record.approval.timed_out is True
    assert "no decision within" in record.approval.reason
    assert not world.config_line.exists()


@pytest.mark.usefixtures("prefect_api")
def test_risky_mode_pauses_only_risky_plans_and_yes_approves_in_advance(world: FilesWorld) -> None:
    edit_config(world, approval={"mode": "risky", "timeout": "1s"}, target={"protected": ["index.*"]})
    state, record = sync(world)
    assert record.outcome == Outcome.REJECTED  # risky and nobody answered
    assert [c.rules for c in record.changes] == [(), ("protected:index.*",), ()]

    state, record = sync(world, auto_approve=True, requested_by="dana")
    assert record.outcome == Outcome.APPLIED
    assert (record.approval.decision, record.approval.approver, record.approval.required) == ("approve", "dana", True)
    assert "in advance" in record.approval.reason

    world.config_line.write_text("max_connections = 9\n")  # not a protected file: no pause
    state, record = sync(world)
    assert record.outcome == Outcome.APPLIED and record.approval.required is False


@pytest.mark.usefixtures("prefect_api")
def test_refused_approver_and_invalid_input_leave_the_run_paused(world: FilesWorld) -> None:
    from prefect.flow_runs import resume_flow_run

    from driftgate.flows.approvals_api import ApproverRefused, answer_run, find_paused_run

    edit_config(world, approval={"mode": "always", "timeout": "2m", "approvers": ["alice", "bob"], "forbid_self_approval": True})
    outcomes: list[str] = []

    def act(run: Any) -> None:
        for name in ("mallory", "bob"):  # not on the list; the requester
            with pytest.raises(ApproverRefused) as refused:
                answer_run(run, decision="approve", approver=name, reason="")
            outcomes.append(str(refused.value))
        # Around driftgate's check, straight to the API: the server refuses it by the form's schema.
        for bad in ({"decision": "approve", "approver": "mallory"}, {"decision": "maybe", "approver": "alice"}, {}):
            with pytest.raises(RuntimeError, match="Cannot resume this run"):
                resume_flow_run(uuid.UUID(run.id), run_input=bad)
        with pytest.raises(ValueError):
            answer_run(run, decision="maybe", approver="alice", reason="")
        assert find_paused_run(run.id).pause_key == run.pause_key  # still paused, same pause
        answer_run(run, decision="approve", approver="alice", reason="ok")

    with approver(act):
        state, record = sync(world, requested_by="bob", auto_approve=True)  # --yes by the requester does not count
    assert "'mallory' may not decide runs of 'demo' (approvers: alice, bob)" in outcomes[0]
    assert "'bob' requested this run and may not decide it" in outcomes[1] and "stays paused" in outcomes[1]
    assert record.outcome == Outcome.APPLIED and record.approval.approver == "alice"


@pytest.mark.usefixtures("prefect_api")
def test_refused_answer_that_reaches_the_flow_pauses_again(world: FilesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: a form without the approver rule (an old one) still cannot approve."""
    from driftgate.flows import approval, approvals_api

    monkeypatch.setattr(approval, "approval_form", lambda env, requester: approval.ApprovalInput)
    monkeypatch.setattr(approvals_api, "_refusal", lambda run, name: None)
    edit_config(world, approval={"mode": "always", "timeout": "2m", "approvers": ["alice"]})
    names = iter(["mallory", "alice"])
    with approver(lambda run: answer("approve", next(names))(run), pauses=2) as seen:
        state, record = sync(world)
    assert record.outcome == Outcome.APPLIED and record.approval.approver == "alice"
    assert any("the answer from mallory was refused" in r.asked_again for r in seen)


@pytest.mark.usefixtures("prefect_api")
def test_plan_changed_between_approval_and_apply_asks_again(world: FilesWorld) -> None:
    edit_config(world, approval={"mode": "always", "timeout": "2m"})
    first: dict[str, str] = {}

    def act(run: Any) -> None:
        if not first:
            first.update(plan_hash=run.plan_hash, commit=run.commit)
            # A new commit lands while the approver reads the plan.
            world.commit({"app.conf": "max_connections = 250\n"}, "raise the limit")
        answer("approve", "alice", "looks fine")(run)

    with approver(act, pauses=2) as seen:
        state, record = sync(world)
    assert state.is_completed(), state.message
    again = seen[1]
    assert again.plan_hash != first["plan_hash"] and again.commit != first["commit"]
    assert f"new commit {again.commit[:12]} (was {first['commit'][:12]})" in again.asked_again
    assert record.plan_hash == again.plan_hash == record.approval.plan_hash and record.commit == again.commit
    assert world.config_line.read_text() == "max_connections = 250\n"


@pytest.mark.usefixtures("prefect_api")
def test_plan_artifacts_are_published_before_the_pause(world: FilesWorld) -> None:
    edit_config(world, approval={"mode": "always", "timeout": "2m"})
    artifacts: dict[str, Any] = {}

    def act(run: Any) -> None:
        artifacts.update({a.type: a for a in artifacts_of(run.id)})
        answer("reject", "alice")(run)

    with approver(act):
        sync(world)
    assert "**3 changes (3 create)**" in artifacts["markdown"].data
    assert "+max_connections = 100" in artifacts["markdown"].data
    table = json.loads(artifacts["table"].data) if isinstance(artifacts["table"].data, str) else artifacts["table"].data
    assert [row["task or name"] for row in table] == ["app.conf", "index.html", "robots.txt"]


@pytest.mark.usefixtures("prefect_api")
def test_cli_approvals_and_approve_by_run_id_with_clear_errors(world: FilesWorld, prefect_api: str) -> None:
    env = {"PREFECT_API_URL": prefect_api}
    edit_config(world, approval={"mode": "always", "timeout": "2m", "approvers": ["alice"]})
    results: dict[str, Any] = {}

    def act(run: Any) -> None:
        results["list"] = invoke_cli("approvals", env=env)
        results["json"] = invoke_cli("approvals", "--output", "json", env=env)
        results["refused"] = invoke_cli("approve", run.id, "--as", "mallory", env=env)
        results["approved"] = invoke_cli("approve", run.id, "--as", "alice", "--reason", "ship it", env=env)

    with approver(act):
        state, record = sync(world, requested_by="bob")
    listed = results["list"].stdout
    assert results["list"].returncode == 0 and "demo" in listed and record.commit[:12] in listed
    assert "3 changes (3 create)" in listed and f"/runs/flow-run/{record.flow_run_id}" in listed
    body = json.loads(results["json"].stdout)
    assert body[0]["id"] == record.flow_run_id and body[0]["requester"] == "bob" and body[0]["waiting_since"]
    assert results["refused"].returncode == 1
    assert "'mallory' may not decide runs of 'demo' (approvers: alice)" in results["refused"].stderr
    assert results["approved"].returncode == 0, results["approved"].stderr
    assert f"approved run {record.flow_run_id} of demo" in results["approved"].stdout
    assert record.outcome == Outcome.APPLIED and record.approval.approver == "alice"
    assert record.approval.reason == "ship it"

    not_paused = invoke_cli("approve", record.flow_run_id, "--as", "alice", env=env)
    assert not_paused.returncode == 1 and "is Cancelled" not in not_paused.stderr
    assert f"run {record.flow_run_id} (demo) is Completed: it is not waiting for approval" in not_paused.stderr
    unknown = invoke_cli("reject", str(uuid.uuid4()), env=env)
    assert unknown.returncode == 1 and "no flow run" in unknown.stderr
    assert "no run is waiting for approval" in invoke_cli("approvals", env=env).stdout


@pytest.mark.usefixtures("prefect_api")
def test_cli_approve_env_name_and_reject_flag(world: FilesWorld, prefect_api: str) -> None:
    env = {"PREFECT_API_URL": prefect_api, "DRIFTGATE_USER": "erin"}
    edit_config(world, approval={"mode": "always", "timeout": "2m"})
    results: dict[str, Any] = {}

    def act(run: Any) -> None:
        results["reject"] = invoke_cli("approve", "demo", "--reject", "--reason", "not today", env=env)

    with approver(act):
        state, record = sync(world)
    assert results["reject"].returncode == 0, results["reject"].stderr
    assert record.outcome == Outcome.REJECTED and record.approval.approver == "erin"
    assert record.approval.reason == "not today"


def make_paused_run(client: Any, flow_id: Any, environment: str, tags: list[str]) -> str:
    """A paused reconcile run made through the API with one POST, tagged as the flow tags
    its run; its id. (The client's create_flow_run posts the flow first, every time.)"""
    from prefect.client.schemas.actions import FlowRunCreate
    from prefect.states import Paused, to_state_create

    run = FlowRunCreate(flow_id=flow_id, parameters={"environment": environment}, tags=tags, state=to_state_create(Paused(pause_key="approval-1")))
    response = client.request("POST", "/flow_runs/", json=run.model_dump(mode="json", exclude_unset=True))
    response.raise_for_status()
    return response.json()["id"]


def delete_runs(client: Any, ids: list[str]) -> None:
    for at in range(0, len(ids), 50):  # the server deletes at most 50 a request
        client.request("POST", "/flow_runs/bulk_delete", json={"flow_runs": {"id": {"any_": ids[at : at + 50]}}, "limit": 50}).raise_for_status()


@pytest.mark.usefixtures("prefect_api")
def test_every_paused_run_is_listed_past_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    # A change to a base every tenant shares pauses a sync in each of hundreds of
    # environments; Prefect answers a page of flow runs at a time (200 by default).
    # The page is made 10 here, with 25 runs: the same paging for a tenth of the
    # runs, each of which costs the server about 0.1 s to make. They are made
    # through the API, then deleted: this server is the worker's.
    from prefect.client.orchestration import SyncPrefectClient, get_client

    from driftgate.flows import approvals_api
    from driftgate.flows.approvals_api import find_paused_run, paused_runs
    from driftgate.flows.reconcile import reconcile
    from driftgate.schedule import run_tags

    assert approvals_api.PAGE is None  # the server's own page: it refuses a larger one
    monkeypatch.setattr(approvals_api, "PAGE", 10)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(reconcile)
        made = [make_paused_run(client, flow_id, f"tenant-{i:03d}", run_tags(f"tenant-{i:03d}", "sync")) for i in range(25)]
        made.append(make_paused_run(client, flow_id, "tenant-untagged", []))  # its tagging failed: tags are best effort
        try:
            listed = [run.id for run in paused_runs(client)]
            assert len(listed) == len(set(listed)) and set(made) <= set(listed), f"{len(listed)} listed"

            # `driftgate approve tenant-024` reads that environment's pause, not all 26.
            reads: list[object] = []
            read_input = SyncPrefectClient.read_flow_run_input
            monkeypatch.setattr(SyncPrefectClient, "read_flow_run_input", lambda self, **kw: reads.append(kw) or read_input(self, **kw))
            assert find_paused_run("tenant-024").id == made[-2]
            assert len(reads) == 1, f"{len(reads)} pauses read to find one environment's"
            # A run without its environment's tag is still found, by reading every pause.
            assert find_paused_run("tenant-untagged").id == made[-1]
        finally:
            delete_runs(client, made)


@pytest.mark.usefixtures("prefect_api")
def test_a_run_answered_while_the_listing_pages_hides_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    # Approvers answer while `driftgate approvals` reads page after page: a run of
    # the first page that stops being paused must not shift another run out of the
    # next page. The answer is a real state change through the API, made between
    # the first and the second page (the hook only times it).
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.states import Running

    from driftgate.flows import approvals_api
    from driftgate.flows.approvals_api import paused_runs
    from driftgate.flows.reconcile import reconcile
    from driftgate.schedule import run_tags

    monkeypatch.setattr(approvals_api, "PAGE", 5)
    pages: list[list[str]] = []
    read_flow_runs = SyncPrefectClient.read_flow_runs

    def read_and_answer_one(self: Any, **kwargs: Any) -> Any:
        page = read_flow_runs(self, **kwargs)
        pages.append([str(run.id) for run in page])
        if len(pages) == 1:  # the first run of the first page is answered: it runs on
            client.set_flow_run_state(page[0].id, Running(), force=True)
        return page

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(reconcile)
        made = [make_paused_run(client, flow_id, f"tenant-{i:02d}", run_tags(f"tenant-{i:02d}", "sync")) for i in range(12)]
        try:
            monkeypatch.setattr(SyncPrefectClient, "read_flow_runs", read_and_answer_one)
            listed = {run.id for run in paused_runs(client)}
            monkeypatch.setattr(SyncPrefectClient, "read_flow_runs", read_flow_runs)
            assert len(pages) >= 3, pages  # 11 runs still paused, 5 a page: it paged
            answered = pages[0][0]
            assert set(made) - {answered} <= listed, f"{sorted(set(made) - {answered} - listed)} not listed"
        finally:
            delete_runs(client, made)
