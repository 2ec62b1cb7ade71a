"""One home for resolving what a pruned prefill needs from calibration tokens (docs/pruning.md).

A run is an :class:`AmberConfig` (pattern, criterion, policy, mitigation, precision). Some of them need
numbers measured on the calibration split before any evaluation or capture:
- the ``calibrated`` policy: its skip list (output-error or loss metric, :mod:`amber_sim.pruning.calibrate`);
- a static median shift: one η per pruned linear (``collect_static_shifts``);
- the ``gradient`` criterion: mean |∂L/∂x| per channel (``collect_gradient_factors``);
- w8a8's inverted smoothing and the ``scaling`` mitigation: max|X| per channel (``collect_activation_absmax``);
- a learnable mitigation: the trained output correction of every linear the run prunes
  (:mod:`amber_sim.pruning.learnable`), which depends on the run's masking and pruned set, so it is trained per
  (pattern, criterion, mitigation, pruned linears) after the skip list is known, kept in memory and on disk
  (``cache_dir()/learned/<digest>.npz``, reused by a later eval or capture of the same weights and tokens).

:class:`Calibrator` measures each of these at most once per model and calibration window (they do not depend
on the run, only on which linears it prunes, so they are measured for every decoder linear) and
:meth:`Calibrator.resolve` turns a run into the validated config and the :class:`CalibrationStats` that
``apply_amber`` / ``evaluate`` take. ``amber-sim eval`` and ``capture`` both go through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.pruning.apply import AmberConfig, CalibrationStats, collect_activation_absmax
from amber_sim.pruning.names import (CALIBRATED_CRITERIA, CALIBRATION_METRICS, LEARNABLE_MITIGATIONS,
                                     STATIC_SHIFT_MITIGATIONS)

Progress = Callable[[int, int, str], None]
# Any pruning pattern selects every decoder linear under the "all" policy: what the per-linear statistics are
# measured for (the pattern itself plays no part in them).
_EVERY_LINEAR = AmberConfig(pattern="2:4", policy="all")


def needs_calibration(config: AmberConfig) -> bool:
    """Whether ``config`` needs anything measured on calibration tokens (a dense pattern masks nothing)."""
    if parse_pattern(config.pattern).kind == "dense":
        return False
    return (config.policy == "calibrated" or config.precision == "w8a8" or config.mitigation == "scaling"
            or config.mitigation in STATIC_SHIFT_MITIGATIONS or config.mitigation in LEARNABLE_MITIGATIONS
            or config.criterion in CALIBRATED_CRITERIA)


def _default_learning():
    from amber_sim.pruning.learnable import LearnSettings

    return LearnSettings()


@dataclass
class Calibrator:
    """The calibration statistics of one model on one calibration window (``input_ids`` [1, tokens]),
    measured lazily and kept. ``learning``: the learnable mitigations' training settings
    (learnable.LearnSettings); ``learned_dir``: where their corrections are stored (default
    ``amber_sim.paths.cache_dir() / "learned"``, read when first needed)."""

    model: object
    input_ids: object
    learning: object = field(default_factory=_default_learning)
    learned_dir: object = None
    #: one entry per set of corrections resolved: {"mitigation", "path", "trained", "train_seconds", "records"}
    learned_log: list = field(default_factory=list, repr=False)
    _absmax: dict | None = field(default=None, repr=False)
    _gradients: dict | None = field(default=None, repr=False)
    _shifts: tuple | None = field(default=None, repr=False)
    _captured: dict | None = field(default=None, repr=False)
    _skips: dict = field(default_factory=dict, repr=False)  # (pattern, criterion, mitigation, metric, share) → fields
    _corrections: dict = field(default_factory=dict, repr=False)  # (pattern, criterion, mitigation, pruned) → dict
    _weights_digest: str | None = field(default=None, repr=False)

    def activation_absmax(self) -> dict:
        if self._absmax is None:
            self._absmax = collect_activation_absmax(self.model, self.input_ids)
        return self._absmax

    def gradient_factors(self) -> dict:
        if self._gradients is None:
            from amber_sim.pruning.calibrate import collect_gradient_factors

            self._gradients = collect_gradient_factors(self.model, self.input_ids, _EVERY_LINEAR)
        return self._gradients

    def static_shifts(self) -> tuple:
        if self._shifts is None:
            from amber_sim.pruning.calibrate import collect_static_shifts

            self._shifts = collect_static_shifts(self.model, self.input_ids, _EVERY_LINEAR)
        return self._shifts

    def captured_inputs(self) -> dict:
        """The dense inputs of every q_proj / gate_proj (the output-error metric's one forward)."""
        if self._captured is None:
            from amber_sim.pruning.calibrate import capture_linear_inputs

            self._captured = capture_linear_inputs(self.model, self.input_ids)
        return self._captured

    def stats_for(self, config: AmberConfig) -> CalibrationStats:
        """The statistics ``config``'s pruning reads (None where it reads nothing)."""
        absmax = self.activation_absmax() if config.precision == "w8a8" or config.mitigation == "scaling" else None
        gradients = self.gradient_factors() if config.criterion in CALIBRATED_CRITERIA else None
        return CalibrationStats(activation_absmax=absmax, gradient_factors=gradients)

    def resolve(self, config: AmberConfig, metric: str = "output-error", target_share: float = 0.55,
                progress: Progress | None = None) -> tuple[AmberConfig, CalibrationStats]:
        """(the validated config, with its static shifts and, under the calibrated policy, its skip list; the
        calibration statistics its pruning reads). ``metric`` and ``target_share`` apply to the calibrated
        policy only."""
        if metric not in CALIBRATION_METRICS:
            raise InputError("calibrated policy", "metric", f"expected one of {', '.join(CALIBRATION_METRICS)}, "
                             f"got {metric!r}")
        if not needs_calibration(config):
            return config.validated(), CalibrationStats()
        stats = self.stats_for(config)
        if config.mitigation in STATIC_SHIFT_MITIGATIONS:
            config = dataclasses.replace(config, static_shifts=self.static_shifts())
        if config.policy == "calibrated":
            config = dataclasses.replace(config, **self._skip_fields(config, stats, metric, target_share, progress))
        config = config.validated()
        if config.mitigation in LEARNABLE_MITIGATIONS:  # trained for the final config's pruned linears
            stats = dataclasses.replace(stats, output_corrections=self.output_corrections(config, stats, progress))
        return config, stats

    def output_corrections(self, config: AmberConfig, stats: CalibrationStats,
                           progress: Progress | None = None) -> dict:
        """The learnable mitigation's corrections of every linear ``config`` (final: skip list resolved) prunes:
        from memory, else from the on-disk cache, else trained and stored (learnable.learned_corrections)."""
        from amber_sim.paths import cache_dir
        from amber_sim.pruning import learnable

        pruned = tuple(name for name, _module in learnable.pruned_linears(self.model, config))
        key = (config.pattern, config.criterion, config.mitigation, config.model_name, pruned)
        if key not in self._corrections:
            if self._weights_digest is None:
                self._weights_digest = learnable.model_digest(self.model)
            directory = self.learned_dir if self.learned_dir is not None else cache_dir() / "learned"
            corrections, records, path, trained, seconds = learnable.learned_corrections(
                self.model, self.input_ids, config, stats, self.learning, directory, self._weights_digest, progress)
            self._corrections[key] = corrections
            self.learned_log.append({"mitigation": config.mitigation, "pattern": config.pattern, "path": path,
                                     "trained": trained, "train_seconds": seconds, "records": records})
        return self._corrections[key]

    def _skip_fields(self, config: AmberConfig, stats: CalibrationStats, metric: str, target_share: float,
                     progress: Progress | None) -> dict:
        """The calibrated skip list as AmberConfig fields, chosen once per pattern, criterion, mitigation, metric
        and share (on fp16 masks: a w8a8 run reuses its fp16 twin's list). A learnable mitigation is chosen for
        without its correction: the correction is trained for a pruned set, and the calibration weighs a
        different set per candidate (1 + 2·layers of them for the loss metric), so it is trained once, for the
        chosen set (:meth:`resolve`)."""
        from amber_sim.pruning.calibrate import calibrate_skip_layers, calibrate_skip_linears

        if config.mitigation in LEARNABLE_MITIGATIONS:
            config = dataclasses.replace(config, mitigation="none")
        key = (config.pattern, config.criterion, config.mitigation, metric, target_share)
        if key not in self._skips:
            if metric == "output-error":
                skip, _errors = calibrate_skip_layers(self.model, self.input_ids, config,
                                                      target_flop_share=target_share,
                                                      captured=self.captured_inputs(), calibration=stats)
                self._skips[key] = {"skip_layers": tuple(skip), "skip_linears": ()}
            else:
                linears, _benefits = calibrate_skip_linears(self.model, self.input_ids, config, target_share,
                                                            progress, calibration=stats)
                self._skips[key] = {"skip_layers": (), "skip_linears": tuple(linears)}
        return self._skips[key]
