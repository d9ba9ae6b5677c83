"""fetch against real Git repositories: cache, refs, bad input, signed commits with real gpg and SSH keys."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from driftgate import signing
from driftgate.config import Source
from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.errors import PermanentError, TransientError, is_transient
from driftgate.git import GitAuth, fetch, read_files
from driftgate.models import Checkout, Stage
from tests.conftest import SSHKey


def files_of(checkout: Checkout) -> dict[str, str]:
    """A checkout's files as text, read from the object store."""
    return {f.path: f.read().decode() for f in read_files(checkout)}


def source(world: DemoWorld, **overrides: object) -> Source:
    return Source(**{"repo": str(world.repo), "ref": "main", "path": "ansible", **overrides})


def test_clones_once_then_fetches_incrementally(world: DemoWorld, driftgate_home: Path) -> None:
    first = fetch(source(world), environment="demo")
    assert first.commit == git.Repo(world.repo).head.commit.hexsha
    assert files_of(first)["site.yml"].startswith("- name: demo web host")
    mirrors = list((driftgate_home / "repos").iterdir())
    assert len(mirrors) == 1
    marker = mirrors[0] / "driftgate-test-marker"
    marker.write_text("same clone")

    new_sha = commit_change(world.repo, "ansible/vars.yml", "max_connections: 7\n", "seven")
    second = fetch(source(world), environment="demo")
    assert second.commit == new_sha != first.commit
    assert files_of(second)["vars.yml"] == "max_connections: 7\n"
    assert marker.exists(), "the mirror was cloned again instead of fetched"
    assert list((driftgate_home / "repos").iterdir()) == mirrors


def test_a_clone_a_killed_process_left_is_deleted_by_the_next_clone_of_that_repository(world: DemoWorld, driftgate_home: Path) -> None:
    # What a process killed with -9 mid-clone leaves (it cannot clean up): its staging
    # directory beside the mirrors, as big as the repository got. Another repository's
    # clone, which another process may be making right now, is left alone.
    from driftgate.git import mirror_dir

    mirror = mirror_dir(str(world.repo))
    killed = mirror.parent / f"clone-{mirror.name}-k1ll3d"
    (killed / "m" / "objects").mkdir(parents=True)
    (killed / "m" / "objects" / "pack").write_bytes(b"\0" * 4096)
    theirs = mirror.parent / "clone-0123456789abcdef0123-b1s1y0"
    theirs.mkdir()
    fetch(source(world), environment="demo")
    assert not killed.exists()
    assert theirs.exists()
    assert sorted(p.name for p in mirror.parent.iterdir()) == sorted([mirror.name, theirs.name])


