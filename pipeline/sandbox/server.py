"""Serving the sandbox with uvicorn: in a background thread (tests, demo) or in the foreground (CLI).

We bind the listening socket ourselves before uvicorn starts, so the real port is known at once
even with port 0, and connections that arrive before the loop runs just wait in the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    # proto must be IPPROTO_TCP (not 0, as socket.create_server leaves it): asyncio only sets
    # TCP_NODELAY on accepted sockets whose proto says TCP, and without it Nagle + delayed ACK
    # add ~40 ms to every response uvicorn writes in two parts (headers, then body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # A deep backlog so load tests that open hundreds of connections at once are not refused.
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
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
        proxy_headers=False,  # nothing proxies the sandbox; the middleware costs ~5% per request
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
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._grace_s = 2.0
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
        self._ready = threading.Event()
        self._error = None
        self._sock = bind_socket(self._host, self._port)
        self.root_url = url_of(self._sock)
        self._server = uvicorn.Server(uvicorn_config(self.app, in_thread=True))
        self._thread = threading.Thread(
            target=self._run, name=f"masivo-sandbox:{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError(f"sandbox failed to start: {self._error!r}") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to start() in the caller's thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        """uvicorn's startup, then our own wait and shutdown.

        ``uvicorn.Server.run`` polls its exit flag every 100 ms and sleeps another 100 ms while
        shutting down; tests start a sandbox each, so we wait on an event instead and stop in a
        few milliseconds.
        """
        server, sock = self._server, self._sock
        assert server is not None and sock is not None
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        config = server.config
        if not config.loaded:
            config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        await server.on_tick(
            0
        )  # sets the Date header uvicorn would otherwise add on its first tick
        self._ready.set()
        ticker = asyncio.create_task(self._tick(server))
        await self._stop_event.wait()
        ticker.cancel()
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()  # closes idle keep-alive connections, ends busy ones after the reply
        deadline = time.monotonic() + self._grace_s
        while server.server_state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for task in list(server.server_state.tasks):
            task.cancel()

    async def _tick(self, server: uvicorn.Server) -> None:
        # uvicorn refreshes its cached Date header on its own ticks, which we no longer run.
        while True:
            await asyncio.sleep(1.0)
            await server.on_tick(0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish (2 s at most), close the request log."""
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just finished
                loop.call_soon_threadsafe(event.set)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self.state.close()
        self._thread = None
        self._loop = None

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
