"""fetch: bring an environment's source to one exported commit.

`fetch()` keeps a mirror clone per repository under ``$DRIFTGATE_HOME/repos``
(cloned once, fetched incrementally afterwards), resolves the ref (branch, tag
or commit) to a commit SHA, optionally verifies the commit's signature (GPG,
or SSH with ``gpg.format=ssh``) against the allowed keys, and checks that the
subpath exists at that commit. Nothing is exported then: render reads the
files from the mirror's object store (`read_files()`, in memory) or writes
them where it needs them (`export()`), so no extra plain-text copy of what Git
holds (a Kubernetes Secret, say) stays on disk.

Credentials come in as a `GitAuth` (the task loads it from a block) and reach
git through environment variables only: never in a URL, a config file or an
error message. Called by the fetch task and by the CLI's read-only plan.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import git

from driftgate import gittree, home, signing
from driftgate.config import Source, is_local_repo
from driftgate.errors import PermanentError, TransientError
from driftgate.models import Checkout, Stage
from driftgate.secrets import Masker

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")
# stderr fragments of failures that may go away on their own.
_TRANSIENT = (
    "could not resolve host",
    "connection timed out",
    "connection refused",
    "operation timed out",
    "early eof",
    "the remote end hung up unexpectedly",
    "rpc failed",
    "http 5",
    "returned error: 5",
    "temporary failure",
    "cannot lock ref",
    "unable to access",
)


@dataclass(frozen=True)
class GitAuth:
    """Credentials for one repository, loaded from a GitCredentials block."""

    username: str = "git"
    token: str | None = None
    ssh_private_key: str | None = None
    known_hosts: str | None = None

    def secrets(self) -> list[str | None]:
        return [self.token, self.ssh_private_key]


def fetch(
    source: Source,
    *,
    environment: str,
    auth: GitAuth | None = None,
    signing_keys: list[str] | None = None,
    revision: str | None = None,
    within_ref: bool = False,
) -> Checkout:
    """Resolve ``source.ref`` (or ``revision``: any branch, tag or commit of the
    repository, asked for instead) to a commit and check ``source.path`` at it.
    With ``within_ref``, a revision must be reachable from the ref's head (a promotion)."""
    masker = Masker(auth.secrets() if auth else ())
    where = f"environment {environment!r}"
    if is_local_repo(source.repo):
        local = Path(source.repo.removeprefix("file://")).expanduser()
        if not local.exists():
            raise PermanentError(
                f"{where}: repository {local} does not exist: fix source.repo in driftgate.yaml",
                stage=Stage.FETCH,
            )
    with _git_env(auth) as env:
        mirror = _update_mirror(source, env, masker, where, fetch_always=bool(revision))
        if revision:
            commit = _resolve_revision(mirror, revision, masker(source.repo), where)
            ref_head = _head_or_empty(mirror, source.ref)
            if within_ref and not (ref_head and is_ancestor(mirror, commit, ref_head)):
                raise PermanentError(
                    f"{where}: commit {commit[:12]} is not reachable from {source.ref!r} "
                    f"({ref_head[:12] or 'no such ref'}): nothing was applied; merge it into {source.ref!r} first",
                    stage=Stage.FETCH,
                )
        else:
            commit, ref_head = _resolve(mirror, source.ref, source.repo, where), ""
        signed_by = None
        if source.require_signed_commits:
            signed_by = verify_signature(mirror, commit, signing_keys or [], where=where)
    _check_links(mirror, _subtree(mirror, commit, source.path, where), source.path, where)
    author = mirror.commit(commit).author
    return Checkout(
        repo=masker(source.repo),
        ref=source.ref,
        commit=commit,
        path=source.path,
        git_dir=Path(mirror.git_dir),
        author=masker(f"{author.name} <{author.email}>"),
        signed_by=signed_by,
        revision=revision or "",
        ref_head=ref_head,
    )


