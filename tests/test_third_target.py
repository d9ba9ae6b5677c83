"""A third target kind, defined here and nowhere in driftgate, runs through the
same engine: config, render, plan, risk rules, the approval gate, apply and
the record. It proves that a target kind is one module (driftgate.targets):
adding one touches nothing else.

The kind ``files``: the desired state is the files under ``source.path`` of the
commit, live is a directory on disk; a plan lists the files to create, update
or delete; apply copies and deletes. Deleting is risky (the generic rule), and
so is changing a file that matches ``protected`` (this kind's own rule).
"""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import git
import pytest
import yaml
from typer.testing import CliRunner

from driftgate import git as driftgate_git
from driftgate import targets
from driftgate.access import Access
from driftgate.cli import app
from driftgate.config import ConfigError, Environment, TargetSettings, load_config
from driftgate.models import Action, ApplyResult, Bundle, Change, Checkout, Decision, HostResult, Outcome, Plan, TaskResult
from driftgate.store import Store
from tests.conftest import answer, approver, as_cli

FILES = "files"  # inside the bundle: the commit's files


class FilesSettings(TargetSettings):
    kind: Literal["files"]
    directory: Path
    protected: list[str] = []


class FilesTarget(targets.Target):
    kind = "files"
    settings = FilesSettings
    noun = "file"
    columns = ("file",)

    def render(self, env: Environment, checkout: Checkout, staging: Path, final: Path,
               *, identities: tuple[str, ...]) -> Bundle:
        driftgate_git.export(checkout, staging / FILES)
        names = sorted(p.relative_to(staging / FILES).as_posix() for p in (staging / FILES).rglob("*") if p.is_file())
        return Bundle(commit=checkout.commit, directory=final, hosts=tuple(names))

    def plan(self, env: Environment, bundle: Bundle, access: Access) -> Plan:
        desired, live = bundle.directory / FILES, env.target.directory
        changes = []
        for name in sorted(set(bundle.hosts) | set(_files(live))):
            want, have = desired / name, live / name
            if not want.is_file():
                action = Action.DELETE
            elif not have.is_file():
                action = Action.CREATE
            elif want.read_bytes() != have.read_bytes():
                action = Action.UPDATE
            else:
                continue
            before = have.read_text().splitlines() if have.is_file() else []
            after = want.read_text().splitlines() if want.is_file() else []
            diff = "\n".join(difflib.unified_diff(before, after, f"live {name}", f"desired {name}", lineterm=""))
            changes.append(Change(action=action, target=name, name=name, diff=diff))
        return Plan(environment=env.name, revision=bundle.commit, changes=tuple(changes), hosts=bundle.hosts)

    def apply(self, env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
        live = env.target.directory
        results = []
        for change in plan.changes:
            if change.action == Action.DELETE:
                (live / change.target).unlink()
            else:
                (live / change.target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle.directory / FILES / change.target, live / change.target)
            task = TaskResult(host=change.target, task=change.name, status="changed")
            results.append(HostResult(host=change.target, changed=1, tasks=(task,)))
        return ApplyResult(hosts=tuple(results))

    def risk_rules(self, env: Environment, bundle: Bundle | None) -> targets.RuleCheck:
        return lambda change: [f"protected:{p}" for p in env.target.protected if fnmatchcase(change.target, p)]

    def label(self, change: Change) -> str:
        return f"file {change.target}"

    def row(self, change: Change) -> tuple[str, ...]:
        return (change.target,)

    def result_line(self, host: HostResult) -> str:
        return f"file {host.host}: {host.tasks[0].status.value}"


def _files(directory: Path) -> list[str]:
    return [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()]


@pytest.fixture
def files_kind() -> Iterator[None]:
    targets.register(FilesTarget())
    yield
    targets.unregister("files")


@pytest.fixture
def site(tmp_path: Path, files_kind: None) -> dict[str, Path]:
    """A repository whose site/ folder is the desired state, a live folder, and a driftgate.yaml."""
    repo_dir, live = tmp_path / "repo", tmp_path / "live"
    live.mkdir()
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Tess Ter").set_value("user", "email", "tess@example.com")
    commit(repo_dir, {"site/index.html": "<h1>hello</h1>\n", "site/app.conf": "workers = 2\n"}, "first site")
    config = tmp_path / "driftgate.yaml"
    config.write_text(yaml.safe_dump({"environments": {"site": {
        "source": {"repo": "./repo", "path": "site"},
        "target": {"kind": "files", "directory": str(live), "protected": ["*.conf"]},
        "approval": {"mode": "risky", "timeout": "1m"},
    }}}))  # fmt: skip
    return {"repo": repo_dir, "live": live, "config": config}


def commit(repo_dir: Path, files: dict[str, str | None], message: str) -> None:
    repo = git.Repo(repo_dir)
    for name, content in files.items():
        if content is None:
            repo.index.remove([name], working_tree=True)
            continue
        (repo_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / name).write_text(content)
        repo.index.add([name])
    repo.index.commit(message)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_the_config_validates_a_registered_kind_with_its_own_model(site: dict[str, Path]) -> None:
    env = load_config(site["config"]).environment("site")
    assert isinstance(env.target, FilesSettings) and env.target.protected == ["*.conf"]
    broken = yaml.safe_load(site["config"].read_text())
    broken["environments"]["site"]["target"]["protectd"] = []
    broken["environments"]["site"]["target"].pop("directory")
    site["config"].write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError) as caught:
        load_config(site["config"])
    assert caught.value.problems == [
        "environment 'site': target.directory: Field required",
        "environment 'site': target.protectd: unknown key (check the spelling)",
    ]
    broken["environments"]["site"]["target"] = {"kind": "ftp"}
    site["config"].write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError, match="unknown kind 'ftp': use 'ansible', 'files' or 'kubernetes'"):
        load_config(site["config"])


