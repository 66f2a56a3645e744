"""A service that ignores SIGTERM and SIGINT: the runner must SIGKILL it to stop the mesh.

It also forks a child into its own process group's background, as a server with workers
does, so the test can check that the runner stops whole groups, not only their leaders.
"""

from __future__ import annotations

import os
import signal
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ready"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.fork() == 0:  # a worker that outlives nothing on its own: it sleeps until killed
        while True:
            time.sleep(1)
    time.sleep(float(os.environ.get("STUBBORN_LOAD_SECONDS", "0")))
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), _Health).serve_forever()
