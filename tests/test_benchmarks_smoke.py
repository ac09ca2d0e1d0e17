"""The benchmarks' quick paths import, and their pure helpers compute the right figures (no timing here)."""

from __future__ import annotations

import math

import pytest

from benchmarks import (bench_batching, bench_library, bench_memory, bench_overlap, bench_quality, bench_scale,
                        bench_scheduling, bench_startup, bench_streaming, bench_throughput, common, corpus,
                        run_all)


def test_ratios_line_round_trips():
    line = common.ratios_line({"seq_over_R1": 0.9712, "par_over_seq": 1.93})
    assert line == "RATIOS seq_over_R1=0.9712 par_over_seq=1.93"
    assert common.parse_ratios(line) == {"seq_over_R1": 0.9712, "par_over_seq": 1.93}
    assert run_all.prefixed("scale", {"a": 1.0}) == {"scale.a": 1.0}
    with pytest.raises(ValueError):
        common.parse_ratios("speed 3x")
    assert math.isnan(common.ratio(1.0, 0.0))


def test_lpt_split_balances_longest_first():
    bins = bench_throughput.lpt_split([10, 1, 7, 3, 5, 4], 2)
    loads = sorted(sum([10, 1, 7, 3, 5, 4][i] for i in b) for b in bins)
    assert loads == [15, 15]
    assert sorted(i for b in bins for i in b) == list(range(6))


def test_throughput_ratios_are_speed_ratios():
    # 600 s of audio: R1 in 30 s (20x), RN in 15 s (40x), seq in 31.5 s, par in 16 s.
    r = bench_throughput.throughput_ratios(600.0, {"R1": 30.0, "RN": 15.0, "seq": 31.5, "par": 16.0})
    assert r["seq_over_R1"] == pytest.approx(30.0 / 31.5)
    assert r["par_over_RN"] == pytest.approx(15.0 / 16.0)
    assert r["par_over_seq"] == pytest.approx(31.5 / 16.0)


def test_model_seconds_from_manifest_entries():
    entries = [{"status": "done", "duration_s": 60.0, "speed_x": 20.0},
               {"status": "failed", "duration_s": 60.0, "speed_x": None},
               {"status": "done", "duration_s": 30.0, "speed_x": 10.0}]
    assert bench_throughput.model_seconds(entries) == pytest.approx(6.0)


def test_schedules_against_hand_worked_makespans():
    # Four short videos then one long one, on two workers: the lower bound is max(4, 8/2) = 4.
    costs = [1.0, 1.0, 1.0, 1.0, 4.0]
    assert bench_scheduling.lower_bound(costs, 2) == 4.0
    assert bench_scheduling.makespan_fifo(costs, 2) == 6.0  # the long one starts last
    assert bench_scheduling.makespan_striped(costs, 2) == 6.0  # [4, 1, 1] and [1, 1]
    assert bench_scheduling.stripes(costs, 2) == [[4, 1, 3], [0, 2]]
    # Our scheduler (workers registered up front, as the runner does) starts the long one first and is optimal here.
    assert bench_scheduling.makespan_ours(costs, 2) == 4.0
    assert bench_scheduling.makespan_ours([3.0], 4) == 3.0


def test_simulated_lpt_stays_within_grahams_bound():
    costs = bench_scheduling.durations(64, seed=1)
    assert len(costs) == 64 and min(costs) > 0
    for m in (2, 8):
        bound = bench_scheduling.lower_bound(costs, m)
        ours = bench_scheduling.makespan_ours(costs, m)
        assert bound <= ours <= (4 / 3 - 1 / (3 * m)) * bound + 1e-9


def test_overlap_ratios():
    r = bench_overlap.overlap_ratios(pipeline_s=22.0, download_s=20.0, compute_s=18.0)
    assert r["pipeline_over_max"] == pytest.approx(1.1)
    assert r["pipeline_over_sum"] == pytest.approx(22.0 / 38.0)
    assert r["download_over_compute"] == pytest.approx(20.0 / 18.0)


