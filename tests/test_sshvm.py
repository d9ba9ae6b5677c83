"""Tests of the SSH VM helper (tests/sshvm.py): real sshd, real ssh client, real Ansible.

Root only; skipped with the reason from ``ssh_available()`` elsewhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

try:
    from tests import sshvm
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import sshvm

HERE = Path(__file__).resolve().parent
VENV_BIN = HERE.parent / ".venv" / "bin"



@pytest.fixture(scope="module")
def available():
    # Here, not at import: on a clean root machine this installs openssh-server once.
    ok, why = sshvm.ssh_available()
    if not ok:
        pytest.skip(f"SSH VMs unavailable: {why}")


@pytest.fixture(scope="module")
def fleet(available):
    with sshvm.ssh_hosts(n=2) as f:
        yield f


def test_setup_is_fast(fleet):
    # Reported by the fixture; generous bound (measured ~0.15-0.3 s for 2 hosts).
    assert fleet.setup_seconds is not None and fleet.setup_seconds < 10
    assert len(fleet) == 2
    assert len({h.address for h in fleet}) == 2
    assert len({h.host_public_key for h in fleet}) == 2  # every host its own key


def test_ssh_runs_a_command_on_each_host(fleet):
    for h in fleet:
        res = h.ssh(f"hostname && id -un && {h.python_interpreter} -c 'import json, sys; print(sys.version_info[0])'")
        assert res.returncode == 0, res.stderr + h.log_text()
        assert res.stdout.split() == [h.name, "root", "3"]
        assert h.known_hosts.startswith(f"{h.address} ssh-ed25519 ")
        assert "PRIVATE KEY" in h.private_key


def test_password_auth_is_off(fleet):
    h = fleet[0]
    res = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={fleet.known_hosts_path}",
         "-o", "ConnectTimeout=5", f"root@{h.address}", "true"],
        capture_output=True, text=True, timeout=20,
    )
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr


def test_files_are_private_to_each_host(fleet):
    a, b = fleet
    marker = f"/etc/dgsshvm-{uuid.uuid4().hex}"
    res = a.ssh(f"echo from-a > {marker} && cat {marker}")
    assert res.returncode == 0 and res.stdout == "from-a\n", res.stderr
    assert a.path(marker).read_text() == "from-a\n"  # seen from the test
    assert not b.path(marker).exists()
    assert b.ssh(f"test -e {marker}").returncode == 1
    assert not Path(marker).exists()  # the real machine is untouched
    # and the other way: the test writes into b, only b sees it
    b.path(marker).write_text("from-test\n")
    assert b.ssh(f"cat {marker}").stdout == "from-test\n"
    assert a.ssh(f"cat {marker}").stdout == "from-a\n"
    assert not Path(marker).exists()


def test_wrong_or_missing_known_hosts_is_refused(fleet, tmp_path):
    a, b = fleet
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"{a.address} {b.host_public_key}\n")  # b's key claimed for a
    res = a.ssh("true", known_hosts=wrong)
    assert res.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in res.stderr or "Host key verification failed" in res.stderr
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    res = a.ssh("true", known_hosts=empty)
    assert res.returncode == 255 and "Host key verification failed" in res.stderr
    assert a.ssh("true", known_hosts=tmp_path / "known_hosts_wrong").returncode == 255
    assert a.ssh("true").returncode == 0  # the right one still works


def test_stopped_host_is_unreachable_then_back(fleet):
    a, b = fleet
    b.stop()
    try:
        assert not b.running
        res = b.ssh("true")
        assert res.returncode == 255 and "Connection refused" in res.stderr
        assert a.ssh("true").returncode == 0
    finally:
        b.start()
    assert b.ssh("hostname").stdout.strip() == b.name
    # link down: packets vanish (sshd still runs), the client times out
    b.disconnect()
    try:
        t0 = time.monotonic()
        res = b.ssh("true", connect_timeout=1)
        assert res.returncode == 255 and "timed out" in res.stderr
        assert time.monotonic() - t0 < 5
    finally:
        b.reconnect()
    assert b.ssh("true").returncode == 0


def _ansible_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_CONFIG=str(tmp_path / "none.cfg"),  # no stray ansible.cfg from cwd/home
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "atmp"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    return env


@pytest.mark.skipif(not (VENV_BIN / "ansible-playbook").exists(), reason=f"no {VENV_BIN}/ansible-playbook")
def test_ansible_playbook_over_ssh_with_host_key_checking(fleet, tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text(fleet.inventory_ini())
    play = tmp_path / "site.yml"
    play.write_text(textwrap.dedent("""\
        - hosts: sshvm
          gather_facts: false
          tasks:
            - copy: {dest: /etc/driftgate-test.txt, content: "managed {{ inventory_hostname }}\\n", mode: "0644"}
            - command: cat /etc/driftgate-test.txt
              register: out
              changed_when: false
            - assert: {that: ["out.stdout == 'managed ' + inventory_hostname"]}
        """))
    env = _ansible_env(tmp_path)
    res = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(play)],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "failed=0" in res.stdout and "unreachable=0" in res.stdout
    for h in fleet:
        assert h.path("/etc/driftgate-test.txt").read_text() == f"managed {h.name}\n"
    assert not Path("/etc/driftgate-test.txt").exists()

    # the same inventory with an empty known_hosts: Ansible must refuse the hosts
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    inv.write_text(fleet.inventory_ini().replace(str(fleet.known_hosts_path), str(empty)))
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(tmp_path / "cp2")
    res = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(inv), "sshvm", "-m", "ping"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode != 0
    assert "UNREACHABLE" in res.stdout and "Host key verification failed" in res.stdout, res.stdout + res.stderr


def test_non_root_user(available):
    with sshvm.ssh_hosts(n=1, name="app", user="deploy") as f:
        (h,) = f
        res = h.ssh("id -un; hostname; echo $HOME")
        assert res.returncode == 0, res.stderr + h.log_text()
        assert res.stdout.split() == ["deploy", "app0", "/home/deploy"]
        assert "deploy:" not in Path("/etc/passwd").read_text()  # the user exists on the host only
        assert "deploy:" in h.path("/etc/passwd").read_text()


def test_stale_leftovers_of_a_killed_run_are_removed(available, tmp_path):
    """A process that dies by SIGKILL mid-test leaves namespaces, links, mounts; the next start removes them."""
    code = textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        import sshvm
        f = sshvm.SSHFleet(n=1).create()
        print(f.ns_prefix, f.workdir, f.bridge, flush=True)
        time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert len(line) == 3, "child failed to create a host"
        ns_prefix, workdir, bridge = line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert f"{ns_prefix}-h0" in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert Path(f"/sys/class/net/{bridge}").exists()
    assert sshvm._mounts_under(workdir)
    removed = sshvm.clean_stale()
    assert removed
    assert f"{ns_prefix}-h0" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not Path(f"/sys/class/net/{bridge}").exists()
    assert not sshvm._mounts_under(workdir)
    assert not Path(workdir).exists()
    # its sshd (a child it left behind) is gone too
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                assert not os.readlink(p / "root").startswith(workdir)
            except OSError:
                pass


def test_reports_not_root_as_reason(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv")
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import sshvm; print(sshvm.ssh_available(install=False))"
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=30, cwd="/")
    if res.returncode != 0 and "Permission denied" in res.stderr:
        pytest.skip("tests/ not readable by nobody")
    assert res.returncode == 0, res.stderr
    assert "False" in res.stdout and "root" in res.stdout
