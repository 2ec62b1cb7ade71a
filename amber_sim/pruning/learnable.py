"""The learnable mitigations (arXiv 2509.22166): a per-output-channel correction of each pruned linear's output,
trained on calibration tokens against the dense layer's output (docs/pruning.md).

For a pruned linear with weight W [N, K] (and bias c, if any) and its dense input X [T, K] on the calibration
tokens, let P = pruned(X)·Wᵀ + c be what the pruned linear computes (the run's own masking: pattern, criterion,
factors; :func:`amber_sim.pruning.apply.make_linear_pruner`) and Y = X·Wᵀ + c the dense output. The corrected
output is y' = a ⊙ P + b, per output channel: ``learnable-shift`` trains b ∈ R^N (a = 1), ``learnable-scale-shift``
trains a and b. Both minimise the mean squared error (1 / (T·N)) Σ_t,n (a_n P_tn + b_n − Y_tn)² with
torch.optim.AdamW (weight decay 0, a = 1 and b = 0 at the start; a linear warm-up of the learning rate, then
cosine decay to 0 or constant), full batch, a few hundred steps per linear.

P and Y are fixed during training, and the loss of channel n is a quadratic in (a_n, b_n) whose coefficients are
a few sums over the tokens (:class:`OutputSums`: with D = Y − P and μ = mean P, Σ(P − μ)², Σ(P − μ)·D, Σ D, Σ D²,
float64). Each step evaluates the same mean squared error from them (the exact expansion, not an approximation),
so a step costs O(N) instead of O(T·N), and one forward's hooks keep only 5·N numbers per linear: X, P and Y of
one linear at a time are dropped inside its hook. AdamW runs on a change of variables (a, β) with
b = s·β − (a − 1)·μ, s the RMS of D per channel, which removes the coupling of a and b through P's mean and puts
β in units of each channel's error (:func:`fit_output_correction`); the trained function is a ⊙ P + b.

The paper's public code adds a ``shift`` Parameter of shape (1, out_features) to ``pruned(x) @ W.t()`` (and, for
scale_shift, multiplies by 1 + scale): the same correction; here each linear's is fitted to its own dense output.

Training draws no random numbers (full batch, fixed initial values); ``seed`` seeds torch's generator inside
the training all the same (in a forked RNG state, so the caller's is untouched) and is part of the cache key.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from amber_sim.errors import InputError
from amber_sim.pruning.apply import (AmberConfig, CalibrationStats, OutputCorrection, find_decoder_linears,
                                     make_linear_pruner, selected)
from amber_sim.pruning.names import LEARNABLE_MITIGATIONS

Progress = Callable[[int, int, str], None]

DEFAULT_STEPS = 300
DEFAULT_LR = 5e-2
DEFAULT_WARMUP = 20
SCHEDULES = ("cosine", "constant")
#: bumped whenever what a stored correction means changes (masking, training, file layout)
CACHE_FORMAT = 1


@dataclass(frozen=True)
class LearnSettings:
    """AdamW hyper-parameters of the output corrections: ``steps`` full-batch steps per linear, peak learning rate
    ``lr``, ``warmup`` steps of linear warm-up (lr·(s+1)/warmup), then ``schedule`` cosine (to 0 at ``steps``) or
    constant; ``seed`` for torch's generator."""

    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    warmup: int = DEFAULT_WARMUP
    schedule: str = "cosine"
    seed: int = 0

    def validated(self) -> "LearnSettings":
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise InputError("learnable mitigation", "steps", f"expected a positive step count, got {self.steps!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError("learnable mitigation", "lr", f"expected a positive learning rate, got {self.lr!r}")
        if not (isinstance(self.warmup, int) and 0 <= self.warmup <= self.steps):
            raise InputError("learnable mitigation", "warmup", f"expected 0 <= warmup <= steps ({self.steps}), got "
                             f"{self.warmup!r}")
        if self.schedule not in SCHEDULES:
            raise InputError("learnable mitigation", "schedule", f"expected one of {', '.join(SCHEDULES)}, got "
                             f"{self.schedule!r}")
        if not isinstance(self.seed, int):
            raise InputError("learnable mitigation", "seed", f"expected an integer, got {self.seed!r}")
        return self

    def learning_rate_factor(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based) over ``lr``."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.schedule == "constant" or self.steps == self.warmup:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - self.warmup) / (self.steps - self.warmup)))


@dataclass(frozen=True)
class TrainingRecord:
    """One linear's training: the mean squared error against the dense output before (a = 1, b = 0: the plain
    pruned linear) and after training, and the least-squares minimum of the same loss (closed form, for
    reference only: training never uses it)."""

    initial_loss: float
    final_loss: float
    optimal_loss: float
    tokens: int


@dataclass
class OutputSums:
    """Per-output-channel float64 statistics over the tokens of a pruned output P and the dense output Y ([T, N]),
    with D = Y − P the pruning's error and μ = mean_t P: T, μ, Σ (P − μ)², Σ (P − μ)·D, Σ D, Σ D² (torch [N]).
    Centred, so that the loss below involves no cancellation between terms of Y's size. :meth:`add` combines
    the statistics of two sets of tokens (as those of all of them)."""

    tokens: int
    mean_p: object
    cpp: object
    cpd: object
    d: object
    dd: object

    @classmethod
    def of(cls, pruned, dense) -> "OutputSums":
        import torch

        p = pruned.detach().reshape(-1, pruned.shape[-1]).to("cpu", torch.float64)
        y = dense.detach().reshape(-1, dense.shape[-1]).to("cpu", torch.float64)
        if p.shape != y.shape:
            raise InputError("learnable mitigation", "outputs", f"pruned {tuple(p.shape)} and dense "
                             f"{tuple(y.shape)} differ in shape")
        mean_p = p.mean(0)
        centred = p - mean_p
        d = y - p
        return cls(tokens=p.shape[0], mean_p=mean_p, cpp=(centred * centred).sum(0), cpd=(centred * d).sum(0),
                   d=d.sum(0), dd=(d * d).sum(0))

    def add(self, other: "OutputSums") -> "OutputSums":
        """The statistics of both sets of tokens (pairwise update of the centred sums)."""
        tokens = self.tokens + other.tokens
        mean_p = (self.tokens * self.mean_p + other.tokens * other.mean_p) / tokens
        delta = other.mean_p - self.mean_p
        cpp = self.cpp + other.cpp + delta * delta * (self.tokens * other.tokens / tokens)
        cpd = self.cpd + (self.mean_p - mean_p) * self.d + other.cpd + (other.mean_p - mean_p) * other.d
        return OutputSums(tokens, mean_p, cpp, cpd, self.d + other.d, self.dd + other.dd)

    @property
    def channels(self) -> int:
        return int(self.mean_p.shape[0])

    def loss(self, scale, shift):
        """(1 / (T·N)) Σ_t,n (a_n P_tn + b_n − Y_tn)² (``scale`` None: a = 1), differentiable in ``scale`` and
        ``shift`` (float64 [N]). With a P + b − Y = (a − 1)(P − μ) + e − D and e = (a − 1)μ + b, the sum over the
        tokens of channel n is (a − 1)² Σ(P − μ)² − 2(a − 1) Σ(P − μ)D + T e² − 2e ΣD + ΣD² (Σ(P − μ) = 0)."""
        e = shift if scale is None else (scale - 1.0) * self.mean_p + shift
        per_channel = self.tokens * e * e - 2.0 * e * self.d + self.dd
        if scale is not None:
            per_channel = per_channel + (scale - 1.0) ** 2 * self.cpp - 2.0 * (scale - 1.0) * self.cpd
        return per_channel.sum() / (self.tokens * self.channels)

    def optimum(self, with_scale: bool):
        """The closed-form minimiser (scale or None, shift), float64 torch [N]: b = mean(Y − P) for the shift alone;
        with the scale the per-channel least-squares line of Y on P, a = cov(P, Y) / var(P) = 1 + Σ(P − μ)D /
        Σ(P − μ)², b = mean(Y) − a·mean(P) (a = 1 where P is constant over the tokens)."""
        import torch

        e = self.d / self.tokens
        if not with_scale:
            return None, e
        flat = self.cpp <= 0
        a = 1.0 + torch.where(flat, torch.zeros_like(self.cpd), self.cpd / torch.where(flat, torch.ones_like(self.cpp),
                                                                                        self.cpp))
        return a, e - (a - 1.0) * self.mean_p

    def error_scale(self):
        """s_n = √(mean_t D²), the RMS of the pruning's error per channel (1 where it is 0): the unit of the
        trained offset (:func:`fit_output_correction`)."""
        import torch

        rms = torch.sqrt(self.dd / self.tokens)
        return torch.where(rms > 0, rms, torch.ones_like(rms))


def fit_output_correction(sums: OutputSums, with_scale: bool, settings: LearnSettings = LearnSettings()
                          ) -> tuple[OutputCorrection, TrainingRecord]:
    """Train one linear's correction on its :class:`OutputSums` with AdamW (weight decay 0; a = 1, b = 0 at the
    start; ``settings``' steps and learning-rate schedule): (float32 correction, its record).

    AdamW runs on (a, β) with b = s·β − (a − 1)·μ (s: :meth:`OutputSums.error_scale`, μ = mean P), a change of
    variables that leaves the function a ⊙ P + b, its minimum and its start (a = 1, β = 0 is b = 0) as they are:
    in (a, e = s·β) the loss has no cross term, so P's mean no longer couples a and b (on a channel with mean(P)
    large against its spread the plain (a, b) problem has condition number ≈ (mean / std)², which AdamW does not
    resolve in a few hundred steps), and β is in units of the channel's error, so that one learning rate suits
    every model (AdamW's steps are in parameter units: a plain b would need a learning rate on the scale of each
    model's outputs)."""
    import torch

    settings = settings.validated()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(settings.seed)
        unit = sums.error_scale()
        beta = torch.zeros(sums.channels, dtype=torch.float64, requires_grad=True)
        scale = torch.ones(sums.channels, dtype=torch.float64, requires_grad=True) if with_scale else None
        parameters = [beta] if scale is None else [scale, beta]
        optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, settings.learning_rate_factor)

        def shift_of(scale, beta):
            return unit * beta if scale is None else unit * beta - (scale - 1.0) * sums.mean_p

        with torch.no_grad():
            initial = float(sums.loss(scale, shift_of(scale, beta)))
        for _step in range(settings.steps):
            optimizer.zero_grad(set_to_none=True)
            loss = sums.loss(scale, shift_of(scale, beta))
            loss.backward()
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            shift = shift_of(scale, beta)
            final = float(sums.loss(scale, shift))
            best = float(sums.loss(*sums.optimum(with_scale)))
    correction = OutputCorrection(scale=None if scale is None else scale.detach().numpy().astype(np.float32),
                                  shift=shift.detach().numpy().astype(np.float32))
    return correction, TrainingRecord(initial, final, best, sums.tokens)


