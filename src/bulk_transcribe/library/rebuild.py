"""A whole folder's index built again from the transcripts it already holds: folders transcribed before the index
existed, or an index that was lost (`bulk-transcribe index OUT`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import layout
from ..folder_lock import OwnerLock
from ..models import VideoStatus
from ..outputs.writers import load_transcript
from .index import index_video
from .schema import FTS, reset

INDEX_COMMAND = "bulk-transcribe index"
"""How a rebuild names itself in OUT's lock file (so a run refused meanwhile says who holds the folder)."""


@dataclass(frozen=True)
class Reindexed:
    """What a rebuild did in one folder."""

    out_dir: Path
    videos: int = 0
    """Finished videos now in the index."""
    segments: int = 0
    missing: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(video_id, title) of finished videos with neither a stored transcript nor a readable JSON output."""


def rebuild(out_dir: Path | str) -> int:
    """Build OUT's index again from the transcripts it holds; returns how many videos are indexed.

    For folders transcribed before the index existed (or whose index was lost). See `reindex` for the details
    (and the errors it raises)."""
    return reindex(out_dir).videos


def reindex(out_dir: Path | str) -> Reindexed:
    """Replace OUT's whole index, in one transaction (a search meanwhile sees the old index, then the new one),
    with every finished video's segments: from its stored copy (`OUT/.transcripts/<id>.json.gz`), else its
    `json` output.

    Takes OUT like a run does (raises session_manager.FolderBusy while a run or another rebuild holds it): a live
    run indexes its own videos as they finish, and two writers would only do the work twice. Raises
    FileNotFoundError when OUT holds no store, OSError / sqlite3.Error when it cannot be written.
    """
    from ..session_manager import SessionStore  # on use: the store imports this package (schema) as it loads

    out_dir = Path(out_dir)
    db = layout.state_db(out_dir)
    if not db.is_file():
        raise FileNotFoundError(f"no batch in {out_dir} (missing {db.name})")
    lock = OwnerLock(out_dir, INDEX_COMMAND).acquire()
    try:
        with SessionStore(db) as store:
            done = [r for r in store.videos() if r.status is VideoStatus.DONE]
            conn = store.connection()
            videos = segments = 0
            missing = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                reset(conn)
                for record in done:
                    transcript = load_transcript(out_dir, record.video_id, record.outputs)
                    if transcript is None:
                        missing.append((record.video_id, record.title))
                        continue
                    segments += index_video(conn, record.video_id, record.run_id, transcript.segments,
                                            transcript.language)
                    videos += 1
                # Merge the index's b-trees into one: what a folder indexed in one go should look like to readers.
                conn.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('optimize')")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        lock.release()
    return Reindexed(out_dir, videos, segments, tuple(missing))