def head_commit(source: Source, *, environment: str, auth: GitAuth | None = None) -> str:
    """The commit ``source.ref`` points at now (fetched, not exported). Used by `driftgate status`."""
    masker = Masker(auth.secrets() if auth else ())
    where = f"environment {environment!r}"
    with _git_env(auth) as env:
        return _resolve(_update_mirror(source, env, masker, where), source.ref, source.repo, where)


def directories(source: Source, path: str, *, where: str, signing_keys: list[str] | None = None) -> tuple[str, list[str]]:
    """The commit ``source.ref`` points at now and the names of the directories
    directly under ``path`` there (fetched into the same mirror as `fetch`; its
    signature checked when ``source.require_signed_commits``). Used by the
    Git-directory environment generator (driftgate.generators), without credentials."""
    with _git_env(None) as env:
        mirror = _update_mirror(source, env, Masker(()), where)
        commit = _resolve(mirror, source.ref, source.repo, where)
        if source.require_signed_commits:
            verify_signature(mirror, commit, signing_keys or [], where=where)
    tree = _subtree(mirror, commit, path, where, setting="git.path")
    return commit, sorted(item.name for item in tree.trees)


def file_at_commit(source: Source, commit: str, path: str, *, environment: str, max_bytes: int = 1 << 20) -> str:
    """The text of ``path`` (from the repository's root) at ``commit``, read
    from the mirror `fetch` made. Used by the gate for a repository-held
    allowed_signers file: who may approve is then itself a reviewed commit."""
    where = f"environment {environment!r}: approval.allowed_signers {path!r} at commit {commit[:12]}"
    try:
        blob = git.Repo(mirror_dir(source.repo)).commit(commit).tree / path
    except (KeyError, ValueError, git.exc.NoSuchPathError, git.exc.InvalidGitRepositoryError, git.BadName):
        raise PermanentError(f"{where} does not exist: add the file (OpenSSH allowed_signers format) in a commit", stage=Stage.GATE) from None
    if blob.type != "blob" or blob.mode == 0o120000 or blob.size > max_bytes:
        raise PermanentError(f"{where} must be a regular file of at most {max_bytes} bytes", stage=Stage.GATE)
    try:
        return blob.data_stream.read().decode()
    except UnicodeDecodeError:
        raise PermanentError(f"{where} is not UTF-8 text", stage=Stage.GATE) from None


def mirror_dir(repo: str) -> Path:
    """Where `fetch` keeps the mirror clone of ``repo`` (driftgate.commits reads it too)."""
    return home.subdir("repos") / hashlib.sha256(repo.encode()).hexdigest()[:20]


@contextmanager
def _one_at_a_time(mirror: Path) -> Iterator[None]:
    """Hold ``mirror``'s lock file for the block: one clone or fetch of a mirror at
    a time, across threads (a fleet's checks) and processes (deployment runs).
    Two first fetches of a fresh home would otherwise both clone, and the second
    would delete the mirror the first is reading; two fetches fight over its refs."""
    with open(home.subdir("repo-locks") / mirror.name, "a") as lock:  # flock: per open file, so per thread too
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _update_mirror(source: Source, env: dict[str, str], masker: Masker, where: str, *, fetch_always: bool = False) -> git.Repo:
    path = mirror_dir(source.repo)
    with _one_at_a_time(path):
        return _clone_or_fetch(path, source, env, masker, where, fetch_always=fetch_always)


