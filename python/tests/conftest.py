"""Shared fixtures: one Host for the session, the real SmolLM2 from the
checkout's models/ (`make model`), and a slow mock model for cancellation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import lmhost

REPO = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("LMHOST_TEST_MODELS", REPO / "models"))
SMOLLM2 = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def host() -> lmhost.Host:
    if not (MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file():
        pytest.fail(f"the test model is missing from {MODELS}: run `make model`")
    return lmhost.Host(models_dir=MODELS)


@pytest.fixture(scope="session")
def smollm2(host: lmhost.Host) -> lmhost.Model:
    return host.load(SMOLLM2)


def mock_spec(**settings: object) -> dict[str, object]:
    """A registry entry for the deterministic mock engine."""
    return {"model_name": "mock-" + json.dumps(settings, sort_keys=True), "backend": "mock", **settings}
