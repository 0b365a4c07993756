"""Shared pytest fixtures. One section per owner; keep each section small."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from pipeline.sandbox.server import SandboxServer

# Hypothesis: local runs search at random (and replay what they found from .hypothesis/); CI
# (CI=true) runs a fixed set of examples, so whether a submission lands never depends on the luck
# of one search. Long hunts: see tests/test_fuzz_props.py (MASIVO_FUZZ_EXAMPLES).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

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
