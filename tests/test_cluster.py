"""Multi-node: a real `ray.cluster_utils.Cluster` of 3 nodes (1 CPU + 1 logical GPU each; no CUDA here, so the
model runs on CPU). Workers spread one per GPU; a node removed mid-run loses nothing; a second process attaches to
a live run by id, reads its snapshot and cancels it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import media
from bulk_transcribe.runs import prepare_batch, start_batch
from bulk_transcribe.models import SourceKind, VideoItem, VideoStatus
from bulk_transcribe.parallel import cluster
from engine_harness import drive

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def three_nodes():
    from ray.cluster_utils import Cluster

    node_args = dict(num_cpus=1, num_gpus=1, object_store_memory=100 * 1024**2)
    c = Cluster(initialize_head=True, head_node_args=dict(node_args, include_dashboard=False))
    extra = [c.add_node(**node_args) for _ in range(2)]
    c.wait_for_nodes()
    cluster.connect(c.address)
    yield c, extra
    cluster.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def long_clip(jfk_flac, tmp_path_factory) -> Path:
    samples, rate = media.read_pcm(jfk_flac)
    return media.write_wav(np.tile(samples, 4), tmp_path_factory.mktemp("long") / "jfk_x4.wav", rate)


def test_connect_reports_the_cluster(three_nodes):
    res = cluster.cluster_resources()
    assert res["nodes"] == 3 and res["GPU"] == 3 and res["CPU"] == 3
    assert cluster.actor_name("abc", "progress") == "bulk_transcribe:abc:progress"
    assert cluster.gcs_address() == three_nodes[0].address
    assert cluster.attach("no-such-run") is None


@pytest.mark.slow
def test_workers_spread_one_per_gpu_and_a_removed_node_loses_nothing(make_config, three_nodes, long_clip, speech_clips, tmp_path):
    c, extra = three_nodes
    config = make_config(tmp_path, [], formats=("txt",), parallel=True, workers=3, max_attempts=1)
    items = [VideoItem(str(p), SourceKind.FILE, str(p)) for p in [long_clip, *[s.path for s in speech_clips.values()]]]
    removable = {n.node_id: n for n in extra}
    removed = {}

    def on_node(snapshot):
        """The first video transcribing on a worker that runs on a removable node (None while there is none)."""
        import ray

        for v in snapshot.videos:
            if v.status != VideoStatus.TRANSCRIBING or not v.worker:
                continue
            actor = ray.get_actor(cluster.actor_name(snapshot.run_id, v.worker), namespace=cluster.NAMESPACE)
            node = ray.get(actor.info.remote()).get("node_id")
            if node in removable:
                return v, node
        return None

    def remove(snapshot, driver):
        v, node = on_node(snapshot)
        removed.update(worker=v.worker, video=v.video_id)
        c.remove_node(removable[node])

    run = drive(config, items, "ray", when=lambda s: on_node(s) is not None, action=remove)
    infos = list(run.driver.executor.worker_info().values())
    first_three = [i for i in infos if i.get("name") in ("worker-0", "worker-1", "worker-2")]
    assert len({i["node_id"] for i in first_three}) == 3, "one worker per GPU node"
    assert all(i["device"] == "cpu" for i in infos if i), "logical GPUs without CUDA: the model runs on CPU"
    assert removed, "a node was removed while one of its workers transcribed"
    assert removed["worker"] in run.driver.deaths
    assignments = run.driver.scheduler.assignments()
    assert assignments[removed["video"]][0] == removed["worker"] and len(assignments[removed["video"]]) == 2
    videos = run.store.videos(run.run_id)
    assert [v.status for v in videos] == [VideoStatus.DONE] * 5
    assert sorted(p.parent.name for p in tmp_path.glob("*/*.txt")) == sorted(v.folder for v in videos)


ATTACH_SCRIPT = """
import json, sys
from bulk_transcribe.parallel import cluster
handle = cluster.attach(sys.argv[1], sys.argv[2])
snap = handle.snapshot()
runs = cluster.list_runs()
handle.cancel()
print(json.dumps({"run_id": snap.run_id, "videos": len(snap.videos), "mode": snap.mode, "runs": runs}))
"""


def test_attach_from_a_second_process_reads_and_cancels(make_config, three_nodes, long_clip, speech_clips, tmp_path):
    c, _ = three_nodes
    config = make_config(tmp_path, [long_clip, long_clip.with_name("missing.wav"),
                                *[s.path for s in speech_clips.values()]], formats=("txt",), parallel=True, workers=2,
                         ray_address=c.address)  # on the cluster's actors from the start (no hand-over)
    prepared = prepare_batch(config)
    handle = start_batch(config, prepared)
    try:
        for _ in range(1200):  # the run's progress actor exists and its videos are in
            if handle.phase is None and len(handle.snapshot().videos) == 6:
                break
            handle.wait(0.1)
        out = subprocess.run([sys.executable, "-c", ATTACH_SCRIPT, prepared.run_id, c.address],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
        assert out.returncode == 0, out.stderr[-2000:]
        seen = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        assert handle.wait(180)
    assert seen["run_id"] == prepared.run_id and seen["videos"] == 6 and seen["mode"] == "parallel"
    assert prepared.run_id in seen["runs"]
    statuses = {v.video_id: v.status for v in prepared.store.videos(prepared.run_id)}
    assert all(s.is_terminal for s in statuses.values())
    assert VideoStatus.CANCELLED in statuses.values(), "the second process's cancel stopped the run"
    assert prepared.run_id not in cluster.list_runs(), "a finished run's actors are gone"


CONNECT_SCRIPT = """
import json
import os
from bulk_transcribe.parallel import cluster
info = cluster.connect(None, num_cpus=1, object_store_memory=100 * 1024**2, include_dashboard=False)
print(json.dumps({"embedded": info.embedded, "nodes": info.resources["nodes"], "cpus": info.resources["CPU"]}))
cluster.shutdown()
"""


def test_no_address_starts_a_local_ray_even_with_a_cluster_and_RAY_ADDRESS_here(three_nodes):
    # A bare ray.init() would join the 3-node cluster named by RAY_ADDRESS and reject num_cpus.
    env = dict(os.environ, RAY_ADDRESS=three_nodes[0].address)
    out = subprocess.run([sys.executable, "-c", CONNECT_SCRIPT], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"embedded": True, "nodes": 1.0, "cpus": 1.0}
