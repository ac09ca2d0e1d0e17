"""The Streamlit dashboard's logic: settings, input checks, path confinement, view models and the run registry.

Pages import from here and stay thin. Nothing in this package imports ray, yt_dlp or faster_whisper at import
time; the engine is reached through `bulk_transcribe.runs` when a run starts or is read.
"""

from .paths import OutsideRootError, confine
from .settings import DashboardSettings
from .submit import RunSettings, Submission, SubmitResult, build_run

__all__ = ["DashboardSettings", "OutsideRootError", "RunSettings", "Submission", "SubmitResult", "build_run",
           "confine"]