def _clone_or_fetch(path: Path, source: Source, env: dict[str, str], masker: Masker, where: str, *, fetch_always: bool) -> git.Repo:
    # GitPython kills git (and its ssh) after this; Repo.clone_from would ignore it.
    deadline = source.timeout.total_seconds()
    try:
        if not (path / "HEAD").exists():
            # Clone beside the cache and rename, so a crash never leaves half a mirror.
            # Named for the mirror: one a killed process left (it could not clean up)
            # is deleted here, under the mirror's lock, where no live clone of it can be.
            for left in path.parent.glob(f"clone-{path.name}-*"):
                shutil.rmtree(left, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f"clone-{path.name}-", dir=path.parent))
            try:
                git.Git.check_unsafe_protocols(source.repo)  # as Repo.clone_from does (no ext::)
                git.Git().clone("--mirror", "--", source.repo, str(staging / "m"), env=env, kill_after_timeout=deadline)
                if path.exists():
                    shutil.rmtree(path)
                (staging / "m").rename(path)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return git.Repo(path)
        mirror = git.Repo(path)
        if not fetch_always and _SHA.match(source.ref) and _has_commit(mirror, source.ref):
            return mirror  # a pinned commit never changes: no need to ask the remote
        mirror.git.fetch("origin", "--prune", "--tags", env=env, kill_after_timeout=deadline)
        return mirror
    except git.GitCommandError as exc:
        stderr = masker(str(exc.stderr or exc))
        if "did not complete in" in stderr or "timed out. kill_after_timeout" in stderr:
            # Permanent: a timeout is not retried (driftgate/retry.py), or it would cost 3 x source.timeout.
            raise PermanentError(
                f"{where}: fetch: git did not finish fetching {masker(source.repo)} within "
                f"{deadline:g}s (raise source.timeout in driftgate.yaml if it needs longer)",
                stage=Stage.FETCH,
            ) from None
        message = f"{where}: cannot fetch {masker(source.repo)}: {_error_detail(stderr)}"
        if any(fragment in stderr.lower() for fragment in _TRANSIENT) and not is_local_repo(source.repo):
            raise TransientError(message, stage=Stage.FETCH) from None
        raise PermanentError(
            message + " (check source.repo and its credentials)", stage=Stage.FETCH
        ) from None


def _error_detail(stderr: str) -> str:
    """The lines of git's stderr that say what went wrong, on one line."""
    text = stderr.strip()
    text = text.removeprefix("stderr:").strip().strip("'").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Cloning into", "stderr:"))]
    return " ".join(lines[:3]) or "git failed without a message"