def test_an_unregistered_kind_is_refused(site: dict[str, Path]) -> None:
    targets.unregister("files")
    with pytest.raises(ConfigError, match="unknown kind 'files': use 'ansible' or 'kubernetes'"):
        load_config(site["config"])


def test_a_kind_whose_settings_do_not_name_it_is_refused() -> None:
    class Loose(TargetSettings):
        kind: str  # any kind: the config could not tell this kind's settings from another's

    class LooseTarget(FilesTarget):
        kind = "loose"
        settings = Loose

    with pytest.raises(TypeError, match=r"Loose.*settings must declare kind: Literal\['loose'\]"):
        targets.register(LooseTarget())
    assert "loose" not in targets.kinds()


def test_plan_shows_the_kind_as_it_names_its_changes(site: dict[str, Path]) -> None:
    (site["live"] / "app.conf").write_text("workers = 1\n")
    text = cli("plan", "site", "--config", str(site["config"]))
    assert text.exit_code == 2, text.output
    assert "file app.conf" in text.output and "file index.html" in text.output  # the diffs' headings
    header = next(line for line in text.output.splitlines() if "action" in line)
    assert header.split() == ["file", "action", "risky"]
    body = json.loads(cli("plan", "site", "--config", str(site["config"]), "-o", "json").output)
    assert [(c["action"], c["target"], c["rules"], c["target_kind"]) for c in body["changes"]] == [
        ("update", "app.conf", ["protected:*.conf"], "files"),
        ("create", "index.html", [], "files"),
    ]
    assert not (site["live"] / "index.html").exists()  # a plan changes nothing


@pytest.mark.usefixtures("prefect_api")
def test_a_third_kind_syncs_through_the_gate_into_the_record(site: dict[str, Path]) -> None:
    from driftgate.flows.reconcile import reconcile

    def sync() -> Any:
        with as_cli("tess"):
            return reconcile(environment="site", config=str(site["config"]), return_state=True)

    # Two creates, one of a protected file: risky. `driftgate sync --yes` approves it as
    # its user, and prints the run as the kind names its changes and results.
    synced = cli("sync", "site", "--config", str(site["config"]), "--yes")
    assert synced.exit_code == 0, synced.output
    assert "create  file app.conf (risky)" in synced.output and "create  file index.html\n" in synced.output
    assert "file app.conf: changed" in synced.output
    first = Store().history("site", limit=1)[0]
    assert first.outcome == Outcome.APPLIED and first.approval is not None and first.approval.required and first.approval.decision == Decision.APPROVE
    assert [(c.action.value, c.target, c.rules, c.result) for c in first.changes] == [
        ("create", "app.conf", ("protected:*.conf",), "changed"), ("create", "index.html", (), "changed"),
    ]  # fmt: skip
    assert sorted(_files(site["live"])) == ["app.conf", "index.html"]

    # A file leaves Git: deleting it is risky, so the sync waits for an approver.
    commit(site["repo"], {"site/index.html": None, "site/about.html": "<p>about</p>\n"}, "about instead of index")
    with approver(answer("approve", "alice", "index moved to about")) as seen:
        state = sync()
    assert state.is_completed(), state.message
    assert seen[0].summary == "2 changes (1 create, 1 delete), 1 risky: delete"
    record = Store().history("site", limit=1)[0]
    assert record.outcome == Outcome.APPLIED
    assert record.approval is not None and record.approval.decision == Decision.APPROVE and record.approval.approver == "alice"
    assert [(c.action.value, c.target, c.rules, c.result, c.target_kind) for c in record.changes] == [
        ("create", "about.html", (), "changed", "files"),
        ("delete", "index.html", ("delete",), "changed", "files"),
    ]
    assert sorted(_files(site["live"])) == ["about.html", "app.conf"]

    # In sync now: nothing to do, nothing recorded as changed.
    state = sync()
    assert state.is_completed() and Store().history("site", limit=1)[0].outcome == Outcome.IN_SYNC