def fit_on_outputs(pruned, dense, with_scale: bool, settings: LearnSettings = LearnSettings()
                   ) -> tuple[OutputCorrection, TrainingRecord]:
    """:func:`fit_output_correction` on a pruned output P and the dense output Y ([..., N] tensors)."""
    return fit_output_correction(OutputSums.of(pruned, dense), with_scale, settings)


def pruned_linears(model, config: AmberConfig) -> list[tuple[str, object]]:
    """(name, module) of every linear ``config`` prunes, in module order."""
    return [(name, module) for name, layer, role, module in find_decoder_linears(model)
            if selected(role, layer, config)]


def collect_output_sums(model, input_ids, config: AmberConfig, calibration: CalibrationStats | None = None
                        ) -> dict[str, OutputSums]:
    """One dense forward of ``input_ids`` with a forward pre-hook on every linear ``config`` prunes: the hook
    computes P = pruned(X)·Wᵀ (+ bias) with the run's masking and Y = X·Wᵀ (+ bias) in float32, keeps their
    :class:`OutputSums` and drops X, P and Y (memory: one linear's). The model runs dense throughout (every linear
    sees its dense input)."""
    import torch

    wanted = pruned_linears(model, config)
    pruners = {name: make_linear_pruner(module.weight, config, name, calibration=calibration)
               for name, module in wanted}
    sums: dict[str, OutputSums] = {}

    def record(name, module):
        def hook(_module, args):
            x = args[0].detach()
            rows = x.reshape(-1, x.shape[-1])
            seen, _stats = pruners[name](rows)
            weight = module.weight.detach().to(rows.device, torch.float32)
            bias = None if module.bias is None else module.bias.detach().to(rows.device, torch.float32)
            dense = torch.nn.functional.linear(rows.to(torch.float32), weight, bias)
            pruned = torch.nn.functional.linear(seen.to(torch.float32), weight, bias)
            current = OutputSums.of(pruned, dense)
            sums[name] = current if name not in sums else sums[name].add(current)
        return hook

    parameters = list(model.parameters())
    trainable = [p.requires_grad for p in parameters]
    hooks = [module.register_forward_pre_hook(record(name, module)) for name, module in wanted]
    try:
        for p in parameters:
            p.requires_grad_(False)
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        with torch.no_grad():
            model(input_ids=ids if ids.dim() == 2 else ids.unsqueeze(0))
    finally:
        for hook in hooks:
            hook.remove()
        for p, flag in zip(parameters, trainable):
            p.requires_grad_(flag)
    missing = [name for name, _module in wanted if name not in sums]
    if missing:
        raise InputError("learnable mitigation", "calibration forward", f"{len(missing)} pruned linears saw no "
                         f"input (first: {missing[0]})")
    return sums


