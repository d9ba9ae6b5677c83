"""Real SSH test hosts ("VMs") on one machine, for driftgate's Ansible tests.

Each host is Debian's ``sshd`` running in its own network namespace, chrooted
into a private overlay of ``/`` (own filesystem, own host key, own hostname).
Called by the tests (``tests/test_sshvm.py`` and any test that needs real SSH
targets for Ansible); root only.

Layout of one fleet (``ssh_hosts(n)``), with ``T`` a per-process tag::

    root netns (the test process)           netns dgsshvm-<pid>-<k>-h0
      bridge dgs<T>b  10.231.X.1/24  --veth-- eth0 10.231.X.10  sshd :22
                                     --veth-- (netns ...-h1) eth0 10.231.X.11 ...

* The bridge lives in the root namespace, so the test process reaches every
  host's address directly; only the connected route 10.231.X.0/24 exists
  for it, the hosts' namespaces have no default route, so nothing is routed
  anywhere else. X is picked free (not on any address or route) under a lock.
* The overlay's upper/work dirs are on a private tmpfs (an upperdir on the
  same ext4 as ``/`` would overlap the lower layer and be refused). The
  tmpfs is made mount-private so nothing propagates to or from the real
  machine; the host gets fresh proc, sysfs, a tmpfs /dev with a few device
  nodes, a new devpts instance, and tmpfs /run and /tmp.
* Names carry the owner's pid (``dgsshvm-<pid>-...`` for namespaces and temp
  dirs, ``dgs<pid base36>-...`` for links), and a state file in
  /run/dgsshvm records everything made; leftovers of a dead owner pid are
  removed on the next start (``clean_stale``).

Usage::

    ok, why = ssh_available()
    if not ok: pytest.skip(why)
    with ssh_hosts(n=2) as fleet:
        a, b = fleet
        a.path("/etc/motd").write_text("hi")          # file inside host a
        out = a.ssh("cat /etc/motd").stdout             # real ssh client
        b.stop(); ...; b.start()                        # unreachable / back
        (tmp / "hosts.ini").write_text(fleet.inventory_ini())
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

STATE_DIR = Path("/run/dgsshvm")
NS_PREFIX = "dgsshvm"  # netns names and temp dirs: dgsshvm-<pid>-<k>-...
IF_PREFIX = "dgs"  # link names: dgs<pid36>-<k36>{b,h<i>,p<i>} (15 chars max)
SUBNET_PREFIX = "10.231"
SSHD = "/usr/sbin/sshd"
HOST_OFFSET = 10  # host i gets 10.231.X.(10+i)
MAX_HOSTS = 200
PYTHON_CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3")

_counter_lock = threading.Lock()
_counter = 0
_live: dict[int, "SSHFleet"] = {}


class SSHVMUnavailable(RuntimeError):
    """The machine cannot host SSH VMs (not root, no netns, no sshd ...)."""


# --------------------------------------------------------------------- helpers


def _run(cmd: list[str], *, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)!r} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _proc_starttime(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def _pid_alive(pid: int, starttime: str | None = None) -> bool:
    st = _proc_starttime(pid)
    if st is None:
        return False
    return starttime is None or st == starttime


def _mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` (deepest first)."""
    path = path.rstrip("/")
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def _umount_tree(path: str) -> None:
    if not _mounts_under(path):
        return
    res = _run(["umount", "-R", path], check=False)
    if res.returncode != 0 and _mounts_under(path):
        log.warning("umount -R %s failed (%s); detaching lazily", path, res.stderr.strip())
        for mp in _mounts_under(path):
            _run(["umount", "-l", mp], check=False)


def _kill_pids(pids: list[int], grace: float = 2.0) -> None:
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p) and not _is_zombie(p)]
        if not pids:
            return
        time.sleep(0.02)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _netns_pids(ns: str) -> list[int]:
    res = _run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in res.stdout.split()] if res.returncode == 0 else []


