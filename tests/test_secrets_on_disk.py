"""What driftgate keeps on disk holds no secret.

After plan, sync and a drift check — through the real CLI and the real flows —
no Kubernetes Secret value and no Ansible Vault plaintext is in any file under
$DRIFTGATE_HOME (plain text or base64, at any alignment). A Secret encrypted
with age in Git is decrypted in memory only: applied with the right value,
its plaintext in no file anywhere the run wrote (the home, the temp dir). A
Secret in plain text in Git is a warning in the plan (CLI and artifact).
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from git import Repo as GitRepo
from typer.testing import CliRunner

from driftgate import git, targets
from driftgate.access import local_access
from driftgate.config import load_config
from driftgate.demo_repo import DemoWorld, add_kubernetes_environment, commit_change
from driftgate.errors import PermanentError
from driftgate.parsedfiles import PARSED
from driftgate.store import Store
from tests.conftest import artifacts_of, as_cli, edit_config, invoke_cli
from tests.kubeapi import KubeAPIDouble
from tests.kubeapi.fixtures import kube_double_factory  # noqa: F401  (fixture)
from tests.test_audit import VAULT_PASSWORD, VAULTED_TOKEN, _add_vaulted_variable

PLAIN_SECRET = "s3cret-from-git"  # the demo's Secret, in plain text in Git
AGE_SECRET = "age-only-4b1d9e7c2a"  # only ever in Git encrypted
NAMESPACE = "shop-disk"


def encodings(secret: str) -> list[bytes]:
    """The secret as it could sit in a file: plain, and base64 at each of the
    three byte alignments (only the characters the secret alone decides)."""
    found = [secret.encode()]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret.encode()).decode()
        found.append(encoded[4 if shift else 0 : -4].encode())
    return found


def files_holding(root: Path, secrets: Iterable[str]) -> list[str]:
    """'path: secret' for every file under ``root`` that holds one of ``secrets``."""
    wanted = [(s, e) for s in secrets for e in encodings(s)]
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        hits += [f"{path.relative_to(root)}: {s!r}" for s, e in wanted if e in data]
    return sorted(set(hits))


def checkpoint_sqlite() -> None:
    """Fold SQLite's write-ahead log into the database file, so the walk reads what was written."""
    with Store().engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def add_encrypted_secret(world: DemoWorld, tmp_path: Path, *, environment: str = "shop") -> str:
    """Commit an age-encrypted Secret (k8s/api-key.yaml.age) and point the
    environment at a local identity file; returns the recipient."""
    import pyrage
    from pyrage import x25519

    identity = x25519.Identity.generate()
    key_file = tmp_path / "keys" / "age-identity.txt"
    key_file.parent.mkdir(exist_ok=True)
    key_file.write_text(f"# driftgate test key\n{identity}\n")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-key"}, "stringData": {"key": AGE_SECRET}}
    sealed = pyrage.encrypt(yaml.safe_dump(secret).encode(), [identity.to_public()], armored=True).decode()
    commit_change(world.repo, "k8s/api-key.yaml.age", sealed, "the API key, encrypted with age")
    edit_config(world, environment, render={"age_identity_file": str(key_file)})
    return str(identity.to_public())


@pytest.fixture
def api(kube_double_factory: Callable[..., KubeAPIDouble]) -> KubeAPIDouble:  # noqa: F811
    return kube_double_factory(ready_delay=0.1, job_delay=0.1)


def engine_sync(world: DemoWorld, environment: str = "shop") -> Any:
    env = load_config(world.config).environment(environment)
    access = local_access(env)
    bundle = targets.render(env, git.fetch(env.source, environment=environment), access=access)
    plan = targets.plan(env, bundle, access)
    result = targets.apply(env, bundle, access, plan)
    assert result.succeeded, [(h.host, [t.message for t in h.tasks]) for h in result.hosts]
    return plan


