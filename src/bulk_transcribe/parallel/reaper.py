"""No Ray process outlives the process that started the embedded Ray, however that process ends.

Ray's GCS and raylet die with their parent (PR_SET_PDEATHSIG), but the agents the raylet starts do not: seen here,
after a SIGKILL of the CLI (or its exit at once on a second Ctrl-C), `ray::DashboardAgent` and
`ray::RuntimeEnvAgent` lived on for minutes (220 MB). Ray's daemons run in sessions of their own (cluster.py keeps
the terminal's signals to the driver), so nothing else reaps them. A reaper does: a small process in a session of
its own, started before Ray, notes the process group of each Ray daemon the driver starts (each leads its own; its
children, the agents among them, stay in it) and, once the driver has ended, ends every Ray process still in one
of those groups. A process is only ended when it is in such a group and is Ray's, so a group id reused later by
something else is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys

REAPER = r"""
import os, select, signal, sys, time
driver, me = int(sys.argv[1]), os.getpgid(0)
own = os.getpgid(driver)  # the terminal's group: never ours to end

def procs():
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read().decode(errors="replace")
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            yield int(name), int(fields[1]), int(fields[2]), "ray" in cmd or "ray::" in stat

groups = set()
try:
    handle = os.pidfd_open(driver)
except (AttributeError, OSError):
    handle = None
while True:  # note the groups of Ray's daemons as the driver starts them, until it ends
    groups |= {pgid for pid, ppid, pgid, ray in procs() if ppid == driver and ray and pgid not in (own, me)}
    if handle is not None:
        if select.select([handle], [], [], 0.25)[0]:
            break
    else:
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            break
        time.sleep(0.25)
time.sleep(1.0)  # an orderly exit has stopped Ray by now; what is left is for us
for sig in (signal.SIGTERM, signal.SIGKILL):
    left = [pid for pid, ppid, pgid, ray in procs() if pgid in groups and ray]
    for pid in left:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    if not left:
        break
    time.sleep(3.0)
"""


def start_reaper() -> subprocess.Popen | None:
    """Start the reaper for this process (call before Ray starts its daemons). None where there is no /proc (not
    Linux): Ray's own fate-sharing is all there is."""
    if not os.path.isdir("/proc"):
        return None
    return subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid())], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True)
