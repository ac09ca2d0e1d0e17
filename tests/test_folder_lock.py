"""One live process owns an output folder: a lock, not a guess from silence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bulk_transcribe.folder_lock import FolderBusy, OwnerLock

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_owner_lock_refuses_a_second_owner_naming_the_first(tmp_path):
    first = OwnerLock(tmp_path, command="bulk-transcribe").acquire("run-1")
    assert OwnerLock.holder(tmp_path).run_id == "run-1"
    with pytest.raises(FolderBusy, match=r"in use by bulk-transcribe \(process \d+ on .*run run-1\)"):
        OwnerLock(tmp_path).acquire()  # the same process: flock belongs to the open file, so this is refused too
    first.release()
    assert OwnerLock.holder(tmp_path) is None
    OwnerLock(tmp_path).acquire().release()


def test_owner_lock_is_dropped_when_its_process_is_killed(tmp_path):
    """A lock, not a guess from silence: SIGKILL the owner and the folder is free at once."""
    code = (f"import sys, time; sys.path.insert(0, {str(REPO_ROOT / 'src')!r})\n"
            "from bulk_transcribe.folder_lock import OwnerLock\n"
            f"OwnerLock({str(tmp_path)!r}, command='holder').acquire('r1'); print('held', flush=True); "
            "time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        owner = OwnerLock.holder(tmp_path)
        assert owner is not None and owner.pid == proc.pid and owner.command == "holder"
    finally:
        proc.kill()
        proc.wait()
    assert OwnerLock.holder(tmp_path) is None