def _netns_list() -> list[str]:
    res = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def _flock(name: str) -> Iterator[None]:
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(STATE_DIR / name, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------ availability


_apt_updated = False


def ensure_sshd(*, install: bool = True) -> str:
    """Return the sshd path, installing ``openssh-server`` with apt if missing."""
    global _apt_updated
    if os.access(SSHD, os.X_OK):
        return SSHD
    if not install or os.environ.get("DGSSHVM_NO_INSTALL"):
        raise SSHVMUnavailable(f"{SSHD} missing (apt-get install openssh-server)")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SSHVMUnavailable(f"{SSHD} missing and cannot apt-get install openssh-server (not root / no apt)")
    with _flock("apt.lock"):
        if os.access(SSHD, os.X_OK):
            return SSHD
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        # Keep the package's postinst from starting a real sshd on the machine.
        policy = Path("/usr/sbin/policy-rc.d")
        own_policy = not policy.exists()
        if own_policy:
            policy.write_text("#!/bin/sh\n# dgsshvm: no service starts during install\nexit 101\n")
            policy.chmod(0o755)
        try:
            if not _apt_updated:
                _run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], timeout=600, env=env)
                _apt_updated = True
            res = _run(
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", "openssh-server"],
                timeout=900, env=env, check=False,
            )
        finally:
            if own_policy:
                policy.unlink(missing_ok=True)
        if res.returncode != 0 or not os.access(SSHD, os.X_OK):
            raise SSHVMUnavailable(f"apt-get install openssh-server failed: {res.stderr.strip()[-500:]}")
    return SSHD


