"""ProgressTracker: turns ProgressEvents into Snapshots that every screen reads.

One plain class serves both modes: the sequential runner holds one in-process, the parallel engine wraps one in
its progress actor. It has no threads or locks: its callers serialise (a single thread, or an async actor).

The per-video rules live in `advance()` so the SQLite session store applies exactly the same transitions and a
run rendered from the database looks the same as one rendered live.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .models import LOCAL_WORKER, EventKind, ProgressEvent, Snapshot, VideoItem, VideoProgress, VideoStatus
from .quality import Quality

DOWNLOAD_SHARE = 0.1
"""Share of one video's progress bar given to downloading; transcription fills the rest."""

_START_KINDS = {EventKind.DOWNLOAD_STARTED: VideoStatus.DOWNLOADING, EventKind.TRANSCRIBE_STARTED: VideoStatus.TRANSCRIBING}
_TERMINAL_KINDS = {
    EventKind.DONE: VideoStatus.DONE,
    EventKind.FAILED: VideoStatus.FAILED,
    EventKind.SKIPPED: VideoStatus.SKIPPED,
    EventKind.CANCELLED: VideoStatus.CANCELLED,
}


def overall_fraction(status: VideoStatus, stage_progress: float) -> float:
    """Progress of the whole video from its status and the fraction of the current stage."""
    stage = min(1.0, max(0.0, stage_progress))
    if status is VideoStatus.DONE:
        return 1.0
    if status is VideoStatus.DOWNLOADING:
        return DOWNLOAD_SHARE * stage
    if status is VideoStatus.TRANSCRIBING:
        return DOWNLOAD_SHARE + (1.0 - DOWNLOAD_SHARE) * stage
    return 0.0


@dataclass
class VideoState:
    """One video's live row plus what the rules need but the table does not show."""

    progress: VideoProgress
    transcribe_started_at: float | None = None
    download_s: float | None = None
    """How long its download took (a prefetched one then waits for the model: that wait is no work of its own)."""
    quality: Quality | None = None
    """A done video's whole trust record (the table shows its flags): kept for the store and the manifest."""


def work_s(state: VideoState, until: float) -> float | None:
    """Seconds of work on one video up to `until`: its download, then its transcription; the time a fetched video
    waits for its worker's model is left out ("Elapsed" is the video's own work, not its place in the queue)."""
    started = state.progress.started_at
    if state.transcribe_started_at is not None:
        download = state.download_s
        if download is None:  # its end was not reported: the whole stretch before transcription counts
            download = max(0.0, state.transcribe_started_at - started) if started is not None else 0.0
        return download + max(0.0, until - state.transcribe_started_at)
    return max(0.0, until - started) if started is not None else None


