"""A webhook receiver on 127.0.0.1 for tests: records every request, answers 2xx, or
500 while told to fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    fail_for: Callable[[Request], bool] = lambda _: False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Request]:
        """The requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.requests if r.status < 300]

    def positions(self) -> list[int]:
        return [r.json["position"] for r in self.delivered()]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)


@contextmanager
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            request = Request({k.lower(): v for k, v in self.headers.items()}, body, 200)
            target = box["r"]
            if target.fail_for(request):
                request.status = 500
            with target.lock:
                target.requests.append(request)
            self.send_response(request.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        server.shutdown()
        server.server_close()