def test_scale_helpers_on_a_small_batch():
    assert bench_scale.flatness({1000: 2.0, 10000: 3.0}) == pytest.approx(1.5)
    assert bench_scale.dispatch_cost(50) > 0
    snap = bench_scale.snapshot_latency(40, polls=3)
    assert set(snap) == {"first_ms", "after_event_ms", "cached_ms"}
    tracker, active = bench_scale.tracker_with(40)
    counts = tracker.snapshot().counts
    assert counts["done"] == 20 and counts["transcribing"] == len(active) == 8
    store = bench_scale.store_figures(20)
    assert store["bytes_per_video"] > 0


def test_corpus_text_reaches_its_target_length():
    import random

    text = corpus.clip_text(60, random.Random(0))
    assert len(text.split()) >= 60 * corpus.WORDS_PER_S
    assert corpus.total_audio_s([corpus.Clip(corpus.ROOT / "x.mp3", 5.0, 10),
                                 corpus.Clip(corpus.ROOT / "y.mp3", 7.5, 12)]) == 12.5
    assert sum(corpus.FULL_TARGETS_S) >= 15 * 60
    # The references are the texts the clips speak: same count, sized like each clip's target.
    refs = corpus.references(quick=True)
    assert len(refs) == len(corpus.QUICK_TARGETS_S)
    assert all(len(r.split()) >= t * corpus.WORDS_PER_S for r, t in zip(refs, corpus.QUICK_TARGETS_S))
    assert refs == corpus.references(quick=True) and refs != corpus.references(quick=False)[: len(refs)]


def test_batching_bundles_and_ratios():
    assert bench_batching.bundles(5, 2) == [[0, 1], [2, 3], [4]]
    # 600 s of audio: unbatched in 30 s (20x), b8 in 20 s (30x), bundles of 4 at batch 8 in 15 s (40x).
    r = bench_batching.batching_ratios(600.0, {"unbatched": 30.0, "b8": 20.0, "k4": 15.0},
                                       {"unbatched": 0.10, "b8": 0.11, "k4": 0.12}, bundle_batch=8)
    assert r["b8_over_unbatched"] == pytest.approx(1.5)
    assert r["k4_over_unbatched"] == pytest.approx(2.0)
    assert r["k4_over_b8"] == pytest.approx(20.0 / 15.0)
    assert r["wer_unbatched"] == pytest.approx(0.10) and r["wer_excess_max"] == pytest.approx(0.02)


def test_memory_ratios_compare_windowed_with_whole_at_the_longest_shared_length():
    rows = [{"length_s": 600, "mode": "windowed", "peak_gb": 0.6}, {"length_s": 600, "mode": "whole", "peak_gb": 0.9},
            {"length_s": 3600, "mode": "windowed", "peak_gb": 0.7}, {"length_s": 3600, "mode": "whole", "peak_gb": 3.5},
            {"length_s": 10800, "mode": "windowed", "peak_gb": 0.75}]
    r = bench_memory.memory_ratios(rows, loaded_gb=0.25, hour_s=3600)
    assert r["windowed_peak_gb_1h"] == 0.7 and r["windowed_peak_gb_at_longest"] == 0.75
    assert r["windowed_longest_over_shortest"] == pytest.approx(0.75 / 0.6)
    assert r["whole_over_windowed"] == pytest.approx(3.5 / 0.7)


def test_streaming_pages_are_distinct_extensionless_links_dealt_round_robin(tmp_path):
    clips = [corpus.Clip(tmp_path / f"c{i}.mp3", 5.0, 10) for i in range(3)]
    for c in clips:
        c.path.write_bytes(c.path.name.encode())
    pairs = bench_streaming.page_names(7, clips)
    assert [name for name, _ in pairs] == [f"p{i:04d}" for i in range(7)]
    assert [src.name for _, src in pairs] == ["c0.mp3", "c1.mp3", "c2.mp3"] * 2 + ["c0.mp3"]
    # No media extension: the engine would take /page/<name>.mp3 for a direct link and never fetch the page.
    from bulk_transcribe.media.urls import is_direct_media_url
    assert not any(is_direct_media_url(f"http://127.0.0.1/page/{name}") for name, _ in pairs)
    names = bench_streaming.link_media(tmp_path / "media", clips, 7)
    assert (tmp_path / "media" / "p0004").read_bytes() == b"c1.mp3"
    assert (tmp_path / "media" / "p0004").stat().st_ino == (tmp_path / "media" / "p0001").stat().st_ino
    assert len(names) == 7


