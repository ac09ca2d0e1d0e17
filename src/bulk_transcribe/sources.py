"""Inputs -> VideoItems: URLs (expanded with yt-dlp, nothing downloaded), local files and folders, input lists.

Every input yields items, never an exception for the whole batch: one that cannot be resolved becomes a VideoItem
with `error` set to a one-line reason, which the run records as failed and never schedules.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import yt_dlp

from . import errors
from .audio import audio_duration, probe_media  # probe_media: re-exported for callers of sources
from .config import AUDIO_DIR_NAME, MEDIA_EXTENSIONS, WORK_DIR_NAME, DownloadOptions
from .download import (
    classify_error,
    clean_url,
    direct_media_meta,
    direct_media_title,
    guard_failure,
    is_direct_media_url,
    listing_params,
    private_cookie_copy,
    transfer_guard,
    url_problem,
    ytdlp_params,
)
from .guard import DeadlineExceeded, GuardedYDL
from .redact import redact_text
from .models import SourceKind, VideoItem

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DOMAIN_LIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(/|$)")
ABANDON_GRACE_S = 2.0
"""How long past its deadline an input's resolution may take to stop by itself before it is left behind."""


@dataclass
class ResolvedInputs:
    items: list[VideoItem] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    """Sources (URLs, absolute paths) given more than once, each listed once; only the first copy is kept."""
    credentials: dict[str, str] = field(default_factory=dict)
    """Redacted URL -> the real one, for URLs given with user:password (items carry only the redacted form)."""


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
    out_dir: str | os.PathLike[str] | None = None,
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
        out = Path(out_dir).resolve() if out_dir is not None else None
        for item in _expand(_all_inputs(inputs, input_files), resolver, out):
            item = _redacted(_contain_undecodable_name(item), result.credentials)
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


def _expand(
    inputs: Iterable[str | VideoItem], resolver: "_UrlResolver", out_dir: Path | None = None
) -> Iterator[VideoItem]:
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
        yield from _local(text, out_dir)


def _local(text: str, out_dir: Path | None = None) -> Iterator[VideoItem]:
    path = Path(text).expanduser()
    try:
        info = os.stat(path)
    except OSError as exc:
        yield _unreachable(path, text, exc)
        return
    shown = path.absolute()
    if out_dir is not None and any(_inside(path.resolve(), d) for d in _working_dirs(out_dir)):
        yield _failed(str(shown), SourceKind.FILE, text,
                      f"one of the tool's own working files in {out_dir} (never an input): {shown}")
        return
    if stat.S_ISDIR(info.st_mode):
        yield from _folder(path, text, out_dir)
    elif stat.S_ISREG(info.st_mode):
        yield _file_item(path, text)
    else:
        yield _failed(str(shown), SourceKind.FILE, text, f"not a regular file ({_file_type(info.st_mode)}): {shown}")


def _unreachable(path: Path, text: str, exc: OSError) -> VideoItem:
    """The reason a path given as input cannot even be looked at, named (not all of them are "not found")."""
    shown = path.absolute()
    if exc.errno == errno.ELOOP:
        return _failed(str(shown), SourceKind.FILE, text, f"symbolic link loop: {shown}")
    if exc.errno == errno.EACCES:
        return _failed(str(shown), SourceKind.FILE, text, f"cannot read {shown}: permission denied (a folder on "
                                                          "the way cannot be searched)")
    if exc.errno not in (errno.ENOENT, errno.ENOTDIR):  # e.g. a name too long for the file system
        return _failed(text, SourceKind.FILE, text, f"cannot read {text}: {exc.strerror or exc}")
    if os.path.islink(path):
        return _failed(str(shown), SourceKind.FILE, text,
                       f"broken symbolic link: {shown} -> {os.readlink(path)} (not found)")
    looks_like_path = (
        os.sep in text or text.startswith((".", "~")) or path.suffix.lower() in MEDIA_EXTENSIONS
    ) and not _DOMAIN_LIKE.match(text)
    if looks_like_path:
        # read_input_file turns bytes that are not UTF-8 into U+FFFD: say so, or "not found" would puzzle.
        hint = " (the input list has bytes here that are not UTF-8; save it as UTF-8)" if "\ufffd" in text else ""
        return _failed(str(shown), SourceKind.FILE, text, f"file not found: {shown}{hint}")
    if _DOMAIN_LIKE.match(text) and " " not in text:
        return _failed(text, SourceKind.URL, text, f"not a URL or file (URLs need http:// or https://): {text}")
    return _failed(text, SourceKind.FILE, text, f"not a URL or file: {text}")


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
        return _failed(str(resolved), SourceKind.FILE, text, f"cannot read {resolved}: {reason}")
    return VideoItem(str(resolved), SourceKind.FILE, text, title=path.stem, duration_s=audio_duration(resolved))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _working_dirs(out_dir: Path) -> tuple[Path, Path]:
    """Where a run keeps media of its own: partial downloads and kept audio."""
    return out_dir / WORK_DIR_NAME, out_dir / AUDIO_DIR_NAME


def _folder(folder: Path, text: str, out_dir: Path | None = None) -> Iterator[VideoItem]:
    """Media files under `folder`, recursively, sorted; symlinked folders are not followed (as Path.rglob).

    A subfolder that cannot be listed fails alone as its own row. The run's own files are never searched: the
    whole output folder when it lies inside `folder`, else (OUT is `folder` or above it) its working folders."""
    root = folder.resolve()
    found: list[tuple[Path, VideoItem]] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or root)
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        found.append((where, _failed(str(where), SourceKind.FILE, text, f"cannot read folder {where}: {reason}")))

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
        yield _failed(str(root), SourceKind.FILE, text, f"no media files in folder: {root}")
        return
    for _, item in sorted(found, key=lambda pair: pair[0]):
        yield item


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


