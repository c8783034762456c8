"""Session fixtures: tiny real models (built once per test session) and an isolated edgebert cache."""

from __future__ import annotations

import pytest

from support import Tiny, build_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    """A tiny random DistilBERT, its fp32 and dynamic-int8 ONNX exports and its tokenizer."""
    return build_tiny(tmp_path_factory.mktemp("tiny"))
