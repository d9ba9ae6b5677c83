"""render: turn an exported commit into a ready-to-run bundle (cached per commit).

`render_bundle()` has the environment's target kind (`driftgate.targets`)
render the commit into a staging directory, then moves it into place under
``$DRIFTGATE_HOME/renders``, keyed by (commit, subpath, render and target
settings), so an unchanged commit is rendered once. What a bundle holds is the
target's: an Ansible project (`driftgate.targets.ansible`), rendered manifests
(`driftgate.targets.kubernetes`). Called by `driftgate.targets.render` (the
render task and the CLI).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from driftgate import home, targets
from driftgate.config import Environment
from driftgate.hashing import canonical_hash
from driftgate.models import Bundle, Checkout

MARKER = ".driftgate-bundle.json"


def render_bundle(env: Environment, checkout: Checkout, *, identities: tuple[str, ...] = ()) -> Bundle:
    """Build (or reuse) the bundle for ``env`` at ``checkout.commit``; ``identities``
    decrypt a Kubernetes environment's age-encrypted files."""
    _forget_plaintext_caches()
    key = _cache_key(env, checkout)
    final = home.subdir("renders") / f"{checkout.commit[:12]}-{key}"
    marker = final / MARKER
    if marker.is_file():
        return Bundle.model_validate({**json.loads(marker.read_text()), "cached": True})

    staging = Path(tempfile.mkdtemp(prefix="render-", dir=final.parent))
    try:
        target = targets.target_for(env)
        bundle = target.render(env, checkout, staging, final, identities=identities)
        bundle = bundle.model_copy(update={"target_kind": target.kind})
        (staging / MARKER).write_text(bundle.model_dump_json())
        try:
            staging.rename(final)
        except OSError:  # another run rendered the same commit first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
        return bundle
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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


def _cache_key(env: Environment, checkout: Checkout) -> str:
    # (commit, subpath) as the issue asks, plus the settings that change the output:
    # the same commit rendered with other values is another bundle.
    inputs = {
        "commit": checkout.commit,
        "path": checkout.path,
        "render": env.render.model_dump(mode="json", exclude={"timeout"}),
        "target": env.target.model_dump(mode="json", exclude={"timeout", "ssh"}),
        "python": sys.executable,
    }
    # json.dumps' default separators: the spelling the cache was first keyed with.
    return canonical_hash(inputs, separators=(", ", ": "))[:20]
