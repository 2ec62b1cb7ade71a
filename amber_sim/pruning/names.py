"""The pruner's vocabulary, declared once and importable without torch, NumPy or Numba (the CLI builds its
help from it): criteria, mitigations, layer policies, precisions, calibration metrics (docs/pruning.md)."""

from __future__ import annotations

CRITERIA = ("magnitude", "amber", "amber-robust", "clact", "var-weight", "gradient")
# Criteria whose column factor is measured on calibration data rather than read from the weight.
CALIBRATED_CRITERIA = ("gradient",)
MITIGATIONS = ("none", "median-shift", "variance-correction", "median-shift+variance-correction",
               "static-median-shift", "static-median-shift+variance-correction", "scaling",
               "learnable-shift", "learnable-scale-shift")
# Mitigations whose η is one scalar per linear, measured once on calibration data.
STATIC_SHIFT_MITIGATIONS = ("static-median-shift", "static-median-shift+variance-correction")
# Mitigations that correct each pruned linear's output, y' = a ⊙ y + b per output channel, with a (scale; 1 for the
# shift-only one) and b (shift) trained on calibration data against the dense output (pruning/learnable.py).
LEARNABLE_MITIGATIONS = ("learnable-shift", "learnable-scale-shift")
POLICIES = ("all", "amber-paper", "calibrated")
PRECISIONS = ("fp16", "w8a8")
CALIBRATION_METRICS = ("output-error", "loss")
