"""One canonical-JSON SHA-256 helper (driftgate.hashing) behind every hash:
the values below were computed by the code before the helpers were merged, so
a plan approved, a record written or a cache filled before still matches."""

from __future__ import annotations

import json
from datetime import datetime

from driftgate import audit, checkpoints, kubediff
from driftgate.hashing import canonical_hash, canonical_json
from driftgate.models import Action, Change, Plan


def test_plan_hash_is_unchanged() -> None:
    change = Change(
        action=Action.UPDATE, target="web1", name="café ✓", module="copy", diff="-a\n+b",
        task_path="site.yml:3", rules=("prod",), risky=True,
    )  # fmt: skip
    plan = Plan(environment="prod", revision="a" * 40, changes=(change,))
    assert plan.plan_hash == "e20916fbb58b6a7faea807a13cd9265b689449d232f01e6a59fb681bbc4f7ca0"


def test_record_hashes_are_unchanged() -> None:
    row = {
        "seq": 1, "prev_hash": audit.GENESIS, "environment": "prod", "started_at": datetime(2026, 1, 2, 3, 4, 5, 6),
        "reason": "café ✓", "id": 9, "row_hash": "x", "hosts": [{"host": "web1"}],
    }  # fmt: skip
    assert audit.row_hash("runs", row) == "8ea684db17d3241302a4f8258923256d2e3b6c919bec0343404e8331eb39f9fe"
    changes = [{"action": "update", "diff": "é", "rules": ["a"], "risky": True, "extra": {}}, {"action": "create"}]
    assert audit.changes_hash(changes) == "691c54124109edbe1aaf1d3f064f7c2314242c8e71749fbbaa8e757829dd4eb6"
    assert '"reason":"café ✓"' in audit.canonical(row)  # the record keeps non-ASCII as it is


def test_kube_cache_hash_is_unchanged() -> None:
    obj = {"b": [1, "é"], "a": {"z": 1, "y": None}}
    assert kubediff.stable_hash(obj) == "9fc17fc23ffaa9c3743b4783669e48a69b7ca4f57cb61729fba44e1f67270729"


def test_render_cache_key_spelling_is_unchanged() -> None:
    inputs = {"commit": "a" * 40, "path": "ansible", "render": {"values": ["é"]}}
    assert canonical_hash(inputs, separators=(", ", ": "))[:20] == "cde3407746476dc41dfe"


def test_checkpoint_payload_is_canonical() -> None:
    text = checkpoints.payload(index=1, prev="", chain="c", seq=2, head="h", database="db é", key="k")
    assert text == canonical_json(json.loads(text))
    assert " " not in text.replace("db \\u00e9", "") and "\\u00e9" in text  # compact, ASCII-only: as signed before
