"""The op list of one LLaMA-layout prefill (LLaMA, Mistral, Qwen2, Qwen3), derived from the model config
(torch-free).

Used by the synthetic trace generator and by capture for the ops that hooks do not see as
``nn.Linear`` calls (attention matmuls and vector work). Names follow Hugging Face module names
(``layers.3.self_attn.q_proj``) so a captured and a synthetic trace of one model line up.

Vector work is counted as it is logically defined (bytes of the tensors read and written,
operations per element); how it is fused is the simulator's decision (docs/model.md).

Every op also says what amber-trace/2 makes explicit (docs/trace-format.md): the precision the
matrix unit multiplies at, the ``producer`` whose output a GEMM reads (q/k/v ← input norm, scores ←
RoPE, context ← softmax, o ← context, gate/up ← post-attention norm, down ← SiLU·mul, LM head ← final
norm; a mitigation op names its linear's producer), which side of fused attention stays on chip, the
causal mode of the two attention GEMMs, and that mitigation work is sparse overhead. These agree with
what ``amber_sim.trace.migrate_v1_ops`` infers for an amber-trace/1 file of the same ops.

Qwen3 (``qk_norm=True``) normalises every query and key head with its own RMSNorm over head_dim
(``self_attn.q_norm``, ``self_attn.k_norm``) between the projections and RoPE: two vector ops of role
``qk_norm`` placed after v_proj and before RoPE (so no GEMM's producer changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from amber_sim.pruning.names import LEARNABLE_MITIGATIONS
from amber_sim.trace import ModelConfig, Op

# Operations per element, counted as scalar fp operations of a straightforward implementation.
RMSNORM_OPS_PER_ELEMENT = 4.0   # square, accumulate, multiply by rsqrt, multiply by gamma
ROPE_OPS_PER_ELEMENT = 3.0      # x·cos + rotate(x)·sin
SOFTMAX_OPS_PER_ELEMENT = 5.0   # scale, running max, subtract+exp, sum, divide
SILU_MUL_OPS_PER_ELEMENT = 5.0  # silu(g) = g / (1 + exp(-g)): negate, exp, add, divide; then multiply by up
RESIDUAL_OPS_PER_ELEMENT = 1.0
# Mitigations of a sparsified linear's activation (arXiv 2509.22166), per activation element:
MEDIAN_SHIFT_OPS_PER_ELEMENT = 4.0         # per-row median by selection (~3 compares), subtract η
VARIANCE_CORRECTION_OPS_PER_ELEMENT = 5.0  # sum and sum of squares of the dense and of the kept row, rescale
MEDIAN_CORRECTION_OPS_PER_OUTPUT = 2.0     # y += η · rowsum(W): one multiply-add per output element
STATIC_SHIFT_OPS_PER_ELEMENT = 1.0         # subtract the calibrated η (its η · rowsum(W) is a constant bias)
# Learnable output corrections, per OUTPUT element, in the GEMM's epilogue: y + b, or a·y + b (multiply-add).
LEARNABLE_OPS_PER_OUTPUT = {"learnable-shift": 1.0, "learnable-scale-shift": 2.0}

# A run's precision → (what its linears multiply, bytes per operand element): W8A8 runs int8 linears.
LINEAR_FORMATS = {"fp16": ("fp16", 2.0), "w8a8": ("int8", 1.0)}
ATTENTION_PRECISION = "fp16"  # attention and vector work stay fp16 in every run (W8A8 covers linears only)


@dataclass(frozen=True)
class LinearChoice:
    """What a run does to one linear: its pattern, the measured (or assumed) density and natural zeros."""

    pattern: str = "dense"
    density: float = 1.0
    natural_zero_fraction: float = 0.0
    mitigation: str = "none"


LinearChooser = Callable[[int, str, int, int, int], LinearChoice]  # (layer, role, M, K, N) -> choice


def head_dim(config: ModelConfig) -> int:
    return config.head_dim or config.hidden // config.heads


def decoder_linear_shapes(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """(K, N) of each linear role: y[M, N] = x[M, K] · Wᵀ."""
    hd = head_dim(config)
    return {
        "q": (config.hidden, config.heads * hd),
        "k": (config.hidden, config.kv_heads * hd),
        "v": (config.hidden, config.kv_heads * hd),
        "o": (config.heads * hd, config.hidden),
        "gate": (config.hidden, config.intermediate),
        "up": (config.hidden, config.intermediate),
        "down": (config.intermediate, config.hidden),
    }


_LINEAR_MODULE = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
                  "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


def linear_op(layer: int, role: str, tokens: int, k: int, n: int, choice: LinearChoice, precision: str,
              producer: str | None) -> Op:
    """One decoder linear of a run of ``precision`` (``fp16`` or ``w8a8``) reading ``producer``'s output."""
    sparse = choice.pattern != "dense"
    linear_precision, dtype_bytes = LINEAR_FORMATS[precision]
    return Op(name=f"layers.{layer}.{_LINEAR_MODULE[role]}", layer=layer, role=role, kind="linear",
              M=tokens, K=k, N=n, batch=1, sparse_operand="activation" if sparse else None,
              pattern=choice.pattern, density=choice.density, natural_zero_fraction=choice.natural_zero_fraction,
              dtype_bytes=dtype_bytes, precision=linear_precision, producer=producer)


