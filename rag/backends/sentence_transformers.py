"""Any sentence-transformers model, by hub id (if cached) or local directory."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import config
from ..embed import Embedder
from ..errors import BackendUnavailable

log = logging.getLogger(__name__)

INSTALL = 'pip install "kornews-rag[sentence-transformers]"'


class SentenceTransformerEmbedder(Embedder):
    """A `SentenceTransformer` on the CPU.

    Prefixes come from the arguments, else from the model's configured prompts
    (``query`` and ``document``/``passage``), else "query: "/"passage: " for e5 models.
    """

    def __init__(
        self,
        model: str | None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
    ) -> None:
        if not model:
            raise BackendUnavailable(
                "sentence-transformers needs a model: sentence-transformers:PATH_OR_ID"
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise BackendUnavailable(f"sentence-transformers is not installed: {INSTALL}") from e
        local = config.expand(model)
        source = str(local.resolve()) if local.exists() else model
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self._model = SentenceTransformer(source, device="cpu")
        except Exception as e:  # the library raises OSError, ValueError, HF hub errors...
            raise BackendUnavailable(
                f"cannot load sentence-transformers model {model!r}: {e}"
            ) from e
        self.spec = f"sentence-transformers:{source}"
        self.model_id = _model_id(source, local.exists())
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise BackendUnavailable(f"model {model!r} does not report an embedding dimension")
        self.dim = int(dim)
        self.max_tokens = int(self._model.max_seq_length or 512)
        prompts = getattr(self._model, "prompts", None) or {}
        is_e5 = "e5" in self.model_id.lower()
        # sentence-transformers reports unset prompts as "", so only non-empty ones count.
        self.query_prefix = _first(
            query_prefix, prompts.get("query") or None, "query: " if is_e5 else ""
        )
        self.passage_prefix = _first(
            passage_prefix,
            prompts.get("document") or prompts.get("passage") or None,
            "passage: " if is_e5 else "",
        )

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        prefix = self.query_prefix if is_query else self.passage_prefix
        vectors = self._model.encode(
            [prefix + t for t in texts],
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        ids = self._model.tokenizer(self.passage_prefix + text, add_special_tokens=True)[
            "input_ids"
        ]
        return len(ids)


def _first(*values: str | None) -> str:
    return next(v for v in values if v is not None)


def _model_id(source: str, local: bool) -> str:
    """A hub id as given; for a directory its last two path parts (``models/my-e5``)."""
    if not local:
        return source
    return "/".join(Path(source).parts[-2:])
