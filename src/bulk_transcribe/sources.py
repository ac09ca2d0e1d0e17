"""Inputs -> VideoItems: URLs (expanded with yt-dlp, nothing downloaded), local files and folders, input lists.

Every input yields items, never an exception for the whole batch: one that cannot be resolved becomes a VideoItem
with `error` set to a one-line reason, which the run records as failed and never schedules.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import av
import yt_dlp

from . import errors
from .config import MEDIA_EXTENSIONS, DownloadOptions
from .download import (
    classify_error,
    clean_url,
    direct_media_meta,
    direct_media_title,
    is_direct_media_url,
    listing_params,
    private_cookie_copy,
    ytdlp_params,
)
from .models import SourceKind, VideoItem

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DOMAIN_LIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(/|$)")
PROBE_DECODE_PACKETS = 50
"""Audio packets decoded by `probe_media` to prove the audio is decodable (a second or so, not the whole file)."""


@dataclass
class ResolvedInputs:
    items: list[VideoItem] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    """Sources (URLs, absolute paths) given more than once, each listed once; only the first copy is kept."""


# --------------------------------------------------------------------------------------------- input lists


def read_input_file(path: str | os.PathLike[str]) -> list[str]:
    """One input per line; blank lines and lines starting with `#` are skipped; whitespace is stripped.

    Read line by line (huge lists are fine) and decoded leniently: a stray non-UTF-8 byte turns into U+FFFD in that
    line only, instead of failing the whole list. A UTF-8 BOM (Windows editors) is dropped.
    """
    lines: list[str] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            text = raw.decode("utf-8", errors="replace")
            if number == 0:
                text = text.lstrip("\ufeff")
            text = text.strip()
            if text and not text.startswith("#"):
                lines.append(text)
    return lines


# --------------------------------------------------------------------------------------------- resolution


def resolve_inputs(
    inputs: Sequence[str],
    input_files: Sequence[str | os.PathLike[str]] = (),
    *,
    options: DownloadOptions = DownloadOptions(),
) -> ResolvedInputs:
    """Turn a mix of URLs, files, folders and input lists into de-duplicated VideoItems, in the order given.

    URLs go through yt-dlp without downloading (playlists, channels, RSS feeds and pages with <video> tags expand
    to their entries, with title and duration where the site gives them); a direct link to a media file skips
    that round trip, since yt-dlp would only confirm it. Folders are searched recursively for MEDIA_EXTENSIONS.
    """
    resolver = _UrlResolver(options)
    result = ResolvedInputs()
    seen: set[str] = set()
    reported: set[str] = set()
    try:
        for item in _expand(_all_inputs(inputs, input_files), resolver):
            item = _contain_undecodable_name(item)
            if item.source in seen:
                if item.source not in reported:
                    reported.add(item.source)
                    result.duplicates.append(item.source)
                continue
            seen.add(item.source)
            result.items.append(item)
    finally:
        resolver.close()
    return result


def _all_inputs(
    inputs: Sequence[str], input_files: Sequence[str | os.PathLike[str]]
) -> Iterator[str | VideoItem]:
    for text in inputs:
        yield text
    for list_path in input_files:
        path = Path(list_path).expanduser()
        try:
            lines = read_input_file(path)
        except FileNotFoundError:
            yield _failed(str(path.absolute()), SourceKind.FILE, str(list_path), f"input list not found: {path}")
            continue
        except OSError as exc:
            yield _failed(str(path.absolute()), SourceKind.FILE, str(list_path),
                          f"cannot read input list {path}: {exc.strerror or exc}")
            continue
        yield from lines


def _expand(inputs: Iterable[str | VideoItem], resolver: "_UrlResolver") -> Iterator[VideoItem]:
    for entry in inputs:
        if isinstance(entry, VideoItem):
            yield entry
            continue
        text = entry.strip()
        if not text:
            continue
        scheme = _SCHEME.match(text)
        if scheme:
            if scheme.group(1).lower() in ("http", "https"):
                yield from resolver.resolve(text)
            else:
                yield _failed(text, SourceKind.URL, text,
                              f"unsupported URL scheme {scheme.group(1).lower()}:// (use http or https): {text}")
            continue
        yield from _local(text)


def _local(text: str) -> Iterator[VideoItem]:
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            yield from _folder(path, text)
            return
        if path.is_file():
            resolved = path.resolve()
            yield VideoItem(str(resolved), SourceKind.FILE, text, title=path.stem,
                            duration_s=container_duration(resolved))
            return
    except OSError as exc:  # e.g. a name too long for the file system
        yield _failed(text, SourceKind.FILE, text, f"cannot read {text}: {exc.strerror or exc}")
        return
    looks_like_path = (
        os.sep in text or text.startswith((".", "~")) or path.suffix.lower() in MEDIA_EXTENSIONS
    ) and not _DOMAIN_LIKE.match(text)
    if looks_like_path:
        # read_input_file turns bytes that are not UTF-8 into U+FFFD: say so, or "not found" would puzzle.
        hint = " (the input list has bytes here that are not UTF-8; save it as UTF-8)" if "\ufffd" in text else ""
        yield _failed(str(path.absolute()), SourceKind.FILE, text, f"file not found: {path.absolute()}{hint}")
    elif _DOMAIN_LIKE.match(text) and " " not in text:
        yield _failed(text, SourceKind.URL, text, f"not a URL or file (URLs need http:// or https://): {text}")
    else:
        yield _failed(text, SourceKind.FILE, text, f"not a URL or file: {text}")


def _folder(folder: Path, text: str) -> Iterator[VideoItem]:
    root = folder.resolve()
    found = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in MEDIA_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )
    if not found:
        yield _failed(str(root), SourceKind.FILE, text, f"no media files in folder: {root}")
        return
    for path in found:
        yield VideoItem(str(path), SourceKind.FILE, text, title=path.stem, duration_s=container_duration(path))


def _contain_undecodable_name(item: VideoItem) -> VideoItem:
    """A name with bytes that are not UTF-8 (an old Latin-1 file name, passed in by the OS as lone surrogates)
    cannot be stored in the session store or the manifest: it fails alone, named readably, instead of stopping
    the whole batch at registration."""
    try:
        for text in (item.source, item.input, item.title):
            text.encode("utf-8")
        return item
    except UnicodeEncodeError:
        source, text = _readable(item.source), _readable(item.input)
        return _failed(source, item.kind, text, f"name is not valid UTF-8 (rename it): {source}")


def _readable(text: str) -> str:
    """The original bytes with the non-UTF-8 ones shown as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _failed(source: str, kind: SourceKind, text: str, reason: str) -> VideoItem:
    return VideoItem(source, kind, text, error=reason)


