"""Plain data that every part of Bulk Transcribe shares.

Stdlib only and picklable: these objects cross process boundaries (Ray actors, the Streamlit server's background
worker) and land in SQLite, so they hold no handles, locks or clients.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import unquote, urlsplit

from .errors import one_line
from .quality import Flag, Quality


class VideoStatus(str, Enum):
    """Where one video stands. Terminal states never change within a run."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    TRANSCRIBING = "transcribing"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self in (VideoStatus.DOWNLOADING, VideoStatus.TRANSCRIBING)


TERMINAL_STATUSES = frozenset(
    {VideoStatus.DONE, VideoStatus.FAILED, VideoStatus.SKIPPED, VideoStatus.CANCELLED}
)


class RunStatus(str, Enum):
    """Where a whole run stands. STOPPED marks a run whose owner died before recording its end: shown so while the
    folder has no live owner, and written by the next owner of the folder (close_stale_runs)."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"
    STOPPED = "stopped"


class RunMode(str, Enum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


LOCAL_WORKER = "local"
"""The name of the in-process worker (sequential mode's only one; a parallel run's first while Ray starts, beside
`local-2`...); Ray workers are `worker-N`."""


class SourceKind(str, Enum):
    URL = "url"
    FILE = "file"


def video_id_for(source: str) -> str:
    """A stable id for a source (normalised URL or absolute path): the key that makes resume work."""
    return hashlib.sha1(source.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def default_title(source: str, kind: "SourceKind | str") -> str:
    """A title before the site gives one: a URL's file name (decoded, its query and fragment left out) or host, a
    file's name."""
    if SourceKind(kind) == SourceKind.URL:
        try:
            parts = urlsplit(source)
            name = unquote(parts.path).rstrip("/").rsplit("/", 1)[-1]
            return name or parts.hostname or source
        except ValueError:  # a malformed URL (its row says so): named as given
            return source
    return source.rstrip("/").rsplit("/", 1)[-1] or source


@dataclass
class VideoItem:
    """One video to transcribe, as resolved from the user's inputs.

    `error` is set when the input could not even be resolved (missing file, 404 on a playlist, unsupported URL):
    such an item is recorded as failed with that reason and never scheduled.
    """

    source: str
    kind: SourceKind
    input: str
    title: str = ""
    duration_s: float | None = None
    video_id: str = ""
    error: str | None = None
    meta: dict = field(default_factory=dict)
    """What the site says beyond the title, for output templates and the download archive: id, extractor_key,
    uploader, upload_date, playlist, playlist_index (only keys the site gave; plain strings and numbers)."""
    info: dict | None = field(default=None, compare=False, repr=False)
    """In memory only, never stored: yt-dlp's sanitized info for a single video extracted while resolving (plain
    data, picklable for Ray), so its download makes no second page request. Signed media URLs in it expire: the
    downloader uses it only while young (download.INFO_MAX_AGE_S) and re-extracts once when it fails."""
    request_url: str | None = field(default=None, compare=False, repr=False)
    """In memory only, never stored or shown: the URL to request when `source` masks a user:password (redact.py)."""
    retryable: bool = False
    """With `error`: whether the same line may work later (a site down, a timeout), rather than never (a file that is
    not there, a malformed URL). A retry offers only these."""
    identity: str = ""
    """What makes two items one video (media/urls.identity_of: a site's own id, or the media URL's canonical
    spelling, or a file's path): a later item with the same identity is a duplicate, never transcribed again."""
    recheck_of: Transcript | None = field(default=None, compare=False, repr=False)
    """In memory only: the finished, flagged transcript a `--recheck` rerun compares its recheck with (read from
    OUT's stored copy by the intake). The video is then transcribed once, by the recheck alone: the transcript the
    user already has is what the recheck must beat, not a fresh (and, under temperature fallback, different) one."""

    def __post_init__(self) -> None:
        if not self.video_id:
            self.video_id = video_id_for(self.source)
        if not self.title:
            self.title = default_title(self.source, self.kind)

    @classmethod
    def failed(cls, source: str, kind: SourceKind, input: str, reason: str, **fields) -> "VideoItem":
        """An input that cannot become a video, with its reason as one line: recorded failed, never scheduled."""
        return cls(source, kind, input, error=one_line(reason), **fields)


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] | None = None
    # The model's own view of the segment (faster-whisper gives each segment its 30 s window's values): what
    # quality.py measures a transcript by, and what transcript.json shows so a reader can find doubtful stretches.
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None


@dataclass
class Transcript:
    """What a transcription returns: enough to write every output format without the model."""

    video_id: str
    language: str
    language_probability: float
    duration_s: float
    segments: list[Segment]
    model: str
    transcribe_s: float = 0.0
    download_s: float = 0.0
    worker: str = ""
    batch_size: int = 1
    """How it was decoded: 1 = unbatched; more = 30 s chunks in batches of this size (timestamps per chunk unless
    word timestamps are on), possibly shared with other videos of a bundle."""
    notes: list[str] = field(default_factory=list)
    """What a reader should know about a finished transcript (e.g. "audio track 1 of 2 has no speech; ...")."""
    quality: Quality | None = None
    """How far to trust it (quality.py): signals, flags with reasons, a recheck when one ran."""

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def speed_x(self) -> float:
        """Audio seconds transcribed per second of model time (x real time)."""
        return self.duration_s / self.transcribe_s if self.transcribe_s > 0 else 0.0