def train_output_corrections(model, input_ids, config: AmberConfig, calibration: CalibrationStats | None = None,
                             steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR, warmup: int = DEFAULT_WARMUP,
                             seed: int = 0, progress: Progress | None = None, schedule: str = "cosine"
                             ) -> tuple[dict[str, OutputCorrection], dict[str, TrainingRecord]]:
    """The output corrections of every linear ``config`` (a learnable mitigation, fp16) prunes, trained on the
    calibration tokens ``input_ids`` ([tokens] or [1, tokens]): (name → :class:`OutputCorrection`, name →
    :class:`TrainingRecord`). ``calibration``: the statistics the run's masking reads (gradient factors).
    One dense forward (:func:`collect_output_sums`), then AdamW per linear (:func:`fit_output_correction`).
    The model's weights get no gradient and stay untouched; their requires_grad flags are restored."""
    config = config.validated()
    if config.mitigation not in LEARNABLE_MITIGATIONS:
        raise InputError("learnable mitigation", "mitigation", f"expected one of {', '.join(LEARNABLE_MITIGATIONS)}, "
                         f"got {config.mitigation!r}")
    settings = LearnSettings(steps=steps, lr=lr, warmup=warmup, schedule=schedule, seed=seed).validated()
    sums = collect_output_sums(model, input_ids, config, calibration)
    with_scale = config.mitigation == "learnable-scale-shift"
    corrections, records = {}, {}
    for index, (name, channel_sums) in enumerate(sums.items()):
        corrections[name], records[name] = fit_output_correction(channel_sums, with_scale, settings)
        if progress is not None:
            progress(index + 1, len(sums), f"training {name}")
    return corrections, records