def mitigation_op(linear: Op, mitigation: str, act_bytes: float) -> Op | None:
    """The vector work a mitigation adds to one sparsified linear (None for ``none``).

    Reads the activation once (M·K elements); median shift also adds η·rowsum(W) to the output, reading
    and writing it (M·N elements) and reading rowsum(W) (N values). Writes of the shifted/rescaled
    activation are fused into the sparsifier's pass and not counted again. A static median shift alone
    is one subtraction per element inside the producer's pass (on chip: no traffic, no kernel of its own):
    its η is a calibrated constant and η·rowsum(W) a constant vector folded into the linear's bias.
    A learnable correction (y' = a ⊙ y + b per output channel) is 1 (shift) or 2 (scale and shift) ops per
    OUTPUT element (M·N) in the GEMM's epilogue: on chip on both sides, no traffic, no kernel of its own.
    """
    if mitigation in ("none", "scaling") or not linear.is_sparse:  # scaling: 1/s folds into the producer's weights
        return None
    if mitigation in LEARNABLE_MITIGATIONS:
        return _vector(f"{linear.name}.mitigation", linear.layer, "mitigation", linear.M * linear.N,
                       LEARNABLE_OPS_PER_OUTPUT[mitigation], 0, 0, producer=linear.producer, input_from="on_chip",
                       output_to="on_chip", sparse_overhead=True)
    if mitigation == "static-median-shift":
        elements = linear.M * linear.K
        return _vector(f"{linear.name}.mitigation", linear.layer, "mitigation", elements,
                       STATIC_SHIFT_OPS_PER_ELEMENT, 0, 0, producer=linear.producer, input_from="on_chip",
                       output_to="on_chip", sparse_overhead=True)
    activation_elements = linear.M * linear.K
    output_elements = linear.M * linear.N
    operations = 0.0
    bytes_in = activation_elements * act_bytes
    bytes_out = 0.0
    if mitigation.startswith("static-median-shift"):
        operations += activation_elements * STATIC_SHIFT_OPS_PER_ELEMENT
    elif "median-shift" in mitigation:
        operations += activation_elements * MEDIAN_SHIFT_OPS_PER_ELEMENT
        operations += output_elements * MEDIAN_CORRECTION_OPS_PER_OUTPUT
        bytes_in += (output_elements + linear.N) * act_bytes
        bytes_out += output_elements * act_bytes
    if "variance-correction" in mitigation:
        operations += activation_elements * VARIANCE_CORRECTION_OPS_PER_ELEMENT
    # it reads the linear's activation: the same producer; it exists only because the linear is sparse
    return _vector(f"{linear.name}.mitigation", linear.layer, "mitigation", activation_elements,
                   operations / activation_elements, bytes_in, bytes_out, producer=linear.producer,
                   sparse_overhead=True)


