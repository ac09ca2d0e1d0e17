"""A real HTTP server on 127.0.0.1 that serves test media and misbehaves on purpose.

Routes (besides plain files under the served folder):
  /status/<code>          always answers that HTTP status (404, 403, 410, 500 ...)
  /flaky429/<file>        answers 429 with Retry-After the first `flaky_429_count` times, then the file
  /storm429/<file>        always 429 with Retry-After: 1 (a rate-limit storm)
  /slow/<file>            serves the file at `slow_bytes_per_s`
  /hang/<anything>        accepts the request and never answers (until the server stops)
  /redirect-loop/<n>      redirects to itself forever
  /html/<anything>        an HTML page with no media
  /huge/<name>            announces a 2 GiB body (Content-Length) but sends only 64 KiB, then closes
  /trickle/<file>         serves the file with its true Content-Length at `trickle_bytes_per_s` (a few bytes a
                          second: never silent long enough for a socket timeout)
  /trickle-page/<name>    an HTML page served the same way
  /trickle-headers/<name> answers its status line and headers a few bytes a second (a body never comes)
  /gzip-bomb/<name>       an HTML page sent gzip-encoded: ~400 KB on the wire, `BOMB_BYTES` once inflated
  /huge-page/<name>       an HTML page of `HUGE_PAGE_BYTES`, generated as it is sent
  /redirect-ftp/<anything> redirects to an ftp:// link
  /no-answer/<anything>   reads the request and closes the connection without a word
  /auth/<file>            the file, only with HTTP Basic auth of exactly `auth` (user, password; case matters)
  /page/<file>[?delay=S]  a video page: waits S seconds (default `page_delay_s`), then an HTML page whose one
                          <video> plays /<file> (how a slow site's page looks to yt-dlp's generic extractor);
                          `pages_in_flight` / `pages_peak` say how many such requests were open at once;
                          with `sign=1` its <video> plays /signed/<token>/<file> instead, a fresh token per page
  /signed/<token>/<file>  the file while its token is valid, else 403 (how a site's signed media URL expires:
                          `expire_signed()` voids every token issued so far)
  /gate/<route>           HTTP 500 while <route> is in `closed`, else exactly what /<route> answers (a site that is
                          down for one run and back for the next)
  /redirect/<route>       a 302 to /<route>
Every request is counted per path, so tests can assert how hard a client hit the server; the trickling routes
also record how many body bytes each request got before the client hung up (`sent`).
"""

from __future__ import annotations

import base64
import gzip
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


HUGE_BYTES = 2 * 1024**3
"""What /huge/<name> announces: a 2 GiB "video"."""

BOMB_BYTES = 400 * 1024**2
"""What /gzip-bomb/<name> inflates to."""

HUGE_PAGE_BYTES = 400 * 1024**2
"""What /huge-page/<name> sends."""


