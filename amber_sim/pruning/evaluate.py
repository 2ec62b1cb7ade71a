"""Accuracy of a pruned model: perplexity and top-1 next-token agreement with the dense model.

Perplexity = exp(mean negative log-likelihood of every next token in the windows), each window a
separate forward (no context carried across windows). Top-1 agreement = the fraction of positions whose
arg-max next token equals the dense model's on the same window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amber_sim.pruning.apply import AmberConfig, apply_amber, sparsified_linear_flop_share


@dataclass(frozen=True)
class Accuracy:
    perplexity: float
    top1_agreement: float
    sparsified_linear_flop_share: float
    tokens: int


def next_token_loss(logits, ids, reduction: str = "mean"):
    """The next-token negative log-likelihood (nats) of ``ids`` [batch, tokens] under ``logits`` [batch, tokens,
    vocab]: cross entropy of every position's prediction of the next token, ``mean`` or ``sum`` over them (a
    torch scalar, differentiable). The one definition the evaluation, the calibration and capture share."""
    import torch

    predicted = logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), ids[:, 1:].reshape(-1),
                                             reduction=reduction)


def _forward_stats(model, windows: np.ndarray, reference_argmax: list | None):
    import torch

    nll_sum, predicted, agree, argmaxes = 0.0, 0, 0, []
    with torch.no_grad():
        for index, window in enumerate(windows):
            ids = torch.as_tensor(window, dtype=torch.long).unsqueeze(0)
            logits = model(input_ids=ids).logits
            nll_sum += float(next_token_loss(logits, ids, "sum"))
            predicted += ids.shape[1] - 1
            top1 = logits[0, :-1].float().argmax(dim=-1)
            argmaxes.append(top1)
            if reference_argmax is not None:
                agree += int((top1 == reference_argmax[index]).sum())
    return nll_sum, predicted, agree, argmaxes


def dense_reference(model, windows: np.ndarray) -> tuple[Accuracy, list]:
    nll, predicted, _, argmaxes = _forward_stats(model, windows, None)
    return Accuracy(float(np.exp(nll / predicted)), 1.0, 0.0, predicted), argmaxes


def evaluate(model, windows: np.ndarray, config: AmberConfig, dense_argmax: list,
             activation_absmax: dict | None = None, calibration=None) -> Accuracy:
    return evaluate_with_stats(model, windows, config, dense_argmax, activation_absmax, calibration)[0]


def evaluate_with_stats(model, windows: np.ndarray, config: AmberConfig, dense_argmax: list,
                        activation_absmax: dict | None = None, calibration=None):
    """(Accuracy, per-linear LayerStats measured by the pruning hooks in the same forwards).
    ``activation_absmax``: the w8a8 smoothing statistics; ``calibration``: an apply.CalibrationStats
    (apply_amber)."""
    with apply_amber(model, config, activation_absmax=activation_absmax, calibration=calibration) as handle:
        nll, predicted, agree, _ = _forward_stats(model, windows, dense_argmax)
    accuracy = Accuracy(float(np.exp(nll / predicted)), agree / predicted,
                        sparsified_linear_flop_share(model, config), predicted)
    return accuracy, dict(handle.stats)
