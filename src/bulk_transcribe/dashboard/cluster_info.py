"""What the home page says about Ray: resources and the Ray dashboard link, when this server is connected.

Viewing the home page never starts or joins a cluster: only a parallel run does that. So this reports a cluster
only once this process is connected to one (`ray` already imported and initialised by a run).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClusterInfo:
    resources: dict[str, float] = field(default_factory=dict)
    available: dict[str, float] = field(default_factory=dict)
    dashboard_url: str | None = None
    error: str | None = None


def cluster_info() -> ClusterInfo | None:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        try:
            from ..parallel import cluster  # the engine's own view, when it offers one
        except ImportError:
            cluster = None
        resources = dict(getattr(cluster, "cluster_resources", ray.cluster_resources)())
        available = dict(ray.available_resources())
        url_fn = getattr(cluster, "dashboard_url", None)
        url = url_fn() if url_fn else None
        if url and not str(url).startswith("http"):
            url = f"http://{url}"
        return ClusterInfo(resources, available, url or None)
    except Exception as exc:  # noqa: BLE001 — a cluster that went away is a message, not a crash
        return ClusterInfo(error=" ".join(str(exc).split()) or type(exc).__name__)


def resource_rows(info: ClusterInfo) -> list[dict]:
    """CPU, GPU and memory first (what a person looks for), then any custom resources."""
    rows = []
    keys = [k for k in ("CPU", "GPU", "memory", "object_store_memory") if k in info.resources]
    keys += sorted(k for k in info.resources if k not in keys and not k.startswith("node:"))
    for key in keys:
        total, free = info.resources.get(key, 0.0), info.available.get(key, 0.0)
        if "memory" in key:
            rows.append({"Resource": key, "Total": f"{total / 1024**3:.1f} GiB", "Free": f"{free / 1024**3:.1f} GiB"})
        else:
            rows.append({"Resource": key, "Total": f"{total:g}", "Free": f"{free:g}"})
    return rows
