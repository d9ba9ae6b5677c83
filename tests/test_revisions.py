"""Revisions, rollback and pins, end to end: real Git, the flows on the
session's Prefect server, the CLI in-process. The target is the test-only kind
``files`` (tests/filestarget.py): which commit reaches it is the subject here,
not Ansible."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import git
import pytest
import yaml

from driftgate.models import Outcome, RunPurpose
from driftgate.store import Store
from tests.conftest import answer, approver, as_cli, edit_config, invoke_cli
from tests.filestarget import FilesWorld, synced_world_on_files, world_on_files  # noqa: F401  (fixtures: world and synced_world on the files kind)

pytestmark = pytest.mark.usefixtures("prefect_api")




def _cli(prefect_api: str, world: FilesWorld, *args: str) -> Any:
    return invoke_cli(*args, "--config", str(world.config), env={"PREFECT_API_URL": prefect_api})


def _status(world: FilesWorld) -> dict[str, Any]:
    return json.loads(invoke_cli("status", "demo", "--config", str(world.config), "--output", "json").stdout)[0]


def bad_commit(world: FilesWorld) -> str:
    """A commit that deploys fine and breaks the app: no connections allowed."""
    return world.commit({"app.conf": "max_connections = 0\n"}, "tune: no connections (oops)")


def test_a_revision_off_the_ref_is_risky_and_a_bad_one_is_one_line(world: FilesWorld, prefect_api: str) -> None:
    good = git.Repo(world.repo).head.commit.hexsha
    bad_commit(world)

    planned = _cli(prefect_api, world, "plan", "demo", "--revision", good, "--output", "json")
    plan = json.loads(planned.stdout)
    assert planned.returncode == 2 and plan["revision"] == good
    assert plan["changes"] and all("pinned-revision" in c["rules"] and c["risky"] for c in plan["changes"])
    assert any("is not the head of 'main'" in w for w in plan["warnings"])

    refused = _cli(prefect_api, world, "sync", "demo", "--revision", "no-such-tag")
    assert refused.returncode == 1
    assert "environment 'demo': revision 'no-such-tag' is not a branch, tag or commit" in refused.stdout + refused.stderr
    failed = Store().history("demo", limit=1)[0]
    assert failed.outcome == Outcome.FAILED and failed.failed_stage.value == "fetch" and failed.revision == "no-such-tag"

    # Under mode risky the old revision waits for a person; rejected, nothing is applied or pinned.
    with approver(answer("reject", "alice", "not today")):
        rejected = _cli(prefect_api, world, "sync", "demo", "--revision", good, "--reason", "hold")
    assert rejected.returncode == 1
    record = Store().history("demo", limit=1)[0]
    assert record.outcome == Outcome.REJECTED and record.commit == good and record.revision == good
    assert all("pinned-revision" in c.rules for c in record.changes)
    assert not world.config_line.exists() and Store().pin_of("demo") is None


def test_a_bad_commit_is_rolled_back_and_stays_pinned_through_self_heal(synced_world: FilesWorld, prefect_api: str) -> None:
    from prefect.client.orchestration import get_client

    from driftgate.flows.drift import drift_check
    from driftgate.flows.reconcile import reconcile

    world = synced_world  # the host as a sync of the first commit left it
    edit_config(world, approval={"mode": "never"}, drift={"self_heal": "sync"})
    with as_cli("carol"):
        reconcile(environment="demo", config=str(world.config))
    good = Store().history("demo", limit=1)[0]
    assert good.outcome == Outcome.IN_SYNC
    bad = bad_commit(world)
    with as_cli("carol"):
        reconcile(environment="demo", config=str(world.config))
    assert world.config_line.read_text() == "max_connections = 0\n"

    # approval.mode never, yet a rollback waits for a person.
    with approver(answer("approve", "alice", "back to 100")) as seen:
        rolled = _cli(prefect_api, world, "rollback", "demo", "--reason", "no connections")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert len(seen) == 1 and f"rolled back from: {bad}" in rolled.stdout
    assert world.config_line.read_text() == "max_connections = 100\n"
    record = Store().history("demo", limit=1)[0]
    assert record.purpose == RunPurpose.ROLLBACK and record.outcome == Outcome.APPLIED
    assert (record.commit, record.rolled_back_from) == (good.commit, bad)
    assert record.approval.required and record.approval.approver == "alice"
    with get_client(sync_client=True) as client:  # the Prefect UI lists it by what it did
        assert client.read_flow_run(UUID(record.flow_run_id)).name == f"rollback demo@{good.commit[:7]}"
    status = _status(world)
    assert (status["pinned_to"], status["pin_reason"], status["state"]) == (good.commit, "no connections", "in sync")
    assert status["head_commit"] == bad

    # A hand edit, healed by the drift check's sync: to the pin, not to the ref's head.
    world.config_line.write_text("max_connections = 7\n")
    state = drift_check(environment="demo", config=str(world.config), return_state=True)
    assert "self-heal sync started" in state.message
    healed = Store().history("demo", limit=1)[0]
    assert healed.trigger == "self-heal" and healed.outcome == Outcome.APPLIED and healed.commit == good.commit
    assert world.config_line.read_text() == "max_connections = 100\n"

    unpinned = _cli(prefect_api, world, "unpin", "demo", "--reason", "fixed on main")
    assert unpinned.returncode == 0 and Store().pin_of("demo") is None
    assert _cli(prefect_api, world, "unpin", "demo").returncode == 1  # not pinned: one line
    assert _status(world)["state"] == "out of date"


def staging_and_prod(world: FilesWorld, *, after: str) -> None:
    """Two environments of the repository, each on its own live folder; prod is fed by promotions from staging."""
    data = yaml.safe_load(world.config.read_text())
    demo = data["environments"].pop("demo")
    for name in ("staging", "prod"):
        data["environments"][name] = {
            **demo,
            "target": {**demo["target"], "directory": str(world.root / name)},
            "approval": {"mode": "never" if name == "staging" else "always", "timeout": "10m"},
        }
    data["environments"]["prod"]["promote_from"] = {"environment": "staging", "after": after}
    world.config.write_text(yaml.safe_dump(data, sort_keys=False))


def test_promotion_takes_what_staging_ran_healthy_and_refuses_what_it_cannot(world: FilesWorld, prefect_api: str) -> None:
    from driftgate.flows.promote import promote
    from driftgate.flows.reconcile import reconcile

    staging_and_prod(world, after="30m")
    with as_cli("carol"):  # the flow behind the promote-ENV deployment, as the UI would start it
        state = promote(environment="prod", config=str(world.config), return_state=True)
    refused = Store().history("prod", limit=1)[0]
    assert state.is_failed() and refused.purpose == RunPurpose.PROMOTE and refused.outcome == Outcome.FAILED
    assert "cannot promote from 'staging': no commit has been applied and healthy there for 30m" in refused.reason

    with as_cli("carol"):
        reconcile(environment="staging", config=str(world.config))
    applied = Store().history("staging", limit=1)[0]
    too_soon = _cli(prefect_api, world, "promote", "prod")
    assert too_soon.returncode == 1 and f"(the newest, {applied.commit[:12]}, for " in too_soon.stdout + too_soon.stderr

    edit_config(world, "prod", promote_from={"environment": "staging", "after": "1ms"})
    newer = bad_commit(world)  # on main, not yet in staging: not what gets promoted
    promoted = _cli(prefect_api, world, "promote", "prod", "--yes")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    record = Store().history("prod", limit=1)[0]
    assert record.purpose == RunPurpose.PROMOTE and record.outcome == Outcome.APPLIED and record.commit == applied.commit
    assert record.promoted_from == f"staging run {applied.run_id}" and record.approval.required  # through prod's gate
    assert (world.root / "prod/app.conf").read_text() == "max_connections = 100\n"
    pin = Store().pin_of("prod")
    assert pin.commit == applied.commit and f"record #{applied.id}" in pin.reason and newer != applied.commit

    # A commit staging ran from a branch that never reached prod's ref is not promoted.
    repo = git.Repo(world.repo)
    repo.git.checkout("-q", "-b", "hotfix", applied.commit)
    hotfix = world.commit({"app.conf": "max_connections = 150\n"}, "hotfix: 150")
    repo.git.checkout("-q", "main")
    assert _cli(prefect_api, world, "sync", "staging", "--revision", "hotfix").returncode == 0
    unreachable = _cli(prefect_api, world, "promote", "prod", "--yes")
    assert unreachable.returncode == 1
    assert f"commit {hotfix[:12]} is not reachable from 'main'" in unreachable.stdout + unreachable.stderr
    assert (world.root / "prod/app.conf").read_text() == "max_connections = 100\n"
