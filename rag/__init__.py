"""Semantic search and cited question answering over Korean news articles."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends import get_embedder, register_backend
    from .embed import Embedder
    from .errors import (
        BackendUnavailable,
        EmbedderMismatch,
        IndexCorrupt,
        IndexExists,
        IndexNotFound,
        RagError,
    )
    from .index import Index
    from .records import Article, Chunk, Hit, IndexInfo, IndexReport, Skipped

__version__ = version("kornews-rag")

# Where each public name lives. They are imported on first use (PEP 562), so that `rag
# search` can start analyzing its query before numpy, FAISS and bm25s are imported.
_PUBLIC = {
    "Article": "records",
    "BackendUnavailable": "errors",
    "Chunk": "records",
    "Embedder": "embed",
    "EmbedderMismatch": "errors",
    "Hit": "records",
    "Index": "index",
    "IndexCorrupt": "errors",
    "IndexInfo": "records",
    "IndexExists": "errors",
    "IndexNotFound": "errors",
    "IndexReport": "records",
    "RagError": "errors",
    "Skipped": "records",
    "get_embedder": "backends",
    "register_backend": "backends",
}

__all__ = [
    "Article",
    "BackendUnavailable",
    "Chunk",
    "Embedder",
    "EmbedderMismatch",
    "Hit",
    "Index",
    "IndexCorrupt",
    "IndexExists",
    "IndexInfo",
    "IndexNotFound",
    "IndexReport",
    "RagError",
    "Skipped",
    "__version__",
    "get_embedder",
    "register_backend",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