def _has_commit(repo: git.Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def _resolve(mirror: git.Repo, ref: str, repo: str, where: str) -> str:
    # A mirror keeps branches as refs/heads/*; try branch, then tag, then anything git accepts.
    for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        try:
            return mirror.git.rev_parse("--verify", "--quiet", f"{candidate}^{{commit}}")
        except git.GitCommandError:
            continue
    raise PermanentError(
        f"{where}: ref {ref!r} is not a branch, tag or commit of {repo}: fix source.ref",
        stage=Stage.FETCH,
    )


def _resolve_revision(mirror: git.Repo, revision: str, repo: str, where: str) -> str:
    """A revision asked for (``--revision``, a rollback, a pin): a branch, tag or commit."""
    if revision.startswith("-"):  # never an option to git
        raise PermanentError(f"{where}: revision {revision!r} is not a branch, tag or commit", stage=Stage.FETCH)
    try:
        return _resolve(mirror, revision, repo, where)
    except PermanentError:
        raise PermanentError(
            f"{where}: revision {revision!r} is not a branch, tag or commit of {repo}: nothing was applied",
            stage=Stage.FETCH,
        ) from None


def _head_or_empty(mirror: git.Repo, ref: str) -> str:
    try:
        return _resolve(mirror, ref, "", "")
    except PermanentError:
        return ""


def is_ancestor(mirror: git.Repo, commit: str, descendant: str) -> bool:
    """Whether ``commit`` is ``descendant`` or reachable from it."""
    try:
        mirror.git.merge_base("--is-ancestor", commit, descendant)
        return True
    except git.GitCommandError:
        return False


def verify_signature(mirror: git.Repo, commit: str, allowed: list[str], *, where: str) -> str:
    """Return who signed ``commit``; refuse if it is unsigned or signed by a key not allowed.

    ``allowed`` holds armored OpenPGP public keys and OpenSSH allowed_signers
    text (the file Git's ``gpg.ssh.allowedSignersFile`` names); a commit
    signed with an SSH key (``gpg.format=ssh``) is checked against the latter,
    any other against the former.
    """
    if not allowed:
        raise PermanentError(
            f"{where}: signed commits are required but no allowed signer key could be loaded",
            stage=Stage.FETCH,
        )
    pgp_keys = [key for key in allowed if "BEGIN PGP PUBLIC KEY BLOCK" in key]
    for entry in allowed:
        if entry not in pgp_keys:
            try:
                signing.check_allowed_signers(entry, where="an allowed_signers entry")
            except ValueError as exc:
                raise PermanentError(
                    f"{where}: {exc}; an entry is an armored OpenPGP public key or an OpenSSH allowed_signers file",
                    stage=Stage.FETCH,
                ) from None
    if _signed_with_ssh(mirror, commit):
        signers = "\n".join(key for key in allowed if key not in pgp_keys)
        return _verify_ssh_signature(mirror, commit, signers, where=where)
    return _verify_gpg_signature(mirror, commit, pgp_keys, where=where)


def _signed_with_ssh(mirror: git.Repo, commit: str) -> bool:
    header = mirror.git.cat_file("commit", commit).split("\n\n", 1)[0]
    return any(line.startswith(("gpgsig -----BEGIN SSH SIGNATURE", "gpgsig-sha256 -----BEGIN SSH SIGNATURE"))
               for line in header.splitlines())  # fmt: skip


def _verify_ssh_signature(mirror: git.Repo, commit: str, allowed_signers: str, *, where: str) -> str:
    """Git verifies (through ssh-keygen, namespace "git") against only these allowed_signers."""
    short = commit[:12]
    with tempfile.TemporaryDirectory(prefix="driftgate-ssh-signers-") as tmp:
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(allowed_signers + "\n")
        result = _signature_tool(
            ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}",
             "log", "-1", "--format=%G?%x00%GK%x00%GS", commit],
            where, cwd=mirror.git_dir, capture_output=True, text=True,
        )  # fmt: skip
    status, _, rest = result.stdout.strip().partition("\0")
    fingerprint, _, principal = rest.partition("\0")
    if result.returncode == 0 and status == "G" and principal:
        return f"{principal} ({fingerprint})"
    if status in ("U", "E") and fingerprint.startswith("SHA256:"):
        raise PermanentError(
            f"{where}: commit {short} is signed by SSH key {fingerprint}, which is not an allowed signer "
            "(for namespace git): sign with an allowed key or add it to allowed_signers",
            stage=Stage.FETCH,
        )
    raise PermanentError(
        f"{where}: commit {short} has an SSH signature{' by key ' + fingerprint if fingerprint else ''} that does not "
        "verify for Git (a bad signature, or an allowed_signers line whose namespaces leave out git): refusing it",
        stage=Stage.FETCH,
    )


def _verify_gpg_signature(mirror: git.Repo, commit: str, armored_keys: list[str], *, where: str) -> str:
    """The commit is checked against a throwaway keyring that holds only the
    allowed keys, so any good signature is by definition an allowed one."""
    short = commit[:12]
    with tempfile.TemporaryDirectory(prefix="driftgate-gpg-") as gnupghome:
        env = {**os.environ, "GNUPGHOME": gnupghome}
        for key in armored_keys:
            imported = _signature_tool(
                ["gpg", "--batch", "--import"], where, input=key.encode(), env=env, capture_output=True
            )
            if imported.returncode != 0:
                raise PermanentError(
                    f"{where}: an allowed_signers entry is not a valid armored public key",
                    stage=Stage.FETCH,
                )
        result = _signature_tool(
            ["git", "verify-commit", "--raw", commit],
            where,
            cwd=mirror.git_dir,
            env=env,
            capture_output=True,
            text=True,
        )
    status = _gpg_status(result.stderr)
    if "VALIDSIG" in status and "GOODSIG" in status and result.returncode == 0:
        fingerprint = status["VALIDSIG"].split()[-1]
        uid = status["GOODSIG"].split(" ", 1)[1] if " " in status["GOODSIG"] else ""
        return f"{uid} ({fingerprint})".strip()
    if "NO_PUBKEY" in status or "ERRSIG" in status:
        keyid = (status.get("NO_PUBKEY") or status["ERRSIG"]).split()[0]
        raise PermanentError(
            f"{where}: commit {short} is signed by key {keyid}, which is not an allowed signer: "
            "sign with an allowed key or add that key to allowed_signers",
            stage=Stage.FETCH,
        )
    for bad in ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"):
        if bad in status:
            raise PermanentError(
                f"{where}: commit {short} has a {bad} signature ({status[bad]}): refusing it",
                stage=Stage.FETCH,
            )
    raise PermanentError(
        f"{where}: commit {short} is not signed, and this environment requires signed commits",
        stage=Stage.FETCH,
    )


