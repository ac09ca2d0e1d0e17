"""Safe, unique folder names for transcripts: a title can never escape OUT or collide with another."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 80
_RESERVED = {"", ".", "..", "audio", "con", "prn", "aux", "nul"}


def safe_name(title: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A file-system-safe version of `title`, unique against `taken` (compared case-insensitively).

    Path separators, `..`, control characters and shell-hostile punctuation are removed; an empty or reserved
    result becomes `video`; collisions get ` (2)`, ` (3)` ...
    """
    text = unicodedata.normalize("NFKC", title)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = re.sub(r'[\\/:*?"<>|\x00]+', " ", text)
    text = re.sub(r"\s+", " ", text).strip().strip(".").strip()
    text = text[:MAX_NAME_LENGTH].rstrip(" .")
    if text.lower() in _RESERVED:
        text = "video"
    lowered = {t.lower() for t in taken}
    candidate, n = text, 1
    while candidate.lower() in lowered:
        n += 1
        candidate = f"{text} ({n})"
    return candidate