def advance(state: VideoState, event: ProgressEvent) -> bool:
    """Apply one event to one video; False (and nothing changed) when the event must be ignored.

    Terminal videos never change (so DONE twice is a no-op and a late progress event cannot resurrect a failed
    video), and a late download event cannot pull a transcribing video back a stage.
    """
    v = state.progress
    kind = event.kind
    if v.status.is_terminal:
        return False
    if kind in (EventKind.DOWNLOAD_PROGRESS, EventKind.DOWNLOADED) and v.status is VideoStatus.TRANSCRIBING:
        return False

    t = event.time
    if event.duration_s is not None and event.duration_s > 0:
        v.duration_s = event.duration_s
    if event.worker:
        v.worker = event.worker
    if event.attempt is not None:
        v.attempts = max(v.attempts, event.attempt)

    if kind is EventKind.QUEUED or kind is EventKind.RETRYING:
        if kind is EventKind.RETRYING:
            v.attempts = max(v.attempts + 1, event.attempt or 0)
            v.error = event.error or v.error  # kept so the table says why it is being retried
        v.status = VideoStatus.QUEUED
        v.stage_progress = v.progress = 0.0
        v.worker = ""
        v.current_text = ""
        v.speed_x = None
        v.downloaded_bytes = v.download_speed = None
        state.transcribe_started_at = state.download_s = None
        return True

    if kind in _START_KINDS or kind in (EventKind.DOWNLOAD_PROGRESS, EventKind.DOWNLOADED, EventKind.TRANSCRIBE_PROGRESS):
        _enter_active(state, kind, t)
        if kind is EventKind.DOWNLOAD_PROGRESS:
            if event.downloaded_bytes is not None:
                v.downloaded_bytes = event.downloaded_bytes
            if event.download_speed is not None:
                v.download_speed = event.download_speed
            if event.progress is not None:
                v.stage_progress = event.progress
            elif event.downloaded_bytes is not None and event.total_bytes:
                v.stage_progress = event.downloaded_bytes / event.total_bytes
        elif kind is EventKind.DOWNLOADED:
            v.stage_progress = 1.0
            if v.started_at is not None:
                state.download_s = max(0.0, t - v.started_at)
        elif kind is EventKind.TRANSCRIBE_PROGRESS:
            if event.transcribed_s is not None and v.duration_s:
                v.stage_progress = event.transcribed_s / v.duration_s
            elif event.progress is not None:
                v.stage_progress = event.progress
            if event.text:
                v.current_text = event.text
            if event.speed_x is not None:
                v.speed_x = event.speed_x
            elif event.transcribed_s is not None and state.transcribe_started_at is not None:
                spent = t - state.transcribe_started_at
                if spent > 0:
                    v.speed_x = event.transcribed_s / spent
        v.stage_progress = min(1.0, max(0.0, v.stage_progress))
        v.progress = overall_fraction(v.status, v.stage_progress)
        return True

    if kind in _TERMINAL_KINDS:
        v.status = _TERMINAL_KINDS[kind]
        v.finished_at = t
        elapsed = work_s(state, t)
        if elapsed is not None:
            v.elapsed_s = elapsed
        v.current_text = "" if kind is not EventKind.DONE else v.current_text
        if kind is EventKind.DONE:
            v.error = None  # a done video has no error; what a reader should know is its note
            v.note = event.note
            v.stage_progress = v.progress = 1.0
            if event.outputs is not None:
                v.outputs = dict(event.outputs)
            v.language = event.language or v.language
            if event.quality is not None:
                state.quality = event.quality
                v.flags, v.rechecked = list(event.quality.flags), event.quality.recheck is not None
            if event.speed_x is not None:
                v.speed_x = event.speed_x
            elif v.duration_s and state.transcribe_started_at is not None and t > state.transcribe_started_at:
                v.speed_x = v.duration_s / (t - state.transcribe_started_at)
        elif kind is EventKind.FAILED:
            v.error = event.error or v.error or "failed (no reason given)"
            v.retryable = event.retryable
        elif kind is EventKind.SKIPPED:
            v.error, v.note = None, event.note  # not run, on purpose: why is a note, not an error
        else:
            v.error = event.error or v.error
        return True

    return False  # an EventKind this version does not know: ignore rather than guess


def _enter_active(state: VideoState, kind: EventKind, t: float) -> None:
    """Move into the stage `kind` belongs to; a progress event stands in for a start that was lost or throttled."""
    v = state.progress
    target = VideoStatus.TRANSCRIBING if kind in (EventKind.TRANSCRIBE_STARTED, EventKind.TRANSCRIBE_PROGRESS) else VideoStatus.DOWNLOADING
    explicit_start = kind in _START_KINDS
    if explicit_start or v.status is not target:
        v.status = target
        v.stage_progress = 0.0
        if target is VideoStatus.TRANSCRIBING:
            state.transcribe_started_at = t
            v.current_text = ""
            v.speed_x = None
        else:
            state.transcribe_started_at = state.download_s = None
            v.downloaded_bytes = v.download_speed = None
    if v.started_at is None:
        v.started_at = t
    v.attempts = max(v.attempts, 1)


