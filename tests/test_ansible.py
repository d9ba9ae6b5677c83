"""diff and apply with real ansible-runner against localhost."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftgate import ansible, policy
from driftgate.config import load_config
from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.errors import PermanentError, TransientError
from driftgate.git import fetch
from driftgate.models import Action, Stage
from driftgate.render import render_bundle
from driftgate.secrets import Masker
from tests.conftest import add_tasks, edit_config


def stages(world: DemoWorld):
    env = load_config(world.config).environment("demo")
    return env, render_bundle(env, fetch(env.source, environment="demo"))


def test_first_plan_apply_then_in_sync(world: DemoWorld, driftgate_home: Path) -> None:
    env, bundle = stages(world)
    plan = ansible.check(env, bundle)
    assert [(c.target, c.name, c.action) for c in plan.changes] == [
        ("localhost", "app directory", Action.CREATE),
        ("localhost", "welcome page", Action.CREATE),
        ("localhost", "connection limit", Action.CREATE),  # lineinfile create: true on a missing file
    ]
    assert "+max_connections = 100" in plan.changes[2].diff
    assert not world.config_line.exists(), "check mode must not change the host"
    assert plan.plan_hash == ansible.check(env, bundle).plan_hash  # stable over identical content

    result = ansible.apply(env, bundle)
    assert result.succeeded and result.changed == 3
    assert [t.status for t in result.hosts[0].tasks] == ["changed", "changed", "changed"]
    assert world.config_line.read_text() == "max_connections = 100\n"

    again = ansible.check(env, bundle)
    assert again.in_sync and again.plan_hash != plan.plan_hash
    assert list((driftgate_home / "runs").iterdir()) == [], "run directories (artifacts) must not stay on disk"


# Task results as ansible-core reports them with --check --diff (captured from real runs).
_CONTENT = {"before": "", "after": "a=1\n", "before_header": "/srv/app.conf (content)", "after_header": "/srv/app.conf (content)"}
_ATTRIBUTES = {"before_header": "/srv/app.conf (file attributes)", "after_header": "/srv/app.conf (file attributes)"}


@pytest.mark.parametrize(
    ("res", "action"),
    [
        ({"diff": _CONTENT}, Action.CREATE),  # lineinfile/blockinfile, create: true, the file is missing
        ({"diff": [_CONTENT, _ATTRIBUTES]}, Action.UPDATE),  # ... the file exists, empty: not a creation
        ({"diff": [{**_CONTENT, "before": "old\n"}, _ATTRIBUTES]}, Action.UPDATE),
        ({"diff": [{"before": "", "after": "x\n", "after_header": "/srv/new"}]}, Action.CREATE),  # copy, template
        ({"diff": [{"before": "", "after": "x\n", "before_header": "/srv/empty", "after_header": "/srv/empty"}]}, Action.UPDATE),
        ({"diff": {"before": {"path": "/srv/d", "state": "absent"}, "after": {"path": "/srv/d", "state": "directory"}}}, Action.CREATE),
        ({"diff": {"before": {"path": "/srv/d", "state": "file"}, "after": {"path": "/srv/d", "state": "absent"}}}, Action.DELETE),
        ({"diff": {**_CONTENT, "after": ""}}, Action.UPDATE),  # nothing written: no file made
    ],
)
def test_a_task_that_makes_a_missing_file_is_a_create(res: dict, action: Action) -> None:
    assert ansible._action(res) == action


def test_drift_is_exactly_the_hand_edit(synced_world: DemoWorld) -> None:
    world = synced_world  # applied once for the session (test_first_plan_apply_then_in_sync applies for itself)
    env, bundle = stages(world)
    world.config_line.write_text("max_connections = 5\n")
    plan = ansible.check(env, bundle)
    assert [(c.name, c.action) for c in plan.changes] == [("connection limit", Action.UPDATE)]
    assert "-max_connections = 5" in plan.changes[0].diff and "+max_connections = 100" in plan.changes[0].diff


def test_a_diff_without_change_is_not_drift(world: DemoWorld) -> None:
    add_tasks(
        world,
        "a task that never reports a change",
        "    - name: reported but unchanged\n"
        "      ansible.builtin.copy:\n"
        "        dest: \"{{ demo_root }}/note.txt\"\n"
        "        content: \"x\\n\"\n"
        "      changed_when: false\n"
    )
    env, bundle = stages(world)
    ansible.apply(env, bundle)
    (world.host_root / "note.txt").write_text("edited\n")
    plan = ansible.check(env, bundle)
    assert plan.in_sync, plan.changes


def test_deletion_and_unpredictable_modules_are_risky(world: DemoWorld) -> None:
    add_tasks(
        world,
        "risky tasks",
        "    - name: remove the old page\n"
        "      ansible.builtin.file:\n"
        "        path: \"{{ demo_root }}/old.html\"\n"
        "        state: absent\n"
        "    - name: restart by hand\n"
        "      ansible.builtin.command: \"true\"\n"
    )
    (world.host_root / "old.html").write_text("old\n")
    env, bundle = stages(world)
    risky = {c.name: (c.action, c.risky, c.rules) for c in policy.assess(env, ansible.check(env, bundle), bundle=bundle).changes}
    assert risky["remove the old page"] == (Action.DELETE, True, ("delete",))
    assert risky["welcome page"] == (Action.CREATE, False, ())
    # command does not run in check mode: its effect is unknown, so it is a `run`, and risky
    assert risky["restart by hand"] == (Action.RUN, True, ("module:command",))


def test_what_check_mode_cannot_predict_is_a_run_change(world: DemoWorld) -> None:
    (world.host_root / "exists").write_text("")
    add_tasks(
        world,
        "tasks check mode can and cannot predict",
        "    - name: shell it\n"
        "      ansible.builtin.shell: \"echo ran > {{ demo_root }}/ran\"\n"
        "    - name: raw it\n"
        "      ansible.builtin.raw: \"true\"\n"
        "    - name: creates holds\n"
        "      ansible.builtin.command: \"touch {{ demo_root }}/never\"\n"
        "      args: {creates: \"{{ demo_root }}/exists\"}\n"
        "    - name: creates missing\n"
        "      ansible.builtin.command: \"touch {{ demo_root }}/made\"\n"
        "      args: {creates: \"{{ demo_root }}/made\"}\n"
        "    - name: skipped by a condition\n"
        "      ansible.builtin.command: \"true\"\n"
        "      when: false\n"
        "    - name: only for real\n"
        "      ansible.builtin.command: \"true\"\n"
        "      when: not ansible_check_mode\n"
        "    - name: says it changes nothing\n"
        "      ansible.builtin.command: \"touch {{ demo_root }}/quiet\"\n"
        "      changed_when: false\n"
        "    - name: read only\n"
        "      ansible.builtin.command: \"cat {{ demo_root }}/exists\"\n"
        "      check_mode: false\n"
        "      changed_when: false\n"
        "    - name: forced copy\n"
        "      ansible.builtin.copy: {dest: \"{{ demo_root }}/forced\", content: \"f\\n\"}\n"
        "      check_mode: false\n"
        "    - name: hidden and skipped\n"
        "      ansible.builtin.command: \"true\"\n"
        "      no_log: true\n"
        "    - name: hidden, condition false\n"
        "      ansible.builtin.copy: {dest: \"{{ demo_root }}/h\", content: \"h\\n\"}\n"
        "      no_log: true\n"
        "      when: false\n",
    )
    env, bundle = stages(world)
    plan = policy.assess(env, ansible.check(env, bundle), bundle=bundle)
    runs = {c.name: c for c in plan.changes if c.action == Action.RUN}
    assert sorted(runs) == [
        "creates missing", "forced copy", "hidden and skipped", "only for real", "raw it", "says it changes nothing", "shell it",
    ]  # fmt: skip
    assert all(c.risky and c.rules == (f"module:{c.module.rsplit('.', 1)[-1]}",) for c in runs.values())
    assert runs["shell it"].note == "check mode skipped this shell task: what it does is unknown until it runs at apply"
    assert "check_mode: false: the task ran for real during this plan" in runs["forced copy"].note
    assert "+f" in runs["forced copy"].diff
    assert (world.host_root / "forced").exists(), "check_mode: false runs for real, even in a plan"
    assert "check mode cannot see what command does" in runs["creates missing"].note
    assert {c.name for c in plan.changes} == set(runs) | {"app directory", "welcome page", "connection limit"}
    assert not (world.host_root / "ran").exists() and not (world.host_root / "quiet").exists()


def test_a_run_without_driftgates_callback_is_refused(world: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the callback a skip by check mode looks like a skip by a condition: refuse to plan.
    monkeypatch.setattr(ansible, "_CALLBACK_DIR", tmp_path)
    env, bundle = stages(world)
    with pytest.raises(PermanentError, match="driftgate's Ansible callback .driftgate_tasks. did not report"):
        ansible.check(env, bundle)


def test_risky_tasks_by_name(world: DemoWorld) -> None:
    edit_config(world, approval={"risky_tasks": ["connection *"]})
    env, bundle = stages(world)
    risky = [(c.name, c.rules) for c in policy.assess(env, ansible.check(env, bundle), bundle=bundle).changes if c.risky]
    assert risky == [("connection limit", ("task:connection *",))]


def test_failed_task_in_apply_is_reported_per_host_and_task(world: DemoWorld) -> None:
    add_tasks(
        world,
        "a failing task",
        "    - name: needs a missing file\n"
        "      ansible.builtin.copy:\n"
        "        src: /nonexistent/driftgate-test-file\n"
        "        dest: \"{{ demo_root }}/copied\"\n"
    )
    env, bundle = stages(world)
    with pytest.raises(PermanentError) as caught:
        ansible.check(env, bundle)
    assert "host 'localhost', task 'needs a missing file': failed in check mode" in str(caught.value)
    assert caught.value.stage == Stage.DIFF

    result = ansible.apply(env, bundle)
    assert not result.succeeded
    failed = [t for t in result.hosts[0].tasks if t.status == "failed"]
    assert [t.task for t in failed] == ["needs a missing file"]
    assert "/nonexistent/driftgate-test-file" in failed[0].message


def test_playbook_error_before_any_task(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/site.yml", "- hosts: all\n  tasks:\n    - no_such_module_xyz: {}\n", "typo")
    env, bundle = stages(world)
    with pytest.raises(PermanentError) as caught:
        ansible.check(env, bundle)
    assert "playbook site.yml failed before running a task" in str(caught.value)
    assert "no_such_module_xyz" in str(caught.value)


def test_unreachable_host_is_transient(world: DemoWorld) -> None:
    # Port 9 on loopback refuses at once: a real unreachable host without any network.
    edit_config(world, target={"hosts": {"web1": {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_python_interpreter": "/usr/bin/python3"}}})
    env, bundle = stages(world)
    with pytest.raises(TransientError, match=r"host 'web1', task 'app directory': host unreachable"):
        ansible.check(env, bundle)


def test_secrets_are_masked_in_diffs(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/vars.yml", "max_connections: 100\napi_token: tok-Zq81-secret\n", "token")
    add_tasks(
        world,
        "token file",
        "    - name: token file\n"
        "      ansible.builtin.copy:\n"
        "        dest: \"{{ demo_root }}/token\"\n"
        "        content: \"token={{ api_token }}\\n\"\n"
    )
    env, bundle = stages(world)
    plan = ansible.check(env, bundle, masker=Masker(["tok-Zq81-secret"]))
    token_change = next(c for c in plan.changes if c.name == "token file")
    assert "token=***" in token_change.diff
    assert "tok-Zq81-secret" not in plan.model_dump_json()


def test_the_playbook_does_not_get_driftgates_own_credentials(world: DemoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # driftgate's record URL (its password) and Prefect's API key are driftgate's, not the
    # playbook's: a `lookup('env')` or a `debug: var=ansible_env` would show them in the
    # plan, and ansible-runner writes the environment into the run's directory. (Not a
    # boundary: a playbook runs code on this machine. It keeps them out by accident.)
    monkeypatch.setenv("DRIFTGATE_DATABASE_URL", f"sqlite:///{world.root}/record-pw-9q1x.db")
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_key-9q1x")
    monkeypatch.setenv("DRIFTGATE_OTHER", "kept-9q1x")  # anything else still reaches the playbook
    add_tasks(
        world,
        "what the playbook sees",
        "    - name: what the playbook sees\n"
        "      ansible.builtin.copy:\n"
        "        dest: \"{{ demo_root }}/seen\"\n"
        "        content: \"{{ lookup('env', 'DRIFTGATE_DATABASE_URL') }}|{{ lookup('env', 'PREFECT_API_KEY') }}|"
        "{{ lookup('env', 'DRIFTGATE_OTHER') }}\"\n",
    )
    env, bundle = stages(world)
    assert ansible.apply(env, bundle).succeeded
    assert (world.host_root / "seen").read_text() == "||kept-9q1x"


def test_runner_environment_is_safe(tmp_path: Path) -> None:
    env = ansible._ansible_env(tmp_path, tmp_path / "known_hosts", ansible.SSHAccess(user="deploy"), tmp_path / "cp")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "StrictHostKeyChecking=yes" in env["ANSIBLE_SSH_ARGS"]
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in env["ANSIBLE_SSH_ARGS"]
    assert env["PATH"].split(":")[0] == str(Path(ansible.sys.executable).parent)
    assert env["ANSIBLE_REMOTE_USER"] == "deploy"
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(tmp_path / "cp")


def test_no_log_changes_are_still_drift(world: DemoWorld) -> None:
    # Ansible censors a no_log task's result, `changed` included; the play's stats do not.
    add_tasks(
        world,
        "a no_log task",
        "    - name: api token\n"
        "      ansible.builtin.copy:\n"
        "        dest: \"{{ demo_root }}/token\"\n"
        "        content: \"tok-hidden-value\\n\"\n"
        "      no_log: true\n"
    )
    env, bundle = stages(world)
    ansible.apply(env, bundle)
    assert ansible.check(env, bundle).in_sync
    (world.host_root / "token").write_text("edited\n")
    plan = ansible.check(env, bundle)
    assert [(c.name, c.diff) for c in plan.changes] == [("api token", "(hidden: the task has no_log: true)")]
    assert "tok-hidden-value" not in plan.model_dump_json()
    result = ansible.apply(env, bundle)
    assert [(t.task, t.status) for t in result.hosts[0].tasks if t.status == "changed"] == [("api token", "changed")]
