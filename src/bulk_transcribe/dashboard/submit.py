"""Turn what was typed, uploaded and chosen in the page into a RunConfig, or into clear messages saying why not.

Nothing here raises at the page: problems come back as data (`errors` stop the start, `warnings` name the lines
that were skipped while the rest goes ahead), so the page shows them with st.error / st.warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import (
    BUNDLED_MODEL,
    DEFAULT_FORMATS,
    DEFAULT_WORKERS,
    MEDIA_EXTENSIONS,
    DownloadOptions,
    RunConfig,
    TranscribeOptions,
)
from ..inputs.lists import numbered_lines
from ..media.urls import kind_of, looks_like_a_domain, not_a_url_or_file, web_url_problem
from ..models import SourceKind
from .paths import OutsideRootError, confine
from .settings import DEFAULT_OUTPUT_FOLDER, DashboardSettings

MAX_WORKERS = 64
"""Upper bound offered for parallel workers (a cluster can have many GPUs; a typo should not ask for 10,000)."""

MAX_SHOWN_PROBLEMS = 8
"""Skipped lines listed one by one before the rest is summarised as a count."""

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5})$")


@dataclass(frozen=True)
class RunSettings:
    """What the settings widgets hold; defaults are what the page shows first."""

    parallel: bool = False
    workers: int = DEFAULT_WORKERS
    model: str = BUNDLED_MODEL
    language: str = ""
    """Blank = detect."""
    batch_size: int = 0
    """Chunks decoded together; 1 = unbatched, 0 = the device's default (see TranscribeOptions.batch_size)."""
    formats: tuple[str, ...] = DEFAULT_FORMATS
    rate_limit_kib: int = 0
    """Per-download limit in KiB/s; 0 = unlimited."""
    pause_s: float = 0.0
    """Least pause between the starts of two downloads."""
    ray_address: str = ""
    """Blank = an embedded local Ray."""
    output_folder: str = DEFAULT_OUTPUT_FOLDER
    recheck: bool = False
    """Transcribe flagged transcripts again with safer options and keep the better (RunConfig.recheck)."""
    recheck_model: str = ""
    """Blank = the run's own model."""


def settings_of_run(config: dict, output_root: Path) -> dict[str, object]:
    """A run's stored settings as the form's values (RunSettings field -> value): what a reopened or reloaded page
    puts in the form, so Start does what the run on screen did. Only what the store says; the rest stays."""
    transcribe, download = config.get("transcribe") or {}, config.get("download") or {}
    values: dict[str, object] = {
        "parallel": bool(config.get("parallel")),
        "workers": int(config.get("workers") or DEFAULT_WORKERS),
        "model": transcribe.get("model") or BUNDLED_MODEL,
        "language": transcribe.get("language") or "",
        "batch_size": int(transcribe.get("batch_size") or 0),
        "formats": list(config.get("formats") or DEFAULT_FORMATS),
        "rate_limit_kib": int(download.get("rate_limit") or 0) // 1024,
        "pause_s": float(download.get("sleep_s") or 0.0),
        "ray_address": config.get("ray_address") or "",
        "recheck": bool(config.get("recheck")),
        "recheck_model": config.get("recheck_model") or "",
    }
    out = Path(str(config.get("out_dir") or ""))
    root = Path(output_root).resolve()
    if str(out) and (root == out.resolve() or root in out.resolve().parents):
        values["output_folder"] = out.resolve().relative_to(root).as_posix() or DEFAULT_OUTPUT_FOLDER
    return values


@dataclass
class Submission:
    videos_text: str = ""
    list_files: list[tuple[str, str]] = field(default_factory=list)
    """(file name, text) of each uploaded list."""
    uploaded_paths: list[Path] = field(default_factory=list)
    """Media already saved by `uploads.save_upload`."""
    settings: RunSettings = field(default_factory=RunSettings)