@functools.lru_cache(maxsize=None)
def _availability(install: bool) -> tuple[bool, str]:
    if not os.path.exists("/proc/self/ns/net"):
        return False, "SSH VMs need Linux network namespaces"
    if os.geteuid() != 0:
        return False, "SSH VMs need root (network namespaces, overlay mounts, chroot)"
    for tool in ("ip", "mount", "umount", "nsenter", "unshare", "chroot", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return False, f"SSH VMs need the '{tool}' command"
    try:
        if "overlay" not in Path("/proc/filesystems").read_text():
            _run(["modprobe", "overlay"], check=False)
            if "overlay" not in Path("/proc/filesystems").read_text():
                return False, "SSH VMs need overlayfs (kernel has none)"
    except OSError as e:
        return False, f"cannot read /proc/filesystems: {e}"
    probe = f"{NS_PREFIX}-{os.getpid()}-probe"
    res = _run(["ip", "netns", "add", probe], check=False)
    if res.returncode != 0:
        return False, f"cannot create a network namespace: {res.stderr.strip()}"
    _run(["ip", "netns", "del", probe], check=False)
    try:
        ensure_sshd(install=install)
    except SSHVMUnavailable as e:
        return False, str(e)
    return True, "ok"


def ssh_available(*, install: bool = True) -> tuple[bool, str]:
    """(True, "ok") if SSH VMs can be made here, else (False, reason).

    Installs openssh-server with apt when it is missing and we are root
    (``install=False`` or env ``DGSSHVM_NO_INSTALL=1`` prevents that).
    """
    return _availability(install)


# ------------------------------------------------------------------- hosts


@dataclasses.dataclass
class SSHHost:
    """One SSH VM. ``address``/``port``/``user`` reach it; ``known_hosts`` holds its real key."""

    name: str
    address: str
    port: int
    user: str
    private_key_path: Path
    known_hosts_path: Path  # file holding the lines of every host of the fleet
    host_public_key: str  # "ssh-ed25519 AAAA..."
    netns: str
    root: Path  # merged overlay dir: the host's "/" seen from the test process
    upper: Path  # the overlay upperdir: only what this host changed
    python_interpreter: str
    _veth: str = dataclasses.field(repr=False, default="")
    _log_path: Path = dataclasses.field(repr=False, default=Path("/dev/null"))
    _proc: subprocess.Popen | None = dataclasses.field(repr=False, default=None)

    # -- facts ------------------------------------------------------------
    @property
    def private_key(self) -> str:
        return self.private_key_path.read_text()

    @property
    def known_hosts(self) -> str:
        """known_hosts line(s) for this host (StrictHostKeyChecking=yes works with them)."""
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {self.host_public_key}\n"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def path(self, p: str | os.PathLike) -> Path:
        """The host's file ``p`` (an absolute path on the host) as a path here."""
        rel = os.path.normpath("/" + str(p)).lstrip("/")
        if rel.startswith(".."):
            raise ValueError(p)
        return self.root / rel

    def log_text(self) -> str:
        """sshd's log (stderr, -e)."""
        with contextlib.suppress(OSError):
            return self._log_path.read_text()
        return ""

    # -- ssh client -------------------------------------------------------
    def ssh_options(self, *, known_hosts: str | os.PathLike | None = None, connect_timeout: int = 5) -> list[str]:
        """``-o`` options for OpenSSH clients: key only, batch mode, strict host key checking."""
        return [
            "-F", "/dev/null",
            "-i", str(self.private_key_path),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "PasswordAuthentication=no",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "LogLevel=ERROR",
        ]

    def ssh_command(self, command: str, **kw) -> list[str]:
        return ["ssh", *self.ssh_options(**kw), "-p", str(self.port), f"{self.user}@{self.address}", command]

    def ssh(self, command: str, *, timeout: float = 30, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """Run ``command`` on the host with the real ``ssh`` client."""
        res = subprocess.run(self.ssh_command(command, **kw), capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"ssh {self.name}: {command!r} -> {res.returncode}: {res.stderr.strip()}")
        return res

    # -- lifecycle --------------------------------------------------------
    def start(self, *, timeout: float = 10) -> None:
        """Start sshd (no-op if running) and wait until it answers with an SSH banner."""
        if self.running:
            return
        self._spawn()
        self._wait_ready(timeout)

    def _spawn(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self._log_path, "ab")
        try:
            # nsenter (net) -> unshare (own UTS, for the hostname) -> chroot -> sshd,
            # every step an exec, so the Popen pid is sshd's pid.
            self._proc = subprocess.Popen(
                [
                    "nsenter", f"--net=/run/netns/{self.netns}",
                    "unshare", "--uts", "--",
                    "sh", "-c", 'hostname "$0" && exec chroot "$1" /usr/sbin/sshd -D -e -f /etc/ssh/dgsshvm_sshd_config',
                    self.name, str(self.root),
                ],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True, close_fds=True,
            )
        finally:
            logf.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"sshd of {self.name} exited: {self.log_text()[-2000:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError as e:
                last = e
            time.sleep(0.01)
        raise RuntimeError(f"sshd of {self.name} not ready at {self.address}:{self.port} after {timeout}s: {last}; log: {self.log_text()[-2000:]}")

    def stop(self) -> None:
        """Kill sshd and every process in the host's namespace: connections are refused."""
        pids = []
        if self._proc is not None:
            pids.append(self._proc.pid)
        pids += _netns_pids(self.netns)
        _kill_pids(sorted(set(pids)))
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=2)
            self._proc = None

    def disconnect(self) -> None:
        """Take the host's link down (sshd keeps running): packets vanish, connects time out."""
        _run(["ip", "link", "set", self._veth, "down"])

    def reconnect(self) -> None:
        _run(["ip", "link", "set", self._veth, "up"])


class SSHFleet:
    """The hosts of one ``ssh_hosts()`` call plus their shared client key and known_hosts file."""

    def __init__(self, *, n: int, name: str = "host", user: str = "root") -> None:
        global _counter
        if not 1 <= n <= MAX_HOSTS:
            raise ValueError(f"n must be 1..{MAX_HOSTS}")
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
            raise ValueError(f"bad host name prefix {name!r}")
        if user != "root" and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,30}", user):
            raise ValueError(f"bad user {user!r}")
        with _counter_lock:
            k = _counter
            _counter += 1
        pid = os.getpid()
        self.n, self.name_prefix, self.user = n, name, user
        self.tag = f"{IF_PREFIX}{_b36(pid)}-{_b36(k)}"
        self.ns_prefix = f"{NS_PREFIX}-{pid}-{k}"
        self.bridge = f"{self.tag}b"
        self.hosts: list[SSHHost] = []
        self.workdir: Path | None = None
        self.subnet: str | None = None
        self.state_file = STATE_DIR / f"{pid}-{k}.json"
        self.setup_seconds: float | None = None
        self._closed = False

    # -- container protocol -------------------------------------------------
    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, i):
        return self.hosts[i]

    @property
    def private_key_path(self) -> Path:
        assert self.workdir
        return self.workdir / "client" / "id_ed25519"

    @property
    def private_key(self) -> str:
        return self.private_key_path.read_text()

    @property
    def public_key(self) -> str:
        return (self.workdir / "client" / "id_ed25519.pub").read_text().strip()

    @property
    def known_hosts_path(self) -> Path:
        return self.workdir / "client" / "known_hosts"

    @property
    def known_hosts(self) -> str:
        return "".join(h.known_hosts for h in self.hosts)

    def inventory_ini(self, group: str = "sshvm") -> str:
        """An Ansible INI inventory: every host, key, known_hosts, interpreter; host key checking on."""
        lines = [f"[{group}]"]
        for h in self.hosts:
            lines.append(
                f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user={h.user} "
                f"ansible_ssh_private_key_file={h.private_key_path} ansible_python_interpreter={h.python_interpreter}"
            )
        lines += [
            f"[{group}:vars]",
            "ansible_host_key_checking=true",
            f"ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={self.known_hosts_path} -o GlobalKnownHostsFile=/dev/null'",
            "",
        ]
        return "\n".join(lines)

    # -- state file (for clean-up after a crash) ------------------------------
    def _save_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "starttime": _proc_starttime(os.getpid()),
            "workdir": str(self.workdir) if self.workdir else None,
            "bridge": self.bridge,
            "tag": self.tag,
            "netns": [f"{self.ns_prefix}-h{i}" for i in range(self.n)],
        }
        STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    # -- create -------------------------------------------------------------
    def _pick_subnet(self) -> str:
        used = _run(["ip", "-o", "-4", "addr"]).stdout + _run(["ip", "-4", "route", "show", "table", "all"]).stdout
        start = os.getpid() % 250
        for j in range(250):
            x = (start + j) % 250 + 1
            net = f"{SUBNET_PREFIX}.{x}"
            if re.search(rf"(?<![\d.]){re.escape(net)}\.", used) is None:
                return net
        raise SSHVMUnavailable(f"no free {SUBNET_PREFIX}.X.0/24 subnet")

    def create(self) -> "SSHFleet":
        t0 = time.monotonic()
        ok, why = ssh_available()
        if not ok:
            raise SSHVMUnavailable(why)
        _live[id(self)] = self
        with _flock("net.lock"):
            clean_stale()
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.ns_prefix}-", dir="/tmp"))
            self._save_state()
            # A private tmpfs: holds the client key and every overlay upper/work dir.
            _run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=2g", "dgsshvm", str(self.workdir)])
            _run(["mount", "--make-private", str(self.workdir)])
            self.subnet = self._pick_subnet()
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6").write_text("1")
            _run(["ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
        client = self.workdir / "client"
        client.mkdir(mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{self.ns_prefix}-client", "-f", str(client / "id_ed25519")])
        pubkey = self.public_key
        for i in range(self.n):
            self.hosts.append(self._make_host(i, pubkey))
        self.known_hosts_path.write_text(self.known_hosts)
        for h in self.hosts:  # sshd start-ups overlap: spawn all, then wait for each
            h._spawn()
        for h in self.hosts:
            h._wait_ready(10)
        self.setup_seconds = time.monotonic() - t0
        log.info("ssh fleet %s: %d hosts in %.2fs", self.ns_prefix, self.n, self.setup_seconds)
        return self

    def _make_host(self, i: int, pubkey: str) -> SSHHost:
        name = f"{self.name_prefix}{i}"
        ns = f"{self.ns_prefix}-h{i}"
        veth, peer = f"{self.tag}h{i}", f"{self.tag}p{i}"
        addr = f"{self.subnet}.{HOST_OFFSET + i}"
        # -- network
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer, "netns", ns])
        _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6").write_text("1")
        _run(["ip", "-n", ns, "link", "set", peer, "name", "eth0"])
        _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # -- filesystem: overlay of / with a tmpfs upper
        base = self.workdir / f"h{i}"
        upper, work, merged = base / "upper", base / "work", base / "root"
        for d in (upper, work, merged):
            d.mkdir(parents=True)
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir=/,upperdir={upper},workdir={work},xino=off,index=off,metacopy=off,redirect_dir=off",
              str(merged)])
        _run(["mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(merged / "proc")])
        # sysfs shows the net devices of the namespace that mounts it.
        _run(["nsenter", f"--net=/run/netns/{ns}", "mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(merged / "sys")])
        dev = merged / "dev"
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m,nosuid", "dgsshvm-dev", str(dev)])
        for node, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)):
            os.mknod(dev / node, 0o20666, os.makedev(major, minor))
            os.chmod(dev / node, 0o666)
        for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
            os.symlink(target, dev / link)
        (dev / "pts").mkdir()
        (dev / "shm").mkdir(mode=0o1777)
        os.chmod(dev / "shm", 0o1777)
        _run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec", "devpts", str(dev / "pts")])
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m,nosuid,nodev", "dgsshvm-run", str(merged / "run")])
        _run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=512m,nosuid,nodev", "dgsshvm-tmp", str(merged / "tmp")])
        (merged / "run" / "sshd").mkdir(mode=0o755)
        # -- identity: hostname, own host key, client key for root
        (merged / "etc" / "hostname").write_text(name + "\n")
        hosts_file = merged / "etc" / "hosts"
        hosts_file.write_text(f"127.0.0.1 localhost\n{addr} {name}\n")
        ssh_dir = merged / "etc" / "ssh"
        ssh_dir.mkdir(exist_ok=True)
        for old in ssh_dir.glob("ssh_host_*"):
            old.unlink()
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(ssh_dir / "ssh_host_ed25519_key")])
        host_pub = " ".join((ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        self._authorize(merged, "root", pubkey)
        if self.user != "root":
            self._add_user(merged, self.user, pubkey)
        (ssh_dir / "dgsshvm_sshd_config").write_text(
            "\n".join([
                "Port 22",
                f"ListenAddress {addr}",
                "HostKey /etc/ssh/ssh_host_ed25519_key",
                "PidFile /run/sshd.pid",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "AuthorizedKeysFile .ssh/authorized_keys",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitEmptyPasswords no",
                "UsePAM no",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                "PrintLastLog no",
                "X11Forwarding no",
                "MaxStartups 100:30:200",
                "MaxSessions 100",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ])
        )
        python = next((p for p in PYTHON_CANDIDATES if os.access(merged / p.lstrip("/"), os.X_OK)), None)
        if python is None:
            python = os.path.realpath(shutil.which("python3") or "/usr/bin/python3")
        return SSHHost(
            name=name, address=addr, port=22, user=self.user,
            private_key_path=self.private_key_path, known_hosts_path=self.known_hosts_path,
            host_public_key=host_pub, netns=ns, root=merged, upper=upper, python_interpreter=python,
            _veth=veth, _log_path=base / "sshd.log",
        )

    @staticmethod
    def _authorize(merged: Path, user: str, pubkey: str, home: str = "/root") -> None:
        # UsePAM=no refuses locked accounts ("!..." in shadow): unlock in this host only.
        shadow = merged / "etc" / "shadow"
        with contextlib.suppress(OSError):
            text = shadow.read_text()
            new = re.sub(rf"^{re.escape(user)}:!+[^:]*:", f"{user}:*:", text, flags=re.M)
            if new != text:
                shadow.write_text(new)
        ssh = merged / home.lstrip("/") / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(pubkey + "\n")
        os.chmod(ssh / "authorized_keys", 0o600)

    def _add_user(self, merged: Path, user: str, pubkey: str) -> None:
        _run(["chroot", str(merged), "useradd", "-m", "-s", "/bin/bash", user])
        self._authorize(merged, user, pubkey, home=f"/home/{user}")
        _run(["chroot", str(merged), "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"])

    # -- destroy ------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        for h in self.hosts:
            try:
                h.stop()
            except Exception as e:  # keep going: everything else must still go
                errors.append(e)
        _cleanup_resources(
            netns=[f"{self.ns_prefix}-h{i}" for i in range(self.n)],
            links=[self.bridge, *(f"{self.tag}h{i}" for i in range(self.n)), *(f"{self.tag}p{i}" for i in range(self.n))],
            workdir=str(self.workdir) if self.workdir else None,
        )
        self.state_file.unlink(missing_ok=True)
        _live.pop(id(self), None)
        if errors:
            log.warning("ssh fleet %s clean-up: %s", self.ns_prefix, errors)


def _cleanup_resources(*, netns: list[str], links: list[str], workdir: str | None) -> None:
    """Kill, unmount and delete; every step tolerates what is already gone."""
    existing = set(_netns_list())
    pids: set[int] = set()
    for ns in netns:
        if ns in existing:
            pids.update(_netns_pids(ns))
    if workdir:  # anything chrooted into our overlays, whatever its netns
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                with contextlib.suppress(OSError):
                    root = os.readlink(p / "root")
                    if root == workdir or root.startswith(workdir + "/"):
                        pids.add(int(p.name))
    _kill_pids(sorted(pids))
    if workdir and os.path.isdir(workdir):
        _umount_tree(workdir)
    for ns in netns:
        if ns in existing:
            _run(["ip", "netns", "del", ns], check=False)
    for link in links:
        if Path(f"/sys/class/net/{link}").exists():
            _run(["ip", "link", "del", link], check=False)
    if workdir and os.path.isdir(workdir):
        if _mounts_under(workdir):
            log.warning("not removing %s: still mounted", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def clean_stale() -> list[str]:
    """Remove what a dead process of ours left (state files, dgsshvm-<pid>-* names). Returns what went."""
    removed: list[str] = []
    dead: dict[int, bool] = {}

    def is_dead(pid: int) -> bool:
        if pid not in dead:
            dead[pid] = pid != os.getpid() and not _pid_alive(pid)
        return dead[pid]

    if STATE_DIR.is_dir():
        for f in STATE_DIR.glob("*.json"):
            try:
                st = json.loads(f.read_text())
                pid = int(st["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if pid == os.getpid() or _pid_alive(pid, st.get("starttime")):
                continue
            wd = st.get("workdir")
            if wd and not re.fullmatch(rf"/tmp/{NS_PREFIX}-{pid}-\d+-[^/]+", wd):
                wd = None  # not a path of ours: never touch it
            tag = st.get("tag", "")
            links = [st.get("bridge", "")] + [f"{tag}{k}{i}" for k in "hp" for i in range(len(st.get("netns", [])))]
            _cleanup_resources(
                netns=[n for n in st.get("netns", []) if n.startswith(f"{NS_PREFIX}-{pid}-")],
                links=[x for x in links if x.startswith(IF_PREFIX + _b36(pid) + "-")],
                workdir=wd,
            )
            f.unlink(missing_ok=True)
            removed.append(str(f))
    # Names alone (a crash before the state file was written, or it was lost).
    for ns in _netns_list():
        m = re.fullmatch(rf"{NS_PREFIX}-(\d+)-(\d+-h\d+|probe)", ns)
        if m and is_dead(int(m.group(1))):
            _cleanup_resources(netns=[ns], links=[], workdir=None)
            removed.append(ns)
    for dev in Path("/sys/class/net").iterdir():
        m = re.fullmatch(rf"{IF_PREFIX}([0-9a-z]+)-[0-9a-z]+(b|h\d+|p\d+)", dev.name)
        if m and is_dead(int(m.group(1), 36)):
            _run(["ip", "link", "del", dev.name], check=False)
            removed.append(dev.name)
    for wd in Path("/tmp").glob(f"{NS_PREFIX}-*-*-*"):
        m = re.fullmatch(rf"{NS_PREFIX}-(\d+)-\d+-[^/]+", wd.name)
        if m and wd.is_dir() and is_dead(int(m.group(1))):
            _cleanup_resources(netns=[], links=[], workdir=str(wd))
            removed.append(str(wd))
    if removed:
        log.info("removed stale ssh VM leftovers: %s", removed)
    return removed


@contextlib.contextmanager
def ssh_hosts(n: int = 2, *, name: str = "host", user: str = "root") -> Iterator[SSHFleet]:
    """Create ``n`` SSH VMs; yield an :class:`SSHFleet`; remove everything on exit.

    Raises :class:`SSHVMUnavailable` when the machine cannot do it (see ``ssh_available``).
    """
    fleet = SSHFleet(n=n, name=name, user=user)
    try:
        fleet.create()
        yield fleet
    finally:
        fleet.close()


@atexit.register
def _close_all() -> None:
    """Last resort for fleets still open at interpreter exit (not on SIGKILL: see clean_stale)."""
    for fleet in list(_live.values()):
        with contextlib.suppress(Exception):
            fleet.close()
