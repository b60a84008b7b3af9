"""Semantic search and cited question answering over Korean news articles."""

from importlib.metadata import version

from .backends import get_embedder, register_backend
from .embed import Embedder
from .errors import (
    BackendUnavailable,
    EmbedderMismatch,
    IndexCorrupt,
    IndexNotFound,
    RagError,
)
from .index import Index
from .records import Article, Chunk, Hit, IndexInfo, IndexReport, Skipped

__version__ = version("kornews-rag")

__all__ = [
    "Article",
    "BackendUnavailable",
    "Chunk",
    "Embedder",
    "EmbedderMismatch",
    "Hit",
    "Index",
    "IndexCorrupt",
    "IndexInfo",
    "IndexNotFound",
    "IndexReport",
    "RagError",
    "Skipped",
    "__version__",
    "get_embedder",
    "register_backend",
]
