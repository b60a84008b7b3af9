"""Hybrid retrieval: FAISS dense search, BM25 on Kiwi morphemes, filters and score fusion."""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from . import config, dense, remote_kiwi
from .bm25 import Lexical
from .db import ChunkRecord, DocRecord
from .errors import InvalidOption
from .korean import analyzed_aside, genitive_stem, query_morphemes
from .names import spelt_names
from .records import Hit
from .sanitize import check_query
from .store import Snapshot
from .support import language


def search(
    snap: Snapshot,
    query: str,
    embed_query: Callable[[str], np.ndarray],
    k: int,
    since: dt.date | str | None,
    until: dt.date | str | None,
    source: str | None,
    fusion: str,
    bm25_weight: float,
) -> list[Hit]:
    """`Index.search` over one generation; ``embed_query`` is called only when dense
    search is part of ``fusion``."""
    first, last = check_options(k, since, until, fusion, bm25_weight, source)
    check_query(query)
    if not len(snap) or not query.strip():
        return []
    keep = mask(snap, first, last, source)
    if keep is not None and not keep.any():
        return []
    n = max(config.FUSION_CANDIDATES, k)
    dense: dict[int, float] = {}
    lexical: dict[int, float] = {}
    coverage = 0.0
    # The query's morphemes first: the ONNX embedder's files may still be loading in the
    # background (`Index.preload`), and Kiwi loads beside them; embedding the query first
    # would wait for them, then load Kiwi. Unless Kiwi loads in another process (the Kiwi of
    # `rag.remote_kiwi`, or the query analyzer of `rag search`): then the query is embedded
    # while it does.
    dense_first = remote_kiwi.started is not None or analyzed_aside(query)
    if fusion != "bm25" and dense_first:
        dense = dense_scores(snap, embed_query(query), n, keep)
    if fusion != "dense":
        terms = query_morphemes(query)
        spelt = english_names(snap.bm25, query)
        lexical, coverage = bm25_scores(snap.bm25, terms, n, keep, spelt)
    if fusion != "bm25" and not dense_first:
        dense = dense_scores(snap, embed_query(query), n, keep)
    ranked = fuse(dense, lexical, fusion, bm25_weight, coverage)[:k]
    chunks = snap.records.chunks([row for row, _ in ranked])
    docs = snap.records.docs({c.doc_id for c in chunks}, text=False)
    return [
        _hit(chunk, docs[chunk.doc_id], score, dense.get(row), lexical.get(row))
        for chunk, (row, score) in zip(chunks, ranked, strict=True)
    ]


def check_options(
    k: int,
    since: dt.date | str | None,
    until: dt.date | str | None,
    fusion: str,
    bm25_weight: float,
    source: str | None = None,
) -> tuple[dt.date | None, dt.date | None]:
    """Validate `Index.search`'s options (for every store); returns the two dates.

    Raises:
        InvalidOption: A bad fusion, weight, k, date or source.
    """
    if fusion not in config.FUSIONS:
        raise InvalidOption("fusion", fusion, config.FUSIONS)
    # "5" or None failed in a comparison, 1.5 in a slice; numpy's numbers are Integral or Real
    if not isinstance(bm25_weight, numbers.Real) or not 0.0 <= bm25_weight <= 1.0:
        raise InvalidOption("bm25_weight", bm25_weight, ["a number from 0 to 1"])
    if not isinstance(k, numbers.Integral) or k < 1:
        raise InvalidOption("k", k, ["a positive integer"])
    if source is not None and not isinstance(source, str):
        raise InvalidOption("source", source, ["an outlet's name as str"])
    return _as_date(since, "since"), _as_date(until, "until")


def mask(
    snapshot: Snapshot, since: dt.date | None, until: dt.date | None, source: str | None
) -> np.ndarray | None:
    """Chunks passing the filters (``None``: no filter). Undated articles fail date filters.

    Vector operations over the generation's per-chunk date and outlet arrays, so a filter
    costs no Python loop over chunks.
    """
    if since is None and until is None and source is None:
        return None
    date, outlet = snapshot.filters[:, 0], snapshot.filters[:, 1]
    keep = np.ones(len(snapshot.filters), dtype=bool)
    if since is not None:
        keep &= date >= since.toordinal()
    if until is not None:
        keep &= (date >= 0) & (date <= until.toordinal())
    if source is not None:
        keep &= outlet == snapshot.records.outlet_code(source)
    return keep


