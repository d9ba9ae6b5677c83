"""The reconcile flow against real SSH hosts (network namespaces, tests/sshvm.py),
with the SSH key and host keys in an AnsibleSSH block: host-key checking is
on, and the key never lands in the record, the artifacts or on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driftgate.demo_repo import DemoWorld
from driftgate.models import Outcome, Stage
from driftgate.store import Store
from tests import sshvm
from tests.conftest import edit_config, ssh_fleet_or_skip

pytestmark = pytest.mark.usefixtures("prefect_api")
REMOTE_ROOT = "/srv/driftgate-demo"


@pytest.fixture(scope="module")
def fleet() -> Iterator[sshvm.SSHFleet]:
    with ssh_fleet_or_skip(2, "web") as hosts:
        yield hosts


def use_fleet(world: DemoWorld, fleet: sshvm.SSHFleet, *, block: str) -> None:
    hosts = {
        h.name: {"ansible_host": h.address, "ansible_port": h.port, "ansible_python_interpreter": h.python_interpreter}
        for h in fleet
    }
    edit_config(world, target={"hosts": hosts, "ssh": block, "vars": {"demo_root": REMOTE_ROOT, "environment_name": "demo"}})


def save_block(name: str, fleet: sshvm.SSHFleet, known_hosts: str) -> None:
    from driftgate.blocks import AnsibleSSH

    AnsibleSSH(user="root", private_key=fleet.private_key, known_hosts=known_hosts).save(name, overwrite=True)


def sync(world: DemoWorld):
    from driftgate.flows.reconcile import reconcile

    state = reconcile(environment="demo", config=str(world.config), return_state=True)
    return state, Store().history("demo", limit=1)[0]


def test_sync_and_drift_over_ssh(world: DemoWorld, fleet: sshvm.SSHFleet, driftgate_home: Path) -> None:
    save_block("fleet-ssh", fleet, fleet.known_hosts)
    use_fleet(world, fleet, block="fleet-ssh")
    web0, web1 = fleet

    state, record = sync(world)
    assert state.is_completed(), state.message
    assert record.outcome == Outcome.APPLIED
    assert sorted(h.host for h in record.hosts) == ["web0", "web1"]
    for host in fleet:
        assert host.path(f"{REMOTE_ROOT}/app/app.conf").read_text() == "max_connections = 100\n"
    assert not Path(REMOTE_ROOT).exists(), "the hosts' files must not appear on the real machine"

    web1.path(f"{REMOTE_ROOT}/app/app.conf").write_text("max_connections = 2\n")
    state, record = sync(world)
    assert [(c.target, c.name) for c in record.changes] == [("web1", "connection limit")]
    assert web1.path(f"{REMOTE_ROOT}/app/app.conf").read_text() == "max_connections = 100\n"

    # The private key is nowhere a person or a disk could read it.
    key_line = next(line for line in fleet.private_key.splitlines() if len(line) > 40)
    assert key_line.encode() not in (driftgate_home / "driftgate.db").read_bytes()
    assert list((driftgate_home / "runs").iterdir()) == []
    for path in driftgate_home.rglob("*"):
        if path.is_file():
            assert key_line.encode() not in path.read_bytes(), path


def test_wrong_host_key_is_refused_and_nothing_applied(world: DemoWorld, fleet: sshvm.SSHFleet) -> None:
    # Host-key checking is on: web1's real key filed under web0's address must be refused.
    web0, web1 = fleet
    save_block("wrong-keys", fleet, web1.known_hosts.replace(web1.address, web0.address))
    use_fleet(world, fleet, block="wrong-keys")
    # Its own live file: under parallel workers this test may run without the one above.
    web0.path(f"{REMOTE_ROOT}/app").mkdir(parents=True, exist_ok=True)
    web0.path(f"{REMOTE_ROOT}/app/app.conf").write_text("max_connections = 3\n")
    state, record = sync(world)
    assert state.is_failed()
    assert record.failed_stage == Stage.DIFF
    assert "host unreachable" in record.reason and "Host key verification failed" in record.reason
    assert web0.path(f"{REMOTE_ROOT}/app/app.conf").read_text() == "max_connections = 3\n"


def test_missing_block_is_a_clear_error(world: DemoWorld, fleet: sshvm.SSHFleet) -> None:
    use_fleet(world, fleet, block="no-such-block")
    state, record = sync(world)
    assert record.outcome == Outcome.FAILED
    assert "target.ssh names block 'no-such-block', which cannot be loaded" in record.reason
    assert "create a driftgate-ansible-ssh block with that name" in record.reason
