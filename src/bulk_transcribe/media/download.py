"""Audio download with yt-dlp, politely: paced, bounded retries, Retry-After honoured, failures named in one line.

Only this module, `guard.py`, `urls.py` and `inputs/resolve.py` import yt_dlp. Audio is fetched as-is (`bestaudio/best`) with no
post-processors, so no ffmpeg binary is needed: PyAV (through faster-whisper) decodes whatever container arrives.
Every response goes through `guard.py` (low-speed guard, cancel that interrupts a waiting read, page byte cap).

yt-dlp's own retry loops are switched off (`retries=0` and friends) so that every request the server sees is one
this module decided to make: the retry count, the back-off and the Retry-After waits live here, where the parallel
engine can plug a cluster-wide rate limiter in (`before_download`, `on_rate_limited`).
"""

from __future__ import annotations

import copy
import email.utils
import http
import http.client
import re
import shutil
import socket
import time
import tempfile
import uuid
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError, UnsupportedRequest
from yt_dlp.utils import ContentTooShortError, ExtractorError, UnsupportedError

from .. import errors, layout
from ..config import DownloadOptions
from ..models import SourceKind, VideoItem
from ..redact import redact_text, reveal
from .urls import host_key, is_direct_media_url
from .guard import DeadlineExceeded, GuardedYDL, PageTooLarge, Refused, Stalled, TransferGuard

ProgressCallback = Callable[[int, "int | None", "float | None"], None]

AUDIO_FORMAT = "bestaudio/best"
"""Smallest useful download: an audio-only stream where the site has one, else the best combined file."""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TOO_LARGE = re.compile(r"larger than max-filesize \((\d+) bytes > (\d+) bytes\)")
_NO_ADAPTER = re.compile(r"No connection adapters were found for '([^']*)'")
_NOT_RETRIED = frozenset({400, 401, 403, 404, 405, 410, 451})

INFO_MAX_AGE_S = 1800.0
"""How long info extracted while resolving is used for the download. Signed media URLs expire (YouTube's after
about 6 h); past this the download extracts afresh, which costs one page request."""

_EXPIRED_STATUSES = frozenset({403, 404, 410})
"""What a media URL that expired answers: with info from resolution, one fresh extraction before giving up."""

_UNUSED_INFO_KEYS = ("automatic_captions", "subtitles", "thumbnails", "heatmap", "description", "comments")
"""Bulky parts of a video's info that a download of its audio never reads (a YouTube video's captions alone are
hundreds of KB); dropped from the copy an item carries."""


@dataclass
class FetchedAudio:
    """Audio on local disk, ready to decode. `temporary` files are deleted (or kept) by `release`.

    `download_s` is the wall time of the whole fetch, retries and Retry-After waits included (0 for local files).
    `duration_s` is the audio stream's length once the file has been probed (engine/pipeline.py does it right after
    the fetch, outside the model lock).
    """

    path: Path
    temporary: bool
    size_bytes: int
    download_s: float
    duration_s: float | None = None


@dataclass
class Failure:
    """What went wrong with one yt-dlp call, classified once so callers decide on retries without string tricks."""

    message: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    bad_input: bool = False
    """The input itself is wrong (unsupported URL, page without media): an InputError, never retried."""

    def __post_init__(self) -> None:
        # yt-dlp's own texts may quote the URL it was given, password included; a URL may be 100 KB long.
        self.message = errors.one_line(redact_text(self.message))

    def to_error(self) -> errors.VideoError:
        if self.bad_input:
            return errors.InputError(self.message)
        return errors.DownloadError(self.message, retryable=self.retryable)


# --------------------------------------------------------------------------------------------- yt-dlp plumbing


