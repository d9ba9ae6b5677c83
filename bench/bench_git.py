"""How fast render's input comes out of Git: a tree of N small manifests.

    .venv/bin/python bench/bench_git.py [--files N]

Compares, in the same run, `driftgate.git.read_files` (one `git ls-tree`, one
`git cat-file --batch`: driftgate.gittree) with GitPython's object walk (what
driftgate used before) and with `git archive` of the same tree (the floor, which
driftgate does not use: it would apply the tree's .gitattributes). Not a test:
numbers go into the README's benchmark section.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import git

from driftgate.git import read_files
from driftgate.models import Checkout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="driftgate-bench-git-"))
    repo = git.Repo.init(root / "repo")
    (root / "repo/k8s").mkdir()
    for i in range(args.files):
        (root / f"repo/k8s/cm-{i:05d}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{a: '{i}'}}\n"
        )
    repo.git.add(A=True)
    commit = repo.index.commit("bench").hexsha
    checkout = Checkout(repo=str(root / "repo"), ref="main", commit=commit, path="k8s", git_dir=Path(repo.git_dir))

    def timed(what: str, fn) -> None:
        best = min(_seconds(fn) for _ in range(3))
        print(f"{what:<48} {best:6.2f} s")

    timed("driftgate read_files (ls-tree + cat-file --batch)", lambda: [f.read() for f in read_files(checkout)])
    timed("GitPython walk (before)", lambda: [b.data_stream.read() for b in repo.commit(commit).tree["k8s"].traverse() if b.type == "blob"])
    timed("git archive (floor)", lambda: subprocess.run(["git", "-C", str(root / "repo"), "archive", f"{commit}:k8s"], capture_output=True, check=True))


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
