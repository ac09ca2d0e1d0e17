"""`-a/--batch-file FILE`, as yt-dlp reads it: one input per line, `-` for stdin, read once and up front.

Reading every list before anything starts is what lets `-a -`, `-a /dev/stdin` and `-a <(grep … urls.txt)` work:
a pipe or FIFO can be read only once, and `Path.is_file()` is False for them.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterable, Sequence

COMMENT_PREFIXES = ("#", ";", "]")
"""yt-dlp's batch-file comment markers."""


def parse_lines(raw_lines: Iterable[bytes]) -> list[str]:
    """Inputs from a list's lines: stripped, blank and comment lines dropped; a UTF-8 BOM dropped; a stray
    non-UTF-8 byte becomes U+FFFD in its own line only."""
    lines = []
    for number, raw in enumerate(raw_lines):
        text = raw.decode("utf-8", errors="replace")
        if number == 0:
            text = text.lstrip("\ufeff")
        text = text.strip()
        if text and not text.startswith(COMMENT_PREFIXES):
            lines.append(text)
    return lines


def read_batch_files(paths: Sequence[str], stdin: BinaryIO) -> list[str]:
    """Every input listed in `paths`, in order. Raises ValueError with a plain message for a list that cannot be
    read (missing, a folder, no permission); `-` reads `stdin` (once, however often it is named)."""
    inputs: list[str] = []
    stdin_read = False
    for path in paths:
        if path == "-":
            if not stdin_read:
                inputs.extend(parse_lines(stdin))
                stdin_read = True
            continue
        expanded = os.path.expanduser(path)
        try:
            with open(expanded, "rb") as handle:
                inputs.extend(parse_lines(handle))
        except FileNotFoundError:
            raise ValueError(f"batch file not found: {path}") from None
        except IsADirectoryError:
            raise ValueError(f"batch file is a folder: {path} (give the folder itself as an INPUT)") from None
        except OSError as exc:
            raise ValueError(f"cannot read batch file {path}: {exc.strerror or exc}") from None
    return inputs