class _QuietLogger:
    """Swallows yt-dlp's chatter (its `quiet` still prints errors to stderr) but remembers it for diagnosis."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def _keep(self, msg: str) -> None:
        if len(self.messages) < 200:
            self.messages.append(_ANSI.sub("", str(msg)))

    debug = info = warning = error = _keep


def ytdlp_params(options: DownloadOptions, logger: _QuietLogger | None = None, **extra: Any) -> dict[str, Any]:
    """YoutubeDL params shared by resolution and download: silent, no ffmpeg, no hidden retries."""
    params: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": logger or _QuietLogger(),
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "socket_timeout": options.socket_timeout_s,
        # One request per attempt: this module owns retries, back-off and Retry-After.
        "retries": 0,
        "extractor_retries": 0,
        "fragment_retries": 0,
        "file_access_retries": 0,
        "fixup": "never",  # fixups run ffmpeg, which we neither need nor have
        "postprocessors": [],
        "cachedir": False,
        "noplaylist": False,
        "updatetime": False,
    }
    if options.cookies_file:
        params["cookiefile"] = options.cookies_file
    if options.cookies_from_browser:
        params["cookiesfrombrowser"] = tuple(options.cookies_from_browser)
    if options.sleep_requests_s:
        params["sleep_interval_requests"] = options.sleep_requests_s
    params.update(extra)
    return params


def transfer_guard(options: DownloadOptions, **extra: Any) -> TransferGuard:
    """The low-speed guard and page cap for one YoutubeDL. A user's own rate limit lowers the stall threshold to
    half of it, so downloads paced on purpose are never taken for stalled ones."""
    speed = float(options.stall_bytes_per_s)
    if speed > 0 and options.rate_limit:
        speed = min(speed, options.rate_limit / 2)
    return TransferGuard(stall_bytes_per_s=speed, stall_time_s=options.stall_time_s,
                         page_cap=options.max_page_bytes or None, **extra)


def page_too_large_message(exc: PageTooLarge, url: str) -> str:
    if exc.compressed:
        return (f"page refused: its {exc.compressed} body inflates past {human_size(exc.cap)} "
                f"(a decompression bomb?): {url}")
    return f"page too large: more than {human_size(exc.cap)}: {url}"


def guard_failure(exc: BaseException, url: str, *, resolving: bool, timeout_s: float = 0) -> Failure | None:
    """The guard's own exceptions as Failures (None for anything else)."""
    if isinstance(exc, Stalled):
        what = "resolution stalled" if resolving else "download stalled"
        return Failure(f"{what}: {exc.detail}: {url}", True)
    if isinstance(exc, PageTooLarge):
        return Failure(page_too_large_message(exc, url), False, bad_input=True)
    if isinstance(exc, DeadlineExceeded):
        return Failure(f"resolution timed out after {_seconds(timeout_s)} s: {url}", False)
    refused = next((e for e in _causes(exc) if isinstance(e, Refused)), None)  # yt-dlp may wrap it
    if refused is not None:
        return Failure(f"{refused.reason}: {url}", False, bad_input=True)
    return None
def cacheable_info(info: dict[str, Any]) -> dict[str, Any] | None:
    """What a VideoItem keeps of one video's extracted info so its download needs no second page request: plain
    data (yt-dlp's sanitize_info, as --load-info-json reads it back; picklable for Ray), and only the formats that
    resolution chose with the same AUDIO_FORMAT, so thousands of items stay small. None when it is no video."""
    if info.get("_type", "video") != "video" or not (info.get("formats") or info.get("url")):
        return None
    chosen = {f.get("format_id") for f in info.get("requested_formats") or [info]}
    slim = {k: v for k, v in info.items() if k not in _UNUSED_INFO_KEYS}
    formats = [f for f in info.get("formats") or () if f.get("format_id") in chosen]
    if formats:
        slim["formats"] = formats
    return yt_dlp.YoutubeDL.sanitize_info(slim, remove_private_keys=True)


def info_age_s(info: dict[str, Any]) -> float:
    """Seconds since yt-dlp extracted `info` (its `epoch`, wall-clock: the item may have crossed to another node)."""
    return time.time() - float(info.get("epoch") or 0)


def listing_params(options: DownloadOptions) -> dict[str, Any]:
    """yt-dlp params that choose which entries of a playlist, channel or feed become videos."""
    params: dict[str, Any] = {}
    if options.playlist_items:
        params["playlist_items"] = options.playlist_items
    if options.match_filter:
        from yt_dlp.utils import match_filter_func

        params["match_filter"] = match_filter_func(options.match_filter)
    return params