# ---------------------------------------------------------------- the on-disk cache

def model_digest(model) -> str:
    """BLAKE2b of every parameter's name, dtype, shape and bytes (tied parameters once): the weights' identity."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name, parameter in model.named_parameters():
        tensor = parameter.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        digest.update(memoryview(tensor.numpy()).cast("B"))
    return digest.hexdigest()


def tokens_digest(input_ids) -> str:
    ids = np.ascontiguousarray(np.asarray(input_ids, dtype=np.int64))
    return hashlib.blake2b(f"{ids.shape}|".encode() + ids.tobytes(), digest_size=16).hexdigest()


def cache_identity(model_identity: str, tokens_identity: str, config: AmberConfig, pruned: list[str],
                   settings: LearnSettings) -> dict:
    """Everything a stored set of corrections depends on (JSON-ready): the model's weights, the calibration
    tokens, the run's masking (pattern, criterion, mitigation, precision, the pruned linears) and the training."""
    return {"format": CACHE_FORMAT, "model_name": config.model_name, "weights": model_identity,
            "calibration_tokens": tokens_identity, "pattern": config.pattern, "criterion": config.criterion,
            "mitigation": config.mitigation, "precision": config.precision, "pruned": list(pruned),
            "training": asdict(settings)}


def cache_file(directory: Path, identity: dict) -> Path:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return Path(directory) / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.npz"