def state_from_row(row: Any, clock: Callable[[], float] = time.time) -> VideoState:
    """A VideoState from a VideoItem or a stored record (anything with the record's attributes)."""
    if isinstance(row, VideoItem):
        failed = row.error is not None
        vp = VideoProgress(
            video_id=row.video_id,
            title=row.title,
            source=row.source,
            duration_s=row.duration_s,
            status=VideoStatus.FAILED if failed else VideoStatus.QUEUED,
            error=row.error,
            retryable=row.retryable if failed else None,
            finished_at=clock() if failed else None,
        )
        return VideoState(vp)
    status = VideoStatus(row.status)
    vp = VideoProgress(
        video_id=row.video_id,
        title=row.title,
        source=row.source,
        duration_s=row.duration_s,
        status=status,
        worker=row.worker or "",
        stage_progress=getattr(row, "stage_progress", 0.0) or 0.0,
        speed_x=row.speed_x,
        elapsed_s=row.elapsed_s,
        attempts=row.attempts or 0,
        error=row.error,
        note=getattr(row, "note", None),
        retryable=getattr(row, "retryable", None),
        current_text=getattr(row, "current_text", "") or "",
        downloaded_bytes=getattr(row, "downloaded_bytes", None),
        download_speed=getattr(row, "download_speed", None),
        started_at=row.started_at,
        finished_at=row.finished_at,
        outputs=dict(row.outputs or {}),
        language=getattr(row, "language", None),
    )
    quality = getattr(row, "quality", None)
    if quality is not None:
        vp.flags, vp.rechecked = list(quality.flags), quality.recheck is not None
    # The stored fraction, not a recomputed one: a failed video keeps showing how far it got.
    vp.progress = row.progress if row.progress is not None else overall_fraction(status, vp.stage_progress)
    return VideoState(vp, getattr(row, "transcribe_started_at", None), getattr(row, "download_s", None), quality)


class _Row:
    __slots__ = ("state", "index", "baseline", "contrib")

    def __init__(self, state: VideoState, index: int, baseline: bool) -> None:
        self.state = state
        self.index = index
        # Done before this run (resumed): counts toward progress, not toward this run's throughput.
        self.baseline = baseline
        self.contrib = _ZERO


# What one video adds to the aggregates:
# (duration known, audio transcribed, audio remaining, unfinished w/o duration,
#  audio dealt with (finished videos whole, the transcribed part of one in progress), no duration, finished w/o one)
_ZERO = (0.0, 0.0, 0.0, 0, 0.0, 0, 0)


def _contribution(row: _Row) -> tuple[float, float, float, int, float, int, int]:
    v = row.state.progress
    d = v.duration_s if v.duration_s and v.duration_s > 0 else None
    if v.status is VideoStatus.FAILED:
        # What failed is not what can be done: it weighs nothing (a missing file or a bad line never was audio),
        # and is counted beside the bar. A finished run reads 100% of what could be done.
        return _ZERO
    if v.status.is_terminal:
        # Cancelled audio stays in the total and never counts as done: a stopped run shows how far it got.
        done = v.status in (VideoStatus.DONE, VideoStatus.SKIPPED)
        transcribed = (d or 0.0) if done else 0.0
        return (d or 0.0, transcribed, 0.0, 0, transcribed, int(d is None), int(d is None and done))
    if d is None:
        return (0.0, 0.0, 0.0, 1, 0.0, 1, 0)
    done = d * v.stage_progress if v.status is VideoStatus.TRANSCRIBING else 0.0
    return (d, done, d - done, 0, done, 0, 0)


UNFINISHED_CAP = 0.999
"""Global progress reads 100% only when every video is done: otherwise it stops just short (99.9%)."""


