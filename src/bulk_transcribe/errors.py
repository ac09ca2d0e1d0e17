"""Errors that end one video's attempt. Their message is what the user sees in the table and the manifest,
so it names the cause in one line; the batch catches them per video and goes on."""

from __future__ import annotations

MAX_WORD_CHARS = 200
"""A longer word in a reason (a 100 KB URL) is cut in its middle: the manifest stays small, the ends stay readable."""

MAX_REASON_CHARS = 600
"""The longest reason stored or shown."""


def one_line(text: str) -> str:
    """`text` as a reason: one line, long words (URLs, paths) shortened in the middle, the whole capped."""
    words = [w if len(w) <= MAX_WORD_CHARS else f"{w[:140]}…{w[-50:]}" for w in str(text).split()]
    line = " ".join(words)
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"


class VideoError(Exception):
    """Base: one video could not be processed. `retryable` says whether another attempt may help."""

    retryable = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable

    @property
    def reason(self) -> str:
        return one_line(str(self))


class InputError(VideoError):
    """The input itself is bad (missing, empty, not media, unsupported URL): retrying will not help."""

    retryable = False


class DownloadError(VideoError):
    """Fetching the audio failed (HTTP error, unreachable host, timeout)."""


class MediaError(VideoError):
    """The file was fetched but holds no decodable audio."""

    retryable = False


class TranscriptionError(VideoError):
    """The model failed or ran past its time budget."""


class Cancelled(VideoError):
    """The run was cancelled while this video was in progress."""

    retryable = False
