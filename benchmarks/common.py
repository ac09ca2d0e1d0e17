"""Small shared helpers: argument parsing, tables, the RATIOS line, result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Iterable, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes for `make bench-quick` (minutes, not tens)")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/<name>.json")
    return p


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero (a ratio line never crashes a run)."""
    return numerator / denominator if denominator else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) if isinstance(v, str) else c.rjust(w) for c, v, w in zip(cells_row, row, widths))
            for cells_row, row in zip(cells, rows)]
    return "\n".join(out)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def ratios_line(ratios: dict[str, float]) -> str:
    """`RATIOS name=value ...`: the last line every benchmark prints, parsed by run_all (and by people's scripts)."""
    return "RATIOS " + " ".join(f"{k}={v:.4g}" for k, v in ratios.items())


def parse_ratios(line: str) -> dict[str, float]:
    if not line.startswith("RATIOS"):
        raise ValueError(f"not a RATIOS line: {line!r}")
    out = {}
    for part in line.split()[1:]:
        key, _, value = part.partition("=")
        out[key] = float(value)
    return out


def machine() -> dict[str, object]:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": cores, "python": platform.python_version(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def finish(name: str, args, result: dict) -> dict:
    """Every benchmark's ending: save its result (unless --no-save), then print its RATIOS line last."""
    if not args.no_save:
        save(name, args.quick, result)
    print(ratios_line(result["ratios"]), flush=True)
    return result


def save(name: str, quick: bool, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'_quick' if quick else ''}.json"
    path.write_text(json.dumps({"benchmark": name, "quick": quick, "machine": machine(), **payload}, indent=1))
    return path


def start_local_ray(num_cpus: int, *, num_gpus: int | None = None, namespace: str | None = None) -> None:
    """A fresh local Ray for this benchmark alone.

    address="local" because a bare ray.init() joins whatever cluster this machine already runs (RAY_ADDRESS, or
    another session's), and then rejects num_cpus; a benchmark must own its cluster to be measured alone.
    """
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if namespace is None:
        from bulk_transcribe.parallel.cluster import NAMESPACE as namespace
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=200 * 1024**2,
             include_dashboard=False, log_to_driver=False, namespace=namespace)


def run_child(target, *args) -> dict:
    """Run `target(*args, out)` in a fresh (spawned) process, nothing warm from this one, and return the one report
    it puts on `out`; a report with an "error" is raised here."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    report = out.get()
    proc.join()
    if "error" in report:
        raise RuntimeError(report["error"])
    return report