def _vector(name: str, layer: int, role: str, elements: int, ops: float, bytes_in: float, bytes_out: float,
            producer: str | None = None, input_from: str = "dram", output_to: str = "dram",
            sparse_overhead: bool = False) -> Op:
    return Op(name=name, layer=layer, role=role, kind="vector", elements=int(elements), ops_per_element=ops,
              bytes_in=int(bytes_in), bytes_out=int(bytes_out), precision=ATTENTION_PRECISION, producer=producer,
              input_from=input_from, output_to=output_to, sparse_overhead=sparse_overhead)


def qk_norm_ops(config: ModelConfig, layer: int, tokens: int, act_bytes: float = 2.0) -> list[Op]:
    """Qwen3's per-head RMSNorms of the queries and keys: tokens·heads·head_dim (q) and
    tokens·kv_heads·head_dim (k) elements, each reading its head_dim weights once."""
    hd = head_dim(config)
    ops = []
    for which, heads in (("q", config.heads), ("k", config.kv_heads)):
        elements = tokens * heads * hd
        ops.append(_vector(f"layers.{layer}.self_attn.{which}_norm", layer, "qk_norm", elements,
                           RMSNORM_OPS_PER_ELEMENT, (elements + hd) * act_bytes, elements * act_bytes))
    return ops


def decoder_layer_ops(config: ModelConfig, layer: int, tokens: int, choose: LinearChooser,
                      precision: str = "fp16", act_bytes: float = 2.0, qk_norm: bool = False) -> list[Op]:
    """Every op of one decoder layer's prefill over ``tokens`` tokens, in execution order (``precision``:
    the run's, ``fp16`` or ``w8a8``; ``qk_norm``: Qwen3's per-head q/k RMSNorms before RoPE)."""
    hidden, hd = config.hidden, head_dim(config)
    shapes = decoder_linear_shapes(config)
    prefix = f"layers.{layer}"
    hidden_elements = tokens * hidden

    def linear(role: str, producer: Op) -> list[Op]:
        """The linear op reading ``producer``'s output, preceded by its mitigation's vector op when it has one
        (followed by it for a learnable output correction, which runs in the GEMM's epilogue)."""
        k, n = shapes[role]
        choice = choose(layer, role, tokens, k, n)
        op = linear_op(layer, role, tokens, k, n, choice, precision, producer.name)
        extra = mitigation_op(op, choice.mitigation, act_bytes)
        if extra is None:
            return [op]
        return [op, extra] if choice.mitigation in LEARNABLE_MITIGATIONS else [extra, op]

    def rmsnorm(name: str) -> Op:
        return _vector(f"{prefix}.{name}", layer, "rmsnorm", hidden_elements, RMSNORM_OPS_PER_ELEMENT,
                       (hidden_elements + hidden) * act_bytes, hidden_elements * act_bytes)

    def residual(name: str) -> Op:
        return _vector(f"{prefix}.{name}", layer, "residual", hidden_elements, RESIDUAL_OPS_PER_ELEMENT,
                       2 * hidden_elements * act_bytes, hidden_elements * act_bytes)

    rope_elements = tokens * (config.heads + config.kv_heads) * hd
    causal_scores = config.heads * tokens * (tokens + 1) // 2
    intermediate_elements = tokens * config.intermediate
    input_norm = rmsnorm("input_layernorm")
    rope = _vector(f"{prefix}.self_attn.rope", layer, "rope", rope_elements, ROPE_OPS_PER_ELEMENT,
                   (rope_elements + 2 * tokens * hd) * act_bytes, rope_elements * act_bytes)
    # Fused attention: the scores stay on chip, softmax reads and writes them there, P·V reads P from there.
    scores = Op(name=f"{prefix}.self_attn.scores", layer=layer, role="attn_score", kind="attention", M=tokens, K=hd,
                N=tokens, batch=config.heads, operand_b_batch=config.kv_heads, causal="output", dtype_bytes=act_bytes,
                precision=ATTENTION_PRECISION, producer=rope.name, output_to="on_chip")
    softmax = _vector(f"{prefix}.self_attn.softmax", layer, "attn_softmax", causal_scores, SOFTMAX_OPS_PER_ELEMENT,
                      causal_scores * act_bytes, causal_scores * act_bytes, input_from="on_chip", output_to="on_chip")
    context = Op(name=f"{prefix}.self_attn.context", layer=layer, role="attn_value", kind="attention", M=tokens,
                 K=tokens, N=hd, batch=config.heads, operand_b_batch=config.kv_heads, causal="reduction",
                 dtype_bytes=act_bytes, precision=ATTENTION_PRECISION, producer=softmax.name, input_from="on_chip")
    post_attention_norm = rmsnorm("post_attention_layernorm")
    act_mul = _vector(f"{prefix}.mlp.act_mul", layer, "silu_mul", intermediate_elements, SILU_MUL_OPS_PER_ELEMENT,
                      2 * intermediate_elements * act_bytes, intermediate_elements * act_bytes)
    return [
        input_norm,
        *linear("q", input_norm), *linear("k", input_norm), *linear("v", input_norm),
        *(qk_norm_ops(config, layer, tokens, act_bytes) if qk_norm else ()),
        rope, scores, softmax, context,
        *linear("o", context),
        residual("attn_residual"),
        post_attention_norm,
        *linear("gate", post_attention_norm), *linear("up", post_attention_norm),
        act_mul,
        *linear("down", act_mul),
        residual("mlp_residual"),
    ]


