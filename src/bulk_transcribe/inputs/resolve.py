"""Resolving one URL with yt-dlp, nothing downloaded: a video page, or a playlist, channel or feed listed into its
entries (with title, duration and what output templates and the archive need). One YoutubeDL per resolving thread,
every page capped and watched (media/guard.py), every resolution bounded in time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import yt_dlp

from .. import errors
from ..config import DownloadOptions
from ..media.download import (
    Failure,
    cacheable_info,
    classify_error,
    guard_failure,
    listing_params,
    private_cookie_copy,
    transfer_guard,
    ytdlp_params,
)
from ..media.guard import DeadlineExceeded, GuardedYDL
from ..media.urls import (
    GENERIC_EXTRACTORS,
    WEB_SCHEMES,
    canonical_url,
    clean_url,
    direct_media_meta,
    direct_media_title,
    identity_of,
    is_direct_media_url,
    scheme_of,
    web_url_problem,
)
from ..models import SourceKind, VideoItem


ABANDON_GRACE_S = 2.0
"""How long past its deadline an input's resolution may take to stop by itself before it is left behind."""


def offline_items(text: str) -> list[VideoItem] | None:
    """Items for a URL line that needs no page request (a scheme other than http/https, a malformed URL, a direct
    media link), else None; a local path is not handled here either (None)."""
    if not scheme_of(text):
        return None
    problem = web_url_problem(text)
    if problem:
        return [VideoItem.failed(text.strip(), SourceKind.URL, text, problem)]
    url = clean_url(text)
    if is_direct_media_url(url):
        return [VideoItem(url, SourceKind.URL, text, title=direct_media_title(url), meta=direct_media_meta(url))]
    return None


class UrlResolver:
    """One quiet YoutubeDL reused for every URL one thread resolves (building one per URL costs more than most
    lookups; a YoutubeDL is not thread-safe, so each resolving thread has its own).

    Each input gets `resolve_timeout_s`. The transfer guard enforces it on every page being read; a request stuck
    where no guard reaches (a connect, response headers arriving a byte at a time) is left behind on its thread
    with its YoutubeDL, and the next input gets a fresh one: that input fails, the batch goes on. Setting `cancel`
    stops the resolution in flight the same way, at once."""

    def __init__(self, options: DownloadOptions, cancel: threading.Event | None = None) -> None:
        self.options = options
        self.cancel = cancel or threading.Event()
        self.failure: Failure | None = None
        """Why the last `resolve` failed, when yt-dlp said so (its status tells a 429 from a 404)."""
        self._ydl: yt_dlp.YoutubeDL | None = None
        self._guard = transfer_guard(options, should_cancel=self.cancel.is_set)
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
            self._guard = transfer_guard(self.options, should_cancel=self.cancel.is_set)
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

    def resolve(self, text: str, pace: tuple[Callable[[], None], Callable[[], None]] | None = None
                ) -> list[VideoItem]:
        """The input's items; `pace` (before, after) runs around its first request only: right before it is sent
        and once its response headers are in."""
        self.failure = None
        offline = offline_items(text)
        if offline is not None:
            return offline
        url = clean_url(text)
        try:
            client = self._client()
        except errors.VideoError as exc:  # e.g. the cookies file is missing
            return [VideoItem.failed(url, SourceKind.URL, text, exc.reason)]
        timeout = self.options.resolve_timeout_s
        before, after = pace or (None, None)
        self._guard.before_request = _once(before) if before else None
        self._guard.after_response = _once(after) if after else None
        try:
            info = self._extract(client, url, timeout)
        except Exception as exc:  # yt-dlp wraps every failure in its DownloadError; the guard's stop it
            failure = (guard_failure(exc, url, resolving=True, timeout_s=timeout)
                       or classify_error(exc, url, self.options.socket_timeout_s))
            self.failure = failure
            return [VideoItem.failed(url, SourceKind.URL, text, failure.message, retryable=failure.retryable)]
        if not info:
            return [VideoItem.failed(url, SourceKind.URL, text, f"no media found: {url}")]
        items = _items_from_info(info, url, text, self._matches)
        chosen = self.options.playlist_items or self.options.match_filter
        if chosen and len(items) == 1 and (items[0].error or "").startswith("playlist is empty"):
            return [VideoItem.failed(url, SourceKind.URL, text,
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
        guard = self._guard
        limit = time.monotonic() + timeout + ABANDON_GRACE_S if timeout > 0 else None
        guard.deadline = time.monotonic() + timeout if timeout > 0 else None
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
        # An Event, not Thread.join: a Ctrl-C during join can leave a thread marked stopped on Python 3.11. Woken
        # every tick so that a cancel leaves a request stuck where the guard cannot reach at once too.
        while not done.wait(0.1):
            cancelled = self.cancel.is_set()
            if cancelled or (limit is not None and time.monotonic() >= limit):
                guard.should_cancel = lambda: True  # whatever that thread reads later stops at once
                self._ydl = None  # not closed: its thread still uses it
                raise errors.Cancelled("resolution cancelled") if cancelled else DeadlineExceeded()
        guard.deadline = None
        if "error" in box:
            raise box["error"]
        return box.get("info")


def _items_from_info(info: dict[str, Any], url: str, text: str,
                     matches: Callable[[dict[str, Any]], bool] = lambda entry: True) -> list[VideoItem]:
    entries = info.get("entries")
    if entries is None:
        problem = live_problem(info)
        meta = video_meta(info)
        # The page was extracted in full: its download starts from this info instead of a second page request.
        return [VideoItem(url, SourceKind.URL, text, title=_title(info), duration_s=_duration(info), meta=meta,
                          error=problem, info=None if problem else cacheable_info(info),
                          identity=_page_identity(info, url, meta))]
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
        # A feed may list an ftp:// (or any other) enclosure: only http and https are ever requested.
        problem = web_url_problem(source) if scheme_of(source) else None
        items.append(VideoItem(source, SourceKind.URL, text, title=_title(entry), duration_s=_duration(entry),
                               meta=meta, error=problem or live_problem(entry)))
    if not items:
        return [VideoItem.failed(url, SourceKind.URL, text, f"playlist is empty: {url}")]
    return items


def _page_identity(info: dict[str, Any], url: str, meta: dict[str, Any]) -> str:
    """A page yt-dlp knows only generically (a <video> tag) is the media it plays: two pages embedding one file,
    or the file given directly, are one video. A known site's video is its own id."""
    formats = info.get("formats") or []
    media = info.get("url") or (formats[0].get("url") if len(formats) == 1 else None)
    if str(meta.get("extractor_key", "")).lower() in GENERIC_EXTRACTORS and media and scheme_of(media) in WEB_SCHEMES:
        return canonical_url(media)
    return identity_of(url, SourceKind.URL, meta)


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


def _once(action: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            action()

    return run
