"""The one syntax for a field's path in driftgate.yaml: ``target.ignore[].json_paths``
(fields a diff leaves out) and ``approval.rules[].path`` (fields a change touches).

`split_path()` turns either spelling into the field's keys:

    /spec/replicas                JSON Pointer (RFC 6901): ~1 is '/', ~0 is '~' in a key
    spec.replicas, .spec.replicas dotted
    $.spec.containers[0].image    JSONPath-like: '$' root, [N] or [*] for list items

so ``/metadata/annotations/example.com~1owner`` names a key holding dots
and slashes, which the dotted form cannot. ``*`` is one key of any name
where a pattern is matched (risk rules). Called by `driftgate.kubediff` and
`driftgate.policy`.
"""

from __future__ import annotations

import re

_INDEX = re.compile(r"\[(\d+|\*)\]")


def split_path(path: str) -> list[str]:
    """'$.spec.containers[0].image', '/spec/containers/0/image' -> ['spec', 'containers', '0', 'image']."""
    text = path.strip().removeprefix("$")
    if text.startswith("/"):
        return [key.replace("~1", "/").replace("~0", "~") for key in text.split("/") if key]
    return [key for key in _INDEX.sub(r".\1", text).split(".") if key]
