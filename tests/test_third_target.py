"""A third target kind, defined in the tests and nowhere in driftgate, runs through the
same engine: config, render, plan, risk rules, the approval gate, apply and
the record. It proves that a target kind is one module (driftgate.targets):
adding one touches nothing else.

The kind ``files`` (tests/filestarget.py): the desired state is the files
under ``source.path`` of the commit, live is a directory on disk. Deleting is
risky (the generic rule), and so is changing a file that matches
``protected`` (this kind's own rule).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from typer.testing import CliRunner

from driftgate import git as driftgate_git
from driftgate import targets
from driftgate.cli import app
from driftgate.config import ConfigError, TargetSettings, load_config
from driftgate.models import Decision, Outcome
from driftgate.store import Store
from tests.conftest import answer, approver, as_cli
from tests.filestarget import FilesSettings, FilesTarget, commit, files_in, files_kind_registered


@pytest.fixture
def files_kind() -> Iterator[None]:
    with files_kind_registered():
        yield


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


def test_a_kind_that_may_read_the_whole_repository_gets_no_bundle_of_other_files(site: dict[str, Path]) -> None:
    """A kind that does not say its render reads only source.path (render_reads)
    is keyed on the whole commit's tree: a commit outside the path renders again."""
    env = load_config(site["config"]).environment("site")
    first = targets.render(env, driftgate_git.fetch(env.source, environment="site"))
    assert targets.render(env, driftgate_git.fetch(env.source, environment="site")).cached
    commit(site["repo"], {"shared/header.html": "<header>shared by every site</header>\n"}, "outside site/")
    second = targets.render(env, driftgate_git.fetch(env.source, environment="site"))
    assert not second.cached and second.directory != first.directory and second.commit != first.commit


@pytest.mark.e2e  # the console script, in a process where only the installed plugin can register the kind
def test_an_installed_plugin_adds_its_kind_to_every_driftgate_process(tmp_path: Path) -> None:
    from tests.conftest import run_cli
    from tests.filestarget import as_installed_plugin, create_files_world

    world = create_files_world(tmp_path / "world")
    bare = run_cli("plan", "demo", "--config", str(world.config))
    assert bare.returncode == 1 and "unknown kind 'files': use 'ansible' or 'kubernetes'" in bare.stderr

    plugin = as_installed_plugin(tmp_path / "site-packages")
    planned = run_cli("plan", "demo", "--config", str(world.config), "--output", "json", env=plugin)
    assert planned.returncode == 2, planned.stderr
    assert [(c["action"], c["target"], c["target_kind"]) for c in json.loads(planned.stdout)["changes"]] == [
        ("create", "app.conf", "files"), ("create", "index.html", "files"), ("create", "robots.txt", "files"),
    ]  # fmt: skip

    # A plugin that does not load is named where its kind is used.
    broken = as_installed_plugin(tmp_path / "broken", "files = tests.no_such_module:FilesTarget\n")
    failed = run_cli("plan", "demo", "--config", str(world.config), env=broken)
    assert failed.returncode == 1
    assert "unknown kind 'files': use 'ansible' or 'kubernetes' (the plugin for 'files': tests.no_such_module:FilesTarget " \
           "did not load: ModuleNotFoundError: No module named 'tests.no_such_module')" in failed.stderr, failed.stderr


def test_a_plugin_cannot_replace_a_built_in_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.filestarget import as_installed_plugin

    builtin = targets.get("kubernetes")
    as_installed_plugin(tmp_path, "kubernetes = tests.filestarget:KubernetesImpostor\nfiles = tests.filestarget:FilesTarget\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # where importlib.metadata finds it, as for an installed package
    monkeypatch.setattr(targets, "_plugins_loaded", False)
    try:
        targets.load_plugins()
        assert targets.get("kubernetes") is builtin
        assert isinstance(targets.get("files"), FilesTarget)  # the same scan did load the other
    finally:
        targets.unregister("files")


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
    assert sorted(files_in(site["live"])) == ["app.conf", "index.html"]

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
    assert sorted(files_in(site["live"])) == ["about.html", "app.conf"]

    # In sync now: nothing to do, nothing recorded as changed.
    state = sync()
    assert state.is_completed() and Store().history("site", limit=1)[0].outcome == Outcome.IN_SYNC
