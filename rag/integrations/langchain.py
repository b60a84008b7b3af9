"""An `Index` as a LangChain retriever::

    from rag.integrations.langchain import RagRetriever

    retriever = RagRetriever.from_path("index/", k=3, since="2023-01-01")
    docs = retriever.invoke("카카오엔터프라이즈 구조조정")

Importing this module imports ``langchain-core``; importing `rag` does not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable
from ..records import Hit

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as e:
    raise BackendUnavailable(
        "the LangChain integration needs langchain-core: pip install langchain-core"
    ) from e


class RagRetriever(BaseRetriever):
    """Hybrid search over an `Index`, one ``Document`` per hit chunk.

    ``metadata`` holds ``doc_id``, ``chunk_id``, ``title``, ``date`` (ISO string or
    ``None``), ``source``, ``reporter``, ``path``, ``url``, ``score``, ``start`` and ``end``
    (the chunk's character span in the article's cleaned text).

    Attributes:
        index: The `rag.Index` to search.
        k: Number of documents per query.
        since: Only articles dated on or after this day (``YYYY-MM-DD`` or a date).
        until: Only articles dated on or before this day.
        source: Only articles from this outlet.
    """

    index: Any
    k: int = 5
    since: dt.date | str | None = None
    until: dt.date | str | None = None
    source: str | None = None

    @classmethod
    def from_path(
        cls, path: str | Path | None = None, embedder: str | None = None, **fields: Any
    ) -> RagRetriever:
        """Open the index at ``path`` (default: ``$RAG_INDEX`` or ``index/``).

        Args:
            path: Index directory.
            embedder: Query embedder spec, if not the one the index records.
            **fields: ``k``, ``since``, ``until``, ``source``.

        Raises:
            IndexNotFound: No index there.
        """
        from ..index import Index

        return cls(index=Index.open(path, embedder=embedder), **fields)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.index.search(
            query, k=self.k, since=self.since, until=self.until, source=self.source
        )
        return [to_document(hit) for hit in hits]


def to_document(hit: Hit) -> Document:
    """One search hit as a LangChain ``Document``."""
    metadata = {
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "title": hit.title,
        "date": hit.date.isoformat() if hit.date else None,
        "source": hit.source,
        "reporter": hit.reporter,
        "path": hit.path,
        "url": hit.url,
        "score": hit.score,
        "start": hit.start,
        "end": hit.end,
    }
    return Document(page_content=hit.text, metadata=metadata, id=hit.chunk_id)
