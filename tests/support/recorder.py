"""A loopback HTTP server that records every request it gets (a proxy's CONNECT too) and serves nothing: where a
test points what must never be asked."""

from __future__ import annotations

import http.server
import threading


class Recorder:
    """Started on construction (127.0.0.1, a free port); `hits` lists "METHOD target" per request; `close()`."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(502)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = do_CONNECT = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
