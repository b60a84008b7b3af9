"""`Index` over a Milvus store (``Index.open(store=...)``, ``rag ... --store``).

The same Python API and the same pipeline as a directory index: `rag.update` reads, plans by
content hash, chunks and computes the Kiwi terms; vectors of chunk texts already stored are
read back instead of embedded; `Index.ask` and everything above `search` are inherited.
Only the storage and the retrieval differ (`rag.milvus`):

- dense and BM25 search run in Milvus, fused by ``hybrid_search``: ``convex`` with a
  ``WeightedRanker(1 - w, w)``, ``w = bm25_weight * coverage`` as locally, and ``rrf`` with
  an ``RRFRanker(60)``. Milvus normalizes each list's scores before weighting: milvus-lite
  3.x by min-max, like rag; a Milvus server by arctan (``norm_score``), so its convex ranking
  can differ from rag's (docs/scale-out.md);
- coverage and `document_frequencies` count chunks with ``TEXT_MATCH`` on the terms field;
- a hit's ``dense_score`` is the inner product of its returned vector with the query's;
  ``bm25_score`` is set only for ``fusion="bm25"`` (Milvus does not return the scores of
  each list of a hybrid search).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config, milvus, milvus_schema, retrieve, update
from .backends import get_embedder
from .db import DocRecord
from .embed import Embedder
from .errors import IndexNotFound, InvalidOption, RagError, WriteInterrupted
from .index import Index
from .korean import genitive_stem, query_morphemes
from .records import Article, Hit, IndexInfo, IndexReport, Skipped
from .sanitize import check_query
from .update import Progress, Source

if TYPE_CHECKING:
    from .distributed import Cluster

log = logging.getLogger(__name__)


class StoreNotFound(IndexNotFound):
    """No rag index in the Milvus store."""

    def __init__(self, uri: str) -> None:
        self.path = Path(uri)
        message = f"no index at {uri} (create one with: rag index PATH --store {uri})"
        RagError.__init__(self, message)


class StoreInterrupted(WriteInterrupted):
    """Ctrl-C during a write to Milvus, which has no transactions: part of it may be stored."""

    def __init__(self, uri: str) -> None:
        self.path = Path(uri)
        self.saved = False
        KeyboardInterrupt.__init__(
            self,
            f"interrupted; the index at {uri} may hold part of this change: "
            "run the same command again to complete it",
        )


class MilvusIndex(Index):
    """An index whose chunks, vectors, BM25 terms and articles are kept in Milvus."""

    def __init__(
        self, store: milvus.Store, manifest: dict[str, Any], embedder: Embedder | None = None
    ) -> None:
        self.path = store.location.lite or Path(store.location.uri)
        self.uri = store.location.uri
        self.store = store
        self.manifest = manifest
        self._embedder = embedder
        self._checked = False
        self._frequencies: dict[tuple[str, ...], int] = {}

    @classmethod
    def open_store(
        cls, uri: str, embedder: str | Embedder | None = None, create: bool = False
    ) -> MilvusIndex:
        """`Index.open` for ``store=uri``.

        Raises:
            StoreNotFound: No index there and ``create`` is false.
        """
        lite = milvus.parse(uri).lite
        if lite is not None and not lite.exists() and not create:
            raise StoreNotFound(uri)  # before milvus-lite makes an empty database there
        store = _store(uri)
        if not store.exists():
            if not create:
                raise StoreNotFound(uri)
            return cls.create_store(uri, embedder)
        instance = embedder if isinstance(embedder, Embedder) else None
        if isinstance(embedder, str):
            instance = get_embedder(embedder)
        return cls(store, store.manifest(), instance)

    @classmethod
    def create_store(
        cls,
        uri: str,
        embedder: str | Embedder | None = None,
        max_tokens: int | None = None,
        overlap: int = config.CHUNK_OVERLAP_SENTENCES,
        **embedder_options: Any,
    ) -> MilvusIndex:
        """`Index.create` for ``store=uri``: the collections, with the manifest.

        Raises:
            RagError: A collection of the index's names exists already.
        """
        from .manifest import new_manifest

        store = _store(uri)
        if store.exists():
            raise RagError(f"an index or another collection already exists at {uri}")
        if isinstance(embedder, Embedder):
            model = embedder
        else:
            model = get_embedder(config.embedder_spec(embedder, build=True), **embedder_options)
        if max_tokens is None:
            max_tokens = min(config.CHUNK_MAX_TOKENS, model.max_tokens)
        if max_tokens > model.max_tokens:
            raise InvalidOption("max_tokens", max_tokens, [f"at most {model.max_tokens}"])
        base = new_manifest(model.describe(), max_tokens, overlap)
        bm25 = base.bm25 | {
            "library": "Milvus BM25 function (standard analyzer)",
            "terms": "the Kiwi terms' \\w+ tokens, lowercased, joined by spaces",
        }
        store.create(
            {
                "format_version": milvus.FORMAT_VERSION,
                "rag_version": base.rag_version,
                "created": base.created.isoformat(),
                "updated": base.updated.isoformat(),
                "embedder": base.embedder,
                "chunker": base.chunker,
                "bm25": bm25,
                "dense_index": store.location.dense_index,
            }
        )
        return cls(store, store.manifest(), model)

    def drop_if_empty(self) -> bool:
        """Drop the index's collections if they hold no article; whether they were dropped.

        The CLI undoes an index it created and wrote nothing into. Milvus has no locks: another
        run may have opened the new index and written into it meanwhile, and its articles
        stay. (Between the count and the drop, another write can still slip in.)"""
        if len(self):
            return False
        self.store.drop()
        return True

    # -- reading -------------------------------------------------------------------------

    @property
    def _model_record(self) -> dict[str, Any]:
        return dict(self.manifest["embedder"])

    def __len__(self) -> int:
        return self.store.count(documents=True)

    def documents(self) -> list[DocRecord]:
        return list(self.store.docs(text=True).values())

    def info(self) -> IndexInfo:
        """Counts, model, dates and outlets (read from the article collection); the size is
        that of a milvus-lite database's files, 0 for a server."""
        m = self.manifest
        docs = self.store.docs()
        dates = sorted(d.date for d in docs.values() if d.date)
        sources = Counter(d.source for d in docs.values() if d.source)
        lite = self.store.location.lite
        size = sum(f.stat().st_size for f in lite.rglob("*") if f.is_file()) if lite else 0
        return IndexInfo(
            path=self.uri,
            documents=len(docs),
            chunks=self.store.count(documents=False),
            embedder=m["embedder"]["spec"],
            model_id=m["embedder"]["model_id"],
            dim=m["embedder"]["dim"],
            size_bytes=size,
            created=dt.datetime.fromisoformat(m["created"]),
            updated=dt.datetime.fromisoformat(m["updated"]),
            first_date=dates[0] if dates else None,
            last_date=dates[-1] if dates else None,
            sources=dict(sorted(sources.items())),
            rag_version=m["rag_version"],
            format_version=m["format_version"],
        )

    def check(self) -> tuple[int, list[str]]:
        """Compare every article's recorded chunk count with the chunks stored for it.

        Returns:
            The number of articles, and the problems found (chunks an interrupted write left).
        """
        docs = self.store.docs()
        stored = Counter(self.store.chunk_doc_ids())
        problems = [
            f"article {doc_id} has {stored[doc_id]} of its {doc.chunks} chunks"
            for doc_id, doc in docs.items()
            if stored[doc_id] != doc.chunks
        ]
        problems += [
            f"{n} chunks of {doc_id}, which is not indexed (an interrupted write: run it again)"
            for doc_id, n in stored.items()
            if doc_id not in docs
        ]
        return len(docs), problems

    def document_frequencies(self, terms: Iterable[str]) -> tuple[dict[str, int], int]:
        """How many chunks hold each term, counted by ``TEXT_MATCH`` on its tokens."""
        counts = {t: self._frequency(tuple(milvus_schema.tokens(t))) for t in terms}
        return counts, self.store.count(documents=False)

    def search(
        self,
        query: str,
        k: int = 5,
        since: dt.date | str | None = None,
        until: dt.date | str | None = None,
        source: str | None = None,
        fusion: str = config.DEFAULT_FUSION,
        bm25_weight: float = config.DEFAULT_BM25_WEIGHT,
    ) -> list[Hit]:
        """`Index.search` in Milvus (see the module docstring for how fusion maps)."""
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        first, last = retrieve.check_options(k, since, until, fusion, bm25_weight, source)
        check_query(query)
        if not query.strip():
            return []
        expr = milvus_schema.filter_expression(first, last, source)
        n = max(config.FUSION_CANDIDATES, k)
        words = [] if fusion == "dense" else milvus_schema.tokens(" ".join(self._terms(query)))
        lexical = dense = vector = None
        if words:
            param = {"metric_type": "BM25"}
            lexical = AnnSearchRequest([" ".join(words)], "sparse", param, n, expr=expr)
        if fusion != "bm25":
            vector = self.embedder.embed_query(query)
            param = milvus_schema.search_params(self.manifest)
            dense = AnnSearchRequest([vector.tolist()], "vector", param, n, expr=expr)
        ranker: Any = None
        if fusion == "convex" and lexical and dense:
            known = sum(self._frequency((w,)) > 0 for w in words)
            weight = bm25_weight * known / len(words)
            if weight <= 0:
                lexical = None  # rag's fusion gives its hits 0: dense alone ranks
            else:
                ranker = WeightedRanker(1 - weight, weight)
        elif fusion == "rrf" and lexical and dense:
            ranker = RRFRanker(config.RRF_K)
        requests = [r for r in (dense, lexical) if r is not None]
        if not requests:
            return []
        found = self.store.search(requests, ranker, k)
        docs = self.store.docs({hit["entity"]["doc_id"] for hit in found})
        hits = []
        for hit in found:
            chunk, doc = hit["entity"], docs.get(hit["entity"]["doc_id"])
            if doc is None:  # chunks of an interrupted write, without their article
                continue
            # milvus-lite returns BM25 scores negated; a server, as they are (never negative).
            score = abs(hit["distance"]) if dense is None else float(hit["distance"])
            similarity = None
            if vector is not None:
                similarity = float(np.dot(np.asarray(chunk["vector"], dtype=np.float32), vector))
            hits.append(
                Hit(
                    doc_id=doc.doc_id,
                    chunk_id=chunk["chunk_id"],
                    title=doc.title,
                    date=doc.date,
                    source=doc.source,
                    path=doc.path,
                    url=doc.url,
                    reporter=doc.reporter,
                    text=chunk["text"],
                    start=chunk["start"],
                    end=chunk["end"],
                    score=score,
                    dense_score=similarity,
                    bm25_score=score if dense is None else None,
                )
            )
        return hits

    # -- writing -------------------------------------------------------------------------

    def add(
        self,
        inputs: Iterable[Source] | Source,
        progress: Progress | None = None,
        ray: str | None = None,
    ) -> IndexReport:
        """`Index.add` into Milvus; ``ray`` reads, chunks and embeds on a Ray cluster. An
        interrupted add leaves the articles of the batches written so far; running it again
        adds the rest (`StoreInterrupted`)."""
        started = time.perf_counter()
        report = IndexReport()
        if self._embedder is not None:
            _ = self.embedder  # a mismatched embedder is refused even when nothing is new
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._interruptible())
            cluster = None
            if ray is not None:
                from .distributed import connect

                cluster = stack.enter_context(connect(ray, progress))
            collect = cluster.collect if cluster else update.collect
            articles = collect(inputs, report, progress)
            plan = _storable(update.plan(self.store.docs(), articles, report), report)
            if plan:
                self._apply(plan, report, progress, cluster)
            if report.removed:  # after: an interrupted add is completed by running it again
                self.store.delete(report.removed)
                self._written()
        report.seconds = time.perf_counter() - started
        return report

    def remove(
        self, targets: Iterable[str | Path] | str | Path, *, everything: bool = False
    ) -> list[str]:
        """`Index.remove` from Milvus (by doc id or file path)."""
        gone = update.resolve(
            targets,
            lambda i: bool(self.store.docs([i])),
            self.store.doc_ids_under,
            None if everything else len(self),
        )
        with self._interruptible():
            self.store.delete(gone)
            self._written()
        return gone

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt as e:
            if isinstance(e, WriteInterrupted):
                raise
            raise StoreInterrupted(self.uri) from None

    def _apply(
        self,
        plan: list[tuple[Any, str]],
        report: IndexReport,
        progress: Progress | None,
        cluster: Cluster | None = None,
    ) -> None:
        chunker = self.manifest["chunker"]
        if cluster is None:
            docs, chunks, texts = update.prepare(plan, self.embedder, chunker, progress)
            encode: update.Encode = self.embedder.embed_passages
        else:
            docs, chunks, texts = cluster.prepare(plan, self.embedder, chunker, progress)
            encode = cluster.encoder(self.embedder, self.manifest["embedder"])
        # The embedding cache: vectors of chunk texts the index holds, by hash.
        vectors = update.embed(
            chunks, texts, self.store.vectors, self.embedder, report, progress, encode
        )
        if progress:
            progress("write", 0, len(docs))
        for written in self.store.replace(docs, chunks, vectors):
            if progress:
                progress("write", written, len(docs))
        self._written()

    def _written(self) -> None:
        self._frequencies.clear()
        self.store.touch(self.manifest)

    def _terms(self, query: str) -> list[str]:
        """The query's BM25 terms, as `rag.retrieve.bm25_scores` takes them (a name with the
        genitive Kiwi read into it searched as the name, `rag.korean.genitive_stem`)."""
        return [
            genitive_stem(t, lambda x: self._frequency(tuple(milvus_schema.tokens(x))))
            for t in query_morphemes(query)
        ]

    def _frequency(self, words: tuple[str, ...]) -> int:
        """Chunks holding all of ``words`` (0 for none), cached until the next write."""
        if not words:
            return 0
        if words not in self._frequencies:
            self._frequencies[words] = self.store.matching(list(words))
        return self._frequencies[words]


def _storable(plan: list[tuple[Article, str]], report: IndexReport) -> list[tuple[Article, str]]:
    """The planned articles Milvus can hold; the others are reported skipped
    (`milvus_schema.unstorable`)."""
    kept = []
    for article, doc_id in plan:
        problem = milvus_schema.unstorable(doc_id, article.path)
        if not problem:
            kept.append((article, doc_id))
            continue
        for planned in (report.added, report.updated):
            if doc_id in planned:
                planned.remove(doc_id)
        report.skipped.append(Skipped(path=article.path or article.key, reason=problem))
    return kept


def _store(uri: str) -> milvus.Store:
    location = milvus.parse(uri)
    return milvus.Store(milvus.connect(location), location)
