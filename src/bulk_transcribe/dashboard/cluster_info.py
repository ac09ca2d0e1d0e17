"""What the home page says about Ray: resources and the Ray dashboard link, when this server is connected.

Viewing the home page never starts or joins a cluster: only a parallel run does that. So this reports a cluster
only once this process is connected to one (`ray` already imported and initialised by a run).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClusterSummary:
    metrics: list[tuple[str, str]] = field(default_factory=list)
    """(label, value) pairs in display order: nodes, CPUs, GPUs, memory."""
    dashboard_url: str | None = None
    error: str | None = None


def cluster_info() -> ClusterSummary | None:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        from ..parallel import cluster

        return ClusterSummary(resource_metrics(cluster.cluster_resources()), cluster.dashboard_url())
    except Exception as exc:  # noqa: BLE001 — a cluster that went away is a message, not a crash
        return ClusterSummary(error=" ".join(str(exc).split()) or type(exc).__name__)


def resource_metrics(summary: dict[str, float]) -> list[tuple[str, str]]:
    """The engine's resource summary (parallel.cluster.cluster_resources) as labelled values."""
    if not summary:
        return []
    metrics = [("Nodes", f"{summary.get('nodes', 0):g}")]
    for kind in ("CPU", "GPU"):
        total = summary.get(kind, 0.0)
        if total or kind == "CPU":
            metrics.append((f"{kind}s free", f"{summary.get(f'{kind}_free', 0.0):g} of {total:g}"))
    metrics.append(("Memory", f"{summary.get('memory_gb', 0.0):g} GB"))
    metrics.append(("Object store", f"{summary.get('object_store_gb', 0.0):g} GB"))
    return metrics
