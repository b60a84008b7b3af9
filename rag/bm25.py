"""BM25 over immutable segments, scored with the statistics of the whole index.

A bm25s index stores final scores: the IDF and the average chunk length of the whole corpus
are baked into every posting, so adding one chunk changes them all and bm25s can only
rebuild (most of the 91 s that adding 1,000 chunks to a 1M-chunk index took). Here the BM25
side of a generation is a list of segments, each written once by some generation and kept by
the later ones::

    bm25-G/                 the segment generation G wrote, for a run of consecutive chunks
        vocab.json          its terms, sorted; term i is column i
        indptr.npy          int64 (terms + 1): column c's postings are [indptr[c], indptr[c+1])
        rows.npy            int32 per posting: the chunk, counted within the segment
        tf.npy              float32 per posting: how often the term occurs in that chunk
        lengths.npy         int32 per chunk: its number of terms
    live-N.npy              generation N's tombstones: a bool per chunk of every segment, in
                            segment order, False for chunks removed since it was written

Row r of the index is the r-th live chunk in segment order (the order the records keep). A
query sums N, the average length and each query term's document frequency over the live
chunks of all segments, then scores the postings with bm25s's IDF function and its
term-frequency formula (the same float64 steps) and float32 rounding, so the scores equal those
of a bm25s index built from scratch over the same chunks (bit for bit on 100,000 real chunks;
tests/test_bm25.py checks them to 1e-6 after random adds and removes).

A write adds one segment for the new chunks and marks removed ones dead. Like an LSM tree it
then merges the newest segments while the one before them is less than `RATIO` times larger,
and rewrites a segment (with every newer one) once more than `DEAD_SHARE` of it is dead; so
there are about log4(N / batch) segments, and a chunk is rewritten a few times over its life
instead of on every write. Merging reads the stored postings, not the terms.

The storage, merging and scoring are our own code over numpy: bm25s has no segment, merge or
raw-count primitive. The IDF functions are bm25s's (`bm25s.scoring`), written out.

An index written in format 2 has a single bm25s index instead (`Legacy`); it is searched as it
is, and the next write converts it to one segment (a full build, once).
"""

from __future__ import annotations

import array
import functools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import diskio
from .errors import IndexCorrupt

if TYPE_CHECKING:
    from .names import Spellings

try:  # as bm25s reads its vocabulary: orjson when installed (faster on a big one)
    from orjson import loads as _json_loads
except ImportError:
    from json import loads as _json_loads  # type: ignore[assignment]

# Merge the newest segments while the one before them holds fewer than RATIO times their
# live chunks.
RATIO = 4
# Rewrite a segment once more than this share of its chunks is removed.
DEAD_SHARE = 0.5
_ARRAYS = ("indptr", "rows", "tf", "lengths")


class Lexical(Protocol):
    """What search needs from the BM25 side of a generation."""

    num_docs: int

    def frequency(self, term: str) -> int:
        """Live chunks holding ``term``."""

    def scores(self, terms: list[str]) -> np.ndarray:
        """The BM25 score of every row for ``terms`` (each counted as often as given)."""

    @property
    def spellings(self) -> Spellings:
        """The vocabulary's Hangul words by phonetic key (`rag.names.Spellings`)."""


