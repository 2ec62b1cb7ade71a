"""The roles of a decoder layer's linears, read from module names (torch-free; docs/architecture.md).

Both the model loaders (``amber_sim.models``) and the pruner (``amber_sim.pruning``) name linears by role;
this module sits below both, so neither imports the other for it.
"""

from __future__ import annotations

from amber_sim.errors import InputError

LINEAR_ROLES = ("q", "k", "v", "o", "gate", "up", "down")
# Hugging Face LLaMA/Mistral/Qwen module name (last part) -> role
LINEAR_ROLE_OF_MODULE = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate",
                         "up_proj": "up", "down_proj": "down"}


def _layer_index(parts: list[str]) -> int | None:
    """Index of the decoder layer a module belongs to: the number after ``layers`` (or the last number)."""
    for position, part in enumerate(parts[:-1]):
        if part == "layers" and position + 1 < len(parts) - 1 and parts[position + 1].isdigit():
            return int(parts[position + 1])
    return next((int(part) for part in reversed(parts[:-1]) if part.isdigit()), None)


def find_linear_roles(model) -> dict[str, tuple[int, str]]:
    """Module name -> (layer index, role) for every nn.Linear of the decoder layers.

    Roles are q, k, v, o, gate, up, down, from the module names q_proj ... down_proj. Linears outside the
    decoder layers (lm_head) are not listed. A decoder-layer linear with another name, no match at all, or
    a layer missing a role is an InputError that lists the linear names found.
    """
    found: dict[str, tuple[int, str]] = {}
    linear_names: list[str] = []
    unmatched: list[str] = []
    import torch

    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        linear_names.append(name)
        parts = name.split(".")
        layer = _layer_index(parts)
        if layer is None:
            continue  # lm_head and other linears outside the decoder layers
        role = LINEAR_ROLE_OF_MODULE.get(parts[-1])
        if role is None:
            unmatched.append(name)
        else:
            found[name] = (layer, role)

    def shown(names: list[str]) -> str:
        more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
        return ", ".join(names[:12]) + more if names else "none"

    expected = "LLaMA/Qwen2-style q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"
    if unmatched or not found:
        raise InputError("model", "linear modules", f"expected {expected} in the decoder layers; "
                         f"{'unmatched: ' + shown(unmatched) if unmatched else 'found: ' + shown(linear_names)}")
    by_layer: dict[int, list[str]] = {}
    for layer, role in found.values():
        by_layer.setdefault(layer, []).append(role)
    for layer, roles in sorted(by_layer.items()):
        if sorted(roles) != sorted(LINEAR_ROLE_OF_MODULE.values()):
            missing = sorted(set(LINEAR_ROLE_OF_MODULE.values()) - set(roles))
            raise InputError("model", f"layer {layer}", f"expected one each of {expected}; missing "
                             f"{', '.join(missing) or 'none'}, found {', '.join(sorted(roles))}")
    return found
