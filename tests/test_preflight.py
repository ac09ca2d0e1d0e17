"""Joining a cluster that is not there: a clear reason in seconds, not ray.init retrying for minutes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from bulk_transcribe.parallel.preflight import ray_address_problem


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as s:  # free a moment ago: nothing listens there now
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_reasons(dead_port, live_port):
    assert ray_address_problem(None) is None  # no address: an embedded Ray starts
    assert ray_address_problem(f"127.0.0.1:{live_port}") is None
    assert ray_address_problem(f"ray://127.0.0.1:{live_port}") is None
    assert f"127.0.0.1:{dead_port}" in ray_address_problem(f"127.0.0.1:{dead_port}")
    assert "not HOST:PORT" in ray_address_problem("ray://nonsense")


def test_cluster_connect_refuses_a_dead_address_before_ray_init(dead_port):
    # A fresh interpreter: connect() returns the Ray a process already joined, so test it where none is joined.
    code = (
        "from bulk_transcribe.parallel import cluster\n"
        "try:\n"
        f"    cluster.connect('127.0.0.1:{dead_port}')\n"
        "except ConnectionError as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("REFUSED") and f"127.0.0.1:{dead_port}" in out.stdout, out.stdout + out.stderr
