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
Every request is counted per path, so tests can assert how hard a client hit the server.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


HUGE_BYTES = 2 * 1024**3
"""What /huge/<name> announces: a 2 GiB "video"."""


class MediaServer:
    def __init__(self, root: Path, *, flaky_429_count: int = 1, slow_bytes_per_s: int = 64_000) -> None:
        self.root = Path(root)
        self.flaky_429_count = flaky_429_count
        self.slow_bytes_per_s = slow_bytes_per_s
        self.hits: Counter[str] = Counter()
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

    def reset_counts(self) -> None:
        with self._lock:
            self.hits.clear()
            self.request_log.clear()

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
