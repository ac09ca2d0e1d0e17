"""Start-up of a parallel run: what a cold embedded Ray costs, and whether parallel is ever the slower switch.

Side by side in one run, every mode in a fresh child process (nothing warm), interleaved per repeat:

  R1    bare faster-whisper, one model, cpu_threads = cores (bench_throughput's reference)
  RN    bare faster-whisper in N processes, one thread each, longest-first split
  seq   Bulk Transcribe sequential: run_batch from a cold process
  par   Bulk Transcribe parallel, the default: the run starts in this process, and its embedded Ray starts once
        enough audio waits to pay for it (config.ray_min_audio_s, 30 min), then takes over (engine/handover.py)
  par0  the same with Ray started at once (ray_min_audio_s = 0): what the threshold saves, and Ray's own phases

The Ray shutdown the CLI waits for is counted (not when Ray was still starting: the CLI leaves at once). On two
sets: the throughput corpus (~18 min of speech in 20 clips; --quick: 3.7 min) and "short", its shortest clips up
to about a minute of audio (the smallest batch the issue's "never below 1.0x" covers).

Phases of par and par0, seconds from the call of run_batch: Ray asked for, Ray up (its actors created), the first
of Ray's workers ready (the in-process worker takes no new video from then), the first transcript written, the
processing span (first video started to last finished), the run's end and Ray's shutdown.

    python -m benchmarks.bench_startup [--quick] [--repeats N] [--workers N]

Ratios per set: `par_over_seq`, `par0_over_seq` end to end (goal >= 1.25 on the corpus, >= 1.0 on short),
`par0_span_over_rn` (Ray's path: processing span against RN's wall, goal >= 0.95), `seq_over_r1` (goal >= 1.0)
and `first_transcript_par_over_seq` (goal <= 1.0).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import common
from .bench_throughput import Settings, run_bare
from .corpus import Clip, corpus, total_audio_s

MODES = ("R1", "RN", "seq", "par", "par0")
SHORT_AUDIO_S = 60.0


def short_set(clips: list[Clip], audio_s: float = SHORT_AUDIO_S) -> list[Clip]:
    """The corpus's shortest clips, shortest first, until they hold at least `audio_s` of audio."""
    chosen: list[Clip] = []
    for clip in sorted(clips, key=lambda c: c.duration_s):
        chosen.append(clip)
        if total_audio_s(chosen) >= audio_s:
            break
    return chosen


def phases(entries: list[dict], t0: float) -> dict:
    """First transcript and processing span from a manifest's videos (wall-clock stamps), `t0` the run's call."""
    started = [e["started_at"] for e in entries if e.get("started_at")]
    finished = [e["finished_at"] for e in entries if e.get("finished_at")]
    if not started or not finished:
        return {"first_transcript_s": None, "span_s": None}
    return {"first_transcript_s": min(finished) - t0, "span_s": max(finished) - min(started)}


def _bulk_child(paths: list[str], settings: Settings, parallel: bool, ray_at_once: bool, out) -> None:
    from bulk_transcribe.config import DEFAULT_RAY_MIN_AUDIO_S, RunConfig, TranscribeOptions
    from bulk_transcribe.runs import run_batch

    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        config = RunConfig(
            inputs=tuple(paths), out_dir=work / "out", parallel=parallel, workers=settings.workers,
            ray_min_audio_s=0.0 if ray_at_once else DEFAULT_RAY_MIN_AUDIO_S,
            # Sequential: one model with every core, like R1. Parallel: 0 lets the engine split the cores between
            # Ray's workers (cores / workers each, like RN); its in-process worker takes every core meanwhile.
            transcribe=TranscribeOptions(model=settings.model, device=settings.device,
                                         compute_type=settings.compute_type, beam_size=settings.beam_size,
                                         cpu_threads=0 if parallel else settings.cores),
        )
        t0, m0 = time.time(), time.monotonic()
        result = run_batch(config)
        run_s = time.monotonic() - m0
        shutdown_s = 0.0
        if parallel:
            from bulk_transcribe.parallel import cluster

            up = cluster.is_connected()
            m1 = time.monotonic()
            cluster.shutdown()
            # What the CLI makes its user wait for: Ray's shutdown when Ray was up at the run's end; when it was
            # still starting, the CLI leaves at once (cli/main.py) and nothing here is counted.
            shutdown_s = time.monotonic() - m1 if up else 0.0
        if result.error or result.counts.get("done", 0) != len(paths):
            raise RuntimeError(f"bulk run failed: {result.error or result.counts}")
        report = {"wall_s": run_s + shutdown_s, "run_s": run_s, "shutdown_s": shutdown_s,
                  **phases(json.loads(result.manifest.read_text())["videos"], t0)}
        if result.handover is not None:
            report.update(ray_asked_s=result.handover.cluster_asked_s, ray_up_s=result.handover.cluster_open_s,
                          ray_worker_ready_s=result.handover.first_cluster_worker_s,
                          in_process_videos=result.handover.in_process_videos)
        out.put(report)
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which raises it
        out.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_bulk(clips: list[Clip], settings: Settings, parallel: bool, ray_at_once: bool = False) -> dict:
    return common.run_child(_bulk_child, [str(c.path) for c in clips], settings, parallel, ray_at_once)


