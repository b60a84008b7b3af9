"""`Saving`, the part of `Index` that writes its directory: a change saved as the next generation.

`Index.add` and `Index.remove` hold the directory's lock (`rag.store.lock`) and re-read the
current generation, then save through these methods; `rag.update` decides what an add changes
and `rag.store` writes a generation atomically. `MilvusIndex` overrides `_interruptible` and
`_apply`: Milvus is written in batches (`rag.milvus_index`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import store, update
from .db import ChunkRecord, DocRecord
from .errors import RagError, WriteInterrupted
from .records import Article, IndexReport
from .store import Snapshot
from .update import Progress

if TYPE_CHECKING:
    from .distributed import Cluster
    from .embed import Embedder


class Saving:
    """The writes of an `Index` to its directory, each under the lock its caller holds.

    `Index` inherits them; it sets ``path`` and ``_snap`` (the generation it reads, which each
    write replaces).
    """

    path: Path
    _snap: Snapshot

    if TYPE_CHECKING:  # `Index.embedder`, which loads the model on first use

        @property
        def embedder(self) -> Embedder: ...

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Turn Ctrl-C into `WriteInterrupted`, saying whether the new generation was already
        switched to (then the change is saved) or not. Whatever stops a write after the
        switch (Ctrl-C as the old generation's files are removed), this index reads the new
        generation from then on: it kept searching the old one, removed documents included."""
        before = store.read_manifest(self.path).generation  # the lock is held: it is current
        try:
            yield
        except BaseException as e:
            try:
                saved = store.read_manifest(self.path).generation != before
            except RagError:
                saved = False
            if saved:  # a failed re-read leaves the next call's `_reread` to say why
                with contextlib.suppress(RagError, OSError):
                    self._snap = store.read(self.path)
            if not isinstance(e, KeyboardInterrupt) or isinstance(e, WriteInterrupted):
                raise
            raise WriteInterrupted(self.path, saved) from None

    @property
    def _dim(self) -> int:
        return int(self._snap.manifest.embedder["dim"])

    def _apply(
        self,
        plan: list[tuple[Article, str]],
        report: IndexReport,
        progress: Progress | None,
        cluster: Cluster | None = None,
    ) -> None:
        """Chunk and embed the planned articles (on ``cluster`` if given), reusing the vectors
        of chunk texts the index holds, and write them in place of their earlier versions."""
        chunker = self._snap.manifest.chunker
        if cluster is None:
            docs, chunks, texts = update.prepare(plan, self.embedder, chunker, progress)
            encode = None
        else:
            docs, chunks, texts = cluster.prepare(plan, self.embedder, chunker, progress)
            encode = cluster.encoder(self.embedder, self._snap.manifest.embedder)
        cached = update.cached_vectors(self._snap)
        vectors = update.embed(chunks, texts, cached, self.embedder, report, progress, encode)
        self._write({d.doc_id for d in docs} | set(report.removed), docs, chunks, vectors, progress)

    def _write(
        self,
        drop: set[str],
        docs: list[DocRecord],
        chunks: list[ChunkRecord],
        vectors: Any,
        progress: Progress | None = None,
    ) -> None:
        """Write a generation = current minus ``drop`` plus the new docs, chunks, vectors."""
        if progress:
            progress("write", 0, 1)
        store.write(self.path, self._snap.manifest, self._snap, drop, docs, chunks, vectors)
        self._snap = store.read(self.path)
        if progress:
            progress("write", 1, 1)


def empty(dim: int) -> np.ndarray:
    """No vectors (of ``dim`` floats): those of a write that adds no chunks."""
    return np.zeros((0, dim), dtype=np.float32)
