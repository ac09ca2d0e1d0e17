"""Connecting to Ray, naming a run's actors, and attaching to a run from another process.

With no address a new embedded local Ray always starts, sized to this machine (bounded object store, dashboard on
127.0.0.1 only), even where RAY_ADDRESS is set or `ray start` runs a cluster here. Only `auto`, `HOST:PORT` or
`ray://HOST:10001` join an existing cluster. Every run's actors are named
`bulk_transcribe:<run_id>:<role>` in one namespace, so the dashboard or `bulk-transcribe status --run ID` can find
a live run by its id, read its snapshot and cancel it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import available_cpus
from .preflight import ray_address_problem

NAMESPACE = "bulk_transcribe"
"""The Ray namespace that holds every run's named actors."""

DEFAULT_OBJECT_STORE_BYTES = 512 * 1024**2
"""Object store of the embedded local Ray: transcripts are small, so a bounded store leaves RAM to the models."""

ROLES = ("scheduler", "progress", "limiter")

_state: dict[str, Any] = {"dashboard_url": None, "address": None, "embedded": False}


@dataclass(frozen=True)
class ClusterInfo:
    address: str | None
    embedded: bool
    dashboard_url: str | None
    resources: dict[str, float] = field(default_factory=dict)


def actor_name(run_id: str, role: str) -> str:
    return f"{NAMESPACE}:{run_id}:{role}"


def _prepare_client_auth(address: str) -> None:
    """Ray >= 2.60 clusters require a token; a `ray://` client only sends it when RAY_AUTH_MODE=token is set.

    Without it the client hangs until it times out (server log: 'Authentication required but no authorization
    header provided'). The token is the cluster's: RAY_AUTH_TOKEN, or ~/.ray/auth_token copied from the head.
    """
    if not address.startswith("ray://"):
        return
    has_token = bool(os.environ.get("RAY_AUTH_TOKEN")) or (Path.home() / ".ray" / "auth_token").is_file()
    if has_token:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    namespace: str = NAMESPACE,
    object_store_memory: int | None = None,
    include_dashboard: bool = True,
) -> ClusterInfo:
    """Start or join Ray once per process; later calls return what is already there."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address is None:
            context = ray.init(
                # A bare ray.init() joins RAY_ADDRESS or a `ray start` cluster on this machine (and then rejects
                # num_cpus); "local" always starts a fresh one, which is what no address means here.
                address="local",
                num_cpus=num_cpus or available_cpus(),
                num_gpus=num_gpus,
                object_store_memory=object_store_memory or DEFAULT_OBJECT_STORE_BYTES,
                include_dashboard=include_dashboard,
                dashboard_host="127.0.0.1",
                namespace=namespace,
                log_to_driver=True,
            )
            _state["embedded"] = True
        else:
            problem = ray_address_problem(address)
            if problem:
                raise ConnectionError(problem)
            _prepare_client_auth(address)
            context = ray.init(address=address, namespace=namespace)
            _state["embedded"] = False
        url = getattr(context, "dashboard_url", None) or None
        _state["dashboard_url"] = f"http://{url}" if url and not url.startswith("http") else url
        _state["address"] = address
    return ClusterInfo(_state["address"], _state["embedded"], _state["dashboard_url"], cluster_resources())


def dashboard_url() -> str | None:
    """The Ray dashboard of the connected cluster (None when it runs without one)."""
    return _state["dashboard_url"]


def gcs_address() -> str | None:
    """The address another process on this network can pass to `attach` (HOST:PORT of the cluster's GCS)."""
    import ray

    if not ray.is_initialized():
        return None
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 — a ray:// client has no GCS address of its own
        return _state["address"]


def cluster_resources() -> dict[str, float]:
    """A small summary for the UI: nodes alive, CPUs and GPUs in total and free now."""
    import ray

    if not ray.is_initialized():
        return {}
    total = ray.cluster_resources()
    free = ray.available_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return {
        "nodes": float(nodes),
        "CPU": float(total.get("CPU", 0)),
        "GPU": float(total.get("GPU", 0)),
        "CPU_free": float(free.get("CPU", 0)),
        "GPU_free": float(free.get("GPU", 0)),
        "memory_gb": round(float(total.get("memory", 0)) / 1024**3, 1),
        "object_store_gb": round(float(total.get("object_store_memory", 0)) / 1024**3, 2),
    }


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _state.update(dashboard_url=None, address=None, embedded=False)


# ---- the run's actors ---------------------------------------------------------------------------------------

def _here():
    """Pin an actor to the driver's node: the SQLite store and the output folder live there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def start_run_actors(run_id: str, *, videos: list[Any], db_path: str | Path | None, max_attempts: int,
                     backoff_s: float, max_concurrent: int, min_interval_s: float,
                     max_interval_s: float | None = None) -> dict[str, Any]:
    """Create the run's scheduler, progress and limiter actors (named, on this node, no CPU reserved)."""
    import ray

    from .progress_actor import AsyncProgressActor
    from .rate_limit import RateLimiterActor
    from .scheduler import SchedulerActor

    common = dict(namespace=NAMESPACE, num_cpus=0, scheduling_strategy=_here(), max_restarts=0)
    progress = ray.remote(AsyncProgressActor).options(name=actor_name(run_id, "progress"), **common).remote(
        run_id, "parallel", videos, str(db_path) if db_path else None, metrics=True)
    scheduler = ray.remote(SchedulerActor).options(name=actor_name(run_id, "scheduler"), **common).remote(
        run_id, max_attempts=max_attempts, backoff_s=backoff_s)
    limiter = ray.remote(RateLimiterActor).options(name=actor_name(run_id, "limiter"), **common).remote(
        max_concurrent, min_interval_s, max_interval_s=max_interval_s)
    # Fail here, with the cause, rather than at the first event.
    ray.get([progress.flush.remote(), scheduler.summary.remote(), limiter.stats.remote()])
    return {"progress": progress, "scheduler": scheduler, "limiter": limiter}


def start_worker(config: Any, run_id: str, index: int, plan: Any, *, progress: Any, limiter: Any) -> Any:
    """One TranscriberActor with the plan's resources; SPREAD places GPU workers one per node where it can."""
    import ray

    from .workers import TranscriberActor

    name = f"worker-{index}"
    options: dict[str, Any] = dict(
        name=actor_name(run_id, name), namespace=NAMESPACE,
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus,
        # 1 download (prefetch) + 1 transcription + control calls (info, cancel) never wait behind them.
        max_concurrency=4,
        # A dead worker is replaced by the driver with a fresh actor (its videos re-queued), not restarted in
        # place: a restart would replay nothing useful and hide the death from the scheduler.
        max_restarts=0,
    )
    if plan.use_gpu:
        options["scheduling_strategy"] = "SPREAD"
    # Transcripts depend on the BLAS thread count used for the log-mel features (float summation order): seen
    # here, OMP_NUM_THREADS=1 and =2 gave different words for the same clip. Ray sets OMP_NUM_THREADS=num_cpus in
    # workers, so without this a parallel run could differ from a sequential one on the same machine; mirror what
    # this process uses. (faster-whisper's decoding threads are `cpu_threads`, set separately.)
    options["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": blas_threads()}}
    return ray.remote(TranscriberActor).options(**options).remote(
        config, name, progress=progress, limiter=limiter, cpu_threads=plan.cpu_threads,
        work_dir=str(Path(config.out_dir).resolve() / ".work"))