def test_streaming_page_stats_from_the_request_log():
    # Two pages resolved one after another (1 s each), then both extracted again at download, plus the media.
    log = [(100.0, "/page/p0000"), (101.1, "/page/p0001"), (103.0, "/page/p0000"), (103.5, "/page/p0001"),
           (104.0, "/p0000"), (104.6, "/p0001"), (104.7, "/other")]
    stats = bench_streaming.page_stats(log, t0=99.5, delay_s=1.0, names=["p0000", "p0001"])
    assert stats.page_requests == 4 and stats.pages == 2
    assert stats.resolve_s == pytest.approx(101.1 + 1.0 - 99.5)  # the last page's first answer
    assert stats.concurrency == 1  # first fetches never overlapped (the repeats did, and do not count)
    assert stats.media_requests == 2 and stats.first_download_s == pytest.approx(4.5)
    empty = bench_streaming.page_stats([], 0.0, 1.0, names=[])
    assert math.isnan(empty.resolve_s) and math.isnan(empty.first_download_s) and empty.concurrency == 0


def test_streaming_concurrency_floor_and_ratios():
    assert bench_streaming.peak_open([0.0, 1.0, 2.0], 1.0) == 1  # back to back: an end comes before a start
    assert bench_streaming.peak_open([0.0, 0.1, 0.2, 5.0], 1.0) == 3
    assert bench_streaming.peak_open([], 1.0) == 0
    assert bench_streaming.resolve_floor_s(36, 1.0, 1) == 36.0
    assert bench_streaming.resolve_floor_s(36, 1.0, 8) == 5.0
    assert bench_streaming.resolve_floor_s(3, 1.0, 0) == 3.0
    entries = [{"status": "done", "finished_at": 1005.0}, {"status": "failed", "finished_at": 1001.0},
               {"status": "done", "finished_at": 1003.5}]
    assert bench_streaming.first_done_s(entries, 1000.0) == pytest.approx(3.5)
    row = bench_streaming.Row(n=36, mode="sequential", first_transcript_s=44.0, first_done_s=43.9, makespan_s=90.0,
                              resolve_s=37.0, first_download_s=38.0, compute_s=20.0, compute_first_s=3.0,
                              floor_s=36.0, page_requests_per_page=2.0,
                              media_requests_per_page=1.0, resolve_concurrency=1, pages_peak=1)
    r = bench_streaming.streaming_ratios([row])
    assert r == {"first_transcript_s_seq_36": 44.0, "page_requests_per_page_seq_36": 2.0,
                 "makespan_over_floor_seq_36": pytest.approx(2.5)}


def test_streaming_finds_only_finished_transcripts(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / ".work" / "x").mkdir(parents=True)
    (tmp_path / ".work" / "x" / "audio.mp3").write_bytes(b"")
    (tmp_path / "Talk p0000").mkdir()
    (tmp_path / "Talk p0000" / ".transcript.txt.ab12.tmp").write_text("half")  # an atomic write under way
    assert bench_streaming.find_transcript(tmp_path) is None
    assert bench_streaming.find_transcript(tmp_path / "absent") is None
    (tmp_path / "Talk p0000" / "transcript.txt").write_text("words")
    assert bench_streaming.find_transcript(tmp_path) == tmp_path / "Talk p0000" / "transcript.txt"


