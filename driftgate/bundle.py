"""The auditor's bundle: the whole record, its checkpoints and the public keys,
in one tar file that ``driftgate audit verify --bundle FILE`` checks with no
database, no Prefect and no network.

Members (under ``driftgate-bundle/``; gzip when FILE ends in .gz or .tgz):

- ``manifest.json``: format, when and from which database it was made, the
  number of entries and checkpoints, the chain's identity and head;
- ``checkpoints.jsonl``: every checkpoint, oldest first, one JSON object per
  line (``payload``, the exact text signed, and ``signature``);
- ``record.jsonl``: every chained row in chain order, one JSON object per line
  (``table``, ``id``, ``seq``, ``prev_hash``, ``row_hash``, ``label``, every
  column in ``content``, and a run's change rows in ``changes``): what
  `driftgate.audit.row_hash` is computed over, so a changed byte shows;
- ``allowed_signers``: the instance key(s) that signed the checkpoints, and
  the approvers' lines the record's signed approvals were checked with
  (``approval.signature.allowed_signers``), in ssh-keygen's allowed_signers format;
- ``README.txt``: the same, for the person who opens it.

Rows and checkpoints are streamed through temporary files, never held in
memory all at once. Called by the ``audit`` CLI.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from driftgate import audit, checkpoints
from driftgate.errors import PermanentError
from driftgate.models import Stage

FORMAT = "driftgate-bundle/1"
ROOT = "driftgate-bundle"

README = """driftgate audit bundle
======================

Check it, on any machine with driftgate installed (no database, no Prefect):

    driftgate audit verify --bundle {name}
    driftgate audit verify --bundle {name} --trusted-keys instance_key.pub   # pin the key you were given

It walks the record's hash chain (record.jsonl), checks that the checkpoints
(checkpoints.jsonl) follow each other and that the newest is signed by the
instance key, and compares them with the chain: rows cut from its end, a
chain recomputed from some row on, or a record started anew are named.

