"""``manifest.json``: what an index holds, which files make up its current generation, and
which files it wrote (so that only those are ever removed).

Every file name a manifest mentions must be a plain generation-file name
(``records-7.sqlite``, ``bm25-5/vocab.json``, ...): a tampered manifest cannot make
the index open or delete anything outside its own directory. Each file's size and xxh3-128
checksum are recorded; opening compares sizes (and checksums of small files), ``rag info
--check`` every checksum.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, StrictInt, ValidationError, field_validator, model_validator

from .errors import IndexCorrupt, IndexNotFound, RagError

# 4: records, vectors and BM25 in segments kept across generations (`rag.segments`); 3: only
# BM25 in segments (`rag.bm25`), records and vectors copied into every generation; 2: one bm25s
# index per generation. 2 and 3 are still read, and converted by the next write.
FORMAT_VERSION = 4
OLDEST_FORMAT = 2
MANIFEST = "manifest.json"
# The files of the generation being written, listed before the first of them is created: an
# interrupted write's leftovers are removed by the next one, and nothing else is.
PENDING = "pending.json"
SUFFIXES = {
    "records": ".sqlite",
    "vectors": ".npy",
    "filters": ".npy",
    "ann": ".faiss",
    "bm25": "",
    "live": ".npy",
    "seg": "",
    "docs": ".npy",
}
# The files every generation has, by format (format 4 keeps records and vectors in segments).
REQUIRED = {2: ("records", "vectors", "filters"), 3: ("records", "vectors", "filters")}
REQUIRED[4] = ("filters", "live", "docs")
# Directories of files written once and kept by later generations, by format.
SEGMENT_KIND = {3: "bm25", 4: "seg"}
# A file a generation wrote: "records-12.sqlite", or "seg-12" and the files inside it.
GENERATION_FILE = re.compile(
    r"(?P<kind>records|vectors|filters|ann|bm25|live|seg|docs)-(?P<gen>0|[1-9][0-9]{0,17})"
    r"(?P<suffix>\.sqlite|\.npy|\.faiss|)(?:/(?P<inner>[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}))?"
)
# Checksums of files up to this size are verified on every open (hashing 8 MB takes ~1 ms).
CHECK_ON_OPEN_BYTES = 8 * 2**20


class Manifest(BaseModel):
    """``manifest.json``: what a person (or `rag info`) needs to know about the index."""

    format_version: StrictInt = FORMAT_VERSION
    rag_version: str
    created: dt.datetime
    updated: dt.datetime
    generation: StrictInt = Field(default=0, ge=0)
    embedder: dict[str, Any]
    chunker: dict[str, Any]
    bm25: dict[str, Any]
    ann: dict[str, Any] | None = None
    documents: StrictInt = Field(default=0, ge=0)
    chunks: StrictInt = Field(default=0, ge=0)
    files: dict[str, str] = {}
    sizes: dict[str, StrictInt] = {}
    # Added without a format change: an index written before them has none (checked as absent).
    checksums: dict[str, str] = {}
    # The last generation's files: removed right after the switch, or by the next write if
    # the writer died first (except those this generation still uses).
    previous: list[str] = []
    # The segments in use, oldest first, each written by this generation or an earlier one:
    # format 4 "seg-G" directories (records, vectors and BM25 of a run of chunks;
    # `rag.segments`), format 3 "bm25-G" (BM25 only; `rag.bm25`).
    segments: list[str] = []

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, v: dict[str, Any]) -> dict[str, Any]:
        _require(v, {"spec": str, "model_id": str, "dim": int})
        if v["dim"] <= 0:
            raise ValueError("dim must be positive")
        return v

    @field_validator("chunker")
    @classmethod
    def _chunker(cls, v: dict[str, Any]) -> dict[str, Any]:
        _require(v, {"max_tokens": int, "overlap_sentences": int})
        return v

    @field_validator("bm25")
    @classmethod
    def _bm25(cls, v: dict[str, Any]) -> dict[str, Any]:
        _require(v, {"k1": (int, float), "b": (int, float), "method": str})
        return v

    @field_validator("previous")
    @classmethod
    def _previous(cls, v: list[str]) -> list[str]:
        for name in v:
            match = GENERATION_FILE.fullmatch(name)
            if match is None or match["inner"] or not _suffix_fits(match):
                raise ValueError(f"{name!r} is not a generation file name")
        return v

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: list[str]) -> list[str]:
        for name in v:
            match = GENERATION_FILE.fullmatch(name)
            if match is None or match["kind"] not in ("bm25", "seg") or match["inner"]:
                raise ValueError(f"{name!r} is not a segment name")
        if len(set(v)) != len(v):
            raise ValueError("segments lists a segment twice")
        return v

    @model_validator(mode="after")
    def _files(self) -> Manifest:
        gen = self.generation
        if self.files or self.sizes:  # a manifest being built has neither yet
            for kind in REQUIRED.get(self.format_version, REQUIRED[FORMAT_VERSION]):
                if kind not in self.files:
                    raise ValueError(f"files has no {kind!r}")
        for kind, name in self.files.items():
            if kind not in SUFFIXES:
                raise ValueError(f"files has an unknown kind {kind!r}")
            if name != f"{kind}-{gen}{SUFFIXES[kind]}":
                raise ValueError(f"{name!r} is not the {kind} file of generation {gen}")
        segment_kind = SEGMENT_KIND.get(self.format_version)
        for name in self.segments:
            if int(name.split("-")[1]) > gen:
                raise ValueError(f"segment {name!r} is newer than generation {gen}")
            if not name.startswith(f"{segment_kind}-"):
                raise ValueError(f"segment {name!r} is not one of format {self.format_version}")
        segment = self.files.get("bm25")
        if self.format_version >= 3 and segment is not None and segment not in self.segments:
            raise ValueError(f"{segment!r} is not in segments")
        names = set(self.files.values()) | set(self.segments)
        for table in (self.sizes, self.checksums):
            for name in table:
                match = GENERATION_FILE.fullmatch(name)
                top = name.split("/")[0]
                nested = match is not None and match["inner"] is not None
                folder = match is not None and match["kind"] in ("bm25", "seg")
                if match is None or top not in names or (nested and not folder):
                    raise ValueError(f"{name!r} is not a file of generation {gen}")
        if self.checksums and set(self.checksums) != set(self.sizes):
            raise ValueError("checksums and sizes list different files")
        return self


def new_manifest(embedder: dict[str, Any], max_tokens: int, overlap: int) -> Manifest:
    """The manifest of a new, empty index: the embedder `Embedder.describe` gives, and the
    chunker and BM25 settings with the versions of the libraries behind them."""
    from importlib.metadata import version

    from .korean import CONTENT_TAGS, KIWI_DICTIONARIES

    now = dt.datetime.now(dt.timezone.utc)
    return Manifest(
        rag_version=version("kornews-rag"),
        created=now,
        updated=now,
        embedder=embedder,
        chunker={
            "splitter": f"kiwipiepy {version('kiwipiepy')} split_into_sents, by line",
            "max_tokens": max_tokens,
            "overlap_sentences": overlap,
            "header": "title | date",
        },
        bm25={
            "library": f"bm25s {version('bm25s')}",
            "tokenizer": f"kiwipiepy {version('kiwipiepy')} morphemes, {KIWI_DICTIONARIES}",
            "tags": sorted(CONTENT_TAGS),
            "stopwords": "English (bm25s STOPWORDS_EN_PLUS), for SL tokens",
            "k1": 1.5,
            "b": 0.75,
            "method": "lucene",
        },
    )


def generation_files(gen: int, ann: bool, bm25: bool) -> dict[str, str]:
    """The file names of generation ``gen`` of a format-3 index, by kind."""
    kinds = [*REQUIRED[3], *(["ann"] if ann else []), *(["bm25"] if bm25 else [])]
    return {kind: f"{kind}-{gen}{SUFFIXES[kind]}" for kind in kinds}


def read_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json`` only (cheap: no vectors are loaded).

    Raises:
        IndexNotFound: No manifest in ``path``.
        IndexCorrupt: The manifest is unreadable, of another format or invalid.
    """
    if path.exists() and not path.is_dir():
        raise RagError(f"{path} is a file, not an index directory")
    file = path / MANIFEST
    if not file.is_file():
        raise IndexNotFound(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, or not UTF-8
        raise IndexCorrupt(path, f"{MANIFEST} is not valid JSON ({_first_line(e)})") from e
    if not isinstance(raw, dict):
        raise IndexCorrupt(path, f"{MANIFEST} is not a JSON object")
    if not {"format_version", "embedder", "rag_version"} & raw.keys():
        # A web app's or a browser extension's: not an index, damaged or old.
        raise RagError(
            f"{path} holds no rag index: its {MANIFEST} is another program's; "
            "give --index a new or empty directory"
        )
    version = raw.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexCorrupt(path, f"{MANIFEST}: format_version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise IndexCorrupt(
            path,
            f"format {version} is newer than this version of rag reads ({FORMAT_VERSION}); "
            "upgrade rag",
        )
    if version < OLDEST_FORMAT:
        raise IndexCorrupt(
            path, f"format {version} was written by an older rag; index the articles again"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as e:
        raise IndexCorrupt(path, f"{MANIFEST} is invalid: {_validation_line(e)}") from e
    if not manifest.files:  # only a manifest still being built has none
        raise IndexCorrupt(path, f"{MANIFEST} is invalid: files is empty")
    return manifest


def read_pending(path: Path) -> list[str]:
    """The files an interrupted write listed in ``pending.json`` (none if it is unreadable:
    then nothing is removed, which is the safe side)."""
    try:
        raw = json.loads((path / PENDING).read_text(encoding="utf-8"))
        names = [n for n in raw["files"] if isinstance(n, str)]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return []
    return [n for n in names if (m := GENERATION_FILE.fullmatch(n)) and not m["inner"]]


def wrote_pending(path: Path) -> bool:
    """Whether ``pending.json`` in ``path`` is one rag wrote: an object of a generation and
    the names of its files, each a generation file's (a user's file of that name is not)."""
    try:
        raw = json.loads((path / PENDING).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    files = raw.get("files") if isinstance(raw, dict) else None
    return (
        isinstance(files, list)
        and set(raw) <= {"generation", "files"}
        and all(isinstance(n, str) and GENERATION_FILE.fullmatch(n) for n in files)
    )


def wrote_manifest(file: Path) -> bool:
    """Whether ``file`` (a ``manifest.json.tmp`` a killed write left) is a manifest rag wrote."""
    try:
        Manifest.model_validate_json(file.read_bytes())
    except (OSError, ValueError, RecursionError):  # ValidationError is a ValueError
        return False
    return True


def checksum(file: Path) -> str:
    """xxh3-128 of a file's bytes, hex (about 10 GB/s; a read from the page cache dominates)."""
    import xxhash

    digest = xxhash.xxh3_128()
    with open(file, "rb") as f:
        while block := f.read(4 * 2**20):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, manifest: Manifest, full: bool) -> list[str]:
    """Problems with the generation's files: missing, wrong size, or (every file when ``full``,
    else those up to `CHECK_ON_OPEN_BYTES`) a checksum that differs from the manifest's."""
    problems = []
    for name in [*manifest.files.values(), *manifest.segments]:
        if not (path / name).exists():
            problems.append(f"{name} is missing")
    for name, actual, size in _resized(path, manifest):
        if actual < 0 and name.split("/")[0] in [*manifest.files.values(), *manifest.segments]:
            problems.append(f"{name} is missing")
        else:
            problems.append(f"{name} is {actual} bytes, manifest says {size}")
    if problems:
        return list(dict.fromkeys(problems))
    for name, expected in manifest.checksums.items():
        if not full and manifest.sizes[name] > CHECK_ON_OPEN_BYTES:
            continue
        try:
            digest = checksum(path / name)
        except OSError as e:  # removed by a writer meanwhile, or unreadable
            problems.append(f"{name} cannot be read ({e.strerror})")
            continue
        if digest != expected:
            problems.append(f"{name} has changed since it was written (checksum differs)")
    return problems


def resized(path: Path, manifest: Manifest) -> str:
    """A file of the open generation whose size changed since it was opened ("" if none).
    Another program writing one in place (a copy over it, a sync tool) leaves a memory map
    reading zeros past the new end, or dying with SIGBUS; a file a writer removed is still
    the one opened, and is not looked at."""
    for name, actual, size in _resized(path, manifest):
        if actual >= 0:
            return f"{name} is {actual} bytes, manifest says {size}"
    return ""


def _resized(path: Path, manifest: Manifest) -> Iterator[tuple[str, int, int]]:
    """Each file whose size is not the manifest's: name, size (-1 if missing), manifest's."""
    for name, size in manifest.sizes.items():
        actual = _size(path / name)
        if actual != size:
            yield name, actual, size


def sizes_and_checksums(path: Path, names: Iterable[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Size and checksum of every file of a generation; a directory's files one by one."""
    sizes, sums = {}, {}
    for name in names:
        p = path / name
        for f in sorted(p.iterdir()) if p.is_dir() else [p]:
            key = f.relative_to(path).as_posix()
            sizes[key] = _size(f)
            sums[key] = checksum(f)
    return sizes, sums


def _require(v: dict[str, Any], fields: dict[str, Any]) -> None:
    for name, kind in fields.items():
        if name not in v:
            raise ValueError(f"{name!r} is missing")
        if not isinstance(v[name], kind) or isinstance(v[name], bool):
            raise ValueError(f"{name!r} has the wrong type")


def _suffix_fits(match: re.Match[str]) -> bool:
    return match["suffix"] == SUFFIXES[match["kind"]]


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return -1


def _validation_line(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
