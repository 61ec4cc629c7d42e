"""An HTTP proxy in front of an S3 test server that fails and slows some requests, as networks do.

``FlakyProxy(upstream, fail=0.05, slow=0.05)`` forwards every request to ``upstream`` (a moto
server), except that a fraction ``fail`` of the GETs is answered ``503 SlowDown`` (S3's own "try
again") or cut off mid-answer, and a fraction ``slow`` is held back 50-300 ms first. Seeded, so
a run's faults can be replayed. Counts of what it did are in ``stats``.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


class FlakyProxy:
    def __init__(self, upstream: str, fail: float = 0.05, slow: float = 0.05, seed: int = 0) -> None:
        self.upstream = urlsplit(upstream)
        self.fail, self.slow = fail, slow
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "failed": 0, "cut": 0, "slowed": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.stats["requests"] += 1
                    roll, delay = proxy.rng.random(), proxy.rng.uniform(0.05, 0.3)
                    kind = None
                    if self.command == "GET" and roll < proxy.fail:
                        kind = "failed" if roll < proxy.fail / 2 else "cut"
                    elif self.command == "GET" and roll < proxy.fail + proxy.slow:
                        kind = "slowed"
                    if kind:
                        proxy.stats[kind] += 1
                if kind == "failed":
                    msg = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if kind == "slowed":
                    time.sleep(delay)
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in _HOP and (k.lower() != "content-length" or self.command == "HEAD"):
                        self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if kind == "cut" and len(data) > 1:  # the connection drops halfway through the body
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
