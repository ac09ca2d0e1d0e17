"""Videos enter a run here, as soon as they are resolved: registered in the store (resume: done ones stay done),
shown in the table, given more output formats from stored transcripts, and only then handed to the scheduler.

The driver asks `take()`; whatever front end started the run sees the same rows appear, whichever executor runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Sequence

from ..outputs.backfill import BackfillResult, repair_unsafe_folders, write_missing_outputs
from ..outputs.writers import load_transcript
from ..config import RunConfig
from ..media.urls import identity_of, kind_of
from ..inputs.archive import SKIPPED_NOTE, DownloadArchive
from ..models import EventKind, ProgressEvent, Transcript, VideoItem, VideoStatus
from ..session_manager import SessionStore, VideoRecord


class VideoStream(Protocol):
    """Resolved videos as they come (inputs.InputStream, or a fixed list in tests)."""

    def take(self, timeout: float = 0.0) -> list[VideoItem]: ...

    def unresolved(self) -> list[str]: ...

    @property
    def finished(self) -> bool: ...

    @property
    def resolved(self) -> int: ...

    @property
    def total(self) -> int: ...

    duplicates: list[str]

    def close(self) -> None: ...


@dataclass
class IntakeTally:
    """What the intake did besides queueing, for the front ends' summary lines."""

    registered: int = 0
    done_before: int = 0
    archived: int = 0
    """Videos skipped (rows of their own, status skipped) because the download archive lists them."""
    backfill: BackfillResult = field(default_factory=BackfillResult)
    recheck: int = 0
    """Finished videos flagged in an earlier run, queued again because this run rechecks flagged transcripts."""


