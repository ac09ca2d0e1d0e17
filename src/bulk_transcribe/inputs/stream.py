"""Inputs -> VideoItems, streamed: URLs (expanded with yt-dlp, nothing downloaded), local files and folders, and
the lines of input lists (read up front: inputs/lists.py), resolved on background threads and handed out as each
input finishes.

Every input yields items, never an exception for the whole batch: one that cannot be resolved becomes a VideoItem
with `error` set to a one-line reason, which the run records as failed and never schedules. A single video's page
is extracted once: its info rides on the item (`VideoItem.info`) to the download.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ..config import DownloadOptions
from ..media.download import Failure
from ..media.urls import canonical_url, clean_url, host_key, identity_of, scheme_of
from ..models import SourceKind, VideoItem
from ..redact import redact_text
from .local import local_items
from .resolve import UrlResolver, offline_items

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


def resolve_inputs(
    inputs: Sequence[str],
    *,
    options: DownloadOptions = DownloadOptions(),
    out_dir: str | os.PathLike[str] | None = None,
) -> ResolvedInputs:
    """Turn a mix of URLs, files, folders and input lists into de-duplicated VideoItems, in the order given.

    URLs go through yt-dlp without downloading (playlists, channels, RSS feeds and pages with <video> tags expand
    to their entries, with title and duration where the site gives them); a direct link to a media file skips
    that round trip, since yt-dlp would only confirm it. Folders are searched recursively for MEDIA_EXTENSIONS.
    """
    stream = InputStream(inputs, options=options, out_dir=out_dir, ordered=True).start()
    result = ResolvedInputs()
    try:
        while not stream.finished:
            result.items.extend(stream.take(timeout=1.0))
    finally:
        stream.close()
    result.duplicates = list(stream.duplicates)
    result.credentials = dict(stream.credentials)
    return result


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
        pause = self.options.draw_pause()
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
        self._known = {canonical_url(source): item for source, item in (known or {}).items()}
        self.concurrency = max(1, concurrency)
        self.ordered = ordered
        self.duplicates: list[str] = []
        """Sources given more than once, each listed once (as ResolvedInputs.duplicates); grows as items come."""
        self.credentials: dict[str, str] = {}
        """Redacted URL -> the real one (as ResolvedInputs.credentials); items also carry theirs (request_url)."""
        self._out_dir = Path(out_dir).resolve() if out_dir is not None else None
        self._seen: set[str] = set()
        self._reported: set[str] = set()
        self._jobs = self._distinct_jobs(line for line in inputs if line.strip())
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

    def _distinct_jobs(self, lines: Iterable[str]) -> list[_Job]:
        """One job per distinct line: a URL given twice is requested once (its repeats listed as duplicates
        at once, and not counted among the inputs to resolve)."""
        jobs: list[_Job] = []
        urls: set[str] = set()
        for line in lines:
            job = _job(len(jobs), line)
            if job.host is not None:
                url = canonical_url(job.text)  # `?utm_source=…`, `#t=1`, a reordered query: one page
                done = self._known.get(canonical_url(redact_text(url)))
                if done is not None and url not in urls:
                    urls.add(url)
                    jobs.append(_Job(job.index, job.text, ready=[replace(done, input=job.text)]))
                    continue
                if url in urls:
                    shown = redact_text(clean_url(job.text))
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
                items = job.ready if job.ready is not None else list(local_items(job.text, self._out_dir))
            except Exception as exc:  # noqa: BLE001 - one odd input must not stop the inputs after it
                items = [VideoItem.failed(job.text, SourceKind.FILE, job.text, f"cannot read {job.text}: {exc}")]
            self._deliver(job, items)

    def _resolve_urls(self) -> None:
        resolver = UrlResolver(self.options, self._cancel)
        try:
            while (job := self._next_url_job()) is not None:
                try:
                    items = resolver.resolve(job.text, pace=self._pacer(job.host))
                except Exception as exc:  # noqa: BLE001 - a surprise in yt-dlp fails this input, not the stream
                    items = [VideoItem.failed(job.text, SourceKind.URL, job.text, f"cannot resolve: {exc}")]
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
                wait = self.options.backoff(job.attempt)
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
        """Hand out each video once: a later item that is the same video (identity_of: the site's id, or the
        media URL however it was spelt or reached) is listed as a duplicate and never run."""
        for item in items:
            if not item.identity:
                item = replace(item, identity=identity_of(item.source, item.kind, item.meta))
            key = item.identity if item.error is None else item.source  # failures stay one row per line
            if key in self._seen:
                if item.source not in self._reported:
                    self._reported.add(item.source)
                    self.duplicates.append(item.source)
                continue
            self._seen.add(key)
            self._ready.append(item)

    def _all_resolved(self) -> bool:
        return self._resolved >= len(self._jobs)


def _job(index: int, line: str) -> _Job:
    """What one input line needs: a page request (its host named), or nothing beyond this machine."""
    text = line.strip()
    offline = offline_items(text)
    if offline is not None:
        return _Job(index, text, ready=offline)
    if scheme_of(text):
        return _Job(index, text, host=host_key(clean_url(text)))
    return _Job(index, text)


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
        return VideoItem.failed(source, item.kind, text, f"name is not valid UTF-8 (rename it): {source}")


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
