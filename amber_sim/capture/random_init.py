"""Random-init capture of a bundled architecture, one decoder layer at a time (docs/capture.md).

For models whose weights are not here (LLaMA-3.1-8B, LLaMA-2-7B, Qwen2-7B) the shapes are real, the
weights are drawn at random and the masks are real: the Numba kernels prune this model's actual
activations. Memory stays near one decoder layer plus activations: one layer is built (on the meta device,
then materialised), and for each layer of the model its weights are drawn anew in place, it runs on
the hidden states and is measured before the next layer's weights replace them. Embedding table and LM head are never built: the input hidden states are drawn
directly from N(0, σ²), which is what a random-init embedding table yields for distinct tokens, and the
LM head is recorded for the last token without running.

One dense prefill serves every run: at each selected linear, the input the dense model computed is
pruned by every run's pruner (pattern × precision) and the kernels' counts are kept; the dense path
continues unpruned. Without trained weights no accuracy can be measured, so there is nothing a per-run
forward would add except five times the compute; accuracy is recorded as null, never invented.

Initialisation (transformers' ``_init_weights`` for LLaMA/Qwen2): linear weights N(0, 0.02²), linear
biases 0, RMSNorm weights 1; seeded by ``--seed``.
"""

from __future__ import annotations

from amber_sim.capture.recorder import ShapeRecorder, check_linear_ops
from amber_sim.capture.spec import (CaptureSpec, Progress, RunSpec, build_run, check_patterns_fit,
                                    trace_of)
from amber_sim.errors import InputError
from amber_sim.roles import LINEAR_ROLE_OF_MODULE
from amber_sim.trace import ModelInfo, Trace

INIT_STD = 0.02                 # transformers' initializer_range for LLaMA and Qwen2


def _layer_classes(family: str):
    if family == "llama":
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

        return LlamaDecoderLayer, LlamaRotaryEmbedding
    if family == "qwen2":
        from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

        return Qwen2DecoderLayer, Qwen2RotaryEmbedding
    raise InputError("--model", "family", f"expected llama or qwen2, got {family!r}")


def build_random_layer(layer_class, hf_config, index: int, generator):
    """One decoder layer with random-init weights, built without a throwaway default initialisation."""
    import torch

    with torch.device("meta"):
        layer = layer_class(hf_config, layer_idx=index)
    layer = layer.to_empty(device="cpu").eval()
    if any(True for _ in layer.buffers()):
        raise InputError("--model", "layer", "this transformers version keeps buffers in decoder layers; "
                         "random-init capture cannot materialise them")
    return reinitialise(layer, index, generator)


def reinitialise(layer, index: int, generator):
    """Draw new random-init weights into ``layer`` in place and make it decoder layer ``index``.

    One layer object serves every layer of the model: allocating and faulting in a new multi-GB layer
    per layer costs more system time than the layer's own arithmetic saves.
    """
    import torch

    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, INIT_STD, generator=generator)
            elif name.endswith("bias"):
                parameter.zero_()
            else:
                parameter.fill_(1.0)  # RMSNorm weight
    for module in layer.modules():
        if hasattr(module, "layer_idx"):
            module.layer_idx = index
    return layer


def _layer_linears(layer, index: int) -> dict[str, tuple[int, str, object]]:
    """Model-level name → (layer index, role, module) of the seven projections of decoder layer ``index``."""
    import torch

    found = {}
    for name, module in layer.named_modules():
        role = LINEAR_ROLE_OF_MODULE.get(name.split(".")[-1])
        if isinstance(module, torch.nn.Linear) and role is not None:
            found[f"model.layers.{index}.{name}"] = (index, role, module)
    if len(found) != len(LINEAR_ROLE_OF_MODULE):
        raise InputError("--model", f"layer {index}", f"expected the 7 projections {sorted(LINEAR_ROLE_OF_MODULE)}, found "
                         f"{sorted(found)}")
    return found


def _measuring_hook(name: str, layer: int, role: str, module, sparse_runs, configs, counts):
    """A pre-hook that prunes the layer's real input once per run and keeps the counts; the input is unchanged.

    The criterion factor, the smoothing scales and the quantised weight depend on the precision, not on
    the pattern, so one pruner is built per precision and only its config changes per run.
    """
    import dataclasses

    from amber_sim.pruning.apply import LayerStats, make_linear_pruner

    def hook(_module, args):
        x = args[0]
        built = {}
        for run in sparse_runs:
            config = configs[run]
            if config.precision not in built:
                absmax = None
                if config.precision == "w8a8":
                    # no calibration text for random weights: the smoothing statistics come from these tokens
                    absmax = x.detach().reshape(-1, x.shape[-1]).abs().amax(dim=0).float().numpy()
                built[config.precision] = make_linear_pruner(module.weight, config, name, activation_absmax=absmax)
            pruner = dataclasses.replace(built[config.precision], config=config)
            _pruned, stats = pruner(x)
            counts[run].setdefault((layer, role), LayerStats(name=name, layer=layer, role=role)).add(stats)
        return None
    return hook