def save_corrections(path: Path, identity: dict, corrections: dict[str, OutputCorrection],
                     records: dict[str, TrainingRecord], train_seconds: float) -> Path:
    """Write one .npz atomically: the identity (JSON), per linear its shift (and scale) and its record."""
    from amber_sim.atomic import atomic_write_bytes

    names = list(corrections)
    arrays = {"identity": np.array(json.dumps(identity, sort_keys=True)), "names": np.array(names),
              "train_seconds": np.array(float(train_seconds)),
              "records": np.array([[records[n].initial_loss, records[n].final_loss, records[n].optimal_loss,
                                    records[n].tokens] for n in names], dtype=np.float64).reshape(len(names), 4)}
    for index, name in enumerate(names):
        arrays[f"shift_{index}"] = np.asarray(corrections[name].shift, dtype=np.float32)
        if corrections[name].scale is not None:
            arrays[f"scale_{index}"] = np.asarray(corrections[name].scale, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())


def load_corrections(path: Path, identity: dict
                     ) -> tuple[dict[str, OutputCorrection], dict[str, TrainingRecord], float] | None:
    """The corrections stored at ``path`` for exactly ``identity`` (None when the file is missing, unreadable or
    was written for something else)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(str(stored["identity"])) != json.loads(json.dumps(identity, sort_keys=True)):
                return None
            names = [str(name) for name in stored["names"]]
            corrections, records = {}, {}
            for index, name in enumerate(names):
                scale = stored[f"scale_{index}"] if f"scale_{index}" in stored.files else None
                corrections[name] = OutputCorrection(scale=scale, shift=stored[f"shift_{index}"])
                initial, final, best, tokens = stored["records"][index]
                records[name] = TrainingRecord(float(initial), float(final), float(best), int(tokens))
            return corrections, records, float(stored["train_seconds"])
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def learned_corrections(model, input_ids, config: AmberConfig, calibration: CalibrationStats | None,
                        settings: LearnSettings, directory: Path, model_identity: str | None = None,
                        progress: Progress | None = None):
    """The corrections of ``config``'s pruned linears from ``directory`` when a file for exactly this model, these
    tokens, this masking and these settings is there; else trained (:func:`train_output_corrections`) and stored
    there. Returns (corrections, records, path, trained: bool, train_seconds)."""
    settings = settings.validated()
    pruned = [name for name, _module in pruned_linears(model, config)]
    identity = cache_identity(model_identity or model_digest(model), tokens_digest(input_ids), config, pruned,
                              settings)
    path = cache_file(directory, identity)
    if path.exists():
        found = load_corrections(path, identity)
        if found is not None:
            return found[0], found[1], path, False, found[2]
    started = time.perf_counter()
    corrections, records = train_output_corrections(model, input_ids, config, calibration, steps=settings.steps,
                                                    lr=settings.lr, warmup=settings.warmup, seed=settings.seed,
                                                    progress=progress, schedule=settings.schedule)
    seconds = time.perf_counter() - started
    save_corrections(path, identity, corrections, records, seconds)
    return corrections, records, path, True, seconds


__all__ = ["DEFAULT_LR", "DEFAULT_STEPS", "DEFAULT_WARMUP", "LearnSettings", "OutputCorrection", "OutputSums",
           "TrainingRecord", "cache_file", "cache_identity", "collect_output_sums", "fit_on_outputs",
           "fit_output_correction", "learned_corrections", "load_corrections", "model_digest", "pruned_linears",
           "save_corrections", "tokens_digest", "train_output_corrections"]