@dataclass
class SubmitResult:
    config: RunConfig | None = None
    inputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(line, reason) of every line refused here: they become failed rows of the run, never silently dropped."""

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors


def check_input(line: str, settings: DashboardSettings) -> list[str]:
    """The input(s) one line stands for: a web URL as is, a local file, or a folder's media files.

    Folders are expanded here rather than by the pipeline so that every file is checked against the media root
    on its own (a symlink inside an allowed folder must not smuggle in a file from elsewhere).
    """
    if kind_of(line) is SourceKind.URL:
        problem = web_url_problem(line)
        if problem:
            raise ValueError(problem)
        return [line.strip()]
    try:
        path = confine(line, settings.input_roots)
    except FileNotFoundError:
        if looks_like_a_domain(line):
            raise ValueError(not_a_url_or_file(line)) from None
        raise
    if path.is_dir():
        files = []
        for child in sorted(path.rglob("*")):
            if child.suffix.lower() not in MEDIA_EXTENSIONS or child.name.startswith(".") or not child.is_file():
                continue
            try:
                files.append(str(confine(child, settings.input_roots)))
            except (OutsideRootError, FileNotFoundError):
                continue  # a link leading out of the media root, or a dangling one: not ours to read
        if not files:
            raise ValueError(f"no media files in folder {line}")
        return files
    return [str(path)]


def build_run(submission: Submission, settings: DashboardSettings) -> SubmitResult:
    result = SubmitResult()
    sources = [("Videos", submission.videos_text)] + list(submission.list_files)
    problems: list[str] = []
    # Repeats are kept: the engine lists each input once and counts the duplicates for the run header and the
    # manifest (one rule for the CLI and the page).
    for origin, text in sources:
        for number, line in numbered_lines(text):
            try:
                result.inputs.extend(check_input(line, settings))
            except (ValueError, OSError) as exc:
                problems.append(f"{origin} line {number}: {_one_line(exc)}")
                result.rejected.append((line, _one_line(exc)))
    for path in submission.uploaded_paths:
        try:
            result.inputs.append(str(confine(path, settings.input_roots)))
        except (ValueError, OSError) as exc:
            problems.append(f"upload {Path(path).name}: {_one_line(exc)}")
            result.rejected.append((Path(path).name, _one_line(exc)))

    if problems:
        shown = problems[:MAX_SHOWN_PROBLEMS]
        more = len(problems) - len(shown)
        result.warnings.append(
            f"{len(problems)} input line(s) cannot be used and are listed as failed: " + "; ".join(shown)
            + (f"; and {more} more" if more else "")
        )
    if not result.inputs:
        result.errors.append(
            "Nothing to transcribe: paste video URLs or local paths into Videos (one per line), "
            "or upload a list file or media files."
            if not problems else "None of the inputs can be used; see the skipped lines above."
        )

    config_errors: list[str] = []
    run_settings = submission.settings
    out_dir = _output_dir(run_settings.output_folder, settings, config_errors)
    transcribe = _transcribe_options(run_settings, settings, config_errors)
    recheck_model = recheck_model_of(run_settings.recheck_model, transcribe, settings, config_errors)
    if not 1 <= run_settings.workers <= MAX_WORKERS:
        config_errors.append(f"Workers must be between 1 and {MAX_WORKERS}.")
    ray_address = run_settings.ray_address.strip() or None
    if ray_address and not _RAY_ADDRESS.match(ray_address):
        config_errors.append(
            f"Ray address {ray_address!r} is not one of: auto, HOST:PORT, ray://HOST:10001 (or blank for local Ray)."
        )
    if run_settings.rate_limit_kib < 0 or run_settings.pause_s < 0:
        config_errors.append("Rate limit and pause cannot be negative.")
    result.errors.extend(config_errors)
    if result.errors:
        return result
    try:
        result.config = RunConfig(
            inputs=tuple(result.inputs),
            out_dir=out_dir,
            formats=tuple(run_settings.formats),
            download=DownloadOptions(
                rate_limit=run_settings.rate_limit_kib * 1024 or None,
                sleep_s=float(run_settings.pause_s),
            ),
            transcribe=transcribe,
            parallel=bool(run_settings.parallel),
            workers=int(run_settings.workers),
            ray_address=ray_address,
            rejected=tuple(result.rejected),
            recheck=bool(run_settings.recheck or recheck_model),
            recheck_model=recheck_model,
        )
    except ValueError as exc:  # RunConfig's own checks (formats, workers) say what is wrong in one line
        result.errors.append(_sentence(_one_line(exc)))
    return result


def _output_dir(folder: str, settings: DashboardSettings, errors: list[str]) -> Path:
    folder = folder.strip() or DEFAULT_OUTPUT_FOLDER
    try:
        path = settings.output_folder(folder)
    except OutsideRootError:
        errors.append(f"Output folder {folder!r} must be inside {settings.output_root} (the server's operator can "
                      "allow another with BULK_TRANSCRIBE_OUTPUT_ROOT).")
        return settings.output_root / DEFAULT_OUTPUT_FOLDER
    if path.exists() and not path.is_dir():
        errors.append(f"Output folder {folder!r} is a file, not a folder.")
    return path


def _transcribe_options(run: RunSettings, settings: DashboardSettings, errors: list[str]) -> TranscribeOptions:
    language = run.language.strip().lower() or None
    if language and not _LANGUAGE.match(language):
        errors.append(f"Language {run.language!r} is not an ISO code such as en, de or fr (leave blank to detect).")
        language = None
    model = _model(run.model, settings, errors)
    from ..media.model_check import english_only

    if language and language != "en" and english_only(model):
        shown = "The bundled model (tiny.en)" if model == BUNDLED_MODEL else f"Model {run.model.strip()!r}"
        errors.append(f"{shown} transcribes English only: leave Language blank or use en, or choose a "
                      f"multilingual model for {language!r}.")
        language = None
    if run.batch_size < 0:
        errors.append(f"Batch size {run.batch_size} must be 0 (the device's default) or more.")
    options = TranscribeOptions(model=model, language=language, batch_size=max(0, run.batch_size))
    if not errors:
        from ..media.model_check import check_model

        # The model is found (and fetched once, if it must be) before the run starts, as the CLI does: a bad name
        # is a line on the form, not a run whose every video fails.
        problem = check_model(options)
        if problem:
            errors.append(_sentence(problem))
    return options


def recheck_model_of(text: str, transcribe: TranscribeOptions, settings: DashboardSettings,
                     errors: list[str]) -> str | None:
    """The recheck model typed in the form (None when blank: the run's own model), confined and checked up front
    as the run's model is."""
    if not text.strip():
        return None
    found: list[str] = []
    model = _model(text, settings, found)
    if not found:
        from ..media.model_check import check_model

        problem = check_model(replace(transcribe, model=model))
        found += [_sentence(problem)] if problem else []
    errors.extend(f"Recheck model: {e[:1].lower() + e[1:]}" for e in found)
    return None if found else model


def _model(text: str, settings: DashboardSettings, errors: list[str]) -> str:
    """`bundled`, a faster-whisper model name, or else a folder: read from this server's disk, so it obeys the
    media root like any input, relative names included (resolved inside the root, never against the server's
    working folder). A refusal says nothing about what exists outside the root."""
    from faster_whisper.utils import available_models

    name = text.strip() or BUNDLED_MODEL
    if name == BUNDLED_MODEL or name in available_models():
        return name
    try:
        return str(confine(name, settings.input_roots))
    except OutsideRootError as exc:
        errors.append(f"Model folder: {_one_line(exc)}.")
    except (ValueError, OSError):
        errors.append(f"Model folder {name!r} is not in the media folder {settings.media_root} (give `bundled`, a "
                      "faster-whisper model name, or a model folder inside it).")
    return BUNDLED_MODEL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