class ProgressTracker:
    """Aggregates events for one run into cheap snapshots.

    Aggregates are kept incrementally; the built Snapshot is cached until the next accepted change, so polling
    is O(1) and a rebuild copies only the rows that changed (plus the few active ones, whose clocks move).
    Snapshots are shared read-only: do not mutate them.
    """

    def __init__(self, run_id: str, mode: str = "sequential", clock: Callable[[], float] = time.time, *,
                 started_at: float | None = None) -> None:
        """`started_at`: when the run began (its store row's created_at); speeds and ETA are measured against the
        wall clock from then, start-up included. Without it, from the first video's start."""
        self.run_id = run_id
        self.mode = mode
        self._clock = clock
        self._run_start = started_at
        self._rows: dict[str, _Row] = {}
        self._frozen: list[VideoProgress] = []  # the last published copy of each row, in input order
        self._dirty: set[int] = set()
        self._active: set[int] = set()
        self._counts = {s.value: 0 for s in VideoStatus}
        self._audio_total = 0.0
        self._audio_done = 0.0
        self._audio_remaining = 0.0
        self._pending_unknown = 0
        self._processed = 0.0
        self._unknown = 0
        self._unknown_processed = 0
        self._baseline_done = 0.0
        self._known = 0  # videos with a known duration, for estimating the unknown ones
        self._first_start: float | None = None
        self._last_terminal: float | None = None
        self._finished_at: float | None = None
        self._marked = False
        self._inputs = (0, 0)  # (resolved, total) input lines: videos arrive while resolution goes on
        self._version = 0
        self._cache: Snapshot | None = None
        self._cache_version = -1

    @property
    def version(self) -> int:
        """Bumped on every accepted change; equal versions mean equal snapshots."""
        return self._version

    def __len__(self) -> int:
        return len(self._rows)

    def count(self, status: VideoStatus) -> int:
        """Videos in `status` now (O(1))."""
        return self._counts[status.value]

    def get(self, video_id: str) -> VideoProgress | None:
        row = self._rows.get(video_id)
        return copy.copy(row.state.progress) if row else None

    def state_of(self, video_id: str) -> VideoState | None:
        """The live state of one video (for the ledger to write through; do not mutate)."""
        row = self._rows.get(video_id)
        return row.state if row else None

    def add_videos(self, rows: Iterable[Any]) -> None:
        """Add VideoItems or stored VideoRecords, in input order; ids already known are left as they are."""
        for item in rows:
            if item.video_id in self._rows:
                continue
            state = state_from_row(item, self._clock)
            baseline = (
                not isinstance(item, VideoItem)
                and state.progress.status is VideoStatus.DONE
                and getattr(item, "run_id", self.run_id) != self.run_id
            )
            row = _Row(state, len(self._frozen), baseline)
            self._rows[item.video_id] = row
            self._frozen.append(state.progress)  # replaced by a copy at the next build (dirty)
            self._counts[state.progress.status.value] += 1
            self._account(row)
            if baseline:
                self._baseline_done += state.progress.duration_s or 0.0
            else:
                self._note_times(state.progress)
            self._touch(row)

    def apply(self, event: ProgressEvent) -> bool:
        """Apply one event; returns False when it was ignored (unknown id, or it would undo a terminal state)."""
        row = self._rows.get(event.video_id)
        if row is None:
            return False
        before = row.state.progress.status
        if not advance(row.state, event):
            return False
        after = row.state.progress.status
        if after is not before:
            self._counts[before.value] -= 1
            self._counts[after.value] += 1
        self._account(row)
        self._note_times(row.state.progress)
        self._touch(row)
        return True

    def set_inputs(self, resolved: int, total: int) -> None:
        """How far input resolution has come; while it goes on the run is not finished (more videos may come)."""
        if (resolved, total) != self._inputs:
            self._inputs = (resolved, total)
            self._version += 1

    def mark_finished(self, at: float | None = None) -> None:
        """The run is over (all done, or stopped early): freeze the wall clock used for throughput."""
        self._marked = True
        self._finished_at = self._clock() if at is None else at
        self._version += 1

    def snapshot(self) -> Snapshot:
        if self._cache is not None and self._cache_version == self._version:
            return self._cache
        now = self._clock()
        for index in self._dirty:
            self._frozen[index] = copy.copy(self._row_at(index).state.progress)
        self._dirty.clear()
        for index in self._active:
            self._frozen[index] = self._live_copy(self._row_at(index), now)

        total = len(self._rows)
        terminal = sum(self._counts[s.value] for s in VideoStatus if s.is_terminal)
        resolving = self._inputs[0] < self._inputs[1]
        finished = self._marked or (total > 0 and terminal == total and not resolving)
        finished_at = self._finished_at if self._marked else (self._last_terminal if finished else None)
        end = finished_at if finished and finished_at is not None else now

        # Audio this run transcribed (not what an earlier run did) over wall-clock time: from the run's start (what
        # a person waited), and, named apart, from its first video's start (the processing alone).
        this_run = max(0.0, self._audio_done - self._baseline_done)
        start = self._run_start if self._run_start is not None else self._first_start
        throughput = this_run / (end - start) if start is not None and end > start else None
        processing = None
        if self._first_start is not None and end > self._first_start:
            processing = this_run / (end - self._first_start)
        remaining: float | None = self._audio_remaining
        if self._pending_unknown:
            remaining = (
                self._audio_remaining + self._pending_unknown * self._audio_total / self._known if self._known else None
            )
        if finished:
            eta = 0.0
        elif throughput and remaining is not None:
            eta = remaining / throughput
        else:
            eta = None
        fraction = self._overall(total)
        if resolving and not self._marked:
            fraction = min(fraction, UNFINISHED_CAP)  # the videos still being listed are not done either

        self._cache = Snapshot(
            run_id=self.run_id,
            videos=list(self._frozen),
            counts=dict(self._counts),
            audio_total_s=self._audio_total,
            audio_done_s=min(self._audio_done, self._audio_total),
            throughput_x=throughput,
            processing_x=processing,
            eta_s=eta,
            started_at=start,
            finished_at=finished_at,
            mode=self.mode,
            finished=finished,
            overall=fraction,
            lengths_unknown=self._unknown - self._unknown_processed,
            lengths_known=self._known,
            inputs_resolved=self._inputs[0],
            inputs_total=self._inputs[1],
        )
        self._cache_version = self._version
        return self._cache

    def _overall(self, total: int) -> float:
        """The run's progress, 0..1: audio dealt with over all audio, a video of unknown length standing in at
        the mean known length (an estimate, flagged on the snapshot), or the share of videos finished when no
        length is known yet. Failed videos are out of it (what can be done), cancelled ones never count as done,
        so the bar reads 100% only when everything that could be done is."""
        total -= self._counts[VideoStatus.FAILED.value]
        done = self._counts[VideoStatus.DONE.value] + self._counts[VideoStatus.SKIPPED.value]
        if total <= 0:
            return 1.0 if len(self._rows) and not self._inputs[0] < self._inputs[1] else 0.0
        if done == total:
            return 1.0
        if self._known:
            mean = self._audio_total / self._known
            whole = self._audio_total + self._unknown * mean
            fraction = (self._processed + self._unknown_processed * mean) / whole if whole > 0 else 0.0
        else:
            fraction = done / total
        return min(max(0.0, fraction), UNFINISHED_CAP)

    # -- internals -------------------------------------------------------------------------------------------

    def _row_at(self, index: int) -> _Row:
        return self._rows[self._frozen[index].video_id]

    def _live_copy(self, row: _Row, now: float) -> VideoProgress:
        v = copy.copy(row.state.progress)
        elapsed = work_s(row.state, now)
        if elapsed is not None:
            v.elapsed_s = elapsed
        if v.status is VideoStatus.TRANSCRIBING and v.speed_x and v.duration_s:
            v.eta_s = v.duration_s * (1.0 - v.stage_progress) / v.speed_x
        return v

    def _account(self, row: _Row) -> None:
        """Swap this row's old contribution to the sums for its new one."""
        old, new = row.contrib, _contribution(row)
        self._audio_total += new[0] - old[0]
        self._audio_done += new[1] - old[1]
        self._audio_remaining = max(0.0, self._audio_remaining + new[2] - old[2])
        self._pending_unknown += new[3] - old[3]
        self._processed += new[4] - old[4]
        self._unknown += new[5] - old[5]
        self._unknown_processed += new[6] - old[6]
        self._known += (new[0] > 0) - (old[0] > 0)
        row.contrib = new

    def _note_times(self, v: VideoProgress) -> None:
        if v.started_at is not None and (self._first_start is None or v.started_at < self._first_start):
            self._first_start = v.started_at
        if v.status.is_terminal and v.finished_at is not None:
            if self._last_terminal is None or v.finished_at > self._last_terminal:
                self._last_terminal = v.finished_at

    def _touch(self, row: _Row) -> None:
        self._dirty.add(row.index)
        if row.state.progress.status.is_active:
            self._active.add(row.index)
        else:
            self._active.discard(row.index)
        self._version += 1


