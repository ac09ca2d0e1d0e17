"""Limits on every HTTP response yt-dlp reads for us: a low-speed guard, a deadline, a byte cap on pages, cancel.

A socket timeout only fires when the server is silent; a server sending one byte a second never trips it, and
yt-dlp's downloader reads fixed blocks (1 KiB and up), so at that pace its progress hook - where a cancel is
noticed - runs once every twenty minutes. Pages are worse: yt-dlp reads a whole page (decompressed) into memory
before parsing it, whatever its size.

The hook point is `YoutubeDL.urlopen`, through which both the extractors (pages, feeds) and the HTTP downloader
(media) open every response: `GuardedYDL` wraps each response in a `GuardedResponse` that
  - reads with `read1` (what one receive brings, never waiting to fill a block), so callers see bytes as they come;
  - counts decoded bytes and refuses a page past `page_cap` before it is all in memory (a gzip bomb stops at the
    cap, not at its inflated size);
  - runs a watchdog thread that, on a cancel, a passed deadline or a stall (under `stall_bytes_per_s` for
    `stall_time_s`, like curl's --speed-limit/--speed-time), shuts the socket down: a read blocked in the kernel
    returns at once and raises the reason, instead of waiting for the next byte or the socket timeout.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import urllib3
import yt_dlp
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import IncompleteRead, TransportError

from .. import errors

WATCH_TICK_S = 0.25
"""How often the watchdog looks at a response: a cancel or a stall is acted on within about this long."""

_READ_ALL_CHUNK = 1 << 16

FILL_S = 0.2
"""Longest a read waits to fill the block it was asked for once some bytes are in hand."""


ALLOW_LINK_LOCAL_ENV = "BULK_TRANSCRIBE_ALLOW_LINK_LOCAL"
"""Set to 1 to let requests reach link-local addresses (169.254.0.0/16, fe80::/10): refused by default, since that
is where clouds serve their instance metadata and credentials, and no video lives there."""


class Refused(Exception):
    """A request the tool never makes, whoever asks (a feed's enclosure, a page's link, a redirect): a scheme other
    than http/https, or a link-local address. Not retried; the reason names the link."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def request_problem(url: str) -> str | None:
    """Why `url` must not be requested (None when it may): only http and https, and no link-local address unless
    the operator allows it (ALLOW_LINK_LOCAL_ENV). A host name is looked up: a name that points at such an address
    is refused as the address itself would be."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return f"refused a link that is not http or https ({parts.scheme.lower()}://{parts.hostname or ''})"
    if os.environ.get(ALLOW_LINK_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    host = parts.hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%")[0])
                         for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
        except (OSError, ValueError):
            return None  # it cannot be looked up: the request itself will say so
    for address in addresses:
        if address.is_link_local:
            return (f"refused a link-local address ({address}: where clouds serve instance metadata; set "
                    f"{ALLOW_LINK_LOCAL_ENV}=1 to allow it)")
    return None


class Stalled(Exception):
    """The transfer ran below the low-speed limit for the whole window (retryable: the next attempt may be fast)."""

    def __init__(self, limit_bytes_per_s: float, window_s: float) -> None:
        super().__init__(f"below {limit_bytes_per_s:g} bytes/s for {window_s:g} s")
        self.detail = str(self)


class DeadlineExceeded(Exception):
    """The caller's time budget (e.g. resolving one input) ran out during a transfer."""


class PageTooLarge(Exception):
    """A page grew past the cap; `compressed` names the Content-Encoding when the server sent it compressed."""

    def __init__(self, cap: int, compressed: str | None) -> None:
        self.cap = cap
        self.compressed = compressed
        super().__init__(cap, compressed)


@dataclass
class TransferGuard:
    """Settings shared by the responses of one YoutubeDL; the owner changes them between phases (fields are read
    at every check, so a change applies to responses already open)."""

    stall_bytes_per_s: float = 0.0
    """Below this for `stall_time_s` counts as stalled; 0 = no low-speed guard."""
    stall_time_s: float = 30.0
    page_cap: int | None = None
    """Most decoded bytes one response may deliver; None = no cap (media downloads: max_filesize applies)."""
    deadline: float | None = None
    """time.monotonic() after which every open transfer is aborted with DeadlineExceeded; None = none."""
    should_cancel: Callable[[], bool] | None = None
    """Polled by the watchdog: true aborts every open transfer with errors.Cancelled."""
    before_request: Callable[[], None] | None = None
    """Called right before each request is sent, and `after_response` once its response headers are in: pacing
    that counts from the requests themselves, not from setting a YoutubeDL up."""
    after_response: Callable[[], None] | None = None

    def watching(self) -> bool:
        return bool(self.stall_bytes_per_s > 0 or self.deadline is not None or self.should_cancel is not None)


class GuardedYDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose every response goes through `guard` (see the module docstring)."""

    def __init__(self, params: dict[str, Any], guard: TransferGuard) -> None:
        self.guard = guard
        super().__init__(params)

    def urlopen(self, req: Any) -> Response:
        url = getattr(req, "url", None) or str(req)
        problem = request_problem(url)
        if problem:
            raise Refused(problem)
        if self.guard.before_request is not None:
            self.guard.before_request()
        response = super().urlopen(req)
        if response.url and response.url != url:
            problem = request_problem(response.url)  # a redirect's target: its body is never read
            if problem:
                response.close()
                raise Refused(f"{problem}, redirected to from {url}")
        if self.guard.after_response is not None:
            self.guard.after_response()
        return GuardedResponse(response, self.guard)


class GuardedResponse(Response):
    def __init__(self, inner: Response, guard: TransferGuard) -> None:
        super().__init__(fp=inner, url=inner.url, headers=inner.headers, status=inner.status,
                         reason=inner.reason, extensions=inner.extensions)
        self.guard = guard
        self.received = 0
        """Decoded bytes handed to the caller so far."""
        self.started = time.monotonic()
        self._raw = getattr(inner, "fp", None)
        if not isinstance(self._raw, urllib3.response.HTTPResponse):
            self._raw = None  # another handler (urllib): plain reads, the watchdog still interrupts
        self._sock = _find_socket(inner)
        self._abort: BaseException | None = None
        self._finished = False
        if guard.watching():
            threading.Thread(target=_watch, args=(weakref.ref(self),), name="bt-transfer-guard",
                             daemon=True).start()

    # -- reading

    def read(self, amt: int | None = None) -> bytes:
        if amt is None or amt < 0:
            chunks = []
            while chunk := self._read_some(_READ_ALL_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._read_some(amt)

    def _read_some(self, amt: int) -> bytes:
        self._raise_if_aborted()
        try:
            if self._raw is not None:
                data = self._fill(amt)
            else:
                data = self.fp.read(amt)
        except Exception:
            self._raise_if_aborted()  # the watchdog shut the socket: its reason, not the symptom
            raise
        self._raise_if_aborted()
        self.received += len(data)
        if not data or self._body_done():
            self._finish_watching()
        cap = self.guard.page_cap
        if cap is not None and self.received > cap:
            self._finish()
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
            raise PageTooLarge(cap, encoding if encoding not in ("", "identity") else None)
        return data

    def _fill(self, amt: int) -> bytes:
        """Up to `amt` bytes: what has arrived, topped up for at most FILL_S. Fast transfers get the blocks yt-dlp
        asks for (its block size adapts to what it gets: small reads would mean many more small writes), a
        trickle returns after one receive and FILL_S, so the caller and its hooks keep running."""
        data = _read1(self._raw, amt)
        if not data or len(data) >= amt:
            return data
        parts, got, until = [data], len(data), time.monotonic() + FILL_S
        while got < amt and time.monotonic() < until:
            more = _read1(self._raw, amt - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _body_done(self) -> bool:
        """The whole body has arrived: urllib3 then hands the connection back to its pool for the next request,
        so the watchdog must never shut that socket down again."""
        inner = getattr(self._raw, "_fp", None)
        return inner is not None and inner.isclosed()

    def close(self) -> None:
        self._finished = True
        try:
            super().close()
        except Exception:  # closing a socket the watchdog already shut down
            pass

    # -- the watchdog's side

    def _raise_if_aborted(self) -> None:
        if self._abort is not None:
            self._finish()
            raise self._abort

    def _finish_watching(self) -> None:
        self._finished = True

    def _finish(self) -> None:
        self._finished = True
        try:
            self.fp.close()
        except Exception:
            pass

    def _interrupt(self, reason: BaseException) -> None:
        self._abort = reason
        if self._sock is not None and not self._body_done():
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _read1(raw: urllib3.response.HTTPResponse, amt: int) -> bytes:
    """One receive's worth, decoded; urllib3's errors turned into yt-dlp's, as its requests adapter does."""
    try:
        return raw.read1(amt, decode_content=True)
    except urllib3.exceptions.ProtocolError as exc:
        partial = next((e for e in (exc.__context__, exc.__cause__, *exc.args)
                        if isinstance(e, http.client.IncompleteRead)), None)
        if partial is not None:
            got = partial.partial if isinstance(partial.partial, int) else len(partial.partial)
            raise IncompleteRead(partial=got, expected=partial.expected) from exc
        raise TransportError(cause=exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise TransportError(cause=exc) from exc


def _find_socket(response: Response) -> socket.socket | None:
    """The socket under a yt-dlp response (requests/urllib3 or urllib), so the watchdog can shut it down."""
    candidates = [getattr(response, "fp", None)]
    raw = candidates[0]
    if raw is not None:
        candidates += [getattr(raw, "_fp", None), getattr(getattr(raw, "_connection", None), "sock", None)]
    for obj in candidates:
        for _ in range(4):  # http.client.HTTPResponse -> BufferedReader -> SocketIO -> socket
            if obj is None:
                break
            if isinstance(obj, socket.socket):
                return obj
            obj = getattr(obj, "_sock", None) or getattr(obj, "raw", None) or getattr(obj, "fp", None)
    return None


def _watch(ref: "weakref.ref[GuardedResponse]") -> None:
    samples: deque[tuple[float, int]] = deque()
    while True:
        time.sleep(WATCH_TICK_S)
        response = ref()
        if response is None or response._finished:
            return
        reason = _verdict(response, samples)
        if reason is not None:
            response._interrupt(reason)
            return
        del response


def _verdict(response: GuardedResponse, samples: deque[tuple[float, int]]) -> BaseException | None:
    guard = response.guard
    if guard.should_cancel is not None and guard.should_cancel():
        return errors.Cancelled("cancelled during download")
    now = time.monotonic()
    if guard.deadline is not None and now >= guard.deadline:
        return DeadlineExceeded()
    limit, window = guard.stall_bytes_per_s, guard.stall_time_s
    if limit <= 0 or window <= 0:
        return None
    if not samples:
        samples.append((response.started, 0))
    samples.append((now, response.received))
    while len(samples) > 1 and samples[1][0] <= now - window:
        samples.popleft()  # keep the newest sample at least `window` old as the base
    base_t, base_bytes = samples[0]
    if now - base_t >= window and response.received - base_bytes < limit * (now - base_t):
        return Stalled(limit, window)
    return None


__all__ = ["DeadlineExceeded", "GuardedYDL", "PageTooLarge", "Stalled", "TransferGuard"]