def test_library_corpus_is_zipf_shaped_and_its_figures_add_up(tmp_path):
    import random

    c = bench_library.Corpus.make(size=2_000)
    assert c.english[0] == "the" and len(set(c.english)) == 2_000 and len(set(c.german)) == 2_000
    assert c.cumulative[-1] == pytest.approx(1.0) and c.cumulative[0] > 0.05  # "the" is common, the tail rare
    segments = c.segments(random.Random(1), 600.0, german=False)
    assert segments[0]["start"] == 0.0 and segments[-1]["start"] < 600.0 <= segments[-1]["end"] + 31
    assert all(1.0 <= s["end"] - s["start"] <= 30.0 for s in segments)
    words = sum(len(s["text"].split()) for s in segments)
    assert 0.6 * bench_library.WORDS_PER_S * 600 < words < 1.4 * bench_library.WORDS_PER_S * 600
    assert bench_library.percentile([1, 2, 3, 4, 5], 0.5) == 3 and bench_library.percentile([10, 20], 0.95) == 19.5
    mix = bench_library.query_mix(c, ["One two three four.", "Five six seven."], random.Random(0), ["r1", "r2"])
    assert {kind for kind, _, _ in mix} >= {"common", "mid", "rare", "phrase", "prefix"}
    assert {"run": "r2"} in [f for _, _, f in mix] and {"flagged": True} in [f for _, _, f in mix]
    out = tmp_path / "out"
    out.mkdir()
    built = bench_library.build(out, c, 3, random.Random(2), total=3)
    assert built.videos == 3 and built.segments > 0 and len(built.index_s) == 3
    rows = bench_library.latencies(out, [("common", "the", {}), ("common", "the", {"run": built.runs[-1]})])
    assert all(r["hits"] > 0 and r["ms"] > 0 for r in rows)
    assert bench_library.index_pages(out / "bulk_transcribe.sqlite") > 0


def test_quality_labels_come_from_the_clip():
    Clip, judge = bench_quality.Clip, bench_quality.judge
    assert bench_quality.wer("Die Kinder spielen im Garten", "die kinder spielen im garten.") == 0.0
    assert bench_quality.wer("Großmutter schläft", "Grossmutter schläft") == 0.5  # umlauts and ß are letters
    english = Clip("en", "good_en", "en", "the next train leaves early")
    tiny = dict(multilingual=False, language="en")
    assert judge(english, dict(tiny, text="The next train leaves early.")) == (False, "WER 0.00", 0.0)
    assert judge(english, dict(tiny, text=""))[:2] == (True, "WER 1.00")  # empty counts as all wrong
    german = Clip("de", "foreign", "de", "die kinder spielen im garten")
    assert judge(german, dict(tiny, text="The children play"))[0]  # non-English through tiny.en: always bad
    base = dict(multilingual=True)
    assert not judge(german, dict(base, language="de", text="die kinder spielen im garten"))[0]
    assert judge(german, dict(base, language="en", text="die kinder spielen im garten"))[1] == "transcribed as en"
    silence = Clip("silence", "no_speech", None)
    assert judge(silence, dict(tiny, text="you"))[:2] == (True, "text on no speech")
    assert judge(silence, dict(tiny, text=""))[0] is False


def test_quality_set_covers_every_category_and_the_vad_gate(tmp_path):
    clips = [clip for clip, _ in bench_quality.specs(tmp_path)]  # the specs only: no audio is made
    assert len({c.name for c in clips}) == len(clips) == 61
    for quick in (False, True):
        chosen = [c for c in clips if c.quick or not quick]
        assert {c.category for c in chosen} == set(bench_quality.CATEGORIES)
        assert any(c.name.startswith("long_") for c in chosen)  # longer than VAD_ALWAYS_BELOW_S
    assert all(c.text for c in clips if c.language) and not any(c.text for c in clips if c.language is None)


def _outcome(text: str, duration_s: float, *, lp: float, nsp: float = 0.1, vad_s: float | None = None,
             multilingual: bool = False, language: str = "en", model: str = "bundled (tiny.en)") -> dict:
    """What bench_quality keeps of one transcript, made from a synthetic segment through quality.py."""
    from types import SimpleNamespace

    from bulk_transcribe import quality

    segments = [SimpleNamespace(start=0.0, end=duration_s, text=text, avg_logprob=lp, compression_ratio=1.2,
                                no_speech_prob=nsp, temperature=0.0)] if text else []
    signals = quality.signals_from_segments(segments, duration_s=duration_s, vad_speech_s=vad_s)
    flags = quality.assess(signals, english_only_model=not multilingual, model_name=model)
    return dict(text=text, language=language, language_probability=0.9, duration_s=duration_s, model=model,
                multilingual=multilingual, signals=signals.to_dict(), flags=[f.to_dict() for f in flags],
                transcribe_s=1.0, quality_s=0.01)