def test_checks_sharing_a_repository_clone_and_fetch_it_one_at_a_time(world: DemoWorld) -> None:
    """A fleet's checks run in threads (and deployment runs in processes) that share one
    repository's mirror: the first fetches of a fresh home must not clone over, or delete,
    the mirror another is reading."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    source = Source(repo=str(world.repo), ref="main", path="ansible")
    together = threading.Barrier(6)

    def first_fetch(n: int) -> str:
        together.wait(30)
        return fetch(source, environment=f"tenant-{n}").commit

    with ThreadPoolExecutor(6) as pool:
        commits = list(pool.map(first_fetch, range(6)))
    assert len(set(commits)) == 1 and git.Repo(world.repo).head.commit.hexsha == commits[0]


def test_refs_branch_tag_and_commit(world: DemoWorld) -> None:
    repo = git.Repo(world.repo)
    tagged = repo.head.commit.hexsha
    repo.create_tag("v1.0")
    repo.create_head("release", tagged)
    later = commit_change(world.repo, "ansible/vars.yml", "max_connections: 1\n", "later")
    assert fetch(source(world, ref="v1.0"), environment="demo").commit == tagged
    assert fetch(source(world, ref="release"), environment="demo").commit == tagged
    assert fetch(source(world, ref="main"), environment="demo").commit == later
    assert fetch(source(world, ref=tagged), environment="demo").commit == tagged
    assert fetch(source(world, ref=tagged[:10]), environment="demo").commit == tagged


def test_unknown_ref_is_a_clear_permanent_error(world: DemoWorld) -> None:
    with pytest.raises(PermanentError) as caught:
        fetch(source(world, ref="no-such-branch"), environment="demo")
    assert "environment 'demo': ref 'no-such-branch' is not a branch, tag or commit" in str(caught.value)
    assert caught.value.stage == Stage.FETCH and caught.value.reason == "FetchFailed"


def test_missing_local_repository(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"environment 'x': repository .*nowhere does not exist"):
        fetch(Source(repo=str(tmp_path / "nowhere")), environment="x")


def test_unreachable_remote_is_transient_and_masks_credentials() -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    url = "http://deploy:hunter2hunter2@127.0.0.1:9/platform/deploy.git"
    with pytest.raises(TransientError) as caught:
        fetch(Source(repo=url), environment="web", auth=GitAuth(token="s3cr3t-token-value"))
    message = str(caught.value)
    assert is_transient(caught.value)
    assert "environment 'web': cannot fetch http://***@127.0.0.1:9/platform/deploy.git" in message
    assert "hunter2" not in message and "s3cr3t" not in message


def test_subpath_missing_or_a_file(world: DemoWorld) -> None:
    with pytest.raises(PermanentError, match=r"path 'k8s' does not exist at commit"):
        fetch(source(world, path="k8s"), environment="demo")
    with pytest.raises(PermanentError, match=r"is a file, not a directory"):
        fetch(source(world, path="ansible/site.yml"), environment="demo")


def test_subpath_escaping_the_repository_is_refused() -> None:
    with pytest.raises(ValueError, match="escapes the repository"):
        Source(repo="./r", path="ansible/../../secrets")


def test_symlink_out_of_the_repository_is_refused(world: DemoWorld) -> None:
    repo = git.Repo(world.repo)
    os.symlink("/etc/passwd", world.repo / "ansible" / "passwd")
    repo.index.add(["ansible/passwd"])
    repo.index.commit("sneaky link")
    with pytest.raises(PermanentError, match=r"symlink ansible/passwd points outside the repository"):
        fetch(source(world), environment="demo")


# ---------------------------------------------------------------- signatures


def _gpg(home: Path, *args: str, input: bytes | None = None) -> str:
    env = {**os.environ, "GNUPGHOME": str(home)}
    result = subprocess.run(["gpg", "--batch", *args], env=env, input=input, capture_output=True, check=True)
    return result.stdout.decode()


@pytest.fixture
def signer(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A real keyring with two keys: (GNUPGHOME, allowed fingerprint, other fingerprint).
    Making and signing with keys starts a gpg-agent for the keyring, a daemon: ended after."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    fingerprints = []
    try:
        for uid in ("Release Bot <release@example.com>", "Mallory <mallory@example.com>"):
            _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
            listing = _gpg(home, "--with-colons", "--list-keys", uid)
            fingerprints.append(next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")))
        yield home, fingerprints[0], fingerprints[1]
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)


def _signed_commit(world: DemoWorld, home: Path, fingerprint: str | None, message: str) -> str:
    (world.repo / "ansible" / "vars.yml").write_text(f"max_connections: {len(message)}\n")
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["git", "add", "-A"], cwd=world.repo, check=True)
    sign = [f"-S{fingerprint}"] if fingerprint else ["--no-gpg-sign"]
    subprocess.run(["git", "commit", "-q", *sign, "-m", message], cwd=world.repo, env=env, check=True)
    return git.Repo(world.repo).head.commit.hexsha


def test_signed_commits(world: DemoWorld, signer: tuple[Path, str, str]) -> None:
    home, allowed, other = signer
    allowed_key = _gpg(home, "--armor", "--export", allowed)
    signed_source = source(world, require_signed_commits=True, allowed_signers=[allowed_key])

    good = _signed_commit(world, home, allowed, "signed by the release key")
    checkout = fetch(signed_source, environment="prod", signing_keys=[allowed_key])
    assert checkout.commit == good
    assert checkout.signed_by == f"Release Bot <release@example.com> ({allowed})"

    by_other = _signed_commit(world, home, other, "signed by someone else")
    with pytest.raises(PermanentError) as caught:
        fetch(signed_source, environment="prod", signing_keys=[allowed_key])
    assert f"commit {by_other[:12]} is signed by key {other[-16:]}, which is not an allowed signer" in str(caught.value)

    unsigned = _signed_commit(world, home, None, "not signed")
    with pytest.raises(PermanentError) as caught:
        fetch(signed_source, environment="prod", signing_keys=[allowed_key])
    assert f"environment 'prod': commit {unsigned[:12]} is not signed" in str(caught.value)


def test_signing_key_that_is_not_a_key(world: DemoWorld) -> None:
    with pytest.raises(PermanentError, match="an allowed_signers entry: entry 1 .* has no SSH public key"):
        fetch(source(world, require_signed_commits=True, allowed_signers=["x"]), environment="p", signing_keys=["garbage"])
    with pytest.raises(PermanentError, match="not a valid armored public key"):
        fetch(source(world, require_signed_commits=True, allowed_signers=["x"]), environment="p",
              signing_keys=["-----BEGIN PGP PUBLIC KEY BLOCK-----\ngarbage\n-----END PGP PUBLIC KEY BLOCK-----"])  # fmt: skip


# ---------------------------------------------------------------- SSH-signed commits (gpg.format=ssh)


def _ssh_signed_commit(world: DemoWorld, key: SSHKey | None, message: str) -> str:
    (world.repo / "ansible" / "vars.yml").write_text(f"max_connections: {len(message)}\n")
    subprocess.run(["git", "add", "-A"], cwd=world.repo, check=True)
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key.path}"] if key else []
    subprocess.run(["git", *sign, "commit", "-q", "-S" if key else "--no-gpg-sign", "-m", message], cwd=world.repo, check=True)
    return git.Repo(world.repo).head.commit.hexsha


def test_ssh_signed_commits_beside_gpg_keys(world: DemoWorld, ssh_keys: dict[str, SSHKey], signer: tuple[Path, str, str], tmp_path: Path) -> None:
    home, allowed_gpg, _ = signer
    signers_file = tmp_path / "allowed_signers"
    signers_file.write_text("# who may sign deployed commits\n" + ssh_keys["alice"].signer_line("alice@example.com"))
    gpg_key = _gpg(home, "--armor", "--export", allowed_gpg)
    keys = [gpg_key, signers_file.read_text()]
    signed_source = source(world, require_signed_commits=True, allowed_signers=[str(signers_file)])

    good = _ssh_signed_commit(world, ssh_keys["alice"], "signed with alice's SSH key")
    checkout = fetch(signed_source, environment="prod", signing_keys=keys)
    fingerprint = signing.key_fingerprint(ssh_keys["alice"].public.split()[1])
    assert checkout.commit == good and checkout.signed_by == f"alice@example.com ({fingerprint})"

    by_other = _ssh_signed_commit(world, ssh_keys["mallory"], "signed with a key nobody allowed")
    with pytest.raises(PermanentError) as caught:
        fetch(signed_source, environment="prod", signing_keys=keys)
    mallory = signing.key_fingerprint(ssh_keys["mallory"].public.split()[1])
    assert f"commit {by_other[:12]} is signed by SSH key {mallory}, which is not an allowed signer" in str(caught.value)

    unsigned = _ssh_signed_commit(world, None, "not signed")
    with pytest.raises(PermanentError, match=f"commit {unsigned[:12]} is not signed"):
        fetch(signed_source, environment="prod", signing_keys=keys)

    _signed_commit(world, home, allowed_gpg, "GPG still works beside SSH")
    assert fetch(signed_source, environment="prod", signing_keys=keys).signed_by.startswith("Release Bot")


def test_ssh_key_allowed_only_for_approvals_does_not_sign_commits(world: DemoWorld, ssh_keys: dict[str, SSHKey]) -> None:
    """A key whose allowed_signers line restricts it to driftgate-approval cannot vouch for a commit."""
    line = ssh_keys["alice"].signer_line("alice", 'namespaces="driftgate-approval"')
    commit = _ssh_signed_commit(world, ssh_keys["alice"], "signed, but with an approvals-only key")
    with pytest.raises(PermanentError, match=f"commit {commit[:12]} has an SSH signature that does not verify for Git"):
        fetch(source(world, require_signed_commits=True, allowed_signers=["x"]), environment="prod", signing_keys=[line])


def test_read_files_reads_any_file_in_any_order(world: DemoWorld) -> None:
    """Files are read from the object store only when asked, in any order, any of
    them skipped: GitPython's shared `cat-file --batch` must not get out of step."""
    commit_change(world.repo, "ansible/extra.txt", "not yaml\n", "a file render skips")
    files = list(read_files(fetch(source(world), environment="demo")))
    assert [f.path for f in files] == sorted(f.path for f in files)
    by_path = {f.path: f for f in files}
    assert by_path["vars.yml"].read() == (world.repo / "ansible/vars.yml").read_bytes()  # the others left unread
    assert files[0].read() == (world.repo / "ansible" / files[0].path).read_bytes()
    assert by_path["extra.txt"].size == len("not yaml\n")


