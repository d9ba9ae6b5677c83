"""`rollback --to X` where X could name a run or a commit (driftgate.revisions).

A record id is digits, and so is about one short commit SHA in 27 (seven
characters, all of 0-9); a run id prefix is hex, like a commit's. In a fleet the
record passes a million runs within weeks, so `--to 1234567` may name both. Such
a --to is refused, naming both and how to say which, when the environment has
run a commit it names; nothing is applied. The real record, on SQLite.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from driftgate import revisions
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.models import Outcome, RunMode, RunPurpose, RunRecord
from driftgate.store import Store

NOW = datetime.now(timezone.utc)


def ran(store: Store, environment: str, commit: str, *, run_id: str = "") -> int:
    return store.record(RunRecord(environment=environment, mode=RunMode.SYNC, trigger="test", outcome=Outcome.APPLIED,
                                  started_at=NOW, finished_at=NOW, commit=commit, run_id=run_id,
                                  purpose=RunPurpose.SYNC))  # fmt: skip


def env(name: str = "prod") -> Environment:
    return Environment.model_validate({"name": name, "source": {"repo": "https://git.example/r.git"},
                                       "target": {"kind": "ansible", "hosts": {"h": {}}}})  # fmt: skip


def test_digits_naming_a_run_and_a_commit_that_ran_are_refused(driftgate_home: Path) -> None:
    store = Store()
    for _ in range(999):  # record ids reach four digits, the shortest a commit can be named by
        ran(store, "other", "f" * 40)
    record_id = ran(store, "prod", "a" * 40)
    digits = str(record_id)
    assert len(digits) == 4
    ran(store, "prod", digits + "bcdef" * 7 + "012")  # a commit whose SHA starts with those digits
    with pytest.raises(PermanentError) as refused:
        revisions.rollback(store, env(), to=digits)
    message = str(refused.value)
    assert f"--to {digits} names both run #{digits}" in message and f"commit {digits}bcdef" in message
    assert "run id" in message and "more of its characters" in message

    # More of the commit, or the run by its run id: one meaning each.
    commit = revisions.rollback(store, env(), to=digits + "bcdef")
    assert commit.aim.revision == digits + "bcdef"
    run = store.get(digits)
    assert run is not None and revisions.rollback(store, env(), to=run.run_id).aim.revision == "a" * 40


def test_a_run_whose_own_commit_is_named_is_not_ambiguous_and_short_digits_are_a_run(driftgate_home: Path) -> None:
    store = Store()
    first = ran(store, "prod", "1" * 40)
    ran(store, "prod", str(first) + "0" * 39)  # starts with the id's digit: too short to name a commit
    assert revisions.rollback(store, env(), to=str(first)).aim.revision == "1" * 40
    same = ran(store, "prod", "b" * 40, run_id="bbbbbbbb" + "0" * 24)  # its run id and its commit start alike
    assert store.get(str(same)) is not None
    assert revisions.rollback(store, env(), to="bbbbbbbb").aim.revision == "b" * 40


def test_a_run_of_another_environment_says_a_commit_needs_more_characters(driftgate_home: Path) -> None:
    store = Store()
    theirs = ran(store, "staging", "c" * 40, run_id="0c0ffee0" + "1" * 24)
    with pytest.raises(PermanentError) as refused:
        revisions.rollback(store, env(), to="0c0ffee0")  # a run id prefix, and a commit's could look so
    assert "is a run of 'staging'" in str(refused.value) and "a commit, give more of its characters" in str(refused.value)
    with pytest.raises(PermanentError) as refused:
        revisions.rollback(store, env(), to=str(theirs))  # one digit: a run, never a commit
    assert "is a run of 'staging', not of 'prod'" in str(refused.value) and "commit" not in str(refused.value)
