"""Peak memory against audio length: is a worker's memory bounded whatever the length?

Long files are generated: espeak-ng sentences (corpus.SENTENCES), one every 30 s with silence in between, encoded
as Opus (the format yt-dlp's bestaudio usually gives) and cached in benchmarks/.corpus/memory/. Each length is
transcribed by a fresh child process (`Transcriber`, the bundled tiny.en, int8, beam 1) whose peak RSS is read from
the kernel (getrusage ru_maxrss: what `/usr/bin/time -v` reports as "Maximum resident set size"):

  windowed  the default: decoded and transcribed in windows of TranscribeOptions.window_s (600 s)
  whole     window_s = 0: the whole file decoded and given to faster-whisper at once (the old path; run only up to
            1 h here, since it needs ~3.6 GB per hour of audio)
  loaded    the model loaded, nothing transcribed: the floor both share

Goal: windowed peak <= 1.2 GB at 1 h, and flat with length (3 h / 10 min close to 1).

    python -m benchmarks.bench_memory [--quick]     # quick: 2 min and 15 min, window 300 s
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import common
from .corpus import CACHE, REPO, SENTENCES

FULL_LENGTHS_S = (600, 3600, 10800)
QUICK_LENGTHS_S = (120, 900)
WHOLE_UP_TO_S = 3600
"""The old path runs only up to this length (3 h would need ~11 GB on a shared machine)."""
SPACING_S = 30
RATE = 16000


def make_long_audio(seconds: int, folder: Path) -> Path:
    """`seconds` of Opus: a sentence at the start of every 30 s, silence in between (cached by length)."""
    import av
    import media  # tests/media.py (corpus puts tests/ on sys.path)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"speech_{seconds}s.opus"
    if path.exists():
        return path
    clips = []
    for i, sentence in enumerate(SENTENCES[:8]):
        wav = media.espeak_wav(sentence, folder / f"s{i}.wav")
        pcm, _ = media.read_pcm(wav)
        clips.append(pcm[: (SPACING_S - 2) * RATE])
        wav.unlink()
    partial = path.with_suffix(".part.opus")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=48000)
        pts = 0
        for block_no in range(seconds // SPACING_S):
            block = np.zeros(SPACING_S * RATE, np.int16)
            clip = clips[block_no % len(clips)]
            block[RATE: RATE + len(clip)] = clip
            for start in range(0, len(block), RATE):
                frame = av.AudioFrame.from_ndarray(block[start:start + RATE].reshape(1, -1), format="s16",
                                                   layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = RATE, pts, Fraction(1, RATE)
                pts += RATE
                for out in resampler.resample(frame):
                    for packet in stream.encode(out):
                        container.mux(packet)
        for out in resampler.resample(None):
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    partial.rename(path)
    return path


def child(path: str, window_s: float, cores: int) -> None:
    """In a fresh process: load the model, transcribe (unless path is empty), print one JSON line."""
    from bulk_transcribe.config import TranscribeOptions
    from bulk_transcribe.media.transcribe import Transcriber

    options = TranscribeOptions(cpu_threads=cores, beam_size=1, window_s=window_s, language="en")
    transcriber = Transcriber(options)
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"loaded_gb": loaded_kb / 1024**2}
    if path:
        started = time.perf_counter()
        t = transcriber.transcribe(Path(path), "long")
        result.update(wall_s=time.perf_counter() - started, duration_s=t.duration_s, segments=len(t.segments),
                      last_end_s=t.segments[-1].end if t.segments else 0.0)
    result["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("RESULT " + json.dumps(result), flush=True)


def measure(path: Path | None, window_s: float, cores: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", str(path or ""), str(window_s), str(cores)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")


def memory_ratios(rows: list[dict], loaded_gb: float, hour_s: int) -> dict[str, float]:
    windowed = {r["length_s"]: r["peak_gb"] for r in rows if r["mode"] == "windowed"}
    whole = {r["length_s"]: r["peak_gb"] for r in rows if r["mode"] == "whole"}
    lengths = sorted(windowed)
    ratios = {
        "windowed_peak_gb_at_longest": windowed[lengths[-1]],
        "windowed_longest_over_shortest": common.ratio(windowed[lengths[-1]], windowed[lengths[0]]),
        "loaded_gb": loaded_gb,
    }
    if hour_s in windowed:
        ratios["windowed_peak_gb_1h"] = windowed[hour_s]
    shared = sorted(set(windowed) & set(whole))
    if shared:
        ratios["whole_over_windowed"] = common.ratio(whole[shared[-1]], windowed[shared[-1]])
    return ratios


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
        return
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    cores = int(common.machine()["cores"] or 1)
    lengths = QUICK_LENGTHS_S if args.quick else FULL_LENGTHS_S
    window_s = 300.0 if args.quick else 600.0
    folder = CACHE / "memory"
    print(f"memory: lengths {lengths} s, window {window_s:.0f} s, {cores} threads", flush=True)
    loaded = measure(None, window_s, cores)
    rows = []
    for length in lengths:
        path = make_long_audio(length, folder)
        modes = [("windowed", window_s)] + ([("whole", 0.0)] if length <= WHOLE_UP_TO_S else [])
        for mode, window in modes:
            r = measure(path, window, cores)
            rows.append({"length_s": length, "mode": mode, "file_mb": path.stat().st_size / 1e6, **r})
            print(f"  {length:>6} s {mode:<8} peak {r['peak_gb']:.2f} GB  wall {r['wall_s']:.0f} s  "
                  f"segments {r['segments']}  last end {r['last_end_s']:.0f} s", flush=True)
    print(common.table(
        ["length", "mode", "file MB", "peak GB", "wall s", "x real time", "segments"],
        [[f"{r['length_s'] / 60:.0f} min", r["mode"], r["file_mb"], r["peak_gb"], r["wall_s"],
          r["duration_s"] / r["wall_s"], r["segments"]] for r in rows],
    ))
    print(f"model loaded, nothing transcribed: {loaded['peak_gb']:.2f} GB")
    ratios = memory_ratios(rows, loaded["peak_gb"], 3600)
    common.finish("memory", args, {"window_s": window_s, "rows": rows, "loaded": loaded, "ratios": ratios})


if __name__ == "__main__":
    main()
