"""Safe, unique names for transcripts: a title can never escape OUT, collide with another, exceed the file
system's name limit, or take the name of one of the tool's own files."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from .layout import TOOL_NAMES, TOOL_PREFIX

MAX_NAME_LENGTH = 80
"""Characters kept of a title: enough to recognise it in a file browser."""

MAX_NAME_BYTES = 200
"""UTF-8 bytes kept of a title. Most file systems allow 255 bytes per name; 200 leaves room for a ` (12)` suffix
and an extension such as `.json` (80 emoji are 320 bytes and would fail with "File name too long")."""

_RESERVED = {"", ".", "..", "con", "prn", "aux", "nul"} | TOOL_NAMES


def cut_bytes(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` UTF-8 bytes, cut on a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def is_reserved(name: str) -> bool:
    """True for names a transcript must never take (the tool's own files and folders, `..`, device names)."""
    lowered = name.lower()
    return lowered in _RESERVED or lowered.startswith(TOOL_PREFIX)


def clean(title: str) -> str:
    """The sanitised form of `title` (no uniqueness): separators, control characters and shell-hostile
    punctuation removed, at most MAX_NAME_LENGTH characters and MAX_NAME_BYTES bytes; a reserved result becomes
    `video`."""
    text = unicodedata.normalize("NFKC", title)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = re.sub(r'[\\/:*?"<>|\x00]+', " ", text)
    # Dots and spaces go from both ends together (".. .. x" must become "x", not ".. x"): a name never starts
    # hidden or ends in a way some file systems drop, and cleaning a clean name changes nothing.
    text = re.sub(r"\s+", " ", text).strip(" .")
    text = cut_bytes(text[:MAX_NAME_LENGTH], MAX_NAME_BYTES).rstrip(" .")
    if is_reserved(text):
        text = "video"
    return text


def is_safe(name: str) -> bool:
    """True when `name` is already a clean, unreserved name (a folder stored by an older version may not be)."""
    base = re.sub(r" \(\d+\)$", "", name)
    return bool(name) and clean(base) == base and not is_reserved(name) \
        and len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES + 12


def safe_name(title: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A file-system-safe version of `title`, unique against `taken` (compared case-insensitively).

    Path separators, `..`, control characters and shell-hostile punctuation are removed; an empty or reserved
    result becomes `video`; collisions get ` (2)`, ` (3)` ...
    """
    text = clean(title)
    lowered = {t.lower() for t in taken}
    candidate, n = text, 1
    while candidate.lower() in lowered:
        n += 1
        candidate = f"{text} ({n})"
    return candidate


def numbered(path: str, n: int) -> str:
    """`a/t.txt` as the n-th file of its name: `a/t (n).txt` for n > 1, as folder names take ` (2)`."""
    if n <= 1:
        return path
    pure = PurePosixPath(path)
    return pure.with_name(f"{pure.stem} ({n}){pure.suffix}").as_posix()