def test_files_are_what_git_holds_read_in_batches(world: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_files and export give exactly the blobs of the commit: a
    .gitattributes cannot hide a file (export-ignore) or rewrite one
    (export-subst), as `git archive` would let it. Many files read in several
    batches, a large one alone, links inside the path followed, every byte right."""
    from driftgate import git as dgit
    from driftgate import gittree

    repo = git.Repo(world.repo)
    (world.repo / "ansible/.gitattributes").write_text("hidden.yml export-ignore\nsubst.yml export-subst\n")
    (world.repo / "ansible/hidden.yml").write_text("secret_of_the_repo: kept\n")
    (world.repo / "ansible/subst.yml").write_text("commit: $Format:%H$\n")
    (world.repo / "ansible/many").mkdir()
    for i in range(120):
        (world.repo / f"ansible/many/f{i:03d}.yml").write_text(f"n: {i}\n" + "x" * (i * 37))
    (world.repo / "ansible/big.bin").write_bytes(os.urandom(300_000))
    os.symlink("many/f007.yml", world.repo / "ansible/link.yml")
    repo.git.add(A=True)
    repo.index.commit("files for the batch reader")
    checkout = fetch(source(world), environment="demo")

    monkeypatch.setattr(gittree, "_BATCH_BYTES", 40_000)  # several batches
    expected = {
        p.relative_to(world.repo / "ansible").as_posix(): p.resolve().read_bytes()
        for p in (world.repo / "ansible").rglob("*") if p.is_file()
    }  # fmt: skip
    read = {f.path: f.read() for f in read_files(checkout, read_ahead=100_000)}  # big.bin: alone
    assert read == expected
    assert read["subst.yml"] == b"commit: $Format:%H$\n" and "hidden.yml" in read

    dgit.export(checkout, tmp_path / "bundle")
    exported = {p.relative_to(tmp_path / "bundle").as_posix(): p.resolve().read_bytes()
                for p in (tmp_path / "bundle").rglob("*") if p.is_file()}  # fmt: skip
    assert exported == expected and (tmp_path / "bundle/link.yml").is_symlink()


def test_the_commits_since_the_last_applied_revision_name_their_signers(world: DemoWorld, ssh_keys: dict[str, SSHKey], tmp_path: Path) -> None:
    from driftgate import commits

    applied = fetch(source(world), environment="prod").commit
    for n in range(22):
        commit_change(world.repo, "ansible/vars.yml", f"max_connections: {n}\n", f"step {n}")
    by_alice = _ssh_signed_commit(world, ssh_keys["alice"], "signed by alice")
    by_mallory = _ssh_signed_commit(world, ssh_keys["mallory"], "signed by mallory")
    head = fetch(source(world), environment="prod").commit
    allowed = ssh_keys["alice"].signer_line("alice@example.com")

    story = commits.between(world.repo.as_posix(), applied, head, signing_keys=[allowed])
    assert story is not None and (story.since, story.until, story.more, story.undone) == (applied, head, 4, 0)
    assert [c.subject for c in story.commits[:3]] == ["signed by mallory", "signed by alice", "step 21"]
    newest = story.commits[0]
    assert newest.sha == by_mallory and newest.author == "Demo Developer <dev@example.com>"
    assert newest.signer == "a key that is NOT an allowed signer"
    assert story.commits[1].sha == by_alice and story.commits[1].signer.startswith("alice@example.com (SHA256:")
    assert story.commits[2].signer == ""  # unsigned
    lines = commits.lines(story)
    assert len(lines) == 21 and lines[-1] == "… and 4 more" and lines[1].startswith(f"{by_alice[:7]} signed by alice — Demo Developer")
    assert commits.heading(story) == f"24 commits since {applied[:7]} (last applied)"
    # Without allowed signers, a signature git cannot check is said to be one.
    assert commits.between(world.repo.as_posix(), applied, head).commits[1].signer == "a key not checked here (no allowed signers)"
    # Going back (a rollback): nothing new, the applied commits it leaves out counted.
    back = commits.between(world.repo.as_posix(), head, applied)
    assert back is not None and (back.commits, back.undone) == ((), 24) and "going back: 24 applied commits" in commits.heading(back)
    assert commits.between(str(tmp_path / "never-fetched"), "", head) is None
