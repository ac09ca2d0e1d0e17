"""`--download-archive FILE` in yt-dlp's format: one `<extractor> <id>` line per video already done.

Videos listed are skipped before the run; each video that finishes is appended. The ids are yt-dlp's own (the
site's extractor in lower case and the site's video id; `generic <name>` for direct links), so one archive file can
be shared by yt-dlp and bulk-transcribe. Local files have no such id and are never archived.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..models import SourceKind, VideoItem, VideoStatus


def archive_id(kind: SourceKind | str, meta: dict) -> str | None:
    """yt-dlp's `_make_archive_id`: `<extractor_key lower-cased> <id>`; None without both (local files)."""
    if SourceKind(kind) != SourceKind.URL:
        return None
    extractor, video = meta.get("extractor_key"), meta.get("id")
    if not extractor or video in (None, ""):
        return None
    return f"{str(extractor).lower()} {video}"


def read_archive(path: Path) -> set[str]:
    """The ids in the archive (a missing file is an empty archive); lines are stripped, as yt-dlp does."""
    try:
        with open(path, encoding="utf-8") as handle:
            return {line.strip() for line in handle if line.strip()}
    except FileNotFoundError:
        return set()


def split_archived(items: Sequence[VideoItem], archive: set[str]) -> tuple[list[VideoItem], list[VideoItem]]:
    """(items to run, items skipped because the archive lists them)."""
    keep, skipped = [], []
    for item in items:
        key = archive_id(item.kind, item.meta or {})
        (skipped if key is not None and key in archive and item.error is None else keep).append(item)
    return keep, skipped


def record_finished(path: Path, records: Sequence) -> int:
    """Append the ids of done `records` (VideoRecords) not yet in the archive; returns how many were added."""
    known = read_archive(path)
    new = []
    for record in records:
        if record.status != VideoStatus.DONE:
            continue
        key = archive_id(record.kind, record.meta or {})
        if key is not None and key not in known:
            known.add(key)
            new.append(key)
    if new:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(f"{key}\n" for key in new))
    return len(new)
