"""Reading subtitles back, to check what the writers wrote (test-only: the tool never reads srt or vtt)."""

from __future__ import annotations

import html
import re

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})"
_CUE_TIMES = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _parse_blocks(text: str, unescape: bool) -> list[tuple[float, float, str]]:
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        for i, line in enumerate(lines):
            match = _CUE_TIMES.match(line)
            if match:
                g = match.groups()
                body = "\n".join(lines[i + 1:]).strip()
                cues.append((_seconds(*g[:4]), _seconds(*g[4:]), html.unescape(body) if unescape else body))
                break
    return cues


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) per SubRip cue."""
    return _parse_blocks(text, unescape=False)


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) per WebVTT cue; raises ValueError when the WEBVTT header is missing."""
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise ValueError("not a WebVTT file: it must start with WEBVTT")
    return _parse_blocks(text, unescape=True)