@pytest.mark.usefixtures("prefect_api")
def test_no_secret_in_driftgate_home_after_plan_sync_and_drift_check(
    world: DemoWorld, api: KubeAPIDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driftgate_home: Path
) -> None:
    from driftgate.cli import app
    from driftgate.flows.drift import drift_check
    from driftgate.flows.reconcile import reconcile

    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path), namespace=NAMESPACE)
    _add_vaulted_variable(world, tmp_path, monkeypatch)
    config = str(world.config)

    runner = CliRunner()
    synced = {}
    for environment in ("shop", "demo"):
        planned = runner.invoke(app, ["plan", environment, "--config", config, "--output", "json"])
        assert planned.exit_code == 2, planned.output
        with as_cli(yes=True):
            synced[environment] = reconcile(environment=environment, config=config, return_state=True)
            assert synced[environment].is_completed()
        assert drift_check(environment=environment, config=config, return_state=True).is_completed()
    assert (world.host_root / "app/token").read_text() == VAULTED_TOKEN  # the vaulted variable was used
    live = api.get_object("v1", "Secret", "web-secret", NAMESPACE)
    assert live and base64.b64decode(live["data"]["password"]).decode() == PLAIN_SECRET  # and the Secret applied

    # The plan says the Secret is in plain text in Git (the JSON of the CLI, the run's artifact).
    shop_plan = json.loads(runner.invoke(app, ["plan", "shop", "--config", config, "--output", "json"]).output)
    assert shop_plan["in_sync"] and shop_plan["warnings"] == [
        f"Secret/{NAMESPACE}/web-secret from config.yaml (document 1) is in plain text in Git: "
        "encrypt it with age (config.yaml.age) so Git never holds its value"
    ]
    artifacts = artifacts_of(synced["shop"].state_details.flow_run_id)
    markdown = "\n".join(a.data for a in artifacts if a.key == "plan-shop" and isinstance(a.data, str))
    assert f"Secret/{NAMESPACE}/web-secret from config.yaml (document 1) is in plain text in Git" in markdown

    checkpoint_sqlite()
    assert files_holding(driftgate_home, [PLAIN_SECRET, VAULTED_TOKEN, VAULT_PASSWORD]) == []
    # The walk does see what is there: the rendered objects (without values) and the record.
    assert files_holding(driftgate_home, ["web-secret"]) and files_holding(driftgate_home, ["api token"])


def test_an_age_encrypted_secret_is_applied_and_never_on_disk(
    world: DemoWorld, api: KubeAPIDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driftgate_home: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # anything driftgate writes "temporarily" lands here
    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path), namespace=NAMESPACE)
    recipient = add_encrypted_secret(world, tmp_path)

    plan = engine_sync(world)
    created = {c.target: c for c in plan.changes}
    assert created[f"Secret/{NAMESPACE}/api-key"].rules == ("kind:Secret",)
    assert AGE_SECRET not in plan.model_dump_json()
    assert [w.split(" is in plain text")[0] for w in plan.warnings] == [f"Secret/{NAMESPACE}/web-secret from config.yaml (document 1)"]
    live = api.get_object("v1", "Secret", "api-key", NAMESPACE)
    assert live and base64.b64decode(live["data"]["key"]).decode() == AGE_SECRET
    assert live["metadata"]["labels"]["driftgate.io/environment"] == "shop"
    assert not PARSED.holds(GitRepo(world.repo).git.rev_parse("HEAD:k8s/api-key.yaml.age"))  # no plaintext kept parsed

    # The key is rotated in Git. This process renders the commit; another one
    # (the CLI) finds that bundle without Secret values, renders them again from
    # Git in memory, and sees the change.
    import pyrage
    from pyrage import x25519

    rotated = yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-key"},
                              "stringData": {"key": AGE_SECRET + "-v2"}})  # fmt: skip
    sealed = pyrage.encrypt(rotated.encode(), [x25519.Recipient.from_str(recipient)], armored=True).decode()
    commit_change(world.repo, "k8s/api-key.yaml.age", sealed, "rotate the API key")
    env = load_config(world.config).environment("shop")
    assert not targets.render(env, git.fetch(env.source, environment="shop"), access=local_access(env)).cached
    planned = invoke_cli("plan", "shop", "--config", str(world.config), "--output", "json")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    changes = json.loads(planned.stdout)["changes"]
    assert [(c["target"], c["paths"]) for c in changes] == [(f"Secret/{NAMESPACE}/api-key", ["data.key"])]
    assert "key: '*** (changed)'" in changes[0]["diff"] and AGE_SECRET not in planned.stdout  # masked like any Secret

    # kustomize renders the plain files; encrypted ones join its output, decrypted in memory.
    commit_change(world.repo, "k8s/kustomization.yaml", "resources: [namespace.yaml, config.yaml, web.yaml]\n", "kustomize")
    edit_config(world, "shop", render={"kind": "kustomize"})
    plan = engine_sync(world)
    assert [(c.target, c.paths) for c in plan.changes] == [(f"Secret/{NAMESPACE}/api-key", ("data.key",))]
    assert AGE_SECRET not in plan.model_dump_json()
    live = api.get_object("v1", "Secret", "api-key", NAMESPACE)
    assert live and base64.b64decode(live["data"]["key"]).decode() == AGE_SECRET + "-v2"

    # Not even a hash of the Secret (a guessable value could be checked against it).
    from driftgate.kubediff import stable_hash
    from driftgate.manifests import load_manifests

    env = load_config(world.config).environment("shop")
    bundle = targets.render(env, git.fetch(env.source, environment="shop"), access=local_access(env))
    (key,) = [m for m in load_manifests(bundle, env=env) if m.name == "api-key"]
    assert files_holding(driftgate_home, [stable_hash(key.object)]) == []
    assert files_holding(driftgate_home / "kube-cache", [":"])  # the cache is there, keyed without it

    checkpoint_sqlite()
    for root in (driftgate_home, scratch, world.repo):
        assert files_holding(root, [AGE_SECRET]) == [], root
    assert files_holding(driftgate_home, ["api-key"])  # its name is there, its value is not