def prefill_ops(config: ModelConfig, tokens: int, choose: LinearChooser, precision: str = "fp16",
                act_bytes: float = 2.0, logits_tokens: int = 1, qk_norm: bool = False) -> list[Op]:
    """The whole prefill: embedding gather, every decoder layer, final norm and the LM head.

    ``precision`` is the run's (``fp16``, or ``w8a8``: every linear, the LM head included, is int8 at
    1 byte). The LM head runs on ``logits_tokens`` rows: 1 for serving prefill (only the last token's
    logits are needed); a perplexity evaluation would use all tokens. ``qk_norm``: the model normalises
    each query and key head before RoPE (Qwen3).
    """
    if precision not in LINEAR_FORMATS:
        raise ValueError(f"precision: expected one of {', '.join(LINEAR_FORMATS)}, got {precision!r}")
    hidden_elements = tokens * config.hidden
    ops = [_vector("embed_tokens", -1, "embedding", hidden_elements, 0.0, hidden_elements * act_bytes,
                   hidden_elements * act_bytes)]
    for layer in range(config.layers):
        ops.extend(decoder_layer_ops(config, layer, tokens, choose, precision, act_bytes, qk_norm))
    final_norm = _vector("norm", -1, "rmsnorm", hidden_elements, RMSNORM_OPS_PER_ELEMENT,
                         (hidden_elements + config.hidden) * act_bytes, hidden_elements * act_bytes)
    lm_precision, lm_bytes = LINEAR_FORMATS[precision]
    ops.append(final_norm)
    ops.append(Op(name="lm_head", layer=-1, role="lm_head", kind="linear", M=logits_tokens, K=config.hidden,
                  N=config.vocab, batch=1, sparse_operand=None, pattern="dense", density=1.0,
                  natural_zero_fraction=0.0, dtype_bytes=lm_bytes, precision=lm_precision, producer=final_norm.name))
    return ops
