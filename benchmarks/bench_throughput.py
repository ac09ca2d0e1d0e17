"""Throughput against the bare model: how close Bulk Transcribe comes to the best this machine can do.

Four modes over one corpus, side by side in one process tree (each in a fresh child process, in turn, repeated,
medians reported):

  R1   bare faster-whisper, one model, cpu_threads = cores: the sequential reference
  RN   bare faster-whisper in N processes, one model each (cpu_threads = cores / N), longest-first split:
       the parallel reference
  seq  Bulk Transcribe sequential (run_batch, cpu_threads = cores)
  par  Bulk Transcribe parallel with N workers on an embedded local Ray (the engine picks threads per worker)

Same model, beam 1, same compute type. Every wall time starts before the model loads (load is part of the job)
and ends when the last transcript is out; the one-time Ray start is timed on its own and reported beside `par`.
Audio-seconds per wall-second is the figure; the ratios say how much of the bare model's speed survives.

    python -m benchmarks.bench_throughput [--quick] [--repeats 3] [--workers 2]
        [--device cpu|cuda] [--compute-type int8|float16] [--model bundled|PATH|NAME] [--gpus-per-worker 0.5]
        [--batch-size 8]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import common
from .corpus import Clip, corpus, total_audio_s

MODES = ("R1", "RN", "seq", "par")


@dataclass(frozen=True)
class Settings:
    model: str = "bundled"
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 1
    cores: int = 2
    workers: int = 2
    gpus_per_worker: float = 1.0
    batch_size: int = 1
    """Batch size for seq and par (R1 and RN stay bare, unbatched): 1 = unbatched, as the CPU default."""

    @property
    def threads_rn(self) -> int:
        return max(1, self.cores // self.workers)


# ---- pure helpers (unit-tested) -------------------------------------------------------------------------------

def lpt_split(durations: list[float], parts: int) -> list[list[int]]:
    """Indices of `durations` split into `parts` bins longest-first, each to the least loaded bin (static LPT).

    This is what the RN reference does: the best a fixed split can do without a scheduler.
    """
    bins: list[list[int]] = [[] for _ in range(parts)]
    loads = [0.0] * parts
    for i in sorted(range(len(durations)), key=lambda i: -durations[i]):
        b = min(range(parts), key=lambda k: loads[k])
        bins[b].append(i)
        loads[b] += durations[i]
    return bins


def model_seconds(entries: list[dict]) -> float:
    """Seconds the model spent, summed over a run's manifest entries (duration / speed_x per done video)."""
    return sum(e["duration_s"] / e["speed_x"] for e in entries
               if e.get("status") == "done" and e.get("speed_x") and e.get("duration_s"))


def throughput_ratios(audio_s: float, walls: dict[str, float]) -> dict[str, float]:
    """Audio-seconds per wall-second for each mode and the three goal ratios."""
    speed = {m: common.ratio(audio_s, w) for m, w in walls.items()}
    return {
        "seq_over_R1": common.ratio(speed.get("seq", 0.0), speed.get("R1", 0.0)),
        "par_over_RN": common.ratio(speed.get("par", 0.0), speed.get("RN", 0.0)),
        "par_over_seq": common.ratio(speed.get("par", 0.0), speed.get("seq", 0.0)),
    }


# ---- the four modes, each run in a child process ---------------------------------------------------------------

def _bare_worker(paths: list[str], settings: Settings, threads: int, start_barrier, out) -> None:
    from faster_whisper import WhisperModel

    from bulk_transcribe.media.transcribe import resolve_model

    model_path = resolve_model(settings.model)
    start_barrier.wait()  # imports done in every process: the clock starts for all at once
    t0 = time.monotonic()
    model = WhisperModel(model_path, device=settings.device, compute_type=settings.compute_type,
                         cpu_threads=threads, num_workers=1)
    t_load = time.monotonic()
    for path in paths:
        segments, _ = model.transcribe(path, beam_size=settings.beam_size)
        for _ in segments:  # the generator decodes lazily: consume it
            pass
    out.put({"start": t0, "load_s": t_load - t0, "end": time.monotonic()})


def run_bare(clips: list[Clip], settings: Settings, processes: int) -> dict:
    """R1 (processes=1, threads=cores) or RN (processes=N, threads=cores/N, longest-first split)."""
    ctx = mp.get_context("spawn")
    threads = settings.cores if processes == 1 else settings.threads_rn
    bins = lpt_split([c.duration_s for c in clips], processes)
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_bare_worker, args=([str(clips[i].path) for i in b], settings, threads, barrier, out))
             for b in bins]
    for p in procs:
        p.start()
    reports = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {"wall_s": wall, "load_s": max(r["load_s"] for r in reports)}


