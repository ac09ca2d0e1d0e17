"""Subtitle line shaping, on a real model transcript, parsed back from the srt and vtt written."""

from __future__ import annotations

import pytest

from bulk_transcribe.config import TranscribeOptions
from bulk_transcribe.models import Segment, Transcript
from bulk_transcribe.config import LineShape
from bulk_transcribe.outputs.subtitles import shape_cues
from bulk_transcribe.media.transcribe import Transcriber
from bulk_transcribe.outputs.writers import render_srt, render_vtt
from subtitle_files import parse_srt, parse_vtt


@pytest.fixture(scope="module")
def jfk_transcripts(jfk_flac) -> dict[bool, Transcript]:
    """With and without word timestamps: shaping uses word times when there are some, shares out time otherwise."""
    model = Transcriber(TranscribeOptions(cpu_threads=2))
    return {words: model.transcribe(jfk_flac, "jfk", options=TranscribeOptions(cpu_threads=2, word_timestamps=words))
            for words in (True, False)}


@pytest.mark.parametrize("words", [True, False])
@pytest.mark.parametrize("width, count", [(20, 1), (32, 2), (42, None)])
def test_shaped_srt_and_vtt_parse_back_within_limits(jfk_transcripts, words, width, count):
    t = jfk_transcripts[words]
    shape = LineShape(width, count)
    for cues in (parse_srt(render_srt(t, shape)), parse_vtt(render_vtt(t, shape))):
        assert len(cues) >= len(t.segments)
        for start, end, text in cues:
            lines = text.split("\n")
            assert count is None or len(lines) <= count
            # A line is over the width only when it is one word that is longer by itself.
            assert all(len(line) <= width or " " not in line for line in lines)
            assert start <= end
        # Nothing lost, nothing cut mid-word: the words read back are the transcript's words, in order.
        assert " ".join(" ".join(c[2].split()) for c in cues) == " ".join(t.text.split())
        starts = [c[0] for c in cues]
        assert starts == sorted(starts)
        assert cues[0][0] == pytest.approx(t.segments[0].start, abs=0.001)
        assert cues[-1][1] == pytest.approx(t.segments[-1].end, abs=0.001)


def test_no_shape_keeps_one_cue_per_segment(jfk_transcripts):
    t = jfk_transcripts[False]
    assert len(parse_srt(render_srt(t))) == len([s for s in t.segments if s.text.strip()])


def test_a_word_longer_than_the_width_gets_its_own_line_and_time_is_shared_by_characters():
    t = Transcript("v", "en", 1.0, 10.0, [Segment(0.0, 10.0, " aa supercalifragilistic bb ")], "m")
    cues = shape_cues(t, LineShape(5, 1))
    assert [c[2] for c in cues] == ["aa", "supercalifragilistic", "bb"]
    assert cues[0][0] == 0.0 and cues[-1][1] == 10.0
    assert cues[1][0] == pytest.approx(10 * 2 / 24) and cues[1][1] == pytest.approx(10 * 22 / 24)


@pytest.mark.parametrize("width, count", [(0, None), (None, 2), (10, 0)])
def test_bad_shapes_are_refused(width, count):
    with pytest.raises(ValueError):
        LineShape(width, count)