def _gzip_bomb() -> bytes:
    """BOMB_BYTES of HTML-ish filler as gzip: one 1 MiB member compressed once and repeated (a gzip stream may be
    several members back to back, and decoders inflate them all), so it is built in milliseconds."""
    piece = b"<p>" + b" " * (1024**2 - 8) + b"</p>\n"
    member = gzip.compress(piece, compresslevel=9)
    return gzip.compress(b"<html><body>") + member * (BOMB_BYTES // len(piece))


class MediaServer:
    def __init__(self, root: Path, *, flaky_429_count: int = 1, slow_bytes_per_s: int = 64_000,
                 trickle_bytes_per_s: int = 20, page_delay_s: float = 0.0) -> None:
        self.root = Path(root)
        self.flaky_429_count = flaky_429_count
        self.slow_bytes_per_s = slow_bytes_per_s
        self.trickle_bytes_per_s = trickle_bytes_per_s
        self.page_delay_s = page_delay_s
        self.pages_in_flight = 0
        self.pages_peak = 0
        self.tokens_issued = 0
        self.tokens_void_through = 0
        """Tokens up to this number answer 403 (expired)."""
        self.auth = ("User", "PassWord")
        """The only credentials /auth/ accepts."""
        self.closed: set[str] = set()
        """Routes /gate/<route> answers 500 for."""
        self.hits: Counter[str] = Counter()
        self.sent: dict[str, list[int]] = {}
        """Body bytes each request to a trickling route got before the client hung up (or the body ended)."""
        self._bomb: bytes | None = None
        self.request_log: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        handler = _make_handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="media-server", daemon=True)

    def start(self) -> "MediaServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def count(self, path: str) -> int:
        with self._lock:
            return self.hits["/" + path.lstrip("/")]

    def reset_pages_peak(self) -> None:
        with self._lock:
            self.pages_peak = self.pages_in_flight

    def expire_signed(self) -> None:
        """Every signed link handed out so far now answers 403, as an expired signature does."""
        with self._lock:
            self.tokens_void_through = self.tokens_issued

    def _issue_token(self) -> int:
        with self._lock:
            self.tokens_issued += 1
            return self.tokens_issued

    def reset_counts(self) -> None:
        with self._lock:
            self.hits.clear()
            self.request_log.clear()

    def bytes_sent(self, path: str) -> list[int]:
        with self._lock:
            return list(self.sent.get("/" + path.lstrip("/"), []))

    def gzip_bomb(self) -> bytes:
        with self._lock:
            if self._bomb is None:
                self._bomb = _gzip_bomb()
            return self._bomb

    def _record_sent(self, path: str, n: int) -> None:
        with self._lock:
            self.sent.setdefault(path, []).append(n)

    def _record(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            self.request_log.append((time.monotonic(), path))
            return self.hits[path]


def _make_handler(server: MediaServer):
    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(server.root), **kwargs)

        def log_message(self, format, *args):  # keep test output clean
            pass

        def do_HEAD(self):
            self._route(head=True)

        def do_GET(self):
            self._route(head=False)

        def _route(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            n = server._record(path)
            parts = path.strip("/").split("/", 1)
            prefix, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if prefix == "status":
                return self._plain(int(rest.split("/")[0]), b"error page\n")
            if prefix == "flaky429":
                if n <= server.flaky_429_count:
                    return self._plain(429, b"slow down\n", {"Retry-After": "1"})
                return self._file(rest, head)
            if prefix == "storm429":
                return self._plain(429, b"slow down\n", {"Retry-After": "1"})
            if prefix == "slow":
                return self._file(rest, head, rate=server.slow_bytes_per_s)
            if prefix == "hang":
                server._stopping.wait(120)
                return None
            if prefix == "redirect-loop":
                self.send_response(302)
                self.send_header("Location", f"/redirect-loop/{rest}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if prefix == "huge":
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(HUGE_BYTES))
                self.end_headers()
                self.close_connection = True
                if not head:
                    try:
                        self.wfile.write(b"\0" * 65536)
                    except OSError:  # the client refused the size and hung up
                        pass
                return None
            if prefix == "trickle":
                target = (server.root / rest).resolve()
                if not target.is_file() or server.root.resolve() not in target.parents:
                    return self._plain(404, b"not found\n")
                return self._trickle(path, target.read_bytes(), self.guess_type(str(target)), head)
            if prefix == "trickle-page":
                body = (b"<html><head><title>Slow page</title></head><body>"
                        + b"<p>words</p>" * 400 + b"</body></html>")
                return self._trickle(path, body, "text/html", head)
            if prefix == "trickle-headers":
                self.close_connection = True
                head_bytes = b"HTTP/1.1 200 OK\r\n" + b"".join(
                    f"X-Filler-{i}: {'z' * 40}\r\n".encode() for i in range(200))
                sent = 0
                try:
                    for i in range(len(head_bytes)):
                        if server._stopping.is_set():
                            break
                        self.wfile.write(head_bytes[i:i + 1])
                        self.wfile.flush()
                        sent += 1
                        time.sleep(1 / server.trickle_bytes_per_s)
                except OSError:
                    pass
                server._record_sent(path, sent)
                return None
            if prefix == "gzip-bomb":
                self.close_connection = True  # the client hangs up mid-body: no next request on this socket
                body = server.gzip_bomb()
                try:
                    return self._plain(200, body, {"Content-Encoding": "gzip"}, content_type="text/html")
                except OSError:
                    return None
            if prefix == "huge-page":
                return self._huge_page(head)
            if prefix == "redirect-ftp":
                self.send_response(302)
                self.send_header("Location", f"ftp://127.0.0.1/{rest}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if prefix == "no-answer":
                self.close_connection = True
                return None
            if prefix == "auth":
                expected = "Basic " + base64.b64encode(":".join(server.auth).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._plain(401, b"who are you?\n", {"WWW-Authenticate": 'Basic realm="test"'})
                return self._file(rest, head)
            if prefix == "page":
                return self._video_page(rest, head)
            if prefix == "gate":
                if rest in server.closed:
                    return self._plain(500, b"down for now\n")
                self.path = "/" + rest + ("?" + self.path.partition("?")[2] if "?" in self.path else "")
                return self._route(head)
            if prefix == "redirect":
                self.send_response(302)
                self.send_header("Location", "/" + rest + ("?" + self.path.partition("?")[2] if "?" in self.path else ""))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if prefix == "signed":
                token, _, name = rest.partition("/")
                with server._lock:
                    void = not token.isdigit() or int(token) <= server.tokens_void_through
                if void:
                    return self._plain(403, b"signature expired\n")
                return self._file(name, head)
            if prefix == "html":
                return self._plain(200, b"<html><head><title>Just a page</title></head>"
                                        b"<body><p>No media here.</p></body></html>", content_type="text/html")
            if head:
                return super().do_HEAD()
            return super().do_GET()

        def _plain(self, code: int, body: bytes, headers: dict | None = None,
                   content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _video_page(self, rest: str, head: bool) -> None:
            query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
            delay = float(query.get("delay", server.page_delay_s))
            with server._lock:
                server.pages_in_flight += 1
                server.pages_peak = max(server.pages_peak, server.pages_in_flight)
            try:
                if delay > 0:
                    server._stopping.wait(delay)
            finally:
                with server._lock:
                    server.pages_in_flight -= 1
            name = Path(rest).stem
            src = f"/signed/{server._issue_token()}/{rest}" if query.get("sign") == "1" else f"/{rest}"
            body = (f"<html><head><title>Talk {name}</title></head><body><h1>Talk {name}</h1>"
                    f'<video controls src="{src}"></video></body></html>').encode()
            return self._plain(200, body, content_type="text/html")

        def _trickle(self, path: str, body: bytes, content_type: str, head: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if head:
                return
            sent = 0
            try:
                self.wfile.flush()
                for i in range(len(body)):
                    if server._stopping.is_set():
                        break
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    sent += 1
                    time.sleep(1 / server.trickle_bytes_per_s)
            except OSError:  # the client hung up: what we want to see
                pass
            finally:
                server._record_sent(path, sent)
                self.close_connection = True

        def _huge_page(self, head: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(HUGE_PAGE_BYTES))
            self.end_headers()
            self.close_connection = True
            if head:
                return
            piece = b"<p>" + b"x" * (1024**2 - 8) + b"</p>\n"
            try:
                for _ in range(HUGE_PAGE_BYTES // len(piece)):
                    if server._stopping.is_set():
                        return
                    self.wfile.write(piece)
                self.wfile.write(b"\n" * (HUGE_PAGE_BYTES % len(piece)))
            except OSError:
                pass

        def _file(self, rel: str, head: bool, rate: int | None = None) -> None:
            target = (server.root / rel).resolve()
            if not target.is_file() or server.root.resolve() not in target.parents:
                return self._plain(404, b"not found\n")
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(target)))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if head:
                return
            if rate is None:
                self.wfile.write(data)
                return
            chunk = max(1024, rate // 20)
            for i in range(0, len(data), chunk):
                if server._stopping.is_set():
                    return
                self.wfile.write(data[i:i + chunk])
                time.sleep(chunk / rate)

    return Handler
