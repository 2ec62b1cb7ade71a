"""Users' own checkpoints: local Mistral and Qwen3 directories in capture and eval, --tokenizer DIR, and the
one-line refusals (another family, weights that do not match config.json, no tokenizer, a prompt longer than
Mistral's sliding window).

Every checkpoint is built here: 2 layers, hidden 64, vocabulary 256, random weights saved with
save_pretrained, and a byte-level tokenizer of exactly 256 tokens (the `tokenizers` library, no merges),
so nothing is downloaded and each capture takes about a second.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
transformers = torch_stack.importorskip("transformers")
tokenizers = torch_stack.importorskip("tokenizers")

from amber_sim.capture.prefill_ops import LinearChoice, decoder_layer_ops, prefill_ops  # noqa: E402
from amber_sim.cli import main  # noqa: E402
from amber_sim.errors import InputError  # noqa: E402
from amber_sim.models.loading import load_model  # noqa: E402
from amber_sim.roles import find_linear_roles  # noqa: E402
from amber_sim.trace import ModelConfig, load_trace  # noqa: E402

T = 16        # prompt tokens of every capture here
WINDOW = 24   # the tiny Mistral's sliding attention window
CREATED = "2026-01-01T00:00:00+00:00"
SHAPE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=256, max_position_embeddings=256)


def _byte_tokenizer():
    """A byte-level BPE tokenizer with the 256 byte symbols and no merges: every byte is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend)