def _bulk_child(clips_dir: str, settings: Settings, parallel: bool, out) -> None:
    from bulk_transcribe.runs import run_batch
    from bulk_transcribe.config import RunConfig, TranscribeOptions

    ray_start_s = 0.0
    if parallel:
        from bulk_transcribe.parallel import cluster

        t = time.monotonic()
        # Started here (the engine reuses a running Ray) so the one-time start is reported apart from the run.
        common.start_local_ray(settings.cores, num_gpus=1 if settings.device == "cuda" else None)
        cluster.connect()  # finds the Ray above
        ray_start_s = time.monotonic() - t
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    try:
        config = RunConfig(
            inputs=(clips_dir,),
            out_dir=work / "out",
            transcribe=TranscribeOptions(
                model=settings.model, device=settings.device, compute_type=settings.compute_type,
                beam_size=settings.beam_size, batch_size=settings.batch_size,
                # Sequential: one model with every core, like R1. Parallel: 0 lets the engine split the cores
                # between its workers (cores / workers each), like RN.
                cpu_threads=0 if parallel else settings.cores,
            ),
            parallel=parallel,
            workers=settings.workers,
            gpus_per_worker=settings.gpus_per_worker,
        )
        t0 = time.monotonic()
        result = run_batch(config)
        wall = time.monotonic() - t0
        if result.error or result.counts.get("done", 0) == 0:
            raise RuntimeError(f"bulk run failed: {result.error or result.counts}")
        out.put({"wall_s": wall, "ray_start_s": ray_start_s, "counts": result.counts,
                 "model_s": model_seconds(json.loads(result.manifest.read_text())["videos"])})
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which prints it
        out.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if parallel:
            from bulk_transcribe.parallel import cluster

            cluster.shutdown()


def run_bulk(clips: list[Clip], settings: Settings, parallel: bool) -> dict:
    return common.run_child(_bulk_child, str(clips[0].path.parent), settings, parallel)


def measure(clips: list[Clip], settings: Settings, repeats: int, log=print) -> dict:
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(repeats):
        # Interleaved (R1, RN, seq, par, R1, ...) so a noisy minute on a shared machine hits every mode alike.
        for mode in MODES:
            if mode == "R1":
                rep = run_bare(clips, settings, 1)
            elif mode == "RN":
                rep = run_bare(clips, settings, settings.workers)
            else:
                rep = run_bulk(clips, settings, parallel=(mode == "par"))
            runs[mode].append(rep)
            log(f"  repeat {r + 1}/{repeats} {mode:>3}: {rep['wall_s']:.2f} s")
    return runs


def summarise(clips: list[Clip], settings: Settings, runs: dict[str, list[dict]]) -> dict:
    audio = total_audio_s(clips)
    walls = {m: common.median(r["wall_s"] for r in runs[m]) for m in MODES}
    load_s = common.median(r["load_s"] for r in runs["R1"])
    ratios = throughput_ratios(audio, walls)
    # What Bulk Transcribe spends per video beyond the bare loop (decode checks, writers, SQLite, events).
    ratios["overhead_per_video_s"] = (walls["seq"] - walls["R1"]) / len(clips)
    ray_start = common.median(r["ray_start_s"] for r in runs["par"])
    # The bar is end to end, start-up included: a batch run from cold also pays for starting Ray.
    ratios["par_cold_over_seq"] = common.ratio(walls["seq"], walls["par"] + ray_start)
    ratios["model_load_s"] = load_s
    # Wall time the sequential run spent outside the model's own transcribe calls, per video.
    ratios["seq_outside_model_per_video_s"] = (
        common.median(r["wall_s"] - r["model_s"] for r in runs["seq"]) / len(clips))
    return {
        "settings": settings.__dict__,
        "clips": len(clips),
        "audio_s": audio,
        "wall_s": walls,
        "speed_x": {m: common.ratio(audio, w) for m, w in walls.items()},
        "ray_start_s": ray_start,
        "runs": runs,
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--workers", type=int, default=None, help="N for RN and par (default: cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compute-type", default=None, help="default int8 on cpu, float16 on cuda")
    p.add_argument("--model", default="bundled")
    p.add_argument("--gpus-per-worker", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=1, help="for seq and par (gpu.sh); R1 and RN stay unbatched")
    args = p.parse_args(argv)
    from bulk_transcribe.config import available_cpus

    cores = available_cpus()
    settings = Settings(
        model=args.model, device=args.device,
        compute_type=args.compute_type or ("float16" if args.device == "cuda" else "int8"),
        cores=cores, workers=args.workers or cores, gpus_per_worker=args.gpus_per_worker,
        batch_size=args.batch_size,
    )
    repeats = args.repeats or (1 if args.quick else 3)
    clips = corpus(args.quick)
    audio = total_audio_s(clips)
    print(f"throughput: {len(clips)} clips, {audio / 60:.1f} min of speech, model {settings.model}, "
          f"{settings.device}/{settings.compute_type}, beam {settings.beam_size}, batch {settings.batch_size}, "
          f"{cores} cores, N={settings.workers}, {repeats} repeat(s)", flush=True)
    runs = measure(clips, settings, repeats, log=lambda s: print(s, flush=True))
    result = summarise(clips, settings, runs)
    labels = {
        "R1": f"bare, 1 model, {settings.cores} threads",
        "RN": f"bare, {settings.workers} processes x {settings.threads_rn} thread(s), LPT split",
        "seq": "Bulk Transcribe sequential",
        "par": f"Bulk Transcribe parallel, {settings.workers} workers (Ray)",
    }
    print(common.table(
        ["mode", "what", "median wall s", "audio s / wall s"],
        [[m, labels[m], result["wall_s"][m], result["speed_x"][m]] for m in MODES],
    ))
    r = result["ratios"]
    print(f"model load {r['model_load_s']:.2f} s; Bulk Transcribe overhead per video vs bare "
          f"{r['overhead_per_video_s']:+.3f} s (outside the model's calls: "
          f"{r['seq_outside_model_per_video_s']:.3f} s); Ray start (one-time, not in par) {result['ray_start_s']:.1f} s")
    print(f"par/seq with the one-time Ray start counted (a cold batch): {r['par_cold_over_seq']:.2f}")
    print("goals: seq/R1 >= 0.95, par/RN >= 0.90, par/seq >= 1.8 (2 cores)")
    return common.finish("throughput", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
