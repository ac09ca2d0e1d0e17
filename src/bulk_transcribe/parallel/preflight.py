"""A quick look before joining a Ray cluster: is anything listening at the address?

`ray.init(address=...)` against an address where nothing listens keeps retrying for minutes. A person who typed a
wrong address deserves a one-line answer in seconds, so the CLI and the page check the TCP port first (no Ray
import).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

CONNECT_TIMEOUT_S = 3.0
"""How long the page waits for the cluster's port to answer before calling it unreachable."""


def ray_address_problem(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when the cluster at `address` answers (or no address was given: an embedded Ray starts), else why not."""
    if not address:
        return None
    target = address.strip()
    if target == "auto":
        target = os.environ.get("RAY_ADDRESS", "").strip() or _current_cluster() or ""
        if not target or target == "auto":
            return "No running Ray cluster was found for address 'auto' (start one with `ray start --head`)."
    hostport = target.split("://", 1)[1] if "://" in target else target
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return f"Ray address {address!r} is not HOST:PORT."
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.timeout):
            reason = f"no answer within {timeout:g} s"
        return f"The Ray cluster at {address} cannot be reached ({host}:{port}: {reason})."


def _current_cluster() -> str | None:
    # Where `ray start --head` records the address that "auto" resolves to.
    path = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