class StoreIntake:
    """Takes resolved videos from a stream, records them, and passes on the ones left to do."""

    def __init__(self, config: RunConfig, store: SessionStore, run_id: str, stream: VideoStream, recorder: Any,
                 *, archive: DownloadArchive | None = None) -> None:
        self.config = config
        self.store = store
        self.run_id = run_id
        self.stream = stream
        self.recorder = recorder
        self.archive = archive
        self.folders: dict[str, str] = {}
        """video_id -> output folder, for every video registered (the driver writes outputs there)."""
        self.records: list[VideoRecord] = []
        self.tally = IntakeTally()
        self._inputs: tuple[int, int] | None = None
        self._duplicates = 0
        self._forgotten: set[str] = set()  # lines whose old rows were already replaced in this run
        self._recheck_of: dict[str, Transcript] = {}  # flagged finished transcripts this run rechecks, until taken

    def take(self, timeout: float = 0.0) -> list[VideoItem]:
        items = self._as_known(self.stream.take(timeout))
        self._report_inputs()
        if not items:
            return []
        todo = {r.video_id for r in self._skip_archived(self.admit(items)) if r.status == VideoStatus.QUEUED}
        return [replace(item, recheck_of=self._recheck_of.pop(item.video_id)) if item.video_id in self._recheck_of
                else item for item in items if item.video_id in todo]

    def cancel(self) -> list[tuple[str, str]]:
        """Stop resolving. Videos already resolved still join the table, and every input line not resolved yet
        gets a row of its own, so the table still accounts for every input. Returns (video_id, reason) for each
        of them that never ran: the driver records them cancelled."""
        resolved = self.stream.take(0.0)
        pending = self.stream.unresolved()
        self.stream.close()
        self._report_inputs()
        stand_ins = [_unresolved_item(line) for line in pending]
        records = self._skip_archived(self.admit(self._as_known(resolved) + stand_ins))
        waiting = {item.video_id for item in stand_ins}
        return [(r.video_id, "cancelled before its input was resolved" if r.video_id in waiting
                 else "cancelled before it started") for r in records if r.status == VideoStatus.QUEUED]

    def _skip_archived(self, records: list[VideoRecord]) -> list[VideoRecord]:
        """Queued videos the download archive lists become skipped rows (never run); returns the records with
        their status as it now stands."""
        if self.archive is None:
            return records
        skipped = [r for r in records if r.status == VideoStatus.QUEUED and self.archive.lists(r.kind, r.meta)]
        if skipped:
            self.recorder.emit(*[ProgressEvent(r.video_id, EventKind.SKIPPED, note=SKIPPED_NOTE) for r in skipped])
            self.tally.archived += len(skipped)
            for r in skipped:
                r.status, r.note = VideoStatus.SKIPPED, SKIPPED_NOTE
        return records

    def admit(self, items: Sequence[VideoItem]) -> list[VideoRecord]:
        """Register `items` in the store and the tracker (the table shows them from now on)."""
        if not items:
            return []
        # A line that has become videos replaces the rows that stood for the line itself (a stand-in a stop left,
        # or its failure in an earlier run), so the table and the manifest count each input once.
        by_line: dict[str, list[str]] = {}
        for item in items:
            if item.error is None and item.meta != UNRESOLVED:
                by_line.setdefault(item.input, []).append(item.video_id)
        for line, ids in by_line.items():
            if line not in self._forgotten:
                self.store.forget_line_rows(line, ids)
                self._forgotten.add(line)
        records = self.store.register_videos(self.run_id, list(items))
        # Before outputs are written: an old unsafe folder name may sit where one belongs.
        repair_unsafe_folders(self.config, self.store, records)
        backfill = write_missing_outputs(self.config, self.store, records)
        self._add_backfill(backfill)
        if backfill.redo:  # outputs gone, nothing stored to write them from: done again, not "nothing to do"
            records = self.store.requeue(self.run_id, backfill.redo, records)
        if self.config.recheck:
            # Flagged before and never rechecked: done again, now with the recheck (a recheck that kept a flag is
            # not tried again on every rerun).
            flagged = [r.video_id for r in records if r.status is VideoStatus.DONE and r.quality is not None
                       and r.quality.needs_review and r.quality.recheck is None]
            if flagged:
                outputs = {r.video_id: dict(r.outputs) for r in records}
                records = self.store.requeue(self.run_id, flagged, records)
                self.tally.recheck += len(flagged)
                for video_id in flagged:  # the transcript the user has is what the recheck must beat
                    stored = load_transcript(self.config.out_dir, video_id, outputs[video_id])
                    if stored is not None and stored.quality is not None:
                        self._recheck_of[video_id] = stored
        for record in records:
            self.folders[record.video_id] = record.folder
        self.records.extend(records)
        self.tally.registered += len(records)
        self.tally.done_before += sum(1 for r in records if r.status == VideoStatus.DONE)
        self.recorder.add_videos(records)
        return records

    def _as_known(self, items: Sequence[VideoItem]) -> list[VideoItem]:
        """Each item under the id of the video the store already knows as the same one (its identity), so a
        video given again another way resumes its row (done stays done) instead of being transcribed twice."""
        if not items:
            return []
        items = [i if i.identity else replace(i, identity=identity_of(i.source, i.kind, i.meta)) for i in items]
        known = self.store.ids_by_identity(i.identity for i in items if i.error is None)
        out = []
        for item in items:
            video_id = known.get(item.identity) if item.error is None else None
            if video_id and video_id != item.video_id:
                item = replace(item, video_id=video_id)
                self.folders.pop(video_id, None)
            out.append(item)
        return out

    def _add_backfill(self, more: BackfillResult) -> None:
        total = self.tally.backfill
        total.videos += more.videos
        total.files += more.files
        total.redo += more.redo

    def _report_inputs(self) -> None:
        inputs = (self.stream.resolved, self.stream.total)
        if inputs != self._inputs:
            self._inputs = inputs
            self.recorder.set_inputs(*inputs)
        if len(self.stream.duplicates) != self._duplicates:
            self._duplicates = len(self.stream.duplicates)
            self.store.record_duplicates(self.run_id, list(self.stream.duplicates))

    @property
    def finished(self) -> bool:
        return self.stream.finished

    def close(self) -> None:
        self.stream.close()
        self._report_inputs()


UNRESOLVED = {"unresolved": True}
"""The meta of a stand-in row for an input line never resolved (see SessionStore.forget_line_rows)."""


def _unresolved_item(line: str) -> VideoItem:
    return VideoItem(line, kind_of(line), line, title=line, meta=dict(UNRESOLVED))
