"""Shared fixtures: a tiny synthetic trace, the bundled configs and small random LLaMA models, built in memory.

Also loads the hooks of tests/torch_stack.py: torch-dependent tests skip through ``torch_stack.importorskip``,
and under ``CI=true`` with torch installed such a skip fails the session.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from amber_sim.capture.synthetic import SyntheticSpec, synthetic_trace  # noqa: E402
from amber_sim.trace import ModelConfig  # noqa: E402

import torch_stack  # noqa: E402  (tests/ is on sys.path, as for conftest itself)
from torch_stack import (  # noqa: E402, F401  (its hooks: a torch-stack skip under CI fails the session)
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

TINY_CONFIG = ModelConfig(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=100, head_dim=16,
                          max_position=256)


@pytest.fixture
def tiny_trace():
    spec = SyntheticSpec(model_name="tiny", family="llama", config=TINY_CONFIG, seq_len=32,
                         patterns=("dense", "2:4", "8:16", "unstructured"), precisions=("fp16", "w8a8"),
                         policy="all", created="2026-01-01T00:00:00+00:00")
    return synthetic_trace(spec)


@pytest.fixture
def llama_like_config():
    return ModelConfig(hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256,
                       head_dim=128, max_position=131072)


@pytest.fixture(scope="session")
def build_tiny_llama():
    """Builds small random Hugging Face LLaMA models: seeded (the same weights every time for the same
    shape), in eval mode; ``device="meta"`` gives the shapes without weights."""
    torch = torch_stack.importorskip("torch")
    transformers = torch_stack.importorskip("transformers")

    def build(hidden=64, intermediate=128, layers=3, heads=4, kv_heads=2, vocab=101, max_positions=128, device=None):
        config = transformers.LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                                          num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                                          max_position_embeddings=max_positions)
        if device == "meta":
            with torch.device("meta"):
                return transformers.LlamaForCausalLM(config)
        torch.manual_seed(0)
        return transformers.LlamaForCausalLM(config).eval()

    return build


@pytest.fixture(scope="module")
def tiny_llama(build_tiny_llama):
    """A 3-layer random LLaMA (hidden 64, MLP 128, vocabulary 101); a test module may override it."""
    return build_tiny_llama(layers=3)


@pytest.fixture
def ids():
    """One 24-token prompt for :func:`tiny_llama` (a test module may override it)."""
    torch = torch_stack.importorskip("torch")
    return torch.randint(0, 101, (1, 24), generator=torch.Generator().manual_seed(1))