def blas_threads() -> str:
    """The OMP_NUM_THREADS this process runs with (OpenBLAS/OpenMP default: every core it may use)."""
    return os.environ.get("OMP_NUM_THREADS") or str(available_cpus())


# ---- attaching from another process ---------------------------------------------------------------------------

class RunHandle:
    """A live run seen from any process connected to the cluster."""

    def __init__(self, run_id: str, progress: Any, scheduler: Any | None) -> None:
        self.run_id = run_id
        self.progress = progress
        self.scheduler = scheduler

    def snapshot(self):
        import ray

        return ray.get(self.progress.snapshot.remote())

    def summary(self) -> dict[str, Any]:
        import ray

        return ray.get(self.scheduler.summary.remote()) if self.scheduler is not None else {}

    def cancel(self) -> None:
        """Ask the run to stop: no new videos start, those in flight end as cancelled."""
        import ray

        if self.scheduler is not None:
            ray.get(self.scheduler.request_cancel.remote())


def _get(run_id: str, role: str) -> Any | None:
    import ray

    try:
        return ray.get_actor(actor_name(run_id, role), namespace=NAMESPACE)
    except ValueError:
        return None


def attach(run_id: str, address: str | None = None) -> RunHandle | None:
    """Join the cluster (`address`, default "auto") and find a live run by id; None when it is not running."""
    import ray

    if not ray.is_initialized():
        connect(address or "auto")
    progress = _get(run_id, "progress")
    if progress is None:
        return None
    return RunHandle(run_id, progress, _get(run_id, "scheduler"))


def list_runs() -> list[str]:
    """Ids of runs with a live progress actor on the connected cluster."""
    import ray

    if not ray.is_initialized():
        return []
    runs = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"] if isinstance(entry, dict) else entry
        namespace = entry.get("namespace") if isinstance(entry, dict) else NAMESPACE
        if namespace == NAMESPACE and name.startswith(NAMESPACE + ":") and name.endswith(":progress"):
            runs.append(name[len(NAMESPACE) + 1: -len(":progress")])
    return sorted(runs)