manifest.json        what this is, from where, when
checkpoints.jsonl    signed checkpoints, oldest first (payload + SSH signature)
record.jsonl         every row of the record in chain order, with its hashes
allowed_signers      the instance key(s) and the approvers' keys (ssh-keygen format)
"""


def _entry_line(entry: audit.Entry) -> str:
    """One line of record.jsonl; content and changes exactly as they are hashed (`audit.canonical`)."""
    line = {
        "table": entry.table,
        "id": entry.id,
        "seq": entry.seq,
        "prev_hash": entry.prev_hash,
        "row_hash": entry.row_hash,
        "label": entry.label,
        "content": json.loads(audit.canonical(entry.content)),
        "changes": None if entry.changes is None else [json.loads(audit.canonical(c)) for c in entry.changes],
    }
    return json.dumps(line, ensure_ascii=False) + "\n"


def _entry_of(line: str, number: int) -> audit.Entry:
    try:
        raw = json.loads(line)
        return audit.Entry(
            table=str(raw["table"]),
            id=int(raw["id"]),
            seq=int(raw["seq"]),
            prev_hash=str(raw["prev_hash"]),
            row_hash=str(raw["row_hash"]),
            content=raw["content"],
            changes=raw["changes"],
            label=str(raw.get("label") or ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"the bundle's record.jsonl line {number} is not a record entry ({exc})", stage=Stage.RECORD) from None


def _approver_lines(entry: audit.Entry) -> list[str]:
    """The allowed_signers lines a run's signed approval was checked with
    (``approval.signature.allowed_signers``, kept in the record with it)."""
    approval = entry.content.get("approval") if entry.table == "runs" else None
    evidence = approval.get("signature") if isinstance(approval, dict) else None
    lines = evidence.get("allowed_signers") if isinstance(evidence, dict) else None
    if isinstance(lines, list):
        lines = "\n".join(str(line) for line in lines)
    return [line.strip() for line in str(lines or "").splitlines() if line.strip() and not line.strip().startswith("#")]


def export(path: Path, entries: Iterable[audit.Entry], found: Iterable[checkpoints.Checkpoint], *, database: str, location: str, instance_keys: Iterable[str] = ()) -> dict[str, Any]:
    """Write the bundle to ``path`` (atomically); returns its manifest."""
    signers: dict[str, None] = {checkpoints.allowed_signers_line(k): None for k in instance_keys if k}
    approvers: dict[str, None] = {}
    with tempfile.TemporaryDirectory(prefix="driftgate-bundle-") as tmp:
        work = Path(tmp)
        count = 0
        with open(work / "checkpoints.jsonl", "w") as out:
            for checkpoint in found:
                out.write(checkpoint.to_json() + "\n")
                if checkpoint.key:
                    signers[checkpoints.allowed_signers_line(checkpoint.key)] = None
                count += 1
        facts = audit.ChainFacts()
        entries_n = 0
        with open(work / "record.jsonl", "w") as out:
            for entry in entries:
                out.write(_entry_line(entry))
                approvers.update(dict.fromkeys(_approver_lines(entry)))
                facts.note(entry, first=entries_n == 0)
                entries_n += 1
        (work / "allowed_signers").write_text("".join(f"{line}\n" for line in [*signers, *approvers]))
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "database": database,
            "checkpoint_location": location,
            "entries": entries_n,
            "checkpoints": count,
            "chain": facts.chain,
            "last_seq": facts.last_seq,
            "head": facts.last_hash,
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (work / "README.txt").write_text(README.format(name=path.name))
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with tarfile.open(partial, "w:gz" if path.name.endswith((".gz", ".tgz")) else "w") as tar:
            # Checkpoints before the record: verify reads them first, even from a gzip stream.
            for name in ("manifest.json", "README.txt", "allowed_signers", "checkpoints.jsonl", "record.jsonl"):
                tar.add(work / name, arcname=f"{ROOT}/{name}")
        partial.replace(path)
    return manifest


class Bundle:
    """A bundle opened for verification."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path)
        except (OSError, tarfile.TarError) as exc:
            raise PermanentError(f"{path} is not a driftgate bundle: {exc}", stage=Stage.RECORD) from None
        self.manifest = json.loads(self._text("manifest.json"))
        if self.manifest.get("format") != FORMAT:
            raise PermanentError(f"{path} is not a {FORMAT} bundle (format {self.manifest.get('format')!r})", stage=Stage.RECORD)

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *_: object) -> None:
        self.tar.close()

    def _member(self, name: str) -> IO[bytes]:
        try:
            handle = self.tar.extractfile(f"{ROOT}/{name}")
        except KeyError:
            handle = None
        if handle is None:
            raise PermanentError(f"the bundle {self.path} has no {name}", stage=Stage.RECORD)
        return handle

    def _text(self, name: str) -> str:
        return self._member(name).read().decode()

    def _lines(self, name: str) -> Iterator[tuple[int, str]]:
        for number, raw in enumerate(io.TextIOWrapper(self._member(name), encoding="utf-8"), start=1):
            if raw.strip():
                yield number, raw

    def checkpoints(self) -> Iterator[checkpoints.Checkpoint]:
        for _, line in self._lines("checkpoints.jsonl"):
            yield checkpoints.Checkpoint.from_json(line)

    def entries(self) -> Iterator[audit.Entry]:
        for number, line in self._lines("record.jsonl"):
            yield _entry_of(line, number)

    def instance_keys(self) -> list[str]:
        """The driftgate-instance keys in allowed_signers."""
        return [
            checkpoints.public_key_of(line)
            for line in self._text("allowed_signers").splitlines()
            if line.startswith(checkpoints.PRINCIPAL + " ")
        ]


def verify(path: Path, *, trusted: list[str]) -> checkpoints.Report:
    """Verify a bundle offline. ``trusted``: public keys the auditor pins; empty
    means the instance keys the bundle carries (said in a note)."""
    with Bundle(path) as bundle:
        keys = trusted or bundle.instance_keys()
        report = checkpoints.verify_record(bundle.entries(), bundle.checkpoints(), location=f"the bundle {path.name}", trusted=keys)
        if not trusted and report.log.newest is not None:
            report.notes.append(
                f"checked with the instance key the bundle carries ({', '.join(report.trusted)}): compare it with the "
                "one you were given, or pass --trusted-keys"
            )
    return report
