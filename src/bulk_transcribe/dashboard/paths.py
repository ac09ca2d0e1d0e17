"""Keep paths that come from a browser inside the folders the operator allowed.

A path is resolved (symlinks followed, `..` collapsed) before it is compared with the allowed roots, so neither
`../../etc/passwd` nor a symlink inside the media root that points elsewhere can reach outside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


class OutsideRootError(ValueError):
    """A path typed or uploaded in the page points outside every allowed folder."""


def confine(text: str | os.PathLike[str], roots: Sequence[Path], *, must_exist: bool = True,
            setting: str = "BULK_TRANSCRIBE_MEDIA_ROOT") -> Path:
    """Resolve a user-given path (relative ones against the first root) and make sure it lies in one of `roots`.

    Raises OutsideRootError when it escapes (naming `setting`, the environment variable that moves the root),
    FileNotFoundError when `must_exist` and nothing is there.
    """
    if not roots:
        raise ValueError("no allowed folders configured")
    raw = os.fspath(text)
    if "\x00" in raw:
        raise OutsideRootError("path contains a NUL byte")
    path = Path(raw)
    if not path.is_absolute():
        path = Path(roots[0]) / path
    resolved = path.resolve()
    if not any(_within(resolved, Path(root).resolve()) for root in roots):
        shown = ", ".join(str(r) for r in roots[:1])
        raise OutsideRootError(f"{raw} is outside the allowed folder {shown} (the server's operator can allow "
                               f"another with {setting})")
    if must_exist and not resolved.exists():
        raise FileNotFoundError(f"no such file or folder: {raw}")
    return resolved


def within(path: Path, root: Path) -> bool:
    """True when `path` (resolved) is `root` or lies below it."""
    return _within(Path(path).resolve(), Path(root).resolve())


def _within(resolved: Path, root: Path) -> bool:
    return resolved == root or root in resolved.parents
