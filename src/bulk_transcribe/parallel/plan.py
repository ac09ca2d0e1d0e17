"""How many workers a cluster gets, and what each asks Ray for (CPU threads, a GPU share)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import RunConfig


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, and what each asks Ray for. `cpu_threads` is what faster-whisper gets."""

    workers: int
    num_cpus: float
    num_gpus: float
    cpu_threads: int
    use_gpu: bool
    note: str = ""


def plan_workers(config: RunConfig, resources: dict[str, float]) -> WorkerPlan:
    """Resources per worker from the cluster's totals (`ray.cluster_resources()`).

    GPUs present and device auto/cuda: one `gpus_per_worker` share each (0.5 packs two per GPU). Otherwise CPU
    workers: `num_cpus` = threads per worker and faster-whisper's `cpu_threads` set to match, never more workers x
    threads than cores (oversubscribed decoders run slower than fewer ones).
    """
    cpus = int(resources.get("CPU", 0))
    gpus = float(resources.get("GPU", 0))
    device = config.transcribe.device.strip().lower()
    if gpus > 0 and device in ("auto", "cuda"):
        share = config.gpus_per_worker if config.gpus_per_worker > 0 else 1.0
        capacity = int(gpus / share + 1e-9)
        if capacity < 1:
            raise ValueError(f"gpus_per_worker {share} is more than the cluster's {gpus:g} GPU(s)")
        workers = min(config.workers, capacity)
        threads = config.transcribe.cpu_threads or 1
        note = f"{workers} GPU worker(s), {share:g} GPU each" + (
            f" (asked for {config.workers}, the cluster fits {capacity})" if workers < config.workers else "")
        return WorkerPlan(workers, 1.0 if cpus >= workers else 0.0, share, threads, True, note)
    if device == "cuda":
        raise ValueError("device cuda was asked for but the Ray cluster has no GPUs; use --device cpu or auto")
    if cpus < 1:
        raise ValueError("the Ray cluster has no CPUs to run workers on")
    workers = min(config.workers, cpus)
    threads = config.transcribe.cpu_threads or max(1, cpus // workers)
    if workers * threads > cpus:
        threads = max(1, cpus // workers)
    note = f"{workers} CPU worker(s) x {threads} thread(s)" + (
        f" (asked for {config.workers}; capped at {cpus} cores)" if workers < config.workers else "")
    return WorkerPlan(workers, float(threads), 0.0, threads, False, note)
