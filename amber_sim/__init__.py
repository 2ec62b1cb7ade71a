"""amber-sim: N:M activation sparsity (Amber Pruner) on real LLM prefill, replayed on a sparse accelerator model."""

__version__ = "0.1.0"
