"""Output templates in yt-dlp's `-o` style: `%(title)s/transcript.%(ext)s` (the default), `%(uploader)s/%(title)s.%(ext)s`.

Fields: title, id, uploader, upload_date, playlist, playlist_index, ext; printf-style conversions as in yt-dlp
(`%(playlist_index)03d`); a field the site did not give becomes `NA`. Every path part is made safe as titles are
(no separators, control characters or tool names from a value; at most 255 bytes), literal parts may not climb
out of OUT, and `title` is the video's own unique folder name, so two videos never share a file.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..models import VideoItem
from ..config import TEMPLATE_FIELD as _FIELD, check_template
from ..naming import clean, cut_bytes, is_reserved

MAX_PART_BYTES = 255
"""Per path part: the limit of ext4, XFS, btrfs, APFS and NTFS (in their units; bytes is the strictest)."""


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
