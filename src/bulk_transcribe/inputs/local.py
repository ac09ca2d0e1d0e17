"""Local inputs: a file (opened once, so an unreadable one says so), a folder (searched recursively for media, the
run's own files never among them), and every reason a path given as input cannot be used, named."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterator

from .. import layout
from ..config import MEDIA_EXTENSIONS
from ..media.audio import audio_duration
from ..media.urls import looks_like_a_domain, not_a_url_or_file
from ..models import SourceKind, VideoItem


def local_items(text: str, out_dir: Path | None = None) -> Iterator[VideoItem]:
    """The videos a local path stands for: the file, a folder's media files, or one failed row saying why not."""
    path = Path(text).expanduser()
    try:
        info = os.stat(path)
    except OSError as exc:
        yield _unreachable(path, text, exc)
        return
    shown = path.absolute()
    if out_dir is not None and any(_inside(path.resolve(), d) for d in _working_dirs(out_dir)):
        yield VideoItem.failed(str(shown), SourceKind.FILE, text,
                      f"one of the tool's own working files in {out_dir} (never an input): {shown}")
        return
    if stat.S_ISDIR(info.st_mode):
        yield from _folder(path, text, out_dir)
    elif stat.S_ISREG(info.st_mode):
        yield _file_item(path, text)
    else:
        yield VideoItem.failed(str(shown), SourceKind.FILE, text, f"not a regular file ({_file_type(info.st_mode)}): {shown}")


def _unreachable(path: Path, text: str, exc: OSError) -> VideoItem:
    """The reason a path given as input cannot even be looked at, named (not all of them are "not found")."""
    shown = path.absolute()
    if exc.errno == errno.ELOOP:
        return VideoItem.failed(str(shown), SourceKind.FILE, text, f"symbolic link loop: {shown}")
    if exc.errno == errno.EACCES:
        return VideoItem.failed(str(shown), SourceKind.FILE, text, f"cannot read {shown}: permission denied (a folder on "
                                                          "the way cannot be searched)")
    if exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # e.g. a name too long for the file system
        return VideoItem.failed(text, SourceKind.FILE, text, f"cannot read {text}: {exc.strerror or exc}")
    if os.path.islink(path):
        return VideoItem.failed(str(shown), SourceKind.FILE, text,
                       f"broken symbolic link: {shown} -> {os.readlink(path)} (not found)")
    looks_like_path = (
        os.sep in text or text.startswith((".", "~")) or path.suffix.lower() in MEDIA_EXTENSIONS
    ) and not looks_like_a_domain(text)
    if looks_like_path:
        # read_input_file turns bytes that are not UTF-8 into U+FFFD: say so, or "not found" would puzzle.
        hint = " (the input list has bytes here that are not UTF-8; save it as UTF-8)" if "\ufffd" in text else ""
        return VideoItem.failed(str(shown), SourceKind.FILE, text, f"file not found: {shown}{hint}")
    kind = SourceKind.URL if looks_like_a_domain(text) else SourceKind.FILE
    return VideoItem.failed(text, kind, text, not_a_url_or_file(text))


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file or folder"


def _file_item(path: Path, text: str) -> VideoItem:
    """A regular file, opened once here so that an unreadable one fails as such (not as "not a media file")."""
    resolved = path.resolve()
    try:
        with open(resolved, "rb"):
            pass
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        return VideoItem.failed(str(resolved), SourceKind.FILE, text, f"cannot read {resolved}: {reason}")
    return VideoItem(str(resolved), SourceKind.FILE, text, title=path.stem, duration_s=audio_duration(resolved))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _working_dirs(out_dir: Path) -> tuple[Path, Path]:
    """Where a run keeps media of its own: partial downloads and kept audio."""
    return layout.work_dir(out_dir), layout.audio_dir(out_dir)


def _folder(folder: Path, text: str, out_dir: Path | None = None) -> Iterator[VideoItem]:
    """Media files under `folder`, recursively, sorted; symlinked folders are not followed (as Path.rglob).

    A subfolder that cannot be listed fails alone as its own row. The run's own files are never searched: the
    whole output folder when it lies inside `folder`, else (OUT is `folder` or above it) its working folders."""
    root = folder.resolve()
    found: list[tuple[Path, VideoItem]] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or root)
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        found.append((where, VideoItem.failed(str(where), SourceKind.FILE, text, f"cannot read folder {where}: {reason}")))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(dirpath)
        if out_dir is not None:
            skip = {out_dir, *_working_dirs(out_dir)}
            dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in filenames:
            path = here / name
            if path.suffix.lower() in MEDIA_EXTENSIONS and not name.startswith(".") and path.is_file():
                found.append((path, _file_item(path, text)))
    if not found:
        yield VideoItem.failed(str(root), SourceKind.FILE, text, f"no media files in folder: {root}")
        return
    for _, item in sorted(found, key=lambda pair: pair[0]):
        yield item
