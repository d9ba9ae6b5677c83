"""Git credentials for real: HTTPS with a token (git http-backend behind Basic
auth on loopback) and SSH with a key (an SSH host in a network namespace).
The secret reaches git only through its environment: never a URL, a config
file on disk, or an error message."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from driftgate.config import Source
from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.errors import PermanentError
from driftgate.git import GitAuth, fetch
from tests.test_git import files_of
from tests import sshvm
from tests.conftest import ssh_fleet_or_skip

TOKEN = "tkn-9f2c-very-secret"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


class GitHTTP(BaseHTTPRequestHandler):
    """git's smart HTTP protocol via git-http-backend (CGI), Basic auth required."""

    project_root: Path

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        expected = "Basic " + base64.b64encode(f"deploy:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "deploy",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        out = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_repo(world: DemoWorld, tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(world.repo), str(root / "deploy.git")], check=True)
    handler = type("Handler", (GitHTTP,), {"project_root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/deploy.git"
    server.shutdown()
    server.server_close()


def test_https_token(world: DemoWorld, https_repo: str, driftgate_home: Path) -> None:
    checkout = fetch(Source(repo=https_repo, path="ansible"), environment="web", auth=GitAuth(username="deploy", token=TOKEN))
    assert "site.yml" in files_of(checkout)
    for path in driftgate_home.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"token written to {path}"


def test_https_without_or_with_a_wrong_token(https_repo: str) -> None:
    for auth in (None, GitAuth(username="deploy", token="wrong-token-123")):
        with pytest.raises(PermanentError) as caught:
            fetch(Source(repo=https_repo), environment="web", auth=auth)
        message = str(caught.value)
        assert f"environment 'web': cannot fetch {https_repo}" in message
        assert "check source.repo and its credentials" in message
        assert "wrong-token-123" not in message


@pytest.fixture(scope="module")
def git_host() -> Iterator[sshvm.SSHFleet]:
    with ssh_fleet_or_skip(1, "git") as fleet:
        yield fleet


def test_ssh_key(world: DemoWorld, git_host: sshvm.SSHFleet) -> None:
    (host,) = git_host
    bare = host.path("/srv/deploy.git")
    subprocess.run(["git", "clone", "-q", "--bare", str(world.repo), str(bare)], check=True)
    repo = f"root@{host.address}:/srv/deploy.git"
    auth = GitAuth(ssh_private_key=git_host.private_key, known_hosts=git_host.known_hosts)
    first = fetch(Source(repo=repo, path="ansible"), environment="vms", auth=auth)
    assert "site.yml" in files_of(first)

    # An incremental fetch over SSH sees a new commit pushed to the server.
    sha = commit_change(world.repo, "ansible/vars.yml", "max_connections: 42\n", "42")
    subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=world.repo, check=True)
    assert fetch(Source(repo=repo, path="ansible"), environment="vms", auth=auth).commit == sha

    with pytest.raises(PermanentError, match="Host key verification failed") as caught:
        fetch(Source(repo=repo.replace("deploy", "other")), environment="vms", auth=GitAuth(ssh_private_key=git_host.private_key, known_hosts=""))
    assert "PRIVATE KEY" not in str(caught.value)
