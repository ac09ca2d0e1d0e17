"""Output templates in yt-dlp's `-o` style: `%(title)s/transcript.%(ext)s` (the default), `%(uploader)s/%(title)s.%(ext)s`.

Fields: title, id, uploader, upload_date, playlist, playlist_index, ext; printf-style conversions as in yt-dlp
(`%(playlist_index)03d`); a field the site did not give becomes `NA`. Every path part is made safe as titles are
(no separators, control characters or tool names from a value; at most 255 bytes), literal parts may not climb
out of OUT, and `title` is the video's own unique folder name, so two videos never share a file.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from ..models import VideoItem
from ..naming import clean, cut_bytes, is_reserved

DEFAULT_TEMPLATE = "%(title)s/transcript.%(ext)s"
FIELDS = ("title", "id", "uploader", "upload_date", "playlist", "playlist_index", "ext")
MAX_PART_BYTES = 255
"""Per path part: the limit of ext4, XFS, btrfs, APFS and NTFS (in their units; bytes is the strictest)."""

_FIELD = re.compile(r"%\((?P<name>[^)]*)\)(?P<spec>[-#0 +]*\d*(?:\.\d+)?[sdfi])")


def check_template(template: str) -> None:
    """Raise ValueError naming what is wrong: unknown fields, no way to tell videos or formats apart, an
    absolute path, `..`, or a first folder named like one of the tool's own files."""
    names = [m.group("name") for m in _FIELD.finditer(template)]
    unknown = sorted({n for n in names if n not in FIELDS})
    if unknown:
        raise ValueError(f"unknown output template field(s): {', '.join(unknown)}; use {', '.join(FIELDS)}")
    if "title" not in names and "id" not in names:
        raise ValueError("the output template needs %(title)s or %(id)s, or every video would write the same file")
    parts = template.split("/")
    if "ext" not in [m.group("name") for m in _FIELD.finditer(parts[-1])]:
        raise ValueError("the output template's file name needs %(ext)s, or every format would write the same file")
    if template.startswith(("/", "~")) or "\\" in template:
        raise ValueError("the output template must be a relative path inside the output folder (no /, ~ or \\)")
    for part in parts:
        if not part.strip() or part.startswith("."):
            raise ValueError(f"the output template has an empty or hidden ('.', '..', '.name') part: {template!r}")
    first_literal = _FIELD.sub("", parts[0])
    if len(parts) > 1 and _FIELD.search(parts[0]) is None and is_reserved(first_literal):
        raise ValueError(f"the output template's folder {parts[0]!r} is one of the tool's own files or folders")


def fields_for(item: VideoItem, folder: str, ext: str) -> dict[str, Any]:
    meta = item.meta or {}
    return {
        "title": folder,
        "id": meta.get("id") or item.video_id,
        "uploader": meta.get("uploader"),
        "upload_date": meta.get("upload_date"),
        "playlist": meta.get("playlist"),
        "playlist_index": meta.get("playlist_index"),
        "ext": ext,
    }


def _value(name: str, spec: str, fields: dict[str, Any]) -> str:
    value = fields.get(name)
    if value is None or value == "":
        return "NA"
    if spec[-1] in "dif":
        try:
            return ("%" + spec) % float(value) if spec[-1] == "f" else ("%" + spec) % int(value)
        except (TypeError, ValueError):
            spec = "s"
    text = ("%" + spec) % str(value)
    return text if name in ("title", "ext") else clean(cut_bytes(text, 100))


def render(template: str, item: VideoItem, folder: str, ext: str) -> str:
    """The output path for one format of one video, relative to OUT, as a POSIX string."""
    check_template(template)
    fields = fields_for(item, folder, ext)
    parts = []
    for part in template.split("/"):
        text = _FIELD.sub(lambda m: _value(m.group("name"), m.group("spec"), fields), part)
        text = text.replace("\x00", " ").strip()
        if len(text.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES:
            suffix = PurePosixPath(text).suffix if "ext" in part else ""
            text = cut_bytes(text[: len(text) - len(suffix)], MAX_PART_BYTES - len(suffix.encode())) + suffix
        parts.append(text.lstrip(".") or "video")
    if is_reserved(parts[0]):
        # e.g. `%(title)s.%(ext)s` for a video titled `manifest`: the video's id keeps the name its own.
        stem, suffix = (parts[0].rsplit(".", 1) + [""])[:2] if len(parts) == 1 else (parts[0], "")
        parts[0] = f"{stem} [{item.video_id}]" + (f".{suffix}" if suffix else "")
    return "/".join(parts)