SIGNATURE_TIMEOUT = 60.0  # seconds for one gpg or git verify-commit: local work, never minutes


def _signature_tool(command: list[str], where: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """subprocess.run with a deadline that ends in one line naming the stage."""
    try:
        return subprocess.run(command, timeout=SIGNATURE_TIMEOUT, **kwargs)
    except subprocess.TimeoutExpired:  # a timeout is permanent: retrying would wait as long again
        raise PermanentError(
            f"{where}: fetch: {command[0]} did not finish within {SIGNATURE_TIMEOUT:g}s while checking a commit signature",
            stage=Stage.FETCH,
        ) from None


def _gpg_status(stderr: str) -> dict[str, str]:
    status: dict[str, str] = {}
    for line in stderr.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, _, rest = line[9:].partition(" ")
            status.setdefault(keyword, rest)
    return status


def _subtree(mirror: git.Repo, commit: str, subpath: str, where: str, *, setting: str = "source.path") -> git.Tree:
    """The tree at ``commit:subpath``; a missing path or a file is a clear error."""
    tree = mirror.commit(commit).tree
    if subpath == ".":
        return tree
    try:
        tree = tree / subpath
    except KeyError:
        raise PermanentError(
            f"{where}: path {subpath!r} does not exist at commit {commit[:12]}: fix {setting}",
            stage=Stage.FETCH,
        ) from None
    if tree.type != "tree":
        raise PermanentError(
            f"{where}: path {subpath!r} at commit {commit[:12]} is a file, not a directory",
            stage=Stage.FETCH,
        )
    return tree


def _checkout_tree(checkout: Checkout) -> tuple[git.Tree, str]:
    where = f"commit {checkout.commit[:12]}"
    return _subtree(git.Repo(checkout.git_dir), checkout.commit, checkout.path, where), where


def export(checkout: Checkout, dest: Path, *, skip: Callable[[str], bool] = lambda _path: False) -> None:
    """Write the checkout's files to ``dest`` (which must not exist yet), except
    those whose relative path ``skip`` names. Used where a tool needs files on
    disk: ansible-runner's bundle, kustomize and helm (a short-lived directory).
    One pass over the object store (`driftgate.gittree`)."""
    tree, where = _checkout_tree(checkout)
    dest.mkdir(parents=True, mode=0o700)
    listed = gittree.entries(checkout.git_dir, tree.hexsha)
    for entry in listed:
        if entry.type == "tree":
            (dest / entry.path).mkdir(parents=True, exist_ok=True)
    # Submodules (type "commit") are not followed: the bundle is what this repo holds.
    files = [e for e in listed if e.type == "blob" and not skip(e.path)]
    for entry, data in zip(files, gittree.blobs(checkout.git_dir, [e.sha for e in files]), strict=True):
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.is_symlink:  # kept only if it stays inside the bundle
            _link_target(entry.path, data, checkout.path, where)
            target.symlink_to(data.decode())
            continue
        target.write_bytes(data)
        if entry.mode & 0o111:
            target.chmod(0o755)


class SourceFile(NamedTuple):
    """One file of a checkout in the object store: its size and blob SHA (which
    names its content) are known before ``read()`` brings its content into memory."""

    path: str  # relative to the checkout's path, with /
    size: int
    read: Callable[[], bytes]
    sha: str = ""


def read_files(checkout: Checkout, *, read_ahead: int = 1 << 20,
               held: Callable[[str], bool] = lambda _sha: False) -> Iterator[SourceFile]:
    """Every file of the checkout, from the object store, read only when asked
    (files up to ``read_ahead`` bytes a batch at a time, `driftgate.gittree`).
    ``held``: blobs (by SHA) the caller already has what it needs of, so not
    read ahead (read alone if asked for after all). A symlink to a file inside
    the path reads as that file; one that leaves the path is an error, as in
    `export()`."""
    tree, where = _checkout_tree(checkout)
    listed = gittree.entries(checkout.git_dir, tree.hexsha)
    by_path = {e.path: e for e in listed}
    links = [e for e in listed if e.is_symlink]
    targets = dict(zip((e.path for e in links), gittree.blobs(checkout.git_dir, [e.sha for e in links]), strict=True))
    files = []
    for entry in listed:
        if entry.type != "blob":
            continue
        blob: gittree.Entry | None = entry
        if entry.is_symlink:
            blob = by_path.get(_link_target(entry.path, targets[entry.path], checkout.path, where))
            if blob is None or blob.type != "blob" or blob.is_symlink:
                continue  # dangling, a directory (its files are read where they are), or a chain of links
        files.append((entry.path, blob))
    read = gittree.LazyBlobs(checkout.git_dir, (b for _, b in sorted(files) if not held(b.sha)), read_ahead=read_ahead)
    for path, blob in files:
        yield SourceFile(path, blob.size, lambda blob=blob: read(blob), blob.sha)


def _link_target(path: str, link_bytes: bytes, subpath: str, where: str) -> str:
    """Where a symlink at ``path`` (relative to ``subpath``) points, relative to
    ``subpath`` too; refused if outside it (the error names the path in the repository)."""
    link = link_bytes.decode("utf-8", "surrogateescape")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    if posixpath.isabs(link) or target == ".." or target.startswith("../"):
        shown = posixpath.join(subpath, path) if subpath != "." else path
        raise PermanentError(f"{where}: symlink {shown} points outside the repository ({link})", stage=Stage.FETCH)
    return target


def _check_links(mirror: git.Repo, tree: git.Tree, subpath: str, where: str) -> None:
    """Refuse, at fetch, a commit whose path holds a symlink that leaves it."""
    links = [e for e in gittree.entries(Path(mirror.git_dir), tree.hexsha) if e.is_symlink]
    for entry, data in zip(links, gittree.blobs(Path(mirror.git_dir), [e.sha for e in links]), strict=True):
        _link_target(entry.path, data, subpath, where)


@contextmanager
def _git_env(auth: GitAuth | None) -> Iterator[dict[str, str]]:
    """Environment for git: never prompt; pass credentials without writing them to config."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
    if auth is None:
        yield env
        return
    if auth.token:
        basic = base64.b64encode(f"{auth.username}:{auth.token}".encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
    if not auth.ssh_private_key:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="driftgate-ssh-") as tmp:
        key = Path(tmp) / "key"
        key.touch(mode=0o600)
        key.write_text(auth.ssh_private_key.rstrip("\n") + "\n")
        options = ["-o IdentitiesOnly=yes", "-o BatchMode=yes", "-o StrictHostKeyChecking=yes"]
        if auth.known_hosts is not None:  # "" means: trust no host (not ~/.ssh/known_hosts)
            known = Path(tmp) / "known_hosts"
            known.write_text(auth.known_hosts)
            options.append(f"-o UserKnownHostsFile={known}")
        env["GIT_SSH_COMMAND"] = " ".join(["ssh", f"-i {key}", *options])
        yield env
