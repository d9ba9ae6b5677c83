"""The comparison cache of one environment, saved by two plans at once
(driftgate.kube.cache): a `driftgate plan` from a terminal while the schedule's
drift check of the same environment runs. Both must finish, and the file must
stay whole. Two threads, for a real race on the file system, as two processes have.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from driftgate.config import Environment
from driftgate.kube.cache import ComparisonCache

ENV = Environment.model_validate(
    {"name": "prod", "source": {"repo": "https://git.example/r.git"}, "target": {"kind": "kubernetes", "namespace": "prod"}}
)


def test_two_plans_saving_one_environments_cache_at_once_both_finish(driftgate_home: Path) -> None:
    failures: list[str] = []

    def plan_and_save(who: int) -> None:
        for _ in range(200):  # each save writes then renames; their steps interleave within a few rounds
            cache = ComparisonCache(ENV)
            for key in range(500):
                cache.put(f"{who}-{key}", {"result": "in sync"})
            try:
                cache.save()
            except OSError as exc:
                failures.append(repr(exc))
                return

    plans = [threading.Thread(target=plan_and_save, args=(who,)) for who in (1, 2)]
    for plan in plans:
        plan.start()
    for plan in plans:
        plan.join()
    assert failures == []
    saved = json.loads(ComparisonCache(ENV).path.read_text())  # whole: one plan's entries, all 500
    assert len(saved) == 500 and len({key.split("-")[0] for key in saved}) == 1
    assert [p.name for p in ComparisonCache(ENV).path.parent.iterdir()] == [ComparisonCache(ENV).path.name]