def _save(directory, config, tokenizer=None):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Directories: qwen3 (head_dim 32 ≠ 64/4, tied embeddings), mistral (sliding window 24), mistral without
    tokenizer files, the tokenizer alone; the corpus cache in a temporary directory."""
    root = tmp_path_factory.mktemp("checkpoints")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMBER_SIM_CACHE", str(root / "cache"))  # the tiny tokenizer's BBC tokens stay here
        tokenizer = _byte_tokenizer()
        qwen3 = transformers.Qwen3Config(**SHAPE, head_dim=32, tie_word_embeddings=True)
        mistral = transformers.MistralConfig(**SHAPE, sliding_window=WINDOW)
        dirs = {"qwen3": _save(root / "tiny-qwen3", qwen3, tokenizer),
                "mistral": _save(root / "tiny-mistral", mistral, tokenizer),
                "no-tokenizer": _save(root / "tiny-mistral-bare", mistral),
                "tokenizer": root / "byte-tokenizer"}
        tokenizer.save_pretrained(dirs["tokenizer"])
        yield dirs


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


# ---------------------------------------------------------------- loading

def test_mistral_and_qwen3_directories_load_with_their_shapes(checkpoints):
    qwen3, mistral = load_model(checkpoints["qwen3"]), load_model(checkpoints["mistral"])
    assert type(qwen3.model).__name__ == "Qwen3ForCausalLM" and qwen3.family == "qwen3"
    assert type(mistral.model).__name__ == "MistralForCausalLM" and mistral.family == "mistral"
    assert qwen3.config == {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 96, "vocab": 256,
                            "head_dim": 32, "max_position": 256}
    assert mistral.config == {**qwen3.config, "head_dim": 16}
    assert (qwen3.sliding_window, mistral.sliding_window) == (None, WINDOW)
    assert qwen3.model.lm_head.weight.data_ptr() == qwen3.model.model.embed_tokens.weight.data_ptr()  # tied
    for loaded in (qwen3, mistral):
        assert len(find_linear_roles(loaded.model)) == 14
        ids = loaded.encode("BBC née")
        assert len(loaded.tokenizer) == 256 and len(ids) == len("BBC née".encode()) and loaded.tokenizer.decode(ids) == "BBC née"  # bytes


# ---------------------------------------------------------------- capture: the trace's shapes, by hand

# (M, K, N) of layer 0's GEMMs at T = 16 tokens, hidden 64, 4 query heads, 2 KV heads, MLP 96:
# Qwen3's head_dim is 32 (config), so q_proj N = 4·32 = 128 (not hidden 64), k/v N = 2·32 = 64, o_proj K = 128;
# Mistral's head_dim is 64/4 = 16, so q N = 64, k/v N = 32, o K = 64.
EXPECTED_GEMMS = {
    "qwen3": {"q_proj": (T, 64, 128), "k_proj": (T, 64, 64), "v_proj": (T, 64, 64), "scores": (T, 32, T),
              "context": (T, T, 32), "o_proj": (T, 128, 64), "gate_proj": (T, 64, 96), "up_proj": (T, 64, 96),
              "down_proj": (T, 96, 64)},
    "mistral": {"q_proj": (T, 64, 64), "k_proj": (T, 64, 32), "v_proj": (T, 64, 32), "scores": (T, 16, T),
                "context": (T, T, 16), "o_proj": (T, 64, 64), "gate_proj": (T, 64, 96), "up_proj": (T, 64, 96),
                "down_proj": (T, 96, 64)},
}
LAYER_ORDER = ["input_layernorm", "q_proj", "k_proj", "v_proj", "rope", "scores", "softmax", "context", "o_proj",
               "attn_residual", "post_attention_layernorm", "gate_proj", "up_proj", "act_mul", "down_proj",
               "mlp_residual"]


@pytest.mark.parametrize("family", ["qwen3", "mistral"])
def test_capture_records_the_hand_computed_shapes(checkpoints, family, tmp_path):
    out = tmp_path / f"{family}.json"
    assert main(["capture", "--model", str(checkpoints[family]), "--seq-len", str(T), "--patterns", "dense,2:4",
                 "--created", CREATED, "--out", str(out)]) == 0
    trace = load_trace(out)  # schema and semantic checks
    assert (trace.model.family, trace.model.weights) == (family, "pretrained")
    assert trace.model.config.head_dim == (32 if family == "qwen3" else 16)
    dense, sparse = trace.runs
    for run in trace.runs:
        layer0 = [op for op in run.ops if op.layer == 0]
        short = [op.name.split(".")[-1] for op in layer0 if op.role != "mitigation"]
        order = list(LAYER_ORDER)
        if family == "qwen3":  # per-head q/k RMSNorms between the projections and RoPE
            order[4:4] = ["q_norm", "k_norm"]
        assert short == order
        by_name = {op.name.split(".")[-1]: op for op in layer0}
        for name, (m, k, n) in EXPECTED_GEMMS[family].items():
            assert (by_name[name].M, by_name[name].K, by_name[name].N) == (m, k, n), name
        for name in ("scores", "context"):
            assert (by_name[name].batch, by_name[name].operand_b_batch) == (4, 2)
        lm_head = run.ops[-1]
        assert (lm_head.name, lm_head.M, lm_head.K, lm_head.N) == ("lm_head", 1, 64, 256)
        norms = [op for op in run.ops if op.role == "qk_norm"]
        if family == "qwen3":
            assert len(norms) == 4  # q_norm and k_norm in each of 2 layers
            q_norm, k_norm = by_name["q_norm"], by_name["k_norm"]
            assert (q_norm.kind, q_norm.elements, k_norm.elements) == ("vector", T * 4 * 32, T * 2 * 32)
            assert q_norm.ops_per_element == by_name["input_layernorm"].ops_per_element == 4.0
            assert (q_norm.bytes_in, q_norm.bytes_out) == ((T * 4 * 32 + 32) * 2, T * 4 * 32 * 2)
            assert by_name["scores"].producer == by_name["rope"].name  # RoPE still feeds the scores
        else:
            assert norms == []
        assert math.isfinite(run.metrics["perplexity"])
    assert dense.metrics["top1_agreement"] == 1.0
    down = [op for op in sparse.ops if op.role == "down"]
    assert all(op.is_sparse and op.density <= 0.5 for op in down)
    notes = trace.capture.notes
    assert ("qk_norm vector ops" in notes) is (family == "qwen3")
    assert (f"Sliding attention window {WINDOW} tokens" in notes) is (family == "mistral")


def test_the_simulator_times_qk_norm_like_any_vector_op(checkpoints, tmp_path):
    from amber_sim.hw.config import load_hardware
    from amber_sim.paths import resolve_hw_config
    from amber_sim.sim.engine import simulate_trace

    out = tmp_path / "qwen3.json"
    assert main(["capture", "--model", str(checkpoints["qwen3"]), "--seq-len", str(T), "--patterns", "dense",
                 "--created", CREATED, "--out", str(out)]) == 0
    result = simulate_trace(load_hardware(resolve_hw_config("ascend_like")), load_trace(out))
    ops = {op.name: op for op in result.runs[0].ops}
    q_norm, rmsnorm = ops["layers.0.self_attn.q_norm"], ops["layers.0.input_layernorm"]
    assert q_norm.role == "qk_norm" and q_norm.mode == rmsnorm.mode == "vector"
    assert q_norm.cycles > 0


def test_qk_norm_ops_follow_the_config_without_torch():
    config = ModelConfig(hidden=64, layers=1, heads=4, kv_heads=2, intermediate=96, vocab=256, head_dim=32)
    plain = [op.name for op in decoder_layer_ops(config, 0, 8, lambda *_: LinearChoice())]
    with_norms = decoder_layer_ops(config, 0, 8, lambda *_: LinearChoice(), qk_norm=True)
    assert [op.name for op in with_norms if op.role != "qk_norm"] == plain
    assert [(op.name, op.elements) for op in with_norms if op.role == "qk_norm"] == [
        ("layers.0.self_attn.q_norm", 8 * 4 * 32), ("layers.0.self_attn.k_norm", 8 * 2 * 32)]
    assert sum(op.role == "qk_norm" for op in prefill_ops(config, 8, lambda *_: LinearChoice(), qk_norm=True)) == 2


# ---------------------------------------------------------------- eval and the sliding window

def test_eval_runs_on_both_and_mistral_beyond_its_window(checkpoints, tmp_path):
    for family, seq_len in (("qwen3", T), ("mistral", 2 * WINDOW)):  # eval runs the model's own banded mask
        out = tmp_path / family
        assert main(["eval", "--model", str(checkpoints[family]), "--seq-len", str(seq_len), "--patterns", "2:4",
                     "--out", str(out)]) == 0
        rows = json.loads((out / "accuracy.json").read_text())["rows"]
        assert len(rows) == 1 and math.isfinite(rows[0]["perplexity"]) and rows[0]["perplexity"] > 1


def test_sliding_window_attention_is_causal_attention_up_to_the_window():
    """Why capture accepts seq_len <= window: the same weights with and without the window give identical logits
    for the first WINDOW positions, and different ones after (transformers' mask: i - window < j <= i)."""
    from amber_sim.models.loading import attention_window

    configs = [transformers.MistralConfig(**SHAPE, sliding_window=window) for window in (WINDOW, None)]
    assert [attention_window(config) for config in configs] == [WINDOW, None]
    assert attention_window(transformers.Qwen3Config(**SHAPE)) is None  # use_sliding_window false by default
    torch.manual_seed(0)
    banded, causal = (transformers.MistralForCausalLM(config).eval() for config in configs)
    causal.load_state_dict(banded.state_dict())
    ids = torch.randint(0, 256, (1, 2 * WINDOW), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (banded(ids).logits - causal(ids).logits).abs().amax(-1)[0]
    assert difference[:WINDOW].max() == 0 and (difference[WINDOW:] > 1e-4).all()


def test_capture_refuses_a_prompt_longer_than_the_sliding_window(checkpoints, tmp_path, capsys):
    out = tmp_path / "t.json"
    error = _one_line_error(capsys, ["capture", "--model", str(checkpoints["mistral"]), "--seq-len", str(WINDOW + 1),
                                     "--patterns", "dense,2:4", "--out", str(out)])
    assert f"--seq-len: {WINDOW + 1} is longer than tiny-mistral's sliding attention window of {WINDOW} tokens" in error
    assert not out.exists()
    # exactly the window is plain causal attention: accepted
    assert main(["capture", "--model", str(checkpoints["mistral"]), "--seq-len", str(WINDOW), "--patterns", "dense",
                 "--out", str(out)]) == 0


# ---------------------------------------------------------------- tokenizers

@pytest.mark.parametrize("command", ["capture", "eval"])
def test_a_checkpoint_without_tokenizer_files_says_which_and_takes_tokenizer_dir(checkpoints, tmp_path, capsys,
                                                                                 command):
    bare = str(checkpoints["no-tokenizer"])
    extra = ["--patterns", "dense,2:4", "--out", str(tmp_path / "t.json")] if command == "capture" else \
        ["--patterns", "2:4", "--out", str(tmp_path / "acc")]
    error = _one_line_error(capsys, [command, "--model", bare, "--seq-len", str(T), *extra])
    assert (f"{bare}: tokenizer: no tokenizer files: none of tokenizer.json, tokenizer.model, vocab.json + merges.txt"
            in error)
    assert "--tokenizer DIR" in error and "sentencepiece" not in error
    assert main([command, "--model", bare, "--tokenizer", str(checkpoints["tokenizer"]), "--seq-len", str(T),
                 *extra]) == 0
    capsys.readouterr()
    if command == "capture":
        assert "Tokenizer from byte-tokenizer." in load_trace(tmp_path / "t.json").capture.notes
        # a --tokenizer that is no tokenizer directory, and --tokenizer where no text is tokenized
        error = _one_line_error(capsys, [command, "--model", bare, "--tokenizer", str(tmp_path / "none"), *extra])
        assert "--tokenizer: " in error and "is not a directory" in error
        error = _one_line_error(capsys, [command, "--model", bare, "--tokenizer", bare, *extra])
        assert f"{bare}: tokenizer: no tokenizer files" in error
        error = _one_line_error(capsys, [command, "--model", "smollm2-135m", "--init", "random",
                                         "--tokenizer", bare, *extra])
        assert "--tokenizer: applies to pretrained captures only" in error


def test_tokenizer_files_transformers_cannot_read_are_one_line(checkpoints, tmp_path, capsys):
    import importlib.util

    directory = tmp_path / "sentencepiece-only"
    shutil.copytree(checkpoints["no-tokenizer"], directory)
    (directory / "tokenizer.model").write_bytes(bytes(range(256)))  # not a SentencePiece model either
    error = _one_line_error(capsys, ["eval", "--model", str(directory), "--seq-len", str(T),
                                     "--out", str(tmp_path / "acc")])
    assert f"{directory}: tokenizer: transformers could not build a tokenizer from tokenizer.model (" in error
    assert error.endswith("pass a directory holding the model's tokenizer with --tokenizer DIR")
    if importlib.util.find_spec("sentencepiece") is None:
        assert "needs the sentencepiece package, which is not installed" in error


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(checkpoints, tmp_path):
    small = transformers.Qwen3Config(**{**SHAPE, "vocab_size": 200, "num_hidden_layers": 1}, head_dim=16)
    directory = _save(tmp_path / "vocab-200", small)
    with pytest.raises(InputError, match="256 tokens, but the model's vocabulary has 200"):
        load_model(directory, tokenizer=checkpoints["tokenizer"])


# ---------------------------------------------------------------- other families and broken checkpoints

def test_another_family_is_one_line_listing_the_supported_ones(checkpoints, tmp_path, capsys):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    error = _one_line_error(capsys, ["capture", "--model", str(gpt2), "--out", str(tmp_path / "t.json")])
    assert error.endswith("model_type: unsupported model family 'gpt2'; supported: llama, ministral, mistral, qwen2, "
                          "qwen3")


def test_weights_that_do_not_match_config_json_are_refused(checkpoints, tmp_path, capsys):
    def variant(name: str, **changes):
        directory = tmp_path / name
        shutil.copytree(checkpoints["qwen3"], directory)
        config = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**config, **changes}))
        return str(directory)

    # transformers would initialise the mismatched tensors at random and only log a report
    error = _one_line_error(capsys, ["eval", "--model", variant("wider", intermediate_size=128), "--seq-len", str(T),
                                     "--out", str(tmp_path / "acc")])
    assert ("weights: do not match qwen3's layout in config.json: wrong shape model.layers.0.mlp.down_proj.weight "
            "(64, 96) where config.json implies (64, 128)") in error
    # Qwen3 weights declared LLaMA: its q_norm/k_norm tensors have nowhere to go
    error = _one_line_error(capsys, ["capture", "--model", variant("as-llama", model_type="llama",
                                                                   architectures=["LlamaForCausalLM"]),
                                     "--out", str(tmp_path / "t.json")])
    assert "weights: do not match llama's layout in config.json: unexpected model.layers.0.self_attn.k_norm" in error