def capture_random_init(spec: CaptureSpec, runs: list[RunSpec], progress: Progress | None,
                        arch=None) -> Trace:
    """``arch``: an ArchConfig to use instead of the bundled one named by ``spec.model`` (tests)."""
    import torch

    from amber_sim.models.architectures import get_arch, known_architectures, to_hf_config
    from amber_sim.pruning.apply import AmberConfig, selected
    from amber_sim.pruning.layer_roles import PUBLISHED_SKIP_LAYERS

    if arch is None:
        try:
            arch = get_arch(spec.model)
        except InputError:
            raise InputError("--model", None, f"--init random needs a bundled architecture; known: "
                             f"{', '.join(known_architectures())}") from None
    if spec.policy == "calibrated":
        raise InputError("--policy", None, "calibrated needs pretrained weights (it ranks layers by their error on "
                         "real text); use amber-paper or all with --init random")
    if spec.seq_len > arch.max_position:
        raise InputError("--seq-len", None, f"{spec.seq_len} is beyond {arch.name}'s context of "
                         f"{arch.max_position} tokens")
    config = arch.model_config()
    check_patterns_fit(runs, config, arch.name)
    hf_config = to_hf_config(arch)
    hf_config._attn_implementation = "sdpa"  # causal SDPA: no [heads, T, T] mask tensor
    layer_class, rotary_class = _layer_classes(arch.family)

    sparse_runs = [run for run in runs if not run.is_dense]
    configs = {run: AmberConfig(pattern=run.pattern, criterion=spec.criterion, policy=spec.policy,
                                mitigation=spec.mitigation, model_name=arch.name, precision=run.precision)
               for run in sparse_runs}
    policy_probe = AmberConfig(pattern="2:4", criterion=spec.criterion, policy=spec.policy, model_name=arch.name)
    counts: dict[RunSpec, dict] = {run: {} for run in sparse_runs}
    observed = {}
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        hidden = torch.randn(1, spec.seq_len, arch.hidden, generator=generator) * INIT_STD
        positions = torch.arange(spec.seq_len).unsqueeze(0)
        position_embeddings = rotary_class(hf_config)(hidden, positions)
        layer = None
        for index in range(arch.layers):
            if layer is None:
                layer = build_random_layer(layer_class, hf_config, index, generator)
            else:
                layer = reinitialise(layer, index, generator)
            linears = _layer_linears(layer, index)
            hooks = [module.register_forward_pre_hook(
                        _measuring_hook(name, index, role, module, sparse_runs, configs, counts))
                     for name, (_i, role, module) in linears.items() if selected(role, index, policy_probe)]
            try:
                with ShapeRecorder(linears) as recorder:
                    hidden = layer(hidden, attention_mask=None, position_ids=positions,
                                   position_embeddings=position_embeddings)
            finally:
                for hook in hooks:
                    hook.remove()
            if not bool(torch.isfinite(hidden).all()):
                raise InputError(arch.name, f"layer {index}", "random-init hidden states became non-finite")
            observed.update(recorder.by_layer_role())
            if progress is not None:
                progress(index + 1, arch.layers, f"layer {index} ({len(sparse_runs)} sparse runs measured)")

    trace_runs = []
    for run in runs:
        metrics = {"perplexity": None, "top1_agreement": None}
        trace_run = build_run(run, spec, config, counts.get(run, {}), metrics, spec.policy)
        check_linear_ops(trace_run.ops, observed, arch.name)
        trace_runs.append(trace_run)
    skip = PUBLISHED_SKIP_LAYERS.get(arch.name)
    policy_words = (f"policy amber-paper with the published skip list {list(skip)}" if spec.policy == "amber-paper"
                    and skip else f"policy {spec.policy}")
    notes = (f"RANDOM-INIT weights (linears N(0, {INIT_STD}^2), unit norms, seed {spec.seed}); the masks are real: "
             "the Numba kernels pruned this model's activations. Built and run one decoder layer at a time; one "
             "dense prefill, every run's masks computed on its activations; input hidden states drawn from "
             f"N(0, {INIT_STD}^2) (no tokenizer or embedding table). Accuracy is null (random weights). "
             f"{policy_words}. Ops recorded with fp16 operands (w8a8 linears: int8); LM head on the last token "
             "only (recorded, not run)." + (" W8A8 smoothing statistics from the same tokens."
                                            if "w8a8" in spec.precisions else ""))
    model_info = ModelInfo(name=arch.name, family=arch.family, weights="random-init", source=arch.source,
                           config=config)
    return trace_of(spec, model_info, trace_runs, None, notes)
