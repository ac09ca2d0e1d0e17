"""`--download-archive FILE` in yt-dlp's format: one `<extractor> <id>` line per video already done.

Videos listed are skipped (each still a row of its own, status skipped, so the table, `status` and the manifest
account for every input); each video that finishes is appended the moment it is delivered, so a stop at any point
loses nothing and yt-dlp sees it at once. The ids are yt-dlp's own (the site's extractor in lower case and the
site's video id; `generic <name>` for direct links), so one archive file can be shared by yt-dlp and
bulk-transcribe. Local files have no such id and are never archived.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..models import SourceKind

SKIPPED_NOTE = "already in the download archive"
"""Why an archived video is a skipped row."""


def archive_id(kind: SourceKind | str, meta: dict) -> str | None:
    """yt-dlp's `_make_archive_id`: `<extractor_key lower-cased> <id>`; None without both (local files)."""
    if SourceKind(kind) != SourceKind.URL:
        return None
    extractor, video = meta.get("extractor_key"), meta.get("id")
    if not extractor or video in (None, ""):
        return None
    return f"{str(extractor).lower()} {video}"


def read_archive(path: Path | str) -> set[str]:
    """The ids in the archive (a missing file is an empty archive); lines are stripped, as yt-dlp does. Raises
    ValueError naming the archive and what is wrong with it (a folder, bytes that are not UTF-8, unreadable)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    except IsADirectoryError:
        raise ValueError(f"the download archive {path} is a folder; give a file (it is created if missing)") from None
    except OSError as exc:
        raise ValueError(f"cannot read the download archive {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"the download archive {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                         f"{line}); yt-dlp writes it as UTF-8, so it was changed by something else") from None
    return {line.strip() for line in text.splitlines() if line.strip()}


class DownloadArchive:
    """One run's view of the archive file: the ids listed when it started, plus what it appends."""

    def __init__(self, path: Path | str, ids: set[str] | None = None) -> None:
        self.path = Path(path)
        self.ids = read_archive(self.path) if ids is None else set(ids)
        self.problem: str | None = None
        """Why the archive could not be appended to (disk full, permissions), once: the run goes on without it."""
        self._lock = threading.Lock()

    def lists(self, kind: SourceKind | str, meta: dict | None) -> bool:
        key = archive_id(kind, meta or {})
        return key is not None and key in self.ids

    def record(self, kind: SourceKind | str, meta: dict | None) -> bool:
        """Append a finished video (once; local files never); True when a line was written."""
        key = archive_id(kind, meta or {})
        with self._lock:
            if key is None or key in self.ids:
                return False
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a+b") as handle:
                    handle.seek(0, 2)
                    glue = b""
                    if handle.tell():  # a last line without its newline must not swallow the next entry
                        handle.seek(-1, 2)
                        glue = b"" if handle.read(1) == b"\n" else b"\n"
                    handle.write(glue + f"{key}\n".encode("utf-8"))
            except OSError as exc:
                self.problem = self.problem or f"cannot update the download archive {self.path}: {exc.strerror or exc}"
                return False
            self.ids.add(key)
            return True
