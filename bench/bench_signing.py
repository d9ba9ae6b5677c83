"""What a signature adds to an approval: ssh-keygen sign + verify, against an unsigned decision.

    .venv/bin/python bench/bench_signing.py [--runs N]

Makes a throwaway ed25519 key and an allowed_signers file listing it (and 49
other keys, so the file is not trivially small), then times, N times each,
median and worst:

- unsigned: what the gate does with an unsigned answer today (the approver
  policy check and the Approval it records);
- sign: `signing.sign` (ssh-keygen -Y sign), what `driftgate approve --key`
  adds on the approver's side;
- verify: `signing.check_answer` (parse, ssh-keygen -Y verify, the record's
  evidence), what the flow adds before apply;
- round trip: sign + verify.

Target: the round trip adds under 100 ms to an approval. Exit 1 if not.
Not a test: the figure goes into the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from driftgate import policy, signing
from driftgate.config import parse_config
from driftgate.models import Approval, Decision

TARGET_MS = 100.0


def keygen(directory: Path, name: str) -> tuple[Path, str]:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True, timeout=30)
    return path, " ".join(path.with_suffix(".pub").read_text().split()[:2])


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="driftgate-bench-signing-"))
    key, public = keygen(tmp, "alice")
    others = [keygen(tmp, f"user{i}")[1] for i in range(49)]
    allowed = "".join(f"user{i} {pub}\n" for i, pub in enumerate(others)) + f'alice namespaces="driftgate-approval" {public}\n'
    now = datetime.now(timezone.utc)
    statement = signing.Statement(
        environment="web-prod", flow_run="0b5e0c9e-1111-4222-8333-944455556666", plan="ab" * 32, commit="cd" * 20,
        decision="approve", approver="alice", expires=now + timedelta(hours=1),
    )  # fmt: skip
    env = parse_config(
        {"environments": {"e": {"source": {"repo": "/r"}, "target": {"kind": "kubernetes"}, "approval": {"approvers": ["alice", "bob"]}}}},
        Path("/tmp/driftgate.yaml"),
    ).environment("e")
    signature = signing.sign(statement.text(), key)

    def unsigned() -> Approval:
        assert policy.approver_refusal("alice", env.approval, requester="bob") is None
        return Approval(required=True, decision=Decision.APPROVE, approver="alice", plan_hash=statement.plan, decided_at=now)

    def verify() -> None:
        signing.check_answer(statement, signature, allowed, now=now, source="bench")

    def round_trip() -> None:
        signing.check_answer(statement, signing.sign(statement.text(), key), allowed, now=now, source="bench")

    for action in (unsigned, verify, round_trip):  # warm: imports, page cache
        action()
    rows = {name: timed(action, args.runs) for name, action in
            (("unsigned decision", unsigned), ("sign (ssh-keygen -Y sign)", lambda: signing.sign(statement.text(), key)),
             ("verify (check_answer)", verify), ("sign + verify", round_trip))}  # fmt: skip
    print(f"{args.runs} runs each, allowed_signers with {len(others) + 1} keys\n")
    print(f"| {'step':<26} | median ms | max ms |\n| {'-' * 26} | ---: | ---: |")
    for name, samples in rows.items():
        print(f"| {name:<26} | {statistics.median(samples):9.2f} | {max(samples):6.2f} |")
    added = statistics.median(rows["sign + verify"]) - statistics.median(rows["unsigned decision"])
    ok = added < TARGET_MS
    print(f"\nadded to an approval (median): {added:.1f} ms; target under {TARGET_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