def _redacted(item: VideoItem, credentials: dict[str, str]) -> VideoItem:
    """The item as it may be shown and stored: any password in its URL, input, title or error masked (its id is
    then the hash of the masked URL, stable across reruns). The real netloc is remembered for the download."""
    fields = (item.source, item.input, item.title, item.error or "")
    masked = tuple(redact_text(text) for text in fields)
    if masked == fields:
        return item
    source, text, title, error = masked
    if item.kind == SourceKind.URL and source != item.source:
        credentials.setdefault(source, item.source)  # the first copy is the one kept (duplicates are dropped)
    return VideoItem(source, item.kind, text, title=title, duration_s=item.duration_s, error=error or None,
                     meta=item.meta)


def _readable(text: str) -> str:
    """The original bytes with the non-UTF-8 ones shown as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _failed(source: str, kind: SourceKind, text: str, reason: str) -> VideoItem:
    return VideoItem(source, kind, text, error=errors.one_line(reason))


class _UrlResolver:
    """One quiet YoutubeDL reused for every URL of a batch (building one per URL costs more than most lookups).

    Each input gets `resolve_timeout_s`. The transfer guard enforces it on every page being read; a request stuck
    where no guard reaches (a connect, response headers arriving a byte at a time) is left behind on its thread
    with its YoutubeDL, and the next input gets a fresh one: that input fails, the batch goes on."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self._ydl: yt_dlp.YoutubeDL | None = None
        self._guard = transfer_guard(options)
        self._options: DownloadOptions | None = None
        self._cookie_copy: str | None = None

    def _client(self) -> yt_dlp.YoutubeDL:
        if self._options is None:
            import tempfile

            options = self.options
            if options.cookies_file:
                options = private_cookie_copy(options, Path(tempfile.mkdtemp(prefix="bt-cookies-")))
                self._cookie_copy = options.cookies_file
            self._options = options
        if self._ydl is None:
            # Every page is capped in bytes and watched for stalls; `resolve` sets a deadline per input.
            self._guard = transfer_guard(self.options)
            self._ydl = GuardedYDL(ytdlp_params(
                self._options,
                extract_flat="in_playlist",  # list entries without visiting each one
                format="bestaudio/best",
                simulate=True,
                skip_download=True,
                lazy_playlist=False,
                **listing_params(self._options),
            ), self._guard)
        return self._ydl

    def close(self) -> None:
        if self._ydl is not None:
            self._ydl.close()
            self._ydl = None
        if self._cookie_copy:
            import shutil

            shutil.rmtree(Path(self._cookie_copy).parent, ignore_errors=True)

    def resolve(self, text: str) -> list[VideoItem]:
        problem = url_problem(text.strip())
        if problem:
            return [_failed(text.strip(), SourceKind.URL, text, f"malformed URL ({problem}): {text.strip()}")]
        url = clean_url(text)
        if is_direct_media_url(url):
            return [VideoItem(url, SourceKind.URL, text, title=direct_media_title(url), meta=direct_media_meta(url))]
        try:
            client = self._client()
        except errors.VideoError as exc:  # e.g. the cookies file is missing
            return [_failed(url, SourceKind.URL, text, exc.reason)]
        timeout = self.options.resolve_timeout_s
        try:
            info = self._extract(client, url, timeout)
        except Exception as exc:  # yt-dlp wraps every failure in its DownloadError; the guard's stop it
            failure = (guard_failure(exc, url, resolving=True, timeout_s=timeout)
                       or classify_error(exc, url, self.options.socket_timeout_s))
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

    def _extract(self, client: yt_dlp.YoutubeDL, url: str, timeout: float) -> Any:
        if timeout <= 0:
            return client.extract_info(url, download=False)
        guard = self._guard
        guard.deadline = time.monotonic() + timeout
        done = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["info"] = client.extract_info(url, download=False)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="bt-resolve", daemon=True).start()
        # An Event, not Thread.join: a Ctrl-C during join can leave a thread marked stopped on Python 3.11.
        if not done.wait(timeout + ABANDON_GRACE_S):
            guard.should_cancel = lambda: True  # whatever that thread reads later stops at once
            self._ydl = None  # not closed: its thread still uses it
            raise DeadlineExceeded()
        guard.deadline = None
        if "error" in box:
            raise box["error"]
        return box.get("info")


def _items_from_info(info: dict[str, Any], url: str, text: str,
                     matches: Callable[[dict[str, Any]], bool] = lambda entry: True) -> list[VideoItem]:
    entries = info.get("entries")
    if entries is None:
        return [VideoItem(url, SourceKind.URL, text, title=_title(info), duration_s=_duration(info),
                          meta=video_meta(info), error=live_problem(info))]
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
                               meta=meta, error=live_problem(entry)))
    if not items:
        return [_failed(url, SourceKind.URL, text, f"playlist is empty: {url}")]
    return items


LIVE_REASONS = {
    "is_live": "live stream: not transcribed (it has no end; transcribe its recording once the stream is over)",
    "is_upcoming": "premiere or scheduled stream not yet available: not transcribed (try again once it has aired)",
    "post_live": "live stream just ended and its recording is not processed yet: try again later",
}
"""Why an entry a channel or page lists as live or upcoming is not downloaded: a live stream would download until
the size cap, an upcoming one has nothing to download yet."""


def live_problem(info: dict[str, Any]) -> str | None:
    """The reason an entry cannot be transcribed now, from yt-dlp's live_status (or is_live), or None."""
    status = info.get("live_status") or ("is_live" if info.get("is_live") else None)
    return LIVE_REASONS.get(status)


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


__all__ = ["ResolvedInputs", "probe_media", "read_input_file", "resolve_inputs"]