def test_quality_report_replays_without_a_model(capsys):
    Clip = bench_quality.Clip
    english = "the weather today is sunny with a light breeze from the west"
    spanish = "hoy quiero hablar del tiempo"
    clips = [Clip("en", "good_en", "en", english, seconds=5.0), Clip("es", "foreign", "es", spanish, seconds=5.0),
             Clip("silence", "no_speech", None, seconds=15.0), Clip("long_en", "good_en", "en", english, seconds=40.0)]
    recheck = _outcome(spanish, 5.0, lp=-0.3, vad_s=4.0, multilingual=True, language="es", model="whisper-base")
    raw = {
        "en": {"default": _outcome(english, 5.0, lp=-0.3, vad_s=4.5), "vad_always_speech_s": 4.5,
               "vad_always_s": 0.02, "recheck": {}},
        "es": {"default": _outcome("", 5.0, lp=-0.3, vad_s=4.0), "vad_always_speech_s": 4.0, "vad_always_s": 0.02,
               "recheck": {"whisper-base": {"kept": "recheck", "recheck": recheck}}},
        "silence": {"default": _outcome("you", 15.0, lp=-0.9, nsp=0.95, vad_s=0.0), "vad_always_speech_s": 0.0,
                    "vad_always_s": 0.05, "recheck": {"tiny.en": {"kept": "recheck", "recheck": _outcome(
                        "", 15.0, lp=-0.3, vad_s=0.0)}}},
        "long_en": {"default": _outcome(english, 40.0, lp=-0.3), "vad_always_speech_s": 5.0, "vad_always_s": 0.1,
                    "recheck": {}},  # 12 words in 40 s: few words, but the tool ran no VAD in this made-up record
    }
    ratios = bench_quality.report(clips, {"clips": raw, "base": "whisper-base", "loads_s": {}})
    out = capsys.readouterr().out
    assert ratios["precision"] == 1.0 and ratios["recall"] == 1.0 and ratios["bad"] == 2
    assert ratios["flags_reproduced"] == 1.0
    # Each recheck model fixed the one clip recorded for it: Whisper base the Spanish, tiny.en the silence.
    assert ratios["fixed_kept_base"] == ratios["fixed_kept_tiny"] == 1
    assert ratios["bad_recheck_base"] == ratios["bad_recheck_tiny"] == 1
    assert ratios["wer_good_en"] == 0.0 and ratios["wer_good_en_recheck_base"] == 0.0
    assert "not rechecked in this run" in out and "Goal (precision >= 0.9, recall >= 0.9" in out
    assert ratios["gate_differs"] == 0 and ratios["vad_ran"] == 3


def test_startup_short_set_and_phases(tmp_path):
    clips = [corpus.Clip(tmp_path / f"{i}.wav", d, 50) for i, d in enumerate([25.0, 30.0, 20.0, 40.0])]
    assert [c.duration_s for c in bench_startup.short_set(clips)] == [20.0, 25.0, 30.0]  # shortest, to >= 60 s
    entries = [{"started_at": 102.0, "finished_at": 105.5}, {"started_at": 101.0, "finished_at": 109.0},
               {"started_at": None, "finished_at": None}]
    assert bench_startup.phases(entries, t0=100.0) == {"first_transcript_s": 5.5, "span_s": 8.0}
    assert bench_startup.phases([], t0=100.0) == {"first_transcript_s": None, "span_s": None}
    reports = {m: [{"wall_s": w, "span_s": s, "first_transcript_s": f}] for m, w, s, f in
               [("R1", 30.0, None, None), ("RN", 20.0, None, None), ("seq", 28.0, None, 4.0), ("par", 21.0, 19.0, 3.0),
                ("par0", 40.0, 25.0, 6.0)]}
    ratios = bench_startup.summarise({"short": clips[:3]}, {"short": reports})["ratios"]
    assert ratios["short_par_over_seq"] == pytest.approx(28 / 21) and ratios["short_seq_over_r1"] == pytest.approx(30 / 28)
    assert ratios["short_par0_over_seq"] == pytest.approx(28 / 40)
    assert ratios["short_par0_span_over_rn"] == pytest.approx(20 / 25)
    assert ratios["short_first_transcript_par_over_seq"] == pytest.approx(0.75)