class EventKind(str, Enum):
    """What a ProgressEvent reports. Status-changing kinds map onto VideoStatus."""

    QUEUED = "queued"
    DOWNLOAD_STARTED = "download_started"
    DOWNLOAD_PROGRESS = "download_progress"
    DOWNLOADED = "downloaded"
    TRANSCRIBE_STARTED = "transcribe_started"
    TRANSCRIBE_PROGRESS = "transcribe_progress"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    RETRYING = "retrying"


@dataclass
class ProgressEvent:
    """One thing that happened to one video. Fields that do not apply stay None."""

    video_id: str
    kind: EventKind
    time: float = field(default_factory=time.time)
    worker: str | None = None
    # Fraction 0..1 of the current stage (download bytes, or transcribed seconds / duration).
    progress: float | None = None
    downloaded_bytes: int | None = None
    total_bytes: int | None = None
    download_speed: float | None = None  # bytes/s
    transcribed_s: float | None = None
    duration_s: float | None = None
    text: str | None = None  # the latest transcribed line
    error: str | None = None
    note: str | None = None
    """What a reader should know about a finished transcript (its Transcript.notes, joined): never an error."""
    retryable: bool | None = None
    """With FAILED: whether another try may change anything (a timeout, a server error) or never can (bad input)."""
    attempt: int | None = None
    outputs: dict[str, str] | None = None
    speed_x: float | None = None
    language: str | None = None
    """With DONE: the transcript's language."""
    quality: Quality | None = None
    """With DONE: how far to trust the transcript (its flags are what the screens show)."""


@dataclass
class VideoProgress:
    """One row of the status table."""

    video_id: str
    title: str
    source: str
    duration_s: float | None
    status: VideoStatus = VideoStatus.QUEUED
    worker: str = ""
    progress: float = 0.0  # of the whole video, 0..1
    stage_progress: float = 0.0  # of the current stage, 0..1
    speed_x: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    attempts: int = 0
    error: str | None = None
    """Why it failed, was cancelled, or is being retried."""
    note: str | None = None
    """What a reader should know about its finished transcript (e.g. which audio track was transcribed)."""
    retryable: bool | None = None
    """When failed: whether a retry may change anything (None: not known)."""
    current_text: str = ""
    downloaded_bytes: int | None = None
    download_speed: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    language: str | None = None
    """The finished transcript's language."""
    flags: list[Flag] = field(default_factory=list)
    """Why its finished transcript may not be trusted (empty: nothing looks wrong)."""
    rechecked: bool = False
    """Its transcript was rechecked (the flags are then the kept transcript's): no second recheck is offered."""

    @property
    def needs_review(self) -> bool:
        return self.status is VideoStatus.DONE and bool(self.flags)


@dataclass
class Snapshot:
    """Everything a screen needs, computed once, cheap to pickle."""

    run_id: str
    videos: list[VideoProgress]
    counts: dict[str, int]
    audio_total_s: float
    audio_done_s: float
    throughput_x: float | None
    """Audio this run transcribed per second of wall-clock time since the run started (start-up included)."""
    eta_s: float | None
    started_at: float | None
    finished_at: float | None
    mode: str = "sequential"
    finished: bool = False
    overall: float = 0.0
    """Progress of the whole run, 0..1, weighted by audio length; below 1 while any video is unfinished."""
    lengths_unknown: int = 0
    """Unfinished videos whose length is not known yet: while > 0 the progress and ETA are estimates."""
    lengths_known: int = 0
    """Videos whose length is known (0: progress counts videos, and there is no honest ETA)."""
    inputs_resolved: int = 0
    """Input lines (URLs, files, folders, list entries) resolved so far: videos keep arriving while this is below
    `inputs_total`, and the run cannot be finished before."""
    inputs_total: int = 0
    processing_x: float | None = None
    """The same audio per second since the first video started: the processing alone, start-up left out."""

    @property
    def resolving(self) -> bool:
        """True while inputs are still being resolved (more videos may join the table)."""
        return self.inputs_resolved < self.inputs_total

    @property
    def progress(self) -> float:
        return self.overall

    @property
    def estimated(self) -> bool:
        """True while the global figures stand on a guess for videos of unknown length."""
        return self.lengths_unknown > 0 and not self.finished

    @property
    def needs_review(self) -> int:
        """Finished videos whose transcript earned a flag (quality.py): the ones a person should look at."""
        return sum(1 for v in self.videos if v.needs_review)

    @property
    def active(self) -> list[VideoProgress]:
        return [v for v in self.videos if v.status.is_active]