@dataclass
class Postings:
    """A segment's term columns, in memory or memory-mapped from ``bm25-G/``."""

    terms: list[str]
    indptr: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray

    def __post_init__(self) -> None:
        self.vocab = {t: i for i, t in enumerate(self.terms)}

    def column(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Chunks (segment-local) holding ``term`` and its count in each."""
        c = self.vocab.get(term)
        if c is None:
            return _NO_ROWS, _NO_TF
        start, end = int(self.indptr[c]), int(self.indptr[c + 1])
        return self.rows[start:end], self.tf[start:end]


_NO_ROWS = np.zeros(0, dtype=np.int32)
_NO_TF = np.zeros(0, dtype=np.float32)


@dataclass
class Segment:
    """One segment of an opened generation: its postings and which of its chunks live."""

    name: str
    postings: Postings
    live: np.ndarray  # bool per chunk of the segment
    first: int  # the index row of its first live chunk

    def __post_init__(self) -> None:
        self.count = int(self.live.sum())
        self.whole = self.count == len(self.live)
        # Index row of each chunk (meaningful for live ones); only needed with tombstones.
        self._rows = None if self.whole else self.first + np.cumsum(self.live) - 1

    def column(self, term: str, index_path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The live chunks holding ``term`` (positions in the segment) and its count in each."""
        local, tf = self.postings.column(term)
        if len(local) and int(local[-1]) >= len(self.live):  # sorted within a column
            raise IndexCorrupt(index_path, f"{self.name} is not a readable BM25 segment")
        if not self.whole:
            keep = self.live[local]
            local, tf = local[keep], tf[keep]
        return local, tf


# bm25s's IDFs (`bm25s.scoring`), the same float operations. Written out here so that a search
# does not import bm25s, and with it scipy (0.2 s of a cold `rag search`).
def _lucene_idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def _robertson_idf(df: int, n: int) -> float:
    return math.log(max((n - df + 0.5) / (df + 0.5), 1))


class Segments:
    """The BM25 side of a format-3 generation: its segments, scored with global statistics."""

    def __init__(self, segments: list[Segment], params: dict[str, Any], index_path: Path) -> None:
        self.segments = segments
        self.path = index_path
        k1, b = float(params["k1"]), float(params["b"])
        if params["method"] not in ("lucene", "robertson"):  # the only ones rag writes
            raise IndexCorrupt(index_path, f"BM25 method {params['method']!r} is not supported")
        self._idf = _lucene_idf if params["method"] == "lucene" else _robertson_idf
        self.num_docs = sum(s.count for s in segments)
        total = sum(int(s.postings.lengths[s.live].sum(dtype=np.int64)) for s in segments)
        # As bm25s: the mean of the integer lengths, in float64.
        avgdl = total / self.num_docs if self.num_docs else 1.0
        # bm25s's term-frequency part (`_score_tfc_lucene`) is tf / (k1 * ((1 - b) + b * l_d /
        # l_avg) + tf), in float64; its chunk-length half is computed here once per chunk (the
        # same operations in the same order, so the same bits) instead of once per posting.
        self._norms = [k1 * ((1 - b) + b * s.postings.lengths / avgdl) for s in segments]

    def frequency(self, term: str) -> int:
        return sum(len(s.column(term, self.path)[0]) for s in self.segments)

    @functools.cached_property
    def spellings(self) -> Spellings:
        from .names import Spellings  # only an English query with a name needs it

        return Spellings(t for s in self.segments for t in s.postings.terms)

    def scores(self, terms: list[str]) -> np.ndarray:
        scores = np.zeros(self.num_docs, dtype=np.float32)
        for term in terms:
            columns = [(s, *s.column(term, self.path)) for s in self.segments]
            df = sum(len(local) for _, local, _ in columns)
            if not df:
                continue
            # bm25s keeps IDFs in a float32 array and rounds each posting's score to float32.
            idf = np.float32(self._idf(df, self.num_docs))
            for (segment, local, tf), norms in zip(columns, self._norms, strict=True):
                if not len(local):
                    continue
                part = norms[local]  # the float64 steps of bm25s, in place: tf / (norm + tf) * idf
                part += tf
                np.divide(tf, part, out=part)
                part *= idf
                if segment._rows is not None:
                    rows = segment._rows[local]
                else:
                    rows = local + segment.first if segment.first else local
                # One posting per chunk and term: a plain indexed add (bm25s: np.add.at).
                scores[rows] += part.astype(np.float32)
        return scores


class Legacy:
    """A format-2 generation's single bm25s index (scores baked in), searched as it is."""

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever
        self.num_docs = int(retriever.scores["num_docs"])

    def frequency(self, term: str) -> int:
        indptr, i = self.retriever.scores["indptr"], self.retriever.vocab_dict.get(term)
        return 0 if i is None or i + 1 >= len(indptr) else int(indptr[i + 1] - indptr[i])

    def scores(self, terms: list[str]) -> np.ndarray:
        return np.asarray(self.retriever.get_scores(terms))

    @functools.cached_property
    def spellings(self) -> Spellings:
        from .names import Spellings

        return Spellings(self.retriever.vocab_dict)


# -- reading -------------------------------------------------------------------------------


def read(
    path: Path,
    format_version: int,
    files: dict[str, str],
    segments: list[str],
    params: dict[str, Any],
) -> Lexical | None:
    """Open the BM25 side of a generation (``None`` when it has no chunks).

    Raises:
        IndexCorrupt: A segment or the tombstones are unreadable or inconsistent.
    """
    if format_version < 3:
        return _read_legacy(path / files["bm25"], path) if "bm25" in files else None
    if not segments:
        return None
    live = _load(path / files["live"], path, mmap=False)
    if live.dtype != np.bool_ or live.ndim != 1:
        raise IndexCorrupt(path, f"{files['live']} has the wrong type")
    opened, start, first = [], 0, 0
    for name in segments:
        postings = read_postings(path / name, path)
        mask = live[start : start + len(postings.lengths)]
        if len(mask) != len(postings.lengths):
            raise IndexCorrupt(path, f"{files['live']} is shorter than the BM25 segments")
        opened.append(Segment(name, postings, mask, first))
        start += len(mask)
        first += opened[-1].count
    if start != len(live):
        raise IndexCorrupt(path, f"{files['live']} is longer than the BM25 segments")
    return Segments(opened, params, path)


def read_postings(directory: Path, index_path: Path) -> Postings:
    """A segment's files, memory-mapped (the vocabulary is read into a dict)."""
    bad = IndexCorrupt(index_path, f"{directory.name} is not a readable BM25 segment")
    try:
        terms = _json_loads((directory / "vocab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise bad from e
    arrays = {a: _load(directory / f"{a}.npy", index_path) for a in _ARRAYS}
    indptr, rows, tf, lengths = (arrays[a] for a in _ARRAYS)
    if (
        not isinstance(terms, list)
        or not all(isinstance(t, str) for t in terms)
        or indptr.shape != (len(terms) + 1,)
        or rows.shape != tf.shape
        or rows.ndim != 1
        or lengths.ndim != 1
        or int(indptr[0]) != 0
        or int(indptr[-1]) != len(rows)
        or not (
            indptr.dtype == np.int64
            and rows.dtype == np.int32
            and tf.dtype == np.float32
            and lengths.dtype == np.int32
        )
    ):
        raise bad
    return Postings(terms, indptr, rows, tf, lengths)


def _load(file: Path, index_path: Path, mmap: bool = True) -> np.ndarray:
    try:
        return diskio.load_array(file, mmap)
    except (OSError, ValueError) as e:
        raise IndexCorrupt(
            index_path, f"{file.relative_to(index_path)} is not a readable array"
        ) from e


def _read_legacy(directory: Path, index_path: Path) -> Legacy:
    import bm25s

    try:
        return Legacy(bm25s.BM25.load(str(directory), load_corpus=False, mmap=True))
    # TypeError: an unknown key in params.index.json (bm25s passes them to its constructor).
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IndexCorrupt(index_path, f"{directory.name} is not a readable BM25 index") from e


# -- writing -------------------------------------------------------------------------------


def build(terms: Iterable[str]) -> Postings:
    """The postings of chunks given as space-separated terms, in order."""
    vocab: dict[str, int] = {}
    ids = array.array("i")  # 4 bytes a term: a million chunks have ~60M of them
    lengths = array.array("i")
    for text in terms:
        tokens = text.split()
        lengths.append(len(tokens))
        ids.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
    n = max(len(lengths), 1)
    names = sorted(vocab)
    order = np.empty(len(names), dtype=np.int64)
    order[[vocab[t] for t in names]] = np.arange(len(names))
    # One key per (term, chunk) pair, sorted in place: runs of equal keys are a term's count
    # in a chunk, and the sorted keys are the columns, each sorted by chunk.
    keys = order[np.frombuffer(ids, dtype=np.int32)]
    del ids
    keys *= n
    keys += np.repeat(np.arange(n, dtype=np.int64), np.frombuffer(lengths, dtype=np.int32))
    keys.sort()
    starts = np.flatnonzero(np.diff(keys, prepend=-1))
    counts = np.diff(starts, append=len(keys))
    keys = keys[starts]
    return Postings(
        names,
        _indptr(keys // n, len(names)),
        (keys % n).astype(np.int32),
        counts.astype(np.float32),
        np.frombuffer(lengths, dtype=np.int32).copy(),
    )


def merge(parts: list[tuple[Postings, np.ndarray]]) -> Postings:
    """One segment holding the live chunks of ``parts`` (postings, live mask), in order."""
    names = sorted({t for p, _ in parts for t in p.terms})
    index = {t: i for i, t in enumerate(names)}
    columns, rows, tfs, lengths = [], [], [], []
    first = 0
    for postings, live in parts:
        renumber = first + np.cumsum(live) - 1
        to_column = np.array([index[t] for t in postings.terms], dtype=np.int64)
        column = np.repeat(to_column, np.diff(postings.indptr))
        local, tf = np.asarray(postings.rows), np.asarray(postings.tf)
        keep = live[local]
        columns.append(column[keep])
        rows.append(renumber[local[keep]])
        tfs.append(tf[keep])
        lengths.append(np.asarray(postings.lengths)[live])
        first += int(live.sum())
    # Rows grow from part to part and within a column, so a stable sort by column suffices.
    column = np.concatenate(columns)
    order = np.argsort(column, kind="stable")
    column, row, tf = column[order], np.concatenate(rows)[order], np.concatenate(tfs)[order]
    used = np.bincount(column, minlength=len(names)) > 0  # drop dead terms
    renumber_terms = np.cumsum(used) - 1
    column = renumber_terms[column]
    return Postings(
        [t for t, u in zip(names, used, strict=True) if u],
        _indptr(column, int(used.sum())),
        row.astype(np.int32),
        tf.astype(np.float32),
        np.concatenate(lengths).astype(np.int32),
    )


def _indptr(columns: np.ndarray, n: int) -> np.ndarray:
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(columns, minlength=n), out=indptr[1:])
    return indptr


def save(postings: Postings, directory: Path) -> None:
    """Write a segment's files into ``directory`` (created if it is not there; no pickle)."""
    directory.mkdir(exist_ok=True)
    vocab = json.dumps(postings.terms, ensure_ascii=False)
    (directory / "vocab.json").write_text(vocab, encoding="utf-8")
    for name in _ARRAYS:
        np.save(directory / f"{name}.npy", getattr(postings, name), allow_pickle=False)


@dataclass
class Written:
    """The BM25 side of a new generation: its segments, in order, and their tombstones."""

    segments: list[str]
    live: np.ndarray
    new: str | None  # the segment written for this generation, if any


def write(
    directory: Path,
    name: str,
    base: Lexical | None,
    keep: np.ndarray,
    new_terms: list[str],
    all_terms: Callable[[], Iterable[str]],
) -> Written:
    """Write the BM25 side of a generation: ``base``'s rows ``keep`` plus the new chunks.

    Args:
        directory: The index directory.
        name: The segment name this generation may write (``bm25-N``).
        base: The previous generation's BM25 side (``None`` if it had no chunks).
        keep: The previous generation's rows kept, in order.
        new_terms: The new chunks' terms, in row order after the kept ones.
        all_terms: Every chunk's terms in the new generation, for converting a format-2 base.
    """
    if isinstance(base, Legacy):  # converted once, from the records
        postings = build(all_terms())
        if not len(postings.lengths):
            return Written([], np.zeros(0, bool), None)
        save(postings, directory / name)
        return Written([name], np.ones(len(postings.lengths), bool), name)
    parts: list[tuple[str | None, Postings, np.ndarray]] = []
    if isinstance(base, Segments):
        kept = np.zeros(base.num_docs, dtype=bool)
        kept[keep] = True
        for s in base.segments:
            live = s.live.copy()
            live[live] = kept[s.first : s.first + s.count]
            if live.any():  # a segment with no live chunk left is dropped
                parts.append((s.name, s.postings, live))
    if new_terms:
        fresh = build(new_terms)
        parts.append((None, fresh, np.ones(len(new_terms), dtype=bool)))
    sizes = [(int(live.sum()), len(live)) for _, _, live in parts]
    start = merge_start(sizes, fresh=bool(new_terms))
    if start < len(parts):
        tail = parts[start:]
        if len(tail) == 1 and tail[0][0] is None:
            merged = tail[0][1]  # only the new chunks: nothing to merge
        else:
            merged = merge([(postings, live) for _, postings, live in tail])
        save(merged, directory / name)
        parts = [*parts[:start], (name, merged, np.ones(len(merged.lengths), dtype=bool))]
    live = np.concatenate([live for _, _, live in parts]) if parts else np.zeros(0, bool)
    names = [n for n, _, _ in parts if n is not None]
    return Written(names, live, name if name in names else None)


def merge_start(sizes: list[tuple[int, int]], fresh: bool) -> int:
    """Where the run of newest segments to write as one starts (``len(sizes)``: none).

    ``sizes`` are each segment's live and total chunks, oldest first; with ``fresh`` the
    last one holds the new chunks and is not written yet, so the run includes it. The run
    starts no later than the oldest mostly dead segment, and grows to older segments while
    the one before it holds less than `RATIO` times its live chunks.
    """
    n = len(sizes)
    dead = next((i for i, (live, total) in enumerate(sizes) if live < (1 - DEAD_SHARE) * total), n)
    start = min(dead, n - 1 if fresh else n)
    if start == n:
        return n
    run = sum(live for live, _ in sizes[start:])
    while start > 0 and sizes[start - 1][0] < RATIO * run:
        start -= 1
        run += sizes[start][0]
    return start
