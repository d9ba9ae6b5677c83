"""Keeping secrets out of everything a person or a disk can read.

A `Masker` knows the secret values of one run (block fields, tokens, keys)
and replaces them, wherever they appear, with ``***``; it also strips
credentials embedded in URLs. Engine modules pass every message, diff and
error through it before it leaves the engine. Used by git, ansible, the CLI
and the flow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(:[^/@\s]*)?@")
# ansible prints this for tasks with no_log: true; keep it recognisable.
NO_LOG_NOTICE = "the output has been hidden due to the fact that 'no_log: true' was specified"


class Masker:
    """Replaces known secret values (and URL credentials) in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if not secret:
                continue
            # Multi-line secrets (keys) are also matched line by line, because
            # tools re-wrap them; very short lines would mask too much.
            self._secrets.add(secret)
            self._secrets.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 8)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        masked = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            masked = masked.replace(secret, MASK)
        return masked
