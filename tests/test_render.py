"""render: the Ansible bundle, its sandboxed templates, validation and the render cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftgate.config import Environment, load_config
from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.errors import PermanentError
from driftgate.git import fetch
from driftgate.models import Stage
from driftgate.render import render_bundle
from tests.conftest import edit_config


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
