"""Roles of a decoder layer's linears and the Amber Pruner paper's fixed layer rule (torch-free).

arXiv 2508.02128 always keeps k_proj, v_proj (little compute under GQA), o_proj and up_proj
(most sensitive) dense, always sparsifies down_proj, and sparsifies q_proj and gate_proj except in a
few sensitive layers, published per model (layer indices count from 0).
"""

from __future__ import annotations

ALWAYS_DENSE_ROLES = frozenset({"k", "v", "o", "up"})
ALWAYS_SPARSE_ROLES = frozenset({"down"})
SKIPPABLE_ROLES = frozenset({"q", "gate"})

# Published skip lists (arXiv 2508.02128): layers where q_proj and gate_proj stay dense.
PUBLISHED_SKIP_LAYERS: dict[str, tuple[int, ...]] = {
    "llama-3.1-8b": (19, 21, 28, 30, 31),
    "qwen2-7b": (0, 6, 23, 26, 27),
}


def paper_rule_sparsifies(role: str, layer: int, skip_layers: tuple[int, ...] = ()) -> bool:
    """Whether the paper's rule sparsifies this linear (``lm_head`` and unknown roles stay dense)."""
    if role in ALWAYS_SPARSE_ROLES:
        return True
    if role in SKIPPABLE_ROLES:
        return layer not in skip_layers
    return False
