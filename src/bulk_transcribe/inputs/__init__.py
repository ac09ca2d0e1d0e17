"""Inputs -> VideoItems: URLs (expanded with yt-dlp, nothing downloaded), local files and folders, input lists.

Every input yields items, never an exception for the whole batch: one that cannot be resolved becomes a VideoItem
with `error` set to a one-line reason, which the run records as failed and never schedules.

`InputStream` resolves on background threads and hands items out as inputs finish, so the first page resolved
starts the batch; `resolve_inputs` drains one into a list, in input order. A single video's page is extracted once:
its info rides on the item (`VideoItem.info`) to the download.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import yt_dlp

from .. import errors
from .. import layout
from ..config import MEDIA_EXTENSIONS, DownloadOptions
from ..media.audio import audio_duration, probe_media  # probe_media: re-exported for callers of sources
from ..media.download import (
    Failure,
    cacheable_info,
    classify_error,
    clean_url,
    direct_media_meta,
    direct_media_title,
    guard_failure,
    is_direct_media_url,
    listing_params,
    pause_between_downloads,
    private_cookie_copy,
    transfer_guard,
    url_problem,
    ytdlp_params,
)
from ..media.guard import DeadlineExceeded, GuardedYDL
from ..models import SourceKind, VideoItem
from ..redact import redact_text

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DOMAIN_LIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(/|$)")
ABANDON_GRACE_S = 2.0
"""How long past its deadline an input's resolution may take to stop by itself before it is left behind."""
RESOLVE_CONCURRENCY = 8
"""URL resolutions in flight at once, all hosts together (one thread and one YoutubeDL each); one host gets at
most `DownloadOptions.max_concurrent` of them."""


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
    stream = InputStream(inputs, input_files, options=options, out_dir=out_dir, ordered=True).start()
    result = ResolvedInputs()
    try:
        while not stream.finished:
            result.items.extend(stream.take(timeout=1.0))
    finally:
        stream.close()
    result.duplicates = list(stream.duplicates)
    result.credentials = dict(stream.credentials)
    return result


# --------------------------------------------------------------------------------------------- streaming


@dataclass
class _Job:
    """One input line to resolve: `index` is its place among the lines, `host` is set when it needs a page
    request (None: it resolves offline or from the local disk), `ready` holds items already known."""

    index: int
    text: str
    host: str | None = None
    ready: list[VideoItem] | None = None
    attempt: int = 1