# ---- words for the global figures: one rule for the dashboard and the CLI -----------------------------------

def clock(seconds: float | None) -> str:
    """1:02:03 / 4:05 style; '–' when unknown."""
    if seconds is None:
        return "–"
    total = int(round(max(0.0, seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_progress(snapshot: Snapshot) -> str:
    """What the global bar means, honestly: of the audio when lengths are known, marked as an estimate while some
    are not, of the videos when none is."""
    # Failed videos are out of the figure (what can be done); the counts beside the bar say how many failed.
    total = sum(1 for v in snapshot.videos if v.status is not VideoStatus.FAILED)
    # Whole percent; just short of the end, one decimal, so an unfinished run reads 99.9% and never "100%".
    percent = f"{snapshot.progress:.0%}" if snapshot.progress < 0.995 or snapshot.progress >= 1 else \
        f"{snapshot.progress:.1%}"
    if total == 0 and snapshot.videos:
        return "none of the inputs could be done"
    if snapshot.lengths_known == 0:
        done = sum(1 for v in snapshot.videos if v.status in (VideoStatus.DONE, VideoStatus.SKIPPED))
        return f"{done} of {total} video{'' if total == 1 else 's'} done (lengths not known yet)"
    if snapshot.estimated:
        n = snapshot.lengths_unknown
        return f"~{percent} of the audio (estimated: {n} video{'' if n == 1 else 's'} of unknown length)"
    unknown = total - snapshot.lengths_known  # cancelled before their length was known
    aside = f"; {unknown} video{'' if unknown == 1 else 's'} of unknown length besides" if unknown > 0 else ""
    return (f"{percent} of the audio ({clock(snapshot.audio_done_s)} of {clock(snapshot.audio_total_s)} "
            f"transcribed{aside})")


def describe_inputs(snapshot: Snapshot) -> str | None:
    """'resolved 120 of 500 inputs' while inputs are still being resolved (videos keep joining), else None."""
    if not snapshot.resolving:
        return None
    total = snapshot.inputs_total
    return f"resolved {snapshot.inputs_resolved} of {total} input{'' if total == 1 else 's'}"


def describe_eta(snapshot: Snapshot) -> str:
    """'–' when no honest figure exists (nothing measured yet, no length known, or inputs still being resolved:
    the work still to come is unknown), '~' when it is an estimate."""
    if snapshot.finished or snapshot.eta_s is None or snapshot.resolving:
        return "–"
    return ("~" if snapshot.estimated else "") + clock(snapshot.eta_s)


def current_work(snapshot: Snapshot) -> tuple[list[VideoProgress], dict[str, list[VideoProgress]]]:
    """What each worker does now, and what it has fetched ahead.

    A parallel worker downloads its next video while it transcribes one: that prefetch is not work in progress
    (counting it made "In progress 4" on 2 workers). Per worker the current video is the one transcribing, else the
    one whose download started first; the others are its next up, keyed by worker.
    """
    by_worker: dict[str, list[VideoProgress]] = {}
    for v in snapshot.active:
        by_worker.setdefault(v.worker or LOCAL_WORKER, []).append(v)
    current: list[VideoProgress] = []
    next_up: dict[str, list[VideoProgress]] = {}
    for worker, videos in by_worker.items():
        videos.sort(key=lambda v: (v.status is not VideoStatus.TRANSCRIBING, v.started_at or 0.0))
        current.append(videos[0])
        if videos[1:]:
            next_up[worker] = videos[1:]
    return current, next_up
