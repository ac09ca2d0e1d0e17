"""Check the model options before a run starts: the model can be found, and it can do what was asked.

One place for the CLI and the dashboard: `check_model(options)` returns None when all is well, or one plain line
saying what is wrong (no Python class names), so a bad `--model` or `--language` is refused before any video is
registered instead of failing every video after the run has started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..config import TranscribeOptions

MULTILINGUAL_VOCABULARY = 51865
"""Whisper's multilingual tokenizers hold at least this many tokens; the English-only ones (`*.en`) 51864.
CTranslate2 decides `is_multilingual` the same way."""

TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    """As the user gave it."""
    path: str
    """What WhisperModel will load: a local folder or a faster-whisper name found in the cache."""
    english_only: bool


def language_codes() -> frozenset[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def _english_only_folder(folder: Path) -> bool:
    vocabulary = folder / "vocabulary.txt"
    if vocabulary.is_file():
        with vocabulary.open(encoding="utf-8") as f:
            return sum(1 for _ in f) < MULTILINGUAL_VOCABULARY
    return folder.name.endswith(".en")


def english_only(name: str) -> bool:
    """A cheap guess for forms and help (no download): the bundled tiny.en, `*.en` names, and local folders with an
    English-only vocabulary. `check_model` is the real check."""
    name = (name or "").strip() or config.BUNDLED_MODEL
    if name == config.BUNDLED_MODEL or name.lower().endswith(".en"):
        return True
    folder = Path(name).expanduser()
    return folder.is_dir() and _english_only_folder(folder)


def locate_model(name: str) -> ModelInfo:
    """Find the model without loading it. Raises ValueError with a plain message when it cannot be had."""
    from .transcribe import resolve_model

    try:
        path = resolve_model(name)
    except ValueError as exc:
        raise ValueError(f"cannot load model {name!r}: {exc}") from None
    if Path(path).is_dir():
        return ModelInfo(name, path, _english_only_folder(Path(path)))
    from faster_whisper.utils import available_models, download_model

    if "/" not in path and path not in available_models():
        raise ValueError(f"cannot load model {name!r}: not a local folder and not a faster-whisper model name "
                         f"({', '.join(available_models())})")
    try:
        folder = download_model(path, local_files_only=True)
    except Exception:  # noqa: BLE001 — not cached: fetch it now, once, rather than in every worker mid-run
        try:
            folder = download_model(path)
        except Exception as exc:  # noqa: BLE001 — offline, unknown repository, no disk: all one plain line
            raise ValueError(
                f"cannot load model {name!r}: not a local folder and not available offline, and "
                f"{_download_problem(exc)}; use '{config.BUNDLED_MODEL}' or a local model folder") from None
    return ModelInfo(name, folder, _english_only_folder(Path(folder)) or path.endswith(".en"))


def _download_problem(exc: BaseException) -> str:
    """The Hub's errors run to paragraphs and name library classes: say which of two things went wrong."""
    text = str(exc).lower()
    if any(word in text for word in ("connect", "internet", "resolve", "name or service", "timed out", "offline")):
        return "the Hugging Face Hub cannot be reached"
    return "the Hugging Face Hub has no such model (or refused the download)"


def _label(info: ModelInfo) -> str:
    return f"{config.BUNDLED_MODEL} (tiny.en)" if info.name == config.BUNDLED_MODEL else info.name


def check_model(options: TranscribeOptions) -> str | None:
    """None when the model can be had and can do the task in the language asked; otherwise why not, in one line."""
    task = getattr(options, "task", "transcribe")
    if task not in TASKS:
        return f"unknown task {task!r}; choose transcribe or translate"
    language = (options.language or "").strip().lower() or None
    if language is not None and language not in language_codes():
        return f"unknown language {options.language!r}; give an ISO 639-1 code such as en, de, fr or ja"
    try:
        info = locate_model(options.model)
    except ValueError as exc:
        return str(exc)
    if info.english_only and language not in (None, "en"):
        return (f"model {_label(info)!r} is English-only: it cannot transcribe language {language!r}; "
                "use a multilingual model (e.g. --model small) or --language en")
    if info.english_only and task == "translate":
        return (f"model {_label(info)!r} is English-only: --task translate needs a multilingual model "
                "(e.g. --model small)")
    return None
