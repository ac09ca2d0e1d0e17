"""Input lists, read one way everywhere (`-a/--batch-file`, a list in the dashboard, a list given as an input):
one input per line as yt-dlp reads its batch files, `-` for stdin, read once and up front.

Reading every list before anything starts is what lets `-a -`, `-a /dev/stdin` and `-a <(grep … urls.txt)` work:
a pipe or FIFO can be read only once, and `Path.is_file()` is False for them.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterable, Sequence

COMMENT_PREFIXES = ("#", ";", "]")
"""yt-dlp's batch-file comment markers."""


def input_line(text: str) -> str | None:
    """One list line as an input: stripped; None for a blank line or a comment."""
    text = text.strip()
    return text if text and not text.startswith(COMMENT_PREFIXES) else None


def parse_lines(raw_lines: Iterable[bytes]) -> list[str]:
    """Inputs from a list's lines: stripped, blank and comment lines dropped; a UTF-8 BOM dropped; a stray
    non-UTF-8 byte becomes U+FFFD in its own line only."""
    lines = []
    for number, raw in enumerate(raw_lines):
        text = raw.decode("utf-8", errors="replace")
        line = input_line(text.lstrip("\ufeff") if number == 0 else text)
        if line is not None:
            lines.append(line)
    return lines


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """(line number from 1, input) for each input in text already decoded (what the dashboard's boxes and
    uploaded lists hold), by the same rule."""
    numbered = [(number, input_line(raw)) for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1)]
    return [(number, line) for number, line in numbered if line is not None]


def read_list_file(path: str | os.PathLike[str]) -> list[str]:
    """The inputs listed in one file (parse_lines); OSError as open() raises it."""
    with open(path, "rb") as handle:
        return parse_lines(handle)


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
        try:
            inputs.extend(read_list_file(os.path.expanduser(path)))
        except FileNotFoundError:
            raise ValueError(f"batch file not found: {path}") from None
        except IsADirectoryError:
            raise ValueError(f"batch file is a folder: {path} (give the folder itself as an INPUT)") from None
        except OSError as exc:
            raise ValueError(f"cannot read batch file {path}: {exc.strerror or exc}") from None
    return inputs
