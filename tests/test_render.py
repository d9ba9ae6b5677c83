"""render: the Ansible bundle, its sandboxed templates, validation and the render
cache (kept while what render reads is unchanged, for Ansible and Kubernetes)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from driftgate import gittree, manifests, targets, yamlload
from driftgate.access import local_access
from driftgate.config import Environment, load_config
from driftgate.demo_repo import DemoWorld, add_kubernetes_environment, commit_change
from driftgate.errors import PermanentError
from driftgate.git import fetch
from driftgate.models import Stage
from driftgate.parsedfiles import ParsedFiles
from driftgate.render import KEEP_UNUSED, MARKER, render_bundle
from driftgate.store import Store
from tests.conftest import count_renders, edit_config, invoke_cli
from tests.kubeapi import KubeAPIDouble
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)


def env_of(world: DemoWorld) -> Environment:
    return load_config(world.config).environment("demo")


def render(world: DemoWorld):
    env = env_of(world)
    return render_bundle(env, fetch(env.source, environment="demo"))


def test_bundle_has_playbook_inline_inventory_and_local_interpreter(world: DemoWorld) -> None:
    bundle = render(world)
    assert bundle.hosts == ("localhost",)
    assert bundle.playbook == "site.yml" and not bundle.cached
    inventory = yaml.safe_load((bundle.directory / bundle.inventory[0]).read_text())
    assert inventory == {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}
    overlay = yaml.safe_load((bundle.directory / bundle.inventory[1]).read_text())
    interpreter = overlay["all"]["hosts"]["localhost"]["ansible_python_interpreter"]
    assert Path(interpreter).exists()


def test_unchanged_commit_is_rendered_once(world: DemoWorld, driftgate_home: Path) -> None:
    first = render(world)
    second = render(world)
    assert second.cached and second.directory == first.directory
    assert len(list((driftgate_home / "renders").iterdir())) == 1
    commit_change(world.repo, "ansible/vars.yml", "max_connections: 3\n", "three")
    third = render(world)
    assert not third.cached and third.directory != first.directory


def test_bundles_unused_for_a_week_are_deleted_when_a_new_one_is_written(world: DemoWorld, driftgate_home: Path) -> None:
    week_and_a_day_ago = time.time() - KEEP_UNUSED - 24 * 3600

    def age(path: Path) -> None:
        os.utime(path, (week_and_a_day_ago, week_and_a_day_ago))

    old = render(world)
    commit_change(world.repo, "ansible/vars.yml", "max_connections: 3\n", "three")
    used = render(world)
    age(old.directory / MARKER)
    age(used.directory / MARKER)
    killed_render = driftgate_home / "renders" / "render-left-by-a-killed-run"
    killed_render.mkdir()
    age(killed_render)
    assert render(world).cached  # reusing a bundle marks it used...
    commit_change(world.repo, "ansible/vars.yml", "max_connections: 4\n", "four")
    new = render(world)  # ...and writing a new one sweeps the unused
    assert not new.cached
    assert sorted(p.name for p in (driftgate_home / "renders").iterdir()) == sorted([used.directory.name, new.directory.name])
    # The swept tree renders again when a commit has it again.
    commit_change(world.repo, "ansible/vars.yml", "max_connections: 100\n", "back to the first tree")
    again = render(world)
    assert not again.cached and again.directory == old.directory and (again.directory / MARKER).is_file()


def test_a_bundle_is_kept_while_what_render_reads_is_unchanged(world: DemoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = count_renders(monkeypatch, "ansible")
    first = render(world)
    # A commit to another directory of the repository: nothing under source.path changed.
    elsewhere = commit_change(world.repo, "docs/notes.md", "another tenant's files\n", "docs")
    second = render(world)
    assert rendered == [first.commit] and second.cached and second.directory == first.directory
    assert second.commit == elsewhere != first.commit  # the bundle names the commit it was asked for
    marker = json.loads((first.directory / ".driftgate-bundle.json").read_text())
    assert marker["commit"] == first.commit  # what is on disk is unchanged: the commit is the run's

    changed = commit_change(world.repo, "ansible/vars.yml", "max_connections: 3\n", "three")
    third = render(world)
    assert rendered == [first.commit, changed] and not third.cached and third.directory != first.directory
    # The file back as it was: the path holds what the first commit held, so does the bundle.
    reverted = commit_change(world.repo, "ansible/vars.yml", "max_connections: 100\n", "back to 100")
    fourth = render(world)
    assert len(rendered) == 2 and fourth.directory == first.directory and fourth.commit == reverted

    edit_config(world, target={"vars": {"demo_root": str(world.host_root), "environment_name": "other"}})
    fifth = render(world)
    assert rendered[2:] == [reverted] and not fifth.cached and fifth.directory != first.directory


@pytest.fixture
def api(kube_double_factory: Callable[..., KubeAPIDouble]) -> KubeAPIDouble:  # noqa: F811
    return kube_double_factory(ready_delay=0, job_delay=0)


def test_a_kept_kubernetes_bundle_plans_and_records_the_new_commit(
    world: DemoWorld, api: KubeAPIDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path))
    rendered = count_renders(monkeypatch, "kubernetes")
    config = str(world.config)
    first = invoke_cli("plan", "shop", "--config", config, "--output", "json")
    assert first.returncode == 2, first.stdout + first.stderr
    elsewhere = commit_change(world.repo, "ansible/vars.yml", "max_connections: 3\n", "another environment's change")

    # Another process: the bundle on disk, without its Secrets' values, which come
    # back from Git at the commit the run was asked for.
    manifests._RENDERED.clear()
    env = load_config(world.config).environment("shop")
    bundle = targets.render(env, fetch(env.source, environment="shop"), access=local_access(env))
    assert bundle.cached and bundle.commit == elsewhere and bundle.checkout and bundle.checkout.commit == elsewhere
    secret = next(m for m in manifests.load_manifests(bundle, env=env) if m.kind == "Secret")
    assert secret.object.get("data") or secret.object.get("stringData")

    manifests._RENDERED.clear()
    second = invoke_cli("plan", "shop", "--config", config, "--output", "json")
    assert second.returncode == 2, second.stdout + second.stderr
    assert len(rendered) == 1  # planned from the kept bundle
    plan = json.loads(second.stdout)
    assert plan["revision"] == elsewhere and plan["plan_hash"] != json.loads(first.stdout)["plan_hash"]
    assert Store().history("shop", limit=1)[0].commit == elsewhere


def use_inventory_file(world: DemoWorld, name: str) -> None:
    data = yaml.safe_load(world.config.read_text())
    target = data["environments"]["demo"]["target"]
    del target["hosts"]
    target["inventory"] = name
    world.config.write_text(yaml.safe_dump(data))


def test_templated_inventory_is_rendered(world: DemoWorld) -> None:
    template = "all:\n  hosts:\n    {{ host_name }}-{{ environment }}:\n      ansible_connection: local\n"
    commit_change(world.repo, "ansible/hosts.yml.j2", template, "templated inventory")
    use_inventory_file(world, "hosts.yml.j2")
    edit_config(world, render={"values": {"host_name": "web1"}})
    bundle = render(world)
    assert bundle.hosts == ("web1-demo",)
    assert bundle.inventory[0] == "project/hosts.yml"
    assert not (bundle.directory / "project/hosts.yml.j2").exists()

    # Another environment of the same path and settings: its name is in what it
    # renders, so it gets its own bundle, not the demo's.
    data = yaml.safe_load(world.config.read_text())
    data["environments"]["twin"] = data["environments"]["demo"]
    world.config.write_text(yaml.safe_dump(data))
    twin = load_config(world.config).environment("twin")
    assert render_bundle(twin, fetch(twin.source, environment="twin")).hosts == ("web1-twin",)


def test_template_errors_name_the_file(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/group_vars/all.yml.j2", "x: {{ missing_value }}\n", "undefined")
    edit_config(world, render={"templates": ["group_vars/*.j2"]})
    with pytest.raises(PermanentError) as caught:
        render(world)
    assert "template group_vars/all.yml.j2: 'missing_value' is undefined" in str(caught.value)
    assert caught.value.stage == Stage.RENDER


def test_sandbox_blocks_unsafe_template_code(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/group_vars/all.yml.j2", "x: {{ ''.__class__.__mro__[1].__subclasses__() }}\n", "escape")
    edit_config(world, render={"templates": ["group_vars/*.j2"]})
    with pytest.raises(PermanentError, match=r"template group_vars/all.yml.j2.*unsafe"):
        render(world)


def test_ansible_templates_are_left_for_ansible(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/templates/app.conf.j2", "limit={{ max_connections }}\n", "ansible template")
    bundle = render(world)
    assert (bundle.directory / "project/templates/app.conf.j2").read_text() == "limit={{ max_connections }}\n"


def test_missing_playbook(world: DemoWorld) -> None:
    edit_config(world, target={"playbook": "deploy.yml"})
    with pytest.raises(PermanentError, match=r"environment 'demo' at commit \w+: playbook 'deploy.yml' does not exist"):
        render(world)


def test_playbook_that_is_not_yaml(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/site.yml", "- hosts: all\n  tasks: [\n", "broken")
    with pytest.raises(PermanentError, match=r"playbook site.yml is not valid YAML"):
        render(world)


def test_missing_inventory_file_is_an_error_not_a_host_name(world: DemoWorld) -> None:
    use_inventory_file(world, "hosts.ini")
    with pytest.raises(PermanentError, match=r"inventory 'hosts.ini' does not exist in the bundle"):
        render(world)


def test_empty_inventory_is_an_error(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/hosts.ini", "# nobody here\n", "empty inventory")
    use_inventory_file(world, "hosts.ini")
    with pytest.raises(PermanentError, match=r"inventory hosts.ini names no hosts"):
        render(world)


def test_a_kubernetes_render_reads_and_parses_only_the_files_a_commit_changed(
    world: DemoWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_kubernetes_environment(world, kubeconfig=None)
    monkeypatch.setattr(manifests, "PARSED", ParsedFiles())  # this test's own, empty
    parsed: list[str] = []
    read: list[str] = []
    parse, blobs = manifests._parse, gittree.blobs
    monkeypatch.setattr(manifests, "_parse", lambda text, source, *a, **kw: parsed.append(source) or parse(text, source, *a, **kw))
    monkeypatch.setattr(gittree, "blobs", lambda git_dir, shas: read.extend(shas := list(shas)) or blobs(git_dir, shas))

    def objects() -> dict[str, dict]:
        env = load_config(world.config).environment("shop")
        return {m.display: m.object for m in manifests.stored_manifests(render_bundle(env, fetch(env.source, environment="shop")).directory)}

    first = objects()
    assert sorted(parsed) == ["config.yaml", "namespace.yaml", "web.yaml"] and len(read) == 3
    parsed.clear(), read.clear()
    config = (world.repo / "k8s/config.yaml").read_text().replace("hello from git", "hello again")
    commit_change(world.repo, "k8s/config.yaml", config, "one file")
    second = objects()
    assert parsed == ["config.yaml"] and len(read) == 1  # the other files: from memory, by blob
    assert second["ConfigMap/shop/web-config"]["data"] == {"greeting": "hello again"}
    assert {k: v for k, v in second.items() if "web-config" not in k} == {k: v for k, v in first.items() if "web-config" not in k}

    # A template's output depends on the values: it is never kept.
    template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sized}\ndata: {size: '{{ size }}'}\n"
    commit_change(world.repo, "k8s/sized.yaml.j2", template, "a template")
    for size in (7, 8):
        edit_config(world, "shop", render={"kind": "jinja", "values": {"size": size}})
        parsed.clear()
        assert objects()["ConfigMap/shop/sized"]["data"] == {"size": str(size)} and parsed == ["sized.yaml.j2"]

    # Files parsed before still count against the environment's limit.
    monkeypatch.setattr(yamlload, "MAX_RENDER_BYTES", 100)
    edit_config(world, "shop", render={"kind": "jinja", "values": {"size": 9}})
    with pytest.raises(PermanentError, match=r"the YAML under source.path is larger than"):
        objects()


def test_parsed_files_are_bounded_by_their_size() -> None:
    kept = ParsedFiles(max_bytes=10)
    kept.put("a", 4, ((0, {"a": 1}),))
    kept.put("b", 4, ((0, {"b": 1}),))
    assert kept.get("a") == ((0, {"a": 1}),)  # a used last: b goes first
    kept.put("c", 4, ((0, {"c": 1}),))
    assert kept.holds("a") and not kept.holds("b") and kept.holds("c") and kept.size == 8
    kept.put("huge", 11, ((0, {}),))
    assert not kept.holds("huge") and kept.size == 8


def test_rendered_manifests_are_kept_safely_by_threads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fleet check plans environments in threads, each keeping its bundle's
    manifests in this process's memory (at most 8): four threads on 12 bundles,
    switching as often as the interpreter can, none fails on a race."""
    monkeypatch.setattr(manifests, "_RENDERED", type(manifests._RENDERED)())
    bundles = [Path(f"/bundles/{i}") for i in range(12)]
    errors: list[BaseException] = []

    def keep(k: int) -> None:
        try:
            for n in range(5000):
                manifests.remember(bundles[(n * (k + 1)) % len(bundles)], [])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=keep, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    assert len(manifests._RENDERED) == manifests._RENDERED_MAX
