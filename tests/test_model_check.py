"""Model options checked before a run: English-only models, translate, unknown or unavailable models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bulk_transcribe.config import TranscribeOptions
from bulk_transcribe.layout import STATE_DB_NAME
from bulk_transcribe.media.model_check import check_model, locate_model


def test_bundled_model_is_found_and_known_to_be_english_only():
    info = locate_model("bundled")
    assert info.english_only and (Path(info.path) / "model.bin").is_file()
    assert check_model(TranscribeOptions()) is None
    assert check_model(TranscribeOptions(language="en")) is None


@pytest.mark.parametrize("args, words", [
    (["--language", "de"], ["english-only", "'de'"]),
    (["--language", "xx"], ["unknown language", "'xx'"]),
    (["--task", "translate"], ["english-only", "translate"]),
    (["--model", "small"], ["cannot load model 'small'", "not available offline"]),
    (["--model", "no-such-model"], ["cannot load model 'no-such-model'", "not a faster-whisper model name"]),
    (["--model", "./missing-folder"], ["cannot load model", "not found"]),
])
def test_refused_before_the_run_with_one_plain_line(run_cli, tmp_path, jfk_flac, monkeypatch, args, words):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: 'small' is not there, whatever this host has
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("run", str(jfk_flac), "--out", str(out), "--quiet", *args)
    assert code == 2, stdout + stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for word in words:
        assert word in stderr.lower() or word in stderr
    assert "Error:" not in stderr and "Exception" not in stderr  # no Python class names
    assert not (out / STATE_DB_NAME).exists()  # refused before any run was registered


def test_a_multilingual_folder_may_translate_and_take_any_language(tmp_path):
    """Multilingual is read from the tokenizer's size, as CTranslate2 does: the bundled folder with one more token."""
    bundled = Path(locate_model("bundled").path)
    folder = tmp_path / "multi"
    folder.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (folder / name).symlink_to(bundled / name)
    vocab = (bundled / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    (folder / "vocabulary.txt").write_text("\n".join(vocab + ["<|extra|>"]) + "\n", encoding="utf-8")
    assert not locate_model(str(folder)).english_only
    assert check_model(TranscribeOptions(model=str(folder), language="de", task="translate")) is None
    shutil.rmtree(folder)
