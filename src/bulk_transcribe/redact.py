"""Credentials in URLs (`https://User:PassWord@host/...`): sent with the request as given, never shown or stored.

Everything the user sees or the tool keeps - the table, `status`, manifest.json, the session store (sources,
inputs, errors and the run's settings), the dashboard - carries the redacted form `https://User:***@host/...`.
That form is also the video's identity (its id is a hash of it), so a rerun with the same URL resumes the same
video. The real user:password lives only in memory: on the item itself (`VideoItem.request_url`, set when inputs
are resolved, never stored, left out of its repr; it travels with the item to the downloader, Ray workers
included), and in `DownloadOptions.url_credentials`, filled from the inputs when a batch is prepared (keyed by the
redacted URL, so two passwords for one host stay apart) for items rebuilt from the store (shipped to Ray workers
with the run's settings, never written).
A rerun gets it again from the user's input; a retry started later from the store alone (the dashboard's "retry
failed" after a restart) has only the redacted URL and fails with the server's 401, which names the cause.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any, Iterable, Mapping

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")  # to the last @: a password may hold one


def _masked_userinfo(userinfo: str) -> str:
    if userinfo == MASK or userinfo.endswith(":" + MASK):
        return userinfo  # already redacted
    user, colon, _password = userinfo.partition(":")
    # A user name alone is often a token (https://TOKEN@host/): hide it too.
    return f"{user}:{MASK}" if colon else MASK


def redact_text(text: str) -> str:
    """Every `scheme://userinfo@` in `text` (a URL, an input line, an error message) with its secret masked."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: m.group("scheme") + _masked_userinfo(m.group("userinfo")) + "@", text)


def reveal(url: str, credentials: Iterable[tuple[str, str]]) -> str:
    """The URL to request: the real one the user gave for this redacted URL (when known), else `url` itself."""
    if MASK not in url:
        return url
    for shown, real in credentials:
        if shown == url:
            return real
    return url


def config_record(config: Any) -> dict[str, Any]:
    """A run's settings as stored: inputs redacted, in-memory credentials dropped."""
    data = asdict(config)
    data["inputs"] = [redact_text(str(text)) for text in data.get("inputs", ())]
    data["rejected"] = [[redact_text(str(line)), redact_text(str(why))] for line, why in data.get("rejected", ())]
    download = data.get("download")
    if isinstance(download, dict):
        download.pop("url_credentials", None)
    return data


def credentials_from(pairs: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


__all__ = ["MASK", "config_record", "credentials_from", "redact_text", "reveal"]
