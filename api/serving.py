"""How ``crm serve`` runs uvicorn: with several workers, each listens on a socket of its
own.

uvicorn's workers share one listening socket, and an event loop that wakes accepts
every connection waiting: clients that connect together (a pool of keep-alive
connections, a proxy's upstream connections) all land on the worker that woke first
while the others stay idle, and the API runs on one core (as the HTTP benchmark saw:
docs/PERFORMANCE.md, HTTP reads). Here each worker binds its own socket with
``SO_REUSEPORT`` and the kernel spreads new connections across the workers by a hash
of their addresses (as nginx's ``reuseport``). A supervisor starts the workers, starts
another when one dies, and stops them all on ``SIGTERM`` or ``SIGINT``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

log = logging.getLogger("api")

BACKLOG = 2048
"""Connections a worker's socket queues before accepting them (uvicorn's default)."""
STOP_SECONDS = 10.0
"""How long the workers get to finish the requests in flight when stopped."""


def serve(app: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the ASGI app made by the factory ``app`` (``module:function``) until
    stopped."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(
            app,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_config=None,  # uvicorn's loggers go to the root's handler (api.logs)
            access_log=False,  # the app's own access log has the route and correlation id
        )
        return
    # Bound, never listening: it takes no connections, but the port is ours (a port in
    # use fails here, before any worker starts) and port 0 becomes a real one.
    with listening_socket(host, port, listen=False) as reserved:
        _supervise(app, host, reserved.getsockname()[1], workers, log_level)


def listening_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, listening unless
    told not to."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _supervise(app: str, host: str, port: int, workers: int, log_level: str) -> None:
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    context = multiprocessing.get_context("spawn")

    def start() -> BaseProcess:
        worker = context.Process(
            target=_worker, args=(app, host, port, log_level, os.getpid()), name="crm-api"
        )
        worker.start()
        return worker

    running = [start() for _ in range(workers)]
    try:
        while not stopping.wait(0.5):
            for n, worker in enumerate(running):
                if not worker.is_alive():
                    log.warning(
                        "API worker %s exited (%s); starting another", worker.pid, worker.exitcode
                    )
                    running[n] = start()
    finally:
        for worker in running:
            worker.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + STOP_SECONDS
        for worker in running:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()


def _worker(app: str, host: str, port: int, log_level: str, parent: int) -> None:
    # A group of its own: a terminal's Ctrl-C reaches the supervisor alone, which then
    # stops each worker once (a second signal makes uvicorn drop requests in flight).
    os.setpgrp()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])


def _exit_with(parent: int) -> None:
    """Stop this worker if the supervisor is gone (killed without a chance to stop
    it), rather than serve on unsupervised."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
