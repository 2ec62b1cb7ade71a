"""Forward hooks that record what a prefill actually executed (capture reads them; nothing is copied).

A :class:`ShapeRecorder` hooks every decoder linear of a model (or of one decoder layer) and records,
per module, the GEMM it ran: M = rows of its input (tokens), K = input features, N = output features.
Capture builds the op list from the model config (``prefill_ops``) and then checks every linear op
against these observations, so a trace can never claim a shape the model did not run. Attention
geometry is checked through the same observations: q_proj's N is heads·head_dim, k_proj's and
v_proj's N is kv_heads·head_dim. Vector modules that are easy to miss from the config alone (Qwen3's
per-head ``q_norm`` / ``k_norm``) are hooked too, by the op name they should have, and their element
counts are checked against the op list (:func:`check_vector_ops`).

A second hook, on each decoder layer, reports progress (one tick per layer per forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amber_sim.errors import InputError
from amber_sim.trace import Op


@dataclass(frozen=True)
class LinearObservation:
    name: str    # module name, e.g. model.layers.3.mlp.down_proj
    layer: int
    role: str    # q, k, v, o, gate, up, down
    M: int       # input rows (tokens × batch) of the last forward
    K: int
    N: int
    calls: int


class ShapeRecorder:
    """Records the (M, K, N) of every hooked linear; use as a context manager (hooks removed on exit)."""

    def __init__(self, linears: dict[str, tuple[int, str, object]],
                 layers: list[object] | None = None, on_layer: Callable[[], None] | None = None,
                 vectors: dict[str, object] | None = None):
        """``linears``: module name → (layer index, role, nn.Linear); ``layers``: decoder layer modules
        whose forwards tick ``on_layer``; ``vectors``: op name → module whose output elements are recorded
        (``vector_elements``)."""
        self.observations: dict[str, LinearObservation] = {}
        self.vector_elements: dict[str, int] = {}
        self._hooks: list = []
        for name, (layer, role, module) in linears.items():
            self._hooks.append(module.register_forward_hook(self._linear_hook(name, layer, role)))
        for op_name, module in (vectors or {}).items():
            self._hooks.append(module.register_forward_hook(self._vector_hook(op_name)))
        if on_layer is not None:
            for module in layers or ():
                self._hooks.append(module.register_forward_hook(lambda *_args: on_layer()))

    def _linear_hook(self, name: str, layer: int, role: str):
        def hook(_module, args, output) -> None:
            x = args[0]
            k = int(x.shape[-1])
            previous = self.observations.get(name)
            self.observations[name] = LinearObservation(
                name=name, layer=layer, role=role, M=int(x.numel() // k), K=k, N=int(output.shape[-1]),
                calls=(previous.calls if previous else 0) + 1)
        return hook

    def _vector_hook(self, op_name: str):
        def hook(_module, _args, output) -> None:
            self.vector_elements[op_name] = int(output.numel())
        return hook

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __enter__(self) -> "ShapeRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def by_layer_role(self) -> dict[tuple[int, str], LinearObservation]:
        return {(obs.layer, obs.role): obs for obs in self.observations.values()}


def check_linear_ops(ops: list[Op] | tuple[Op, ...], observed: dict[tuple[int, str], LinearObservation],
                     where: str) -> None:
    """Every decoder linear op must match what the hooks saw, and every hooked linear must be an op."""
    expected = {(op.layer, op.role): op for op in ops if op.kind == "linear" and op.layer >= 0}
    missing = sorted(set(expected) - set(observed))
    extra = sorted(set(observed) - set(expected))
    if missing or extra:
        raise InputError(where, "linear modules", f"the model ran other linears than its config implies: "
                         f"not run {missing[:6]}, unexpected {extra[:6]}")
    for key, op in expected.items():
        seen = observed[key]
        if (seen.M, seen.K, seen.N) != (op.M, op.K, op.N):
            raise InputError(where, seen.name, f"the model ran M,K,N = {seen.M},{seen.K},{seen.N} where the "
                             f"config implies {op.M},{op.K},{op.N}; its config does not describe it")


def check_vector_ops(ops: list[Op] | tuple[Op, ...], observed: dict[str, int], roles: frozenset[str],
                     where: str) -> None:
    """The ops of ``roles`` must be exactly the hooked vector modules, with the element counts they produced."""
    expected = {op.name: op for op in ops if op.kind == "vector" and op.role in roles}
    missing = sorted(set(expected) - set(observed))
    extra = sorted(set(observed) - set(expected))
    if missing or extra:
        raise InputError(where, "vector modules", f"the model ran other {'/'.join(sorted(roles))} ops than its "
                         f"config implies: not run {missing[:6]}, unexpected {extra[:6]}")
    for name, op in expected.items():
        if observed[name] != op.elements:
            raise InputError(where, name, f"the model produced {observed[name]} elements where the config "
                             f"implies {op.elements}; its config does not describe it")
