"""The demo's throwaway world: a Git repository with an Ansible playbook, a
"host" folder it manages on localhost, and a driftgate.yaml for it.

Used by `driftgate demo` and by the tests (which build on the same repository
so the demo's story is tested too).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import git
import yaml

from driftgate import yamlload

PLAYBOOK = """\
- name: demo web host
  hosts: all
  gather_facts: false
  vars_files: [vars.yml]
  tasks:
    - name: app directory
      ansible.builtin.file:
        path: "{{ demo_root }}/app"
        state: directory
        mode: "0755"

    - name: welcome page
      ansible.builtin.copy:
        dest: "{{ demo_root }}/app/index.html"
        content: "<h1>Hello from driftgate ({{ environment_name }})</h1>\\n"
        mode: "0644"

    - name: connection limit
      ansible.builtin.lineinfile:
        path: "{{ demo_root }}/app/app.conf"
        regexp: "^max_connections"
        line: "max_connections = {{ max_connections }}"
        create: true
        mode: "0644"
"""


@dataclass(frozen=True)
class DemoWorld:
    root: Path
    repo: Path
    host_root: Path
    config: Path

    @property
    def config_line(self) -> Path:
        return self.host_root / "app" / "app.conf"


def create_demo_world(root: Path, *, environment: str = "demo", approval: str = "risky") -> DemoWorld:
    """Create (afresh) the repo, the host folder and driftgate.yaml under ``root``."""
    if root.exists():
        shutil.rmtree(root)
    repo_dir, host_root = root / "repo", root / "host"
    repo_dir.mkdir(parents=True)
    host_root.mkdir()
    repo = git.Repo.init(repo_dir, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Demo Developer")
        cfg.set_value("user", "email", "dev@example.com")
        cfg.set_value("commit", "gpgsign", "false")
    ansible_dir = repo_dir / "ansible"
    ansible_dir.mkdir()
    (ansible_dir / "site.yml").write_text(PLAYBOOK)
    (ansible_dir / "vars.yml").write_text(yaml.safe_dump({"max_connections": 100}))
    repo.index.add(["ansible/site.yml", "ansible/vars.yml"])
    repo.index.commit("demo: web host with a connection limit of 100")

    config = {
        "environments": {
            environment: {
                "source": {"repo": "./repo", "ref": "main", "path": "ansible"},
                "target": {
                    "kind": "ansible",
                    "playbook": "site.yml",
                    "hosts": {"localhost": {"ansible_connection": "local"}},
                    "vars": {"demo_root": str(host_root), "environment_name": environment},
                },
                "approval": {"mode": approval, "timeout": "10m"},
            }
        }
    }
    config_path = root / "driftgate.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return DemoWorld(root=root, repo=repo_dir, host_root=host_root, config=config_path)


def commit_change(repo_dir: Path, path: str, content: str, message: str) -> str:
    """Write one file in the demo repository and commit it; returns the SHA."""
    repo = git.Repo(repo_dir)
    (repo_dir / path).parent.mkdir(parents=True, exist_ok=True)
    (repo_dir / path).write_text(content)
    repo.index.add([path])
    return repo.index.commit(message).hexsha


KUBE_MANIFESTS = {
    "k8s/namespace.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: NAMESPACE
""",
    "k8s/config.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello from git
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: s3cret-from-git
""",
    "k8s/web.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
""",
}


def add_kubernetes_environment(world: DemoWorld, *, kubeconfig: str | None, environment: str = "shop",
                               namespace: str = "shop", prune: bool = True, force_conflicts: bool = False) -> None:
    """Commit Kubernetes manifests to the demo repository and declare an environment for them."""
    repo = git.Repo(world.repo)
    for path, text in KUBE_MANIFESTS.items():
        (world.repo / path).parent.mkdir(parents=True, exist_ok=True)
        (world.repo / path).write_text(text.replace("NAMESPACE", namespace))
    repo.index.add(list(KUBE_MANIFESTS))
    repo.index.commit("shop: namespace, config, secret, web deployment and service")
    data = yamlload.load_file(world.config)
    target = {"kind": "kubernetes", "namespace": namespace, "prune": prune, "health_timeout": "60s",
              "force_conflicts": force_conflicts}
    if kubeconfig:
        target["kubeconfig"] = kubeconfig
    data["environments"][environment] = {
        "source": {"repo": "./repo", "ref": "main", "path": "k8s"},
        "render": {"kind": "plain"},
        "target": target,
        "approval": {"mode": "risky", "timeout": "10m"},
    }
    world.config.write_text(yaml.safe_dump(data, sort_keys=False))


def require_signed_approvals(world: DemoWorld, *, environment: str, approver: str, change: tuple[str, str]) -> Path:
    """Make every sync of ``environment`` wait for an SSH-signed approval by ``approver``.

    Creates an SSH key for the approver, commits who may approve
    (``.driftgate/allowed_signers``) together with ``change`` (path, new
    content) as an SSH-signed commit, and turns on signed commits and signed
    approvals in driftgate.yaml. Returns the private key's path (for
    ``driftgate sync --yes --key`` / ``driftgate approve --key``).
    """
    key = world.root / "approver_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", approver, "-f", str(key)], check=True, timeout=30)
    public = key.with_suffix(".pub").read_text().split()
    line = f'{approver} namespaces="driftgate-approval,git" {public[0]} {public[1]}\n'
    (world.root / "commit_signers").write_text(line)
    (world.repo / ".driftgate").mkdir(exist_ok=True)
    (world.repo / ".driftgate/allowed_signers").write_text(line)
    path, content = change
    (world.repo / path).write_text(content)
    subprocess.run(["git", "add", "-A"], cwd=world.repo, check=True, timeout=30)
    subprocess.run(
        ["git", "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "-S",
         "-m", f"{environment}: {approver} approves; {path} changed"],
        cwd=world.repo, check=True, timeout=30,
    )  # fmt: skip
    data = yamlload.load_file(world.config)
    env = data["environments"][environment]
    env["source"].update({"require_signed_commits": True, "allowed_signers": [str(world.root / "commit_signers")]})
    env["approval"].update({"mode": "always", "require_signature": True, "allowed_signers": ".driftgate/allowed_signers"})
    world.config.write_text(yaml.safe_dump(data, sort_keys=False))
    return key
