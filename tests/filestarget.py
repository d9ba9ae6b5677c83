"""The test-only target kind ``files``, defined here and nowhere in driftgate,
and a world built on it: the cheap stand-in for the demo's Ansible world in
tests whose subject is the gate, the record or the flow rather than Ansible.

The kind: the desired state is the files under ``source.path`` of the
commit, live is a directory on disk; a plan lists the files to create,
update or delete; apply copies and deletes. Deleting is risky (the generic
rule), and so is changing a file that matches ``protected`` (this kind's own
rule). A sync costs what Prefect and driftgate cost (about 1 CPU-s), where
the demo's playbook costs ansible-playbook's 3-4 CPU-s for each check and
apply. tests/test_third_target.py proves with it that a kind is one module.
In this process a test registers it (`files_kind_registered`, the conftest's
``files_world``); a driftgate process the test starts finds it as an installed
plugin (`as_installed_plugin`).
"""

from __future__ import annotations

import difflib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import git
import pytest
import yaml

from driftgate import git as driftgate_git
from driftgate import targets
from driftgate.access import Access
from driftgate.config import Environment, TargetSettings
from driftgate.models import Action, ApplyResult, Bundle, Change, Checkout, HostResult, Plan, TaskResult

FILES = "files"  # inside the bundle: the commit's files


class FilesSettings(TargetSettings):
    kind: Literal["files"]
    directory: Path
    protected: list[str] = []
    # For tests that need a sync caught mid-apply: apply touches HOLD/ENV.applying,
    # then changes nothing until HOLD/ENV.release exists.
    hold: Path | None = None


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
        for name in sorted(set(bundle.hosts) | set(files_in(live))):
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
        if env.target.hold is not None:
            _wait_for_release(env.target.hold, env.name)
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


def _wait_for_release(hold: Path, environment: str, timeout: float = 180) -> None:
    (hold / f"{environment}.applying").touch()
    deadline = time.monotonic() + timeout
    while not (hold / f"{environment}.release").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{environment}: {hold}/{environment}.release did not appear within {timeout} s")
        time.sleep(0.05)


def files_in(directory: Path) -> list[str]:
    """The files under ``directory``, as paths relative to it."""
    return [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()]


class ImpostorSettings(FilesSettings):
    kind: Literal["kubernetes"]  # type: ignore[assignment]


class KubernetesImpostor(FilesTarget):
    """A package's kind claiming the built-in name ``kubernetes``: never registered
    from a plugin (tests/test_third_target.py)."""

    kind = "kubernetes"
    settings = ImpostorSettings


@contextmanager
def files_kind_registered() -> Iterator[None]:
    """The kind ``files`` known to driftgate inside the block (the registry is the process's)."""
    targets.register(FilesTarget())
    try:
        yield
    finally:
        targets.unregister("files")


def as_installed_plugin(directory: Path, entry_points: str = "files = tests.filestarget:FilesTarget\n") -> dict[str, str]:
    """The kind ``files`` as a package installed for another process would declare
    it (an entry point in group driftgate.targets, in a .dist-info folder under
    ``directory``, where importlib.metadata finds installed packages); returns the
    environment (PYTHONPATH) that puts it, and this checkout's tests, on that process's path."""
    from tests.conftest import ROOT

    dist_info = directory / "driftgate_files_kind-1.0.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: driftgate-files-kind\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[driftgate.targets]\n{entry_points}")
    path = [str(directory), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


# The files of the world's first commit: a config line, a page, a third file.
FIRST_FILES = {
    "app.conf": "max_connections = 100\n",
    "index.html": "<h1>Hello from driftgate</h1>\n",
    "robots.txt": "User-agent: *\n",
}


@dataclass(frozen=True)
class FilesWorld:
    """A Git repository whose ``site/`` folder is the desired state, the live
    folder, and a driftgate.yaml naming one environment (default ``demo``):
    shaped like the demo's world, so `edit_config` and ``config_line`` work the same."""

    root: Path
    repo: Path
    live: Path
    config: Path

    @property
    def config_line(self) -> Path:
        """The live config file (the demo's ``app.conf`` line, here a file of its own)."""
        return self.live / "app.conf"

    def commit(self, files: dict[str, str | None], message: str) -> str:
        """Write (or, for None, delete) files under ``site/`` and commit; returns the SHA."""
        return commit(self.repo, {f"site/{name}": content for name, content in files.items()}, message)

    def hold_apply(self, hold: Path, environment: str = "demo") -> None:
        """Apply of ``environment`` stops before it changes anything (having touched
        ``hold/ENV.applying``) until ``hold/ENV.release`` exists; a plan is not held."""
        hold.mkdir(parents=True, exist_ok=True)
        data = yaml.safe_load(self.config.read_text())
        data["environments"][environment]["target"]["hold"] = str(hold)
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))

    def synced(self) -> "FilesWorld":
        """Live as the first commit says (as after a first sync; nothing in the record)."""
        for name, content in FIRST_FILES.items():
            (self.live / name).write_text(content)
        return self


def create_files_world(root: Path, *, environment: str = "demo", approval: str = "risky") -> FilesWorld:
    repo_dir, live = root / "repo", root / "live"
    live.mkdir(parents=True)
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Tess Ter").set_value("user", "email", "tess@example.com")
        config.set_value("commit", "gpgsign", "false")
    commit(repo_dir, {f"site/{name}": content for name, content in FIRST_FILES.items()}, "first site")
    config_path = root / "driftgate.yaml"
    config_path.write_text(yaml.safe_dump({"environments": {environment: {
        "source": {"repo": "./repo", "ref": "main", "path": "site"},
        "target": {"kind": "files", "directory": str(live)},
        "approval": {"mode": approval, "timeout": "10m"},
    }}}, sort_keys=False))  # fmt: skip
    return FilesWorld(root=root, repo=repo_dir, live=live, config=config_path)


def commit(repo_dir: Path, files: dict[str, str | None], message: str) -> str:
    """Write (or, for None, remove) files in the repository and commit them; returns the SHA."""
    repo = git.Repo(repo_dir)
    for name, content in files.items():
        if content is None:
            repo.index.remove([name], working_tree=True)
            continue
        (repo_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / name).write_text(content)
        repo.index.add([name])
    return repo.index.commit(message).hexsha


# For a test module whose every story runs on this kind: importing these two
# makes its `world` and `synced_world` the files world (conftest's `files_world`).
@pytest.fixture(name="world")
def world_on_files(files_world: FilesWorld) -> FilesWorld:
    return files_world


@pytest.fixture(name="synced_world")
def synced_world_on_files(files_world: FilesWorld) -> FilesWorld:
    return files_world.synced()
