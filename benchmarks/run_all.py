"""Run every benchmark in turn, then print all their ratios together, save them and draw the plot.

    python -m benchmarks.run_all [--quick] [--only throughput,startup,scheduling,overlap,scale,memory,quality] [--plot-only]

Each benchmark runs in its own child process (its own Ray, its own memory), its output streamed as it goes. At
the end one line per benchmark: `RATIOS <bench>.<name>=<value> ...`. Results land in benchmarks/results/
(<bench>[_quick].json, summary[_quick].json, bench[_quick].png).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from . import common

BENCHMARKS = ("throughput", "startup", "scheduling", "overlap", "scale", "memory", "quality")
REPO = Path(__file__).resolve().parents[1]


def prefixed(bench: str, ratios: dict[str, float]) -> dict[str, float]:
    return {f"{bench}.{k}": v for k, v in ratios.items()}


def run_one(bench: str, quick: bool) -> tuple[int, dict[str, float] | None, float]:
    """Run one benchmark as a child, echoing its output; returns (exit code, its ratios or None, seconds)."""
    cmd = [sys.executable, "-m", f"benchmarks.bench_{bench}"] + (["--quick"] if quick else [])
    print(f"\n===== {bench}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    ratios = None
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("RATIOS"):
            ratios = common.parse_ratios(line.strip())
    code = proc.wait()
    return code, ratios, time.monotonic() - t0


def plot(quick: bool, results: Path = common.RESULTS) -> Path | None:
    """bench[_quick].png: makespan / lower bound vs workers, and throughput (audio s / wall s) per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = "_quick" if quick else ""
    sched_path, thr_path = results / f"scheduling{suffix}.json", results / f"throughput{suffix}.json"
    if not sched_path.is_file() and not thr_path.is_file():
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    if sched_path.is_file():
        sched = json.loads(sched_path.read_text())
        ms = sched["worker_counts"]
        colours = {"ours": "tab:green", "fifo": "tab:orange", "striped": "tab:red"}
        for kind, style in (("sim", "-"), ("ray", "--")):
            table = sched.get(kind)
            if not table:
                continue
            for policy in table[str(ms[0])]:
                label = f"{policy} ({kind})"
                ax1.plot(ms, [table[str(m)][policy] for m in ms], style, marker="o", color=colours.get(policy),
                         label=label)
        ax1.axhline(1.05, color="grey", linestyle=":", label="goal 1.05")
        ax1.set_xscale("log", base=2)
        ax1.set_xticks(ms, [str(m) for m in ms])
        ax1.set_xlabel("workers m")
        ax1.set_ylabel("makespan / max(longest, total/m)")
        ax1.set_title("Scheduling: lognormal durations, 8 videos per worker")
        ax1.legend(fontsize=7, ncol=2)
    if thr_path.is_file():
        thr = json.loads(thr_path.read_text())
        modes = list(thr["speed_x"])
        values = [thr["speed_x"][m] for m in modes]
        bars = ax2.bar(modes, values, color=["grey", "grey", "tab:green", "tab:green"][: len(modes)])
        ax2.bar_label(bars, fmt="%.1fx")
        s = thr["settings"]
        ax2.set_ylabel("audio seconds per wall second")
        ax2.set_title(f"Throughput: {thr['audio_s'] / 60:.1f} min of speech, {s['device']}/{s['compute_type']}, "
                      f"N={s['workers']}", fontsize=10)
    fig.suptitle(f"Bulk Transcribe benchmarks{' (quick)' if quick else ''}", fontsize=11)
    fig.tight_layout()
    path = results / f"bench{suffix}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(BENCHMARKS))
    p.add_argument("--plot-only", action="store_true", help="redraw the plot from saved results")
    args = p.parse_args(argv)
    if args.plot_only:
        print(plot(args.quick))
        return 0
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    started = time.monotonic()
    summary: dict[str, dict] = {}
    for bench in chosen:
        code, ratios, seconds = run_one(bench, args.quick)
        summary[bench] = {"exit_code": code, "seconds": round(seconds, 1), "ratios": ratios}
    total = time.monotonic() - started
    print(f"\n===== all ratios ({total / 60:.1f} min{', quick' if args.quick else ''})")
    for bench, info in summary.items():
        if info["ratios"] is None:
            print(f"# {bench} FAILED (exit code {info['exit_code']}): no ratios")
        else:
            print(common.ratios_line(prefixed(bench, info["ratios"])))
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.no_save:
        path = common.RESULTS / f"summary{'_quick' if args.quick else ''}.json"
        path.write_text(json.dumps({"quick": args.quick, "machine": common.machine(), "total_s": round(total, 1),
                                    "benchmarks": summary}, indent=1))
    png = plot(args.quick)
    if png:
        print(f"plot: {png.relative_to(REPO)}")
    return 0 if all(info["exit_code"] == 0 for info in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
