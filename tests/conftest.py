"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # torch on CPU: skip ~10 s of compiling


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of the embedded tiny model (seed 0), built once per test session."""
    from imaginarium.generators.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)
