"""render: turn a commit into a ready-to-run bundle, kept while its input is unchanged.

`render_bundle()` has the environment's target kind (`driftgate.targets`)
render the commit into a staging directory, then moves it into place under
``$DRIFTGATE_HOME/renders``, keyed by what render reads — the Git tree of the
environment's path (or of the whole commit, for a kind that may read outside
it: `Target.render_reads`) — and the settings that change the output. So a
commit that touches nothing under the path (another tenant's directory of a
monorepo) reuses the bundle instead of rendering it again; the bundle handed
back names the commit the run asked for. What a bundle holds is the target's:
an Ansible project (`driftgate.targets.ansible`), rendered manifests
(`driftgate.targets.kubernetes`). Called by `driftgate.targets.render` (the
render task and the CLI).

Bundles not used for `KEEP_UNUSED` are deleted, swept when a render writes a
new one: a fleet with hundreds of commits a day would otherwise fill the disk.
A reused bundle's marker is touched, so "used" is the last run's time, not
the first render's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from driftgate import gittree, home, targets
from driftgate.config import Environment
from driftgate.hashing import canonical_hash
from driftgate.models import Bundle, Checkout

MARKER = ".driftgate-bundle.json"
# Long beyond any one run (a sync paused for approval renders again when answered),
# short enough that a month of commits is not kept.
KEEP_UNUSED = 7 * 24 * 3600  # seconds
# Raised when what a render writes changes for the same inputs, so bundles written
# before are rendered again (2: the inventory overlay names where local hosts' modules go).
BUNDLE_LAYOUT = 2


def render_bundle(env: Environment, checkout: Checkout, *, identities: tuple[str, ...] = ()) -> Bundle:
    """Build (or reuse) the bundle for ``env`` at ``checkout.commit``; ``identities``
    decrypt a Kubernetes environment's age-encrypted files."""
    _forget_plaintext_caches()
    target = targets.target_for(env)
    tree = input_tree(target, checkout)
    final = home.subdir("renders") / f"{tree[:12]}-{_cache_key(env, checkout, tree)}"
    marker = final / MARKER
    if marker.is_file():
        try:
            return _kept(marker, checkout)
        except OSError:  # swept by another process just now: render it again
            pass

    _delete_unused(final.parent)
    staging = Path(tempfile.mkdtemp(prefix="render-", dir=final.parent))
    try:
        bundle = target.render(env, checkout, staging, final, identities=identities)
        bundle = bundle.model_copy(update={"target_kind": target.kind})
        (staging / MARKER).write_text(bundle.model_dump_json())
        try:
            staging.rename(final)
        except OSError:  # another run rendered the same input first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
        return bundle
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def input_tree(target: targets.Target, checkout: Checkout) -> str:
    """The SHA of the Git tree the target's render reads at this commit: the
    environment's path, or the whole commit's root tree when the kind may read
    outside it. Same SHA, same files, same bundle."""
    path = checkout.path if target.render_reads == "path" else "."
    return gittree.tree_sha(checkout.git_dir, checkout.commit, path)


def _kept(marker: Path, checkout: Checkout) -> Bundle:
    """A bundle rendered earlier from the same input, handed back for this run's
    commit: plans, the record, approvals and saved plans name the commit a run
    was asked for, not the one that first rendered these files. The marker on
    disk keeps the first commit; it is never rewritten, only touched (in use)."""
    with contextlib.suppress(OSError):  # first: a sweep that has not yet looked at it now keeps it
        os.utime(marker)
    bundle = Bundle.model_validate_json(marker.read_text())
    update: dict[str, object] = {"commit": checkout.commit, "cached": True}
    if bundle.checkout is not None:  # Kubernetes: where Secrets' values are rendered again from
        update["checkout"] = checkout
    return bundle.model_copy(update=update)


_swept = False


def _forget_plaintext_caches() -> None:
    """Once per process: delete what older driftgate versions left with Secret
    values in clear — exported checkouts, and Kubernetes bundles rendered before
    Secrets were kept off disk (their marker names no checkout)."""
    global _swept
    if _swept:
        return
    _swept = True
    shutil.rmtree(home.home() / "checkouts", ignore_errors=True)
    for marker in home.subdir("renders").glob(f"*/{MARKER}"):
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if old.get("target_kind") == "kubernetes" and not old.get("checkout"):
            shutil.rmtree(marker.parent, ignore_errors=True)


def _delete_unused(renders: Path) -> None:
    """Delete bundles not used for KEEP_UNUSED, and staging directories a killed
    render left (as old): whatever another process deletes first is skipped."""
    cutoff = time.time() - KEEP_UNUSED
    for entry in renders.iterdir():
        marker = entry / MARKER
        try:
            used = (marker if marker.exists() else entry).stat().st_mtime
        except OSError:
            continue
        if used < cutoff and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _cache_key(env: Environment, checkout: Checkout, tree: str) -> str:
    # The files render reads (their tree's SHA, not the commit's: a commit elsewhere
    # in the repository changes no bundle), and what else changes the output: the
    # path (a repository-wide tree says nothing of it), the environment's name
    # (labels, the templates' `environment`), the render and target settings.
    inputs = {
        "tree": tree,
        "path": checkout.path,
        "environment": env.name,
        "render": env.render.model_dump(mode="json", exclude={"timeout"}),
        "target": env.target.model_dump(mode="json", exclude={"timeout", "ssh"}),
        "python": sys.executable,
        "layout": BUNDLE_LAYOUT,
    }
    return canonical_hash(inputs)[:20]
