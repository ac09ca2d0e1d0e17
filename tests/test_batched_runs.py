"""Both modes accept a batch size: a sequential run and a parallel run on a real local Ray (one per module) decode
with the batched pipeline (each transcript's JSON says so) and give complete transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulk_transcribe.runs import run_batch
from bulk_transcribe.config import TranscribeOptions
from textmetrics import wer


def _transcripts(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/transcript.json")}


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_batch_size_reaches_the_workers(make_config, parallel, request, tmp_path, jfk_flac, jfk_text, speech_clips):
    if parallel:
        request.getfixturevalue("ray_local")
    clip = speech_clips["library"]
    result = run_batch(make_config(tmp_path / "out", [jfk_flac, clip.path], formats=("txt", "json"), parallel=parallel,
                                   workers=1, transcribe=TranscribeOptions(cpu_threads=1, batch_size=4)))
    assert result.error is None, result.error
    assert result.counts["done"] == 2
    found = _transcripts(tmp_path / "out")
    assert len(found) == 2
    by_text = {("jfk" if "americans" in t["text"].lower() else "library"): t for t in found.values()}
    assert wer(jfk_text, by_text["jfk"]["text"]) <= 0.15
    assert wer(clip.text, by_text["library"]["text"]) <= 0.3
    for t in found.values():
        assert t["batch_size"] == 4, "decoded by the batched pipeline in this mode"
        ends = [s["end"] for s in t["segments"]]
        assert ends and ends == sorted(ends) and ends[-1] <= t["duration"]