def test_encrypted_files_need_the_right_key_and_may_hold_only_secrets(
    world: DemoWorld, api: KubeAPIDouble, tmp_path: Path
) -> None:
    add_kubernetes_environment(world, kubeconfig=str(api.kubeconfig_path), namespace=NAMESPACE)
    add_encrypted_secret(world, tmp_path)
    env = load_config(world.config).environment("shop")
    checkout = git.fetch(env.source, environment="shop")

    with pytest.raises(PermanentError, match=r"api-key.yaml.age is encrypted with age but .*render.age_identity"):
        targets.render(env, checkout)  # no identity given
    other = tmp_path / "other-key.txt"
    from pyrage import x25519

    other.write_text(f"{x25519.Identity.generate()}\n")
    edit_config(world, "shop", render={"age_identity_file": str(other)})
    env = load_config(world.config).environment("shop")
    with pytest.raises(PermanentError) as wrong:
        targets.render(env, checkout, access=local_access(env))
    assert "api-key.yaml.age cannot be decrypted with the age identity of render.age_identity_file" in str(wrong.value)
    assert AGE_SECRET not in str(wrong.value)

    import pyrage

    config_map = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})
    sealed = pyrage.encrypt(config_map.encode(), [x25519.Identity.from_str(other.read_text().strip()).to_public()])
    repo = GitRepo(world.repo)
    (world.repo / "k8s/cm.yaml.age").write_bytes(sealed)  # binary age, not armored: both are read
    (world.repo / "k8s/api-key.yaml.age").unlink()
    repo.index.add(["k8s/cm.yaml.age"])
    repo.index.remove(["k8s/api-key.yaml.age"])
    repo.index.commit("an encrypted ConfigMap instead of the key")
    with pytest.raises(PermanentError, match=r"cm.yaml.age \(document 0\): ConfigMap/shop-disk/c: only Secrets may be encrypted"):
        targets.render(env, git.fetch(env.source, environment="shop"), access=local_access(env))


def test_plain_text_left_by_older_versions_is_removed(world: DemoWorld, tmp_path: Path, driftgate_home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported checkouts and Kubernetes bundles with Secret values, as older
    versions wrote them, are deleted by the next render."""
    from driftgate import render

    old_checkout = driftgate_home / "checkouts" / "0123456789ab-k8s"
    old_checkout.mkdir(parents=True)
    (old_checkout / "config.yaml").write_text(f"stringData: {{password: {PLAIN_SECRET}}}\n")
    old_bundle = driftgate_home / "renders" / "0123456789ab-old"
    old_bundle.mkdir(parents=True)
    (old_bundle / render.MARKER).write_text(json.dumps({"commit": "0" * 40, "directory": str(old_bundle), "target_kind": "kubernetes"}))
    (old_bundle / "manifests.json").write_text(json.dumps([{"source": "x", "object": {"stringData": {"p": PLAIN_SECRET}}}]))
    monkeypatch.setattr(render, "_swept", False)

    env = load_config(world.config).environment("demo")
    bundle = targets.render(env, git.fetch(env.source, environment="demo"))
    assert bundle.directory.is_dir() and not old_checkout.exists() and not old_bundle.exists()
    assert files_holding(driftgate_home, [PLAIN_SECRET]) == []
