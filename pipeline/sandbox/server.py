"""Serving the sandbox with uvicorn: in a background thread (tests, demo) or in the foreground (CLI).

We bind the listening socket ourselves before uvicorn starts, so the real port is known at once
even with port 0, and connections that arrive before the loop runs just wait in the backlog.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import uvicorn

from pipeline.sandbox.app import SandboxApp
from pipeline.sandbox.config import API_PREFIX, SandboxConfig
from pipeline.sandbox.state import SandboxState


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A deep backlog so load tests that open hundreds of connections at once are not refused.
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_config(app: SandboxApp, *, in_thread: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="httptools",  # h11 is several times slower
        lifespan="off",
        access_log=False,
        log_level="warning",
        # In-process we must not rewire the host's logging (pytest, the demo); the CLI owns its
        # process and uses uvicorn's default console format.
        log_config=None if in_thread else uvicorn.config.LOGGING_CONFIG,
        server_header=False,
        # Clients keep pooled connections idle between bursts; uvicorn's 5 s default would
        # close them under the client and turn into spurious connection errors.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=2,
    )


class SandboxServer:
    """A sandbox served by uvicorn on its own event loop in a daemon thread.

    ``with SandboxServer(config) as sb: httpx.get(sb.base_url + "/auth/authorize", ...)``;
    ``sb.state`` is the live recording (see ``SandboxState``).
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = SandboxApp(config or SandboxConfig())
        self._host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.root_url = ""

    @property
    def config(self) -> SandboxConfig:
        return self.app.config

    @property
    def state(self) -> SandboxState:
        return self.app.state

    @property
    def base_url(self) -> str:
        """The Masivo base URL, e.g. http://127.0.0.1:41234/api/storefront/v1."""
        return self.root_url + API_PREFIX

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("sandbox not started")
        return int(self._sock.getsockname()[1])

    def start(self, timeout: float = 10.0) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        self._sock = bind_socket(self._host, self._port)
        self.root_url = url_of(self._sock)
        self._server = uvicorn.Server(uvicorn_config(self.app, in_thread=True))
        self._thread = threading.Thread(
            target=self._run, name=f"masivo-sandbox:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("sandbox did not start in time")
            time.sleep(0.002)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # surfaced to start()/stop() in the caller's thread
            self._error = exc

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (2 s at most), close the request log."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self.state.close()
        self._thread = None

    def reconfigure(self, **changes: Any) -> SandboxConfig:
        """Change behaviour while serving, e.g. ``sb.reconfigure(error_503_rate=0.5)``."""
        config = self.config.replace(**changes)
        self.app.reconfigure(config)
        return config

    def reset(self) -> None:
        self.app.reset()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def run_sandbox_in_thread(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SandboxServer]:
    """Serve a sandbox for the duration of a ``with`` block; yields the started server."""
    server = SandboxServer(config, host=host, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def serve_foreground(server_app: SandboxApp, sock: socket.socket) -> None:
    """Serve on an already bound socket in this (main) thread until SIGINT/SIGTERM."""
    server = uvicorn.Server(uvicorn_config(server_app, in_thread=False))
    try:
        server.run(sockets=[sock])
    finally:
        server_app.state.close()