class _HostGate:
    """Politeness per host: at most `limit` resolutions open at once, their first requests spaced by `sleep_s`
    (yt-dlp's --sleep-interval rule) counted from the requests themselves (setting a YoutubeDL up can take longer
    than the pause) and from the host's answer (so the host never sees two closer than that), and nothing
    started while the host's Retry-After runs."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self.limit = max(1, options.max_concurrent)
        self.open: Counter[str] = Counter()
        self.not_before: dict[str, float] = {}

    def ready_at(self, host: str) -> float | None:
        """When a request to `host` may start (time.monotonic()), or None while it has `limit` open already."""
        if self.open[host] >= self.limit:
            return None
        return self.not_before.get(host, 0.0)

    def begin(self, host: str) -> None:
        self.open[host] += 1

    def take_turn(self, host: str) -> bool:
        """True when a request to `host` may be sent now: the next one then waits `sleep_s` after it."""
        now = time.monotonic()
        if self.not_before.get(host, 0.0) > now:
            return False
        self.answered(host)
        return True

    def answered(self, host: str) -> None:
        pause = pause_between_downloads(self.options)
        if pause > 0:
            self.not_before[host] = max(self.not_before.get(host, 0.0), time.monotonic() + pause)

    def end(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]

    def hold(self, host: str, seconds: float) -> None:
        self.not_before[host] = max(self.not_before.get(host, 0.0), time.monotonic() + seconds)


class InputStream:
    """Resolves inputs on background threads and hands out VideoItems as they are ready (`take`).

    Local files and folders, and URLs that need no request, resolve on one thread in order; URLs resolve on up to
    `concurrency` threads at once, each with its own YoutubeDL, at most `options.max_concurrent` to one host at
    a time with `options.sleep_s` between starts there, and a host that answers 429/503 is left alone for its
    Retry-After before that input is tried again (up to `options.retries` times). Each resolution keeps its
    guards (`resolve_timeout_s`, low-speed guard, page cap). The items of one input come out together and in
    listed order; inputs come out as they finish (in input order with `ordered=True`, as `resolve_inputs` needs).
    De-duplication keeps the first copy handed out; later ones are listed in `duplicates`.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        input_files: Sequence[str | os.PathLike[str]] = (),
        *,
        options: DownloadOptions = DownloadOptions(),
        out_dir: str | os.PathLike[str] | None = None,
        concurrency: int = RESOLVE_CONCURRENCY,
        ordered: bool = False,
        known: Mapping[str, VideoItem] | None = None,
    ) -> None:
        """`known`: videos already done in this OUT, by source URL: a line naming one of them resolves to it with
        no request (a rerun resumes at once, without fetching every finished page again)."""
        self.options = options
        self._known = known or {}
        self.concurrency = max(1, concurrency)
        self.ordered = ordered
        self.duplicates: list[str] = []
        """Sources given more than once, each listed once (as ResolvedInputs.duplicates); grows as items come."""
        self.credentials: dict[str, str] = {}
        """Redacted URL -> the real one (as ResolvedInputs.credentials); items also carry theirs (request_url)."""
        self._out_dir = Path(out_dir).resolve() if out_dir is not None else None
        self._seen: set[str] = set()
        self._reported: set[str] = set()
        self._jobs = self._distinct_jobs(_nonblank(_all_inputs(inputs, input_files)))
        self._cond = threading.Condition()
        self._gate = _HostGate(options)
        self._waiting: dict[str, deque[_Job]] = {}  # host -> its URL jobs not started, in input order
        for job in self._jobs:
            if job.host is not None:
                self._waiting.setdefault(job.host, deque()).append(job)
        self._cancel = threading.Event()
        self._ready: list[VideoItem] = []
        self._parked: dict[int, list[VideoItem]] = {}  # ordered: inputs finished before an earlier one
        self._next_out = 0
        self._resolved = 0
        self._delivered: set[int] = set()
        self._started = False

    def _distinct_jobs(self, entries: Iterable[str | VideoItem]) -> list[_Job]:
        """One job per distinct line: a URL given twice is requested once (its repeats listed as duplicates
        at once, and not counted among the inputs to resolve)."""
        jobs: list[_Job] = []
        urls: set[str] = set()
        for entry in entries:
            job = _job(len(jobs), entry)
            if job.host is not None:
                url = clean_url(job.text)
                done = self._known.get(redact_text(url))
                if done is not None and url not in urls:
                    urls.add(url)
                    jobs.append(_Job(job.index, job.text, ready=[replace(done, input=job.text)]))
                    continue
                if url in urls:
                    shown = redact_text(url)
                    if shown not in self.duplicates:
                        self.duplicates.append(shown)
                        self._reported.add(shown)
                    continue
                urls.add(url)
            jobs.append(job)
        return jobs

    # -- the driver's side

    def start(self) -> "InputStream":
        """Begin resolving on daemon threads; returns at once (a second call does nothing)."""
        with self._cond:
            if self._started or self._cancel.is_set():
                return self
            self._started = True
        if any(job.host is None for job in self._jobs):
            threading.Thread(target=self._resolve_offline, name="bt-inputs", daemon=True).start()
        # No more threads than can ever work at once: each builds a YoutubeDL (a second or more on a busy machine).
        url_jobs = sum(1 for job in self._jobs if job.host is not None)
        useful = len(self._waiting) * self._gate.limit
        for n in range(min(self.concurrency, url_jobs, useful)):
            threading.Thread(target=self._resolve_urls, name=f"bt-resolve-{n}", daemon=True).start()
        return self

    def take(self, timeout: float = 0.0) -> list[VideoItem]:
        """Every item resolved since the last call; waits up to `timeout` s for one when none is ready."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._ready and not self._all_resolved() and not self._cancel.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken, self._ready = self._ready, []
        return taken

    @property
    def finished(self) -> bool:
        """Every input resolved and every item taken (or the stream closed: nothing more will come)."""
        with self._cond:
            return self._cancel.is_set() or (self._all_resolved() and not self._ready)

    @property
    def resolved(self) -> int:
        """Input lines finished resolving so far."""
        with self._cond:
            return self._resolved

    @property
    def total(self) -> int:
        """Input lines known (input lists are read when the stream is made)."""
        return len(self._jobs)

    def unresolved(self) -> list[str]:
        """The input lines not resolved yet, in order, as they may be shown (passwords masked)."""
        with self._cond:
            return [redact_text(job.text) for job in self._jobs if job.index not in self._delivered]

    def close(self) -> None:
        """Stop: resolutions in flight are cancelled (their transfers cut by the guard) and left behind on their
        daemon threads, nothing more is handed out. Returns at once; idempotent."""
        with self._cond:
            self._cancel.set()
            self._ready = []
            self._parked.clear()
            self._cond.notify_all()

    def __enter__(self) -> "InputStream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolving threads

    def _resolve_offline(self) -> None:
        for job in self._jobs:
            if job.host is not None:
                continue
            if self._cancel.is_set():
                return
            try:
                items = job.ready if job.ready is not None else list(_local(job.text, self._out_dir))
            except Exception as exc:  # noqa: BLE001 - one odd input must not stop the inputs after it
                items = [_failed(job.text, SourceKind.FILE, job.text, f"cannot read {job.text}: {exc}")]
            self._deliver(job, items)

    def _resolve_urls(self) -> None:
        resolver = _UrlResolver(self.options, self._cancel)
        try:
            while (job := self._next_url_job()) is not None:
                try:
                    items = resolver.resolve(job.text, pace=self._pacer(job.host))
                except Exception as exc:  # noqa: BLE001 - a surprise in yt-dlp fails this input, not the stream
                    items = [_failed(job.text, SourceKind.URL, job.text, f"cannot resolve: {exc}")]
                if not self._retry_later(job, resolver.failure):
                    self._deliver(job, items)
        finally:
            resolver.close()

    def _next_url_job(self) -> _Job | None:
        """The earliest-listed waiting URL whose host may take a request now; waits for one; None when none is
        left (or the stream is closed)."""
        with self._cond:
            while not self._cancel.is_set() and self._waiting:
                now, wake = time.monotonic(), None
                best: str | None = None
                for host, queue in self._waiting.items():
                    at = self._gate.ready_at(host)
                    if at is not None and at > now:
                        wake = at if wake is None else min(wake, at)
                    elif at is not None and (best is None or queue[0].index < self._waiting[best][0].index):
                        best = host
                if best is not None:
                    job = self._waiting[best].popleft()
                    if not self._waiting[best]:
                        del self._waiting[best]
                    self._gate.begin(best)
                    return job
                # Woken by a host freeing a slot, a retry put back, or close; the timeout is only a safety net.
                self._cond.wait(1.0 if wake is None else min(1.0, max(0.01, wake - now)))
            return None

    def _pacer(self, host: str) -> tuple[Callable[[], None], Callable[[], None]]:
        """Before the first request: wait for the host's turn (sleep_s after its last first request and answer,
        its Retry-After); after its answer: the next turn counts from now."""

        def wait_turn() -> None:
            with self._cond:
                while not self._gate.take_turn(host) and not self._cancel.is_set():
                    self._cond.wait(max(0.01, self._gate.not_before[host] - time.monotonic()))

        def answered() -> None:
            with self._cond:
                self._gate.answered(host)

        return wait_turn, answered

    def _retry_later(self, job: _Job, failure: Failure | None) -> bool:
        """Free the job's host; on a 429/503 hold that host back for its Retry-After (or the back-off) and, while
        attempts are left, put the job back first in its host's line. True when it was put back."""
        assert job.host is not None
        with self._cond:
            self._gate.end(job.host)
            self._cond.notify_all()
            if failure is None or failure.status not in (429, 503) or self._cancel.is_set():
                return False
            wait = failure.retry_after
            if wait is None:
                wait = self.options.backoff_s * 2 ** (job.attempt - 1)
            self._gate.hold(job.host, min(wait, self.options.max_retry_after_s))
            if job.attempt >= max(1, self.options.retries) or wait > self.options.max_retry_after_s:
                return False
            job.attempt += 1
            # First in its host's line again: it was listed before everything still waiting there.
            self._waiting.setdefault(job.host, deque()).appendleft(job)
            return True

    # -- handing out

    def _deliver(self, job: _Job, items: list[VideoItem]) -> None:
        with self._cond:
            if self._cancel.is_set():
                return
            items = [_redacted(_contain_undecodable_name(item), self.credentials) for item in items]
            self._resolved += 1
            self._delivered.add(job.index)
            if not self.ordered:
                self._admit(items)
            else:
                self._parked[job.index] = items
                while self._next_out in self._parked:
                    self._admit(self._parked.pop(self._next_out))
                    self._next_out += 1
            self._cond.notify_all()

    def _admit(self, items: list[VideoItem]) -> None:
        for item in items:
            if item.source in self._seen:
                if item.source not in self._reported:
                    self._reported.add(item.source)
                    self.duplicates.append(item.source)
                continue
            self._seen.add(item.source)
            self._ready.append(item)

    def _all_resolved(self) -> bool:
        return self._resolved >= len(self._jobs)


