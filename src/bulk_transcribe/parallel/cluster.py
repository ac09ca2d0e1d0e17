"""Connecting to Ray, naming a run's actors, and attaching to a run from another process.

With no address a new embedded local Ray always starts, sized to this machine (bounded object store, dashboard on
127.0.0.1 only), even where RAY_ADDRESS is set or `ray start` runs a cluster here. Only `auto`, `HOST:PORT` or
`ray://HOST:10001` join an existing cluster. Every run's actors are named
`bulk_transcribe:<run_id>:<role>` in one namespace, so the dashboard or `bulk-transcribe status --run ID` can find
a live run by its id, read its snapshot and cancel it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import layout
from ..config import available_cpus
from .preflight import ray_address_problem
from .reaper import start_reaper

NAMESPACE = "bulk_transcribe"
"""The Ray namespace that holds every run's named actors."""

DEFAULT_OBJECT_STORE_BYTES = 512 * 1024**2
"""Object store of the embedded local Ray: transcripts are small, so a bounded store leaves RAM to the models."""

_state: dict[str, Any] = {"dashboard_url": None, "address": None, "embedded": False, "log_file": None,
                          "starting": False}


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


class _RayOwner:
    """One never-ending thread that starts and stops Ray for the whole process.

    Ray binds its GCS and raylet to the *thread* that forked them (Linux PR_SET_PDEATHSIG): started from a run's
    own thread, they die when that run ends, and a long-lived server (the dashboard) loses its cluster a minute
    later. Every ray.init and ray.shutdown therefore runs here, on a daemon thread that lives as long as the
    process; any thread may ask. Calls from other threads to an initialised Ray are fine (Ray's worker is
    process-wide).
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        return self.submit(fn).result()

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Queue `fn` on the owner thread; its Future holds the result (requests run one at a time, in order)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="ray-owner", daemon=True)
                self._thread.start()
        future: Future = Future()
        self._requests.put((fn, future))
        return future

    def _serve(self) -> None:
        while True:
            fn, future = self._requests.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 — handed to the caller, this thread must never end
                future.set_exception(exc)


_owner = _RayOwner()


@contextlib.contextmanager
def _daemons_in_own_session() -> Iterator[None]:
    """Start Ray's daemons (GCS, raylet, agents; their workers follow the raylet) in sessions of their own.

    A terminal's Ctrl-C, a closed terminal's SIGHUP, `timeout -s TERM` and `kill -- -PGID` go to the terminal's
    foreground process group, and Ray's daemons are in it by default: they died under the run (every video failing
    with "Ray shut down under the run", or a 60 s hang on "Failed to connect to GCS") before this driver could stop
    in order. Outside that group only the driver hears those signals; it cancels the run and stops Ray itself.
    Fate-sharing is kept: the daemons still die with this process (PR_SET_PDEATHSIG), and what they start (the
    raylet's agents, which do not) is ended by reaper.py however this process ends.

    Ray offers no option for this; on Windows it does the same (CREATE_NEW_PROCESS_GROUP) for the same reason. The
    hook is its own Popen subclass, patched only while ray.init runs, and only where the kernel fate-shares (else
    Ray's reaper needs the daemons in our group).
    """
    try:
        from ray._private import services, utils
    except ImportError:  # a Ray without this layout: keep its default, the driver still handles signals
        yield
        return
    original = getattr(services, "ConsolePopen", None)
    if original is None or not utils.detect_fate_sharing_support() or os.name != "posix":
        yield
        return

    class _SessionPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = _SessionPopen
    try:
        yield
    finally:
        services.ConsolePopen = original


def _send_ray_logs_to(path: Path) -> None:
    """Point the `ray` logger (Ray gives it a stderr handler when imported) at a file."""
    import ray  # noqa: F401 — importing sets up Ray's own handlers, which are replaced here

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_logger = logging.getLogger("ray")
    for old in list(ray_logger.handlers):
        ray_logger.removeHandler(old)
    ray_logger.addHandler(handler)
    ray_logger.propagate = False


def _leave_stop_signals_to_the_driver() -> None:
    """Keep Ray's core worker (in this process) from taking over SIGTERM.

    It installs absl's failure-signal handler, which logs "*** SIGTERM received …" and, when our own handler was
    set first (the CLI's graceful stop), ended the process with SIGABRT instead of letting the run stop in order.
    The switch is Ray's own (RAY_DISABLE_FAILURE_SIGNAL_HANDLER); set on the module rather than the environment so
    Ray's worker processes keep their crash handler.
    """
    try:
        from ray._private import ray_constants
    except ImportError:
        return
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True


class _QuietSigtermWarning(logging.Filter):
    """ray.init off the main thread warns that it set no SIGTERM handler: intended here (the CLI sets its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


logging.getLogger("ray._private.worker").addFilter(_QuietSigtermWarning())


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    namespace: str = NAMESPACE,
    object_store_memory: int | None = None,
    include_dashboard: bool = True,
    log_file: Path | None = None,
    wait: bool = True,
) -> ClusterInfo:
    """Start or join Ray once per process (on the owner thread); later calls return what is already there. With
    `wait=False` the start is queued and a Future of the ClusterInfo comes back at once (a later call waits for it).

    With `log_file`, Ray's own driver-side log lines (its token-authentication warning, "Started a local Ray
    instance") go to that file, and the workers' output stays in Ray's session logs instead of being streamed to
    this terminal, where both would tear through the progress display.

    Raises ConnectionError when this process is already connected elsewhere and `address` names another cluster:
    Ray allows one connection per process, and silently running on the other one would surprise the user. No
    address means "whatever this process runs on", starting the embedded one if there is none.
    """
    import ray

    def start() -> ClusterInfo:
        if ray.is_initialized():
            # The address of the cluster this process is on already (its GCS's HOST:PORT) names it too.
            here = ray.get_runtime_context().gcs_address
            if address is not None and address not in (_state["address"], here):
                where = _state["address"] or "its embedded local Ray"
                raise ConnectionError(
                    f"this process is already connected to {where}; restart it to use {address or 'a local Ray'}"
                )
            return ClusterInfo(_state["address"], _state["embedded"], _state["dashboard_url"], cluster_resources())
        _state["starting"] = True
        try:
            return _start(log_file or _state["log_file"])
        finally:
            _state["starting"] = False

    def _start(log_file: Path | None) -> ClusterInfo:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        _leave_stop_signals_to_the_driver()
        if log_file is not None:
            _send_ray_logs_to(log_file)
        if address is None:
            start_reaper()  # before the daemons: a kill during Ray's own start is covered too
            with _daemons_in_own_session():
                context = ray.init(
                    # A bare ray.init() joins RAY_ADDRESS or a `ray start` cluster on this machine (and then
                    # rejects num_cpus); "local" always starts a fresh one, which is what no address means here.
                    address="local",
                    num_cpus=num_cpus or available_cpus(),
                    num_gpus=num_gpus,
                    object_store_memory=object_store_memory or DEFAULT_OBJECT_STORE_BYTES,
                    include_dashboard=include_dashboard,
                    dashboard_host="127.0.0.1",
                    namespace=namespace,
                    log_to_driver=log_file is None,
                )
            _state["embedded"] = True
        else:
            problem = ray_address_problem(address)
            if problem:
                raise ConnectionError(problem)
            _prepare_client_auth(address)
            context = ray.init(address=address, namespace=namespace, log_to_driver=log_file is None)
            _state["embedded"] = False
        url = getattr(context, "dashboard_url", None) or None
        _state["dashboard_url"] = f"http://{url}" if url and not url.startswith("http") else url
        _state["address"] = address
        return ClusterInfo(_state["address"], _state["embedded"], _state["dashboard_url"], cluster_resources())

    return _owner.call(start) if wait else _owner.submit(start)  # type: ignore[return-value]


def log_to(path: Path | None) -> None:
    """Where Ray's own log lines go when it is started later by a run (connect's `log_file` for that start)."""
    _state["log_file"] = path


def starting() -> bool:
    """True while Ray is being started or joined on the owner thread."""
    return bool(_state["starting"])


def on_owner_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` on the thread that starts and stops Ray, in turn with every start and shutdown."""
    return _owner.call(fn)


def is_connected() -> bool:
    """True once this process holds a Ray connection (never imports or starts Ray otherwise)."""
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


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
    """Stop (or leave) Ray, on the owner thread. Only long-lived owners call this (tests, the CLI at exit)."""
    import ray

    def stop() -> None:
        if ray.is_initialized():
            ray.shutdown()
        _state.update(dashboard_url=None, address=None, embedded=False)

    _owner.call(stop)


# ---- the run's actors ---------------------------------------------------------------------------------------

def _here():
    """Pin an actor to the driver's node: the SQLite store and the output folder live there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def start_run_actors(run_id: str, *, db_path: str | Path | None, max_concurrent: int, min_interval_s: float,
                     max_interval_s: float | None = None) -> dict[str, Any]:
    """Create the run's progress and limiter actors (named, on this node, no CPU reserved). Videos join the
    progress actor as they are resolved (`add_videos`); the scheduler lives in the driver (engine/driver.py)."""
    import ray

    from .progress_actor import AsyncProgressActor
    from .rate_limit import RateLimiterActor

    common = dict(namespace=NAMESPACE, num_cpus=0, scheduling_strategy=_here(), max_restarts=0)
    progress = ray.remote(AsyncProgressActor).options(name=actor_name(run_id, "progress"), **common).remote(
        run_id, "parallel", (), str(db_path) if db_path else None, metrics=True)
    limiter = ray.remote(RateLimiterActor).options(name=actor_name(run_id, "limiter"), **common).remote(
        max_concurrent, min_interval_s, max_interval_s=max_interval_s)
    # Fail here, with the cause, rather than at the first event.
    ray.get([progress.flush.remote(), limiter.stats.remote()])
    return {"progress": progress, "limiter": limiter}


def start_worker(config: Any, run_id: str, index: int, plan: Any, *, progress: Any, limiter: Any) -> Any:
    """One RemoteWorker (engine/worker.py's Worker on Ray) as an actor, with the plan's resources; SPREAD places GPU workers one per node where it can."""
    import ray

    from ..engine.scheduler import MAX_HELD
    from .remote_worker import RemoteWorker

    name = f"worker-{index}"
    options: dict[str, Any] = dict(
        name=actor_name(run_id, name), namespace=NAMESPACE,
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus,
        # Every video the scheduler lets it hold (one transcribing, the rest downloading or waiting) + control
        # calls (info, cancel) that must never wait behind them.
        max_concurrency=MAX_HELD + 2,
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
    return ray.remote(RemoteWorker).options(**options).remote(
        config, name, progress=progress, limiter=limiter, cpu_threads=plan.cpu_threads,
        work_dir=str(layout.work_dir(Path(config.out_dir).resolve())))


def blas_threads() -> str:
    """The OMP_NUM_THREADS this process runs with (OpenBLAS/OpenMP default: every core it may use)."""
    return os.environ.get("OMP_NUM_THREADS") or str(available_cpus())


# ---- attaching from another process ---------------------------------------------------------------------------

class RunHandle:
    """A live run seen from any process connected to the cluster (through its named progress actor)."""

    def __init__(self, run_id: str, progress: Any) -> None:
        self.run_id = run_id
        self.progress = progress

    def snapshot(self):
        import ray

        return ray.get(self.progress.snapshot.remote())

    def cancel(self) -> None:
        """Ask the run to stop: its driver sees the request within a second; no new videos start, those in
        flight end as cancelled."""
        import ray

        ray.get(self.progress.request_cancel.remote())


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
    return RunHandle(run_id, progress)


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
