"""Real models (GGUF, local HF directories), bundled architecture configs and the BBC evaluation corpus.

Names are imported lazily, so ``amber_sim.models.architectures`` works without torch; ``load_model`` needs
torch and transformers, the corpus needs NumPy and a tokenizer (a model's linear roles: ``amber_sim.roles``).
See docs/models.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ArchConfig": "architectures", "ARCHITECTURES": "architectures", "get_arch": "architectures",
    "known_architectures": "architectures", "to_hf_config": "architectures",
    "LoadedModel": "loading", "load_model": "loading", "known_models": "loading",
    "SPLITS": "corpus", "load_split": "corpus", "token_windows": "corpus", "article_paths": "corpus",
    "split_of": "corpus",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