def _once(action: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            action()

    return run


def _nonblank(entries: Iterable[str | VideoItem]) -> Iterator[str | VideoItem]:
    for entry in entries:
        if isinstance(entry, VideoItem) or entry.strip():
            yield entry


def _job(index: int, entry: str | VideoItem) -> _Job:
    """What one input line needs: a page request (its host named), or nothing beyond this machine."""
    if isinstance(entry, VideoItem):  # an input list that could not be read
        return _Job(index, entry.input, ready=[entry])
    text = entry.strip()
    offline = _offline_items(text)
    if offline is not None:
        return _Job(index, text, ready=offline)
    if _SCHEME.match(text):
        return _Job(index, text, host=_host_key(clean_url(text)))
    return _Job(index, text)


def _host_key(url: str) -> str:
    """Whom politeness is owed: the host and port (a user:password is no part of it)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or url)



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


def _offline_items(text: str) -> list[VideoItem] | None:
    """Items for a URL that needs no page request (malformed, not http, a direct media link), else None; a
    local path is not handled here either (None)."""
    scheme = _SCHEME.match(text)
    if not scheme:
        return None
    if scheme.group(1).lower() not in ("http", "https"):
        return [_failed(text, SourceKind.URL, text,
                        f"unsupported URL scheme {scheme.group(1).lower()}:// (use http or https): {text}")]
    problem = url_problem(text.strip())
    if problem:
        return [_failed(text.strip(), SourceKind.URL, text, f"malformed URL ({problem}): {text.strip()}")]
    url = clean_url(text)
    if is_direct_media_url(url):
        return [VideoItem(url, SourceKind.URL, text, title=direct_media_title(url), meta=direct_media_meta(url))]
    return None


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
    request_url = item.request_url
    if item.kind == SourceKind.URL and source != item.source:
        credentials.setdefault(source, item.source)  # the first copy is the one kept (duplicates are dropped)
        request_url = request_url or item.source  # the download needs the real one: it travels with the item
    return VideoItem(source, item.kind, text, title=title, duration_s=item.duration_s, error=error or None,
                     meta=item.meta, info=item.info, request_url=request_url)


def _readable(text: str) -> str:
    """The original bytes with the non-UTF-8 ones shown as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _failed(source: str, kind: SourceKind, text: str, reason: str) -> VideoItem:
    return VideoItem(source, kind, text, error=errors.one_line(reason))


class _UrlResolver:
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
        offline = _offline_items(text)
        if offline is not None:
            return offline
        url = clean_url(text)
        try:
            client = self._client()
        except errors.VideoError as exc:  # e.g. the cookies file is missing
            return [_failed(url, SourceKind.URL, text, exc.reason)]
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
        # The page was extracted in full: its download starts from this info instead of a second page request.
        return [VideoItem(url, SourceKind.URL, text, title=_title(info), duration_s=_duration(info),
                          meta=video_meta(info), error=problem, info=None if problem else cacheable_info(info))]
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


__all__ = ["RESOLVE_CONCURRENCY", "InputStream", "ResolvedInputs", "probe_media", "read_input_file",
           "resolve_inputs"]