class _UrlResolver:
    """One quiet YoutubeDL reused for every URL of a batch (building one per URL costs more than most lookups)."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self._ydl: yt_dlp.YoutubeDL | None = None
        self._cookie_copy: str | None = None

    def _client(self) -> yt_dlp.YoutubeDL:
        if self._ydl is None:
            import tempfile

            options = self.options
            if options.cookies_file:
                options = private_cookie_copy(options, Path(tempfile.mkdtemp(prefix="bt-cookies-")))
                self._cookie_copy = options.cookies_file
            self._ydl = yt_dlp.YoutubeDL(ytdlp_params(
                options,
                extract_flat="in_playlist",  # list entries without visiting each one
                format="bestaudio/best",
                simulate=True,
                skip_download=True,
                lazy_playlist=False,
                **listing_params(options),
            ))
        return self._ydl

    def close(self) -> None:
        if self._ydl is not None:
            self._ydl.close()
            self._ydl = None
        if self._cookie_copy:
            import shutil

            shutil.rmtree(Path(self._cookie_copy).parent, ignore_errors=True)

    def resolve(self, text: str) -> list[VideoItem]:
        url = clean_url(text)
        if is_direct_media_url(url):
            return [VideoItem(url, SourceKind.URL, text, title=direct_media_title(url), meta=direct_media_meta(url))]
        try:
            client = self._client()
        except errors.VideoError as exc:  # e.g. the cookies file is missing
            return [_failed(url, SourceKind.URL, text, exc.reason)]
        try:
            info = client.extract_info(url, download=False)
        except Exception as exc:  # yt-dlp wraps every failure in its DownloadError
            failure = classify_error(exc, url, self.options.socket_timeout_s)
            return [_failed(url, SourceKind.URL, text, failure.message)]
        if not info:
            return [_failed(url, SourceKind.URL, text, f"no media found: {url}")]
        items = _items_from_info(info, url, text, self._matches)
        chosen = self.options.playlist_items or self.options.match_filter
        if chosen and len(items) == 1 and (items[0].error or "").startswith("playlist is empty"):
            return [_failed(url, SourceKind.URL, text,
                            f"no entry matches --playlist-items/--match-filter: {url}")]
        return items

    def _matches(self, entry: dict[str, Any]) -> bool:
        """--match-filter on a listed entry: yt-dlp skips flat entries' filtering, so it is applied here too
        (fields an entry lacks pass, as yt-dlp's `incomplete` rule says)."""
        if not self.options.match_filter:
            return True
        from yt_dlp.utils import match_filter_func

        return match_filter_func(self.options.match_filter)(entry, incomplete=True) is None


def _items_from_info(info: dict[str, Any], url: str, text: str,
                     matches: Callable[[dict[str, Any]], bool] = lambda entry: True) -> list[VideoItem]:
    entries = info.get("entries")
    if entries is None:
        return [VideoItem(url, SourceKind.URL, text, title=_title(info), duration_s=_duration(info),
                          meta=video_meta(info))]
    items = []
    for index, entry in enumerate(entries, 1):
        if not entry:
            continue  # yt-dlp leaves None for entries it could not list (private, removed)
        if entry.get("entries") is not None:  # a playlist of playlists, already expanded by yt-dlp
            items.extend(_items_from_info(entry, url, text, matches))
            continue
        target = entry.get("url") or entry.get("webpage_url") or entry.get("original_url")
        if not target or not matches(entry):
            continue
        source = clean_url(target)
        meta = video_meta(entry, playlist=info, index=index)
        if "id" not in meta and is_direct_media_url(source):  # a feed's enclosure: the id yt-dlp would give it
            meta = {**meta, **direct_media_meta(source)}
        items.append(VideoItem(source, SourceKind.URL, text, title=_title(entry), duration_s=_duration(entry),
                               meta=meta))
    if not items:
        return [_failed(url, SourceKind.URL, text, f"playlist is empty: {url}")]
    return items


_META_KEYS = ("id", "extractor_key", "uploader", "upload_date", "playlist", "playlist_index")


def video_meta(info: dict[str, Any], playlist: dict[str, Any] | None = None, index: int | None = None) -> dict:
    """The fields output templates and the download archive use, as plain strings and numbers."""
    meta: dict[str, Any] = {}
    for key in _META_KEYS:
        value = info.get(key)
        if value not in (None, ""):
            meta[key] = value if isinstance(value, (int, float)) else " ".join(str(value).split())
    # Flat playlist entries name their extractor as ie_key (or not at all, when the playlist's extractor made them).
    extractor = info.get("extractor_key") or info.get("ie_key") or (playlist or {}).get("extractor_key")
    if extractor:
        meta["extractor_key"] = str(extractor)
    if playlist is not None:
        meta.setdefault("playlist", _title(playlist) or None)
        meta.setdefault("playlist_index", index)
        if playlist.get("uploader") and "uploader" not in meta:
            meta["uploader"] = " ".join(str(playlist["uploader"]).split())
    return {k: v for k, v in meta.items() if v is not None}


def _title(info: dict[str, Any]) -> str:
    title = info.get("title") or info.get("fulltitle") or ""
    return " ".join(str(title).split())


def _duration(info: dict[str, Any]) -> float | None:
    value = info.get("duration")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


# --------------------------------------------------------------------------------------------- probing


def container_duration(path: Path) -> float | None:
    """The duration a local file's header declares, without decoding (a few ms): lets the table and the
    longest-first scheduler know local files' lengths before any work starts. None when it cannot tell;
    probe_media still validates the file before transcription."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return _declared_duration(container, container.streams.audio[0])
    except (av.FFmpegError, OSError, UnicodeError, ValueError):
        return None


def probe_media(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in `path`, read from the container (or counted by decoding when it has none).

    A few packets are always decoded, so a file that opens but cannot produce audio is caught here, before a model
    spends time on it. Raises MediaError ("file is empty", "not a media file (...)", "no audio track",
    "cannot decode audio: ...") or InputError ("file not found: ...").
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise errors.InputError(f"file not found: {path}") from None
    if size == 0:
        raise errors.MediaError("file is empty")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise errors.MediaError(f"not a media file ({_av_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise errors.MediaError("no audio track")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        decoded_s, complete = _decode_seconds(
            container, stream, limit=None if declared is None else PROBE_DECODE_PACKETS
        )
        if decoded_s <= 0:
            raise errors.MediaError("cannot decode audio: no audio frames could be decoded")
        # Trust the container's length unless decoding already reached the end: then the samples counted are the
        # truth (a truncated mp3 keeps the full length in its header).
        return decoded_s if complete or declared is None else declared


def _declared_duration(container: av.container.InputContainer, stream: Any) -> float | None:
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
        if seconds > 0:
            return seconds
    return None


def _decode_seconds(container: Any, stream: Any, limit: int | None) -> tuple[float, bool]:
    """Decode up to `limit` packets (all when None); return (seconds decoded, reached the end)."""
    samples = 0.0
    packets = 0
    first_error: str | None = None
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    samples += frame.samples / (frame.sample_rate or stream.rate or 1)
            except av.FFmpegError as exc:
                # A damaged packet in the middle is tolerable (the decoder resyncs); a file of nothing else is not.
                first_error = first_error or _av_reason(exc)
            packets += 1
            if limit is not None and packets >= limit:
                return samples, False
    except av.FFmpegError as exc:
        first_error = first_error or _av_reason(exc)
        if samples <= 0:
            raise errors.MediaError(f"cannot decode audio: {first_error}") from None
        return samples, True  # a truncated tail: keep what decoded
    if samples <= 0 and first_error:
        raise errors.MediaError(f"cannot decode audio: {first_error}")
    return samples, True


def _av_reason(exc: Exception) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(reason).split()).rstrip(".") or type(exc).__name__


__all__ = ["ResolvedInputs", "probe_media", "read_input_file", "resolve_inputs"]