def document_frequencies(bm25: Lexical | None, terms: Iterable[str]) -> tuple[dict[str, int], int]:
    """`Index.document_frequencies`: read from the BM25 index's term columns."""
    if bm25 is None:
        return {t: 0 for t in terms}, 0
    return {t: bm25.frequency(t) for t in terms}, bm25.num_docs


def dense_scores(
    snapshot: Snapshot, query: np.ndarray, n: int, keep: np.ndarray | None
) -> dict[int, float]:
    """Top-``n`` rows by inner product, searching only rows in ``keep``."""
    nprobe = snapshot.manifest.ann["nprobe"] if snapshot.manifest.ann else 0
    return dense.search(
        snapshot.vectors, snapshot.exact_index, snapshot.ann, nprobe, query, n, keep, snapshot.ids
    )


def english_names(bm25: Lexical | None, query: str) -> list[tuple[list[str], str]]:
    """An English query's names as the corpus spells them in Hangul (`rag.names.spelt_names`);
    none for a Korean query."""
    if bm25 is None or language(query) != "en":
        return []
    return spelt_names(query, bm25.spellings, bm25.frequency)


def bm25_scores(
    bm25: Lexical | None,
    terms: list[str],
    n: int,
    mask: np.ndarray | None,
    spelt: Sequence[tuple[list[str], str]] = (),
) -> tuple[dict[int, float], float]:
    """Top-``n`` rows by BM25 among ``mask``, and the query's coverage.

    Coverage is the share of query terms that occur in the corpus at all. A question in
    English over Korean articles has almost none, and its few matches (a Latin acronym, a
    number) are noise; fusion scales the BM25 weight by coverage so dense search carries it.
    Its names are the exception: ``spelt`` pairs a name's words with the Hangul word the
    corpus spells it with (`english_names`); that word is searched, and the name's words
    count as known.
    """
    if bm25 is None or not terms:
        return {}, 0.0
    terms = [genitive_stem(t, bm25.frequency) for t in terms]
    named = {w for words, _ in spelt for w in words}
    held = {t: bool(bm25.frequency(t)) for t in set(terms)}  # each term's column read once
    known = [t for t in terms if held[t]]
    coverage = sum(held[t] or t in named for t in terms) / len(terms)
    known += [word for _, word in spelt]
    if not known:
        return {}, 0.0
    scores = bm25.scores(known)
    if mask is not None:
        scores = np.where(mask, scores, 0.0)
    n = min(n, len(scores))
    top = np.argpartition(-scores, n - 1)[:n]
    return {int(r): float(scores[r]) for r in top if scores[r] > 0}, coverage


def fuse(
    dense: dict[int, float],
    lexical: dict[int, float],
    method: str,
    bm25_weight: float,
    coverage: float,
) -> list[tuple[int, float]]:
    """Combine the two candidate lists into one ranking, best first.

    ``convex``: ``w * minmax(bm25) + (1 - w) * minmax(dense)`` with ``w = bm25_weight *
    coverage``; a row missing from one list scores 0 there. ``rrf``: reciprocal rank fusion.
    """
    if method == "dense":
        fused = dense
    elif method == "bm25":
        fused = lexical
    elif method == "convex":
        w = bm25_weight * coverage
        nd, nb = _minmax(dense), _minmax(lexical)
        fused = {r: w * nb.get(r, 0.0) + (1 - w) * nd.get(r, 0.0) for r in nd.keys() | nb.keys()}
    elif method == "rrf":
        fused = {}
        for ranked in (dense, lexical):
            for rank, r in enumerate(sorted(ranked, key=ranked.__getitem__, reverse=True)):
                fused[r] = fused.get(r, 0.0) + 1.0 / (config.RRF_K + rank + 1)
    else:
        raise InvalidOption("fusion", method, config.FUSIONS)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo < 1e-9:
        return {r: 1.0 for r in scores}
    return {r: (s - lo) / (hi - lo) for r, s in scores.items()}


def _hit(
    chunk: ChunkRecord, doc: DocRecord, score: float, dense: float | None, bm25: float | None
) -> Hit:
    return Hit(
        doc_id=doc.doc_id,
        chunk_id=chunk.chunk_id,
        title=doc.title,
        date=doc.date,
        source=doc.source,
        path=doc.path,
        url=doc.url,
        reporter=doc.reporter,
        text=chunk.text,
        start=chunk.start,
        end=chunk.end,
        score=score,
        dense_score=dense,
        bm25_score=bm25,
    )


def _as_date(value: dt.date | str | None, name: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (ValueError, TypeError) as e:  # TypeError: a year as a number (since=2024)
        raise InvalidOption(name, value, ["a date as YYYY-MM-DD"]) from e