def private_cookie_copy(options: DownloadOptions, folder: Path) -> DownloadOptions:
    """yt-dlp writes cookies back into `cookiefile` on exit; hand it a private copy so concurrent workers never
    race on (or silently rewrite) the user's file."""
    if not options.cookies_file:
        return options
    source = Path(options.cookies_file).expanduser()
    if not source.is_file():
        raise errors.InputError(f"cookies file not found: {source}")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"cookies-{uuid.uuid4().hex[:8]}.txt"
    shutil.copyfile(source, copy)
    return replace(options, cookies_file=str(copy))


def _clean_message(text: str) -> str:
    text = _ANSI.sub("", str(text))
    text = " ".join(text.split())
    text = re.sub(r"^(ERROR:\s*)+", "", text)
    text = re.sub(r"^\[download\]\s*(Got error:\s*)?", "", text)
    text = re.sub(r"^\[[\w:.-]+\]\s*([^\s:]+:\s+)?", "", text)  # "[generic] id: "
    text = re.sub(r"\s*\(caused by .*\)\s*$", "", text)
    text = re.sub(r";\s*please report this issue.*$", "", text, flags=re.I)
    return text.strip().rstrip(".") or "unknown error"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps: yt-dlp keeps the real cause in `exc_info` or `cause`."""
    seen: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack and len(seen) < 32:
        e = stack.pop(0)
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        info = getattr(e, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1:
            stack.append(info[1])
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__, getattr(e, "reason", None)])
        # requests wraps urllib3's ('Connection aborted.', RemoteDisconnected(...)) in its args only
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return seen


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _seconds(value: float) -> str:
    return f"{value:g}"


def classify_error(exc: BaseException, url: str, timeout_s: float) -> Failure:
    """Map a yt-dlp exception to one clean line and a retry decision.

    yt-dlp wraps everything in `yt_dlp.utils.DownloadError`, whose `exc_info[1]` holds the real error: a
    `networking.exceptions.HTTPError` (with `.status`, `.response.headers`, `.redirect_loop`), a `TransportError`
    whose `cause` is the socket/urllib3/requests error, or an `ExtractorError` such as `UnsupportedError`. Typed
    causes are used first. Only when yt-dlp drops the cause (its HTTP downloader reports exhausted retries as a
    bare string, e.g. for 5xx or read timeouts during the body) does this fall back to reading the message.
    """
    chain = _causes(exc)
    for e in chain:
        if isinstance(e, HTTPError):
            # The request that failed may not be the one given: a page's media file, a redirect's target.
            failed = getattr(e.response, "url", None) if e.response is not None else None
            where = f"{failed} (from {url})" if failed and failed.split("#")[0] != url.split("#")[0] else url
            return _http_failure(e.status, where, e.response.headers.get("Retry-After") if e.response else None,
                                 redirect_loop=e.redirect_loop)
    for e in chain:
        if isinstance(e, UnsupportedError):
            return Failure(f"no media found (unsupported URL or page without video): {url}", False, bad_input=True)
        if isinstance(e, UnsupportedRequest):
            return Failure(f"unsupported URL: {url} ({_clean_message(str(e))})", False, bad_input=True)
    for e in chain:
        name = type(e).__name__.lower()
        if isinstance(e, (TimeoutError, socket.timeout)) or "timeout" in name:
            return Failure(f"timed out after {_seconds(timeout_s)} s: {url}", True)
        if isinstance(e, ConnectionRefusedError):
            return Failure(f"cannot connect to {host_key(url)} (connection refused): {url}", True)
        if isinstance(e, socket.gaierror):
            return Failure(f"cannot resolve host {urlsplit(url).hostname}: {url}", True)
        if isinstance(e, http.client.RemoteDisconnected):
            return Failure(f"{host_key(url)} closed the connection without answering: {url}", True)
        if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return Failure(f"connection reset by {host_key(url)}: {url}", True)
        if isinstance(e, ContentTooShortError):
            return Failure(f"download cut short ({e.downloaded} of {e.expected} bytes): {url}", True)
    for e in chain:
        adapter = _NO_ADAPTER.search(str(e))
        if adapter:  # requests, after a redirect to ftp://, file:// ...
            return Failure(f"leads to a link that is not http or https ({adapter.group(1)}): {url}", False,
                           bad_input=True)
    for e in chain:
        if isinstance(e, TransportError):
            text = _clean_message(str(e))
            if "certificate" in text.lower() or "ssl" in text.lower():
                return Failure(f"TLS error: {text}: {url}", False)
            return Failure(f"network error: {text}: {url}", True)
        if isinstance(e, RequestError):
            return Failure(f"{_clean_message(str(e))}: {url}", False, bad_input=True)
    for e in chain:
        if isinstance(e, ExtractorError) and e.expected:
            return Failure(f"{_clean_message(e.orig_msg)}: {url}", False, bad_input=True)
    return _failure_from_text(_clean_message(str(exc)), url, timeout_s)


def _http_failure(status: int, url: str, retry_after: str | None = None, *, redirect_loop: bool = False) -> Failure:
    if redirect_loop or status in (301, 302, 303, 307, 308):
        return Failure(f"too many redirects: {url}", False, status=status)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    message = f"HTTP {status} {phrase}: {url}"
    if status in (429, 503):
        return Failure(message, True, status=status, retry_after=_parse_retry_after(retry_after))
    retryable = status >= 500 or status == 408
    return Failure(message, retryable and status not in _NOT_RETRIED, status=status)


def _failure_from_text(text: str, url: str, timeout_s: float) -> Failure:
    """Last resort for errors yt-dlp reports as bare strings (its downloader's exhausted-retry path)."""
    match = re.search(r"HTTP Error (\d{3})", text)
    if match:
        return _http_failure(int(match.group(1)), url, redirect_loop="redirect loop" in text)
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return Failure(f"timed out after {_seconds(timeout_s)} s: {url}", True)
    if "connection refused" in lowered:
        return Failure(f"cannot connect to {host_key(url)} (connection refused): {url}", True)
    if "connection reset" in lowered or "bytes read" in lowered:
        return Failure(f"connection reset by {host_key(url)}: {url}", True)
    if "unsupported url" in lowered:
        return Failure(f"no media found (unsupported URL or page without video): {url}", False, bad_input=True)
    return Failure(f"{text}: {url}" if url not in text else text, False)


# --------------------------------------------------------------------------------------------- the downloader


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB', 2**31 -> '2.0 GiB': sizes as people read them in an error message."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class AudioDownloader:
    """Fetches one video's audio at a time into a unique folder under `work_dir`.

    `before_download()` runs right before every network attempt (the parallel engine's cluster-wide limiter);
    `on_rate_limited(seconds)` runs when the server asks us to back off (HTTP 429/503), so others can back off too.
    Kept audio (`keep_audio`) is moved to `layout.audio_dir(work_dir.parent)` (OUT/audio when work_dir is OUT/.work).
    """

    def __init__(
        self,
        options: DownloadOptions,
        work_dir: Path,
        *,
        before_download: Callable[[], None] | None = None,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> None:
        self.options = options
        self.work_dir = Path(work_dir)
        self.audio_dir = layout.audio_dir(self.work_dir.parent)
        self.before_download = before_download
        self.on_rate_limited = on_rate_limited
        self._params_options: DownloadOptions | None = None
        self.info_max_age_s = INFO_MAX_AGE_S

    # -- public

    def fetch(
        self,
        item: VideoItem,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> FetchedAudio:
        if item.error:
            raise errors.InputError(item.error)
        if item.kind == SourceKind.FILE:
            return _local_file(Path(item.source))
        cancelled = should_cancel or (lambda: False)
        started = time.monotonic()
        folder = self.work_dir / f"dl-{item.video_id}-{uuid.uuid4().hex[:8]}"
        attempts = max(1, self.options.retries)
        failure: Failure | None = None
        info = self._cached_info(item)
        attempt = 0
        try:
            while attempt < attempts:
                attempt += 1
                self._check_cancel(cancelled)
                if self.before_download is not None:
                    self.before_download()  # the run's limiter: slots, spacing between starts, shared back-off
                self._check_cancel(cancelled)
                try:
                    path = self._download_once(item, folder, on_progress, cancelled, info)
                except _TooLarge as big:
                    raise errors.InputError(self._too_large_message(big.size, item.source)) from None
                except errors.VideoError:  # ours (cancel, too large, playlist): already final
                    raise
                except Exception as exc:  # yt-dlp's DownloadError and whatever it wraps; the guard's
                    failure = (guard_failure(exc, item.source, resolving=False)
                               or classify_error(exc, item.source, self.options.socket_timeout_s))
                    if info is not None and failure.status in _EXPIRED_STATUSES:
                        # The media URL from resolution has expired: extract afresh once (not a retry).
                        info, attempt = None, attempt - 1
                        continue
                    if not failure.retryable or attempt == attempts:
                        break
                    self._wait_before_retry(failure, attempt, item.source, cancelled)
                    continue
                return FetchedAudio(path, True, path.stat().st_size, time.monotonic() - started)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        assert failure is not None
        if failure.retryable and attempts > 1:
            if failure.status in (429, 503):
                raise errors.DownloadError(
                    f"rate limited (HTTP {failure.status}) after {attempts} attempts: {item.source}"
                )
            raise errors.DownloadError(f"{failure.message} (after {attempts} attempts)")
        raise failure.to_error()

    def release(self, fetched: FetchedAudio) -> Path | None:
        """Delete a temporary download and its folder; with keep_audio, move it to `audio_dir` and return where.

        Local input files (temporary=False) are never touched.
        """
        if not fetched.temporary:
            return None
        folder = fetched.path.parent
        kept: Path | None = None
        if self.options.keep_audio and fetched.path.exists():
            self.audio_dir.mkdir(parents=True, exist_ok=True)
            kept = self.audio_dir / fetched.path.name
            shutil.move(str(fetched.path), kept)
        if folder.parent == self.work_dir:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            fetched.path.unlink(missing_ok=True)
        return kept

    # -- internals

    def _cached_info(self, item: VideoItem) -> dict[str, Any] | None:
        """The info resolution extracted for this video, while young enough that its media URLs still work."""
        if item.info is None or info_age_s(item.info) >= self.info_max_age_s:
            return None
        return item.info

    def _request_url(self, item: VideoItem) -> str:
        """The real user:password for the request only: carried by the item, else from the options (older
        callers fill `url_credentials` before the run)."""
        return item.request_url or reveal(item.source, self.options.url_credentials)

    def _download_once(
        self, item: VideoItem, folder: Path, on_progress: ProgressCallback | None, cancelled: Callable[[], bool],
        cached: dict[str, Any] | None = None,
    ) -> Path:
        # A clean folder per attempt: a half-written .part from a failed attempt must not be "resumed" into a
        # file that mixes two responses.
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        limit = self.options.max_filesize

        def hook(d: dict[str, Any]) -> None:
            if cancelled():
                raise errors.Cancelled("cancelled during download")
            done = int(d.get("downloaded_bytes") or 0)
            total = d.get("total_bytes") or d.get("total_bytes_estimate")
            total = int(total) if total else None
            # Covers sizes learned late (no Content-Length, fragments): stop as soon as the limit is crossed.
            if limit is not None and ((total is not None and total > limit) or done > limit):
                raise _TooLarge(total or done)
            if on_progress is not None:
                on_progress(done, total, d.get("speed"))

        logger = _QuietLogger()
        params = ytdlp_params(
            self._options_with_cookies(),
            logger,
            format=AUDIO_FORMAT,
            outtmpl={"default": str(folder / f"{item.video_id}.%(ext)s")},
            progress_hooks=[hook],
            ratelimit=self.options.rate_limit,
            max_filesize=limit,
            overwrites=True,
            continuedl=False,
        )
        # The watchdog polls `cancelled` too: a cancel lands within a second even while a read waits on the server.
        guard = transfer_guard(self.options, should_cancel=cancelled)
        url = self._request_url(item)
        with GuardedYDL(params, guard) as ydl:
            if is_direct_media_url(url):
                # Skip the generic extractor's probing GET: the URL already says what it is.
                ext = Path(unquote(urlsplit(url).path)).suffix.lower().lstrip(".")
                info = {"id": item.video_id, "title": item.title or item.video_id, "url": url, "ext": ext}
            else:
                # Resolution's extraction when it has one (its one page request), a copy: yt-dlp writes into it.
                info = copy.deepcopy(cached) if cached is not None else ydl.extract_info(url, download=False)
                if info.get("_type") == "playlist" or info.get("entries") is not None:
                    raise errors.InputError(f"URL is a playlist, not one video (resolve it first): {item.source}")
                size = _known_size(info)
                if limit is not None and size is not None and size > limit:
                    raise _TooLarge(size)
            guard.page_cap = None  # media from here on: max_filesize is its cap
            result = ydl.process_ie_result(info, download=True)
        path = _downloaded_path(result, folder)
        if path is None:
            for line in logger.messages:
                match = _TOO_LARGE.search(line)
                if match:  # yt-dlp read Content-Length and refused before reading the body
                    raise _TooLarge(int(match.group(1)))
            raise errors.DownloadError(f"download produced no file: {item.source}")
        if path.stat().st_size == 0:
            raise errors.DownloadError(f"downloaded file is empty: {item.source}")
        return path

    def _options_with_cookies(self) -> DownloadOptions:
        if self._params_options is None:
            if self.options.cookies_file:
                # Cookies are secrets: keep the private copy out of OUT and delete it with this downloader.
                folder = Path(tempfile.mkdtemp(prefix="bt-cookies-"))
                weakref.finalize(self, shutil.rmtree, folder, True)
                self._params_options = private_cookie_copy(self.options, folder)
            else:
                self._params_options = self.options
        return self._params_options

    def _too_large_message(self, size: int, url: str) -> str:
        limit = human_size(self.options.max_filesize or 0)
        return f"file too large: {human_size(size)} > limit {limit}: {url}"

    def _wait_before_retry(self, failure: Failure, attempt: int, url: str, cancelled: Callable[[], bool]) -> None:
        """Retry-After when the server gives one (429/503), else exponential back-off from `backoff_s`.

        A 429/503 without Retry-After still reports its back-off to `on_rate_limited`: it is a rate signal too.
        (yt-dlp's file downloader drops the response of a 5xx, so a 503 there backs off exponentially.)
        """
        if failure.status in (429, 503):
            wait = failure.retry_after
            if wait is not None and wait > self.options.max_retry_after_s:
                raise errors.DownloadError(
                    f"rate limited (HTTP {failure.status}): server asks to wait {_seconds(round(wait))} s, "
                    f"more than the {_seconds(self.options.max_retry_after_s)} s allowed: {url}"
                )
            if wait is None:
                wait = self.options.backoff(attempt)
            if self.on_rate_limited is not None:
                self.on_rate_limited(wait)
        else:
            wait = self.options.backoff(attempt)
        _sleep(wait, cancelled)

    @staticmethod
    def _check_cancel(cancelled: Callable[[], bool]) -> None:
        if cancelled():
            raise errors.Cancelled("cancelled before download")


def _sleep(seconds: float, cancelled: Callable[[], bool]) -> None:
    """Sleep, waking every 0.1 s to honour a cancel."""
    end = time.monotonic() + seconds
    while True:
        if cancelled():
            raise errors.Cancelled("cancelled while waiting to retry")
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.1, left))


def _known_size(info: dict[str, Any]) -> int | None:
    formats = info.get("requested_formats") or [info]
    sizes = [f.get("filesize") or f.get("filesize_approx") for f in formats]
    if not sizes or any(s is None for s in sizes):
        return None
    return int(sum(sizes))


def _downloaded_path(result: dict[str, Any] | None, folder: Path) -> Path | None:
    for entry in (result or {}).get("requested_downloads") or []:
        candidate = entry.get("filepath")
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl", ".txt"))]
    return files[0] if len(files) == 1 else None


def _local_file(path: Path) -> FetchedAudio:
    if not path.is_file():
        raise errors.InputError(f"file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise errors.MediaError("file is empty")
    return FetchedAudio(path, False, size, 0.0)
