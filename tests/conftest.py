"""Shared pytest fixtures. One section per owner; keep each section small."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pipeline.sandbox.server import SandboxServer

# ---------------------------------------------------------------------------------------------
# Sandbox (pipeline.sandbox): a real Masivo-like HTTP server on 127.0.0.1, one per test.
#
#   def test_x(make_sandbox):
#       sb = make_sandbox(error_503_rate=0.2, seed=1)   # any SandboxConfig field
#       httpx.get(sb.base_url + "/auth/authorize", headers={"x-api-key": sb.config.api_key})
#       sb.state.registrations()                         # what Masivo "accepted"
#
#   def test_y(sandbox): ...                             # default config, seed 0
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Factory: start a sandbox with SandboxConfig(**overrides); all are stopped after the test."""
    from pipeline.sandbox.config import SandboxConfig
    from pipeline.sandbox.server import SandboxServer

    started: list[SandboxServer] = []

    def make(**overrides: Any) -> SandboxServer:
        overrides.setdefault("seed", 0)
        server = SandboxServer(SandboxConfig(**overrides)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A started sandbox with the default config (no faults) and seed 0."""
    return make_sandbox()