def measure(sets: dict[str, list[Clip]], settings: Settings, repeats: int, log=print) -> dict:
    runs = {name: {m: [] for m in MODES} for name in sets}
    for r in range(repeats):
        for name, clips in sets.items():
            for mode in MODES:  # interleaved, so a noisy minute on a shared machine hits every mode alike
                if mode == "R1":
                    rep = run_bare(clips, settings, 1)
                elif mode == "RN":
                    rep = run_bare(clips, settings, settings.workers)
                else:
                    rep = run_bulk(clips, settings, parallel=mode.startswith("par"), ray_at_once=mode == "par0")
                runs[name][mode].append(rep)
                log(f"  repeat {r + 1}/{repeats} {name:>6} {mode:>3}: {rep['wall_s']:.2f} s")
    return runs


PHASES = ("ray_asked_s", "ray_up_s", "ray_worker_ready_s", "first_transcript_s", "span_s", "run_s", "shutdown_s")


def _median(reports: list[dict], key: str) -> float | None:
    values = [r[key] for r in reports if r.get(key) is not None]
    return common.median(values) if values else None


def summarise(sets: dict[str, list[Clip]], runs: dict) -> dict:
    result: dict = {"sets": {}, "ratios": {}}
    for name, clips in sets.items():
        audio = total_audio_s(clips)
        walls = {m: common.median(r["wall_s"] for r in runs[name][m]) for m in MODES}
        figures = {
            "clips": len(clips), "audio_s": audio, "wall_s": walls,
            "speed_x": {m: common.ratio(audio, w) for m, w in walls.items()},
            "phases_s": {mode: {key: _median(runs[name][mode], key) for key in PHASES} for mode in ("par", "par0")},
            "in_process_videos": {mode: _median(runs[name][mode], "in_process_videos") for mode in ("par", "par0")},
            "seq_first_transcript_s": _median(runs[name]["seq"], "first_transcript_s"),
        }
        result["sets"][name] = figures
        ratios = result["ratios"]
        ratios[f"{name}_par_over_seq"] = common.ratio(walls["seq"], walls["par"])
        ratios[f"{name}_par0_over_seq"] = common.ratio(walls["seq"], walls["par0"])
        ratios[f"{name}_seq_over_r1"] = common.ratio(walls["R1"], walls["seq"])
        span = figures["phases_s"]["par0"]["span_s"]
        ratios[f"{name}_par0_span_over_rn"] = common.ratio(walls["RN"], span or 0.0)
        first_par, first_seq = figures["phases_s"]["par"]["first_transcript_s"], figures["seq_first_transcript_s"]
        ratios[f"{name}_first_transcript_par_over_seq"] = (
            common.ratio(first_par, first_seq) if first_par and first_seq else float("nan"))
    result["runs"] = runs
    return result


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=None, help="default 2 (1 with --quick)")
    p.add_argument("--workers", type=int, default=None, help="N for RN and par (default: cores)")
    args = p.parse_args(argv)
    from bulk_transcribe.config import available_cpus

    cores = available_cpus()
    settings = Settings(cores=cores, workers=args.workers or cores)
    repeats = args.repeats or (1 if args.quick else 2)
    clips = corpus(args.quick)
    sets = {"corpus": clips, "short": short_set(clips)}
    print(f"startup: {', '.join(f'{n} {len(c)} clips / {total_audio_s(c) / 60:.1f} min' for n, c in sets.items())}"
          f"; tiny.en int8 beam 1, {cores} cores, N={settings.workers}, {repeats} repeat(s), every mode cold",
          flush=True)
    runs = measure(sets, settings, repeats, log=lambda s: print(s, flush=True))
    result = summarise(sets, runs)
    for name, figures in result["sets"].items():
        print(f"\n{name}: {figures['clips']} clips, {figures['audio_s']:.0f} s of audio")
        print(common.table(["mode", "median wall s", "audio s / wall s"],
                           [[m, figures["wall_s"][m], figures["speed_x"][m]] for m in MODES]))
        def fmt(value):
            return "-" if value is None else f"{value:.1f}"

        for mode, what in (("par", "par (Ray when worth it)"), ("par0", "par0 (Ray at once)")):
            ph = figures["phases_s"][mode]
            print(f"{what}, s from the call: Ray asked {fmt(ph['ray_asked_s'])}, up {fmt(ph['ray_up_s'])}, first Ray "
                  f"worker ready {fmt(ph['ray_worker_ready_s'])}, first transcript {fmt(ph['first_transcript_s'])} "
                  f"(seq {fmt(figures['seq_first_transcript_s'])}), processing span {fmt(ph['span_s'])}, run "
                  f"{fmt(ph['run_s'])}, Ray shutdown {fmt(ph['shutdown_s'])}; videos started in-process "
                  f"{fmt(figures['in_process_videos'][mode])}")
    print("\ngoals: corpus par/seq >= 1.25, short par/seq >= 1.0, span/RN >= 0.95, seq/R1 >= 1.0, "
          "first transcript par/seq <= 1.0")
    return common.finish("startup", args, result)


if __name__ == "__main__":
    main(sys.argv[1:])
