"""The story behind a plan: the commits between what is applied and what is planned.

`between()` reads the environment's mirror clone (driftgate.git keeps one per
repository) and lists the newest commits of ``since..until``: short hash,
author, subject and signer (``git log`` with ``%G?``/``%GS``), at most
`PAGE` of them and how many more. A reviewer reads it on the plan artifact,
the approval form, `driftgate approvals`, `driftgate plan` and `driftgate
show`. Called by `driftgate.pipeline.diff` and the CLI's ``show``; it never
fails a run: a range it cannot read is left out (None).
"""

from __future__ import annotations

import logging

import git

from driftgate.errors import PermanentError
from driftgate.git import mirror_dir, verify_signature
from driftgate.models import CommitInfo, CommitRange

log = logging.getLogger(__name__)

PAGE = 20  # commits listed; the rest are counted
_TIMEOUT = 60  # seconds for one git log (it may ask gpg about each signature)
# %G?: G good, U good but untrusted key, X/Y expired signature/key, R revoked key, E cannot check, B bad, N none
# (also for an SSH signature when git has no allowed_signers file: signed or not, the commit's gpgsig says).
_FIELDS = "%H%x1f%an <%ae>%x1f%s%x1f%G?%x1f%GS%x1e"


def between(
    repo: str, since: str, until: str, *, signing_keys: list[str] | None = None, page: int = PAGE
) -> CommitRange | None:
    """The commits of ``repo`` in ``since..until`` (all up to ``until`` when
    ``since`` is ''), newest first; None when the mirror does not hold them.

    A signed commit names its signer: checked against ``signing_keys`` (the
    environment's allowed signers) when it has some, as `driftgate.git.fetch`
    checks the planned commit; else as git itself can tell (``%G?``/``%GS``)."""
    try:
        mirror = git.Repo(mirror_dir(repo))
        listed = f"{since}..{until}" if since else until
        count = int(mirror.git.rev_list("--count", listed, kill_after_timeout=_TIMEOUT))
        undone = int(mirror.git.rev_list("--count", f"{until}..{since}", kill_after_timeout=_TIMEOUT)) if since else 0
        out = mirror.git.log(f"--max-count={page}", f"--format={_FIELDS}", listed, kill_after_timeout=_TIMEOUT)
    except (git.GitCommandError, git.exc.NoSuchPathError, git.exc.InvalidGitRepositoryError, ValueError) as exc:
        log.info("no commit list for %s..%s: %s", since[:12], until[:12], exc)
        return None
    found = tuple(_commit(mirror, record, signing_keys) for record in out.split("\x1e") if record.strip())
    return CommitRange(since=since, until=until, commits=found, more=max(count - len(found), 0), undone=undone)


def _commit(mirror: git.Repo, record: str, signing_keys: list[str] | None) -> CommitInfo:
    sha, author, subject, status, signer = (record.strip("\n").split("\x1f") + [""] * 5)[:5]
    return CommitInfo(sha=sha, author=author, subject=subject, signer=_signer(mirror, sha, status, signer, signing_keys))


def _signer(mirror: git.Repo, sha: str, status: str, signer: str, signing_keys: list[str] | None) -> str:
    """Who signed ``sha``, in words ('' when it is not signed)."""
    if not mirror.commit(sha).gpgsig:
        return ""
    if signing_keys:
        try:
            return verify_signature(mirror, sha, signing_keys, where=f"commit {sha[:12]}")
        except PermanentError:
            return "a key that is NOT an allowed signer"
    why = {"U": "key not trusted here", "X": "signature expired", "Y": "key expired", "R": "key revoked",
           "B": "BAD signature"}.get(status, "")  # fmt: skip
    if status in ("G", "U", "X", "Y", "R", "B"):
        return f"{signer or 'an unknown key'}" + (f" ({why})" if why else "")
    return "a key not checked here (no allowed signers)"


def lines(commits: CommitRange) -> list[str]:
    """One line per commit, then what was left out: for the CLI and artifacts."""
    out = [
        f"{c.sha[:7]} {c.subject} — {c.author}" + (f", signed by {c.signer}" if c.signer else "")
        for c in commits.commits
    ]
    if commits.more:
        out.append(f"… and {commits.more} more")
    return out


def heading(commits: CommitRange) -> str:
    """What the list is: 'N commit(s) since abc1234 (last applied)'."""
    total = len(commits.commits) + commits.more
    since = f"since {commits.since[:7]} (last applied)" if commits.since else "up to it (nothing applied yet)"
    text = f"{total} commit{'s' if total != 1 else ''} {since}"
    if commits.undone:
        text += f"; going back: {commits.undone} applied commit{'s' if commits.undone != 1 else ''} not in it"
    return text
