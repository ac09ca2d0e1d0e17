"""Batched inference against unbatched decoding, and cross-video bundles against one video at a time.

One loaded model (Bulk Transcribe's `Transcriber`, as a worker holds it) transcribes the benchmark corpus in turn:

  unbatched  batch size 1: faster-whisper's sequential decoding (the CPU default)
  bN         batch size N for each video alone (faster-whisper's BatchedInferencePipeline, VAD chunks)
  kK         bundles of K videos, their chunks pooled into shared batches of --bundle-batch (`transcribe_bundle`)

Modes run in a rotated order each repeat (a noisy machine slows them all alike) and medians are reported. Model
load is excluded (every mode shares the model). Two figures: audio seconds per wall second, and audio seconds per
CPU second of this process (all its threads): on a machine shared with other work the wall time swings with the
load (seen here: the same mode 3.2x and 9.7x in two repeats), the CPU time much less. WER is over the whole corpus
(every clip's words, against the text espeak-ng spoke). Goal: batched and bundled WER <= unbatched + 0.03.

    python -m benchmarks.bench_batching [--quick] [--repeats 3] [--batch-sizes 1,4,8,16] [--bundle-sizes 2,4,8]
        [--bundle-batch 8] [--device cpu|cuda] [--compute-type int8|float16] [--model bundled|PATH|NAME]
        [--cpu-threads N]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from . import common
from .corpus import REPO, corpus, references, total_audio_s

WER_MARGIN = 0.03
"""Largest WER batched or bundled decoding may add over unbatched, absolute."""


def _wer(reference: str, hypothesis: str) -> float:
    sys.path.insert(0, str(REPO / "tests"))
    from textmetrics import wer

    return wer(reference, hypothesis)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def bundles(n: int, size: int) -> list[list[int]]:
    """Clip indices in corpus order, `size` to a bundle (the last one may be smaller)."""
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def batching_ratios(audio_s: float, walls: dict[str, float], wers: dict[str, float], bundle_batch: int) -> dict:
    """Each mode's speed over unbatched (bundles also over per-video batching at the same batch size) and the WER
    excess of the worst batched or bundled mode over unbatched."""
    speed = {m: common.ratio(audio_s, w) for m, w in walls.items()}
    out = {}
    for mode in walls:
        if mode != "unbatched":
            out[f"{mode}_over_unbatched"] = common.ratio(speed[mode], speed.get("unbatched", 0.0))
        if mode.startswith("k"):
            out[f"{mode}_over_b{bundle_batch}"] = common.ratio(speed[mode], speed.get(f"b{bundle_batch}", 0.0))
    out["wer_unbatched"] = wers.get("unbatched", float("nan"))
    others = [w for m, w in wers.items() if m != "unbatched"]
    out["wer_excess_max"] = (max(others) - out["wer_unbatched"]) if others else float("nan")
    return out


def run_mode(transcriber, clips, mode: str, opts, bundle_batch: int) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds for the whole corpus in this mode, and each clip's text."""
    texts = [""] * len(clips)
    started, cpu_started = time.perf_counter(), time.process_time()
    if mode.startswith("k"):
        o = replace(opts, batch_size=bundle_batch)
        for group in bundles(len(clips), int(mode[1:])):
            results = transcriber.transcribe_bundle([(clips[i].path, str(i)) for i in group], options=o)
            for i, result in zip(group, results):
                if not hasattr(result, "text"):
                    raise SystemExit(f"clip {clips[i].path.name} failed in mode {mode}: {result}")
                texts[i] = result.text
    else:
        o = replace(opts, batch_size=1 if mode == "unbatched" else int(mode[1:]))
        for i, clip in enumerate(clips):
            texts[i] = transcriber.transcribe(clip.path, str(i), options=o).text
    return time.perf_counter() - started, time.process_time() - cpu_started, texts


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--batch-sizes", type=_ints, default=[1, 4, 8, 16], help="1 means unbatched")
    p.add_argument("--bundle-sizes", type=_ints, default=[2, 4, 8], help="videos per bundle")
    p.add_argument("--bundle-batch", type=int, default=8, help="batch size for the bundled modes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compute-type", default=None, help="default int8 on cpu, float16 on cuda")
    p.add_argument("--model", default="bundled")
    p.add_argument("--cpu-threads", type=int, default=0, help="0 = the cores available")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)

    from bulk_transcribe.config import TranscribeOptions, available_cpus
    from bulk_transcribe.media.transcribe import Transcriber

    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    opts = TranscribeOptions(model=args.model, device=args.device, compute_type=compute_type,
                             cpu_threads=args.cpu_threads or available_cpus(), beam_size=1, language="en",
                             timeout_factor=0)
    clips, refs = corpus(args.quick), references(args.quick)
    audio_s = total_audio_s(clips)
    modes = [("unbatched" if b == 1 else f"b{b}") for b in args.batch_sizes]
    modes += [f"k{k}" for k in args.bundle_sizes]
    transcriber = Transcriber(opts)
    print(f"{len(clips)} clips, {audio_s / 60:.1f} min of speech; {args.model} {transcriber.device} {compute_type}, "
          f"{opts.cpu_threads} thread(s); bundles batch {args.bundle_batch}; {repeats} repeat(s)", flush=True)
    transcriber.transcribe(clips[-1].path, "warm-up", options=replace(opts, batch_size=2))  # loads VAD, warms up

    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    wers: dict[str, float] = {}
    for r in range(repeats):
        order = modes[r % len(modes):] + modes[:r % len(modes)]
        for mode in order:
            wall, cpu, texts = run_mode(transcriber, clips, mode, opts, args.bundle_batch)
            walls[mode].append(wall)
            cpus[mode].append(cpu)
            wers.setdefault(mode, _wer(" ".join(refs), " ".join(texts)))
            print(f"  repeat {r + 1} {mode:<9} {wall:6.1f} s  {audio_s / wall:5.1f}x  cpu {cpu:6.1f} s  "
                  f"{audio_s / cpu:5.1f}x/cpu-s  WER {wers[mode]:.3f}", flush=True)

    med = {m: common.median(w) for m, w in walls.items()}
    med_cpu = {m: common.median(c) for m, c in cpus.items()}
    rows = [(m, med[m], audio_s / med[m], med_cpu[m], audio_s / med_cpu[m], wers[m]) for m in modes]
    print(common.table(["mode", "wall s (median)", "audio s / wall s", "cpu s (median)", "audio s / cpu s", "WER"],
                       rows))
    ratios = batching_ratios(audio_s, med, wers, args.bundle_batch)
    cpu_ratios = batching_ratios(audio_s, med_cpu, wers, args.bundle_batch)
    ratios.update({f"{k}_cpu": v for k, v in cpu_ratios.items() if k.endswith(("_unbatched", f"_b{args.bundle_batch}"))
                   and not k.startswith("wer")})
    verdict = "ok" if ratios["wer_excess_max"] <= WER_MARGIN else "MISSED"
    print(f"WER: worst batched/bundled mode minus unbatched = {ratios['wer_excess_max']:+.3f} "
          f"(goal <= +{WER_MARGIN}): {verdict}")
    result = {"settings": {"model": args.model, "device": transcriber.device, "compute_type": compute_type,
                           "cpu_threads": opts.cpu_threads, "bundle_batch": args.bundle_batch, "repeats": repeats},
              "audio_s": audio_s, "walls": walls, "cpu_s": cpus, "wers": wers, "ratios": ratios}
    return common.finish("batching", args, result)


if __name__ == "__main__":
    main()
